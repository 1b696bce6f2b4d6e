"""The dashboards in headless Chromium (see tests/test_browser.py): each dashboard draws every
chart (an svg.main-svg per drawn figure) under the app's Content-Security-Policy (no
'unsafe-eval'), with no console error and no request leaving the server; a click on a bar opens
its list; in Chinese and in English.

Besides the charts the app registers, each dashboard gets the test's own (a bar chart with a
link per bar, a line over dates, a table), so the test knows what must be drawn. The real charts
of the sales and customers dashboards draw the small dataset `seeded` puts in their default date
range (the last 12 months, the last four complete quarters, the forecast's coming months): each
must be a plotly plot with a trace holding some of it."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import plotly.express as px
import pytest
from flask import Flask
from sqlalchemy import delete, select

from app import analytics
from app.analytics import trends
from app.analytics.rollups import refresh_rollups
from app.clock import local_today
from app.extensions import db
from models.base import utcnow
from models.customers import Customer, Industry
from models.orders import LIVE_ORDER, Order, Payment, PaymentPlan, SalesTarget
from models.pools import CustomerPool, PoolMove
from models.sales import Interaction, Opportunity, Pipeline, Product, Stage, StageChange
from models.security import CrmUser, Department
from tests.conftest import PASSWORD, unique_name
from tests.customer_analytics_support import at, new_order
from tests.test_browser import (
    LOCAL_HOSTS,
    Monitor,
    Server,
    admin_page,
    screenshots,
    server,
    visit,
    wait_until,
)

__all__ = ["screenshots", "server"]  # module fixtures of the browser test, used here

BARS = pd.DataFrame({"类别": ["客户", "联系人"], "金额": [1234567.5, 89000.0]})
LINKS = {"客户": "/customerview/list/", "联系人": "/contactview/list/"}
MONTHS = pd.DataFrame(
    {"月份": pd.date_range("2026-01-01", periods=6, freq="MS"), "金额": [5, 8, 3, 9, 12, 7]}
)


def bar_figure(df: pd.DataFrame, filters: analytics.Filters) -> Any:
    fig = px.bar(df, x="类别", y="金额")
    fig.update_yaxes(tickprefix="¥", tickformat=",.0f")
    return fig


def line_figure(df: pd.DataFrame, filters: analytics.Filters) -> Any:
    return px.line(df, x="月份", y="金额", markers=True)


def test_charts(dashboard: str) -> list[analytics.Chart]:
    return [
        analytics.Chart(
            "bt_bars",
            dashboard,
            "浏览器测试柱状图",
            lambda session, actor, filters: BARS.copy(),
            bar_figure,
            lambda row, filters: LINKS[row["类别"]],
            -3,
            6,
        ),
        analytics.Chart(
            "bt_line", dashboard, "浏览器测试折线图", lambda s, a, f: MONTHS.copy(), line_figure, None, -2, 6
        ),
        analytics.Chart(
            "bt_table", dashboard, "浏览器测试表格", lambda s, a, f: BARS.copy(), None, None, -1, 12
        ),
    ]


test_charts.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@pytest.fixture(scope="module", autouse=True)
def browser_charts() -> Iterator[None]:
    saved = {name: dict(charts) for name, charts in analytics.CHARTS.items()}
    for dashboard in analytics.DASHBOARDS:
        for chart in test_charts(dashboard):
            analytics.register(chart)
    try:
        yield
    finally:
        for name, charts in saved.items():
            analytics.CHARTS[name].clear()
            analytics.CHARTS[name].update(charts)


PID = os.getpid()
#: the dashboards whose real charts must draw the seeded data
SEEDED = ("sales", "customers")
#: real charts of those dashboards that stay empty on the default page, and why
EMPTY_BY_DEFAULT = {
    # no dimension chosen: the chart splits by one (drawn below with ?dimension=locality)
    "customers": {"by_custom_field"},
}
#: the service dashboard's charts (tickets, surveys, SLA) need tickets and survey answers, which
#: the test does not seed: they may stay empty ("暂无数据"), as long as they do not fail


def _payment(order: Order, amount: int, day: dt.date) -> None:
    """An approved collection, moved the way collections move: draft -> pending -> approved."""
    item = Payment(order_id=order.id, amount=Decimal(amount), received_on=day)
    db.session.add(item)
    db.session.flush()
    item.status = "pending"
    db.session.flush()
    item.status, item.approved_at = "approved", at(day.isoformat())
    db.session.flush()


@pytest.fixture(scope="module")
def seeded(app: Flask) -> Iterator[None]:
    """A rep of a department of their own with two customers of one industry, the one buying
    (an order in each of the trends' four quarters and one today, with a product, a payment plan
    and a collection), the other not (a potential customer: same size, level and city); a
    follow-up, a monthly target, a pipeline (first, so the funnel shows it) with an open, a won
    and a lost opportunity and stage history, a recycle and a claim in a pool; then the rollups
    refreshed as the worker does. Afterwards the orders are voided, the rest that the other
    tests could count is removed or retired, and the rollups are refreshed again."""
    with app.app_context():
        today = local_today()  # the company's day, and a moment in it not yet to come
        day = min(at(today.isoformat()), utcnow().replace(microsecond=0))
        session = db.session
        root = session.scalar(select(Department).where(Department.parent_id.is_(None)))
        department = Department(name=f"浏览器看板部{PID}", parent_id=root.id)
        session.add(department)
        session.commit()
        sm = app.appbuilder.sm
        username = f"bdrep{PID}"
        role = sm.find_role("Sales Rep")
        sm.add_user(username, username, "Test", f"{username}@test.example.cn", role, PASSWORD)
        rep = session.scalar(select(CrmUser).where(CrmUser.username == username))
        rep.department_id = department.id
        session.commit()
        industry = Industry(name=f"浏览器看板行业{PID}", position=900)
        product = Product(sku=f"BD-P-{PID}", name="浏览器看板阀门", category="阀门", unit="件")
        session.add_all([industry, product])
        session.flush()

        def customer(prefix: str, district: int, source: str, frequency: str, locality: str) -> Customer:
            item = Customer(
                name=unique_name(prefix), owner_id=rep.id, department_id=department.id,
                industry_id=industry.id, size="medium", level="key", province_code=370000,
                city_code=370500, district_code=district, source=source, purchase_frequency=frequency,
                locality=locality, created_at=day, updated_at=utcnow(),
            )  # fmt: skip
            session.add(item)
            session.flush()
            return item

        buyer = customer("浏览器看板大客户", 370502, "exhibition", "high", "local")
        other = customer("浏览器看板潜力客户", 370503, "referral", "low", "remote")
        # the trends compare the last two complete quarters with the two before: growing sales
        quarters = trends.last_quarters(analytics.Filters())
        orders = [
            new_order(buyer, rep, f"{start + dt.timedelta(days=40):%Y-%m}-10", "approved", amount, product)
            for start, amount in zip(quarters, (100_000, 150_000, 300_000, 450_000), strict=True)
        ]  # the 10th of each quarter's second month
        recent = new_order(buyer, rep, today.isoformat(), "approved", 200_000, product)
        orders.append(recent)
        plan = PaymentPlan(order_id=recent.id, number=1, planned_amount=Decimal(200_000), planned_date=today)
        session.add(plan)
        session.flush()
        _payment(recent, 50_000, today)
        session.add(Interaction(customer_id=buyer.id, owner_id=rep.id, occurred_at=day, content="跟进"))
        session.add(
            SalesTarget(user_id=rep.id, period="month", period_start=today.replace(day=1), metric="contract",
                        amount=Decimal(300_000))
        )  # fmt: skip
        pipeline = Pipeline(name=f"浏览器看板流程{PID}", position=-1000)
        first = Stage(name="初步", position=1, probability=10)
        second = Stage(name="方案", position=2, probability=50)
        won = Stage(name="赢单", position=3, probability=100, is_won=True)
        lost = Stage(name="输单", position=4, probability=0, is_lost=True)
        pipeline.stages = [first, second, won, lost]
        session.add(pipeline)
        session.flush()

        def opportunity(amount: int, stage: Stage, **extra: Any) -> Opportunity:
            item = Opportunity(
                name=unique_name("浏览器看板商机"), customer_id=buyer.id, owner_id=rep.id,
                department_id=department.id, pipeline_id=pipeline.id, stage_id=stage.id,
                amount=Decimal(amount), **extra,
            )  # fmt: skip
            session.add(item)
            session.flush()  # records its entry into the stage (now)
            return item

        open_one = opportunity(80_000, second, expected_close=today)
        opportunities = [
            open_one,
            opportunity(60_000, won, closed_at=day, close_reason="价格合适"),
            opportunity(30_000, lost, closed_at=day, close_reason="价格太高"),
        ]
        for before, after, days_ago in ((None, first, 30), (first, second, 20)):  # ten days in the first
            session.add(
                StageChange(opportunity_id=open_one.id, from_stage_id=before.id if before else None,
                            to_stage_id=after.id, changed_at=day - dt.timedelta(days=days_ago))
            )  # fmt: skip
        pool = CustomerPool(name=f"浏览器看板公海{PID}")
        session.add(pool)
        session.flush()
        reason = f"自动回收公海「{pool.name}」: 未跟进 30 天"
        moves = [
            PoolMove(
                customer_id=other.id, action="recycle", pool_id=pool.id, from_user_id=rep.id, reason=reason
            ),
            PoolMove(customer_id=other.id, action="claim", pool_id=pool.id, to_user_id=rep.id),
        ]
        for move in moves:
            move.moved_at = day
        session.add_all(moves)
        session.commit()
        refresh_rollups(session, utcnow(), full=True)
        yield
        session.rollback()
        for order in session.scalars(select(Order).where(Order.id.in_([o.id for o in orders]))):
            if order.status in LIVE_ORDER:
                order.status, order.void_reason = "voided", "测试结束"
                session.flush()
        ids = [o.id for o in opportunities]
        session.execute(delete(StageChange).where(StageChange.opportunity_id.in_(ids)))
        session.execute(delete(Opportunity).where(Opportunity.id.in_(ids)))
        session.execute(delete(PoolMove).where(PoolMove.id.in_([m.id for m in moves])))
        session.execute(delete(CustomerPool).where(CustomerPool.id == pool.id))
        session.execute(delete(Interaction).where(Interaction.customer_id == buyer.id))
        session.execute(delete(SalesTarget).where(SalesTarget.user_id == rep.id))
        session.get(Pipeline, pipeline.id).active = False
        person = session.get(CrmUser, rep.id)
        person.roles, person.active = [], False  # other tests count the users of a role
        session.commit()
        refresh_rollups(session, utcnow(), full=True)


#: per card, its plotly plot (or null): its traces (`.data` of the plot's node) and how many of
#: them hold data: a number other than 0 in x, y or values, or a table's cells. The values are
#: read from the traces as drawn (`_fullData`): in `.data` plotly 6+ keeps numeric columns as sent,
#: base64 ({dtype, bdata}).
PLOTS = """cards => Object.fromEntries(cards.map(card => {
  const plot = card.querySelector('.js-plotly-plot');
  if (!plot) { return [card.getAttribute('data-chart-figure'), null]; }
  const items = v => (Array.isArray(v) || ArrayBuffer.isView(v))
    ? Array.from(v).flatMap(x => ArrayBuffer.isView(x) ? Array.from(x) : x) : [];
  const full = trace => trace.type === 'table'
    ? items(trace.cells && trace.cells.values).some(v => v !== null && v !== undefined && v !== '')
    : ['x', 'y', 'values'].some(k => items(trace[k]).some(v => typeof v === 'number' && v !== 0));
  return [card.getAttribute('data-chart-figure'),
          {traces: (plot.data || []).length, withData: (plot._fullData || []).filter(full).length}];
}))"""


def plotted(page: Any) -> dict[str, dict[str, int] | None]:
    return page.eval_on_selector_all("[data-chart-figure]", PLOTS)


def undrawn(page: Any, shown: dict[str, str], keys: list[str]) -> dict[str, str]:
    """The charts of `keys` that are not a plotly plot with a trace holding data, with what
    they show instead."""
    plots = plotted(page)
    return {
        key: f"{shown.get(key)}, plot {plots.get(key)}"
        for key in keys
        if not plots.get(key) or not plots[key]["traces"] or not plots[key]["withData"]
    }


def drawn(page: Any, monitor: Monitor) -> dict[str, str]:
    """Wait until every card has its chart, then say what each card shows."""
    wait_until(page, "document.body.getAttribute('data-charts-loaded') === 'true'", timeout_ms=60_000)
    monitor.settle(page)
    return page.eval_on_selector_all(
        "[data-chart-figure]",
        """cards => Object.fromEntries(cards.map(card => [card.getAttribute('data-chart-figure'),
             card.querySelector('svg.main-svg') ? 'figure'
             : card.querySelector('table') ? 'table'
             : card.querySelector('.crm-chart-empty') ? 'empty'
             : card.querySelector('.text-danger') ? 'error: ' + card.textContent
             : 'nothing: ' + card.textContent]))""",
    )


@pytest.mark.parametrize("language", ["zh", "en"])
def test_the_dashboards_draw_their_charts_offline(
    server: Server, screenshots: Path, seeded: None, language: str
) -> None:
    requested: list[str] = []
    with admin_page(server) as (page, monitor):
        page.on("request", lambda request: requested.append(request.url))
        visit(page, monitor, f"{server.url}/lang/{language}")
        for dashboard in analytics.DASHBOARDS:
            visit(page, monitor, f"{server.url}/dashboards/{dashboard}")
            shown = drawn(page, monitor)
            expected = {chart.key for chart in analytics.charts_of(dashboard)}
            assert set(shown) == expected, f"{dashboard}: cards {sorted(shown)} != charts {sorted(expected)}"
            assert (
                shown["bt_bars"] == "figure" and shown["bt_line"] == "figure" and shown["bt_table"] == "table"
            )
            problems = {key: what for key, what in shown.items() if what not in ("figure", "table", "empty")}
            assert not problems, f"{dashboard}: {problems}"
            figures = [key for key, what in shown.items() if what == "figure"]
            svgs = page.eval_on_selector_all(
                "[data-chart-figure]", "cards => cards.filter(c => c.querySelector('svg.main-svg')).length"
            )
            assert svgs == len(figures)
            if dashboard in SEEDED:
                exempt = EMPTY_BY_DEFAULT.get(dashboard, set())
                real = [key for key in expected if not key.startswith("bt_") and key not in exempt]
                blank = undrawn(page, shown, sorted(real))
                assert not blank, f"{dashboard}: charts that do not draw the seeded data: {blank}"
                assert all(shown[key] == "empty" for key in exempt), {key: shown[key] for key in exempt}
            config = page.eval_on_selector("#crm-dashboard-config", "node => JSON.parse(node.textContent)")
            assert config["locale"] == ("zh-CN" if language == "zh" else "en")
            page.screenshot(path=str(screenshots / f"dashboard-{dashboard}-{language}.png"), full_page=True)
        visit(page, monitor, f"{server.url}/dashboards/customers?dimension=locality")
        shown = drawn(page, monitor)
        blank = undrawn(page, shown, ["by_custom_field"])
        assert not blank, f"customers by locality: {blank}"
        visit(page, monitor, f"{server.url}/dashboards/sales/print")
        wait_until(page, "document.body.getAttribute('data-charts-loaded') === 'true'", timeout_ms=60_000)
        assert page.locator("#print-bt_bars svg.main-svg").count() >= 1
        page.screenshot(path=str(screenshots / f"print-sales-{language}.png"), full_page=True)
        problems = monitor.report()
    outside = [
        url
        for url in requested
        if urlsplit(url).scheme in ("http", "https") and urlsplit(url).hostname not in LOCAL_HOSTS
    ]
    assert not outside, outside
    assert not problems, problems


def test_a_click_on_a_bar_opens_its_list(server: Server) -> None:
    with admin_page(server) as (page, monitor):
        visit(page, monitor, f"{server.url}/dashboards/sales")
        drawn(page, monitor)
        bars = page.locator("#chart-bt_bars .trace.bars .point path")
        assert bars.count() == 2
        box = bars.nth(1).bounding_box()
        assert box is not None
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y)
        page.wait_for_timeout(100)
        with page.expect_navigation():
            page.mouse.click(x, y)
        monitor.settle(page)
        assert urlsplit(page.url).path == "/contactview/list/"
        problems = monitor.report()
    assert not problems, problems


def test_the_content_security_policy_has_no_unsafe_eval(server: Server) -> None:
    """plotly.js draws under the policy as it is (checked by the tests above): keep it so."""
    with admin_page(server) as (page, monitor):
        response = page.goto(f"{server.url}/dashboards/sales")
        assert response is not None
        policy = response.headers.get("content-security-policy", "")
        assert policy and "unsafe-eval" not in policy and "script-src 'self'" in policy


@pytest.mark.parametrize(
    ("width", "side_by_side", "min_grid"), [(1366, True, 1100), (1920, True, 1500), (800, False, 0)]
)
def test_the_grid_fits_a_laptop_and_a_large_monitor(
    server: Server, screenshots: Path, width: int, side_by_side: bool, min_grid: int
) -> None:
    """Half-width charts sit side by side on a laptop and a large monitor (which the grid fills
    beyond Bootstrap's 1170 px), and stack on a narrow screen."""
    with admin_page(server) as (page, monitor):
        page.set_viewport_size({"width": width, "height": 1000})
        visit(page, monitor, f"{server.url}/dashboards/sales")
        drawn(page, monitor)
        bars = page.locator("#chart-bt_bars").bounding_box()
        line = page.locator("#chart-bt_line").bounding_box()
        grid = page.locator(".crm-chart-grid").bounding_box()
        assert bars and line and grid
        assert (abs(bars["y"] - line["y"]) < 2) == side_by_side, (bars, line)
        assert grid["width"] >= min_grid, grid
        plot = page.locator("#chart-bt_bars svg.main-svg").first.bounding_box()
        assert plot and plot["width"] <= bars["width"] + 1  # the figure fits its card
        page.screenshot(path=str(screenshots / f"dashboard-sales-{width}.png"), full_page=False)
        problems = monitor.report()
    assert not problems, problems
