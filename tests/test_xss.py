"""Browser attacks. Stored XSS: script and attribute-breaking payloads typed into every free-text
field (standard and custom) of the main records come back escaped on every screen that shows them: lists, show
pages, edit forms, the customer 360 page with its tabs and history, the workbench, global search
and the opportunity board. The raw tag never reaches a page. CSRF: with CSRF protection on (as
in production), a logged-in form POST or cookie-authenticated API write without the token is a
400 that writes nothing; with the token it goes through."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, select

from app.extensions import db
from customfields.definitions import CustomField, bump_version
from customfields.indexes import sync_indexes
from customfields.mixin import CUSTOMISABLE
from models.customers import Customer
from models.sales import Pipeline, Stage
from tests.conftest import PASSWORD, login, token_for, unique_mobile, unique_name
from tests.login_support import csrf_from, other_app

SCRIPT = "<script>alert(1)</script>"
IMAGE = '"><img src=x onerror=alert(1)>'
PAYLOADS = {"script": SCRIPT, "image": IMAGE}
#: what must never reach a page, and what the escaped payload looks like (Jinja's escape)
RAW = ["<script>alert(1)", "<img src=x onerror"]
ESCAPED = {"script": "&lt;script&gt;alert(1)&lt;/script&gt;", "image": "&lt;img src=x onerror=alert(1)&gt;"}

#: entity -> the free-text fields a user types (choices, numbers, dates and checked formats such as
#: mobile, e-mail, credit code are validated and cannot hold markup)
TEXT_FIELDS = {
    "customer": ["name", "occupation", "street", "notes"],
    "contact": ["name", "title", "wechat", "notes"],
    "lead": ["name", "company", "title", "interest", "notes"],
    "opportunity": ["name"],
    "order": ["title", "notes"],
    "interaction": ["subject", "content", "outcome"],
    "task": ["title", "notes"],
}
SCREENS = {
    "customer": ("/customerview", "CustomerView"),
    "contact": ("/contactview", "ContactView"),
    "lead": ("/leadview", "LeadView"),
    "opportunity": ("/opportunityview", "OpportunityView"),
    "order": ("/orderview", "OrderView"),
    "interaction": ("/interactionview", "InteractionView"),
    "task": ("/taskview", "TaskView"),
}
#: the invoicing details: Finance and Admin only (field rules), so Admin types them
FINANCE_FIELDS = ["invoice_title", "bank_name", "invoice_address_phone"]
PREFIX = f"XSS{os.getpid()}"


def _texts(entity: str, payload: str, kind: str) -> dict[str, str]:
    # names carry a searchable prefix; every field its own marker so a page shows which one leaked
    return {field: f"{PREFIX}{kind}{field}{payload}" for field in TEXT_FIELDS[entity]}


@pytest.fixture(scope="module")
def stored(app: Flask) -> Iterator[dict[str, Any]]:
    """For each payload, one record of every entity by rep_a with the payload in every text field,
    a custom text field holding it, a board of its own, and an edit so the history shows it."""
    with app.app_context():
        client = app.test_client()
        admin, rep = token_for(client, "admin"), token_for(client, "rep_a")
        field = client.post(
            "/api/v1/customfield/",
            json={"entity": "customer", "label_zh": "XSS备注", "field_type": "text", "show_in_list": True,
                  "api_name": f"xss{os.getpid()}"},
            headers=admin,
        )  # fmt: skip
        assert field.status_code == 201, field.json
        custom = f"xss{os.getpid()}"
        # the board's own names (set up by an admin) carry the payloads too
        flow = Pipeline(name=f"XSS流程{os.getpid()}{IMAGE}", position=1000)  # never the default
        flow.stages = [Stage(name=f"初步接触{SCRIPT}", position=0, probability=10)]
        db.session.add(flow)
        db.session.commit()
        soon = (dt.date.today() + dt.timedelta(days=1)).isoformat()

        def post(resource: str, body: dict[str, Any]) -> int:
            response = client.post(f"/api/v1/{resource}/", json=body, headers=rep)
            assert response.status_code == 201, (resource, response.json)
            return response.json["id"]

        ids: dict[str, dict[str, int]] = {}
        for kind, payload in PAYLOADS.items():
            made: dict[str, int] = {}
            made["customer"] = post(
                "customer",
                {**_texts("customer", payload, kind), "mobile": unique_mobile(),
                 "custom": {custom: f"{PREFIX}{kind}custom{payload}"}},
            )  # fmt: skip
            customer = made["customer"]
            made["contact"] = post("contact", {**_texts("contact", payload, kind), "customer": customer})
            made["lead"] = post("lead", {**_texts("lead", payload, kind), "mobile": unique_mobile()})
            made["opportunity"] = post(
                "opportunity",
                {**_texts("opportunity", payload, kind), "customer": customer, "pipeline": flow.id,
                 "amount": 1000},
            )  # fmt: skip
            made["order"] = post(
                "order",
                {**_texts("order", payload, kind), "customer": customer,
                 "lines": [{"description": f"{PREFIX}{kind}line{payload}", "quantity": 1, "unit_price": 10}]},
            )  # fmt: skip
            made["interaction"] = post(
                "interaction", {**_texts("interaction", payload, kind), "customer": customer}
            )
            made["task"] = post(
                "task", {**_texts("task", payload, kind), "customer": customer, "due_at": f"{soon} 09:00:00"}
            )
            # an edit: the History tab then shows the payload as old and new value
            edited = client.put(
                f"/api/v1/customer/{customer}",
                json={"street": f"{PREFIX}{kind}street2{payload}"},
                headers=rep,
            )
            assert edited.status_code == 200, edited.json
            finance = {name: f"{PREFIX}{kind}{name}{payload}" for name in FINANCE_FIELDS}
            edited = client.put(f"/api/v1/customer/{customer}", json=finance, headers=admin)
            assert edited.status_code == 200, edited.json
            ids[kind] = made
        yield {"ids": ids, "pipeline": flow.id, "stage": flow.stages[0].id}
        db.session.rollback()
        for definition in db.session.scalars(select(CustomField).where(CustomField.api_name == custom)).all():
            sync_indexes(db.session, CUSTOMISABLE[definition.entity], definition, deleted=True)
        db.session.execute(delete(CustomField).where(CustomField.api_name == custom))
        bump_version(db.session)
        db.session.commit()


@pytest.fixture(scope="module")
def rep_a(app: Flask) -> Any:
    return login(app.test_client(), "rep_a")


def check(page: str, where: str, kinds: tuple[str, ...] = ("script", "image")) -> None:
    for raw in RAW:
        assert raw not in page, (where, page[max(0, page.find(raw) - 300) : page.find(raw) + 100])
    for kind in kinds:
        assert ESCAPED[kind] in page, (where, kind)


def fetch(client: Any, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.get_data(as_text=True)


def test_stored_values_are_the_payloads_unchanged(app: Flask, stored: dict[str, Any]) -> None:
    """Escaping is the screens' job: the data keeps what was typed (no lossy 'sanitising')."""
    client = app.test_client()
    headers = token_for(client, "rep_a")
    for kind, payload in PAYLOADS.items():
        for entity, pk in stored["ids"][kind].items():
            row = client.get(f"/api/v1/{entity}/{pk}", headers=headers).json["result"]
            for field, value in _texts(entity, payload, kind).items():
                if entity == "customer" and field == "street":
                    value = f"{PREFIX}{kind}street2{payload}"
                assert row[field] == value, (entity, field)


