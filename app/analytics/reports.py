"""Dashboard subscriptions (我的订阅) and the weekly mailed report.

A user subscribes to a dashboard with the filters they were looking at and a weekday. The worker
(`reports` job, app/worker.py) calls send_due_reports(): each active subscription whose weekday
has come this week in the company's time zone, and that was not sent since this week's Monday,
is computed as its subscriber (their data scope, their saved filters, read again now: a quick
range such as 近12个月 keeps rolling) and queued in the outbox as an HTML mail with each chart's
top rows and a link to the dashboard. The outbox dedup key (subscription and ISO week) makes a
second run in the same week, or a second worker, queue nothing more.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pandas as pd
from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from markupsafe import Markup
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app import analytics
from app.analytics.export import records
from app.analytics.filters import clean_args, parse_filters
from app.errors import AccessDenied, DomainError, ErrorCollector, ValidationFailed
from app.notifications import queue_mail
from app.services import RecordService, service_for
from models.analytics import DashboardSubscription
from models.security import CrmUser

log = logging.getLogger(__name__)

#: each dashboard's title and the Flask-AppBuilder view whose permissions guard it
DASHBOARD_TITLES: dict[str, Any] = {
    "sales": lazy_gettext("销售分析"),
    "customers": lazy_gettext("客户分析"),
    "service": lazy_gettext("服务分析"),
}
DASHBOARD_VIEWS = {
    "sales": "SalesDashboardView",
    "customers": "CustomerDashboardView",
    "service": "ServiceDashboardView",
}
WEEKDAYS: list[Any] = [
    lazy_gettext("周一"),
    lazy_gettext("周二"),
    lazy_gettext("周三"),
    lazy_gettext("周四"),
    lazy_gettext("周五"),
    lazy_gettext("周六"),
    lazy_gettext("周日"),
]
#: rows of each chart's table in the mail
MAIL_ROWS = 10


def weekday_label(value: int | None) -> str:
    return str(WEEKDAYS[value]) if value is not None and 0 <= value < len(WEEKDAYS) else ""


def clean_weekday(value: Any) -> int:
    """0 (Monday) to 6 (Sunday), from an int or the form's string."""
    text = str(value).strip() if value is not None else ""
    if not text.isdigit() or not 0 <= int(text) <= 6:
        raise ValueError(_("请选择星期一到星期日中的一天"))
    return int(text)


class DashboardSubscriptionService(RecordService):
    """A subscription belongs to its user: only they change or delete it (我的订阅)."""

    model = DashboardSubscription
    cleaners = {"weekday": clean_weekday}

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        if values.get("dashboard") not in analytics.DASHBOARDS:
            errors.add("dashboard", _("没有这个仪表板"))
        if not isinstance(values.get("filters") or {}, dict):
            errors.add("filters", _("筛选条件无效"))

    def authorize(self, session: Session, item: DashboardSubscription, actor: CrmUser | None) -> None:
        if actor is not None and item.user_id != actor.id:
            raise AccessDenied(_("只能修改自己的订阅"))


subscription_service = service_for(DashboardSubscription)


def may_view(user: CrmUser, dashboard: str) -> bool:
    """Whether the user's roles may open the dashboard (checked again when mailing)."""
    sm = current_app.appbuilder.sm
    role_ids = [role.id for role in user.roles]
    return bool(role_ids) and sm.exist_permission_on_roles(DASHBOARD_VIEWS[dashboard], "can_show", role_ids)


def subscription_of(session: Session, user: CrmUser, dashboard: str) -> DashboardSubscription | None:
    return session.scalar(
        select(DashboardSubscription).where(
            DashboardSubscription.user_id == user.id, DashboardSubscription.dashboard == dashboard
        )
    )


def subscribe(
    session: Session, user: CrmUser, dashboard: str, args: Mapping[str, Any], weekday: Any
) -> DashboardSubscription:
    """Subscribe the user to a dashboard with these filters (checked as the user) on a weekday;
    subscribing again replaces the filters and the day."""
    errors = ErrorCollector()
    try:
        day = clean_weekday(weekday)
    except ValueError as exc:
        errors.add("weekday", str(exc))
    try:
        parse_filters(session, user, args, dashboard=dashboard)
    except DomainError as exc:
        for field, messages in exc.errors.items():
            for message in messages:
                errors.add(field, message)
    errors.raise_if_any()
    item = subscription_of(session, user, dashboard) or DashboardSubscription(
        user_id=user.id, dashboard=dashboard
    )
    item.filters = clean_args(args)
    item.weekday = day
    item.active = True
    return subscription_service.save(session, item, user)


