"""The dashboards at scale (issue 9): building the rollups, the whole sales and customers
dashboards per actor, and the incremental refresh after new orders.

`run()`, after the other phases (the data the dashboards read: customers with the custom field
zizhi_dengji, opportunities with their stage history, follow-ups, pool moves, orders):
1. makes 30% of the customers remote (the generator leaves them all local in 东营; locality keys
   every rollup), then builds every rollup in full (refresh_rollups with full=True, one fact
   at a time, then the customers dashboard's own tables), timing each and counting its rows;
2. times, as the Sales Rep bench_03_04, the manager bench_03_00 (department tree) and the admin,
   the whole sales dashboard and the whole customers dashboard, without and with a custom-field
   filter (zizhi_dengji = one of its choices, varied per repetition), over the last 12 months:
   every registered chart's data function plus its figure as the page's data URL serves it
   (views.analytics.chart_json), summed, in process inside a request context (the data scope's
   per-request cache behaves as in a request). Beside it, raw_sql_ms: the database's own time
   of the same calls (every statement's execution, summed);
3. inserts 100 approved orders of today (with a line each), then times refresh_rollups as the
   worker calls it (incremental), then removes them and refreshes again (untimed), LONG_RUNS
   times.
Prints the table lines of bench/run.py; nothing passes or fails on time.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from flask import Flask
from sqlalchemy import delete, event, func, insert, select, update
from sqlalchemy.orm import Session

from app.analytics import Filters, charts_of
from app.analytics.customer_rollups import refresh_customer_rollups
from app.analytics.rollups import FACTS, keyed_fields, refresh_rollups
from app.analytics.top_customers import STATE as TOP_CUSTOMERS
from app.extensions import db
from bench.common import QueryLog, Result, failed_result, make_result
from models.analytics import Rollup, TopCustomerRollup
from models.base import utcnow
from models.customers import Customer
from models.orders import Order, OrderLine, PaymentPlan
from models.security import CrmUser

TARGET_MS = 500
REFRESH_TARGET_MS = 60_000
ACTORS = {"rep": "bench_03_04", "manager": "bench_03_00", "admin": "admin"}
DASHBOARDS = ("sales", "customers")
CUSTOM_FIELD = "zizhi_dengji"
NEW_ORDERS = 100
LONG_RUNS = 3
NUMBER_PREFIX = "BENCH-AN-"


class DatabaseTimer:
    """The database's own time: every statement's execution, summed."""

    def __init__(self, engine: Any) -> None:
        self.total = 0.0
        self._started: list[float] = []
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, *args: Any) -> None:
        self._started.append(time.perf_counter())

    def _after(self, *args: Any) -> None:
        if self._started:
            self.total += (time.perf_counter() - self._started.pop()) * 1000

    def reset(self) -> None:
        self.total, self._started = 0.0, []


def operation_names(args: argparse.Namespace) -> list[str]:
    names = ["analytics rollup build (full)"]
    for dashboard in DASHBOARDS:
        for label in ACTORS:
            names.append(f"analytics {dashboard} dashboard ({label})")
            names.append(f"analytics {dashboard} dashboard, cf filter ({label})")
    names.append(f"analytics refresh after {NEW_ORDERS} orders")
    return names


def selected(args: argparse.Namespace, name: str) -> bool:
    return not args.only or any(s in name for s in args.only)


def wanted(args: argparse.Namespace) -> bool:
    return getattr(args, "analytics", True) and any(selected(args, n) for n in operation_names(args))


# --- 1. the full build -----------------------------------------------------------------------------
def build(app: Flask, details: dict[str, Any]) -> float:
    """Every rollup built from scratch, fact by fact; returns the total seconds."""
    with app.app_context():
        session = db.session
        try:
            now = utcnow()
            total = 0.0
            per_fact: dict[str, Any] = {"remote customers": remote_customers(session)}
            for name in [*FACTS, TOP_CUSTOMERS]:
                started = time.perf_counter()
                refresh_rollups(session, now, full=True, facts=[name])
                seconds = time.perf_counter() - started
                counted = select(func.count()).select_from(Rollup).where(Rollup.fact == name)
                if name == TOP_CUSTOMERS:
                    counted = select(func.count()).select_from(TopCustomerRollup)
                rows = session.scalar(counted) or 0
                per_fact[name] = {"seconds": round(seconds, 2), "rows": rows}
                total += seconds
                print(f"    rollup {name:<12} {rows:>9,} rows  {seconds:8.2f} s", flush=True)
            started = time.perf_counter()
            written = refresh_customer_rollups(session, now, True)
            seconds = time.perf_counter() - started
            per_fact["customers dashboard tables"] = {"seconds": round(seconds, 2), "rows": written}
            print(f"    customers dashboard tables {written}  {seconds:8.2f} s", flush=True)
            total += seconds
            details["rollup_build"] = per_fact
            details["statistics_seconds"] = statistics_after_build(session)
            details["rollup_rows"] = session.scalar(select(func.count()).select_from(Rollup)) or 0
            details["keyed_custom_fields"] = [f.api_name for f in keyed_fields(session)]
            return total
        finally:
            db.session.remove()


def remote_customers(session: Session) -> int:
    """The generated customers are all in 东营 (local); a real supplier sells to other cities
    too, and locality keys every rollup (a filter and a dimension), so 30% become remote before
    the build (by id, the same rows every run), as classify_locality would mark them."""
    if session.scalar(select(Customer.id).where(Customer.locality == "remote").limit(1)) is None:
        session.execute(
            update(Customer).where((Customer.id % 10).in_((1, 4, 7))).values(locality="remote")
        )
        session.commit()
    remote = session.scalar(select(func.count()).where(Customer.locality == "remote")) or 0
    print(f"    remote customers {remote:>9,}", flush=True)
    return remote


def statistics_after_build(session: Session) -> float:
    """Planner statistics of the new rollup rows, as the worker's nightly statistics job (SQLite)
    or autovacuum (PostgreSQL) would soon take; and the index on (fact, dim1, period) that a
    database migrated before it was added lacks."""
    started = time.perf_counter()
    connection = session.connection()
    dialect = connection.dialect.name
    if dialect in ("sqlite", "postgresql"):
        connection.exec_driver_sql(
            "CREATE INDEX IF NOT EXISTS ix_rollup_fact_dim ON crm_rollup (fact, dim1, period)"
        )
        connection.exec_driver_sql("ANALYZE crm_rollup")
    session.commit()
    return round(time.perf_counter() - started, 2)


# --- 2. the dashboards ------------------------------------------------------------------------------
def dashboard_call(app: Flask, dashboard: str, user_id: int, filters: Filters) -> Callable[[], int]:
    """One whole dashboard as its data URLs serve it: every chart's data and figure JSON."""
    from views.analytics import chart_json

    def call() -> int:
        with app.test_request_context(f"/dashboards/{dashboard}"):
            session = db.session
            try:
                user = session.get(CrmUser, user_id)
                size = 0
                for chart in charts_of(dashboard):
                    df = chart.data(session, user, filters)
                    size += len(chart_json(chart, df, filters))
                return size
            finally:
                db.session.remove()

    return call


