"""The company's clock: every moment is stored as naive UTC; people type and read them in the
company's time zone (BABEL_DEFAULT_TIMEZONE, set by CRM_TIMEZONE; Asia/Shanghai by default)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context


def company_zone() -> ZoneInfo:
    name = current_app.config.get("BABEL_DEFAULT_TIMEZONE", "UTC") if has_app_context() else "UTC"
    return ZoneInfo(name)


def to_local(moment: dt.datetime) -> dt.datetime:
    """A stored (naive UTC) moment as the company's wall-clock time (naive)."""
    return moment.replace(tzinfo=dt.UTC).astimezone(company_zone()).replace(tzinfo=None)


def from_local(wall_clock: dt.datetime) -> dt.datetime:
    """A wall-clock time typed in the company's time zone as the moment to store (naive UTC)."""
    return wall_clock.replace(tzinfo=company_zone()).astimezone(dt.UTC).replace(tzinfo=None)
