"""Analytics: the dashboards' subscriptions (the weekly mailed report) and their rollups."""

from __future__ import annotations

import datetime as dt

from flask_babel import lazy_gettext
from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, SmallInteger, String, UniqueConstraint
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
