"""MFA by TOTP (authenticator apps), one-time recovery codes, and the per-role 'MFA required' rule.

The secret is created at enrolment and only becomes active once the user confirms a code;
recovery codes are shown once and stored as SHA-256 hashes (they are long random strings, so a
fast hash is enough). A TOTP code is accepted at most once (its time step is remembered).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import secrets
from typing import Any

import pyotp
import segno
from flask import current_app
from flask_babel import gettext
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash

from app.audit import record_account_action, record_event
from app.errors import DomainError
from models.base import utcnow
from models.security import CrmUser, MfaRecoveryCode, RoleMfaPolicy, UserMfa

RECOVERY_CODES = 10
#: a TOTP code from the previous or next 30-second step is accepted too (clock drift)
VALID_WINDOW = 1


def _hash(code: str) -> str:
    return hashlib.sha256(normalise_code(code).encode()).hexdigest()


def normalise_code(code: str | None) -> str:
    """Codes as typed: spaces and dashes ignored, recovery codes case-insensitive."""
    return "".join(ch for ch in (code or "") if ch.isalnum()).lower()


# --- state ---------------------------------------------------------------------------------
def user_mfa(session: Session, user_id: int) -> UserMfa | None:
    return session.scalar(select(UserMfa).where(UserMfa.user_id == user_id))


def has_mfa(session: Session, user_id: int) -> bool:
    """Whether the user has confirmed a TOTP secret (logins then need a code)."""
    query = select(UserMfa.id).where(UserMfa.user_id == user_id, UserMfa.confirmed_at.is_not(None))
    return session.scalar(query) is not None


def mfa_required(session: Session, user: CrmUser) -> bool:
    """Whether one of the user's roles requires MFA (设置 > MFA 策略)."""
    role_ids = [role.id for role in user.roles]
    if not role_ids:
        return False
    query = select(RoleMfaPolicy.id).where(
        RoleMfaPolicy.role_id.in_(role_ids), RoleMfaPolicy.required.is_(True)
    )
    return session.scalar(query.limit(1)) is not None


def remaining_recovery_codes(session: Session, user_id: int) -> int:
    unused = MfaRecoveryCode.used_at.is_(None)
    rows = session.scalars(select(MfaRecoveryCode.id).where(MfaRecoveryCode.user_id == user_id, unused)).all()
    return len(rows)


# --- enrolment -----------------------------------------------------------------------------
def start_enrolment(session: Session, user: CrmUser) -> UserMfa:
    """A new secret waiting for confirmation (an unconfirmed one is reused, so reloading the
    page keeps the QR code the user may already have scanned). Refused when MFA is active."""
    mfa = user_mfa(session, user.id)
    if mfa is not None and mfa.confirmed_at is not None:
        raise DomainError({"code": [gettext("已启用双因素认证；如需更换，请先停用")]})
    if mfa is None:
        mfa = UserMfa(user_id=user.id, secret=pyotp.random_base32())
        session.add(mfa)
        session.flush()
    return mfa


def provisioning_uri(user: CrmUser, secret: str) -> str:
    issuer = current_app.config.get("CRM_MFA_ISSUER") or current_app.config.get("APP_NAME", "KeGuan")
    return pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The QR code as inline SVG (no image library, no outside service)."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", scale=5, border=2, xmldecl=False, svgns=True)
    return out.getvalue().decode()


def _totp_step(secret: str, code: str, last_step: int | None) -> int | None:
    """The time step the code belongs to, if valid and newer than the last accepted one."""
    code = normalise_code(code)
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(dt.datetime.now(dt.UTC))
    for offset in range(-VALID_WINDOW, VALID_WINDOW + 1):
        step = current + offset
        if hmac.compare_digest(totp.generate_otp(step), code) and (last_step is None or step > last_step):
            return step
    return None


def confirm_enrolment(session: Session, user: CrmUser, code: str) -> list[str]:
    """Activate MFA with the first code; returns the recovery codes (shown once)."""
    mfa = user_mfa(session, user.id)
    if mfa is None or mfa.confirmed_at is not None:
        raise DomainError({"code": [gettext("没有待确认的双因素认证，请重新开始绑定")]})
    step = _totp_step(mfa.secret, code, None)
    if step is None:
        raise DomainError({"code": [gettext("验证码不正确，请输入认证器应用中当前显示的 6 位数字")]})
    mfa.confirmed_at = utcnow()
    mfa.last_step = step
    codes = new_recovery_codes(session, user.id)
    record_event("mfa_enrolled", entity="ab_user", entity_id=user.id)
    return codes


