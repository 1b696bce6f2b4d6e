"""Typed SQL over custom values: filters, sorting and indexes on SQLite, PostgreSQL and MySQL alike.

Values are stored as the type handlers produce them (numbers as exact text, dates as ISO text,
booleans and integers as JSON scalars, multi-selects as arrays, references as record ids). A
missing key reads as NULL, so old records match "is empty".

The JSON path is rendered into the SQL text (a literal, not a bound parameter) so that the
expression a query uses is the very expression an index was built on; API names are validated
identifiers, so this is safe. `index_expressions` and `order_by` live next to `custom_sql` so the
three can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import JSON, ColumnElement, Numeric, and_, bindparam, cast, or_

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
#: types whose values cannot be compared or sorted in SQL
UNSORTABLE = {"multi_select", "file", "long_text"}


def storage_kind(field: CustomField) -> str:
    """The type whose storage rules apply: a formula stores values of its result type."""
    if field.field_type == "formula":
        return {"number": "decimal", "text": "text", "boolean": "boolean"}.get(
            field.result_type or "", field.result_type or "text"
        )
    return field.field_type


def json_element(model: type, field: CustomField) -> Any:
    """`custom -> api_name` with the path written into the SQL text (so expression indexes match)."""
    path = bindparam(f"cf_{field.api_name}", field.api_name, type_=JSON.JSONIndexType, literal_execute=True)
    return model.custom[path]


def custom_sql(model: type, field: CustomField) -> ColumnElement[Any]:
    """The field's value as a typed SQL expression (JSON path, cast by type)."""
    element = json_element(model, field)
    kind = storage_kind(field)
    if kind in ("integer", "reference"):
        return element.as_integer()
    if kind == "boolean":
        return element.as_boolean()
    if kind in NUMERIC_TYPES:
        return cast(element.as_string(), Numeric(20, 4))
    return element.as_string()


def order_by(model: type, field: CustomField, descending: bool, dialect: str) -> list[ColumnElement[Any]]:
    """ORDER BY terms: records without a value last in either direction, ties by id.

    Written per database so that an index from `index_expressions` serves the order: NULLs sort
    last natively on PostgreSQL ascending, on SQLite and MySQL descending.
    """
    column = custom_sql(model, field)
    if descending:
        first = column.desc().nulls_last() if dialect == "postgresql" else column.desc()
        return [first, model.id.desc()]
    if dialect == "postgresql":
        return [column.asc(), model.id.asc()]
    return [column.is_(None), column.asc(), model.id.asc()]


def index_expressions(model: type, field: CustomField, dialect: str) -> list[list[ColumnElement[Any]]]:
    """The indexes an indexed field gets: one serves filters and one direction, the other the
    other direction of `order_by`. MySQL/MariaDB get none (no expression indexes in MariaDB)."""
    column = custom_sql(model, field)
    if dialect == "postgresql":
        return [[column, model.id], [column.desc().nulls_last(), model.id.desc()]]
    if dialect == "sqlite":
        return [[column, model.id], [column.is_(None), column, model.id]]
    return []


# --- encryption at rest ---
#: set by app.crypto (the engine imports no app code): "index"(text, purpose) -> hex blind index
SEALING: dict[str, Callable[..., Any]] = {}
#: a sensitive value is stored as "<blind index>.<enc1 token>": exact filters are a prefix range
SEALED_SEPARATOR = "."


def sensitive_purpose(model: type, field: CustomField) -> str:
    """What a sensitive field's value is bound to (associated data) and indexed for."""
    return f"{model.__tablename__}.custom.{field.api_name}"


def sensitive_condition(model: type, field: CustomField, operator: str, raw: Any) -> ColumnElement[bool]:
    """Only "equals the whole value" exists for an encrypted field: through its blind index."""
    if operator != "eq":
        raise ValueError(_("加密存储的字段只能按完整的值精确筛选"))
    index = SEALING["index"](str(raw), sensitive_purpose(model, field))
    column = json_element(model, field).as_string()
    # "." < "/": every value whose blind-index prefix is this one (an index on the field serves it)
    return and_(column >= index + SEALED_SEPARATOR, column < index + "/")


def filter_condition(model: type, field: CustomField, operator: str, raw: Any) -> ColumnElement[bool]:
    """One filter on a custom field, or ValueError with a message (bad operator or value)."""
    column = custom_sql(model, field)
    kind = storage_kind(field)
    if operator == "empty":
        return column.is_(None) if raw in (True, "true", 1, "1", None) else column.is_not(None)
    if getattr(field, "sensitive", False):
        return sensitive_condition(model, field, operator, raw)
    if kind == "file":
        raise ValueError(_("该类型的字段不支持此筛选"))
    if kind == "multi_select":
        if operator not in ("eq", "ct"):
            raise ValueError(_("多选字段只支持 eq 和 ct"))
        wanted = field.handler.to_storage([raw] if not isinstance(raw, list) else raw, field)
        text = json_element(model, field).as_string()
        return and_(*(text.like(f'%"{item}"%') for item in wanted))
    if operator in ("ct", "sw"):
        if kind not in TEXTUAL:
            raise ValueError(_("该类型的字段不支持此筛选"))
        needle = str(raw).replace("%", "").replace("_", "")
        return column.like(f"%{needle}%" if operator == "ct" else f"{needle}%")
    if operator == "in":
        values = raw if isinstance(raw, list) else [raw]
        return column.in_([typed_value(field, value) for value in values])
    if operator not in OPERATORS or (operator not in ("eq", "neq") and kind not in ORDERED):
        raise ValueError(_("该类型的字段不支持此筛选"))
    return OPERATORS[operator](column, typed_value(field, raw))


def sql_value(field: CustomField, stored: Any) -> Any:
    """A stored value in the SQL type of custom_sql() (numbers are kept as exact text)."""
    return Decimal(stored) if storage_kind(field) in NUMERIC_TYPES else stored


def typed_value(field: CustomField, raw: Any) -> Any:
    """A filter value in the column's SQL type, validated by the rules of the stored type."""
    from customfields.types import FIELD_TYPES

    return sql_value(field, FIELD_TYPES[storage_kind(field)].filter_value(raw, field))