def unsubscribe(session: Session, user: CrmUser, dashboard: str) -> bool:
    """Remove the user's subscription to a dashboard; False when there was none."""
    item = subscription_of(session, user, dashboard)
    if item is None:
        return False
    subscription_service.delete(session, item, user)
    return True


def dashboard_url(dashboard: str, args: Mapping[str, Any] | None = None) -> str:
    """The dashboard's path with its filters as a query string."""
    query = urlencode(clean_args(args or {}))
    return f"/dashboards/{dashboard}" + (f"?{query}" if query else "")


# --- the weekly mail -------------------------------------------------------------------------------
def week_start(local_day: dt.date, zone: ZoneInfo) -> dt.datetime:
    """Monday 00:00 of the local day's week, as naive UTC (how the database stores times)."""
    monday = local_day - dt.timedelta(days=local_day.weekday())
    start = dt.datetime.combine(monday, dt.time(), tzinfo=zone)
    return start.astimezone(dt.UTC).replace(tzinfo=None)


def send_due_reports(session: Session, now: dt.datetime) -> dict[str, int]:
    """Queue the weekly mail of every subscription that is due: its weekday has come this week
    (company time zone) and it was not sent since this week's Monday. Each one commits on its
    own, so one broken chart or address does not hold back the others."""
    zone = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    local_now = now.replace(tzinfo=dt.UTC).astimezone(zone)
    today = local_now.date()
    iso_year, iso_week, _weekday = today.isocalendar()
    since = week_start(today, zone)
    due = session.scalars(
        select(DashboardSubscription)
        .join(CrmUser, CrmUser.id == DashboardSubscription.user_id)
        .where(
            DashboardSubscription.active.is_(True),
            CrmUser.active.is_(True),
            DashboardSubscription.weekday <= today.weekday(),
            or_(DashboardSubscription.last_sent_at.is_(None), DashboardSubscription.last_sent_at < since),
        )
        .order_by(DashboardSubscription.id)
    ).all()
    report = {"sent": 0, "skipped": 0}
    base_url = current_app.config["CRM_BASE_URL"].rstrip("/")
    for subscription in due:
        user = subscription.user
        if not user.email or not may_view(user, subscription.dashboard):
            report["skipped"] += 1
            continue
        subject, text, html = build_report(session, user, subscription, base_url, today)
        # the creation time too: SQLite may give a deleted subscription's id to a new one
        made = f"{subscription.created_at:%Y%m%d%H%M%S%f}"
        key = f"dashboard-report:{subscription.id}:{made}:{iso_year}-W{iso_week:02d}"
        try:
            queued = queue_mail(session, user.email, subject, text, dedup_key=key, html=html)
            subscription.last_sent_at = now
            session.commit()
        except Exception:
            session.rollback()
            log.exception("dashboard report %s not queued", subscription.id)
            report["skipped"] += 1
            continue
        report["sent" if queued is not None else "skipped"] += 1
    return report


def chart_tables(
    session: Session, user: CrmUser, dashboard: str, filters: analytics.Filters, rows: int
) -> list[tuple[str, pd.DataFrame | None, str | None]]:
    """Each chart's title with its first rows computed as `user`, or the reason it failed."""
    tables: list[tuple[str, pd.DataFrame | None, str | None]] = []
    for chart in analytics.charts_of(dashboard):
        try:
            df = chart.data(session, user, filters)
        except DomainError as exc:
            tables.append((str(chart.title), None, exc.summary()))
            continue
        except Exception:
            log.exception("chart %s/%s failed for user %s", dashboard, chart.key, user.id)
            session.rollback()
            tables.append((str(chart.title), None, _("计算出错")))
            continue
        tables.append((str(chart.title), df.head(rows), None))
    return tables


