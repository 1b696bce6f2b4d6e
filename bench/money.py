"""The customer pool and the money at scale (issue 6): the daily recycle run, the pool lists,
claiming, handover and creating an order.

`prepare()` adds to the bench customers (only what is missing, seeded per batch, one commit per
batch, so a stopped run resumes): two pools serving the 20 bench teams with the rules of the demo
(no follow-up for 30 days, 60 for key customers, OR not won within 90 days; locked and won
customers exempt), half of the customers moved into them as app.pools moves them (owner and
department cleared, pooled_at, a PoolMove each), when each owned customer was got (owned_since)
and a few locked, so that about 2% of the owned customers are due on the day of the run, and two
orders per customer (about three lines each) over the past year.

`run()` times, through the Flask test client as the Sales Rep bench_03_04, the manager of team 03
and the Admin, each beside the SQL it needs run directly: the pool list (screen and REST), claiming
a customer, creating an order with 10 lines, handing a rep's 5,000 customers to a colleague and
back, and (in process, as the worker runs it) the daily recycle run, first from scratch and then
the next day. Every write is undone afterwards, so the database stays as generated.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import (
    Engine,
    bindparam,
    delete,
    event,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, aliased

from app.access import browsable_pool_ids, pool_clause
from app.extensions import db
from app.orders import line_amount, money, next_number, number_pattern
from app.pools import OPEN_ORDER_STATUSES, recycle
from bench.common import PAGE_SIZE, PASSWORD, BenchError, QueryLog, Result, failed_result, login, make_result
from bench.sales import batch_rng, ensure_products, moment_before, returning_ids
from models.base import utcnow
from models.customers import Customer, Industry, Region
from models.notifications import Notification, OutboxMessage
from models.orders import Order, OrderLine
from models.pools import CustomerPool, PoolMove, PoolRule
from models.sales import Opportunity, Product, Task
from models.security import CrmUser, Department

TARGET_MS = 100
RECYCLE_TARGET_MS = 60_000
HANDOVER_TARGET_MS = 10_000
REP_USERNAME = "bench_03_04"  # a Sales Rep of 销售04组 (sees only their own customers)
MANAGER_USERNAME = "bench_03_00"  # team 03's Sales Manager (department_tree)
COLLEAGUE_USERNAME = "bench_03_05"  # the rep of the same team who takes the handover
ADMIN_USERNAME = "admin"
BATCH_IDS = 10_000  # customers per batch (one transaction each)
POOLED_SHARE = 0.5
ORDERS_PER_CUSTOMER = 2  # 2,000,000 for 1,000,000 customers
ORDER_DAYS = 365
LOCKED_SHARE = 0.03
ORDER_LINES = 10  # lines of the order created through the API
#: recycle runs and handovers are long: this many timed repetitions (at most --repeat)
LONG_RUNS = 3
DAY = dt.timedelta(days=1)
#: pools of the bench teams: name, teams served (1-based, 销售NN组), claim settings
POOLS = [
    ("基准公海A", range(1, 11), {"daily_claim_cap": 20, "hidden_fields": ["mobile", "email"]}),
    ("基准公海B", range(11, 21), {"daily_claim_cap": 10, "hidden_fields": []}),
]
RULES = [("no_followup", 30, {"key": 60}), ("not_won", 90, {})]
RELEASE_REASONS = ["客户暂无采购计划", "客户已转向竞争对手", "联系不上", "非目标客户"]
ORDER_STATUS_WEIGHTS = {
    "completed": 45,
    "executing": 25,
    "approved": 15,
    "voided": 5,
    "pending": 5,
    "draft": 5,
}
PART_TABLES = ["crm_customer", "crm_pool_move", "crm_order", "crm_order_line"]


# --- generation --------------------------------------------------------------------------------
def ensure_pools(session: Session) -> tuple[dt.datetime, dict[int, int]]:
    """The bench pools (created once, with their rules); returns the reference moment of the
    generation (the first pool's creation: due dates and the recycle runs count from it) and
    department id -> pool id."""
    for name, teams, settings in POOLS:
        if session.scalar(select(CustomerPool.id).where(CustomerPool.name == name)) is not None:
            continue
        names = [f"销售{t:02d}组" for t in teams]
        departments = list(session.scalars(select(Department).where(Department.name.in_(names))))
        if not departments:
            raise SystemExit("the bench teams (销售01组 ...) are missing: generate customers first")
        now = utcnow().replace(microsecond=0)
        pool = CustomerPool(
            name=name,
            description=f"基准测试公海: {names[0]}-{names[-1]}",
            rule_logic="or",
            exempt_won=True,
            exempt_locked=True,
            warn_days=3,
            reclaim_cooldown_days=30,
            max_owned=6000,
            max_locked=200,
            created_at=now,
            updated_at=now,
            **settings,
        )
        pool.departments = departments
        pool.rules = [
            PoolRule(kind=k, days=d, days_by_level=by, position=i) for i, (k, d, by) in enumerate(RULES)
        ]
        session.add(pool)
        session.commit()
        print(f"pool {name} created, serving {len(departments)} teams", flush=True)
    pools = list(
        session.scalars(
            select(CustomerPool).where(CustomerPool.name.in_([p[0] for p in POOLS])).order_by(CustomerPool.id)
        )
    )
    served = {department.id: pool.id for pool in pools for department in pool.departments}
    return pools[0].created_at.replace(microsecond=0), served


def user_id(session: Session, username: str) -> int:
    found = session.scalar(select(CrmUser.id).where(CrmUser.username == username))
    if found is None:
        raise SystemExit(f"user {username} not found (run the customer generation first)")
    return found


def id_ranges(session: Session, start: int | None = None) -> Iterator[tuple[int, int]]:
    low, high = session.execute(select(func.min(Customer.id), func.max(Customer.id))).one()
    first = low if start is None else max(start, low)
    for begin in range(first, (high or 0) + 1, BATCH_IDS):
        yield begin, begin + BATCH_IDS


def pool_customers(
    session: Session, seed: int, reference: dt.datetime, served: dict[int, int]
) -> dict[str, Any]:
    """Half of the customers into the pool serving their department, as a recycle or a release
    over the past year would have put them (the rep's own customers stay theirs: the handover
    moves 5,000). Each id range is one transaction; a range with a generated move is done."""
    table = Customer.__table__
    rep = user_id(session, REP_USERNAME)
    done = session.scalar(select(func.max(PoolMove.customer_id)).where(PoolMove.moved_at < reference))
    first = session.scalar(select(func.min(Customer.id))) or 1
    start = first if done is None else first + ((done - first) // BATCH_IDS + 1) * BATCH_IDS
    last = session.scalar(select(func.max(Customer.id))) or 0
    if start > last:
        print("pooled customers: already generated, nothing to do", flush=True)
        return {"rows": 0, "seconds": None}
    print(f"moving half of customers {start:,}..{last:,} into the pools ...", flush=True)
    names = {p.id: p.name for p in session.scalars(select(CustomerPool))}
    started, written = time.perf_counter(), 0
    move = update(table).where(table.c.id == bindparam("b_id"))
    for low, high in id_ranges(session, start):
        rows = session.execute(
            select(table.c.id, table.c.owner_id, table.c.department_id)
            .where(
                table.c.id >= low, table.c.id < high, table.c.owner_id.is_not(None), table.c.pool_id.is_(None)
            )
            .order_by(table.c.id)
        ).all()
        rng = batch_rng(seed, "pooled", low)
        candidates = [row for row in rows if row.owner_id != rep and row.department_id in served]
        chosen = sorted(rng.sample(candidates, min(len(candidates), round(len(rows) * POOLED_SHARE))))
        moves, customers = [], []
        for row in chosen:
            pool_id = served[row.department_id]
            when = moment_before(reference, rng, 1, 365)
            recycled = rng.random() < 0.7
            reason = (
                f"自动回收公海「{names[pool_id]}」: 超过 30 天未跟进"
                if recycled
                else rng.choice(RELEASE_REASONS)
            )
            moves.append(
                {
                    "customer_id": row.id,
                    "action": "recycle" if recycled else "release",
                    "pool_id": pool_id,
                    "from_user_id": row.owner_id,
                    "to_user_id": None,
                    "reason": reason,
                    "actor_id": None if recycled else row.owner_id,
                    "moved_at": when,
                    "batch": None,
                }
            )
            customers.append({"b_id": row.id, "pool_id": pool_id, "pooled_at": when})
        if customers:
            session.execute(insert(PoolMove.__table__), moves)
            session.execute(
                move.values(
                    owner_id=None,
                    department_id=None,
                    pool_id=bindparam("pool_id"),
                    pooled_at=bindparam("pooled_at"),
                    owned_since=None,
                    recycle_at=None,
                    locked=False,
                    updated_at=bindparam("pooled_at"),
                ),
                customers,
            )
        session.commit()
        written += len(customers)
    seconds = round(time.perf_counter() - started, 1)
    print(f"pooled customers: {written:,} in {seconds:.1f}s", flush=True)
    return {"rows": written, "seconds": seconds}


def plan_owned(
    rng: random.Random, level: str, last_followup: dt.datetime | None, exempt: bool, reference: dt.datetime
) -> dt.datetime:
    """When the owner got the customer, so that the pool's first rule to fire (30 days without
    follow-up, 60 for key customers, or 90 days without winning) falls at a moment spread evenly
    from a day before the run to the longest a customer can stay (about 1/30 due per day).
    Exempt customers (won, locked) may have been owned for up to two years."""
    if exempt:
        return moment_before(reference, rng, 0, 730)
    days = 60 if level == "key" else 30
    due = reference + dt.timedelta(seconds=rng.uniform(-DAY.total_seconds(), days * DAY.total_seconds()))
    due = due.replace(microsecond=0)
    if last_followup is None or last_followup <= due - dt.timedelta(days=days):
        return due - dt.timedelta(days=days)  # no follow-up since: that rule fires
    return due - dt.timedelta(days=90)  # followed up lately: not won within 90 days fires


def own_customers(session: Session, seed: int, reference: dt.datetime) -> dict[str, Any]:
    """owned_since (and a few locks) for every owned customer not done yet, by id range."""
    table = Customer.__table__
    pending = session.scalar(
        select(func.count()).where(table.c.owner_id.is_not(None), table.c.owned_since.is_(None))
    )
    if not pending:
        print("owned customers: already dated, nothing to do", flush=True)
        return {"rows": 0, "seconds": None}
    print(f"dating {pending:,} owned customers ...", flush=True)
    started, written = time.perf_counter(), 0
    statement = update(table).where(table.c.id == bindparam("b_id"))
    for low, high in id_ranges(session):
        in_range = (table.c.id >= low, table.c.id < high)
        rows = session.execute(
            select(table.c.id, table.c.level, table.c.status, table.c.last_followup_at)
            .where(*in_range, table.c.owner_id.is_not(None), table.c.owned_since.is_(None))
            .order_by(table.c.id)
        ).all()
        if not rows:
            continue
        won = set(
            session.scalars(
                select(Opportunity.customer_id).where(
                    Opportunity.customer_id >= low,
                    Opportunity.customer_id < high,
                    Opportunity.status == "won",
                )
            )
        )
        rng = batch_rng(seed, "owned", low)
        values = []
        for row in rows:
            locked = rng.random() < LOCKED_SHARE
            exempt = locked or row.status == "won" or row.id in won
            since = plan_owned(rng, row.level, row.last_followup_at, exempt, reference)
            values.append({"b_id": row.id, "owned_since": since, "locked": locked})
        session.execute(
            statement.values(
                owned_since=bindparam("owned_since"),
                locked=bindparam("locked"),
                updated_at=table.c.updated_at,
            ),
            values,
        )
        session.commit()
        written += len(values)
    seconds = round(time.perf_counter() - started, 1)
    print(f"owned customers: {written:,} dated in {seconds:.1f}s", flush=True)
    return {"rows": written, "seconds": seconds}


def last_owners(session: Session) -> dict[int, int | None]:
    """Every customer's owner, or for a pooled one the owner it had before the pool, read once.

    A correlated `ORDER BY id LIMIT 1` subquery per customer made PostgreSQL walk the moves'
    primary key from the start for each pooled customer (about 40 orders a second)."""
    table, moves = Customer.__table__, PoolMove.__table__
    owners: dict[int, int | None] = dict(session.execute(select(table.c.id, table.c.owner_id)).tuples().all())
    former: dict[int, int] = {}
    for customer_id, from_user_id in session.execute(
        select(moves.c.customer_id, moves.c.from_user_id)
        .where(moves.c.from_user_id.is_not(None))
        .order_by(moves.c.id)
    ).tuples():
        former.setdefault(customer_id, from_user_id)
    return {cid: owner if owner is not None else former.get(cid) for cid, owner in owners.items()}


def order_rows(
    rng: random.Random,
    day: dt.date,
    count: int,
    owners: dict[int, int | None],
    departments: dict[int, int | None],
    products: list[tuple[int, str, Decimal]],
    reference: dt.datetime,
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """`count` orders of one day on random customers with their lines, numbered as
    app.orders numbers them (DD-/HT-date-0001 per kind and day)."""
    customers = [cid for cid in owners if owners[cid] is not None]
    sequence = {"order": 0, "contract": 0}
    age = (reference.date() - day).days
    result = []
    for _ in range(count):
        customer = rng.choice(customers)
        owner = owners[customer]
        kind = "contract" if rng.random() < 0.2 else "order"
        sequence[kind] += 1
        prefix = "HT" if kind == "contract" else "DD"
        status = rng.choices(list(ORDER_STATUS_WEIGHTS), weights=list(ORDER_STATUS_WEIGHTS.values()))[0]
        if age < 30 and status == "completed":
            status = "executing"
        created = dt.datetime.combine(day, dt.time(1)) + dt.timedelta(seconds=rng.randint(0, 10 * 3600))
        approved = None
        if status in ("approved", "executing", "completed") or (status == "voided" and rng.random() < 0.5):
            approved = min(created + dt.timedelta(hours=rng.randint(1, 72)), reference)
        lines = []
        for position in range(1, max(1, min(6, round(rng.gauss(3, 1.2)))) + 1):
            product_id, _name, price = rng.choice(products)
            quantity = Decimal(rng.randint(1, 200))
            discount = Decimal(rng.choice([0, 0, 0, 5, 10]))
            lines.append(
                {
                    "position": position,
                    "product_id": product_id,
                    "description": _name,
                    "quantity": quantity,
                    "unit_price": price,
                    "discount_percent": discount,
                    "amount": line_amount(quantity, price, discount),
                }
            )
        total = money(sum((line["amount"] for line in lines), Decimal(0)))
        row = {
            "number": f"{prefix}-{day:%Y%m%d}-{sequence[kind]:04d}",
            "kind": kind,
            "title": f"{lines[0]['description']}等 {len(lines)} 项",
            "customer_id": customer,
            "contact_id": None,
            "opportunity_id": None,
            "status": status,
            "ordered_on": day,
            "sign_date": day if kind == "contract" else None,
            "start_date": day if kind == "contract" else None,
            "end_date": day + dt.timedelta(days=365) if kind == "contract" else None,
            "signed_file": None,
            "total_amount": total,
            "paid_amount": Decimal(0),
            "invoiced_amount": Decimal(0),
            "max_discount_percent": max(line["discount_percent"] for line in lines),
            "approved_at": approved,
            "void_reason": "客户取消" if status == "voided" else None,
            "notes": None,
            "owner_id": owner,
            "department_id": departments.get(owner) if owner else None,
            "created_at": created,
            "updated_at": approved or created,
            "created_by_id": owner,
            "updated_by_id": owner,
            "custom": {},
        }
        result.append((row, lines))
    return result


def generate_orders(session: Session, seed: int, reference: dt.datetime) -> dict[str, Any]:
    """Two orders per customer over the past year, one day per transaction (oldest first); the
    day after the newest generated one is where a stopped run resumes."""
    low, high = session.execute(select(func.min(Customer.id), func.max(Customer.id))).one()
    customers = session.scalar(select(func.count()).select_from(Customer)) or 0
    per_day = max(1, round(customers * ORDERS_PER_CUSTOMER / ORDER_DAYS))
    first_day = reference.date() - dt.timedelta(days=ORDER_DAYS)
    newest = session.scalar(select(func.max(Order.ordered_on)).where(Order.ordered_on < reference.date()))
    day = first_day if newest is None else max(first_day, newest + DAY)
    if day >= reference.date():
        print("orders: already generated, nothing to do", flush=True)
        return {"rows": 0, "lines": 0, "seconds": None}
    print(f"generating {per_day:,} orders a day from {day} to {reference.date() - DAY} ...", flush=True)
    products = product_prices(session)
    departments = dict(session.execute(select(CrmUser.id, CrmUser.department_id)).tuples().all())
    everyone = last_owners(session)
    started, written, lines_written, reported = time.perf_counter(), 0, 0, 0
    while day < reference.date():
        rng = batch_rng(seed, "orders", day.toordinal())
        ids = [rng.randint(low, high) for _ in range(per_day)]
        owners = {cid: everyone.get(cid) for cid in sorted(set(ids))}
        planned = order_rows(rng, day, per_day, owners, departments, products, reference)
        order_ids = session.scalars(returning_ids(Order), [row for row, _lines in planned]).all()
        lines = [
            {**line, "order_id": order_id}
            for order_id, (_row, order_lines) in zip(order_ids, planned, strict=True)
            for line in order_lines
        ]
        session.execute(insert(OrderLine.__table__), lines)
        session.commit()
        written += len(planned)
        lines_written += len(lines)
        if written - reported >= 250_000:
            reported = written
            print(f"  {written:,} orders, {time.perf_counter() - started:.0f}s", flush=True)
        day += DAY
    seconds = round(time.perf_counter() - started, 1)
    print(f"orders: {written:,} with {lines_written:,} lines in {seconds:.1f}s", flush=True)
    return {"rows": written, "lines": lines_written, "seconds": seconds}


def vacuum_analyze(engine: Engine) -> float | None:
    """PostgreSQL after the bulk load, as autovacuum soon would (SQLite: nothing)."""
    if engine.dialect.name != "postgresql":
        return None
    started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in PART_TABLES:
            conn.exec_driver_sql(f"VACUUM ANALYZE {table}")
    seconds = round(time.perf_counter() - started, 1)
    print(f"VACUUM ANALYZE of the pool and order tables in {seconds:.1f}s", flush=True)
    return seconds


def due_share(session: Session, reference: dt.datetime) -> dict[str, int]:
    """How many owned customers the first run takes back, predicted from the generated columns
    (the run itself reports what it did)."""
    table = Customer.__table__
    owned = session.scalar(select(func.count()).where(table.c.owner_id.is_not(None))) or 0
    pooled = session.scalar(select(func.count()).where(table.c.pool_id.is_not(None))) or 0
    return {"owned": owned, "pooled": pooled}


def prepare(app: Flask, seed: int) -> dict[str, Any]:
    """Pools, pooled customers, owned customers' dates and a year of orders (only what is
    missing); returns what was generated and how long it took."""
    info: dict[str, Any] = {}
    with app.app_context():
        try:
            session = db.session
            started = time.perf_counter()
            reference, served = ensure_pools(session)
            info["reference"] = reference.isoformat()
            info["pooled"] = pool_customers(session, seed, reference, served)
            info["owned"] = own_customers(session, seed, reference)
            info["orders"] = generate_orders(session, seed, reference)
            parts = [info[k]["seconds"] for k in ("pooled", "owned", "orders")]
            if any(s is not None for s in parts):
                info["generation_seconds"] = round(time.perf_counter() - started, 1)
                print(f"pool and order data generated in {info['generation_seconds']:.1f}s", flush=True)
                session.commit()
                info["vacuum_analyze_seconds"] = vacuum_analyze(db.engine)
            else:
                info["generation_seconds"] = None
            info["rows"] = {
                **due_share(session, reference),
                "pool_moves": session.scalar(select(func.count()).select_from(PoolMove)) or 0,
                "orders": session.scalar(select(func.count()).select_from(Order)) or 0,
                "order_lines": session.scalar(select(func.count()).select_from(OrderLine)) or 0,
            }
            print("money rows: " + ", ".join(f"{k} {v:,}" for k, v in info["rows"].items()), flush=True)
        finally:
            db.session.remove()
    return info


# --- timing helpers ------------------------------------------------------------------------------
class StatementTimer:
    """The database's own time: every statement's execution, summed, with the slowest kept
    (statement text and parameters, for --explain)."""

    def __init__(self, engine: Engine) -> None:
        self.total = 0.0
        self.count = 0
        self.slowest: list[tuple[float, str, Any]] = []
        self._started: list[float] = []
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        self._started.append(time.perf_counter())

    def _after(self, conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if not self._started:
            return
        elapsed = (time.perf_counter() - self._started.pop()) * 1000
        self.total += elapsed
        self.count += 1
        self.slowest.append((elapsed, statement, parameters))
        self.slowest = sorted(self.slowest, key=lambda item: -item[0])[:5]

    def reset(self) -> None:
        self.total, self.count, self.slowest, self._started = 0.0, 0, [], []


@dataclass
class MoneyActor:
    label: str
    username: str
    user_id: int
    web: FlaskClient
    api: FlaskClient
    headers: dict[str, str]


def make_actors(app: Flask) -> dict[str, MoneyActor]:
    ids = {}
    with app.app_context():
        try:
            session = db.session
            for label, username in (
                ("rep", REP_USERNAME),
                ("manager", MANAGER_USERNAME),
                ("admin", ADMIN_USERNAME),
            ):
                ids[label] = (username, user_id(session, username))
                app.appbuilder.sm.reset_password(ids[label][1], PASSWORD)
        finally:
            db.session.remove()
    return {label: MoneyActor(label, name, uid, *login(app, name)) for label, (name, uid) in ids.items()}


def send(
    actor: MoneyActor, method: str, url: str, body: Any = None, api: bool = True, status: int = 200
) -> Any:
    client = actor.api if api else actor.web
    response = client.open(url, method=method, json=body, headers=actor.headers if api else {})
    response.get_data()
    if response.status_code != status:
        detail = response.get_data(as_text=True)[:300] if api else ""
        raise BenchError(f"{method} {url} -> {response.status_code} {detail}".rstrip())
    return response


@dataclass
class Timings:
    """One operation's timed repetitions: app and raw milliseconds, statements of one of each."""

    app: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    queries: int = 0
    raw_queries: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def timed(queries: QueryLog, work: Callable[[], Any]) -> tuple[float, int, Any]:
    queries.reset()
    started = time.perf_counter()
    value = work()
    return (time.perf_counter() - started) * 1000, queries.count, value


