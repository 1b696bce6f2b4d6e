"""The one search box: customers and contacts by name, mobile/phone prefix or e-mail; and the
pickers of select boxes for other large tables (an order or a ticket by number).

Fast at a million rows because every branch uses an index:
- phone and e-mail: an indexed prefix range (`mobile >= '138' AND mobile < '139'`), portable
  and usable by the B-tree on SQLite, PostgreSQL and MySQL (LIKE 'x%' is not, on SQLite);
- indexed custom fields (text, e-mail, phone, URL, select): exact value, through their
  expression index (a licence or contract number typed in full);
- names: exact and prefix matches first (the name index), then "contains" through a trigram
  index: SQLite FTS5 (tokenize=trigram), PostgreSQL pg_trgm (GIN); MySQL scans. A trigram
  index cannot serve fewer than 3 characters (东营): such a query scans customer names, but
  unordered and capped, so it stops at the first matches (only a rare 2-character fragment
  reads the whole table); contacts' names go by prefix below 3 characters (CONTAINS_MIN_LENGTH).
Every query goes through the data scope of the acting user (app.access).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, and_, column, func, literal, or_, select, text
from sqlalchemy.orm import Session

from app.access import scope_clause
from app.crypto import blind_index
from app.customfields import visible_fields
from app.permissions import FieldPolicy, field_policy
from app.validators import clean_id_number, clean_text  # clean_id_number: encryption at rest
from customfields.query import TEXTUAL, custom_sql, sensitive_condition, storage_kind  # sensitive_:
from customfields.values import FIELD_PREFIX
from models.customers import Contact, Customer
from models.orders import Order
from models.sales import Lead, Opportunity
from models.security import CrmUser
from models.service import Ticket

MAX_RESULTS = 50
#: Shortest query for a "contains" match. Company names are searched by a fragment from
#: 2 characters (华泰 in 东营华泰化工); people's names, which start with the surname, by prefix
#: below 3 (王芳 finds 王芳芳), where the trigram index starts to serve "contains".
CONTAINS_MIN_LENGTH = {"crm_customer": 2, "crm_contact": 3}
_PHONE_LIKE = re.compile(r"^[+\d][\d\s\-()]{2,}$")


@dataclass(frozen=True)
class SearchHit:
    kind: str  # "customer" or "contact"
    id: int
    name: str
    detail: str
    rank: int  # 0 exact, 1 prefix, 2 contains

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "name": self.name, "detail": self.detail, "rank": self.rank}


def prefix_range(column: Any, prefix: str) -> ColumnElement[bool]:
    """`column` starts with `prefix`, as a range the B-tree index can serve on every database."""
    return and_(column >= prefix, column < prefix + "\U0010ffff")


def _phone_prefix(query: str) -> str | None:
    if not _PHONE_LIKE.match(query):
        return None
    digits = re.sub(r"[\s\-()]", "", query)
    for code in ("+86", "0086"):
        if digits.startswith(code):
            digits = digits[len(code) :]
    return digits if digits.isdigit() and len(digits) >= 3 else None


def name_contains(session: Session, model: type, query: str) -> ColumnElement[bool]:
    """`model.name` contains `query`, through the dialect's trigram index where there is one."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite" and len(query) >= 3:
        table = f"{model.__tablename__}_fts"  # crm_customer_fts, crm_contact_fts
        fts = text(f"SELECT rowid FROM {table} WHERE name LIKE :pattern").bindparams(
            pattern=f"%{query}%"  # FTS5 trigram LIKE: no ESCAPE clause, wildcards are rare in names
        )
        return model.id.in_(fts.columns(column("rowid", Integer)))
    return model.name.like(f"%{_escape_like(query)}%", escape="\\")


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_statements(
    session: Session,
    actor: CrmUser | None,
    query: str,
    limit: int,
    kinds: tuple[str, ...] = ("customer", "contact"),
) -> list[tuple[str, Select]]:
    """The SELECTs one search runs, each bounded and served by an index where there is one.

    Prefix matches come in index order (ORDER BY the column, which the B-tree gives for free);
    "contains" matches come unordered and capped, so a common fragment stops early instead of
    sorting every match. Ranking happens on the few rows fetched.
    """
    statements = []
    for kind, model in (("customer", Customer), ("contact", Contact)):
        if kind not in kinds:
            continue
        scope = scope_clause(session, model, actor)
        columns = (
            model.id,
            model.name,
            func.coalesce(model.mobile, model.email, literal("")),
            model.mobile,
            model.phone,
            model.email,
        )
        # field permissions: no match through a field the actor may not search by (hidden, masked)
        policy = field_policy(session, actor, model)
        custom = _custom_conditions(session, model, actor, query, policy)
        standard = [  # each by its column; "contains" (no index order) is on the name
            (condition, order_by, cap)
            for condition, order_by, cap in _conditions(session, model, query, limit)
            if policy.searchable(order_by.key if order_by is not None else "name")
        ]
        for condition, order_by, cap in standard + custom:
            stmt = select(*columns).where(condition, scope)
            if order_by is not None:
                stmt = stmt.order_by(order_by)
            statements.append((kind, stmt.limit(cap)))
    return statements


