"""Login security: password step, MFA code step, lock-out, sessions, CSRF on cookie API calls,
and 'enrol MFA before anything else' for roles that require it.

Both the login form and POST /api/v1/security/login go through `check_password` and
`check_code`, so lock-out, MFA and the audit trail are the same for both.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, g, jsonify, redirect, request, session, url_for
from flask_babel import gettext
from flask_wtf.csrf import CSRFError
from werkzeug.security import check_password_hash
from werkzeug.wrappers import Response

from app import mfa
from app.audit import record_account_action, record_event
from app.extensions import csrf, db
from app.ratelimit import API_PREFIX, counter_storage
from models.base import utcnow
from models.security import CrmUser

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
#: session keys: the user waiting for the code step, and "this session passed a code"
PENDING = "crm_mfa_pending"
VERIFIED = "crm_mfa_ok"
#: seconds the code step may follow the password step
PENDING_SECONDS = 300
#: endpoints a user who must enrol MFA may still reach
ENROL_ENDPOINTS = frozenset(
    {
        "MfaView.index",
        "MfaView.confirm",
        "CrmAuthDBView.login",
        "CrmAuthDBView.code",
        "CrmAuthDBView.logout",
        "LocaleView.index",
        "static",
        "appbuilder.static",
    }
)


def invalid_message() -> str:
    return gettext("用户名或密码错误")


def locked_message() -> str:
    return gettext(
        "登录失败次数过多，账户已暂时锁定，请 %(minutes)s 分钟后再试或联系管理员解锁",
        minutes=current_app.config["CRM_LOGIN_LOCK_MINUTES"],
    )


@dataclass
class LoginCheck:
    """The outcome of a step: the user when it passed, else the message to show."""

    user: CrmUser | None = None
    message: str | None = None
    needs_code: bool = False
    locked: bool = False


# --- lock-out ------------------------------------------------------------------------------
def is_locked(user: CrmUser) -> bool:
    return user.locked_until is not None and user.locked_until > utcnow()


def _unknown_user_failures(username: str, add: bool) -> int:
    """Failures for a name that is no user, counted like a real account's, so the lock-out
    message does not tell whether an account exists."""
    storage = counter_storage()
    key = f"{current_app.config.get('RATELIMIT_KEY_PREFIX', '')}crm-lockout/{username.strip().lower()}"
    if add:
        return storage.incr(key, current_app.config["CRM_LOGIN_LOCK_MINUTES"] * 60)
    return storage.get(key)


def on_failure(user: CrmUser) -> None:
    """FAB's on_user_login_failed hook (after it counted the failure): lock at the limit."""
    now = utcnow()
    if user.locked_until is not None and user.locked_until <= now:
        user.locked_until = None  # an expired lock: this failure starts a new count
        user.fail_login_count = 1
    record_event("login_failed", entity="ab_user", entity_id=user.id, user_id=user.id, username=user.username)
    if (user.fail_login_count or 0) >= current_app.config["CRM_LOGIN_MAX_FAILURES"] and not is_locked(user):
        user.locked_until = now + dt.timedelta(minutes=current_app.config["CRM_LOGIN_LOCK_MINUTES"])
        record_event(
            "account_locked",
            entity="ab_user",
            entity_id=user.id,
            details={"until": user.locked_until.isoformat(), "failures": user.fail_login_count},
            user_id=user.id,
            username=user.username,
        )
    db.session.commit()


def on_success(user: CrmUser) -> None:
    """FAB's on_user_login hook: the counter is reset (by FAB), the lock cleared, audited."""
    user.locked_until = None
    record_event("login", entity="ab_user", entity_id=user.id, user_id=user.id, username=user.username)
    db.session.commit()


def unlock(user: CrmUser, actor: Any) -> None:
    """An admin unlocks an account before its lock runs out."""
    user.locked_until = None
    user.fail_login_count = 0
    record_account_action("account_unlocked", user, actor)


# --- the steps -----------------------------------------------------------------------------
def check_password(username: str | None, password: str | None) -> LoginCheck:
    """The password step. A success does not log in yet: see `finish_login`."""
    sm = current_app.appbuilder.sm
    username = (username or "").strip()
    user = sm.find_user(username=username) if username else None
    if user is None and username:
        user = sm.find_user(email=username)
    if user is None or not user.is_active:
        # balance the time of a real check, count the name, say the same as for an account
        check_password_hash(current_app.config["AUTH_DB_FAKE_PASSWORD_HASH_CHECK"], "password")
        record_event("login_failed", details={"username": username[:100]}, username=username[:100] or None)
        db.session.commit()
        limit = current_app.config["CRM_LOGIN_MAX_FAILURES"]
        if username and _unknown_user_failures(username, add=True) >= limit:
            return LoginCheck(message=locked_message(), locked=True)
        return LoginCheck(message=invalid_message())
    if is_locked(user):
        check_password_hash(current_app.config["AUTH_DB_FAKE_PASSWORD_HASH_CHECK"], "password")
        record_event(
            "login_failed", entity="ab_user", entity_id=user.id, details={"locked": True},
            user_id=user.id, username=user.username,
        )
        db.session.commit()
        return LoginCheck(message=locked_message(), locked=True)
    if not password or not check_password_hash(user.password or "", password):
        sm.update_user_auth_stat(user, False)  # counts, then on_user_login_failed -> on_failure
        if is_locked(user):
            return LoginCheck(message=locked_message(), locked=True)
        return LoginCheck(message=invalid_message())
    return LoginCheck(user=user, needs_code=mfa.has_mfa(db.session, user.id))


