"""`flask crm ...`: set up a database, create the admin, load demo data."""

from __future__ import annotations

import os

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from flask_appbuilder.exceptions import PasswordComplexityValidationError
from sqlalchemy import func, select

from app import audit, crypto, demo  # audit, crypto: encryption at rest (key_rotation event)
from app.analytics.rollups import refresh_rollups
from app.audit import audit_cli  # `flask crm audit verify`
from app.classification import classify_customers
from app.customfields import ENTITY_MODELS, recompute_formulas
from app.extensions import db
from app.pools import recycle
from app.regions import load_regions
from app.security import generate_password
from app.service import seed_categories
from app.sla import seed_service_defaults
from models import Model  # encryption at rest: every encrypted column
from models.base import utcnow
from models.customers import Industry
from models.security import CrmUser, Department
from models.service import TicketCategory

crm = AppGroup("crm", help="KeGuan commands.")
crm.add_command(audit_cli)

SEED_INDUSTRIES = [
    "石油化工",
    "生态农业",
    "海产品加工",
    "装备制造",
    "服务业",
    "新材料",
    "橡胶轮胎",
    "有色金属",
    "纺织服装",
    "食品加工",
    "物流运输",
    "建筑工程",
    "医药化工",
    "电子信息",
    "其他",
]


def init_app(app: Flask) -> None:
    app.cli.add_command(crm)


def setup_database() -> dict[str, int]:
    """Reference data, permissions and built-in roles; safe to run again after an upgrade."""
    session = db.session
    regions = load_regions(session)
    industries = 0
    if not session.scalar(select(func.count()).select_from(Industry)):
        session.add_all(Industry(name=name, position=i) for i, name in enumerate(SEED_INDUSTRIES))
        industries = len(SEED_INDUSTRIES)
    seed_service_defaults(session)  # business hours and SLA policies, once
    if not session.scalar(select(func.count()).select_from(TicketCategory)):
        seed_categories(session)  # 业务类型 of a new install; the admin edits them afterwards
    session.commit()
    appbuilder = current_app.appbuilder
    # FAB creates these in its create_db(), which Alembic replaces (FAB_CREATE_DB=False)
    appbuilder.sm.add_role(appbuilder.sm.auth_role_admin)
    appbuilder.sm.add_role(appbuilder.sm.auth_role_public)
    appbuilder.add_permissions(update_perms=True)
    appbuilder.sm.sync_builtin_roles()
    return {"regions": regions, "industries": industries}


def ensure_admin(username: str = "admin") -> str | None:
    """Create the admin user once. Returns the password when it was generated here."""
    sm = current_app.appbuilder.sm
    if db.session.scalar(select(CrmUser.id).where(CrmUser.username == username)):
        return None
    password = os.environ.get("CRM_ADMIN_PASSWORD")
    generated = None
    if not password:
        password = generated = generate_password()
    user = sm.add_user(
        username=username,
        first_name="管理员",
        last_name="系统",
        email=os.environ.get("CRM_ADMIN_EMAIL", "admin@keguan.local"),
        role=sm.find_role(sm.auth_role_admin),
        password=password,
    )
    if not user:
        raise click.ClickException("could not create the admin user")
    # every user belongs to a department: the admin to the top of the tree
    admin = db.session.get(CrmUser, user.id)
    admin.department_id = company_department().id
    db.session.commit()
    return generated


def company_department() -> Department:
    """The root of the department tree, created (named CRM_COMPANY_NAME) when there is none."""
    root = db.session.scalar(select(Department).where(Department.parent_id.is_(None)).order_by(Department.id))
    if root is None:
        root = Department(name=os.environ.get("CRM_COMPANY_NAME", "我的公司"))
        db.session.add(root)
        db.session.flush()
    return root


@crm.command("init")
def init_command() -> None:
    """Load reference data, sync roles and permissions, create the admin (first run)."""
    counts = setup_database()
    click.echo(f"regions +{counts['regions']}, industries +{counts['industries']}, roles synced")
    try:
        generated = ensure_admin()
    except PasswordComplexityValidationError as error:  # CRM_ADMIN_PASSWORD too weak
        raise click.ClickException(f"CRM_ADMIN_PASSWORD: {error}") from error
    if generated:
        click.echo("")
        click.echo("=" * 60)
        click.echo("  管理员账号已创建 / Admin user created")
        click.echo("  username: admin")
        click.echo(f"  password: {generated}")
        click.echo("  (shown once; set CRM_ADMIN_PASSWORD to choose it yourself)")
        click.echo("=" * 60)


