"""Personal API tokens: created and shown once, stored hashed, scoped, revoked, last use kept."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import delete, func, select

from app.extensions import db
from models.base import utcnow
from models.customers import Tag
from models.security import ApiToken, RoleMfaPolicy
from tests.conftest import token_for, unique_name
from tests.login_support import (
    audit_actions,
    cleanup_users,  # noqa: F401  (autouse)
    new_user,
    other_app,
)


def create(client, name: str = "ERP 同步", scope: str = "read", expires_days: str = "") -> str:
    form = {"name": name, "scope": scope, "expires_days": expires_days}
    response = client.post("/api-tokens/create", data=form)
    assert response.status_code == 201, response.get_data(as_text=True)[-800:]
    page = response.get_data(as_text=True)
    match = re.search(r'<pre class="crm-new-token">(kg_[A-Za-z0-9_-]+)</pre>', page)
    assert match
    return match.group(1)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_token_is_shown_once_and_stored_hashed(app, login_as) -> None:
    user = new_user(app, "Sales Manager")
    client = login_as(user.username)
    raw = create(client)
    db.session.rollback()
    row = db.session.scalar(select(ApiToken).where(ApiToken.user_id == user.id))
    assert row.name == "ERP 同步" and row.scope == "read" and row.expires_at is None
    assert raw not in (row.token_hash, row.prefix) and len(row.token_hash) == 64
    assert raw.startswith(row.prefix) and len(raw) > 40
    page = client.get("/api-tokens/").get_data(as_text=True)
    assert row.prefix in page and raw not in page
    assert "token_created" in audit_actions(username=user.username)


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"name": "", "scope": "read"}, "请填写令牌名称"),
        ({"name": "x" * 101, "scope": "read"}, "最多 100 个字符"),
        ({"name": "ERP", "scope": "admin"}, "权限范围须为只读"),
        ({"name": "ERP", "scope": "read", "expires_days": "0"}, "有效期须为"),
        ({"name": "ERP", "scope": "read", "expires_days": "soon"}, "有效期须为"),
    ],
)
def test_bad_token_input_is_refused(app, login_as, form, message) -> None:
    user = new_user(app)
    client = login_as(user.username)
    response = client.post("/api-tokens/create", data=form)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).where(ApiToken.user_id == user.id)) == 0


def test_token_authenticates_with_the_users_rights_and_scope(app, login_as) -> None:
    user = new_user(app, "Sales Manager")
    client = login_as(user.username)
    read, write = create(client, "只读", "read"), create(client, "读写", "read-write")
    api = app.test_client()
    jwt = token_for(api, user.username)
    by_token = api.get("/api/v1/customer/", headers=bearer(read))
    assert by_token.status_code == 200
    assert by_token.json["ids"] == api.get("/api/v1/customer/", headers=jwt).json["ids"]  # the user's scope
    name = unique_name("令牌标签")
    response = api.post("/api/v1/tag/", json={"name": name}, headers=bearer(read))
    assert response.status_code == 403 and "只读" in response.json["message"]
    assert db.session.scalar(select(func.count()).where(Tag.name == name)) == 0
    response = api.post("/api/v1/tag/", json={"name": name}, headers=bearer(write))
    assert response.status_code == 201, response.json
    # the user's permissions still apply: a Sales Manager may not manage users, an admin may
    assert api.get("/api/v1/security/users/", headers=bearer(write)).status_code == 403
    admin_token = create(login_as("admin"), "管理", "read")
    assert api.get("/api/v1/security/users/", headers=bearer(admin_token)).status_code == 200
    # no cookie comes with a token: nothing is remembered between requests
    assert api.get("/customerview/list/").status_code == 302


def test_revoked_expired_and_unknown_tokens_get_401(app, login_as) -> None:
    user = new_user(app)
    client = login_as(user.username)
    token = create(client)
    api = app.test_client()
    assert api.get("/api/v1/customer/", headers=bearer(token)).status_code == 200
    row = db.session.scalar(select(ApiToken).where(ApiToken.user_id == user.id))
    response = client.post(f"/api-tokens/{row.id}/revoke")
    assert response.status_code == 302
    response = api.get("/api/v1/customer/", headers=bearer(token))
    assert response.status_code == 401 and "已吊销" in response.json["message"]
    assert client.post(f"/api-tokens/{row.id}/revoke").status_code == 400  # already revoked
    assert "token_revoked" in audit_actions(username=user.username)
    # another user's token is not theirs to revoke
    other = login_as("rep_c")
    theirs = create(client, "第二个")
    second = db.session.scalar(
        select(ApiToken).where(ApiToken.token_hash != row.token_hash, ApiToken.user_id == user.id)
    )
    assert other.post(f"/api-tokens/{second.id}/revoke").status_code == 404
    assert api.get("/api/v1/customer/", headers=bearer(theirs)).status_code == 200
    second.expires_at = utcnow() - dt.timedelta(minutes=1)
    db.session.commit()
    assert api.get("/api/v1/customer/", headers=bearer(theirs)).status_code == 401
    assert api.get("/api/v1/customer/", headers=bearer("kg_not-a-real-token")).status_code == 401


def test_token_with_an_expiry_and_last_use(app, login_as) -> None:
    user = new_user(app)
    client = login_as(user.username)
    token = create(client, "网站", "read", "30")
    db.session.rollback()
    row = db.session.scalar(select(ApiToken).where(ApiToken.user_id == user.id))
    assert dt.timedelta(days=29) < row.expires_at - utcnow() <= dt.timedelta(days=30)
    assert row.last_used_at is None
    api = app.test_client()
    api.get("/api/v1/customer/", headers=bearer(token))
    db.session.rollback()
    row = db.session.get(ApiToken, row.id)
    assert row.last_used_at is not None and row.last_used_ip == "127.0.0.1"
    recent = utcnow() - dt.timedelta(seconds=30)
    row.last_used_at = recent
    db.session.commit()
    api.get("/api/v1/customer/", headers=bearer(token))
    db.session.rollback()
    # at most one write a minute (MariaDB keeps whole seconds: compare loosely)
    assert db.session.get(ApiToken, row.id).last_used_at < recent + dt.timedelta(seconds=5)
    row = db.session.get(ApiToken, row.id)
    row.last_used_at = utcnow() - dt.timedelta(minutes=2)
    db.session.commit()
    api.get("/api/v1/customer/", headers=bearer(token))
    db.session.rollback()
    assert db.session.get(ApiToken, row.id).last_used_at > recent


def test_token_requests_need_no_csrf_token(app, database_url, login_as) -> None:
    user = new_user(app, "Sales Manager")
    token = create(login_as(user.username), "CSRF", "read-write")
    csrf_app = other_app(database_url, WTF_CSRF_ENABLED=True)
    name = unique_name("令牌CSRF")
    with csrf_app.app_context():
        response = csrf_app.test_client().post("/api/v1/tag/", json={"name": name}, headers=bearer(token))
        assert response.status_code == 201, response.json


def test_token_of_a_user_who_must_enrol_is_refused(app, login_as) -> None:
    user = new_user(app)
    token = create(login_as(user.username))
    role = app.appbuilder.sm.find_role("Sales Rep")
    db.session.add(RoleMfaPolicy(role_id=role.id, required=True))
    db.session.commit()
    try:
        response = app.test_client().get("/api/v1/customer/", headers=bearer(token))
        assert response.status_code == 403 and "双因素认证" in response.json["message"]
    finally:
        db.session.execute(delete(RoleMfaPolicy).where(RoleMfaPolicy.role_id == role.id))
        db.session.commit()
