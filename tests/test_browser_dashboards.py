"""The dashboards in headless Chromium (see tests/test_browser.py): each dashboard draws every
chart (an svg.main-svg per drawn figure) under the app's Content-Security-Policy (no
'unsafe-eval'), with no console error and no request leaving the server; a click on a bar opens
its list; in Chinese and in English.

Besides the charts the app registers, each dashboard gets the test's own (a bar chart with a
link per bar, a line over dates, a table), so the test knows what must be drawn."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import plotly.express as px
import pytest

from app import analytics
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
def test_the_dashboards_draw_their_charts_offline(server: Server, screenshots: Path, language: str) -> None:
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
            config = page.eval_on_selector("#crm-dashboard-config", "node => JSON.parse(node.textContent)")
            assert config["locale"] == ("zh-CN" if language == "zh" else "en")
            page.screenshot(path=str(screenshots / f"dashboard-{dashboard}-{language}.png"), full_page=True)
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
