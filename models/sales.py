"""Selling: products, pipelines and their stages, leads, opportunities with their stage history,
follow-ups (跟进记录) and tasks. Pipelines and stages are data, edited by an admin at run time."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from flask_babel import lazy_gettext
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from customfields import CustomFieldsMixin
from models.base import Choices, Model, OwnedMixin, TimestampMixin, utcnow
from models.customers import Contact, Customer
from models.security import CrmUser

LEAD_STATUSES = Choices(
    ("new", "新线索"),
    ("contacted", "已联系"),
    ("qualified", "已确认"),
    ("converted", "已转化"),
    ("disqualified", "无效"),
)
OPPORTUNITY_STATUSES = Choices(("open", "进行中"), ("won", "赢单"), ("lost", "输单"))
INTERACTION_KINDS = Choices(
    ("call", "电话"), ("email", "邮件"), ("meeting", "会议"), ("visit", "拜访"), ("note", "备注")
)
TASK_STATUSES = Choices(("open", "待办"), ("done", "已完成"), ("cancelled", "已取消"))
PRODUCT_UNITS = ("吨", "千克", "桶", "件", "套", "台", "米", "次", "项")


class Product(TimestampMixin, CustomFieldsMixin, Model):
    """产品: the catalogue opportunities (and later orders) refer to."""

    __tablename__ = "crm_product"
    __entity_label__ = lazy_gettext("产品")
    __money__ = ("price",)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(50), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    category: Mapped[str | None] = mapped_column(String(100), index=True)
    unit: Mapped[str] = mapped_column(String(20), nullable=False, default="件")
    price: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    on_sale: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    description: Mapped[str | None] = mapped_column(Text)

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"


class Pipeline(Model):
    """销售流程: an ordered list of stages, e.g. one per department or product line."""

    __tablename__ = "crm_pipeline"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    description: Mapped[str | None] = mapped_column(String(255))
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    stages: Mapped[list[Stage]] = relationship(
        "Stage", back_populates="pipeline", order_by="Stage.position", cascade="all, delete-orphan"
    )

    def __str__(self) -> str:
        return self.name


class Stage(Model):
    """销售阶段: a step of a pipeline with its win probability; won and lost stages close."""

    __tablename__ = "crm_stage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(
        ForeignKey("crm_pipeline.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    probability: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    is_won: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    is_lost: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    #: whether an opportunity in this stage may move back to an earlier stage
    allow_back: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    pipeline: Mapped[Pipeline] = relationship(Pipeline, back_populates="stages")

    __table_args__ = (UniqueConstraint("pipeline_id", "name", name="uq_stage_pipeline_name"),)

    def __str__(self) -> str:
        return f"{self.pipeline.name} / {self.name}" if self.pipeline else self.name

    @property
    def closes(self) -> bool:
        return self.is_won or self.is_lost


class Lead(OwnedMixin, TimestampMixin, CustomFieldsMixin, Model):
    """线索: a possible customer not yet qualified; converted once into customer, contact and
    opportunity."""

    __tablename__ = "crm_lead"
    __entity_label__ = lazy_gettext("线索")

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False, index=True)
    company: Mapped[str | None] = mapped_column(String(200), index=True)
    title: Mapped[str | None] = mapped_column(String(100))
    mobile: Mapped[str | None] = mapped_column(String(20), index=True)
    phone: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    source: Mapped[str | None] = mapped_column(String(20), index=True)
    interest: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="new", index=True)
    district_code: Mapped[int | None] = mapped_column(ForeignKey("crm_region.code"))
    notes: Mapped[str | None] = mapped_column(Text)
    converted_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("crm_customer.id", ondelete="SET NULL"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("crm_contact.id", ondelete="SET NULL"))
    opportunity_id: Mapped[int | None] = mapped_column(
        ForeignKey("crm_opportunity.id", ondelete="SET NULL")
    )

    owner: Mapped[CrmUser | None] = relationship(CrmUser, foreign_keys="Lead.owner_id")
    customer: Mapped[Customer | None] = relationship(Customer)
    contact: Mapped[Contact | None] = relationship(Contact)

    def __str__(self) -> str:
        return f"{self.name} · {self.company}" if self.company else self.name


opportunity_product = Table(
    "crm_opportunity_product",
    Model.metadata,
    Column("opportunity_id", ForeignKey("crm_opportunity.id", ondelete="CASCADE"), primary_key=True),
    Column("product_id", ForeignKey("crm_product.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Opportunity(OwnedMixin, TimestampMixin, CustomFieldsMixin, Model):
    """商机: a deal with a customer moving through a pipeline's stages."""

    __tablename__ = "crm_opportunity"
    __entity_label__ = lazy_gettext("商机")
    __money__ = ("amount",)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("crm_customer.id", ondelete="CASCADE"), nullable=False, index=True
    )
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("crm_contact.id", ondelete="SET NULL"))
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("crm_pipeline.id"), nullable=False)
    stage_id: Mapped[int] = mapped_column(ForeignKey("crm_stage.id"), nullable=False)
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    expected_close: Mapped[dt.date | None] = mapped_column(Date, index=True)
    #: set to override the stage's probability
    probability: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10), nullable=False, default="open")
    close_reason: Mapped[str | None] = mapped_column(String(255))
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    stage_changed_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    customer: Mapped[Customer] = relationship(Customer)
    contact: Mapped[Contact | None] = relationship(Contact)
    pipeline: Mapped[Pipeline] = relationship(Pipeline)
    stage: Mapped[Stage] = relationship(Stage)
    owner: Mapped[CrmUser | None] = relationship(CrmUser, foreign_keys="Opportunity.owner_id")
    products: Mapped[list[Product]] = relationship(Product, secondary=opportunity_product)
    history: Mapped[list[StageChange]] = relationship(
        "StageChange", back_populates="opportunity", order_by="StageChange.id", cascade="all, delete-orphan"
    )

    __table_args__ = (
        # the kanban: a pipeline's opportunities by stage, newest first; amount, owner and
        # department make it cover the column summary within any data scope (no row reads)
        Index(
            "ix_opportunity_board",
            "pipeline_id",
            "stage_id",
            "status",
            "id",
            "amount",
            "owner_id",
            "department_id",
        ),
        # the workbench of a rep or a manager: their open opportunities closing this month
        Index("ix_opportunity_owner_open_close", "owner_id", "status", "expected_close"),
        Index("ix_opportunity_department_open_close", "department_id", "status", "expected_close"),
    )

    def __str__(self) -> str:
        return self.name

    @property
    def effective_probability(self) -> int:
        if self.probability is not None:
            return self.probability
        return self.stage.probability if self.stage is not None else 0


