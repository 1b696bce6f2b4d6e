"""The audit log: changes and events recorded in the same transaction, hash-chained."""

from __future__ import annotations

from sqlalchemy import select

from app.audit import record_event
from app.extensions import db
from models.audit import AuditLog


def last_rows(count: int = 5) -> list[AuditLog]:
    return list(db.session.scalars(select(AuditLog).order_by(AuditLog.id.desc()).limit(count)))


def test_record_event_joins_the_callers_transaction() -> None:
    record_event("login_failed", details={"reason": "bad password"}, username="nobody")
    db.session.rollback()
    assert not any(row.username == "nobody" for row in last_rows())
    record_event("login_failed", details={"reason": "bad password"}, username="nobody")
    db.session.commit()
    row = last_rows(1)[0]
    assert (row.action, row.username, row.details) == ("login_failed", "nobody", {"reason": "bad password"})
    assert row.user_id is None and row.ip is None
