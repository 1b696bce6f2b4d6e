"""Field permissions (字段权限): the one module that decides, per user, entity and field, whether a
value is hidden, masked or read-only, and that masks it.

An admin keeps the rules in the browser (`FieldRule`, one row per role, entity and field). Every
reader asks this module: the screens (lists, detail pages, forms: views/base.py), the REST API
(views/base.py), the search box (app/search.py), exports (views/base.py), the duplicate check
(app/customers.py), custom fields (customfields/definitions.py asks through a hook) and the
dashboards (`visible_field_names`).

Modes: `hidden` (never shown, never written), `masked` (shown masked on every page, not
changed by the role once the record exists), `masked_list` (masked in lists, search results and
exports; plain on the record's own page), `read_only` (shown, never written). A user with
several roles gets per field the least restrictive of them; a role without a rule for the field
is not restricted. Admin has no rules by default.

Rules are read per request (at most once per role set and entity) and never kept longer, so an
admin's change applies from the user's next request, on every worker.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import has_request_context
from flask_appbuilder.security.sqla.models import Role
from flask_babel import gettext
from flask_babel import lazy_gettext as _
from sqlalchemy import Numeric, inspect, select
from sqlalchemy.orm import Session

import models  # noqa: F401  (every model registers itself before the entity list is built)
from app.access import entity_name, is_scoped, request_cache
from app.errors import ErrorCollector
from app.extensions import db
from app.services import RecordService, many_to_one_columns
from customfields.definitions import CustomField, bump_version, configure_field_policy, definitions
from customfields.mixin import CUSTOMISABLE
from customfields.values import FIELD_PREFIX
from models.base import Choices, Model
from models.permissions import FIELD_MODES, FieldRule, FieldRuleDefault
from models.security import CrmUser

#: form names of custom fields (views/custom_forms.PREFIX), kept here so app/ needs no view
FORM_PREFIX = "custom__"
#: least restrictive first: a user with several roles gets the first of their roles' modes
STRICTNESS = ("read_only", "masked_list", "masked", "hidden")
#: what a masked amount shows
HIDDEN_AMOUNT = "***"


# --- the entities and their fields ---------------------------------------------------------------
def rule_models() -> dict[str, type]:
    """Entity name -> model, for every record an admin may set field rules on: the customisable
    ones and every model filtered by data scope."""
    found: dict[str, type] = {}
    for mapper in Model.registry.mappers:
        model = mapper.class_
        table = getattr(model, "__tablename__", "")
        if table.startswith("crm_") and (model in CUSTOMISABLE.values() or is_scoped(model)):
            found[entity_name(model)] = model
    return dict(sorted(found.items()))


def entity_choices() -> Choices:
    labels = [(name, getattr(m, "__entity_label__", None) or name) for name, m in rule_models().items()]
    return Choices(*labels)


def standard_fields(model: type) -> list[str]:
    """Columns and relations of a model a rule may name (not its primary key, not `custom`)."""
    mapper = inspect(model)
    keys = {column.key for column in mapper.column_attrs} | {rel.key for rel in mapper.relationships}
    primary = {column.key for column in mapper.primary_key}
    return sorted(keys - primary - {"custom"})


#: Values a model shows that are made of other fields: the address shows the street
DERIVED_FIELDS: dict[str, tuple[str, ...]] = {"address": ("street",)}


def aliases(model: type, name: str) -> set[str]:
    """The names one rule covers: a relation and its foreign key (owner, owner_id) and what shows
    the field (address, made of street)."""
    names = {name}
    relations = many_to_one_columns(model)
    for relation, column in relations.items():
        if name in (relation, column):
            names |= {relation, column}
    blind = getattr(model, "__blind_indexes__", {})  # an encrypted column's exact-search index
    if name in blind:
        names.add(blind[name][0])
    derived = {**DERIVED_FIELDS, **getattr(model, "__derived_fields__", {})}
    names |= {shown for shown, sources in derived.items() if name in sources}
    return names


def field_key(name: str) -> str:
    """The rule name of a column, an API key or a form field: owner.username -> owner,
    custom__grade -> custom.grade."""
    if name.startswith(FORM_PREFIX):
        return FIELD_PREFIX + name[len(FORM_PREFIX) :]
    if name.startswith(FIELD_PREFIX):
        return name
    return name.split(".", 1)[0]


# --- masking: one function per kind of value -----------------------------------------------------
def mask_mobile(text: str) -> str:
    """13812341234 -> 138****1234 (a landline 0546-8123456 -> 054****3456)."""
    return text[:3] + "****" + text[-4:] if len(text) >= 8 else mask_default(text)


def mask_id_number(text: str) -> str:
    """370502199001011234 -> 370502********1234: the region stays, the birth date goes."""
    return text[:6] + "*" * (len(text) - 10) + text[-4:] if len(text) >= 11 else mask_default(text)


def mask_account(text: str) -> str:
    """Bank accounts, tax numbers, credit codes: the first and last four (6222********1234)."""
    compact = text.replace(" ", "")
    if len(compact) >= 12:
        return compact[:4] + "*" * (len(compact) - 8) + compact[-4:]
    return mask_default(compact)


def mask_email(text: str) -> str:
    """wang.fang@example.cn -> w***@example.cn"""
    local, at, domain = text.partition("@")
    return (local[:1] + "***@" + domain) if at and local else mask_default(text)


def mask_name(text: str) -> str:
    """A person's name: 王芳 -> 王** (always two stars, so the length does not show)."""
    return text[:1] + "**" if text else text


