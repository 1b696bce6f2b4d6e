"""Typed SQL over custom values: filters and sorting on SQLite, PostgreSQL and MySQL alike.

Values are stored as the type handlers produce them (numbers as exact text, dates as ISO text,
booleans and integers as JSON scalars, multi-selects as arrays). A missing key reads as NULL, so
old records match "is empty".
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import ColumnElement, Numeric, and_, cast, or_

from customfields.definitions import CustomField

NUMERIC_TYPES = {"decimal", "currency", "percent"}
#: REST filter operators (Flask-AppBuilder's rison names) and the types they apply to
OPERATORS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "eq": lambda column, value: column == value,
    "neq": lambda column, value: or_(column != value, column.is_(None)),
    "gt": lambda column, value: column > value,
    "lt": lambda column, value: column < value,
    "ge": lambda column, value: column >= value,
    "le": lambda column, value: column <= value,
}
ORDERED = {"integer", "decimal", "currency", "percent", "date", "datetime"}
TEXTUAL = {"text", "long_text", "email", "phone", "url"}


def custom_sql(model: type, field: CustomField) -> ColumnElement[Any]:
    """The field's value as a typed SQL expression (JSON path, cast by type)."""
    element = model.custom[field.api_name]
    if field.field_type == "integer":
        return element.as_integer()
    if field.field_type == "boolean":
        return element.as_boolean()
    if field.field_type in NUMERIC_TYPES:
        return cast(element.as_string(), Numeric(20, 4))
    return element.as_string()


def filter_condition(model: type, field: CustomField, operator: str, raw: Any) -> ColumnElement[bool]:
    """One filter on a custom field, or ValueError with a message (bad operator or value)."""
    column = custom_sql(model, field)
    if operator == "empty":
        return column.is_(None) if raw in (True, "true", 1, "1", None) else column.is_not(None)
    if field.field_type == "multi_select":
        if operator not in ("eq", "ct"):
            raise ValueError(_("多选字段只支持 eq 和 ct"))
        wanted = field.handler.to_storage([raw] if not isinstance(raw, list) else raw, field)
        text = model.custom[field.api_name].as_string()
        return and_(*(text.like(f'%"{item}"%') for item in wanted))
    if operator in ("ct", "sw"):
        if field.field_type not in TEXTUAL:
            raise ValueError(_("该类型的字段不支持此筛选"))
        needle = str(raw).replace("%", "").replace("_", "")
        return column.like(f"%{needle}%" if operator == "ct" else f"{needle}%")
    if operator == "in":
        values = raw if isinstance(raw, list) else [raw]
        return column.in_([_typed(field, value) for value in values])
    if operator not in OPERATORS or (operator not in ("eq", "neq") and field.field_type not in ORDERED):
        raise ValueError(_("该类型的字段不支持此筛选"))
    return OPERATORS[operator](column, _typed(field, raw))


def sql_value(field: CustomField, stored: Any) -> Any:
    """A stored value in the SQL type of custom_sql() (numbers are kept as exact text)."""
    return Decimal(stored) if field.field_type in NUMERIC_TYPES else stored


def _typed(field: CustomField, raw: Any) -> Any:
    """A filter value in the column's SQL type, validated by the field's own rules."""
    return sql_value(field, field.handler.to_storage(raw, field))
