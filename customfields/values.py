"""Custom values of one record: cleaning what a client sends, and typed SQL over the column.

`clean_custom` applies the rules of a write (merge, required, who may edit) and converts each
value through the entity's marshmallow schema (customfields.schema), the single validator of
custom values for forms, the REST API, import and automation; the entity's service calls it
from the data layer. References, unique values and formulas are handled here too.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from flask_babel import gettext as _
from marshmallow import ValidationError
from sqlalchemy import Boolean, Date, DateTime, Integer, Numeric, String, select
from sqlalchemy.orm import Session

from customfields.definitions import CustomField, definitions, formula_type
from customfields.formula import Formula, FormulaError, compile_formula, evaluation_order
from customfields.query import custom_sql, sql_value
from customfields.schema import entity_schema
from customfields.types import FIELD_TYPES

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
    schema = entity_schema(session, entity, role_names)()
    for name in given:
        if name not in fields:
            errors.setdefault(FIELD_PREFIX + str(name), []).append(_("未知的自定义字段"))
    for name, field in fields.items():
        key = FIELD_PREFIX + name
        if name in given:
            raw = given[name]
            try:
                value = schema.fields[name].deserialize(raw)
            except ValidationError as exc:
                errors.setdefault(key, []).extend(exc.messages)
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


# --- references: the target must exist and be visible to the acting user ------------------------
#: (session, target entity, ids) -> those of the ids that exist and the acting user may see
ReferenceLookup = Callable[[Session, str, set[int]], set[int]]
_lookup: list[ReferenceLookup] = []


def configure_references(lookup: ReferenceLookup) -> None:
    """The application says how to find records of an entity within the user's data scope."""
    _lookup[:] = [lookup]


def check_references(
    session: Session, entity: str, values: dict[str, Any], changed: set[str], errors: dict[str, list[str]]
) -> None:
    """A reference set or changed in this write must point at a record the user may see."""
    for field in definitions(session, entity):
        value = values.get(field.api_name)
        key = FIELD_PREFIX + field.api_name
        if field.field_type != "reference" or value is None or field.api_name not in changed or key in errors:
            continue
        found = _lookup[0](session, field.target_entity or "", {value}) if _lookup else set()
        if value not in found:
            errors.setdefault(key, []).append(_("关联的记录 %(id)s 不存在或您无权查看", id=value))


# --- formulas: computed on every write, from the record's standard and custom values -------------
def formula_names(session: Session, model: type) -> dict[str, str]:
    """What a formula of `model` may read: standard columns and custom fields, with their types."""
    names = {}
    for column in model.__table__.columns:
        kind = _column_formula_type(column.type)
        if kind and column.key != "custom":
            names[column.key] = kind
    for field in definitions(session, entity_of(model), include_archived=True):
        kind = formula_type(field)
        if kind:
            names[field.api_name] = kind
    return names


def _column_formula_type(column_type: Any) -> str | None:
    if isinstance(column_type, Boolean):
        return "boolean"
    if isinstance(column_type, Integer | Numeric):
        return "number"
    if isinstance(column_type, DateTime):
        return "datetime"
    if isinstance(column_type, Date):
        return "date"
    if isinstance(column_type, String):
        return "text"
    return None


def entity_of(model: type) -> str:
    return model.__tablename__.removeprefix("crm_")


@lru_cache(maxsize=512)
def _compiled(source: str, names: tuple[tuple[str, str], ...]) -> Formula:
    return compile_formula(source, dict(names))


def compiled_formulas(session: Session, model: type) -> dict[str, tuple[CustomField, Formula]]:
    """The entity's formula fields, compiled, in an order where inputs come first."""
    fields = [
        f for f in definitions(session, entity_of(model), include_archived=True) if f.field_type == "formula"
    ]
    if not fields:
        return {}
    names = tuple(sorted(formula_names(session, model).items()))
    compiled = {}
    for field in fields:
        try:
            compiled[field.api_name] = (field, _compiled(field.formula or "", names))
        except FormulaError:
            continue  # a definition change made it invalid: it keeps its last values
    order = evaluation_order({name: formula for name, (_field, formula) in compiled.items()})
    return {name: compiled[name] for name in order}


def compute_formulas(
    formulas: dict[str, tuple[CustomField, Formula]], standard: dict[str, Any], custom: dict[str, Any]
) -> bool:
    """Store each formula's value in `custom` (in place); True when any value changed."""
    changed = False
    for name, (field, formula) in formulas.items():
        value = formula_storage(field, formula.evaluate({**standard, **custom}))
        if custom.get(name) != value:
            changed = True
            if value is None:
                custom.pop(name, None)
            else:
                custom[name] = value
    return changed


def formula_storage(field: CustomField, result: Any) -> Any:
    """A formula's result as stored (like a field of the result type would store it)."""
    if result is None or result == "":
        return None
    if field.result_type == "number":
        try:
            return FIELD_TYPES["decimal"].to_storage(result, field)
        except ValueError:
            return None
    if field.result_type in ("date", "datetime"):
        return result.isoformat() if field.result_type == "date" else result.isoformat(timespec="seconds")
    if field.result_type == "text":
        return str(result)[:1000]
    return result
