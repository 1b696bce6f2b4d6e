"""Orders and contracts: totals and rounding, lines nested in the API, numbering, the status
rules (submit, no delete once approved, void with a reason, lines frozen once submitted), the
signed contract file, data scope, screens, and what the approvals engine reads."""

from __future__ import annotations

import datetime as dt
import io
import os
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select

from app.approvals import DOCUMENT_KINDS
from app.extensions import db
from app.orders import expiring_contracts, line_amount, next_number, order_service
from app.sales import product_service
from models.orders import Order, OrderLine
from models.sales import Product
from tests.conftest import unique_name, user, valid_credit_code


# --- helpers (test_payments uses them too) ------------------------------------------------------------
def call(api_as: Any, username: str, method: str, url: str, body: Any = None, **kwargs: Any) -> Any:
    client, headers = api_as(username)
    return client.open(url, method=method, json=body, headers=headers, **kwargs)


def new_customer(api_as: Any, username: str = "rep_a", **values: Any) -> int:
    response = call(
        api_as, username, "POST", "/api/v1/customer/", {"name": unique_name("订单客户"), **values}
    )
    assert response.status_code == 201, response.json
    return response.json["id"]


def new_order(api_as: Any, username: str = "rep_a", lines: list[dict] | None = None, **values: Any) -> Any:
    body = {
        "title": unique_name("订单"),
        "customer": values.pop("customer", None) or new_customer(api_as, username),
        "lines": lines
        if lines is not None
        else [{"description": "液碱 32%", "quantity": 10, "unit_price": 1000}],
        **values,
    }
    return call(api_as, username, "POST", "/api/v1/order/", body)


def approved_order(api_as: Any, username: str = "rep_a", **values: Any) -> dict[str, Any]:
    """An order submitted and approved (no approval flow applies in these tests)."""
    created = new_order(api_as, username, **values)
    assert created.status_code == 201, created.json
    submitted = call(api_as, username, "POST", f"/api/v1/order/{created.json['id']}/submit")
    assert submitted.status_code == 200, submitted.json
    assert submitted.json["result"]["status"] == "approved", "an approval flow for orders is active"
    return submitted.json["result"] | {"id": created.json["id"]}


def count(model: type) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.fixture(scope="module")
def products(app: Flask) -> list[int]:
    with app.app_context():
        items = [
            Product(sku=f"T{os.getpid()}-{i}", name=name, unit="吨", price=price)
            for i, (name, price) in enumerate(
                [("聚丙烯酰胺", Decimal("12800.00")), ("硫酸", Decimal("450.50"))]
            )
        ]
        for item in items:
            product_service.save(db.session, item, None)
        return [item.id for item in items]


# --- totals and rounding --------------------------------------------------------------------------------
def test_line_amount_rounds_half_up_to_the_fen() -> None:
    assert line_amount(1, Decimal("10.05"), 50) == Decimal("5.03")  # 5.025: half up, not to even
    assert line_amount(Decimal("2.5"), Decimal("19.99"), Decimal("12.5")) == Decimal("43.73")  # 43.728125
    assert line_amount(3, Decimal("0.01"), 0) == Decimal("0.03")
    assert line_amount(7, Decimal("100"), 100) == Decimal("0.00")


