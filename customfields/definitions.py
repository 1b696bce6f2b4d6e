"""Custom-field definitions: rows that describe a field, and the rules a definition must meet.

Definitions are data. Every process caches them per entity under a version number stored in
the database (`crm_custom_field_version`); a change bumps the version in the same transaction,
so every worker sees it at its next request, without a restart.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import has_request_context, request
from flask_appbuilder import Model
from flask_babel import gettext as _
from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Text, UniqueConstraint, false, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from customfields.formula import FormulaError, compile_formula
from customfields.mixin import CUSTOMISABLE
from customfields.types import FIELD_TYPES

API_NAME = re.compile(r"[a-z][a-z0-9_]{0,49}")
#: what a reference field may point at: every customisable entity, and users
USER_TARGET = "user"
#: attachments accepted when a file field names no types of its own
DEFAULT_FILE_TYPES = ["pdf", "jpg", "jpeg", "png", "gif", "doc", "docx", "xls", "xlsx", "txt", "zip"]
DEFAULT_MAX_FILE_MB = 10


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class CustomField(Model):
    """One custom field of one entity. Its API name never changes once created."""

    __tablename__ = "crm_custom_field"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity: Mapped[str] = mapped_column(String(50), nullable=False, index=True)
    api_name: Mapped[str] = mapped_column(String(50), nullable=False)
    label_zh: Mapped[str] = mapped_column(String(100), nullable=False)
    label_en: Mapped[str | None] = mapped_column(String(100))
    field_type: Mapped[str] = mapped_column(String(20), nullable=False, default="text")
    required: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    default: Mapped[Any | None] = mapped_column(JSON)
    help_text: Mapped[str | None] = mapped_column(String(255))
    section: Mapped[str | None] = mapped_column(String(50))
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: select and multi-select: the allowed values, in order
    choices: Mapped[list | None] = mapped_column(JSON)
    min_value: Mapped[str | None] = mapped_column(String(40))
    max_value: Mapped[str | None] = mapped_column(String(40))
    max_length: Mapped[int | None] = mapped_column(Integer)
    pattern: Mapped[str | None] = mapped_column(String(255))
    #: reference: the entity the value points at (customer, contact, user...)
    target_entity: Mapped[str | None] = mapped_column(String(50))
    #: file: allowed extensions (empty: DEFAULT_FILE_TYPES) and the size limit per file in MB
    file_types: Mapped[list | None] = mapped_column(JSON)
    max_file_mb: Mapped[int | None] = mapped_column(Integer)
    #: formula: the expression, and the type of its result (set when the definition is saved)
    formula: Mapped[str | None] = mapped_column(Text)
    result_type: Mapped[str | None] = mapped_column(String(20))
    unique: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    indexed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    #: role names that may see / edit the field; empty means every role
    visible_roles: Mapped[list | None] = mapped_column(JSON)
    editable_roles: Mapped[list | None] = mapped_column(JSON)
    #: shown as a column on the entity's list screen
    show_in_list: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    archived: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # --- encryption at rest ---
    #: values stored encrypted (app/crypto.py); only exact-match filtering, through a blind index.
    #: Chosen when the field is created and fixed afterwards (stored values would not follow).
    sensitive: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_utcnow, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime, default=_utcnow, onupdate=_utcnow, nullable=False
    )

    __table_args__ = (UniqueConstraint("entity", "api_name", name="uq_custom_field_entity_name"),)

    def __str__(self) -> str:
        return f"{self.label_zh} ({self.api_name})"

    @property
    def handler(self) -> Any:
        return FIELD_TYPES[self.field_type]

    @property
    def choice_values(self) -> list[str]:
        return [str(c) for c in (self.choices or [])]

    @property
    def allowed_file_types(self) -> list[str]:
        return [t.lower().lstrip(".") for t in (self.file_types or DEFAULT_FILE_TYPES)]

    @property
    def max_file_bytes(self) -> int:
        return (self.max_file_mb or DEFAULT_MAX_FILE_MB) * 1024 * 1024

    def bound(self, name: str) -> Any:
        """min_value/max_value as the type compares them (Decimal, date or datetime)."""
        raw = getattr(self, name)
        if raw in (None, ""):
            return None
        if self.field_type == "date":
            return dt.date.fromisoformat(raw)
        if self.field_type == "datetime":
            return dt.datetime.fromisoformat(raw)
        return Decimal(raw)

    def label(self, language: str | None) -> str:
        return (self.label_en or self.label_zh) if language == "en" else self.label_zh

    def visible_to(self, role_names: set[str] | None) -> bool:
        """None means no role filter (the system itself: CLI, worker)."""
        if role_names is None:
            return True
        own = not self.visible_roles or bool(role_names & set(self.visible_roles))
        # --- field permissions (app/permissions.py): the admin's field rules also apply ---
        return own and _field_mode(self, role_names) != "hidden"

    def editable_by(self, role_names: set[str] | None) -> bool:
        if not self.visible_to(role_names) or self.field_type == "formula":
            return False
        if role_names is None:
            return True
        own = not self.editable_roles or bool(role_names & set(self.editable_roles))
        # --- field permissions: read-only and masked fields are not edited by the role ---
        return own and _field_mode(self, role_names) not in ("read_only", "masked")


# --- field permissions: a hook, so the engine needs no import of the app ---------------------------
#: set by app/permissions.py: (definition, role names) -> the rule mode (hidden, masked, masked_list,
#: read_only) or None; the definition's own visible_roles/editable_roles and the rules answer as one
_FIELD_POLICY: list[Callable[[CustomField, set[str]], str | None]] = []


def configure_field_policy(policy: Callable[[CustomField, set[str]], str | None]) -> None:
    _FIELD_POLICY[:] = [policy]


def _field_mode(field: CustomField, role_names: set[str]) -> str | None:
    return _FIELD_POLICY[0](field, role_names) if _FIELD_POLICY else None




class CustomFieldVersion(Model):
    """A single row whose number changes with every definition change (cache key for workers)."""

    __tablename__ = "crm_custom_field_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


def bump_version(session: Session) -> None:
    """Call in the transaction that changes a definition."""
    changed = session.execute(
        update(CustomFieldVersion)
        .where(CustomFieldVersion.id == 1)
        .values(version=CustomFieldVersion.version + 1)
    )
    if not changed.rowcount:
        session.add(CustomFieldVersion(id=1, version=1))
    _versions_of_this_request().clear()


def _versions_of_this_request() -> dict[str, int]:
    """The version as this request read it, per database (throwaway outside requests)."""
    return request.environ.setdefault("keguan.cf_version", {}) if has_request_context() else {}


def current_version(session: Session) -> int:
    """The definitions' version number: read once per request, which every screen, filter and
    schema of that request then agrees on (a show page with eight related lists asked eight
    times); a definition changed by the request itself is read again (bump_version)."""
    seen = _versions_of_this_request()
    database = database_key(session)
    if database not in seen:
        version = session.scalar(select(CustomFieldVersion.version).where(CustomFieldVersion.id == 1)) or 0
        seen[database] = version
    return seen[database]


class _Cache:
    """Per-process definitions by entity, valid for one version number of one database."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: database URL -> (version, definitions by entity)
        self.by_database: dict[str, tuple[int, dict[str, list[dict[str, Any]]]]] = {}

    def definitions(self, session: Session, entity: str) -> list[CustomField]:
        version = current_version(session)
        database = database_key(session)
        with self.lock:
            cached_version, by_entity = self.by_database.get(database, (-1, {}))
            if version != cached_version:
                rows = session.scalars(
                    select(CustomField).order_by(CustomField.entity, CustomField.position, CustomField.id)
                ).all()
                by_entity = {}
                for row in rows:
                    by_entity.setdefault(row.entity, []).append(_snapshot(row))
                self.by_database[database] = (version, by_entity)
            snapshots = by_entity.get(entity, [])
        return [_detached(snapshot) for snapshot in snapshots]


