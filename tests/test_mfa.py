"""MFA: enrolment by QR code, login with TOTP or a recovery code (form and API), disable, admin
reset, and roles that require it."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pyotp
import pytest
from sqlalchemy import delete, func, select, text

from app import mfa
from app.extensions import db
from models.security import MfaRecoveryCode, RoleMfaPolicy, UserMfa
from tests.login_support import (
    api_login,
    audit_actions,
    cleanup_users,  # noqa: F401  (autouse)
    new_user,
    post_login,
)


def enrol(app, login_as, role: str = "Sales Rep") -> tuple[object, pyotp.TOTP, list[str]]:
    """A new user with MFA confirmed through the screens: (user, their TOTP, recovery codes)."""
    user = new_user(app, role)
    client = login_as(user.username)
    page = client.get("/mfa/").get_data(as_text=True)
    db.session.rollback()
    secret = db.session.scalar(select(UserMfa.secret).where(UserMfa.user_id == user.id))
    assert "<svg" in page and secret in page
    totp = pyotp.TOTP(secret)
    response = client.post("/mfa/confirm", data={"code": totp.at(time.time() - 30)})
    assert response.status_code == 200
    codes = re.findall(r"\b[0-9a-f]{5}-[0-9a-f]{5}\b", response.get_data(as_text=True))
    assert len(codes) == 10
    return user, totp, codes


def test_enrolment_shows_a_qr_code_and_needs_a_right_code(app, login_as) -> None:
    user = new_user(app)
    client = login_as(user.username)
    page = client.get("/mfa/").get_data(as_text=True)
    assert "<svg" in page and "https://" not in page.split("<svg", 1)[1].split("</svg>", 1)[0].replace(
        "http://www.w3.org", ""
    )
    db.session.rollback()
    row = db.session.scalar(select(UserMfa).where(UserMfa.user_id == user.id))
    assert row.confirmed_at is None and row.secret in page
    # the secret is stored encrypted
    raw = db.session.execute(text("SELECT secret FROM crm_user_mfa WHERE user_id = :u"), {"u": user.id})
    raw = raw.scalar()
    assert raw.startswith("enc1:") and row.secret not in raw
    # reloading keeps the same secret (the user may have scanned it already)
    assert row.secret in client.get("/mfa/").get_data(as_text=True)
    for bad in ["000000", "12345", "abcdef", ""]:
        response = client.post("/mfa/confirm", data={"code": bad})
        assert response.status_code == 400
        assert "验证码不正确" in response.get_data(as_text=True)
    db.session.rollback()
    assert not mfa.has_mfa(db.session, user.id)
    assert db.session.scalar(select(func.count()).where(MfaRecoveryCode.user_id == user.id)) == 0
    response = client.post("/mfa/confirm", data={"code": pyotp.TOTP(row.secret).now()})
    assert response.status_code == 200 and "恢复码" in response.get_data(as_text=True)
    db.session.rollback()
    assert mfa.has_mfa(db.session, user.id)
    hashes = db.session.scalars(
        select(MfaRecoveryCode.code_hash).where(MfaRecoveryCode.user_id == user.id)
    ).all()
    assert len(hashes) == 10 and all(len(h) == 64 for h in hashes)
    assert "mfa_enrolled" in audit_actions(user_id=user.id)


def test_login_form_asks_for_the_code(app, client, login_as) -> None:
    user, totp, _codes = enrol(app, login_as)
    response = post_login(client, user.username)
    assert response.status_code == 302 and response.headers["Location"].endswith("/login/code")
    assert client.get("/").status_code == 302  # not logged in before the code
    response = client.post("/login/code", data={"code": "000000"})
    assert response.status_code == 401 and "验证码或恢复码不正确" in response.get_data(as_text=True)
    response = client.post("/login/code", data={"code": totp.now()})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    assert audit_actions(user_id=user.id)[-1] == "login"
    # the same code cannot be used twice
    other = app.test_client()
    post_login(other, user.username)
    response = other.post("/login/code", data={"code": totp.now()})
    assert response.status_code == 401


def test_recovery_code_works_once(app, client, login_as) -> None:
    user, _totp, codes = enrol(app, login_as)
    post_login(client, user.username)
    assert client.post("/login/code", data={"code": codes[0].upper()}).status_code == 302
    assert "recovery_code_used" in audit_actions(user_id=user.id)
    db.session.rollback()
    assert mfa.remaining_recovery_codes(db.session, user.id) == 9
    again = app.test_client()
    post_login(again, user.username)
    response = again.post("/login/code", data={"code": codes[0]})
    assert response.status_code == 401 and "验证码或恢复码不正确" in response.get_data(as_text=True)
    assert again.get("/").status_code == 302


def test_guessing_codes_locks_the_account(app, client, login_as) -> None:
    user, totp, _codes = enrol(app, login_as)
    post_login(client, user.username)
    for _ in range(4):
        assert client.post("/login/code", data={"code": "111111"}).status_code == 401
    response = client.post("/login/code", data={"code": "111111"}, follow_redirects=True)
    assert "账户已暂时锁定" in response.get_data(as_text=True)
    response = post_login(app.test_client(), user.username)
    assert response.status_code == 401 and "账户已暂时锁定" in response.get_data(as_text=True)
    assert "account_locked" in audit_actions(user_id=user.id)


def test_api_login_needs_the_code(app, client, login_as) -> None:
    user, totp, codes = enrol(app, login_as)
    response = api_login(client, user.username)
    assert response.status_code == 401 and "totp" in response.json["message"]
    response = api_login(client, user.username, totp="000000")
    assert response.status_code == 401 and response.json["message"] == "验证码或恢复码不正确"
    response = api_login(client, user.username, totp=totp.now())
    assert response.status_code == 200 and response.json["access_token"]
    response = api_login(client, user.username, totp=codes[1])
    assert response.status_code == 200
    assert api_login(client, user.username, totp=codes[1]).status_code == 401
    headers = {"Authorization": f"Bearer {response.json['access_token']}"}
    assert client.get("/api/v1/customer/", headers=headers).status_code == 200


def test_disable_needs_password_and_code(app, login_as) -> None:
    user, totp, _codes = enrol(app, login_as)
    client = app.test_client()
    post_login(client, user.username)
    client.post("/login/code", data={"code": totp.now()})
    response = client.post("/mfa/disable", data={"password": "Wrong-Passw0rd", "code": totp.now()})
    assert response.status_code == 400 and "密码不正确" in response.get_data(as_text=True)
    response = client.post("/mfa/disable", data={"password": "Test-Passw0rd!", "code": "000000"})
    assert response.status_code == 400 and "验证码或恢复码不正确" in response.get_data(as_text=True)
    db.session.rollback()
    assert mfa.has_mfa(db.session, user.id)
    next_code = totp.at(time.time() + 30)  # the login just spent the current one
    response = client.post("/mfa/disable", data={"password": "Test-Passw0rd!", "code": next_code})
    assert response.status_code == 302
    db.session.rollback()
    assert not mfa.has_mfa(db.session, user.id)
    assert db.session.scalar(select(func.count()).where(MfaRecoveryCode.user_id == user.id)) == 0
    assert "mfa_disabled" in audit_actions(user_id=user.id)
    assert post_login(app.test_client(), user.username).status_code == 302  # password alone again


def test_admin_resets_a_users_mfa(app, login_as) -> None:
    user, _totp, _codes = enrol(app, login_as)
    admin = login_as("admin")
    response = admin.post("/users/action_post", data={"action": "mfa_reset", "rowid": [str(user.id)]})
    assert response.status_code == 302
    db.session.rollback()
    assert not mfa.has_mfa(db.session, user.id)
    assert "mfa_reset" in audit_actions(user_id=user.id)
    assert post_login(app.test_client(), user.username).status_code == 302


@pytest.fixture()
def support_requires_mfa(app) -> Iterator[None]:
    """The Support Agent role requires MFA for one test."""
    role = app.appbuilder.sm.find_role("Support Agent")
    db.session.add(RoleMfaPolicy(role_id=role.id, required=True))
    db.session.commit()
    yield
    db.session.rollback()
    db.session.execute(delete(RoleMfaPolicy).where(RoleMfaPolicy.role_id == role.id))
    db.session.commit()


def test_a_required_role_enrols_before_anything_else(app, support_requires_mfa) -> None:
    user = new_user(app, "Support Agent")
    client = app.test_client()
    assert post_login(client, user.username).status_code == 302
    for path in ["/", "/customerview/list/", "/api-tokens/"]:
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].endswith("/mfa/"), path
    page = client.get("/mfa/").get_data(as_text=True)
    assert "您的角色要求启用双因素认证" in page
    response = client.get("/api/v1/customer/")
    assert response.status_code == 403 and "双因素认证" in response.json["message"]
    response = api_login(app.test_client(), user.username)
    assert response.status_code == 403 and "双因素认证" in response.json["message"]
    # a user of the role cannot turn it off either
    db.session.rollback()
    secret = db.session.scalar(select(UserMfa.secret).where(UserMfa.user_id == user.id))
    totp = pyotp.TOTP(secret)
    assert client.post("/mfa/confirm", data={"code": totp.at(time.time() - 30)}).status_code == 200
    assert client.get("/customerview/list/").status_code == 200
    response = client.post("/mfa/disable", data={"password": "Test-Passw0rd!", "code": totp.now()})
    assert response.status_code == 400 and "不能停用" in response.get_data(as_text=True)
    response = api_login(app.test_client(), user.username)
    assert response.status_code == 401 and "totp" in response.json["message"]
    assert api_login(app.test_client(), user.username, totp=totp.now()).status_code == 200


def test_default_policies_are_applied_once(app, login_as) -> None:
    finance = app.appbuilder.sm.find_role("Finance")
    db.session.execute(delete(RoleMfaPolicy).where(RoleMfaPolicy.role_id == finance.id))
    mfa.sync_default_policies(db.session, ["Finance", "No Such Role"])
    db.session.commit()
    policy = db.session.scalar(select(RoleMfaPolicy).where(RoleMfaPolicy.role_id == finance.id))
    assert policy.required is True
    policy.required = False  # the admin's later choice
    db.session.commit()
    mfa.sync_default_policies(db.session, ["Finance"])
    db.session.commit()
    query = select(RoleMfaPolicy.required).where(RoleMfaPolicy.role_id == finance.id)
    assert db.session.scalar(query) is False
    admin = login_as("admin")
    page = admin.get("/rolemfapolicyview/list/").get_data(as_text=True)
    assert "Finance" in page
    db.session.execute(delete(RoleMfaPolicy).where(RoleMfaPolicy.role_id == finance.id))
    db.session.commit()


def test_admin_sets_a_role_policy_in_the_screen(app, login_as) -> None:
    role = app.appbuilder.sm.find_role("Marketing")
    admin = login_as("admin")
    try:
        response = admin.post("/rolemfapolicyview/add", data={"role": str(role.id), "required": "y"})
        assert response.status_code == 302
        policy = db.session.scalar(select(RoleMfaPolicy).where(RoleMfaPolicy.role_id == role.id))
        assert policy.required is True
        response = admin.post("/rolemfapolicyview/add", data={"role": str(role.id), "required": "y"})
        assert "该角色已有 MFA 策略" in response.get_data(as_text=True)
        db.session.rollback()
        assert db.session.scalar(select(func.count()).where(RoleMfaPolicy.role_id == role.id)) == 1
        response = admin.post(f"/rolemfapolicyview/edit/{policy.id}", data={"role": str(role.id)})
        assert response.status_code == 302
        db.session.rollback()
        assert db.session.get(RoleMfaPolicy, policy.id).required is False
        # other roles may not change it
        assert login_as("manager1").get("/rolemfapolicyview/list/").status_code in (302, 403)
    finally:
        db.session.rollback()
        db.session.execute(delete(RoleMfaPolicy).where(RoleMfaPolicy.role_id == role.id))
        db.session.commit()