def test_totals_are_computed_from_the_lines(api_as, products) -> None:
    lines = [
        {"product_id": products[0], "quantity": 2, "discount_percent": 5},  # price from the product
        {"description": "运费", "quantity": 1, "unit_price": "10.05", "discount_percent": 50},
        {"product_id": products[1], "quantity": "2.5", "unit_price": "19.99", "discount_percent": "12.5"},
    ]
    created = new_order(api_as, lines=lines)
    assert created.status_code == 201, created.json
    result = created.json["result"]
    amounts = [Decimal(str(line["amount"])) for line in result["lines"]]
    assert amounts == [Decimal("24320.00"), Decimal("5.03"), Decimal("43.73")]
    assert Decimal(str(result["total_amount"])) == Decimal("24368.76")
    assert Decimal(str(result["max_discount_percent"])) == Decimal("50")
    assert result["lines"][0]["description"] == "聚丙烯酰胺"  # named after the product
    assert [line["position"] for line in result["lines"]] == [1, 2, 3]
    order = db.session.get(Order, created.json["id"])
    assert order.total_amount == Decimal("24368.76") and order.status == "draft"
    # replacing the lines of a draft recomputes everything
    changed = call(
        api_as, "rep_a", "PUT", f"/api/v1/order/{order.id}", {"lines": [{"description": "x", "quantity": 3,
                                                                          "unit_price": 7}]}
    )  # fmt: skip
    assert changed.status_code == 200, changed.json
    assert Decimal(str(changed.json["result"]["total_amount"])) == Decimal("21.00")
    assert Decimal(str(changed.json["result"]["max_discount_percent"])) == 0
    db.session.expire_all()
    assert count_lines(order.id) == 1


def count_lines(order_id: int) -> int:
    return db.session.scalar(select(func.count()).where(OrderLine.order_id == order_id))


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ({"description": "x", "quantity": 0, "unit_price": 1}, "lines.0.quantity", "应大于 0"),
        ({"description": "x", "quantity": -2, "unit_price": 1}, "lines.0.quantity", "应大于 0"),
        ({"description": "x", "quantity": 1, "unit_price": -1}, "lines.0.unit_price", "不能为负数"),
        ({"description": "x", "quantity": 1, "unit_price": 1, "discount_percent": 120},
         "lines.0.discount_percent", "0 到 100"),
        ({"description": "x", "quantity": 1}, "lines.0.unit_price", "请填写单价"),
        ({"quantity": 1, "unit_price": 1}, "lines.0.description", "请选择产品或填写说明"),
        ({"product_id": 999999, "quantity": 1, "unit_price": 1}, "lines.0.product", "产品不存在"),
    ],
)  # fmt: skip
def test_bad_lines_are_refused_with_a_message(api_as, line, field, message) -> None:
    before = count(Order)
    response = new_order(api_as, lines=[line])
    assert response.status_code == 400, response.json
    assert message in response.json["message"][field][0]
    assert count(Order) == before  # nothing half-written


@pytest.mark.parametrize(
    "lines",
    [[{"description": "x"}], [{"description": "x", "quantity": "abc"}], [{"quantity": 1, "colour": "red"}],
     "not a list", [{"description": "x", "quantity": "NaN", "unit_price": 1}]],
)  # fmt: skip
def test_malformed_lines_are_a_400(api_as, lines) -> None:
    response = new_order(api_as, lines=lines)
    assert response.status_code == 400 and "lines" in response.json["message"]


def test_order_header_rules(api_as) -> None:
    no_title = new_order(api_as, title="")
    assert no_title.status_code == 400 and "title" in no_title.json["message"]
    dates = new_order(api_as, kind="contract", start_date="2026-12-01", end_date="2026-11-01")
    assert dates.status_code == 400 and "结束日期" in dates.json["message"]["end_date"][0]
    bad_kind = new_order(api_as, kind="quote")
    assert bad_kind.status_code == 400 and "kind" in bad_kind.json["message"]
    other = new_customer(api_as, "rep_c")  # not rep_a's to sell to
    hidden = new_order(api_as, customer=other)
    assert hidden.status_code == 403