# --- pool lists ----------------------------------------------------------------------------------
def raw_pool_list(session: Session, user: CrmUser, cap: int) -> None:
    """The pool list's SQL: the capped count, the 20 newest pooled customers with their industry
    and city names, the pools' names and hidden fields."""
    scope = pool_clause(session, user)
    inner = select(Customer.id).where(scope).limit(cap + 1).subquery()
    session.scalar(select(func.count()).select_from(inner))
    city = aliased(Region)
    session.execute(
        select(
            Customer.id,
            Customer.name,
            Customer.kind,
            Customer.level,
            Customer.status,
            Industry.name,
            city.name,
            Customer.pool_id,
            Customer.pooled_at,
        )
        .outerjoin(Industry, Industry.id == Customer.industry_id)
        .outerjoin(city, city.code == Customer.city_code)
        .where(scope)
        .order_by(Customer.pooled_at.desc())
        .limit(PAGE_SIZE)
    ).all()
    session.execute(select(CustomerPool.id, CustomerPool.name, CustomerPool.hidden_fields)).all()


def time_pool_lists(
    app: Flask, args: argparse.Namespace, actors: dict[str, MoneyActor], queries: QueryLog
) -> dict[str, Timings]:
    found: dict[str, Timings] = {}
    for what, url, api in (
        ("pool list page", "/poolcustomerview/list/", False),
        ("pool REST list", "/api/v1/poolcustomer/", True),
    ):
        for actor in actors.values():
            name = f"money {what} ({actor.label})"
            if not selected(args, name):
                continue
            timings = found[name] = Timings()
            for i in range(args.warmup + args.repeat):
                ms, count, _ = timed(queries, lambda a=actor, u=url, k=api: send(a, "GET", u, api=k))
                if i >= args.warmup:
                    timings.app.append(ms)
                    timings.queries = count
            with app.app_context():
                try:
                    session = db.session
                    user = session.get(CrmUser, actor.user_id)
                    cap = app.config["CRM_COUNT_CAP"]
                    for i in range(args.warmup + args.repeat):
                        ms, count, _ = timed(queries, lambda s=session, u=user, c=cap: raw_pool_list(s, u, c))
                        if i >= args.warmup:
                            timings.raw.append(ms)
                            timings.raw_queries = count
                finally:
                    db.session.remove()
    return found


