"""Managing custom-field definitions: the admin's use cases around the engine in customfields/."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _
from sqlalchemy import inspect, select, update
from sqlalchemy.orm import Session

from app import validators
from app.access import entity_name, role_names
from app.errors import ErrorCollector
from app.services import RecordService, text_up_to
from customfields.definitions import ENTITIES, CustomField, bump_version, definitions, validate_definition
from customfields.types import FIELD_TYPES, configure_cleaners
from models.base import Choices
from models.customers import Contact, Customer
from models.security import CrmUser

# custom phone and URL fields follow the same rules as the standard columns
configure_cleaners(phone=validators.clean_phone, url=validators.clean_url)

#: entity name -> the model whose `custom` column holds its values
ENTITY_MODELS: dict[str, type] = {"customer": Customer, "contact": Contact}
FIELD_TYPE_CHOICES = Choices(*[(code, handler.label) for code, handler in FIELD_TYPES.items()])
ENTITY_CHOICES = Choices(*ENTITIES.items())


def visible_fields(session: Session, model: type, actor: CrmUser | None) -> list[CustomField]:
    """The live custom fields of a model that the actor's roles may see (the one visibility rule
    for forms, pages, lists, filters, the API and exports)."""
    roles = role_names(actor)
    return [f for f in definitions(session, entity_name(model)) if f.visible_to(roles)]


def split_list(value: Any) -> list[str] | None:
    """A list from JSON, or from a form's text (one per line, or separated by commas)."""
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        value = value.replace("，", ",").replace("\n", ",").split(",")
    if not isinstance(value, list | tuple):
        raise ValueError(str(_("应为列表")))
    items = [str(item).strip() for item in value if str(item).strip()]
    return items or None


class CustomFieldService(RecordService):
    model = CustomField
    choices = {"entity": ENTITY_CHOICES, "field_type": FIELD_TYPE_CHOICES}
    cleaners = {
        "api_name": lambda v: (validators.clean_text(v, 50) or "").lower() or None,
        "label_zh": text_up_to(100),
        "label_en": text_up_to(100),
        "help_text": text_up_to(255),
        "section": text_up_to(50),
        "choices": split_list,
        "visible_roles": split_list,
        "editable_roles": split_list,
    }
    required = {
        "entity": _("请选择对象"),
        "api_name": _("请填写 API 名称"),
        "field_type": _("请选择字段类型"),
    }

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        if errors.errors:
            return
        previous = None
        if pk is not None:
            row = (
                session.execute(select(CustomField.__table__).where(CustomField.id == pk)).mappings().first()
            )
            previous = CustomField(**row) if row else None
        candidate = CustomField(**{k: v for k, v in values.items() if k in CustomField.__table__.columns})
        model = ENTITY_MODELS.get(values.get("entity") or "")
        standard = {attr.key for attr in inspect(model).attrs} if model is not None else set()
        for field, messages in validate_definition(candidate, standard, previous).items():
            for message in messages:
                errors.add(field, message)
        values["default"] = candidate.default
        if previous is not None and previous.entity != candidate.entity:
            errors.add("entity", str(_("字段所属对象创建后不能修改")))
        if not errors.errors and previous is not None and previous.field_type != candidate.field_type:
            check_type_change(session, model, candidate, errors)

    def before_save(self, session: Session, item: CustomField, actor: Any, is_new: bool) -> None:
        """Bump the definitions version; on a type change, convert the stored values (or refuse)."""
        bump_version(session)
        if not is_new and inspect(item).attrs.field_type.history.deleted:
            errors = ErrorCollector()
            check_type_change(session, ENTITY_MODELS[item.entity], item, errors)
            errors.raise_if_any()
            convert_values(session, ENTITY_MODELS[item.entity], item)

    def before_delete(self, session: Session, item: CustomField) -> None:
        """Deleting a field deletes its values: the only way custom data goes."""
        bump_version(session)
        model = ENTITY_MODELS[item.entity]
        for record_id, custom in records_with_value(session, model, item.api_name):
            remaining = {k: v for k, v in custom.items() if k != item.api_name}
            session.execute(update(model).where(model.id == record_id).values(custom=remaining))


def check_type_change(session: Session, model: Any, field: CustomField, errors: ErrorCollector) -> None:
    """A new type is allowed only when every stored value converts; say how many do not, and which."""
    failures = []
    for record_id, custom in records_with_value(session, model, field.api_name):
        try:
            field.handler.to_storage(custom[field.api_name], field)
        except ValueError:
            failures.append((record_id, custom[field.api_name]))
    if failures:
        examples = ", ".join(f"#{rid}: {value!r}" for rid, value in failures[:5])
        message = _("有 %(n)s 条记录的值无法转换,例如 %(examples)s", n=len(failures), examples=examples)
        errors.add("field_type", str(message))


def records_with_value(session: Session, model: Any, api_name: str) -> list[tuple[int, dict]]:
    """(id, custom) of the records that hold a value for the field (found by JSON path in SQL)."""
    rows = session.execute(
        select(model.id, model.custom).where(model.custom[api_name].as_string().is_not(None))
    )
    return [(record_id, custom) for record_id, custom in rows if custom and api_name in custom]


def convert_values(session: Session, model: Any, field: CustomField) -> None:
    """Rewrite stored values in the field's new type (check_type_change proved they convert)."""
    for record_id, custom in records_with_value(session, model, field.api_name):
        new_value = field.handler.to_storage(custom[field.api_name], field)
        session.execute(
            update(model).where(model.id == record_id).values(custom={**custom, field.api_name: new_value})
        )
