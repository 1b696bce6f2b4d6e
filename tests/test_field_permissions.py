"""Field permissions (字段权限): hidden, masked and read-only fields per role on every way out (list,
detail page, forms, REST, search, export), the admin's screen, custom fields, and 查重."""

from __future__ import annotations

import csv
import io
import json
import random
import re
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from stdnum.cn import ric

from app.extensions import db
from app.permissions import (
    mask_account,
    mask_amount,
    mask_default,
    mask_email,
    mask_id_number,
    mask_mobile,
    mask_name,
    visible_field_names,
)
from app.services import service_for
from models.customers import Customer
from models.permissions import FieldRule
from models.security import RoleDataScope
from tests.conftest import PASSWORD, unique_mobile, unique_name, user
from tests.test_orders import new_order

FINANCE_FIELDS = [
    "credit_limit", "bank_name", "bank_account", "tax_number", "invoice_title", "invoice_address_phone",
]  # fmt: skip
#: who sees the finance fields by default, among the test organisation's roles
SEES_FINANCE = {"admin": True, "finance": True, "manager1": False, "rep_a": False}


def _role_pk(name: str) -> int:
    role_model = type(user("admin").roles[0])
    return db.session.scalar(select(role_model.id).where(role_model.name == name))


def valid_id_number() -> str:
    birth = f"199{random.randint(0, 9)}0{random.randint(1, 9)}1{random.randint(0, 8)}"
    body = f"370502{birth}{random.randint(100, 999)}"
    return body + ric.calc_check_digit(body + "0")  # stdnum drops the last character


def new_customer(api_as, owner: str = "rep_a", **values: Any) -> tuple[int, dict[str, Any]]:
    """A customer of `owner`, created by the admin with its finance fields filled in."""
    admin, headers = api_as("admin")
    suffix = f"{random.randint(0, 9999):04d}"
    body = {
        "name": unique_name("字段权限客户"),
        "mobile": unique_mobile(),
        "credit_limit": 123456.78,
        "bank_name": "中国工商银行东营分行" + suffix,
        "bank_account": "62220216" + f"{random.randint(0, 99999999):08d}",
        "tax_number": "37050212345" + suffix,
        "invoice_title": "东营开票名称" + suffix,
        "invoice_address_phone": "东营市府前大街" + suffix,
        "owner": user(owner).id,
        **values,
    }
    created = admin.post("/api/v1/customer/", json=body, headers=headers)
    assert created.status_code == 201, created.json
    return created.json["id"], body


def add_rule(api_as, role: str, entity: str, field: str, mode: str) -> int:
    admin, headers = api_as("admin")
    response = admin.post(
        "/api/v1/fieldrule/",
        json={"role": _role_pk(role), "entity": entity, "field": field, "mode": mode},
        headers=headers,
    )
    assert response.status_code == 201, response.json
    return response.json["id"]


def drop_rule(api_as, pk: int) -> None:
    admin, headers = api_as("admin")
    assert admin.delete(f"/api/v1/fieldrule/{pk}", headers=headers).status_code == 200


# --- masking, one function per kind ------------------------------------------------------------------
def test_masks_per_kind() -> None:
    assert mask_mobile("13812341234") == "138****1234"
    assert mask_id_number("370502199001011234") == "370502********1234"
    assert mask_account("6222021600001234") == "6222********1234"
    assert mask_account("370502123456789") == "3705*******6789"
    assert mask_email("wang.fang@example.cn") == "w***@example.cn"
    assert mask_name("王芳") == "王**" and mask_name("欧阳娜娜") == "欧**"
    assert mask_amount(Decimal("1234.50")) == "***"
    assert mask_default("ABCDEFG") == "***DEFG" and mask_default("ABC") == "***"


