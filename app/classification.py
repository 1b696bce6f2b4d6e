"""Customer classification, recomputed by the worker: purchase frequency (高频/中频/低频) over a
window, and local/remote from the company's home city. Both are plain columns, so they serve as
list filters, segments and chart dimensions at no cost.

A purchase is an approved order (approved, executing or completed) approved in the window, or a
won opportunity closed in the window that has no such order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, exists, func, select, update
from sqlalchemy.orm import Session

from models.base import utcnow
from models.customers import Customer, Region
from models.orders import LIVE_ORDER, Order
from models.sales import Opportunity


@dataclass(frozen=True)
class FrequencyRule:
    """Purchases within `window_days`: at least `high` is 高频, at least `mid` 中频, else 低频."""

    window_days: int = 365
    high: int = 6
    mid: int = 2

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FrequencyRule:
        rule = cls(
            int(config.get("CRM_FREQUENCY_WINDOW_DAYS", 365)),
            int(config.get("CRM_FREQUENCY_HIGH", 6)),
            int(config.get("CRM_FREQUENCY_MID", 2)),
        )
        if not (rule.window_days > 0 and rule.high > rule.mid > 0):
            raise ValueError(
                "CRM_FREQUENCY_*: the window must be positive and HIGH > MID > 0 "
                f"(got window {rule.window_days}, high {rule.high}, mid {rule.mid})"
            )
        return rule


def classify_purchase_frequency(session: Session, rule: FrequencyRule, now: dt.datetime | None = None) -> int:
    """Set every customer's purchase_frequency from its purchases in the window, in one UPDATE;
    returns how many rows changed."""
    since = (now or utcnow()) - dt.timedelta(days=rule.window_days)
    orders = (
        select(func.count())
        .where(
            Order.customer_id == Customer.id,
            Order.status.in_(LIVE_ORDER),
            Order.approved_at >= since,
        )
        .correlate(Customer)
        .scalar_subquery()
    )
    # a won deal usually becomes an order; one that did not (a company not using orders) counts
    won_without_order = (
        select(func.count())
        .where(
            Opportunity.customer_id == Customer.id,
            Opportunity.status == "won",
            Opportunity.closed_at >= since,
            ~exists().where(Order.opportunity_id == Opportunity.id, Order.status.in_(LIVE_ORDER)),
        )
        .correlate(Customer)
        .scalar_subquery()
    )
    purchases = orders + won_without_order
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


def home_city(session: Session, config: Mapping[str, Any]) -> int | None:
    """CRM_HOME_CITY as a city code, None when unset; a code that is not a city is refused, so a
    typo cannot silently make every customer 外地."""
    raw = str(config.get("CRM_HOME_CITY") or "").strip()
    if not raw:
        return None
    city = None
    if raw.isdigit():
        city = session.scalar(select(Region.code).where(Region.code == int(raw), Region.level == 2))
    if city is None:
        raise ValueError(f"CRM_HOME_CITY={raw!r} is not a city code (e.g. 370500 for 东营市)")
    return city


def classify_customers(session: Session, config: Mapping[str, Any], now: dt.datetime | None = None) -> str:
    """Both classifications with the installation's settings (the worker's daily job and
    `flask crm classify`); the caller commits. Returns a one-line report."""
    rule = FrequencyRule.from_config(config)
    city = home_city(session, config)
    report = f"purchase frequency: {classify_purchase_frequency(session, rule, now)} changed"
    if city is None:
        return report + "; local/remote: CRM_HOME_CITY not set"
    return report + f"; local/remote: {classify_locality(session, city)} changed"
