"""The dashboards' pages around the charts: who may open which dashboard, filters parsed and
refused (400 with a clear message), each chart's JSON, CSV and Excel (read back by pandas, the
same numbers as the data function), the printable page, subscriptions (我的订阅).

The charts here are the test's own, registered with a known DataFrame in place of the real ones
(restored afterwards), so these tests do not depend on the charts' modules.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from typing import Any

import pandas as pd
import plotly.express as px
import pytest
from flask import Flask
from sqlalchemy import delete, func, select

from app import analytics
from app.analytics.export import csv_bytes, point_links, sheet_title
from app.analytics.filters import filter_choices, parse_filters, quick_range
from app.errors import ValidationFailed
from app.extensions import db
from models.analytics import DashboardSubscription
from models.security import CrmUser
from tests.conftest import user
from tests.customfield_support import define
from tests.login_support import csrf_from, other_app

TITLE = "测试收入"
#: the test's known numbers: revenue per level, with a name that a spreadsheet would run
FRAME = pd.DataFrame(
    {
        "level": ["重点", "普通", "=1+1"],
        "revenue": [1234567.5, 8900.25, 0.0],
        "orders": [12, 3, 0],
    }
)
LINKS = {"重点": "/customerview/list/", "普通": "/contactview/list/"}
#: what the test's data function was last called with
calls: list[tuple[str, analytics.Filters]] = []


def revenue_data(session: Any, actor: CrmUser, filters: analytics.Filters) -> pd.DataFrame:
    calls.append((actor.username, filters))
    return FRAME.copy()


def revenue_figure(df: pd.DataFrame, filters: analytics.Filters) -> Any:
    return px.bar(df, x="level", y="revenue")


def revenue_link(row: dict[str, Any], filters: analytics.Filters) -> str | None:
    return LINKS.get(row["level"])


def table_data(session: Any, actor: CrmUser, filters: analytics.Filters) -> pd.DataFrame:
    return pd.DataFrame({"客户": ["甲公司", "乙公司"], "金额": [100, 250]})


def empty_data(session: Any, actor: CrmUser, filters: analytics.Filters) -> pd.DataFrame:
    return pd.DataFrame({"x": []})


TEST_CHARTS = [
    analytics.Chart("revenue", "sales", TITLE, revenue_data, revenue_figure, revenue_link, 1, 6),
    analytics.Chart("top", "sales", "测试排行", table_data, None, None, 2, 6),
    analytics.Chart("nothing", "sales", "测试空图", empty_data, revenue_figure, None, 3, 12),
]


@pytest.fixture(autouse=True)
def test_charts() -> Iterator[None]:
    """Only the test's charts on the dashboards while a test runs; the real ones afterwards."""
    saved = {name: dict(charts) for name, charts in analytics.CHARTS.items()}
    for charts in analytics.CHARTS.values():
        charts.clear()
    for chart in TEST_CHARTS:
        analytics.register(chart)
    calls.clear()
    try:
        yield
    finally:
        for name, charts in saved.items():
            analytics.CHARTS[name].clear()
            analytics.CHARTS[name].update(charts)


@pytest.fixture(autouse=True)
def no_subscriptions() -> Iterator[None]:
    yield
    db.session.rollback()
    db.session.execute(delete(DashboardSubscription))
    db.session.commit()


# --- who may open which dashboard -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("username", "allowed"),
    [
        ("admin", {"sales", "customers", "service"}),
        ("manager1", {"sales", "customers", "service"}),
        ("rep_a", {"sales", "customers"}),
        ("finance", {"sales", "customers"}),
        ("readonly", set()),
    ],
)
def test_pages_per_role(login_as, username: str, allowed: set[str]) -> None:
    client = login_as(username)
    home = client.get("/").get_data(as_text=True)
    for name in analytics.DASHBOARDS:
        response = client.get(f"/dashboards/{name}")
        if name in allowed:
            assert response.status_code == 200, (name, response.status_code)
            assert f'href="/dashboards/{name}"' in home, f"{username} has no menu entry for {name}"
        else:
            assert response.status_code in (302, 403), (name, response.status_code)  # access denied
            assert f'href="/dashboards/{name}"' not in home
    assert ('href="/dashboardsubscriptionview/list/"' in home) == bool(allowed) or username == "readonly"