@pytest.mark.parametrize("entity", list(SCREENS))
def test_lists(rep_a: Any, stored: dict[str, Any], entity: str) -> None:
    route, view = SCREENS[entity]
    page = fetch(rep_a, f"{route}/list/?psize_{view}=100&_oc_{view}=id&_od_{view}=desc")
    check(page, f"{entity} list")


@pytest.mark.parametrize("entity", list(SCREENS))
@pytest.mark.parametrize("page", ["show", "edit"])
def test_show_and_edit_pages(rep_a: Any, stored: dict[str, Any], entity: str, page: str) -> None:
    for kind in PAYLOADS:
        pk = stored["ids"][kind][entity]
        check(fetch(rep_a, f"{SCREENS[entity][0]}/{page}/{pk}"), f"{entity} {page}", (kind,))


def test_customer_360_page_with_tabs_custom_field_and_history(rep_a: Any, stored: dict[str, Any]) -> None:
    for kind in PAYLOADS:
        page = fetch(rep_a, f"/customerview/show/{stored['ids'][kind]['customer']}")
        check(page, "customer 360", (kind,))
        escaped = ESCAPED[kind]
        for text in (f"{kind}custom", f"{kind}street2"):
            assert f"{PREFIX}{text}" in page, text
        # the record's fields, the custom field and the tabs' rows (contacts, opportunities...)
        assert page.count(escaped) >= 10, page.count(escaped)


def test_history_of_a_record(app: Flask, stored: dict[str, Any]) -> None:
    """The History tab's full page (old -> new values) as someone who may read it."""
    admin = login(app.test_client(), "admin")
    for kind in PAYLOADS:
        history = fetch(admin, f"/customerview/history/{stored['ids'][kind]['customer']}")
        check(history, "history", (kind,))
        assert f"{PREFIX}{kind}street2" in history


