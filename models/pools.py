"""The customer pool (公海): shared pools of customers nobody owns, the rules that send owned
customers back to a pool, and every move in and out of one. Rules are data, set in the browser.

A customer is either owned (私海: owner set, pool_id empty) or in a pool (pool_id set, no owner).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Choices, Model, TimestampMixin, utcnow
from models.customers import Customer
from models.security import CrmUser, Department

RULE_KINDS = Choices(
    ("no_followup", "未跟进"),  # no follow-up for N days
    ("no_opportunity", "未新建商机"),  # no new opportunity for N days
    ("not_won", "未成交"),  # not won within N days of getting it
)
RULE_LOGIC = Choices(("or", "任一规则满足"), ("and", "全部规则满足"))
POOL_MOVES = Choices(
    ("recycle", "自动回收"),
    ("release", "主动退回"),
    ("claim", "领取"),
    ("assign", "分配"),
    ("transfer", "转移"),
)
TEAM_ACCESS = Choices(("read", "只读"), ("write", "读写"))

pool_department = Table(
    "crm_pool_department",
    Model.metadata,
    Column("pool_id", ForeignKey("crm_pool.id", ondelete="CASCADE"), primary_key=True),
    Column("department_id", ForeignKey("crm_department.id", ondelete="CASCADE"), primary_key=True),
)


class CustomerPool(TimestampMixin, Model):
    """公海: customers waiting to be claimed by the departments it serves, with its claim and
    recycle rules. A department's recycled customers go to the pool serving it."""

    __tablename__ = "crm_pool"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    description: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # recycling
    recycle_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    rule_logic: Mapped[str] = mapped_column(String(3), nullable=False, default="or")
    exempt_won: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    exempt_locked: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    exempt_open_opportunity: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    #: the owner is warned this many days before a customer returns to the pool
    warn_days: Mapped[int] = mapped_column(Integer, nullable=False, default=3)
    # claiming
    #: customers one person may claim from this pool per day (0: no limit)
    daily_claim_cap: Mapped[int] = mapped_column(Integer, nullable=False, default=10)
    #: days before a customer's previous owner may claim it back (0: at once)
    reclaim_cooldown_days: Mapped[int] = mapped_column(Integer, nullable=False, default=30)
    #: 库容: how many customers a person served by the pool may own, and lock (0: no limit)
    max_owned: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    max_locked: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: customer fields hidden from people browsing the pool (names of columns or custom fields)
    hidden_fields: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)

    departments: Mapped[list[Department]] = relationship(Department, secondary=pool_department)
    rules: Mapped[list[PoolRule]] = relationship(
        "PoolRule", back_populates="pool", order_by="PoolRule.position", cascade="all, delete-orphan"
    )

    def __str__(self) -> str:
        return self.name


class PoolRule(Model):
    """One recycle condition of a pool: e.g. no follow-up for 30 days (15 for key customers)."""

    __tablename__ = "crm_pool_rule"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pool_id: Mapped[int] = mapped_column(
        ForeignKey("crm_pool.id", ondelete="CASCADE"), nullable=False, index=True
    )
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    days: Mapped[int] = mapped_column(Integer, nullable=False)
    #: N per customer level, overriding `days`: {"key": 60, "potential": 15}
    days_by_level: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    pool: Mapped[CustomerPool] = relationship(CustomerPool, back_populates="rules")

    def days_for(self, level: str | None) -> int:
        return int(self.days_by_level.get(level or "", self.days))

    def __str__(self) -> str:
        return f"{RULE_KINDS.label(self.kind)} {self.days}"


class PoolMove(Model):
    """A customer entering or leaving a pool or changing hands: who lost or got it and why.
    Claim caps, cooldowns and the customer's history are read from here."""

    __tablename__ = "crm_pool_move"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("crm_customer.id", ondelete="CASCADE"), nullable=False, index=True
    )
    action: Mapped[str] = mapped_column(String(10), nullable=False)
    pool_id: Mapped[int | None] = mapped_column(ForeignKey("crm_pool.id", ondelete="SET NULL"))
    from_user_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))
    to_user_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))
    reason: Mapped[str | None] = mapped_column(String(255))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))
    moved_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    #: a handover moves many customers at once: one id ties them together
    batch: Mapped[str | None] = mapped_column(String(36), index=True)

    __scope_parent__ = "customer"

    customer: Mapped[Customer] = relationship(Customer)
    pool: Mapped[CustomerPool | None] = relationship(CustomerPool)
    from_user: Mapped[CrmUser | None] = relationship(CrmUser, foreign_keys=[from_user_id])
    to_user: Mapped[CrmUser | None] = relationship(CrmUser, foreign_keys=[to_user_id])
    actor: Mapped[CrmUser | None] = relationship(CrmUser, foreign_keys=[actor_id])

    __table_args__ = (
        # claim cap (my claims today) and cooldown (when did I lose it)
        Index("ix_pool_move_to_user", "to_user_id", "action", "moved_at"),
        Index("ix_pool_move_from_user", "customer_id", "from_user_id", "moved_at"),
    )


class CustomerTeamMember(Model):
    """团队成员: a user who works on someone else's customer, read-only or read-write, until an
    optional end date; the data scope lets them see it."""

    __tablename__ = "crm_customer_team"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("crm_customer.id", ondelete="CASCADE"), nullable=False
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False, index=True
    )
    access: Mapped[str] = mapped_column(String(5), nullable=False, default="read")
    until: Mapped[dt.date | None] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(Text)

    __scope_parent__ = "customer"

    customer: Mapped[Customer] = relationship(Customer)
    user: Mapped[CrmUser] = relationship(CrmUser)

    __table_args__ = (UniqueConstraint("customer_id", "user_id", name="uq_customer_team_member"),)