def test_the_page_shows_the_cards_and_the_filter_bar(login_as) -> None:
    page = login_as("rep_a").get("/dashboards/sales?range=year").get_data(as_text=True)
    for chart in TEST_CHARTS:
        assert f'id="chart-{chart.key}"' in page
        assert f"/dashboards/sales/data/{chart.key}.csv?range=year" in page
        assert f"/dashboards/sales/data/{chart.key}.xlsx?range=year" in page
    assert 'class="col-xs-12 col-md-12 col-lg-12 crm-chart-col"' in page  # the 12-wide chart
    for label in ("本月", "本季度", "本年", "近12个月"):
        assert label in page
    assert "/dashboards/plotly-" in page and "crm/dashboards.js" in page
    assert "<script>" not in page.split('id="crm-dashboard-config"')[1].split("</script>", 1)[1]
    config = json.loads(page.split('id="crm-dashboard-config">')[1].split("</script>")[0])
    assert [c["key"] for c in config["charts"]] == ["revenue", "top", "nothing"]
    # a rep's owner choices: only themselves (data scope "self")
    rep = user("rep_a")
    owners = page.split('id="crm-owner"')[1].split("</select>")[0]
    assert f'value="{rep.id}"' in owners and f'value="{user("rep_c").id}"' not in owners


def test_an_empty_dashboard_says_so(login_as) -> None:
    analytics.CHARTS["sales"].clear()
    page = login_as("admin").get("/dashboards/sales").get_data(as_text=True)
    assert "暂无数据" in page and "crm-chart-card" not in page


# --- filters -------------------------------------------------------------------------------------------
def test_filters_are_parsed_into_the_data_function(login_as) -> None:
    manager = user("manager1")
    rep = user("rep_a")
    client = login_as("manager1")
    response = client.get(f"/dashboards/sales/data/revenue.json?from=2026-01-01&to=2026-03-31&owner={rep.id}")
    assert response.status_code == 200, response.get_data(as_text=True)
    username, filters = calls[-1]
    assert username == manager.username
    assert filters.date_from == dt.date(2026, 1, 1) and filters.date_to == dt.date(2026, 3, 31)
    assert filters.owner_id == rep.id and filters.department_id is None and filters.custom == {}


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("from=2026-02-30", "from", "不是有效的日期"),
        ("to=yesterday", "to", "不是有效的日期"),
        ("from=2026-03-01&to=2026-01-01", "to", "结束日期不能早于开始日期"),
        ("range=decade", "range", "快捷范围只能是"),
        ("range=year&from=2026-01-01", "range", "不能再填写起止日期"),
        ("owner=abc", "owner", "不是有效的编号"),
        ("owner=999999", "owner", "不在您的数据权限内"),
        ("pipeline=999999", "pipeline", "不在您的数据权限内"),
        ("colour=red", "colour", "未知的筛选条件"),
        ("cf_nosuchfield=x", "cf_nosuchfield", "不是可用于筛选的下拉字段"),
        ("dimension=nosuchfield", "dimension", "不是可用作维度的下拉字段"),
    ],
)
def test_bad_filters_are_refused_with_a_clear_400(login_as, query: str, field: str, message: str) -> None:
    client = login_as("rep_a")
    page = client.get(f"/dashboards/sales?{query}")
    assert page.status_code == 400
    assert message in page.get_data(as_text=True)
    data = client.get(f"/dashboards/sales/data/revenue.json?{query}")
    assert data.status_code == 400
    assert any(message in text for text in data.json["message"][field]), data.json
    for kind in ("csv", "xlsx"):
        download = client.get(f"/dashboards/sales/data/revenue.{kind}?{query}")
        assert download.status_code == 400 and message in download.get_data(as_text=True)
    printable = client.get(f"/dashboards/sales/print?{query}")
    assert printable.status_code == 400 and message in printable.get_data(as_text=True)
    assert calls == []  # no data function ran


