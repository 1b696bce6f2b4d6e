"""A chart's data as a file: CSV (UTF-8 with a BOM, so Excel opens Chinese correctly) and XLSX.

Text cells that a spreadsheet would run as a formula (= + - @, tab, carriage return) get a
leading apostrophe: a customer named "=HYPERLINK(...)" must stay text (CSV injection). Numbers are
written as numbers.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

#: the first characters that make a spreadsheet treat a cell as a formula
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: characters Excel refuses in a sheet title; titles are at most 31 characters
SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")


def safe_text(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def cell(value: Any, safe: bool = True) -> Any:
    """A DataFrame value as a plain Python value for csv/openpyxl."""
    if value is None:
        return None
    if isinstance(value, float) and pd.isna(value):
        return None
    if value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
        return value.date() if value == dt.datetime.combine(value.date(), dt.time()) else value
    if isinstance(value, pd.Period):
        return str(value)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        value = value.item()
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    if isinstance(value, str):
        return safe_text(value) if safe else value
    if isinstance(value, (int, float, bool, dt.date, dt.datetime)):
        return value
    return safe_text(str(value)) if safe else str(value)


def records(df: pd.DataFrame, safe: bool = True) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of a DataFrame (the index kept when it is named or not a plain range)."""
    if df.index.name is not None or not isinstance(df.index, pd.RangeIndex):
        df = df.reset_index()
    header = [safe_text(str(column)) if safe else str(column) for column in df.columns]
    rows = [[cell(value, safe) for value in row] for row in df.itertuples(index=False, name=None)]
    return header, rows


def csv_bytes(df: pd.DataFrame) -> bytes:
    """CSV with a UTF-8 byte order mark and CRLF line ends (what Excel expects)."""
    header, rows = records(df)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if value is None else value for value in row])
    return "\ufeff".encode() + buffer.getvalue().encode("utf-8")


def sheet_title(title: str) -> str:
    """A valid Excel sheet title from a chart's title."""
    cleaned = SHEET_FORBIDDEN.sub(" ", title).strip().strip("'")
    return cleaned[:31] or "Sheet1"


def xlsx_bytes(df: pd.DataFrame, title: str) -> bytes:
    """One sheet named after the chart, a bold header row, sensible column widths."""
    header, rows = records(df)
    book = Workbook()
    sheet = book.active
    sheet.title = sheet_title(title)
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    for cell_ in sheet[1]:
        cell_.font = Font(bold=True)
    for index, name in enumerate(header):
        lengths = [len(str(row[index])) for row in rows[:200] if row[index] is not None]
        width = max([len(str(name)), *lengths])
        sheet.column_dimensions[get_column_letter(index + 1)].width = min(max(width + 2, 8), 60)
    sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# --- for the browser: the figure as JSON, and the link of each point --------------------------------
def _norm(value: Any) -> str | None:
    """A value as text for matching a plotted point to its row (numbers rounded, dates ISO)."""
    if value is None:
        return None
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        if value == pd.Timestamp(value).normalize():
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float, Decimal)):
        number = float(value)
        return None if number != number else repr(round(number, 6))
    return str(value)


def row_dicts(df: pd.DataFrame) -> list[dict[str, Any]]:
    """The DataFrame's rows as dicts (a named index becomes a column), as Chart.link takes them."""
    if df.index.name is not None or not isinstance(df.index, pd.RangeIndex):
        df = df.reset_index()
    return df.to_dict("records")


def _coordinates(trace: Any) -> list[list[Any]]:
    """The values that identify each point of a trace (x/y, or a pie's labels)."""
    names = ("labels",) if getattr(trace, "type", None) == "pie" else ("x", "y")
    arrays = []
    for name in names:
        try:
            values = getattr(trace, name)
        except AttributeError:
            values = None
        if values is not None:
            arrays.append(list(values))
    return arrays


ROW_ID = "row:"


def row_ids(positions: Any) -> list[str]:
    """A trace's `ids` naming the rows (positions in the chart's DataFrame) its points show."""
    return [f"{ROW_ID}{int(position)}" for position in positions]


def _named_rows(trace: Any) -> list[int] | None:
    ids = getattr(trace, "ids", None)
    if not ids or not all(isinstance(i, str) and i.startswith(ROW_ID) for i in ids):
        return None
    return [int(i.removeprefix(ROW_ID)) for i in ids]


def point_links(fig: Any, rows: list[dict[str, Any]], links: list[str | None]) -> list[list[str | None]]:
    """For each trace, the link of each point: the row whose values contain the point's
    coordinates (x and y, or a pie's label); failing that, a trace with one point per row is
    taken in row order. A figure is free to group rows into several traces (colour, facets).
    A figure whose points cannot be told apart by their coordinates (a two-level axis, the same
    week and count in two departments) names each point's row in the trace's `ids`: "row:<n>"."""
    row_values = [{_norm(v) for v in row.values()} for row in rows]
    result: list[list[str | None]] = []
    for trace in fig.data:
        named = _named_rows(trace)
        if named is not None:
            result.append([links[i] if 0 <= i < len(links) else None for i in named])
            continue
        arrays = _coordinates(trace)
        count = max((len(a) for a in arrays), default=0)
        found: list[str | None] = []
        matched = 0
        for index in range(count):
            keys = {_norm(a[index]) for a in arrays if index < len(a)} - {None}
            row = next((i for i, values in enumerate(row_values) if keys and keys <= values), None)
            matched += row is not None
            found.append(links[row] if row is not None else None)
        if matched < count and count == len(rows):
            found = list(links)
        result.append(found)
    return result


def script_json(text: str) -> str:
    """JSON safe inside a <script type="application/json"> element (no `</script>` breakout)."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def json_rows(df: pd.DataFrame, limit: int | None = None) -> tuple[list[str], list[list[Any]]]:
    """Header and rows with JSON-friendly values (dates as ISO text), for the browser's tables."""
    header, rows = records(df.head(limit) if limit else df, safe=False)
    plain = [
        [value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else value for value in row]
        for row in rows
    ]
    return header, plain
