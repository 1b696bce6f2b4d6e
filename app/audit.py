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
from dataclasses import dataclass, field
from typing import Any

import click
from flask import current_app, has_request_context, request
from flask.cli import AppGroup
from flask_babel import gettext as _
from sqlalchemy import BindParameter, Integer, Text, event, func, insert, inspect, select, type_coerce, update
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

from app.extensions import db
from models.audit import AuditHead, AuditLog
from models.base import utcnow

__all__ = ["record_event", "GENESIS", "row_hash"]

#: prev_hash of the first row
GENESIS = "0" * 64
#: the session.info key of the rows waiting for the commit
PENDING = "crm_audit_pending"
#: the session.info key of the sensitive custom fields per table, for one transaction
SENSITIVE = "crm_audit_sensitive"
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


def record_account_action(action: str, user: Any, actor: Any | None) -> None:
    """Audit what an admin (or the CLI, when `actor` is None) did to a user's account: unlock,
    MFA reset, ..."""
    record_event(
        action,
        entity="ab_user",
        entity_id=user.id,
        details={"user": user.username, "by": getattr(actor, "username", None) or "cli"},
        username=None if actor is not None else "cli",
    )


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
    context: tuple[int | None, str | None, str | None] | None = None,
    safe: bool = False,
) -> None:
    """Queue one audit row on the session's transaction (`safe`: changes are JSON-ready)."""
    who_id, who_name, ip = context or request_context()
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
            "changes": (changes if safe else jsonable(changes)) if changes else None,
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
    # executemany of one cached statement: PostgreSQL (insertmanyvalues) and PyMySQL send it as
    # multi-row INSERTs, SQLite runs it in C; a multi-row .values() would be compiled each time
    table = AuditLog.__table__
    for start in range(0, len(rows), INSERT_BATCH):
        connection.execute(insert(table), rows[start : start + INSERT_BATCH])
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
        session.info.pop(SENSITIVE, None)


@event.listens_for(Session, "after_commit")
def _forget_definitions(session: Session) -> None:
    """Which custom fields are sensitive is read again in the next transaction."""
    session.info.pop(SENSITIVE, None)


# --- what is recorded ------------------------------------------------------------------------

#: Tables not audited, and why: the audit log itself; notifications and the mail outbox are
#: messages the system derives from audited changes (their delivery state is bookkeeping); the
#: custom-field definitions' version counter only tells caches to reload.
SKIPPED_TABLES = {
    "crm_audit_log",
    "crm_audit_head",
    "crm_notification",
    "crm_outbox_message",
    "crm_custom_field_version",
}

#: Columns whose changes alone are noise: FAB's login bookkeeping (the login and login_failed
#: events cover it) and the updated at/by stamps (the audit row itself says who and when).
#: Other modules add theirs with ignore_columns().
IGNORED_COLUMNS: dict[str, set[str]] = {
    "*": {"updated_at", "updated_by_id", "changed_on", "changed_by_fk"},
    "ab_user": {"last_login", "login_count", "fail_login_count"},
    "crm_user_mfa": {"last_step"},  # the TOTP replay guard, moved at every login
    "crm_api_token": {"last_used_at", "last_used_ip"},  # a token's last use, once a minute
}

#: Secrets, recorded as changed ("***") but never with their value. Other modules add theirs with
#: redact_columns(); a column whose type has `audit_redact = True` (the encrypted-column type)
#: or whose name looks secret is redacted too.
REDACTED_COLUMNS: dict[str, set[str]] = {
    "ab_user": {"password"},
    "ab_api_key": {"key_hash", "lookup_hash"},
    "ab_register_user": {"password", "registration_hash"},
}
_SECRET_WORDS = ("password", "secret", "totp", "otp_", "recovery", "_hash", "_bidx", "blind", "hmac")
REDACTED = "***"

#: Derived columns, recomputed in bulk from other audited data (purchase frequency from orders
#: and won deals, locality from the customer's city): a nightly run may touch a million rows, and
#: what it did follows from audited changes, so a bulk statement that sets only these is recorded
#: as one `recompute` row (table, columns, rows changed) instead of one row per customer. A user
#: editing such a column through a form is still audited field by field.
DERIVED_COLUMNS: dict[str, set[str]] = {
    # the classification job's classes; the pool's next recycle date, which the daily run sets
    # for every owned customer from the rules and the audited follow-ups and opportunities (the
    # recycling itself, owner -> pool, is audited row by row and recorded as a PoolMove)
    "crm_customer": {"purchase_frequency", "locality", "recycle_at"},
}