def test_owners_and_departments_outside_the_scope_are_refused(login_as) -> None:
    """manager1 (team1's tree) may pick rep_a and team1, not rep_c of team2 nor team2."""
    session = db.session
    manager = user("manager1")
    choices = filter_choices(session, manager)
    owners = {choice.value for choice in choices.owners}
    assert {user("rep_a").id, user("rep_b").id, manager.id} <= owners
    assert user("rep_c").id not in owners
    assert {c.label for c in choices.departments} == {"一部"}
    client = login_as("manager1")
    refused = client.get(f"/dashboards/sales/data/revenue.json?owner={user('rep_c').id}")
    assert refused.status_code == 400 and "owner" in refused.json["message"]
    team2 = next(c for c in filter_choices(session, user("admin")).departments if c.label == "二部")
    refused = client.get(f"/dashboards/sales/data/revenue.json?department={team2.value}")
    assert refused.status_code == 400 and "department" in refused.json["message"]
    team1 = next(c for c in choices.departments if c.label == "一部")
    assert client.get(f"/dashboards/sales/data/revenue.json?department={team1.value}").status_code == 200
    assert calls[-1][1].department_id == team1.value


def test_quick_ranges() -> None:
    today = dt.date(2026, 11, 24)
    assert quick_range("month", today) == (dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    assert quick_range("quarter", today) == (dt.date(2026, 10, 1), dt.date(2026, 12, 31))
    assert quick_range("year", today) == (dt.date(2026, 1, 1), dt.date(2026, 12, 31))
    assert quick_range("12m", today) == (dt.date(2025, 12, 1), dt.date(2026, 11, 30))
    assert quick_range("quarter", dt.date(2026, 2, 28)) == (dt.date(2026, 1, 1), dt.date(2026, 3, 31))
    filters = parse_filters(db.session, user("rep_a"), {"range": "12m", "_l_": "en"}, today=today)
    assert (filters.date_from, filters.date_to) == (dt.date(2025, 12, 1), dt.date(2026, 11, 30))


def test_a_select_custom_field_is_a_filter_and_a_dimension(login_as, api_as, clean_custom_fields) -> None:
    field = define(
        api_as, field_type="select", label_zh="客户等级测试", choices=["金牌", "银牌"], indexed=True
    )
    other = define(api_as, field_type="text", label_zh="备注测试")
    client = login_as("rep_a")
    page = client.get("/dashboards/sales").get_data(as_text=True)
    assert f'name="cf_{field["api_name"]}"' in page and "客户等级测试" in page
    assert f'name="cf_{other["api_name"]}"' not in page  # only select fields
    response = client.get(
        f"/dashboards/sales/data/revenue.json?cf_{field['api_name']}=金牌&dimension={field['api_name']}"
    )
    assert response.status_code == 200, response.json
    filters = calls[-1][1]
    assert filters.custom == {field["api_name"]: "金牌"} and filters.dimension == field["api_name"]
    refused = client.get(f"/dashboards/sales/data/revenue.json?cf_{field['api_name']}=铜牌")
    assert refused.status_code == 400
    assert "不是字段「客户等级测试」的选项" in refused.json["message"][f"cf_{field['api_name']}"][0]
    refused = client.get(f"/dashboards/sales/data/revenue.json?cf_{other['api_name']}=x")
    assert refused.status_code == 400


def test_a_select_field_not_indexed_is_not_offered_and_refused_with_the_way_out(
    login_as, api_as, clean_custom_fields
) -> None:
    """The one rule (rollups.dashboard_field) decides both the filter bar and the check: a select
    field that is not indexed is named in the help with what to do, and a crafted request with it
    is a 400 that says so, before any chart runs."""
    plain = define(api_as, field_type="select", label_zh="未索引等级", choices=["甲", "乙"])
    client = login_as("rep_a")
    page = client.get("/dashboards/sales").get_data(as_text=True)
    assert f'name="cf_{plain["api_name"]}"' not in page
    assert f'value="{plain["api_name"]}"' not in page.split('id="crm-dimension"')[1].split("</select>")[0]
    help_text = page.split('id="crm-dimension-help"')[1].split("</p>")[0]
    assert "未索引等级" in help_text and "建索引" in help_text and "客户" in help_text
    for query, key in (
        (f"cf_{plain['api_name']}=甲", f"cf_{plain['api_name']}"),
        (f"dimension={plain['api_name']}", "dimension"),
    ):
        refused = client.get(f"/dashboards/sales/data/revenue.json?{query}")
        assert refused.status_code == 400
        (message,) = refused.json["message"][key]
        assert "未索引等级" in message and "勾选「建索引」" in message
        assert client.get(f"/dashboards/sales?{query}").status_code == 400
    assert calls == []


def test_locality_is_a_filter_and_a_dimension_of_the_sales_and_customers_dashboards(login_as) -> None:
    client = login_as("rep_a")
    page = client.get("/dashboards/sales").get_data(as_text=True)
    assert 'name="cf_locality"' in page and "本地客户" in page and 'value="locality"' in page
    response = client.get("/dashboards/sales/data/revenue.json?cf_locality=remote&dimension=locality")
    assert response.status_code == 200, response.json
    filters = calls[-1][1]
    assert filters.custom == {"locality": "remote"} and filters.dimension == "locality"
    refused = client.get("/dashboards/sales/data/revenue.json?cf_locality=abroad")
    assert refused.status_code == 400
    # the service dashboard's live ticket queries do not key it: not offered there
    service = login_as("manager1")
    assert 'name="cf_locality"' not in service.get("/dashboards/service").get_data(as_text=True)
    assert service.get("/dashboards/service?cf_locality=local").status_code == 400


# --- each chart's data --------------------------------------------------------------------------------
def test_the_chart_json_has_the_figure_and_a_link_per_bar(login_as) -> None:
    response = login_as("rep_a").get("/dashboards/sales/data/revenue.json")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "private, no-store"
    data = response.json
    assert data["empty"] is False and data["title"] == TITLE
    (trace,) = data["figure"]["data"]
    assert trace["type"] == "bar"
    assert data["links"] == [["/customerview/list/", "/contactview/list/", None]]
    assert data["figure"]["layout"]["separators"] == ".,"


def test_point_links_follow_rows_across_traces() -> None:
    """A figure that splits rows into traces (colour) still links each bar to its own row."""
    df = pd.DataFrame({"month": ["1月", "1月", "2月"], "kind": ["新", "老", "新"], "amount": [1, 2, 3]})
    fig = px.bar(df, x="month", y="amount", color="kind")
    rows = df.to_dict("records")
    links = ["/a", "/b", "/c"]
    by_trace = {
        trace.name: found for trace, found in zip(fig.data, point_links(fig, rows, links), strict=True)
    }
    assert by_trace == {"新": ["/a", "/c"], "老": ["/b"]}


def test_a_table_chart_and_an_empty_chart(login_as) -> None:
    client = login_as("rep_a")
    table = client.get("/dashboards/sales/data/top.json").json
    assert table["table"] == {
        "columns": ["客户", "金额"],
        "rows": [["甲公司", 100], ["乙公司", 250]],
        "links": None,
    }
    empty = client.get("/dashboards/sales/data/nothing.json").json
    assert empty == {"key": "nothing", "title": "测试空图", "empty": True}


def test_an_unknown_chart_is_404(login_as) -> None:
    client = login_as("admin")
    for kind in ("json", "csv", "xlsx"):
        assert client.get(f"/dashboards/sales/data/nosuchchart.{kind}").status_code == 404
    assert client.get("/dashboards/service/data/revenue.json").status_code == 404  # not that dashboard's


def test_csv_is_readable_by_pandas_with_the_same_numbers(login_as) -> None:
    response = login_as("rep_a").get("/dashboards/sales/data/revenue.csv?range=year")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "sales-revenue.csv" in response.headers["Content-Disposition"]
    body = response.get_data()
    assert body.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads the Chinese right
    read = pd.read_csv(io.BytesIO(body), encoding="utf-8-sig")
    assert list(read.columns) == list(FRAME.columns)
    assert read["revenue"].tolist() == FRAME["revenue"].tolist()
    assert read["orders"].tolist() == FRAME["orders"].tolist()
    assert read["level"].tolist() == ["重点", "普通", "'=1+1"]  # a formula stays text


def test_xlsx_is_readable_by_pandas_with_the_same_numbers(login_as) -> None:
    response = login_as("rep_a").get("/dashboards/sales/data/revenue.xlsx")
    assert response.status_code == 200
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    sheets = pd.read_excel(io.BytesIO(response.get_data()), sheet_name=None)
    assert list(sheets) == [TITLE]
    read = sheets[TITLE]
    assert read["revenue"].tolist() == FRAME["revenue"].tolist()
    assert read["orders"].tolist() == FRAME["orders"].tolist()
    assert read["level"].tolist()[:2] == ["重点", "普通"]


def test_export_helpers() -> None:
    assert sheet_title("回款/计划: [2026]?") == "回款 计划   2026"
    assert len(sheet_title("很长的标题" * 10)) == 31
    frame = pd.DataFrame({"月份": [pd.Timestamp("2026-01-01")], "金额": [float("nan")]})
    text = csv_bytes(frame).decode("utf-8-sig")
    assert text == "月份,金额\r\n2026-01-01,\r\n"


def test_exports_need_the_export_permission(login_as) -> None:
    client = login_as("readonly")
    assert client.get("/dashboards/sales/data/revenue.csv").status_code in (302, 403)
    assert client.get("/dashboards/sales/data/revenue.json").status_code in (302, 403)


# --- the printable page --------------------------------------------------------------------------------
def test_the_printable_page(login_as) -> None:
    response = login_as("rep_a").get("/dashboards/sales/print?range=year")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    for chart in TEST_CHARTS:
        assert f'id="print-{chart.key}"' in page and str(chart.title) in page
    assert "1,234,567.50" in page and "甲公司" in page  # the tables
    assert 'id="figure-revenue"' in page and 'id="figure-top"' not in page  # a figure where drawn
    figure = json.loads(page.split('id="figure-revenue">')[1].split("</script>")[0])
    assert figure["data"][0]["type"] == "bar"
    assert "@media print" in login_as("rep_a").get("/static/crm/dashboards.css").get_data(as_text=True)
    assert "<script>" not in page  # no inline script (Content-Security-Policy)


# --- plotly.js from the package ------------------------------------------------------------------------
def test_plotly_js_is_served_by_the_app_with_long_caching(client) -> None:
    import plotly

    response = client.get(f"/dashboards/plotly-{plotly.__version__}.min.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert (
        "immutable" in response.headers["Cache-Control"]
        and "max-age=31536000" in response.headers["Cache-Control"]
    )
    assert b"plotly.js" in response.get_data()[:200]
    assert client.get("/dashboards/plotly-0.0.0.min.js").status_code == 404


# --- subscriptions --------------------------------------------------------------------------------------
def subscriptions_of(username: str) -> list[DashboardSubscription]:
    db.session.rollback()
    owner = user(username)
    return list(
        db.session.scalars(select(DashboardSubscription).where(DashboardSubscription.user_id == owner.id))
    )


def test_subscribe_and_unsubscribe(login_as) -> None:
    client = login_as("rep_a")
    response = client.post(
        "/dashboards/sales/subscribe", data={"weekday": "2", "query": "range=12m&pipeline="}
    )
    assert response.status_code == 302 and response.location.endswith("/dashboards/sales?range=12m&pipeline=")
    (item,) = subscriptions_of("rep_a")
    assert (item.dashboard, item.weekday, item.filters, item.active) == ("sales", 2, {"range": "12m"}, True)
    page = client.get("/dashboards/sales").get_data(as_text=True)
    assert "已订阅" in page and "取消订阅" in page
    # again: the same subscription, new day and filters
    client.post("/dashboards/sales/subscribe", data={"weekday": "4", "query": "range=year"})
    (item,) = subscriptions_of("rep_a")
    assert (item.weekday, item.filters) == (4, {"range": "year"})
    # 我的订阅 lists it
    listing = client.get("/dashboardsubscriptionview/list/").get_data(as_text=True)
    assert "周五" in listing and '<a href="/dashboards/sales">销售分析</a>' in listing
    assert client.post("/dashboards/sales/unsubscribe", data={"query": ""}).status_code == 302
    assert subscriptions_of("rep_a") == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"weekday": "7", "query": ""}, "请选择星期一到星期日中的一天"),
        ({"weekday": "周一", "query": ""}, "请选择星期一到星期日中的一天"),
        ({"weekday": "0", "query": "from=2026-13-01"}, "不是有效的日期"),
        ({"weekday": "0", "query": "owner=999999"}, "不在您的数据权限内"),
    ],
)
def test_a_bad_subscription_is_refused_and_nothing_written(
    login_as, data: dict[str, str], message: str
) -> None:
    response = login_as("rep_a").post("/dashboards/sales/subscribe", data=data)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert subscriptions_of("rep_a") == []


