"""The audit log: changes and events recorded in the same transaction, hash-chained."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError
from stdnum.cn import ric

from app.audit import AuditLogReadOnly, history_clause, record_event, verify
from app.extensions import db
from models.audit import AuditLog
from models.customers import Customer
from models.pools import PoolMove
from models.security import Department
from tests.conftest import PASSWORD, login, unique_mobile, unique_name, user
from tests.customfield_support import create_customer, define


def last_rows(count: int = 5) -> list[AuditLog]:
    return list(db.session.scalars(select(AuditLog).order_by(AuditLog.id.desc()).limit(count)))


def test_record_event_joins_the_callers_transaction() -> None:
    record_event("login_failed", details={"reason": "bad password"}, username="nobody")
    db.session.rollback()
    assert not any(row.username == "nobody" for row in last_rows())
    record_event("login_failed", details={"reason": "bad password"}, username="nobody")
    db.session.commit()
    row = last_rows(1)[0]
    assert (row.action, row.username, row.details) == ("login_failed", "nobody", {"reason": "bad password"})
    assert row.user_id is None and row.ip is None


def entity_rows(entity: str, entity_id: object) -> list[AuditLog]:
    return list(
        db.session.scalars(
            select(AuditLog).where(history_clause(db.session, entity, entity_id)).order_by(AuditLog.id)
        )
    )


def test_screen_insert_update_delete_recorded_with_who_and_ip(login_as) -> None:
    client = login_as("rep_a")
    name, mobile = unique_name("审计客户"), unique_mobile()
    created = client.post(
        "/customerview/add",
        data={"kind": "company", "name": name, "mobile": mobile, "level": "key", "status": "following"},
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    assert created.status_code == 302
    customer = db.session.scalar(select(Customer).where(Customer.mobile == mobile))
    (insert,) = entity_rows("customer", customer.id)
    assert (insert.action, insert.username, insert.ip) == ("insert", "rep_a", "10.1.2.3")
    assert insert.user_id == user("rep_a").id
    assert insert.changes["name"] == [None, name] and insert.changes["level"] == [None, "key"]
    edited = client.post(
        f"/customerview/edit/{customer.id}",
        data={"kind": "company", "name": name + "(改)", "mobile": mobile, "level": "normal",
              "status": "following", "owner": str(customer.owner_id)},
    )
    assert edited.status_code == 302
    update = entity_rows("customer", customer.id)[-1]
    assert update.action == "update"
    assert update.changes["name"] == [name, name + "(改)"]
    assert update.changes["level"] == ["key", "normal"]
    assert "updated_at" not in update.changes and "mobile" not in update.changes
    deleted = client.post(f"/customerview/delete/{customer.id}")
    assert deleted.status_code == 302
    delete = entity_rows("customer", customer.id)[-1]
    assert delete.action == "delete" and delete.changes["name"] == [name + "(改)", None]


def test_custom_field_change_recorded_per_field_through_the_api(api_as, clean_custom_fields) -> None:
    field = define(api_as, field_type="text", label_zh="审计备注")
    other = define(api_as, field_type="integer", label_zh="审计数字")
    created = create_customer(api_as, **{field["api_name"]: "旧值", other["api_name"]: 3})
    assert created.status_code == 201, created.json
    customer_id = created.json["id"]
    (insert,) = entity_rows("customer", customer_id)
    assert insert.changes[f"custom.{field['api_name']}"] == [None, "旧值"]
    assert insert.ip == "127.0.0.1" and insert.username == "rep_a"
    client, headers = api_as("rep_a")
    response = client.put(
        f"/api/v1/customer/{customer_id}", json={"custom": {field["api_name"]: "新值", other["api_name"]: 3}},
        headers=headers,
    )
    assert response.status_code == 200, response.json
    update = entity_rows("customer", customer_id)[-1]
    assert update.changes == {f"custom.{field['api_name']}": ["旧值", "新值"]}
    definition = entity_rows("custom_field", field["id"])
    assert definition and definition[0].action == "insert" and definition[0].username == "admin"


def test_rolled_back_change_leaves_no_audit_row() -> None:
    before = db.session.scalar(select(func.max(AuditLog.id)))
    customer = Customer(name=unique_name("回滚客户"), owner_id=user("rep_a").id)
    db.session.add(customer)
    db.session.flush()
    customer.level = "key"
    db.session.flush()
    db.session.rollback()
    assert db.session.scalar(select(func.max(AuditLog.id))) == before


def test_service_bulk_handover_recorded_row_by_row(api_as) -> None:
    rep_a, rep_b = user("rep_a"), user("rep_b")
    ids = []
    for _ in range(3):
        customer = Customer(name=unique_name("批量审计"), owner_id=rep_a.id)
        db.session.add(customer)
        db.session.commit()
        ids.append(customer.id)
    client, headers = api_as("manager1")
    body = {"customer_ids": ids, "to_user_id": rep_b.id, "reason": "交接审计"}
    response = client.post("/api/v1/customer/transfer", json=body, headers=headers)
    assert response.status_code == 200, response.json
    for customer_id in ids:
        update = entity_rows("customer", customer_id)[-1]
        assert update.action == "update" and update.username == "manager1"
        assert update.changes["owner_id"] == [rep_a.id, rep_b.id]
        move = db.session.scalar(select(PoolMove).where(PoolMove.customer_id == customer_id))
        (recorded,) = entity_rows("pool_move", move.id)
        assert recorded.action == "insert" and recorded.changes["reason"] == [None, "交接审计"]


def test_role_and_permission_changes_recorded(app) -> None:
    sm = app.appbuilder.sm
    person = user("readonly")
    finance = sm.find_role("Finance")
    person.roles.append(finance)
    db.session.commit()
    change = entity_rows("ab_user", person.id)[-1]
    assert change.changes["roles"] == [["Read Only"], ["Finance", "Read Only"]]
    person.roles.remove(finance)
    db.session.commit()
    assert entity_rows("ab_user", person.id)[-1].changes["roles"] == [["Finance", "Read Only"], ["Read Only"]]
    role = sm.add_role(unique_name("审计角色"))
    permission = sm.find_permission_view_menu("can_list", "CustomerView")
    role.permissions.append(permission)
    db.session.commit()
    change = entity_rows("ab_role", role.id)[-1]
    assert change.changes["permissions"] == [[], [str(permission)]]


def test_secrets_are_never_recorded(app) -> None:
    sm = app.appbuilder.sm
    name = unique_name("audit_pw_")
    sm.add_user(name, name, "Test", f"{name}@test.example.cn", sm.find_role("Sales Rep"), PASSWORD)
    person = user(name)  # a user of its own: the changed password must not lock others out
    person.password = "scrypt:fake-hash-value"
    db.session.commit()
    change = entity_rows("ab_user", person.id)[-1]
    assert change.changes == {"password": ["***", "***"]}


def test_encrypted_columns_and_sensitive_custom_fields_recorded_without_value(
    api_as, clean_custom_fields
) -> None:
    body = "37050219900307123"
    id_number = body + ric.calc_check_digit(body + "0")  # stdnum ignores the last character
    secret_field = define(api_as, field_type="text", label_zh="审计密文", sensitive=True)
    client, headers = api_as("rep_a")
    created = client.post(
        "/api/v1/customer/",
        json={"name": unique_name("加密客户"), "kind": "individual", "id_number": id_number,
              "custom": {secret_field["api_name"]: "秘密值ABC"}},
        headers=headers,
    )
    assert created.status_code == 201, created.json
    (insert,) = entity_rows("customer", created.json["id"])
    assert insert.changes["id_number"] == [None, "***"]
    assert insert.changes[f"custom.{secret_field['api_name']}"] == [None, "***"]
    assert all(value in (None, "***") for value in insert.changes.get("id_number_bidx", [None]))
    with db.engine.connect() as connection:
        stored = connection.execute(
            text("SELECT changes FROM crm_audit_log WHERE id = :id"), {"id": insert.id}
        ).scalar()
    assert id_number not in str(stored) and "秘密值ABC" not in str(stored)


def test_the_orm_refuses_to_change_audit_rows() -> None:
    record_event("probe")
    db.session.commit()
    row = last_rows(1)[0]
    row.action = "forged"
    with pytest.raises(AuditLogReadOnly):
        db.session.flush()
    db.session.rollback()
    db.session.delete(db.session.get(AuditLog, row.id))
    with pytest.raises(AuditLogReadOnly):
        db.session.flush()
    db.session.rollback()
    with pytest.raises(AuditLogReadOnly):
        db.session.execute(update(AuditLog).where(AuditLog.id == row.id).values(action="forged"))
    db.session.rollback()
    with pytest.raises(AuditLogReadOnly):
        db.session.execute(delete(AuditLog).where(AuditLog.id == row.id))
    db.session.rollback()
    assert db.session.get(AuditLog, row.id).action == "probe"


def raw(sql: str, **params: object) -> None:
    """Tamper as a DBA would: straight SQL on its own connection, trigger disabled on PostgreSQL."""
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("ALTER TABLE crm_audit_log DISABLE TRIGGER crm_audit_log_readonly")
        connection.execute(text(sql), params)
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("ALTER TABLE crm_audit_log ENABLE TRIGGER crm_audit_log_readonly")


def test_verify_clean_then_detects_an_edited_and_a_deleted_row(app) -> None:
    runner = app.test_cli_runner()
    for number in range(4):
        record_event("probe", details={"n": number})
        db.session.commit()
    clean = runner.invoke(args=["crm", "audit", "verify", "--batch", "7"])
    assert clean.exit_code == 0, clean.output
    first, second, third, fourth = sorted(row.id for row in last_rows(4))
    db.session.rollback()
    with db.engine.connect() as connection:  # as stored, to put back afterwards
        table = AuditLog.__table__
        deleted_row = dict(connection.execute(select(table).where(table.c.id == third)).mappings().one())
        username = connection.scalar(
            text("SELECT username FROM crm_audit_log WHERE id = :id"), {"id": second}
        )
    raw("UPDATE crm_audit_log SET username = 'mallory' WHERE id = :id", id=second)
    edited = runner.invoke(args=["crm", "audit", "verify"])
    assert edited.exit_code == 1
    assert f"#{second}" in edited.output and "被修改" in edited.output
    raw("DELETE FROM crm_audit_log WHERE id = :id", id=third)
    deleted = runner.invoke(args=["crm", "audit", "verify"])
    assert deleted.exit_code == 1
    assert f"#{second} 与 #{fourth} 之间的记录被删除" in deleted.output
    # a DBA's repair from a copy: the chain is whole again for the tests after this one (a
    # backup's restore verifies the whole chain)
    raw("UPDATE crm_audit_log SET username = :name WHERE id = :id", name=username, id=second)
    with db.engine.begin() as connection:  # an INSERT: the append-only trigger lets it through
        connection.execute(AuditLog.__table__.insert().values(**deleted_row))
    report = verify(db.session)
    db.session.rollback()
    assert report.ok, report.problems


def test_export_is_recorded_with_what_was_exported(login_as) -> None:
    client = login_as("manager1")
    tag = unique_name("导出审计")
    response = client.get(f"/customerview/export.csv?_flt_2_name={tag}")
    assert response.status_code == 200
    lines = response.get_data(as_text=True).strip().splitlines()
    row = last_rows(1)[0]
    assert (row.action, row.entity, row.username) == ("export", "customer", "manager1")
    assert row.details["rows"] == len(lines) - 1 and row.details["filters"] == {"_flt_2_name": [tag]}
    assert "name" in row.details["columns"]


def test_screen_lists_filters_and_shows_old_and_new(login_as) -> None:
    record_event("login_failed", details={"reason": "测试"}, username="筛选用户", entity="ab_user")
    db.session.commit()
    row = last_rows(1)[0]
    admin = login_as("admin")
    listed = admin.get("/auditlogview/list/?_flt_0_username=筛选用户").get_data(as_text=True)
    assert "筛选用户" in listed and "登录失败" in listed
    other = admin.get("/auditlogview/list/?_flt_0_username=没有这个人").get_data(as_text=True)
    assert "筛选用户" not in other
    by_action = admin.get("/auditlogview/list/?_flt_0_action=login_failed").get_data(as_text=True)
    assert "筛选用户" in by_action
    customer = Customer(name=unique_name("展示客户"), owner_id=user("rep_a").id, level="key")
    db.session.add(customer)
    db.session.commit()
    customer.level = "normal"
    db.session.commit()
    change = entity_rows("customer", customer.id)[-1]
    shown = admin.get(f"/auditlogview/show/{change.id}").get_data(as_text=True)
    assert "level" in shown and "key" in shown and "normal" in shown and change.hash in shown
    assert admin.get(f"/auditlogview/show/{row.id}").status_code == 200
    assert admin.get("/auditlogview/show/999999999").status_code == 404


def test_only_admins_read_the_log(login_as, api_as) -> None:
    assert login_as("readonly").get("/auditlogview/list/").status_code in (302, 403, 404)
    assert login_as("manager1").get("/auditlogview/list/").status_code in (302, 403, 404)
    client, headers = api_as("manager1")
    assert client.get("/api/v1/audit/", headers=headers).status_code in (401, 403)


def test_nobody_edits_or_deletes_audit_rows_through_the_application(login_as, api_as) -> None:
    record_event("probe")
    db.session.commit()
    row = last_rows(1)[0]
    client, headers = api_as("admin")
    listed = client.get("/api/v1/audit/", headers=headers)
    assert listed.status_code == 200 and listed.json["result"][0]["id"] >= row.id
    got = client.get(f"/api/v1/audit/{row.id}", headers=headers)
    assert got.status_code == 200 and got.json["result"]["action"] == "probe"
    forged = {"action": "forged"}
    assert client.post("/api/v1/audit/", json=forged, headers=headers).status_code in (404, 405)
    assert client.put(f"/api/v1/audit/{row.id}", json=forged, headers=headers).status_code in (404, 405)
    assert client.delete(f"/api/v1/audit/{row.id}", headers=headers).status_code in (404, 405)
    admin = login_as("admin")
    for method, path in (
        ("get", "/auditlogview/add"),
        ("post", "/auditlogview/add"),
        ("get", f"/auditlogview/edit/{row.id}"),
        ("post", f"/auditlogview/edit/{row.id}"),
        ("get", f"/auditlogview/delete/{row.id}"),
        ("post", f"/auditlogview/delete/{row.id}"),
        ("post", "/auditlogview/action_post"),
    ):
        response = getattr(admin, method)(path, data={"action": "forged", "rowid": [row.id]})
        assert response.status_code in (302, 403, 404, 405), (method, path, response.status_code)
    db.session.expire_all()
    assert db.session.get(AuditLog, row.id).action == "probe"
    assert verify(db.session, from_id=row.id).ok
    db.session.rollback()


def test_history_tab_shows_changes_and_respects_data_scope(login_as) -> None:
    rep_a, rep_c = user("rep_a"), user("rep_c")
    mine = Customer(name=unique_name("历史客户"), owner_id=rep_a.id, level="key")
    theirs = Customer(name=unique_name("他部客户"), owner_id=rep_c.id)
    db.session.add_all([mine, theirs])
    db.session.commit()
    mine.level = "normal"
    db.session.commit()
    admin = login_as("admin")
    page = admin.get(f"/customerview/show/{mine.id}").get_data(as_text=True)
    assert 'href="#HistoryTab"' in page
    tab = page.split('id="HistoryTab"')[1]
    assert "修改" in tab and "key" in tab and "normal" in tab
    full = admin.get(f"/customerview/history/{mine.id}")
    assert full.status_code == 200 and "normal" in full.get_data(as_text=True)
    # 审计室 (Read Only, department scope: team1) sees team1's history, not team2's
    auditor = login_as("readonly")
    assert 'href="#HistoryTab"' in auditor.get(f"/customerview/show/{mine.id}").get_data(as_text=True)
    assert auditor.get(f"/customerview/history/{mine.id}").status_code == 200
    assert auditor.get(f"/customerview/history/{theirs.id}").status_code == 404
    # a rep may open the customer but not read the audit log: no tab, no history page
    rep = login_as("rep_a")
    assert 'href="#HistoryTab"' not in rep.get(f"/customerview/show/{mine.id}").get_data(as_text=True)
    assert rep.get(f"/customerview/history/{mine.id}").status_code == 404


def test_history_tab_on_other_entities(login_as) -> None:
    admin = login_as("admin")
    contact_page = admin.get("/contactview/list/")
    assert contact_page.status_code == 200
    department = db.session.scalar(select(Department).limit(1))
    page = admin.get(f"/departmentview/show/{department.id}").get_data(as_text=True)
    assert 'href="#HistoryTab"' in page


def test_chain_does_not_fork_under_concurrent_writers(app) -> None:
    """Writers in separate connections append at once; the head row lock keeps one chain."""
    if db.engine.dialect.name == "sqlite":
        pytest.skip("SQLite serialises writers itself; the race needs a server database")
    start = (db.session.scalar(select(func.max(AuditLog.id))) or 0) + 1
    db.session.rollback()
    owner = user("rep_a").id
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            with app.app_context():
                barrier.wait()
                for step in range(8):
                    db.session.add(Customer(name=unique_name(f"并发{number}-{step}"), owner_id=owner))
                    record_event("probe", details={"writer": number, "step": step})
                    db.session.commit()
                db.session.remove()
        except BaseException as error:  # noqa: BLE001  (reported below)
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    db.session.rollback()  # a new snapshot (MariaDB's repeatable read)
    report = verify(db.session, from_id=start)
    assert report.ok, report.problems
    assert report.checked == 4 * 8 * 2


def test_database_refuses_to_change_audit_rows_on_postgresql() -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the trigger exists on PostgreSQL only")
    record_event("probe")
    db.session.commit()
    row_id = last_rows(1)[0].id
    db.session.rollback()
    for sql in (
        "UPDATE crm_audit_log SET action = 'x' WHERE id = :id",
        "DELETE FROM crm_audit_log WHERE id = :id",
    ):
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as connection:
            connection.execute(text(sql), {"id": row_id})


def test_login_and_failed_login_are_recorded(client) -> None:
    start = db.session.scalar(select(func.max(AuditLog.id))) or 0
    db.session.rollback()
    failed = client.post("/login/", data={"username": "rep_b", "password": "wrong"},
                         environ_base={"REMOTE_ADDR": "10.9.8.7"})
    assert failed.status_code in (200, 302, 401)
    login(client, "rep_b")
    rows = list(db.session.scalars(select(AuditLog).where(AuditLog.id > start).order_by(AuditLog.id)))
    actions = [(row.action, row.username) for row in rows]
    assert ("login_failed", "rep_b") in actions and ("login", "rep_b") in actions
    failure = next(row for row in rows if row.action == "login_failed")
    assert failure.ip == "10.9.8.7"
    # FAB's login bookkeeping (last_login, login_count, fail_login_count) is not a change row
    assert not any(row.action == "update" and row.entity == "ab_user" for row in rows)


def test_bulk_statement_sees_pending_orm_changes_and_records_old_values() -> None:
    customer = Customer(name=unique_name("批量旧值"), owner_id=user("rep_a").id, level="normal")
    db.session.add(customer)
    db.session.commit()
    customer.level = "key"  # pending, flushed before the bulk statement reads the old values
    db.session.execute(
        update(Customer).where(Customer.id == customer.id).values(level="potential")
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    first, second = entity_rows("customer", customer.id)[-2:]
    assert first.changes["level"] == ["normal", "key"]
    assert second.changes["level"] == ["key", "potential"]
    db.session.execute(delete(Customer).where(Customer.id == customer.id))
    db.session.commit()
    gone = entity_rows("customer", customer.id)[-1]
    assert gone.action == "delete" and gone.changes["level"] == ["potential", None]