def test_finance_fields_as_admin(app: Flask, stored: dict[str, Any]) -> None:
    admin = login(app.test_client(), "admin")
    for kind in PAYLOADS:
        pk = stored["ids"][kind]["customer"]
        for page in ("show", "edit"):
            html = fetch(admin, f"/customerview/{page}/{pk}")
            check(html, f"customer {page} as admin", (kind,))
            for name in FINANCE_FIELDS:
                assert f"{PREFIX}{kind}{name}" in html, (page, name)


def test_workbench(rep_a: Any, stored: dict[str, Any]) -> None:
    """The tasks due tomorrow (and the customers to contact) are listed there, escaped."""
    check(fetch(rep_a, "/"), "workbench")


def test_global_search(rep_a: Any, stored: dict[str, Any]) -> None:
    page = fetch(rep_a, f"/search/?q={PREFIX}")
    check(page, "search")


def test_opportunity_board(app: Flask, rep_a: Any, stored: dict[str, Any]) -> None:
    """The board page holds the pipeline's and stages' names (escaped, also in its JSON config);
    the cards come from the API as JSON data and kanban.js writes them with textContent."""
    page = fetch(rep_a, f"/opportunityboard/{stored['pipeline']}")
    check(page, "board", ())
    assert f"XSS流程{os.getpid()}" in page
    client = app.test_client()
    headers = token_for(client, "rep_a")
    cards = client.get(f"/api/v1/kanban/{stored['pipeline']}/{stored['stage']}", headers=headers)
    assert cards.status_code == 200 and cards.mimetype == "application/json"
    text = cards.get_data(as_text=True)
    for kind in PAYLOADS:
        assert f"{PREFIX}{kind}name" in text
    script = (Path(app.root_path) / "static" / "crm" / "kanban.js").read_text(encoding="utf-8")
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "textContent" in script


# --- CSRF -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def csrf_app(database_url: str) -> Flask:
    return other_app(database_url, WTF_CSRF_ENABLED=True)


def _csrf_login(app: Flask, username: str) -> Any:
    client = app.test_client()
    token = csrf_from(client.get("/login/").get_data(as_text=True))
    response = client.post("/login/", data={"username": username, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return client


def _customers_named(name: str) -> int:
    db.session.rollback()
    return len(db.session.scalars(select(Customer.id).where(Customer.name == name)).all())


def test_form_posts_without_the_token_fail_and_write_nothing(csrf_app: Flask) -> None:
    with csrf_app.app_context():
        client = _csrf_login(csrf_app, "rep_a")
        name = unique_name("CSRF客户")
        form = {"kind": "company", "name": name, "mobile": unique_mobile(), "status": "following"}
        assert client.post("/customerview/add", data=form).status_code == 400
        assert _customers_named(name) == 0
        token = csrf_from(client.get("/customerview/add").get_data(as_text=True))
        created = client.post("/customerview/add", data={**form, "csrf_token": token})
        assert created.status_code == 302, created.get_data(as_text=True)[:500]
        assert _customers_named(name) == 1
        pk = db.session.scalar(select(Customer.id).where(Customer.name == name))
        # a forged edit and a forged delete of one's own record: refused, the record unchanged
        forged = {**form, "name": name + "改"}
        assert client.post(f"/customerview/edit/{pk}", data=forged).status_code == 400
        assert client.post(f"/customerview/delete/{pk}").status_code == 400
        assert _customers_named(name) == 1 and _customers_named(name + "改") == 0


def test_cookie_api_write_needs_the_csrf_header(csrf_app: Flask) -> None:
    with csrf_app.app_context():
        client = _csrf_login(csrf_app, "rep_a")
        name = unique_name("CSRF接口客户")
        refused = client.post("/api/v1/customer/", json={"name": name})
        assert refused.status_code == 400, refused.get_data(as_text=True)
        assert "csrf_token" in refused.json["message"]
        assert _customers_named(name) == 0
        token = csrf_from(client.get("/customerview/add").get_data(as_text=True))
        wrong = client.post("/api/v1/customer/", json={"name": name}, headers={"X-CSRFToken": "forged"})
        assert wrong.status_code == 400 and _customers_named(name) == 0
        accepted = client.post("/api/v1/customer/", json={"name": name}, headers={"X-CSRFToken": token})
        assert accepted.status_code == 201, accepted.json
        assert _customers_named(name) == 1
        pk = accepted.json["id"]
        assert client.delete(f"/api/v1/customer/{pk}").status_code == 400
        assert _customers_named(name) == 1
