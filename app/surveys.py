"""Satisfaction surveys (满意度调查): sent when a ticket is resolved, answered once without login.

The survey's private link is derived from SECRET_KEY (an HMAC of the ticket and the moment the
survey was sent), and only its SHA-256 is stored: the mail carries the link, and the status page
can show the same link again without the database ever holding a working token. (Changing
SECRET_KEY makes the status page stop showing links of older surveys; mailed links keep working.)

A rating at or below CRM_SURVEY_LOW_RATING creates a follow-up task (回访) for the leader of the
ticket's department (else the assignee's manager, else the assignee).

The requester's other mail lives here too: every public staff reply (mail_reply).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from typing import Any

from flask import current_app
from flask_babel import gettext
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.errors import Conflict, ErrorCollector, NotFound
from app.notifications import queue_mail
from app.sales import task_service
from app.services import write_transaction
from app.support import COMMENT_MAX, survey_by_token, survey_url, token_hash
from models.base import utcnow
from models.customers import Contact, Customer
from models.sales import Task
from models.security import CrmUser, Department
from models.service import Survey, Ticket, TicketComment

RATINGS = (1, 2, 3, 4, 5)


def survey_token(ticket_id: int, sent_at: dt.datetime) -> str:
    """The survey's private token: unguessable without SECRET_KEY, reproducible with it."""
    key = str(current_app.config["SECRET_KEY"]).encode()
    message = f"keguan-survey:{ticket_id}:{sent_at:%Y%m%d%H%M%S}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def link_of(survey: Survey) -> str | None:
    """The survey's link, or None when the token no longer matches (SECRET_KEY changed)."""
    raw = survey_token(survey.ticket_id, survey.sent_at)
    return survey_url(raw) if token_hash(raw) == survey.token_hash else None


def requester_email(session: Session, ticket: Ticket) -> str | None:
    """Where the survey goes: the e-mail given on the ticket, else the contact's, else the customer's."""
    if ticket.requester_email:
        return ticket.requester_email
    if ticket.contact_id is not None:
        email = session.scalar(select(Contact.email).where(Contact.id == ticket.contact_id))
        if email:
            return email
    if ticket.customer_id is not None and hasattr(Customer, "email"):
        return session.scalar(select(Customer.email).where(Customer.id == ticket.customer_id))
    return None


def on_resolved(session: Session, ticket: Ticket) -> Survey | None:
    """A ticket was resolved: create its survey (once per ticket) and queue the mail (dedup key:
    never twice). In the caller's transaction; returns the survey (also an earlier one)."""
    existing = session.scalar(select(Survey).where(Survey.ticket_id == ticket.id))
    if existing is not None:
        return existing
    sent_at = utcnow().replace(microsecond=0)  # MySQL DATETIME keeps whole seconds
    raw = survey_token(ticket.id, sent_at)
    survey = Survey(ticket_id=ticket.id, token_hash=token_hash(raw), sent_at=sent_at)
    session.add(survey)
    session.flush()
    email = requester_email(session, ticket)
    if email:
        subject = gettext("请评价我们的服务: 工单 %(number)s", number=ticket.number)
        body = "\n".join(
            [
                gettext("您好,"),
                "",
                gettext(
                    "您的工单 %(number)s「%(subject)s」已处理完毕。",
                    number=ticket.number,
                    subject=ticket.subject,
                ),
                gettext("请花一分钟为我们的服务打分 (1-5 分):"),
                survey_url(raw),
                "",
                "-- ",
                str(current_app.config.get("APP_NAME", "KeGuan")),
            ]
        )
        queue_mail(session, email, subject, body, dedup_key=f"survey:{ticket.id}")
    return survey


