"""The service dashboard (服务看板): satisfaction, response and resolution times, volume, backlog
and the words of low-rated comments, from app.service_analysis (aggregated in SQL within the acting
user's data scope). Without dates in the filters, the charts of a period show the last 12 months
(app.service_analysis.date_range); the backlog charts are of today.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from plotly.subplots import make_subplots
from sqlalchemy.orm import Session

from app import service_analysis as sa
from app.analytics import Chart, Filters, links, register
from models.security import CrmUser
from models.service import OPEN_TICKET_STATUSES, TICKET_STATUSES

Data = Callable[[Session, CrmUser, Filters], pd.DataFrame]


def in_range(data: Data) -> Data:
    """The data function over the filters' dates, by default the last 12 months."""

    def ranged(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
        start, end = sa.date_range(filters)
        return data(session, user, dataclasses.replace(filters, date_from=start, date_to=end))

    ranged.__doc__ = data.__doc__
    ranged.__name__ = data.__name__
    return ranged


TICKETS = "ticketview"


def _tickets(filters: Filters, params: dict[str, Any]) -> str:
    """The ticket list with these filters and the dashboard's owner (the list's data scope as
    always)."""
    return links.list_link(TICKETS, {**params, **links.equal("owner", filters.owner_id)})


def _created(filters: Filters) -> dict[str, str]:
    """Tickets created in the dashboard's range (default the last 12 months), as the charts."""
    start, end = sa.date_range(filters)
    return links.days("created_at", start, end + dt.timedelta(days=1), datetime=True)


# --- figures -------------------------------------------------------------------------------------
def csat_figure(df: pd.DataFrame, filters: Filters) -> go.Figure:
    """Answered surveys as bars, the CSAT share (4-5 points) as a line."""
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    figure.add_bar(x=df["label"], y=df["answered"], name=_("回评数"), secondary_y=False)
    figure.add_scatter(x=df["label"], y=df["csat"], name=_("满意率 (4-5 分)"), secondary_y=True)
    figure.update_yaxes(title_text=_("回评数"), secondary_y=False)
    figure.update_yaxes(title_text=_("满意率"), tickformat=".0%", range=[0, 1], secondary_y=True)
    return figure


def csat_bars(df: pd.DataFrame, filters: Filters) -> go.Figure:
    """CSAT per team, agent, type or district, with the mean rating and the count on hover."""
    ordered = df.sort_values("csat")
    figure = go.Figure(
        go.Bar(
            x=ordered["csat"],
            y=ordered["label"],
            orientation="h",
            customdata=ordered[["answered", "mean_rating"]].values,
            hovertemplate=f"{_('满意率')} %{{x:.0%}}<br>{_('回评数')} %{{customdata[0]}}<br>"
            f"{_('平均分')} %{{customdata[1]}}<extra></extra>",
        )
    )
    figure.update_xaxes(tickformat=".0%", range=[0, 1])
    figure.update_yaxes(automargin=True)
    return figure


def times_figure(df: pd.DataFrame, filters: Filters) -> go.Figure:
    """Median first-response and resolution hours (bars) and the SLA met shares (lines)."""
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    figure.add_bar(x=df["label"], y=df["first_response_median_h"], name=_("首次响应中位数 (小时)"))
    figure.add_bar(x=df["label"], y=df["resolution_median_h"], name=_("解决时长中位数 (小时)"))
    figure.add_scatter(
        x=df["label"], y=df["first_response_sla_met"], name=_("首次响应达标率"), secondary_y=True
    )
    figure.add_scatter(x=df["label"], y=df["resolution_sla_met"], name=_("解决达标率"), secondary_y=True)
    figure.update_yaxes(title_text=_("小时 (自然时间)"), secondary_y=False)
    figure.update_yaxes(tickformat=".0%", range=[0, 1], secondary_y=True)
    return figure


def volume_figure(df: pd.DataFrame, filters: Filters) -> go.Figure:
    figure = go.Figure()
    for label, part in df.groupby("label", sort=True):
        figure.add_bar(x=part["month"], y=part["created"], name=str(label))
    figure.update_layout(barmode="stack")
    return figure


def backlog_age_figure(df: pd.DataFrame, filters: Filters) -> go.Figure:
    return go.Figure(go.Bar(x=df["bucket"], y=df["tickets"]))


def backlog_status_figure(df: pd.DataFrame, filters: Filters) -> go.Figure:
    return go.Figure(go.Bar(x=df["label"], y=df["tickets"]))


def backlog_month_figure(df: pd.DataFrame, filters: Filters) -> go.Figure:
    return go.Figure(go.Scatter(x=df["month"], y=df["open_at_end"], mode="lines+markers"))


def words_figure(df: pd.DataFrame, filters: Filters) -> go.Figure:
    """The recurring words (and two-word phrases) of low-rated comments, most frequent on top."""
    figure = go.Figure()
    for kind, name in (("word", _("词语")), ("phrase", _("短语"))):
        part = df[df["kind"] == kind].head(20)[::-1]
        figure.add_bar(x=part["comments"], y=part["term"], orientation="h", name=name)
    figure.update_yaxes(automargin=True)
    return figure


# --- links ---------------------------------------------------------------------------------------
# Each bar opens the tickets (or surveys) it counts, as far as the list can filter them: the ticket
# list has no filter by a survey's answer date, so the CSAT bars by team, agent, type and district
# open the tickets of that key over all dates; "open at month end" (backlog_month) is no filter of
# any list and keeps no link.
def category_link(row: dict[str, Any], filters: Filters) -> str | None:
    return _tickets(filters, links.equal("category", row["key"])) if row.get("key") else None


def agent_link(row: dict[str, Any], filters: Filters) -> str | None:
    return links.list_link(TICKETS, links.equal("owner", row["key"])) if row.get("key") else None


def department_link(row: dict[str, Any], filters: Filters) -> str | None:
    return _tickets(filters, links.equal("department", row["key"])) if row.get("key") else None


def district_link(row: dict[str, Any], filters: Filters) -> str | None:
    return _tickets(filters, links.equal("district", row["key"])) if row.get("key") else None


def status_link(row: dict[str, Any], filters: Filters) -> str | None:
    return _tickets(filters, links.equal("status", row.get("status"), text=True))


def survey_month_link(row: dict[str, Any], filters: Filters) -> str | None:
    """The surveys answered in the month (the survey list applies the tickets' data scope)."""
    month = links.month("answered_at", links.month_of(row["key"]), datetime=True)
    return links.list_link("surveyview", month)


def created_month_link(row: dict[str, Any], filters: Filters) -> str | None:
    month = links.month_of(row.get("key") or row["month"])
    return _tickets(filters, links.month("created_at", month, datetime=True))


def priority_link(row: dict[str, Any], filters: Filters) -> str | None:
    return _tickets(filters, {**links.equal("priority", row["key"], text=True), **_created(filters)})


def _volume_link(column: str, text: bool) -> Callable[[dict[str, Any], Filters], str | None]:
    def link(row: dict[str, Any], filters: Filters) -> str | None:
        month = links.month("created_at", links.month_of(row["month"]), datetime=True)
        return _tickets(filters, {**links.equal(column, row["key"] or None, text), **month})

    return link


def backlog_age_link(row: dict[str, Any], filters: Filters) -> str | None:
    """The open tickets of the age bucket (created between its bounds, counted back from now)."""
    labels = [str(label) for _days, label in sa.AGE_BUCKETS]
    if row.get("bucket") not in labels:
        return None
    index = labels.index(row["bucket"])
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    oldest = sa.AGE_BUCKETS[index][0]
    youngest = sa.AGE_BUCKETS[index - 1][0] if index else None
    after = now - dt.timedelta(days=oldest) if oldest is not None else None
    before = now - dt.timedelta(days=youngest) + dt.timedelta(microseconds=1) if youngest else None
    closed = [status for status in TICKET_STATUSES.codes if status not in OPEN_TICKET_STATUSES]
    return _tickets(filters, {**links.not_in("status", closed), **links.moments("created_at", after, before)})


CHARTS = [
    Chart("csat_month", "service", lazy_gettext("满意率 (按月)"), in_range(sa.csat_by_month), csat_figure,
          survey_month_link, 10, 12, lazy_gettext("满意率 = 4-5 分的回评占比; 按回评时间")),
    Chart("csat_department", "service", lazy_gettext("满意率 (按服务团队)"), in_range(sa.csat_by_department),
          csat_bars, department_link, 20, 6),
    Chart("csat_agent", "service", lazy_gettext("满意率 (按处理人)"), in_range(sa.csat_by_agent), csat_bars,
          agent_link, 30, 6),
    Chart("csat_category", "service", lazy_gettext("满意率 (按业务类型)"), in_range(sa.csat_by_category),
          csat_bars, category_link, 40, 6),
    Chart("csat_district", "service", lazy_gettext("满意率 (按区县)"), in_range(sa.csat_by_district),
          csat_bars, district_link, 50, 6),
    Chart("times_month", "service", lazy_gettext("响应与解决时长 (按月)"),
          in_range(sa.response_times_by_month), times_figure, created_month_link, 60, 12,
          lazy_gettext("按创建月份; 时长为自然小时, 达标率按 SLA 的工作时间目标")),
    Chart("times_priority", "service", lazy_gettext("响应与解决时长 (按优先级)"),
          in_range(sa.response_times_by_priority), times_figure, priority_link, 70, 6),
    Chart("times_category", "service", lazy_gettext("响应与解决时长 (按业务类型)"),
          in_range(sa.response_times_by_category), times_figure, category_link, 80, 6),
    Chart("volume_channel", "service", lazy_gettext("工单量 (按渠道)"), in_range(sa.volume_by_channel),
          volume_figure, _volume_link("channel", text=True), 90, 6),
    Chart("volume_category", "service", lazy_gettext("工单量 (按业务类型)"), in_range(sa.volume_by_category),
          volume_figure, _volume_link("category", text=False), 100, 6),
    Chart("backlog_age", "service", lazy_gettext("未结工单 (按已开天数)"), sa.backlog_by_age,
          backlog_age_figure, backlog_age_link, 110, 4),
    Chart("backlog_status", "service", lazy_gettext("未结工单 (按状态)"), sa.backlog_by_status,
          backlog_status_figure, status_link, 120, 4),
    Chart("backlog_month", "service", lazy_gettext("月末未结工单"), sa.backlog_by_month_end,
          backlog_month_figure, None, 130, 4),
    Chart("low_words", "service", lazy_gettext("差评高频词"), in_range(sa.low_rated_words), words_figure,
          None, 140, 12, lazy_gettext("低分 (≤ CRM_SURVEY_LOW_RATING) 评价留言的分词统计, 每条留言计一次")),
]  # fmt: skip
for _chart in CHARTS:
    register(_chart)
