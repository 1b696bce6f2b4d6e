"""Custom values of one record: cleaning what a client sends, and typed SQL over the column.

`clean_custom` is the single validator of custom values for forms, the REST API, import and
automation (the entity's service calls it from the data layer).
"""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from customfields.definitions import CustomField, definitions
from customfields.query import custom_sql, sql_value

FIELD_PREFIX = "custom."


def clean_custom(
    session: Session,
    entity: str,
    given: Any,
    existing: dict[str, Any] | None,
    is_new: bool,
    role_names: set[str] | None,
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Merge `given` into `existing` custom values; returns (values, errors keyed custom.<name>).

    - a key set to null or blank removes the value; keys not sent are kept (partial update);
    - unknown keys, archived fields and fields hidden from the role are errors (never ignored);
    - required: enforced on create (the default fills a missing value) and on update only
      against clearing a value; records that predate a new required field stay editable;
    - a field the role may see but not edit cannot be changed by it.
    """
    errors: dict[str, list[str]] = {}
    current = dict(existing or {})
    if given is None:
        given = {}
    if not isinstance(given, dict):
        return current, {"custom": [_("自定义字段应为对象,键为字段的 API 名称")]}
    fields = {f.api_name: f for f in definitions(session, entity) if f.visible_to(role_names)}
    for name in given:
        if name not in fields:
            errors.setdefault(FIELD_PREFIX + str(name), []).append(_("未知的自定义字段"))
    for name, field in fields.items():
        key = FIELD_PREFIX + name
        if name in given:
            raw = given[name]
            value = None if field.handler.is_blank(raw) else _to_storage(field, raw, errors, key)
            if key in errors:
                continue
            if value != current.get(name) and not field.editable_by(role_names):
                errors.setdefault(key, []).append(_("您无权修改该字段"))
                continue
            if value is None:
                current.pop(name, None)
            else:
                current[name] = value
        elif is_new and field.default not in (None, "", []):
            current[name] = field.default
        if field.required and current.get(name) in (None, "", []):
            if is_new or (existing or {}).get(name) not in (None, "", []):
                errors.setdefault(key, []).append(_("必填"))
    return current, errors


def _to_storage(field: CustomField, raw: Any, errors: dict[str, list[str]], key: str) -> Any:
    try:
        return field.handler.to_storage(raw, field)
    except ValueError as exc:
        errors.setdefault(key, []).append(str(exc))
        return None


def check_unique(
    session: Session, model: type, entity: str, values: dict[str, Any], pk: Any, errors: dict[str, list[str]]
) -> None:
    """A unique custom field's value may not stand on another record of the entity."""
    for field in definitions(session, entity):
        value = values.get(field.api_name)
        if not field.unique or value in (None, "", []) or FIELD_PREFIX + field.api_name in errors:
            continue
        query = select(model.id).where(custom_sql(model, field) == sql_value(field, value))
        if pk is not None:
            query = query.where(model.id != pk)
        other = session.scalar(query.limit(1))
        if other is not None:
            errors.setdefault(FIELD_PREFIX + field.api_name, []).append(
                _("该值已被记录 %(id)s 使用", id=other)
            )
