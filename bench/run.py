"""Time KeGuan's customer screens and APIs at scale: `python -m bench.run --help`.

Builds a database (migrations from empty, reference data, admin, `app.demo.generate`), then
times each operation through the Flask test client, in process and logged in, as a Sales Rep
(sees only their own customers) and as an Admin (sees all), beside the raw SQL the page needs.
Prints figures only; nothing passes or fails on time (see /work/shared/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import math
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import (
    ColumnElement,
    Engine,
    create_engine,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session

import config
from app import audit, create_app, demo
from app.access import scope_clause
from app.cli import ensure_admin, setup_database
from app.extensions import db
from app.search import search_statements
from app.worker import analyze_tables
from bench import analytics, custom, money, sales, service
from bench.common import (
    DEFAULT_TARGET_MS,
    PAGE_SIZE,
    PASSWORD,
    BenchError,
    Operation,
    Probe,
    QueryLog,
    RawContext,
    Result,
    capped_count_statement,
    customer_record_statements,
    customer_rows_statement,
    failed_result,
    login,
    make_result,
    p95,
)
from models.customers import (
    Contact,
    Customer,
)
from models.security import CrmUser, RoleMfaPolicy

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
TARGET_MS = DEFAULT_TARGET_MS
REP_USERNAME = "bench_03_04"  # a Sales Rep: bench_TT_00 is each team's manager
ADMIN_USERNAME = "admin"
# Two-character words found inside generated names: each is one of six suffixes (~1/6 of rows)
TWO_CHAR_WORDS = ["化工", "机械", "水产", "物流", "轮胎"]
HEADER = f"{'operation':<48}{'db':<12}{'n':<5}{'median_ms':<11}{'p95_ms':<8}{'raw_sql_ms':<12}target_ms"

log = logging.getLogger("bench")


# --- options and database ------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        default=None,
        help="default: SQLite file instance/bench/keguan_bench.db; "
        "e.g. postgresql://postgres@127.0.0.1/keguan_bench",
    )
    parser.add_argument("--customers", type=int, default=1_000_000, help="default: %(default)s")
    parser.add_argument("--contacts-per-customer", type=int, default=2, help="default: %(default)s")
    parser.add_argument(
        "--repeat", type=int, default=30, help="timed calls per operation (default: %(default)s)"
    )
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls first (default: %(default)s)")
    parser.add_argument(
        "--reuse", action="store_true", help="keep the database; skip generation when it holds >= N customers"
    )
    parser.add_argument("--build-only", action="store_true", help="build the database, time nothing")
    parser.add_argument(
        "--seed", type=int, default=42, help="picks the target records (default: %(default)s)"
    )
    parser.add_argument("--only", action="append", default=[], help="run operations whose name contains this")
    parser.add_argument("--show-sql", action="store_true", help="print the SQL of one request per operation")
    parser.add_argument(
        "--custom-fields",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="define and fill 10 customer custom fields, time their operations and the engine's "
        "per-request overhead (default: on)",
    )
    parser.add_argument(
        "--sales",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="generate opportunities, follow-ups, tasks and leads on the bench customers and time "
        "the board, the workbench and the customer 360 page (default: on)",
    )
    parser.add_argument(
        "--money",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="generate customer pools (half the customers pooled) and two orders per customer and "
        "time the recycle run, pool lists, claims, handover and order creation (default: on)",
    )
    parser.add_argument(
        "--service",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="generate support teams, 50 assignment rules and one ticket per customer (10%% open) and "
        "time the agent's queue, a ticket with 200 comments, creating a ticket and the SLA sweep "
        "(default: on)",
    )
    parser.add_argument(
        "--analytics",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="build the dashboards' rollups and time the sales and customers dashboards per actor, with and "
        "without a custom-field filter, and the incremental refresh after 100 orders (default: on)",
    )
    parser.add_argument(
        "--statistics",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="on SQLite, take planner statistics before timing when the database has none, as the "
        "worker's nightly statistics job (app.worker.analyze_tables) does after the first night "
        "(default: on; --no-statistics times the plans SQLite guesses without them)",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="print the database's plan of the raw SQL of each custom-field, sales and money operation",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0 or args.customers < 1:
        parser.error("--repeat and --customers must be >= 1, --warmup >= 0")
    return args


def resolve_url(raw: str | None) -> str:
    """The SQLAlchemy URL, with short schemes mapped to the drivers KeGuan ships (config.py)."""
    if not raw:
        folder = config.INSTANCE_DIR / "bench"
        folder.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{folder / 'keguan_bench.db'}"
    os.environ["DATABASE_URL"] = raw
    return config.database_url()


def ensure_database(url: URL) -> None:
    """Create a PostgreSQL database that does not exist yet (SQLite files create themselves)."""
    if url.get_backend_name() != "postgresql":
        return
    engine = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database})
        if not exists:
            conn.exec_driver_sql(f'CREATE DATABASE "{url.database}"')
    engine.dispose()


def drop_everything(url: URL) -> None:
    """Start from an empty database, so the migrations build the whole schema."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        if url.database and url.database != ":memory:":
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(url.database + suffix).unlink(missing_ok=True)
        return
    engine = create_engine(url)
    with engine.begin() as conn:
        if backend == "postgresql":
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
        else:
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
            for (table,) in conn.exec_driver_sql("SHOW TABLES").all():
                conn.exec_driver_sql(f"DROP TABLE `{table}`")
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
    engine.dispose()


