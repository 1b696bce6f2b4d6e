"""Approvals of collections (回款) and invoices (发票) through the orders module's real
registration, with flows an admin configures over the API: a submitted document waits
(审批中) and does not count in the order's paid or invoiced percentage nor in its plan's status
until approved; a rejection (驳回) with a reason leaves it rejected and uncounted; a send-back
(退回) returns it to the submitter as a draft to change and submit again."""

from __future__ import annotations

import os
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, select

from app.extensions import db
from models.approvals import ApprovalDecision, ApprovalFlow, ApprovalRequest, ApprovalStep
from models.notifications import Notification
from models.orders import Invoice, Payment, PaymentPlan
from tests.conftest import user
from tests.test_orders import approved_order, call
from tests.test_payments import TEN_THOUSAND, invoice, order_row, payment, plan

PREFIX = f"资金审批{os.getpid()}-"
APPROVER = "boss"  # 总公司's leader; Finance (the submitter) sits in 总公司
#: resource -> (model, the order's column that sums the approved documents, its percentage)
DOCUMENTS: dict[str, tuple[type, str, str]] = {
    "payment": (Payment, "paid_amount", "paid_percent"),
    "invoice": (Invoice, "invoiced_amount", "invoiced_percent"),
}


def forget_flows() -> None:
    """Remove this module's flows with their requests: other tests expect none for money."""
    db.session.rollback()
    flows = select(ApprovalFlow.id).where(ApprovalFlow.name.like(f"{PREFIX}%"))
    requests = select(ApprovalRequest.id).where(ApprovalRequest.flow_id.in_(flows))
    db.session.execute(delete(ApprovalDecision).where(ApprovalDecision.request_id.in_(requests)))
    db.session.execute(delete(ApprovalRequest).where(ApprovalRequest.flow_id.in_(flows)))
    db.session.execute(delete(ApprovalStep).where(ApprovalStep.flow_id.in_(flows)))
    db.session.execute(delete(ApprovalFlow).where(ApprovalFlow.name.like(f"{PREFIX}%")))
    db.session.commit()


@pytest.fixture()
def flows(api_as) -> Iterator[dict[str, int]]:
    """One flow per money document, as an admin sets them up: one step, asking the boss."""
    client, headers = api_as("admin")
    ids = {}
    try:
        for document in DOCUMENTS:
            made = client.post(
                "/api/v1/approval_flow/",
                json={"name": f"{PREFIX}{document}", "document": document, "position": -1000},
                headers=headers,
            )
            assert made.status_code == 201, made.json
            step = client.post(
                "/api/v1/approval_step/",
                json={
                    "flow": made.json["id"], "position": 1, "name": "总经理审批", "approver_kind": "user",
                    "user": user(APPROVER).id, "mode": "any",
                },
                headers=headers,
            )  # fmt: skip
            assert step.status_code == 201, step.json
            ids[document] = made.json["id"]
        yield ids
    finally:
        forget_flows()


def create(api_as: Any, resource: str, order_id: int, amount: Any, **values: Any) -> int:
    """A draft collection or invoice entered by Finance."""
    if resource == "invoice":
        response = invoice(api_as, order_id, amount, kind="normal", **values)
    else:
        response = payment(api_as, order_id, amount, **values)
    assert response.status_code == 201, response.json
    assert response.json["result"]["status"] == "draft"
    return response.json["id"]


def submit(api_as: Any, resource: str, pk: int) -> Any:
    return call(api_as, "finance", "POST", f"/api/v1/{resource}/{pk}/submit")


def request_of(resource: str, pk: int) -> ApprovalRequest:
    """The document's latest approval request."""
    db.session.expire_all()
    return db.session.scalars(
        select(ApprovalRequest)
        .where(ApprovalRequest.document == resource, ApprovalRequest.document_id == pk)
        .order_by(ApprovalRequest.id.desc())
    ).first()


def act(api_as: Any, username: str, request_id: int, action: str, **body: Any) -> Any:
    return call(api_as, username, "POST", f"/api/v1/approval/{request_id}/{action}", body)


def status(model: type, pk: int) -> str:
    db.session.expire_all()
    return db.session.get(model, pk).status


def counted(resource: str, order_id: int) -> tuple[Decimal, Decimal]:
    """The order's approved sum of this kind of document, and its percentage of the total."""
    _model, column, percent = DOCUMENTS[resource]
    order = order_row(order_id)
    return getattr(order, column), getattr(order, percent)


