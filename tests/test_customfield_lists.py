"""Custom fields in lists: filters and sorting of every type (REST and screens), indexes, OpenAPI.

The suite runs on SQLite, PostgreSQL and MariaDB (CI), so each case is checked on all three.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from customfields.definitions import CustomField
from customfields.indexes import existing_indexes, refresh_all_statistics
from customfields.query import filter_condition, order_by
from models.customers import Customer
from tests.conftest import unique_name
from tests.customfield_support import create_customer, define, rison_list

pytestmark = pytest.mark.usefixtures("clean_custom_fields")

# type, options, three values in ascending order (stored), whether gt/lt apply
SORT_CASES = [
    ("text", {}, ["alpha", "bravo", "charlie"], False),
    ("integer", {}, [-5, 20, 300], True),
    ("decimal", {}, ["1.5", "20.25", "300"], True),
    ("currency", {}, ["0.99", "1000.00", "25000.50"], True),
    ("percent", {}, ["1.00", "20.00", "99.50"], True),
    ("date", {}, ["2019-12-31", "2024-02-29", "2026-11-23"], True),
    ("datetime", {}, ["2026-01-01T08:00:00", "2026-01-01T09:30:00", "2026-06-01T00:00:00"], True),
    ("select", {"choices": ["a级", "b级", "c级"]}, ["a级", "b级", "c级"], False),
    ("email", {}, ["a@dy.cn", "b@dy.cn", "c@dy.cn"], False),
    ("phone", {}, ["0546-8000001", "0546-8000002", "0546-8000003"], False),
    ("url", {}, ["http://a.dy.cn", "http://b.dy.cn", "http://c.dy.cn"], False),
]


def names_in(response: Any) -> list[str]:
    assert response.status_code == 200, response.json
    return [row["name"] for row in response.json["result"]]


@pytest.mark.parametrize(("field_type", "options", "values", "ordered"), SORT_CASES)
def test_filter_and_sort_every_type(
    api_as, field_type: str, options: dict, values: list, ordered: bool
) -> None:
    name = define(api_as, field_type=field_type, indexed=field_type in ("select", "decimal"), **options)[
        "api_name"
    ]
    tag = unique_name("排序") + "x"  # "排序…-1" would be a prefix of "排序…-10"
    client, headers = api_as("rep_a")
    for position, value in enumerate([values[1], None, values[2], values[0]]):
        custom = {} if value is None else {name: value}
        created = client.post(
            "/api/v1/customer/", json={"name": f"{tag}{position}", "custom": custom}, headers=headers
        )
        assert created.status_code == 201, created.json
    label = {values[1]: f"{tag}0", None: f"{tag}1", values[2]: f"{tag}2", values[0]: f"{tag}3"}
    scope = f"(col:name,opr:sw,value:'{tag}')"

    def listed(extra: str = "", order: str = "") -> list[str]:
        query = f"(filters:!({scope}{extra}),page_size:100{order})"
        return names_in(rison_list(api_as, "rep_a", query))

    low, mid, high = values
    assert listed(f",(col:custom.{name},opr:eq,value:'{mid}')") == [label[mid]]
    assert set(listed(f",(col:custom.{name},opr:empty,value:!t)")) == {label[None]}
    ascending = [label[low], label[mid], label[high], label[None]]
    assert listed(order=f",order_column:custom.{name},order_direction:asc") == ascending
    descending = [label[high], label[mid], label[low], label[None]]
    assert listed(order=f",order_column:custom.{name},order_direction:desc") == descending
    if ordered:
        assert set(listed(f",(col:custom.{name},opr:gt,value:'{low}')")) == {label[mid], label[high]}
        assert set(listed(f",(col:custom.{name},opr:le,value:'{mid}')")) == {label[low], label[mid]}


def test_filter_boolean_and_multi_select(api_as) -> None:
    flag = define(api_as, field_type="boolean")["api_name"]
    tags = define(api_as, field_type="multi_select", choices=["石化", "农业", "海产"])["api_name"]
    tag = unique_name("多选")
    client, headers = api_as("rep_a")
    for suffix, custom in [("1", {flag: True, tags: ["石化", "海产"]}), ("2", {flag: False, tags: ["农业"]})]:
        client.post("/api/v1/customer/", json={"name": tag + suffix, "custom": custom}, headers=headers)
    scope = f"(col:name,opr:sw,value:'{tag}')"
    yes = rison_list(api_as, "rep_a", f"(filters:!({scope},(col:custom.{flag},opr:eq,value:!t)))")
    assert names_in(yes) == [tag + "1"]
    sea = rison_list(api_as, "rep_a", f"(filters:!({scope},(col:custom.{tags},opr:ct,value:'海产')))")
    assert names_in(sea) == [tag + "1"]
    unsortable = rison_list(api_as, "rep_a", f"(filters:!({scope}),order_column:custom.{tags})")
    assert unsortable.status_code == 400


# --- the list screen --------------------------------------------------------------------------
def test_list_screen_filters_and_sorts_by_custom_fields(api_as, login_as) -> None:
    grade = define(api_as, field_type="select", choices=["甲", "乙"], label_zh="资质等级", show_in_list=True)
    volume = define(api_as, field_type="integer", label_zh="年采购吨数", show_in_list=True)
    tag = unique_name("筛选页")
    client, headers = api_as("rep_a")
    for suffix, custom in [("A", {grade["api_name"]: "甲", volume["api_name"]: 10}),
                           ("B", {grade["api_name"]: "乙", volume["api_name"]: 30}),
                           ("C", {grade["api_name"]: "甲", volume["api_name"]: 20})]:  # fmt: skip
        client.post("/api/v1/customer/", json={"name": tag + suffix, "custom": custom}, headers=headers)
    browser = login_as("rep_a")
    base = f"/customerview/list/?_flt_2_name={tag}&psize_CustomerView=100"
    page = browser.get(base).get_data(as_text=True)
    assert "资质等级" in page and "年采购吨数" in page  # offered as filters
    filtered = browser.get(base + f"&_flt_0_custom__{grade['api_name']}=甲").get_data(as_text=True)
    assert tag + "A" in filtered and tag + "C" in filtered and tag + "B" not in filtered
    bigger = browser.get(base + f"&_flt_1_custom__{volume['api_name']}=15").get_data(as_text=True)
    assert tag + "A" not in bigger and tag + "B" in bigger and tag + "C" in bigger
    ordered = browser.get(
        base + f"&_oc_CustomerView=custom__{volume['api_name']}&_od_CustomerView=desc"
    ).get_data(as_text=True)
    assert ordered.index(tag + "B") < ordered.index(tag + "C") < ordered.index(tag + "A")
    wrong = browser.get(base + f"&_flt_1_custom__{volume['api_name']}=很多")
    assert wrong.status_code == 200  # reported, not a server error
    assert "应为整数" in wrong.get_data(as_text=True)
    export = (
        login_as("admin")
        .get("/customerview/export.csv?" + base.split("?", 1)[1] + f"&_flt_0_custom__{grade['api_name']}=乙")
        .get_data(as_text=True)
    )
    assert tag + "B" in export and tag + "A" not in export


def test_hidden_fields_are_not_offered_as_filters(api_as, login_as) -> None:
    define(api_as, field_type="text", label_zh="内部评分项", visible_roles=["Admin"])
    assert "内部评分项" not in login_as("rep_a").get("/customerview/list/").get_data(as_text=True)
    assert "内部评分项" in login_as("admin").get("/customerview/list/").get_data(as_text=True)


def test_search_box_finds_indexed_custom_values(api_as) -> None:
    licence = define(api_as, field_type="text", label_zh="危化品经营许可证号", indexed=True)["api_name"]
    secret = define(api_as, field_type="text", indexed=True, visible_roles=["Admin"])["api_name"]
    number = f"鲁危化经字[2026]{unique_name('')[-6:]}"
    created = create_customer(api_as, "rep_a", **{licence: number})
    assert created.status_code == 201, created.json
    admin, admin_headers = api_as("admin")
    url = f"/api/v1/customer/{created.json['id']}"
    assert admin.put(url, json={"custom": {secret: number + "X"}}, headers=admin_headers).status_code == 200
    client, headers = api_as("rep_a")
    hits = client.get("/api/v1/search/", query_string={"q": number}, headers=headers).json["result"]
    assert created.json["id"] in {hit["id"] for hit in hits if hit["kind"] == "customer"}
    hidden = client.get("/api/v1/search/", query_string={"q": number + "X"}, headers=headers).json["result"]
    assert created.json["id"] not in {hit["id"] for hit in hidden}  # the rep may not see that field
    other, other_headers = api_as("rep_c")  # outside rep_c's data scope
    theirs = other.get("/api/v1/search/", query_string={"q": number}, headers=other_headers).json["result"]
    assert created.json["id"] not in {hit["id"] for hit in theirs}


# --- indexes ----------------------------------------------------------------------------------
def explain(statement: Any) -> str:
    dialect = db.session.get_bind().dialect
    sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    if dialect.name == "sqlite":
        return " ".join(str(row[-1]) for row in db.session.execute(db.text("EXPLAIN QUERY PLAN " + sql)))
    db.session.execute(db.text("SET LOCAL enable_seqscan = off"))
    plan = " ".join(str(row[0]) for row in db.session.execute(db.text("EXPLAIN " + sql)))
    db.session.rollback()
    return plan


def planner_statistics(names: set[str]) -> set[str]:
    """The indexes among `names` that the database has planner statistics for."""
    if db.session.get_bind().dialect.name == "sqlite":
        sql = "SELECT idx FROM sqlite_stat1 WHERE idx IN :names"
    else:  # expression indexes get their own rows in pg_stats, named after the index
        sql = "SELECT DISTINCT tablename FROM pg_stats WHERE tablename IN :names"
    statement = db.text(sql).bindparams(db.bindparam("names", expanding=True))
    return set(db.session.scalars(statement, {"names": sorted(names)}))


def test_indexed_fields_get_expression_indexes_that_queries_use(api_as) -> None:
    grade = define(api_as, field_type="select", choices=["甲", "乙"], indexed=True)
    volume = define(api_as, field_type="decimal", indexed=True)
    plain = define(api_as, field_type="text")
    dialect = db.session.get_bind().dialect.name
    fields = {f.api_name: f for f in db.session.scalars(select(CustomField))}
    if dialect not in ("sqlite", "postgresql"):
        assert not existing_indexes(db.session, fields[grade["api_name"]])  # MariaDB: none (README)
        return
    assert len(existing_indexes(db.session, fields[grade["api_name"]])) == 2
    # planner statistics (so a rep's own customers beat a five-choice select): the daily job
    # reads them from the values; a field's first index is not analysed while it has none
    assert create_customer(api_as, **{grade["api_name"]: "甲"}).status_code == 201
    assert refresh_all_statistics(db.session) >= 2
    db.session.commit()
    assert planner_statistics(existing_indexes(db.session, fields[grade["api_name"]]))
    assert not existing_indexes(db.session, fields[plain["api_name"]])
    # no ORDER BY id / LIMIT: with real statistics on a small table, walking the primary key
    # backwards can be as cheap as the expression index; the point here is that it is usable
    by_grade = select(Customer.id).where(filter_condition(Customer, fields[grade["api_name"]], "eq", "甲"))
    assert "ix_cf_" in explain(by_grade)
    for descending in (False, True):
        by_volume = (
            select(Customer.id)
            .order_by(*order_by(Customer, fields[volume["api_name"]], descending, dialect))
            .limit(20)
        )
        assert "ix_cf_" in explain(by_volume)
    # unindexing and deleting drop them; a type change rebuilds them for the new type
    client, headers = api_as("admin")
    client.put(f"/api/v1/customfield/{grade['id']}", json={"indexed": False}, headers=headers)
    assert not existing_indexes(db.session, fields[grade["api_name"]])
    before = existing_indexes(db.session, fields[volume["api_name"]])
    retyped = client.put(f"/api/v1/customfield/{volume['id']}", json={"field_type": "text"}, headers=headers)
    assert retyped.status_code == 200, retyped.json
    after = existing_indexes(db.session, fields[volume["api_name"]])
    assert len(after) == 2 and not before & after
    client.delete(f"/api/v1/customfield/{volume['id']}", headers=headers)
    assert not existing_indexes(db.session, fields[volume["api_name"]])


# --- OpenAPI ----------------------------------------------------------------------------------
def test_openapi_describes_custom_fields_the_reader_may_see(api_as) -> None:
    volume = define(api_as, field_type="integer", label_zh="年采购量")["api_name"]
    grade = define(api_as, field_type="select", choices=["甲", "乙"])["api_name"]
    secret = define(api_as, field_type="text", visible_roles=["Finance"])["api_name"]
    client, headers = api_as("admin")
    spec = client.get("/api/v1/_openapi", headers=headers).json
    custom = spec["components"]["schemas"]["CustomerApi.get"]["properties"]["custom"]
    assert custom["properties"][volume]["type"] == "integer"
    assert "年采购量" in custom["properties"][volume]["description"]
    assert custom["properties"][grade]["enum"] == ["甲", "乙"]
    assert secret not in custom["properties"]  # visible to Finance only
    post = spec["components"]["schemas"]["CustomerApi.post"]["properties"]["custom"]
    assert volume in post["properties"] and post["additionalProperties"] is False
