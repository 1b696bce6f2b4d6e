"""The permission matrix: every built-in role times the important screens and API methods.

The EXPECTED table below is written by hand (what the issue and the product promise), not
derived from app.security.ROLE_PERMISSIONS, so a slip in those regexes shows up here. Each case
is a real request by a user of that role; the probes touch no real record (they use an id that
does not exist, or an empty body), so an allowed write answers 404 or a validation 4xx and a
denied one 403 before anything is read.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from models.security import CrmUser, Department
from tests.conftest import PASSWORD, login, token_for

ROLES = ["Admin", "Sales Manager", "Sales Rep", "Marketing", "Support Agent", "Finance", "Read Only"]
#: a user of each role: the test organisation's, plus two made by the module fixture
USERS = {
    "Admin": "admin",
    "Sales Manager": "manager1",
    "Sales Rep": "rep_a",
    "Marketing": "matrix_marketing",
    "Support Agent": "matrix_support",
    "Finance": "finance",
    "Read Only": "readonly",
}

ALL = set(ROLES)
SALES = {"Admin", "Sales Manager", "Sales Rep"}
NONE: set[str] = set()

#: resource -> (screen route, API route, roles that may read, roles that may write).
#: Writing means add, edit and delete (screen) and POST, PUT and DELETE (API).
EXPECTED: dict[str, tuple[str | None, str | None, set[str], set[str]]] = {
    "customers": (
        "/customerview", "/api/v1/customer",
        {"Admin", "Sales Manager", "Sales Rep", "Marketing", "Support Agent", "Finance", "Read Only"},
        SALES,
    ),
    "contacts": ("/contactview", "/api/v1/contact", ALL, SALES | {"Support Agent"}),
    "leads": (
        "/leadview", "/api/v1/lead",
        SALES | {"Marketing", "Finance", "Read Only"}, SALES | {"Marketing"},
    ),
    "opportunities": (
        "/opportunityview", "/api/v1/opportunity", SALES | {"Finance", "Read Only"}, SALES,
    ),
    "interactions": (
        "/interactionview", "/api/v1/interaction",
        SALES | {"Support Agent", "Finance", "Read Only"}, SALES | {"Support Agent"},
    ),
    "tasks": (
        "/taskview", "/api/v1/task",
        SALES | {"Support Agent", "Finance", "Read Only"}, SALES | {"Support Agent"},
    ),
    "orders": ("/orderview", "/api/v1/order", SALES | {"Finance", "Read Only"}, SALES),
    # money: Finance writes, the sales roles read (their orders' by scope), nobody else
    "payment plans": ("/paymentplanview", "/api/v1/paymentplan", SALES | {"Finance"}, {"Admin", "Finance"}),
    "payments": ("/paymentview", "/api/v1/payment", SALES | {"Finance"}, {"Admin", "Finance"}),
    "invoices": ("/invoiceview", "/api/v1/invoice", SALES | {"Finance"}, {"Admin", "Finance"}),
    "products": (
        "/productview", "/api/v1/product",
        ALL - {"Support Agent"}, {"Admin", "Sales Manager"},
    ),
    "targets": ("/salestargetview", "/api/v1/target", SALES, {"Admin", "Sales Manager"}),
    "pools": ("/customerpoolview", "/api/v1/pool", SALES, {"Admin"}),
    "pool customers": ("/poolcustomerview", "/api/v1/poolcustomer", SALES, NONE),
    # approvals: everyone sees what waits for them / their own; only Admin sets up the flows
    "approval requests": ("/approvalrequestview", "/api/v1/approval", ALL, NONE),
    "approval flows": ("/approvalflowview", "/api/v1/approval_flow", {"Admin"}, {"Admin"}),
    "audit log": ("/auditlogview", "/api/v1/audit", {"Admin"}, NONE),
    "field rules": ("/fieldruleview", "/api/v1/fieldrule", {"Admin"}, {"Admin"}),
    "data scopes": ("/roledatascopeview", "/api/v1/data_scope", {"Admin"}, {"Admin"}),
    "custom fields": ("/customfieldview", "/api/v1/customfield", {"Admin"}, {"Admin"}),
    "departments": (
        "/departmentview", "/api/v1/department", {"Admin", "Sales Manager", "Read Only"}, {"Admin"},
    ),
    "users": ("/users", "/api/v1/security/users", {"Admin"}, {"Admin"}),
    "roles": ("/roles", "/api/v1/security/roles", {"Admin"}, {"Admin"}),
    "mfa policies": ("/rolemfapolicyview", None, {"Admin"}, {"Admin"}),
}
#: screens without an add form (the record is made elsewhere: claims, the approval engine...)
NO_ADD_SCREEN = {"pool customers", "approval requests", "audit log"}
#: APIs that are read-only for everybody (no POST/PUT/DELETE route at all)
READ_ONLY_API = {"pool customers", "approval requests", "audit log"}

MISSING = 999_999_999  # an id no record has


def _cases(kind: str) -> list[tuple[str, str, str, bool]]:
    """(resource, operation, role, allowed) for every role, from the one table."""
    cases: list = []
    for resource, (screen, api, readers, writers) in EXPECTED.items():
        if (screen if kind == "screen" else api) is None:
            continue
        operations = ["list"]
        if kind == "screen":
            operations += [] if resource in NO_ADD_SCREEN else ["add", "edit", "delete"]
        else:
            operations += ["get"] + ([] if resource in READ_ONLY_API else ["post", "put", "delete"])
        for operation in operations:
            allowed_roles = readers if operation in ("list", "get") else writers
            for role in ROLES:
                cases.append((resource, operation, role, role in allowed_roles))
    return cases


@pytest.fixture(scope="module")
def role_users(app: Flask) -> Iterator[None]:
    """Users for the roles the test organisation lacks (Marketing, Support Agent)."""
    made = []
    with app.app_context():
        sm = app.appbuilder.sm
        root = db.session.scalar(select(Department.id).where(Department.parent_id.is_(None)))
        for role, username in USERS.items():
            if db.session.scalar(select(CrmUser.id).where(CrmUser.username == username)) is None:
                email = f"{username}@test.example.cn"
                sm.add_user(username, username, "Test", email, sm.find_role(role), PASSWORD)
                person = db.session.scalar(select(CrmUser).where(CrmUser.username == username))
                person.department_id = root
                db.session.commit()
                made.append(person.id)
        # every user of the table really has (only) the role it stands for
        for role, username in USERS.items():
            person = db.session.scalar(select(CrmUser).where(CrmUser.username == username))
            assert [r.name for r in person.roles] == [role], username
    yield
    with app.app_context():
        for pk in made:
            person = db.session.get(CrmUser, pk)
            person.roles = []
            person.active = False
            db.session.commit()


_sessions: dict[str, object] = {}
_tokens: dict[str, dict[str, str]] = {}


def _screen_client(app: Flask, role: str):
    if role not in _sessions:
        _sessions[role] = login(app.test_client(), USERS[role])
    return _sessions[role]


def _api_client(app: Flask, role: str):
    client = app.test_client()
    if role not in _tokens:
        _tokens[role] = token_for(client, USERS[role])
    return client, _tokens[role]


@pytest.mark.parametrize(("resource", "operation", "role", "allowed"), _cases("screen"))
def test_screen(
    app: Flask, role_users: None, resource: str, operation: str, role: str, allowed: bool
) -> None:
    route = EXPECTED[resource][0]
    client = _screen_client(app, role)
    if operation == "list":
        response = client.get(f"{route}/list/")
        ok = {200}
    elif operation == "add":
        response = client.get(f"{route}/add")
        ok = {200}
    elif operation == "edit":
        response = client.get(f"{route}/edit/{MISSING}")
        ok = {404, 302}  # allowed: the record is not there (a redirect back with a message)
    else:
        response = client.post(f"{route}/delete/{MISSING}")
        ok = {404, 302}
    if allowed:
        assert response.status_code in ok, (response.status_code, response.headers.get("Location"))
        if response.status_code == 302:
            assert "/login" not in response.headers["Location"]
    else:
        # a logged-in user without the permission: 403 (FAB sends the anonymous to the login)
        assert response.status_code == 403, (response.status_code, response.headers.get("Location"))


@pytest.mark.parametrize(("resource", "operation", "role", "allowed"), _cases("api"))
def test_api(
    app: Flask, role_users: None, resource: str, operation: str, role: str, allowed: bool
) -> None:
    route = EXPECTED[resource][1]
    client, headers = _api_client(app, role)
    if operation == "list":
        response = client.get(f"{route}/", headers=headers)
        ok = {200}
    elif operation == "get":
        response = client.get(f"{route}/{MISSING}", headers=headers)
        ok = {404}
    elif operation == "post":
        response = client.post(f"{route}/", json={}, headers=headers)
        ok = {400, 422}  # allowed: the empty body fails validation
    elif operation == "put":
        response = client.put(f"{route}/{MISSING}", json={}, headers=headers)
        ok = {400, 404, 422}
    else:
        response = client.delete(f"{route}/{MISSING}", headers=headers)
        ok = {404}
    if allowed:
        assert response.status_code in ok, (response.status_code, response.get_data(as_text=True)[:300])
    else:
        body = response.get_data(as_text=True)[:300]
        assert response.status_code in (401, 403), (response.status_code, body)


def test_anonymous_gets_nothing(client) -> None:
    for resource, (screen, api, _readers, _writers) in EXPECTED.items():
        if screen:
            response = client.get(f"{screen}/list/")
            assert response.status_code == 302 and "/login" in response.headers["Location"], resource
        if api:
            assert client.get(f"{api}/").status_code == 401, resource
            if resource not in READ_ONLY_API:
                assert client.post(f"{api}/", json={}).status_code == 401, resource
