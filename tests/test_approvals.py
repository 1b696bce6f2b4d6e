"""Approvals: chains of every approver kind, 会签 and 或签, conditions on a column and on a custom
field, no flow (approved at once), rejection, send-back and resubmission, who may decide (403,
409), the submitter never approving their own request, notifications, data scope, flow
validation, screens, and one contract end to end through the orders module's registration."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from flask_appbuilder.security.sqla.models import Role
from sqlalchemy import delete, func, select

from app import approvals
from app.approvals import DocumentKind, record_field, submit, waiting_for
from app.errors import Conflict, ValidationFailed
from app.extensions import db
from models.approvals import ApprovalDecision, ApprovalFlow, ApprovalRequest, ApprovalStep
from models.customers import Customer
from models.notifications import Notification, OutboxMessage
from models.orders import Order, OrderLine
from tests.conftest import PASSWORD, unique_name, user
from tests.customfield_support import define

_numbers = itertools.count(1)


# --- a document kind over the real Order model ---------------------------------------------------------
def _submitted(session: Any, order: Order) -> None:
    order.status = "pending"
    session.flush()


def _approved(session: Any, order: Order, when: dt.datetime) -> None:
    order.status, order.approved_at = "approved", when
    session.flush()


def _rejected(session: Any, order: Order, reason: str, returned: bool) -> None:
    """Sent back: a draft again; rejected: voided with the approver's reason (tells them apart)."""
    if returned:
        order.status = "draft"
    else:
        order.status, order.void_reason = "voided", reason[:255]
    session.flush()


TEST_KIND = DocumentKind(
    "order",
    Order,
    title=lambda order: f"合同 {order.number}",
    amount=lambda order: order.total_amount,
    field_value=record_field,
    on_submitted=_submitted,
    on_approved=_approved,
    on_rejected=_rejected,
)


@pytest.fixture()
def kind() -> Iterator[DocumentKind]:
    """The test kind stands in for "order"; flows and requests made by the test go afterwards."""
    previous = approvals.DOCUMENT_KINDS.get("order")
    approvals.register_document(TEST_KIND)
    yield TEST_KIND
    if previous is not None:
        approvals.register_document(previous)
    else:
        approvals.DOCUMENT_KINDS.pop("order", None)
    forget_flows()


def forget_flows() -> None:
    """Remove this process's test flows with their requests (other tests submit orders too)."""
    db.session.rollback()
    flows = [
        row.id
        for row in db.session.scalars(
            select(ApprovalFlow).where(ApprovalFlow.name.like(f"测试{os.getpid()}-%"))
        )
    ]
    db.session.execute(delete(ApprovalDecision).where(
        ApprovalDecision.request_id.in_(select(ApprovalRequest.id).where(ApprovalRequest.flow_id.in_(flows)))
    ))  # fmt: skip
    db.session.execute(delete(ApprovalRequest).where(ApprovalRequest.flow_id.in_(flows)))
    db.session.execute(delete(ApprovalStep).where(ApprovalStep.flow_id.in_(flows)))
    db.session.execute(delete(ApprovalFlow).where(ApprovalFlow.id.in_(flows)))
    db.session.commit()


@pytest.fixture(scope="module")
def second_finance(app) -> str:
    """A second Finance user, so that 或签 and 会签 over the role have two approvers."""
    with app.app_context():
        sm = app.appbuilder.sm
        name = "finance_b"
        if sm.find_user(username=name) is None:
            sm.add_user(name, name, "Test", f"{name}@test.example.cn", sm.find_role("Finance"), PASSWORD)
            db.session.commit()
        return name


@pytest.fixture(scope="module")
def customer_id(app) -> int:
    with app.app_context():
        customer = Customer(name=unique_name("审批客户"), owner_id=user("rep_a").id)
        db.session.add(customer)
        db.session.commit()
        return customer.id


