"""Rate limits (flask-limiter): the login form, the API login, the whole REST API, public forms.

One Limiter per app (FAB's security manager creates it through `create_limiter`, so FAB's own
AUTH_RATE_LIMIT on the login form uses it too). Storage is RATELIMIT_STORAGE_URI: memory by
default, Redis when REDIS_URL is set, so limits hold across gunicorn workers.
RATELIMIT_ENABLED=False turns every limit off (tests, the benchmark harness).

A client over a limit gets 429 with Retry-After and a readable page or JSON message.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, current_app, jsonify, render_template, request, session
from flask_appbuilder.api import BaseApi
from flask_babel import gettext
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import parse
from limits.storage import MemoryStorage, Storage
from werkzeug.exceptions import TooManyRequests

F = TypeVar("F", bound=Callable[..., Any])
API_PREFIX = "/api/"
#: scope of the limit every REST endpoint shares (per user, token or IP)
API_SCOPE = "api"


class TooManyAttempts(TooManyRequests):
    """429 raised by our own checks (public forms); carries the seconds until the next try."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after=retry_after)
        self.seconds = retry_after


def client_ip() -> str:
    """The client's address (behind a proxy, ProxyFix must set it: see the README)."""
    return get_remote_address() or "unknown"


def token_fingerprint(raw: str) -> str:
    """A short, non-reversible id of a bearer token, to key its rate limit without the database."""
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def api_client_key() -> str:
    """Who an API request counts against: the API token, the JWT's user, the session's user, or
    the IP address when the request carries no identity."""
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        raw = auth[7:].strip()
        if raw.startswith("kg_"):
            return "token:" + token_fingerprint(raw)
        try:
            from flask_jwt_extended import decode_token

            return "user:" + str(decode_token(raw)["sub"])
        except Exception:  # noqa: BLE001  (an invalid JWT counts against its IP)
            return "ip:" + client_ip()
    user_id = session.get("_user_id")
    if user_id:
        return f"user:{user_id}"
    return "ip:" + client_ip()


def create_limiter(app: Flask) -> Limiter:
    """The app's Limiter: keyed by IP unless a limit says otherwise; Retry-After on every 429."""
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    limiter = Limiter(key_func=app.config.get("RATELIMIT_KEY_FUNC", get_remote_address))
    limiter.init_app(app)
    return limiter


def apply_api_limits(app: Flask) -> None:
    """One shared limit over the whole REST API, and a stricter one on the API login/refresh.

    Called once the views are registered (every BaseApi has its blueprint by then).
    """
    appbuilder = app.appbuilder
    limiter: Limiter = appbuilder.sm.limiter
    api_limit = limiter.shared_limit(
        lambda: current_app.config["CRM_API_RATE_LIMIT"], scope=API_SCOPE, key_func=api_client_key
    )
    for view in appbuilder.baseviews:
        if isinstance(view, BaseApi) and view.blueprint is not None:
            api_limit(view.blueprint)
    security_api = next(
        (v for v in appbuilder.baseviews if isinstance(v, BaseApi) and v.resource_name == "security"), None
    )
    if security_api is not None:
        limiter.limit(lambda: current_app.config["CRM_API_LOGIN_RATE_LIMIT"], methods=["POST"])(
            security_api.blueprint
        )


def hit(scope: str, limit: str, key: str) -> None:
    """Count one attempt against `limit` ("5 per minute") for key within scope; 429 when over."""
    limiter: Limiter = current_app.appbuilder.sm.limiter
    if not (limiter.enabled and limiter.initialized):
        return
    item = parse(limit)
    args = [a for a in (current_app.config.get("RATELIMIT_KEY_PREFIX", ""), key, scope) if a]
    strategy = limiter.limiter
    if not strategy.hit(item, *args):
        reset_at = strategy.get_window_stats(item, *args).reset_time
        raise TooManyAttempts(max(1, int(reset_at - time.time()) + 1))


def public_form_limit(view: F) -> F:
    """Limit a public (anonymous) form's submissions per IP: CRM_PUBLIC_FORM_RATE_LIMIT.

    Decorate the view method (GET is free, POST counts), e.g. the support ticket form::

        @expose("/support/new", methods=["GET", "POST"])
        @public_form_limit
        def new(self): ...
    """

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            hit(
                "public-form:" + (request.endpoint or ""),
                current_app.config["CRM_PUBLIC_FORM_RATE_LIMIT"],
                client_ip(),
            )
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def counter_storage() -> Storage:
    """Storage for counters that must work even with rate limits off (unknown-user lock-out)."""
    limiter: Limiter = current_app.appbuilder.sm.limiter
    if limiter.enabled and limiter.initialized:
        return limiter.storage
    return current_app.extensions.setdefault("crm_counters", MemoryStorage())


def retry_after_seconds(error: TooManyRequests) -> int | None:
    if isinstance(error, TooManyAttempts):
        return error.seconds
    limiter: Limiter = current_app.appbuilder.sm.limiter
    current = limiter.current_limit if limiter.initialized else None
    if current is None:
        return None
    return max(1, int(current.reset_at - time.time()) + 1)


def too_many_requests(error: TooManyRequests) -> Response:
    """429 as JSON for the API (and JSON clients), as a page for the browser, with Retry-After."""
    seconds = retry_after_seconds(error) or 60
    message = gettext("请求过于频繁，请 %(seconds)s 秒后再试。", seconds=seconds)
    if request.path.startswith(API_PREFIX) or request.accept_mimetypes.best == "application/json":
        response = jsonify(message=message)
    else:
        response = Response(render_template("crm/login_429.html", message=message), mimetype="text/html")
    response.status_code = 429
    response.headers["Retry-After"] = str(seconds)
    return response


def init_app(app: Flask) -> None:
    app.register_error_handler(429, too_many_requests)
    apply_api_limits(app)
