"""Personal API tokens (个人 API 令牌) for integrations: created, named, scoped and revoked by
their user, shown once, stored as SHA-256, last use recorded.

`Authorization: Bearer kg_<token>` on /api/v1/... authenticates that one request as the token's
user (FAB's permissions and our data scope then apply as for a login). A read token refuses
unsafe methods (403); a revoked or expired token is refused (401). Requests authenticated by a
token carry no cookie, so they are CSRF-exempt.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from flask import current_app, g, jsonify, request
from flask_babel import gettext
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from app.audit import record_event
from app.errors import DomainError, NotFound
from app.ratelimit import API_PREFIX, client_ip
from app.validators import clean_text
from models.base import utcnow
from models.security import TOKEN_SCOPES, ApiToken, CrmUser

PREFIX = "kg_"
#: characters of the token kept in clear to tell tokens apart ("kg_" and 8 more)
DISPLAY_CHARS = 11
#: last use is written at most this often per token (not one write per request)
LAST_USE_SECONDS = 60
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_DAYS = 3650


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_token(
    session: Session,
    user: CrmUser,
    name: str | None,
    scope: str | None,
    expires_days: int | str | None = None,
) -> tuple[ApiToken, str]:
    """A new token for the user; returns the row and the token in clear (shown once only)."""
    errors: dict[str, list[str]] = {}
    try:
        clean_name = clean_text(name, 100)
    except ValueError as exc:
        clean_name, errors["name"] = None, [str(exc)]
    if not clean_name and "name" not in errors:
        errors["name"] = [gettext("请填写令牌名称，例如“ERP 同步”")]
    if scope not in TOKEN_SCOPES:
        errors["scope"] = [gettext("权限范围须为只读 (read) 或读写 (read-write)")]
    expires_at = None
    if expires_days not in (None, ""):
        try:
            days = int(expires_days)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            days = 0
        if not 1 <= days <= MAX_DAYS:
            errors["expires_days"] = [gettext("有效期须为 1 到 %(max)s 天，或留空表示不过期", max=MAX_DAYS)]
        else:
            expires_at = utcnow() + dt.timedelta(days=days)
    if errors:
        raise DomainError(errors)
    raw = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id,
        name=clean_name,
        scope=scope,
        token_hash=token_hash(raw),
        prefix=raw[:DISPLAY_CHARS],
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    record_event(
        "token_created",
        entity="crm_api_token",
        entity_id=token.id,
        details={"name": clean_name, "scope": scope, "prefix": token.prefix},
    )
    return token, raw


def user_tokens(session: Session, user_id: int) -> list[ApiToken]:
    query = select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id.desc())
    return list(session.scalars(query).all())


def revoke_token(session: Session, user: CrmUser, token_id: int) -> ApiToken:
    """Revoke one of the user's own tokens (another user's token is not found)."""
    token = session.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user.id))
    if token is None:
        raise NotFound({"token": [gettext("没有这个 API 令牌")]})
    if token.revoked_at is not None:
        raise DomainError({"token": [gettext("该令牌已经吊销")]})
    token.revoked_at = utcnow()
    record_event("token_revoked", entity="crm_api_token", entity_id=token.id, details={"name": token.name})
    return token


def _refuse(status: int, message: str) -> Response:
    response = jsonify(message=message)
    response.status_code = status
    return response


def authenticate_request() -> Response | None:
    """before_request: a `Bearer kg_...` header on the API logs its user in for this request."""
    if not request.path.startswith(API_PREFIX):
        return None
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() != "bearer ":
        return None
    raw = auth[7:].strip()
    if not raw.startswith(PREFIX):
        return None  # a JWT: FAB's protect() checks it
    from app.extensions import db

    now = utcnow()
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(raw)))
    user = db.session.get(CrmUser, token.user_id) if token is not None else None
    if (
        token is None
        or user is None
        or not user.is_active
        or token.revoked_at is not None
        or (token.expires_at is not None and token.expires_at <= now)
    ):
        return _refuse(401, gettext("API 令牌无效、已吊销或已过期"))
    if token.scope != "read-write" and request.method not in SAFE_METHODS:
        return _refuse(403, gettext("该 API 令牌为只读，不能新增、修改或删除数据"))
    g.user = user
    g._login_user = user  # flask-login's current_user, for this request only (no session)
    g._api_key_user = True  # FAB's has_access / current_user read the user from g
    g.crm_api_token_id = token.id
    if token.last_used_at is None or token.last_used_at < now - dt.timedelta(seconds=LAST_USE_SECONDS):
        _record_use(token.id, now)
    return None


def _record_use(token_id: int, now: dt.datetime) -> None:
    """Last use (time, IP), at most once a minute per token; a conditional UPDATE so concurrent
    requests write once."""
    from app.extensions import db

    cutoff = now - dt.timedelta(seconds=LAST_USE_SECONDS)
    db.session.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id, or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < cutoff))
        .values(last_used_at=now, last_used_ip=client_ip()[:45])
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    current_app.logger.debug("API token %s used", token_id)