def mask_amount(_value: Any) -> str:
    """Amounts are not masked by digit: any digit tells too much."""
    return HIDDEN_AMOUNT


def mask_default(text: str) -> str:
    """Anything else: all but the last four characters (a short value entirely)."""
    return "*" * (len(text) - 4) + text[-4:] if len(text) > 4 else "*" * len(text)


MASKS: dict[str, Callable[[str], str]] = {
    "mobile": mask_mobile,
    "id_number": mask_id_number,
    "account": mask_account,
    "email": mask_email,
    "name": mask_name,
    "amount": mask_amount,
    "default": mask_default,
}

#: kinds by column name, for models that declare nothing (`__mask__ = {"column": "kind"}` wins)
KINDS_BY_NAME = {
    "mobile": "mobile",
    "phone": "mobile",
    "id_number": "id_number",
    "bank_account": "account",
    "tax_number": "account",
    "credit_code": "account",
    "account": "account",
    "email": "email",
    "name": "name",
}
KINDS_BY_CUSTOM_TYPE = {
    "phone": "mobile",
    "email": "email",
    "currency": "amount",
    "decimal": "amount",
    "integer": "amount",
    "percent": "amount",
}


def mask_kind(model: type | None, name: str, custom: CustomField | None = None) -> str:
    """How a field is masked: the model's `__mask__` declaration, else the custom field's type,
    else the column's name or type (amounts), else the default."""
    key = field_key(name)
    declared = getattr(model, "__mask__", None) or {}
    if key in declared:
        return declared[key]
    if custom is not None:
        return KINDS_BY_CUSTOM_TYPE.get(custom.result_type or custom.field_type, "default")
    if key in KINDS_BY_NAME:
        return KINDS_BY_NAME[key]
    if model is not None:
        mapper = inspect(model)
        column = mapper.columns.get(key)
        numeric = column is not None and isinstance(column.type, Numeric)
        if key in getattr(model, "__money__", ()) or numeric:
            return "amount"
        relation = mapper.relationships.get(key)
        if relation is not None and issubclass(relation.mapper.class_, CrmUser):
            return "name"
    return "default"


