"""Test fixtures: a real database (SQLite file by default, PostgreSQL or MariaDB by
TEST_DATABASE_URL), migrated with Alembic from empty, and an organisation to test data scope.

The organisation (three levels):
    总公司 (root)        leader: boss (Sales Manager)
      销售中心 (sales)     leader: director (Sales Manager)
        一部 (team1)       leader: manager1 (Sales Manager); reps rep_a, rep_b
        二部 (team2)       leader: manager2 (Sales Manager); rep rep_c
rep_b reports to rep_a (rep_a is a team lead with the 'subordinates' scope in one test).
"""

from __future__ import annotations

import base64
import itertools
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, g
from flask.testing import FlaskClient
from sqlalchemy import create_engine, delete, select, text
from sqlalchemy.engine import make_url

import config
from app import create_app
from app.cli import ensure_admin, setup_database
from app.extensions import db
from customfields.definitions import CustomField, bump_version
from customfields.indexes import sync_indexes
from customfields.mixin import CUSTOMISABLE
from models.security import CrmUser, Department

PASSWORD = "Test-Passw0rd!"
_counter = itertools.count(1)


def _database_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        os.environ["DATABASE_URL"] = url
        return config.database_url()
    folder = tempfile.mkdtemp(prefix="keguan-test-")
    return f"sqlite:///{folder}/test.db"


