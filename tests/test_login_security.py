"""Passwords, lock-out, sessions and CSRF on cookie-authenticated API writes."""

from __future__ import annotations

import datetime as dt

import pytest
from flask_appbuilder.exceptions import PasswordComplexityValidationError
from sqlalchemy import func, select

from app.cli import ensure_admin
from app.extensions import db
from app.security import generate_password, password_problems
from models.base import utcnow
from models.customers import Tag
from models.security import CrmUser
from tests.conftest import PASSWORD, token_for, unique_name
from tests.login_support import (
    api_login,
    audit_actions,
    cleanup_users,  # noqa: F401  (autouse)
    csrf_from,
    new_user,
    other_app,
    post_login,
)

WEAK = [
    ("Ab1!", "至少 10 个字符"),  # too short
    ("onlylowercase1", "至少 3 类"),  # two classes
    ("ABCDEFGHIJKL", "至少 3 类"),  # one class
]


# --- password complexity -----------------------------------------------------------------
def test_password_rule(app) -> None:
    assert password_problems("Good-Passw0rd") == []
    assert password_problems("goodpassw0rd!") == []  # lower, digit, symbol: three classes
    for password, message in WEAK:
        assert any(message in p for p in password_problems(password)), password
    assert any("用户名" in p for p in password_problems("Zhang.San2026", "zhang.san2026"))
    assert any("用户名" in p for p in password_problems("6202nas.gnahz", "Zhang.San2026"))
    assert any("用户名" in p for p in password_problems("Demo-Admin-2026!", "admin"))
    assert password_problems("Demo-Kegu4n-2026!", "admin") == []
    for _ in range(20):
        assert password_problems(generate_password()) == []


def test_add_user_form_refuses_a_weak_password(app, login_as) -> None:
    client = login_as("admin")
    username = unique_name("weak")
    department = db.session.scalar(select(CrmUser.department_id).where(CrmUser.username == "admin"))
    role = app.appbuilder.sm.find_role("Sales Rep")
    for password, message in [*WEAK, (f"{username}A!", "用户名")]:
        form = {
            "first_name": "W", "last_name": "K", "username": username, "email": f"{username}@x.cn",
            "active": "y", "department": str(department), "roles": str(role.id),
            "password": password, "conf_password": password,
        }
        page = client.post("/users/add", data=form).get_data(as_text=True)
        assert message in page, password
    assert db.session.scalar(select(func.count()).where(CrmUser.username == username)) == 0


def test_user_api_refuses_a_weak_password(app, api_as) -> None:
    client, headers = api_as("admin")
    username = unique_name("weakapi")
    role = app.appbuilder.sm.find_role("Sales Rep")
    response = client.post(
        "/api/v1/security/users/",
        headers=headers,
        json={
            "username": username, "first_name": "W", "last_name": "K", "email": f"{username}@x.cn",
            "active": True, "roles": [role.id], "password": "short",
        },
    )
    assert response.status_code == 400
    assert "至少 10 个字符" in str(response.json)
    assert db.session.scalar(select(func.count()).where(CrmUser.username == username)) == 0


def test_reset_passwords_refuse_weak_ones(app, login_as) -> None:
    user = new_user(app)
    before = user.password
    own = login_as(user.username)
    page = own.post("/resetmypassword/form", data={"password": "weak", "conf_password": "weak"})
    assert "至少 10 个字符" in page.get_data(as_text=True)
    admin = login_as("admin")
    page = admin.post(
        f"/resetpassword/form?pk={user.id}",
        data={"password": "weakpassword", "conf_password": "weakpassword"},
    )
    assert "至少 3 类" in page.get_data(as_text=True)
    db.session.rollback()
    assert db.session.get(CrmUser, user.id).password == before
    strong = "Another-Passw0rd"
    own.post("/resetmypassword/form", data={"password": strong, "conf_password": strong})
    db.session.rollback()
    assert db.session.get(CrmUser, user.id).password != before


def test_cli_user_creation_follows_the_rule(app, monkeypatch) -> None:
    sm = app.appbuilder.sm
    with pytest.raises(PasswordComplexityValidationError, match="至少 10 个字符"):
        sm.add_user("weakcli", "W", "K", "weakcli@x.cn", sm.find_role("Sales Rep"), "abc")
    db.session.rollback()
    monkeypatch.setenv("CRM_ADMIN_PASSWORD", "admin12345")
    with pytest.raises(PasswordComplexityValidationError):
        ensure_admin("admin_weak")
    db.session.rollback()
    assert db.session.scalar(select(func.count()).where(CrmUser.username.in_(["weakcli", "admin_weak"]))) == 0


# --- lock-out ------------------------------------------------------------------------------
def test_lock_out_after_repeated_failures_and_admin_unlock(app, client, login_as) -> None:
    user = new_user(app)
    for _ in range(4):
        response = post_login(client, user.username, "Wrong-Passw0rd")
        assert response.status_code == 401
        assert "用户名或密码错误" in response.get_data(as_text=True)
    response = post_login(client, user.username, "Wrong-Passw0rd")
    assert "账户已暂时锁定" in response.get_data(as_text=True)
    db.session.rollback()
    locked = db.session.get(CrmUser, user.id)
    assert locked.locked_until > utcnow() + dt.timedelta(minutes=14)
    # even the right password is refused while locked, with the same message
    response = post_login(client, user.username)
    assert response.status_code == 401 and "账户已暂时锁定" in response.get_data(as_text=True)
    assert api_login(client, user.username).status_code == 401
    actions = audit_actions(user_id=user.id)
    assert actions.count("login_failed") >= 6 and "account_locked" in actions

    admin = login_as("admin")
    assert admin.post(f"/users/action/unlock/{user.id}").status_code == 302
    assert "account_unlocked" in audit_actions(user_id=user.id)
    assert post_login(client, user.username).status_code == 302
    db.session.rollback()
    assert db.session.get(CrmUser, user.id).fail_login_count == 0
    assert audit_actions(user_id=user.id)[-1] == "login"


