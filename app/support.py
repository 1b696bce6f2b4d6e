"""The public side of the service desk: what a customer without an account may do and see.

- The human check works offline (no captcha service): a small sum whose answer and issue time are
  signed with SECRET_KEY into a hidden field, a honeypot field a person never fills, and a
  minimum fill time (a script posts within a second). A wrong or stale answer is a clear message
  and nothing is written.
- Private links: a random token (secrets.token_urlsafe(32)) is shown or mailed once; only its
  SHA-256 is stored, so a database copy reveals no working link.
- What the status page may show: the ticket's number, subject, status and the public
  conversation (never internal notes, the assignee's name or the customer record).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import ErrorCollector, ValidationFailed
from app.validators import clean_email, clean_mobile, clean_text
from models.service import TICKET_STATUSES, Survey, Ticket, TicketCategory, TicketComment

#: the honeypot: a field hidden from people (CSS), which bots fill in
HONEYPOT_FIELD = "website"
CHALLENGE_FIELD = "challenge"
ANSWER_FIELD = "answer"
#: what the status page shows of a ticket's status: fewer, clearer words than the staff's
PUBLIC_STATUS = {
    "new": "received",
    "assigned": "received",
    "in_progress": "in_progress",
    "reopened": "in_progress",
    "waiting": "waiting",
    "resolved": "resolved",
    "closed": "closed",
}
SUBJECT_MAX = 200
DESCRIPTION_MIN = 5
DESCRIPTION_MAX = 5000
REPLY_MAX = 5000
COMMENT_MAX = 2000


# --- tokens ------------------------------------------------------------------------------------
def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def plausible_token(raw: str | None) -> bool:
    """A cheap shape check before any query (token_urlsafe(32) gives 43 characters)."""
    return bool(raw) and 20 <= len(raw) <= 100 and all(c.isalnum() or c in "-_" for c in raw)


def ticket_by_token(session: Session, raw: str | None) -> Ticket | None:
    """The ticket of a status-page token, or None (the caller answers 404, revealing nothing)."""
    if not plausible_token(raw):
        return None
    return session.scalar(select(Ticket).where(Ticket.access_token_hash == token_hash(raw)))


def survey_by_token(session: Session, raw: str | None) -> Survey | None:
    if not plausible_token(raw):
        return None
    return session.scalar(select(Survey).where(Survey.token_hash == token_hash(raw)))


def site_url() -> str:
    """The public address links in mails start with (CRM_SUPPORT_SITE_URL, else CRM_BASE_URL)."""
    config = current_app.config
    return (config.get("CRM_SUPPORT_SITE_URL") or config["CRM_BASE_URL"]).rstrip("/")


def status_url(raw: str) -> str:
    return f"{site_url()}/support/t/{raw}"


def survey_url(raw: str) -> str:
    return f"{site_url()}/support/survey/{raw}"


# --- the human check ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Challenge:
    question: str
    token: str


def _sign(payload: str) -> str:
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, b"keguan-support-check:" + payload.encode(), hashlib.sha256).hexdigest()[:32]


def make_challenge(issued_at: float | None = None) -> Challenge:
    """A small sum to solve, with its answer and the issue time signed into a hidden token."""
    a, b = secrets.randbelow(9) + 1, secrets.randbelow(9) + 1
    issued = int(issued_at if issued_at is not None else time.time())
    nonce = secrets.token_hex(4)
    payload = f"{issued}:{nonce}:{a + b}"
    encoded = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    return Challenge(f"{a} + {b} = ?", f"{encoded}.{_sign(payload)}")


def check_human(form: Any, errors: ErrorCollector, now: float | None = None) -> None:
    """The honeypot empty, the signed sum answered, not too fast and not too stale."""
    config = current_app.config
    now = time.time() if now is None else now
    if (form.get(HONEYPOT_FIELD) or "").strip():
        errors.add(ANSWER_FIELD, gettext("提交未通过验证,请刷新页面后重试"))
        return
    raw = form.get(CHALLENGE_FIELD) or ""
    encoded, _dot, signature = raw.partition(".")
    try:
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        issued_text, _nonce, expected = payload.split(":")
        issued = int(issued_text)
    except (ValueError, UnicodeDecodeError):
        errors.add(ANSWER_FIELD, gettext("验证已失效,请重新计算下面的题目"))
        return
    if not hmac.compare_digest(signature, _sign(payload)):
        errors.add(ANSWER_FIELD, gettext("验证已失效,请重新计算下面的题目"))
        return
    if now - issued > int(config.get("CRM_SUPPORT_CHECK_MAX_SECONDS", 7200)):
        errors.add(ANSWER_FIELD, gettext("页面停留时间过长,请重新计算下面的题目"))
        return
    if now - issued < int(config.get("CRM_SUPPORT_MIN_FILL_SECONDS", 3)):
        errors.add(ANSWER_FIELD, gettext("提交过快,请确认内容后再提交"))
        return
    answer = (form.get(ANSWER_FIELD) or "").strip()
    if answer != expected:
        errors.add(ANSWER_FIELD, gettext("计算结果不正确,请重新计算"))


# --- the requester's input ---------------------------------------------------------------------
def _text(form: Any, errors: ErrorCollector, name: str, max_length: int) -> str | None:
    try:
        return clean_text(form.get(name), max_length)
    except ValueError as exc:
        errors.add(name, str(exc))
        return None


def clean_request(session: Session, form: Any) -> dict[str, Any]:
    """The public form's values, cleaned, or ValidationFailed with a message per field (the
    human check included). Name required; a mobile or an e-mail required (both checked when given)."""
    errors = ErrorCollector()
    values: dict[str, Any] = {}
    values["requester_name"] = _text(form, errors, "name", 100)
    if not values["requester_name"] and "name" not in errors.errors:
        errors.add("name", gettext("请填写您的姓名"))
    for field, cleaner, key in (
        ("mobile", clean_mobile, "requester_mobile"),
        ("email", clean_email, "requester_email"),
    ):
        try:
            values[key] = cleaner(form.get(field))
        except ValueError as exc:
            errors.add(field, str(exc))
            values[key] = None
    if (
        not values["requester_mobile"]
        and not values["requester_email"]
        and not {"mobile", "email"} & set(errors.errors)
    ):
        errors.add("mobile", gettext("请至少填写手机号或电子邮箱之一,以便我们联系您"))
    values["subject"] = _text(form, errors, "subject", SUBJECT_MAX)
    if not values["subject"] and "subject" not in errors.errors:
        errors.add("subject", gettext("请填写问题标题"))
    description = (form.get("description") or "").strip()
    if len(description) < DESCRIPTION_MIN:
        errors.add("description", gettext("请描述您的问题 (至少 %(n)s 个字)", n=DESCRIPTION_MIN))
    elif len(description) > DESCRIPTION_MAX:
        errors.add("description", gettext("问题描述最多 %(n)s 个字", n=DESCRIPTION_MAX))
    values["description"] = description
    category = (form.get("category") or "").strip()
    values["category_id"] = None
    if category:
        found = (
            session.scalar(
                select(TicketCategory.id).where(
                    TicketCategory.id == int(category), TicketCategory.active.is_(True)
                )
            )
            if category.isdigit()
            else None
        )
        if found is None:
            errors.add("category", gettext("请选择列表中的问题类型"))
        values["category_id"] = found
    check_human(form, errors)
    errors.raise_if_any()
    return values


def clean_reply(form: Any) -> str:
    body = (form.get("body") or "").strip()
    if not body:
        raise ValidationFailed({"body": [gettext("请填写回复内容")]})
    if len(body) > REPLY_MAX:
        raise ValidationFailed({"body": [gettext("回复最多 %(n)s 个字", n=REPLY_MAX)]})
    return body


def categories(session: Session) -> list[tuple[int, str]]:
    return [
        (row.id, row.name)
        for row in session.execute(
            select(TicketCategory.id, TicketCategory.name)
            .where(TicketCategory.active.is_(True))
            .order_by(TicketCategory.position, TicketCategory.name)
        )
    ]


# --- what the status page shows ----------------------------------------------------------------
def public_status(ticket: Ticket) -> tuple[str, str]:
    """(code, label) of the status as the customer sees it."""
    code = PUBLIC_STATUS.get(ticket.status, "in_progress")
    labels = {
        "received": gettext("已受理"),
        "in_progress": gettext("处理中"),
        "waiting": gettext("等待您的回复"),
        "resolved": gettext("已解决"),
        "closed": gettext("已关闭"),
    }
    return code, labels[code]


def public_conversation(session: Session, ticket: Ticket) -> list[dict[str, Any]]:
    """The messages the customer may read, oldest first: never internal notes, and staff shown
    as 客服 (the staff member's name stays inside)."""
    rows = session.scalars(
        select(TicketComment)
        .where(TicketComment.ticket_id == ticket.id, TicketComment.internal.is_(False))
        .order_by(TicketComment.id)
    ).all()
    return [
        {
            "from_customer": row.from_customer,
            "author": (row.author_name or gettext("您")) if row.from_customer else gettext("客服"),
            "body": row.body,
            "created_at": row.created_at,
        }
        for row in rows
    ]


def local_time(moment: dt.datetime | None) -> str:
    """A stored (naive UTC) moment as the company's wall-clock time, for the public pages."""
    if moment is None:
        return ""
    zone = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    return f"{moment.replace(tzinfo=dt.UTC).astimezone(zone):%Y-%m-%d %H:%M}"


def status_label(code: str) -> str:
    return TICKET_STATUSES.label(code)