#: Many-to-many collections recorded on one side only (the other is FAB's backref)
SKIPPED_COLLECTIONS = {("ab_role", "user"), ("ab_permission_view", "role")}

#: app.services.ACTOR_KEY (not imported: app.services imports the models, which import app.crypto)
ACTOR_KEY = "keguan.actor"
#: session.info key: set to True to stop auditing on that session (data generators only)
DISABLED = "crm_audit_disabled"


def ignore_columns(table: str, *columns: str) -> None:
    """Declare columns of `table` whose changes are bookkeeping, not worth an audit row."""
    IGNORED_COLUMNS.setdefault(table, set()).update(columns)


def redact_columns(table: str, *columns: str) -> None:
    """Declare secret columns of `table`: their changes are recorded as "***"."""
    REDACTED_COLUMNS.setdefault(table, set()).update(columns)
    _SECRET_CACHE.clear()


def entity_of(table_name: str) -> str:
    """The entity name audit rows carry: the table without the crm_ prefix (customer, ab_user)."""
    return table_name.removeprefix("crm_")


def _is_secret(table: Any, column: Any) -> bool:
    key = (table.name, column.name)
    found = _SECRET_CACHE.get(key)
    if found is None:
        found = _SECRET_CACHE[key] = _looks_secret(table, column)
    return found


#: (table, column) -> secret? (cleared when redact_columns() adds some)
_SECRET_CACHE: dict[tuple[str, str], bool] = {}


def _looks_secret(table: Any, column: Any) -> bool:
    if column.name in REDACTED_COLUMNS.get(table.name, ()):
        return True
    if getattr(column.type, "audit_redact", False) or "Encrypt" in type(column.type).__name__:
        return True
    name = column.name.lower()
    return any(word in name for word in _SECRET_WORDS)


def _ignored(table_name: str) -> set[str]:
    return IGNORED_COLUMNS["*"] | IGNORED_COLUMNS.get(table_name, set())


def _sensitive_custom_fields(session: Session, table_name: str) -> set[str]:
    """API names of the custom fields marked sensitive (stored encrypted) for this entity."""
    cache = session.info.setdefault(SENSITIVE, {})
    if table_name not in cache:
        names: set[str] = set()
        try:
            from customfields.definitions import CustomField  # noqa: PLC0415  (models import cycle)

            if hasattr(CustomField, "sensitive"):
                with session.no_autoflush:
                    names = set(
                        session.connection().execute(
                            select(CustomField.api_name).where(
                                CustomField.entity == entity_of(table_name),
                                CustomField.sensitive.is_(True),
                            )
                        ).scalars()
                    )
        except Exception:  # noqa: BLE001  (an unknown entity: no sensitive fields)
            names = set()
        cache[table_name] = names
    return cache[table_name]


def _value(table: Any, column: Any, value: Any) -> Any:
    if value is not None and _is_secret(table, column):
        return REDACTED
    return jsonable(value)


def _custom_diff(session: Session, table_name: str, old: Any, new: Any) -> dict[str, list[Any]]:
    """A custom-field change per key: custom.<api name> -> [old, new]."""
    old, new = old or {}, new or {}
    sensitive = _sensitive_custom_fields(session, table_name) if (old or new) else set()
    changes = {}
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if before != after:
            if key in sensitive:
                before = REDACTED if before is not None else None
                after = REDACTED if after is not None else None
            changes[f"custom.{key}"] = [jsonable(before), jsonable(after)]
    return changes


# --- the flush hook: every ORM insert, update and delete ---------------------------------------


def _actor(session: Session) -> tuple[int | None, str | None]:
    """Who, outside a request: the actor a service is acting for (CLI, worker), if any."""
    actor = session.info.get(ACTOR_KEY)
    return (actor.id, actor.username) if actor is not None else (None, None)


def _table_of(mapper: Any) -> Any:
    return mapper.local_table