def test_defaults_are_seeded_for_the_built_in_roles() -> None:
    rules = {
        (role.name, rule.entity, rule.field): rule.mode
        for rule, role in db.session.execute(
            select(FieldRule, type(user("admin").roles[0])).join(FieldRule.role)
        )
    }
    for role in ("Sales Rep", "Sales Manager", "Marketing", "Support Agent", "Read Only"):
        for name in FINANCE_FIELDS:
            assert rules[(role, "customer", name)] == "hidden"
        assert rules[(role, "order", "paid_amount")] == "hidden"
        assert rules[(role, "invoice", "bank_account")] == "hidden"
        if hasattr(Customer, "id_number"):
            assert rules[(role, "customer", "id_number")] == "masked"
    assert rules[("Sales Rep", "customer", "mobile")] == "masked_list"
    assert not any(role in ("Finance", "Admin") for role, _e, _f in rules)


def test_seeding_again_keeps_the_admins_changes(app, api_as) -> None:
    rule = db.session.scalar(
        select(FieldRule).where(
            FieldRule.role_id == _role_pk("Marketing"),
            FieldRule.entity == "customer",
            FieldRule.field == "bank_name",
        )
    )
    service_for(FieldRule).delete(db.session, rule, None)
    db.session.commit()
    try:
        app.appbuilder.sm.sync_builtin_roles()
        assert (
            db.session.scalar(
                select(func.count()).where(
                    FieldRule.role_id == _role_pk("Marketing"),
                    FieldRule.entity == "customer",
                    FieldRule.field == "bank_name",
                )
            )
            == 0
        )
    finally:
        again = FieldRule(role_id=_role_pk("Marketing"), entity="customer", field="bank_name", mode="hidden")
        db.session.add(again)
        db.session.commit()


# --- the finance fields, role by role, on every way out ------------------------------------------------
@pytest.mark.parametrize("username", list(SEES_FINANCE))
def test_finance_fields_per_role(api_as, login_as, username: str) -> None:
    pk, body = new_customer(api_as)
    sees = SEES_FINANCE[username]
    client, headers = api_as(username)
    # REST get
    shown = client.get(f"/api/v1/customer/{pk}", headers=headers)
    assert shown.status_code == 200
    for name in FINANCE_FIELDS:
        assert (name in shown.json["result"]) is sees, name
        assert (name in shown.json["show_columns"]) is sees, name
    if sees:
        assert shown.json["result"]["bank_account"] == body["bank_account"]
    # REST list: a selected hidden column is left out, and filtering or ordering by it is refused
    listed = client.get(
        f"/api/v1/customer/?q=(filters:!((col:name,opr:eq,value:'{body['name']}')))", headers=headers
    )
    assert listed.status_code == 200 and [row["id"] for row in listed.json["result"]] == [pk]
    assert body["bank_account"] not in listed.get_data(as_text=True)
    refused = client.get("/api/v1/customer/?q=(filters:!((col:credit_limit,opr:gt,value:0)))",
                         headers=headers)
    ordered = client.get("/api/v1/customer/?q=(order_column:credit_limit)", headers=headers)
    if not sees:
        assert refused.status_code == 400 and "credit_limit" in refused.json["message"]
        assert ordered.status_code == 400 and "credit_limit" in ordered.json["message"]
    # the detail page and the edit form
    page = login_as(username)
    html = page.get(f"/customerview/show/{pk}").get_data(as_text=True)
    for name in ("bank_account", "bank_name", "tax_number", "invoice_title"):
        assert (body[name] in html) is sees, name
    assert ("123,456.78" in html) is sees
    if username != "finance":  # Finance reads customers, edits none
        form = page.get(f"/customerview/edit/{pk}").get_data(as_text=True)
        for name in FINANCE_FIELDS:
            assert (f'name="{name}"' in form) is sees, name
        assert (f'name="{body["bank_name"]}"' not in form) and ((body["bank_name"] in form) is sees)
    # search: the hit shows, its finance data does not; a bank account number finds nothing here
    found = client.get(f"/api/v1/search/?q={body['name']}", headers=headers).json["result"]
    assert [hit["id"] for hit in found] == [pk]
    assert body["bank_account"] not in str(found)
    if hasattr(Customer, "bank_account_bidx"):  # exact search on the encrypted account (blind index)
        by_account = client.get(f"/api/v1/search/?q={body['bank_account']}", headers=headers).json["result"]
        assert (pk in [hit["id"] for hit in by_account]) is sees
    # export (reps export nothing at all: no such permission)
    if username != "rep_a":
        rows = exported(page, f"?_flt_0_name={body['name']}")
        header = rows[0]
        assert ("银行账号" in header) is sees and ("信用额度 (元)" in header) is sees
        assert (body["bank_account"] in str(rows)) is sees