def _create_database_if_missing(parsed: Any) -> None:
    """A second test database (backup restores) may not exist yet on a fresh server."""
    if parsed.get_backend_name() == "postgresql":
        server = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with server.connect() as conn:
            known = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database})
            if not known:
                conn.exec_driver_sql(f'CREATE DATABASE "{parsed.database}"')
    else:
        server = create_engine(parsed.set(database=""), isolation_level="AUTOCOMMIT")
        with server.connect() as conn:
            conn.exec_driver_sql(
                f"CREATE DATABASE IF NOT EXISTS `{parsed.database}`"
                " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
    server.dispose()


def _reset_database(url: str) -> None:
    """Drop every table of a server database so migrations start from empty."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return
    _create_database_if_missing(parsed)
    engine = create_engine(url)
    with engine.begin() as conn:
        if parsed.get_backend_name() == "postgresql":
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        else:
            conn.execute(text("SET FOREIGN_KEY_CHECKS = 0"))
            for (table,) in conn.execute(text("SHOW TABLES")).all():
                conn.execute(text(f"DROP TABLE `{table}`"))
            conn.execute(text("SET FOREIGN_KEY_CHECKS = 1"))
    engine.dispose()


TEST_CONFIG: dict[str, Any] = {
    "TESTING": True,
    "WTF_CSRF_ENABLED": False,
    "RATELIMIT_ENABLED": False,
    "AUTH_RATE_LIMITED": False,
    "FAB_UPDATE_PERMS": False,
    "SERVER_NAME": None,
    "CRM_UPLOAD_DIR": tempfile.mkdtemp(prefix="keguan-uploads-"),
    "CRM_BACKUP_DIR": tempfile.mkdtemp(prefix="keguan-backups-"),
    # --- encryption at rest: keys of the test run, never the real instance/ ---
    "CRM_KEY_DIR": tempfile.mkdtemp(prefix="keguan-keys-"),
    "CRM_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
    "CRM_ENCRYPTION_KEYS": "",
    "CRM_BLIND_INDEX_KEY": base64.b64encode(os.urandom(32)).decode(),
    # --- login security no role requires MFA and nothing is rate limited (RATELIMIT_
    # ENABLED above), so the tests log in with a password; tests/test_mfa.py etc. turn them on ---
    "CRM_MFA_REQUIRED_ROLES": [],
    "RATELIMIT_KEY_PREFIX": f"keguan-test-{os.getpid()}",
}


@pytest.fixture(scope="session")
def database_url() -> str:
    url = _database_url()
    _reset_database(url)
    return url


@pytest.fixture(scope="session")
def app(database_url: str) -> Iterator[Flask]:
    from flask_migrate import upgrade

    application = create_app({**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": database_url})

    def _forget_previous_request_user() -> None:
        # Tests keep one app context open (see app_context), and Flask-Login and JWT-Extended
        # cache the user in that context's `g`: empty it so each request authenticates on its
        # own, as it does in production where every request has a fresh `g`.
        for key in list(g):
            g.pop(key, None)

    application.before_request_funcs.setdefault(None, []).insert(0, _forget_previous_request_user)

    with application.app_context():
        upgrade()
        setup_database()
        os.environ.setdefault("CRM_ADMIN_PASSWORD", PASSWORD)
        ensure_admin()
        build_organisation(application)
    yield application


@pytest.fixture(autouse=True)
def app_context(app: Flask) -> Iterator[None]:
    """Tests read the database through db.session; requests made inside share this context."""
    with app.app_context():
        yield
        db.session.rollback()


def build_organisation(application: Flask) -> None:
    sm = application.appbuilder.sm
    session = db.session
    tree = [
        ("root", "总公司", None),
        ("sales", "销售中心", "root"),
        ("team1", "一部", "sales"),
        ("team2", "二部", "sales"),
    ]
    departments: dict[str, Department] = {}
    for key, name, parent in tree:
        dept = Department(name=name, parent_id=departments[parent].id if parent else None)
        session.add(dept)
        session.commit()
        departments[key] = dept
    people = [
        ("boss", "Sales Manager", "root", None),
        ("director", "Sales Manager", "sales", "boss"),
        ("manager1", "Sales Manager", "team1", "director"),
        ("manager2", "Sales Manager", "team2", "director"),
        ("rep_a", "Sales Rep", "team1", "manager1"),
        ("rep_b", "Sales Rep", "team1", "rep_a"),
        ("rep_c", "Sales Rep", "team2", "manager2"),
        ("finance", "Finance", "root", None),
        ("readonly", "Read Only", "team1", None),
    ]
    for username, role, dept_key, manager in people:
        sm.add_user(username, username, "Test", f"{username}@test.example.cn", sm.find_role(role), PASSWORD)
        user = session.query(CrmUser).filter_by(username=username).one()
        user.department_id = departments[dept_key].id
        if manager:
            user.manager_id = session.query(CrmUser).filter_by(username=manager).one().id
        session.commit()
    leaders = (("root", "boss"), ("sales", "director"), ("team1", "manager1"), ("team2", "manager2"))
    for key, leader in leaders:
        departments[key].leader_id = session.query(CrmUser).filter_by(username=leader).one().id
    session.commit()


def user(username: str) -> CrmUser:
    return db.session.query(CrmUser).filter_by(username=username).one()


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def login(client: FlaskClient, username: str, password: str = PASSWORD) -> FlaskClient:
    response = client.post("/login/", data={"username": username, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return client


@pytest.fixture()
def login_as(app: Flask):
    """A logged-in test client per username: login_as('rep_a')."""

    def _login(username: str) -> FlaskClient:
        return login(app.test_client(), username)

    return _login


def token_for(client: FlaskClient, username: str) -> dict[str, str]:
    response = client.post(
        "/api/v1/security/login",
        json={"username": username, "password": PASSWORD, "provider": "db"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return {"Authorization": f"Bearer {response.json['access_token']}"}


@pytest.fixture()
def api_as(app: Flask):
    """A (client, headers) pair with a JWT for a username."""

    def _api(username: str) -> tuple[FlaskClient, dict[str, str]]:
        client = app.test_client()
        return client, token_for(client, username)

    return _api


def unique_mobile() -> str:
    """A valid, unused mainland mobile number: 136 (a prefix the demo generator never uses)
    and 8 digits from the process id and a counter, so parallel runs and generated data differ."""
    return f"136{(os.getpid() % 1000) * 100_000 + next(_counter):08d}"


def unique_name(prefix: str = "测试客户") -> str:
    return f"{prefix}{os.getpid()}-{next(_counter)}"


def valid_credit_code() -> str:
    from stdnum.cn import uscc

    body = f"91370502{next(_counter) + 500000:09d}"
    return body + uscc.calc_check_digit(body)


@pytest.fixture()
def clean_custom_fields() -> Iterator[None]:
    """Custom-field tests define their own fields; remove them afterwards (values stay, unseen)."""
    yield
    db.session.rollback()
    for field in db.session.scalars(select(CustomField)).all():
        sync_indexes(db.session, CUSTOMISABLE[field.entity], field, deleted=True)
    db.session.execute(delete(CustomField))
    bump_version(db.session)  # so every cache, in this process too, forgets them
    db.session.commit()
