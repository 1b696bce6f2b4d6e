"""Users, the department tree and each role's data scope (数据权限)."""

from __future__ import annotations

import datetime as dt

from flask_appbuilder.security.sqla.models import Role, User
from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.crypto import EncryptedString
from models.base import Choices, Model, TimestampMixin, utcnow

#: The five data scopes of Chinese CRMs, narrowest first; a user with several roles gets the widest
DATA_SCOPES = Choices(
    ("self", "本人"),
    ("subordinates", "本人及下属"),
    ("department", "本部门"),
    ("department_tree", "本部门及下级部门"),
    ("all", "全部"),
)


class Department(TimestampMixin, Model):
    """部门: a tree; every user belongs to one, and one user leads it."""

    __tablename__ = "crm_department"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("crm_department.id", ondelete="RESTRICT"), index=True
    )
    leader_id: Mapped[int | None] = mapped_column(
        ForeignKey("ab_user.id", ondelete="SET NULL", use_alter=True, name="fk_department_leader"),
    )
    position: Mapped[int] = mapped_column(Integer, default=0, nullable=False)

    parent: Mapped[Department | None] = relationship(
        "Department", remote_side=[id], back_populates="children"
    )
    children: Mapped[list[Department]] = relationship("Department", back_populates="parent")
    leader: Mapped[CrmUser | None] = relationship("CrmUser", foreign_keys=[leader_id])

    __table_args__ = (UniqueConstraint("parent_id", "name", name="uq_department_parent_name"),)

    def __str__(self) -> str:
        return self.name


class CrmUser(User):
    """Flask-AppBuilder's user with the department (部门) and the direct superior (上级).

    Single-table extension of `ab_user`, as Flask-AppBuilder documents for custom user models.
    """

    __tablename__ = "ab_user"

    department_id: Mapped[int | None] = mapped_column(
        Integer,
        ForeignKey("crm_department.id", ondelete="SET NULL", name="fk_user_department", use_alter=True),
        index=True,
        nullable=True,
    )
    manager_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("ab_user.id", ondelete="SET NULL"), index=True, nullable=True
    )
    mobile: Mapped[str | None] = mapped_column(String(20), nullable=True)
    #: lock-out: set after CRM_LOGIN_MAX_FAILURES failed logins in a row, until this (UTC) time
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)

    department: Mapped[Department | None] = relationship(Department, foreign_keys=[department_id])
    manager: Mapped[CrmUser | None] = relationship(
        "CrmUser", foreign_keys=[manager_id], remote_side="CrmUser.id"
    )

    def __str__(self) -> str:
        # Chinese names read family name first, with no space
        full = (
            f"{self.last_name}{self.first_name}"
            if _is_cjk(self.last_name)
            else (f"{self.first_name} {self.last_name}")
        )
        return full.strip() or self.username

    def get_full_name(self) -> str:
        """FAB's navbar name, in the same order as everywhere else."""
        return str(self)


def _is_cjk(text: str | None) -> bool:
    return bool(text) and any("\u4e00" <= ch <= "\u9fff" for ch in text)


class RoleDataScope(Model):
    """Which rows a role sees. entity '*' is the role's default; a row per entity overrides it."""

    __tablename__ = "crm_role_data_scope"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    role_id: Mapped[int] = mapped_column(
        ForeignKey("ab_role.id", ondelete="CASCADE"), nullable=False, index=True
    )
    entity: Mapped[str] = mapped_column(String(50), nullable=False, default="*")
    scope: Mapped[str] = mapped_column(String(20), nullable=False, default="self")

    role: Mapped[Role] = relationship(Role)

    __table_args__ = (UniqueConstraint("role_id", "entity", name="uq_role_scope_entity"),)

    def __str__(self) -> str:
        return f"{self.role} · {self.entity} · {DATA_SCOPES.label(self.scope)}"


#: scopes of a personal API token: read refuses unsafe methods (POST, PUT, PATCH, DELETE)
TOKEN_SCOPES = Choices(("read", "只读"), ("read-write", "读写"))


class RoleMfaPolicy(Model):
    """Whether a role requires MFA (TOTP). A missing row means not required.

    Rows for CRM_MFA_REQUIRED_ROLES are created once when the built-in roles are synced; an
    admin's later choice is kept.
    """

    __tablename__ = "crm_role_mfa"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    role_id: Mapped[int] = mapped_column(
        ForeignKey("ab_role.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    required: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    role: Mapped[Role] = relationship(Role)

    def __str__(self) -> str:
        return str(self.role)


class UserMfa(Model):
    """A user's TOTP secret; confirmed_at is None while enrolment waits for the first code."""

    __tablename__ = "crm_user_mfa"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    #: base32, 32 characters; encrypted at rest (AES-256-GCM, app/crypto.py)
    secret: Mapped[str] = mapped_column(EncryptedString(32, "crm_user_mfa.secret"), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    #: the TOTP time step last accepted: a code is usable once (no replay within its 30 s)
    last_step: Mapped[int | None] = mapped_column(Integer, nullable=True)


class MfaRecoveryCode(Model):
    """One of a user's one-time recovery codes, stored as a SHA-256 hash."""

    __tablename__ = "crm_mfa_recovery_code"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False, index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class ApiToken(Model):
    """个人 API 令牌: a user's token for integrations, stored as the SHA-256 of the secret."""

    __tablename__ = "crm_api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    scope: Mapped[str] = mapped_column(String(20), nullable=False, default="read")
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    #: the first characters of the token, to tell tokens apart in the list
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    last_used_ip: Mapped[str | None] = mapped_column(String(45), nullable=True)

    user: Mapped[CrmUser] = relationship(CrmUser)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
