"""Customer service (服务工单): tickets with their conversation, status history and attachments,
the rules that assign them, the SLA targets and business calendar they are measured against,
and the satisfaction surveys sent when they are resolved.

A ticket is an owned record: the owner is the assignee and the department the support team,
so the data scope of app.access applies to tickets exactly as to customers.
"""

from __future__ import annotations

import datetime as dt

from flask_babel import lazy_gettext
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    Time,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from customfields import CustomFieldsMixin
from models.base import Choices, Model, OwnedMixin, TimestampMixin, utcnow
from models.customers import Contact, Customer, Region
from models.security import CrmUser, Department

TICKET_STATUSES = Choices(
    ("new", "新建"),
    ("assigned", "已分派"),
    ("in_progress", "处理中"),
    ("waiting", "等待客户"),
    ("resolved", "已解决"),
    ("closed", "已关闭"),
    ("reopened", "重新打开"),
)
#: statuses in which a ticket still needs work (the queue, the backlog, the SLA sweep)
OPEN_TICKET_STATUSES = ("new", "assigned", "in_progress", "waiting", "reopened")
#: the same as SQL, for partial indexes (their predicate must match the queries' own IN list)
OPEN_TICKETS_SQL = "status IN ('new', 'assigned', 'in_progress', 'waiting', 'reopened')"
TICKET_PRIORITIES = Choices(("low", "低"), ("normal", "普通"), ("high", "高"), ("urgent", "紧急"))
TICKET_CHANNELS = Choices(("staff", "员工录入"), ("web", "网页表单"), ("email", "邮件"), ("phone", "电话"))
RESOLUTION_METHODS = Choices(
    ("remote", "远程解答"),
    ("onsite", "上门服务"),
    ("replacement", "换货"),
    ("refund", "退款"),
    ("reissue", "补开/补发"),
    ("explanation", "解释说明"),
    ("other", "其他"),
)
#: the requester of a public-form ticket matched to our records by mobile or e-mail
MATCH_STATES = Choices(("matched", "已匹配"), ("unmatched", "未匹配"), ("linked", "人工关联"))
SLA_STATES = Choices(("ok", "正常"), ("at_risk", "即将超时"), ("breached", "已超时"), ("met", "已达成"))
ASSIGNMENT_STRATEGIES = Choices(("round_robin", "轮流分派"), ("least_open", "最少未结工单"))
CALENDAR_DAY_KINDS = Choices(("holiday", "休息日"), ("workday", "工作日(调休)"))


class TicketCategory(Model):
    """业务类型: an editable list (配送延迟, 产品包装, 质量问题, 发票, 技术支持, ...)."""

    __tablename__ = "crm_ticket_category"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    def __str__(self) -> str:
        return self.name