class StageChange(Model):
    """One move of an opportunity between stages (funnel and velocity analytics)."""

    __tablename__ = "crm_stage_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(
        ForeignKey("crm_opportunity.id", ondelete="CASCADE"), nullable=False, index=True
    )
    from_stage_id: Mapped[int | None] = mapped_column(ForeignKey("crm_stage.id", ondelete="SET NULL"))
    to_stage_id: Mapped[int | None] = mapped_column(ForeignKey("crm_stage.id", ondelete="SET NULL"))
    changed_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))

    __scope_parent__ = "opportunity"

    opportunity: Mapped[Opportunity] = relationship(Opportunity, back_populates="history")
    from_stage: Mapped[Stage | None] = relationship(Stage, foreign_keys=[from_stage_id])
    to_stage: Mapped[Stage | None] = relationship(Stage, foreign_keys=[to_stage_id])
    changed_by: Mapped[CrmUser | None] = relationship(CrmUser)


interaction_user = Table(
    "crm_interaction_user",
    Model.metadata,
    Column("interaction_id", ForeignKey("crm_interaction.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("ab_user.id", ondelete="CASCADE"), primary_key=True),
)
interaction_contact = Table(
    "crm_interaction_contact",
    Model.metadata,
    Column("interaction_id", ForeignKey("crm_interaction.id", ondelete="CASCADE"), primary_key=True),
    Column("contact_id", ForeignKey("crm_contact.id", ondelete="CASCADE"), primary_key=True),
)


class Interaction(TimestampMixin, CustomFieldsMixin, Model):
    """跟进记录: a call, e-mail, meeting, visit or note with a customer, and the next step.

    The owner is who followed up. Its data scope follows the customer's: whoever may see the
    customer sees its follow-ups, whoever wrote them.
    """

    __tablename__ = "crm_interaction"
    __entity_label__ = lazy_gettext("跟进记录")

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), nullable=False, default="call")
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    duration_minutes: Mapped[int | None] = mapped_column(Integer)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("crm_customer.id", ondelete="CASCADE"), nullable=False
    )
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("crm_contact.id", ondelete="SET NULL"))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("crm_lead.id", ondelete="SET NULL"), index=True)
    opportunity_id: Mapped[int | None] = mapped_column(
        ForeignKey("crm_opportunity.id", ondelete="SET NULL"), index=True
    )
    subject: Mapped[str | None] = mapped_column(String(200))
    content: Mapped[str] = mapped_column(Text, nullable=False)
    outcome: Mapped[str | None] = mapped_column(String(255))
    next_contact_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"), index=True)

    __scope_parent__ = "customer"

    customer: Mapped[Customer] = relationship(Customer)
    contact: Mapped[Contact | None] = relationship(Contact)
    lead: Mapped[Lead | None] = relationship(Lead)
    opportunity: Mapped[Opportunity | None] = relationship(Opportunity)
    owner: Mapped[CrmUser | None] = relationship(CrmUser, foreign_keys="Interaction.owner_id")
    participants: Mapped[list[CrmUser]] = relationship(CrmUser, secondary=interaction_user)
    contacts: Mapped[list[Contact]] = relationship(Contact, secondary=interaction_contact)

    __table_args__ = (
        # the customer's timeline, newest first
        Index("ix_interaction_customer_time", "customer_id", "occurred_at"),
    )

    def __str__(self) -> str:
        return self.subject or f"{INTERACTION_KINDS.label(self.kind)} {self.occurred_at:%Y-%m-%d}"