def choices(app: Flask) -> list[str]:
    with app.app_context():
        try:
            for field in keyed_fields(db.session):
                if field.api_name == CUSTOM_FIELD:
                    return list(field.choice_values)
            return []
        finally:
            db.session.remove()


def time_dashboard(
    app: Flask,
    args: argparse.Namespace,
    dashboard: str,
    user_id: int,
    custom: list[str] | None,
    timer: DatabaseTimer,
    queries: QueryLog,
) -> tuple[list[float], list[float], int]:
    rng = random.Random(args.seed)
    times, raw = [], []
    for repetition in range(args.warmup + args.repeat):
        chosen = {CUSTOM_FIELD: rng.choice(custom)} if custom else {}
        call = dashboard_call(app, dashboard, user_id, Filters(custom=chosen))
        timer.reset()
        queries.reset()
        started = time.perf_counter()
        call()
        elapsed = (time.perf_counter() - started) * 1000
        if repetition >= args.warmup:
            times.append(elapsed)
            raw.append(timer.total)
    return times, raw, queries.count


# --- 3. the incremental refresh ---------------------------------------------------------------------
def add_orders(session: Session, rng: random.Random) -> list[int]:
    """NEW_ORDERS approved orders of today on random owned customers, one line each."""
    low, high = session.execute(select(func.min(Customer.id), func.max(Customer.id))).one()
    now = utcnow()
    rows = []
    stamp = int(time.time() * 1000)
    while len(rows) < NEW_ORDERS:
        customer = session.execute(
            select(Customer.id, Customer.owner_id, Customer.department_id)
            .where(Customer.id >= rng.randint(low, high), Customer.owner_id.is_not(None))
            .limit(1)
        ).first()
        if customer is None:
            continue
        amount = Decimal(rng.randint(1_000, 200_000))
        rows.append(
            {
                "number": f"{NUMBER_PREFIX}{stamp}-{len(rows):03d}",
                "kind": "order",
                "title": "基准测试订单",
                "customer_id": customer.id,
                "status": "approved",
                "ordered_on": now.date(),
                "total_amount": amount,
                "paid_amount": Decimal(0),
                "invoiced_amount": Decimal(0),
                "max_discount_percent": Decimal(0),
                "approved_at": now,
                "owner_id": customer.owner_id,
                "department_id": customer.department_id,
                "created_at": now,
                "updated_at": now,
                "custom": {},
            }
        )
    session.execute(insert(Order.__table__), rows)
    ids = list(session.scalars(select(Order.id).where(Order.number.like(f"{NUMBER_PREFIX}{stamp}-%"))))
    lines = [
        {"order_id": oid, "position": 1, "description": "基准", "quantity": Decimal(1),
         "unit_price": row["total_amount"], "discount_percent": Decimal(0), "amount": row["total_amount"]}
        for oid, row in zip(sorted(ids), rows, strict=True)
    ]  # fmt: skip
    session.execute(insert(OrderLine.__table__), lines)
    session.commit()
    return ids


