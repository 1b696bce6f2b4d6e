"""Rate limits: the login form, the API login, the whole API (per token, user or IP) and public
forms answer 429 with Retry-After; with Redis two app instances share the counts."""

from __future__ import annotations

import os
import uuid

import pytest
from flask import Flask

from app.extensions import db
from app.ratelimit import public_form_limit
from app.tokens import create_token
from tests.conftest import user
from tests.login_support import api_login, other_app, post_login

LIMITS = {
    "RATELIMIT_ENABLED": True,
    "AUTH_RATE_LIMITED": True,
    "AUTH_RATE_LIMIT": "3 per minute",
    "CRM_API_LOGIN_RATE_LIMIT": "3 per minute",
    "CRM_API_RATE_LIMIT": "5 per minute",
    "CRM_PUBLIC_FORM_RATE_LIMIT": "2 per minute",
}
REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def limited_app(database_url: str, storage: str = "memory://", prefix: str | None = None) -> Flask:
    app = other_app(
        database_url,
        **LIMITS,
        RATELIMIT_STORAGE_URI=storage,
        RATELIMIT_KEY_PREFIX=prefix or f"keguan-test-{uuid.uuid4().hex}",
    )

    @public_form_limit
    def ticket() -> str:
        return "ok"

    app.add_url_rule("/test-public-form", "test_public_form", ticket, methods=["GET", "POST"])
    return app


def assert_429(response, json: bool) -> None:
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    if json:
        assert "请求过于频繁" in response.json["message"]
    else:
        assert "请求过于频繁" in response.get_data(as_text=True)


def token(username: str, scope: str = "read") -> dict[str, str]:
    _row, raw = create_token(db.session, user(username), "限流测试", scope)
    db.session.commit()
    return {"Authorization": f"Bearer {raw}"}


def test_login_form_and_api_login_are_limited(app, database_url) -> None:
    limited = limited_app(database_url)
    with limited.app_context():
        client = limited.test_client()
        for _ in range(3):
            assert post_login(client, "nobody-here", "Wrong-Passw0rd").status_code == 401
        assert_429(post_login(client, "nobody-here", "Wrong-Passw0rd"), json=False)
        assert client.get("/login/").status_code == 200  # showing the form is not limited
        for _ in range(3):
            assert api_login(client, "nobody-here", "Wrong-Passw0rd").status_code == 401
        assert_429(api_login(client, "nobody-here", "Wrong-Passw0rd"), json=True)


def test_code_step_is_limited_too(app, database_url) -> None:
    limited = limited_app(database_url)
    with limited.app_context():
        client = limited.test_client()
        with client.session_transaction() as sess:
            sess["crm_mfa_pending"] = {"uid": user("rep_a").id, "until": 2**40, "next": ""}
        responses = [client.post("/login/code", data={"code": "000000"}) for _ in range(4)]
        # wrong codes count towards rep_a's lock-out as well: give the account back
        assert_429(responses[-1], json=False)
    row = user("rep_a")
    row.fail_login_count, row.locked_until = 0, None
    db.session.commit()


def test_the_api_is_limited_per_token_and_per_ip(app, database_url) -> None:
    limited = limited_app(database_url)
    with limited.app_context():
        client = limited.test_client()
        first, second = token("rep_a"), token("rep_b")
        for _ in range(5):
            assert client.get("/api/v1/customer/", headers=first).status_code == 200
        assert_429(client.get("/api/v1/customer/", headers=first), json=True)
        assert client.get("/api/v1/customer/", headers=second).status_code == 200  # its own count
        for _ in range(5):
            assert client.get("/api/v1/tag/").status_code == 401  # anonymous: per IP
        assert_429(client.get("/api/v1/tag/"), json=True)
        # a browser session counts per user
        browser = limited.test_client()
        assert post_login(browser, "manager2").status_code == 302
        for _ in range(5):
            assert browser.get("/api/v1/tag/").status_code == 200
        assert_429(browser.get("/api/v1/tag/"), json=True)


def test_public_forms_are_limited_per_ip(app, database_url) -> None:
    limited = limited_app(database_url)
    with limited.app_context():
        client = limited.test_client()
        for _ in range(3):
            assert client.get("/test-public-form").status_code == 200  # viewing is free
        assert client.post("/test-public-form").status_code == 200
        assert client.post("/test-public-form").status_code == 200
        assert_429(client.post("/test-public-form"), json=False)


def test_limits_off_by_config(app, client) -> None:
    """The test and benchmark setting: RATELIMIT_ENABLED=False lets everything through."""
    for _ in range(15):
        assert client.post("/test-public-form").status_code == 404  # no such form: not a 429
        assert post_login(client, "nobody-here", "Wrong-Passw0rd").status_code == 401


@pytest.fixture()
def redis_url() -> str:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {REDIS}: {exc}")
    return REDIS


def test_two_instances_share_the_limit_through_redis(app, database_url, redis_url) -> None:
    import redis

    prefix = f"keguan-test-{uuid.uuid4().hex}"
    one = limited_app(database_url, storage=redis_url, prefix=prefix)
    two = limited_app(database_url, storage=redis_url, prefix=prefix)
    headers = token("rep_c")
    try:
        with one.app_context():
            for instance in (one, two, one, two, one):
                assert instance.test_client().get("/api/v1/customer/", headers=headers).status_code == 200
            assert_429(two.test_client().get("/api/v1/customer/", headers=headers), json=True)
            assert_429(one.test_client().get("/api/v1/customer/", headers=headers), json=True)
            # the login form too: three attempts spread over both, the fourth refused by either
            for instance in (one, two, two):
                assert post_login(instance.test_client(), "nobody-here", "Wrong-Passw0rd").status_code == 401
            assert_429(post_login(one.test_client(), "nobody-here", "Wrong-Passw0rd"), json=False)
    finally:
        server = redis.Redis.from_url(redis_url)
        keys = list(server.scan_iter(f"*{prefix}*"))
        if keys:
            server.delete(*keys)