def build_report(
    session: Session, user: CrmUser, subscription: DashboardSubscription, base_url: str, today: dt.date
) -> tuple[str, str, str]:
    """Subject, plain text and HTML of one subscription's mail, computed as its user."""
    dashboard = subscription.dashboard
    title = str(DASHBOARD_TITLES[dashboard])
    saved = subscription.filters or {}
    note = None
    try:
        filters = parse_filters(session, user, saved, today=today, dashboard=dashboard)
    except ValidationFailed as exc:  # the user's scope or the fields changed since
        filters, note = (
            analytics.Filters(),
            _("保存的筛选条件已失效,本期按不筛选计算: %(why)s", why=exc.summary()),
        )
        saved = {}
    link = base_url + dashboard_url(dashboard, saved)
    subject = _("每周报表: %(name)s", name=title)
    tables = chart_tables(session, user, dashboard, filters, MAIL_ROWS)
    period = _period_text(filters)

    text_lines = [
        _("您好,"),
        "",
        _("这是您订阅的「%(name)s」本周报表 (%(period)s)。", name=title, period=period),
    ]
    html_parts = [
        Markup("<p>{}</p><p>{}</p>").format(
            _("您好,"), _("这是您订阅的「%(name)s」本周报表 (%(period)s)。", name=title, period=period)
        )
    ]
    if note:
        text_lines += ["", note]
        html_parts.append(Markup('<p style="color:#a94442">{}</p>').format(note))
    if not tables:
        text_lines += ["", _("暂无数据")]
        html_parts.append(Markup("<p>{}</p>").format(_("暂无数据")))
    for chart_title, df, error in tables:
        text_lines += ["", f"== {chart_title} =="]
        html_parts.append(Markup('<h3 style="margin:18px 0 6px">{}</h3>').format(chart_title))
        if error is not None:
            text_lines.append(error)
            html_parts.append(Markup("<p>{}</p>").format(error))
        elif df is None or df.empty:
            text_lines.append(_("暂无数据"))
            html_parts.append(Markup("<p>{}</p>").format(_("暂无数据")))
        else:
            header, rows = records(df, safe=False)
            text_lines.append(" | ".join(header))
            text_lines += [" | ".join(_plain(value) for value in row) for row in rows]
            html_parts.append(_html_table(header, rows))
    text_lines += [
        "",
        _("在线查看: %(url)s", url=link),
        "",
        "-- ",
        str(current_app.config.get("APP_NAME", "KeGuan")),
    ]
    html_parts.append(
        Markup('<p><a href="{}">{}</a></p><p style="color:#777">{}</p>').format(
            link, _("打开仪表板查看完整图表"), _("您可以在「分析 > 我的订阅」中修改或取消订阅。")
        )
    )
    html = Markup('<html><body style="font-family:sans-serif;font-size:14px">{}</body></html>').format(
        Markup("").join(html_parts)
    )
    return subject, "\n".join(text_lines), str(html)


def _period_text(filters: analytics.Filters) -> str:
    if filters.date_from and filters.date_to:
        return f"{filters.date_from:%Y-%m-%d} ~ {filters.date_to:%Y-%m-%d}"
    if filters.date_from:
        return _("%(day)s 起", day=f"{filters.date_from:%Y-%m-%d}")
    if filters.date_to:
        return _("截至 %(day)s", day=f"{filters.date_to:%Y-%m-%d}")
    return _("全部时间")


def _plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _html_table(header: list[str], rows: list[list[Any]]) -> Markup:
    cell = 'style="border:1px solid #ddd;padding:4px 8px;{}"'
    head = Markup("").join(
        Markup("<th {}>{}</th>").format(Markup(cell.format("background:#f5f5f5")), h) for h in header
    )
    body = Markup("").join(
        Markup("<tr>{}</tr>").format(
            Markup("").join(
                Markup("<td {}>{}</td>").format(
                    Markup(cell.format("text-align:right" if isinstance(v, (int, float)) else "")), _plain(v)
                )
                for v in row
            )
        )
        for row in rows
    )
    return Markup('<table style="border-collapse:collapse">{}{}</table>').format(
        Markup("<tr>{}</tr>").format(head), body
    )