def flow(
    *steps: dict[str, Any], conditions: list[dict[str, Any]] | None = None, position: int = -1000
) -> ApprovalFlow:
    """A flow for orders, positioned before any other, with the given steps in order."""
    item = ApprovalFlow(
        name=f"测试{os.getpid()}-{next(_numbers)}",
        document="order",
        position=position,
        conditions=conditions or [],
        steps=[ApprovalStep(position=i, **{"mode": "any", **step}) for i, step in enumerate(steps, start=1)],
    )
    db.session.add(item)
    db.session.commit()
    return item


def role_id(name: str) -> int:
    return db.session.execute(select(Role.id).where(Role.name == name)).scalar_one()


def order(customer_id: int, owner: str = "rep_a", amount: str = "150000", **values: Any) -> Order:
    """A draft order with one line, built through the models."""
    item = Order(
        number=f"T{os.getpid()}-{next(_numbers)}",
        title="测试合同",
        kind="contract",
        customer_id=customer_id,
        owner_id=user(owner).id,
        total_amount=Decimal(amount),
        lines=[OrderLine(position=1, description="液碱", quantity=Decimal(1), unit_price=Decimal(amount))],
        **values,
    )
    db.session.add(item)
    db.session.commit()
    return item


def send(record: Order, username: str = "rep_a") -> ApprovalRequest | None:
    request = submit(db.session, "order", record, user(username))
    db.session.commit()
    return request


def waiting(request: ApprovalRequest) -> set[str]:
    db.session.expire_all()
    return {
        d.approver.username
        for d in db.session.scalars(
            select(ApprovalDecision).where(
                ApprovalDecision.request_id == request.id, ApprovalDecision.decision == "waiting"
            )
        )
    }


def act(api_as: Any, username: str, request_id: int, action: str = "approve", **body: Any) -> Any:
    client, headers = api_as(username)
    return client.post(f"/api/v1/approval/{request_id}/{action}", json=body, headers=headers)


def status_of(request_id: int) -> str:
    db.session.expire_all()
    return db.session.get(ApprovalRequest, request_id).status


# --- chains ----------------------------------------------------------------------------------------------
def test_superior_then_finance_any_one(kind, api_as, customer_id, second_finance) -> None:
    finance = role_id("Finance")
    flow({"approver_kind": "superior"}, {"approver_kind": "role", "role_id": finance, "mode": "any"})
    contract = order(customer_id)
    request = send(contract)
    assert request is not None and request.status == "pending"
    assert request.owner_id == user("rep_a").id and request.amount == Decimal("150000")
    assert db.session.get(Order, contract.id).status == "pending"
    assert waiting(request) == {"manager1"}
    # the approver is told in-app and by e-mail
    told = db.session.scalars(select(Notification).where(Notification.user_id == user("manager1").id)).all()
    assert any(request.title in n.title for n in told)
    mails = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.to_address == "manager1@test.example.cn")
    )
    assert any(request.title in m.subject for m in mails)

    assert act(api_as, "manager1", request.id).status_code == 200
    assert waiting(request) == {"finance", second_finance}
    assert status_of(request.id) == "pending"
    assert act(api_as, second_finance, request.id, comment="同意").status_code == 200
    assert status_of(request.id) == "approved"
    assert waiting(request) == set()
    decisions = {
        (d.approver.username, d.decision)
        for d in db.session.scalars(select(ApprovalDecision).where(ApprovalDecision.request_id == request.id))
    }
    assert decisions == {("manager1", "approved"), (second_finance, "approved"), ("finance", "skipped")}
    assert db.session.get(Order, contract.id).status == "approved"
    assert db.session.get(Order, contract.id).approved_at is not None
    # the submitter hears of it; finance, skipped, cannot decide any more
    results = db.session.scalars(select(Notification.title).where(Notification.user_id == user("rep_a").id))
    assert any("审批通过" in title and request.title in title for title in results)
    assert act(api_as, "finance", request.id).status_code == 409


