"""Audit completeness: for every entity, a create, an edit and a delete through the API leave
exactly the expected audit rows (action, entity, id, the changed fields old -> new), no more and
no fewer; afterwards the chain verifies clean, and a row edited by raw SQL is caught and named."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from app.audit import verify
from app.extensions import db
from models.audit import AuditLog
from models.sales import Pipeline, Stage
from models.security import Department
from tests.conftest import token_for, unique_mobile, unique_name, user

_n = iter(range(1, 1000))
Body = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class Case:
    """One entity: who writes it, where, with what, and which other rows each step may add."""

    username: str
    path: str  # API route
    entity: str  # the audit log's entity name (the table without crm_)
    create: Body
    edit: dict[str, Any]  # field -> new value (the API name equals the column here)
    #: (action, entity) rows besides the record's own, per step: the expected side effects
    side: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    #: columns whose audit key differs from the API field (a relation -> its foreign key)
    columns: dict[str, str] = field(default_factory=dict)


def _due(days: int) -> str:
    return (dt.date.today() + dt.timedelta(days=days)).isoformat()


CASES: dict[str, Case] = {
    "customer": Case(
        "rep_a", "/api/v1/customer", "customer",
        lambda ctx: {"name": unique_name("审计完整客户"), "occupation": "采购"},
        {"occupation": "总经理"},
    ),
    "contact": Case(
        "rep_a", "/api/v1/contact", "contact",
        lambda ctx: {"customer": ctx["customer"], "name": "审计联系人", "title": "经理"},
        {"title": "总监"}, columns={"customer": "customer_id"},
    ),
    "lead": Case(
        "rep_a", "/api/v1/lead", "lead",
        lambda ctx: {"name": "审计线索", "mobile": unique_mobile(), "company": "甲公司"},
        {"company": "乙公司"},
    ),
    "opportunity": Case(
        "rep_a", "/api/v1/opportunity", "opportunity",
        lambda ctx: {"name": "审计商机", "customer": ctx["customer"], "pipeline": ctx["pipeline"],
                     "amount": 1000},
        {"name": "审计商机(改)"}, columns={"customer": "customer_id", "pipeline": "pipeline_id"},
        # the stage history's first entry comes and goes with the opportunity
        side={"create": [("insert", "stage_change")], "delete": [("delete", "stage_change")]},
    ),
    "product": Case(
        "manager1", "/api/v1/product", "product",
        lambda ctx: {"sku": f"AUD-{os.getpid()}-{ctx['n']}", "name": "审计产品", "unit": "吨"},
        {"name": "审计产品(改)"},
    ),
    "interaction": Case(
        "rep_a", "/api/v1/interaction", "interaction",
        lambda ctx: {"customer": ctx["customer"], "content": "电话沟通"},
        {"content": "电话沟通(补记)"}, columns={"customer": "customer_id"},
        # the customer's last follow-up time, moved by the new one and recomputed on delete
        side={"create": [("update", "customer")], "delete": [("update", "customer")]},
    ),
    "task": Case(
        "rep_a", "/api/v1/task", "task",
        lambda ctx: {"title": "审计任务", "due_at": f"{_due(3)} 10:00:00"},
        {"title": "审计任务(改)"},
    ),
    "order": Case(
        "rep_a", "/api/v1/order", "order",
        lambda ctx: {"title": unique_name("审计订单"), "customer": ctx["customer"],
                     "lines": [{"description": "液碱", "quantity": 1, "unit_price": 100}]},
        {"title": "审计订单(改)"}, columns={"customer": "customer_id"},
        side={"create": [("insert", "order_line")], "delete": [("delete", "order_line")]},
    ),
    "payment plan": Case(
        "finance", "/api/v1/paymentplan", "payment_plan",
        lambda ctx: {"order": ctx["order"], "planned_amount": 100, "planned_date": _due(30)},
        {"notes": "分期"}, columns={"order": "order_id"},
    ),
    "payment": Case(
        "finance", "/api/v1/payment", "payment",
        lambda ctx: {"order": ctx["order"], "amount": 10, "received_on": dt.date.today().isoformat()},
        {"notes": "电汇"}, columns={"order": "order_id"},
    ),
    "invoice": Case(
        "finance", "/api/v1/invoice", "invoice",
        lambda ctx: {"order": ctx["order"], "amount": 10, "kind": "normal"},
        {"notes": "普票"}, columns={"order": "order_id"},
    ),
    "pool": Case(
        "admin", "/api/v1/pool", "pool",
        lambda ctx: {"name": unique_name("审计公海"), "active": False},
        {"description": "只用于审计测试"},
    ),
    "approval flow": Case(
        "admin", "/api/v1/approval_flow", "approval_flow",
        lambda ctx: {"name": unique_name("审计流程"), "document": "order", "active": False,
                     "position": 1000},
        {"description": "只用于审计测试"},
    ),
    "target": Case(
        "manager1", "/api/v1/target", "sales_target",
        lambda ctx: {"user": ctx["rep_a"], "period": "month", "period_start": f"20{40 + ctx['n']}-05-01",
                     "metric": "contract", "amount": 1000},
        {"amount": 2000}, columns={"user": "user_id"},
    ),
    "custom field": Case(
        "admin", "/api/v1/customfield", "custom_field",
        lambda ctx: {"entity": "lead", "label_zh": "审计字段", "field_type": "text",
                     "api_name": f"aud{os.getpid()}_{ctx['n']}"},
        {"label_zh": "审计字段(改)"},
    ),
    "department": Case(
        "admin", "/api/v1/department", "department",
        lambda ctx: {"name": unique_name("审计部门"), "parent": ctx["root"]},
        {"name": "审计部门(改)"}, columns={"parent": "parent_id"},
    ),
    "field rule": Case(
        "admin", "/api/v1/fieldrule", "field_rule",
        lambda ctx: {"role": ctx["marketing"], "entity": "lead", "field": "notes", "mode": "hidden"},
        {"mode": "read_only"}, columns={"role": "role_id"},
    ),
    "user": Case(
        "admin", "/api/v1/security/users", "ab_user",
        lambda ctx: {"first_name": "审计", "last_name": "用户", "username": f"audit_{os.getpid()}_{ctx['n']}",
                     "email": f"audit_{os.getpid()}_{ctx['n']}@test.example.cn", "active": True,
                     "roles": [ctx["marketing"]], "password": "Audit-Passw0rd!"},
        {"first_name": "审计改"},
    ),
}


def max_id() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.max(AuditLog.id))) or 0


def rows_after(start: int) -> list[AuditLog]:
    db.session.rollback()
    return list(db.session.scalars(select(AuditLog).where(AuditLog.id > start).order_by(AuditLog.id)))


@pytest.fixture(scope="module")
def context(app: Flask) -> dict[str, Any]:
    """What the records hang on: a customer, an approved order, a pipeline, a role, the root."""
    with app.app_context():
        client = app.test_client()
        rep = token_for(client, "rep_a")
        customer = client.post("/api/v1/customer/", json={"name": unique_name("审计上级客户")}, headers=rep)
        assert customer.status_code == 201, customer.json
        order = client.post(
            "/api/v1/order/",
            json={"title": unique_name("审计上级订单"), "customer": customer.json["id"],
                  "lines": [{"description": "液碱", "quantity": 1, "unit_price": 10000}]},
            headers=rep,
        )  # fmt: skip
        assert order.status_code == 201, order.json
        submitted = client.post(f"/api/v1/order/{order.json['id']}/submit", headers=rep)
        assert submitted.json["result"]["status"] == "approved", submitted.json
        flow = Pipeline(name=f"审计流程{os.getpid()}", position=1000)  # never the default
        flow.stages = [Stage(name="初步接触", position=0, probability=10)]
        db.session.add(flow)
        db.session.commit()
        role_model = type(user("admin").roles[0])
        return {
            "customer": customer.json["id"],
            "order": order.json["id"],
            "pipeline": flow.id,
            "rep_a": user("rep_a").id,
            "marketing": db.session.scalar(select(role_model.id).where(role_model.name == "Marketing")),
            "root": db.session.scalar(select(Department.id).where(Department.parent_id.is_(None))),
            "first": max_id() + 1,
        }


def same(recorded: Any, sent: Any) -> bool:
    """A value as the log keeps it (JSON: decimals and dates as text) against what the API got."""
    if isinstance(sent, bool) or sent is None or isinstance(recorded, bool):
        return recorded == sent
    if isinstance(sent, int | float):
        return Decimal(str(recorded)) == Decimal(str(sent))
    if isinstance(recorded, str) and isinstance(sent, str):  # datetimes: ISO 'T' or a space
        return recorded.replace("T", " ") == sent.replace("T", " ")
    return recorded == sent


def check_own_row(row: AuditLog, case: Case, action: str, pk: int, actor: str) -> None:
    assert (row.action, row.entity, row.entity_id) == (action, case.entity, str(pk))
    assert row.username == actor and row.user_id == user(actor).id and row.ip == "127.0.0.1"


def check_side_rows(rows: list[AuditLog], expected: list[tuple[str, str]], step: str) -> None:
    found = sorted((row.action, row.entity) for row in rows)
    assert found == sorted(expected), (step, found)


#: API fields that are not one column of the record's row (nested children, relations, secrets)
NOT_A_COLUMN = {"lines", "roles", "password"}


@pytest.mark.parametrize("name", list(CASES))
def test_create_edit_delete_leave_exactly_their_rows(app: Flask, context: dict[str, Any], name: str) -> None:
    case = CASES[name]
    client = app.test_client()
    headers = token_for(client, case.username)
    body = case.create({**context, "n": next(_n)})

    # --- create: one insert row with every field sent as None -> value, plus the side effects
    start = max_id()
    created = client.post(f"{case.path}/", json=body, headers=headers)
    assert created.status_code == 201, created.json
    pk = created.json["id"]
    own, *side = rows_after(start)
    check_own_row(own, case, "insert", pk, case.username)
    assert all(old in (None, []) for old, _new in own.changes.values()), own.changes  # [] : roles
    for api_field, value in body.items():
        if api_field in NOT_A_COLUMN:
            continue
        column = case.columns.get(api_field, api_field)
        recorded = own.changes.get(column)
        assert recorded is not None and same(recorded[1], value), (column, recorded)
    if "password" in body:
        assert own.changes["password"] == [None, "***"]
    if "roles" in body:
        assert own.changes["roles"] == [[], ["Marketing"]]
    check_side_rows(side, case.side.get("create", []), "create")

    # --- edit: exactly one row with exactly the changed fields, old -> new
    start = max_id()
    edited = client.put(f"{case.path}/{pk}", json=case.edit, headers=headers)
    assert edited.status_code == 200, edited.json
    rows = rows_after(start)
    assert len(rows) == 1 + len(case.side.get("edit", [])), [(r.action, r.entity, r.changes) for r in rows]
    own, *side = rows
    check_own_row(own, case, "update", pk, case.username)
    assert set(own.changes) == {case.columns.get(f, f) for f in case.edit}, own.changes
    for api_field, new in case.edit.items():
        old, recorded = own.changes[case.columns.get(api_field, api_field)]
        assert same(recorded, new), (api_field, recorded)
        assert (old is None) if api_field not in body else same(old, body[api_field]), (api_field, old)
    check_side_rows(side, case.side.get("edit", []), "edit")

    # --- delete: one delete row with the last values -> None, plus the children going with it
    start = max_id()
    deleted = client.delete(f"{case.path}/{pk}", headers=headers)
    assert deleted.status_code == 200, deleted.json
    rows = rows_after(start)  # a side effect may be flushed first (a customer's last follow-up)
    (own,) = [row for row in rows if (row.entity, row.entity_id) == (case.entity, str(pk))]
    side = [row for row in rows if row is not own]
    check_own_row(own, case, "delete", pk, case.username)
    assert all(new is None for _old, new in own.changes.values()), own.changes
    for api_field, value in case.edit.items():
        assert same(own.changes[case.columns.get(api_field, api_field)][0], value)
    assert own.changes["id"] == [pk, None]
    check_side_rows(side, case.side.get("delete", []), "delete")


def tamper(sql: str, **params: object) -> None:
    """As a DBA would: straight SQL on its own connection (PostgreSQL's guard trigger off)."""
    with db.engine.begin() as connection:
        postgresql = connection.dialect.name == "postgresql"
        if postgresql:
            connection.exec_driver_sql("ALTER TABLE crm_audit_log DISABLE TRIGGER crm_audit_log_readonly")
        connection.execute(text(sql), params)
        if postgresql:
            connection.exec_driver_sql("ALTER TABLE crm_audit_log ENABLE TRIGGER crm_audit_log_readonly")


def test_chain_verifies_clean_and_a_raw_sql_edit_is_named(app: Flask, context: dict[str, Any]) -> None:
    """Runs after the cases above (file order): their rows, and everything since, chain cleanly."""
    start = context["first"]
    db.session.rollback()
    clean = verify(db.session, from_id=start)
    db.session.rollback()
    assert clean.ok, clean.problems
    assert clean.checked >= 3 * len(CASES)
    victim = db.session.scalar(
        select(AuditLog.id).where(AuditLog.id >= start, AuditLog.action == "update").order_by(AuditLog.id)
    )
    original = db.session.get(AuditLog, victim).username
    db.session.rollback()
    tamper("UPDATE crm_audit_log SET username = 'mallory' WHERE id = :id", id=victim)
    try:
        report = verify(db.session, from_id=start)
        db.session.rollback()
        assert not report.ok
        named = [problem for problem in report.problems if f"#{victim} " in problem and "被修改" in problem]
        assert named, report.problems
        runner = app.test_cli_runner()
        result = runner.invoke(args=["crm", "audit", "verify", "--from-id", str(start)])
        assert result.exit_code == 1 and f"#{victim}" in result.output, result.output
    finally:
        # put the row back as it was: the chain is whole again for the other test files
        tamper("UPDATE crm_audit_log SET username = :name WHERE id = :id", name=original, id=victim)
    again = verify(db.session, from_id=start)
    db.session.rollback()
    assert again.ok, again.problems