# --- numbering ------------------------------------------------------------------------------------------
def test_numbers_follow_the_configured_pattern_per_day(app, api_as) -> None:
    saved = app.config["CRM_ORDER_NUMBER_PATTERN"], app.config["CRM_CONTRACT_NUMBER_PATTERN"]
    tag = f"T{os.getpid() % 10000}"
    app.config["CRM_ORDER_NUMBER_PATTERN"] = tag + "DD-{date:%Y%m%d}-{seq:03d}"
    app.config["CRM_CONTRACT_NUMBER_PATTERN"] = tag + "HT{date:%y%m%d}{seq:04d}X"
    try:
        day = dt.date(2026, 11, 23)
        numbers = [new_order(api_as, ordered_on=day.isoformat()).json["result"]["number"] for _ in range(3)]
        assert numbers == [f"{tag}DD-20261123-00{i}" for i in (1, 2, 3)]
        next_day = new_order(api_as, ordered_on="2026-11-24").json["result"]["number"]
        assert next_day == f"{tag}DD-20261124-001"
        contract = new_order(api_as, kind="contract", ordered_on=day.isoformat()).json["result"]["number"]
        assert contract == f"{tag}HT2611230001X"
        assert (
            next_number(db.session, app.config["CRM_CONTRACT_NUMBER_PATTERN"], day) == f"{tag}HT2611230002X"
        )
        # characters LIKE and GLOB treat as wildcards are taken literally in the prefix lookup
        app.config["CRM_ORDER_NUMBER_PATTERN"] = tag + "D_*[%]{seq:02d}"
        wild = [new_order(api_as, ordered_on=day.isoformat()).json["result"]["number"] for _ in range(2)]
        assert wild == [f"{tag}D_*[%]01", f"{tag}D_*[%]02"]
        app.config["CRM_ORDER_NUMBER_PATTERN"] = tag + "DXY[%]{seq:02d}"  # would match D_*[%] above
        assert new_order(api_as, ordered_on=day.isoformat()).json["result"]["number"] == f"{tag}DXY[%]01"
        # the number cannot be set or changed by a client
        order_id = new_order(api_as, ordered_on=day.isoformat()).json["id"]
        changed = call(api_as, "rep_a", "PUT", f"/api/v1/order/{order_id}", {"number": "MINE-1"})
        assert changed.status_code == 400
    finally:
        app.config["CRM_ORDER_NUMBER_PATTERN"], app.config["CRM_CONTRACT_NUMBER_PATTERN"] = saved
    assert db.session.scalar(select(func.count(Order.number.distinct()))) == count(Order)