def test_all_must_agree(kind, api_as, customer_id, second_finance) -> None:
    flow({"approver_kind": "role", "role_id": role_id("Finance"), "mode": "all"})
    request = send(order(customer_id))
    assert waiting(request) == {"finance", second_finance}
    assert act(api_as, "finance", request.id).status_code == 200
    assert status_of(request.id) == "pending" and waiting(request) == {second_finance}
    assert act(api_as, second_finance, request.id).status_code == 200
    assert status_of(request.id) == "approved"


def test_superior_levels_stop_at_the_top(kind, customer_id) -> None:
    flow({"approver_kind": "superior_levels", "levels": 2, "mode": "all"})
    assert waiting(send(order(customer_id, owner="rep_b"), "rep_b")) == {"rep_a", "manager1"}
    forget_flows()
    flow({"approver_kind": "superior_levels", "levels": 10, "mode": "all"})
    request = send(order(customer_id, owner="rep_b"), "rep_b")
    assert waiting(request) == {"rep_a", "manager1", "director", "boss"}


def test_department_leader_or_the_parents_when_the_submitter_leads(kind, customer_id) -> None:
    flow({"approver_kind": "department_leader"})
    assert waiting(send(order(customer_id))) == {"manager1"}
    assert waiting(send(order(customer_id, owner="manager1"), "manager1")) == {"director"}


def test_named_user(kind, api_as, customer_id) -> None:
    flow({"approver_kind": "user", "user_id": user("finance").id})
    request = send(order(customer_id))
    assert waiting(request) == {"finance"}
    assert act(api_as, "finance", request.id).status_code == 200
    assert status_of(request.id) == "approved"


def test_the_submitter_never_approves_their_own_request(kind, customer_id) -> None:
    flow({"approver_kind": "role", "role_id": role_id("Sales Manager"), "mode": "all"})
    request = send(order(customer_id, owner="manager1"), "manager1")
    assert waiting(request) == {"boss", "director", "manager2"}
    # a step only the submitter would approve is skipped, on record; the last step then approves
    forget_flows()
    flow({"approver_kind": "user", "user_id": user("rep_a").id})
    own = send(order(customer_id))
    assert own.status == "approved"
    (skipped,) = db.session.scalars(select(ApprovalDecision).where(ApprovalDecision.request_id == own.id))
    assert skipped.decision == "skipped" and skipped.approver_id is None and "跳过" in skipped.comment


def test_nobody_above_the_top_skips_the_step(kind, api_as, customer_id) -> None:
    flow({"approver_kind": "superior"}, {"approver_kind": "user", "user_id": user("finance").id})
    request = send(order(customer_id, owner="boss"), "boss")
    assert waiting(request) == {"finance"}  # the boss has no superior: that step is skipped
    assert act(api_as, "finance", request.id).status_code == 200
    assert status_of(request.id) == "approved"


def test_a_role_nobody_holds_refuses_submission(kind, customer_id) -> None:
    flow({"approver_kind": "role", "role_id": role_id("Support Agent")})
    draft = order(customer_id)
    before = db.session.scalar(select(func.count()).select_from(ApprovalRequest))
    with pytest.raises(ValidationFailed) as refused:
        submit(db.session, "order", draft, user("rep_a"))
    db.session.rollback()
    assert "管理员" in refused.value.summary()
    assert db.session.scalar(select(func.count()).select_from(ApprovalRequest)) == before
    assert db.session.get(Order, draft.id).status == "draft"


# --- conditions ------------------------------------------------------------------------------------------
def test_conditions_on_a_column_and_no_flow_means_approved_at_once(kind, customer_id) -> None:
    flow({"approver_kind": "superior"}, conditions=[{"field": "total_amount", "op": "gt", "value": 100000}])
    small = order(customer_id, amount="50000")
    assert send(small) is None
    assert db.session.get(Order, small.id).status == "approved"
    assert (
        db.session.scalar(select(ApprovalRequest.id).where(ApprovalRequest.document_id == small.id)) is None
    )
    assert waiting(send(order(customer_id, amount="100000.01"))) == {"manager1"}