def exported(client, query: str) -> list[list[str]]:
    response = client.get(f"/customerview/export.csv{query}")
    assert response.status_code == 200, response.status_code
    return list(csv.reader(io.StringIO(response.get_data(as_text=True).removeprefix("\ufeff"))))


def test_order_collections_hidden_from_sales(api_as) -> None:
    order = new_order(api_as, "rep_a")
    assert order.status_code == 201, order.json
    pk = order.json["id"]
    assert "paid_amount" not in order.json["result"]  # the rep's own answer to its POST
    for username, sees in (("admin", True), ("finance", True), ("manager1", False), ("rep_a", False)):
        client, headers = api_as(username)
        shown = client.get(f"/api/v1/order/{pk}", headers=headers)
        assert shown.status_code == 200
        result = shown.json["result"]
        assert ("paid_amount" in result) is sees and ("invoiced_amount" in result) is sees


def test_api_info_and_dashboards_leave_hidden_fields_out(api_as) -> None:
    for username, sees in (("rep_a", False), ("admin", True)):
        client, headers = api_as(username)
        info = client.get("/api/v1/customer/_info", headers=headers).json
        names = {column["name"] for column in info["add_columns"]}
        assert "name" in names and ("bank_account" in names) is sees and ("credit_limit" in names) is sees
    rep = visible_field_names(db.session, user("rep_a"), Customer)
    assert "credit_limit" not in rep and rep["mobile"] == "masked_list" and rep["name"] is None
    assert visible_field_names(db.session, user("finance"), Customer)["credit_limit"] is None


# --- masked in lists only, masked everywhere -------------------------------------------------------------
def test_mobile_masked_in_a_reps_lists_only(api_as, login_as) -> None:
    pk, body = new_customer(api_as)
    mobile, masked = body["mobile"], mask_mobile(body["mobile"])
    rep, headers = api_as("rep_a")
    by_name = f"/api/v1/customer/?q=(filters:!((col:name,opr:eq,value:'{body['name']}')))"
    assert rep.get(by_name, headers=headers).json["result"][0]["mobile"] == masked
    assert rep.get(f"/api/v1/customer/{pk}", headers=headers).json["result"]["mobile"] == mobile
    hits = rep.get(f"/api/v1/search/?q={body['name']}", headers=headers).json["result"]
    assert hits[0]["detail"] == masked
    by_mobile = rep.get(f"/api/v1/search/?q={mobile}", headers=headers).json["result"]
    assert [h["id"] for h in by_mobile] == [pk]  # masked in lists only: the rep may search by it
    page = login_as("rep_a")
    list_html = page.get(f"/customerview/list/?_flt_0_name={body['name']}").get_data(as_text=True)
    assert masked in list_html and mobile not in list_html
    assert mobile in page.get(f"/customerview/show/{pk}").get_data(as_text=True)
    # the manager sees it plain everywhere
    manager, manager_headers = api_as("manager1")
    assert manager.get(by_name, headers=manager_headers).json["result"][0]["mobile"] == mobile