# --- claim ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pooled:
    """A pooled customer as it was before a claim (restored afterwards)."""

    id: int
    pool_id: int
    pooled_at: dt.datetime | None
    updated_at: dt.datetime
    updated_by_id: int | None


def claim_targets(session: Session, user: CrmUser, count: int, rng: random.Random) -> list[Pooled]:
    """Distinct customers in the pools the rep may browse, at random ids."""
    pools = browsable_pool_ids(session, user)
    scope = pool_clause(session, user)
    if pools is not None and not pools:
        raise SystemExit(f"{user.username} may browse no pool")
    low, high = session.execute(select(func.min(Customer.id), func.max(Customer.id))).one()
    columns = (Customer.id, Customer.pool_id, Customer.pooled_at, Customer.updated_at, Customer.updated_by_id)
    picked: dict[int, Pooled] = {}
    for _ in range(count * 3):
        row = session.execute(
            select(*columns)
            .where(scope, Customer.id >= rng.randint(low, high))
            .order_by(Customer.id)
            .limit(1)
        ).first()
        if row is not None and row.id not in picked:
            picked[row.id] = Pooled(*row)
        if len(picked) == count:
            break
    if len(picked) < count:
        raise SystemExit(f"not enough pooled customers for {count} claims")
    return list(picked.values())


