"""`flask crm ...` commands, run through Flask's CLI runner against the test database."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from app.access import DEFAULT_ROLE_SCOPES
from app.extensions import db
from app.security import ROLE_PERMISSIONS, generate_password
from models.customers import Customer, Industry, Region
from models.security import CrmUser, RoleDataScope


def test_init_is_idempotent_and_complete(app) -> None:
    result = app.test_cli_runner().invoke(args=["crm", "init"])
    assert result.exit_code == 0, result.output
    assert "regions +0" in result.output  # already loaded by the fixture, not duplicated
    assert db.session.scalar(select(func.count()).select_from(Region)) > 3000
    dongying = db.session.scalars(select(Region.name).where(Region.parent_code == 370500)).all()
    assert {"东营区", "河口区", "垦利区", "利津县", "广饶县"} <= set(dongying)
    assert "石油化工" in db.session.scalars(select(Industry.name)).all()
    sm = app.appbuilder.sm
    for role in [*ROLE_PERMISSIONS, "Admin"]:
        assert sm.find_role(role) is not None, role
        scope = db.session.scalar(
            select(RoleDataScope.scope).where(RoleDataScope.role_id == sm.find_role(role).id)
        )
        assert scope == DEFAULT_ROLE_SCOPES[role]
    rep_permissions = {(p.permission.name, p.view_menu.name) for p in sm.find_role("Sales Rep").permissions}
    assert ("can_add", "CustomerView") in rep_permissions and ("menu_access", "Customers") in rep_permissions
    assert not any(
        view in {"UserDBModelView", "RoleModelView"} and perm == "can_list" for perm, view in rep_permissions
    )


def test_admin_password_is_random_and_shown_once(app, monkeypatch) -> None:
    monkeypatch.delenv("CRM_ADMIN_PASSWORD", raising=False)
    monkeypatch.setenv("CRM_ADMIN_EMAIL", "admin2@keguan.local")
    from app.cli import ensure_admin

    password = ensure_admin("admin2")
    assert password and re.search(r"[A-Z]", password) and re.search(r"\d", password)
    assert app.appbuilder.sm.auth_user_db("admin2", password) is not None
    assert ensure_admin("admin2") is None  # never again, never reset
    assert generate_password() != generate_password()


def test_demo_scale_bulk_generates_valid_rows(app) -> None:
    before = db.session.scalar(select(func.count()).select_from(Customer))
    result = app.test_cli_runner().invoke(args=["crm", "demo", "--scale", "300"])
    assert result.exit_code == 0, result.output
    assert db.session.scalar(select(func.count()).select_from(Customer)) == before + 300
    assert (
        db.session.scalar(select(func.count()).select_from(CrmUser).where(CrmUser.username.like("bench_%")))
        == 200
    )
    from app.customers import customer_service
    from app.services import column_values

    for customer in db.session.scalars(select(Customer).order_by(Customer.id.desc()).limit(20)):
        customer_service.clean(db.session, column_values(customer), pk=customer.id)  # raises if invalid