def test_condition_on_a_custom_field(kind, api_as, customer_id, clean_custom_fields) -> None:
    field = define(api_as, entity="order", field_type="select", choices=["普通", "重点"])
    name = f"custom.{field['api_name']}"
    flow(
        {"approver_kind": "user", "user_id": user("finance").id},
        conditions=[
            {"field": name, "op": "in", "value": ["重点"]},
            {"field": "total_amount", "op": "gte", "value": 1},
        ],
    )
    assert send(order(customer_id, custom={field["api_name"]: "普通"})) is None
    assert send(order(customer_id)) is None  # no value: the condition does not hold
    assert waiting(send(order(customer_id, custom={field["api_name"]: "重点"}))) == {"finance"}


def test_the_first_matching_flow_by_position_applies(kind, customer_id) -> None:
    flow({"approver_kind": "user", "user_id": user("finance").id}, position=-999)
    flow(
        {"approver_kind": "superior"}, conditions=[{"field": "max_discount_percent", "op": "gt", "value": 10}]
    )
    assert waiting(send(order(customer_id))) == {"finance"}
    discounted = order(customer_id)
    discounted.lines[0].discount_percent = Decimal(20)
    discounted.max_discount_percent = Decimal(20)
    db.session.commit()
    assert waiting(send(discounted)) == {"manager1"}


def test_flow_conditions_are_checked_when_saved(kind, api_as) -> None:
    client, headers = api_as("admin")
    before = db.session.scalar(select(func.count()).select_from(ApprovalFlow))
    bad = client.post(
        "/api/v1/approval_flow/",
        json={
            "name": f"测试{os.getpid()}-bad",
            "document": "order",
            "conditions": [
                {"field": "no_such_column", "op": "eq", "value": 1},
                {"field": "total_amount", "op": "like", "value": 1},
                {"field": "total_amount", "op": "gt", "value": "很多"},
                {"field": "title", "op": "gt", "value": "a"},
                {"field": "custom.nothing", "op": "eq", "value": "x"},
                {"field": "total_amount", "op": "in", "value": []},
                {"field": "total_amount", "op": "lte", "value": 5},
            ],
        },
        headers=headers,
    )
    assert bad.status_code == 400, bad.json
    messages = bad.json["message"]["conditions"]
    assert len(messages) == 6 and all(m.startswith(f"第 {i} 个条件") for i, m in enumerate(messages, 1))
    assert db.session.scalar(select(func.count()).select_from(ApprovalFlow)) == before
    good = client.post(
        "/api/v1/approval_flow/",
        json={
            "name": f"测试{os.getpid()}-good",
            "document": "order",
            "position": -1000,
            "conditions": [{"field": "total_amount", "op": "gt", "value": 100000}],
        },
        headers=headers,
    )
    assert good.status_code == 201, good.json
    step = client.post(
        "/api/v1/approval_step/",
        json={"flow": good.json["id"], "approver_kind": "role", "mode": "any"},
        headers=headers,
    )
    assert step.status_code == 400 and "role" in step.json["message"]
    step = client.post(
        "/api/v1/approval_step/",
        json={"flow": good.json["id"], "approver_kind": "superior", "mode": "any", "position": 1},
        headers=headers,
    )
    assert step.status_code == 201, step.json
    rep_client, rep_headers = api_as("rep_a")
    assert rep_client.get("/api/v1/approval_flow/", headers=rep_headers).status_code in (401, 403)


# --- rejection, send-back, who may decide ----------------------------------------------------------------
def test_reject_needs_a_reason_and_ends_the_request(kind, api_as, customer_id) -> None:
    flow({"approver_kind": "superior"}, {"approver_kind": "user", "user_id": user("finance").id})
    contract = order(customer_id)
    request = send(contract)
    no_reason = act(api_as, "manager1", request.id, "reject")
    assert no_reason.status_code == 400 and "comment" in no_reason.json["message"]
    assert status_of(request.id) == "pending"
    assert act(api_as, "manager1", request.id, "reject", comment="价格太低").status_code == 200
    assert status_of(request.id) == "rejected"
    db.session.expire_all()
    assert db.session.get(Order, contract.id).void_reason == "价格太低"  # on_rejected(returned=False)
    titles = db.session.scalars(select(Notification.title).where(Notification.user_id == user("rep_a").id))
    assert any("驳回" in t and request.title in t for t in titles)
    assert act(api_as, "finance", request.id).status_code == 403  # never reached


