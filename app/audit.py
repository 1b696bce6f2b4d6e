"""The audit log: every change and security event, who/when/where from, hash-chained.

Rows are collected during the transaction (the flush hook, bulk statements, `record_event`) and
appended to the chain just before the transaction commits, in that same transaction: the chain's
head row is locked only for that short moment, so concurrent writers append one after another
and the chain never forks, and a rolled-back change leaves no audit row.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import hashlib
import json
from typing import Any

from flask import current_app, has_request_context, request
from sqlalchemy import event, insert, select, update
from sqlalchemy.orm import Session, SessionTransaction

from app.extensions import db
from models.audit import AuditHead, AuditLog
from models.base import utcnow

__all__ = ["record_event", "GENESIS", "row_hash"]

#: prev_hash of the first row
GENESIS = "0" * 64
#: the session.info key of the rows waiting for the commit
PENDING = "crm_audit_pending"
#: rows per INSERT statement (one statement, many VALUES)
INSERT_BATCH = 1000


def record_event(
    action: str,
    *,
    entity: str | None = None,
    entity_id: object = None,
    details: dict | None = None,
    user_id: int | None = None,
    username: str | None = None,
) -> None:
    """Audit a non-data event (login, login_failed, export, key_rotation, ...).

    The row joins the caller's transaction on db.session and is written when the caller
    commits (nothing if it rolls back). Who and the IP default to the current request's user
    and remote address; outside a request they stay None unless given.
    """
    add_row(db.session, action, entity=entity, entity_id=entity_id, details=details,
            user_id=user_id, username=username)


def add_row(
    session: Session,
    action: str,
    *,
    entity: str | None = None,
    entity_id: object = None,
    changes: dict | None = None,
    details: dict | None = None,
    user_id: int | None = None,
    username: str | None = None,
) -> None:
    """Queue one audit row on the session's transaction."""
    who_id, who_name, ip = request_context()
    if user_id is None and username is None:
        user_id, username = who_id, who_name
    pending_rows(session).append(
        {
            "created_at": utcnow(),
            "user_id": user_id,
            "username": username,
            "ip": ip,
            "action": action,
            "entity": entity,
            "entity_id": None if entity_id is None else str(entity_id),
            "changes": jsonable(changes) if changes else None,
            "details": jsonable(details) if details else None,
        }
    )


def pending_rows(session: Session) -> list[dict[str, Any]]:
    return session.info.setdefault(PENDING, [])


def request_context() -> tuple[int | None, str | None, str | None]:
    """(user id, username, IP) of the current request; Nones outside one.

    request.remote_addr is the peer's address, or the client's when the app is wrapped in
    werkzeug's ProxyFix (configured for a reverse proxy): X-Forwarded-For is never read here
    directly, so a client cannot forge its address.
    """
    if not has_request_context():
        return None, None, None
    user = current_app.appbuilder.sm.current_user
    ip = request.remote_addr
    if user is None or not getattr(user, "is_authenticated", False):
        return None, None, ip
    return user.id, user.username, ip


def jsonable(value: Any) -> Any:
    """A JSON-safe copy: dates as ISO text, Decimals as text, enums by value, sets sorted."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted((jsonable(item) for item in value), key=str)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(bytes(value))} bytes>"
    return str(value)


def canonical(row: dict[str, Any]) -> str:
    """The hashed text of a row: its content as sorted, compact JSON (prev_hash included)."""
    created = row["created_at"]
    content = {
        "id": int(row["id"]),
        "created_at": created.isoformat() if isinstance(created, dt.datetime) else str(created),
        "user_id": row["user_id"],
        "username": row["username"],
        "ip": row["ip"],
        "action": row["action"],
        "entity": row["entity"],
        "entity_id": row["entity_id"],
        "changes": row["changes"],
        "details": row["details"],
        "prev_hash": row["prev_hash"],
    }
    return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def row_hash(row: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(row).encode("utf-8")).hexdigest()


def write_pending(session: Session) -> int:
    """Append the session's queued rows to the chain, in its transaction. Returns how many."""
    rows = session.info.get(PENDING)
    if not rows:
        return 0
    session.info[PENDING] = []
    connection = session.connection()
    head_table = AuditHead.__table__
    if connection.dialect.name == "sqlite":
        # take SQLite's write lock before reading the head (FOR UPDATE is a no-op there)
        connection.execute(
            update(head_table).where(head_table.c.id == 1).values(last_id=head_table.c.last_id)
        )
    head = connection.execute(
        select(head_table.c.last_id, head_table.c.last_hash).where(head_table.c.id == 1).with_for_update()
    ).first()
    if head is None:  # a database built without the migration's seed row
        connection.execute(insert(head_table).values(id=1, last_id=0, last_hash=GENESIS))
        last_id, last_hash = 0, GENESIS
    else:
        last_id, last_hash = int(head.last_id), head.last_hash
    for row in rows:
        last_id += 1
        row["id"] = last_id
        row["prev_hash"] = last_hash
        row["hash"] = last_hash = row_hash(row)
    table = AuditLog.__table__
    for start in range(0, len(rows), INSERT_BATCH):
        connection.execute(insert(table).values(rows[start : start + INSERT_BATCH]))
    connection.execute(
        update(head_table).where(head_table.c.id == 1).values(last_id=last_id, last_hash=last_hash)
    )
    return len(rows)


@event.listens_for(Session, "before_commit")
def _append_before_commit(session: Session) -> None:
    """Flush what is left (so its audit rows are queued too), then append them all."""
    if session.info.get(PENDING) or not session._is_clean():
        session.flush()
    write_pending(session)


@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    """Remember where a savepoint started, so rolling it back drops only its own rows."""
    if transaction.nested:
        session.info.setdefault(PENDING + "_marks", {})[id(transaction)] = len(pending_rows(session))


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    marks = session.info.get(PENDING + "_marks", {})
    if previous_transaction.nested:
        mark = marks.pop(id(previous_transaction), None)
        if mark is not None:
            del pending_rows(session)[mark:]
    elif previous_transaction.parent is None:
        session.info.pop(PENDING, None)
        session.info.pop(PENDING + "_marks", None)