def database_key(session: Session) -> str:
    """Which database a session talks to (a process may serve several: tests, tools)."""
    return session.get_bind().url.render_as_string(hide_password=True)


def _snapshot(row: CustomField) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in CustomField.__table__.columns}


def _detached(snapshot: dict[str, Any]) -> CustomField:
    """A plain CustomField object, not in any session (safe to share between requests)."""
    return CustomField(**snapshot)


_cache = _Cache()


def definitions(session: Session, entity: str, include_archived: bool = False) -> list[CustomField]:
    """The entity's field definitions in form order, from the per-process cache."""
    fields = _cache.definitions(session, entity)
    return fields if include_archived else [f for f in fields if not f.archived]


#: types whose values may be stored encrypted (text; numbers and dates must stay comparable in SQL)
SENSITIVE_TYPES = {"text", "long_text", "email", "phone", "url"}


def validate_definition(
    field: CustomField,
    standard_columns: set[str],
    previous: CustomField | None = None,
    formula_names: dict[str, str] | None = None,
) -> dict[str, list[str]]:
    """Every problem with a definition, by attribute (an empty dict means it is valid).

    `formula_names` maps what a formula may read (standard columns and the entity's other
    custom fields) to its formula type; a valid formula sets `field.result_type`.
    """
    errors: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    if field.entity not in CUSTOMISABLE:
        add("entity", _("不支持自定义字段的对象"))
    name = (field.api_name or "").strip()
    if previous is not None and name != previous.api_name:
        add("api_name", _("API 名称创建后不能修改"))
    elif not API_NAME.fullmatch(name):
        add("api_name", _("API 名称只能用小写字母、数字和下划线,以字母开头,最多 50 个字符"))
    elif name in standard_columns:
        add("api_name", _("与标准字段 %(name)s 重名", name=name))
    if not (field.label_zh or "").strip():
        add("label_zh", _("请填写中文名称"))
    handler = FIELD_TYPES.get(field.field_type)
    if handler is None:
        add("field_type", _("不支持的字段类型"))
        return errors
    for option in OPTIONS:
        if getattr(field, option) not in (None, "", []) and option not in handler.options:
            add(option, _("该类型的字段不使用此设置"))
    if "choices" in handler.options:
        values = field.choice_values
        if not values:
            add("choices", _("请至少填写一个选项"))
        elif len(set(values)) != len(values):
            add("choices", _("选项不能重复"))
    for bound in ("min_value", "max_value"):
        if getattr(field, bound) not in (None, ""):
            try:
                field.bound(bound)
            except (InvalidOperation, ValueError):
                add(bound, _("不是有效的值"))
    if field.max_length is not None and field.max_length < 1:
        add("max_length", _("应为正整数"))
    if field.pattern:
        try:
            re.compile(field.pattern)
        except re.error:
            add("pattern", _("不是有效的正则表达式"))
    if field.default not in (None, "", []) and not errors:
        try:
            field.default = handler.to_storage(field.default, field)
        except ValueError as exc:
            add("default", _("默认值不符合该字段的规则: %(msg)s", msg=str(exc)))
    if field.unique and field.field_type in {"multi_select", "boolean", "long_text", "file", "formula"}:
        add("unique", _("该类型的字段不能设为唯一"))
    # --- encryption at rest ---
    if previous is not None and bool(field.sensitive) != bool(previous.sensitive):
        add("sensitive", _("加密存储只能在创建字段时设定"))
    elif field.sensitive:
        if field.field_type not in SENSITIVE_TYPES:
            add("sensitive", _("只有文本、长文本、电子邮箱、电话和网址字段可以加密存储"))
        if field.unique:
            add("unique", _("加密存储的字段不能设为唯一"))
        if previous is not None and field.field_type != previous.field_type:
            add("field_type", _("加密存储的字段不能修改类型"))
    if field.field_type == "reference" and field.target_entity not in reference_targets():
        add("target_entity", _("请选择关联的对象"))
    if field.field_type == "file":
        if field.max_file_mb is not None and not 1 <= field.max_file_mb <= 100:
            add("max_file_mb", _("应在 1 到 100 之间"))
        for extension in field.file_types or []:
            if not re.fullmatch(r"\.?[A-Za-z0-9]{1,10}", extension):
                add("file_types", _("不是有效的文件扩展名: %(ext)s", ext=extension))
    if field.field_type == "formula":
        if field.required or field.default not in (None, "", []):
            add("required", _("公式字段由系统计算,不能设必填或默认值"))
        try:
            compiled = compile_formula(field.formula or "", formula_names or {})
        except FormulaError as exc:
            add("formula", str(exc))
        else:
            field.result_type = compiled.result_type
    else:
        field.result_type = None
    return errors


#: per-type options of a definition (each type says which it uses)
OPTIONS = (
    "choices", "min_value", "max_value", "max_length", "pattern", "target_entity", "file_types",
    "max_file_mb", "formula",
)  # fmt: skip


def reference_targets() -> list[str]:
    return [*CUSTOMISABLE, USER_TARGET]


def formula_type(field: CustomField) -> str | None:
    """The formula type ("number", "text", ...) a field offers to formulas, None if none."""
    kind = field.field_type
    if kind == "formula":
        return field.result_type
    if kind in {"integer", "decimal", "currency", "percent"}:
        return "number"
    if kind in {"date", "datetime", "boolean"}:
        return kind
    if kind in {"text", "long_text", "email", "phone", "url", "select"}:
        return "text"
    return None
