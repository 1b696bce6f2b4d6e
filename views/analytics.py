"""分析: the dashboards (/dashboards/sales, /customers, /service) and 我的订阅.

The views only parse the request and map the result: the filters are read and checked by
app.analytics.filters, each chart's numbers come from its data function in the registry
(app.analytics, within the user's data scope), files from app.analytics.export, subscriptions
from app.analytics.reports. The page draws each chart in the browser: it fetches the chart's
JSON (`data/<chart>.json`: the plotly figure from `fig.to_json()` and the link of each point)
one after the other, so the first paint does not wait for every chart; plotly.js is served by
the app from the plotly package (no CDN) and driven by static/crm/dashboards.js (no inline
script: the Content-Security-Policy stays as it is).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode

import pandas as pd
import plotly
from flask import Response, abort, current_app, flash, redirect, request, send_file, url_for
from flask_appbuilder import AppBuilder, BaseView, expose, has_access
from flask_appbuilder.security.decorators import permission_name
from flask_babel import get_locale, gettext
from flask_babel import lazy_gettext as _
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup
from plotly.graph_objects import Figure
from werkzeug.datastructures import MultiDict
from wtforms import SelectField

from app import analytics
from app.access import current_actor
from app.analytics import charts as _registered_charts  # noqa: F401 (importing it registers the charts)
from app.analytics.export import csv_bytes, json_rows, point_links, row_dicts, script_json, xlsx_bytes
from app.analytics.filters import QUICK_RANGES, clean_args, filter_choices, parse_filters
from app.analytics.reports import (
    DASHBOARD_TITLES,
    WEEKDAYS,
    dashboard_url,
    subscribe,
    subscription_of,
    unsubscribe,
    weekday_label,
)
from app.audit import record_export
from app.errors import DomainError
from app.extensions import db
from models.analytics import DashboardSubscription
from views.base import CrmInterface, CrmModelApi, CrmModelView
from views.notifications import MINE, safe_link

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
#: in the URL, so a new plotly package is a new address and the year-long cache never goes stale
PLOTLY_VERSION = plotly.__version__
#: rows of a table chart in the browser and on the printable page
TABLE_ROWS = 50
CATEGORY = "Analytics"
FONT = (
    "-apple-system, 'PingFang SC', 'Microsoft YaHei', 'Noto Sans CJK SC', 'Helvetica Neue', Arial, sans-serif"
)

#: the page's texts, translated on the server and handed to dashboards.js
JS_TEXTS = {
    "empty": _("暂无数据"),
    "loading": _("加载中…"),
    "failed": _("图表加载失败"),
    "open": _("点击查看明细"),
}


def language() -> str:
    return "zh-CN" if str(get_locale() or "zh").startswith("zh") else "en"


#: a month ("2026-11"), a day or a moment as the figures write them on a time axis
DATE_TEXT = re.compile(r"^\d{4}-\d{2}(-\d{2})?([ T][\d:.]+)?$")


def _is_date(value: Any) -> bool:
    if isinstance(value, (dt.date, dt.datetime)):
        return True
    return isinstance(value, str) and bool(DATE_TEXT.match(value))


def _one_date_axes_as_categories(fig: Figure) -> None:
    """A time axis with a single value (the filter "this month" on a chart by month) is drawn
    by plotly as a millisecond-wide range with a bar one millisecond wide: invisible, labelled
    "23:59:59.9996". Such an axis becomes a category axis: one labelled bar, as the user expects."""
    values: dict[str, set[str]] = {}
    for trace in fig.data:
        if trace.type not in ("bar", "scatter"):
            continue
        for letter in ("x", "y"):
            data = getattr(trace, letter, None)
            if data is not None and len(data) and all(_is_date(v) for v in data):
                axis = (getattr(trace, f"{letter}axis", None) or letter).replace(letter, f"{letter}axis", 1)
                values.setdefault(axis, set()).update(str(v) for v in data)
    for axis, seen in values.items():
        if len(seen) == 1:
            fig.layout[axis].type = "category"


def style(fig: Figure) -> Figure:
    """The house style every dashboard shares: fills its card, CJK fonts, ¥ 1,234.5 separators."""
    _one_date_axes_as_categories(fig)
    fig.update_layout(
        autosize=True,
        width=None,
        height=fig.layout.height or 340,
        separators=fig.layout.separators or ".,",
        font_family=fig.layout.font.family or FONT,
        margin=fig.layout.margin if fig.layout.margin.t is not None else {"l": 56, "r": 16, "t": 24, "b": 48},
        paper_bgcolor=fig.layout.paper_bgcolor or "rgba(0,0,0,0)",
    )
    return fig


def chart_json(chart: analytics.Chart, df: pd.DataFrame, filters: analytics.Filters) -> str:
    """A chart for the browser: its figure (plotly JSON) and each point's link, or its table."""
    meta: dict[str, Any] = {"key": chart.key, "title": str(chart.title), "empty": bool(df.empty)}
    if df.empty:
        return json.dumps(meta)
    rows = row_dicts(df)
    links = [safe_link(chart.link(row, filters)) for row in rows] if chart.link else None
    if chart.figure is None:
        header, values = json_rows(df, TABLE_ROWS)
        meta["table"] = {"columns": header, "rows": values, "links": links[:TABLE_ROWS] if links else None}
        return json.dumps(meta, default=str)
    fig = style(chart.figure(df, filters))
    meta["links"] = point_links(fig, rows, links) if links else None
    return json.dumps(meta, default=str)[:-1] + ',"figure":' + fig.to_json() + "}"