def _audited(mapper: Any) -> bool:
    table = _table_of(mapper)
    return getattr(table, "name", None) is not None and table.name not in SKIPPED_TABLES


def _entity_id(mapper: Any, state: Any) -> str | None:
    identity = state.identity or mapper.primary_key_from_instance(state.obj())
    if identity is None or all(part is None for part in identity):
        return None
    return ",".join(str(part) for part in identity)


def _collection_changes(mapper: Any, state: Any) -> dict[str, list[Any]]:
    """Many-to-many collections (a user's roles, a role's permissions): [old, new] names."""
    changes = {}
    for rel in mapper.relationships:
        if rel.secondary is None or rel.viewonly or (mapper.local_table.name, rel.key) in SKIPPED_COLLECTIONS:
            continue
        history = state.attrs[rel.key].history
        if not (history.added or history.deleted):
            continue
        unchanged = [str(item) for item in history.unchanged or ()]
        old = sorted(unchanged + [str(item) for item in history.deleted or ()])
        new = sorted(unchanged + [str(item) for item in history.added or ()])
        if old != new:
            changes[rel.key] = [old, new]
    return changes


def _row_changes(session: Session, mapper: Any, state: Any, action: str) -> dict[str, list[Any]]:
    table = _table_of(mapper)
    ignored = _ignored(table.name) if action == "update" else set()
    known = session.info.get(OLD_VALUES, {}).pop(id(state), {})
    changes: dict[str, list[Any]] = {}
    for attr in mapper.column_attrs:
        if attr.key in ignored or len(attr.columns) != 1:
            continue
        column = attr.columns[0]
        if getattr(column, "table", None) is not table:
            continue
        if action == "update":
            history = state.attrs[attr.key].history
            if not history.has_changes():
                continue
            old = history.deleted[0] if history.deleted else known.get(attr.key)
            new = history.added[0] if history.added else None
        else:
            value = state.dict.get(attr.key)
            old, new = (None, value) if action == "insert" else (value, None)
        if old == new and action == "update":
            continue
        if attr.key == "custom" and isinstance(old or new or {}, dict):
            changes.update(_custom_diff(session, table.name, old, new))
        elif old is not None or new is not None:
            changes[attr.key] = [_value(table, column, old), _value(table, column, new)]
    changes.update(_collection_changes(mapper, state))
    return changes


@event.listens_for(Session, "before_flush")
def _refuse_audit_edits(session: Session, flush_context: Any, instances: Any) -> None:
    """Audit rows are written by this module only and never changed through the ORM."""
    for item in list(session.new) + list(session.dirty) + list(session.deleted):
        if isinstance(item, AuditLog | AuditHead):
            raise AuditLogReadOnly()


#: session.info key: old values read just before the flush, for attributes set while expired
OLD_VALUES = "crm_audit_old_values"


def init_app(app: Any) -> None:
    """Hooks that must run after every other before_flush (services set values there)."""
    if not event.contains(Session, "before_flush", _read_unknown_old_values):
        event.listen(Session, "before_flush", _read_unknown_old_values)


def _read_unknown_old_values(session: Session, flush_context: Any, instances: Any) -> None:
    """An attribute set on an expired record (after a commit) has no old value in its history:
    read those from the database while it still holds them, one SELECT per table."""
    if session.info.get(DISABLED):
        return
    wanted: dict[Any, dict[Any, tuple[Any, list[str]]]] = {}
    for item in session.dirty:
        state = inspect(item)
        mapper = state.mapper
        if state.identity is None or len(mapper.primary_key) != 1 or not _audited(mapper):
            continue
        keys = []
        for attr in mapper.column_attrs:
            history = state.attrs[attr.key].history
            if history.added and not history.deleted and not history.unchanged:
                keys.append(attr.key)
        if keys:
            wanted.setdefault(mapper, {})[state.identity[0]] = (state, keys)
    found = session.info.setdefault(OLD_VALUES, {})
    for mapper, items in wanted.items():
        names = sorted({key for _state, keys in items.values() for key in keys})
        columns = [mapper.get_property(name).columns[0].label(name) for name in names]
        (key_column,) = mapper.primary_key
        rows = _read_by_ids(session, [key_column.label("pk__"), *columns], key_column, list(items))
        for row in rows:
            state, keys = items[row["pk__"]]
            found[id(state)] = {key: row[key] for key in keys}


