"""Analytics: the dashboards' subscriptions (the weekly mailed report) and their rollups."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from flask_babel import lazy_gettext
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Model, utcnow
from models.security import CrmUser


class DashboardSubscription(Model):
    """订阅: a user receives a dashboard by e-mail every week, with the filters they chose; the
    numbers are computed as that user (their data scope) when the report is sent."""

    __tablename__ = "crm_dashboard_subscription"
    __entity_label__ = lazy_gettext("报表订阅")

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False)
    dashboard: Mapped[str] = mapped_column(String(20), nullable=False)
    #: the dashboard's filters as the query string gave them (app.analytics.Filters fields)
    filters: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    #: 0 = Monday; sent on the first worker run of that day in the company's time zone
    weekday: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=0)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    last_sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    user: Mapped[CrmUser] = relationship(CrmUser)

    __table_args__ = (UniqueConstraint("user_id", "dashboard", name="uq_subscription_user_dashboard"),)

    def __str__(self) -> str:
        return f"{self.dashboard} ({self.user})"


#: what a rollup row counts (app/analytics/rollups.py documents each fact's dimensions and measures)
ROLLUP_FACTS = (
    "order", "order_by", "line", "customer", "opportunity", "stage", "plan", "payment", "followup", "pool",
)  # fmt: skip


class Rollup(Model):
    """汇总: the dashboards' precomputed sums and counts, one row per fact, period (a month; a week
    for pool moves), owner, department, the customer's indexed select custom fields and up to
    three dimensions. Derived data, rebuilt by app/analytics/rollups.py: no foreign keys, so a
    deleted user or record never blocks anything here (the next rebuild drops its rows)."""

    __tablename__ = "crm_rollup"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fact: Mapped[str] = mapped_column(String(12), nullable=False)
    #: first day of the month (first Monday of the week for pool moves)
    period: Mapped[dt.date] = mapped_column(Date, nullable=False)
    owner_id: Mapped[int | None] = mapped_column(Integer)
    department_id: Mapped[int | None] = mapped_column(Integer)
    #: the customer's indexed select custom fields, "|api=code|api2=|" (sorted by API name)
    custom_key: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    dim1: Mapped[str | None] = mapped_column(String(100))
    dim2: Mapped[str | None] = mapped_column(String(100))
    dim3: Mapped[str | None] = mapped_column(String(255))
    n: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2), nullable=False, default=Decimal("0"))
    amount2: Mapped[Decimal] = mapped_column(Numeric(18, 2), nullable=False, default=Decimal("0"))

    __table_args__ = (
        # an admin's dashboard: a fact over a period range
        Index("ix_rollup_fact_period", "fact", "period"),
        # a rep's (owner) and a manager's (own or department tree) dashboards
        Index("ix_rollup_fact_owner", "fact", "owner_id", "period"),
        Index("ix_rollup_fact_department", "fact", "department_id", "period"),
        # one dimension of a fact (order_by, customer): its rows only
        Index("ix_rollup_fact_dim", "fact", "dim1", "period"),
    )


class RollupState(Model):
    """How far each fact's rollup is: the watermark of the incremental refresh (the moment of the
    last refresh) and when it was last rebuilt in full (nightly), with the custom fields it keys."""

    __tablename__ = "crm_rollup_state"

    fact: Mapped[str] = mapped_column(String(12), primary_key=True)
    refreshed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    rebuilt_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    #: the API names in custom_key when it was last rebuilt (a change forces a rebuild)
    custom_fields: Mapped[str] = mapped_column(String(500), nullable=False, default="")


class TopCustomerRollup(Model):
    """排行: the ten largest customers of the whole company (revenue of live orders) over each
    quick date range of the dashboards (this month, quarter, year, the last 12 months), per
    custom_key. Ranking a million customers' orders live takes seconds; the top ten of a union of
    custom_key groups (each customer has exactly one key) is the top ten of their top tens, so a
    custom-field filter is answered exactly from these rows too. Rebuilt by
    app/analytics/top_customers.py with the rollups."""

    __tablename__ = "crm_rollup_top_customer"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: the range's first and last month (first days)
    first_month: Mapped[dt.date] = mapped_column(Date, nullable=False)
    last_month: Mapped[dt.date] = mapped_column(Date, nullable=False)
    custom_key: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    customer_id: Mapped[int] = mapped_column(Integer, nullable=False)
    n: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2), nullable=False, default=Decimal("0"))
    refreshed_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)

    __table_args__ = (Index("ix_rollup_top_customer_range", "first_month", "last_month"),)
