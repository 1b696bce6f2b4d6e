"""Notifications and mail: in-app messages (我的提醒), the outbox, its delivery over SMTP, and the
task reminders the background worker sends.

What holds, on SQLite, PostgreSQL and MySQL/MariaDB alike, with any number of workers:
- A task is reminded once per due time. A worker claims it with a conditional UPDATE
  (`reminded_at IS NULL`) and only the worker whose UPDATE changed the row writes the
  notification and queues the mail, in the same transaction: all of it or none of it.
- A mail is queued once: `dedup_key` is unique and queue_mail() inserts "or ignore".
- A mail is sent once: a worker claims it (pending -> sending) and commits before talking to
  the SMTP server, and marks it sent only after the server accepted it. A claim that never
  finished (the worker died in between) is not retried blindly: it is marked failed with a
  note, and an admin decides in the outbox screen (at most once rather than maybe twice).
- A mail server that is down loses nothing: the message waits with its error and is retried
  with backoff (1, 2, 4 ... 240 minutes), up to CRM_MAIL_MAX_ATTEMPTS attempts.

notify() and queue_mail() write in the caller's transaction (the caller commits);
send_due_reminders(), deliver_outbox(), mark_read() and requeue() commit their own work.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import AccessDenied
from app.services import RecordService, service_for, write_transaction
from models.base import utcnow
from models.notifications import Notification, OutboxMessage
from models.sales import Task
from models.security import CrmUser

log = logging.getLogger(__name__)

#: the screen a task reminder links to
TASK_LINK = "/taskview/show/{id}"
#: a message claimed for sending longer ago than this was interrupted (a worker died)
STALE_CLAIM = dt.timedelta(minutes=10)
#: the longest wait between two attempts of a failing message
MAX_BACKOFF_MINUTES = 240


# --- in-app notifications --------------------------------------------------------------------------
class NotificationService(RecordService):
    """Screens and the API may only change (mark read) the current user's own notifications."""

    model = Notification

    def authorize(self, session: Session, item: Notification, actor: CrmUser | None) -> None:
        if actor is not None and item.user_id != actor.id:
            raise AccessDenied(_("只能修改自己的提醒"))


def notify(
    session: Session, user: CrmUser | int, title: str, body: str | None, link: str | None
) -> Notification:
    """Add an in-app notification for a user (in the caller's transaction)."""
    user_id = user if isinstance(user, int) else user.id
    item = Notification(user_id=user_id, title=title[:200], body=body, link=link, created_at=utcnow())
    session.add(item)
    return item


def mark_read(session: Session, user: CrmUser, ids: Iterable[int] | None = None) -> int:
    """Mark the user's unread notifications read (those in `ids`, or all); returns how many.
    Only the user's own: ids of someone else's notifications are ignored."""
    statement = update(Notification).where(Notification.user_id == user.id, Notification.read_at.is_(None))
    if ids is not None:
        statement = statement.where(Notification.id.in_(list(ids)))
    with write_transaction(session):
        result = session.execute(
            statement.values(read_at=utcnow()).execution_options(synchronize_session=False)
        )
    return result.rowcount


# --- the outbox ------------------------------------------------------------------------------------
def queue_mail(
    session: Session,
    to: str,
    subject: str,
    body: str,
    dedup_key: str | None = None,
    html: str | None = None,
) -> int | None:
    """Queue an e-mail in the caller's transaction; returns its id, or None when a message with
    the same `dedup_key` is already queued (whatever became of it: sent, failed...)."""
    values = {
        "to_address": to,
        "subject": subject[:255],
        "body_text": body,
        "body_html": html,
        "created_at": utcnow(),
        "status": "pending",
        "attempts": 0,
        "dedup_key": dedup_key,
    }
    if dedup_key is None:
        return _insert_outbox(session, values)
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):  # one atomic statement: INSERT ... ON CONFLICT DO NOTHING
        insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
        statement = (
            insert(OutboxMessage)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(OutboxMessage.id)
        )
        session.flush()  # what the caller added first goes first
        return session.execute(statement).scalar()
    # MySQL/MariaDB: check, then insert in a savepoint; a concurrent twin fails on the unique key
    if session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedup_key == dedup_key)) is not None:
        return None
    try:
        with session.begin_nested():
            return _insert_outbox(session, values)
    except IntegrityError:
        return None


def _insert_outbox(session: Session, values: dict[str, Any]) -> int:
    message = OutboxMessage(**values)
    session.add(message)
    session.flush()
    return message.id


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how the outbox sends; `host` empty means mail is switched off."""

    host: str = ""
    port: int = 25
    user: str = ""
    password: str = ""
    starttls: bool = False
    ssl: bool = False
    sender: str = "keguan@localhost"
    max_attempts: int = 10
    timeout: float = 30.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SmtpSettings:
        return cls(
            host=config.get("CRM_SMTP_HOST", ""),
            port=int(config.get("CRM_SMTP_PORT", 25)),
            user=config.get("CRM_SMTP_USER", ""),
            password=config.get("CRM_SMTP_PASSWORD", ""),
            starttls=bool(config.get("CRM_SMTP_STARTTLS", False)),
            ssl=bool(config.get("CRM_SMTP_SSL", False)),
            sender=config.get("CRM_MAIL_FROM", "keguan@localhost"),
            max_attempts=int(config.get("CRM_MAIL_MAX_ATTEMPTS", 10)),
        )


@dataclass
class DeliveryReport:
    """What one deliver_outbox() run did."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    interrupted: int = 0
    disabled: bool = False

    def __str__(self) -> str:
        if self.disabled:
            return "mail disabled (CRM_SMTP_HOST is empty), messages wait in the outbox"
        return f"{self.sent} sent, {self.retrying} to retry, {self.failed} failed" + (
            f", {self.interrupted} interrupted claims marked failed" if self.interrupted else ""
        )


