"""Managing custom-field definitions: the admin's use cases around the engine in customfields/."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _
from sqlalchemy import bindparam, inspect, select, update
from sqlalchemy.orm import Session

import models  # noqa: F401  (every customisable model registers itself on import)
from app import validators
from app.access import current_actor, entity_name, role_names, scope_clause
from app.errors import ErrorCollector, ValidationFailed
from app.extensions import db
from app.services import ACTOR_KEY, RecordService, text_up_to
from customfields.definitions import (
    USER_TARGET,
    CustomField,
    bump_version,
    definitions,
    formula_type,
    validate_definition,
)
from customfields.files import FileStore
from customfields.formula import FormulaError, compile_formula, evaluation_order
from customfields.indexes import sync_indexes
from customfields.mixin import CUSTOMISABLE, entity_labels
from customfields.types import FIELD_TYPES, FileType, configure_cleaners
from customfields.values import (
    compiled_formulas,
    compute_formulas,
    configure_references,
    formula_names,
)
from models.base import Choices
from models.security import CrmUser

# custom phone and URL fields follow the same rules as the standard columns
configure_cleaners(phone=validators.clean_phone, url=validators.clean_url)

#: entity name -> the model whose `custom` column holds its values
ENTITY_MODELS: dict[str, type] = CUSTOMISABLE
FIELD_TYPE_CHOICES = Choices(*[(code, handler.label) for code, handler in FIELD_TYPES.items()])
ENTITY_CHOICES = Choices(*entity_labels().items())
TARGET_CHOICES = Choices(*entity_labels().items(), (USER_TARGET, _("用户")))
#: the session key under which a definition change asks after_save to recompute formulas
RECOMPUTE_KEY = "keguan.recompute_formulas"


def target_model(entity: str) -> type | None:
    return CrmUser if entity == USER_TARGET else ENTITY_MODELS.get(entity)


def visible_records(session: Session, entity: str, ids: set[Any], actor: CrmUser | None) -> list[Any]:
    """The `entity` records among `ids` that `actor` may see (None: the system, which sees all)."""
    model = target_model(entity)
    wanted = sorted(i for i in ids if isinstance(i, int))
    if model is None or not wanted:
        return []
    query = select(model).where(model.id.in_(wanted))
    clause = scope_clause(session, model, actor) if actor is not None else None
    if clause is not None:
        query = query.where(clause)
    return list(session.scalars(query))


def visible_ids(session: Session, entity: str, ids: set[int]) -> set[int]:
    """The engine's reference check: which ids exist within the acting user's data scope."""
    return {record.id for record in visible_records(session, entity, ids, session.info.get(ACTOR_KEY))}


def reference_labels(entity: str, ids: set[Any]) -> dict[int, str]:
    """How referenced records show (their names), for the ones the current user may see."""
    return {record.id: str(record) for record in visible_records(db.session, entity, ids, current_actor())}


def user_options() -> list[tuple[str, str]]:
    """(id, name) of active users, for reference fields that point at a user."""
    users = db.session.scalars(select(CrmUser).where(CrmUser.active.is_(True)).order_by(CrmUser.id))
    return [(str(user.id), str(user)) for user in users]


configure_references(visible_ids)


def configure_files(upload_dir: str) -> None:
    """Where file fields keep their attachments (CRM_UPLOAD_DIR)."""
    FileType.store = FileStore(upload_dir)


def file_store() -> FileStore:
    return FileType.store


@dataclass(frozen=True)
class UploadRule:
    """What FileStore checks an upload against (the shape of a file field's definition), for the
    files of standard fields: a contract's signed file, a ticket's attachments."""

    allowed_file_types: list[str]
    max_file_bytes: int
    entity: str
    api_name: str


def upload_rule(entity: str, api_name: str, types_setting: str, megabytes_setting: str) -> UploadRule:
    """The rule of a standard file field from its two settings (allowed types, size in MB)."""
    config = current_app.config
    types = [t.strip().lower().lstrip(".") for t in config[types_setting] if t.strip()]
    return UploadRule(types, int(config[megabytes_setting]) * 1024 * 1024, entity, api_name)


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
    choices = {"entity": ENTITY_CHOICES, "field_type": FIELD_TYPE_CHOICES, "target_entity": TARGET_CHOICES}
    cleaners = {
        "api_name": lambda v: (validators.clean_text(v, 50) or "").lower() or None,
        "label_zh": text_up_to(100),
        "label_en": text_up_to(100),
        "help_text": text_up_to(255),
        "section": text_up_to(50),
        "choices": split_list,
        "visible_roles": split_list,
        "editable_roles": split_list,
        "file_types": split_list,
        "formula": lambda v: (str(v).strip() or None) if v is not None else None,
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
        names = formula_names(session, model) if model is not None else {}
        names.pop(candidate.api_name, None)  # a formula cannot read itself
        for field, messages in validate_definition(candidate, standard, previous, names).items():
            for message in messages:
                errors.add(field, message)
        values["default"] = candidate.default
        values["result_type"] = candidate.result_type
        if previous is not None and previous.entity != candidate.entity:
            errors.add("entity", str(_("字段所属对象创建后不能修改")))
        if not errors.errors and model is not None:
            check_formulas_still_valid(session, model, candidate, errors)
        if not errors.errors and candidate.field_type == "formula":
            check_formula_visibility(session, candidate, names, errors)
        if not errors.errors and previous is not None and previous.field_type != candidate.field_type:
            check_type_change(session, model, candidate, errors)

    def before_save(self, session: Session, item: CustomField, actor: Any, is_new: bool) -> None:
        """On a type change, convert the stored values (or refuse)."""
        state = inspect(item).attrs
        if is_new or state.formula.history.deleted or state.field_type.history.deleted:
            session.info[RECOMPUTE_KEY] = True
        if not is_new and state.field_type.history.deleted and item.field_type != "formula":
            errors = ErrorCollector()
            check_type_change(session, ENTITY_MODELS[item.entity], item, errors)
            errors.raise_if_any()
            convert_values(session, ENTITY_MODELS[item.entity], item)

    def after_save(self, session: Session, item: CustomField) -> None:
        """Bump the definitions version (now that the row is written: a cache loaded in this
        transaction must see it), then indexes follow the definition, and formulas are
        recomputed when their definition changed."""
        bump_version(session)
        model = ENTITY_MODELS[item.entity]
        sync_indexes(session, model, item)
        if session.info.pop(RECOMPUTE_KEY, False):
            recompute_formulas(session, model)

    def before_delete(self, session: Session, item: CustomField) -> None:
        """Deleting a field deletes its values: the only way custom data goes."""
        readers = formulas_reading(session, ENTITY_MODELS[item.entity], item.api_name)
        if readers:
            raise ValidationFailed(
                {"api_name": [str(_("公式字段 %(names)s 使用此字段,请先修改公式", names=", ".join(readers)))]}
            )
        bump_version(session)
        model = ENTITY_MODELS[item.entity]
        sync_indexes(session, model, item, deleted=True)
        for record_id, custom in records_with_value(session, model, item.api_name):
            remaining = {k: v for k, v in custom.items() if k != item.api_name}
            session.execute(update(model).where(model.id == record_id).values(custom=remaining))


def formulas_reading(session: Session, model: type, api_name: str) -> list[str]:
    """API names of the entity's formula fields whose formula reads `api_name`."""
    return [
        name
        for name, (_field, formula) in compiled_formulas(session, model).items()
        if api_name in formula.inputs
    ]


def check_formulas_still_valid(
    session: Session, model: type, candidate: CustomField, errors: ErrorCollector
) -> None:
    """The entity's formulas must still compile with the candidate as it will be, and no formula
    may read itself through others (a cycle)."""
    formulas = [
        f
        for f in definitions(session, candidate.entity, include_archived=True)
        if f.field_type == "formula" and f.api_name != candidate.api_name
    ]
    if candidate.field_type == "formula":
        formulas.append(candidate)
    if not formulas:
        return
    names = formula_names(session, model)
    names.pop(candidate.api_name, None)
    if formula_type(candidate):
        names[candidate.api_name] = formula_type(candidate)
    compiled = {}
    for field in formulas:
        try:
            compiled[field.api_name] = compile_formula(field.formula or "", names)
        except FormulaError as exc:
            message = _("公式字段 %(name)s 将无法计算: %(msg)s", name=field.api_name, msg=str(exc))
            errors.add("field_type", str(message))
    try:
        evaluation_order(compiled)
    except FormulaError as exc:
        errors.add("formula", str(exc))


def check_formula_visibility(
    session: Session, candidate: CustomField, names: dict[str, str], errors: ErrorCollector
) -> None:
    """A formula shows what it reads: it may not be visible to more roles than its inputs."""
    inputs = compile_formula(candidate.formula or "", names).inputs
    shown_to = set(candidate.visible_roles or [])
    for field in definitions(session, candidate.entity, include_archived=True):
        if (
            field.api_name in inputs
            and field.visible_roles
            and not (shown_to and shown_to <= set(field.visible_roles))
        ):
            message = _(
                "公式读取了字段 %(name)s,它只对 %(roles)s 可见;公式字段的可见角色不能比它更宽",
                name=field.api_name,
                roles=", ".join(field.visible_roles),
            )
            errors.add("visible_roles", str(message))


def recompute_formulas(
    session: Session, model: type, only_time_dependent: bool = False, batch: int = 1000
) -> int:
    """Recompute and store every record's formula values (after a definition change, or daily for
    formulas that use TODAY()); returns how many records changed."""
    formulas = compiled_formulas(session, model)
    if only_time_dependent:  # those using TODAY(), and the formulas that read them
        moving: set[str] = set()
        for name, (_field, formula) in formulas.items():  # inputs come first
            if formula.uses_today or formula.inputs & moving:
                moving.add(name)
        formulas = {name: formulas[name] for name in moving}
    if not formulas:
        return 0
    table = model.__table__
    changed, last_id = 0, 0
    while True:  # in pages by id: no open cursor while writing (MySQL forbids it)
        page = (
            session.execute(select(table).where(table.c.id > last_id).order_by(table.c.id).limit(batch))
            .mappings()
            .all()
        )
        if not page:
            return changed
        updates = []
        for row in page:
            custom = dict(row["custom"] or {})
            standard = {k: v for k, v in row.items() if k != "custom"}
            if compute_formulas(formulas, standard, custom):
                updates.append({"record_id": row["id"], "new_custom": custom})
        if updates:
            statement = update(table).where(table.c.id == bindparam("record_id"))
            session.connection().execute(statement.values(custom=bindparam("new_custom")), updates)
        changed += len(updates)
        last_id = page[-1]["id"]


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
