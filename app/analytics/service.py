"""The service dashboard (服务看板): satisfaction, response and resolution times, volume, backlog
and the words of low-rated comments, from app.service_analysis (aggregated in SQL within the acting
user's data scope). Without dates in the filters, the charts of a period show the last 12 months
(app.service_analysis.date_range); the backlog charts are of today.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pandas as pd
import plotly.graph_objects as go
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from plotly.subplots import make_subplots
from sqlalchemy.orm import Session

from app import service_analysis as sa
from app.analytics import Chart, Filters, register
from models.security import CrmUser

Data = Callable[[Session, CrmUser, Filters], pd.DataFrame]


def in_range(data: Data) -> Data:
    """The data function over the filters' dates, by default the last 12 months."""

    def ranged(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
        start, end = sa.date_range(filters)
        return data(session, user, dataclasses.replace(filters, date_from=start, date_to=end))

    ranged.__doc__ = data.__doc__
    ranged.__name__ = data.__name__
    return ranged


def _list_link(params: dict[str, Any]) -> str:
    return "/ticketview/list/?" + urlencode({k: v for k, v in params.items() if v not in (None, "")})


def _owner(filters: Filters) -> dict[str, Any]:
    return {"_flt_0_owner": filters.owner_id}


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
def category_link(row: dict[str, Any], filters: Filters) -> str | None:
    return (
        _list_link({"_flt_0_category": row.get("key") or None, **_owner(filters)}) if row.get("key") else None
    )


def agent_link(row: dict[str, Any], filters: Filters) -> str | None:
    return _list_link({"_flt_0_owner": row.get("key")}) if row.get("key") else None


def department_link(row: dict[str, Any], filters: Filters) -> str | None:
    return _list_link({"_flt_0_department": row.get("key"), **_owner(filters)}) if row.get("key") else None


def status_link(row: dict[str, Any], filters: Filters) -> str | None:
    return _list_link({"_flt_0_status": row.get("status"), **_owner(filters)})


CHARTS = [
    Chart("csat_month", "service", lazy_gettext("满意率 (按月)"), in_range(sa.csat_by_month), csat_figure,
          None, 10, 12, lazy_gettext("满意率 = 4-5 分的回评占比; 按回评时间")),
    Chart("csat_department", "service", lazy_gettext("满意率 (按服务团队)"), in_range(sa.csat_by_department),
          csat_bars, department_link, 20, 6),
    Chart("csat_agent", "service", lazy_gettext("满意率 (按处理人)"), in_range(sa.csat_by_agent), csat_bars,
          agent_link, 30, 6),
    Chart("csat_category", "service", lazy_gettext("满意率 (按业务类型)"), in_range(sa.csat_by_category),
          csat_bars, category_link, 40, 6),
    Chart("csat_district", "service", lazy_gettext("满意率 (按区县)"), in_range(sa.csat_by_district),
          csat_bars, None, 50, 6),
    Chart("times_month", "service", lazy_gettext("响应与解决时长 (按月)"),
          in_range(sa.response_times_by_month), times_figure, None, 60, 12,
          lazy_gettext("按创建月份; 时长为自然小时, 达标率按 SLA 的工作时间目标")),
    Chart("times_priority", "service", lazy_gettext("响应与解决时长 (按优先级)"),
          in_range(sa.response_times_by_priority), times_figure, None, 70, 6),
    Chart("times_category", "service", lazy_gettext("响应与解决时长 (按业务类型)"),
          in_range(sa.response_times_by_category), times_figure, category_link, 80, 6),
    Chart("volume_channel", "service", lazy_gettext("工单量 (按渠道)"), in_range(sa.volume_by_channel),
          volume_figure, None, 90, 6),
    Chart("volume_category", "service", lazy_gettext("工单量 (按业务类型)"), in_range(sa.volume_by_category),
          volume_figure, None, 100, 6),
    Chart("backlog_age", "service", lazy_gettext("未结工单 (按已开天数)"), sa.backlog_by_age,
          backlog_age_figure, None, 110, 4),
    Chart("backlog_status", "service", lazy_gettext("未结工单 (按状态)"), sa.backlog_by_status,
          backlog_status_figure, status_link, 120, 4),
    Chart("backlog_month", "service", lazy_gettext("月末未结工单"), sa.backlog_by_month_end,
          backlog_month_figure, None, 130, 4),
    Chart("low_words", "service", lazy_gettext("差评高频词"), in_range(sa.low_rated_words), words_figure,
          None, 140, 12, lazy_gettext("低分 (≤ CRM_SURVEY_LOW_RATING) 评价留言的分词统计, 每条留言计一次")),
]  # fmt: skip
for _chart in CHARTS:
    register(_chart)
