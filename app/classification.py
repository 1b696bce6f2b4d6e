"""Customer classification, recomputed by the worker: purchase frequency (高频/中频/低频) over a
window, and local/remote from the company's home city. Both are plain columns, so they serve as
list filters, segments and chart dimensions at no cost.

Until orders exist (the money issue), a purchase is a won opportunity closed in the window.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.orm import Session

from models.base import utcnow
from models.customers import Customer
from models.sales import Opportunity


@dataclass(frozen=True)
class FrequencyRule:
    """Purchases within `window_days`: at least `high` is 高频, at least `mid` 中频, else 低频."""

    window_days: int = 365
    high: int = 6
    mid: int = 2


def classify_purchase_frequency(session: Session, rule: FrequencyRule, now: dt.datetime | None = None) -> int:
    """Set every customer's purchase_frequency from its purchases in the window, in one UPDATE;
    returns how many rows changed."""
    since = (now or utcnow()) - dt.timedelta(days=rule.window_days)
    purchases = (
        select(func.count())
        .where(
            Opportunity.customer_id == Customer.id,
            Opportunity.status == "won",
            Opportunity.closed_at >= since,
        )
        .correlate(Customer)
        .scalar_subquery()
    )
    frequency = case((purchases >= rule.high, "high"), (purchases >= rule.mid, "mid"), else_="low")
    changed = session.execute(
        update(Customer)
        .where(func.coalesce(Customer.purchase_frequency, "") != frequency)
        .values(purchase_frequency=frequency)
        .execution_options(synchronize_session=False)
    )
    return changed.rowcount or 0


def classify_locality(session: Session, home_city_code: int) -> int:
    """本地 when the customer's city is the company's home city, 外地 when it is another city;
    customers without a city are left as they are."""
    changed = 0
    for value, condition in (
        ("local", Customer.city_code == home_city_code),
        ("remote", and_(Customer.city_code.is_not(None), Customer.city_code != home_city_code)),
    ):
        result = session.execute(
            update(Customer)
            .where(condition, func.coalesce(Customer.locality, "") != value)
            .values(locality=value)
            .execution_options(synchronize_session=False)
        )
        changed += result.rowcount or 0
    return changed