def test_id_number_masked_everywhere_but_for_admin_and_finance(api_as, login_as) -> None:
    if not hasattr(Customer, "id_number"):
        pytest.skip("the ID number column is not there yet")
    id_number = valid_id_number()
    pk, _body = new_customer(api_as, kind="individual", id_number=id_number, credit_code=None)
    masked = mask_id_number(id_number)
    for username, plain in (("admin", True), ("finance", True), ("manager1", False), ("rep_a", False)):
        client, headers = api_as(username)
        result = client.get(f"/api/v1/customer/{pk}", headers=headers).json["result"]
        assert result["id_number"] == (id_number if plain else masked), username
        html = login_as(username).get(f"/customerview/show/{pk}").get_data(as_text=True)
        assert (id_number in html) is plain
    rep, headers = api_as("rep_a")
    # masked: not searchable by its value, not changed by the rep (sent back masked it is no change)
    by_id = f"/api/v1/customer/?q=(filters:!((col:id_number,opr:eq,value:'{id_number}')))"
    assert rep.get(by_id, headers=headers).status_code == 400
    assert rep.get(f"/api/v1/search/?q={id_number}", headers=headers).json["result"] == []
    admin, admin_headers = api_as("admin")
    if hasattr(Customer, "id_number_bidx"):
        found = admin.get(f"/api/v1/search/?q={id_number}", headers=admin_headers).json["result"]
        assert [hit["id"] for hit in found] == [pk]
    same = rep.put(f"/api/v1/customer/{pk}", json={"id_number": masked, "notes": "电话回访"}, headers=headers)
    assert same.status_code == 200, same.json
    changed = rep.put(f"/api/v1/customer/{pk}", json={"id_number": valid_id_number()}, headers=headers)
    assert changed.status_code == 403 and "id_number" in changed.json["message"]
    db.session.expire_all()
    assert db.session.get(Customer, pk).id_number == id_number
    form = login_as("rep_a").get(f"/customerview/edit/{pk}").get_data(as_text=True)
    assert id_number not in form and masked in form


def test_a_blank_masked_field_shows_blank_not_none(api_as, login_as) -> None:
    """A person whose ID number is not on file: the rep's page (the number masked for Sales
    Reps) shows an empty cell, as for any other blank field, not the text "None"."""
    pk, _body = new_customer(api_as, kind="individual", credit_code=None)
    html = login_as("rep_a").get(f"/customerview/show/{pk}").get_data(as_text=True)
    cell = html.split("身份证号", 1)[1].split("</tr>", 1)[0]
    assert "None" not in cell, cell


# --- writes: hidden and read-only fields refused on the screen and in the API -------------------------
def test_read_only_and_hidden_fields_are_not_written(api_as, login_as) -> None:
    pk, body = new_customer(api_as, level="key")
    rule = add_rule(api_as, "Sales Rep", "customer", "level", "read_only")
    try:
        rep, headers = api_as("rep_a")
        put = rep.put(f"/api/v1/customer/{pk}", json={"level": "potential", "notes": "改"}, headers=headers)
        assert put.status_code == 403 and "level" in put.json["message"]
        unchanged = rep.put(f"/api/v1/customer/{pk}", json={"level": "key", "notes": "不改"}, headers=headers)
        assert unchanged.status_code == 200, unchanged.json
        hidden = rep.put(f"/api/v1/customer/{pk}", json={"credit_limit": 1}, headers=headers)
        assert hidden.status_code == 403 and "credit_limit" in hidden.json["message"]
        posted = rep.post(
            "/api/v1/customer/", json={"name": unique_name(), "bank_account": "6222000011112222"},
            headers=headers,
        )
        assert posted.status_code == 403 and "bank_account" in posted.json["message"]
        page = login_as("rep_a")
        form = page.get(f"/customerview/edit/{pk}").get_data(as_text=True)
        level_input = re.search(r"<(input|select)[^>]*name=\"level\"[^>]*>", form)
        assert level_input is not None and "disabled" in level_input.group(0)
        crafted = page.post(
            f"/customerview/edit/{pk}",
            data={
                "kind": "company",
                "name": body["name"] + "改",
                "mobile": body["mobile"],
                "level": "potential",
                "status": "following",
                "owner": str(user("rep_a").id),
                "credit_limit": "1",
                "bank_account": "6222000011112222",
            },
        )
        assert crafted.status_code == 302
        db.session.expire_all()
        saved = db.session.get(Customer, pk)
        assert saved.name == body["name"] + "改" and saved.status == "following"  # the rest is saved
        assert saved.level == "key"  # read-only: kept
        assert saved.credit_limit == Decimal("123456.78") and saved.bank_account == body["bank_account"]
    finally:
        drop_rule(api_as, rule)


