"""The background worker (`flask crm worker`): APScheduler with its job store in the database.

Jobs are registered under fixed ids with replace_existing, so a restart updates them instead of
adding copies; coalesce and max_instances=1 mean a late or slow job runs once, not in a pile.
Every job is idempotent (see app.notifications), so a restart, a second worker or `--once` from
cron next to a running worker sends nothing twice.

Later issues add jobs (pool recycling, SLA checks, scheduled reports) with `register_job()`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask
from sqlalchemy import inspect, select, text
from sqlalchemy.orm import Session

from app.classification import classify_customers
from app.customfields import ENTITY_MODELS, recompute_formulas
from app.extensions import db
from app.notifications import SmtpSettings, deliver_outbox, send_due_reminders
from app.orders import payment_plan_run
from app.pools import recycle
from customfields.indexes import refresh_all_statistics
from models.base import utcnow

log = logging.getLogger(__name__)

#: the job store's table, created by APScheduler itself (Alembic leaves it alone: migrations/env.py)
JOBSTORE_TABLE = "crm_scheduler_jobs"

#: the app the jobs run in; set by build_scheduler() / run_once() (a job store keeps only the
#: job function's import path, so the function finds its app here)
_app: Flask | None = None


@contextmanager
def job_context() -> Iterator[Flask]:
    """A job's app context; its database session is removed afterwards, whatever happened."""
    if _app is None:
        raise RuntimeError("the worker's app is not set: use build_scheduler(app) or run_once(app)")
    with _app.app_context():
        try:
            yield _app
        finally:
            db.session.remove()


# --- the jobs ------------------------------------------------------------------------------------
def reminders_job() -> str:
    """Task reminders that are due: in-app notifications and queued e-mails."""
    with job_context():
        count = send_due_reminders(db.session, utcnow())
    return f"{count} tasks reminded"


def outbox_job() -> str:
    """Send the outbox over SMTP (nothing when CRM_SMTP_HOST is empty)."""
    with job_context() as app:
        report = deliver_outbox(db.session, SmtpSettings.from_config(app.config))
    return str(report)


def formulas_job() -> str:
    """Refresh stored formula values that use TODAY()/NOW() (daily)."""
    changed = {}
    with job_context():
        for entity, model in ENTITY_MODELS.items():
            changed[entity] = recompute_formulas(db.session, model, only_time_dependent=True)
            db.session.commit()
    return ", ".join(f"{entity} {count}" for entity, count in changed.items()) + " records updated"


def analyze_tables(session: Session) -> int:
    """SQLite: `ANALYZE` every table, one transaction each, so writers wait for one table at a
    time. SQLite has no statistics unless someone runs ANALYZE, and without them it guesses:
    a manager's workbench walked every open overdue task of the company by the (status, due)
    index testing each for the team, where with statistics it reads the team's own index ranges
    (SQLite's documentation asks long-running applications to do this regularly). PostgreSQL
    and MariaDB keep their statistics themselves (autovacuum, InnoDB's persistent statistics)."""
    if session.get_bind().dialect.name != "sqlite":
        return 0
    tables = session.scalars(
        text("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' ORDER BY name")
    ).all()
    session.commit()
    for table in tables:
        session.connection().exec_driver_sql(f'ANALYZE "{table}"')
        session.commit()
    return len(tables)


def statistics_job() -> str:
    """Planner statistics, from the data as it is now (daily): on SQLite of every table (the
    custom-field expression indexes included), elsewhere of the custom-field indexes, whose
    expressions the databases' automatic statistics may not cover yet."""
    with job_context():
        tables = analyze_tables(db.session)
        count = 0 if tables else refresh_all_statistics(db.session)
        db.session.commit()
    if tables:
        return f"{tables} tables analysed"
    return f"{count} custom-field indexes analysed"


def classification_job() -> str:
    """Purchase frequency and local/remote of every customer (daily)."""
    with job_context() as app:
        report = classify_customers(db.session, app.config)
        db.session.commit()
    return report