def test_a_role_without_the_dashboard_cannot_subscribe(login_as) -> None:
    response = login_as("rep_a").post("/dashboards/service/subscribe", data={"weekday": "0", "query": ""})
    assert response.status_code in (302, 403)
    assert subscriptions_of("rep_a") == []


def test_my_subscriptions_are_my_own(login_as, api_as) -> None:
    login_as("rep_a").post("/dashboards/sales/subscribe", data={"weekday": "1", "query": ""})
    login_as("rep_b").post("/dashboards/customers/subscribe", data={"weekday": "3", "query": ""})
    (mine,) = subscriptions_of("rep_a")
    (theirs,) = subscriptions_of("rep_b")
    client = login_as("rep_a")
    listing = client.get("/dashboardsubscriptionview/list/").get_data(as_text=True)
    assert '<a href="/dashboards/sales">销售分析</a>' in listing
    assert '<a href="/dashboards/customers">客户分析</a>' not in listing
    assert client.get(f"/dashboardsubscriptionview/show/{theirs.id}").status_code in (302, 404)
    api, headers = api_as("rep_a")
    ids = [row["id"] for row in api.get("/api/v1/dashboardsubscription/", headers=headers).json["result"]]
    assert ids == [mine.id]
    assert api.get(f"/api/v1/dashboardsubscription/{theirs.id}", headers=headers).status_code == 404
    assert api.delete(f"/api/v1/dashboardsubscription/{theirs.id}", headers=headers).status_code == 404
    changed = api.put(f"/api/v1/dashboardsubscription/{mine.id}", json={"weekday": 6}, headers=headers)
    assert changed.status_code == 200, changed.json
    refused = api.put(f"/api/v1/dashboardsubscription/{mine.id}", json={"weekday": 9}, headers=headers)
    assert refused.status_code in (400, 422), refused.json
    assert [s.weekday for s in subscriptions_of("rep_a")] == [6]
    assert [s.weekday for s in subscriptions_of("rep_b")] == [3]


