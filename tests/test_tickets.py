"""Tickets: opening (numbers, validation, matching the requester), the status flow and its
history, the conversation, files, manual assignment and linking, through the services, the REST
API and the screens."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select

from app.errors import AccessDenied, ValidationFailed
from app.extensions import db
from app.service import (
    add_attachment,
    add_comment,
    assign_ticket,
    change_status,
    conversation,
    create_ticket,
    link_customer,
    next_ticket_number,
)
from models.customers import Contact
from models.service import Ticket, TicketAttachment, TicketCategory, TicketComment, TicketStatusChange
from tests.conftest import unique_mobile, unique_name, user
from tests.login_support import cleanup_users  # noqa: F401 (autouse: the users made here go)
from tests.service_support import (  # noqa: F401 (service_cleanup is autouse)
    GUANGRAO,
    HEKOU,
    category,
    customer,
    rule,
    service_cleanup,
    support_team,
    ticket,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def ticket_count() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Ticket))


def history(item: Ticket) -> list[tuple[str | None, str, int | None]]:
    rows = db.session.scalars(
        select(TicketStatusChange)
        .where(TicketStatusChange.ticket_id == item.id)
        .order_by(TicketStatusChange.id)
    )
    return [(r.from_status, r.to_status, r.changed_by_id) for r in rows]


# --- opening -------------------------------------------------------------------------------------
def test_numbers_count_per_local_day(app: Flask) -> None:
    evening = dt.datetime(2031, 3, 1, 17, 0)  # 01:00 on 2 March in Shanghai
    first = ticket(now=evening)
    second = ticket(now=evening + dt.timedelta(minutes=5))
    assert (first.number, second.number) == ("GD-20310302-0001", "GD-20310302-0002")
    assert ticket(now=dt.datetime(2031, 3, 2, 16, 59)).number == "GD-20310303-0001"
    assert next_ticket_number(db.session, dt.date(2031, 3, 2)) == "GD-20310302-0003"


def test_a_new_ticket_records_its_first_status_and_who_opened_it(app: Flask) -> None:
    agent = user("admin")
    item = ticket(agent, priority="high")
    assert item.status == "new" and item.created_by_id == agent.id
    assert history(item) == [(None, "new", agent.id)]
    assert item.channel == "staff" and item.priority == "high"


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"subject": " "}, "subject"),
        ({"description": ""}, "description"),
        ({"subject": "长" * 201}, "subject"),
        ({"requester_mobile": "12345"}, "requester_mobile"),
        ({"requester_email": "not-an-address"}, "requester_email"),
        ({"priority": "asap"}, "priority"),
        ({"channel": "fax"}, "channel"),
        ({"district_code": 999999}, "district"),
        ({"category_id": 987654}, "category"),
        ({"customer_id": 987654321}, "customer"),
    ],
)
def test_invalid_tickets_are_refused_with_a_message_and_nothing_written(
    app: Flask, values: dict[str, Any], field: str
) -> None:
    before = ticket_count()
    base = {"subject": "发票抬头错误", "description": "请重开发票", "channel": "phone"}
    with pytest.raises(ValidationFailed) as refused:
        create_ticket(db.session, actor=None, **{**base, **values})
    assert refused.value.errors[field][0]
    assert ticket_count() == before


def test_an_inactive_category_is_refused_for_new_tickets(app: Flask) -> None:
    old = TicketCategory(name=unique_name("停用分类"), active=False)
    db.session.add(old)
    db.session.commit()
    with pytest.raises(ValidationFailed) as refused:
        ticket(category_id=old.id)
    assert "category" in refused.value.errors


def test_the_requester_is_matched_by_mobile_or_email(app: Flask) -> None:
    mobile = unique_mobile()
    known = customer(user("rep_a"), mobile=mobile, district_code=HEKOU)
    contact = Contact(customer_id=known.id, name="王经理", email=f"{unique_name('wang')}@example.cn")
    db.session.add(contact)
    db.session.commit()
    spaced = f"+86 {mobile[:3]}-{mobile[3:7]}-{mobile[7:]}"
    by_mobile = ticket(channel="web", requester_name="李先生", requester_mobile=spaced)
    assert (by_mobile.customer_id, by_mobile.match_state, by_mobile.requester_mobile) == (
        known.id,
        "matched",
        mobile,
    )
    assert by_mobile.district_code == HEKOU  # the customer's
    by_email = ticket(channel="email", requester_email=contact.email.upper())
    assert (by_email.customer_id, by_email.contact_id, by_email.match_state) == (
        known.id,
        contact.id,
        "matched",
    )
    stranger = ticket(
        channel="web", requester_name="路人", requester_mobile=unique_mobile(), district_code=GUANGRAO
    )
    assert (stranger.customer_id, stranger.match_state, stranger.district_code) == (
        None,
        "unmatched",
        GUANGRAO,
    )


# --- status --------------------------------------------------------------------------------------
def test_the_status_flow_records_every_change(app: Flask) -> None:
    agent = user("admin")
    item = ticket(agent)
    change_status(db.session, item, "in_progress", agent)
    change_status(db.session, item, "waiting", agent, note="请客户提供照片")
    change_status(db.session, item, "in_progress", agent)
    change_status(db.session, item, "resolved", agent, resolution="补发了货物", resolution_method="reissue")
    db.session.commit()
    assert item.resolved_at is not None and item.resolution_method == "reissue"
    change_status(db.session, item, "reopened", agent, note="客户说仍未收到")
    assert item.reopen_count == 1 and item.resolved_at is None
    change_status(db.session, item, "resolved", agent, resolution="已签收", resolution_method="explanation")
    change_status(db.session, item, "closed", agent)
    db.session.commit()
    assert item.closed_at is not None
    assert [(f, t) for f, t, _by in history(item)] == [
        (None, "new"),
        ("new", "in_progress"),
        ("in_progress", "waiting"),
        ("waiting", "in_progress"),
        ("in_progress", "resolved"),
        ("resolved", "reopened"),
        ("reopened", "resolved"),
        ("resolved", "closed"),
    ]
    assert {by for _f, _t, by in history(item)} == {agent.id}
    notes = db.session.scalars(select(TicketStatusChange.note).where(TicketStatusChange.ticket_id == item.id))
    assert "请客户提供照片" in list(notes)


@pytest.mark.parametrize(
    ("to", "values", "field"),
    [
        ("reopened", {}, "status"),  # a new ticket is not resolved
        ("assigned", {}, "status"),  # assignment only
        ("done", {}, "status"),
        ("resolved", {"resolution_method": "remote"}, "resolution"),
        ("resolved", {"resolution": "已处理"}, "resolution_method"),
        ("resolved", {"resolution": "已处理", "resolution_method": "magic"}, "resolution_method"),
        ("closed", {}, "note"),  # closing an unresolved ticket says why
    ],
)
def test_refused_status_changes(app: Flask, to: str, values: dict[str, Any], field: str) -> None:
    item = ticket()
    with pytest.raises(ValidationFailed) as refused:
        change_status(db.session, item, to, user("admin"), **values)
    assert refused.value.errors[field][0]
    db.session.rollback()
    db.session.refresh(item)
    assert item.status == "new" and len(history(item)) == 1


def test_a_status_change_through_the_edit_api_is_checked_by_the_data_layer(app: Flask) -> None:
    item = ticket()
    item.status = "closed"
    item.status = "reopened"
    with pytest.raises(ValidationFailed) as refused:
        db.session.flush()
    assert "status" in refused.value.errors
    db.session.rollback()


# --- conversation --------------------------------------------------------------------------------
def test_replies_notes_and_the_customers_messages(app: Flask) -> None:
    agent = user("admin")
    item = ticket(agent, requester_name="赵女士")
    add_comment(db.session, item, "内部: 已联系仓库", actor=agent, internal=True)
    assert item.first_response_at is None  # an internal note is no response
    reply = add_comment(db.session, item, "您好,已为您查询物流。", actor=agent)
    assert item.first_response_at == reply.created_at
    first = item.first_response_at
    add_comment(db.session, item, "第二次回复", actor=agent)
    assert item.first_response_at == first
    change_status(db.session, item, "waiting", agent)
    message = add_comment(db.session, item, "照片见附件", from_customer=True)
    assert message.author_name == "赵女士" and message.author_id is None
    assert item.status == "in_progress"
    change_status(db.session, item, "resolved", agent, resolution="已补发", resolution_method="reissue")
    add_comment(db.session, item, "还是没收到", from_customer=True)
    assert item.status == "reopened" and item.reopen_count == 1
    db.session.commit()
    assert history(item)[-1][1:] == ("reopened", None)  # by the customer, not a user
    kinds = [(c.internal, c.from_customer) for c in conversation(db.session, item.id)]
    assert kinds == [(True, False), (False, False), (False, False), (False, True), (False, True)]
    assert [c.internal for c in conversation(db.session, item.id, include_internal=False)] == [False] * 4


def test_refused_comments(app: Flask) -> None:
    item = ticket()
    for kwargs, field in (
        ({"body": "  "}, "body"),
        ({"body": "x", "internal": True, "from_customer": True}, "internal"),
    ):
        with pytest.raises(ValidationFailed) as refused:
            add_comment(db.session, item, kwargs.pop("body"), **kwargs)
        assert refused.value.errors[field][0]
    change_status(db.session, item, "closed", None, note="重复")
    with pytest.raises(ValidationFailed):
        add_comment(db.session, item, "还在吗", from_customer=True)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).where(TicketComment.ticket_id == item.id)) == 0


# --- assignment by hand, linking -----------------------------------------------------------------
def test_manual_assignment_taking_and_unassigning(app: Flask) -> None:
    team, (a, b) = support_team(app, 2)
    item = ticket()
    assign_ticket(db.session, item, user_id=a.id, department_id=None, actor=user("admin"))
    db.session.commit()
    assert (item.owner_id, item.department_id, item.status) == (a.id, team.id, "assigned")
    assert item.assignment_rule_id is None
    assign_ticket(db.session, item, user_id=None, department_id=team.id, actor=user("admin"))
    db.session.commit()
    assert (item.owner_id, item.department_id, item.status) == (None, team.id, "new")
    assign_ticket(db.session, item, user_id=b.id, department_id=None, actor=b)  # b takes it from the queue
    db.session.commit()
    assert (item.owner_id, item.status) == (b.id, "assigned")
    with pytest.raises(ValidationFailed) as refused:
        assign_ticket(db.session, item, user_id=None, department_id=None, actor=user("admin"))
    assert "owner" in refused.value.errors
    a.active = False
    db.session.commit()
    with pytest.raises(ValidationFailed):
        assign_ticket(db.session, item, user_id=a.id, department_id=None, actor=user("admin"))


def test_linking_an_unmatched_ticket_to_a_customer(app: Flask) -> None:
    item = ticket(channel="web", requester_mobile=unique_mobile(), requester_name="陌生人")
    assert item.match_state == "unmatched"
    owner = user("rep_a")
    found = customer(owner, district_code=GUANGRAO)
    other = customer(owner)
    stranger = Contact(customer_id=other.id, name="别家联系人")
    db.session.add(stranger)
    db.session.commit()
    with pytest.raises(ValidationFailed) as refused:
        link_customer(db.session, item, found.id, stranger.id, user("admin"))
    assert "contact" in refused.value.errors
    db.session.rollback()
    link_customer(db.session, item, found.id, None, user("admin"))
    db.session.commit()
    assert (item.customer_id, item.match_state, item.district_code) == (found.id, "linked", GUANGRAO)


def test_attachments_are_checked(app: Flask) -> None:
    item = ticket()
    saved = add_attachment(db.session, item, io.BytesIO(PNG), "破损.png", actor=user("admin"))
    assert (saved.filename, saved.size) == ("破损.png", len(PNG))
    for name, content in (("x.exe", b"MZ" + b"\x00" * 10), ("fake.png", b"not a png at all"), ("e.png", b"")):
        with pytest.raises(ValidationFailed) as refused:
            add_attachment(db.session, item, io.BytesIO(content), name, actor=user("admin"))
        assert refused.value.errors["file"][0]
    db.session.commit()
    assert db.session.scalar(select(func.count()).where(TicketAttachment.ticket_id == item.id)) == 1


# --- REST ----------------------------------------------------------------------------------------
def test_rest_create_act_and_read(app: Flask, api_as) -> None:
    _team, (agent,) = support_team(app, 1)
    rule(district_codes=[HEKOU], target_user_id=agent.id, position=10)
    client, headers = api_as("admin")
    delays = category("配送延迟")
    created = client.post(
        "/api/v1/ticket/",
        json={
            "subject": "货物延迟",
            "description": "十天未到货",
            "category": delays.id,
            "district": HEKOU,
            "priority": "high",
            "requester_name": "钱先生",
        },
        headers=headers,
    )
    assert created.status_code == 201, created.json
    pk, body = created.json["id"], created.json["result"]
    assert body["number"].startswith("GD-") and body["status"] == "assigned"
    assert body["owner"]["id"] == agent.id and body["assignment_rule"]["id"]
    refused = client.post("/api/v1/ticket/", json={"subject": "", "description": "x"}, headers=headers)
    assert refused.status_code == 400 and "subject" in refused.json["message"]
    status = client.post(f"/api/v1/ticket/{pk}/status", json={"status": "resolved"}, headers=headers)
    assert status.status_code == 400 and {"resolution", "resolution_method"} <= set(status.json["message"])
    wrong = client.post(f"/api/v1/ticket/{pk}/status", json={"statos": "x"}, headers=headers)
    assert wrong.status_code == 400
    reply = client.post(f"/api/v1/ticket/{pk}/comments", json={"body": "已催促物流"}, headers=headers)
    assert reply.status_code == 201 and reply.json["result"]["internal"] is False
    note = client.post(
        f"/api/v1/ticket/{pk}/comments", json={"body": "物流单号 123", "internal": True}, headers=headers
    )
    assert note.status_code == 201
    empty = client.post(f"/api/v1/ticket/{pk}/comments", json={"body": " "}, headers=headers)
    assert empty.status_code == 400 and "body" in empty.json["message"]
    listed = client.get(f"/api/v1/ticket/{pk}/comments", headers=headers).json
    assert [c["internal"] for c in listed["result"]] == [False, True] and listed["result"][0][
        "author"
    ] == "admin"
    moved = client.post(
        f"/api/v1/ticket/{pk}/status",
        json={"status": "resolved", "resolution": "已送达", "resolution_method": "explanation"},
        headers=headers,
    )
    assert moved.status_code == 200 and moved.json["result"]["status"] == "resolved"
    assert moved.json["result"]["first_response_at"]
    steps = client.get(f"/api/v1/ticket/{pk}/history", headers=headers).json["result"]
    assert [s["to_status"] for s in steps] == ["assigned", "resolved"]
    upload = client.post(
        f"/api/v1/ticket/{pk}/attachments",
        data={"file": (io.BytesIO(PNG), "签收单.png")},
        headers=headers,
        content_type="multipart/form-data",
    )
    assert upload.status_code == 201, upload.json
    file_id = upload.json["id"]
    download = client.get(f"/api/v1/ticket/{pk}/attachments/{file_id}", headers=headers)
    assert download.status_code == 200 and download.data == PNG
    assert client.get(f"/api/v1/ticketattachment/{file_id}/file", headers=headers).data == PNG
    bad = client.post(
        f"/api/v1/ticket/{pk}/attachments",
        data={"file": (io.BytesIO(b"MZ\x90\x00"), "tool.exe")},
        headers=headers,
        content_type="multipart/form-data",
    )
    assert bad.status_code == 400 and "file" in bad.json["message"]
    assign = client.post(f"/api/v1/ticket/{pk}/assign", json={}, headers=headers)
    assert assign.status_code == 400


def test_rest_list_is_the_queue_by_time_left(app: Flask, api_as) -> None:
    client, headers = api_as("admin")
    late, soon, none = ticket(), ticket(), ticket()
    late.resolution_due = dt.datetime(2031, 1, 3)
    soon.resolution_due = dt.datetime(2031, 1, 2)
    none.resolution_due = None
    db.session.commit()
    ids = {late.id, soon.id, none.id}
    rows = client.get("/api/v1/ticket/?q=(page_size:100)", headers=headers).json["result"]
    mine = [r["id"] for r in rows if r["id"] in ids]
    assert mine == [soon.id, late.id, none.id]


def test_rest_edit_keeps_the_number_and_category_validation(app: Flask, api_as) -> None:
    client, headers = api_as("admin")
    item = ticket()
    changed = client.put(f"/api/v1/ticket/{item.id}", json={"priority": "urgent"}, headers=headers)
    assert changed.status_code == 200 and changed.json["result"]["priority"] == "urgent"
    refused = client.put(f"/api/v1/ticket/{item.id}", json={"priority": "now"}, headers=headers)
    assert refused.status_code == 400 and "priority" in refused.json["message"]
    name = unique_name("分类")
    assert client.post("/api/v1/ticketcategory/", json={"name": name}, headers=headers).status_code == 201
    twice = client.post("/api/v1/ticketcategory/", json={"name": name}, headers=headers)
    assert twice.status_code == 400 and "name" in twice.json["message"]


def test_the_conversation_is_one_query_however_long(app: Flask, api_as) -> None:
    agent = user("admin")
    item = ticket(agent)
    for i in range(200):
        db.session.add(
            TicketComment(ticket_id=item.id, author_id=agent.id, body=f"第 {i} 条", internal=i % 5 == 0)
        )
    db.session.commit()
    client, headers = api_as("admin")
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        response = client.get(f"/api/v1/ticket/{item.id}/comments", headers=headers)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert response.json["count"] == 200
    assert len([s for s in statements if "FROM crm_ticket_comment" in s]) == 1
    assert not [
        s for s in statements if s.lstrip().startswith("SELECT ab_user") and "WHERE ab_user.id = " in s
    ][1:]


# --- screens -------------------------------------------------------------------------------------
def test_ticket_screens(app: Flask, login_as) -> None:
    client = login_as("admin")
    delays = category("配送延迟")
    added = client.post(
        "/ticketview/add",
        data={
            "subject": "屏幕新建工单",
            "description": "第一行\n第二行",
            "category": str(delays.id),
            "priority": "normal",
            "channel": "phone",
            "requester_name": "孙先生",
        },
    )
    assert added.status_code == 302, added.get_data(as_text=True)[:3000]
    item = db.session.scalar(select(Ticket).where(Ticket.subject == "屏幕新建工单"))
    assert item.number.startswith("GD-") and history(item) == [(None, "new", user("admin").id)]
    before = ticket_count()
    bad = client.post(
        "/ticketview/add",
        data={
            "subject": "错号",
            "description": "x",
            "priority": "normal",
            "channel": "phone",
            "requester_mobile": "123",
        },
    )
    assert bad.status_code == 200 and "手机号应为 11 位数字" in bad.get_data(as_text=True)
    assert ticket_count() == before
    # the queue by time left: other tests' tickets may fill the first page, so filter by number
    listed = client.get(f"/ticketview/list/?_flt_0_number={item.number}").get_data(as_text=True)
    assert item.number in listed
    assert (
        client.post(f"/ticketview/comment/{item.id}", data={"body": "内部核对", "internal": "1"}).status_code
        == 302
    )
    assert client.post(f"/ticketview/comment/{item.id}", data={"body": "您好,马上处理"}).status_code == 302
    assert client.post(f"/ticketview/take/{item.id}").status_code == 302
    refused = client.post(f"/ticketview/status/{item.id}", data={"status": "resolved"}, follow_redirects=True)
    assert "解决工单请填写处理结果" in refused.get_data(as_text=True)
    done = client.post(
        f"/ticketview/status/{item.id}",
        data={"status": "resolved", "resolution": "已处理", "resolution_method": "remote"},
    )
    assert done.status_code == 302
    upload = client.post(
        f"/ticketview/attach/{item.id}",
        data={"file": (io.BytesIO(PNG), "现场.png")},
        content_type="multipart/form-data",
    )
    assert upload.status_code == 302
    page = client.get(f"/ticketview/show/{item.id}").get_data(as_text=True)
    assert "crm-comment-internal" in page and "内部核对" in page and "马上处理" in page
    assert "现场.png" in page and "已解决" in page
    attachment = db.session.scalar(select(TicketAttachment).where(TicketAttachment.ticket_id == item.id))
    assert client.get(f"/ticketview/file/{item.id}/{attachment.id}").data == PNG
    mine = client.get("/myticketview/list/").get_data(as_text=True)
    assert item.number not in mine  # resolved: not in the open queue
    db.session.refresh(item)
    assert (item.status, item.owner_id) == ("resolved", user("admin").id)
    assert client.get("/ticketcategoryview/list/").status_code == 200
    assert client.get("/assignmentruleview/add").status_code == 200


def test_my_open_tickets(app: Flask, login_as) -> None:
    admin = user("admin")
    mine, others = ticket(), ticket()
    assign_ticket(db.session, mine, user_id=admin.id, department_id=None, actor=admin)
    db.session.commit()
    page = login_as("admin").get("/myticketview/list/").get_data(as_text=True)
    assert mine.number in page and others.number not in page


def test_a_sales_rep_reads_but_does_not_work_tickets(app: Flask, api_as) -> None:
    item = ticket(customer_id=customer(user("rep_a")).id)
    client, headers = api_as("rep_a")
    assert client.get(f"/api/v1/ticket/{item.id}", headers=headers).status_code == 200
    posted = client.post(f"/api/v1/ticket/{item.id}/comments", json={"body": "hi"}, headers=headers)
    assert posted.status_code in (401, 403)
    with pytest.raises(AccessDenied):
        change_status(db.session, item, "in_progress", user("rep_a"))


def test_custom_fields_on_tickets(app: Flask, api_as, login_as, clean_custom_fields) -> None:
    from tests.customfield_support import define

    field = define(api_as, entity="ticket", field_type="select", choices=["线上", "线下"], required=True)
    name = field["api_name"]
    client, headers = api_as("admin")
    base = {"subject": "自定义字段", "description": "带自定义字段的工单"}
    missing = client.post("/api/v1/ticket/", json=base, headers=headers)
    assert missing.status_code == 400 and f"custom.{name}" in str(missing.json["message"])
    wrong = client.post("/api/v1/ticket/", json={**base, "custom": {name: "其他"}}, headers=headers)
    assert wrong.status_code == 400
    created = client.post("/api/v1/ticket/", json={**base, "custom": {name: "线下"}}, headers=headers)
    assert created.status_code == 201, created.json
    assert created.json["result"]["custom"] == {name: "线下"}
    with pytest.raises(ValidationFailed):
        create_ticket(db.session, actor=None, channel="web", custom={name: "其他"}, **base)
    db.session.rollback()
    assert "测试字段" in login_as("admin").get("/ticketview/add").get_data(as_text=True)


def test_two_concurrent_tickets_get_consecutive_numbers(app: Flask) -> None:
    """The second writer reads the day's last number while the first one's ticket is not yet
    committed: it must wait (SQLite's write lock) or take the next number when the unique index
    refuses its first choice (PostgreSQL, MariaDB)."""
    import threading
    import time

    from sqlalchemy.orm import Session

    now = dt.datetime(2032, 5, 5, 3, 0)
    numbers: dict[str, str] = {}
    errors: list[BaseException] = []
    first_flushed, release = threading.Event(), threading.Event()

    def open_one(name: str, hold: bool) -> None:
        try:
            with app.app_context():
                session = Session(bind=db.engine)
                try:
                    item = create_ticket(
                        session,
                        subject=f"并发 {name}",
                        description="同时提交",
                        channel="web",
                        actor=None,
                        now=now,
                    )
                    numbers[name] = item.number
                    if hold:
                        first_flushed.set()
                        release.wait(10)
                    session.commit()
                finally:
                    session.close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    first = threading.Thread(target=open_one, args=("first", True))
    first.start()
    assert first_flushed.wait(20)
    second = threading.Thread(target=open_one, args=("second", False))
    second.start()
    time.sleep(0.5)  # the second reaches the lock or the unique index meanwhile
    release.set()
    first.join(30)
    second.join(30)
    assert errors == []
    assert sorted(numbers.values()) == ["GD-20320505-0001", "GD-20320505-0002"]
    db.session.rollback()
    stored = db.session.scalars(select(Ticket.number).where(Ticket.number.like("GD-20320505-%"))).all()
    assert sorted(stored) == ["GD-20320505-0001", "GD-20320505-0002"]


def test_the_list_filters_offer_the_service_area_not_every_customer(app: Flask, login_as) -> None:
    from tests.service_support import DONGYING_CITY

    _team, (agent,) = support_team(app, 1)
    rule(district_codes=[DONGYING_CITY], target_user_id=agent.id, position=10)
    known = customer(user("rep_a"))
    page = login_as("admin").get("/ticketview/list/").get_data(as_text=True)
    assert "370505" in page and "110101" not in page  # 垦利区 of the rules' city, not 东城区 of Beijing
    assert known.name not in page  # no customer select in the search form