def mail_reply(session: Session, ticket: Ticket, comment: TicketComment) -> int | None:
    """A public staff reply reaches the requester by e-mail, the text itself: the status page's
    link was shown and mailed once and is stored only hashed, so the mail points to that one.
    In the caller's transaction; once per reply (dedup key)."""
    email = requester_email(session, ticket)
    if not email or comment.internal or comment.from_customer:
        return None
    subject = gettext("工单 %(number)s 有新的回复", number=ticket.number)
    body = "\n".join(
        [
            gettext("您好,"),
            "",
            gettext(
                "您的工单 %(number)s「%(subject)s」有新的回复:", number=ticket.number, subject=ticket.subject
            ),
            "",
            comment.body,
            "",
            gettext("查看进度或回复,请打开提交工单时收到的工单状态链接。"),
            "",
            "-- ",
            str(current_app.config.get("APP_NAME", "KeGuan")),
        ]
    )
    return queue_mail(session, email, subject, body, dedup_key=f"ticket-reply:{comment.id}")


def clean_answer(form: Any) -> tuple[int, str | None]:
    """(rating, comment) from the survey form or JSON; ValidationFailed with a clear message."""
    errors = ErrorCollector()
    raw = form.get("rating")
    rating = None
    try:
        rating = int(str(raw).strip())
    except (TypeError, ValueError):
        pass
    if rating not in RATINGS:
        errors.add("rating", gettext("请选择 1 到 5 分"))
    comment = (form.get("comment") or "").strip() or None
    if comment is not None and len(comment) > COMMENT_MAX:
        errors.add("comment", gettext("评价内容最多 %(n)s 个字", n=COMMENT_MAX))
    errors.raise_if_any()
    return rating, comment  # type: ignore[return-value]


def followup_owner(session: Session, ticket: Ticket) -> int | None:
    """Who follows up a low rating: the department's leader, else the assignee's manager, else the
    assignee (active users only)."""
    candidates = []
    if ticket.department_id is not None:
        candidates.append(
            session.scalar(select(Department.leader_id).where(Department.id == ticket.department_id))
        )
    if ticket.owner_id is not None:
        candidates.append(session.scalar(select(CrmUser.manager_id).where(CrmUser.id == ticket.owner_id)))
        candidates.append(ticket.owner_id)
    for user_id in candidates:
        if user_id and session.scalar(select(CrmUser.active).where(CrmUser.id == user_id)):
            return user_id
    return None


def answer(session: Session, raw_token: str, form: Any, now: dt.datetime | None = None) -> Survey:
    """Record the answer once. NotFound for an unknown token, Conflict (409) when it was already
    answered (nothing changes), ValidationFailed for a bad rating. Commits."""
    survey = survey_by_token(session, raw_token)
    if survey is None:
        raise NotFound(gettext("调查不存在"))
    rating, comment = clean_answer(form)
    now = now or utcnow()
    session.rollback()  # a fresh transaction for the conditional update below
    with write_transaction(session):
        claimed = session.execute(
            update(Survey)
            .where(Survey.id == survey.id, Survey.answered_at.is_(None))
            .values(answered_at=now, rating=rating, comment=comment)
            .execution_options(synchronize_session=False)
        ).rowcount
    if claimed != 1:
        raise Conflict(gettext("您已经提交过评价,谢谢!"))
    session.expire_all()
    survey = session.get(Survey, survey.id)
    low = int(current_app.config.get("CRM_SURVEY_LOW_RATING", 2))
    if rating <= low:
        _follow_up(session, survey, rating, comment, now)
    return survey


def _follow_up(session: Session, survey: Survey, rating: int, comment: str | None, now: dt.datetime) -> None:
    ticket = session.get(Ticket, survey.ticket_id)
    owner_id = followup_owner(session, ticket)
    if owner_id is None:
        return
    hours = int(current_app.config.get("CRM_SURVEY_FOLLOWUP_HOURS", 24))
    task = Task(
        title=gettext("回访低分评价: %(number)s (%(rating)s 分)", number=ticket.number, rating=rating)[:200],
        due_at=now + dt.timedelta(hours=hours),
        status="open",
        owner_id=owner_id,
        customer_id=ticket.customer_id,
        notes="\n".join(
            [
                gettext("工单: %(number)s %(subject)s", number=ticket.number, subject=ticket.subject),
                gettext("评分: %(rating)s", rating=rating),
                gettext("评价: %(comment)s", comment=comment or "-"),
            ]
        ),
    )
    task_service.save(session, task, None)
    session.execute(
        update(Survey)
        .where(Survey.id == survey.id)
        .values(followup_task_id=task.id)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    session.refresh(survey)