def test_send_back_and_submit_again(kind, api_as, customer_id) -> None:
    flow({"approver_kind": "superior"})
    contract = order(customer_id)
    first = send(contract)
    with pytest.raises(Conflict):
        submit(db.session, "order", contract, user("rep_a"))  # already waiting
    db.session.rollback()
    assert act(api_as, "manager1", first.id, "return").status_code == 400
    assert act(api_as, "manager1", first.id, "return", comment="请补充交货期").status_code == 200
    assert status_of(first.id) == "returned"
    db.session.expire_all()
    contract = db.session.get(Order, contract.id)
    assert contract.status == "draft"
    contract.notes = "交货期: 30 天"
    db.session.commit()
    second = send(contract)
    assert second.id != first.id and waiting(second) == {"manager1"}
    old = db.session.scalars(select(ApprovalDecision).where(ApprovalDecision.request_id == first.id)).all()
    assert [(d.decision, d.comment) for d in old] == [("returned", "请补充交货期")]
    assert old[0].decided_at is not None


def test_only_a_waiting_approver_decides_and_only_once(kind, api_as, customer_id) -> None:
    flow({"approver_kind": "superior"}, {"approver_kind": "user", "user_id": user("finance").id})
    request = send(order(customer_id))
    assert act(api_as, "boss", request.id).status_code == 403  # sees it (scope), is not asked
    assert act(api_as, "admin", request.id).status_code == 403
    assert act(api_as, "rep_a", request.id).status_code == 403  # the submitter
    assert act(api_as, "rep_c", request.id).status_code == 404  # outside rep_c's scope
    assert act(api_as, "finance", request.id).status_code == 403  # the next step, not yet
    assert act(api_as, "manager1", request.id).status_code == 200
    assert act(api_as, "manager1", request.id).status_code == 409
    assert act(api_as, "manager1", request.id, "reject", comment="改主意").status_code == 409
    assert act(api_as, "finance", request.id).status_code == 200
    assert act(api_as, "finance", request.id).status_code == 409


# --- data scope, workbench, screens ---------------------------------------------------------------------
def test_an_approver_sees_what_waits_for_them_and_what_they_decided(kind, api_as, customer_id) -> None:
    flow({"approver_kind": "user", "user_id": user("rep_c").id})
    request = send(order(customer_id))
    client, headers = api_as("rep_c")
    listed = client.get("/api/v1/approval/?q=(page_size:100)", headers=headers).json["result"]
    assert request.id in [row["id"] for row in listed]
    shown = client.get(f"/api/v1/approval/{request.id}", headers=headers)
    assert shown.status_code == 200
    assert [d["decision"] for d in shown.json["result"]["decisions"]] == ["waiting"]
    assert [r.id for r in waiting_for(db.session, user("rep_c"), 50)].count(request.id) == 1
    other, other_headers = api_as("rep_b")  # same team, 'self' scope, not asked
    assert other.get(f"/api/v1/approval/{request.id}", headers=other_headers).status_code == 404
    assert act(api_as, "rep_c", request.id).status_code == 200
    assert client.get(f"/api/v1/approval/{request.id}", headers=headers).status_code == 200
    assert request.id not in [r.id for r in waiting_for(db.session, user("rep_c"), 50)]
    decisions = client.get("/api/v1/approval_decision/?q=(page_size:100)", headers=headers).json["result"]
    assert request.id in [row["request"]["id"] for row in decisions]