def restore_pooled(session: Session, target: Pooled, move_mark: int) -> None:
    """Put a claimed customer back in its pool as it was, and forget the claim (the rep's daily
    cap and later runs see the pool as generated)."""
    session.execute(
        update(Customer.__table__)
        .where(Customer.__table__.c.id == target.id)
        .values(
            owner_id=None,
            department_id=None,
            pool_id=target.pool_id,
            pooled_at=target.pooled_at,
            owned_since=None,
            recycle_at=None,
            locked=False,
            updated_at=target.updated_at,
            updated_by_id=target.updated_by_id,
        )
    )
    session.execute(delete(PoolMove).where(PoolMove.customer_id == target.id, PoolMove.id > move_mark))
    session.commit()


def raw_claim(session: Session, user: CrmUser, target: Pooled, day_start: dt.datetime) -> None:
    """The claim's SQL without the service: the customer, the daily cap, the cooldown and the
    capacity, then the conditional UPDATE and the history row, committed."""
    now = utcnow()
    session.execute(select(Customer.__table__).where(Customer.__table__.c.id == target.id)).one()
    session.scalar(
        select(func.count())
        .select_from(PoolMove)
        .where(
            PoolMove.to_user_id == user.id,
            PoolMove.action == "claim",
            PoolMove.moved_at >= day_start,
            PoolMove.pool_id == target.pool_id,
        )
    )
    session.scalar(
        select(func.max(PoolMove.moved_at)).where(
            PoolMove.customer_id == target.id, PoolMove.from_user_id == user.id
        )
    )
    session.scalar(select(func.count()).select_from(Customer).where(Customer.owner_id == user.id))
    session.execute(
        update(Customer.__table__)
        .where(
            Customer.__table__.c.id == target.id,
            Customer.__table__.c.pool_id == target.pool_id,
            Customer.__table__.c.owner_id.is_(None),
        )
        .values(
            owner_id=user.id,
            department_id=user.department_id,
            pool_id=None,
            pooled_at=None,
            owned_since=now,
            recycle_at=None,
            updated_at=now,
            updated_by_id=user.id,
        )
    )
    session.execute(
        insert(PoolMove.__table__).values(
            customer_id=target.id,
            action="claim",
            pool_id=target.pool_id,
            to_user_id=user.id,
            actor_id=user.id,
            moved_at=now,
        )
    )
    session.commit()