def new_recovery_codes(session: Session, user_id: int) -> list[str]:
    """Replace the user's recovery codes with 10 new ones (xxxxx-xxxxx), returned in clear once."""
    session.execute(delete(MfaRecoveryCode).where(MfaRecoveryCode.user_id == user_id))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = secrets.token_hex(5)
        codes.append(f"{raw[:5]}-{raw[5:]}")
        session.add(MfaRecoveryCode(user_id=user_id, code_hash=_hash(raw)))
    session.flush()
    return codes


def remove_mfa(session: Session, user_id: int) -> bool:
    """Delete the secret and the recovery codes; True when there was something to remove."""
    removed = session.execute(delete(UserMfa).where(UserMfa.user_id == user_id)).rowcount
    session.execute(delete(MfaRecoveryCode).where(MfaRecoveryCode.user_id == user_id))
    return bool(removed)


def disable(session: Session, user: CrmUser, password: str, code: str) -> None:
    """The user turns MFA off: both the password and a current code (or a recovery code)."""
    errors: dict[str, list[str]] = {}
    if not password or not check_password_hash(user.password or "", password):
        errors["password"] = [gettext("密码不正确")]
    if not has_mfa(session, user.id):
        errors["code"] = [gettext("尚未启用双因素认证")]
    elif mfa_required(session, user):
        errors["code"] = [gettext("您的角色要求双因素认证，不能停用；如更换手机请联系管理员重置")]
    if errors:
        raise DomainError(errors)
    if not verify_code(session, user, code):
        raise DomainError({"code": [gettext("验证码或恢复码不正确")]})
    remove_mfa(session, user.id)
    record_event("mfa_disabled", entity="ab_user", entity_id=user.id)


def admin_reset(session: Session, user: CrmUser, actor: Any) -> bool:
    """An admin removes a user's MFA (lost phone); the user enrols again at the next login."""
    removed = remove_mfa(session, user.id)
    record_account_action("mfa_reset", user, actor)
    return removed


# --- login ---------------------------------------------------------------------------------
def verify_code(session: Session, user: CrmUser, code: str | None) -> bool:
    """A current TOTP code (each usable once) or an unused recovery code (then spent)."""
    mfa = user_mfa(session, user.id)
    if mfa is None or mfa.confirmed_at is None or not normalise_code(code):
        return False
    step = _totp_step(mfa.secret, code or "", mfa.last_step)
    if step is not None:
        # conditional update: two requests racing with the same code cannot both win
        won = session.execute(
            update(UserMfa)
            .where(UserMfa.id == mfa.id, (UserMfa.last_step.is_(None)) | (UserMfa.last_step < step))
            .values(last_step=step)
            .execution_options(synchronize_session=False)
        ).rowcount
        session.refresh(mfa)
        return bool(won)
    recovery = session.scalar(
        select(MfaRecoveryCode).where(
            MfaRecoveryCode.user_id == user.id,
            MfaRecoveryCode.code_hash == _hash(code or ""),
            MfaRecoveryCode.used_at.is_(None),
        )
    )
    if recovery is None:
        return False
    spent = session.execute(
        update(MfaRecoveryCode)
        .where(MfaRecoveryCode.id == recovery.id, MfaRecoveryCode.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if spent:
        record_event(
            "recovery_code_used",
            entity="ab_user",
            entity_id=user.id,
            details={"remaining": remaining_recovery_codes(session, user.id)},
            user_id=user.id,
            username=user.username,
        )
    return bool(spent)


# --- the per-role setting ------------------------------------------------------------------
def sync_default_policies(session: Session, role_names: list[str]) -> None:
    """Make MFA required for CRM_MFA_REQUIRED_ROLES, once: a role that already has a policy row
    keeps the admin's choice."""
    from flask_appbuilder.security.sqla.models import Role

    for name in role_names:
        role = session.scalar(select(Role).where(Role.name == name))
        if role is None:
            continue
        if session.scalar(select(RoleMfaPolicy.id).where(RoleMfaPolicy.role_id == role.id)) is None:
            session.add(RoleMfaPolicy(role_id=role.id, required=True))
    session.flush()