def test_subscribing_needs_the_csrf_token(app: Flask, database_url: str) -> None:
    protected = other_app(database_url, WTF_CSRF_ENABLED=True)
    client = protected.test_client()
    with protected.app_context():
        login = client.get("/login/").get_data(as_text=True)
        client.post(
            "/login/",
            data={"username": "rep_a", "password": "Test-Passw0rd!", "csrf_token": csrf_from(login)},
        )
        refused = client.post("/dashboards/sales/subscribe", data={"weekday": "0", "query": ""})
        assert refused.status_code == 400
        page = client.get("/dashboards/sales").get_data(as_text=True)
        accepted = client.post(
            "/dashboards/sales/subscribe", data={"weekday": "0", "query": "", "csrf_token": csrf_from(page)}
        )
        assert accepted.status_code == 302
        db.session.remove()
    assert db.session.scalar(select(func.count()).select_from(DashboardSubscription)) == 1


def test_parse_filters_refuses_every_bad_field_at_once() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_filters(db.session, user("rep_a"), {"from": "x", "owner": "y", "foo": "1"})
    assert set(caught.value.errors) == {"from", "owner", "foo"}


def refusing_data(session: Any, actor: CrmUser, filters: analytics.Filters) -> pd.DataFrame:
    raise ValidationFailed({"dimension": ["本图不支持按自定义字段分组"]})


