"""The home page's figures: what the logged-in user should see first, within their data scope."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.access import scope_clause
from models.base import utcnow
from models.customers import Contact, Customer
from models.security import CrmUser


@dataclass
class HomeSummary:
    my_customers: int
    visible_customers: int
    new_this_month: int
    key_customers: int
    contacts: int
    recent: list[Customer]
    by_level: dict[str, int]


def home_summary(session: Session, user: CrmUser, cap: int = 100_000) -> HomeSummary:
    """A few capped counts and the recently changed customers the user may see."""
    scope = scope_clause(session, Customer, user)
    month_start = utcnow().replace(day=1, hour=0, minute=0, second=0, microsecond=0)

    def capped(*conditions: object, model: type = Customer) -> int:
        inner = select(model.id).where(*conditions).limit(cap).subquery()
        return session.scalar(select(func.count()).select_from(inner)) or 0

    recent = session.scalars(
        select(Customer).where(scope).order_by(Customer.updated_at.desc()).limit(8)
    ).all()
    return HomeSummary(
        my_customers=capped(Customer.owner_id == user.id),
        visible_customers=capped(scope),
        new_this_month=capped(scope, Customer.created_at >= month_start),
        key_customers=capped(scope, Customer.level == "key"),
        contacts=capped(scope_clause(session, Contact, user), model=Contact),
        recent=list(recent),
        by_level={
            level: count
            for level, count in session.execute(
                select(Customer.level, func.count())
                .where(Customer.owner_id == user.id)
                .group_by(Customer.level)
            )
        },
    )
