"""Payment plans, collections and invoices: the order total caps every sum (4xx with the message,
nothing written), a collection or invoice counts once approved, plan status over a frozen date,
reminders once, invoicing details copied, and who may see and change the money."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from app.clock import local_today
from app.extensions import db
from app.orders import payment_plan_run, payments_due
from models.notifications import Notification, OutboxMessage
from models.orders import Invoice, Order, Payment, PaymentPlan
from tests.conftest import user
from tests.test_orders import approved_order, call, count, new_customer, new_order

TEN_THOUSAND = [{"description": "管道检测服务", "quantity": 1, "unit_price": 10000}]


def plan(
    api_as: Any, order_id: int, amount: Any, days: int = 30, username: str = "finance", **values: Any
) -> Any:
    body = {"order": order_id, "planned_amount": amount,
            "planned_date": (local_today() + dt.timedelta(days=days)).isoformat(), **values}  # fmt: skip
    return call(api_as, username, "POST", "/api/v1/paymentplan/", body)


def payment(api_as: Any, order_id: int, amount: Any, username: str = "finance", **values: Any) -> Any:
    body = {"order": order_id, "amount": amount, "received_on": local_today().isoformat(), **values}
    return call(api_as, username, "POST", "/api/v1/payment/", body)


def invoice(api_as: Any, order_id: int, amount: Any, username: str = "finance", **values: Any) -> Any:
    return call(api_as, username, "POST", "/api/v1/invoice/", {"order": order_id, "amount": amount, **values})


def submit(api_as: Any, resource: str, pk: int, username: str = "finance") -> Any:
    response = call(api_as, username, "POST", f"/api/v1/{resource}/{pk}/submit")
    assert response.status_code == 200, response.json
    assert response.json["result"]["status"] == "approved", "an approval flow applies"
    return response


def order_row(order_id: int) -> Order:
    db.session.expire_all()
    return db.session.get(Order, order_id)


# --- the order total caps every sum -----------------------------------------------------------------
def test_plans_never_exceed_the_order_total(api_as) -> None:
    order = approved_order(api_as, lines=TEN_THOUSAND)
    first = plan(api_as, order["id"], "6000.00")
    assert first.status_code == 201, first.json
    assert first.json["result"]["number"] == 1 and first.json["result"]["status"] == "pending"
    before = count(PaymentPlan)
    over = plan(api_as, order["id"], "4000.01")
    assert over.status_code == 400
    message = over.json["message"]["planned_amount"][0]
    assert "超过订单金额 ¥10000.00" in message and "最多还可 ¥4000.00" in message
    assert count(PaymentPlan) == before
    assert plan(api_as, order["id"], "4000").json["result"]["number"] == 2
    grow = call(api_as, "finance", "PUT", f"/api/v1/paymentplan/{first.json['id']}", {"planned_amount": 6001})
    assert grow.status_code == 400 and "超过订单金额" in grow.json["message"]["planned_amount"][0]
    # a draft's lines may not shrink its total below its plans
    draft = new_order(api_as, lines=TEN_THOUSAND).json
    assert plan(api_as, draft["id"], 8000, username="admin").status_code == 201
    shrink = call(api_as, "rep_a", "PUT", f"/api/v1/order/{draft['id']}",
                  {"lines": [{"description": "x", "quantity": 1, "unit_price": 5000}]})  # fmt: skip
    assert shrink.status_code == 400 and "回款计划" in shrink.json["message"]["lines"][0]
    assert order_row(draft["id"]).total_amount == Decimal("10000.00")


def test_collections_never_exceed_the_order_total(api_as) -> None:
    order = approved_order(api_as, lines=TEN_THOUSAND)
    assert payment(api_as, order["id"], 7000).status_code == 201
    before = count(Payment)
    over = payment(api_as, order["id"], "3000.50")  # a draft counts against the total too
    assert over.status_code == 400 and "回款合计 ¥10000.50 超过订单金额" in over.json["message"]["amount"][0]
    assert count(Payment) == before
    assert payment(api_as, order["id"], 3000).status_code == 201
    assert payment(api_as, order["id"], "0.01").status_code == 400


def test_invoices_never_exceed_the_order_total(api_as) -> None:
    order = approved_order(api_as, lines=TEN_THOUSAND)
    assert invoice(api_as, order["id"], 9000, kind="normal").status_code == 201
    before = count(Invoice)
    over = invoice(api_as, order["id"], 1001, kind="normal")
    assert over.status_code == 400 and "开票合计" in over.json["message"]["amount"][0]
    assert count(Invoice) == before


def test_money_documents_validation(api_as) -> None:
    order = approved_order(api_as, lines=TEN_THOUSAND)
    other = approved_order(api_as, lines=TEN_THOUSAND)
    others_plan = plan(api_as, other["id"], 100).json["id"]
    draft = new_order(api_as).json
    cases = [
        (payment(api_as, order["id"], -5), "amount", "应大于 0"),
        (payment(api_as, order["id"], 0), "amount", "应大于 0"),
        (payment(api_as, order["id"], "abc"), "amount", None),
        (payment(api_as, order["id"], 5, method="bitcoin"), "method", "不是有效的选项"),
        (payment(api_as, order["id"], 5, plan=others_plan), "plan", "不属于该订单"),
        (payment(api_as, order["id"], 5, received_on="2999-01-01"), "received_on", "不能晚于今天"),
        (payment(api_as, draft["id"], 5), "order", "审批通过后"),
        (payment(api_as, order["id"], 5, status="approved"), "status", None),
        (plan(api_as, order["id"], 5, remind_days=-1), "remind_days", "0 到 365"),
        (plan(api_as, order["id"], -1), "planned_amount", "应大于 0"),
        (plan(api_as, order["id"], 5, planned_date="tomorrow"), "planned_date", None),
        (invoice(api_as, order["id"], 5, kind="fancy"), "kind", "不是有效的选项"),
        (invoice(api_as, draft["id"], 5), "order", "审批通过后"),
        (invoice(api_as, order["id"], 5, tax_number="12345"), "tax_number", "15、18 或 20"),
        (call(api_as, "finance", "POST", "/api/v1/payment/", {"amount": 5}), "order", None),
    ]
    for response, field, message in cases:
        assert response.status_code == 400, (field, response.json)
        assert field in response.json["message"], response.json
        if message:
            assert message in str(response.json["message"][field]), response.json


# --- approval, paid and invoiced amounts, plan status ---------------------------------------------------
def test_a_collection_counts_once_approved(api_as) -> None:
    order = approved_order(api_as, lines=TEN_THOUSAND)
    first = plan(api_as, order["id"], 4000).json["id"]
    plan(api_as, order["id"], 6000)
    paid = payment(api_as, order["id"], 1500, plan=first, account="工行东营分行 6222...")
    assert paid.status_code == 201, paid.json
    assert paid.json["result"]["status"] == "draft"
    row = order_row(order["id"])
    assert row.paid_amount == 0 and row.plans[0].status == "pending" and row.paid_percent == 0
    submit(api_as, "payment", paid.json["id"])
    row = order_row(order["id"])
    assert row.paid_amount == Decimal("1500.00") and row.paid_percent == Decimal("15.0")
    assert row.plans[0].collected_amount == Decimal("1500.00") and row.plans[0].status == "partial"
    again = call(api_as, "finance", "POST", f"/api/v1/payment/{paid.json['id']}/submit")
    assert again.status_code == 400
    second = payment(api_as, order["id"], 2500, plan=first).json["id"]
    submit(api_as, "payment", second)
    row = order_row(order["id"])
    assert row.plans[0].status == "done" and row.plans[1].status == "pending"
    assert row.paid_amount == Decimal("4000.00") and row.paid_percent == Decimal("40.0")
    shown = call(api_as, "rep_a", "GET", f"/api/v1/order/{order['id']}").json["result"]
    assert Decimal(str(shown["paid_percent"])) == Decimal("40.0")
    # approved money is frozen: no edit, no delete
    url = f"/api/v1/payment/{second}"
    frozen = call(api_as, "finance", "PUT", url, {"amount": 1})
    assert frozen.status_code == 400 and "已提交审批" in frozen.json["message"]["amount"][0]
    assert call(api_as, "finance", "DELETE", url).status_code == 400
    assert call(api_as, "finance", "PUT", url, {"notes": "已核对"}).status_code == 200
    # a draft may be corrected or deleted, and never counted
    draft = payment(api_as, order["id"], 100).json["id"]
    assert call(api_as, "finance", "PUT", f"/api/v1/payment/{draft}", {"amount": 200}).status_code == 200
    assert call(api_as, "finance", "DELETE", f"/api/v1/payment/{draft}").status_code == 200
    assert order_row(order["id"]).paid_amount == Decimal("4000.00")


def test_plan_status_overdue_and_reminders_with_a_frozen_date(api_as) -> None:
    order = approved_order(api_as, lines=TEN_THOUSAND)
    today = local_today()
    due = plan(api_as, order["id"], 3000, days=10, remind_days=3).json["id"]
    later = plan(api_as, order["id"], 3000, days=40, remind_days=3).json["id"]
    past = plan(api_as, order["id"], 1000, days=-2).json
    assert past["result"]["status"] == "overdue"  # its date has passed already
    owner = user("rep_a")

    def status(plan_id: int) -> PaymentPlan:
        db.session.expire_all()
        return db.session.get(PaymentPlan, plan_id)

    def notes() -> int:
        link = f"/orderview/show/{order['id']}"
        query = select(Notification).where(Notification.user_id == owner.id, Notification.link == link)
        return len(db.session.scalars(query).all())

    before = notes()
    payment_plan_run(db.session, today + dt.timedelta(days=6))  # 4 days ahead: not yet
    assert status(due).reminded_at is None and notes() == before + 1  # only the overdue one
    payment_plan_run(db.session, today + dt.timedelta(days=7))  # 3 days ahead: reminded
    assert status(due).reminded_at is not None and notes() == before + 2
    payment_plan_run(db.session, today + dt.timedelta(days=8))  # once
    assert notes() == before + 2
    assert db.session.scalar(
        select(OutboxMessage.id).where(OutboxMessage.dedup_key.like(f"plan-reminder:{due}:%"))
    )
    payment_plan_run(db.session, today + dt.timedelta(days=11))  # the date passed: overdue
    assert status(due).status == "overdue" and status(later).status == "pending"
    partial = payment(api_as, order["id"], 1000, plan=due).json["id"]
    submit(api_as, "payment", partial)
    assert status(due).status == "partial"  # today the date has not passed
    payment_plan_run(db.session, today + dt.timedelta(days=11))
    assert status(due).status == "overdue"
    rest = payment(api_as, order["id"], 2000, plan=due).json["id"]
    submit(api_as, "payment", rest)
    payment_plan_run(db.session, today + dt.timedelta(days=12))
    assert status(due).status == "done"
    # a new date gets its own reminder
    call(api_as, "finance", "PUT", f"/api/v1/paymentplan/{later}",
         {"planned_date": (today + dt.timedelta(days=50)).isoformat()})  # fmt: skip
    assert status(later).reminded_at is None
    # the workbench list: due within N days or overdue, in the user's data scope
    due_soon = [p.id for p in payments_due(db.session, owner, today + dt.timedelta(days=45), 10, limit=100)]
    assert past["id"] in due_soon and later in due_soon and due not in due_soon
    assert past["id"] not in [p.id for p in payments_due(db.session, user("rep_c"), today, 10, limit=100)]


# --- invoices ---------------------------------------------------------------------------------------
def test_invoice_copies_the_invoicing_details_and_counts_once_approved(api_as) -> None:
    details = {
        "invoice_title": "东营市黄河化工有限公司",
        "tax_number": "370502123456789",
        "bank_name": "中国工商银行东营分行",
        "bank_account": "1612 0000 1234",
        "invoice_address_phone": "东营市东营区府前大街 1 号 0546-8123456",
    }
    # the invoicing details are Finance's and Admin's (field permissions): the admin fills them in
    customer = new_customer(api_as, "admin", owner=user("rep_a").id, **details)
    order = approved_order(api_as, customer=customer, lines=TEN_THOUSAND)
    created = invoice(api_as, order["id"], 2500)
    assert created.status_code == 201, created.json
    result = created.json["result"]
    assert result["kind"] == "special" and result["status"] == "draft"
    assert result["title"] == details["invoice_title"] and result["tax_number"] == details["tax_number"]
    assert result["bank_name"] == details["bank_name"] and result["bank_account"] == "161200001234"
    assert result["address_phone"] == details["invoice_address_phone"]
    # later changes to the customer do not touch the invoice
    call(api_as, "admin", "PUT", f"/api/v1/customer/{customer}", {"bank_name": "中国银行"})
    assert db.session.get(Invoice, created.json["id"]).bank_name == details["bank_name"]
    assert order_row(order["id"]).invoiced_amount == 0
    submit(api_as, "invoice", created.json["id"])
    row = order_row(order["id"])
    assert row.invoiced_amount == Decimal("2500.00") and row.invoiced_percent == Decimal("25.0")
    issued = call(api_as, "finance", "PUT", f"/api/v1/invoice/{created.json['id']}",
                  {"number": "37002611230001", "issued_on": local_today().isoformat()})  # fmt: skip
    assert issued.status_code == 200, issued.json
    frozen = call(api_as, "finance", "PUT", f"/api/v1/invoice/{created.json['id']}", {"title": "别的公司"})
    assert frozen.status_code == 400
    duplicate = invoice(api_as, order["id"], 10, kind="normal", number="37002611230001")
    assert duplicate.status_code == 400 and "发票号码已存在" in duplicate.json["message"]["number"][0]


def test_special_invoice_needs_a_tax_number(api_as) -> None:
    order = approved_order(api_as, lines=TEN_THOUSAND)  # the customer has no invoicing details
    special = invoice(api_as, order["id"], 100)
    assert special.status_code == 400 and "税号" in special.json["message"]["tax_number"][0]
    normal = invoice(api_as, order["id"], 100, kind="normal")
    assert normal.status_code == 201 and normal.json["result"]["title"]  # the customer's name


# --- who sees and changes the money -----------------------------------------------------------------
def test_payments_are_read_only_for_the_owner_and_hidden_from_other_reps(api_as, login_as) -> None:
    order = approved_order(api_as, lines=TEN_THOUSAND)
    plan_id = plan(api_as, order["id"], 5000).json["id"]
    paid = payment(api_as, order["id"], 1000, plan=plan_id).json["id"]
    bill = invoice(api_as, order["id"], 1000, kind="normal").json["id"]
    for resource, pk in (("payment", paid), ("paymentplan", plan_id), ("invoice", bill)):
        url = f"/api/v1/{resource}/{pk}"
        assert call(api_as, "rep_a", "GET", url).status_code == 200, resource
        assert call(api_as, "manager1", "GET", url).status_code == 200, resource
        assert call(api_as, "rep_c", "GET", url).status_code == 404, resource
        assert call(api_as, "rep_a", "PUT", url, {"notes": "x"}).status_code == 403, resource
        assert call(api_as, "rep_a", "DELETE", url).status_code == 403, resource
        listed = call(api_as, "rep_c", "GET", f"/api/v1/{resource}/?q=(page_size:100)").json["result"]
        assert pk not in {row["id"] for row in listed}, resource
    assert payment(api_as, order["id"], 10, username="rep_a").status_code == 403
    assert plan(api_as, order["id"], 10, username="rep_a").status_code == 403
    assert invoice(api_as, order["id"], 10, username="rep_a").status_code == 403
    assert call(api_as, "rep_a", "POST", f"/api/v1/payment/{paid}/submit").status_code == 403
    assert call(api_as, "readonly", "GET", f"/api/v1/payment/{paid}").status_code == 403
    # screens
    rep = login_as("rep_a")
    assert rep.get(f"/paymentview/show/{paid}").status_code == 200
    assert str(paid) in rep.get("/paymentview/list/").get_data(as_text=True)
    assert rep.get("/paymentview/add").status_code == 403
    assert rep.get(f"/paymentview/edit/{paid}").status_code == 403
    assert rep.post(f"/paymentview/delete/{paid}").status_code == 403
    assert rep.post(f"/paymentview/submit/{paid}").status_code == 403
    assert rep.get("/invoiceview/add").status_code == 403
    assert rep.get("/paymentplanview/add").status_code == 403
    # the plan's computed status shows by its label (待回款, 部分回款), not its stored code
    plans = rep.get(f"/paymentplanview/show/{plan_id}").get_data(as_text=True)
    assert "待回款" in plans or "部分回款" in plans
    other = login_as("rep_c")
    assert other.get(f"/paymentview/show/{paid}").status_code == 404
    assert other.get(f"/invoiceview/show/{bill}").status_code == 404
    # Finance records and submits through the screens
    finance = login_as("finance")
    assert finance.get("/paymentview/add").status_code == 200
    form = {"order": order["id"], "amount": "500", "received_on": local_today().isoformat(), "method": "cash"}
    added = finance.post("/paymentview/add", data=form)
    assert added.status_code == 302, added.get_data(as_text=True)[-1500:]
    refused = finance.post("/paymentview/add", data=form | {"amount": "9000"})
    assert refused.status_code == 200 and "超过订单金额" in refused.get_data(as_text=True)
    assert finance.post(f"/paymentview/submit/{paid}").status_code == 302
    assert order_row(order["id"]).paid_amount == Decimal("1000.00")
    page = rep.get(f"/orderview/show/{order['id']}").get_data(as_text=True)
    assert "10.0%" in page  # the paid percentage on the order