def search(
    session: Session,
    actor: CrmUser | None,
    raw_query: str,
    limit: int = 20,
    kinds: tuple[str, ...] = ("customer", "contact"),
) -> list[SearchHit]:
    """Customers then contacts the actor may see, best matches first."""
    query = clean_text(raw_query) or ""
    limit = max(1, min(limit, MAX_RESULTS))
    if not query:
        return []
    phone = _phone_prefix(query)
    best: dict[tuple[str, int], SearchHit] = {}
    models = {"customer": Customer, "contact": Contact}
    policies = {kind: field_policy(session, actor, model) for kind, model in models.items()}
    for kind, stmt in search_statements(session, actor, query, limit, kinds):
        for row in session.execute(stmt):
            name, detail = _shown(policies[kind], row)
            hit = SearchHit(kind, row[0], name, detail, _rank(row, query, phone))
            key = (kind, hit.id)
            if key not in best or hit.rank < best[key].rank:
                best[key] = hit
    ordered = sorted(best.values(), key=lambda h: (h.rank, h.kind != "customer", len(h.name), h.name))
    return ordered[:limit]


def _shown(policy: FieldPolicy, row: Any) -> tuple[str, str]:
    """The name and the mobile (or e-mail) of a hit as the actor may see them in a list."""
    name = "***" if policy.hidden("name") else policy.show("name", row.name, True)
    for field in ("mobile", "email"):
        value = getattr(row, field)
        if value and not policy.hidden(field):
            return name, policy.show(field, value, True)
    return name, ""


def _rank(row: Any, query: str, phone: str | None) -> int:
    """0 exact, 1 prefix, 2 contains: on the number for phone searches, else name or e-mail."""
    if phone:
        values = [v for v in (row.mobile, row.phone) if v]
        target = phone
    elif "@" in query:
        values, target = [row.email or ""], query.lower()
    else:
        values, target = [row.name], query
    if any(v == target for v in values):
        return 0
    if any(v.startswith(target) for v in values):
        return 1
    return 2


# --- encryption at rest ---
#: an 18-character resident ID number (checked by its checksum before the search)
_ID_NUMBER = re.compile(r"^\d{17}[\dXx]$")
#: a bank account number as typed: digits, maybe grouped by spaces or hyphens
_BANK_ACCOUNT = re.compile(r"^\d[\d\s\-]{6,48}\d$")


def _conditions(session: Session, model: type, query: str, limit: int) -> list[tuple[Any, Any, int]]:
    """The plain conditions, plus exact matches on encrypted columns through their blind index."""
    return _encrypted_conditions(model, query, limit) + _plain_conditions(session, model, query, limit)


def _encrypted_conditions(model: type, query: str, limit: int) -> list[tuple[Any, Any, int]]:
    """An ID number or bank account typed in full: its blind index against the stored ones.

    The "order" column is the encrypted column itself: it names the field for the permission
    check (a user who may not search by it gets no match through it); the few rows an equal
    blind index finds are not worth ordering otherwise.
    """
    indexes = getattr(model, "__blind_indexes__", {})
    found = []
    compact = re.sub(r"[\s\-]", "", query)
    if "id_number" in indexes and _ID_NUMBER.match(compact) and clean_id_number_or_none(compact):
        index, purpose = indexes["id_number"]
        found.append((getattr(model, index) == blind_index(compact, purpose), model.id_number, limit))
    if "bank_account" in indexes and _BANK_ACCOUNT.match(query):
        index, purpose = indexes["bank_account"]
        found.append((getattr(model, index) == blind_index(compact, purpose), model.bank_account, limit))
    return found


