"""设置: SLA policies, business hours and the service calendar; 服务: satisfaction surveys.

The rules (minutes > 0, resolution >= first response, start < end, no overlapping hours on a
weekday, at-risk share 1-99, valid codes) live in app.sla's record services; these views only
declare the screens and the REST APIs (/api/v1/slapolicy/, /businesshours/, /servicecalendarday/,
/survey/).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import flash
from flask_appbuilder import AppBuilder, expose, has_access
from flask_babel import gettext
from flask_babel import lazy_gettext as _
from wtforms import SelectField, TimeField
from wtforms.validators import InputRequired

from app.sla import WEEKDAYS, calendar_knows
from models.service import BusinessHours, ServiceCalendarDay, SlaPolicy, Survey
from views.base import CrmInterface, CrmModelApi, CrmModelView

SERVICE = "Service"
SETTINGS = "Settings"
SERVICE_CATEGORY = {"category": SERVICE, "category_label": _("服务"), "category_icon": "fa-life-ring"}
SETTINGS_CATEGORY = {"category": SETTINGS, "category_label": _("设置"), "category_icon": "fa-cogs"}

LABELS = {
    "name": _("名称"),
    "priority": _("优先级"),
    "customer_level": _("客户等级"),
    "first_response_minutes": _("首次响应时限 (工作分钟)"),
    "resolution_minutes": _("解决时限 (工作分钟)"),
    "at_risk_percent": _("预警比例 (%)"),
    "active": _("启用"),
    "weekday": _("星期"),
    "start_time": _("开始时间"),
    "end_time": _("结束时间"),
    "day": _("日期"),
    "kind": _("类型"),
    "ticket": _("工单"),
    "rating": _("评分"),
    "comment": _("评价"),
    "sent_at": _("发送时间"),
    "answered_at": _("评价时间"),
    "followup_task": _("回访任务"),
}

SLA_FIELDS = [
    "name",
    "priority",
    "customer_level",
    "first_response_minutes",
    "resolution_minutes",
    "at_risk_percent",
    "active",
]
HOURS_FIELDS = ["weekday", "start_time", "end_time"]
CALENDAR_FIELDS = ["day", "kind", "name"]


def _weekday_label(value: Any) -> str:
    return str(WEEKDAYS[value]) if isinstance(value, int) and 0 <= value <= 6 else str(value)


def _time_label(value: Any) -> str:
    return f"{value:%H:%M}" if isinstance(value, dt.time) else ""


def _weekday_options() -> list[tuple[str, str]]:
    return [(str(i), str(label)) for i, label in enumerate(WEEKDAYS)]


class SlaPolicyView(CrmModelView):
    """SLA 策略: targets per priority (and optionally per customer level), in business minutes."""

    datamodel = CrmInterface(SlaPolicy)
    list_title = _("SLA 策略")
    label_columns = LABELS
    list_columns = SLA_FIELDS
    show_columns = add_columns = edit_columns = SLA_FIELDS
    search_columns = ["name", "priority", "customer_level", "active"]
    order_columns = ["name", "priority", "customer_level", "first_response_minutes", "resolution_minutes"]
    base_order = ("priority", "asc")
    description_columns = {
        "customer_level": _("留空: 适用于所有客户等级;指定等级的策略优先"),
        "at_risk_percent": _("已用工作时间达到该比例时标记为即将超时"),
    }


class BusinessHoursView(CrmModelView):
    """服务时间: the weekly working intervals (a day may have a morning and an afternoon)."""

    datamodel = CrmInterface(BusinessHours)
    list_title = _("服务时间")
    label_columns = LABELS
    list_columns = show_columns = HOURS_FIELDS
    add_columns = edit_columns = HOURS_FIELDS
    search_columns = ["weekday"]  # FAB has no search field for a time column
    order_columns = ["weekday", "start_time"]
    base_order = ("weekday", "asc")
    formatters_columns = {"weekday": _weekday_label, "start_time": _time_label, "end_time": _time_label}
    add_form_extra_fields = edit_form_extra_fields = {
        "weekday": SelectField(
            _("星期"),
            choices=_weekday_options,
            coerce=int,
            validators=[InputRequired()],
            validate_choice=False,
        ),
        "start_time": TimeField(_("开始时间"), format="%H:%M", validators=[InputRequired()]),
        "end_time": TimeField(_("结束时间"), format="%H:%M", validators=[InputRequired()]),
    }
    description_columns = {"start_time": _("公司所在时区 (BABEL_DEFAULT_TIMEZONE) 的当地时间")}


class ServiceCalendarDayView(CrmModelView):
    """节假日调休: dates that differ from the weekly hours and from the public-holiday calendar."""

    datamodel = CrmInterface(ServiceCalendarDay)
    list_title = _("节假日调休")
    label_columns = LABELS
    list_columns = show_columns = add_columns = edit_columns = CALENDAR_FIELDS
    search_columns = ["day", "kind", "name"]
    order_columns = ["day", "kind"]
    base_order = ("day", "desc")

    @expose("/list/")
    @has_access
    def list(self) -> Any:
        """The list, with what the built-in holiday calendar knows (say it when a year is missing)."""
        year = dt.date.today().year
        unknown = [y for y in (year, year + 1) if not calendar_knows(y)]
        if unknown:
            flash(
                gettext(
                    "内置的法定节假日日历不包含 %(years)s 年: 这些年份只按每周服务时间计算(周末休息),"
                    "请在此录入当年的法定节假日和调休工作日。",
                    years=", ".join(map(str, unknown)),
                ),
                "warning",
            )
        else:
            flash(gettext("法定节假日和调休由内置日历提供;此处的记录优先于内置日历。"), "info")
        return super().list()


class SurveyView(CrmModelView):
    """满意度调查: read-only; the answers come from the customers' survey pages."""

    datamodel = CrmInterface(Survey)
    list_title = _("满意度调查")
    base_permissions = ["can_list", "can_show"]
    label_columns = LABELS
    list_columns = ["ticket", "rating", "comment", "sent_at", "answered_at"]
    show_columns = ["ticket", "rating", "comment", "sent_at", "answered_at", "followup_task_id"]
    search_columns = ["rating", "sent_at", "answered_at"]
    order_columns = ["rating", "sent_at", "answered_at"]
    base_order = ("sent_at", "desc")