def payment_plans_job() -> str:
    """Payment plans: mark overdue ones and remind owners `remind_days` ahead, once (daily)."""
    with job_context():
        report = payment_plan_run(db.session)
    return f"{report['overdue']} plans overdue, {report['reminded']} reminded"


def recycle_job() -> str:
    """Customer pools: due dates, customers taken back by the rules, owners warned (daily)."""
    with job_context():
        report = recycle(db.session, utcnow())
    return str(report)


# --- service desk (app/sla.py) ---
def sla_job() -> str:
    """SLA: open tickets at risk or breached marked, their assignee and manager told once."""
    from app.sla import sla_sweep

    with job_context():
        report = sla_sweep(db.session, utcnow())
    return str(report)


# --- analytics (app/analytics/) ---
def rollups_job() -> str:
    """The dashboards' rollups brought up to date with the records they summarise."""
    from app.analytics.rollups import refresh_rollups

    with job_context():
        report = refresh_rollups(db.session, utcnow())
    return str(report)


def reports_job() -> str:
    """Scheduled dashboard reports: each subscription on its weekday (once a week), by the outbox."""
    from app.analytics.reports import send_due_reports

    with job_context():
        report = send_due_reports(db.session, utcnow())
    return str(report)


# --- backups (app/backup.py) ---
def backup_job() -> str:
    """A backup into CRM_BACKUP_DIR, then only the CRM_BACKUP_KEEP newest kept (daily)."""
    from app.backup import prune, write_backup

    with job_context() as app:
        path, header = write_backup(app)
        removed = prune(path.parent, int(app.config.get("CRM_BACKUP_KEEP", 14)))
    return f"{path.name}: {sum(header['tables'].values())} rows, {len(removed)} old backups removed"


@dataclass(frozen=True)
class JobSpec:
    id: str
    func: Callable[[], str]
    #: the trigger, built for the worker's time zone
    trigger: Callable[[ZoneInfo], BaseTrigger]
    description: str
    #: run once as soon as the worker starts (cheap, idempotent, catches up after a stop)
    run_at_start: bool = False
    #: how late a run may still start (seconds); a daily job missed by a short stop catches up
    grace_seconds: int = 300


JOBS: list[JobSpec] = [
    JobSpec("reminders", reminders_job, lambda tz: IntervalTrigger(minutes=1, timezone=tz),
            "task reminders, every minute", run_at_start=True),
    JobSpec("outbox", outbox_job, lambda tz: IntervalTrigger(minutes=1, timezone=tz),
            "send the e-mail outbox, every minute", run_at_start=True),
    JobSpec("formulas", formulas_job, lambda tz: CronTrigger(hour=2, minute=0, timezone=tz),
            "recompute TODAY() formulas, daily at 02:00", grace_seconds=6 * 3600),
    JobSpec("statistics", statistics_job, lambda tz: CronTrigger(hour=3, minute=30, timezone=tz),
            "planner statistics, daily at 03:30", grace_seconds=6 * 3600),
    JobSpec("classification", classification_job, lambda tz: CronTrigger(hour=2, minute=30, timezone=tz),
            "purchase frequency and local/remote, daily at 02:30", grace_seconds=6 * 3600),
    JobSpec("payment_plans", payment_plans_job, lambda tz: CronTrigger(hour=7, minute=0, timezone=tz),
            "overdue payment plans and their reminders, daily at 07:00", grace_seconds=6 * 3600),
    JobSpec("recycle", recycle_job, lambda tz: CronTrigger(hour=1, minute=0, timezone=tz),
            "customer pools: recycle by the rules and warn owners, daily at 01:00", grace_seconds=6 * 3600),
    JobSpec("backup", backup_job, lambda tz: CronTrigger(hour=4, minute=0, timezone=tz),
            "encrypted backup, keeping CRM_BACKUP_KEEP, daily at 04:00", grace_seconds=6 * 3600),
    JobSpec("sla", sla_job, lambda tz: IntervalTrigger(minutes=5, timezone=tz),
            "service tickets: SLA at risk and breached, every 5 minutes", run_at_start=True),
    JobSpec("rollups", rollups_job, lambda tz: IntervalTrigger(minutes=10, timezone=tz),
            "dashboard rollups, every 10 minutes", run_at_start=True),
    JobSpec("reports", reports_job, lambda tz: CronTrigger(hour=7, minute=30, timezone=tz),
            "dashboard subscriptions due today (each once a week), daily at 07:30", grace_seconds=12 * 3600),
]  # fmt: skip