# --- an admin changes a rule in the browser: the very next request obeys ------------------------------
def test_rule_changed_in_the_browser_applies_at_the_next_request(api_as, login_as) -> None:
    pk, body = new_customer(api_as, website="https://dongying.example.cn")
    rep, headers = api_as("rep_a")
    assert rep.get(f"/api/v1/customer/{pk}", headers=headers).json["result"]["website"] == body["website"]
    admin = login_as("admin")
    menu = admin.get("/customerview/list/").get_data(as_text=True)
    assert "/fieldruleview/list/" in menu and "/roledatascopeview/list/" in menu  # side by side
    page = admin.get("/fieldruleview/add").get_data(as_text=True)
    assert "字段" in page and "数据权限" in admin.get("/fieldruleview/list/").get_data(as_text=True)
    added = admin.post(
        "/fieldruleview/add",
        data={"role": str(_role_pk("Sales Rep")), "entity": "customer", "field": "website", "mode": "hidden"},
    )
    assert added.status_code == 302
    rule = db.session.scalar(
        select(FieldRule).where(FieldRule.field == "website", FieldRule.role_id == _role_pk("Sales Rep"))
    )
    assert rule is not None
    try:
        assert "website" not in rep.get(f"/api/v1/customer/{pk}", headers=headers).json["result"]
        admin.post(f"/fieldruleview/edit/{rule.id}", data={
            "role": str(_role_pk("Sales Rep")), "entity": "customer", "field": "website", "mode": "masked",
        })  # fmt: skip
        shown = rep.get(f"/api/v1/customer/{pk}", headers=headers).json["result"]["website"]
        assert shown == mask_default(body["website"])
    finally:
        admin.post(f"/fieldruleview/delete/{rule.id}")
    assert rep.get(f"/api/v1/customer/{pk}", headers=headers).json["result"]["website"] == body["website"]


def test_data_scope_changed_in_the_browser_applies_at_the_next_request(api_as, login_as) -> None:
    pk, _body = new_customer(api_as, owner="rep_b")
    rep, headers = api_as("rep_a")
    assert rep.get(f"/api/v1/customer/{pk}", headers=headers).status_code == 404
    admin = login_as("admin")
    admin.post("/roledatascopeview/add", data={"role": str(_role_pk("Sales Rep")), "entity": "customer",
                                               "scope": "department"})  # fmt: skip
    scope = db.session.scalar(
        select(RoleDataScope).where(
            RoleDataScope.role_id == _role_pk("Sales Rep"), RoleDataScope.entity == "customer"
        )
    )
    assert scope is not None
    try:
        assert rep.get(f"/api/v1/customer/{pk}", headers=headers).status_code == 200
    finally:
        admin.post(f"/roledatascopeview/delete/{scope.id}")
    assert rep.get(f"/api/v1/customer/{pk}", headers=headers).status_code == 404


def test_a_role_given_to_a_user_applies_at_the_next_request(api_as) -> None:
    """Several roles: per field the least restrictive (Finance lifts the rep's hidden fields)."""
    pk, body = new_customer(api_as)
    rep, headers = api_as("rep_a")
    assert "credit_limit" not in rep.get(f"/api/v1/customer/{pk}", headers=headers).json["result"]
    rep_user, finance_role = user("rep_a"), user("finance").roles[0]
    rep_user.roles.append(finance_role)
    db.session.commit()
    try:
        result = rep.get(f"/api/v1/customer/{pk}", headers=headers).json["result"]
        assert result["credit_limit"] == 123456.78 or str(result["credit_limit"]) == "123456.78"
        assert result["bank_account"] == body["bank_account"]
    finally:
        rep_user.roles.remove(finance_role)
        db.session.commit()
    assert "credit_limit" not in rep.get(f"/api/v1/customer/{pk}", headers=headers).json["result"]