@event.listens_for(Session, "after_flush")
def _record_flush(session: Session, flush_context: Any) -> None:
    """One audit row per inserted, updated or deleted record of this flush.

    after_flush (not before_flush): new records have their ids here, and the attribute history
    still holds the old values.
    """
    if session.info.get(DISABLED):
        return
    rows = []
    for action, items in (("insert", session.new), ("update", session.dirty), ("delete", session.deleted)):
        for item in items:
            state = inspect(item)
            mapper = state.mapper
            if not _audited(mapper):
                continue
            changes = _row_changes(session, mapper, state, action)
            if action == "update" and not changes:
                continue
            rows.append((action, entity_of(_table_of(mapper).name), _entity_id(mapper, state), changes))
    session.info.pop(OLD_VALUES, None)
    if rows:
        _queue_many(session, rows)


class AuditLogReadOnly(Exception):
    """Raised on an attempt to change or delete audit rows through the application."""

    def __init__(self) -> None:
        super().__init__("审计日志只能追加,不能修改或删除 (the audit log is append-only)")


# --- bulk statements: session.execute(update(...) / delete(...) / insert(...)) ---------------

#: ids per IN (...) when reading the rows a bulk statement touched
ID_CHUNK = 900


@event.listens_for(Session, "do_orm_execute")
def _record_bulk(state: ORMExecuteState) -> Any:
    """Record what an UPDATE, DELETE or INSERT run through the session changed, row by row.

    Statements sent through session.connection() directly are not seen here: the application
    does that only to rewrite computed custom-field formulas after a definition change (the
    definition change itself is audited).
    """
    if not (state.is_update or state.is_delete or state.is_insert):
        return None
    table = getattr(state.statement, "table", None)
    name = getattr(table, "name", None)
    if name in ("crm_audit_log", "crm_audit_head"):
        raise AuditLogReadOnly()
    session = state.session
    if name is None or name in SKIPPED_TABLES or session.info.get(DISABLED):
        return None
    table = AuditLog.metadata.tables.get(name, table)  # the plain Table, not an annotated copy
    if state.is_orm_statement and session.autoflush and state.execution_options.get("autoflush", True):
        # SQLAlchemy runs this hook before its own autoflush: flush now, so that the rows read
        # before the statement are the ones it will see
        session.flush()
    if state.is_update:
        return _bulk_update(state, table)
    if state.is_delete:
        return _bulk_delete(state, table)
    return _bulk_insert(state, table)


def _key_columns(table: Any) -> list[Any]:
    return list(table.primary_key.columns)


def _id_text(row: Any, keys: list[Any]) -> str:
    return ",".join(str(row[key.name]) for key in keys)


def _read(session: Session, query: Any, params: dict | None = None) -> list[Any]:
    with session.no_autoflush:
        return list(session.connection().execute(query, params or {}).mappings())


def _read_by_ids(session: Session, columns: list[Any], key: Any, ids: list[Any]) -> list[Any]:
    rows = []
    for start in range(0, len(ids), ID_CHUNK):
        rows += _read(session, select(*columns).where(key.in_(ids[start : start + ID_CHUNK])))
    return rows


def _set_columns(table: Any, values: dict[Any, Any]) -> dict[Any, Any]:
    """The UPDATE's SET clause as {Column: value expression}."""
    result = {}
    for key, value in values.items():
        column = key if hasattr(key, "table") else table.c[str(key)]
        result[table.c[column.name]] = value
    return result


def _literal(value: Any) -> tuple[bool, Any]:
    if isinstance(value, BindParameter) and value.callable is None and not value.expanding:
        return True, value.value
    if value is None or isinstance(value, bool | int | float | str | decimal.Decimal | dt.date):
        return True, value
    return False, None


def _queue_many(session: Session, rows: list[tuple[str, str, str | None, dict]]) -> None:
    user_id, username = _actor(session) if not has_request_context() else (None, None)
    context = request_context()
    for action, entity, entity_id, changes in rows:
        add_row(session, action, entity=entity, entity_id=entity_id, changes=changes,
                user_id=user_id, username=username, context=context, safe=True)
    if len(pending_rows(session)) >= EARLY_WRITE:
        write_pending(session)  # memory stays bounded in a very large transaction


