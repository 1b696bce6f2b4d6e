"""Copy a generated SQLite bench database into PostgreSQL: `python -m bench.copy --help`.

Generating the full bench data takes over two hours on PostgreSQL; this copies the SQLite build
(the very same rows, ids, dates, custom values and ciphertexts) in minutes, so both databases are
timed on identical data. Then `python -m bench.run --reuse --database-url postgresql://...` finds
every phase generated and goes straight to timing.

1. The target is created when missing, schema `public` dropped, and migrated with the app to the
   SQLite file's alembic revision (to head afterwards when the file is older, so data migrations
   run on the copied rows).
2. In one transaction (`session_replication_role = replica`: no foreign-key or other triggers):
   the copied tables' non-constraint indexes are dropped (their `indexdef` saved), the tables
   emptied (TRUNCATE ... CASCADE: what the migrations seeded goes), and every table of the file
   that PostgreSQL has is filled by `COPY ... FROM STDIN (FREEZE)`, the columns both have, values
   converted by the target's column types, streamed in batches of 10,000 rows.
3. Every serial / identity sequence set after its column's largest value, the row counts of
   every copied table compared (exit status 1 on any difference), the saved indexes rebuilt, the
   schema upgraded to head (a no-op when the file is at head), the custom-field expression
   indexes (`ix_cf_*`) built by the custom-field engine (`customfields.indexes.sync_indexes`, as
   when a field is defined indexed), `VACUUM ANALYZE`.

Not copied: `sqlite_*` (SQLite's statistics: PostgreSQL takes its own), the FTS5 name-search
tables (SQLite only; PostgreSQL's trigram indexes come with the migrations) and the bench's
snapshot tables `bench_money_owned` / `bench_service_open` (left only by a run stopped while
timing: each run drops and re-creates them from the data).
"""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from flask import Flask
from sqlalchemy import select
from sqlalchemy.engine import URL, make_url

from bench.custom import index_names
from bench.run import drop_everything, ensure_database, make_app, resolve_url

#: rows read from SQLite per fetchmany
BATCH = 10_000
#: a rebuilt index taking longer than this is printed
SLOW_INDEX_SECONDS = 5.0
#: tables of the SQLite file not copied, and why
TRANSIENT = {
    "bench_money_owned": "the money phase's snapshot while timing, re-created by each run",
    "bench_service_open": "the service phase's snapshot while timing, re-created by each run",
    "crm_scheduler_jobs": "APScheduler's job store, re-created by the worker",
}

log = logging.getLogger("bench.copy")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.copy", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--from",
        dest="source",
        default=None,
        help="the SQLite bench database (default: instance/bench/keguan_bench.db, as bench.run uses)",
    )
    parser.add_argument(
        "--to", dest="target", required=True, help="e.g. postgresql://postgres@127.0.0.1/keguan_bench"
    )
    return parser.parse_args(argv)


# --- the SQLite file -------------------------------------------------------------------------------
def open_source(url: URL) -> sqlite3.Connection:
    """The SQLite file, read only (never changed by the copy); values exactly as stored."""
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise SystemExit(f"--from must be a SQLite file, not {url.render_as_string(hide_password=True)}")
    path = Path(url.database)
    if not path.exists():
        raise SystemExit(f"{path}: no such file")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    conn.execute("BEGIN")  # one read transaction: every table and count from the same snapshot
    return conn


def source_revision(conn: sqlite3.Connection) -> str:
    try:
        revisions = [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]
    except sqlite3.OperationalError:
        revisions = []
    if len(revisions) != 1:
        raise SystemExit(
            f"the SQLite file has no single alembic revision ({revisions}): not a migrated database"
        )
    return revisions[0]


def source_tables(conn: sqlite3.Connection) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The file's ordinary tables with their columns, and the tables left out with the reason."""
    rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall()
    virtual = [name for name, sql in rows if (sql or "").upper().startswith("CREATE VIRTUAL TABLE")]
    tables: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    for name, _sql in rows:
        if name.startswith("sqlite_"):
            skipped[name] = "SQLite's own"
        elif name in virtual or any(name.startswith(f"{v}_") for v in virtual):
            skipped[name] = "FTS5 search table (SQLite only; PostgreSQL has trigram indexes)"
        elif name in TRANSIENT:
            skipped[name] = TRANSIENT[name]
        else:
            tables[name] = [row[1] for row in conn.execute(f'PRAGMA table_info("{name}")')]
    return tables, skipped


