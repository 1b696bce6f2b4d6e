"""The custom-field engine: definitions, every type through the API, rules, visibility, workers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.extensions import db
from customfields.definitions import CustomField, current_version
from models.customers import Customer
from tests.conftest import PASSWORD, unique_name
from tests.customfield_support import create_customer, define, names, rison_list

pytestmark = pytest.mark.usefixtures("clean_custom_fields")


# --- every type: a valid value is stored normalised, an invalid one is refused -----------------
TYPE_CASES = [
    ("text", {"max_length": 10}, " 危化品 证号 ", "危化品 证号", "x" * 11),
    ("long_text", {}, "第一行\n第二行", "第一行\n第二行", {"an": "object"}),
    ("integer", {"min_value": "0", "max_value": "100000"}, "1,200", 1200, "12.5"),
    ("decimal", {}, "3.14159", "3.1416", "abc"),
    ("currency", {"min_value": "0"}, "¥1,234.5", "1234.50", "-1"),
    ("percent", {"max_value": "100"}, "12.5%", "12.50", "101"),
    ("date", {"min_value": "2000-01-01"}, "2026-11-23", "2026-11-23", "1999-12-31"),
    ("datetime", {}, "2026-11-23T08:00:00+08:00", "2026-11-23T00:00:00", "23/11/2026"),
    ("boolean", {}, "是", True, "maybe"),
    ("select", {"choices": ["高", "中", "低"]}, "中", "中", "特高"),
    ("multi_select", {"choices": ["石化", "农业", "海产"]}, ["海产", "石化"], ["石化", "海产"], ["电子"]),
    ("email", {}, "Boss@Example.CN", "boss@example.cn", "boss@"),
    ("phone", {}, "0546 8123456", "0546-8123456", "12"),
    ("url", {}, "www.dongying.gov.cn", "http://www.dongying.gov.cn", "not a url"),
]


@pytest.mark.parametrize(("field_type", "options", "good", "stored", "bad"), TYPE_CASES)
def test_every_type_through_the_api(api_as, field_type, options, good, stored, bad) -> None:
    field = define(api_as, field_type=field_type, **options)
    ok = create_customer(api_as, **{field["api_name"]: good})
    assert ok.status_code == 201, ok.json
    assert ok.json["result"]["custom"][field["api_name"]] == stored
    client, headers = api_as("rep_a")
    got = client.get(f"/api/v1/customer/{ok.json['id']}", headers=headers).json["result"]
    assert got["custom"][field["api_name"]] == stored
    before = db.session.scalar(select(func.count()).select_from(Customer))
    refused = create_customer(api_as, **{field["api_name"]: bad})
    assert refused.status_code == 400, refused.json
    assert f"custom.{field['api_name']}" in refused.json["message"]
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Customer)) == before


def test_unknown_and_malformed_custom_values_are_refused(api_as) -> None:
    assert create_customer(api_as, no_such_field=1).status_code == 400
    client, headers = api_as("rep_a")
    response = client.post("/api/v1/customer/", json={"name": unique_name(), "custom": [1]}, headers=headers)
    assert response.status_code == 400 and "custom" in response.json["message"]


def test_required_default_and_old_records(api_as) -> None:
    old = create_customer(api_as).json["id"]  # before the field exists
    field = define(api_as, field_type="select", choices=["甲", "乙"], required=True)
    name = field["api_name"]
    assert f"custom.{name}" in create_customer(api_as).json["message"]  # required on create
    client, headers = api_as("rep_a")
    # the old record stays editable without a value...
    assert client.put(f"/api/v1/customer/{old}", json={"status": "won"}, headers=headers).status_code == 200
    # ...but once it has one, the value cannot be cleared
    assert (
        client.put(f"/api/v1/customer/{old}", json={"custom": {name: "甲"}}, headers=headers).status_code
        == 200
    )
    cleared = client.put(f"/api/v1/customer/{old}", json={"custom": {name: None}}, headers=headers)
    assert cleared.status_code == 400
    with_default = define(api_as, field_type="integer", default="7")
    created = create_customer(api_as, **{name: "乙"})
    assert created.json["result"]["custom"][with_default["api_name"]] == 7


def test_partial_update_keeps_other_values(api_as) -> None:
    first = define(api_as, field_type="text")["api_name"]
    second = define(api_as, field_type="integer")["api_name"]
    pk = create_customer(api_as, **{first: "东营", second: 5}).json["id"]
    client, headers = api_as("rep_a")
    updated = client.put(f"/api/v1/customer/{pk}", json={"custom": {second: 6}}, headers=headers)
    assert updated.status_code == 200
    assert updated.json["result"]["custom"] == {first: "东营", second: 6}


def test_unique_custom_field(api_as) -> None:
    name = define(api_as, field_type="text", unique=True)["api_name"]
    assert create_customer(api_as, **{name: "鲁危化经字[2026]001"}).status_code == 201
    duplicate = create_customer(api_as, "rep_c", **{name: "鲁危化经字[2026]001"})
    assert duplicate.status_code == 400 and f"custom.{name}" in duplicate.json["message"]


def test_visibility_and_read_only_per_role(api_as) -> None:
    secret = define(api_as, field_type="currency", visible_roles=["Finance", "Admin"])["api_name"]
    locked = define(api_as, field_type="text", editable_roles=["Admin"])["api_name"]
    admin, admin_headers = api_as("admin")
    pk = admin.post(
        "/api/v1/customer/",
        json={"name": unique_name(), "owner": 1, "custom": {secret: "500000", locked: "A级"}},
        headers=admin_headers,
    ).json["id"]
    finance, finance_headers = api_as("finance")
    assert finance.get(f"/api/v1/customer/{pk}", headers=finance_headers).json["result"]["custom"] == {
        secret: "500000.00",
        locked: "A级",
    }
    boss, boss_headers = api_as("boss")  # a Sales Manager who sees every customer of the tree
    seen = boss.get(f"/api/v1/customer/{pk}", headers=boss_headers)
    if seen.status_code == 200:  # the admin's own customer may be outside the boss's scope
        assert secret not in seen.json["result"]["custom"]
    rep = create_customer(api_as, **{locked: "B级"})
    assert rep.status_code == 400 and f"custom.{locked}" in rep.json["message"]  # read-only for reps
    hidden = create_customer(api_as, **{secret: "1"})
    assert hidden.status_code == 400  # a hidden field is unknown to the role
    listed = api_as("rep_a")
    rows = listed[0].get("/api/v1/customer/?q=(page_size:100)", headers=listed[1]).json["result"]
    assert all(secret not in (row.get("custom") or {}) for row in rows)


# --- definitions validate themselves -----------------------------------------------------------
BAD_DEFINITIONS = [
    ({"api_name": "Has Space"}, "api_name"),
    ({"api_name": "mobile"}, "api_name"),  # a standard column
    ({"field_type": "select"}, "choices"),
    ({"field_type": "select", "choices": ["a", "a"]}, "choices"),
    ({"field_type": "integer", "pattern": "\\d+"}, "pattern"),
    ({"field_type": "text", "pattern": "("}, "pattern"),
    ({"field_type": "integer", "min_value": "abc"}, "min_value"),
    ({"field_type": "integer", "max_value": "10", "default": "11"}, "default"),
    ({"field_type": "teleport"}, "field_type"),
    ({"entity": "planet"}, "entity"),
    ({"label_zh": ""}, "label_zh"),
    ({"field_type": "boolean", "unique": True}, "unique"),
]


@pytest.mark.parametrize(("definition", "bad_field"), BAD_DEFINITIONS)
def test_bad_definitions_are_refused(api_as, definition: dict, bad_field: str) -> None:
    client, headers = api_as("admin")
    body = {
        "entity": "customer",
        "api_name": f"bad_{next(names)}",
        "label_zh": "坏字段",
        "field_type": "text",
    }
    response = client.post("/api/v1/customfield/", json={**body, **definition}, headers=headers)
    assert response.status_code == 400, response.json
    assert bad_field in response.json["message"]
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(CustomField)) == 0


def test_only_admins_manage_definitions(api_as) -> None:
    client, headers = api_as("rep_a")
    body = {"entity": "customer", "api_name": "x1", "label_zh": "x", "field_type": "text"}
    assert client.post("/api/v1/customfield/", json=body, headers=headers).status_code == 403


def test_api_name_is_immutable_and_versions_move(api_as) -> None:
    version = current_version(db.session)
    field = define(api_as, field_type="text")
    assert current_version(db.session) == version + 1
    client, headers = api_as("admin")
    renamed = client.put(f"/api/v1/customfield/{field['id']}", json={"api_name": "renamed"}, headers=headers)
    assert renamed.status_code == 400 and "api_name" in renamed.json["message"]


def test_type_change_converts_or_explains(api_as) -> None:
    field = define(api_as, field_type="text")
    name = field["api_name"]
    good = create_customer(api_as, **{name: "42"}).json["id"]
    client, headers = api_as("admin")
    assert (
        client.put(
            f"/api/v1/customfield/{field['id']}", json={"field_type": "integer"}, headers=headers
        ).status_code
        == 200
    )
    db.session.expire_all()
    assert db.session.get(Customer, good).custom[name] == 42
    back = client.put(f"/api/v1/customfield/{field['id']}", json={"field_type": "text"}, headers=headers)
    assert back.status_code == 200
    create_customer(api_as, **{name: "四十二"})
    refused = client.put(
        f"/api/v1/customfield/{field['id']}", json={"field_type": "integer"}, headers=headers
    )
    assert refused.status_code == 400, refused.json
    assert "1" in " ".join(refused.json["message"]["field_type"]) and "四十二" in str(refused.json)


def test_archive_hides_and_delete_removes_values(api_as) -> None:
    field = define(api_as, field_type="text")
    name = field["api_name"]
    pk = create_customer(api_as, **{name: "保留"}).json["id"]
    client, headers = api_as("admin")
    assert (
        client.put(f"/api/v1/customfield/{field['id']}", json={"archived": True}, headers=headers).status_code
        == 200
    )
    rep, rep_headers = api_as("rep_a")
    assert name not in rep.get(f"/api/v1/customer/{pk}", headers=rep_headers).json["result"]["custom"]
    db.session.expire_all()
    assert db.session.get(Customer, pk).custom[name] == "保留"  # archived: the data stays
    assert client.delete(f"/api/v1/customfield/{field['id']}", headers=headers).status_code == 200
    db.session.expire_all()
    assert name not in db.session.get(Customer, pk).custom  # deleted: the data goes


# --- several workers --------------------------------------------------------------------------
WORKER = textwrap.dedent(
    """
    import sys
    from app import create_app
    from tests.conftest import TEST_CONFIG, token_for
    app = create_app({**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": sys.argv[1]})
    client = app.test_client()
    headers = token_for(client, "rep_a")
    warm = client.post("/api/v1/customer/", json={"name": "预热" + sys.argv[3]}, headers=headers)
    print("ready", warm.status_code, flush=True)
    sys.stdin.readline()  # the parent defines a field meanwhile
    response = client.post(
        "/api/v1/customer/", json={"name": "另一进程" + sys.argv[3], "custom": {sys.argv[2]: "通过"}},
        headers=headers,
    )
    body = response.get_json()
    print(response.status_code, body["result"]["custom"] if response.status_code == 201 else body, flush=True)
    """
)


def test_a_field_added_in_one_process_is_used_by_another(api_as, database_url: str) -> None:
    name = f"cross_{os.getpid()}_{next(names)}"
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root), "CRM_ADMIN_PASSWORD": PASSWORD}
    child = subprocess.Popen(
        [sys.executable, "-c", WORKER, database_url, name, unique_name("")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root, env=env,
    )  # fmt: skip
    try:
        assert child.stdout.readline().split() == ["ready", "201"]
        define(api_as, api_name=name, field_type="text")
        child.stdin.write("go\n")
        child.stdin.flush()
        result = child.stdout.readline().strip()
        assert result == f"201 {{'{name}': '通过'}}", result + child.stderr.read()
    finally:
        child.kill()
        child.wait()


# --- filters and ordering in the REST list ----------------------------------------------------
def test_rest_list_filters_and_sorts_by_custom_fields(api_as) -> None:
    volume = define(api_as, field_type="currency")["api_name"]
    grade = define(api_as, field_type="select", choices=["甲", "乙", "丙"])["api_name"]
    since = define(api_as, field_type="date")["api_name"]
    tag = unique_name("筛选")
    rows = [("1200.50", "甲", "2020-01-01"), ("80", "乙", "2024-05-01"), ("99999", "甲", "2026-01-01")]
    for amount, level, date in rows:
        client, headers = api_as("rep_a")
        created = client.post(
            "/api/v1/customer/",
            json={"name": f"{tag}{amount}", "custom": {volume: amount, grade: level, since: date}},
            headers=headers,
        )
        assert created.status_code == 201, created.json
    client, headers = api_as("rep_a")
    client.post("/api/v1/customer/", json={"name": f"{tag}空"}, headers=headers)  # no custom values
    base = f"(filters:!((col:name,opr:sw,value:'{tag}')"
    by_grade = rison_list(api_as, "rep_a", base + f",(col:custom.{grade},opr:eq,value:'甲')),page_size:50)")
    assert by_grade.status_code == 200, by_grade.json
    assert {r["name"] for r in by_grade.json["result"]} == {f"{tag}1200.50", f"{tag}99999"}
    big = rison_list(api_as, "rep_a", base + f",(col:custom.{volume},opr:gt,value:'1000')),page_size:50)")
    assert {r["name"] for r in big.json["result"]} == {f"{tag}1200.50", f"{tag}99999"}
    assert big.json["count"] == 2
    recent = rison_list(
        api_as, "rep_a", base + f",(col:custom.{since},opr:ge,value:'2024-01-01')),page_size:50)"
    )
    assert {r["name"] for r in recent.json["result"]} == {f"{tag}80", f"{tag}99999"}
    empty = rison_list(api_as, "rep_a", base + f",(col:custom.{grade},opr:empty,value:!t)),page_size:50)")
    assert {r["name"] for r in empty.json["result"]} == {f"{tag}空"}
    ordered = rison_list(
        api_as, "rep_a", base + f"),order_column:custom.{volume},order_direction:desc,page_size:50)"
    )
    assert [r["name"] for r in ordered.json["result"]][:3] == [f"{tag}99999", f"{tag}1200.50", f"{tag}80"]


@pytest.mark.parametrize(
    ("filter_", "status"),
    [
        ("(col:custom.nope,opr:eq,value:'x')", 400),
        ("(col:custom.{grade},opr:gt,value:'甲')", 400),  # no order on a select
        ("(col:custom.{grade},opr:eq,value:'丁')", 400),  # not an option
        ("(col:custom.{grade},opr:teleport,value:'甲')", 400),
    ],
)
def test_bad_custom_filters_are_400(api_as, filter_: str, status: int) -> None:
    grade = define(api_as, field_type="select", choices=["甲", "乙"])["api_name"]
    response = rison_list(api_as, "rep_a", f"(filters:!({filter_.format(grade=grade)}))")
    assert response.status_code == status, response.json


# --- on the screens ---------------------------------------------------------------------------
def test_custom_fields_on_the_screens(api_as, login_as) -> None:
    licence = define(
        api_as, field_type="text", label_zh="危化品经营许可证号", section="资质", pattern=r"鲁.*"
    )
    volume = define(api_as, field_type="currency", label_zh="年采购量")
    industries = define(
        api_as, field_type="multi_select", label_zh="东营本地产业关联", choices=["石化", "农业"]
    )
    secret = define(api_as, field_type="text", label_zh="内部评级", visible_roles=["Admin"])
    client = login_as("rep_a")
    form = client.get("/customerview/add").get_data(as_text=True)
    assert "危化品经营许可证号" in form and "年采购量" in form and "资质" in form
    assert "内部评级" not in form  # hidden from the rep
    base = {"kind": "company", "level": "normal", "status": "prospect", "name": unique_name("表单")}
    bad = client.post("/customerview/add", data={**base, f"custom__{licence['api_name']}": "京A-1"})
    assert bad.status_code == 200 and "格式不符合要求" in bad.get_data(as_text=True)
    ok = client.post(
        "/customerview/add",
        data={
            **base,
            f"custom__{licence['api_name']}": "鲁危化经字[2026]001",
            f"custom__{volume['api_name']}": "1,000,000",
            f"custom__{industries['api_name']}": ["农业", "石化"],
        },
    )
    assert ok.status_code == 302
    customer = db.session.scalar(select(Customer).where(Customer.name == base["name"]))
    assert customer.custom == {
        licence["api_name"]: "鲁危化经字[2026]001",
        volume["api_name"]: "1000000.00",
        industries["api_name"]: ["石化", "农业"],
    }
    show = client.get(f"/customerview/show/{customer.id}").get_data(as_text=True)
    assert "鲁危化经字[2026]001" in show and "¥1,000,000.00" in show and "石化、农业" in show
    edit = client.get(f"/customerview/edit/{customer.id}").get_data(as_text=True)
    assert "鲁危化经字[2026]001" in edit
    assert secret["api_name"] not in edit


def test_a_custom_date_time_is_typed_and_shown_in_local_time(api_as, login_as) -> None:
    """Stored in UTC like every moment (and so in the API), typed and shown on the screens in
    the company's time zone (UTC+8): 2026-11-23 08:00 in Dongying is 00:00 UTC."""
    visit = define(api_as, field_type="datetime", label_zh="首次拜访时间")["api_name"]
    client = login_as("rep_a")
    base = {"kind": "company", "level": "normal", "status": "prospect", "name": unique_name("拜访")}
    saved = client.post("/customerview/add", data={**base, f"custom__{visit}": "2026-11-23 08:00"})
    assert saved.status_code == 302, saved.get_data(as_text=True)[-2000:]
    customer = db.session.scalar(select(Customer).where(Customer.name == base["name"]))
    assert customer.custom[visit] == "2026-11-23T00:00:00"
    api, headers = api_as("rep_a")
    assert api.get(f"/api/v1/customer/{customer.id}", headers=headers).json["result"]["custom"][visit] == (
        "2026-11-23T00:00:00"
    )
    assert "2026/11/23 08:00" in client.get(f"/customerview/show/{customer.id}").get_data(as_text=True)
    edit = client.get(f"/customerview/edit/{customer.id}").get_data(as_text=True)
    assert 'value="2026-11-23 08:00:00"' in edit


def test_edit_form_updates_and_keeps_read_only_values(api_as, login_as) -> None:
    note = define(api_as, field_type="text", label_zh="备注二")["api_name"]
    locked = define(api_as, field_type="text", label_zh="锁定值", editable_roles=["Admin"])["api_name"]
    admin, headers = api_as("admin")
    rep_id = db.session.scalar(select(Customer.owner_id).where(Customer.owner_id.is_not(None)).limit(1))
    pk = admin.post(
        "/api/v1/customer/",
        json={"name": unique_name(), "owner": rep_id, "custom": {note: "旧", locked: "管理员定"}},
        headers=headers,
    ).json["id"]
    client = login_as("admin")
    customer = db.session.get(Customer, pk)
    data = {"kind": "company", "level": "normal", "status": "prospect", "name": customer.name,
            "owner": str(customer.owner_id), f"custom__{note}": "新"}  # fmt: skip
    assert client.post(f"/customerview/edit/{pk}", data=data).status_code == 302
    db.session.expire_all()
    assert db.session.get(Customer, pk).custom == {note: "新", locked: "管理员定"}


def test_chosen_custom_fields_show_as_list_columns(api_as, login_as) -> None:
    shown = define(api_as, field_type="integer", label_zh="年采购量(吨)", show_in_list=True)["api_name"]
    define(api_as, field_type="text", label_zh="不在列表")
    create_customer(api_as, **{shown: 3500})
    page = login_as("rep_a").get("/customerview/list/?psize_CustomerView=100").get_data(as_text=True)
    header = page.split("<thead>", 1)[1].split("</thead>", 1)[0]
    assert "年采购量(吨)" in header and "3500" in page
    assert "不在列表" not in header  # offered as a filter, not shown as a column


FORM_CASES = [case for case in TYPE_CASES if case[0] not in ("long_text", "boolean")]


@pytest.mark.parametrize(("field_type", "options", "good", "stored", "bad"), FORM_CASES)
def test_every_type_through_the_form(api_as, login_as, field_type, options, good, stored, bad) -> None:
    """The add form: a good value is stored as the API stores it; a bad one is shown under the
    field, the input is kept and nothing is written."""
    name = define(api_as, field_type=field_type, label_zh="表单字段", **options)["api_name"]
    client = login_as("rep_a")
    base = {"kind": "company", "level": "normal", "status": "prospect"}
    good_name = unique_name("表单类型")
    saved = client.post("/customerview/add", data={**base, "name": good_name, f"custom__{name}": good})
    assert saved.status_code == 302, saved.get_data(as_text=True)[-2000:]
    customer = db.session.scalar(select(Customer).where(Customer.name == good_name))
    assert customer.custom[name] == stored
    bad_name = unique_name("表单类型")
    refused = client.post("/customerview/add", data={**base, "name": bad_name, f"custom__{name}": bad})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 200 and "alert alert-danger" in page and bad_name in page
    assert db.session.scalar(select(func.count()).where(Customer.name == bad_name)) == 0


def test_boolean_through_the_form(api_as, login_as) -> None:
    name = define(api_as, field_type="boolean", label_zh="是否危化品客户")["api_name"]
    client = login_as("rep_a")
    base = {"kind": "company", "level": "normal", "status": "prospect"}
    for ticked in (True, False):
        customer_name = unique_name("布尔")
        data = {**base, "name": customer_name, **({f"custom__{name}": "y"} if ticked else {})}
        assert client.post("/customerview/add", data=data).status_code == 302
        customer = db.session.scalar(select(Customer).where(Customer.name == customer_name))
        assert customer.custom[name] is ticked