def check_code(user: CrmUser, code: str | None) -> LoginCheck:
    """The code step: a wrong code counts as a failed login (guessing codes locks the account)."""
    if is_locked(user):
        return LoginCheck(message=locked_message(), locked=True)
    if mfa.verify_code(db.session, user, code):
        return LoginCheck(user=user)
    current_app.appbuilder.sm.update_user_auth_stat(user, False)
    if is_locked(user):
        return LoginCheck(message=locked_message(), locked=True)
    return LoginCheck(message=gettext("验证码或恢复码不正确"))


def finish_login(user: CrmUser) -> None:
    """Count the login (FAB's stats: resets the failure counter) and audit it."""
    current_app.appbuilder.sm.update_user_auth_stat(user, True)


def mfa_blocks_api(user: CrmUser) -> bool:
    """A role requires MFA and the user has none: no API token until enrolled."""
    return mfa.mfa_required(db.session, user) and not mfa.has_mfa(db.session, user.id)


def enrol_first_message() -> str:
    return gettext("您的角色要求启用双因素认证 (MFA)：请先登录网页，在“个人中心 > 双因素认证”完成绑定")


# --- per request ---------------------------------------------------------------------------
def _request_user() -> CrmUser | None:
    """The user of this request before FAB's own checks: API token, session, or JWT."""
    if getattr(g, "_api_key_user", False):
        return g.user
    user_id = session.get("_user_id")
    if user_id is None and request.path.startswith(API_PREFIX):
        auth = request.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            try:
                from flask_jwt_extended import decode_token

                user_id = decode_token(auth[7:].strip())["sub"]
            except Exception:  # noqa: BLE001  (FAB's protect answers bad tokens)
                return None
    if user_id is None:
        return None
    user = db.session.get(CrmUser, int(user_id))
    return user if user is not None and user.is_active else None


def require_mfa_enrolment() -> Response | None:
    """A user whose role requires MFA and who has none is led to enrol before anything else;
    the API answers 403 with a message."""
    endpoint = request.endpoint
    if endpoint is None or endpoint in ENROL_ENDPOINTS or endpoint.endswith(".static"):
        return None
    if session.get(VERIFIED) and not getattr(g, "_api_key_user", False):
        return None  # this session's login passed a code: the user has MFA
    user = _request_user()
    if user is None or not mfa_blocks_api(user):
        return None
    if request.path.startswith(API_PREFIX):
        response = jsonify(message=enrol_first_message())
        response.status_code = 403
        return response
    return redirect(url_for("MfaView.index"))


def protect_cookie_api_writes() -> None:
    """The REST API is CSRF-exempt for tokens, but a write authenticated by the session cookie
    must carry the CSRF token (X-CSRFToken header), or another site could make it."""
    if (
        request.method in SAFE_METHODS
        or not request.path.startswith(API_PREFIX)
        or not current_app.config.get("WTF_CSRF_ENABLED", True)
        or getattr(g, "_api_key_user", False)
        or request.headers.get("Authorization")
        or not session.get("_user_id")
    ):
        return
    csrf.protect()  # raises CSRFError (400)


def csrf_error(error: CSRFError) -> Response | tuple[Any, int]:
    if request.path.startswith(API_PREFIX):
        message = gettext("缺少或无效的 CSRF 令牌：浏览器会话调用 API 修改数据时须带 X-CSRFToken 请求头")
        response = jsonify(message={"csrf_token": [message]})  # field-keyed, as every 400 of the API
        response.status_code = 400
        return response
    return error.get_response()


def keep_session_permanent() -> None:
    """Logged-in sessions expire after PERMANENT_SESSION_LIFETIME without a request."""
    if session.get("_user_id") and not session.permanent:
        session.permanent = True


def init_app(app: Flask) -> None:
    """Register the hooks: API tokens first (they identify the user), then CSRF, then MFA."""
    from app import tokens

    app.config.setdefault("REMEMBER_COOKIE_SECURE", app.config.get("SESSION_COOKIE_SECURE", False))
    app.before_request(tokens.authenticate_request)
    app.before_request(protect_cookie_api_writes)
    app.before_request(require_mfa_enrolment)
    app.before_request(keep_session_permanent)
    app.register_error_handler(CSRFError, csrf_error)