def deliver_outbox(
    session: Session, settings: SmtpSettings, now: dt.datetime | None = None, batch: int = 100
) -> DeliveryReport:
    """Send the pending messages that are due, one SMTP connection per run."""
    report = DeliveryReport()
    if not settings.host:
        report.disabled = True
        return report
    now = now or utcnow()
    report.interrupted = _fail_interrupted_claims(session, now)
    due = session.scalars(
        select(OutboxMessage.id)
        .where(
            OutboxMessage.status == "pending",
            or_(OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= now),
        )
        .order_by(OutboxMessage.id)
        .limit(batch)
    ).all()
    session.commit()  # end the read: each claim below sees what other workers committed
    smtp: smtplib.SMTP | None = None
    try:
        for message_id in due:
            if not _claim_message(session, message_id, now):
                continue  # another worker has it
            message = session.get(OutboxMessage, message_id)
            try:
                email = build_email(message, settings.sender)
            except (ValueError, TypeError) as exc:  # a broken address or header: never deliverable
                _record_failure(session, message, exc, True, settings, now, report)
                continue
            try:
                if smtp is None:
                    smtp = connect(settings)
                smtp.send_message(email)
            except Exception as exc:  # noqa: BLE001  (every failure is recorded on the message)
                _record_failure(session, message, exc, _permanent(exc), settings, now, report)
                if not _message_level(exc):  # the connection is gone: the rest wait for the next run
                    _close(smtp)
                    smtp = None
                    break
                continue
            _finish(session, message_id, status="sent", sent_at=utcnow(), next_attempt_at=None)
            report.sent += 1
    finally:
        _close(smtp)
    return report


def requeue(session: Session, ids: Iterable[int]) -> int:
    """Queue failed messages again with fresh attempts (the outbox screen); returns how many."""
    with write_transaction(session):
        result = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(list(ids)), OutboxMessage.status == "failed")
            .values(status="pending", attempts=0, next_attempt_at=None, locked_at=None)
            .execution_options(synchronize_session=False)
        )
    return result.rowcount


def connect(settings: SmtpSettings) -> smtplib.SMTP:
    """An SMTP connection, with TLS (SSL or STARTTLS) and login as configured."""
    context = ssl.create_default_context()
    if settings.ssl:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            settings.host, settings.port, timeout=settings.timeout, context=context
        )
    else:
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    try:
        if settings.starttls and not settings.ssl:
            smtp.starttls(context=context)
        if settings.user:
            smtp.login(settings.user, settings.password)
    except Exception:
        _close(smtp)
        raise
    return smtp


def build_email(message: OutboxMessage, sender: str) -> EmailMessage:
    """The MIME message; its Message-ID is fixed per outbox row, so a receiving system can tell
    a copy from a new message."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    email = EmailMessage()
    email["From"] = sender
    email["To"] = message.to_address
    email["Subject"] = message.subject
    email["Date"] = formatdate(localtime=False)
    email["Message-ID"] = f"<keguan-outbox-{message.id}-{message.created_at:%Y%m%d%H%M%S}@{domain}>"
    email.set_content(message.body_text)
    if message.body_html:
        email.add_alternative(message.body_html, subtype="html")
    return email


def _claim_message(session: Session, message_id: int, now: dt.datetime) -> bool:
    """pending -> sending for this worker only; committed before any SMTP traffic."""
    with write_transaction(session):
        result = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.status == "pending")
            .values(status="sending", locked_at=now, attempts=OutboxMessage.attempts + 1)
            .execution_options(synchronize_session=False)
        )
    return result.rowcount == 1


def _finish(session: Session, message_id: int, **values: Any) -> None:
    """Leave the `sending` state (only this worker's claim), committed at once."""
    with write_transaction(session):
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.status == "sending")
            .values(locked_at=None, **values)
            .execution_options(synchronize_session=False)
        )


def _record_failure(
    session: Session,
    message: OutboxMessage,
    exc: BaseException,
    permanent: bool,
    settings: SmtpSettings,
    now: dt.datetime,
    report: DeliveryReport,
) -> None:
    attempts = message.attempts  # counted by the claim
    error = f"{type(exc).__name__}: {exc}"[:2000]
    if permanent or attempts >= settings.max_attempts:
        _finish(session, message.id, status="failed", last_error=error, next_attempt_at=None)
        report.failed += 1
        log.warning("outbox message %s to %s failed for good: %s", message.id, message.to_address, error)
    else:
        wait = dt.timedelta(minutes=min(2 ** (attempts - 1), MAX_BACKOFF_MINUTES))
        _finish(session, message.id, status="pending", last_error=error, next_attempt_at=now + wait)
        report.retrying += 1
        log.info("outbox message %s: %s; next attempt in %s", message.id, error, wait)


