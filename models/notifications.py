"""Notifications: in-app messages to one user (我的提醒) and the outbox of e-mail waiting for SMTP.

Both are written by app.notifications (the background worker, mostly). The outbox is a table so
that no mail is lost while the mail server is down, and `dedup_key` is unique so that the same
reminder can never be queued twice, whoever tries and however often.
"""

from __future__ import annotations

import datetime as dt

from flask_babel import lazy_gettext
from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Choices, Model, utcnow
from models.security import CrmUser

OUTBOX_STATUSES = Choices(
    ("pending", "待发送"),
    ("sending", "发送中"),
    ("sent", "已发送"),
    ("failed", "发送失败"),
)


class Notification(Model):
    """An in-app message to one user, e.g. a task reminder, with a link to the record."""

    __tablename__ = "crm_notification"
    __entity_label__ = lazy_gettext("提醒")

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    body: Mapped[str | None] = mapped_column(Text)
    #: the URL path of the record (e.g. /taskview/show/12), relative to the site
    link: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    read_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    user: Mapped[CrmUser] = relationship(CrmUser)

    __table_args__ = (
        # my notifications, unread first: user_id = ? AND read_at IS NULL
        Index("ix_notification_user_read", "user_id", "read_at"),
    )

    def __str__(self) -> str:
        return self.title


class OutboxMessage(Model):
    """An e-mail queued for SMTP. The worker claims it (status sending), sends it, and marks it
    sent only once the server accepted it; failures are retried with backoff, then marked failed."""

    __tablename__ = "crm_outbox_message"
    __entity_label__ = lazy_gettext("邮件")

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    to_address: Mapped[str] = mapped_column(String(254), nullable=False)
    subject: Mapped[str] = mapped_column(String(255), nullable=False)
    body_text: Mapped[str] = mapped_column(Text, nullable=False)
    body_html: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    status: Mapped[str] = mapped_column(String(10), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    #: not before this time (backoff after a failure); empty: as soon as possible
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    #: when a worker claimed it for sending (a claim that never finished shows up as stale)
    locked_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    #: e.g. task-reminder:<task id>:<due time>; unique, so the same mail is never queued twice
    #: (191 characters: the longest unique key MySQL/MariaDB index in utf8mb4)
    dedup_key: Mapped[str | None] = mapped_column(String(191), unique=True)

    __table_args__ = (
        # the worker: pending messages due for an attempt, oldest first
        Index("ix_outbox_status_next", "status", "next_attempt_at"),
    )

    def __str__(self) -> str:
        return f"{self.to_address}: {self.subject}"