class Ticket(OwnedMixin, TimestampMixin, CustomFieldsMixin, Model):
    """服务工单. The owner is the assignee; the department is the support team handling it."""

    __tablename__ = "crm_ticket"
    __entity_label__ = lazy_gettext("服务工单")

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: GD-20261124-0001: the number a customer quotes on the phone
    number: Mapped[str] = mapped_column(String(30), nullable=False, unique=True)
    subject: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("crm_customer.id", ondelete="SET NULL"), index=True
    )
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("crm_contact.id", ondelete="SET NULL"))
    category_id: Mapped[int | None] = mapped_column(ForeignKey("crm_ticket_category.id"), index=True)
    priority: Mapped[str] = mapped_column(String(10), nullable=False, default="normal")
    channel: Mapped[str] = mapped_column(String(10), nullable=False, default="staff")
    #: the district/county (区县) the ticket is about: the customer's, or given on the form
    district_code: Mapped[int | None] = mapped_column(ForeignKey("crm_region.code"), index=True)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="new")

    # who asked, as given on the public form or by phone (the customer record may not exist yet)
    requester_name: Mapped[str | None] = mapped_column(String(100))
    requester_mobile: Mapped[str | None] = mapped_column(String(20), index=True)
    requester_email: Mapped[str | None] = mapped_column(String(254), index=True)
    match_state: Mapped[str] = mapped_column(String(10), nullable=False, default="matched")
    #: SHA-256 of the status page's private token (the token itself is shown once, then mailed)
    access_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)

    assignment_rule_id: Mapped[int | None] = mapped_column(
        ForeignKey("crm_assignment_rule.id", ondelete="SET NULL"), index=True
    )
    assigned_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    resolution: Mapped[str | None] = mapped_column(Text)
    resolution_method: Mapped[str | None] = mapped_column(String(20))
    first_response_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    reopen_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    # SLA: the targets (UTC moments computed over business hours) and where the ticket stands
    sla_policy_id: Mapped[int | None] = mapped_column(ForeignKey("crm_sla_policy.id", ondelete="SET NULL"))
    first_response_due: Mapped[dt.datetime | None] = mapped_column(DateTime)
    resolution_due: Mapped[dt.datetime | None] = mapped_column(DateTime)
    sla_state: Mapped[str] = mapped_column(String(10), nullable=False, default="ok")
    first_response_breached: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    resolution_breached: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    #: the SLA state whose notice went out last (never twice for the same state)
    sla_notified: Mapped[str | None] = mapped_column(String(10))
    #: when the ticket becomes at risk (the earliest pending target's at-risk share of business
    #: time): stored so the sweep is one indexed UPDATE, not business-time arithmetic per row
    sla_risk_at: Mapped[dt.datetime | None] = mapped_column(DateTime, index=True)
    #: 'waiting' (等待客户) pauses the resolution clock: when it started (the due moves on resume)
    sla_paused_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    customer: Mapped[Customer | None] = relationship(Customer)
    contact: Mapped[Contact | None] = relationship(Contact)
    category: Mapped[TicketCategory | None] = relationship(TicketCategory)
    district: Mapped[Region | None] = relationship(Region)
    owner: Mapped[CrmUser | None] = relationship(CrmUser, foreign_keys="Ticket.owner_id")
    department: Mapped[Department | None] = relationship(Department, foreign_keys="Ticket.department_id")
    assignment_rule: Mapped[AssignmentRule | None] = relationship("AssignmentRule")
    sla_policy: Mapped[SlaPolicy | None] = relationship("SlaPolicy")
    comments: Mapped[list[TicketComment]] = relationship(
        "TicketComment", back_populates="ticket", order_by="TicketComment.id", cascade="all, delete-orphan"
    )
    history: Mapped[list[TicketStatusChange]] = relationship(
        "TicketStatusChange",
        back_populates="ticket",
        order_by="TicketStatusChange.id",
        cascade="all, delete-orphan",
    )
    attachments: Mapped[list[TicketAttachment]] = relationship(
        "TicketAttachment",
        back_populates="ticket",
        order_by="TicketAttachment.id",
        cascade="all, delete-orphan",
    )

    __table_args__ = (
        # the agent's queue: my open tickets by time left (and the same for a team); the first
        # also counts open tickets per assignee for least-open-tickets assignment
        Index("ix_ticket_owner_status_due", "owner_id", "status", "resolution_due"),
        Index("ix_ticket_department_status_due", "department_id", "status", "resolution_due"),
        # the SLA sweep and the backlog: every open ticket by due time
        Index("ix_ticket_status_due", "status", "resolution_due"),
        # feedback analysis by period
        Index("ix_ticket_created_at", "created_at"),
        # the whole queue by time left (admins, REST): walked in order, no sort of every ticket
        # (PostgreSQL and SQLite read it for ascending NULLS LAST too)
        Index("ix_ticket_due", "resolution_due", "id"),
        # 我的待办工单 on PostgreSQL: one owner's open tickets in time-left order (a partial index:
        # with the status in the middle, the planner walked ix_ticket_due past 890,000 closed ones)
        Index(
            "ix_ticket_owner_open_due",
            "owner_id",
            "resolution_due",
            "id",
            postgresql_where=text(OPEN_TICKETS_SQL),
            sqlite_where=text(OPEN_TICKETS_SQL),
        ),
    )

    def __str__(self) -> str:
        return f"{self.number} {self.subject}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_TICKET_STATUSES


class TicketComment(Model):
    """One message of a ticket's conversation: an internal note, a reply to the customer, or the
    customer's own message from the status page."""

    __tablename__ = "crm_ticket_comment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("crm_ticket.id", ondelete="CASCADE"), nullable=False)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))
    #: the customer's name when the customer wrote it (author_id is then empty)
    author_name: Mapped[str | None] = mapped_column(String(100))
    from_customer: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    #: an internal note is never shown on the customer's status page
    internal: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __scope_parent__ = "ticket"

    ticket: Mapped[Ticket] = relationship(Ticket, back_populates="comments")
    author: Mapped[CrmUser | None] = relationship(CrmUser)

    __table_args__ = (Index("ix_ticket_comment_ticket", "ticket_id", "id"),)

    def __str__(self) -> str:
        return self.body[:50]


class TicketStatusChange(Model):
    """One status change of a ticket (from, to, when, by whom): resolution times and audit."""

    __tablename__ = "crm_ticket_status_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("crm_ticket.id", ondelete="CASCADE"), nullable=False, index=True
    )
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20), nullable=False)
    changed_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(String(500))

    __scope_parent__ = "ticket"

    ticket: Mapped[Ticket] = relationship(Ticket, back_populates="history")
    changed_by: Mapped[CrmUser | None] = relationship(CrmUser)


