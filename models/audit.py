"""The audit log (审计日志): one row per change or security event, chained by SHA-256.

Rows are written only by app/audit.py (the session hook and `record_event`), never edited:
the ORM refuses to update or delete them and, on PostgreSQL, a trigger refuses it too.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, Integer, String
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Model, utcnow

#: microseconds on MySQL/MariaDB too (their DATETIME drops them by default), so the stored
#: time is the hashed time
AuditTime = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
AuditJSON = JSON().with_variant(JSONB(), "postgresql")
#: BIGINT where the table may grow past 2^31 rows; SQLite's rowid alias must be INTEGER
AuditId = BigInteger().with_variant(Integer(), "sqlite")


class AuditLog(Model):
    """审计日志: who did what to which record, when and from where; hash-chained.

    user_id carries no foreign key on purpose: deleting a user must not touch its audit rows
    (that would break the chain), and the username is kept beside it.
    """

    __tablename__ = "crm_audit_log"

    id: Mapped[int] = mapped_column(AuditId, primary_key=True, autoincrement=True)
    created_at: Mapped[dt.datetime] = mapped_column(AuditTime, default=utcnow, nullable=False)
    user_id: Mapped[int | None] = mapped_column(Integer)
    username: Mapped[str | None] = mapped_column(String(256))
    ip: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40), nullable=False)
    entity: Mapped[str | None] = mapped_column(String(64))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    changes: Mapped[dict[str, Any] | None] = mapped_column(AuditJSON)
    details: Mapped[dict[str, Any] | None] = mapped_column(AuditJSON)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)

    __table_args__ = (
        Index("ix_audit_entity", "entity", "entity_id", "id"),
        Index("ix_audit_user", "user_id", "id"),
        Index("ix_audit_created", "created_at"),
        Index("ix_audit_action", "action", "id"),
    )

    def __str__(self) -> str:
        return f"#{self.id} {self.action} {self.entity or ''} {self.entity_id or ''}".strip()


class AuditHead(Model):
    """The chain's head: one row (id 1) with the last row's id and hash.

    Appending locks it (SELECT ... FOR UPDATE), so concurrent writers append one after the other
    and the chain cannot fork.
    """

    __tablename__ = "crm_audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(AuditId, nullable=False, default=0)
    last_hash: Mapped[str] = mapped_column(String(64), nullable=False)
