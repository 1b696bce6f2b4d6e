"""The KeGuan application factory."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, has_request_context, redirect, request, url_for
from flask_appbuilder import AppBuilder
from werkzeug.middleware.proxy_fix import ProxyFix

import config

# customers, customfields and sales register their services when imported
from app import audit, cli, crypto, customers, customfields, login, ratelimit, sales  # noqa: F401
from app.extensions import csrf, db, migrate
from views import register_all
from views.formatters import cny

log = logging.getLogger(__name__)
# FAB's own security APIs declare search columns its filters cannot handle and warn about it on
# every start-up; nothing of ours is concerned.
logging.getLogger("flask_appbuilder.models.filters").setLevel(logging.ERROR)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build a KeGuan app. `test_config` overrides settings (tests, benchmarks)."""
    app = Flask(__name__, instance_path=str(config.INSTANCE_DIR))
    app.config.from_object(config)
    if test_config:
        app.config.update(test_config)
        if "SQLALCHEMY_ENGINE_OPTIONS" not in test_config:
            app.config["SQLALCHEMY_ENGINE_OPTIONS"] = config.engine_options(
                app.config["SQLALCHEMY_DATABASE_URI"]
            )

    crypto.init_app(app)  # encryption keys loaded, or a clear refusal to start
    db.init_app(app)
    customfields.configure_files(app.config["CRM_UPLOAD_DIR"])
    migrate.init_app(app, db, directory=str(config.BASE_DIR / "migrations"))
    csrf.init_app(app)

    # One AppBuilder per app: FAB keeps its registered views on the instance, so a shared
    # module-level AppBuilder would leave a second app (tests, two workers) without views.
    appbuilder = AppBuilder(update_perms=app.config["FAB_UPDATE_PERMS"])
    with app.app_context():
        appbuilder.init_app(app, db.session)
        register_all(appbuilder)
    # API tokens, CSRF on cookie-authenticated API writes, MFA enrolment first, rate limits
    login.init_app(app)
    ratelimit.init_app(app)

    app.add_template_filter(cny, "crm_cny")
    cli.init_app(app)
    audit.init_app(app)  # its before_flush hook runs after the services' own
    app.after_request(_security_headers)
    if app.config.get("CRM_PROXIES"):
        hops = app.config["CRM_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    app.add_url_rule("/favicon.ico", "favicon", lambda: redirect(url_for("static", filename="crm/logo.svg")))
    return app


def _security_headers(response: Response) -> Response:
    """Headers every response carries; HSTS only when the site is served over HTTPS (browsers
    ignore it over plain HTTP, and sending it from a test server on http would be a lie)."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    policy = current_app.config.get("CRM_CONTENT_SECURITY_POLICY")
    if policy:
        response.headers.setdefault("Content-Security-Policy", policy)
    if current_app.config.get("CRM_HTTPS") or (has_request_context() and request.is_secure):
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response
