"""Customer and contact CRUD through the screens and the REST API, and the search box."""

from __future__ import annotations

import re

from sqlalchemy import select

from app.extensions import db
from models.customers import Contact, Customer
from models.security import CrmUser
from tests.conftest import unique_mobile, unique_name, valid_credit_code


def test_the_customer_page_has_each_related_tab_once(login_as) -> None:
    """The tabs are the classes CustomerView names: FAB would add registered subclasses too
    (the tickets a second time, as the agent's 我的待办工单 queue), on the show and edit pages."""
    customer = Customer(name=unique_name("标签页客户"), owner_id=None)
    db.session.add(customer)
    db.session.commit()
    client = login_as("admin")
    for page in ("show", "edit"):
        html = client.get(f"/customerview/{page}/{customer.id}").get_data(as_text=True)
        tabs = re.findall(r'href="#([A-Za-z]+View)"', html)
        assert tabs.count("TicketView") == 1 and "MyTicketView" not in tabs, tabs
        assert len(tabs) == len(set(tabs)) and {"ContactView", "OrderView", "InteractionView"} <= set(tabs)


def test_the_customer_page_shows_the_panels_and_actions_of_its_kind_and_state(login_as) -> None:
    """A company's page has no personal panel and a person's no company panel; a locked
    customer offers 解锁 and not 锁定, an unlocked one the reverse."""
    rep = db.session.scalar(select(CrmUser).where(CrmUser.username == "rep_a"))
    company = Customer(name=unique_name("面板企业"), kind="company", owner_id=rep.id, locked=True)
    person = Customer(name=unique_name("面板个人"), kind="individual", owner_id=rep.id)
    db.session.add_all([company, person])
    db.session.commit()
    client = login_as("rep_a")
    shown = client.get(f"/customerview/show/{company.id}").get_data(as_text=True)
    assert "企业信息" in shown and "个人信息" not in shown
    assert "action/unlock_action/" in shown and "action/lock_action/" not in shown
    shown = client.get(f"/customerview/show/{person.id}").get_data(as_text=True)
    assert "个人信息" in shown and "企业信息" not in shown
    assert "action/lock_action/" in shown and "action/unlock_action/" not in shown
    form = client.get(f"/customerview/edit/{person.id}").get_data(as_text=True)
    assert "个人信息" in form and "企业信息" in form  # the kind may change on the form


def test_the_browser_tab_names_the_screen(login_as) -> None:
    client = login_as("rep_a")
    assert "<title>客户 · " in client.get("/customerview/list/").get_data(as_text=True)
    assert "<title>新建客户 · " in client.get("/customerview/add").get_data(as_text=True)
    client.get("/lang/en")
    assert "<title>Customers · " in client.get("/customerview/list/").get_data(as_text=True)


def test_screen_crud(login_as) -> None:
    client = login_as("rep_a")
    name, mobile = unique_name("东营垦利石化"), unique_mobile()
    created = client.post(
        "/customerview/add",
        data={
            "kind": "company",
            "name": name,
            "mobile": mobile,
            "credit_code": valid_credit_code(),
            "level": "key",
            "status": "following",
            "province": "370000",
            "city": "370500",
            "district": "370505",
            "street": "胜利大街100号",
        },
    )
    assert created.status_code == 302, re.findall(
        r"alert-danger[^>]*>\s*([^<]+)", created.get_data(as_text=True)
    )
    customer = db.session.scalar(select(Customer).where(Customer.mobile == mobile))
    assert customer.address == "山东省东营市垦利区胜利大街100号"
    show = client.get(f"/customerview/show/{customer.id}").get_data(as_text=True)
    assert name in show and "重点客户" in show
    without_owner = client.post(
        f"/customerview/edit/{customer.id}",
        data={
            "kind": "company",
            "name": name,
            "mobile": mobile,
            "level": "normal",
            "status": "won",
        },
    )
    assert "请选择负责人" in without_owner.get_data(as_text=True)
    edited = client.post(
        f"/customerview/edit/{customer.id}",
        data={
            "kind": "company",
            "name": name + "(改)",
            "mobile": mobile,
            "level": "normal",
            "status": "won",
            "owner": str(customer.owner_id),
        },
    )
    assert edited.status_code == 302
    db.session.expire_all()
    assert db.session.get(Customer, customer.id).status == "won"
    contact = client.post(
        "/contactview/add",
        data={"customer": str(customer.id), "name": "刘经理", "mobile": unique_mobile()},
        follow_redirects=True,
    )
    assert "已新建记录" in contact.get_data(as_text=True), contact.get_data(as_text=True)[-3000:]
    assert db.session.scalar(select(Contact).where(Contact.customer_id == customer.id)).name == "刘经理"
    deleted = client.post(f"/customerview/delete/{customer.id}")
    assert deleted.status_code == 302
    db.session.expire_all()
    assert db.session.get(Customer, customer.id) is None
    assert db.session.scalar(select(Contact).where(Contact.customer_id == customer.id)) is None


