"""The company's ten largest customers over the dashboards' quick date ranges, precomputed.

Why: the sales dashboard's 客户排行 ranks customers by the revenue of their live orders in the
period. For a rep or a manager that is a bounded live query along the owner's or the
departments' order index (their share of the orders); for a user who sees every order, it
reads all of the period's orders (about 1,700,000 at the standard scale: seconds). So for the
ranges the filter bar offers (this month, this quarter, this year and the last 12 months, the
default), the worker keeps the ten largest customers of the company per custom_key
(crm_rollup_top_customer), and sales.top_customers reads them when a user who sees every order
asks for exactly such a range with no owner or department filter. Any other range or filter,
and any narrower data scope, is answered live.

Exact: every customer has one custom_key, so the ten largest customers matching a custom-field
filter (a union of custom_key groups) are the ten largest of those groups' top tens.

Freshness: rollups.refresh_rollups (every 10 minutes) rebuilds these rows when an order of one of
the ranges changed since its previous run (the order fact's touched months), when the ranges
moved (a new month since the last rebuild), and with every full rebuild of the orders (daily,
and when the keyed custom fields change): the rollups' own bounds.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context
from sqlalchemy import (
    ColumnElement,
    Date,
    DateTime,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from app.analytics.filters import QUICK_RANGES, quick_range
from models.analytics import RollupState, TopCustomerRollup
from models.customers import Customer
from models.orders import LIVE_ORDER, Order

TOP = 10
#: its row in crm_rollup_state (rebuilt_at: the last rebuild, which fixes the ranges it holds)
STATE = "top_customer"


def _month(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)


def quick_months(today: dt.date) -> list[tuple[dt.date, dt.date]]:
    """The (first month, last month) of each quick range around `today`, as the charts read a
    range by whole months."""
    ranges = {tuple(_month(day) for day in quick_range(code, today)) for code in QUICK_RANGES}
    return sorted(ranges)  # type: ignore[arg-type]


def _local_date(moment: dt.datetime) -> dt.date:
    zone = current_app.config.get("BABEL_DEFAULT_TIMEZONE", "UTC") if has_app_context() else "UTC"
    return moment.replace(tzinfo=dt.UTC).astimezone(ZoneInfo(zone)).date()


def refresh_top_customers(
    session: Session,
    now: dt.datetime,
    touched: set[dt.date] | None,
    key: ColumnElement[str],
    keyed: bool,
    last_rebuilt: dt.datetime | None,
) -> int | None:
    """Rebuild the top lists when stale (see the module docstring): `touched` are the months of
    orders changed since the previous run (None: the orders were rebuilt in full), `key` the
    customer's custom_key as SQL (`keyed`: whether any field is in it), `last_rebuilt` this
    table's previous rebuild (its state row, kept by the caller). Returns the rows written, or
    None when nothing was stale. The caller saves the state and commits."""
    ranges = quick_months(_local_date(now))
    stale = (
        touched is None
        or last_rebuilt is None
        or quick_months(_local_date(last_rebuilt)) != ranges
        or any(first <= month <= final for month in touched for first, final in ranges)
    )
    if not stale:
        return None
    connection = session.connection()
    connection.execute(delete(TopCustomerRollup))
    connection.execute(_insert_top(ranges, now, key, keyed))
    return connection.scalar(select(func.count()).select_from(TopCustomerRollup)) or 0


def _insert_top(
    ranges: list[tuple[dt.date, dt.date]], now: dt.datetime, key: ColumnElement[str], keyed: bool
) -> Any:
    """One INSERT ... SELECT of every range's ten largest customers per custom_key: the orders
    of all the ranges summed per customer and range in one pass, each customer's key read once,
    then each range ranked within its key."""
    sums = []
    for index, (first, last) in enumerate(ranges):
        inside = and_(Order.ordered_on >= first, Order.ordered_on < _next_month(last))
        sums.append(func.sum(case((inside, 1), else_=0)).label(f"n{index}"))
        sums.append(func.sum(case((inside, Order.total_amount), else_=0)).label(f"a{index}"))
    start, end = min(r[0] for r in ranges), _next_month(max(r[1] for r in ranges))
    totals = (
        select(Order.customer_id.label("customer_id"), *sums)
        .where(Order.status.in_(LIVE_ORDER), Order.ordered_on >= start, Order.ordered_on < end)
        .group_by(Order.customer_id)
        .subquery("totals")
    )
    customers = (
        select(totals, key.label("custom_key"))
        .join(Customer, Customer.id == totals.c.customer_id)
        .cte("customers")
    )
    parts = []
    for index, (first, last) in enumerate(ranges):
        n, amount = customers.c[f"n{index}"], customers.c[f"a{index}"]
        order = (amount.desc(), customers.c.customer_id)
        position = func.row_number().over(
            partition_by=customers.c.custom_key if keyed else None, order_by=order
        )
        ranked = (
            select(customers.c.customer_id, customers.c.custom_key, n.label("n"), amount.label("amount"))
            .add_columns(position.label("position"))
            .where(n > 0)
            .subquery(f"ranked{index}")
        )
        parts.append(
            select(
                literal(first, Date()).label("first_month"),
                literal(last, Date()).label("last_month"),
                ranked.c.custom_key,
                ranked.c.customer_id,
                ranked.c.n,
                ranked.c.amount,
                literal(now, DateTime()).label("refreshed_at"),
            ).where(ranked.c.position <= TOP)
        )
    columns = ["first_month", "last_month", "custom_key", "customer_id", "n", "amount", "refreshed_at"]
    return insert(TopCustomerRollup).from_select(columns, union_all(*parts))


def precomputed_top(
    session: Session, first: dt.date, last: dt.date, custom: list[ColumnElement[bool]]
) -> list[tuple[int, int, Decimal]] | None:
    """(customer id, orders, revenue) of the company's ten largest customers from first to last
    month (whole months) meeting the custom-key conditions `custom`, or None when that range is
    not kept (the caller then asks the orders)."""
    rebuilt = session.scalar(select(RollupState.rebuilt_at).where(RollupState.fact == STATE))
    if rebuilt is None or (first, last) not in quick_months(_local_date(rebuilt)):
        return None
    rows = session.execute(
        select(TopCustomerRollup.customer_id, TopCustomerRollup.n, TopCustomerRollup.amount)
        .where(TopCustomerRollup.first_month == first, TopCustomerRollup.last_month == last, *custom)
        .order_by(TopCustomerRollup.amount.desc(), TopCustomerRollup.customer_id)
        .limit(TOP)
    ).all()
    return [(row[0], row[1], row[2]) for row in rows]