def bench_keys() -> dict[str, str]:
    """Encryption keys of the bench databases: from the environment, else generated once into
    instance/bench/ (a server database refuses to start without keys; the bench's own, never a
    real installation's)."""
    names = ("CRM_ENCRYPTION_KEY", "CRM_BLIND_INDEX_KEY")
    if all(os.environ.get(name) for name in names):
        return {name: os.environ[name] for name in names}
    path = BENCH_DIR.parent / "instance" / "bench" / "bench_keys.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = {name: base64.b64encode(os.urandom(32)).decode() for name in names}
        path.write_text(json.dumps(keys))
        path.chmod(0o600)
    return json.loads(path.read_text())


def make_app(url: str) -> Flask:
    return create_app(
        {
            **bench_keys(),
            "SQLALCHEMY_DATABASE_URI": url,
            "WTF_CSRF_ENABLED": False,
            "RATELIMIT_ENABLED": False,
            "AUTH_RATE_LIMITED": False,
            # the bench logs in with passwords: no role requires a TOTP code (a database set up
            # before this line had Admin's policy created: build() turns it off)
            "CRM_MFA_REQUIRED_ROLES": [],
            "TESTING": True,
        }
    )


def build(app: Flask, args: argparse.Namespace) -> dict[str, Any]:
    """Migrate, set up, create the admin and generate customers; returns what was done."""
    from flask_migrate import upgrade

    os.environ["CRM_ADMIN_PASSWORD"] = PASSWORD
    info: dict[str, Any] = {"generation_seconds": None, "analyze_seconds": None}
    with app.app_context():
        started = time.perf_counter()
        upgrade()
        setup_database()
        ensure_admin(ADMIN_USERNAME)
        db.session.execute(update(RoleMfaPolicy).values(required=False))
        db.session.commit()
        info["setup_seconds"] = round(time.perf_counter() - started, 2)
        print(f"schema and reference data ready in {info['setup_seconds']:.1f}s", flush=True)
        session = db.session
        existing = session.scalar(select(func.count()).select_from(Customer)) or 0
        if args.reuse and existing >= args.customers:
            print(f"reusing the database: {existing:,} customers already there, no generation", flush=True)
        else:
            missing = args.customers - existing
            print(f"generating {missing:,} customers x {args.contacts_per_customer} contacts ...", flush=True)
            started = time.perf_counter()
            stats = demo.generate(session, missing, args.contacts_per_customer)
            info["generation_seconds"] = round(time.perf_counter() - started, 1)
            print(
                f"generated {stats['customers']:,} customers, {stats['contacts']:,} contacts "
                f"in {info['generation_seconds']:.1f}s",
                flush=True,
            )
            info["analyze_seconds"] = analyze(db.engine)
        info["customers"] = session.scalar(select(func.count()).select_from(Customer))
        info["contacts"] = session.scalar(select(func.count()).select_from(Contact))
        db.session.remove()
    return info


def analyze(engine: Engine) -> float | None:
    """PostgreSQL: refresh planner statistics after the bulk load, as autovacuum soon would
    (SQLite: the worker's nightly job, see nightly_statistics)."""
    if engine.dialect.name != "postgresql":
        return None
    started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    seconds = round(time.perf_counter() - started, 1)
    print(f"VACUUM ANALYZE in {seconds:.1f}s", flush=True)
    return seconds