def time_claims(app: Flask, args: argparse.Namespace, actor: MoneyActor, queries: QueryLog) -> Timings:
    """POST /api/v1/customer/<id>/claim, a different customer each time, each put back untimed."""
    from app.pools import local_day_start  # noqa: PLC0415  (needs the app's time zone)

    timings = Timings()
    rng = random.Random(f"{args.seed}:claims")
    with app.app_context():
        try:
            session = db.session
            user = session.get(CrmUser, actor.user_id)
            count = args.warmup + args.repeat
            targets = claim_targets(session, user, 2 * count, rng)
            mark = session.scalar(select(func.max(PoolMove.id))) or 0
            session.commit()
            for i, target in enumerate(targets[:count]):
                ms, n, _ = timed(
                    queries, lambda t=target: send(actor, "POST", f"/api/v1/customer/{t.id}/claim", {})
                )
                if i >= args.warmup:
                    timings.app.append(ms)
                    timings.queries = n
                restore_pooled(session, target, mark)
            user = session.get(CrmUser, actor.user_id)
            for i, target in enumerate(targets[count:]):
                ms, n, _ = timed(
                    queries, lambda t=target: raw_claim(session, user, t, local_day_start(utcnow()))
                )
                if i >= args.warmup:
                    timings.raw.append(ms)
                    timings.raw_queries = n
                restore_pooled(session, target, mark)
        finally:
            db.session.remove()
    return timings


# --- creating an order ---------------------------------------------------------------------------
def order_body(rng: random.Random, customer_id: int, products: list[int]) -> dict[str, Any]:
    return {
        "title": f"基准订单 {rng.randint(1, 10**9)}",
        "customer": customer_id,
        "lines": [
            {
                "product_id": rng.choice(products),
                "quantity": rng.randint(1, 100),
                "discount_percent": rng.choice([0, 0, 5]),
            }
            for _ in range(ORDER_LINES)
        ],
    }


def raw_order(session: Session, user: CrmUser, body: dict[str, Any], prices: dict[int, Decimal]) -> int:
    """The order's SQL: the day's next number, the order and its 10 lines, committed."""
    now = utcnow()
    day = now.date()
    number = next_number(session, number_pattern("order"), day)
    lines = []
    for position, line in enumerate(body["lines"], start=1):
        price, quantity, discount = (
            prices[line["product_id"]],
            Decimal(line["quantity"]),
            Decimal(line["discount_percent"]),
        )
        lines.append(
            {
                "position": position,
                "product_id": line["product_id"],
                "description": None,
                "quantity": quantity,
                "unit_price": price,
                "discount_percent": discount,
                "amount": line_amount(quantity, price, discount),
            }
        )
    order_id = session.scalar(
        insert(Order.__table__)
        .values(
            number=number,
            kind="order",
            title=body["title"],
            customer_id=body["customer"],
            status="draft",
            ordered_on=day,
            total_amount=money(sum((line["amount"] for line in lines), Decimal(0))),
            paid_amount=0,
            invoiced_amount=0,
            max_discount_percent=max(line["discount_percent"] for line in lines),
            owner_id=user.id,
            department_id=user.department_id,
            created_at=now,
            updated_at=now,
            created_by_id=user.id,
            updated_by_id=user.id,
            custom={},
        )
        .returning(Order.__table__.c.id)
    )
    session.execute(insert(OrderLine.__table__), [{**line, "order_id": order_id} for line in lines])
    session.commit()
    return int(order_id)