def _fail_interrupted_claims(session: Session, now: dt.datetime) -> int:
    """Messages left `sending` by a worker that died: it may or may not have reached the server,
    so it is not sent again on its own; it shows as failed for an admin to requeue."""
    with write_transaction(session):
        result = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == "sending", OutboxMessage.locked_at < now - STALE_CLAIM)
            .values(
                status="failed",
                locked_at=None,
                last_error=_("发送中断,无法确定是否已送达;如需重发,请在发件箱中重新发送"),
            )
            .execution_options(synchronize_session=False)
        )
    return result.rowcount


#: failures of one message; the connection stays usable (smtplib resets the session)
_MESSAGE_ERRORS = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError)


def _message_level(exc: BaseException) -> bool:
    return isinstance(exc, _MESSAGE_ERRORS) and getattr(exc, "smtp_code", 0) != 421


def _permanent(exc: BaseException) -> bool:
    """A 5xx answer about this message (bad recipient, refused content): retrying cannot help."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _message in exc.recipients.values())
    return isinstance(exc, _MESSAGE_ERRORS) and exc.smtp_code >= 500


def _close(smtp: smtplib.SMTP | None) -> None:
    if smtp is None:
        return
    try:
        smtp.quit()
    except Exception:  # noqa: BLE001  (already gone)
        smtp.close()


# --- task reminders --------------------------------------------------------------------------------
def send_due_reminders(
    session: Session, now: dt.datetime | None = None, lead_minutes: int | None = None, batch: int = 200
) -> int:
    """Remind the owners of open tasks due within the lead time (CRM_REMINDER_LEAD_MINUTES) and
    not reminded yet: an in-app notification and a queued e-mail each. Returns how many tasks.

    One transaction per batch; each task is claimed by a conditional UPDATE, so two workers
    never remind the same task. A task whose due time changes is reminded again (TaskService
    clears reminded_at). Tasks without an owner, or whose owner is deactivated, wait until
    they are reassigned.
    """
    config = current_app.config
    now = now or utcnow()
    lead = dt.timedelta(minutes=config["CRM_REMINDER_LEAD_MINUTES"] if lead_minutes is None else lead_minutes)
    zone = ZoneInfo(config["BABEL_DEFAULT_TIMEZONE"])
    base_url = config["CRM_BASE_URL"].rstrip("/")
    reminded, last_id = 0, 0
    while True:
        rows = session.execute(
            select(Task.id, Task.title, Task.due_at, Task.owner_id, Task.created_at, CrmUser.email)
            .join(CrmUser, CrmUser.id == Task.owner_id)
            .where(
                Task.status == "open",
                Task.reminded_at.is_(None),
                Task.due_at <= now + lead,
                CrmUser.active.is_(True),
                Task.id > last_id,
            )
            .order_by(Task.id)
            .limit(batch)
        ).all()
        if not rows:
            return reminded
        with write_transaction(session):
            for row in rows:
                if _claim_task(session, row, now):
                    _remind(session, row, now, zone, base_url)
                    reminded += 1
        last_id = rows[-1].id


def _claim_task(session: Session, row: Any, now: dt.datetime) -> bool:
    """Set reminded_at only if nobody did, and only for the due time and owner just read."""
    result = session.execute(
        update(Task)
        .where(
            Task.id == row.id,
            Task.reminded_at.is_(None),
            Task.status == "open",
            Task.due_at == row.due_at,
            Task.owner_id == row.owner_id,
        )
        .values(reminded_at=now, updated_at=Task.updated_at)  # a system mark, not an edit
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _remind(session: Session, row: Any, now: dt.datetime, zone: ZoneInfo, base_url: str) -> None:
    when = f"{row.due_at.replace(tzinfo=dt.UTC).astimezone(zone):%Y-%m-%d %H:%M}"
    link = TASK_LINK.format(id=row.id)
    if row.due_at <= now:
        state = _("任务「%(title)s」已于 %(when)s 到期", title=row.title, when=when)
    else:
        state = _("任务「%(title)s」将于 %(when)s 到期", title=row.title, when=when)
    subject = _("任务提醒: %(title)s", title=row.title)
    notify(session, row.owner_id, subject, state, link)
    if not row.email:
        return
    body = "\n".join(
        [
            _("您好,"),
            "",
            state,
            "",
            _("查看任务: %(url)s", url=base_url + link),
            "",
            "-- ",
            str(current_app.config.get("APP_NAME", "KeGuan")),
        ]
    )
    # the task's creation time too: SQLite may give a deleted task's id to a new one
    dedup_key = f"task-reminder:{row.id}:{row.created_at:%Y%m%d%H%M%S%f}:{row.due_at.isoformat()}"
    queue_mail(session, row.email, subject, body, dedup_key=dedup_key)


notification_service = service_for(Notification)
