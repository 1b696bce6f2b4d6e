"""Data scope (数据权限): which rows a user may see, in one place.

Every list, detail page, REST call, search, export and dashboard asks `scope_clause()` for the
SQL condition of the acting user, so the rule cannot drift between screens. Roles carry a
scope (self, self and subordinates, own department, department and sub-departments, all) in
`crm_role_data_scope`; a user with several roles gets the widest.

The department tree and the manager chain are small (hundreds of rows) and are read once per
request into `g`, so a page costs two tiny queries for scope, not one per row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from flask import current_app, has_request_context, request
from flask_appbuilder.models.filters import BaseFilter
from sqlalchemy import ColumnElement, and_, false, inspect, or_, select, true, union
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import True_

from app.clock import local_today
from models.base import OwnedMixin
from models.customers import Customer
from models.pools import CustomerPool, CustomerTeamMember, pool_department
from models.security import DATA_SCOPES, CrmUser, Department, RoleDataScope

SCOPE_ORDER = DATA_SCOPES.codes  # narrowest first

#: Scopes given to the built-in roles when they are created; an admin changes them in 设置.
DEFAULT_ROLE_SCOPES: dict[str, str] = {
    "Admin": "all",
    "Sales Manager": "department_tree",
    "Sales Rep": "self",
    "Marketing": "all",
    "Support Agent": "all",
    "Finance": "all",
    "Read Only": "department",
}


def request_cache(key: str) -> dict[Any, Any]:
    """A dict that lives exactly as long as the current request (throwaway outside requests).

    Kept in the WSGI environ rather than `g`: `g` belongs to the app context, which can
    outlive a request (a CLI command, a test), and a role change must show on the next request.
    """
    if not has_request_context():
        return {}
    cache = request.environ.setdefault("keguan.cache", {})
    return cache.setdefault(key, {})


def user_scope(session: Session, user: CrmUser, entity: str = "*") -> str:
    """The widest scope among the user's roles for an entity ('*' rows are the default)."""
    cache = request_cache("scope")
    key = (user.id, entity)
    if key in cache:
        return cache[key]
    every = cache.get(user.id)  # the rows of all entities: one query per request, not per entity
    if every is None:
        role_ids = [role.id for role in user.roles]
        every = cache[user.id] = session.execute(
            select(RoleDataScope.role_id, RoleDataScope.entity, RoleDataScope.scope).where(
                RoleDataScope.role_id.in_(role_ids)
            )
        ).all()
    rows = [row for row in every if row.entity in (entity, "*")]
    per_role: dict[int, str] = {}
    for role_id, _entity, scope in sorted(rows, key=lambda r: r.entity != "*"):
        per_role[role_id] = scope  # the entity-specific row, sorted last, wins for its role
    widest = max(
        per_role.values(),
        key=lambda s: SCOPE_ORDER.index(s) if s in SCOPE_ORDER else -1,
        default="self",
    )
    cache[key] = widest
    return widest


def _children_map(session: Session, column_pairs: Iterable[tuple[int, int | None]]) -> dict:
    children: dict[int | None, list[int]] = defaultdict(list)
    for node_id, parent_id in column_pairs:
        children[parent_id].append(node_id)
    return children