class DashboardView(BaseView):
    """One dashboard: the page, each chart's data (JSON, CSV, Excel), the printable page and
    the subscription. Subclasses name the dashboard; permissions are can_show, can_data,
    can_export, can_print and can_subscribe on the subclass."""

    dashboard: ClassVar[str]
    default_view = "show"

    @property
    def title(self) -> str:
        return str(DASHBOARD_TITLES[self.dashboard])

    # --- helpers ---------------------------------------------------------------------------------
    def _chart(self, key: str) -> analytics.Chart:
        chart = analytics.CHARTS[self.dashboard].get(key)
        if chart is None:
            abort(404)
        return chart

    def _filters(self) -> analytics.Filters:
        return parse_filters(db.session, current_actor(), request.args, dashboard=self.dashboard)

    def _may(self, permission: str) -> bool:
        return bool(current_app.appbuilder.sm.has_access(f"can_{permission}", type(self).__name__))

    def _query(self) -> str:
        return urlencode(clean_args(request.args))

    def _frame(self, key: str) -> tuple[analytics.Chart, analytics.Filters, pd.DataFrame]:
        chart = self._chart(key)
        filters = self._filters()
        return chart, filters, chart.data(db.session, current_actor(), filters)

    def _refused(self, exc: DomainError, kind: str) -> Response:
        db.session.rollback()
        if kind == "json":
            return Response(
                json.dumps({"message": exc.errors}), status=exc.status, mimetype="application/json"
            )
        return Response(exc.summary(), status=exc.status, mimetype="text/plain")

    def _refused_page(self, exc: DomainError, back: str) -> Any:
        """A screen that says what was wrong (400), with the way back."""
        db.session.rollback()
        html = self.render_template("analytics/refused.html", title=self.title, errors=exc.errors, back=back)
        return html, exc.status

    # --- the page --------------------------------------------------------------------------------
    @expose("/")
    @expose("")
    @has_access
    @permission_name("show")
    def show(self) -> Any:
        session, actor = db.session, current_actor()
        choices = filter_choices(session, actor, self.dashboard)
        errors: dict[str, list[str]] = {}
        status = 200
        try:
            filters = parse_filters(session, actor, request.args, choices)
        except DomainError as exc:
            errors, status, filters = exc.errors, exc.status, analytics.Filters()
        query = self._query()
        suffix = f"?{query}" if query else ""
        charts = [
            {
                "key": chart.key,
                "title": str(chart.title),
                "description": str(chart.description) if chart.description else "",
                "width": max(1, min(12, chart.width)),
                "data_url": url_for(f"{type(self).__name__}.chart_data", key=chart.key) + suffix,
                "csv_url": url_for(f"{type(self).__name__}.chart_csv", key=chart.key) + suffix,
                "xlsx_url": url_for(f"{type(self).__name__}.chart_xlsx", key=chart.key) + suffix,
            }
            for chart in analytics.charts_of(self.dashboard)
        ]
        config = {
            "locale": language(),
            "texts": {key: str(text) for key, text in JS_TEXTS.items()},
            "charts": [] if errors else [{"key": c["key"], "url": c["data_url"]} for c in charts],
        }
        subscription = subscription_of(session, actor, self.dashboard) if actor else None
        html = self.render_template(
            "analytics/dashboard.html",
            view_name=type(self).__name__,
            dashboard=self.dashboard,
            title=self.title,
            charts=charts,
            choices=choices,
            args=request.args,
            filters=filters,
            errors=errors,
            quick_ranges=QUICK_RANGES,
            query=query,
            config=config,
            plotly_url=url_for("dashboard_plotly_js", version=PLOTLY_VERSION),
            can_export=self._may("export"),
            can_print=self._may("print"),
            can_subscribe=self._may("subscribe"),
            subscription=subscription,
            weekdays=[(index, str(label)) for index, label in enumerate(WEEKDAYS)],
            weekday_label=weekday_label,
            csrf_token=generate_csrf(),
        )
        return html, status

    # --- each chart's data -----------------------------------------------------------------------
    @expose("/data/<key>.json")
    @has_access
    @permission_name("data")
    def chart_data(self, key: str) -> Any:
        try:
            chart, filters, df = self._frame(key)
        except DomainError as exc:
            return self._refused(exc, "json")
        response = Response(chart_json(chart, df, filters), mimetype="application/json")
        response.headers["Cache-Control"] = "private, no-store"
        return response

    @expose("/data/<key>.csv")
    @has_access
    @permission_name("export")
    def chart_csv(self, key: str) -> Any:
        try:
            chart, _filters, df = self._frame(key)
        except DomainError as exc:
            return self._refused(exc, "text")
        self._audit(chart, df, "csv")
        return Response(
            csv_bytes(df),
            mimetype="text/csv",
            headers={"Content-Disposition": f"attachment; filename={self.dashboard}-{chart.key}.csv"},
        )

    @expose("/data/<key>.xlsx")
    @has_access
    @permission_name("export")
    def chart_xlsx(self, key: str) -> Any:
        try:
            chart, _filters, df = self._frame(key)
        except DomainError as exc:
            return self._refused(exc, "text")
        self._audit(chart, df, "xlsx")
        return Response(
            xlsx_bytes(df, str(chart.title)),
            mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": f"attachment; filename={self.dashboard}-{chart.key}.xlsx"},
        )

    def _audit(self, chart: analytics.Chart, df: pd.DataFrame, kind: str) -> None:
        record_export(
            f"dashboard.{self.dashboard}.{chart.key}",
            rows=len(df),
            filters=clean_args(request.args),
            columns=[str(column) for column in df.columns],
            kind=kind,
        )

    # --- the printable page ----------------------------------------------------------------------
    @expose("/print")
    @has_access
    @permission_name("print")
    def print_page(self) -> Any:
        session, actor = db.session, current_actor()
        try:
            filters = self._filters()
        except DomainError as exc:
            return self._refused_page(exc, url_for(f"{type(self).__name__}.show"))
        sections = []
        for chart in analytics.charts_of(self.dashboard):
            try:
                df = chart.data(session, actor, filters)
            except DomainError as exc:  # a chart that cannot honour these filters says so
                session.rollback()
                sections.append(
                    {"key": chart.key, "title": str(chart.title), "width": 12, "error": exc.summary()}
                )
                continue
            header, rows = json_rows(df, TABLE_ROWS) if not df.empty else ([], [])
            figure = None
            if chart.figure is not None and not df.empty:
                figure = script_json(style(chart.figure(df, filters)).to_json())
            sections.append(
                {
                    "key": chart.key,
                    "title": str(chart.title),
                    "width": max(1, min(12, chart.width)),
                    "figure": figure,
                    "columns": header,
                    "rows": rows,
                    "more": max(0, len(df) - TABLE_ROWS),
                }
            )
        return self.render_template(
            "analytics/print.html",
            title=self.title,
            sections=sections,
            filters=filters,
            choices=filter_choices(session, actor, self.dashboard),
            locale=language(),
            plotly_url=url_for("dashboard_plotly_js", version=PLOTLY_VERSION),
            back_url=url_for(f"{type(self).__name__}.show") + (f"?{self._query()}" if self._query() else ""),
        )

    # --- subscription ----------------------------------------------------------------------------
    @expose("/subscribe", methods=["POST"])
    @has_access
    @permission_name("subscribe")
    def subscribe(self) -> Any:
        query = request.form.get("query", "")
        args = MultiDict(parse_qsl(query, keep_blank_values=False))
        back = url_for(f"{type(self).__name__}.show") + (f"?{query}" if query else "")
        try:
            item = subscribe(db.session, current_actor(), self.dashboard, args, request.form.get("weekday"))
        except DomainError as exc:
            return self._refused_page(exc, back)
        flash(
            gettext("已订阅: 每%(day)s发送到您的邮箱", day=weekday_label(item.weekday)),
            "success",
        )
        return redirect(back)

    @expose("/unsubscribe", methods=["POST"])
    @has_access
    @permission_name("subscribe")
    def unsubscribe(self) -> Any:
        query = request.form.get("query", "")
        back = url_for(f"{type(self).__name__}.show") + (f"?{query}" if query else "")
        if unsubscribe(db.session, current_actor(), self.dashboard):
            flash(gettext("已取消订阅"), "info")
        return redirect(back)


