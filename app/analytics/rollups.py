"""Placeholder for issue 9's rollups."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session


def refresh_rollups(session: Session, now: dt.datetime) -> dict[str, int]:
    """Bring the dashboards' rollups up to date (nothing yet)."""
    return {}