def drop_orders(session: Session, ids: list[int]) -> None:
    session.execute(delete(OrderLine).where(OrderLine.order_id.in_(ids)))
    session.execute(delete(PaymentPlan).where(PaymentPlan.order_id.in_(ids)))
    session.execute(delete(Order).where(Order.id.in_(ids)))
    session.commit()


def time_refresh(
    app: Flask, args: argparse.Namespace, timer: DatabaseTimer, details: dict[str, Any]
) -> Result:
    name = f"analytics refresh after {NEW_ORDERS} orders"
    rng = random.Random(args.seed)
    times, raw, reports = [], [], []
    with app.app_context():
        session = db.session
        session.info["crm_audit_disabled"] = True  # bulk test data, removed afterwards
        try:
            refresh_rollups(session, utcnow())  # bring everything up to date first (untimed)
            for _run in range(min(LONG_RUNS, args.repeat)):
                ids = add_orders(session, rng)
                timer.reset()
                started = time.perf_counter()
                report = refresh_rollups(session, utcnow(), facts=[*FACTS, TOP_CUSTOMERS])
                times.append((time.perf_counter() - started) * 1000)
                raw.append(timer.total)
                reports.append(report)
                drop_orders(session, ids)
                refresh_rollups(session, utcnow(), facts=[*FACTS, TOP_CUSTOMERS])
        finally:
            session.info.pop("crm_audit_disabled", None)
            db.session.remove()
    details[name] = {"rows written per fact": reports[-1] if reports else {}}
    print(f"    {details[name]}", flush=True)
    return make_result(name, db_name_of(app), times, 0, raw, 0, REFRESH_TARGET_MS)


def db_name_of(app: Flask) -> str:
    with app.app_context():
        return db.engine.dialect.name


# --- running ---------------------------------------------------------------------------------------------
def run(
    app: Flask,
    args: argparse.Namespace,
    queries: QueryLog,
    db_name: str,
    header: str,
    details: dict[str, Any],
) -> list[Result]:
    """Build the rollups and time the dashboards and the refresh (the selected operations)."""
    if not wanted(args):
        return []
    with app.app_context():
        timer = DatabaseTimer(db.engine)
        ids = {
            label: db.session.scalar(select(CrmUser.id).where(CrmUser.username == name))
            for label, name in ACTORS.items()
        }
        db.session.remove()
    results: list[Result] = []
    print()
    print(header, flush=True)
    name = "analytics rollup build (full)"
    try:
        seconds = build(app, details)
        result = make_result(name, db_name, [seconds * 1000], 0, [seconds * 1000], 0, REFRESH_TARGET_MS)
    except Exception as exc:  # noqa: BLE001 - report it; the dashboards then read what exists
        result = failed_result(name, db_name, exc, REFRESH_TARGET_MS)
    results.append(result)
    print(result.line(), flush=True)
    custom = choices(app)
    for dashboard in DASHBOARDS:
        for label, user_id in ids.items():
            for filtered in (False, True):
                name = f"analytics {dashboard} dashboard{', cf filter' if filtered else ''} ({label})"
                if not selected(args, name):
                    continue
                try:
                    if user_id is None:
                        raise RuntimeError(f"no user {ACTORS[label]}")
                    if filtered and not custom:
                        raise RuntimeError(f"{CUSTOM_FIELD} is not an indexed select field here")
                    times, raw, count = time_dashboard(
                        app, args, dashboard, user_id, custom if filtered else None, timer, queries
                    )
                    result = make_result(name, db_name, times, count, raw, count, TARGET_MS)
                except Exception as exc:  # noqa: BLE001
                    result = failed_result(name, db_name, exc, TARGET_MS)
                results.append(result)
                print(result.line(), flush=True)
    name = f"analytics refresh after {NEW_ORDERS} orders"
    if selected(args, name):
        try:
            result = time_refresh(app, args, timer, details)
        except Exception as exc:  # noqa: BLE001
            result = failed_result(name, db_name, exc, REFRESH_TARGET_MS)
        results.append(result)
        print(result.line(), flush=True)
    details["summary"] = {
        r.operation: {"median_ms": r.median_ms, "p95_ms": r.p95_ms, "raw_sql_ms": r.raw_sql_ms}
        for r in results
    }
    return results


__all__ = ["run", "wanted", "operation_names"]