def drop_orders(session: Session, ids: list[int]) -> None:
    if ids:
        session.execute(delete(OrderLine).where(OrderLine.order_id.in_(ids)))
        session.execute(delete(Order).where(Order.id.in_(ids)))
    session.commit()


def time_orders(app: Flask, args: argparse.Namespace, actor: MoneyActor, queries: QueryLog) -> Timings:
    """POST /api/v1/order/ with 10 lines on one of the rep's customers (a different one each
    time); the drafts are deleted afterwards, untimed."""
    timings = Timings()
    rng = random.Random(f"{args.seed}:orders")
    count = args.warmup + args.repeat
    with app.app_context():
        try:
            session = db.session
            user = session.get(CrmUser, actor.user_id)
            mine = list(
                session.scalars(select(Customer.id).where(Customer.owner_id == user.id).order_by(Customer.id))
            )
            prices = {pid: price for pid, _name, price in product_prices(session)}
            session.commit()
            created: list[int] = []
            for i in range(count):
                body = order_body(rng, rng.choice(mine), list(prices))
                ms, n, response = timed(
                    queries, lambda b=body: send(actor, "POST", "/api/v1/order/", b, status=201)
                )
                created.append(response.json["id"])
                if i == 0:
                    timings.extra["lines"] = len(
                        response.json["result"].get("lines.id") or response.json["result"].get("lines") or []
                    )
                if i >= args.warmup:
                    timings.app.append(ms)
                    timings.queries = n
            drop_orders(session, created)
            created = []
            for i in range(count):
                body = order_body(rng, rng.choice(mine), list(prices))
                ms, n, order_id = timed(queries, lambda b=body: raw_order(session, user, b, prices))
                created.append(order_id)
                if i >= args.warmup:
                    timings.raw.append(ms)
                    timings.raw_queries = n
            drop_orders(session, created)
        finally:
            db.session.remove()
    return timings


def product_prices(session: Session) -> list[tuple[int, str, Decimal]]:
    """The demo products (created through the product service when missing) and their prices."""
    ids = [p[0] for p in ensure_products(session)]
    rows = session.execute(select(Product.id, Product.name, Product.price).where(Product.id.in_(ids)))
    return [(pid, name, Decimal(price or 100)) for pid, name, price in rows]


# --- handover ------------------------------------------------------------------------------------
RELATED = [(Opportunity, ("open",)), (Order, OPEN_ORDER_STATUSES), (Task, ("open",))]


def snapshot(session: Session, ids: list[int]) -> dict[str, list[dict[str, Any]]]:
    """What a handover changes on the customers and their open relations (restored after)."""
    saved: dict[str, list[dict[str, Any]]] = {}
    columns = ("id", "owner_id", "department_id", "owned_since", "recycle_at", "updated_at", "updated_by_id")
    table = Customer.__table__
    saved["crm_customer"] = [
        dict(row._mapping)
        for row in session.execute(select(*[table.c[c] for c in columns]).where(table.c.id.in_(ids)))
    ]
    for model, statuses in RELATED:
        t = model.__table__
        saved[t.name] = [
            dict(row._mapping)
            for row in session.execute(
                select(t.c.id, t.c.owner_id, t.c.department_id, t.c.updated_at, t.c.updated_by_id).where(
                    t.c.customer_id.in_(ids), t.c.status.in_(statuses)
                )
            )
        ]
    return saved


def restore(session: Session, saved: dict[str, list[dict[str, Any]]], move_mark: int) -> None:
    tables = {
        Customer.__table__.name: Customer.__table__,
        **{m.__table__.name: m.__table__ for m, _s in RELATED},
    }
    for name, rows in saved.items():
        if not rows:
            continue
        t = tables[name]
        keys = [k for k in rows[0] if k != "id"]
        session.execute(
            update(t).where(t.c.id == bindparam("b_id")).values({k: bindparam(f"b_{k}") for k in keys}),
            [{f"b_{k}": v for k, v in row.items()} for row in rows],
        )
    session.execute(delete(PoolMove).where(PoolMove.id > move_mark, PoolMove.action == "transfer"))
    session.commit()


def raw_transfer(session: Session, ids: list[int], source: CrmUser, target: CrmUser, actor: CrmUser) -> None:
    """The handover's writes without the service: per 1,000 customers the open opportunities,
    unfinished orders and open tasks of the previous owner, the history rows and the customers."""
    now = utcnow()
    moved = {
        "owner_id": target.id,
        "department_id": target.department_id,
        "updated_at": now,
        "updated_by_id": actor.id,
    }
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        for model, statuses in RELATED:
            session.execute(
                update(model.__table__)
                .where(
                    model.__table__.c.customer_id.in_(chunk),
                    model.__table__.c.status.in_(statuses),
                    model.__table__.c.owner_id == source.id,
                )
                .values(**moved)
            )
        session.execute(
            insert(PoolMove.__table__).from_select(
                ["customer_id", "action", "from_user_id", "to_user_id", "reason", "actor_id", "moved_at"],
                select(
                    Customer.id,
                    literal("transfer"),
                    Customer.owner_id,
                    literal(target.id),
                    literal("基准测试交接"),
                    literal(actor.id),
                    literal(now),
                ).where(Customer.id.in_(chunk)),
            )
        )
        session.execute(
            update(Customer.__table__)
            .where(Customer.__table__.c.id.in_(chunk))
            .values(**moved, owned_since=now, recycle_at=None)
        )
    session.commit()


