"""Placeholder for issue 9's scheduled dashboard reports."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session


def send_due_reports(session: Session, now: dt.datetime) -> dict[str, int]:
    """Mail the dashboard subscriptions that are due (none yet)."""
    return {"sent": 0}