def test_api_crud_and_openapi(api_as) -> None:
    client, headers = api_as("rep_a")
    mobile = unique_mobile()
    created = client.post(
        "/api/v1/customer/",
        json={
            "kind": "individual",
            "name": "王芳",
            "gender": "female",
            "birth_date": "1985-06-01",
            "occupation": "养殖户",
            "mobile": mobile,
            "district": 370522,
            "level": "potential",
        },
        headers=headers,
    )
    assert created.status_code == 201, created.json
    pk = created.json["id"]
    got = client.get(f"/api/v1/customer/{pk}", headers=headers).json["result"]
    assert got["city"]["name"] == "东营市" and got["district"]["name"] == "利津县"
    assert got["owner"]["username"] == "rep_a" and got["department"]["name"] == "一部"
    assert got["custom"] == {}
    updated = client.put(f"/api/v1/customer/{pk}", json={"status": "won"}, headers=headers)
    assert updated.status_code == 200 and updated.json["result"]["status"] == "won"
    assert client.delete(f"/api/v1/customer/{pk}", headers=headers).status_code == 200
    assert client.get(f"/api/v1/customer/{pk}", headers=headers).status_code == 404
    admin, admin_headers = api_as("admin")
    spec = admin.get("/api/v1/_openapi", headers=admin_headers).json
    assert {"/api/v1/customer/", "/api/v1/contact/", "/api/v1/search/"} <= set(spec["paths"])


def test_search_box_ranks_and_finds(api_as) -> None:
    client, headers = api_as("rep_a")
    base = unique_name("黄河口海产")
    mobile = unique_mobile()
    for suffix in ("", "加工厂", "销售分公司"):
        client.post(
            "/api/v1/customer/",
            json={"name": base + suffix, "mobile": mobile if not suffix else None},
            headers=headers,
        )
    contains = client.get(f"/api/v1/search/?q={base[2:8]}", headers=headers).json["result"]
    assert {h["name"] for h in contains} >= {base, base + "加工厂", base + "销售分公司"}
    ranked = client.get(f"/api/v1/search/?q={base}", headers=headers).json["result"]
    assert ranked[0]["name"] == base and ranked[0]["rank"] == 0
    by_mobile = client.get(f"/api/v1/search/?q={mobile[:7]}", headers=headers).json["result"]
    assert base in {h["name"] for h in by_mobile}
    by_plus86 = client.get(f"/api/v1/search/?q=%2B86 {mobile}", headers=headers).json["result"]
    assert by_plus86[0]["name"] == base and by_plus86[0]["rank"] == 0
    two_chars = client.get("/api/v1/search/?q=河口&limit=50", headers=headers).json["result"]
    assert any(h["name"].startswith(base) for h in two_chars)


def test_search_page_and_contacts(login_as, api_as) -> None:
    client, headers = api_as("rep_a")
    customer = client.post("/api/v1/customer/", json={"name": unique_name()}, headers=headers).json["id"]
    email = f"{unique_name('buyer')}@lukechem.cn".lower()
    client.post(
        "/api/v1/contact/", json={"customer": customer, "name": "赵采购", "email": email}, headers=headers
    )
    page = login_as("rep_a").get(f"/search/?q={email.upper()}").get_data(as_text=True)
    assert "赵采购" in page and "联系人" in page


def test_list_count_is_capped(app, login_as, api_as) -> None:
    client, headers = api_as("rep_a")
    for _ in range(3):
        client.post("/api/v1/customer/", json={"name": unique_name("计数")}, headers=headers)
    app.config["CRM_COUNT_CAP"] = 2
    try:
        page = login_as("rep_a").get("/customerview/list/").get_data(as_text=True)
        assert "2+" in page.split("crm-record-count", 1)[1][:200]
        assert client.get("/api/v1/customer/", headers=headers).json["count"] == 3  # cap + 1: "more"
    finally:
        app.config["CRM_COUNT_CAP"] = 10000


def test_short_queries_find_people_by_prefix_and_companies_by_fragment(api_as) -> None:
    client, headers = api_as("rep_a")
    company = client.post("/api/v1/customer/", json={"name": "东营鲁泰纺织有限公司"}, headers=headers).json[
        "id"
    ]
    client.post("/api/v1/contact/", json={"customer": company, "name": "欧阳娜娜"}, headers=headers)
    hits = client.get("/api/v1/search/?q=鲁泰", headers=headers).json["result"]
    assert company in {h["id"] for h in hits if h["kind"] == "customer"}  # fragment inside a company name
    people = client.get("/api/v1/search/?q=欧阳", headers=headers).json["result"]
    assert "欧阳娜娜" in {h["name"] for h in people if h["kind"] == "contact"}  # surname prefix
    inner = client.get("/api/v1/search/?q=阳娜娜", headers=headers).json["result"]
    assert "欧阳娜娜" in {h["name"] for h in inner if h["kind"] == "contact"}  # 3+ characters: contains