# --- custom fields go through the same rules -----------------------------------------------------------
def test_custom_field_through_the_same_rules(api_as, login_as, clean_custom_fields) -> None:
    admin, admin_headers = api_as("admin")
    created = admin.post(
        "/api/v1/customfield/",
        json={"entity": "customer", "api_name": "licence_no", "label_zh": "许可证号", "field_type": "text",
              "show_in_list": True},
        headers=admin_headers,
    )  # fmt: skip
    assert created.status_code == 201, created.json
    pk, body = new_customer(api_as, custom={"licence_no": "LIC-2026-00123"})
    rep, headers = api_as("rep_a")
    custom = rep.get(f"/api/v1/customer/{pk}", headers=headers).json["result"]["custom"]
    assert custom["licence_no"] == "LIC-2026-00123"
    rule = add_rule(api_as, "Sales Rep", "customer", "licence_no", "hidden")  # typed without custom.
    assert db.session.get(FieldRule, rule).field == "custom.licence_no"
    try:
        assert "licence_no" not in rep.get(f"/api/v1/customer/{pk}", headers=headers).json["result"]["custom"]
        refused = rep.put(f"/api/v1/customer/{pk}", json={"custom": {"licence_no": "X"}}, headers=headers)
        assert refused.status_code == 403 and "custom.licence_no" in refused.json["message"]
        shown = login_as("rep_a").get(f"/customerview/show/{pk}").get_data(as_text=True)
        assert "LIC-2026-00123" not in shown
        admin.put(f"/api/v1/fieldrule/{rule}", json={"mode": "masked_list"}, headers=admin_headers)
        assert rep.get(f"/api/v1/customer/{pk}", headers=headers).json["result"]["custom"]["licence_no"] == (
            "LIC-2026-00123"
        )
        html = login_as("rep_a").get(f"/customerview/list/?_flt_0_name={body['name']}").get_data(as_text=True)
        assert "**********0123" in html and "LIC-2026-00123" not in html
    finally:
        drop_rule(api_as, rule)


# --- validation of rules ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"entity": "spaceship"}, "entity", "未知的对象"),
        ({"field": "no_such_field"}, "field", "没有字段"),
        ({"field": "id"}, "field", "没有字段"),
        ({"mode": "invisible"}, "mode", ""),
        ({"field": ""}, "field", "请填写字段名"),
    ],
)
def test_bad_rules_are_refused(api_as, change: dict[str, Any], field: str, message: str) -> None:
    admin, headers = api_as("admin")
    before = db.session.scalar(select(func.count()).select_from(FieldRule))
    body = {"role": _role_pk("Sales Rep"), "entity": "customer", "field": "phone", "mode": "hidden", **change}
    response = admin.post("/api/v1/fieldrule/", json=body, headers=headers)
    assert response.status_code == 400, response.json
    assert field in response.json["message"] and message in " ".join(response.json["message"][field])
    assert db.session.scalar(select(func.count()).select_from(FieldRule)) == before


def test_a_second_rule_for_the_same_field_is_refused(api_as) -> None:
    admin, headers = api_as("admin")
    body = {"role": _role_pk("Sales Rep"), "entity": "customer", "field": "credit_limit", "mode": "read_only"}
    response = admin.post("/api/v1/fieldrule/", json=body, headers=headers)
    assert response.status_code == 400 and "field" in response.json["message"]


def test_only_admins_edit_rules(api_as, login_as) -> None:
    rep, headers = api_as("rep_a")
    body = {"role": _role_pk("Sales Rep"), "entity": "customer", "field": "phone", "mode": "hidden"}
    assert rep.post("/api/v1/fieldrule/", json=body, headers=headers).status_code in (401, 403)
    assert rep.get("/api/v1/fieldrule/", headers=headers).status_code in (401, 403)
    assert login_as("finance").get("/fieldruleview/list/").status_code in (302, 403)