#: queued rows beyond which they are appended at once instead of at the commit
EARLY_WRITE = 20_000


def _bulk_update(state: ORMExecuteState, table: Any) -> Any:
    session, statement = state.session, state.statement
    keys = _key_columns(table)
    params = state.parameters
    if isinstance(params, list) or len(keys) != 1:
        return _bulk_by_parameters(state, table)
    (key,) = keys
    setting = _set_columns(table, statement._values or {})
    ignored = _ignored(table.name)
    columns = [column for column in setting if column.name not in ignored]
    if not columns:
        return None
    if {column.name for column in columns} <= DERIVED_COLUMNS.get(table.name, set()):
        result = state.invoke_statement()
        _queue_many(session, [("recompute", entity_of(table.name), None, {})])
        pending_rows(session)[-1]["details"] = {
            "columns": sorted(column.name for column in columns),
            "rows": result.rowcount,
        }
        return result
    query = select(key, *columns)
    if statement.whereclause is not None:
        query = query.where(statement.whereclause)
    before = {row[key.name]: row for row in _read(session, query, params)}
    result = state.invoke_statement()
    if not before:
        return result
    literals = {column: _literal(setting[column]) for column in columns}
    if all(known for known, _ in literals.values()) and result.rowcount == len(before):
        after = {record_id: {c.name: literals[c][1] for c in columns} for record_id in before}
    else:
        after = {row[key.name]: row for row in _read_by_ids(session, [key, *columns], key, list(before))}
    rows = []
    for record_id, old in before.items():
        new = after.get(record_id)
        if new is None:
            continue
        changes = _diff(session, table, columns, old, new)
        if changes:
            rows.append(("update", entity_of(table.name), str(record_id), changes))
    _queue_many(session, rows)
    return result


def _diff(session: Session, table: Any, columns: list[Any], old: Any, new: Any) -> dict[str, list[Any]]:
    changes: dict[str, list[Any]] = {}
    for column in columns:
        before, after = old[column.name], new[column.name]
        if before == after:
            continue
        if column.name == "custom":
            changes.update(_custom_diff(session, table.name, before, after))
        else:
            changes[column.name] = [_value(table, column, before), _value(table, column, after)]
    return changes


def _bulk_by_parameters(state: ORMExecuteState, table: Any) -> Any:
    """An UPDATE run once per parameter set (by primary key, or with bound parameters in its
    WHERE), or on a table without a single-column key: rows read before and after, per set."""
    session, statement = state.session, state.statement
    keys = _key_columns(table)
    params = state.parameters if isinstance(state.parameters, list) else [state.parameters or {}]
    ignored = _ignored(table.name)
    columns = [column for column in table.columns if column.name not in ignored]
    where = statement.whereclause
    if where is None and len(keys) == 1:  # ORM bulk UPDATE by primary key
        (key,) = keys
        names = {key.name, key.key}
        ids = [next(value for name, value in param.items() if name in names) for param in params]
        befores = _read_by_ids(session, [*table.columns], key, ids)
        result = state.invoke_statement()
        afters = {row[key.name]: row for row in _read_by_ids(session, [*table.columns], key, ids)}
        pairs = [(row, afters.get(row[key.name])) for row in befores]
    else:
        query = select(*table.columns)
        if where is not None:
            query = query.where(where)
        befores = [row for param in params for row in _read(session, query, param)]
        result = state.invoke_statement()
        (key, *_rest) = keys
        afters = {
            _id_text(row, keys): row
            for row in _read_by_ids(session, [*table.columns], key, sorted({r[key.name] for r in befores}))
        }
        pairs = [(row, afters.get(_id_text(row, keys))) for row in befores]
    rows = []
    for old, new in pairs:
        if new is None:
            continue
        changes = _diff(session, table, columns, old, new)
        if changes:
            rows.append(("update", entity_of(table.name), _id_text(old, keys), changes))
    _queue_many(session, rows)
    return result


