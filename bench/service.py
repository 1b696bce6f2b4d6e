"""The service desk at scale (issue 8): the agent's queue, a ticket with 200 comments, creating a
ticket against 50 assignment rules, and the SLA sweep over the open tickets.

`prepare()` adds (only what is missing, seeded per batch, one commit per batch of 10,000 tickets,
so a stopped run resumes): the bench support centre 基准客服中心 with two teams of ten Support
Agents (基准客服一组 serves 东营区, 河口区 and 垦利区; 基准客服二组 利津县 and 广饶县), the
business types, 50 assignment rules (the four that assign most tickets come last, so a new ticket
is tested against nearly all of them), and one ticket per bench customer (1,000,000) over the year
before the reference moment R (the support centre's creation): 10% open (the newest), the rest
resolved or closed; SLA targets in business time as app.sla computes them (app.sla.BusinessCalendar),
the open tickets' SLA state as the sweep left it a day before R; three comments per ticket on
average, two status changes each, and one open ticket of the timed agent with 200 comments.

`run()` times, through the Flask test client as the agent `svcbench_01_01` and the admin, each
beside the SQL it needs run directly: the queue (my open tickets, and all tickets by time left:
screen and REST), the ticket page with 200 comments, creating a ticket (in process through
app.service.create_ticket, and POST /api/v1/ticket/), and (in process, as the worker runs it)
app.sla.sla_sweep at R. Every write is undone afterwards, so the database stays as generated.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app
from sqlalchemy import Engine, delete, func, insert, select, text, update
from sqlalchemy.orm import Session, aliased

from app import service_analysis as sa
from app import sla
from app.access import scope_clause
from app.analytics import Filters
from app.extensions import db
from app.security import generate_password
from app.service import create_ticket, local_day, next_ticket_number, number_prefix, seed_categories
from bench.common import PAGE_SIZE, PASSWORD, BenchError, QueryLog, Result, failed_result, login, make_result
from bench.money import StatementTimer, Timings, failing
from bench.sales import batch_rng, returning_ids
from models.base import utcnow
from models.customers import Customer
from models.notifications import Notification, OutboxMessage
from models.security import CrmUser, Department
from models.service import (
    OPEN_TICKET_STATUSES,
    AssignmentRule,
    SlaPolicy,
    Survey,
    Ticket,
    TicketCategory,
    TicketComment,
    TicketStatusChange,
)

TARGET_MS = 100
SWEEP_TARGET_MS = 10_000
BATCH = 10_000
OPEN_SHARE = 0.10
DAYS = 365
BIG_COMMENTS = 200
RULE_COUNT = 50
#: the sweep and the admin's unfiltered operations are long: this many timed repetitions (at most --repeat)
LONG_RUNS = 3
ROOT = "基准客服中心"
#: team name, its districts (东营区 河口区 垦利区 / 利津县 广饶县), share of the tickets
TEAMS = [("基准客服一组", [370502, 370503, 370505], 0.6), ("基准客服二组", [370522, 370523], 0.4)]
AGENTS_PER_TEAM = 10
#: not bench_...: the customer generator takes every bench_% user for a sales team
AGENT_USERNAME = "svcbench_01_01"
ADMIN_USERNAME = "admin"
#: districts of other cities (济南 青岛 淄博 烟台 潍坊 威海 滨州 临沂): the rules that never match
OTHER_DISTRICTS = [370102, 370202, 370303, 370602, 370702, 371002, 371602, 371302]
PRIORITIES = {"low": 15, "normal": 55, "high": 22, "urgent": 8}
CHANNELS = {"staff": 30, "web": 30, "email": 15, "phone": 25}
OPEN_STATES = {"new": 5, "assigned": 20, "in_progress": 45, "waiting": 20, "reopened": 10}
SUBJECTS = [
    "订单发货一周仍未到货", "桶装产品包装破损", "产品颜色与样品不一致", "发票抬头开错", "产品储存条件咨询",
    "预约上门安装", "修改收货地址",
]  # fmt: skip
REPLIES = [
    "您好, 已收到您的反馈, 我们正在核实。", "已联系物流公司核实, 今天内答复。", "请提供订单号和现场照片。",
    "照片已上传, 请查看。", "已安排重新发货。", "问题已解决, 请确认。",
]  # fmt: skip
DAY = dt.timedelta(days=1)
SNAPSHOT_TABLE = "bench_service_open"
SERVICE_TABLES = ["crm_ticket", "crm_ticket_comment", "crm_ticket_status_change"]


def _weighted(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


# --- setup ---------------------------------------------------------------------------------------
@dataclass
class Setup:
    reference: dt.datetime
    teams: list[tuple[int, list[int], list[int]]]  # department id, its districts, its agents
    categories: list[int]
    agent_id: int


def ensure_setup(session: Session) -> Setup:
    """The support centre, two teams of agents, the categories and the 50 rules (once)."""
    sm = current_app.appbuilder.sm
    root = session.scalar(select(Department).where(Department.name == ROOT))
    if root is None:
        root = Department(name=ROOT)
        session.add(root)
        session.flush()
    role = sm.find_role("Support Agent")
    password = None
    teams = []
    for t, (name, districts, _share) in enumerate(TEAMS, start=1):
        team = session.scalar(select(Department).where(Department.name == name))
        if team is None:
            team = Department(name=name, parent_id=root.id)
            session.add(team)
            session.flush()
        agents = []
        for u in range(AGENTS_PER_TEAM):
            username = f"svcbench_{t:02d}_{u:02d}"
            user_id = session.scalar(select(CrmUser.id).where(CrmUser.username == username))
            if user_id is None:
                password = password or generate_password()
                created = sm.add_user(
                    username, f"{t:02d}{u:02d}", "服", f"{username}@bench.example.cn", role, password
                )
                user = session.get(CrmUser, created.id)
                user.department_id = team.id
                user_id = user.id
                if u == 0:
                    team.leader_id = user.id
            agents.append(user_id)
        teams.append((team.id, districts, agents))
    seed_categories(session)
    sla.seed_service_defaults(session)
    categories = list(session.scalars(select(TicketCategory.id).order_by(TicketCategory.position)))
    if (
        session.scalar(
            select(func.count()).select_from(AssignmentRule).where(AssignmentRule.name.like("基准规则%"))
        )
        == 0
    ):
        rng = random.Random("service-rules")
        for position in range(1, RULE_COUNT - 3):  # 46 rules for other cities' tickets
            team_id = teams[position % 2][0]
            session.add(
                AssignmentRule(
                    name=f"基准规则{position:02d} 外地",
                    position=position,
                    active=True,
                    district_codes=rng.sample(OTHER_DISTRICTS, 2),
                    category_ids=rng.sample(categories, 2),
                    customer_levels=rng.choice([[], ["key"]]),
                    target_department_id=team_id,
                    strategy="round_robin",
                )
            )
        finals = [
            ("基准规则47 发票", {"category_ids": [categories[3]]}, teams[0][0], "least_open"),
            ("基准规则48 一组区县", {"district_codes": teams[0][1]}, teams[0][0], "round_robin"),
            ("基准规则49 二组区县", {"district_codes": teams[1][1]}, teams[1][0], "round_robin"),
            ("基准规则50 其他", {}, teams[0][0], "round_robin"),
        ]
        for offset, (name, conditions, team_id, strategy) in enumerate(finals):
            session.add(
                AssignmentRule(
                    name=name,
                    position=RULE_COUNT - 3 + offset,
                    active=True,
                    district_codes=conditions.get("district_codes", []),
                    category_ids=conditions.get("category_ids", []),
                    customer_levels=[],
                    target_department_id=team_id,
                    strategy=strategy,
                )
            )
    session.commit()
    agent_id = session.scalar(select(CrmUser.id).where(CrmUser.username == AGENT_USERNAME))
    return Setup(root.created_at.replace(microsecond=0), teams, categories, agent_id)


# --- generation ----------------------------------------------------------------------------------
def _policies(session: Session) -> dict[str, SlaPolicy]:
    rows = session.scalars(
        select(SlaPolicy).where(SlaPolicy.active.is_(True), SlaPolicy.customer_level.is_(None))
    )
    return {row.priority: row for row in rows}


def _risk(policy: SlaPolicy, minutes: int) -> int:
    return max(1, math.ceil(minutes * policy.at_risk_percent / 100))


class Numbers:
    """GD-YYYYMMDD-NNNN as the service numbers them: the day's next number, counted on."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.next: dict[dt.date, int] = {}

    def __call__(self, moment: dt.datetime) -> str:
        day = local_day(moment)
        if day not in self.next:
            self.next = {day: int(next_ticket_number(self.session, day)[len(number_prefix(day)) :])}
        number = f"{number_prefix(day)}{self.next[day]:04d}"
        self.next[day] += 1
        return number