class Task(OwnedMixin, TimestampMixin, CustomFieldsMixin, Model):
    """待办任务: a next action with a due time; the owner is the assignee."""

    __tablename__ = "crm_task"
    __entity_label__ = lazy_gettext("任务")

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    due_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    status: Mapped[str] = mapped_column(String(10), nullable=False, default="open")
    notes: Mapped[str | None] = mapped_column(Text)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("crm_customer.id", ondelete="CASCADE"), index=True
    )
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("crm_lead.id", ondelete="CASCADE"), index=True)
    opportunity_id: Mapped[int | None] = mapped_column(
        ForeignKey("crm_opportunity.id", ondelete="CASCADE"), index=True
    )
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("crm_interaction.id", ondelete="SET NULL"))
    done_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    #: when the reminder went out (in-app and e-mail): never twice
    reminded_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    owner: Mapped[CrmUser | None] = relationship(CrmUser, foreign_keys="Task.owner_id")
    customer: Mapped[Customer | None] = relationship(Customer)
    lead: Mapped[Lead | None] = relationship(Lead)
    opportunity: Mapped[Opportunity | None] = relationship(Opportunity)
    interaction: Mapped[Interaction | None] = relationship(Interaction)

    __table_args__ = (
        # the workbench: my open tasks by due time; the worker: reminders due
        Index("ix_task_owner_open_due", "owner_id", "status", "due_at"),
        # the same for a manager's team (owner_id = ? OR department_id IN (...))
        Index("ix_task_department_open_due", "department_id", "status", "due_at"),
        Index("ix_task_reminder", "status", "reminded_at", "due_at"),
        # the workbench of a manager or an admin: everyone's open tasks by due time
        Index("ix_task_open_due", "status", "due_at"),
    )

    def __str__(self) -> str:
        return self.title
