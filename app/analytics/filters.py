"""The dashboards' filters: read from the query string, checked, and offered as choices.

One place parses them for the page, each chart's data (JSON, CSV, Excel), the printable page and
the saved filters of a subscription, so a bad date or an id the user may not see is refused the
same way everywhere (ValidationFailed: a 400 with a clear message, never a 500). The choices are
limited to what the user may see: the owners and departments within their data scope, the
pipelines, and the live select-type custom fields of customers their roles may see.

Query string: from, to (YYYY-MM-DD, inclusive), range (month | quarter | year | 12m: relative to
today in the company's time zone, so a saved subscription keeps rolling), owner, department,
pipeline, dimension (a custom field's API name, or "locality"), cf_<api_name> (a choice of that
field; cf_locality=local | remote).

Which custom fields: the select fields of customers marked indexed (rollups.dashboard_field, the
one rule the rollups' check applies too); a select field that is not indexed is named in the
filter bar's help and refused with the way to make it usable. Locality (本地/外地 客户) is keyed
like them on the sales and customers dashboards.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.access import department_tree_ids, subordinate_ids, user_scope
from app.analytics import (
    Filters,
    rollups,  # (a module: rollups imports top_customers, which imports us)
)
from app.clock import local_today
from app.customfields import visible_fields
from app.errors import ErrorCollector
from customfields.definitions import CustomField
from models.customers import LOCALITIES, Customer
from models.sales import Pipeline
from models.security import DATA_SCOPES, CrmUser, Department

#: the quick date ranges of the filter bar, in their order
QUICK_RANGES: dict[str, Any] = {
    "month": lazy_gettext("本月"),
    "quarter": lazy_gettext("本季度"),
    "year": lazy_gettext("本年"),
    "12m": lazy_gettext("近12个月"),
}
#: the prefix of a custom-field filter parameter: cf_<api_name>=<choice>
CUSTOM_PREFIX = "cf_"
#: parameters that are not filters but may ride along (Flask-AppBuilder's language switch)
PASSTHROUGH = {"_l_"}
KNOWN = {"from", "to", "range", "owner", "department", "pipeline", "dimension"}
#: the entities whose data scope the dashboards read (the widest decides the choices)
SCOPED_ENTITIES = ("customer", "order", "opportunity")


@dataclass(frozen=True)
class Choice:
    value: int | str
    label: str


@dataclass(frozen=True)
class KeyedChoice:
    """A filter and dimension of the dashboards keyed in the rollups' custom_key: an indexed
    select custom field of customers, or the customer's locality (本地/外地)."""

    api_name: str
    label_zh: str
    label_en: str | None
    #: (stored code, as shown)
    options: list[tuple[str, str]]

    def label(self, language: str | None) -> str:
        return (self.label_en or self.label_zh) if language == "en" else self.label_zh

    @property
    def choice_values(self) -> list[str]:
        return [code for code, _text in self.options]


@dataclass(frozen=True)
class FilterChoices:
    """What the filter bar offers this user."""

    owners: list[Choice]
    departments: list[Choice]
    pipelines: list[Choice]
    #: what may filter and split the charts: locality (sales, customers) and the indexed select
    #: custom fields of customers the user may see
    fields: list[KeyedChoice] = field(default_factory=list)
    #: select custom fields of customers the user may see that the dashboards cannot use (not
    #: indexed), named in the filter bar's help with the way to make them usable
    unusable: list[CustomField] = field(default_factory=list)

    def field(self, api_name: str) -> KeyedChoice | None:
        return next((f for f in self.fields if f.api_name == api_name), None)

    def unusable_field(self, api_name: str) -> CustomField | None:
        return next((f for f in self.unusable if f.api_name == api_name), None)