def _descendants(children: dict[int | None, list[int]], root: int) -> set[int]:
    found, stack = {root}, [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def department_tree_ids(session: Session, department_id: int) -> set[int]:
    """The department and every department below it."""
    cache = request_cache("departments")
    if "children" not in cache:
        pairs = session.execute(select(Department.id, Department.parent_id)).all()
        cache["children"] = _children_map(session, pairs)
    return _descendants(cache["children"], department_id)


def subordinate_ids(session: Session, user_id: int) -> set[int]:
    """The user and everyone who reports to them, directly or further down (下属)."""
    cache = request_cache("managers")
    if "children" not in cache:
        pairs = session.execute(select(CrmUser.id, CrmUser.manager_id)).all()
        cache["children"] = _children_map(session, pairs)
    return _descendants(cache["children"], user_id)


def current_actor() -> CrmUser | None:
    """The user of this request (session login, JWT or API key), or None outside requests."""
    if not has_request_context():
        return None
    user = current_app.appbuilder.sm.current_user
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def role_names(user: CrmUser | None) -> set[str] | None:
    """The user's role names for field permissions; None means the system itself (no filter)."""
    return None if user is None else {role.name for role in user.roles}


def entity_name(model: type) -> str:
    return getattr(model, "__tablename__", model.__name__).removeprefix("crm_")


def _is_active(user: CrmUser | None) -> bool:
    return user is not None and bool(getattr(user, "is_authenticated", False)) and bool(user.is_active)


def _owner_terms(session: Session, model: type, user: CrmUser | None) -> bool | list[tuple[Any, list[int]]]:
    """The data scope on an owned model's own columns: True (every row), False (none), or the
    (column, allowed values) pairs it ORs. One decision for owner_clause and owner_branches."""
    if not _is_active(user):
        return False
    scope = user_scope(session, user, entity_name(model))
    own = (model.owner_id, [user.id])
    if scope == "all":
        return True
    if scope == "subordinates":
        return [(model.owner_id, sorted(subordinate_ids(session, user.id)))]
    if scope == "department" and user.department_id:
        return [own, (model.department_id, [user.department_id])]
    if scope == "department_tree" and user.department_id:
        return [own, (model.department_id, sorted(department_tree_ids(session, user.department_id)))]
    return [own]


def owner_clause(session: Session, model: type, user: CrmUser | None) -> ColumnElement[bool]:
    """The condition on an owned model's own columns (owner_id, department_id)."""
    terms = _owner_terms(session, model, user)
    if isinstance(terms, bool):
        return true() if terms else false()
    parts = [column == values[0] if len(values) == 1 else column.in_(values) for column, values in terms]
    return parts[0] if len(parts) == 1 else or_(*parts)


def owner_branches(session: Session, model: type, user: CrmUser | None) -> list[ColumnElement[bool]]:
    """owner_clause as the list of conditions it ORs, one index range each (owner_id = u,
    department_id = d)."""
    terms = _owner_terms(session, model, user)
    if isinstance(terms, bool):
        return [true() if terms else false()]
    return [column == value for column, values in terms for value in values]


def disjoint_owner_branches(session: Session, model: type, user: CrmUser | None) -> list[ColumnElement[bool]]:
    """owner_clause as conditions no row meets twice (each term without the rows of the terms
    before it; the departments first), so sums taken per branch add up to the scope's sums: a
    database can then read each branch along its own covering index, where one OR forces a
    bitmap of both indexes and a visit of every row (PostgreSQL)."""
    terms = _owner_terms(session, model, user)
    if isinstance(terms, bool):
        return [true() if terms else false()]
    branches, before = [], []
    for column, values in reversed(terms):
        branches.append(and_(column.in_(values), *before))
        before.append(or_(column.is_(None), column.not_in(values)))
    return branches


#: Shared lists every user works with, deliberately not filtered by data scope (editing them is
#: a matter of role permissions). A new model must be scoped or named here (tests check it).
UNSCOPED_MODELS = frozenset(
    {
        "Region",
        "Industry",
        "Tag",
        "CustomerGroup",
        "Department",
        "RoleDataScope",
        "CrmUser",
        "CustomField",
        "Product",
        "Pipeline",
        "Stage",
        # not owned records: a notification's screen and API filter by recipient (user_id = the
        # current user) for everyone, the outbox is for admins only (role permissions)
        "Notification",
        "OutboxMessage",
        # configuration an admin edits: pools and their rules, approval flows and their steps
        "CustomerPool",
        "PoolRule",
        "ApprovalFlow",
        "ApprovalStep",
        # field permissions (字段权限): rules an admin edits
        "FieldRule",
        # the service desk's business types and assignment rules: settings an admin edits
        "TicketCategory",
        "AssignmentRule",
        # a dashboard subscription is its user's own: screen and API filter by user_id (我的订阅)
        "DashboardSubscription",
        # the service desk's business calendar and SLA targets: company-wide settings
        "SlaPolicy",
        "BusinessHours",
        "ServiceCalendarDay",
    }  # fmt: skip
)


#: Rows a user sees besides their data scope, per owned model: model -> user -> SQL condition.
#: A domain registers its rule here (approvals: the requests waiting for me or that I decided), so
#: every screen, API, search and dashboard that asks scope_clause() applies it too.
SCOPE_EXTENSIONS: dict[type, Callable[[CrmUser], ColumnElement[bool]]] = {}


def extend_scope(model: type, also_visible: Callable[[CrmUser], ColumnElement[bool]]) -> None:
    """Let users also see the rows of `model` that `also_visible(user)` selects."""
    SCOPE_EXTENSIONS[model] = also_visible


def is_scoped(model: type) -> bool:
    """Whether rows of this model are filtered by data scope."""
    return (
        issubclass(model, OwnedMixin)
        or bool(getattr(model, "__scope_parent__", None))
        or bool(getattr(model, "__scope_subject__", None))
    )


def scope_clause(
    session: Session, model: type, user: CrmUser | None, write: bool = False
) -> ColumnElement[bool] | None:
    """The SQL condition a user's rows of `model` must meet; None means the model is not scoped.
    With `write`, the rows the user may change: a read-only collaborator sees, but cannot edit.

    Owned models are filtered on their own columns; a model that declares `__scope_parent__`
    (the name of a many-to-one relationship, e.g. Contact -> customer) follows its parent,
    as `customer_id IN (SELECT id FROM crm_customer WHERE <parent's condition>)`: the database
    then reads only the visible parents' children through the foreign-key index, where a
    correlated EXISTS would test every child row.
    """
    if issubclass(model, OwnedMixin):
        clause = owner_clause(session, model, user)
        if isinstance(clause, True_) or not _is_active(user):
            return clause
        team = team_clause(session, model, user, write)
        if team is not None:
            clause = or_(clause, team)
        also_visible = SCOPE_EXTENSIONS.get(model)
        return clause if also_visible is None or write else or_(clause, also_visible(user))
    if getattr(model, "__scope_subject__", None):
        return subject_clause(session, model, user, write)
    parent_name = getattr(model, "__scope_parent__", None)
    if parent_name:
        relationship = getattr(model, parent_name)
        parent_model = relationship.property.mapper.class_
        parent_clause = scope_clause(session, parent_model, user, write)
        if parent_clause is None or isinstance(parent_clause, True_):
            return parent_clause
        (foreign_key,) = relationship.property.local_columns
        (parent_key,) = inspect(parent_model).primary_key
        return foreign_key.in_(select(parent_key).where(parent_clause))
    return None


# --- records that belong to a person or to a department (业绩目标) --------------------------------
@dataclass(frozen=True)
class Subjects:
    """Whose records (a person's or a department's) a user's data scope covers: `everyone`, or
    the people named, the people now in `member_departments`, and the departments named."""

    everyone: bool = False
    people: frozenset[int] = frozenset()
    member_departments: frozenset[int] = frozenset()
    departments: frozenset[int] = frozenset()


def covered_subjects(session: Session, model: type, user: CrmUser | None, write: bool = False) -> Subjects:
    """The people and departments whose rows of `model` (one with `__scope_subject__`) the user
    reaches. A person's row follows the person: theirs, and whoever's scope covers them (their
    manager chain, their department or a department above it). A department's row: the
    departments the scope covers and, for reading only, the user's own department (a rep sees
    their team's target but may not change it). One decision for the SQL filter and the check
    of values about to be written (subject_in_scope)."""
    if not _is_active(user):
        return Subjects()
    scope = user_scope(session, user, entity_name(model))
    own = frozenset({user.department_id} if user.department_id and not write else ())
    if scope == "all":
        return Subjects(everyone=True)
    if scope == "subordinates":
        return Subjects(people=frozenset(subordinate_ids(session, user.id)), departments=own)
    if scope in ("department", "department_tree") and user.department_id:
        tree = frozenset({user.department_id})
        if scope == "department_tree":
            tree = frozenset(department_tree_ids(session, user.department_id))
        return Subjects(people=frozenset({user.id}), member_departments=tree, departments=tree)
    return Subjects(people=frozenset({user.id}), departments=own)


def subject_clause(
    session: Session, model: type, user: CrmUser | None, write: bool = False
) -> ColumnElement[bool]:
    """covered_subjects as the SQL condition on the model's person and department columns."""
    subjects = covered_subjects(session, model, user, write)
    if subjects.everyone:
        return true()
    person, department = (getattr(model, name) for name in model.__scope_subject__)
    parts = []
    if subjects.people:
        parts.append(person.in_(sorted(subjects.people)))
    if subjects.member_departments:
        members = select(CrmUser.id).where(CrmUser.department_id.in_(sorted(subjects.member_departments)))
        parts.append(person.in_(members))
    if subjects.departments:
        parts.append(department.in_(sorted(subjects.departments)))
    return or_(*parts) if parts else false()


def subject_in_scope(
    session: Session, model: type, user: CrmUser | None, person_id: int | None, department_id: int | None
) -> bool:
    """Whether the user may write a row of `model` that belongs to this person or department
    (before it is saved: a new target, or one moved to someone else)."""
    subjects = covered_subjects(session, model, user, write=True)
    if subjects.everyone:
        return True
    if person_id is not None:
        if person_id in subjects.people:
            return True
        if not subjects.member_departments:
            return False
        home = session.scalar(select(CrmUser.department_id).where(CrmUser.id == person_id))
        return home in subjects.member_departments
    return department_id is not None and department_id in subjects.departments


#: above this many branches (a scope of many subordinates or departments), first_in_scope sorts
#: the scope as one query: each branch is a query of its own
MAX_BRANCHES = 40


def scope_branches(session: Session, model: type, user: CrmUser | None) -> list[ColumnElement[bool]] | None:
    """scope_clause of an owned model as the conditions it ORs (None for a parent-scoped model)."""
    if not issubclass(model, OwnedMixin):
        return None
    branches = owner_branches(session, model, user)
    if not _is_active(user) or isinstance(branches[0], True_):
        return branches
    team = team_clause(session, model, user, False)
    also_visible = SCOPE_EXTENSIONS.get(model)
    return branches + [c for c in (team, also_visible(user) if also_visible else None) if c is not None]


def first_in_scope(
    session: Session,
    model: type,
    user: CrmUser | None,
    conditions: Iterable[ColumnElement[bool]],
    order_by: Iterable[Any],
    size: int,
    options: Iterable[Any] = (),
) -> list[Any]:
    """The first `size` rows of `model` within the user's data scope that meet `conditions`, in
    `order_by` order (ties by id, ascending unless `order_by` names it).

    Why: one query over a scope that ORs several ranges (a manager: their own rows and each
    department of the tree) reads every matching row of the team and sorts them all. The first
    `size` of each branch come along its (branch column, order column) index instead, and the
    first `size` of their union are the answer: the same rows, a few dozen read."""
    conditions, keys = list(conditions), list(order_by)
    identity = model.__table__.c.id
    if not any(getattr(key, "element", key).compare(identity) for key in keys):
        keys.append(model.id)
    branches = scope_branches(session, model, user)
    if branches is None or len(branches) == 1 or len(branches) > MAX_BRANCHES:
        scope = scope_clause(session, model, user)
        query = select(model).where(*([] if scope is None else [scope]), *conditions)
    else:
        firsts = [select(model.id).where(b, *conditions).order_by(*keys).limit(size) for b in branches]
        ids = union(*(select(first.subquery().c.id) for first in firsts)).subquery()
        query = select(model).join(ids, ids.c.id == model.id)
    return list(session.scalars(query.order_by(*keys).limit(size).options(*options)).unique())


def scope_partition(session: Session, model: type, user: CrmUser | None) -> list[ColumnElement[bool]] | None:
    """scope_clause as conditions no row meets twice (disjoint_owner_branches), or None when the
    user's scope has more than its owner part (collaborations, a domain's extension): then only
    the one clause is exact."""
    if not issubclass(model, OwnedMixin) or model in SCOPE_EXTENSIONS:
        return None
    if _is_active(user) and team_clause(session, model, user, False) is not None:
        return None
    return disjoint_owner_branches(session, model, user)


#: Owned models users can be added to as collaborators (团队成员): model -> its membership model
TEAM_MODELS: dict[type, type] = {Customer: CustomerTeamMember}


def team_clause(session: Session, model: type, user: CrmUser, write: bool) -> ColumnElement[bool] | None:
    """The rows where the user is an active collaborator (until empty or not passed), with write
    access when `write`; None when the user collaborates on none, so that the usual data scope
    keeps its plain, index-friendly condition for everyone else."""
    member = TEAM_MODELS.get(model)
    if member is None:
        return None
    today = local_today()
    active = [member.user_id == user.id, or_(member.until.is_(None), member.until >= today)]
    if write:
        active.append(member.access == "write")
    cache = request_cache("team")
    key = (model.__name__, user.id, write)
    if key not in cache:
        cache[key] = session.scalar(select(member.id).where(*active).limit(1)) is not None
    if not cache[key]:
        return None
    (parent_key,) = getattr(member, member.__scope_parent__).property.local_columns
    return model.id.in_(select(parent_key).where(*active))


# --- the customer pool (公海): who browses which pool ----------------------------------------------
def pool_departments(session: Session) -> dict[int, set[int]]:
    """Active pool id -> the departments it serves: those it names and every department below
    them, except where a nearer department names a pool of its own (the nearest pool wins)."""
    cache = request_cache("pools")
    if "departments" in cache:
        return cache["departments"]
    named: dict[int, int] = {}
    rows = session.execute(
        select(pool_department.c.department_id, pool_department.c.pool_id)
        .join(CustomerPool, CustomerPool.id == pool_department.c.pool_id)
        .where(CustomerPool.active.is_(True))
        .order_by(pool_department.c.pool_id.desc())
    )
    for department_id, pool_id in rows:
        named[department_id] = pool_id  # the lowest pool id wins a (refused) double naming
    parents = {node: parent for node, parent in session.execute(select(Department.id, Department.parent_id))}
    served: dict[int, set[int]] = defaultdict(set)
    for department_id in parents:
        node, seen = department_id, set()
        while node is not None and node not in named and node not in seen:
            seen.add(node)
            node = parents.get(node)
        if node in named:
            served[named[node]].add(department_id)
    cache["departments"] = dict(served)
    return cache["departments"]


def pool_of_department(session: Session, department_id: int | None) -> int | None:
    """The active pool serving a department (where its customers go when released)."""
    return next((p for p, ids in pool_departments(session).items() if department_id in ids), None)


def browsable_pool_ids(session: Session, user: CrmUser | None) -> set[int] | None:
    """Pools whose customers the user may browse and claim; None means every pool (scope all).
    A rep browses the pool serving their department; a manager also those of the departments
    below theirs (department-tree scope)."""
    if not _is_active(user):
        return set()
    scope = user_scope(session, user, "customer")
    if scope == "all":
        return None
    if not user.department_id:
        return set()
    departments = {user.department_id}
    if scope == "department_tree":
        departments = department_tree_ids(session, user.department_id)
    return {pool for pool, ids in pool_departments(session).items() if ids & departments}


def pool_clause(session: Session, user: CrmUser | None) -> ColumnElement[bool]:
    """The customers a user sees in the pool screens: those sitting in a pool they may browse."""
    pools = browsable_pool_ids(session, user)
    if pools is None:
        # pooled_at is set exactly while a customer sits in a pool. Saying so lets PostgreSQL
        # walk ix_customer_pooled_at from the newest pooled customer: its backward scan (for
        # "newest first") otherwise starts with the NULLs of every owned customer (half a
        # million read and dropped at the bench scale, ~300 ms)
        return and_(Customer.pool_id.is_not(None), Customer.pooled_at.is_not(None))
    return Customer.pool_id.in_(sorted(pools)) if pools else false()


def assignable_user_ids(session: Session, actor: CrmUser) -> set[int] | None:
    """Users the actor may make owner of a record; None means anyone."""
    scope = user_scope(session, actor, "customer")
    if scope == "all":
        return None
    if scope == "subordinates":
        return subordinate_ids(session, actor.id)
    if scope in ("department", "department_tree") and actor.department_id:
        departments = (
            {actor.department_id}
            if scope == "department"
            else department_tree_ids(session, actor.department_id)
        )
        ids = session.scalars(select(CrmUser.id).where(CrmUser.department_id.in_(departments)))
        return set(ids) | {actor.id}
    return {actor.id}


#: the DataScopeFilter value of the pool screens (["id", DataScopeFilter, POOL_SCOPE])
POOL_SCOPE = "pool"


#: the model of the record whose related lists (tabs) are being rendered, once its own data scope
#: has let the user see it (set by views.base.CrmModelView around each related list)
_listing_under: ContextVar[type | None] = ContextVar("listing_under", default=None)


@contextmanager
def listing_children_of(parent_model: type) -> Iterator[None]:
    """Render a visible record's related lists: children whose data scope follows this record
    (`__scope_parent__`) need no scope filter of their own, since the list is already limited to
    the record's children. Otherwise each tab would filter `customer_id IN (SELECT id FROM
    crm_customer WHERE <scope>)`, which the database materialises (a manager's team: 50,000 ids)
    for every count and page of every tab."""
    token = _listing_under.set(parent_model)
    try:
        yield
    finally:
        _listing_under.reset(token)


def follows_listed_parent(model: type) -> bool:
    """Whether `model` follows the data scope of the record whose related lists are rendered."""
    parent_model, name = _listing_under.get(), getattr(model, "__scope_parent__", None)
    return (
        parent_model is not None
        and name is not None
        and (getattr(model, name).property.mapper.class_ is parent_model)
    )


class DataScopeFilter(BaseFilter):
    """Flask-AppBuilder base filter that applies the current user's data scope.

    Attached by views/base.py to every ModelView and ModelRestApi of a scoped model, so lists,
    show/edit/delete by id (404 for rows outside the scope) and REST all share it.
    """

    name = "data scope"

    def apply(self, query: Any, value: Any) -> Any:
        session = self.datamodel.session
        if value == POOL_SCOPE:  # the pool screens: customers in the pools the user may browse
            return query.filter(pool_clause(session, current_actor()))
        if follows_listed_parent(self.model):
            return query
        clause = scope_clause(session, self.model, current_actor())
        return query if clause is None else query.filter(clause)