def nightly_statistics(app: Flask) -> float | None:
    """SQLite: the worker's daily statistics job, once, when no table has statistics yet (right
    after generation); the database keeps them, as a running installation would."""
    with app.app_context():
        session = db.session
        if session.get_bind().dialect.name != "sqlite":
            return None
        present = session.scalar(text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'"))
        if present and session.scalar(text("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'crm_task'")):
            return None
        started = time.perf_counter()
        tables = analyze_tables(session)
        seconds = round(time.perf_counter() - started, 1)
        print(f"nightly statistics job: {tables} tables analysed in {seconds:.1f}s", flush=True)
        db.session.remove()
        return seconds


# --- who, and on which records --------------------------------------------------------------
@dataclass
class Actor:
    label: str  # "rep" or "admin"
    username: str
    user_id: int
    web: FlaskClient
    api: FlaskClient
    headers: dict[str, str]
    probes: list[Probe] = field(default_factory=list)


def make_actors(app: Flask, count: int, rng: random.Random) -> list[Actor]:
    actors = []
    with app.app_context():
        session = db.session
        bench_users = list(session.scalars(select(CrmUser.id).where(CrmUser.username.like("bench_%"))))
        ids = {}
        for label, username in (("rep", REP_USERNAME), ("admin", ADMIN_USERNAME)):
            user_id = session.scalar(select(CrmUser.id).where(CrmUser.username == username))
            if user_id is None:
                raise SystemExit(f"user {username} not found")
            app.appbuilder.sm.reset_password(user_id, PASSWORD)
            ids[label] = (username, user_id)
        db.session.remove()
    for label, (username, user_id) in ids.items():
        web, api, headers = login(app, username)
        actors.append(Actor(label, username, user_id, web, api, headers))
    with app.app_context():
        session = db.session
        for actor in actors:
            user = session.get(CrmUser, actor.user_id)
            scope = scope_clause(session, Customer, user)
            owners = [actor.user_id] if actor.label == "rep" else bench_users
            actor.probes = [_probe(session, scope, rng, owners) for _ in range(count)]
        db.session.remove()
    return actors


def _probe(
    session: Session, scope: ColumnElement[bool] | None, rng: random.Random, owners: list[int]
) -> Probe:
    low, high = session.execute(select(func.min(Customer.id), func.max(Customer.id))).one()
    stmt = select(Customer.id, Customer.name, Customer.mobile).order_by(Customer.id).limit(1)
    if scope is not None:
        stmt = stmt.where(scope)
    row = session.execute(stmt.where(Customer.id >= rng.randint(low, high))).first()
    row = row or session.execute(stmt).one()
    digits = re.search(r"(\d{2,})号", row.name)
    fragment = f"{digits.group(1)}号" if digits else row.name[1:4]
    return Probe(
        customer_id=row.id,
        name_fragment=fragment,
        mobile_prefix=(row.mobile or "13900012345")[:7],
        word=rng.choice(TWO_CHAR_WORDS),
        owner_id=rng.choice(owners),
    )


# --- the raw SQL each page needs --------------------------------------------------------------
def _capped_count(session: Session, ctx: RawContext, model: Any, *conditions: Any) -> None:
    session.scalar(capped_count_statement(ctx, model, *conditions))


def _customer_rows(
    session: Session, ctx: RawContext, *conditions: Any, order_by: Any = None, district: bool = False
) -> None:
    """The 20 rows of a customer list (with city, owner and optionally district names)."""
    session.execute(customer_rows_statement(ctx, *conditions, order_by=order_by, district=district)).all()


def raw_list_page(session: Session, ctx: RawContext, probe: Probe) -> None:
    _capped_count(session, ctx, Customer)
    _customer_rows(session, ctx, order_by=[Customer.id.desc()])


def raw_list_by_name(session: Session, ctx: RawContext, probe: Probe) -> None:
    _capped_count(session, ctx, Customer)
    _customer_rows(session, ctx, order_by=[Customer.name.asc()])


def raw_list_by_owner(session: Session, ctx: RawContext, probe: Probe) -> None:
    _capped_count(session, ctx, Customer, Customer.owner_id == probe.owner_id)
    _customer_rows(session, ctx, Customer.owner_id == probe.owner_id, order_by=[Customer.id.desc()])


def _search(session: Session, ctx: RawContext, query: str) -> None:
    """The very statements app.search runs (search_statements), executed directly."""
    for _kind, stmt in search_statements(session, ctx.user, query, PAGE_SIZE):
        session.execute(stmt).all()


def raw_search_mobile(session: Session, ctx: RawContext, probe: Probe) -> None:
    _search(session, ctx, probe.mobile_prefix)


def _search_name(session: Session, ctx: RawContext, query: str) -> None:
    _search(session, ctx, query)


def raw_search_name(session: Session, ctx: RawContext, probe: Probe) -> None:
    _search_name(session, ctx, probe.name_fragment)


def raw_search_word(session: Session, ctx: RawContext, probe: Probe) -> None:
    _search_name(session, ctx, probe.word)


def _customer_record(session: Session, ctx: RawContext, customer_id: int) -> None:
    """One customer with every many-to-one name the page shows, its tags and groups."""
    record, tags, groups = customer_record_statements(ctx.customer_scope, customer_id)
    session.execute(record).one()
    session.execute(tags).all()
    session.execute(groups).all()


def raw_detail(session: Session, ctx: RawContext, probe: Probe) -> None:
    """The record, plus the related contacts list (count and first page) the show page renders."""
    _customer_record(session, ctx, probe.customer_id)
    _capped_count(session, ctx, Contact, Contact.customer_id == probe.customer_id)
    session.execute(
        select(
            Contact.id,
            Contact.name,
            Contact.title,
            Contact.mobile,
            Contact.phone,
            Contact.email,
            Contact.is_primary,
            Customer.name,
        )
        .join(Customer, Customer.id == Contact.customer_id)
        .where(Contact.customer_id == probe.customer_id, ctx.contact_scope)
        .order_by(Contact.id.desc())
        .limit(PAGE_SIZE)
    ).all()


def raw_rest_list(session: Session, ctx: RawContext, probe: Probe) -> None:
    _capped_count(session, ctx, Customer)
    _customer_rows(session, ctx, district=True)


def raw_rest_get(session: Session, ctx: RawContext, probe: Probe) -> None:
    _customer_record(session, ctx, probe.customer_id)


# --- operations and timing ------------------------------------------------------------------
OPERATIONS = [
    Operation("customer list page 1", lambda p: "/customerview/list/", raw_list_page),
    Operation(
        "customer list by name",
        lambda p: "/customerview/list/?_oc_CustomerView=name&_od_CustomerView=asc",
        raw_list_by_name,
    ),
    Operation(
        "customer list by owner",
        lambda p: f"/customerview/list/?_flt_0_owner={p.owner_id}",
        raw_list_by_owner,
    ),
    Operation("search mobile prefix", lambda p: f"/search/?q={p.mobile_prefix}", raw_search_mobile),
    Operation("search name 3+ chars", lambda p: f"/search/?q={quote(p.name_fragment)}", raw_search_name),
    Operation("search name 2 chars", lambda p: f"/search/?q={quote(p.word)}", raw_search_word),
    Operation("customer detail", lambda p: f"/customerview/show/{p.customer_id}", raw_detail),
    Operation("REST list", lambda p: "/api/v1/customer/", raw_rest_list, api=True),
    Operation("REST get", lambda p: f"/api/v1/customer/{p.customer_id}", raw_rest_get, api=True),
]


def time_requests(
    op: Operation, actor: Actor, warmup: int, queries: QueryLog, show_sql: bool
) -> tuple[list[float], int, list[str]]:
    """Milliseconds per timed request, the statements of the first timed request, their text."""
    client = actor.api if op.api else actor.web
    headers = actor.headers if op.api else {}
    times: list[float] = []
    count, statements = 0, []
    for i, probe in enumerate(actor.probes):
        url = op.url(probe)
        queries.reset(keep=show_sql and i == warmup)
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        response.get_data()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise BenchError(f"GET {url} -> {response.status_code}")
        if i == warmup:
            count, statements = queries.count, queries.statements
        if i >= warmup:
            times.append(elapsed)
    return times, count, statements


def time_raw(
    app: Flask, op: Operation, actor: Actor, warmup: int, queries: QueryLog
) -> tuple[list[float], int]:
    """Milliseconds per run of the raw SQL for the same targets, and its statement count."""
    times: list[float] = []
    count = 0
    with app.app_context():
        try:
            session = db.session
            user = session.get(CrmUser, actor.user_id)
            customer_scope = scope_clause(session, Customer, user)
            contact_scope = scope_clause(session, Contact, user)
            assert customer_scope is not None and contact_scope is not None
            ctx = RawContext(customer_scope, contact_scope, app.config["CRM_COUNT_CAP"], user)
            for i, probe in enumerate(actor.probes):
                queries.reset()
                started = time.perf_counter()
                op.raw(session, ctx, probe)
                elapsed = (time.perf_counter() - started) * 1000
                if i == warmup:
                    count = queries.count
                if i >= warmup:
                    times.append(elapsed)
        finally:
            db.session.remove()
    return times, count


def selected(args: argparse.Namespace, name: str) -> bool:
    return not args.only or any(s in name for s in args.only)


def run_operations(
    app: Flask,
    args: argparse.Namespace,
    actors: list[Actor],
    queries: QueryLog,
    db_name: str,
    operations: list[Operation],
) -> list[Result]:
    results: list[Result] = []
    if not operations:
        return results
    print()
    print(HEADER, flush=True)
    for op in operations:
        for actor in actors:
            try:
                times, count, statements = time_requests(op, actor, args.warmup, queries, args.show_sql)
                raw_times, raw_count = time_raw(app, op, actor, args.warmup, queries)
            except Exception as exc:  # noqa: BLE001 - report it and time the other operations
                result = failed(op, actor, db_name, exc)
                results.append(result)
                print(result.line(), flush=True)
                continue
            result = make_result(f"{op.name} ({actor.label})", db_name, times, count, raw_times, raw_count)
            results.append(result)
            print(result.line(), flush=True)
            for statement in statements:
                print(f"    SQL: {statement[:300]}", flush=True)
    return results


#: the ordinary requests whose cost with and without custom fields defined is compared
OVERHEAD_OPERATIONS = ("customer list page 1", "REST list")
#: live / archived blocks, alternating (ABBA) so that drift and other processes' bursts hit both
OVERHEAD_PATTERN = (True, False, False, True)
OVERHEAD_ROUNDS = 5
#: timed requests per condition, operation and user: this many times --repeat (the difference is small)
OVERHEAD_SAMPLES = 3
VERSION_TABLE = "crm_custom_field_version"


def time_one(op: Operation, actor: Actor, probe: Probe, queries: QueryLog) -> tuple[float, float, int]:
    """One request as time_requests() times it: milliseconds, this process's CPU milliseconds
    (less disturbed by other processes than the clock; SQLite's work is in-process, PostgreSQL's
    is not), and the statements sent."""
    client = actor.api if op.api else actor.web
    queries.reset(keep=True)
    started, cpu_started = time.perf_counter(), time.process_time()
    response = client.get(op.url(probe), headers=actor.headers if op.api else {})
    response.get_data()
    elapsed = (time.perf_counter() - started) * 1000
    cpu = (time.process_time() - cpu_started) * 1000
    if response.status_code != 200:
        raise BenchError(f"GET {op.url(probe)} -> {response.status_code}")
    return elapsed, cpu, queries.count


def measure_overhead(
    app: Flask, args: argparse.Namespace, actors: list[Actor], queries: QueryLog, db_name: str
) -> tuple[list[Result], list[dict[str, Any]]]:
    """Server time of ordinary lists with the 10 custom fields live vs all archived (which hides
    them from the engine), same data, same run; the fields are restored at the end.

    Short alternating blocks: archive or restore, one untimed request per operation and actor
    (the first after a definition change reloads the per-process cache), then timed ones:
    OVERHEAD_SAMPLES x --repeat per condition in all."""
    operations = [op for op in OPERATIONS if op.name in OVERHEAD_OPERATIONS]
    blocks = OVERHEAD_PATTERN * OVERHEAD_ROUNDS
    per_block = max(1, math.ceil(OVERHEAD_SAMPLES * args.repeat * 2 / len(blocks)))
    wall: dict[tuple[str, str, bool], list[float]] = {}
    cpu: dict[tuple[str, str, bool], list[float]] = {}
    counts: dict[tuple[str, str, bool], int] = {}
    lookups: dict[tuple[str, str, bool], int] = {}
    toggles: list[float] = []
    print(
        f"\nengine overhead: {len(blocks)} alternating blocks (fields live / archived) "
        f"of {per_block} timed requests per operation and user",
        flush=True,
    )
    try:
        for number, live in enumerate(blocks):
            toggles.append(custom.set_archived(app, not live))
            for op in operations:
                for actor in actors:
                    time_one(op, actor, actor.probes[0], queries)
                    for k in range(per_block):
                        probe = actor.probes[(number * per_block + k) % len(actor.probes)]
                        elapsed, cpu_ms, count = time_one(op, actor, probe, queries)
                        key = (op.name, actor.label, live)
                        wall.setdefault(key, []).append(elapsed)
                        cpu.setdefault(key, []).append(cpu_ms)
                        counts[key] = count
                        lookups[key] = sum(VERSION_TABLE in sql for sql in queries.statements)
        definitions_ms = {"live": custom.definitions_cost(app)}
        custom.set_archived(app, True)
        definitions_ms["archived"] = custom.definitions_cost(app)
    finally:
        custom.set_archived(app, False)
    results, summary = [], []
    print()
    print(
        f"{'ordinary request (median ms)':<48}{'10 cf':<8}{'0 cf':<8}{'diff':<8}{'diff_%':<8}"
        f"{'cpu 10 cf':<11}{'cpu 0 cf':<10}{'cpu diff':<10}queries 10 cf / 0 cf"
    )
    for op in operations:
        for actor in actors:
            raw_times, raw_count = time_raw(app, op, actor, args.warmup, queries)
            live, dead = (op.name, actor.label, True), (op.name, actor.label, False)
            row: dict[str, Any] = {
                "operation": f"{op.name} ({actor.label})",
                "db": db_name,
                "n_each": len(wall[live]),
                "median_ms_with_10_fields": round(statistics.median(wall[live]), 2),
                "median_ms_without_fields": round(statistics.median(wall[dead]), 2),
                "p95_ms_with_10_fields": round(p95(wall[live]), 2),
                "p95_ms_without_fields": round(p95(wall[dead]), 2),
                "cpu_median_ms_with_10_fields": round(statistics.median(cpu[live]), 2),
                "cpu_median_ms_without_fields": round(statistics.median(cpu[dead]), 2),
                "queries_with_10_fields": counts[live],
                "queries_without_fields": counts[dead],
                "definition_lookups_with_10_fields": lookups[live],
                "definition_lookups_without_fields": lookups[dead],
            }
            diff = row["median_ms_with_10_fields"] - row["median_ms_without_fields"]
            cpu_diff = row["cpu_median_ms_with_10_fields"] - row["cpu_median_ms_without_fields"]
            row["overhead_ms"] = round(diff, 2)
            row["overhead_pct"] = round(100 * diff / row["median_ms_without_fields"], 1)
            row["cpu_overhead_ms"] = round(cpu_diff, 2)
            summary.append(row)
            print(
                f"{row['operation']:<48}{row['median_ms_with_10_fields']:<8.1f}"
                f"{row['median_ms_without_fields']:<8.1f}{diff:<8.1f}{row['overhead_pct']:<8.1f}"
                f"{row['cpu_median_ms_with_10_fields']:<11.1f}{row['cpu_median_ms_without_fields']:<10.1f}"
                f"{cpu_diff:<10.1f}{counts[live]} / {counts[dead]}",
                flush=True,
            )
            for key, label in ((live, "10 cf defined"), (dead, "no cf")):
                name = f"{op.name}, {label} ({actor.label})"
                results.append(make_result(name, db_name, wall[key], counts[key], raw_times, raw_count))
    toggle_ms = round(1000 * statistics.median(toggles), 1)
    print(f"(archiving or restoring the 10 fields through the service: {toggle_ms} ms median)")
    per_request = {key[0]: (lookups[key], lookups[key[:2] + (False,)]) for key in lookups if key[2]}
    print(
        "definition lookups (custom_fields() -> definitions(), each a version query) per request, "
        "live / archived: " + ", ".join(f"{name} {a} / {b}" for name, (a, b) in per_request.items())
    )
    print(
        f"definitions() per call: customer with 10 live fields {definitions_ms['live']['customer']} ms, "
        f"with 10 archived {definitions_ms['archived']['customer']} ms, "
        f"contact (no fields) {definitions_ms['live']['contact']} ms"
    )
    summary.append({"archive_or_restore_10_fields_ms": toggle_ms, "definitions_call_ms": definitions_ms})
    return results, summary


def failed(op: Operation, actor: Actor, db_name: str, exc: Exception) -> Result:
    return failed_result(f"{op.name} ({actor.label})", db_name, exc, TARGET_MS)


def print_query_counts(results: list[Result]) -> None:
    print()
    print(f"{'operation':<48}{'queries':<9}{'raw_queries':<13}{'page/raw':<10}raw_p95_ms")
    for r in results:
        if r.error:
            continue
        print(f"{r.operation:<48}{r.queries:<9}{r.raw_queries:<13}{r.overhead_ratio:<10}{r.raw_p95_ms}")


def write_json(
    db_name: str, url: URL, args: argparse.Namespace, info: dict[str, Any], results: list[Result]
) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{db_name}.json"
    payload = {
        "db": db_name,
        "database_url": url.render_as_string(hide_password=True),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "python": platform.python_version(),
        "machine": platform.node(),
        "options": {k: v for k, v in vars(args).items() if k != "database_url"},
        **info,
        "rep": REP_USERNAME,
        "results": [_without_nan(asdict(r)) for r in results],
    }
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
    return path


def _git_commit() -> str | None:
    """The commit being measured (with '+' when the working tree has changes)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=BENCH_DIR.parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=BENCH_DIR.parent,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+" if dirty else "")


def _without_nan(row: dict[str, Any]) -> dict[str, Any]:
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


@contextmanager
def unaudited() -> Iterator[None]:
    """Generation is a bulk load (like importing years of old records): no audit rows for it, or
    the first benchmark would time tens of millions of them. Every timed operation afterwards is
    audited as in production."""

    def mark(session: Session, *_: Any) -> None:
        session.info[audit.DISABLED] = True

    event.listen(Session, "after_begin", mark)
    try:
        yield
    finally:
        event.remove(Session, "after_begin", mark)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("flask_appbuilder", "alembic", "flask_migrate"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    url_string = resolve_url(args.database_url)
    url = make_url(url_string)
    db_name = url.get_backend_name()
    print(f"database: {url.render_as_string(hide_password=True)}", flush=True)
    ensure_database(url)
    if not args.reuse:
        drop_everything(url)
    app = make_app(url_string)
    with unaudited():
        info = build(app, args)
        print(f"customers: {info['customers']:,}  contacts: {info['contacts']:,}", flush=True)
        if args.custom_fields:
            info["custom_fields"] = custom.prepare(app, args.seed)
        if args.sales and (args.build_only or sales.wanted(args)):
            info["sales"] = sales.prepare(app, args.seed)
        if args.money and (args.build_only or money.wanted(args)):
            info["money"] = money.prepare(app, args.seed)
        if args.service and (args.build_only or service.wanted(args)):
            info["service"] = service.prepare(app, args.seed)
    if args.statistics:
        info["statistics_seconds"] = nightly_statistics(app)
    if args.build_only:
        return 0
    with app.app_context():
        queries = QueryLog(db.engine)
    rng = random.Random(args.seed)
    actors = make_actors(app, args.warmup + args.repeat, rng)
    operations = OPERATIONS + (custom.OPERATIONS if args.custom_fields else [])
    operations = [op for op in operations if selected(args, op.name)]
    cf_operations = [op for op in custom.OPERATIONS if op in operations]
    if cf_operations:
        info["custom_field_checks"] = custom.verify(app, cf_operations, actors, args.warmup)
    results = run_operations(app, args, actors, queries, db_name, operations)
    if args.custom_fields and selected(args, "engine overhead"):
        overhead_results, info["engine_overhead"] = measure_overhead(app, args, actors, queries, db_name)
        results.extend(overhead_results)
    if cf_operations and args.explain:
        names = [op.name for op in cf_operations]
        custom.explain(app, names, [(a.label, a.user_id, a.probes[args.warmup]) for a in actors])
    if args.sales:
        info["sales_checks"] = []
        sales_results = sales.run(app, args, queries, db_name, HEADER, info["sales_checks"])
        if sales_results:
            print(sales.summary_line(sales_results), flush=True)
        results.extend(sales_results)
    if args.money:
        info["money_details"] = {}
        results.extend(money.run(app, args, queries, db_name, HEADER, info["money_details"]))
    if args.service:
        info["service_details"] = {}
        results.extend(service.run(app, args, queries, db_name, HEADER, info["service_details"]))
    if args.analytics:
        info["analytics_details"] = {}
        results.extend(analytics.run(app, args, queries, db_name, HEADER, info["analytics_details"]))
    print_query_counts(results)
    path = write_json(db_name, url, args, info, results)
    print(f"\nwritten {path.relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
