"""Where a click on a chart's bar or point goes: a list screen filtered as Flask-AppBuilder reads
its URL (`/<view>/list/?_flt_<n>_<column>=<value>`). One place builds them, so every chart says
"this bar's rows" the same way and a filter index or a time-zone shift is written once.

FAB numbers a column's filters by its type (flask_appbuilder.models.sqla.filters
SQLAFilterConverter): a relation's "equal" is 0; a text column's "equal" 3 and "not in" 9; a date
or date-time column's "greater than" 1 and "smaller than" 2. Only a list's `search_columns` can
be filtered (FAB ignores any other `_flt_`): a chart whose rows no list can select keeps no link.
Date-time columns are stored in UTC: a local day begins at app.service_analysis.local_midnight_utc.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from app.service_analysis import local_midnight_utc

#: FAB filter indexes by column type (see the module's docstring)
RELATION_EQUAL = 0
TEXT_EQUAL = 3
TEXT_NOT_IN = 9
GREATER = 1
SMALLER = 2


def missing(value: Any) -> bool:
    """No value: None, "" or a pandas gap (NaN, e.g. an order line without a product)."""
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def list_link(view: str, params: dict[str, Any]) -> str:
    """The list of a view (its endpoint name, e.g. "orderview") with FAB filters; missing values
    are left out (no filter)."""
    kept = {key: value for key, value in params.items() if not missing(value)}
    return f"/{view}/list/" + (f"?{urlencode(kept, doseq=True)}" if kept else "")


def show_link(view: str, pk: Any) -> str | None:
    """One record's page (None without a key)."""
    return None if missing(pk) else f"/{view}/show/{int(pk)}"


def equal(column: str, value: Any, text: bool = False) -> dict[str, Any]:
    """A relation (or number) or, with `text`, a text column equal to a value."""
    return {f"_flt_{TEXT_EQUAL if text else RELATION_EQUAL}_{column}": value}


def days(column: str, first: dt.date, end: dt.date, datetime: bool = False) -> dict[str, str]:
    """Rows of the local days first .. end (end exclusive) on a date column, or on a UTC
    date-time column (`datetime`)."""
    if datetime:
        low = local_midnight_utc(first) - dt.timedelta(microseconds=1)
        high = local_midnight_utc(end)
        return {f"_flt_{GREATER}_{column}": low.isoformat(), f"_flt_{SMALLER}_{column}": high.isoformat()}
    return {
        f"_flt_{GREATER}_{column}": (first - dt.timedelta(days=1)).isoformat(),
        f"_flt_{SMALLER}_{column}": end.isoformat(),
    }


def month(column: str, first: dt.date, datetime: bool = False) -> dict[str, str]:
    """Rows of one local month (its first day given)."""
    following = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return days(column, first, following, datetime)


def week(column: str, monday: dt.date, datetime: bool = False) -> dict[str, str]:
    """Rows of one week (its Monday given)."""
    return days(column, monday, monday + dt.timedelta(days=7), datetime)


def month_of(text: str) -> dt.date:
    """The first day of a chart's month label ("2026-03")."""
    return dt.date.fromisoformat(f"{text[:7]}-01")


def not_in(column: str, values: Iterable[str]) -> dict[str, list[str]]:
    """A text column with none of the values (the parameter repeated: FAB reads them as a list)."""
    return {f"_flt_{TEXT_NOT_IN}_{column}": list(values)}


def moments(column: str, after: dt.datetime | None, before: dt.datetime | None) -> dict[str, str]:
    """Rows of a UTC date-time column strictly after and before two moments (either may be open)."""
    params = {}
    if after is not None:
        params[f"_flt_{GREATER}_{column}"] = after.isoformat()
    if before is not None:
        params[f"_flt_{SMALLER}_{column}"] = before.isoformat()
    return params
