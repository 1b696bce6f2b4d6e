"""The custom-field engine at scale (issue 4): ten customer fields, their values, their operations.

`prepare()` defines ten realistic Dongying customer fields through the CustomFieldService (so the
engine builds the `ix_cf_*` expression indexes itself), fills every customer with seeded values
(executemany UPDATE by id, a commit every 10,000 rows) and times it: the seven non-indexed fields
are defined first, the three indexed ones after the fill, so their index build on the filled
table is measured. It is idempotent: with `--reuse` it only does what is missing.

`OPERATIONS` are the screens and REST calls that filter and sort on those fields, each with the
raw SQL they need (the very `customfields.query` expressions, plus the actor's data scope), and
`explain()` prints the database's plan of that raw SQL.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import prison
from flask import Flask
from sqlalchemy import Select, bindparam, func, select, text, update
from sqlalchemy.orm import Session

from app.access import scope_clause
from app.customfields import CustomFieldService  # noqa: F401  (registers the service)
from app.extensions import db
from app.services import service_for
from bench.common import (
    Operation,
    Probe,
    RawContext,
    capped_count_statement,
    customer_rows_statement,
)
from customfields.definitions import CustomField
from customfields.query import filter_condition, order_by
from customfields.types import FIELD_TYPES
from models.customers import Contact, Customer
from models.security import CrmUser

ENTITY = "customer"
FILL_BATCH = 10_000
QUALIFICATIONS = ["甲级", "乙级", "丙级", "丁级", "暂定级"]
RATINGS = ["AAA", "AA", "A", "B", "C"]
#: how often each of the five choices occurs (percent)
CHOICE_WEIGHTS = [8, 22, 35, 25, 10]
INDUSTRY_LINKS = ["石油化工", "橡胶轮胎", "石油装备", "有色金属", "新材料", "现代农业", "港口物流"]
FIRST_DAY = dt.date(2005, 1, 1)


@dataclass(frozen=True)
class FieldSpec:
    api_name: str
    label_zh: str
    field_type: str
    indexed: bool = False
    choices: tuple[str, ...] = ()

    def definition(self, position: int) -> CustomField:
        """A new definition, as an admin would enter it (not shown in the list)."""
        return CustomField(
            entity=ENTITY,
            api_name=self.api_name,
            label_zh=self.label_zh,
            field_type=self.field_type,
            choices=list(self.choices) or None,
            indexed=self.indexed,
            show_in_list=False,
            position=position,
        )


SPECS = [
    FieldSpec("zizhi_dengji", "资质等级", "select", indexed=True, choices=tuple(QUALIFICATIONS)),
    FieldSpec("nian_caigou_liang", "年采购量 (吨)", "decimal", indexed=True),
    FieldSpec("shouci_hezuo", "首次合作日期", "date", indexed=True),
    FieldSpec("kehu_pingji", "客户评级", "select", choices=tuple(RATINGS)),
    FieldSpec("nian_caigou_e", "年采购额 (元)", "decimal"),
    FieldSpec("weihua_xukezheng", "危化品经营许可证号", "text"),
    FieldSpec("yuangong_renshu", "员工人数", "integer"),
    FieldSpec("gaoxin_qiye", "高新技术企业", "boolean"),
    FieldSpec("chanye_guanlian", "东营本地产业关联", "multi_select", choices=tuple(INDUSTRY_LINKS)),
    FieldSpec("zhuce_ziben", "注册资本 (万元)", "currency"),
]
NAMES = [spec.api_name for spec in SPECS]
#: detached definitions for building the raw SQL (the engine needs only type, name and choices)
FIELDS = {spec.api_name: spec.definition(i) for i, spec in enumerate(SPECS)}
IDX_SELECT, IDX_DECIMAL, IDX_DATE = "zizhi_dengji", "nian_caigou_liang", "shouci_hezuo"
PLAIN_SELECT, PLAIN_DECIMAL = "kehu_pingji", "nian_caigou_e"


# --- values -----------------------------------------------------------------------------------
def decimal_text(units: int, places: int) -> str:
    """`units` / 10**places as the decimal type stores it: exact text, no trailing zeros."""
    return f"{Decimal(units).scaleb(-places).normalize():f}"


def log_units(rng: random.Random, low_exponent: float, high_exponent: float) -> int:
    """A value spread evenly over orders of magnitude (many small buyers, few large ones)."""
    return round(10 ** rng.uniform(low_exponent, high_exponent))


#: (low, high) exponents of the decimal fields, in tenths of a ton and in fen (0.01 yuan)
PURCHASE_TONS_TENTHS = (1.0, 6.0)  # 1.0 t .. 100,000.0 t a year
PURCHASE_FEN = (4.0, 10.0)  # 100 yuan .. 100,000,000 yuan a year


def values_for(customer_id: int, seed: int) -> dict[str, Any]:
    """The ten stored values of one customer, the same for the same id and seed."""
    rng = random.Random(seed * 10_000_019 + customer_id)
    capital_fen = rng.randint(500_000, 5_000_000_000)  # 50 to 50,000,000 (万元)
    links = set(rng.sample(INDUSTRY_LINKS, rng.randint(1, 3)))
    return {
        "zizhi_dengji": rng.choices(QUALIFICATIONS, CHOICE_WEIGHTS)[0],
        "nian_caigou_liang": decimal_text(log_units(rng, *PURCHASE_TONS_TENTHS), 1),
        "shouci_hezuo": (FIRST_DAY + dt.timedelta(days=rng.randrange(7305))).isoformat(),
        "kehu_pingji": rng.choices(RATINGS, CHOICE_WEIGHTS)[0],
        "nian_caigou_e": decimal_text(log_units(rng, *PURCHASE_FEN), 2),
        "weihua_xukezheng": f"鲁东危化经字〔{2015 + rng.randrange(10)}〕{customer_id % 1_000_000:06d}号",
        "yuangong_renshu": round(10 ** rng.uniform(0.7, 3.7)),
        "gaoxin_qiye": rng.random() < 0.12,
        "chanye_guanlian": [link for link in INDUSTRY_LINKS if link in links],
        "zhuce_ziben": f"{capital_fen // 100}.{capital_fen % 100:02d}",
    }


def check_stored_forms(values: dict[str, Any]) -> None:
    """The generated values are exactly what the engine's type handlers would store."""
    for name, value in values.items():
        field = FIELDS[name]
        stored = FIELD_TYPES[field.field_type].to_storage(value, field)
        if stored != value:
            raise AssertionError(f"{name}: generated {value!r}, the engine stores {stored!r}")