def test_a_number_taken_by_a_concurrent_writer_is_skipped(app, api_as) -> None:
    """Two writers read the same largest number; the second insert hits the unique index and
    takes the next one (simulated: the number the first writer would take is taken meanwhile)."""
    saved = app.config["CRM_ORDER_NUMBER_PATTERN"]
    tag = f"R{os.getpid() % 10000}"
    app.config["CRM_ORDER_NUMBER_PATTERN"] = tag + "-{date:%Y%m%d}-{seq:04d}"
    try:
        customer = new_customer(api_as)
        order = Order(title="竞争", customer_id=customer, ordered_on=dt.date(2026, 1, 5),
                      lines=[OrderLine(description="x", quantity=1, unit_price=5)])  # fmt: skip
        taken = f"{tag}-20260105-0001"

        def the_other_writer(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.lstrip().upper().startswith("INSERT INTO CRM_ORDER ") and not hits:
                hits.append(1)
                with engine.begin() as other:  # another connection, committed before our insert
                    other.exec_driver_sql(
                        "INSERT INTO crm_order (number, kind, title, customer_id, status, ordered_on,"
                        " total_amount, paid_amount, invoiced_amount, max_discount_percent, created_at,"
                        f" updated_at) VALUES ('{taken}', 'order', 'other', {customer}, 'draft',"
                        " '2026-01-05', 0, 0, 0, 0, '2026-01-05 00:00:00', '2026-01-05 00:00:00')"
                    )

        hits: list[int] = []
        engine = db.session.get_bind()
        event.listen(engine, "before_cursor_execute", the_other_writer)
        try:
            order_service.save(db.session, order, user("rep_a"))
        finally:
            event.remove(engine, "before_cursor_execute", the_other_writer)
        assert hits and order.number == f"{tag}-20260105-0002"
        assert order.lines[0].amount == Decimal("5.00")
    finally:
        app.config["CRM_ORDER_NUMBER_PATTERN"] = saved


# --- status rules ---------------------------------------------------------------------------------------
def test_status_rules(api_as) -> None:
    draft = new_order(api_as).json
    url = f"/api/v1/order/{draft['id']}"
    assert call(api_as, "rep_a", "POST", f"{url}/status", {"status": "executing"}).status_code == 400
    order = approved_order(api_as)
    url = f"/api/v1/order/{order['id']}"
    assert order["approved_at"]
    # lines are frozen once submitted
    frozen = call(
        api_as, "rep_a", "PUT", url, {"lines": [{"description": "y", "quantity": 1, "unit_price": 1}]}
    )
    assert frozen.status_code == 400 and "不能修改明细" in frozen.json["message"]["lines"][0]
    assert count_lines(order["id"]) == 1
    # the header may still change (a note), the lines not through their own screen either
    assert call(api_as, "rep_a", "PUT", url, {"notes": "客户要求分批发货"}).status_code == 200
    # no delete once approved: void it
    refused = call(api_as, "rep_a", "DELETE", url)
    assert refused.status_code == 400 and "只能作废" in refused.json["message"]["status"][0]
    assert call(api_as, "rep_a", "POST", f"{url}/submit").status_code == 400  # not a draft any more
    skip = call(api_as, "rep_a", "POST", f"{url}/status", {"status": "completed"})
    assert skip.status_code == 400 and "不能从" in skip.json["message"]["status"][0]
    assert call(api_as, "rep_a", "POST", f"{url}/status", {"status": "approved"}).status_code == 400
    assert call(api_as, "rep_a", "POST", f"{url}/status", {}).status_code == 400
    moved = call(api_as, "rep_a", "POST", f"{url}/status", {"status": "executing"})
    assert moved.status_code == 200 and moved.json["result"]["status"] == "executing"
    done = call(api_as, "rep_a", "POST", f"{url}/status", {"status": "completed"})
    assert done.json["result"]["status"] == "completed"
    no_reason = call(api_as, "rep_a", "POST", f"{url}/status", {"status": "voided"})
    assert no_reason.status_code == 400 and "原因" in no_reason.json["message"]["void_reason"][0]
    voided = call(api_as, "rep_a", "POST", f"{url}/status", {"status": "voided", "reason": "客户取消"})
    assert voided.status_code == 200 and voided.json["result"]["void_reason"] == "客户取消"
    assert call(api_as, "rep_a", "POST", f"{url}/status", {"status": "executing"}).status_code == 400
    assert call(api_as, "rep_a", "DELETE", url).status_code == 400  # voided after approval: kept
    # a draft, or an order voided before approval, can be deleted
    assert call(api_as, "rep_a", "DELETE", f"/api/v1/order/{draft['id']}").status_code == 200
    empty = new_order(api_as, lines=[]).json
    refused = call(api_as, "rep_a", "POST", f"/api/v1/order/{empty['id']}/submit")
    assert refused.status_code == 400 and "明细" in refused.json["message"]["lines"][0]


def test_status_cannot_be_written_directly(api_as) -> None:
    created = new_order(api_as, status="approved")
    assert created.status_code == 400
    draft = new_order(api_as).json
    sneaky = call(api_as, "rep_a", "PUT", f"/api/v1/order/{draft['id']}", {"status": "approved"})
    assert sneaky.status_code == 400


# --- contracts and the signed file ----------------------------------------------------------------------
def test_signed_contract_file(app, api_as, login_as) -> None:
    contract = new_order(
        api_as, kind="contract", sign_date="2026-11-20", start_date="2026-12-01", end_date="2027-11-30"
    ).json
    url = f"/api/v1/order/{contract['id']}/signed_file"

    def upload(name: str, content: bytes, username: str = "rep_a") -> Any:
        return call(api_as, username, "POST", url, data={"file": (io.BytesIO(content), name)},
                    content_type="multipart/form-data")  # fmt: skip

    assert upload("合同.exe", b"MZ\x90\x00").status_code == 400
    disguised = upload("合同.pdf", b"MZ\x90\x00 not a pdf")
    assert disguised.status_code == 400 and "扩展名" in disguised.json["message"]["signed_file"][0]
    saved = app.config["CRM_CONTRACT_FILE_MB"]
    app.config["CRM_CONTRACT_FILE_MB"] = 0
    try:
        assert "MB" in upload("合同.pdf", b"%PDF-1.4 big").json["message"]["signed_file"][0]
    finally:
        app.config["CRM_CONTRACT_FILE_MB"] = saved
    stored = upload("合同.pdf", b"%PDF-1.4 signed")
    assert stored.status_code == 200, stored.json
    assert stored.json["result"]["signed_file"]
    for username, expected in (("rep_a", 200), ("manager1", 200), ("rep_c", 404), ("manager2", 404)):
        response = call(api_as, username, "GET", url)
        assert response.status_code == expected, username
        if expected == 200:
            assert response.data == b"%PDF-1.4 signed"
    assert upload("合同.pdf", b"%PDF-1.4 x", "rep_c").status_code == 404
    assert login_as("rep_a").get(f"/orderview/signed_file/{contract['id']}").data == b"%PDF-1.4 signed"
    assert login_as("rep_c").get(f"/orderview/signed_file/{contract['id']}").status_code == 404
    plain = new_order(api_as).json
    url = f"/api/v1/order/{plain['id']}/signed_file"
    refused = call(api_as, "rep_a", "POST", url, data={"file": (io.BytesIO(b"%PDF-1.4"), "a.pdf")},
                   content_type="multipart/form-data")  # fmt: skip
    assert refused.status_code == 400


def test_expiring_contracts_for_the_workbench(api_as) -> None:
    today = dt.date(2031, 3, 1)
    soon = approved_order(api_as, kind="contract", start_date="2030-03-01", end_date="2031-03-20")
    approved_order(api_as, kind="contract", start_date="2030-03-01", end_date="2031-06-30")  # later
    theirs = approved_order(api_as, "rep_c", kind="contract", start_date="2030-03-01", end_date="2031-03-10")
    mine = [o.id for o in expiring_contracts(db.session, user("rep_a"), today, 30)]
    assert mine == [soon["id"]]
    assert [o.id for o in expiring_contracts(db.session, user("rep_c"), today, 30)] == [theirs["id"]]
    assert {soon["id"], theirs["id"]} <= {
        o.id for o in expiring_contracts(db.session, user("director"), today, 30)
    }


# --- data scope and roles -------------------------------------------------------------------------------
def test_data_scope_on_orders(api_as) -> None:
    order = new_order(api_as).json
    url = f"/api/v1/order/{order['id']}"
    for username, expected in (("rep_a", 200), ("manager1", 200), ("finance", 200), ("rep_c", 404),
                               ("manager2", 404), ("rep_b", 404)):  # fmt: skip
        assert call(api_as, username, "GET", url).status_code == expected, username
    listed = call(api_as, "rep_c", "GET", "/api/v1/order/?q=(page_size:100)").json["result"]
    assert order["id"] not in {row["id"] for row in listed}
    assert call(api_as, "rep_c", "PUT", url, {"notes": "x"}).status_code == 404
    assert call(api_as, "rep_c", "POST", f"{url}/submit").status_code == 404
    assert call(api_as, "finance", "PUT", url, {"notes": "x"}).status_code == 403  # Finance reads orders
    assert call(api_as, "finance", "POST", f"{url}/submit").status_code == 403
    lines = call(
        api_as,
        "rep_c",
        "GET",
        f"/api/v1/orderline/?q=(filters:!((col:order,opr:rel_o_m,value:{order['id']})))",
    )
    assert lines.status_code == 200 and lines.json["result"] == []


# --- screens --------------------------------------------------------------------------------------------
def test_order_screens(api_as, login_as, products) -> None:
    browser = login_as("rep_a")
    assert browser.get("/orderview/list/").status_code == 200
    assert browser.get("/orderview/add").status_code == 200
    order = new_order(api_as, lines=[]).json
    pk = order["id"]
    # a line added through the order's line tab (the related view)
    added = browser.post(
        f"/orderlineview/add?_flt_0_order={pk}",
        data={
            "order": pk,
            "product": products[1],
            "quantity": "4",
            "unit_price": "450.5",
            "discount_percent": "10",
        },
    )
    assert added.status_code == 302, added.get_data(as_text=True)[-2000:]
    db.session.expire_all()
    assert db.session.get(Order, pk).total_amount == Decimal("1621.80")
    add_url = f"/orderlineview/add?_flt_0_order={pk}"
    bad = browser.post(add_url, data={"order": pk, "quantity": "-1", "description": "x", "unit_price": "1"})
    assert bad.status_code == 200 and "应大于 0" in bad.get_data(as_text=True)
    page = browser.get(f"/orderview/show/{pk}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and order["result"]["number"] in text
    assert "硫酸" in text and "提交审批" in text
    assert "回款" in text  # a rep sees the collections tab of their own order (read-only)
    submitted = browser.post(f"/orderview/submit/{pk}")
    assert submitted.status_code == 302
    db.session.expire_all()
    assert db.session.get(Order, pk).status == "approved"
    locked = browser.post(add_url, data={"order": pk, "quantity": "1", "description": "x", "unit_price": "1"})
    assert locked.status_code == 200 and count_lines(pk) == 1
    voided = browser.post(f"/orderview/move/{pk}", data={"status": "voided", "reason": "重复下单"})
    assert voided.status_code == 302
    db.session.expire_all()
    assert db.session.get(Order, pk).status == "voided"
    assert login_as("rep_c").get(f"/orderview/show/{pk}").status_code == 404
    readonly = login_as("readonly").get(f"/orderview/show/{pk}")
    assert readonly.status_code == 200 and "PaymentView" not in readonly.get_data(as_text=True)


# --- what the approvals engine reads --------------------------------------------------------------------
def test_order_is_registered_with_the_approvals_engine(api_as) -> None:
    kind = DOCUMENT_KINDS["order"]
    line = {"description": "a", "quantity": 2, "unit_price": 100, "discount_percent": 15}
    order = db.session.get(Order, new_order(api_as, lines=[line]).json["id"])
    order.custom = {"region_code": "华东"}
    assert kind.amount(order) == Decimal("170.00")
    assert kind.field_value(order, "total_amount") == Decimal("170.00")
    assert kind.field_value(order, "max_discount_percent") == Decimal("15")
    assert kind.field_value(order, "kind") == "order"
    assert kind.field_value(order, "custom.region_code") == "华东"
    assert kind.field_value(order, "custom.missing") is None
    assert kind.field_value(order, "paid_percent") == 0
    assert kind.field_value(order, "__class__") is None
    assert order.number in kind.title(order)
    db.session.rollback()
    assert {"order", "payment", "invoice"} <= set(DOCUMENT_KINDS)


# --- the customer's invoicing details ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tax_number", "ok"),
    [("370502123456789", True), ("ab370502123456789012", True), ("3705021234567890", False),
     ("91370502ABCDEFGH1X", False), ("37050212345678@", False)],
)  # fmt: skip
def test_customer_tax_number(api_as, tax_number, ok) -> None:
    # invoicing details are for Finance and Admin only (field permissions): the admin enters them
    response = call(api_as, "admin", "POST", "/api/v1/customer/",
                    {"name": unique_name("开票客户"), "tax_number": tax_number})  # fmt: skip
    if ok:
        assert response.status_code == 201, response.json
        shown = call(api_as, "admin", "GET", f"/api/v1/customer/{response.json['id']}").json["result"]
        assert shown["tax_number"] == tax_number.upper()
    else:
        assert response.status_code == 400 and "tax_number" in response.json["message"]


def test_customer_tax_number_as_credit_code(api_as) -> None:
    code = valid_credit_code()
    response = call(
        api_as,
        "admin",  # invoicing details: Finance and Admin only (field permissions)
        "POST",
        "/api/v1/customer/",
        {"name": unique_name("开票客户"), "tax_number": code.lower(), "bank_account": "6222 0216 0000"},
    )
    assert response.status_code == 201, response.json
    shown = call(api_as, "admin", "GET", f"/api/v1/customer/{response.json['id']}").json["result"]
    assert shown["tax_number"] == code and shown["bank_account"] == "622202160000"