class SlaPolicyApi(CrmModelApi):
    resource_name = "slapolicy"
    datamodel = CrmInterface(SlaPolicy)
    list_columns = show_columns = ["id", *SLA_FIELDS]
    add_columns = edit_columns = SLA_FIELDS
    order_columns = ["id", "name", "priority", "customer_level"]
    search_columns = ["name", "priority", "customer_level", "active"]


class BusinessHoursApi(CrmModelApi):
    resource_name = "businesshours"
    datamodel = CrmInterface(BusinessHours)
    list_columns = show_columns = ["id", *HOURS_FIELDS]
    add_columns = edit_columns = HOURS_FIELDS
    order_columns = ["id", "weekday", "start_time"]
    search_columns = ["weekday"]


class ServiceCalendarDayApi(CrmModelApi):
    resource_name = "servicecalendarday"
    datamodel = CrmInterface(ServiceCalendarDay)
    list_columns = show_columns = ["id", *CALENDAR_FIELDS]
    add_columns = edit_columns = CALENDAR_FIELDS
    order_columns = ["id", "day"]
    search_columns = ["day", "kind", "name"]


class SurveyApi(CrmModelApi):
    """The answers, read-only (within the tickets' data scope)."""

    resource_name = "survey"
    datamodel = CrmInterface(Survey)
    base_permissions = ["can_get", "can_info"]
    list_columns = show_columns = [
        "id",
        "ticket_id",
        "ticket.number",
        "ticket.subject",
        "rating",
        "comment",
        "sent_at",
        "answered_at",
        "followup_task_id",
    ]
    order_columns = ["id", "rating", "sent_at", "answered_at"]
    search_columns = ["rating", "sent_at", "answered_at", "ticket_id"]


def register(appbuilder: AppBuilder) -> None:
    """设置: SLA 策略, 服务时间, 节假日调休; 服务: 满意度调查; and their REST APIs."""
    for view, name, label, icon in (
        (SlaPolicyView, "SLA policies", _("SLA 策略"), "fa-hourglass-half"),
        (BusinessHoursView, "Business hours", _("服务时间"), "fa-clock-o"),
        (ServiceCalendarDayView, "Service calendar", _("节假日调休"), "fa-calendar"),
    ):
        appbuilder.add_view(view, name, label=label, icon=icon, **SETTINGS_CATEGORY)
    appbuilder.add_view(SurveyView, "Surveys", label=_("满意度调查"), icon="fa-smile-o", **SERVICE_CATEGORY)
    for api in (SlaPolicyApi, BusinessHoursApi, ServiceCalendarDayApi, SurveyApi):
        appbuilder.add_api(api)