def is_filled(custom: dict[str, Any] | None) -> bool:
    return bool(custom) and all(name in custom for name in NAMES)


def fill(session: Session, seed: int) -> dict[str, Any]:
    """Give every customer lacking them the ten values; returns rows written and seconds."""
    table = Customer.__table__
    first = session.scalar(select(table.c.custom).order_by(table.c.id.asc()).limit(1))
    last = session.scalar(select(table.c.custom).order_by(table.c.id.desc()).limit(1))
    if is_filled(first) and is_filled(last):
        print("custom values: already filled, nothing to do", flush=True)
        return {"rows": 0, "seconds": None}
    total = session.scalar(select(func.count()).select_from(table)) or 0
    statement = update(table).where(table.c.id == bindparam("b_id")).values(custom=bindparam("b_custom"))
    print(f"filling 10 custom values of {total:,} customers ...", flush=True)
    started = time.perf_counter()
    written = seen = last_id = 0
    reported = 0
    while True:
        rows = session.execute(
            select(table.c.id, table.c.custom)
            .where(table.c.id > last_id)
            .order_by(table.c.id)
            .limit(FILL_BATCH)
        ).all()
        if not rows:
            break
        updates = []
        for customer_id, custom in rows:
            if is_filled(custom):
                continue
            values = values_for(customer_id, seed)
            if not written and not updates:
                check_stored_forms(values)
            updates.append({"b_id": customer_id, "b_custom": {**(custom or {}), **values}})
        if updates:
            session.connection().execute(statement, updates)
        session.commit()
        written += len(updates)
        seen += len(rows)
        last_id = rows[-1][0]
        if seen - reported >= 100_000:
            reported = seen
            elapsed = time.perf_counter() - started
            print(f"  {seen:,}/{total:,} rows read, {written:,} written, {elapsed:.0f}s", flush=True)
    seconds = round(time.perf_counter() - started, 1)
    print(f"filled {written:,} customers in {seconds:.1f}s", flush=True)
    return {"rows": written, "seconds": seconds}


# --- definitions ------------------------------------------------------------------------------
def existing_fields(session: Session) -> dict[str, CustomField]:
    rows = session.scalars(
        select(CustomField).where(CustomField.entity == ENTITY, CustomField.api_name.in_(NAMES))
    )
    return {row.api_name: row for row in rows}


def define(session: Session, spec: FieldSpec) -> float:
    """Create one definition through the service (which builds its indexes); seconds taken."""
    started = time.perf_counter()
    service_for(CustomField).save(session, spec.definition(NAMES.index(spec.api_name)), actor=None)
    return round(time.perf_counter() - started, 2)