def test_screens_list_show_and_decide(kind, login_as, customer_id) -> None:
    flow({"approver_kind": "superior"})
    request = send(order(customer_id))
    browser = login_as("manager1")
    assert request.title in browser.get("/approvalrequestview/list/").get_data(as_text=True)
    page = browser.get(f"/approvalrequestview/show/{request.id}").get_data(as_text=True)
    assert "approvalrequestview/decide" in page
    refused = browser.post(f"/approvalrequestview/decide/{request.id}", data={"action": "reject"})
    assert refused.status_code == 302 and status_of(request.id) == "pending"  # a reason is needed
    browser.post(f"/approvalrequestview/decide/{request.id}", data={"action": "approve", "comment": "好"})
    assert status_of(request.id) == "approved"
    assert "approvalrequestview/decide" not in browser.get(
        f"/approvalrequestview/show/{request.id}"
    ).get_data(as_text=True)
    admin = login_as("admin")
    assert admin.get("/approvalflowview/add").status_code == 200
    assert login_as("rep_a").get("/approvalflowview/list/").status_code in (302, 403)  # not for reps


def test_flow_form_reports_each_bad_condition(kind, login_as) -> None:
    admin = login_as("admin")
    response = admin.post(
        "/approvalflowview/add",
        data={
            "name": f"测试{os.getpid()}-form",
            "document": "order",
            "position": "0",
            "conditions": '[{"field": "nope", "op": "eq", "value": 1}]',
        },
    )
    assert response.status_code == 200 and "第 1 个条件" in response.get_data(as_text=True)
    broken = admin.post(
        "/approvalflowview/add",
        data={"name": f"测试{os.getpid()}-json", "document": "order", "position": "0", "conditions": "[{"},
    )
    assert "JSON" in broken.get_data(as_text=True)
    assert (
        db.session.scalar(select(ApprovalFlow.id).where(ApprovalFlow.name.like(f"测试{os.getpid()}-%")))
        is None
    )


def test_a_contract_goes_to_the_manager_then_finance(api_as, customer_id, second_finance) -> None:
    orders = pytest.importorskip("app.orders")
    assert approvals.DOCUMENT_KINDS["order"] is not TEST_KIND
    item = flow(
        {"approver_kind": "superior"},
        {"approver_kind": "role", "role_id": role_id("Finance"), "mode": "any"},
        conditions=[{"field": "total_amount", "op": "gt", "value": 100000}],
    )
    try:
        contract = order(customer_id, amount="120000")
        orders.submit_order(db.session, contract, user("rep_a"))
        request = db.session.scalar(
            select(ApprovalRequest).where(
                ApprovalRequest.document == "order", ApprovalRequest.document_id == contract.id
            )
        )
        assert request.title and waiting(request) == {"manager1"}
        assert act(api_as, "manager1", request.id).status_code == 200
        assert act(api_as, "finance", request.id).status_code == 200
        db.session.expire_all()
        assert db.session.get(Order, contract.id).status == "approved"
    finally:
        assert item.id
        forget_flows()


def test_voiding_a_pending_order_withdraws_its_approval(api_as, customer_id) -> None:
    orders = pytest.importorskip("app.orders")
    item = flow({"approver_kind": "superior"})
    try:
        contract = order(customer_id)
        orders.submit_order(db.session, contract, user("rep_a"))
        request = db.session.scalar(
            select(ApprovalRequest).where(
                ApprovalRequest.document == "order", ApprovalRequest.document_id == contract.id
            )
        )
        assert request.id in {r.id for r in approvals.waiting_for(db.session, user("manager1"), 100)}
        client, headers = api_as("rep_a")
        body = {"status": "voided", "reason": "客户取消"}
        voided = client.post(f"/api/v1/order/{contract.id}/status", json=body, headers=headers)
        assert voided.status_code == 200, voided.json
        assert status_of(request.id) == "cancelled" and waiting(request) == set()
        assert request.id not in {r.id for r in approvals.waiting_for(db.session, user("manager1"), 100)}
        assert act(api_as, "manager1", request.id).status_code == 409  # nothing left to approve
        decisions = select(ApprovalDecision).where(ApprovalDecision.request_id == request.id)
        skipped = db.session.scalars(decisions).all()
        assert skipped and all(d.decision == "skipped" and "客户取消" in d.comment for d in skipped)
    finally:
        assert item.id
        forget_flows()
