"""The sales screens at scale (issue 5): the opportunity board, the workbench and the customer 360 page.

`prepare()` adds to the bench customers what a sales team would have written over a year: the
two demo pipelines (created like `app.demo.load_sales_demo` does when missing) and its products,
opportunities (half an opportunity per customer) with their stage history and products,
follow-ups (five per customer) whose next contact times became tasks, leads for every bench
user, and one customer of the bench rep with 5,000 timeline items. Bulk Core `insert()`
executemany, about 10,000 rows and one commit per batch, seeded per batch (so runs repeat and
a stopped run resumes where it stopped); then one bulk UPDATE sets every customer's last
follow-up and next contact time as the follow-up effects of `app.sales` would have.

`run()` times the board page and its JSON API (summary, a column page, a move and back), the
workbench and the customer 360 page (and its timeline's next page) as a Sales Rep, a Sales
Manager (team scope) and the Admin, each beside the SQL it needs run directly, and `explain()`
prints the plans of that SQL.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import random
import re
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import ColumnElement, Executable, Select, exists, func, insert, select, update
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import UnaryExpression

from app import home
from app.access import department_tree_ids, entity_name, scope_clause, subordinate_ids, user_scope
from app.approvals import waiting_for
from app.customers import (
    TIMELINE_KINDS,
    TimelineCursor,
    customer_timeline,
    figures_queries,
    timeline_queries,
)
from app.demo import COMPANY_WORDS, FOLLOW_UPS, LOST_REASONS, PIPELINES, PRODUCTS, _mobile, _person
from app.extensions import db
from app.home import local_day_bounds
from app.kanban import PAGE_SIZE as BOARD_PAGE_SIZE
from app.kanban import BoardFilters, _card_query, _conditions, _few_owners, column_status
from app.orders import expiring_contracts, payments_due
from app.pools import due_for_recycle
from app.sales import closing_values, product_service
from app.targets import target_progress
from bench import custom
from bench.common import (
    PAGE_SIZE,
    PASSWORD,
    BenchError,
    QueryLog,
    Result,
    customer_record_statements,
    failed_result,
    login,
    make_result,
)
from models.base import utcnow
from models.customers import Contact, Customer
from models.pools import CustomerTeamMember
from models.sales import (
    Interaction,
    Lead,
    Opportunity,
    Pipeline,
    Product,
    Stage,
    StageChange,
    Task,
    opportunity_product,
)
from models.security import CrmUser

TARGET_MS = 150
REP_USERNAME = "bench_03_04"  # a Sales Rep: sees only their own records
MANAGER_USERNAME = "bench_03_00"  # team 03's manager: Sales Manager, department_tree scope
ADMIN_USERNAME = "admin"
BATCH_ROWS = 10_000
OPPORTUNITIES_PER_CUSTOMER = 0.5  # 500,000 for 1,000,000 customers
FOLLOW_UPS_PER_CUSTOMER = 5  # 5,000,000
#: a follow-up with a next contact time (which the service turns into a task)
NEXT_CONTACT_SHARE = 0.15
OPEN_SHARE, WON_SHARE = 0.60, 0.20  # the rest is lost
#: the demo rule puts only the one service industry into 服务业; here the split is by chance
PIPELINE_SHARES = {"制造业": 0.65, "服务业": 0.35}
BOARD_PIPELINE = "制造业"  # the larger one: the board that is timed
LEADS_PER_USER = 20
REP_EXTRA_LEADS = 15  # new leads of the last two weeks, so the rep's workbench list is full
#: the rep's customer with 5,000 timeline items (follow-ups, opportunities, stage moves, tasks)
BIG_FOLLOW_UPS, BIG_OPPORTUNITIES, BIG_MOVES_EACH, BIG_TASKS = 3_400, 300, 3, 400
BIG_ITEMS = BIG_FOLLOW_UPS + BIG_OPPORTUNITIES * (1 + BIG_MOVES_EACH) + BIG_TASKS
KINDS, KIND_WEIGHTS = ["call", "email", "meeting", "visit"], [45, 20, 15, 20]
DURATIONS = {"call": [5, 10, 15, 30], "email": [None], "meeting": [30, 60, 90], "visit": [60, 90, 120, 180]}
SUBJECTS = ["月度用量沟通", "报价跟进", "样品反馈", "年度框架协议", "货款催收", "新项目需求"]
OUTCOMES = ["有意向", "待报价", "需再跟进", None]
REMINDER_LEAD = dt.timedelta(minutes=15)  # CRM_REMINDER_LEAD_MINUTES: when the worker reminded
DAY = 86_400
SALES_TABLES = [
    "crm_opportunity",
    "crm_stage_change",
    "crm_opportunity_product",
    "crm_interaction",
    "crm_task",
    "crm_lead",
    "crm_customer",
]


# --- what exists: pipelines, products, users ----------------------------------------------------
@dataclass(frozen=True)
class Flow:
    """A pipeline as the generator needs it: its open stages in order and the closing ones."""

    id: int
    name: str
    open_stages: list[int]
    won: int
    lost: int


@dataclass
class Catalogue:
    flows: list[Flow]
    products: list[tuple[int, str]]
    departments: dict[int, int | None]  # user id -> department id
    big_customer: int  # the rep's customer with 5,000 timeline items
    rep_id: int


def ensure_pipelines(session: Session) -> list[Flow]:
    """The two demo pipelines and their stages, created as `load_sales_demo` creates them."""
    for position, (name, stages) in enumerate(PIPELINES.items()):
        if session.scalar(select(Pipeline.id).where(Pipeline.name == name)) is not None:
            continue
        flow = Pipeline(name=name, position=position, description=f"{name}客户的销售流程")
        flow.stages = [Stage(name=n, position=i, probability=p) for i, (n, p) in enumerate(stages)]
        flow.stages += [
            Stage(name="赢单", position=90, probability=100, is_won=True),
            Stage(name="输单", position=91, probability=0, is_lost=True),
        ]
        session.add(flow)
        session.commit()
        print(f"pipeline {name} created with {len(flow.stages)} stages", flush=True)
    flows = []
    for name in PIPELINES:
        pipeline = session.scalar(select(Pipeline).where(Pipeline.name == name))
        assert pipeline is not None
        stages = sorted(pipeline.stages, key=lambda s: (s.position, s.id))
        flows.append(
            Flow(
                id=pipeline.id,
                name=name,
                open_stages=[s.id for s in stages if not s.closes],
                won=next(s.id for s in stages if s.is_won),
                lost=next(s.id for s in stages if s.is_lost),
            )
        )
    return flows


def ensure_products(session: Session) -> list[tuple[int, str]]:
    """The demo products, saved through the product service as the demo does."""
    for sku, name, category, unit, price in PRODUCTS:
        if session.scalar(select(Product.id).where(Product.sku == sku)) is None:
            product = Product(sku=sku, name=name, category=category, unit=unit, price=price)
            product_service.save(session, product, None)
    skus = [row[0] for row in PRODUCTS]
    return [
        tuple(row) for row in session.execute(select(Product.id, Product.name).where(Product.sku.in_(skus)))
    ]


def user_id(session: Session, username: str) -> int:
    found = session.scalar(select(CrmUser.id).where(CrmUser.username == username))
    if found is None:
        raise SystemExit(f"user {username} not found (run the customer generation first)")
    return found


def catalogue(session: Session) -> Catalogue:
    rep_id = user_id(session, REP_USERNAME)
    big = session.scalar(select(func.min(Customer.id)).where(Customer.owner_id == rep_id))
    if big is None:
        raise SystemExit(f"{REP_USERNAME} owns no customer")
    return Catalogue(
        flows=ensure_pipelines(session),
        products=ensure_products(session),
        departments=dict(session.execute(select(CrmUser.id, CrmUser.department_id)).tuples().all()),
        big_customer=big,
        rep_id=rep_id,
    )


# --- generation: rows valid by construction, as the services would store them --------------------
def batch_rng(seed: int, part: str, first_id: int) -> random.Random:
    """One generator per batch: the same rows on every run, and a stopped run can resume."""
    return random.Random(f"{seed}:{part}:{first_id}")


def moment_before(now: dt.datetime, rng: random.Random, low_days: float, high_days: float) -> dt.datetime:
    """A time between `high_days` and `low_days` ago, to the second."""
    return (now - dt.timedelta(seconds=rng.uniform(low_days * DAY, high_days * DAY))).replace(microsecond=0)


def amount(rng: random.Random) -> Decimal:
    """CNY 10,000 to 5,000,000, many small deals and few large ones, in hundreds."""
    return Decimal(round(10 ** rng.uniform(4, 6.7), -2)).quantize(Decimal("0.01"))


@dataclass
class OpportunityPlan:
    """One generated opportunity: its row, its stage history and its products."""

    row: dict[str, Any]
    moves: list[tuple[int | None, int, dt.datetime]]  # from stage, to stage, when
    products: list[int]


def plan_opportunity(
    rng: random.Random,
    customer: Any,
    cat: Catalogue,
    now: dt.datetime,
    *,
    opened: dt.datetime | None = None,
    moves: int | None = None,
) -> OpportunityPlan:
    """An opportunity opened in the past year that went through some stages: ~60% still open
    (expected to close around now), the rest won or lost (closed_at over the past year).
    `moves` fixes the number of history rows (the 5,000-item customer's)."""
    flow = rng.choices(cat.flows, weights=[PIPELINE_SHARES.get(f.name, 0.5) for f in cat.flows])[0]
    opened = opened or moment_before(now, rng, 20, 365)
    stages = flow.open_stages
    outcome = rng.random()
    if moves is not None:
        depth = moves if outcome < OPEN_SHARE else moves - 1
    else:
        weights = [len(stages) - i for i in range(len(stages))]  # fewer in the later stages
        depth = rng.choices(range(1, len(stages) + 1), weights=weights)[0]
    path = stages[: min(depth, len(stages))]
    row: dict[str, Any] = {"status": "open", "closed_at": None, "close_reason": None}
    if outcome < OPEN_SHARE:
        end = opened + (now - opened) * rng.uniform(0.3, 1.0)
        row["expected_close"] = now.date() + dt.timedelta(days=rng.randint(-30, 90))
    else:
        won = outcome < OPEN_SHARE + WON_SHARE
        path = [*path, flow.won if won else flow.lost]
        end = opened + (now - opened) * rng.uniform(0.1, 1.0)
        row.update(status="won" if won else "lost", closed_at=end)
        row["close_reason"] = None if won else rng.choice(LOST_REASONS)
        row["expected_close"] = (end + dt.timedelta(days=rng.randint(-20, 20))).date()
    end = end.replace(microsecond=0)
    step = (end - opened) / max(len(path) - 1, 1)
    times = [(opened + step * i).replace(microsecond=0) for i in range(len(path))]
    products = rng.sample(cat.products, rng.randint(1, 2))
    row.update(
        name=f"{customer.name[:20]} - {products[0][1]}",
        customer_id=customer.id,
        pipeline_id=flow.id,
        stage_id=path[-1],
        amount=amount(rng),
        probability=None,
        stage_changed_at=times[-1],
        owner_id=customer.owner_id,
        department_id=customer.department_id,
        created_at=opened,
        updated_at=times[-1],
        created_by_id=customer.owner_id,
        updated_by_id=customer.owner_id,
        custom={},
    )
    moves_list = [(path[i - 1] if i else None, stage, times[i]) for i, stage in enumerate(path)]
    return OpportunityPlan(row, moves_list, [product_id for product_id, _name in products])


def returning_ids(model: type) -> Any:
    """A Core INSERT of the model's table giving back the new ids in the order of the rows.

    Core, not the ORM-enabled insert(Model): on SQLite the ORM's bulk RETURNING splits a batch
    into thousands of statements (10,000 rows: 26 s instead of 0.5 s)."""
    table = model.__table__
    return insert(table).returning(table.c.id, sort_by_parameter_order=True)


def insert_opportunities(session: Session, plans: list[OpportunityPlan]) -> None:
    """The opportunities (ids back, in order), their stage history and their products."""
    ids = session.scalars(returning_ids(Opportunity), [p.row for p in plans]).all()
    history, links = [], []
    for opportunity_id, plan in zip(ids, plans, strict=True):
        for from_stage, to_stage, when in plan.moves:
            history.append(
                {
                    "opportunity_id": opportunity_id,
                    "from_stage_id": from_stage,
                    "to_stage_id": to_stage,
                    "changed_at": when,
                    "changed_by_id": plan.row["owner_id"],
                }
            )
        links.extend({"opportunity_id": opportunity_id, "product_id": p} for p in plan.products)
    session.execute(insert(StageChange.__table__), history)
    session.execute(insert(opportunity_product), links)


def follow_up_row(
    rng: random.Random,
    customer: Any,
    now: dt.datetime,
    days: float = 365,
    next_share: float = NEXT_CONTACT_SHARE,
) -> dict[str, Any]:
    """A call, e-mail, meeting or visit over the past `days`, some with a next contact time."""
    kind = rng.choices(KINDS, weights=KIND_WEIGHTS)[0]
    occurred = moment_before(now, rng, 0, days)
    next_contact = None
    if rng.random() < next_share:
        next_contact = occurred + dt.timedelta(days=rng.randint(1, 30), hours=rng.randint(0, 8))
    return {
        "kind": kind,
        "occurred_at": occurred,
        "duration_minutes": rng.choice(DURATIONS[kind]),
        "customer_id": customer.id,
        "subject": rng.choice(SUBJECTS) if kind in ("meeting", "visit") or rng.random() < 0.2 else None,
        "content": rng.choice(FOLLOW_UPS),
        "outcome": rng.choice(OUTCOMES),
        "next_contact_at": next_contact,
        "owner_id": customer.owner_id,
        "created_at": occurred,
        "updated_at": occurred,
        "created_by_id": customer.owner_id,
        "updated_by_id": customer.owner_id,
        "custom": {},
    }


def task_row(
    rng: random.Random, interaction_id: int, row: dict[str, Any], name: str, cat: Catalogue, now: dt.datetime
) -> dict[str, Any]:
    """The task a follow-up's next contact time becomes (app.sales.follow_up_effects), done or
    cancelled when long past, still open (overdue) for some, open when due today or later."""
    due = row["next_contact_at"]
    if due < now - dt.timedelta(days=14):
        status = rng.choices(["done", "cancelled", "open"], weights=[92, 5, 3])[0]
    elif due < now:
        status = rng.choices(["done", "open"], weights=[40, 60])[0]
    else:
        status = "open"
    done_at = min(due + dt.timedelta(seconds=rng.uniform(0, 2 * DAY)), now).replace(microsecond=0)
    done_at = done_at if status == "done" else None
    owner = row["owner_id"]
    return {
        "title": f"联系 {name}"[:200],
        "due_at": due,
        "status": status,
        "customer_id": row["customer_id"],
        "lead_id": None,
        "opportunity_id": None,
        "interaction_id": interaction_id,
        "done_at": done_at,
        "reminded_at": due - REMINDER_LEAD if due - REMINDER_LEAD <= now else None,
        "owner_id": owner,
        "department_id": cat.departments.get(owner),
        "created_at": row["occurred_at"],
        "updated_at": done_at or row["occurred_at"],
        "created_by_id": owner,
        "updated_by_id": owner,
        "custom": {},
    }


def insert_follow_ups(
    session: Session, rng: random.Random, rows: list[dict[str, Any]], names: dict[int, str], cat: Catalogue
) -> int:
    """The follow-ups (ids back) and the tasks of those with a next contact time; tasks written."""
    ids = session.scalars(returning_ids(Interaction), rows).all()
    now = utcnow()
    tasks = [
        task_row(rng, interaction_id, row, names[row["customer_id"]], cat, now)
        for interaction_id, row in zip(ids, rows, strict=True)
        if row["next_contact_at"] is not None
    ]
    if tasks:
        session.execute(insert(Task.__table__), tasks)
    return len(tasks)


def customer_batches(session: Session, span: int, start: int, skip: int) -> Iterable[tuple[int, list[Any]]]:
    """Customers by id range of `span` ids from `start`: (first id of the range, rows)."""
    last = session.scalar(select(func.max(Customer.id))) or 0
    low = start
    while low <= last:
        rows = session.execute(
            select(Customer.id, Customer.name, Customer.owner_id, Customer.department_id)
            .where(Customer.id >= low, Customer.id < low + span, Customer.id != skip)
            .where(Customer.owner_id.is_not(None))
            .order_by(Customer.id)
        ).all()
        yield low, rows
        low += span


def resume_point(session: Session, column: Any, first: int, span: int) -> int:
    """The first id range not yet generated: each range was one transaction, so the range of
    the highest customer with rows is complete (the big customer is generated last)."""
    done = session.scalar(select(func.max(column)))
    return first if done is None else first + ((done - first) // span + 1) * span


def generate_part(
    session: Session,
    label: str,
    per_customer: float,
    column: Any,
    write: Callable[[random.Random, list[Any]], int],
    seed: int,
    cat: Catalogue,
) -> dict[str, Any]:
    """Run `write` over every id range of customers not done yet; rows written and seconds."""
    first = session.scalar(select(func.min(Customer.id))) or 1
    span = max(1, round(BATCH_ROWS / per_customer))
    start = resume_point(session, column, first, span)
    last = session.scalar(select(func.max(Customer.id))) or 0
    if start > last:
        print(f"{label}: already generated, nothing to do", flush=True)
        return {"rows": 0, "seconds": None}
    print(f"generating {label} for customers {start:,}..{last:,} ...", flush=True)
    started = time.perf_counter()
    written = reported = 0
    for low, customers in customer_batches(session, span, start, cat.big_customer):
        if customers:
            written += write(batch_rng(seed, label, low), customers)
        session.commit()
        if written - reported >= 500_000:
            reported = written
            print(f"  {written:,} {label}, {time.perf_counter() - started:.0f}s", flush=True)
    seconds = round(time.perf_counter() - started, 1)
    print(f"{label}: {written:,} rows in {seconds:.1f}s", flush=True)
    return {"rows": written, "seconds": seconds}


def generate_opportunities(session: Session, cat: Catalogue, seed: int) -> dict[str, Any]:
    now = utcnow()

    def write(rng: random.Random, customers: list[Any]) -> int:
        chosen = sorted(rng.choices(customers, k=round(len(customers) * OPPORTUNITIES_PER_CUSTOMER)))
        plans = [plan_opportunity(rng, customer, cat, now) for customer in chosen]
        if plans:
            insert_opportunities(session, plans)
        return len(plans)

    return generate_part(
        session, "opportunities", OPPORTUNITIES_PER_CUSTOMER, Opportunity.customer_id, write, seed, cat
    )


def generate_follow_ups(session: Session, cat: Catalogue, seed: int) -> dict[str, Any]:
    now = utcnow()
    tasks = 0

    def write(rng: random.Random, customers: list[Any]) -> int:
        nonlocal tasks
        chosen = sorted(rng.choices(customers, k=len(customers) * FOLLOW_UPS_PER_CUSTOMER))
        rows = [follow_up_row(rng, customer, now) for customer in chosen]
        tasks += insert_follow_ups(session, rng, rows, {c.id: c.name for c in customers}, cat)
        return len(rows)

    result = generate_part(
        session, "follow-ups", FOLLOW_UPS_PER_CUSTOMER, Interaction.customer_id, write, seed, cat
    )
    return {**result, "tasks": tasks}


def generate_big_customer(session: Session, cat: Catalogue, seed: int) -> dict[str, Any]:
    """The rep's customer with 5,000 timeline items, over three years (one transaction)."""
    customer_id = cat.big_customer
    if session.scalar(select(Interaction.id).where(Interaction.customer_id == customer_id).limit(1)):
        print(f"customer {customer_id}: timeline already generated", flush=True)
        return {"customer_id": customer_id, "seconds": None}
    started = time.perf_counter()
    customer = session.execute(
        select(Customer.id, Customer.name, Customer.owner_id, Customer.department_id).where(
            Customer.id == customer_id
        )
    ).one()
    rng, now = batch_rng(seed, "big", customer_id), utcnow()
    plans = [
        plan_opportunity(rng, customer, cat, now, opened=moment_before(now, rng, 20, 3 * 365), moves=3)
        for _ in range(BIG_OPPORTUNITIES)
    ]
    insert_opportunities(session, plans)
    rows = [follow_up_row(rng, customer, now, days=3 * 365, next_share=0) for _ in range(BIG_FOLLOW_UPS)]
    for row in rng.sample(rows, BIG_TASKS):
        row["next_contact_at"] = row["occurred_at"] + dt.timedelta(days=rng.randint(1, 30))
    insert_follow_ups(session, rng, rows, {customer.id: customer.name}, cat)
    session.commit()
    seconds = round(time.perf_counter() - started, 1)
    print(
        f"customer {customer_id} ({REP_USERNAME}): {BIG_ITEMS:,} timeline items in {seconds:.1f}s", flush=True
    )
    return {"customer_id": customer_id, "seconds": seconds}


def generate_leads(session: Session, cat: Catalogue, seed: int) -> dict[str, Any]:
    """Leads of the last month for every bench user (the rep gets more new ones)."""
    owners = list(
        session.scalars(select(CrmUser.id).where(CrmUser.username.like("bench_%")).order_by(CrmUser.id))
    )
    if session.scalar(select(Lead.id).where(Lead.owner_id.in_(owners)).limit(1)):
        print("leads: already generated, nothing to do", flush=True)
        return {"rows": 0, "seconds": None}
    started = time.perf_counter()
    rng, now = batch_rng(seed, "leads", 0), utcnow()
    rows = []
    for owner in owners:
        count = LEADS_PER_USER + (REP_EXTRA_LEADS if owner == cat.rep_id else 0)
        for number in range(count):
            fresh = owner == cat.rep_id and number >= LEADS_PER_USER
            created = moment_before(now, rng, 0, 13 if fresh else 30)
            surname, given = _person(rng)
            rows.append(
                {
                    "name": surname + given,
                    "company": f"{rng.choice(COMPANY_WORDS)}新材料科技有限公司" if number % 3 else None,
                    "mobile": _mobile(rng),
                    "source": rng.choice(["exhibition", "website", "referral", "cold_call"]),
                    "interest": rng.choice(["液碱", "硫酸", "PAM", "管道检测", "沥青"]),
                    "status": "new"
                    if fresh
                    else rng.choices(["new", "contacted", "qualified", "disqualified"], [50, 20, 15, 15])[0],
                    "owner_id": owner,
                    "department_id": cat.departments.get(owner),
                    "created_at": created,
                    "updated_at": created,
                    "custom": {},
                }
            )
    session.execute(insert(Lead.__table__), rows)
    session.commit()
    seconds = round(time.perf_counter() - started, 1)
    print(f"leads: {len(rows):,} rows in {seconds:.1f}s", flush=True)
    return {"rows": len(rows), "seconds": seconds}


def update_customers(session: Session) -> float:
    """Every followed-up customer's last follow-up time and next contact time, as the follow-up
    effects of app.sales leave them: the latest follow-up's time, and the next contact time of
    the latest follow-up that set one. One UPDATE."""
    started = time.perf_counter()
    table, follow_up = Customer.__table__, Interaction.__table__.alias("f")
    mine = follow_up.c.customer_id == table.c.id
    last = select(func.max(follow_up.c.occurred_at)).where(mine).scalar_subquery()
    next_contact = (
        select(follow_up.c.next_contact_at)
        .where(mine, follow_up.c.next_contact_at.is_not(None))
        .order_by(follow_up.c.occurred_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    statement = (
        update(table)
        .where(exists(select(follow_up.c.id).where(mine)))
        .values(last_followup_at=last, next_contact_at=next_contact)
    )
    rows = session.execute(statement).rowcount
    session.commit()
    seconds = round(time.perf_counter() - started, 1)
    print(f"last follow-up and next contact of {rows:,} customers in {seconds:.1f}s", flush=True)
    return seconds


def vacuum_analyze(session: Session) -> float | None:
    """PostgreSQL after the bulk load: what autovacuum would soon do (SQLite: nothing)."""
    engine = session.get_bind()
    if engine.dialect.name != "postgresql":
        return None
    session.commit()
    started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in SALES_TABLES:
            conn.exec_driver_sql(f"VACUUM ANALYZE {table}")
    seconds = round(time.perf_counter() - started, 1)
    print(f"VACUUM ANALYZE of the sales tables in {seconds:.1f}s", flush=True)
    return seconds


def table_counts(session: Session) -> dict[str, int]:
    models = {
        "opportunities": Opportunity,
        "stage_changes": StageChange,
        "follow_ups": Interaction,
        "tasks": Task,
        "leads": Lead,
    }
    return {
        name: session.scalar(select(func.count()).select_from(model)) or 0 for name, model in models.items()
    }


def timeline_items(session: Session, customer_id: int) -> int:
    """How many items customer_timeline() has for the customer, every source counted."""
    pages = timeline_queries(session, customer_id).values()
    return sum(
        session.scalar(select(func.count()).select_from(page.limit(None).order_by(None).subquery())) or 0
        for page in pages
    )


def prepare(app: Flask, seed: int) -> dict[str, Any]:
    """Pipelines, products and a year of selling on the bench customers (only what is missing);
    returns what was generated and how long it took."""
    info: dict[str, Any] = {}
    with app.app_context():
        try:
            session = db.session
            cat = catalogue(session)
            started = time.perf_counter()
            info["opportunities"] = generate_opportunities(session, cat, seed)
            info["follow_ups"] = generate_follow_ups(session, cat, seed)
            info["big_customer"] = generate_big_customer(session, cat, seed)
            info["leads"] = generate_leads(session, cat, seed)
            generated = any(info[k].get("seconds") is not None for k in ("follow_ups", "big_customer"))
            stale = (
                session.scalar(select(Customer.last_followup_at).where(Customer.id == cat.big_customer))
                is None
            )
            info["customer_update_seconds"] = update_customers(session) if generated or stale else None
            parts = [info[k].get("seconds") for k in ("opportunities", "follow_ups", "big_customer", "leads")]
            if any(s is not None for s in parts):
                info["generation_seconds"] = round(time.perf_counter() - started, 1)
                print(f"sales data generated in {info['generation_seconds']:.1f}s", flush=True)
                info["vacuum_analyze_seconds"] = vacuum_analyze(session)
            else:
                info["generation_seconds"] = None
            info["rows"] = table_counts(session)
            info["big_customer"]["timeline_items"] = timeline_items(session, cat.big_customer)
            print(
                "sales rows: "
                + ", ".join(f"{name} {count:,}" for name, count in info["rows"].items())
                + f"; customer {cat.big_customer}: {info['big_customer']['timeline_items']:,} timeline items",
                flush=True,
            )
        finally:
            db.session.remove()
    return info


# --- who, on what ---------------------------------------------------------------------------------
@dataclass
class SalesActor:
    label: str  # rep, manager, admin
    username: str
    user_id: int
    web: FlaskClient
    api: FlaskClient
    headers: dict[str, str]
    probes: list[Probe] = field(default_factory=list)


@dataclass(frozen=True)
class Probe:
    """What one repetition targets, all within the actor's data scope."""

    pipeline_id: int
    stage_id: int  # the column page's stage
    opportunity_id: int  # the card moved, from `from_stage_id` to the next stage, and back
    from_stage_id: int
    to_stage_id: int
    big_customer: int
    before: dt.datetime  # the timeline's keyset: the next page ends before this moment
    customer_id: int  # a random customer the actor sees


@dataclass(frozen=True)
class Context:
    """What the raw SQL needs: the actor and their data scope per entity."""

    user: CrmUser
    scopes: dict[type, ColumnElement[bool]]
    count_cap: int
    timezone: str


def make_context(app: Flask, session: Session, actor_id: int) -> Context:
    user = session.get(CrmUser, actor_id)
    models = (Customer, Contact, Opportunity, Interaction, Task, Lead, CustomerTeamMember)
    scopes = {model: scope_clause(session, model, user) for model in models}
    return Context(user, scopes, app.config["CRM_COUNT_CAP"], app.config["BABEL_DEFAULT_TIMEZONE"])


def board_flow(session: Session) -> Flow:
    return next(f for f in ensure_pipelines(session) if f.name == BOARD_PIPELINE)


def timeline_moments(session: Session, customer_id: int) -> list[dt.datetime]:
    """Every moment of the customer's timeline (the `before` of a next page)."""
    opportunities = select(Opportunity.id).where(Opportunity.customer_id == customer_id)
    queries = [
        select(Interaction.occurred_at).where(Interaction.customer_id == customer_id),
        select(Opportunity.created_at).where(Opportunity.customer_id == customer_id),
        select(StageChange.changed_at).where(StageChange.opportunity_id.in_(opportunities)),
        select(Task.due_at).where(Task.customer_id == customer_id),
    ]
    return sorted(moment for query in queries for moment in session.scalars(query))


def make_probes(session: Session, user: CrmUser, count: int, rng: random.Random, big: int) -> list[Probe]:
    flow = board_flow(session)
    stages = [*flow.open_stages, flow.won, flow.lost]
    movable = flow.open_stages[:-1]
    scope = scope_clause(session, Opportunity, user)
    low, high = session.execute(select(func.min(Opportunity.id), func.max(Opportunity.id))).one()
    candidates = select(Opportunity.id, Opportunity.stage_id).where(
        scope,
        Opportunity.pipeline_id == flow.id,
        Opportunity.status == "open",
        Opportunity.stage_id.in_(movable),
    )
    start = rng.randint(low, high)
    cards: list[Any] = session.execute(
        candidates.where(Opportunity.id >= start).order_by(Opportunity.id).limit(count)
    ).all()
    if len(cards) < count:
        cards += session.execute(
            candidates.where(Opportunity.id < start).order_by(Opportunity.id).limit(count)
        ).all()
    if not cards:
        raise SystemExit(f"{user.username} sees no open opportunity to move")
    moments = timeline_moments(session, big)[:-PAGE_SIZE]  # leaves a full page before each
    customer_scope = scope_clause(session, Customer, user)
    c_low, c_high = session.execute(select(func.min(Customer.id), func.max(Customer.id))).one()
    probes = []
    for i in range(count):
        card = cards[i % len(cards)]
        customer = session.scalar(
            select(Customer.id)
            .where(customer_scope, Customer.id >= rng.randint(c_low, c_high))
            .order_by(Customer.id)
            .limit(1)
        ) or session.scalar(select(Customer.id).where(customer_scope).order_by(Customer.id).limit(1))
        probes.append(
            Probe(
                pipeline_id=flow.id,
                stage_id=rng.choice(stages),
                opportunity_id=card.id,
                from_stage_id=card.stage_id,
                to_stage_id=flow.open_stages[flow.open_stages.index(card.stage_id) + 1],
                big_customer=big,
                before=rng.choice(moments) if moments else utcnow(),
                customer_id=customer or big,
            )
        )
    return probes


def make_actors(app: Flask, count: int, seed: int) -> list[SalesActor]:
    """The rep, the manager of the rep's team and the admin, logged in, with their probes."""
    rng = random.Random(f"{seed}:sales-probes")
    users = {}
    with app.app_context():
        try:
            session = db.session
            for label, username in (
                ("rep", REP_USERNAME),
                ("manager", MANAGER_USERNAME),
                ("admin", ADMIN_USERNAME),
            ):
                users[label] = (username, user_id(session, username))
                app.appbuilder.sm.reset_password(users[label][1], PASSWORD)
        finally:
            db.session.remove()
    actors = [SalesActor(label, name, uid, *login(app, name)) for label, (name, uid) in users.items()]
    with app.app_context():
        try:
            session = db.session
            big = session.scalar(select(func.min(Customer.id)).where(Customer.owner_id == users["rep"][1]))
            for actor in actors:
                user = session.get(CrmUser, actor.user_id)
                actor.probes = make_probes(session, user, count, rng, big)
            manager = session.get(CrmUser, users["manager"][1])
            scope = user_scope(session, manager, entity_name(Customer))
            print(
                f"\n{MANAGER_USERNAME}: roles {[r.name for r in manager.roles]}, data scope {scope}",
                flush=True,
            )
        finally:
            db.session.remove()
    return actors


# --- the SQL each screen needs, built as the services build it -----------------------------------
@dataclass(frozen=True)
class Capped:
    """A list's first rows and, only when the page is full, its capped count (as the app does)."""

    rows: Select[Any]
    count: Select[Any]
    size: int


@dataclass(frozen=True)
class Call:
    """A domain function whose rows a screen shows as they are (the workbench's pool, approval,
    payment, contract and target lists): its own statements, run by calling it."""

    function: Callable[[], Any]


@dataclass(frozen=True)
class Commit:
    """The end of a write's transaction (the raw move commits, as the service does)."""


Step = Executable | Capped | Call | Commit


def names(user: Any) -> tuple[Any, Any]:
    return user.last_name, user.first_name


def capped_count(statement: Select[Any], cap: int) -> Select[Any]:
    return select(func.count()).select_from(statement.limit(cap).subquery())


def board_page_sql(session: Session, ctx: Context, probe: Probe) -> list[Step]:
    """The board screen: its pipeline, the owner filter's people, the stages, the column
    summary (one GROUP BY) and the pipeline switcher."""
    return [
        select(Pipeline).where(Pipeline.id == probe.pipeline_id),
        owner_choices_sql(session, ctx.user),
        *board_summary_sql(session, ctx, probe.pipeline_id),
        select(Pipeline).where(Pipeline.active.is_(True)).order_by(Pipeline.position, Pipeline.id),
    ]


def owner_choices_sql(session: Session, actor: CrmUser) -> Select[Any]:
    """app.kanban.owner_choices' query."""
    scope = user_scope(session, actor, entity_name(Opportunity))
    query = select(CrmUser.id, CrmUser.first_name, CrmUser.last_name, CrmUser.username)
    if scope == "subordinates":
        return query.where(CrmUser.id.in_(sorted(subordinate_ids(session, actor.id))))
    if scope in ("department", "department_tree") and actor.department_id:
        departments = (
            {actor.department_id}
            if scope == "department"
            else department_tree_ids(session, actor.department_id)
        )
        return query.where(CrmUser.department_id.in_(sorted(departments)) | (CrmUser.id == actor.id))
    return query if scope == "all" else query.where(CrmUser.id == actor.id)


def board_summary_sql(
    session: Session, ctx: Context, pipeline_id: int, stage_ids: list[int] | None = None
) -> list[Select[Any]]:
    """app.kanban.board_summary: the pipeline's stages and the GROUP BY of the columns."""
    filters = BoardFilters()
    query = (
        select(
            Opportunity.stage_id,
            Opportunity.status,
            func.count(Opportunity.id),
            func.coalesce(func.sum(Opportunity.amount), 0),
        )
        .where(*_conditions(session, ctx.user, pipeline_id, filters, _few_owners(session, ctx.user, filters)))
        .group_by(Opportunity.stage_id, Opportunity.status)
    )
    if stage_ids is not None:
        query = query.where(Opportunity.stage_id.in_(sorted(stage_ids)))
    stages = select(Stage).where(Stage.pipeline_id == pipeline_id).order_by(Stage.position, Stage.id)
    return [stages, query]


def board_summary_api_sql(session: Session, ctx: Context, probe: Probe) -> list[Step]:
    return [
        select(Pipeline).where(Pipeline.id == probe.pipeline_id),
        *board_summary_sql(session, ctx, probe.pipeline_id),
    ]


def column_status_of(session: Session, stage_id: int) -> str:
    stage = session.get(Stage, stage_id)
    assert stage is not None
    return column_status(stage)


def board_column_sql(session: Session, ctx: Context, probe: Probe) -> list[Step]:
    """app.kanban.column_page: the stage, then 21 cards newest first along the board index."""
    cards = (
        _card_query(session, ctx.user, probe.pipeline_id, BoardFilters())
        .where(
            Opportunity.stage_id == probe.stage_id,
            Opportunity.status == column_status_of(session, probe.stage_id),
        )
        .order_by(Opportunity.id.desc())
        .limit(BOARD_PAGE_SIZE + 1)
    )
    return [select(Stage).where(Stage.id == probe.stage_id), cards]


def move_sql(session: Session, ctx: Context, probe: Probe, back: bool = False) -> list[Step]:
    """app.kanban.move_card without the service's checks: the card within scope, the target
    stage, the UPDATE and the history row (committed), then the two columns and the card."""
    source, target = (
        (probe.to_stage_id, probe.from_stage_id) if back else (probe.from_stage_id, probe.to_stage_id)
    )
    now = utcnow()
    stage = session.get(Stage, target)
    assert stage is not None
    scope = scope_clause(session, Opportunity, ctx.user)
    return [
        select(Opportunity.stage_id).where(Opportunity.id == probe.opportunity_id),
        select(Opportunity).where(Opportunity.id == probe.opportunity_id, scope),
        select(Stage).where(Stage.id == target),
        update(Opportunity)
        .where(Opportunity.id == probe.opportunity_id)
        .values(
            stage_id=target,
            stage_changed_at=now,
            updated_at=now,
            updated_by_id=ctx.user.id,
            **closing_values(stage, now),
        ),
        insert(StageChange).values(
            opportunity_id=probe.opportunity_id,
            from_stage_id=source,
            to_stage_id=target,
            changed_at=now,
            changed_by_id=ctx.user.id,
        ),
        Commit(),
        *board_summary_sql(session, ctx, probe.pipeline_id, [source, target]),
        select(Opportunity.pipeline_id).where(Opportunity.id == probe.opportunity_id),
        _card_query(session, ctx.user, probe.pipeline_id, BoardFilters()).where(
            Opportunity.id == probe.opportunity_id
        ),
    ]


def workbench_sql(session: Session, ctx: Context, probe: Probe) -> list[Step]:
    """app.home.home_summary and app.home.workbench, with the names the page shows joined."""
    user, scopes, now = ctx.user, ctx.scopes, utcnow()
    customers = scopes[Customer]
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    owner = aliased(CrmUser)

    def counted(*conditions: Any, model: type = Customer) -> Select[Any]:
        return capped_count(select(model.id).where(*conditions), ctx.count_cap + 1)

    summary = [
        # app.home.recently_changed (the same rows; the page merges the scope's branches)
        select(
            Customer.id, Customer.name, Customer.level, Customer.mobile, Customer.updated_at, *names(owner)
        )
        .outerjoin(owner, owner.id == Customer.owner_id)
        .where(customers)
        .order_by(Customer.updated_at.desc(), Customer.id.desc())
        .limit(8),
        counted(Customer.owner_id == user.id),
        counted(customers),
        counted(customers, Customer.created_at >= month_start),
        counted(customers, Customer.level == "key"),
        capped_count(select(Contact.id).join(Contact.customer).where(customers), ctx.count_cap + 1),
        select(Customer.level, func.count()).where(Customer.owner_id == user.id).group_by(Customer.level),
    ]
    day_start, day_end = local_day_bounds(now, ctx.timezone)
    month_first = day_start.date().replace(day=1)
    month_end = (month_first + dt.timedelta(days=32)).replace(day=1)

    def work_list(rows: Select[Any], key: Any, *conditions: Any) -> Capped:
        """The first 10 rows with their names, and the count of the ordering column alone."""
        column = key.element if isinstance(key, UnaryExpression) else key  # as app.home counts
        count = capped_count(select(column).where(*conditions), 1000)
        return Capped(rows.where(*conditions).order_by(key).limit(10), count, 10)

    task_owner, task_customer = aliased(CrmUser), aliased(Customer)
    tasks = (
        select(Task.id, Task.title, Task.due_at, task_customer.name, *names(task_owner))
        .outerjoin(task_customer, task_customer.id == Task.customer_id)
        .outerjoin(task_owner, task_owner.id == Task.owner_id)
    )
    open_tasks = (scopes[Task], Task.status == "open")
    stage = aliased(Stage)
    return [
        *summary,
        work_list(
            select(Customer.id, Customer.name, Customer.next_contact_at, *names(owner)).outerjoin(
                owner, owner.id == Customer.owner_id
            ),
            Customer.next_contact_at,
            customers,
            Customer.next_contact_at < day_end,
        ),
        work_list(tasks, Task.due_at, *open_tasks, Task.due_at < now),
        work_list(tasks, Task.due_at, *open_tasks, Task.due_at >= now, Task.due_at < day_end),
        work_list(
            select(Lead.id, Lead.name, Lead.company, Lead.created_at),
            Lead.created_at.desc(),
            Lead.owner_id == user.id,
            Lead.status == "new",
            Lead.created_at >= now - dt.timedelta(days=14),
            Lead.created_at <= now,
        ),
        work_list(
            select(
                Opportunity.id, Opportunity.name, Opportunity.amount, Opportunity.expected_close, stage.name
            )
            .join(stage, stage.id == Opportunity.stage_id)
            .add_columns(*names(owner))
            .outerjoin(owner, owner.id == Opportunity.owner_id),
            Opportunity.expected_close,
            scopes[Opportunity],
            Opportunity.status == "open",
            Opportunity.expected_close >= month_first,
            Opportunity.expected_close < month_end,
        ),
        *money_lists(session, ctx, now, day_start, day_end),
    ]


def money_lists(
    session: Session, ctx: Context, now: dt.datetime, day_start: dt.datetime, day_end: dt.datetime
) -> list[Step]:
    """The workbench's lists of issue 6 (customers the pool takes back soon, approvals waiting,
    payments due, contracts ending, targets), each by the domain function app.home calls."""
    user, today = ctx.user, (day_start + (day_end - day_start) / 2).date()
    return [
        Call(lambda: due_for_recycle(session, user, now, limit=100)),
        Call(lambda: waiting_for(session, user, limit=100)),
        Call(lambda: payments_due(session, user, today, home.PAYMENTS_AHEAD_DAYS, limit=100)),
        Call(lambda: expiring_contracts(session, user, today, home.CONTRACTS_AHEAD_DAYS, limit=100)),
        Call(lambda: target_progress(session, user, today, ctx.timezone)),
    ]


def timeline_sql(
    session: Session, ctx: Context, customer_id: int, before: dt.datetime | None
) -> list[Select[Any]]:
    """app.customers.customer_timeline's pages (20 rows of each source, newest first, after the
    keyset): the app's own statements, which already join the names they show."""
    cursor = TimelineCursor(before) if before is not None else None
    return list(timeline_queries(session, customer_id, ctx.user, TIMELINE_KINDS, cursor, PAGE_SIZE).values())


def figures_sql(customer_id: int) -> list[Select[Any]]:
    """app.customers.customer_figures' statements (won/open opportunities, follow-ups, orders)."""
    return list(figures_queries(customer_id))


def related_lists_sql(ctx: Context, customer_id: int) -> list[Select[Any]]:
    """The show page's tabs (contacts, opportunities, follow-ups, tasks, team members): each a
    capped count and its first 20 rows in the list's order, within the actor's data scope."""
    scopes, cap = ctx.scopes, ctx.count_cap + 1
    who, stage = aliased(CrmUser), aliased(Stage)
    lists: list[tuple[type, Any, Select[Any]]] = [
        (
            Contact,
            Contact.id.desc(),
            select(Contact.id, Contact.name, Contact.title, Contact.mobile, Contact.phone, Contact.email),
        ),
        (
            Opportunity,
            Opportunity.id.desc(),
            select(
                Opportunity.id,
                Opportunity.name,
                Opportunity.amount,
                Opportunity.expected_close,
                Opportunity.status,
                stage.name,
                *names(who),
            )
            .join(stage, stage.id == Opportunity.stage_id)
            .outerjoin(who, who.id == Opportunity.owner_id),
        ),
        (
            Interaction,
            Interaction.occurred_at.desc(),
            select(
                Interaction.id,
                Interaction.occurred_at,
                Interaction.kind,
                Interaction.subject,
                Interaction.next_contact_at,
                *names(who),
            ).outerjoin(who, who.id == Interaction.owner_id),
        ),
        (
            Task,
            Task.due_at.asc(),
            select(Task.id, Task.title, Task.due_at, Task.status, *names(who)).outerjoin(
                who, who.id == Task.owner_id
            ),
        ),
    ]
    lists.append(
        (
            CustomerTeamMember,
            CustomerTeamMember.id.desc(),
            select(
                CustomerTeamMember.id, CustomerTeamMember.access, CustomerTeamMember.until, *names(who)
            ).join(who, who.id == CustomerTeamMember.user_id),
        )
    )
    statements = []
    for model, order, rows in lists:
        conditions = [scopes[model], model.customer_id == customer_id]
        statements.append(capped_count(select(model.id).where(*conditions), cap))
        customer = aliased(Customer)
        statements.append(
            rows.add_columns(customer.name)
            .join(customer, customer.id == model.customer_id)
            .where(*conditions)
            .order_by(order)
            .limit(PAGE_SIZE)
        )
    return statements


def customer_360_sql(
    session: Session, ctx: Context, customer_id: int, before: dt.datetime | None
) -> list[Step]:
    return [
        *customer_record_statements(ctx.scopes[Customer], customer_id),
        *figures_sql(customer_id),
        *timeline_sql(session, ctx, customer_id, before),
        *related_lists_sql(ctx, customer_id),
    ]


def run_steps(session: Session, steps: list[Step]) -> None:
    """Execute the statements as the app would: a list's count only when its page is full."""
    for step in steps:
        if isinstance(step, Capped):
            if len(session.execute(step.rows).all()) >= step.size:
                session.scalar(step.count)
        elif isinstance(step, Select):
            session.execute(step).all()
        elif isinstance(step, Commit):
            session.commit()
        elif isinstance(step, Call):
            step.function()
        else:
            session.execute(step)


# --- operations -----------------------------------------------------------------------------------
Request = tuple[str, str, dict[str, Any] | None]  # method, url, JSON body


@dataclass(frozen=True)
class SalesOperation:
    name: str
    actors: tuple[str, ...]
    request: Callable[[Probe], Request]
    statements: Callable[[Session, Context, Probe], list[Step]]
    api: bool = False
    #: undoes what a repetition changed (untimed): the request, and the raw statements
    undo: Callable[[Probe], Request] | None = None
    undo_statements: Callable[[Session, Context, Probe], list[Step]] | None = None


ALL = ("rep", "manager", "admin")


def move_body(probe: Probe, back: bool = False) -> dict[str, Any]:
    return {
        "opportunity": probe.opportunity_id,
        "stage": probe.from_stage_id if back else probe.to_stage_id,
    }


OPERATIONS = [
    SalesOperation(
        "sales board page",
        ALL,
        lambda p: ("GET", f"/opportunityboard/{p.pipeline_id}", None),
        board_page_sql,
    ),
    SalesOperation(
        "sales board API summary",
        ALL,
        lambda p: ("GET", f"/api/v1/kanban/{p.pipeline_id}", None),
        board_summary_api_sql,
        api=True,
    ),
    SalesOperation(
        "sales board API column page",
        ALL,
        lambda p: ("GET", f"/api/v1/kanban/{p.pipeline_id}/{p.stage_id}", None),
        board_column_sql,
        api=True,
    ),
    SalesOperation(
        "sales board API move",
        ALL,
        lambda p: ("POST", "/api/v1/kanban/move", move_body(p)),
        move_sql,
        api=True,
        undo=lambda p: ("POST", "/api/v1/kanban/move", move_body(p, back=True)),
        undo_statements=lambda session, ctx, p: move_sql(session, ctx, p, back=True),
    ),
    SalesOperation("sales workbench", ALL, lambda p: ("GET", "/", None), workbench_sql),
    SalesOperation(
        "sales customer 360 (5,000 items)",
        ALL,
        lambda p: ("GET", f"/customerview/show/{p.big_customer}", None),
        lambda session, ctx, p: customer_360_sql(session, ctx, p.big_customer, None),
    ),
    SalesOperation(
        "sales 360 timeline next page",
        ALL,
        lambda p: ("GET", f"/customerview/show/{p.big_customer}?before={p.before.isoformat()}", None),
        lambda session, ctx, p: customer_360_sql(session, ctx, p.big_customer, p.before),
    ),
    SalesOperation(
        "sales customer 360 (typical)",
        ALL,
        lambda p: ("GET", f"/customerview/show/{p.customer_id}", None),
        lambda session, ctx, p: customer_360_sql(session, ctx, p.customer_id, None),
    ),
]


def send(actor: SalesActor, request: Request, api: bool) -> Any:
    method, url, body = request
    client = actor.api if api else actor.web
    response = client.open(url, method=method, json=body, headers=actor.headers if api else {})
    response.get_data()
    if response.status_code != 200:
        detail = response.get_data(as_text=True)[:300] if api else ""
        raise BenchError(f"{method} {url} -> {response.status_code} {detail}".rstrip())
    return response


def time_requests(
    op: SalesOperation, actor: SalesActor, warmup: int, queries: QueryLog, show_sql: bool
) -> tuple[list[float], int, list[str]]:
    """Milliseconds per timed request, the statements of the first timed one, their text."""
    times: list[float] = []
    count, statements = 0, []
    for i, probe in enumerate(actor.probes):
        queries.reset(keep=show_sql and i == warmup)
        started = time.perf_counter()
        send(actor, op.request(probe), op.api)
        elapsed = (time.perf_counter() - started) * 1000
        if i == warmup:
            count, statements = queries.count, queries.statements
        if i >= warmup:
            times.append(elapsed)
        if op.undo is not None:
            send(actor, op.undo(probe), op.api)
    return times, count, statements


def time_raw(
    app: Flask, op: SalesOperation, actor: SalesActor, warmup: int, queries: QueryLog
) -> tuple[list[float], int]:
    """Milliseconds per run of the operation's SQL for the same targets, and its statements."""
    times: list[float] = []
    count = 0
    with app.app_context():
        try:
            session = db.session
            ctx = make_context(app, session, actor.user_id)
            for i, probe in enumerate(actor.probes):
                queries.reset()
                started = time.perf_counter()
                run_steps(session, op.statements(session, ctx, probe))
                elapsed = (time.perf_counter() - started) * 1000
                if i == warmup:
                    count = queries.count
                if i >= warmup:
                    times.append(elapsed)
                if op.undo_statements is not None:
                    run_steps(session, op.undo_statements(session, ctx, probe))
            session.commit()
        finally:
            db.session.remove()
    return times, count


def selected(args: argparse.Namespace, name: str) -> bool:
    return not args.only or any(s in name for s in args.only)


def wanted(args: argparse.Namespace) -> bool:
    """Whether --only leaves any sales operation to time (else the phase generates nothing:
    `--only cf` should not wait for five million follow-ups)."""
    return any(selected(args, f"{op.name} ({actor})") for op in OPERATIONS for actor in op.actors)


def run(
    app: Flask,
    args: argparse.Namespace,
    queries: QueryLog,
    db_name: str,
    header: str,
    checks: list[dict[str, Any]],
) -> list[Result]:
    """Time every selected sales operation per actor, beside its raw SQL (after checking that
    both give the same answer, into `checks`); --explain prints the plans."""
    operations = [op for op in OPERATIONS if any(selected(args, f"{op.name} ({a})") for a in op.actors)]
    if not operations:
        return []
    actors = make_actors(app, args.warmup + args.repeat, args.seed)
    checks.extend(verify(app, actors, args.warmup))
    results: list[Result] = []
    print()
    print(header, flush=True)
    for op in operations:
        for actor in actors:
            name = f"{op.name} ({actor.label})"
            if actor.label not in op.actors or not selected(args, name):
                continue
            try:
                times, count, statements = time_requests(op, actor, args.warmup, queries, args.show_sql)
                raw_times, raw_count = time_raw(app, op, actor, args.warmup, queries)
            except Exception as exc:  # noqa: BLE001 - report it and time the other operations
                result = failed_result(name, db_name, exc, TARGET_MS)
                results.append(result)
                print(result.line(), flush=True)
                continue
            result = make_result(name, db_name, times, count, raw_times, raw_count, TARGET_MS)
            results.append(result)
            print(result.line(), flush=True)
            for statement in statements:
                print(f"    SQL: {statement[:300]}", flush=True)
    if args.explain:
        explain(app, args, operations, actors)
    return results


# --- checks and plans ----------------------------------------------------------------------------
TIMELINE_ITEM = re.compile(
    r'crm-timeline-(\w+)">\s*<div class="crm-timeline-when">.*?</div>\s*<a href="[^"]*/show/(\d+)"', re.S
)


def raw_timeline(
    session: Session, ctx: Context, customer_id: int, before: dt.datetime | None
) -> list[tuple[str, int]]:
    """The (kind, record id) of the timeline page the statements give (app.customers merges them
    as the page does): what the rendered page must list, less the view's own work."""
    cursor = TimelineCursor(before) if before is not None else None
    items = customer_timeline(session, customer_id, ctx.user, TIMELINE_KINDS, cursor, PAGE_SIZE)
    return [(item.kind, item.pk) for item in items]


def verify(app: Flask, actors: list[SalesActor], index: int) -> list[dict[str, Any]]:
    """One request per check and actor beside its raw SQL, so the timings compare like with
    like: the board's column counts, a column page's cards and a timeline page's items."""
    checks = []
    print(f"\n{'check (one request vs its raw SQL)':<48}{'app':<10}{'raw':<10}same")
    for actor in actors:
        probe = actor.probes[min(index, len(actor.probes) - 1)]
        summary = send(actor, ("GET", f"/api/v1/kanban/{probe.pipeline_id}", None), True).json["result"]
        column = send(actor, ("GET", f"/api/v1/kanban/{probe.pipeline_id}/{probe.stage_id}", None), True)
        url = f"/customerview/show/{probe.big_customer}?before={probe.before.isoformat()}"
        page = send(actor, ("GET", url, None), False).get_data(as_text=True)
        with app.app_context():
            try:
                session = db.session
                ctx = make_context(app, session, actor.user_id)
                stages, grouped = board_summary_sql(session, ctx, probe.pipeline_id)
                figures = {(row[0], row[1]): row[2] for row in session.execute(grouped)}
                raw_counts = [
                    figures.get((stage.id, column_status(stage)), 0) for stage in session.scalars(stages)
                ]
                cards = [row.id for row in session.execute(board_column_sql(session, ctx, probe)[1])]
                timeline = raw_timeline(session, ctx, probe.big_customer, probe.before)
            finally:
                db.session.remove()
        compared = [
            ("board column counts", [c["count"] for c in summary], raw_counts),
            ("column page cards", [c["id"] for c in column.json["result"]], cards[:BOARD_PAGE_SIZE]),
            ("360 timeline next page", [(k, int(pk)) for k, pk in TIMELINE_ITEM.findall(page)], timeline),
        ]
        for what, app_value, raw_value in compared:
            name = f"{what} ({actor.label})"
            same = app_value == raw_value
            print(f"{name:<48}{len(app_value):<10}{len(raw_value):<10}{'yes' if same else 'NO'}", flush=True)
            checks.append({"check": name, "app": len(app_value), "raw": len(raw_value), "same": same})
    return checks


def explain(
    app: Flask, args: argparse.Namespace, operations: list[SalesOperation], actors: list[SalesActor]
) -> None:
    """Print the plan and the time of each SELECT of each operation's raw SQL, per actor (one probe).

    SQLite: EXPLAIN QUERY PLAN. PostgreSQL: EXPLAIN (ANALYZE, BUFFERS), which runs the query.
    """
    with app.app_context():
        try:
            session = db.session
            dialect = session.get_bind().dialect
            for op in operations:
                for actor in actors:
                    name = f"{op.name} ({actor.label})"
                    if actor.label not in op.actors or not selected(args, name):
                        continue
                    ctx = make_context(app, session, actor.user_id)
                    probe = actor.probes[min(args.warmup, len(actor.probes) - 1)]
                    for step in op.statements(session, ctx, probe):
                        for statement in (step.rows, step.count) if isinstance(step, Capped) else (step,):
                            if not isinstance(statement, Select):
                                continue
                            sql = str(
                                statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
                            )
                            ms = statement_ms(session, statement)
                            print(f"\n--- plan: {name}, {ms:.1f} ms\n{' '.join(sql.split())}")
                            for line in custom.plan(session, dialect.name, sql):
                                print(f"    {line}")
            session.rollback()
        finally:
            db.session.remove()


def statement_ms(session: Session, statement: Select[Any], runs: int = 3) -> float:
    """The median time of a statement alone (which of an operation's statements is slow)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        session.execute(statement).all()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def summary_line(results: list[Result]) -> str:
    """How many operations are over the target, for the closing line."""
    timed = [r for r in results if not r.error and not math.isnan(r.median_ms)]
    over = [r.operation for r in timed if r.median_ms > TARGET_MS]
    median = statistics.median([r.median_ms for r in timed]) if timed else math.nan
    return (
        f"sales: {len(timed)} timed, {len(over)} over {TARGET_MS} ms (median of medians {median:.1f} ms)"
        + (": " + ", ".join(over) if over else "")
    )