def source_cf_indexes(conn: sqlite3.Connection) -> list[str]:
    return [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'ix\\_cf\\_%' ESCAPE '\\' "
            "ORDER BY name"
        )
    ]


# --- the PostgreSQL target -------------------------------------------------------------------------
def connect(url: URL, autocommit: bool = False) -> psycopg.Connection:
    """A plain psycopg 3 connection (config.py maps postgresql:// to postgresql+psycopg)."""
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(conninfo, autocommit=autocommit)


def migrate(app: Flask, revision: str) -> None:
    from flask_migrate import upgrade

    with app.app_context():
        upgrade(revision=revision)


def target_columns(conn: psycopg.Connection) -> dict[str, dict[str, tuple[str, int | None]]]:
    """Per table of schema public, its writable columns: (data type, numeric scale)."""
    columns: dict[str, dict[str, tuple[str, int | None]]] = {}
    for table, column, data_type, scale, generated in conn.execute(
        "SELECT table_name, column_name, data_type, numeric_scale, is_generated "
        "FROM information_schema.columns WHERE table_schema = 'public' "
        "ORDER BY table_name, ordinal_position"
    ):
        columns.setdefault(table, {})
        if generated != "ALWAYS":  # a generated column computes itself
            columns[table][column] = (data_type, scale)
    return columns


# --- values ----------------------------------------------------------------------------------------
def _to_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "t", "true", "y", "yes", "on")
    return bool(value)


def _to_decimal(value: Any) -> Decimal:
    """SQLite keeps a NUMERIC column's values as INTEGER or REAL (15 significant digits): str() of
    a float is its shortest exact form, so no binary rounding reaches the target."""
    if isinstance(value, Decimal):
        return value
    return Decimal(value if isinstance(value, str) else str(value))


def _to_json_text(value: Any) -> str:
    """JSON as its text. A column declared JSON has NUMERIC affinity in SQLite, so a document
    that is a bare number comes back as one."""
    return value if isinstance(value, str) else json.dumps(value)