def test_success_resets_the_counter_and_a_lock_expires(app, client) -> None:
    user = new_user(app)
    for _ in range(4):
        post_login(client, user.username, "Wrong-Passw0rd")
    assert post_login(client, user.username).status_code == 302
    client.get("/logout/")
    for _ in range(4):
        page = post_login(client, user.username, "Wrong-Passw0rd").get_data(as_text=True)
        assert "用户名或密码错误" in page
    db.session.rollback()
    row = db.session.get(CrmUser, user.id)
    assert row.locked_until is None
    row.locked_until = utcnow() - dt.timedelta(seconds=1)  # a lock that has run out
    row.fail_login_count = 5
    db.session.commit()
    assert post_login(client, user.username).status_code == 302


def test_unknown_user_gets_the_same_lock_message(app, client) -> None:
    ghost = unique_name("ghost")
    messages = [post_login(client, ghost, "Wrong-Passw0rd").get_data(as_text=True) for _ in range(5)]
    assert all("用户名或密码错误" in m for m in messages[:4])
    assert "账户已暂时锁定" in messages[4]


def test_api_login_counts_towards_the_lock(app, client) -> None:
    user = new_user(app)
    for _ in range(4):
        response = api_login(client, user.username, "Wrong-Passw0rd")
        assert response.status_code == 401 and response.json["message"] == "用户名或密码错误"
    response = api_login(client, user.username, "Wrong-Passw0rd")
    assert response.status_code == 401 and "锁定" in response.json["message"]
    assert api_login(client, user.username).status_code == 401


# --- sessions ------------------------------------------------------------------------------
def test_session_is_permanent_and_cleared_at_logout(app, client) -> None:
    user = new_user(app)
    response = post_login(client, user.username)
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "Expires=" in cookie and "HttpOnly" in cookie
    assert client.get("/").status_code == 200
    with client.session_transaction() as sess:
        sess["something"] = "kept across requests"
    client.get("/logout/")
    with client.session_transaction() as sess:
        assert "something" not in sess and "_user_id" not in sess
    assert client.get("/").status_code == 302


# --- CSRF on the API with the session cookie ----------------------------------------------
@pytest.fixture(scope="module")
def csrf_app(database_url):
    return other_app(database_url, WTF_CSRF_ENABLED=True, SESSION_COOKIE_SECURE=True)


def _login_with_csrf(app, username: str):
    client = app.test_client()
    # served over HTTPS (secure cookies travel only there; Flask-WTF checks the referrer)
    client.environ_base.update({"wsgi.url_scheme": "https", "HTTP_REFERER": "https://localhost/"})
    token = csrf_from(client.get("/login/").get_data(as_text=True))
    response = client.post("/login/", data={"username": username, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    assert "Secure" in response.headers["Set-Cookie"]
    return client


def test_cookie_api_writes_need_the_csrf_token(csrf_app) -> None:
    with csrf_app.app_context():
        client = _login_with_csrf(csrf_app, "admin")
        name = unique_name("标签")
        response = client.post("/api/v1/tag/", json={"name": name})
        assert response.status_code == 400
        assert "X-CSRFToken" in response.json["message"]["csrf_token"][0]
        assert db.session.scalar(select(func.count()).where(Tag.name == name)) == 0
        assert client.get("/api/v1/tag/").status_code == 200  # reading needs no token
        token = csrf_from(client.get("/api-tokens/").get_data(as_text=True))
        response = client.post("/api/v1/tag/", json={"name": name}, headers={"X-CSRFToken": token})
        assert response.status_code == 201, response.json
        # a JWT carries no cookie: no CSRF token needed
        jwt_client = csrf_app.test_client()
        jwt_client.environ_base.update({"wsgi.url_scheme": "https"})
        headers = token_for(jwt_client, "admin")
        response = jwt_client.post("/api/v1/tag/", json={"name": name + "-jwt"}, headers=headers)
        assert response.status_code == 201, response.json


def test_the_board_script_sends_the_csrf_header() -> None:
    from pathlib import Path

    script = (Path(__file__).parent.parent / "app" / "static" / "crm" / "kanban.js").read_text()
    assert 'headers["X-CSRFToken"] = cfg.csrf_token' in script


def test_cli_unlocks_and_resets_mfa(app, client) -> None:
    user = new_user(app)
    for _ in range(5):
        post_login(client, user.username, "Wrong-Passw0rd")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["crm", "unlock", user.username])
    assert result.exit_code == 0 and "unlocked" in result.output
    assert post_login(client, user.username).status_code == 302
    result = runner.invoke(args=["crm", "mfa-reset", user.username])
    assert result.exit_code == 0 and "was not set up" in result.output
    assert "account_unlocked" in audit_actions(user_id=user.id)
    result = runner.invoke(args=["crm", "unlock", "no-such-user"])
    assert result.exit_code != 0 and "no user" in result.output