def plan_figures(plan_id: int) -> tuple[Decimal, str]:
    db.session.expire_all()
    row = db.session.get(PaymentPlan, plan_id)
    return row.collected_amount, row.status


def notified(username: str, text: str) -> bool:
    db.session.expire_all()
    rows = db.session.scalars(select(Notification).where(Notification.user_id == user(username).id))
    return any(text in f"{n.title} {n.body or ''}" for n in rows)


@pytest.mark.parametrize("resource", list(DOCUMENTS))
def test_a_submitted_document_counts_only_once_approved(flows, api_as, resource: str) -> None:
    model = DOCUMENTS[resource][0]
    order = approved_order(api_as, lines=TEN_THOUSAND)
    planned = plan(api_as, order["id"], "6000.00").json["id"]
    extra = {"plan": planned} if resource == "payment" else {}
    pk = create(api_as, resource, order["id"], 6000, **extra)
    submitted = submit(api_as, resource, pk)
    assert submitted.status_code == 200, submitted.json
    assert submitted.json["result"]["status"] == "pending"
    request = request_of(resource, pk)
    assert (request.status, request.flow_id, request.amount) == (
        "pending",
        flows[resource],
        Decimal("6000.00"),
    )
    assert counted(resource, order["id"]) == (Decimal("0"), Decimal("0"))
    assert plan_figures(planned) == (Decimal("0"), "pending")
    # waiting: frozen, not deletable, not submitted twice; the submitter does not decide
    frozen = call(api_as, "finance", "PUT", f"/api/v1/{resource}/{pk}", {"amount": 5000})
    assert frozen.status_code == 400 and "amount" in frozen.json["message"], frozen.json
    assert call(api_as, "finance", "DELETE", f"/api/v1/{resource}/{pk}").status_code == 400
    assert submit(api_as, resource, pk).status_code == 400
    assert act(api_as, "finance", request.id, "approve").status_code in (403, 404)
    assert status(model, pk) == "pending"
    assert notified(APPROVER, request.title)
    approved = act(api_as, APPROVER, request.id, "approve", comment="同意")
    assert approved.status_code == 200 and approved.json["result"]["status"] == "approved", approved.json
    assert status(model, pk) == "approved"
    assert counted(resource, order["id"]) == (Decimal("6000.00"), Decimal("60.0"))
    shown = call(api_as, "rep_a", "GET", f"/api/v1/order/{order['id']}").json["result"]
    assert float(shown[DOCUMENTS[resource][2]]) == 60.0
    if resource == "payment":
        assert plan_figures(planned) == (Decimal("6000.00"), "done")
    assert notified("finance", request.title)


@pytest.mark.parametrize("resource", list(DOCUMENTS))
def test_a_rejected_document_is_not_counted(flows, api_as, resource: str) -> None:
    model = DOCUMENTS[resource][0]
    order = approved_order(api_as, lines=TEN_THOUSAND)
    planned = plan(api_as, order["id"], "4000.00").json["id"]
    extra = {"plan": planned} if resource == "payment" else {}
    pk = create(api_as, resource, order["id"], 4000, **extra)
    assert submit(api_as, resource, pk).status_code == 200
    request = request_of(resource, pk)
    no_reason = act(api_as, APPROVER, request.id, "reject")
    assert no_reason.status_code == 400 and "comment" in no_reason.json["message"]
    assert status(model, pk) == "pending"
    rejected = act(api_as, APPROVER, request.id, "reject", comment="金额与银行流水不符")
    assert rejected.status_code == 200 and rejected.json["result"]["status"] == "rejected", rejected.json
    assert status(model, pk) == "rejected"
    assert request_of(resource, pk).status == "rejected"
    decision = db.session.scalar(
        select(ApprovalDecision).where(
            ApprovalDecision.request_id == request.id, ApprovalDecision.decision == "rejected"
        )
    )
    assert decision.comment == "金额与银行流水不符" and decision.approver_id == user(APPROVER).id
    assert counted(resource, order["id"]) == (Decimal("0"), Decimal("0"))
    assert plan_figures(planned) == (Decimal("0"), "pending")
    assert notified("finance", "金额与银行流水不符")
    # a second decision on the closed request changes nothing
    assert act(api_as, APPROVER, request.id, "approve").status_code == 409
    assert status(model, pk) == "rejected"
    assert counted(resource, order["id"]) == (Decimal("0"), Decimal("0"))
    # a rejected document does not hold the order's total: a new one for the full amount fits
    other = create(api_as, resource, order["id"], 10000)
    assert status(model, other) == "draft"