class TicketAttachment(Model):
    """A file of a ticket (photo of a damaged drum, a scanned invoice), kept by FileStore."""

    __tablename__ = "crm_ticket_attachment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("crm_ticket.id", ondelete="CASCADE"), nullable=False, index=True
    )
    comment_id: Mapped[int | None] = mapped_column(ForeignKey("crm_ticket_comment.id", ondelete="SET NULL"))
    #: the key of customfields.files.FileStore (the file lives outside the database)
    file_key: Mapped[str] = mapped_column(String(64), nullable=False)
    filename: Mapped[str] = mapped_column(String(200), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    from_customer: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    uploaded_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))

    __scope_parent__ = "ticket"

    ticket: Mapped[Ticket] = relationship(Ticket, back_populates="attachments")


class AssignmentRule(TimestampMixin, Model):
    """自动分派规则: conditions on district, category and customer level (empty = any); the
    first active rule by position that matches assigns the ticket to its user, or to a member of
    its team by round-robin or least open tickets."""

    __tablename__ = "crm_assignment_rule"
    __entity_label__ = lazy_gettext("分派规则")

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0, index=True)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    #: region codes of districts/counties (a city's code matches all its districts); [] = any
    district_codes: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    #: TicketCategory ids; [] = any
    category_ids: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    #: customer level codes (key, normal, potential); [] = any
    customer_levels: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    target_user_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))
    target_department_id: Mapped[int | None] = mapped_column(
        ForeignKey("crm_department.id", ondelete="SET NULL")
    )
    strategy: Mapped[str] = mapped_column(String(20), nullable=False, default="round_robin")
    #: round-robin pointer: the member who got the previous ticket of this rule
    last_assigned_user_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))

    target_user: Mapped[CrmUser | None] = relationship(CrmUser, foreign_keys=[target_user_id])
    target_department: Mapped[Department | None] = relationship(Department)

    def __str__(self) -> str:
        return self.name


class SlaPolicy(Model):
    """SLA 目标: first-response and resolution targets in business minutes per priority,
    optionally per customer level (a level-specific policy wins over the level-less one)."""

    __tablename__ = "crm_sla_policy"
    __entity_label__ = lazy_gettext("SLA 策略")

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    priority: Mapped[str] = mapped_column(String(10), nullable=False)
    customer_level: Mapped[str | None] = mapped_column(String(20))
    first_response_minutes: Mapped[int] = mapped_column(Integer, nullable=False)
    resolution_minutes: Mapped[int] = mapped_column(Integer, nullable=False)
    #: a ticket is at risk once this share of its business time to the target has passed
    at_risk_percent: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=80)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    __table_args__ = (UniqueConstraint("priority", "customer_level", name="uq_sla_priority_level"),)

    def __str__(self) -> str:
        return self.name


class BusinessHours(Model):
    """服务时间: one working interval of a weekday (0 = Monday) in the company's time zone; a
    day may have two (morning and afternoon)."""

    __tablename__ = "crm_business_hours"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    weekday: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    start_time: Mapped[dt.time] = mapped_column(Time, nullable=False)
    end_time: Mapped[dt.time] = mapped_column(Time, nullable=False)

    def __str__(self) -> str:
        return f"{self.weekday} {self.start_time:%H:%M}-{self.end_time:%H:%M}"


class ServiceCalendarDay(Model):
    """A date that differs from the weekly hours: a company holiday, or a weekend made a working
    day (调休). Chinese public holidays come from chinese-calendar unless a row here says
    otherwise."""

    __tablename__ = "crm_service_calendar_day"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(String(10), nullable=False, default="holiday")
    name: Mapped[str | None] = mapped_column(String(100))

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.name or ''}".strip()


class Survey(Model):
    """满意度调查: sent when a ticket is resolved; answered once, without login, through its
    private token (hashed here, like the status page's)."""

    __tablename__ = "crm_survey"
    __entity_label__ = lazy_gettext("满意度调查")

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("crm_ticket.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    sent_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    answered_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    rating: Mapped[int | None] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Text)
    #: the follow-up task a low rating created for the team's leader
    followup_task_id: Mapped[int | None] = mapped_column(ForeignKey("crm_task.id", ondelete="SET NULL"))

    __scope_parent__ = "ticket"

    ticket: Mapped[Ticket] = relationship(Ticket)

    __table_args__ = (Index("ix_survey_answered", "answered_at"),)

    def __str__(self) -> str:
        return f"{self.ticket.number if self.ticket else self.ticket_id}: {self.rating or '-'}"