def _bulk_delete(state: ORMExecuteState, table: Any) -> Any:
    session, statement = state.session, state.statement
    keys = _key_columns(table)
    query = select(*table.columns)
    if statement.whereclause is not None:
        query = query.where(statement.whereclause)
    params = state.parameters if isinstance(state.parameters, list) else [state.parameters or {}]
    before = [row for param in params for row in _read(session, query, param)]
    result = state.invoke_statement()
    if len(keys) == 1 and result.rowcount != len(before):  # keep only the rows really gone
        (key,) = keys
        left = {row[key.name] for row in _read_by_ids(session, [key], key, [r[key.name] for r in before])}
        before = [row for row in before if row[key.name] not in left]
    rows = []
    for old in before:
        changes = {
            column.name: [_value(table, column, old[column.name]), None]
            for column in table.columns
            if old[column.name] is not None and column.name != "custom"
        }
        if "custom" in table.c:
            changes.update(_custom_diff(session, table.name, old["custom"], None))
        rows.append(("delete", entity_of(table.name), _id_text(old, keys), changes))
    _queue_many(session, rows)
    return result


def _bulk_insert(state: ORMExecuteState, table: Any) -> Any:
    """INSERT ... VALUES or INSERT ... SELECT: the new rows are those above the highest key
    read just before (a table without one integer key gets one summary row)."""
    session = state.session
    keys = _key_columns(table)
    if len(keys) != 1 or not isinstance(keys[0].type, Integer):
        result = state.invoke_statement()
        _queue_many(session, [("insert", entity_of(table.name), None, {})])
        pending_rows(session)[-1]["details"] = {"rows": result.rowcount}
        return result
    (key,) = keys
    highest = _read(session, select(func.max(key).label("top")))[0]["top"] or 0
    result = state.invoke_statement()
    new_rows = []
    last = highest
    while True:  # in pages: an INSERT ... SELECT may add many thousands
        page = _read(session, select(*table.columns).where(key > last).order_by(key).limit(ID_CHUNK))
        if not page:
            break
        new_rows += page
        last = page[-1][key.name]
    rows = []
    for new in new_rows:
        changes = {
            column.name: [None, _value(table, column, new[column.name])]
            for column in table.columns
            if new[column.name] is not None and column.name != "custom"
        }
        if "custom" in table.c:
            changes.update(_custom_diff(session, table.name, None, new["custom"]))
        rows.append(("insert", entity_of(table.name), str(new[key.name]), changes))
    _queue_many(session, rows)
    return result


# --- verification -----------------------------------------------------------------------------


_JSON = json.JSONDecoder()


@dataclass
class VerifyReport:
    """What `verify` found: rows checked, the last id, and the problems (first ones only)."""

    checked: int = 0
    last_id: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(
    session: Session, *, batch: int = 5000, from_id: int | None = None, limit: int = 20
) -> VerifyReport:
    """Walk the chain in id order, `batch` rows at a time (memory stays bounded), and report:
    an edited row (its hash no longer matches its content), deleted rows (a gap in the ids, or a
    prev_hash that is not the previous row's hash), rows removed at the end (the head says more).

    `from_id` starts at a later row and trusts its prev_hash: after a DBA purged older rows.
    """
    report = VerifyReport()
    table = AuditLog.__table__
    previous_id: int | None = None
    previous_hash: str | None = None
    last = (from_id - 1) if from_id else 0
    connection = session.connection()
    # JSON as text, parsed here without json.loads' whitespace regexes (a third of the time);
    # PostgreSQL's driver hands JSONB over parsed anyway
    raw = {"changes", "details"} | ({"created_at"} if connection.dialect.name == "sqlite" else set())
    columns = [type_coerce(c, Text).label(c.name) if c.name in raw else c for c in table.columns]
    while len(report.problems) < limit:
        rows = connection.execute(
            select(*columns).where(table.c.id > last).order_by(table.c.id).limit(batch)
        ).mappings().all()
        if not rows:
            break
        for found in rows:
            row = dict(found)
            if isinstance(row["created_at"], str):
                row["created_at"] = dt.datetime.fromisoformat(row["created_at"])
            for name in ("changes", "details"):
                if isinstance(row[name], str):
                    row[name] = _JSON.raw_decode(row[name])[0]
            row_id = int(row["id"])
            if previous_id is None:
                if from_id is None and (row_id != 1 or row["prev_hash"] != GENESIS):
                    report.problems.append(_("记录 #%(id)s 之前的记录被删除", id=row_id))
            elif row_id != previous_id + 1:
                report.problems.append(_("记录 #%(a)s 与 #%(b)s 之间的记录被删除", a=previous_id, b=row_id))
            elif row["prev_hash"] != previous_hash:
                report.problems.append(
                    _("记录 #%(b)s 的前一哈希与 #%(a)s 不符: #%(a)s 被改写", a=previous_id, b=row_id)
                )
            if row_hash(row) != row["hash"]:
                report.problems.append(_("记录 #%(id)s 被修改 (哈希不符)", id=row_id))
            previous_id, previous_hash = row_id, row["hash"]
            report.checked += 1
        last = previous_id
    report.last_id = previous_id if previous_id is not None else max(last, 0)
    head = connection.execute(
        select(AuditHead.__table__.c.last_id, AuditHead.__table__.c.last_hash)
    ).first()
    if head is not None and len(report.problems) < limit:
        if int(head.last_id) > report.last_id:
            report.problems.append(
                _("记录 #%(id)s 之后的记录被删除 (链头为 #%(head)s)", id=report.last_id, head=head.last_id)
            )
        elif int(head.last_id) == report.last_id and previous_hash and head.last_hash != previous_hash:
            report.problems.append(_("记录 #%(id)s 被改写 (与链头不符)", id=report.last_id))
    del report.problems[limit:]
    return report


