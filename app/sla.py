"""Placeholder for issue 8's SLA module (business hours, targets, the sweep).

app.service calls the three hooks below; the SLA work fills them in.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from models.service import Ticket


def apply_targets(session: Session, ticket: Ticket, now: dt.datetime) -> None:
    """Set the ticket's SLA policy and due moments (a new ticket, or its priority changed)."""


def on_status_change(session: Session, ticket: Ticket, old_status: str | None, now: dt.datetime) -> None:
    """React to a status change (pause/resume the clock, resolution met or breached)."""


def on_first_response(session: Session, ticket: Ticket, now: dt.datetime) -> None:
    """The first reply to the customer: the first-response target met or breached."""


def sla_sweep(session: Session, now: dt.datetime) -> dict[str, int]:
    """Mark open tickets at risk or breached (nothing yet)."""
    return {"at_risk": 0, "breached": 0}
