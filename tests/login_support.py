"""Helpers of the login-security tests: fresh users, the audit trail, apps with limits on."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, g
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import create_app
from app.extensions import db
from models.audit import AuditLog
from models.security import CrmUser, Department
from tests.conftest import PASSWORD, TEST_CONFIG, unique_name

_created: list[int] = []


def new_user(app: Flask, role: str = "Sales Rep", password: str = PASSWORD) -> CrmUser:
    """A user of its own (lock-out and MFA change users: the shared organisation stays as is);
    `cleanup_users` takes it away again after the test."""
    sm = app.appbuilder.sm
    username = unique_name("u")
    sm.add_user(username, username, "Test", f"{username}@test.example.cn", sm.find_role(role), password)
    user = db.session.scalar(select(CrmUser).where(CrmUser.username == username))
    user.department_id = db.session.scalar(select(Department.id).where(Department.parent_id.is_(None)))
    db.session.commit()
    _created.append(user.id)
    return user


@pytest.fixture(autouse=True)
def cleanup_users() -> Iterator[None]:
    """Other tests count the users of a role (approvers, assignees): the users made here go.

    Import it into a test module to use it (autouse)."""
    yield
    db.session.rollback()
    while _created:
        user = db.session.get(CrmUser, _created.pop())
        if user is None:
            continue
        user.roles = []
        user.active = False
        db.session.commit()
        try:
            db.session.delete(user)
            db.session.commit()
        except IntegrityError:  # something of theirs stays: the user stays, inactive, role-less
            db.session.rollback()


def post_login(client: FlaskClient, username: str, password: str = PASSWORD) -> Any:
    return client.post("/login/", data={"username": username, "password": password})


def api_login(client: FlaskClient, username: str, password: str = PASSWORD, **extra: Any) -> Any:
    return client.post(
        "/api/v1/security/login",
        json={"username": username, "password": password, "provider": "db", **extra},
    )


def audit_actions(user_id: int | None = None, username: str | None = None) -> list[str]:
    db.session.rollback()
    query = select(AuditLog.action).order_by(AuditLog.id)
    if user_id is not None:
        query = query.where(AuditLog.entity == "ab_user", AuditLog.entity_id == str(user_id))
    if username is not None:
        query = query.where(AuditLog.username == username)
    return list(db.session.scalars(query).all())


def csrf_from(page: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page
    )
    assert match, page[:300]
    return match.group(1)


def other_app(database_url: str, **config: Any) -> Flask:
    """A second app on the same (already migrated) database, e.g. with CSRF or limits on."""
    application = create_app({**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": database_url, **config})

    def _fresh_g() -> None:
        # as in conftest: a test keeps one app context open, and each request must start afresh
        for key in list(g):
            g.pop(key, None)

    application.before_request_funcs.setdefault(None, []).insert(0, _fresh_g)
    return application