def index_names(session: Session) -> list[str]:
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'ix_cf_%' ORDER BY name"
    elif dialect == "postgresql":
        sql = "SELECT indexname FROM pg_indexes WHERE indexname LIKE 'ix_cf_%' ORDER BY indexname"
    else:
        return []
    return list(session.execute(text(sql)).scalars())


def vacuum_analyze(session: Session) -> float | None:
    """PostgreSQL after a million UPDATEs: what autovacuum would soon do to crm_customer."""
    engine = session.get_bind()
    if engine.dialect.name != "postgresql":
        return None
    session.commit()
    started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE crm_customer")
    seconds = round(time.perf_counter() - started, 1)
    print(f"VACUUM ANALYZE crm_customer in {seconds:.1f}s", flush=True)
    return seconds


def set_archived(app: Flask, archived: bool) -> float:
    """Archive (hide from the engine) or restore the ten fields through the service; seconds."""
    started = time.perf_counter()
    with app.app_context():
        try:
            session = db.session
            for field in existing_fields(session).values():
                if field.archived != archived:
                    field.archived = archived
                    service_for(CustomField).save(session, field, actor=None)
        finally:
            db.session.remove()
    return time.perf_counter() - started


def prepare(app: Flask, seed: int) -> dict[str, Any]:
    """Define the ten fields and fill them (only what is missing); returns the timings."""
    info: dict[str, Any] = {
        "fields": NAMES,
        "indexed": [spec.api_name for spec in SPECS if spec.indexed],
        "define_seconds": {},
        "fill_rows": 0,
        "fill_seconds": None,
        "vacuum_analyze_seconds": None,
        "index_build_seconds": {},
    }
    set_archived(app, False)  # a run stopped while measuring the engine's overhead
    with app.app_context():
        try:
            session = db.session
            found = existing_fields(session)
            for spec in SPECS:
                if not spec.indexed and spec.api_name not in found:
                    info["define_seconds"][spec.api_name] = define(session, spec)
            if info["define_seconds"]:
                print(f"defined {len(info['define_seconds'])} non-indexed fields", flush=True)
            filled = fill(session, seed)
            info["fill_rows"], info["fill_seconds"] = filled["rows"], filled["seconds"]
            if filled["rows"]:
                info["vacuum_analyze_seconds"] = vacuum_analyze(session)
            for spec in SPECS:
                if spec.indexed and spec.api_name not in found:
                    print(f"defining indexed field {spec.api_name} (builds its indexes) ...", flush=True)
                    seconds = define(session, spec)
                    info["index_build_seconds"][spec.api_name] = seconds
                    print(f"  {spec.api_name} ({spec.field_type}) defined in {seconds:.1f}s", flush=True)
            info["indexes"] = index_names(session)
            sample = session.scalar(select(Customer.custom).order_by(Customer.id.desc()).limit(1))
            print(f"custom-field indexes: {', '.join(info['indexes']) or 'none'}", flush=True)
            print(f"last customer's custom values: {sample}", flush=True)
        finally:
            db.session.remove()
    return info


def definitions_cost(app: Flask, calls: int = 300) -> dict[str, float]:
    """Milliseconds per `customfields.definitions.definitions()` call (what every
    `custom_fields()` of a view runs: the version query, then a detached copy of every
    definition of the entity): for customers, as their ten fields are now, and for contacts,
    which have none."""
    from customfields.definitions import definitions

    cost = {}
    with app.app_context():
        try:
            session = db.session
            for entity in ("customer", "contact"):
                definitions(session, entity)
                started = time.perf_counter()
                for _ in range(calls):
                    definitions(session, entity)
                cost[entity] = round((time.perf_counter() - started) * 1000 / calls, 3)
        finally:
            db.session.remove()
    return cost


# --- operations -------------------------------------------------------------------------------
def choice_for(probe: Probe, api_name: str) -> str:
    """A different choice from one repetition to the next (the probe's customer is random)."""
    choices = FIELDS[api_name].choice_values
    return choices[probe.customer_id % len(choices)]


def threshold_for(probe: Probe, api_name: str) -> str:
    """A lower bound that between 1% and 50% of the values exceed, varying per repetition."""
    low, high = PURCHASE_TONS_TENTHS if api_name == IDX_DECIMAL else PURCHASE_FEN
    places = 1 if api_name == IDX_DECIMAL else 2
    share_below = 0.50 + (probe.customer_id % 50) / 100
    return decimal_text(round(10 ** (low + (high - low) * share_below)), places)