class SalesDashboardView(DashboardView):
    """销售分析."""

    route_base = "/dashboards/sales"
    dashboard = "sales"


class CustomerDashboardView(DashboardView):
    """客户分析."""

    route_base = "/dashboards/customers"
    dashboard = "customers"


class ServiceDashboardView(DashboardView):
    """服务分析."""

    route_base = "/dashboards/service"
    dashboard = "service"


DASHBOARD_VIEWS: list[tuple[type[DashboardView], str, Any, str]] = [
    (SalesDashboardView, "Sales dashboard", _("销售分析"), "fa-line-chart"),
    (CustomerDashboardView, "Customer dashboard", _("客户分析"), "fa-users"),
    (ServiceDashboardView, "Service dashboard", _("服务分析"), "fa-life-ring"),
]


# --- 我的订阅 -------------------------------------------------------------------------------------
SUBSCRIPTION_LABELS = {
    "dashboard": _("仪表板"),
    "weekday": _("发送日"),
    "active": _("启用"),
    "filters": _("筛选条件"),
    "created_at": _("订阅时间"),
    "last_sent_at": _("上次发送"),
}


def dashboard_link(code: str) -> Markup:
    """The subscribed dashboard as a link."""
    return Markup('<a href="{}">{}</a>').format(dashboard_url(code), DASHBOARD_TITLES.get(code, code))