def register_job(spec: JobSpec) -> None:
    """Add (or replace, by id) a job of the worker; for later issues' jobs."""
    JOBS[:] = [job for job in JOBS if job.id != spec.id] + [spec]


# --- the scheduler -------------------------------------------------------------------------------
def build_scheduler(app: Flask, background: bool = False) -> BaseScheduler:
    """A scheduler for `app` (BlockingScheduler for `flask crm worker`, BackgroundScheduler for
    tests), its job store in the app's database, every job in JOBS registered under its id."""
    global _app
    _app = app
    zone = ZoneInfo(app.config["BABEL_DEFAULT_TIMEZONE"])
    jobstore = SQLAlchemyJobStore(
        url=app.config["SQLALCHEMY_DATABASE_URI"],
        tablename=JOBSTORE_TABLE,
        engine_options={"pool_pre_ping": True},
    )
    scheduler_class = BackgroundScheduler if background else BlockingScheduler
    scheduler = scheduler_class(
        jobstores={"default": jobstore},
        job_defaults={"coalesce": True, "max_instances": 1},
        timezone=zone,
    )
    now = dt.datetime.now(zone)
    for spec in JOBS:
        trigger = spec.trigger(zone)
        next_run = now if spec.run_at_start else trigger.get_next_fire_time(None, now)
        stored = None if spec.run_at_start else _stored_next_run(jobstore, spec.id)
        if stored is not None and next_run is not None and stored < next_run:
            next_run = stored  # a run missed while the worker was stopped: late, if within its grace
        scheduler.add_job(
            spec.func,
            trigger,
            id=spec.id,
            name=spec.description,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=spec.grace_seconds,
            next_run_time=next_run,
        )
    return scheduler


def _stored_next_run(jobstore: SQLAlchemyJobStore, job_id: str) -> dt.datetime | None:
    """The next run time the job store kept for a job from the previous start, if any."""
    if not inspect(jobstore.engine).has_table(jobstore.jobs_t.name):
        return None
    table = jobstore.jobs_t
    with jobstore.engine.connect() as connection:
        timestamp = connection.scalar(select(table.c.next_run_time).where(table.c.id == job_id))
    return dt.datetime.fromtimestamp(timestamp, dt.UTC) if timestamp is not None else None


def run_once(app: Flask) -> Iterator[tuple[str, str]]:
    """Run every job once now, in order (`flask crm worker --once`): (job id, what it did)."""
    global _app
    _app = app
    for spec in JOBS:
        yield spec.id, spec.func()


def describe(scheduler: BaseScheduler) -> list[str]:
    """One line per job: id, what it does, next run (for the worker's start-up message)."""
    lines = []
    for job in scheduler.get_jobs():
        next_run = getattr(job, "next_run_time", None)
        lines.append(f"  {job.id:<10} {job.name} (next: {next_run:%Y-%m-%d %H:%M:%S %Z})" if next_run
                     else f"  {job.id:<10} {job.name}")  # fmt: skip
    return lines


def log_job_events(scheduler: BaseScheduler, echo: Callable[[str], Any]) -> None:
    """Report each job's result (or error) through `echo`."""
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED

    def listener(event: Any) -> None:
        if event.exception is not None:
            echo(f"{utcnow():%Y-%m-%d %H:%M:%S} UTC {event.job_id}: ERROR {event.exception!r}")
        else:
            echo(f"{utcnow():%Y-%m-%d %H:%M:%S} UTC {event.job_id}: {event.retval}")

    scheduler.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