def time_handovers(
    app: Flask, args: argparse.Namespace, manager: MoneyActor, queries: QueryLog
) -> tuple[Timings, Timings]:
    """POST /api/v1/customer/transfer as the team's manager: the rep's customers to a colleague,
    then back (each timed); the customers and relations are restored between runs."""
    there, back = Timings(), Timings()
    runs = min(LONG_RUNS, args.repeat)
    with app.app_context():
        try:
            session = db.session
            rep, colleague = user_id(session, REP_USERNAME), user_id(session, COLLEAGUE_USERNAME)
            ids = list(
                session.scalars(select(Customer.id).where(Customer.owner_id == rep).order_by(Customer.id))
            )
            saved = snapshot(session, ids)
            there.extra = {
                "customers": len(ids),
                **{f"open_{k}": len(v) for k, v in saved.items() if k != "crm_customer"},
            }
            mark = session.scalar(select(func.max(PoolMove.id))) or 0
            session.commit()
            for _ in range(runs):
                for timings, to in ((there, colleague), (back, rep)):
                    body = {"customer_ids": ids, "to_user_id": to, "reason": "基准测试交接"}
                    ms, n, response = timed(
                        queries, lambda b=body: send(manager, "POST", "/api/v1/customer/transfer", b)
                    )
                    timings.app.append(ms)
                    timings.queries = n
                    timings.extra["moved"] = {
                        k: v for k, v in response.json["result"].items() if k != "batch"
                    }
                restore(session, saved, mark)
            users = {
                u.id: u
                for u in session.scalars(
                    select(CrmUser).where(CrmUser.id.in_([rep, colleague, manager.user_id]))
                )
            }
            for _ in range(runs):
                for timings, source, to in ((there, rep, colleague), (back, colleague, rep)):
                    ms, n, _ = timed(
                        queries,
                        lambda s=source, t=to: raw_transfer(
                            session, ids, users[s], users[t], users[manager.user_id]
                        ),
                    )
                    timings.raw.append(ms)
                    timings.raw_queries = n
                restore(session, saved, mark)
        finally:
            db.session.remove()
    return there, back


# --- the daily recycle run -----------------------------------------------------------------------
SNAPSHOT_TABLE = "bench_money_owned"


def recycle_snapshot(session: Session) -> None:
    """A copy of what the run changes on owned customers (the database's own table, dropped at
    the end), so that every repetition starts from the generated state."""
    session.execute(text(f"DROP TABLE IF EXISTS {SNAPSHOT_TABLE}"))
    session.execute(
        text(
            f"CREATE TABLE {SNAPSHOT_TABLE} AS SELECT id, owner_id, department_id, owned_since, recycle_at, "
            "locked, updated_at, updated_by_id FROM crm_customer WHERE owner_id IS NOT NULL"
        )
    )
    session.execute(text(f"CREATE UNIQUE INDEX ix_{SNAPSHOT_TABLE} ON {SNAPSHOT_TABLE} (id)"))
    session.commit()


def recycle_restore(session: Session, marks: dict[str, int]) -> float:
    """Undo the runs: recycled customers back to their owners, due dates as they were, the
    moves, notifications and e-mails of the runs deleted. Returns the seconds it took."""
    started = time.perf_counter()
    columns = [
        "owner_id",
        "department_id",
        "owned_since",
        "recycle_at",
        "locked",
        "updated_at",
        "updated_by_id",
        "pool_id",
        "pooled_at",
    ]
    assignments = ", ".join(
        f"{c} = (SELECT s.{c} FROM {SNAPSHOT_TABLE} s WHERE s.id = crm_customer.id)"
        if c not in ("pool_id", "pooled_at")
        else f"{c} = NULL"
        for c in columns
    )
    session.execute(
        text(
            f"UPDATE crm_customer SET {assignments} WHERE id IN (SELECT customer_id FROM crm_pool_move "
            "WHERE id > :mark AND action = 'recycle')"
        ),
        {"mark": marks["moves"]},
    )
    session.execute(
        text(
            f"UPDATE crm_customer SET recycle_at = (SELECT s.recycle_at FROM {SNAPSHOT_TABLE} s "
            "WHERE s.id = crm_customer.id) WHERE owner_id IS NOT NULL"
        )
    )
    session.execute(delete(PoolMove).where(PoolMove.id > marks["moves"]))
    session.execute(delete(Notification).where(Notification.id > marks["notifications"]))
    session.execute(delete(OutboxMessage).where(OutboxMessage.id > marks["outbox"]))
    session.commit()
    return time.perf_counter() - started


def time_recycle(app: Flask, args: argparse.Namespace, timer: StatementTimer) -> tuple[Timings, Timings]:
    """app.pools.recycle(session, now) over all pools, as the worker calls it: first on the
    generated state (no due dates yet: every owned customer gets one; those due by the reference
    moment go back), then the next day (due dates already set: the day's customers go back and
    new warnings); the generated state is restored between repetitions, untimed."""
    first, next_day = Timings(), Timings()
    runs = min(LONG_RUNS, args.repeat)
    with app.app_context():
        try:
            session = db.session
            reference, _served = ensure_pools(session)
            recycle_snapshot(session)
            marks = {
                "moves": session.scalar(select(func.max(PoolMove.id))) or 0,
                "notifications": session.scalar(select(func.max(Notification.id))) or 0,
                "outbox": session.scalar(select(func.max(OutboxMessage.id))) or 0,
            }
            session.commit()
            restores = []
            for run in range(runs):
                for timings, now in ((first, reference), (next_day, reference + DAY)):
                    timer.reset()
                    started = time.perf_counter()
                    report = recycle(session, now)
                    timings.app.append((time.perf_counter() - started) * 1000)
                    timings.raw.append(timer.total)
                    timings.queries = timings.raw_queries = timer.count
                    timings.extra = {
                        "scheduled": report.scheduled,
                        "recycled": report.recycled,
                        "warned": report.warned,
                        "slowest_ms": [round(ms, 1) for ms, _s, _p in timer.slowest],
                    }
                    if run == 0:
                        timings.extra["slowest"] = [(ms, s, p) for ms, s, p in timer.slowest[:3]]
                    session.commit()
                restores.append(recycle_restore(session, marks))
            session.execute(text(f"DROP TABLE IF EXISTS {SNAPSHOT_TABLE}"))
            session.commit()
            first.extra["restore_seconds"] = round(statistics.median(restores), 1)
        finally:
            db.session.remove()
    return first, next_day


# --- running -------------------------------------------------------------------------------------
def selected(args: argparse.Namespace, name: str) -> bool:
    return not args.only or any(s in name for s in args.only)