def plan_ticket(
    rng: random.Random,
    k: int,
    total: int,
    setup: Setup,
    customers: tuple[int, int],
    calendar: sla.BusinessCalendar,
    policies: dict[str, SlaPolicy],
    numbers: Numbers,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Ticket k of `total` (oldest first): its row, comments and status changes (ids to come)."""
    reference = setup.reference
    swept = reference - DAY  # the open tickets' SLA state is the sweep's of a day before R
    step = DAYS * 86400 / total
    created = reference - dt.timedelta(days=DAYS) + dt.timedelta(seconds=k * step + rng.uniform(0, step))
    created = created.replace(microsecond=0)
    team_id, districts, agents = setup.teams[0] if rng.random() < TEAMS[0][2] else setup.teams[1]
    agent = rng.choice(agents)
    priority = _weighted(rng, PRIORITIES)
    policy = policies.get(priority)
    is_open = k >= total * (1 - OPEN_SHARE)
    status = _weighted(rng, OPEN_STATES) if is_open else ("closed" if rng.random() < 0.85 else "resolved")
    row: dict[str, Any] = {
        "number": numbers(created),
        "subject": rng.choice(SUBJECTS),
        "description": "基准测试工单: 客户反馈的问题描述。",
        "customer_id": rng.randint(*customers),
        "category_id": rng.choice(setup.categories),
        "priority": priority,
        "channel": _weighted(rng, CHANNELS),
        "district_code": rng.choice(districts),
        "status": status,
        "match_state": "matched",
        "owner_id": None if status == "new" else agent,
        "department_id": team_id,
        "assigned_at": None if status == "new" else created + dt.timedelta(seconds=rng.randint(5, 90)),
        "created_at": created,
        "created_by_id": None,
        "updated_by_id": None,
        "reopen_count": 1 if status == "reopened" else 0,
        "custom": {},
        "sla_policy_id": policy.id if policy else None,
        "first_response_due": None,
        "resolution_due": None,
        "sla_risk_at": None,
        "sla_paused_at": None,
        "first_response_at": None,
        "resolved_at": None,
        "closed_at": None,
        "resolution": None,
        "resolution_method": None,
        "first_response_breached": False,
        "resolution_breached": False,
        "sla_state": "ok",
        "sla_notified": None,
    }
    # an open ticket created after that sweep is as new as the day it came
    now = max(swept, created) if is_open else reference
    if status not in ("new", "assigned"):
        hours = min(rng.lognormvariate(math.log(2.5), 1.0), 72)
        row["first_response_at"] = min(created + dt.timedelta(hours=hours), now).replace(microsecond=0)
    last = row["first_response_at"] or row["assigned_at"] or created
    if status in ("resolved", "closed"):
        hours = min(rng.lognormvariate(math.log(20), 0.9), 400)
        row["resolved_at"] = (last + dt.timedelta(hours=hours)).replace(microsecond=0)
        row["resolution"], row["resolution_method"] = "已处理, 客户确认", "explanation"
        last = row["resolved_at"]
        if status == "closed":
            row["closed_at"] = last = last + dt.timedelta(hours=rng.randint(4, 72))
    if status == "waiting":
        row["sla_paused_at"] = min(last + dt.timedelta(hours=rng.uniform(0.5, 8)), now).replace(microsecond=0)
    if policy is not None:
        row["first_response_due"] = calendar.add_minutes(created, policy.first_response_minutes)
        row["resolution_due"] = calendar.add_minutes(created, policy.resolution_minutes)
        responded = row["first_response_at"] or now
        row["first_response_breached"] = responded > row["first_response_due"]
        finished = row["resolved_at"] or row["sla_paused_at"] or now
        row["resolution_breached"] = finished > row["resolution_due"]
        breached = row["first_response_breached"] or row["resolution_breached"]
        if is_open:
            moments = [calendar.add_minutes(created, _risk(policy, policy.resolution_minutes))]
            if row["first_response_at"] is None:
                moments.append(calendar.add_minutes(created, _risk(policy, policy.first_response_minutes)))
            row["sla_risk_at"] = min(moments)
            running = status != "waiting"
            if breached:
                row["sla_state"] = "breached"
            elif running and row["sla_risk_at"] <= now:
                row["sla_state"] = "at_risk"
            row["sla_notified"] = row["sla_state"] if row["sla_state"] != "ok" else None
        else:
            row["sla_state"] = "breached" if breached else "met"
    row["updated_at"] = last
    comments = []
    for c in range(rng.randint(1, 5)):  # three on average
        from_customer = c % 2 == 1
        moment = created + (last - created) * (c + 1) / 6
        comments.append(
            {
                "author_id": None if from_customer else agent,
                "author_name": "客户" if from_customer else None,
                "from_customer": from_customer,
                "internal": not from_customer and rng.random() < 0.2,
                "body": rng.choice(REPLIES),
                "created_at": moment.replace(microsecond=0),
            }
        )
    changes = [
        {"from_status": None, "to_status": "new" if status == "new" else "assigned", "changed_at": created}
    ]
    if status not in ("new", "assigned"):
        changes.append(
            {"from_status": "assigned", "to_status": status, "changed_at": last, "changed_by_id": agent}
        )
    return row, comments, changes


def generate_tickets(session: Session, seed: int, setup: Setup) -> dict[str, Any]:
    """One ticket per customer, oldest first, a batch of BATCH per transaction; resumes after the
    tickets already generated (those created before R)."""
    total = session.scalar(select(func.count()).select_from(Customer)) or 0
    low, high = session.execute(select(func.min(Customer.id), func.max(Customer.id))).one()
    done = (
        session.scalar(select(func.count()).select_from(Ticket).where(Ticket.created_at < setup.reference))
        or 0
    )
    if done >= total:
        print(f"tickets: {done:,} already generated, nothing to do", flush=True)
        return {"rows": 0, "comments": 0, "seconds": None}
    done -= done % BATCH  # a partly written batch (impossible: one transaction each) starts over
    print(f"generating tickets {done:,} to {total:,} (10% open) ...", flush=True)
    calendar = sla.BusinessCalendar.load(session)
    policies = _policies(session)
    numbers = Numbers(session)
    started, written, comments_written, reported = time.perf_counter(), 0, 0, 0
    for first in range(done, total, BATCH):
        rng = batch_rng(seed, "tickets", first)
        planned = [
            plan_ticket(rng, k, total, setup, (low, high), calendar, policies, numbers)
            for k in range(first, min(first + BATCH, total))
        ]
        ids = session.scalars(returning_ids(Ticket), [row for row, _c, _h in planned]).all()
        comments, changes = [], []
        for ticket_id, (_row, ticket_comments, ticket_changes) in zip(ids, planned, strict=True):
            comments += [{**c, "ticket_id": ticket_id} for c in ticket_comments]
            changes += [{"changed_by_id": None, **h, "ticket_id": ticket_id} for h in ticket_changes]
        session.execute(insert(TicketComment.__table__), comments)
        session.execute(insert(TicketStatusChange.__table__), changes)
        session.commit()
        written += len(planned)
        comments_written += len(comments)
        if written - reported >= 100_000:
            reported = written
            print(f"  {written:,} tickets, {time.perf_counter() - started:.0f}s", flush=True)
    seconds = round(time.perf_counter() - started, 1)
    print(f"tickets: {written:,} with {comments_written:,} comments in {seconds:.1f}s", flush=True)
    return {"rows": written, "comments": comments_written, "seconds": seconds}


def big_ticket(session: Session, setup: Setup) -> tuple[int, int]:
    """The agent's oldest open ticket, brought to BIG_COMMENTS comments (once); (id, added)."""
    ticket_id = session.scalar(
        select(func.min(Ticket.id)).where(
            Ticket.owner_id == setup.agent_id, Ticket.status.in_(["in_progress", "waiting", "reopened"])
        )
    )
    if ticket_id is None:
        raise SystemExit("the bench agent has no open ticket")
    have = session.scalar(select(func.count()).where(TicketComment.ticket_id == ticket_id)) or 0
    created = session.scalar(select(Ticket.created_at).where(Ticket.id == ticket_id))
    rng = random.Random(f"service-big:{ticket_id}")
    rows = [
        {
            "ticket_id": ticket_id,
            "author_id": None if i % 2 else setup.agent_id,
            "author_name": "客户" if i % 2 else None,
            "from_customer": bool(i % 2),
            "internal": False,
            "body": rng.choice(REPLIES) * rng.randint(1, 4),
            "created_at": created + dt.timedelta(minutes=10 * (i + 1)),
        }
        for i in range(have, BIG_COMMENTS)
    ]
    if rows:
        session.execute(insert(TicketComment.__table__), rows)
        session.commit()
    return ticket_id, len(rows)


def vacuum_analyze(engine: Engine) -> float | None:
    if engine.dialect.name != "postgresql":
        return None
    started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in SERVICE_TABLES:
            conn.exec_driver_sql(f"VACUUM ANALYZE {table}")
    seconds = round(time.perf_counter() - started, 1)
    print(f"VACUUM ANALYZE of the ticket tables in {seconds:.1f}s", flush=True)
    return seconds


def prepare(app: Flask, seed: int) -> dict[str, Any]:
    """The support teams, rules and a year of tickets (only what is missing); what was done."""
    info: dict[str, Any] = {}
    with app.app_context():
        try:
            session = db.session
            setup = ensure_setup(session)
            info["reference"] = setup.reference.isoformat()
            info["tickets"] = generate_tickets(session, seed, setup)
            info["big_ticket"], info["big_ticket_comments_added"] = big_ticket(session, setup)
            if info["tickets"]["seconds"] is not None:
                info["vacuum_analyze_seconds"] = vacuum_analyze(db.engine)
            is_open = Ticket.status.in_(OPEN_TICKET_STATUSES)
            info["rows"] = {
                "tickets": session.scalar(select(func.count()).select_from(Ticket)) or 0,
                "open": session.scalar(select(func.count()).where(is_open)) or 0,
                "comments": session.scalar(select(func.count()).select_from(TicketComment)) or 0,
                "status_changes": session.scalar(select(func.count()).select_from(TicketStatusChange)) or 0,
                "rules": session.scalar(select(func.count()).select_from(AssignmentRule)) or 0,
            }
            print("service rows: " + ", ".join(f"{k} {v:,}" for k, v in info["rows"].items()), flush=True)
        finally:
            db.session.remove()
    return info


# --- the raw SQL ---------------------------------------------------------------------------------
def _queue_rows(session: Session, conditions: list[Any], cap: int) -> None:
    """The queue's capped count and its 20 rows by time left (no due time last) with the names."""
    inner = select(Ticket.id).where(*conditions).limit(cap + 1).subquery()
    session.scalar(select(func.count()).select_from(inner))
    due = Ticket.resolution_due
    dialect = session.get_bind().dialect.name  # as views.service.TicketInterface orders it
    order = {"postgresql": [due.asc()], "sqlite": [due.asc().nulls_last()]}.get(
        dialect, [due.is_(None), due.asc()]
    )
    session.execute(
        select(
            Ticket.id,
            Ticket.number,
            Ticket.subject,
            Ticket.priority,
            Ticket.status,
            Ticket.resolution_due,
            Ticket.sla_state,
            Customer.name,
            TicketCategory.name,
            CrmUser.username,
            Department.name,
        )  # fmt: skip
        .outerjoin(Customer, Customer.id == Ticket.customer_id)
        .outerjoin(TicketCategory, TicketCategory.id == Ticket.category_id)
        .outerjoin(CrmUser, CrmUser.id == Ticket.owner_id)
        .outerjoin(Department, Department.id == Ticket.department_id)
        .where(*conditions)
        .order_by(*order, Ticket.id)
        .limit(PAGE_SIZE)
    ).all()


def _scope(session: Session, user: CrmUser) -> list[Any]:
    clause = scope_clause(session, Ticket, user)
    return [] if clause is None else [clause]


def raw_my_queue(session: Session, user: CrmUser, cap: int, _target: Any) -> None:
    _queue_rows(
        session,
        [*_scope(session, user), Ticket.owner_id == user.id, Ticket.status.in_(OPEN_TICKET_STATUSES)],
        cap,
    )


def raw_all_queue(session: Session, user: CrmUser, cap: int, _target: Any) -> None:
    _queue_rows(session, _scope(session, user), cap)


def raw_detail(session: Session, user: CrmUser, cap: int, ticket_id: int) -> None:
    """The ticket with its names, the conversation with authors, the history, the files."""
    owner, author = aliased(CrmUser), aliased(CrmUser)
    session.execute(
        select(Ticket, Customer.name, TicketCategory.name, owner.username, Department.name)
        .outerjoin(Customer, Customer.id == Ticket.customer_id)
        .outerjoin(TicketCategory, TicketCategory.id == Ticket.category_id)
        .outerjoin(owner, owner.id == Ticket.owner_id)
        .outerjoin(Department, Department.id == Ticket.department_id)
        .where(Ticket.id == ticket_id, *_scope(session, user))
    ).one()
    session.execute(
        select(TicketComment, author.username)
        .outerjoin(author, author.id == TicketComment.author_id)
        .where(TicketComment.ticket_id == ticket_id)
        .order_by(TicketComment.id)
    ).all()
    session.execute(
        select(TicketStatusChange)
        .where(TicketStatusChange.ticket_id == ticket_id)
        .order_by(TicketStatusChange.id)
    ).all()
    session.expunge_all()


@dataclass(frozen=True)
class QueueOperation:
    name: str
    url: Callable[[int], str]
    raw: Callable[[Session, CrmUser, int, Any], None]
    api: bool = False
    actors: tuple[str, ...] = ("agent", "admin")


OPERATIONS = [
    QueueOperation(
        "service my queue page", lambda big: "/myticketview/list/", raw_my_queue, actors=("agent",)
    ),
    QueueOperation(
        "service queue page by time left",
        lambda big: "/ticketview/list/?_oc_TicketView=resolution_due&_od_TicketView=asc",
        raw_all_queue,
    ),
    QueueOperation(
        "service queue REST by time left",
        lambda big: "/api/v1/ticket/?q=(order_column:resolution_due,order_direction:asc,page:0,page_size:20)",
        raw_all_queue,
        api=True,
    ),
    QueueOperation("service ticket page (200 comments)", lambda big: f"/ticketview/show/{big}", raw_detail),
]
CREATE_NAMES = ["service create ticket, 50 rules (in process)", "service create ticket, 50 rules (REST)"]
SWEEP_NAME = "service SLA sweep (open tickets)"
#: the service dashboard's live aggregations (app.service_analysis) over the last 12 months, in
#: process as the dashboard calls them; the target is the whole dashboard's (ARCHITECTURE.md 6)
ANALYSIS = {
    "service analysis response times by month": sa.response_times_by_month,
    "service analysis volume by channel": sa.volume_by_channel,
    "service analysis backlog by status": sa.backlog_by_status,
    "service analysis open at month ends": sa.backlog_by_month_end,
}
ANALYSIS_TARGET_MS = 500


def operation_names() -> list[str]:
    names = [f"{op.name} ({actor})" for op in OPERATIONS for actor in op.actors]
    analysis = [f"{name} ({actor})" for name in ANALYSIS for actor in ("agent", "admin")]
    return [*names, *CREATE_NAMES, SWEEP_NAME, *analysis]


def selected(args: argparse.Namespace, name: str) -> bool:
    return not args.only or any(s in name for s in args.only)


def wanted(args: argparse.Namespace) -> bool:
    """Whether --only leaves any service operation (else nothing is generated for it)."""
    return any(selected(args, name) for name in operation_names())


# --- timing --------------------------------------------------------------------------------------
@dataclass
class ServiceActor:
    label: str
    username: str
    user_id: int
    web: Any
    api: Any
    headers: dict[str, str]


def make_actors(app: Flask) -> dict[str, ServiceActor]:
    ids = {}
    with app.app_context():
        try:
            session = db.session
            for label, username in (("agent", AGENT_USERNAME), ("admin", ADMIN_USERNAME)):
                user_id = session.scalar(select(CrmUser.id).where(CrmUser.username == username))
                if user_id is None:
                    raise SystemExit(f"user {username} not found")
                app.appbuilder.sm.reset_password(user_id, PASSWORD)
                ids[label] = (username, user_id)
        finally:
            db.session.remove()
    return {label: ServiceActor(label, name, uid, *login(app, name)) for label, (name, uid) in ids.items()}


def time_queue(
    app: Flask, args: argparse.Namespace, op: QueueOperation, actor: ServiceActor, big: int, queries: QueryLog
) -> Timings:
    timings = Timings()
    client = actor.api if op.api else actor.web
    headers = actor.headers if op.api else {}
    url = op.url(big)
    for i in range(args.warmup + args.repeat):
        queries.reset()
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        response.get_data()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise BenchError(f"GET {url} -> {response.status_code}")
        if i == args.warmup:
            timings.queries = queries.count
        if i >= args.warmup:
            timings.app.append(elapsed)
    with app.app_context():
        try:
            session = db.session
            user = session.get(CrmUser, actor.user_id)
            cap = app.config["CRM_COUNT_CAP"]
            for i in range(args.warmup + args.repeat):
                queries.reset()
                started = time.perf_counter()
                op.raw(session, user, cap, big)
                elapsed = (time.perf_counter() - started) * 1000
                if i == args.warmup:
                    timings.raw_queries = queries.count
                if i >= args.warmup:
                    timings.raw.append(elapsed)
        finally:
            db.session.remove()
    return timings


@dataclass
class Marks:
    ticket: int
    comment: int
    change: int
    survey: int
    notification: int
    outbox: int
    pointers: dict[int, int | None]


def marks(session: Session) -> Marks:
    def top(column: Any) -> int:
        return session.scalar(select(func.max(column))) or 0

    pointers = dict(session.execute(select(AssignmentRule.id, AssignmentRule.last_assigned_user_id)).all())
    return Marks(
        top(Ticket.id),
        top(TicketComment.id),
        top(TicketStatusChange.id),
        top(Survey.id),
        top(Notification.id),
        top(OutboxMessage.id),
        pointers,
    )


def undo_writes(session: Session, mark: Marks) -> None:
    """Delete what the timed writes added and put the round-robin pointers back."""
    session.rollback()
    session.execute(delete(TicketComment).where(TicketComment.id > mark.comment))
    session.execute(delete(TicketStatusChange).where(TicketStatusChange.id > mark.change))
    session.execute(delete(Survey).where(Survey.id > mark.survey))
    session.execute(delete(Ticket).where(Ticket.id > mark.ticket))
    session.execute(delete(Notification).where(Notification.id > mark.notification))
    session.execute(delete(OutboxMessage).where(OutboxMessage.id > mark.outbox))
    for rule_id, pointer in mark.pointers.items():
        session.execute(
            update(AssignmentRule).where(AssignmentRule.id == rule_id).values(last_assigned_user_id=pointer)
        )
    session.commit()


def new_ticket_input(rng: random.Random, customers: tuple[int, int], categories: list[int]) -> dict[str, Any]:
    """A ticket from the phone: a random customer and business type, a district of the bench
    teams (most go through all 50 rules to the district rules at 48 and 49)."""
    district = rng.choice(TEAMS[0][1] + TEAMS[1][1])
    return {
        "subject": rng.choice(SUBJECTS),
        "description": "基准测试: 电话报修, 请尽快处理。",
        "channel": "phone",
        "customer_id": rng.randint(*customers),
        "category_id": rng.choice(categories),
        "priority": _weighted(rng, PRIORITIES),
        "district_code": district,
    }


def raw_create(session: Session, user: CrmUser, data: dict[str, Any], reference_day: dt.date) -> None:
    """What creating a ticket needs: the rules, the team's members and the pointer (or the open
    counts), the day's next number, the SLA policy, the ticket and its first status change."""
    rules = session.scalars(
        select(AssignmentRule).where(AssignmentRule.active.is_(True)).order_by(AssignmentRule.position)
    ).all()
    rule = next(
        (
            r
            for r in rules
            if (not r.district_codes or data["district_code"] in r.district_codes)
            and (not r.category_ids or data["category_id"] in r.category_ids)
            and not r.customer_levels
        ),
        rules[-1],
    )
    members = session.scalars(
        select(CrmUser.id).where(CrmUser.department_id == rule.target_department_id, CrmUser.active.is_(True))
    ).all()
    if rule.strategy == "least_open":
        session.execute(
            select(Ticket.owner_id, func.count())
            .where(Ticket.owner_id.in_(members), Ticket.status.in_(OPEN_TICKET_STATUSES))
            .group_by(Ticket.owner_id)
        ).all()
    session.execute(
        update(AssignmentRule).where(AssignmentRule.id == rule.id).values(last_assigned_user_id=members[0])
    )
    policy = session.scalar(select(SlaPolicy).where(SlaPolicy.priority == data["priority"]).limit(1))
    now = utcnow().replace(microsecond=0)
    number = next_ticket_number(session, local_day(now))
    ticket_id = session.execute(
        insert(Ticket).values(
            number=number,
            **data,
            status="assigned",
            owner_id=members[0],
            department_id=rule.target_department_id,
            assignment_rule_id=rule.id,
            assigned_at=now,
            match_state="matched",
            sla_policy_id=policy.id if policy else None,
            first_response_due=now + dt.timedelta(hours=1),
            resolution_due=now + dt.timedelta(hours=24),
            sla_state="ok",
            created_at=now,
            updated_at=now,
            created_by_id=user.id,
            updated_by_id=user.id,
            custom={},
        )
    ).inserted_primary_key[0]
    session.execute(
        insert(TicketStatusChange).values(
            ticket_id=ticket_id, from_status=None, to_status="assigned", changed_at=now, changed_by_id=user.id
        )
    )
    session.commit()


def time_creates(
    app: Flask, args: argparse.Namespace, actor: ServiceActor, queries: QueryLog
) -> tuple[Timings, Callable[[], Timings]]:
    """create_ticket in process (committed), then POST /api/v1/ticket/; a different customer,
    business type and district each time; everything added is deleted afterwards."""
    in_process, rest = Timings(), Timings()
    rng = random.Random(f"{args.seed}:service-create")
    with app.app_context():
        session = db.session
        try:
            low, high = session.execute(select(func.min(Customer.id), func.max(Customer.id))).one()
            categories = list(session.scalars(select(TicketCategory.id)))
            mark = marks(session)
            session.commit()
            user = session.get(CrmUser, actor.user_id)
            total = args.warmup + args.repeat
            try:
                for i in range(total):
                    data = new_ticket_input(rng, (low, high), categories)
                    queries.reset()
                    started = time.perf_counter()
                    with app.test_request_context():
                        create_ticket(session, actor=user, **data)
                        session.commit()
                    elapsed = (time.perf_counter() - started) * 1000
                    if i == args.warmup:
                        in_process.queries = queries.count
                    if i >= args.warmup:
                        in_process.app.append(elapsed)
                for i in range(total):
                    data = new_ticket_input(rng, (low, high), categories)
                    queries.reset()
                    started = time.perf_counter()
                    raw_create(session, user, data, local_day(utcnow()))
                    elapsed = (time.perf_counter() - started) * 1000
                    if i == args.warmup:
                        in_process.raw_queries = rest.raw_queries = queries.count
                    if i >= args.warmup:
                        in_process.raw.append(elapsed)
                        rest.raw.append(elapsed)
            finally:
                undo_writes(session, mark)
            rest_work = failing(BenchError("not timed"))
            try:
                time_rest(args, actor, (low, high), categories, queries, rest)
                rest_work = lambda: rest  # noqa: E731
            except Exception as exc:  # noqa: BLE001 - reported, the in-process timings stand
                rest_work = failing(exc)
            finally:
                undo_writes(session, mark)
        finally:
            db.session.remove()
    return in_process, rest_work


def time_rest(
    args: argparse.Namespace,
    actor: ServiceActor,
    customers: tuple[int, int],
    categories: list[int],
    queries: QueryLog,
    rest: Timings,
) -> None:
    """POST /api/v1/ticket/ (JWT) as the agent: the same kind of ticket, through the API."""
    rng = random.Random(f"{args.seed}:service-rest")
    for i in range(args.warmup + args.repeat):
        data = new_ticket_input(rng, customers, categories)
        body = {
            "subject": data["subject"],
            "description": data["description"],
            "channel": data["channel"],
            "customer": data["customer_id"],
            "category": data["category_id"],
            "priority": data["priority"],
            "district": data["district_code"],
        }
        queries.reset()
        started = time.perf_counter()
        response = actor.api.post("/api/v1/ticket/", json=body, headers=actor.headers)
        detail = response.get_data(as_text=True)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code not in (200, 201):
            raise BenchError(f"POST /api/v1/ticket/ -> {response.status_code} {detail[:300]}")
        if i == args.warmup:
            rest.queries = queries.count
        if i >= args.warmup:
            rest.app.append(elapsed)


def sweep_snapshot(session: Session) -> None:
    """A copy of what the sweep changes on open tickets (dropped at the end)."""
    session.execute(text(f"DROP TABLE IF EXISTS {SNAPSHOT_TABLE}"))
    session.execute(
        text(
            f"CREATE TABLE {SNAPSHOT_TABLE} AS SELECT id, sla_state, sla_notified, "
            "first_response_breached, resolution_breached FROM crm_ticket "
            "WHERE status IN ('new', 'assigned', 'in_progress', 'waiting', 'reopened')"
        )
    )
    session.execute(text(f"CREATE UNIQUE INDEX ix_{SNAPSHOT_TABLE} ON {SNAPSHOT_TABLE} (id)"))
    session.commit()


def sweep_restore(session: Session, mark: Marks) -> float:
    started = time.perf_counter()
    columns = ["sla_state", "sla_notified", "first_response_breached", "resolution_breached"]
    assignments = ", ".join(
        f"{c} = (SELECT s.{c} FROM {SNAPSHOT_TABLE} s WHERE s.id = crm_ticket.id)" for c in columns
    )
    session.execute(
        text(f"UPDATE crm_ticket SET {assignments} WHERE id IN (SELECT id FROM {SNAPSHOT_TABLE})")
    )
    session.execute(delete(Notification).where(Notification.id > mark.notification))
    session.execute(delete(OutboxMessage).where(OutboxMessage.id > mark.outbox))
    session.commit()
    return time.perf_counter() - started


def time_sweep(app: Flask, args: argparse.Namespace, timer: StatementTimer) -> Timings:
    """app.sla.sla_sweep(session, R) on the generated state (as the sweep left it a day before):
    the day's new breaches and at-risk tickets, and their notices; restored between runs."""
    timings = Timings()
    with app.app_context():
        session = db.session
        try:
            reference = ensure_setup(session).reference
            sweep_snapshot(session)
            mark = marks(session)
            session.commit()
            restores = []
            for _run in range(min(LONG_RUNS, args.repeat)):
                timer.reset()
                started = time.perf_counter()
                with app.test_request_context():
                    report = sla.sla_sweep(session, reference)
                timings.app.append((time.perf_counter() - started) * 1000)
                timings.raw.append(timer.total)
                timings.queries = timings.raw_queries = timer.count
                timings.extra = {**report, "slowest_ms": [round(ms, 1) for ms, _s, _p in timer.slowest]}
                session.commit()
                restores.append(sweep_restore(session, mark))
            timings.extra["open"] = session.scalar(
                select(func.count()).where(Ticket.status.in_(OPEN_TICKET_STATUSES))
            )
            timings.extra["restore_seconds"] = round(statistics.median(restores), 1)
            session.execute(text(f"DROP TABLE IF EXISTS {SNAPSHOT_TABLE}"))
            session.commit()
        finally:
            db.session.remove()
    return timings


def time_analysis(
    app: Flask, args: argparse.Namespace, function: Any, actor: ServiceActor, timer: StatementTimer
) -> Timings:
    """One analysis function over the 12 months before R (LONG_RUNS times after one untimed
    call); raw_sql_ms is the database's own time within it."""
    timings = Timings()
    with app.app_context():
        session = db.session
        try:
            reference = ensure_setup(session).reference
            day = local_day(reference)
            filters = Filters(date_from=day.replace(year=day.year - 1), date_to=day)
            user = session.get(CrmUser, actor.user_id)
            with app.test_request_context():
                for run in range(1 + min(LONG_RUNS, args.repeat)):
                    timer.reset()
                    started = time.perf_counter()
                    frame = function(session, user, filters)
                    if run:
                        timings.app.append((time.perf_counter() - started) * 1000)
                        timings.raw.append(timer.total)
                        timings.queries = timings.raw_queries = timer.count
                timings.extra = {"rows": len(frame)}
        finally:
            db.session.remove()
    return timings


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
    """Time every selected service operation beside its raw SQL."""
    names = [n for n in operation_names() if selected(args, n)]
    if not names:
        return []
    actors = make_actors(app)
    with app.app_context():
        timer = StatementTimer(db.engine)
        setup = ensure_setup(db.session)
        big, _added = big_ticket(db.session, setup)
        db.session.remove()
    results: list[Result] = []
    print()
    print(header, flush=True)

    def report(name: str, target: int, work: Callable[[], Timings]) -> None:
        try:
            timings = work()
        except Exception as exc:  # noqa: BLE001 - report it and time the other operations
            failed = failed_result(name, db_name, exc, target)
            results.append(failed)
            print(failed.line(), flush=True)
            return
        outcome = result(name, db_name, timings, target)
        results.append(outcome)
        print(outcome.line(), flush=True)
        if timings.extra:
            details[name] = timings.extra
            print(f"    {timings.extra}", flush=True)

    for op in OPERATIONS:
        for label in op.actors:
            name = f"{op.name} ({label})"
            if name in names:
                report(
                    name, TARGET_MS, lambda o=op, a=actors[label]: time_queue(app, args, o, a, big, queries)
                )
    if any(n in names for n in CREATE_NAMES):
        try:
            in_process, rest = time_creates(app, args, actors["agent"], queries)
        except Exception as exc:  # noqa: BLE001
            report(CREATE_NAMES[0], TARGET_MS, failing(exc))
        else:
            report(CREATE_NAMES[0], TARGET_MS, lambda: in_process)
            report(CREATE_NAMES[1], TARGET_MS, rest)
    if SWEEP_NAME in names:
        report(SWEEP_NAME, SWEEP_TARGET_MS, lambda: time_sweep(app, args, timer))
    for name, function in ANALYSIS.items():
        for label in ("agent", "admin"):
            if f"{name} ({label})" in names:
                report(
                    f"{name} ({label})",
                    ANALYSIS_TARGET_MS,
                    lambda f=function, a=actors[label]: time_analysis(app, args, f, a, timer),
                )
    return results
