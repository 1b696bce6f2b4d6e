"""业绩目标: sales targets with their actual figures and completion, on screens and in REST.

The actuals are computed by app.targets for the whole page at once (one grouped query per
metric), then shown next to each target.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask_appbuilder.api import API_RESULT_RES_KEY
from flask_appbuilder.models.filters import BaseFilter
from flask_babel import lazy_gettext as _
from sqlalchemy import or_, select

from app.access import covered_subjects, current_actor
from app.targets import progress
from models.orders import SalesTarget
from models.security import CrmUser
from views.base import CrmInterface, CrmModelApi, CrmModelView
from views.formatters import cny

LABELS = {
    "user": _("人员"),
    "department": _("部门"),
    "period": _("周期"),
    "period_start": _("周期开始"),
    "metric": _("指标"),
    "amount": _("目标金额 (元)"),
    "actual": _("实际完成 (元)"),
    "completion": _("完成率"),
    "notes": _("备注"),
    "created_at": _("创建时间"),
    "updated_at": _("更新时间"),
}
TARGET_FIELDS = ["user", "department", "period", "period_start", "metric", "amount", "notes"]


class TargetSubjectFilter(BaseFilter):
    """The person and department dropdowns of a target's form offer whom the user may set targets
    for (app.access.covered_subjects for writing; the service refuses anyone else anyway)."""

    name = "target subjects"

    def apply(self, query: Any, value: Any) -> Any:
        subjects = covered_subjects(self.datamodel.session, SalesTarget, current_actor(), write=True)
        if subjects.everyone:
            return query
        if self.model is CrmUser:
            return query.filter(
                or_(
                    self.model.id.in_(sorted(subjects.people)),
                    self.model.department_id.in_(sorted(subjects.member_departments)),
                )
            )
        return query.filter(self.model.id.in_(sorted(subjects.departments)))


SUBJECT_CHOICES = {field: [["id", TargetSubjectFilter, None]] for field in ("user", "department")}


class TargetInterface(CrmInterface):
    """Targets come with `actual` and `completion` set from the money (not stored)."""

    def query(self, *args: Any, **kwargs: Any) -> Any:
        count, items = super().query(*args, **kwargs)
        attach_progress(self.session, items)
        return count, items

    def get(self, id: Any, filters: Any = None) -> Any:
        item = super().get(id, filters)
        if item is not None:
            attach_progress(self.session, [item])
        return item


def attach_progress(session: Any, items: list[Any]) -> None:
    """Set the figures on targets (FAB also builds related dropdowns with this interface class)."""
    targets = [item for item in items if isinstance(item, SalesTarget)]
    for figures in progress(session, targets):
        figures.target.actual = figures.actual
        figures.target.completion = figures.completion


def percent(value: Any) -> str:
    return f"{value}%" if value is not None else ""


class SalesTargetView(CrmModelView):
    datamodel = TargetInterface(SalesTarget)
    list_title = _("业绩目标")
    label_columns = LABELS
    list_columns = [
        "user",
        "department",
        "period",
        "period_start",
        "metric",
        "amount",
        "actual",
        "completion",
    ]
    show_columns = [*TARGET_FIELDS, "actual", "completion", "created_at", "updated_at"]
    add_columns = edit_columns = TARGET_FIELDS
    search_columns = ["user", "department", "period", "period_start", "metric"]
    order_columns = ["period_start", "amount", "period", "metric"]
    base_order = ("period_start", "desc")
    description_columns = {
        "period_start": _("月度: 当月1日; 季度: 1月1日、4月1日、7月1日或10月1日; 年度: 1月1日"),
        "metric": _("合同金额: 审批通过的订单/合同; 回款金额: 审批通过的回款"),
    }
    formatters_columns = {"actual": cny, "completion": percent}
    add_form_query_rel_fields = edit_form_query_rel_fields = SUBJECT_CHOICES


TARGET_COLUMNS = [
    "id",
    "user.id",
    "department.id",
    "period",
    "period_start",
    "metric",
    "amount",
    "notes",
    "custom",
    "updated_at",
]


class SalesTargetApi(CrmModelApi):
    """Targets; each result carries `actual` and `completion` (percent) computed for the page."""

    resource_name = "target"
    datamodel = CrmInterface(SalesTarget)
    list_columns = show_columns = TARGET_COLUMNS
    add_columns = edit_columns = [*TARGET_FIELDS, "custom"]
    order_columns = ["id", "period_start", "amount", "period", "metric"]
    search_columns = ["user", "department", "period", "period_start", "metric"]

    def _with_progress(self, rows: list[dict[str, Any]]) -> None:
        ids = [row["id"] for row in rows if "id" in row]
        if not ids:
            return
        session = self.datamodel.session
        targets = session.scalars(select(SalesTarget).where(SalesTarget.id.in_(ids)))
        figures = {f.target.id: f for f in progress(session, targets)}
        for row in rows:
            found = figures.get(row.get("id"))
            if found is not None:
                row["actual"] = _number(found.actual)
                row["completion"] = _number(found.completion)

    def pre_get(self, data: dict[str, Any]) -> None:
        super().pre_get(data)
        self._with_progress([data.get(API_RESULT_RES_KEY) or {}])

    def pre_get_list(self, data: dict[str, Any]) -> None:
        super().pre_get_list(data)
        self._with_progress(data.get(API_RESULT_RES_KEY) or [])


def _number(value: Decimal) -> float | str:
    """Money as the API sends Numeric columns (FAB: a number)."""
    return float(value)