def filters_text(value: Any) -> str:
    return ", ".join(f"{key}={text}" for key, text in sorted((value or {}).items())) or gettext("无")


class DashboardSubscriptionView(CrmModelView):
    """我的订阅: one's own subscriptions only (whoever one is); change the day, pause, remove.
    New ones are made on a dashboard (订阅 button), with the filters shown there."""

    datamodel = CrmInterface(DashboardSubscription)
    list_title = _("我的订阅")
    base_permissions = ["can_list", "can_show", "can_edit", "can_delete"]
    base_filters = MINE
    label_columns = SUBSCRIPTION_LABELS
    list_columns = ["dashboard", "weekday", "active", "last_sent_at", "created_at"]
    show_columns = ["dashboard", "filters", "weekday", "active", "last_sent_at", "created_at"]
    edit_columns = ["weekday", "active"]
    search_columns = ["dashboard", "active"]
    order_columns = ["weekday", "last_sent_at", "created_at"]
    base_order = ("created_at", "desc")
    edit_form_extra_fields = {
        "weekday": SelectField(
            _("发送日"),
            choices=lambda: [(index, str(label)) for index, label in enumerate(WEEKDAYS)],
            coerce=int,
        )
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.formatters_columns = {
            **self.formatters_columns,
            "weekday": weekday_label,
            "filters": filters_text,
            "dashboard": dashboard_link,
        }


class DashboardSubscriptionApi(CrmModelApi):
    """The current user's dashboard subscriptions (PUT weekday/active, DELETE)."""

    resource_name = "dashboardsubscription"
    datamodel = CrmInterface(DashboardSubscription)
    base_permissions = ["can_get", "can_info", "can_put", "can_delete"]
    base_filters = MINE
    base_order = ("created_at", "desc")
    list_columns = show_columns = [
        "id", "dashboard", "filters", "weekday", "active", "created_at", "last_sent_at",
    ]  # fmt: skip
    edit_columns = ["weekday", "active"]
    order_columns = ["id", "created_at", "last_sent_at"]
    search_columns = ["dashboard", "active"]


# --- plotly.js from the plotly package, and the menu ------------------------------------------------
def plotly_js(version: str) -> Response:
    """plotly.min.js of the installed plotly package: no CDN (offline servers, China). The
    version is in the address, so browsers may keep it for a year."""
    if version != PLOTLY_VERSION:
        abort(404)
    response = send_file(PLOTLY_JS, mimetype="text/javascript", max_age=365 * 24 * 3600, conditional=True)
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


def register(appbuilder: AppBuilder) -> None:
    """分析: the three dashboards and 我的订阅; plotly.js; the subscriptions' API."""
    current_app.add_url_rule("/dashboards/plotly-<version>.min.js", "dashboard_plotly_js", plotly_js)
    category = {"category": CATEGORY, "category_label": _("分析"), "category_icon": "fa-bar-chart"}
    for view, name, label, icon in DASHBOARD_VIEWS:
        appbuilder.add_view(view, name, label=label, icon=icon, **category)
    appbuilder.add_view(
        DashboardSubscriptionView, "My subscriptions", label=_("我的订阅"), icon="fa-envelope-o", **category
    )
    appbuilder.add_api(DashboardSubscriptionApi)