OPERATION_NAMES = [
    *[f"money pool list page ({a})" for a in ("rep", "manager", "admin")],
    *[f"money pool REST list ({a})" for a in ("rep", "manager", "admin")],
    "money claim (rep)",
    "money order with 10 lines (rep)",
    "money handover to colleague (manager)",
    "money handover back (manager)",
    "money recycle run, first (all pools)",
    "money recycle run, next day (all pools)",
]


def wanted(args: argparse.Namespace) -> bool:
    """Whether --only leaves any money operation (else nothing is generated for it)."""
    return any(selected(args, name) for name in OPERATION_NAMES)


def failing(exc: Exception) -> Callable[[], Timings]:
    """A work function that raises `exc` (an operation of a pair that failed is reported)."""

    def work() -> Timings:
        raise exc

    return work


def result(name: str, db_name: str, timings: Timings, target: int) -> Result:
    raw = timings.raw or [math.nan]
    return make_result(name, db_name, timings.app, timings.queries, raw, timings.raw_queries, target)


def run(
    app: Flask,
    args: argparse.Namespace,
    queries: QueryLog,
    db_name: str,
    header: str,
    details: dict[str, Any],
) -> list[Result]:
    """Time every selected money operation beside its raw SQL; details of the long ones (rows
    moved, statements, slowest statements) go into `details`."""
    names = [n for n in OPERATION_NAMES if selected(args, n)]
    if not names:
        return []
    actors = make_actors(app)
    with app.app_context():
        timer = StatementTimer(db.engine)
    results: list[Result] = []
    print()
    print(header, flush=True)

    def report(name: str, target: int, work: Callable[[], Timings]) -> Timings | None:
        try:
            timings = work()
        except Exception as exc:  # noqa: BLE001 - report it and time the other operations
            failed = failed_result(name, db_name, exc, target)
            results.append(failed)
            print(failed.line(), flush=True)
            return None
        outcome = result(name, db_name, timings, target)
        results.append(outcome)
        print(outcome.line(), flush=True)
        if timings.extra:
            shown = {k: v for k, v in timings.extra.items() if k != "slowest"}
            details[name] = shown
            print(f"    {shown}", flush=True)
        return timings

    lists = time_pool_lists(app, args, actors, queries) if any("pool" in n for n in names) else {}
    for name, timings in lists.items():
        report(name, TARGET_MS, lambda t=timings: t)
    if "money claim (rep)" in names:
        report("money claim (rep)", TARGET_MS, lambda: time_claims(app, args, actors["rep"], queries))
    if "money order with 10 lines (rep)" in names:
        report(
            "money order with 10 lines (rep)",
            TARGET_MS,
            lambda: time_orders(app, args, actors["rep"], queries),
        )
    handover = [n for n in names if "handover" in n]
    if handover:
        try:
            there, back = time_handovers(app, args, actors["manager"], queries)
            report(OPERATION_NAMES[-4], HANDOVER_TARGET_MS, lambda: there)
            report(OPERATION_NAMES[-3], HANDOVER_TARGET_MS, lambda: back)
        except Exception as exc:  # noqa: BLE001
            report(OPERATION_NAMES[-4], HANDOVER_TARGET_MS, failing(exc))
    if any("recycle" in n for n in names):
        try:
            first, next_day = time_recycle(app, args, timer)
        except Exception as exc:  # noqa: BLE001
            report(OPERATION_NAMES[-2], RECYCLE_TARGET_MS, failing(exc))
        else:
            slowest = first.extra.pop("slowest", [])
            report(OPERATION_NAMES[-2], RECYCLE_TARGET_MS, lambda: first)
            report(OPERATION_NAMES[-1], RECYCLE_TARGET_MS, lambda: next_day)
            if args.explain:
                explain_statements(app, slowest)
    if args.explain:
        explain_reads(app, actors)
    return results


# --- plans ---------------------------------------------------------------------------------------
def plan_lines(session: Session, sql: str, parameters: Any, analyze: bool) -> list[str]:
    dialect = session.get_bind().dialect.name
    connection = session.connection()
    if dialect == "sqlite":
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", parameters or ()).all()
        return [str(row[-1]) for row in rows]
    if dialect == "postgresql":
        prefix = "EXPLAIN (ANALYZE, BUFFERS)" if analyze else "EXPLAIN"
        return [row[0] for row in connection.exec_driver_sql(f"{prefix} {sql}", parameters or {}).all()]
    return ["(no plan for this database)"]


def explain_statements(app: Flask, slowest: list[tuple[float, str, Any]]) -> None:
    """The plans of the recycle run's slowest statements (writes: EXPLAIN without ANALYZE)."""
    with app.app_context():
        try:
            session = db.session
            for ms, sql, parameters in slowest:
                print(f"\n--- plan: recycle statement, {ms:.0f} ms\n{' '.join(sql.split())[:1500]}")
                params = parameters[0] if isinstance(parameters, list) and parameters else parameters
                for line in plan_lines(session, sql, params, analyze=False):
                    print(f"    {line}")
            session.rollback()
        finally:
            db.session.remove()


def explain_reads(app: Flask, actors: dict[str, MoneyActor]) -> None:
    """The plans of the pool list's rows and the order number lookup, per actor."""
    with app.app_context():
        try:
            session = db.session
            dialect = session.get_bind().dialect
            for actor in actors.values():
                user = session.get(CrmUser, actor.user_id)
                city = aliased(Region)
                statement = (
                    select(Customer.id, Customer.name, Industry.name, city.name, Customer.pooled_at)
                    .outerjoin(Industry, Industry.id == Customer.industry_id)
                    .outerjoin(city, city.code == Customer.city_code)
                    .where(pool_clause(session, user))
                    .order_by(Customer.pooled_at.desc())
                    .limit(PAGE_SIZE)
                )
                sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
                print(f"\n--- plan: pool list rows ({actor.label})\n{' '.join(sql.split())}")
                for line in plan_lines(session, sql, None, analyze=True):
                    print(f"    {line}")
            like = number_pattern("order").split("{seq")[0].format(date=utcnow().date()) + "%"
            statement = (
                select(Order.number)
                .where(Order.number.like(like))
                .order_by(func.length(Order.number).desc(), Order.number.desc())
                .limit(20)
            )
            sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
            print(f"\n--- plan: next order number\n{sql}")
            for line in plan_lines(session, sql, None, analyze=True):
                print(f"    {line}")
            session.rollback()
        finally:
            db.session.remove()


__all__ = ["OPERATION_NAMES", "prepare", "run", "wanted"]
