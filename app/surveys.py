"""Placeholder for issue 8's satisfaction surveys; app.service calls on_resolved()."""

from __future__ import annotations

from sqlalchemy.orm import Session

from models.service import Survey, Ticket


def on_resolved(session: Session, ticket: Ticket) -> Survey | None:
    """A ticket was resolved: send its survey (nothing yet)."""
    return None
