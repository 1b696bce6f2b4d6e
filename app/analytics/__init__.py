"""Analytics (issue 9): the dashboards' charts, aggregated in SQL within the data scope.

A chart is registered once with its data function and its figure; the dashboard views, the CSV
and Excel export, the printable page and the mailed report all go through this registry, so a
chart's numbers are computed in one place. Data functions aggregate in the database (from the
rollups where they exist, app/analytics/rollups.py), apply the acting user's data scope
(app.access) and return a small pandas DataFrame; figure functions draw it with plotly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from plotly.graph_objects import Figure
from sqlalchemy.orm import Session

from models.security import CrmUser

DASHBOARDS = ("sales", "customers", "service")


@dataclass(frozen=True)
class Filters:
    """What the user chose on a dashboard; every data function honours all of them it can."""

    date_from: dt.date | None = None
    date_to: dt.date | None = None  # inclusive
    owner_id: int | None = None
    department_id: int | None = None  # the department and its sub-departments
    pipeline_id: int | None = None
    #: select-type custom fields of customers as filters: api_name -> chosen choice code
    custom: dict[str, str] = field(default_factory=dict)
    #: a select-type custom field of customers chosen as an extra dimension (api_name), or None
    dimension: str | None = None


@dataclass(frozen=True)
class Chart:
    """One chart of a dashboard."""

    key: str  # unique within its dashboard; the URL /dashboards/<dashboard>/data/<key>.csv
    dashboard: str  # one of DASHBOARDS
    title: Any  # a lazy translated string
    data: Callable[[Session, CrmUser, Filters], pd.DataFrame]
    #: draws the DataFrame; None for a table shown as such
    figure: Callable[[pd.DataFrame, Filters], Figure] | None = None
    #: the list a click on a point opens: (row of the DataFrame, filters) -> URL or None
    link: Callable[[dict[str, Any], Filters], str | None] | None = None
    #: position on the dashboard (ascending) and width in a 12-column grid
    position: int = 0
    width: int = 6
    description: Any = None


CHARTS: dict[str, dict[str, Chart]] = {name: {} for name in DASHBOARDS}


def register(chart: Chart) -> Chart:
    """Add (or replace, by key) a chart of a dashboard."""
    CHARTS[chart.dashboard][chart.key] = chart
    return chart


def charts_of(dashboard: str) -> list[Chart]:
    """A dashboard's charts in their order."""
    return sorted(CHARTS[dashboard].values(), key=lambda chart: (chart.position, chart.key))
