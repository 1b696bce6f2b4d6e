"""Custom fields on the list screens: FAB filters built per request from the current definitions.

Each filter turns into `customfields.query.filter_condition`, the same SQL the REST list uses, so a
screen and the API filter identically (and an indexed field's index serves both).
"""

from __future__ import annotations

from typing import Any

from flask import flash
from flask_appbuilder.models.filters import BaseFilter, Filters
from flask_babel import lazy_gettext as _

from customfields.definitions import CustomField
from customfields.query import ORDERED, TEXTUAL, UNSORTABLE, filter_condition, storage_kind
from views.custom_forms import form_name

OPERATOR_LABELS = {
    "eq": _("等于"),
    "neq": _("不等于"),
    "ct": _("包含"),
    "sw": _("开头是"),
    "gt": _("大于"),
    "lt": _("小于"),
    "empty": _("为空"),
    "not_empty": _("不为空"),
}


def operators(field: CustomField) -> list[str]:
    """The filters a field offers on the list screen, by the type of what it stores."""
    kind = storage_kind(field)
    if getattr(field, "sensitive", False):  # encryption at rest: exact match only
        found = ["eq"]
    elif kind == "file":
        found = []
    elif kind in TEXTUAL:
        found = ["ct", "sw", "eq"]
    elif kind in ORDERED:
        found = ["eq", "gt", "lt"]
    elif kind == "multi_select":
        found = ["ct"]
    elif kind == "select":
        found = ["eq", "neq"]
    else:  # boolean, reference
        found = ["eq"]
    return [*found, "empty", "not_empty"]


class CustomFieldFilter(BaseFilter):
    """One operator on one custom field; a value the field cannot hold is reported, not run."""

    field: CustomField
    operator: str

    def apply(self, query: Any, value: Any) -> Any:
        if self.operator in ("empty", "not_empty"):
            return query.filter(filter_condition(self.model, self.field, "empty", self.operator == "empty"))
        if value in (None, ""):
            return query
        try:
            return query.filter(filter_condition(self.model, self.field, self.operator, value))
        except ValueError as exc:
            flash(f"{self.field.label_zh}: {exc}", "warning")
            return query


def filter_classes(field: CustomField) -> list[type[CustomFieldFilter]]:
    return [
        type(
            f"CustomFilter_{operator}",
            (CustomFieldFilter,),
            {"name": OPERATOR_LABELS[operator], "arg_name": operator, "field": field, "operator": operator},
        )
        for operator in operators(field)
    ]


def with_custom_filters(filters: Filters, fields: list[CustomField]) -> Filters:
    """A copy of a view's Filters that also knows the custom fields' filters (for this request)."""
    result = filters.copy()
    result.search_columns = list(filters.search_columns)
    result._search_filters = dict(filters.get_search_filters())
    result._all_filters = dict(filters._all_filters)
    for field in fields:
        name = form_name(field)
        instances = [cls(name, filters.datamodel) for cls in filter_classes(field)]
        result.search_columns.append(name)
        result._search_filters[name] = instances
        result._all_filters[name] = instances
    return result


def sortable(field: CustomField) -> bool:
    # encryption at rest: an encrypted field's stored order means nothing
    return storage_kind(field) not in UNSORTABLE and not getattr(field, "sensitive", False)