def quick_range(code: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """The first and last day (inclusive) of a quick range around `today`."""
    if code == "month":
        start = today.replace(day=1)
        return start, _month_end(start)
    if code == "quarter":
        start = dt.date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
        return start, _month_end(_add_months(start, 2))
    if code == "year":
        return dt.date(today.year, 1, 1), dt.date(today.year, 12, 31)
    if code == "12m":
        this_month = today.replace(day=1)
        return _add_months(this_month, -11), _month_end(this_month)
    raise KeyError(code)


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _month_end(first: dt.date) -> dt.date:
    return _add_months(first, 1) - dt.timedelta(days=1)


def _widest_scope(session: Session, user: CrmUser) -> str:
    scopes = [user_scope(session, user, entity) for entity in SCOPED_ENTITIES]
    return max(scopes, key=lambda s: DATA_SCOPES.codes.index(s) if s in DATA_SCOPES.codes else -1)


def filter_choices(session: Session, user: CrmUser, dashboard: str | None = None) -> FilterChoices:
    """The owners, departments, pipelines and custom fields this user may filter by on a
    dashboard (None: as the sales and customers dashboards)."""
    scope = _widest_scope(session, user)
    users = select(CrmUser)
    departments = select(Department)
    if scope in ("department", "department_tree") and user.department_id:
        tree = (
            {user.department_id}
            if scope == "department"
            else department_tree_ids(session, user.department_id)
        )
        users = users.where(CrmUser.department_id.in_(sorted(tree)) | (CrmUser.id == user.id))
        departments = departments.where(Department.id.in_(sorted(tree)))
    elif scope != "all":
        ids = subordinate_ids(session, user.id) if scope == "subordinates" else {user.id}
        users = users.where(CrmUser.id.in_(sorted(ids)))
        departments = departments.where(
            Department.id.in_(select(CrmUser.department_id).where(CrmUser.id.in_(sorted(ids))))
        )
    people = sorted(session.scalars(users).all(), key=lambda u: (u.id != user.id, str(u)))
    pipelines = session.scalars(
        select(Pipeline).where(Pipeline.active.is_(True)).order_by(Pipeline.position, Pipeline.id)
    ).all()
    return FilterChoices(
        owners=[Choice(u.id, str(u)) for u in people],
        departments=[Choice(d.id, d.name) for d in session.scalars(departments.order_by(Department.id))],
        pipelines=[Choice(p.id, p.name) for p in pipelines],
        fields=keyed_choices(session, user, dashboard),
        unusable=[f for f in _select_fields(session, user) if not rollups.dashboard_field(f)],
    )


def _select_fields(session: Session, user: CrmUser | None) -> list[CustomField]:
    return [f for f in visible_fields(session, Customer, user) if f.field_type == "select"]


def select_fields(session: Session, user: CrmUser | None) -> list[CustomField]:
    """The custom fields of customers the user may see that the dashboards can filter and split
    by: rollups.dashboard_field, the rule check_custom applies too."""
    return [f for f in _select_fields(session, user) if rollups.dashboard_field(f)]


#: the dashboards whose charts read the rollups' custom_key, where locality is keyed (the service
#: dashboard's live ticket queries filter by custom fields only)
LOCALITY_DASHBOARDS = {"sales", "customers", None}


def keyed_choices(session: Session, user: CrmUser | None, dashboard: str | None) -> list[KeyedChoice]:
    """Locality (on the sales and customers dashboards), then the usable custom fields."""
    found = []
    if dashboard in LOCALITY_DASHBOARDS:
        options = [(code, str(LOCALITIES.label(code))) for code in LOCALITIES.codes]
        found.append(KeyedChoice(rollups.LOCALITY, _("本地/外地"), "Local/remote", options))
    for item in select_fields(session, user):
        options = [(value, value) for value in item.choice_values]
        found.append(KeyedChoice(item.api_name, item.label_zh, item.label_en, options))
    return found


def parse_filters(
    session: Session,
    user: CrmUser,
    args: Mapping[str, Any],
    choices: FilterChoices | None = None,
    today: dt.date | None = None,
    dashboard: str | None = None,
) -> Filters:
    """The Filters of a query string (for a dashboard: what its filter bar offers), or
    ValidationFailed naming every bad parameter."""
    choices = choices or filter_choices(session, user, dashboard)
    errors = ErrorCollector()
    values = {key: str(value).strip() for key, value in args.items() if key not in PASSTHROUGH}
    for key in values:
        if key not in KNOWN and not key.startswith(CUSTOM_PREFIX):
            errors.add(key, _("未知的筛选条件「%(name)s」", name=key))

    date_from = _date(values.get("from"), "from", errors)
    date_to = _date(values.get("to"), "to", errors)
    code = values.get("range") or ""
    if code:
        if code not in QUICK_RANGES:
            errors.add("range", _("快捷范围只能是 %(codes)s", codes=", ".join(QUICK_RANGES)))
        elif values.get("from") or values.get("to"):
            errors.add("range", _("选择了快捷范围时不能再填写起止日期"))
        else:
            date_from, date_to = quick_range(code, today or local_today())
    if date_from and date_to and date_from > date_to:
        errors.add("to", _("结束日期不能早于开始日期"))

    owner_id = _choice_id(values.get("owner"), "owner", choices.owners, _("负责人"), errors)
    department_id = _choice_id(values.get("department"), "department", choices.departments, _("部门"), errors)
    pipeline_id = _choice_id(values.get("pipeline"), "pipeline", choices.pipelines, _("销售流程"), errors)

    custom: dict[str, str] = {}
    for key, value in values.items():
        if not key.startswith(CUSTOM_PREFIX) or value == "":
            continue
        api_name = key.removeprefix(CUSTOM_PREFIX)
        definition = choices.field(api_name)
        if definition is None:
            message = _unusable(choices, api_name) or _("「%(name)s」不是可用于筛选的下拉字段", name=api_name)
            errors.add(key, message)
        elif value not in definition.choice_values:
            errors.add(
                key, _("「%(value)s」不是字段「%(label)s」的选项", value=value, label=definition.label_zh)
            )
        else:
            custom[api_name] = value
    dimension = values.get("dimension") or None
    if dimension is not None and choices.field(dimension) is None:
        message = _unusable(choices, dimension) or _("「%(name)s」不是可用作维度的下拉字段", name=dimension)
        errors.add("dimension", message)
    errors.raise_if_any()
    return Filters(
        date_from=date_from,
        date_to=date_to,
        owner_id=owner_id,
        department_id=department_id,
        pipeline_id=pipeline_id,
        custom=custom,
        dimension=dimension,
    )


def _unusable(choices: FilterChoices, api_name: str) -> str | None:
    """Why a select field the user may see cannot filter a dashboard (None if it is not one)."""
    found = choices.unusable_field(api_name)
    if found is None:
        return None
    return _(
        "字段「%(label)s」未建索引, 不能用于看板: 请管理员在「自定义字段」中勾选「建索引」",
        label=found.label_zh,
    )


def _date(raw: str | None, name: str, errors: ErrorCollector) -> dt.date | None:
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        errors.add(name, _("「%(value)s」不是有效的日期 (格式: 2026-03-31)", value=raw))
        return None


def _choice_id(
    raw: str | None, name: str, options: list[Choice], label: Any, errors: ErrorCollector
) -> int | None:
    if not raw:
        return None
    if not raw.isdigit():
        errors.add(name, _("%(label)s: 「%(value)s」不是有效的编号", label=label, value=raw))
        return None
    value = int(raw)
    if value not in {option.value for option in options}:
        errors.add(name, _("%(label)s: 编号 %(value)s 不存在或不在您的数据权限内", label=label, value=value))
        return None
    return value


def clean_args(args: Mapping[str, Any]) -> dict[str, str]:
    """The filter parameters worth keeping (a subscription's saved filters, links): no empties,
    no language switch."""
    return {
        key: str(value).strip()
        for key, value in args.items()
        if key not in PASSTHROUGH and str(value).strip() != ""
    }