def clean_id_number_or_none(text: str) -> str | None:
    try:
        return clean_id_number(text)
    except ValueError:
        return None


def _plain_conditions(session: Session, model: type, query: str, limit: int) -> list[tuple[Any, Any, int]]:
    """(condition, index order or None, row cap) for each indexed way to match this query."""
    phone = _phone_prefix(query)
    if phone:
        return [
            (prefix_range(model.mobile, phone), model.mobile, limit),
            (
                or_(prefix_range(model.phone, phone), prefix_range(model.phone, _dashed(phone))),
                model.phone,
                limit,
            ),
        ]
    if "@" in query:
        email = query.lower()
        return [(prefix_range(model.email, email), model.email, limit)]
    conditions = [(prefix_range(model.name, query), model.name, limit)]
    if len(query) >= CONTAINS_MIN_LENGTH.get(model.__tablename__, 3):
        conditions.append((name_contains(session, model, query), None, limit * 3))
    return conditions


def _custom_conditions(
    session: Session, model: type, actor: CrmUser | None, query: str, policy: FieldPolicy | None = None
) -> list[tuple]:
    """Exact matches on the indexed text-like custom fields the actor may see (a licence number,
    a contract code): each served by the field's expression index; not those masked for them."""
    conditions = []
    for field in visible_fields(session, model, actor):
        if policy is not None and not policy.searchable(FIELD_PREFIX + field.api_name):
            continue
        if field.indexed and getattr(field, "sensitive", False):
            conditions.append((sensitive_condition(model, field, "eq", query), None, MAX_RESULTS))
        elif field.indexed and storage_kind(field) in TEXTUAL | {"select"}:
            value = query.lower() if field.field_type == "email" else query
            conditions.append((custom_sql(model, field) == value, None, MAX_RESULTS))
    return conditions


def _dashed(digits: str) -> str:
    """0546812 -> 0546-812: landlines are stored with a dash after the area code."""
    if not digits.startswith("0") or len(digits) < 4:
        return digits
    area = 3 if digits[1] in "12" else 4
    return digits[:area] + "-" + digits[area:]


# --- pickers: a record of another kind chosen by typing (a select box's search) ----------------------
@dataclass(frozen=True)
class Picker:
    """How a select box finds records of a kind too large to list: the column typed into (an
    indexed number or name, matched by prefix in index order) and the label of a hit."""

    model: type
    column: str


#: kind -> picker; customers and contacts go through search() above
PICKERS: dict[str, Picker] = {
    "order": Picker(Order, "number"),
    "opportunity": Picker(Opportunity, "name"),
    "ticket": Picker(Ticket, "number"),
    "lead": Picker(Lead, "name"),  # a follow-up's or task's lead, by the contact's name
}


def visible_record(session: Session, actor: CrmUser | None, model: type, pk: int) -> Any | None:
    """The record of `model` with primary key `pk` if the actor may see it (a chosen value's label)."""
    scope = scope_clause(session, model, actor)
    return session.scalar(select(model).where(model.id == pk, *([] if scope is None else [scope])))


def pick(
    session: Session,
    actor: CrmUser | None,
    kind: str,
    raw_query: str = "",
    limit: int = 20,
    pk: int | None = None,
) -> list[SearchHit]:
    """Records of `kind` the actor may see whose column starts with the query, in the column's
    order, or the one with primary key `pk` (to label a chosen value)."""
    picker = PICKERS[kind]
    model = picker.model
    if pk is not None:
        row = visible_record(session, actor, model, pk)
        return [SearchHit(kind, row.id, str(row), "", 0)] if row is not None else []
    query = clean_text(raw_query) or ""
    if not query:
        return []
    column = getattr(model, picker.column)
    scope = scope_clause(session, model, actor)
    stmt = select(model).where(prefix_range(column, query), *([] if scope is None else [scope]))
    rows = session.scalars(stmt.order_by(column).limit(max(1, min(limit, MAX_RESULTS))))
    return [SearchHit(kind, row.id, str(row), "", 1) for row in rows]