@crm.command("demo")
@click.option(
    "--scale",
    type=int,
    default=None,
    help="Generate this many customers (bulk) instead of the believable demo set.",
)
@click.option("--contacts-per-customer", type=int, default=2, show_default=True)
@click.option("--seed", type=int, default=20261123, show_default=True)
def demo_command(scale: int | None, contacts_per_customer: int, seed: int) -> None:
    """Load the Dongying demo company (or N generated customers with --scale)."""
    if scale:
        stats = demo.generate(db.session, scale, contacts_per_customer, seed)
        click.echo(
            f"generated {stats['customers']} customers, {stats['contacts']} contacts "
            f"in {stats['seconds']:.1f}s"
        )
        return
    stats = demo.load_demo(db.session, seed)
    if not stats:
        click.echo("demo data already loaded")
        return
    click.echo(f"demo: {stats['users']} users, {stats['customers']} customers, {stats['contacts']} contacts")
    click.echo(
        f"      {stats['opportunities']} opportunities, {stats['follow_ups']} follow-ups, "
        f"{stats['leads']} leads"
    )
    click.echo(
        f"      {stats.get('orders', 0)} orders, {stats.get('contracts', 0)} contracts, "
        f"{stats.get('payments', 0)} collections, {stats.get('invoices', 0)} invoices, "
        f"{stats.get('flows', 0)} approval flows, {stats.get('targets', 0)} targets, "
        f"{stats.get('pool pools', 0)} customer pools"
    )
    service = {key[len("service ") :]: value for key, value in stats.items() if key.startswith("service ")}
    if service:
        click.echo("      service: " + ", ".join(f"{value} {key}" for key, value in service.items()))
    # the dashboards read rollups the worker keeps fresh; build them now so they show the demo
    rollups = refresh_rollups(db.session, utcnow(), full=True)
    click.echo(f"      dashboards: {sum(v for v in rollups.values() if isinstance(v, int))} rollup rows")
    click.echo(f"demo users' password: {stats['password']}")


@crm.command("first-run")
@click.pass_context
def first_run_command(ctx: click.Context) -> None:
    """What `make run` does once: init, then demo data when the database has no customers."""
    ctx.invoke(init_command)
    if demo.is_empty(db.session):
        ctx.invoke(demo_command, scale=None, contacts_per_customer=2, seed=20261123)


@crm.command("recompute-formulas")
@click.option("--all", "everything", is_flag=True, help="every formula, not only those using TODAY()/NOW()")
def recompute_formulas_command(everything: bool) -> None:
    """Recompute stored formula values: daily for formulas that use TODAY() (the worker runs it),
    or all of them after a bulk change made outside KeGuan."""
    for entity, model in ENTITY_MODELS.items():
        changed = recompute_formulas(db.session, model, only_time_dependent=not everything)
        db.session.commit()
        click.echo(f"{entity}: {changed} records updated")


@crm.command("recycle")
def recycle_command() -> None:
    """Apply the customer pools' recycle rules now (the worker does it daily at 01:00): due
    dates, customers taken back into their pool, warnings to their owners."""
    click.echo(recycle(db.session))


@crm.command("classify")
def classify_command() -> None:
    """Recompute every customer's purchase frequency and local/remote now (the worker does it
    daily), with CRM_FREQUENCY_* and CRM_HOME_CITY."""
    try:
        report = classify_customers(db.session, current_app.config)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    db.session.commit()
    click.echo(report)


@crm.command("worker")
@click.option("--once", is_flag=True, help="run every job once now and exit (cron, tests)")
def worker_command(once: bool) -> None:
    """The background worker: task reminders (in-app and e-mail), the e-mail outbox, daily
    formulas and customer classification. Runs until stopped (Ctrl+C, SIGTERM); start one per installation."""
    import logging
    import signal

    from sqlalchemy.engine import make_url

    from app import worker

    app = current_app._get_current_object()
    if once:
        for job_id, result in worker.run_once(app):
            click.echo(f"{job_id}: {result}")
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # each job's result is echoed below
    scheduler = worker.build_scheduler(app)
    database = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).render_as_string(hide_password=True)
    click.echo(f"KeGuan worker: job store {worker.JOBSTORE_TABLE} in {database}")
    if not app.config.get("CRM_SMTP_HOST"):
        click.echo("CRM_SMTP_HOST is empty: e-mails wait in the outbox until it is set")
    click.echo("\n".join(worker.describe(scheduler)))
    worker.log_job_events(scheduler, click.echo)
    signal.signal(signal.SIGTERM, lambda signum, frame: scheduler.shutdown())
    try:
        scheduler.start()  # blocks
    except (KeyboardInterrupt, SystemExit):
        if scheduler.running:
            scheduler.shutdown()  # waits for running jobs
    click.echo("KeGuan worker stopped")