def list_filter_url(api_name: str) -> Callable[[Probe], str]:
    return lambda p: f"/customerview/list/?_flt_0_custom__{api_name}={quote(choice_for(p, api_name))}"


def list_sort_url(api_name: str) -> Callable[[Probe], str]:
    return lambda p: f"/customerview/list/?_oc_CustomerView=custom__{api_name}&_od_CustomerView=desc"


def rest_url(filters: list[dict[str, Any]], order: str | None = None) -> str:
    query: dict[str, Any] = {"filters": filters}
    if order:
        query.update(order_column=f"custom.{order}", order_direction="desc")
    return "/api/v1/customer/?q=" + quote(prison.dumps(query))


def rest_filter_url(api_name: str) -> Callable[[Probe], str]:
    return lambda p: rest_url([{"col": f"custom.{api_name}", "opr": "eq", "value": choice_for(p, api_name)}])


def rest_range_url(api_name: str) -> Callable[[Probe], str]:
    return lambda p: rest_url(
        [{"col": f"custom.{api_name}", "opr": "gt", "value": threshold_for(p, api_name)}], order=api_name
    )


Statements = Callable[[Session, RawContext, Probe], list[Select[Any]]]


def list_filter_sql(api_name: str) -> Statements:
    """The list screen filtered on a select: capped count and 20 rows, newest first."""

    def statements(session: Session, ctx: RawContext, probe: Probe) -> list[Select[Any]]:
        condition = filter_condition(Customer, FIELDS[api_name], "eq", choice_for(probe, api_name))
        return [
            capped_count_statement(ctx, Customer, condition),
            customer_rows_statement(ctx, condition, order_by=[Customer.id.desc()]),
        ]

    return statements


def list_sort_sql(api_name: str) -> Statements:
    """The list screen sorted on a field, descending: capped count and the 20 first rows."""

    def statements(session: Session, ctx: RawContext, probe: Probe) -> list[Select[Any]]:
        dialect = session.get_bind().dialect.name
        return [
            capped_count_statement(ctx, Customer),
            customer_rows_statement(ctx, order_by=order_by(Customer, FIELDS[api_name], True, dialect)),
        ]

    return statements


def rest_filter_sql(api_name: str) -> Statements:
    """The REST list filtered on a select, newest first (CrmModelApi.base_order)."""

    def statements(session: Session, ctx: RawContext, probe: Probe) -> list[Select[Any]]:
        condition = filter_condition(Customer, FIELDS[api_name], "eq", choice_for(probe, api_name))
        return [
            capped_count_statement(ctx, Customer, condition),
            customer_rows_statement(ctx, condition, order_by=[Customer.id.desc()], district=True),
        ]

    return statements


def rest_range_sql(api_name: str) -> Statements:
    """The REST list of values above a bound, largest first."""

    def statements(session: Session, ctx: RawContext, probe: Probe) -> list[Select[Any]]:
        field = FIELDS[api_name]
        condition = filter_condition(Customer, field, "gt", threshold_for(probe, api_name))
        dialect = session.get_bind().dialect.name
        return [
            capped_count_statement(ctx, Customer, condition),
            customer_rows_statement(
                ctx, condition, order_by=order_by(Customer, field, True, dialect), district=True
            ),
        ]

    return statements


def run_statements(statements: Statements) -> Callable[[Session, RawContext, Probe], None]:
    def raw(session: Session, ctx: RawContext, probe: Probe) -> None:
        for statement in statements(session, ctx, probe):
            session.execute(statement).all()

    return raw


#: operation name -> the raw statements (for explain())
STATEMENTS: dict[str, Statements] = {}


def _operation(
    name: str, url: Callable[[Probe], str], statements: Statements, api: bool = False
) -> Operation:
    STATEMENTS[name] = statements
    return Operation(name, url, run_statements(statements), api=api)


OPERATIONS = [
    _operation("cf list flt idx select", list_filter_url(IDX_SELECT), list_filter_sql(IDX_SELECT)),
    _operation("cf list sort idx decimal", list_sort_url(IDX_DECIMAL), list_sort_sql(IDX_DECIMAL)),
    _operation("cf REST flt idx select", rest_filter_url(IDX_SELECT), rest_filter_sql(IDX_SELECT), True),
    _operation("cf REST gt+sort idx decimal", rest_range_url(IDX_DECIMAL), rest_range_sql(IDX_DECIMAL), True),
    _operation("cf list flt plain select", list_filter_url(PLAIN_SELECT), list_filter_sql(PLAIN_SELECT)),
    _operation("cf list sort plain decimal", list_sort_url(PLAIN_DECIMAL), list_sort_sql(PLAIN_DECIMAL)),
    _operation(
        "cf REST flt plain select", rest_filter_url(PLAIN_SELECT), rest_filter_sql(PLAIN_SELECT), True
    ),
    _operation(
        "cf REST gt+sort plain decimal", rest_range_url(PLAIN_DECIMAL), rest_range_sql(PLAIN_DECIMAL), True
    ),
]


