"""The company's clock: every moment is stored as naive UTC; people type and read them in the
company's time zone (BABEL_DEFAULT_TIMEZONE, set by CRM_TIMEZONE; Asia/Shanghai by default)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context

#: config.py's default, also used outside an application (a script, a unit of the engine)
DEFAULT_ZONE = "Asia/Shanghai"


def company_zone() -> ZoneInfo:
    if not has_app_context():
        return ZoneInfo(DEFAULT_ZONE)
    return ZoneInfo(current_app.config.get("BABEL_DEFAULT_TIMEZONE", DEFAULT_ZONE))


def local_today() -> dt.date:
    """Today in the company's time zone: plan dates, targets' periods and "until" dates are
    local days."""
    return dt.datetime.now(company_zone()).date()


def to_local(moment: dt.datetime) -> dt.datetime:
    """A stored (naive UTC) moment as the company's wall-clock time (naive)."""
    return moment.replace(tzinfo=dt.UTC).astimezone(company_zone()).replace(tzinfo=None)


def from_local(wall_clock: dt.datetime) -> dt.datetime:
    """A wall-clock time typed in the company's time zone as the moment to store (naive UTC)."""
    return wall_clock.replace(tzinfo=company_zone()).astimezone(dt.UTC).replace(tzinfo=None)
