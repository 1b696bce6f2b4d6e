"""`flask crm ...` commands, run through Flask's CLI runner against the test database."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import func, select

from app.access import DEFAULT_ROLE_SCOPES
from app.extensions import db
from app.security import ROLE_PERMISSIONS, generate_password
from models.approvals import ApprovalRequest
from models.customers import Customer, Industry, Region
from models.orders import Order
from models.sales import Interaction
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


def test_every_user_belongs_to_a_department(app, login_as) -> None:
    admin = db.session.scalar(select(CrmUser).where(CrmUser.username == "admin"))
    assert admin.department is not None and admin.department.parent_id is None  # the company itself
    client = login_as("admin")
    form = {"first_name": "新", "last_name": "员工", "username": "no_department", "email": "nd@example.cn",
            "active": "y", "roles": str(app.appbuilder.sm.find_role("Sales Rep").id),
            "password": "Xy-12345678", "conf_password": "Xy-12345678"}  # fmt: skip
    response = client.post("/users/add", data=form)
    assert response.status_code == 200  # the form again, with the error
    assert db.session.scalar(select(CrmUser).where(CrmUser.username == "no_department")) is None


def test_first_run_on_an_empty_database_loads_the_demo_company(tmp_path, monkeypatch) -> None:
    """`flask crm first-run` on a new SQLite file: one company tree, a user in every role."""
    from app import create_app
    from models.security import Department
    from tests.conftest import TEST_CONFIG

    monkeypatch.setenv("CRM_ADMIN_PASSWORD", "Demo-Kegu4n-2026!")
    monkeypatch.setenv("CRM_DEMO_PASSWORD", "Demo-Users-2026!")
    demo_app = create_app({**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/demo.db"})
    with demo_app.app_context():
        from flask_migrate import upgrade

        upgrade()
        result = demo_app.test_cli_runner().invoke(args=["crm", "first-run"])
        assert result.exit_code == 0, result.output
        assert "demo: 13 users, 60 customers" in result.output
        roots = db.session.scalars(select(Department).where(Department.parent_id.is_(None))).all()
        assert [r.name for r in roots] == ["东营鲁科化工有限公司"]
        users = db.session.scalars(select(CrmUser)).all()
        assert all(u.department_id for u in users)
        roles = {role.name for u in users for role in u.roles}
        assert set(ROLE_PERMISSIONS) | {"Admin"} <= roles
        dongying = db.session.scalar(
            select(func.count()).select_from(Customer).where(Customer.city_code == 370500)
        )
        assert dongying > 20  # a Dongying company's customers are mostly local
        # a believable year: customers arrived over the months, documents were approved when made
        created = {c.created_at.strftime("%Y-%m") for c in db.session.scalars(select(Customer))}
        assert len(created) >= 10, created
        approved = db.session.scalars(select(Order.approved_at).where(Order.approved_at.is_not(None))).all()
        assert len({moment.strftime("%Y-%m") for moment in approved}) >= 6, approved
        requests = db.session.scalars(select(ApprovalRequest)).all()
        assert requests and all(r.closed_at is None or r.closed_at >= r.submitted_at for r in requests)
        assert len({r.submitted_at.strftime("%Y-%m") for r in requests}) >= 3  # not all on the install day
        first_seen = {c.id: c.created_at for c in db.session.scalars(select(Customer))}
        follow_ups = db.session.scalars(select(Interaction)).all()
        assert all(f.occurred_at >= first_seen[f.customer_id] - dt.timedelta(days=1) for f in follow_ups)
        db.session.remove()
