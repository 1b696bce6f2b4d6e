"""Approvals (审批): flows configured in the browser per kind of document, their steps, and each
request with every decision taken on it. The engine is app/approvals.py."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Choices, Model, OwnedMixin, TimestampMixin, utcnow
from models.security import CrmUser

#: what can be sent for approval: orders and contracts, collections, invoices
APPROVAL_DOCUMENTS = Choices(("order", "订单/合同"), ("payment", "回款"), ("invoice", "发票"))
APPROVER_KINDS = Choices(
    ("superior", "直属上级"),
    ("superior_levels", "多级上级"),
    ("department_leader", "部门负责人"),
    ("role", "角色"),
    ("user", "指定人员"),
)
STEP_MODES = Choices(("all", "会签（全部同意）"), ("any", "或签（一人同意）"))
REQUEST_STATUSES = Choices(
    ("pending", "审批中"),
    ("approved", "已通过"),
    ("rejected", "已驳回"),
    ("returned", "已退回"),
    ("cancelled", "已撤销"),
)
DECISIONS = Choices(
    ("waiting", "待审批"),
    ("approved", "同意"),
    ("rejected", "驳回"),
    ("returned", "退回"),
    ("skipped", "无需审批"),
)


class ApprovalFlow(TimestampMixin, Model):
    """审批流程: applies to a kind of document when its conditions hold (all of them), e.g.
    orders above ¥100,000, or orders with a discount above 10%. The first active matching flow by
    position is used; a document no flow matches is approved at once."""

    __tablename__ = "crm_approval_flow"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    document: Mapped[str] = mapped_column(String(10), nullable=False, index=True)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: [{"field": "total_amount" | "custom.<api_name>", "op": "gt", "value": 100000}, ...]
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)
    description: Mapped[str | None] = mapped_column(String(255))

    steps: Mapped[list[ApprovalStep]] = relationship(
        "ApprovalStep", back_populates="flow", order_by="ApprovalStep.position", cascade="all, delete-orphan"
    )

    def __str__(self) -> str:
        return self.name


class ApprovalStep(Model):
    """One level of a flow: who approves (the submitter's superior, N levels of superiors, the
    department leader, a role or a named user) and whether all must agree (会签) or one (或签)."""

    __tablename__ = "crm_approval_step"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    flow_id: Mapped[int] = mapped_column(
        ForeignKey("crm_approval_flow.id", ondelete="CASCADE"), nullable=False, index=True
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    name: Mapped[str | None] = mapped_column(String(100))
    approver_kind: Mapped[str] = mapped_column(String(20), nullable=False, default="superior")
    #: superior_levels: how many levels up the manager chain
    levels: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    role_id: Mapped[int | None] = mapped_column(ForeignKey("ab_role.id", ondelete="SET NULL"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))
    mode: Mapped[str] = mapped_column(String(3), nullable=False, default="any")

    flow: Mapped[ApprovalFlow] = relationship(ApprovalFlow, back_populates="steps")
    user: Mapped[CrmUser | None] = relationship(CrmUser)


class ApprovalRequest(OwnedMixin, Model):
    """One document sent for approval; the owner is the submitter (data scope follows them).
    Sending it again after a send-back makes a new request: the old one keeps its decisions."""

    __tablename__ = "crm_approval_request"
    __money__ = ("amount",)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    flow_id: Mapped[int | None] = mapped_column(ForeignKey("crm_approval_flow.id", ondelete="SET NULL"))
    document: Mapped[str] = mapped_column(String(10), nullable=False)
    document_id: Mapped[int] = mapped_column(Integer, nullable=False)
    #: what the approver reads in a list: "HT-20261123-0001 东营化工 ¥120,000.00"
    title: Mapped[str] = mapped_column(String(255), nullable=False)
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    status: Mapped[str] = mapped_column(String(10), nullable=False, default="pending", index=True)
    #: position of the step waiting for decisions
    current_step: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    submitted_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    flow: Mapped[ApprovalFlow | None] = relationship(ApprovalFlow)
    owner: Mapped[CrmUser | None] = relationship(CrmUser, foreign_keys="ApprovalRequest.owner_id")
    decisions: Mapped[list[ApprovalDecision]] = relationship(
        "ApprovalDecision",
        back_populates="request",
        order_by="ApprovalDecision.id",
        cascade="all, delete-orphan",
    )

    __table_args__ = (Index("ix_approval_request_document", "document", "document_id"),)

    def __str__(self) -> str:
        return self.title


class ApprovalDecision(Model):
    """One approver's part in one step: waiting until they decide; every decision is kept."""

    __tablename__ = "crm_approval_decision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("crm_approval_request.id", ondelete="CASCADE"), nullable=False, index=True
    )
    step: Mapped[int] = mapped_column(Integer, nullable=False)
    approver_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))
    decision: Mapped[str] = mapped_column(String(10), nullable=False, default="waiting")
    comment: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    __scope_parent__ = "request"

    request: Mapped[ApprovalRequest] = relationship(ApprovalRequest, back_populates="decisions")
    approver: Mapped[CrmUser | None] = relationship(CrmUser)

    __table_args__ = (
        # the approver's workbench: what waits for me
        Index("ix_approval_decision_waiting", "approver_id", "decision"),
    )