def _to_bytes(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def converter(data_type: str, scale: int | None) -> Callable[[Any], Any] | None:
    """How a value SQLite stores becomes one COPY takes for a column of this type; None: as it is
    (text; dates and times, which SQLite keeps as ISO text that PostgreSQL parses; integers and
    floats, which SQLite's affinities keep as such; enums and uuids as text)."""
    if data_type == "boolean":
        return _to_bool
    if data_type == "numeric":
        if scale is None:
            return _to_decimal
        quantum = Decimal(1).scaleb(-scale)
        return lambda value: _to_decimal(value).quantize(quantum)
    if data_type in ("json", "jsonb"):
        return _to_json_text
    if data_type == "bytea":
        return _to_bytes
    return None


# --- copying ---------------------------------------------------------------------------------------
def quoted(names: list[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


def drop_indexes(cur: psycopg.Cursor, tables: list[str]) -> list[tuple[str, str, str]]:
    """Drop the tables' indexes that back no constraint (primary keys, unique constraints and the
    indexes foreign keys rely on stay); returns (table, index, indexdef) to rebuild them."""
    saved = cur.execute(
        "SELECT x.tablename, x.indexname, x.indexdef FROM pg_indexes x "
        "WHERE x.schemaname = 'public' AND x.tablename = ANY(%s) AND NOT EXISTS ("
        "  SELECT 1 FROM pg_constraint k "
        "  WHERE k.conindid = format('%%I.%%I', x.schemaname, x.indexname)::regclass"
        ") ORDER BY x.tablename, x.indexname",
        (tables,),
    ).fetchall()
    for _table, index, _definition in saved:
        cur.execute(f'DROP INDEX "{index}"')
    return saved


def copy_table(
    source: sqlite3.Connection, cur: psycopg.Cursor, table: str, columns: list[str], types: dict[str, Any]
) -> int:
    """Stream one table from SQLite into COPY, BATCH rows at a time; returns the rows copied."""
    conversions = [
        (i, convert) for i, name in enumerate(columns) if (convert := converter(*types[name])) is not None
    ]
    rows = source.execute(f'SELECT {quoted(columns)} FROM "{table}"')
    count = 0
    with cur.copy(f'COPY "{table}" ({quoted(columns)}) FROM STDIN (FREEZE)') as copy:
        while batch := rows.fetchmany(BATCH):
            if conversions:
                for row in batch:
                    values = list(row)
                    for i, convert in conversions:
                        if values[i] is not None:
                            values[i] = convert(values[i])
                    copy.write_row(values)
            else:
                for row in batch:
                    copy.write_row(row)
            count += len(batch)
    return count


def copy_all(
    source: sqlite3.Connection, target: psycopg.Connection, plan: dict[str, list[str]], types: dict[str, Any]
) -> list[tuple[str, str, str]]:
    """One transaction: drop the indexes, empty the tables, COPY every table; returns the dropped
    indexes. FREEZE (the tables were emptied in this transaction) writes the rows frozen, so the
    VACUUM afterwards need not rewrite every page."""
    names = sorted(plan)
    with target.cursor() as cur:
        cur.execute("SET LOCAL session_replication_role = replica")  # no FK checks, no triggers
        cur.execute("SET LOCAL TimeZone = 'UTC'")  # the app's datetimes are naive UTC
        started = time.perf_counter()
        saved = drop_indexes(cur, names)
        cur.execute(f"TRUNCATE {quoted(names)} CASCADE")
        seconds = time.perf_counter() - started
        print(f"{len(saved)} indexes dropped, {len(names)} tables emptied in {seconds:.1f}s")
        print(f"\n{'table':<36}{'rows':>12}{'seconds':>10}")
        for name in names:
            started = time.perf_counter()
            rows = copy_table(source, cur, name, plan[name], types[name])
            print(f"{name:<36}{rows:>12,}{time.perf_counter() - started:>10.1f}", flush=True)
    target.commit()
    return saved


def rebuild_indexes(target_url: URL, saved: list[tuple[str, str, str]]) -> None:
    print(f"\nrebuilding {len(saved)} indexes ...", flush=True)
    started = time.perf_counter()
    with closing(connect(target_url, autocommit=True)) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        for _table, index, definition in saved:
            began = time.perf_counter()
            conn.execute(definition)
            seconds = time.perf_counter() - began
            if seconds > SLOW_INDEX_SECONDS:
                print(f"  {index}: {seconds:.1f}s", flush=True)
    print(f"indexes rebuilt in {time.perf_counter() - started:.1f}s", flush=True)


def custom_field_indexes(app: Flask) -> list[str]:
    """The indexed custom fields' expression indexes, built by the custom-field engine as when
    a field is defined indexed (app/backup.py does the same after a restore)."""
    from app import audit
    from app.extensions import db
    from customfields.definitions import CustomField
    from customfields.indexes import sync_indexes
    from customfields.mixin import CUSTOMISABLE

    with app.app_context():
        session = db.session
        session.info[audit.DISABLED] = True
        try:
            for field in session.scalars(select(CustomField).order_by(CustomField.id)).all():
                model = CUSTOMISABLE.get(field.entity)
                if model is None or not field.indexed:
                    continue
                started = time.perf_counter()
                sync_indexes(session, model, field)
                session.commit()
                print(f"  {field.entity}.{field.api_name}: {time.perf_counter() - started:.1f}s", flush=True)
            return index_names(session)
        finally:
            session.info.pop(audit.DISABLED, None)
            db.session.remove()
            db.engine.dispose()


def reset_sequences(conn: psycopg.Connection, tables: list[str]) -> int:
    """Every serial / identity sequence of the copied tables continues after the largest value."""
    columns = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
        "AND table_name = ANY(%s) AND (column_default LIKE 'nextval(%%' OR is_identity = 'YES') "
        "ORDER BY table_name",
        (tables,),
    ).fetchall()
    for table, column in columns:
        conn.execute(
            f'SELECT setval(pg_get_serial_sequence(%s, %s), COALESCE(MAX("{column}"), 1), '
            f'MAX("{column}") IS NOT NULL) FROM "{table}"',
            (f'"{table}"', column),
        )
    conn.commit()
    return len(columns)


def verify(source: sqlite3.Connection, target: psycopg.Connection, tables: list[str]) -> list[str]:
    """Row counts of every copied table in both; the tables that differ."""
    wrong = []
    for name in sorted(tables):
        here = source.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
        there = target.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
        if here != there:
            wrong.append(name)
            print(f"  MISMATCH {name}: SQLite {here:,}, PostgreSQL {there:,}", flush=True)
    target.rollback()
    return wrong


def vacuum_analyze(target_url: URL) -> None:
    started = time.perf_counter()
    with closing(connect(target_url, autocommit=True)) as conn:
        conn.execute("VACUUM ANALYZE")
    print(f"VACUUM ANALYZE in {time.perf_counter() - started:.1f}s", flush=True)


@contextmanager
def step(label: str) -> Iterator[None]:
    print(f"{label} ...", flush=True)
    started = time.perf_counter()
    yield
    print(f"{label}: {time.perf_counter() - started:.1f}s", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("flask_appbuilder", "alembic", "flask_migrate"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    started = time.perf_counter()
    source_url = make_url(resolve_url(args.source))
    target_string = resolve_url(args.target)
    target_url = make_url(target_string)
    if target_url.get_backend_name() != "postgresql":
        raise SystemExit("--to must be a PostgreSQL database")
    print(f"from {source_url.database} to {target_url.render_as_string(hide_password=True)}", flush=True)
    with closing(open_source(source_url)) as source:
        revision = source_revision(source)
        tables, skipped = source_tables(source)
        for name, reason in skipped.items():
            print(f"  not copied: {name} ({reason})")
        ensure_database(target_url)
        drop_everything(target_url)
        app = make_app(target_string)
        with step(f"schema at the file's revision {revision}"):
            migrate(app, revision)
        with closing(connect(target_url)) as target:
            types = target_columns(target)
            target.rollback()
            missing = sorted(set(tables) - set(types))
            if missing:
                raise SystemExit(f"tables of the SQLite file that PostgreSQL lacks: {', '.join(missing)}")
            plan = {name: [c for c in columns if c in types[name]] for name, columns in tables.items()}
            plan.pop("alembic_version", None)
            for name, columns in sorted(tables.items()):
                left_out = sorted(set(columns) - set(plan.get(name, columns)))
                if left_out:
                    print(f"  {name}: columns only in SQLite, not copied: {', '.join(left_out)}")
            for name in sorted(set(types) - set(tables)):
                print(f"  {name}: only in PostgreSQL, left as migrated")
            for name in sorted(plan):
                extra = sorted(set(types[name]) - set(plan[name]))
                if extra:
                    print(f"  {name}: columns only in PostgreSQL, left to their defaults: {', '.join(extra)}")
            copy_started = time.perf_counter()
            saved = copy_all(source, target, plan, types)
            copied = time.perf_counter() - copy_started
            print(f"copied in {copied:.1f}s", flush=True)
            print(f"{reset_sequences(target, sorted(plan))} sequences set after their largest values")
            print("verifying row counts ...", flush=True)
            wrong = verify(source, target, list(plan))
            print(
                f"row counts: {len(plan) - len(wrong)} of {len(plan)} tables equal"
                + (f", {len(wrong)} DIFFER" if wrong else ""),
                flush=True,
            )
        rebuild_indexes(target_url, saved)
        with step("schema to head (a no-op when the file is at head)"):
            migrate(app, "head")
        print("custom-field indexes (customfields.indexes.sync_indexes) ...", flush=True)
        built = custom_field_indexes(app)
        expected = source_cf_indexes(source)
        print(f"  PostgreSQL: {', '.join(built) or 'none'}")
        if set(built) != set(expected):
            print(f"  NOTE the SQLite file has {', '.join(expected) or 'none'}", flush=True)
    vacuum_analyze(target_url)
    print(f"total {time.perf_counter() - started:.1f}s", flush=True)
    if wrong:
        print(f"FAILED: row counts differ in {', '.join(wrong)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