# --- `flask crm audit ...` --------------------------------------------------------------------

audit_cli = AppGroup("audit", help="The audit log: verify the hash chain, show recent rows.")


@audit_cli.command("verify")
@click.option("--from-id", type=int, default=None, help="Start at this row (after a purge of older rows).")
@click.option("--batch", type=int, default=5000, show_default=True, help="Rows read per query.")
def verify_command(from_id: int | None, batch: int) -> None:
    """Check the chain; exit code 1 and the first broken rows when it was tampered with."""
    report = verify(db.session, batch=max(batch, 1), from_id=from_id)
    db.session.rollback()
    if report.ok:
        click.echo(_("审计链完好: 已检查 %(n)s 条, 最后一条 #%(id)s", n=report.checked, id=report.last_id))
        return
    for problem in report.problems:
        click.echo(problem, err=True)
    click.echo(_("审计链被篡改: 已检查 %(n)s 条", n=report.checked), err=True)
    raise SystemExit(1)


@audit_cli.command("tail")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--entity", default=None, help="e.g. customer, ab_user")
@click.option("--entity-id", default=None)
def tail_command(limit: int, entity: str | None, entity_id: str | None) -> None:
    """The newest rows, one line each."""
    query = select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)
    if entity:
        query = query.where(AuditLog.entity == entity)
    if entity_id:
        query = query.where(AuditLog.entity_id == entity_id)
    for row in db.session.scalars(query):
        click.echo(
            f"#{row.id} {row.created_at:%Y-%m-%d %H:%M:%S} {row.username or '-'} {row.ip or '-'} "
            f"{row.action} {row.entity or ''} {row.entity_id or ''} "
            f"{json.dumps(row.changes or row.details or {}, ensure_ascii=False)[:200]}"
        )


# --- reading ----------------------------------------------------------------------------------


def history_clause(session: Session, entity: str, entity_id: object) -> Any:
    """The audit rows of one record, from its latest insert on: SQLite reuses the id of a
    deleted last row, and the new record must not show the old one's history."""
    key = str(entity_id)
    born = session.scalar(
        select(func.max(AuditLog.id)).where(
            AuditLog.entity == entity, AuditLog.entity_id == key, AuditLog.action == "insert"
        )
    )
    clause = (AuditLog.entity == entity) & (AuditLog.entity_id == key)
    return clause & (AuditLog.id >= born) if born is not None else clause


def record_export(
    entity: str, *, rows: int, filters: dict[str, Any], columns: list[str], kind: str = "csv"
) -> None:
    """The `export` event: what was exported (entity, filters, columns, row count); committed at
    once, since an export writes nothing else and the download streams afterwards."""
    record_event(
        "export",
        entity=entity,
        details={"format": kind, "rows": rows, "filters": filters, "columns": columns},
    )
    db.session.commit()