def mask_value(kind: str, value: Any) -> Any:
    """A value as the masked user sees it (blanks stay blank; lists and dicts item by item)."""
    if value is None or value == "" or value == [] or value == {}:
        return value
    if isinstance(value, dict):
        return {k: mask_value(kind, v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [mask_value(kind, v) for v in value]
    if kind == "amount" or isinstance(value, bool | dt.date):
        return HIDDEN_AMOUNT
    return MASKS.get(kind, mask_default)(str(value))  # relations by their name, numbers as text


# --- rules per role set ---------------------------------------------------------------------------
def _role_rules(session: Session, roles: frozenset[str], entity: str) -> dict[str, str]:
    """Field -> mode for a set of role names, merged: least restrictive per field; a role without
    a rule for the field lifts it. Read once per request."""
    cache = request_cache("field_rules")
    key = (roles, entity)
    if key in cache:
        return cache[key]
    every = cache.get(roles)  # the rules of all entities: one query per request, not per entity
    if every is None:
        every = cache[roles] = (
            session.execute(
                select(FieldRule.entity, Role.name, FieldRule.field, FieldRule.mode)
                .join(Role, Role.id == FieldRule.role_id)
                .where(Role.name.in_(sorted(roles)))
            ).all()
            if roles
            else []
        )
    per_field: dict[str, dict[str, str]] = {}
    for rule_entity, role, name, mode in every:
        if rule_entity == entity and mode in STRICTNESS:
            per_field.setdefault(name, {})[role] = mode
    merged = {
        name: min(modes.values(), key=STRICTNESS.index)
        for name, modes in per_field.items()
        if set(modes) >= roles  # every role of the user restricts the field
    }
    cache[key] = merged
    return merged


@dataclass
class FieldPolicy:
    """What one user may do with the fields of one entity."""

    model: type | None
    #: rule name (and its aliases) -> mode; empty: no restriction
    modes: dict[str, str] = field(default_factory=dict)
    #: custom field definitions by rule name (custom.<api name>), for their masking kind
    custom: dict[str, CustomField] = field(default_factory=dict)

    def mode(self, name: str) -> str | None:
        return self.modes.get(field_key(name)) if self.modes else None

    def hidden(self, name: str) -> bool:
        return self.mode(name) == "hidden"

    def masked(self, name: str, in_list: bool) -> bool:
        mode = self.mode(name)
        return mode == "masked" or (in_list and mode == "masked_list")

    def searchable(self, name: str) -> bool:
        """Whether filtering, sorting or searching by the field is allowed: not when it is
        hidden or masked everywhere (a match would tell what the user may not read)."""
        return self.mode(name) not in ("hidden", "masked")

    def writable(self, name: str, creating: bool) -> bool:
        """Hidden and read-only fields are never written; a field masked everywhere may be filled
        in on a new record (the user types it) but not changed afterwards (they cannot see it)."""
        mode = self.mode(name)
        return mode in (None, "masked_list") or (creating and mode == "masked")

    def kind(self, name: str) -> str:
        key = field_key(name)
        return mask_kind(self.model, key, self.custom.get(key))

    def show(self, name: str, value: Any, in_list: bool) -> Any:
        """The value as this user sees it in a list (in_list) or on the record's own page."""
        return mask_value(self.kind(name), value) if self.masked(name, in_list) else value

    def names(self, *modes: str) -> set[str]:
        """Rule names with one of `modes` (custom fields also under their form names)."""
        found = {name for name, mode in self.modes.items() if mode in modes}
        return found | {FORM_PREFIX + n[len(FIELD_PREFIX) :] for n in found if n.startswith(FIELD_PREFIX)}

    # --- shaping what leaves the server -----------------------------------------------------------
    def shape_row(self, row: dict[str, Any], in_list: bool) -> dict[str, Any]:
        """A REST row without its hidden keys and with masked values masked (in place)."""
        if not self.modes:
            return row
        for key in list(row):
            if key == "custom" and isinstance(row[key], dict):
                custom = row[key]
                for api_name in list(custom):
                    name = FIELD_PREFIX + api_name
                    if self.hidden(name):
                        custom.pop(api_name)
                    else:
                        custom[api_name] = self.show(name, custom[api_name], in_list)
            elif self.hidden(key):
                row.pop(key)
            else:
                row[key] = self.show(key, row[key], in_list)
        return row

    def columns(self, names: Iterable[str]) -> list[str]:
        """`names` without the hidden ones, in order."""
        return [name for name in names if not self.hidden(name)]

    def refusals(self, data: dict[str, Any], current: Callable[[str], Any] | None) -> dict[str, list[str]]:
        """Messages for the fields in `data` this user may not write (`current` reads the stored
        value of an existing record; None when creating). A read-only or masked value sent
        back unchanged is not a change."""
        errors: dict[str, list[str]] = {}
        creating = current is None
        items = [(k, v) for k, v in data.items() if k != "custom"]
        if isinstance(data.get("custom"), dict):
            items += [(FIELD_PREFIX + k, v) for k, v in data["custom"].items()]
        for name, value in items:
            if self.writable(name, creating):
                continue
            mode = self.mode(name)
            if mode == "hidden":
                errors[name] = [gettext("您无权查看或修改该字段")]
                continue
            if creating:
                if not _blank(value):
                    errors[name] = [gettext("该字段只读,您无权填写")]
                continue
            stored = current(name) if current is not None else None
            if _same(value, stored) or (mode == "masked" and _same(value, self.show(name, stored, False))):
                continue
            if mode == "read_only":
                errors[name] = [gettext("该字段只读,您无权修改")]
            else:
                errors[name] = [gettext("该字段已脱敏,您无权修改")]
        return errors


    def writable_part(self, data: dict[str, Any], creating: bool) -> dict[str, Any]:
        """`data` without the fields the user may not write (after `refusals` found none changed:
        a masked value sent back as it was shown must not be stored)."""
        if not self.modes:
            return data
        kept = {k: v for k, v in data.items() if k == "custom" or self.writable(k, creating)}
        if isinstance(data.get("custom"), dict):
            kept["custom"] = {
                k: v for k, v in data["custom"].items() if self.writable(FIELD_PREFIX + k, creating)
            }
        return kept


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _same(given: Any, stored: Any) -> bool:
    """Whether a value sent by a client equals the stored one (numbers as numbers, relations by
    key, lists in any order)."""
    if _blank(given) and _blank(stored):
        return True
    if isinstance(stored, list) or isinstance(given, list):
        return sorted(map(str, given or [])) == sorted(map(str, stored or []))
    try:
        return Decimal(str(given)) == Decimal(str(stored))
    except (InvalidOperation, ValueError):
        return str(given) == str(stored)


def stored_value(item: Any, name: str) -> Any:
    """What a record holds for a field, as a client would send it: a relation by its key (a list
    of keys for to-many), a custom value by its API name."""
    key = field_key(name)
    if key.startswith(FIELD_PREFIX):
        return (getattr(item, "custom", None) or {}).get(key[len(FIELD_PREFIX) :])
    relation = inspect(type(item)).relationships.get(key)
    if relation is None:
        return getattr(item, key, None)
    value = getattr(item, key)
    if relation.uselist:
        return [inspect(v).identity[0] for v in value or []]
    return inspect(value).identity[0] if value is not None else None


def policy_for_roles(session: Session, roles: set[str] | None, model: type) -> FieldPolicy:
    """The policy of a set of role names on a model; None (the system itself) is unrestricted."""
    if roles is None:
        return FieldPolicy(model)
    entity = entity_name(model)
    rules = _role_rules(session, frozenset(roles), entity)
    if not rules:
        return FieldPolicy(model)
    modes: dict[str, str] = {}
    for name, mode in rules.items():
        names = {name} if name.startswith(FIELD_PREFIX) else aliases(model, name)
        for alias in names:  # an alias named by two rules keeps the stricter
            if alias not in modes or STRICTNESS.index(mode) > STRICTNESS.index(modes[alias]):
                modes[alias] = mode
    custom = {}
    if any(name.startswith(FIELD_PREFIX) for name in modes):
        custom = {FIELD_PREFIX + f.api_name: f for f in definitions(session, entity)}
    return FieldPolicy(model, modes, custom)


def field_policy(session: Session, user: CrmUser | None, model: type) -> FieldPolicy:
    """The current rules of `user` (None: the system, unrestricted) on `model`'s fields, built
    once per request."""
    if user is None or not getattr(user, "is_authenticated", False):
        return FieldPolicy(model)
    cache = request_cache("field_policy")
    key = (user.id, model)
    if key not in cache:
        cache[key] = policy_for_roles(session, {role.name for role in user.roles}, model)
    return cache[key]


def visible_field_names(session: Session, user: CrmUser | None, model: type) -> dict[str, str | None]:
    """For the dashboards: every field of `model` the user may see -> how (None: plain,
    "masked_list" / "masked": masked in aggregates and lists). Hidden fields are absent: a
    chart must not group or sum by them."""
    policy = field_policy(session, user, model)
    custom = [FIELD_PREFIX + f.api_name for f in definitions(session, entity_name(model))]
    names = standard_fields(model) + custom
    return {name: _display_mode(policy.mode(name)) for name in names if not policy.hidden(name)}


def _display_mode(mode: str | None) -> str | None:
    return mode if mode in ("masked", "masked_list") else None


# --- custom fields: their own visible_roles/editable_roles and these rules answer as one -----------
def custom_field_mode(definition: CustomField, roles: set[str]) -> str | None:
    """The rule mode of a custom field for a set of role names (the hook of the definitions)."""
    if not has_request_context():  # the CLI and the worker: the system, no rules
        return None
    rules = _role_rules(db.session, frozenset(roles), definition.entity)
    return rules.get(FIELD_PREFIX + definition.api_name)


configure_field_policy(custom_field_mode)


# --- the admin's rules: validation ----------------------------------------------------------------
class FieldRuleService(RecordService):
    """A rule names a known entity, a field that exists on it and a known mode."""

    model = FieldRule
    choices = {"mode": FIELD_MODES}
    required = {"mode": _("请选择权限")}

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        if not values.get("role_id"):
            errors.add("role", gettext("请选择角色"))
        entity = (values.get("entity") or "").strip().lower()
        name = (values.get("field") or "").strip()
        model = rule_models().get(entity)
        if not entity:
            errors.add("entity", gettext("请选择对象"))
        elif model is None:
            errors.add("entity", gettext("未知的对象:%(entity)s", entity=entity))
        values["entity"] = entity
        if not name:
            errors.add("field", gettext("请填写字段名"))
            return
        if model is None:
            return
        resolved = resolve_field(session, model, name)
        if resolved is None:
            errors.add(
                "field", gettext("对象「%(entity)s」没有字段「%(field)s」", entity=entity, field=name)
            )
            return
        values["field"] = resolved
        if values.get("role_id") and not errors:
            query = select(FieldRule.id).where(
                FieldRule.role_id == values["role_id"],
                FieldRule.entity == entity,
                FieldRule.field == resolved,
            )
            if pk is not None:
                query = query.where(FieldRule.id != pk)
            if session.scalar(query) is not None:
                errors.add("field", gettext("该角色已有此字段的规则,请修改那一条"))

    def after_save(self, session: Session, item: FieldRule) -> None:
        if item.field.startswith(FIELD_PREFIX):
            bump_version(session)  # custom-field schemas are cached per definitions version

    def before_delete(self, session: Session, item: FieldRule) -> None:
        if item.field.startswith(FIELD_PREFIX):
            bump_version(session)


def resolve_field(session: Session, model: type, name: str) -> str | None:
    """The stored name of a field typed by an admin, or None when the entity has no such field:
    a column or relation as is, a custom field as custom.<api name> (typed with or without
    the prefix)."""
    if name in standard_fields(model):
        return name
    api_name = name[len(FIELD_PREFIX) :] if name.startswith(FIELD_PREFIX) else name
    api_name = api_name.removeprefix(FORM_PREFIX).lower()
    if any(f.api_name == api_name for f in definitions(session, entity_name(model))):
        return FIELD_PREFIX + api_name
    return None


# --- defaults for the built-in roles --------------------------------------------------------------
#: every built-in role but Finance and Admin
NOT_FINANCE = ("Sales Rep", "Sales Manager", "Marketing", "Support Agent", "Read Only")
#: (roles, entity, field, mode): finance fields for Finance and Admin only; the individual's ID
#: number masked for everyone else; a rep's lists, search results and exports show mobiles
#: masked (the record's own page shows them: a rep calls their customers, but a list of a
#: thousand numbers is what walks out of the door with a leaving rep)
DEFAULT_RULES: list[tuple[tuple[str, ...], str, str, str]] = [
    *[
        (NOT_FINANCE, "customer", name, "hidden")
        for name in ("credit_limit", "bank_name", "bank_account", "tax_number", "invoice_title")
    ],
    (NOT_FINANCE, "customer", "invoice_address_phone", "hidden"),
    *[
        (NOT_FINANCE, "invoice", name, "hidden")
        for name in ("tax_number", "bank_name", "bank_account", "address_phone")
    ],
    *[(NOT_FINANCE, "order", name, "hidden") for name in ("paid_amount", "invoiced_amount")],
    (NOT_FINANCE, "payment_plan", "collected_amount", "hidden"),
    (NOT_FINANCE, "payment", "account", "hidden"),
    (NOT_FINANCE, "customer", "id_number", "masked"),
    (("Sales Rep",), "customer", "mobile", "masked_list"),
    (("Sales Rep",), "contact", "mobile", "masked_list"),
]


def seed_default_rules(session: Session) -> int:
    """Add the default rules that were never seeded (an admin's later change or deletion wins;
    a field a newer version adds, such as the ID number, is seeded when it appears). Returns
    how many rules were added; the caller commits."""
    models_by_entity = rule_models()
    roles = {role.name: role.id for role in session.scalars(select(Role))}
    seeded = set(session.scalars(select(FieldRuleDefault.key)))
    added = 0
    for role_names, entity, name, mode in DEFAULT_RULES:
        model = models_by_entity.get(entity)
        if model is None or name not in standard_fields(model):
            continue
        for role_name in role_names:
            key = f"{role_name}·{entity}·{name}"
            if role_name not in roles or key in seeded:
                continue
            exists = session.scalar(
                select(FieldRule.id).where(
                    FieldRule.role_id == roles[role_name], FieldRule.entity == entity, FieldRule.field == name
                )
            )
            if exists is None:
                session.add(FieldRule(role_id=roles[role_name], entity=entity, field=name, mode=mode))
                added += 1
            session.add(FieldRuleDefault(key=key))
            seeded.add(key)
    return added