def test_a_chart_that_refuses_the_filters_says_why(login_as) -> None:
    analytics.register(
        analytics.Chart("picky", "sales", "测试挑剔", refusing_data, revenue_figure, None, 9, 6)
    )
    client = login_as("rep_a")
    response = client.get("/dashboards/sales/data/picky.json")
    assert response.status_code == 400
    assert response.json["message"] == {"dimension": ["本图不支持按自定义字段分组"]}
    assert client.get("/dashboards/sales/data/picky.csv").status_code == 400
    printable = client.get("/dashboards/sales/print")
    assert printable.status_code == 200 and "本图不支持按自定义字段分组" in printable.get_data(as_text=True)


def test_my_subscriptions_screen_changes_the_day_and_pauses(login_as) -> None:
    client = login_as("rep_a")
    client.post("/dashboards/sales/subscribe", data={"weekday": "1", "query": "range=month"})
    (item,) = subscriptions_of("rep_a")
    form = client.get(f"/dashboardsubscriptionview/edit/{item.id}")
    assert form.status_code == 200 and "周日" in form.get_data(as_text=True)
    saved = client.post(f"/dashboardsubscriptionview/edit/{item.id}", data={"weekday": "5"})
    assert saved.status_code == 302, saved.get_data(as_text=True)[:500]
    (item,) = subscriptions_of("rep_a")
    assert (item.weekday, item.active, item.filters) == (5, False, {"range": "month"})  # unticked: paused
    assert login_as("rep_b").get(f"/dashboardsubscriptionview/edit/{item.id}").status_code in (302, 404)


