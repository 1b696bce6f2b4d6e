"""Direct object access by id across owners: rep_a types rep_c's record ids into the screens'
and the API's URLs. Every read answers 404 (the record is as good as missing: no existence
leak), every write answers exactly what it answers for an id that does not exist, and nothing
changes (neither the row nor its audit trail)."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, inspect, select

from app.audit import history_clause
from app.extensions import db
from models.audit import AuditLog
from models.customers import Contact, Customer
from models.orders import Invoice, Order, Payment, PaymentPlan
from models.sales import Interaction, Lead, Opportunity, Pipeline, Stage, Task
from tests.conftest import token_for, unique_mobile, unique_name

MISSING = 999_999_999

#: resource -> (API path, screen path, model, a text field an edit would change)
RESOURCES: dict[str, tuple[str, str, type, str]] = {
    "customer": ("/api/v1/customer", "/customerview", Customer, "name"),
    "contact": ("/api/v1/contact", "/contactview", Contact, "name"),
    "lead": ("/api/v1/lead", "/leadview", Lead, "name"),
    "opportunity": ("/api/v1/opportunity", "/opportunityview", Opportunity, "name"),
    "order": ("/api/v1/order", "/orderview", Order, "title"),
    "interaction": ("/api/v1/interaction", "/interactionview", Interaction, "content"),
    "task": ("/api/v1/task", "/taskview", Task, "title"),
    "payment plan": ("/api/v1/paymentplan", "/paymentplanview", PaymentPlan, "notes"),
    "payment": ("/api/v1/payment", "/paymentview", Payment, "notes"),
    "invoice": ("/api/v1/invoice", "/invoiceview", Invoice, "notes"),
}


def _post(client: Any, headers: dict[str, str], path: str, body: dict[str, Any]) -> int:
    response = client.post(f"{path}/", json=body, headers=headers)
    assert response.status_code == 201, (path, response.json)
    return response.json["id"]


@pytest.fixture(scope="module")
def theirs(app: Flask) -> dict[str, int]:
    """One record of each kind owned by rep_c (team 2); money documents entered by Finance."""
    with app.app_context():
        client = app.test_client()
        rep_c, finance = token_for(client, "rep_c"), token_for(client, "finance")
        pipeline = db.session.scalar(select(Pipeline.id).order_by(Pipeline.id))
        if pipeline is None:
            flow = Pipeline(name=f"越权测试流程{os.getpid()}", position=1000)
            flow.stages = [Stage(name="初步接触", position=0, probability=10)]
            db.session.add(flow)
            db.session.commit()
            pipeline = flow.id
        due = (dt.date.today() + dt.timedelta(days=30)).isoformat()
        ids: dict[str, int] = {}
        ids["customer"] = _post(client, rep_c, "/api/v1/customer", {"name": unique_name("rep_c越权客户")})
        customer = ids["customer"]
        ids["contact"] = _post(client, rep_c, "/api/v1/contact", {"name": "赵六", "customer": customer})
        ids["lead"] = _post(client, rep_c, "/api/v1/lead", {"name": "越权线索", "mobile": unique_mobile()})
        ids["opportunity"] = _post(
            client, rep_c, "/api/v1/opportunity",
            {"name": "越权商机", "customer": customer, "pipeline": pipeline},
        )
        ids["order"] = _post(
            client, rep_c, "/api/v1/order",
            {"title": unique_name("越权订单"), "customer": customer,
             "lines": [{"description": "液碱 32%", "quantity": 1, "unit_price": 10000}]},
        )  # fmt: skip
        ids["interaction"] = _post(
            client, rep_c, "/api/v1/interaction", {"customer": customer, "content": "拜访"}
        )
        ids["task"] = _post(
            client, rep_c, "/api/v1/task",
            {"title": "回访", "due_at": f"{due} 10:00:00", "customer": customer},
        )
        order = ids["order"]
        submitted = client.post(f"/api/v1/order/{order}/submit", headers=rep_c)
        assert submitted.status_code == 200, submitted.json
        assert submitted.json["result"]["status"] == "approved", "an approval flow for orders is active"
        ids["payment plan"] = _post(
            client, finance, "/api/v1/paymentplan",
            {"order": order, "planned_amount": 5000, "planned_date": due},
        )
        ids["payment"] = _post(
            client, finance, "/api/v1/payment",
            {"order": order, "amount": 1000, "received_on": dt.date.today().isoformat()},
        )  # fmt: skip
        ids["invoice"] = _post(
            client, finance, "/api/v1/invoice", {"order": order, "amount": 1000, "kind": "normal"}
        )
        return ids


def snapshot(model: type, pk: int) -> tuple[dict[str, Any], int]:
    """Every column of the row, and how many audit rows its history has."""
    db.session.expire_all()
    row = db.session.get(model, pk)
    assert row is not None, "the record was deleted"
    columns = {attr.key: getattr(row, attr.key) for attr in inspect(model).column_attrs}
    entity = model.__tablename__.removeprefix("crm_")
    trail = db.session.scalar(
        select(func.count()).select_from(AuditLog).where(history_clause(db.session, entity, pk))
    )
    return columns, trail


@pytest.fixture(scope="module")
def rep_a(app: Flask) -> dict[str, Any]:
    from tests.conftest import login

    client = app.test_client()
    return {"screen": login(app.test_client(), "rep_a"), "api": client, "headers": token_for(client, "rep_a")}


@pytest.mark.parametrize("resource", list(RESOURCES))
def test_api_by_id_of_another_owner(theirs: dict[str, int], rep_a: dict[str, Any], resource: str) -> None:
    path, _screen, model, field = RESOURCES[resource]
    pk = theirs[resource]
    before = snapshot(model, pk)
    client, headers = rep_a["api"], rep_a["headers"]
    assert client.get(f"{path}/{pk}", headers=headers).status_code == 404
    for method, body in (("PUT", {field: "越权改写"}), ("DELETE", None)):
        answer = client.open(f"{path}/{pk}", method=method, json=body, headers=headers)
        missing = client.open(f"{path}/{MISSING}", method=method, json=body, headers=headers)
        # rep_a may write this kind (404: not there for them) or may not at all (403 for any id):
        # either way the answer is the one for a record that does not exist
        assert answer.status_code in (403, 404), (method, answer.status_code, answer.get_data(as_text=True))
        assert answer.status_code == missing.status_code, method
    listed = client.get(f"{path}/?q=(page_size:100,order_column:id,order_direction:desc)", headers=headers)
    assert listed.status_code == 200
    assert pk not in {row.get("id") for row in listed.json["result"]} | set(listed.json.get("ids", []))
    assert snapshot(model, pk) == before


@pytest.mark.parametrize("resource", list(RESOURCES))
def test_screens_by_id_of_another_owner(theirs: dict[str, int], rep_a: dict[str, Any], resource: str) -> None:
    _path, screen, model, field = RESOURCES[resource]
    pk = theirs[resource]
    before = snapshot(model, pk)
    client = rep_a["screen"]
    assert client.get(f"{screen}/show/{pk}").status_code == 404
    for method, url, data in (
        ("GET", f"{screen}/edit/{{pk}}", None),
        ("POST", f"{screen}/edit/{{pk}}", {field: "越权改写"}),
        ("POST", f"{screen}/delete/{{pk}}", None),
    ):
        answer = client.open(url.format(pk=pk), method=method, data=data)
        missing = client.open(url.format(pk=MISSING), method=method, data=data)
        assert answer.status_code in (403, 404), (method, url, answer.status_code)
        assert answer.status_code == missing.status_code, (method, url)
    assert snapshot(model, pk) == before


def test_the_owner_reaches_the_same_records(app: Flask, theirs: dict[str, int]) -> None:
    """The 404s above are the scope at work, not broken URLs: rep_c opens every one of them."""
    client = app.test_client()
    headers = token_for(client, "rep_c")
    for resource, (path, _screen, _model, _field) in RESOURCES.items():
        assert client.get(f"{path}/{theirs[resource]}", headers=headers).status_code == 200, resource