# --- 查重: it exists, owned by 王**, and nothing more -----------------------------------------------------
@pytest.fixture()
def wang_fang(app) -> Any:
    """A rep with a Chinese name in 一部 (team1)."""
    sm = app.appbuilder.sm
    existing = sm.find_user(username="wang_fang")
    if existing is None:
        sm.add_user("wang_fang", "芳", "王", "wang_fang@test.example.cn", sm.find_role("Sales Rep"), PASSWORD)
        existing = sm.find_user(username="wang_fang")
        existing.department_id = user("rep_a").department_id
        db.session.commit()
    return existing


def test_duplicate_check_tells_who_owns_it_masked(api_as, login_as, wang_fang) -> None:
    pk, body = new_customer(api_as, owner="wang_fang", street="胜利大街 100 号")
    other, headers = api_as("rep_c")  # 二部: outside the customer's scope
    checked = other.get(f"/api/v1/customer/duplicates?mobile={body['mobile']}", headers=headers)
    assert checked.status_code == 200, checked.json
    assert checked.json["exists"] is True and "王**" in checked.json["message"]
    (match,) = checked.json["result"]
    assert match == {
        "matched": ["mobile"], "visible": False, "owner": "王**", "department": "一部", "in_pool": False,
    }  # fmt: skip
    text = json.dumps(checked.json, ensure_ascii=False)  # no id (the match above), no details
    for secret in (body["name"], body["mobile"], "胜利大街", "王芳"):
        assert secret not in text, secret
    by_name = other.get(f"/api/v1/customer/duplicates?name={body['name']}", headers=headers).json
    assert by_name["exists"] is True and by_name["result"][0]["owner"] == "王**"
    # creating the same customer is refused with the same answer
    before = db.session.scalar(select(func.count()).select_from(Customer))
    duplicate = {"name": unique_name(), "mobile": body["mobile"]}
    refused = other.post("/api/v1/customer/", json=duplicate, headers=headers)
    assert refused.status_code == 400
    message = " ".join(refused.json["message"]["mobile"])
    assert "王**" in message and "一部" in message
    assert body["name"] not in message and f"编号 {pk}" not in message
    assert db.session.scalar(select(func.count()).select_from(Customer)) == before
    # the screen (in the menu of everyone who lists customers): no name, no link to the record
    assert "/customerview/duplicates" in login_as("rep_c").get("/customerview/list/").get_data(as_text=True)
    page = login_as("rep_c").get(f"/customerview/duplicates?mobile={body['mobile']}").get_data(as_text=True)
    assert "王**" in page and body["name"] not in page and f"/customerview/show/{pk}" not in page
    # inside the scope (the team's manager) the record is named and linked
    manager, manager_headers = api_as("manager1")
    inside = manager.get(f"/api/v1/customer/duplicates?mobile={body['mobile']}", headers=manager_headers).json
    assert inside["result"][0]["id"] == pk and inside["result"][0]["name"] == body["name"]
    assert inside["result"][0]["owner"] == "王芳"


def test_duplicate_check_of_a_new_customer(api_as, login_as) -> None:
    client, headers = api_as("rep_c")
    checked = client.get(f"/api/v1/customer/duplicates?mobile={unique_mobile()}", headers=headers)
    assert checked.status_code == 200
    assert checked.json == {"exists": False, "message": "没有找到重复的客户", "result": []}
    page = login_as("rep_c").get(f"/customerview/duplicates?name={unique_name()}").get_data(as_text=True)
    assert "没有找到重复的客户" in page


@pytest.mark.parametrize("query", ["", "?mobile=123", "?credit_code=XYZ"])
def test_duplicate_check_refuses_bad_input(api_as, query: str) -> None:
    client, headers = api_as("rep_c")
    response = client.get(f"/api/v1/customer/duplicates{query}", headers=headers)
    assert response.status_code == 400 and response.json["message"]