@pytest.mark.parametrize("resource", list(DOCUMENTS))
def test_a_sent_back_document_returns_to_the_submitter_as_a_draft(flows, api_as, resource: str) -> None:
    model = DOCUMENTS[resource][0]
    order = approved_order(api_as, lines=TEN_THOUSAND)
    pk = create(api_as, resource, order["id"], 3000)
    assert submit(api_as, resource, pk).status_code == 200
    first = request_of(resource, pk)
    returned = act(api_as, APPROVER, first.id, "return", comment="请附银行回单")
    assert returned.status_code == 200 and returned.json["result"]["status"] == "returned", returned.json
    assert status(model, pk) == "draft"
    assert counted(resource, order["id"]) == (Decimal("0"), Decimal("0"))
    assert notified("finance", "请附银行回单")
    # the submitter changes the draft and submits again: a new request, approved this time
    changed = call(api_as, "finance", "PUT", f"/api/v1/{resource}/{pk}", {"amount": 2500, "notes": "附回单"})
    assert changed.status_code == 200, changed.json
    assert submit(api_as, resource, pk).status_code == 200
    second = request_of(resource, pk)
    assert second.id != first.id and second.status == "pending" and second.amount == Decimal("2500.00")
    assert counted(resource, order["id"]) == (Decimal("0"), Decimal("0"))
    assert act(api_as, APPROVER, second.id, "approve").status_code == 200
    assert status(model, pk) == "approved"
    assert counted(resource, order["id"]) == (Decimal("2500.00"), Decimal("25.0"))


def test_a_rejected_collection_submitted_again_counts_once_approved(flows, api_as) -> None:
    order = approved_order(api_as, lines=TEN_THOUSAND)
    planned = plan(api_as, order["id"], "10000.00").json["id"]
    pk = create(api_as, "payment", order["id"], 4000, plan=planned)
    assert submit(api_as, "payment", pk).status_code == 200
    assert act(api_as, APPROVER, request_of("payment", pk).id, "reject", comment="待核实").status_code == 200
    assert status(Payment, pk) == "rejected"
    assert submit(api_as, "payment", pk).status_code == 200
    assert status(Payment, pk) == "pending"
    assert plan_figures(planned) == (Decimal("0"), "pending")
    assert act(api_as, APPROVER, request_of("payment", pk).id, "approve").status_code == 200
    assert counted("payment", order["id"]) == (Decimal("4000.00"), Decimal("40.0"))
    assert plan_figures(planned) == (Decimal("4000.00"), "partial")


def test_without_a_flow_money_is_approved_at_once(api_as) -> None:
    """The flows above are gone again: the usual small-company path still holds."""
    order = approved_order(api_as, lines=TEN_THOUSAND)
    pk = create(api_as, "invoice", order["id"], 1000)
    assert submit(api_as, "invoice", pk).json["result"]["status"] == "approved"
    assert request_of("invoice", pk) is None
    assert counted("invoice", order["id"]) == (Decimal("1000.00"), Decimal("10.0"))


@pytest.mark.parametrize("resource", list(DOCUMENTS))
def test_voiding_the_order_withdraws_its_waiting_documents(flows, api_as, resource: str) -> None:
    """Once the order is voided its waiting collection or invoice can be neither approved nor
    rejected (the order is no longer live): the request is withdrawn and the document goes back
    to draft, where Finance may delete it, instead of waiting for the approver forever."""
    model = DOCUMENTS[resource][0]
    order = approved_order(api_as, lines=TEN_THOUSAND)
    pk = create(api_as, resource, order["id"], 5000)
    assert submit(api_as, resource, pk).status_code == 200
    request = request_of(resource, pk)
    voided = call(api_as, "rep_a", "POST", f"/api/v1/order/{order['id']}/status",
                  {"status": "voided", "reason": "客户取消"})  # fmt: skip
    assert voided.status_code == 200, voided.json
    assert request_of(resource, pk).status == "cancelled"
    assert status(model, pk) == "draft"
    db.session.expire_all()
    waiting = select(ApprovalDecision).where(ApprovalDecision.request_id == request.id)
    assert [(d.decision, d.comment) for d in db.session.scalars(waiting)] == [
        ("skipped", "订单已作废: 客户取消")
    ]
    assert act(api_as, APPROVER, request.id, "approve").status_code == 409
    assert counted(resource, order["id"]) == (Decimal("0"), Decimal("0"))
    assert submit(api_as, resource, pk).status_code == 400  # the order is no longer live
    assert call(api_as, "finance", "DELETE", f"/api/v1/{resource}/{pk}").status_code == 200