# --- encryption at rest ---
@crm.command("rotate-key")
@click.option("--batch", type=int, default=500, show_default=True, help="values per committed batch")
@click.option(
    "--new-key",
    is_flag=True,
    help="embedded setup (no CRM_ENCRYPTION_KEY): first generate a new current key into the key file",
)
@click.option(
    "--reindex",
    is_flag=True,
    help="also values already under the current key: recomputes every blind index (new CRM_BLIND_INDEX_KEY)",
)
def rotate_key_command(batch: int, new_key: bool, reindex: bool) -> None:
    """Re-encrypt every encrypted value under the current key (resumable: run again if stopped).

    With keys from the environment: put the new key in CRM_ENCRYPTION_KEY and the old one in
    CRM_ENCRYPTION_KEYS, run this, then drop the old key. Blind indexes stay valid.
    """
    try:
        ring = crypto.add_key_to_file() if new_key else crypto.keyring()
    except crypto.KeyConfigurationError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"current key id: {ring.current_id}")
    try:
        counts = crypto.rotate(db.session, Model.metadata, batch=batch, ring=ring, everything=reindex)
    except crypto.CryptoError as error:
        db.session.rollback()
        raise click.ClickException(f"rotation stopped (batches done so far are kept): {error}") from error
    for name, count in counts.items():
        click.echo(f"{name}: {count} re-encrypted")
    audit.record_event(
        "key_rotation",
        details={"key_id": ring.current_id, "counts": counts, "new_key": new_key, "reindex": reindex},
        username="cli",
    )
    db.session.commit()
    click.echo(f"done: {sum(counts.values())} values under key {ring.current_id}")


# --- login security: an admin without a browser (lost phone, locked out) ---
def _user_named(username: str) -> CrmUser:
    user = db.session.scalar(select(CrmUser).where(CrmUser.username == username))
    if user is None:
        raise click.ClickException(f"no user {username!r}")
    return user


@crm.command("mfa-reset")
@click.argument("username")
def mfa_reset_command(username: str) -> None:
    """Remove a user's MFA (secret and recovery codes); they enrol again at the next login."""
    from app import mfa

    user = _user_named(username)
    removed = mfa.admin_reset(db.session, user, None)
    db.session.commit()
    click.echo(f"{username}: MFA {'removed' if removed else 'was not set up'}")


@crm.command("unlock")
@click.argument("username")
def unlock_command(username: str) -> None:
    """Lift a lock-out after too many failed logins."""
    from app.login import unlock

    unlock(_user_named(username), None)
    db.session.commit()
    click.echo(f"{username}: unlocked")


# --- backups (app/backup.py) ---
@crm.command("backup")
@click.option("--to", "folder", default=None, help="folder to write into (default CRM_BACKUP_DIR)")
def backup_command(folder: str | None) -> None:
    """Write a consistent, compressed, encrypted backup of the whole database (keep the key safe:
    the backup cannot be read without CRM_ENCRYPTION_KEY)."""
    from app import backup

    try:
        path, header = backup.write_backup(current_app._get_current_object(), folder)
    except (backup.BackupError, crypto.KeyConfigurationError) as error:
        raise click.ClickException(str(error)) from error
    rows = sum(header["tables"].values())
    click.echo(
        f"{path}: {rows} rows in {len(header['tables'])} tables, key id {header['key_id']}, "
        f"revision {header['alembic_revision']}"
    )


@crm.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--yes", "wipe", is_flag=True, help="DELETE everything in a non-empty database first")
def restore_command(file: str, wipe: bool) -> None:
    """Restore a backup into an empty database (migrated to the backup's revision when it has no
    schema), then verify row counts and the audit chain."""
    from app import backup

    try:
        report = backup.restore(current_app._get_current_object(), file, wipe=wipe)
    except (backup.BackupError, crypto.KeyConfigurationError) as error:
        raise click.ClickException(str(error)) from error
    for warning in report.warnings:
        click.echo(f"WARNING: {warning}", err=True)
    click.echo(
        f"restored {sum(report.counts.values())} rows in {len(report.counts)} tables from "
        f"{report.header['created_at']}; row counts match; audit chain verified "
        f"({report.audit_rows} rows)"
    )