# --- the house style ---------------------------------------------------------------------------------
def test_a_time_axis_with_one_month_becomes_a_category_axis() -> None:
    """"This month" leaves one month on a chart by month: plotly would draw a millisecond-wide
    date range with an invisible bar; the axis becomes a category axis with one labelled bar.
    Two months stay a date axis, and a numeric axis with one value (one customer's bar) stays."""
    from plotly.graph_objects import Figure

    from views.analytics import style

    one_month = style(Figure(data=[{"type": "bar", "x": ["2026-11"], "y": [1200.0]}]))
    assert one_month.layout.xaxis.type == "category" and one_month.layout.yaxis.type is None
    days = style(Figure(data=[{"type": "scatter", "x": [dt.date(2026, 11, 2)], "y": [3], "xaxis": "x"}]))
    assert days.layout.xaxis.type == "category"
    two_months = style(Figure(data=[{"type": "bar", "x": ["2026-10", "2026-11"], "y": [1, 2]}]))
    assert two_months.layout.xaxis.type is None
    one_customer = style(Figure(data=[{"type": "bar", "x": [5000.0], "y": ["甲公司"], "orientation": "h"}]))
    assert one_customer.layout.xaxis.type is None and one_customer.layout.yaxis.type is None
    subplots = Figure(
        data=[
            {"type": "bar", "x": ["2026-11"], "y": [1]},
            {"type": "bar", "x": ["2026-10", "2026-11"], "y": [1, 2], "xaxis": "x2", "yaxis": "y2"},
        ],
        layout={"xaxis2": {"anchor": "y2"}, "yaxis2": {}},
    )
    styled = style(subplots)
    assert styled.layout.xaxis.type == "category" and styled.layout.xaxis2.type is None