# --- checks and plans -------------------------------------------------------------------------
def raw_context(app: Flask, session: Session, user_id: int) -> RawContext:
    user = session.get(CrmUser, user_id)
    customer_scope = scope_clause(session, Customer, user)
    contact_scope = scope_clause(session, Contact, user)
    assert customer_scope is not None and contact_scope is not None
    return RawContext(customer_scope, contact_scope, app.config["CRM_COUNT_CAP"], user)


def app_rows(op: Operation, actor: Any, probe: Probe) -> tuple[str, list[int]]:
    """The count the page or API reports and the ids of the rows it returned, in order."""
    client = actor.api if op.api else actor.web
    response = client.get(op.url(probe), headers=actor.headers if op.api else {})
    if response.status_code != 200:
        return f"HTTP {response.status_code}", []
    if op.api:
        body = response.json or {}
        return str(body.get("count")), [row["id"] for row in body.get("result", [])]
    html = response.get_data(as_text=True)
    count = re.search(r"记录数:</strong>\s*([0-9,+]+)", html)
    ids = [int(i) for i in dict.fromkeys(re.findall(r"/customerview/show/(\d+)", html))]
    return (count.group(1) if count else "?"), ids


def verify(app: Flask, operations: list[Operation], actors: list[Any], index: int) -> list[dict[str, Any]]:
    """One request per operation and actor beside its raw SQL: the same count and the same rows
    (in the same order when the SQL orders them), so the timings compare like with like."""
    checks = []
    print(f"\n{'check (one request vs its raw SQL)':<48}{'count app/raw':<18}{'rows':<6}same rows")
    for op in operations:
        for actor in actors:
            probe = actor.probes[index]
            count, ids = app_rows(op, actor, probe)
            with app.app_context():
                try:
                    session = db.session
                    count_sql, rows_sql = STATEMENTS[op.name](
                        session, raw_context(app, session, actor.user_id), probe
                    )
                    raw_count = session.scalar(count_sql)
                    raw_ids = [row[0] for row in session.execute(rows_sql)]
                finally:
                    db.session.remove()
            ordered = rows_sql._order_by_clauses != ()
            same = ids == raw_ids if ordered else sorted(ids) == sorted(raw_ids)
            cap = app.config["CRM_COUNT_CAP"]
            shown_raw = f"{cap}+" if raw_count > cap else str(raw_count)
            name = f"{op.name} ({actor.label})"
            print(f"{name:<48}{count + ' / ' + shown_raw:<18}{len(ids):<6}{'yes' if same else 'NO'}")
            checks.append(
                {"operation": name, "count": count, "raw_count": raw_count, "rows": len(ids), "same": same}
            )
    return checks


def explain(app: Flask, names: list[str], users: list[tuple[str, int, Probe]]) -> None:
    """Print the plan of each operation's raw SQL, per user (label, user id, one probe).

    SQLite: EXPLAIN QUERY PLAN. PostgreSQL: EXPLAIN (ANALYZE, BUFFERS), which runs the query.
    """
    with app.app_context():
        try:
            session = db.session
            dialect = session.get_bind().dialect
            for name in names:
                for label, user_id, probe in users:
                    ctx = raw_context(app, session, user_id)
                    for statement in STATEMENTS[name](session, ctx, probe):
                        sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
                        print(f"\n--- plan: {name} ({label})\n{' '.join(sql.split())}")
                        for line in plan(session, dialect.name, sql):
                            print(f"    {line}")
        finally:
            db.session.remove()


def plan(session: Session, dialect: str, sql: str) -> list[str]:
    connection = session.connection()
    if dialect == "sqlite":
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
        depth: dict[int, int] = {0: 0}
        lines = []
        for node, parent, _unused, detail in rows:
            depth[node] = depth.get(parent, 0) + 1
            lines.append("  " * (depth[node] - 1) + detail)
        return lines
    if dialect == "postgresql":
        rows = connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {sql}").all()
        return [row[0] for row in rows]
    return ["(no plan for this database)"]
