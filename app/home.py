"""The home page, a salesperson's workbench (工作台): what to do today and the key figures, all
within the user's data scope (a rep sees their own, a manager their team's)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, true
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.sql.elements import UnaryExpression

from app.access import first_in_scope, scope_clause, scope_partition
from app.approvals import waiting_for
from app.orders import expiring_contracts, payments_due
from app.pools import due_for_recycle
from app.targets import TargetProgress, target_progress
from models.base import utcnow
from models.customers import Contact, Customer
from models.sales import Lead, Opportunity, Task
from models.security import CrmUser


@dataclass
class HomeSummary:
    my_customers: int
    visible_customers: int
    new_this_month: int
    key_customers: int
    contacts: int
    recent: list[Customer]
    by_level: dict[str, int]


def recently_changed(session: Session, user: CrmUser, size: int = 8) -> list[Customer]:
    """The `size` most recently changed customers the user may see, with their owners: the newest
    of each branch of the data scope along its (owner or department, updated_at, id) index,
    merged (app.access.first_in_scope), so a manager's page does not sort the team's customers.
    (A probe of the company's newest changes missed a team whenever a job had just changed
    thousands of other customers, a recycle run for one: 490 ms on PostgreSQL.)"""
    order = [Customer.updated_at.desc(), Customer.id.desc()]
    return first_in_scope(session, Customer, user, [], order, size, [joinedload(Customer.owner)])


def home_summary(session: Session, user: CrmUser, cap: int = 10_000) -> HomeSummary:
    """A few counts and the recently changed customers the user may see. A count stops at
    `cap` + 1 (the page shows "10000+"): an exact COUNT over a manager's or the admin's
    hundreds of thousands of rows would cost more than the rest of the page."""
    scope = scope_clause(session, Customer, user)
    # counted per disjoint branch of the scope (the departments, then the user's own elsewhere),
    # each along its own index: one OR made PostgreSQL visit every counted row (75-90 ms each)
    branches = scope_partition(session, Customer, user) or [scope]
    month_start = utcnow().replace(day=1, hour=0, minute=0, second=0, microsecond=0)

    def capped(*conditions: object, model: type = Customer, join: Any = None, scoped: bool = True) -> int:
        total = 0
        for branch in branches if scoped else [true()]:
            inner = select(model.id).where(branch, *conditions)
            if join is not None:
                inner = inner.join(join)
            inner = inner.limit(cap + 1 - total).subquery()
            total += session.scalar(select(func.count()).select_from(inner)) or 0
            if total > cap:
                break
        return total

    return HomeSummary(
        my_customers=capped(Customer.owner_id == user.id, scoped=False),
        visible_customers=capped(),
        new_this_month=capped(Customer.created_at >= month_start),
        key_customers=capped(Customer.level == "key"),
        # a contact is visible with its customer (Contact.__scope_parent__): joined rather than
        # `customer_id IN (the scope's customers)`, so the count stops after `cap` contacts
        # instead of first collecting every visible customer's id
        contacts=capped(model=Contact, join=Contact.customer),
        recent=recently_changed(session, user),
        by_level={
            level: count
            for level, count in session.execute(
                select(Customer.level, func.count())
                .where(Customer.owner_id == user.id)
                .group_by(Customer.level)
            )
        },
    )


@dataclass
class WorkList:
    """One list of the workbench: the first items and how many there are in all (capped)."""

    items: list[Any] = field(default_factory=list)
    total: int = 0


@dataclass
class Workbench:
    contact_today: WorkList
    overdue_tasks: WorkList
    tasks_today: WorkList
    new_leads: WorkList
    closing_this_month: WorkList
    # the pool and the money (issue 6)
    recycle_soon: WorkList = field(default_factory=WorkList)
    approvals_waiting: WorkList = field(default_factory=WorkList)
    payments_due: WorkList = field(default_factory=WorkList)
    contracts_expiring: WorkList = field(default_factory=WorkList)
    targets: list[TargetProgress] = field(default_factory=list)


#: how far ahead the workbench looks for payments due and contracts ending (days)
PAYMENTS_AHEAD_DAYS = 7
CONTRACTS_AHEAD_DAYS = 30


def local_day_bounds(now_utc: dt.datetime, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """Start and end of the user's local day (e.g. Asia/Shanghai), as naive UTC like the columns."""
    zone = ZoneInfo(timezone)
    local = now_utc.replace(tzinfo=dt.UTC).astimezone(zone)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    to_utc = lambda moment: moment.astimezone(dt.UTC).replace(tzinfo=None)  # noqa: E731
    return to_utc(start), to_utc(start + dt.timedelta(days=1))


