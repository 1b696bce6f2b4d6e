"""Placeholder for issue 8's SLA module (business hours, targets, the sweep)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session


def sla_sweep(session: Session, now: dt.datetime) -> dict[str, int]:
    """Mark open tickets at risk or breached (nothing yet)."""
    return {"at_risk": 0, "breached": 0}
