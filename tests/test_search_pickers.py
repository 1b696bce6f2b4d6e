"""Select boxes of large tables: filter bars and the search API's pickers.

A filter bar's customer, order, opportunity or ticket is typed and looked up (the search API),
never listed as every row of the table in every list page; the pickers answer within the data
scope, by number or name prefix, and label a chosen value only for someone who may see it."""

from __future__ import annotations

import json
from decimal import Decimal

from flask import Flask
from sqlalchemy import inspect

from app.customers import customer_service
from app.extensions import db
from app.orders import order_service
from models.customers import Customer
from models.orders import Order, OrderLine
from tests.conftest import unique_mobile, unique_name, user
from views.base import CrmModelView
from views.widgets import REMOTE_KINDS, RemoteSelectField


def _order(owner: str, customer: Customer) -> Order:
    line = OrderLine(description="液碱 32%", quantity=Decimal("2"), unit_price=Decimal("50"))
    order = Order(title=unique_name("选择订单"), customer_id=customer.id, lines=[line])
    return order_service.save(db.session, order, user(owner))


def _named(html: str, name: str) -> bool:
    """Whether the page names it: as text, or in the filter bar's fields (JSON, ASCII-escaped)."""
    return name in html or json.dumps(name)[1:-1] in html


def test_every_filter_bar_types_to_find_a_large_relation(app: Flask) -> None:
    checked = 0
    for view in app.appbuilder.baseviews:
        if not isinstance(view, CrmModelView):
            continue
        relationships = inspect(view.datamodel.obj).relationships
        form = view.search_form()
        for name in view.search_columns:
            relation = relationships.get(name)
            if relation is not None and not relation.uselist and relation.mapper.class_ in REMOTE_KINDS:
                assert isinstance(form[name], RemoteSelectField), (type(view).__name__, name)
                checked += 1
    assert checked >= 12  # orders', opportunities', follow-ups', tasks', plans', ... customer or order


def test_a_list_page_does_not_list_every_customer(app: Flask, login_as) -> None:
    admin = user("admin")
    quiet = customer_service.save(
        db.session, Customer(name=unique_name("无订单客户"), mobile=unique_mobile()), admin
    )
    page = login_as("admin").get("/orderview/list/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "crm-remote-select" in html and not _named(html, quiet.name)


def test_a_filtered_list_names_the_chosen_customer_only_to_who_may_see_it(app: Flask, login_as) -> None:
    rep_c = user("rep_c")
    customer = customer_service.save(db.session, Customer(name=unique_name("丙的客户"), owner=rep_c), rep_c)
    url = f"/orderview/list/?_flt_0_customer={customer.id}"
    assert _named(login_as("rep_c").get(url).get_data(as_text=True), customer.name)
    assert not _named(login_as("rep_a").get(url).get_data(as_text=True), customer.name)


def test_the_order_picker_finds_by_number_within_the_data_scope(app: Flask, api_as) -> None:
    rep_a, rep_c = user("rep_a"), user("rep_c")
    mine = _order(
        "rep_a", customer_service.save(db.session, Customer(name=unique_name("甲客户"), owner=rep_a), rep_a)
    )
    theirs = _order(
        "rep_c", customer_service.save(db.session, Customer(name=unique_name("丙客户"), owner=rep_c), rep_c)
    )
    client, headers = api_as("rep_a")
    found = client.get("/api/v1/search/", query_string={"kind": "order", "q": mine.number}, headers=headers)
    assert found.status_code == 200
    assert [hit["id"] for hit in found.json["result"]] == [mine.id]
    assert found.json["result"][0]["name"] == str(mine)
    hidden = client.get(
        "/api/v1/search/", query_string={"kind": "order", "q": theirs.number}, headers=headers
    )
    assert hidden.json["result"] == []
    by_id = client.get("/api/v1/search/", query_string={"kind": "order", "id": theirs.id}, headers=headers)
    assert by_id.json["result"] == []
    prefix = mine.number.rsplit("-", 1)[0]  # the day's numbers: rep_a sees only their own
    day = client.get(
        "/api/v1/search/", query_string={"kind": "order", "q": prefix, "limit": 50}, headers=headers
    )
    numbers = [hit["name"].split(" ")[0] for hit in day.json["result"]]
    assert mine.number in numbers and theirs.number not in numbers and numbers == sorted(numbers)
    admin_client, admin_headers = api_as("admin")
    seen = admin_client.get(
        "/api/v1/search/", query_string={"kind": "order", "id": theirs.id}, headers=admin_headers
    )
    assert [hit["id"] for hit in seen.json["result"]] == [theirs.id]


def test_a_picker_without_a_query_finds_nothing(app: Flask, api_as) -> None:
    client, headers = api_as("admin")
    for kind in ("order", "opportunity", "ticket"):
        answer = client.get("/api/v1/search/", query_string={"kind": kind, "q": "  "}, headers=headers)
        assert answer.status_code == 200 and answer.json["result"] == []
