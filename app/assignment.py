"""Auto-assignment of new tickets (自动分派): the first active rule by position whose conditions
match (district/county, category, customer level; an empty condition matches anything) gives
the ticket to its user, or to a member of its team by round-robin or least open tickets.

Decisions, in one place:
- a team's members are the active users whose own department is the rule's department; users
  of its sub-departments are not members (a sub-team has rules of its own);
- a rule whose user is inactive, or that names neither a user nor a department any more (the
  target was deleted), is skipped and the next rule tried; a team without active members gets
  the ticket into its unassigned queue (department set, no assignee, status new);
- no rule: the default queue, the department named by CRM_SERVICE_DEFAULT_DEPARTMENT, or no
  department at all; the ticket stays new and unassigned;
- round-robin keeps a pointer (the member who got the previous ticket) on the rule, read under a
  row lock (SELECT ... FOR UPDATE; SQLite lets one writer at a time), so two concurrent
  assignments cannot give two tickets to the same member in turn; least-open counts the open
  tickets of every member in one grouped query (ix_ticket_owner_status_due), ties going round
  in the same order as round-robin.

The rules table is small: it is read once per call, and a call costs at most three more small
queries (customer level, members, counts or pointer).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from models.base import utcnow
from models.customers import Customer
from models.security import CrmUser, Department
from models.service import OPEN_TICKET_STATUSES, AssignmentRule, Ticket


def region_matches(rule_codes: Iterable[int], code: int | None) -> bool:
    """Whether a district code lies in one of the rule's regions: a district matches itself, a
    city (370500) all its districts (3705xx), a province (370000) all of its (37xxxx)."""
    if code is None:
        return False
    for wanted in rule_codes:
        wanted = int(wanted)
        if wanted == code:
            return True
        if wanted % 10000 == 0 and code // 10000 == wanted // 10000:
            return True
        if wanted % 100 == 0 and code // 100 == wanted // 100:
            return True
    return False


def rule_matches(rule: AssignmentRule, ticket: Ticket, customer_level: str | None) -> bool:
    """Every condition the rule sets holds for the ticket (an empty list is no condition)."""
    if rule.district_codes and not region_matches(rule.district_codes, ticket.district_code):
        return False
    if rule.category_ids and ticket.category_id not in {int(c) for c in rule.category_ids}:
        return False
    if rule.customer_levels and customer_level not in set(rule.customer_levels):
        return False
    return True


def team_members(session: Session, department_id: int) -> list[int]:
    """Active users of the department itself (not of its sub-departments), by id."""
    return list(
        session.scalars(
            select(CrmUser.id)
            .where(CrmUser.department_id == department_id, CrmUser.active.is_(True))
            .order_by(CrmUser.id)
        )
    )


def next_in_turn(members: Sequence[int], last: int | None) -> list[int]:
    """The members in turn after `last` (the first member when `last` is gone or empty)."""
    if last is None:
        return list(members)
    after = [m for m in members if m > last]
    return after + [m for m in members if m <= last]


def open_counts(session: Session, members: Sequence[int]) -> dict[int, int]:
    """Open tickets per member, one grouped query over the owner/status index."""
    rows = session.execute(
        select(Ticket.owner_id, func.count())
        .where(Ticket.owner_id.in_(list(members)), Ticket.status.in_(OPEN_TICKET_STATUSES))
        .group_by(Ticket.owner_id)
    )
    return {owner: count for owner, count in rows}


def sqlite_write_lock(session: Session, table: str) -> None:
    """On SQLite, take the database's write lock now (an UPDATE that changes nothing), so what this
    transaction reads next cannot change before it commits: SQLite ignores FOR UPDATE, but lets
    one writer at a time. Other databases lock rows (FOR UPDATE) or retry instead."""
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql(f"UPDATE {table} SET id = id WHERE 0 = 1")  # noqa: S608


def pick_member(session: Session, rule: AssignmentRule, members: Sequence[int]) -> int:
    """The member of the rule's team who gets the ticket; moves the round-robin pointer.

    The pointer is read under a row lock held to the end of the transaction, so a concurrent
    assignment by the same rule waits and then sees the moved pointer."""
    sqlite_write_lock(session, AssignmentRule.__tablename__)
    last = session.scalar(
        select(AssignmentRule.last_assigned_user_id).where(AssignmentRule.id == rule.id).with_for_update()
    )
    order = next_in_turn(members, last)
    if rule.strategy == "least_open":
        counts = open_counts(session, members)
        chosen = min(order, key=lambda member: counts.get(member, 0))  # min keeps the first of ties
    else:
        chosen = order[0]
    session.execute(
        update(AssignmentRule)
        .where(AssignmentRule.id == rule.id)
        .values(last_assigned_user_id=chosen)
        .execution_options(synchronize_session=False)
    )
    set_committed_value(rule, "last_assigned_user_id", chosen)
    return chosen


def active_rules(session: Session) -> list[AssignmentRule]:
    return list(
        session.scalars(
            select(AssignmentRule)
            .where(AssignmentRule.active.is_(True))
            .order_by(AssignmentRule.position, AssignmentRule.id)
        )
    )


def default_department_id(session: Session) -> int | None:
    """The default queue: the department named CRM_SERVICE_DEFAULT_DEPARTMENT (the oldest of that
    name), or None."""
    name = current_app.config.get("CRM_SERVICE_DEFAULT_DEPARTMENT", "") if has_app_context() else ""
    if not name:
        return None
    return session.scalar(
        select(Department.id).where(Department.name == name).order_by(Department.id).limit(1)
    )


def _target(session: Session, rule: AssignmentRule) -> tuple[int | None, int | None] | None:
    """(user id, department id) the rule gives the ticket to; None when the rule cannot assign."""
    if rule.target_user_id is not None:
        row = session.execute(
            select(CrmUser.active, CrmUser.department_id).where(CrmUser.id == rule.target_user_id)
        ).first()
        if row is None or not row.active:
            return None
        return rule.target_user_id, rule.target_department_id or row.department_id
    if rule.target_department_id is not None:
        members = team_members(session, rule.target_department_id)
        if not members:
            return None, rule.target_department_id  # the team's unassigned queue
        return pick_member(session, rule, members), rule.target_department_id
    return None


def customer_level(session: Session, ticket: Ticket) -> str | None:
    customer_id = ticket.customer.id if ticket.customer is not None else ticket.customer_id
    if customer_id is None:
        return None
    return session.scalar(select(Customer.level).where(Customer.id == customer_id))


def assign(session: Session, ticket: Ticket) -> AssignmentRule | None:
    """Assign a ticket by the first matching active rule (by position); returns that rule, or
    None when the ticket went to the default queue. Sets owner, department, assignment_rule,
    assigned_at and status (assigned when someone got it, else new); does not flush."""
    level = customer_level(session, ticket)
    with session.no_autoflush:
        for rule in active_rules(session):
            if not rule_matches(rule, ticket, level):
                continue
            target = _target(session, rule)
            if target is None:
                continue
            _apply(session, ticket, rule, *target)
            return rule
        _apply(session, ticket, None, None, default_department_id(session))
    return None


def _apply(
    session: Session,
    ticket: Ticket,
    rule: AssignmentRule | None,
    user_id: int | None,
    department_id: int | None,
) -> None:
    """Set keys and relationships alike (a relationship set earlier would win at flush)."""
    ticket.assignment_rule = rule
    ticket.assignment_rule_id = rule.id if rule is not None else None
    ticket.owner = session.get(CrmUser, user_id) if user_id is not None else None
    ticket.owner_id = user_id
    ticket.department = session.get(Department, department_id) if department_id is not None else None
    ticket.department_id = department_id
    ticket.assigned_at = utcnow() if user_id is not None else None
    if ticket.status in (None, "new", "assigned"):
        ticket.status = "assigned" if user_id is not None else "new"


def describe(rule: AssignmentRule | None) -> dict[str, Any]:
    """A rule as the ticket page names it (the rule that assigned a ticket)."""
    if rule is None:
        return {"id": None, "name": None}
    return {"id": rule.id, "name": rule.name}
