"""What auditing and encryption cost on writes (issue 7): create customers through the service,
one transaction each, as a screen or the API does, in three modes on the same database:

- `plain`: no audit rows and no encrypted values (the customers carry no ID number and no bank
  account): the baseline;
- `encrypted`: the same customers with an ID number and a bank account (AES-256-GCM, each with
  its HMAC blind index), no audit rows;
- `audited+encrypted`: as production runs: encrypted values and every change audited (the
  audit row's hash chained under the head lock, in the same transaction).

Prints the median and p95 per customer, the raw SQL time of those transactions (the database's
own time, between before_ and after_cursor_execute) and the ratio to `plain` (target < 1.5).
`python -m bench.security [--customers 10000] [--database-url URL]` (default: a new SQLite file
under instance/bench/); the modes take turns in blocks of 100 so that the machine's load falls
on all three alike.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from app import audit
from app.customers import customer_service
from app.demo import demo_id_number
from app.extensions import db
from bench.common import make_result, p95
from bench.run import BENCH_DIR, drop_everything, ensure_database, make_app
from models.customers import Customer
from models.security import CrmUser

MODES = ("plain", "encrypted", "audited+encrypted")
BLOCK = 100


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10_000, help="customers per mode (10,000)")
    parser.add_argument(
        "--database-url",
        default=f"sqlite:///{BENCH_DIR.parent / 'instance' / 'bench' / 'keguan_security.db'}",
    )
    return parser.parse_args(argv)


def customer(mode: str, serial: int) -> Customer:
    """An individual customer; with encryption, its ID number and bank account are filled."""
    row = Customer(kind="individual", name=f"写入测试{mode[:1]}{serial:06d}", gender="male")
    if mode != "plain":
        birth = dt.date(1950, 1, 1) + dt.timedelta(days=serial % 20_000)
        row.id_number = demo_id_number(370502, birth, serial // 20_000 + MODES.index(mode) * 7, "male")
        row.bank_account = f"6222{MODES.index(mode)}{serial:014d}"
    return row


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = make_url(args.database_url)
    ensure_database(url)
    drop_everything(url)
    app = make_app(args.database_url)
    from flask_migrate import upgrade

    from app.cli import ensure_admin, setup_database

    with app.app_context():
        upgrade()
        setup_database()
        ensure_admin("admin")
        actor = db.session.query(CrmUser).filter_by(username="admin").one()
        sql_seconds: list[float] = []
        started_at: list[float] = []

        def before(*_: Any) -> None:
            started_at.append(time.perf_counter())

        def after(*_: Any) -> None:
            sql_seconds.append(time.perf_counter() - started_at.pop())

        event.listen(db.engine, "before_cursor_execute", before)
        event.listen(db.engine, "after_cursor_execute", after)
        times: dict[str, list[float]] = {mode: [] for mode in MODES}
        raw: dict[str, list[float]] = {mode: [] for mode in MODES}
        queries: dict[str, int] = {}
        for block in range(0, args.customers, BLOCK):
            for mode in MODES:
                for serial in range(block, min(block + BLOCK, args.customers)):
                    db.session.info[audit.DISABLED] = mode != "audited+encrypted"
                    row = customer(mode, serial)
                    sql_seconds.clear()
                    begin = time.perf_counter()
                    customer_service.save(db.session, row, actor)
                    times[mode].append((time.perf_counter() - begin) * 1000)
                    raw[mode].append(sum(sql_seconds) * 1000)
                    queries[mode] = len(sql_seconds)
                    db.session.expunge(row)  # the identity map stays small
        db.session.info[audit.DISABLED] = False
        audit_rows = db.session.scalar(text("SELECT count(*) FROM crm_audit_log"))
        stored = db.session.scalar(
            text("SELECT id_number FROM crm_customer WHERE id_number IS NOT NULL LIMIT 1")
        )
    baseline = statistics.median(times["plain"])
    results = []
    print(f"database: {url.render_as_string(hide_password=True)}, {args.customers:,} customers per mode")
    print(f"{'mode':<22}{'n':>7}{'median_ms':>11}{'p95_ms':>9}{'raw_sql_ms':>12}{'queries':>9}{'ratio':>7}")
    for mode in MODES:
        result = make_result(f"create customer ({mode})", url.get_backend_name(), times[mode],
                             queries[mode], raw[mode], queries[mode])
        ratio = statistics.median(times[mode]) / baseline
        results.append({**result.__dict__, "ratio_to_plain": round(ratio, 2)})
        print(f"{mode:<22}{len(times[mode]):>7}{result.median_ms:>11.2f}{p95(times[mode]):>9.2f}"
              f"{result.raw_sql_ms:>12.2f}{queries[mode]:>9}{ratio:>7.2f}")
    print(f"audit rows written: {audit_rows:,}; a stored ID number begins {stored[:12]!r}...")
    out = BENCH_DIR / "results" / f"security_{url.get_backend_name()}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"customers": args.customers, "results": results}, indent=2, default=str))
    print(f"written {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