def workbench(
    session: Session, user: CrmUser, now: dt.datetime, timezone: str, size: int = 10, cap: int = 1000
) -> Workbench:
    """What the user should do now: customers to contact today (or overdue), overdue tasks, tasks
    due today, new leads assigned to them, opportunities expected to close this month, customers
    about to return to the pool, approvals waiting for them, payments due, contracts ending soon,
    and their targets' progress."""
    day_start, day_end = local_day_bounds(now, timezone)
    month_start = day_start.date().replace(day=1)
    month_end = (month_start + dt.timedelta(days=32)).replace(day=1)

    def work_list(model: type, conditions: list[Any], key: Any, *loads: Any, scoped: bool = True) -> WorkList:
        """The first `size` rows (within the data scope: app.access.first_in_scope), with the
        many-to-one relations the page shows (`loads`) joined rather than read one row at a time,
        and, when that page is full, the capped count."""
        if scoped:
            items = first_in_scope(session, model, user, conditions, [key], size, loads)
            conditions = [scope_clause(session, model, user), *conditions]
        else:
            query = select(model).where(*conditions).order_by(key, model.id).limit(size).options(*loads)
            items = list(session.scalars(query))
        if len(items) < size:
            return WorkList(items, len(items))
        # count the ordering column alone (an index can answer), not "created_at DESC AS ..."
        column = key.element if isinstance(key, UnaryExpression) else key
        inner = select(column).where(*conditions).limit(cap).subquery()
        return WorkList(items, session.scalar(select(func.count()).select_from(inner)) or 0)

    def listed(fetch: Any, *args: Any) -> WorkList:
        """A list from a domain service that returns rows: the first `size`, counted up to 100."""
        items = fetch(session, user, *args, limit=100)
        return WorkList(items[:size], len(items))

    today = (day_start + (day_end - day_start) / 2).date()  # the user's local date
    open_tasks = [Task.status == "open"]
    task_loads = (joinedload(Task.customer), joinedload(Task.owner))
    return Workbench(
        contact_today=work_list(
            Customer,
            [Customer.next_contact_at < day_end],
            Customer.next_contact_at,
            joinedload(Customer.owner),
        ),
        overdue_tasks=work_list(Task, [*open_tasks, Task.due_at < now], Task.due_at, *task_loads),
        tasks_today=work_list(
            Task, [*open_tasks, Task.due_at >= now, Task.due_at < day_end], Task.due_at, *task_loads
        ),
        new_leads=work_list(
            Lead,
            [
                Lead.owner_id == user.id,  # assigned to them, whatever their data scope
                Lead.status == "new",
                Lead.created_at >= now - dt.timedelta(days=14),
                Lead.created_at <= now,
            ],
            Lead.created_at.desc(),
            scoped=False,
        ),
        closing_this_month=work_list(
            Opportunity,
            [
                Opportunity.status == "open",
                Opportunity.expected_close >= month_start,
                Opportunity.expected_close < month_end,
            ],
            Opportunity.expected_close,
            joinedload(Opportunity.stage),
            joinedload(Opportunity.owner),
        ),
        recycle_soon=listed(due_for_recycle, now),
        approvals_waiting=listed(waiting_for),
        payments_due=listed(payments_due, today, PAYMENTS_AHEAD_DAYS),
        contracts_expiring=listed(expiring_contracts, today, CONTRACTS_AHEAD_DAYS),
        targets=target_progress(session, user, today, timezone),
    )
