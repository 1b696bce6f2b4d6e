"""The record service: one per entity, the only place its rules live.

A service cleans a record's values (normalise, validate, check duplicates) and saves or
deletes it in one transaction on behalf of an actor. Screens, REST, CLI, import and the worker
call it. A `before_flush` hook runs the same `clean()` on every new or changed record, so even
a write that bypasses the service cannot store invalid data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from flask_babel import gettext
from sqlalchemy import ColumnElement, event, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import RelationshipDirection, Session

from app.access import assignable_user_ids, entity_name, is_scoped, role_names, scope_clause
from app.errors import AccessDenied, ErrorCollector, ValidationFailed
from app.validators import clean_text
from customfields import CustomFieldsMixin
from customfields.values import (
    check_references,
    check_unique,
    clean_custom,
    compiled_formulas,
    compute_formulas,
)
from models.base import Choices, utcnow
from models.security import CrmUser

_SERVICES: dict[type, RecordService] = {}


def service_for(model: type) -> RecordService | None:
    return _SERVICES.get(model)


def many_to_one_columns(model: type) -> dict[str, str]:
    """Many-to-one relationship name -> its foreign-key column (province -> province_code)."""
    result = {}
    for rel in inspect(model).relationships:
        if rel.direction is RelationshipDirection.MANYTOONE and len(rel.local_columns) == 1:
            result[rel.key] = next(iter(rel.local_columns)).key
    return result


#: in column_values(): the foreign keys whose parent is new (no id before the flush inserts it)
PENDING_KEY = "__pending__"


def parent_is_new(values: dict[str, Any], column: str) -> bool:
    """Whether `column` is unset only because its parent is new (set by the flush)."""
    return column in values.get(PENDING_KEY, ())


def column_values(item: Any) -> dict[str, Any]:
    """The record's column values as a dict (what clean() works on).

    A many-to-one relationship set on the object but not yet flushed wins over its stale
    foreign-key column, as it will at flush time.
    """
    mapper = inspect(type(item))
    values = {attr.key: getattr(item, attr.key) for attr in mapper.column_attrs}
    for rel_key, column in many_to_one_columns(type(item)).items():
        if rel_key in item.__dict__:
            target = item.__dict__[rel_key]
            # an unknown id sent to the API arrives as a new, transient object: keep its key
            values[column] = (
                None if target is None else inspect(target).mapper.primary_key_from_instance(target)[0]
            )
            if target is not None and values[column] is None:  # a new parent, inserted first
                values.setdefault(PENDING_KEY, set()).add(column)
    return values


def apply_values(session: Session, item: Any, values: dict[str, Any], cleaned: dict[str, Any]) -> None:
    """Write cleaned values back, keeping relationships and their keys in step."""
    column_to_rel = {col: rel for rel, col in many_to_one_columns(type(item)).items()}
    for key, value in cleaned.items():
        if values.get(key) == value:
            continue
        setattr(item, key, value)
        rel_key = column_to_rel.get(key)
        if rel_key and rel_key in item.__dict__:
            target_model = inspect(type(item)).relationships[rel_key].mapper.class_
            setattr(item, rel_key, session.get(target_model, value) if value is not None else None)


class RecordService:
    """Base service. Subclasses set `model` and implement `check()`."""

    model: ClassVar[type]
    #: column -> Choices; validated here and used by the views for select widgets
    choices: ClassVar[dict[str, Choices]] = {}
    #: column -> an `app.validators` cleaner (normalises, raises ValueError with the message)
    cleaners: ClassVar[dict[str, Callable[[Any], Any]]] = {}
    #: column -> the message when it is empty
    required: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "model" in cls.__dict__:
            _SERVICES[cls.model] = cls()

    # --- rules --------------------------------------------------------------------------
    def clean(self, session: Session, values: dict[str, Any], pk: Any = None) -> dict[str, Any]:
        """Return normalised values, or raise ValidationFailed with every field's errors."""
        errors = ErrorCollector()
        cleaned = dict(values)
        for column, choices in self.choices.items():
            value = cleaned.get(column)
            if value in ("", None):
                cleaned[column] = None
            elif value not in choices:
                errors.add(column, _invalid_choice(choices))
        for column, cleaner in self.cleaners.items():
            self.clean_field(cleaned, errors, column, cleaner)
        pending = cleaned.get(PENDING_KEY, set())
        for column, message in self.required.items():
            if cleaned.get(column) in (None, "") and column not in errors.errors and column not in pending:
                errors.add(column, str(message))  # a lazy message, in the request language
        with session.no_autoflush:
            self.check(session, cleaned, pk, errors)
            if issubclass(self.model, CustomFieldsMixin):
                self.clean_custom(session, cleaned, pk, errors)
        errors.raise_if_any()
        cleaned.pop(PENDING_KEY, None)
        return cleaned

    def clean_custom(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        """Custom values through the custom-field engine: only what changed is checked."""
        entity = entity_name(self.model)
        stored = (
            session.scalar(select(self.model.custom).where(self.model.id == pk)) if pk is not None else None
        )
        stored = stored or {}
        given = values.get("custom") or {}
        changes = (
            given if not isinstance(given, dict) else {k: v for k, v in given.items() if stored.get(k) != v}
        )
        roles = role_names(session.info.get(ACTOR_KEY))
        merged, problems = clean_custom(session, entity, changes, stored, pk is None, roles)
        check_unique(session, self.model, entity, merged, pk, problems)
        changed = set(changes) if isinstance(changes, dict) else set()
        check_references(session, entity, merged, changed, problems)
        formulas = compiled_formulas(session, self.model)
        if formulas and not problems:
            compute_formulas(formulas, {k: v for k, v in values.items() if k != "custom"}, merged)
        for field, messages in problems.items():
            for message in messages:
                errors.add(field, message)
        values["custom"] = merged

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        """Normalise `values` in place and add an error per broken rule."""

    def clean_field(self, values: dict[str, Any], errors: ErrorCollector, field: str, cleaner: Any) -> None:
        """Apply one `app.validators` cleaner to a field, recording its message on failure."""
        try:
            values[field] = cleaner(values.get(field))
        except ValueError as exc:
            errors.add(field, str(exc))

    # --- writes -------------------------------------------------------------------------
    def authorize(self, session: Session, item: Any, actor: CrmUser | None) -> None:
        """Raise AccessDenied when the actor may not write this record (override per entity)."""

    def save(self, session: Session, item: Any, actor: CrmUser | None) -> Any:
        """Insert or update `item` for `actor` in one transaction.

        Nothing is flushed before the actor is set: touching an expired record would autoflush
        its pending changes without one (a stage move recorded with nobody as its author).
        """
        with acting_as(session, actor), write_transaction(session):
            with session.no_autoflush:
                state = inspect(item)
                is_new = state.transient or state.pending
                if actor is not None and hasattr(item, "updated_by_id"):
                    if is_new:
                        item.created_by_id = actor.id
                    item.updated_by_id = actor.id
                if hasattr(item, "updated_at"):
                    item.updated_at = utcnow()
                session.add(item)
                self.before_save(session, item, actor, is_new)
                require_writable(session, item, actor)
                self.authorize(session, item, actor)
            session.flush()
            self.after_save(session, item)
        return item

    def before_save(self, session: Session, item: Any, actor: CrmUser | None, is_new: bool) -> None:
        """Defaults that depend on the actor (the owner, say); override per entity."""

    def after_save(self, session: Session, item: Any) -> None:
        """Work on the saved, cleaned record before the commit (it has its id); override per entity."""

    def before_delete(self, session: Session, item: Any) -> None:
        """Work that must happen in the deleting transaction; override per entity."""

    def delete(self, session: Session, item: Any, actor: CrmUser | None) -> None:
        with acting_as(session, actor), write_transaction(session):
            with session.no_autoflush:
                require_writable(session, item, actor)
                self.authorize(session, item, actor)
                self.before_delete(session, item)
            session.delete(item)


#: where save() leaves the acting user for the data-layer hook (field permissions need it)
ACTOR_KEY = "keguan.actor"


@contextmanager
def acting_as(session: Session, actor: CrmUser | None) -> Iterator[None]:
    session.info[ACTOR_KEY] = actor
    try:
        yield
    finally:
        session.info.pop(ACTOR_KEY, None)


@contextmanager
def write_transaction(session: Session) -> Iterator[None]:
    """The one place services commit: all or nothing, a constraint violation becomes a 400."""
    try:
        yield
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise ValidationFailed({"_schema": [_integrity_message()]}) from exc
    except Exception:
        session.rollback()
        raise


def unindexed(column: Any) -> ColumnElement[Any]:
    """A text column as a plain filter no index can answer (`status || ''`). SQLite without
    statistics takes any indexed equality as selective: `status = 'open'` walked every open task
    of the company instead of the 5,000 customers' own through their customer_id index."""
    return column.concat("")


def text_up_to(max_length: int) -> Callable[[Any], str | None]:
    """A cleaner for plain text: trimmed, half-width, at most `max_length` characters."""
    return lambda value: clean_text(value, max_length)


def _invalid_choice(choices: Choices) -> str:
    return gettext("不是有效的选项,可选: %(options)s", options=", ".join(choices.codes))


def _integrity_message() -> str:
    return gettext("与已有记录冲突 (唯一或关联约束),未保存")


@event.listens_for(Session, "before_flush")
def _clean_before_flush(session: Session, flush_context: Any, instances: Any) -> None:
    """The data-layer guarantee: every new or changed record passes its service's clean()."""
    for item in list(session.new) + [o for o in session.dirty if session.is_modified(o)]:
        service = _SERVICES.get(type(item))
        if service is None:
            continue
        values = column_values(item)
        identity = inspect(item).identity
        cleaned = service.clean(session, values, pk=identity[0] if identity else None)
        apply_values(session, item, values, cleaned)


class OwnedRecordService(RecordService):
    """What every owned record (customer, lead, opportunity, task) shares: the owner defaults to
    its creator, may only be someone inside the actor's data scope, and the row keeps the
    owner's department so that data scope is one indexed condition on the table."""

    def check_owner(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        if pk is not None and not values.get("owner_id"):
            errors.add("owner", gettext("请选择负责人"))  # a new record defaults to its creator
        if values.get("owner_id"):
            values["department_id"] = session.scalar(
                select(CrmUser.department_id).where(CrmUser.id == values["owner_id"])
            )

    def before_save(self, session: Session, item: Any, actor: CrmUser | None, is_new: bool) -> None:
        if is_new and item.owner_id is None and item.owner is None and actor is not None:
            item.owner = session.get(CrmUser, actor.id)  # the relationship, which wins at flush

    def authorize(self, session: Session, item: Any, actor: CrmUser | None) -> None:
        """A user may only give a record to someone inside their own data scope."""
        if actor is None:
            return
        owner_id = item.owner.id if item.owner is not None else item.owner_id
        identity = inspect(item).identity
        if identity is not None:
            model = type(item)
            if session.scalar(select(model.owner_id).where(model.id == identity[0])) == owner_id:
                return  # the owner stays: a write collaborator edits without being able to assign
        allowed = assignable_user_ids(session, actor)
        if allowed is not None and owner_id not in allowed:
            raise AccessDenied({"owner": [gettext("您只能分配给自己数据权限内的人员")]})


def require_writable(session: Session, item: Any, actor: CrmUser | None) -> None:
    """Raise AccessDenied when the actor may see but not change the record (a read-only
    collaborator's customer) or, for a new child record (a contact, a follow-up), its parent.
    The rows are read from the database, as they were before this change."""
    model = type(item)
    if actor is None or not is_scoped(model):
        return
    state = inspect(item)
    if state.identity is not None:
        target, record_id = model, state.identity[0]
    else:
        parent = getattr(model, "__scope_parent__", None)
        if not parent:
            return  # a new owned record: the owner rules decide (authorize)
        relationship = getattr(model, parent).property
        target = relationship.mapper.class_
        (foreign_key,) = relationship.local_columns
        loaded = item.__dict__.get(parent)
        record_id = inspect(loaded).identity[0] if loaded is not None and inspect(loaded).identity else None
        record_id = record_id or getattr(item, foreign_key.key)
        if record_id is None:
            return  # a new parent, created in the same transaction
    clause = scope_clause(session, target, actor, write=True)
    (key,) = inspect(target).primary_key
    if clause is not None and session.scalar(select(key).where(key == record_id, clause)) is None:
        raise AccessDenied(gettext("您对该记录只有查看权限,不能修改"))


def require_visible(
    session: Session, model: type, record_id: Any, actor: CrmUser | None, field: str, label: Any
) -> None:
    """Raise AccessDenied unless the record exists within the actor's data scope (None: system)."""
    if actor is None or record_id is None:
        return
    clause = scope_clause(session, model, actor)
    query = select(model.id).where(model.id == record_id)
    if clause is not None:
        query = query.where(clause)
    if session.scalar(query) is None:
        raise AccessDenied({field: [gettext("您无权访问该%(what)s", what=label)]})
