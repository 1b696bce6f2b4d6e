"""How values show on list and detail pages: local times, CNY, joined lists, blanks for None."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from flask_babel import format_currency, format_datetime, get_locale, lazy_gettext
from sqlalchemy import DateTime, inspect


def display_custom(field: Any, value: Any, labels: dict[int, str] | None = None) -> str:
    """A custom value as text (lists, exports); `labels` names referenced records."""
    if value is None or value == []:
        return ""
    if isinstance(value, bool):
        return str(lazy_gettext("是") if value else lazy_gettext("否"))
    if field.field_type == "file":
        return joined(item.get("name", "") for item in value if isinstance(item, dict))
    if isinstance(value, list):
        return joined(value)
    if field.field_type == "reference":
        return (labels or {}).get(value, f"#{value}")
    if field.field_type == "currency":
        return format_currency(value, "CNY")
    if field.field_type == "percent":
        return f"{value}%"
    if field.field_type == "datetime" and isinstance(value, str):
        return _local_datetime(dt.datetime.fromisoformat(value))  # stored in UTC, shown local
    return str(value)


def _blank(value: Any) -> Any:
    return "" if value is None else value


def joined(values: Any) -> str:
    separator = "、" if get_locale() and get_locale().language == "zh" else ", "
    return separator.join(str(v) for v in values or ())


def _local_datetime(value: Any) -> str:
    return format_datetime(value, "short") if value is not None else ""  # UTC -> BABEL_DEFAULT_TIMEZONE


def cny(value: Any) -> str:
    return format_currency(value, "CNY") if value is not None else ""


def display_formatter(model: type, name: str) -> Callable[[Any], Any]:
    """How a column shows in lists and detail pages: local date-times, CNY, blank for None."""
    mapper = inspect(model)
    column = mapper.columns.get(name)
    if column is not None and isinstance(column.type, DateTime):
        return _local_datetime
    if name in getattr(model, "__money__", ()):
        return cny
    if name in mapper.relationships and mapper.relationships[name].uselist:
        return joined
    return _blank
