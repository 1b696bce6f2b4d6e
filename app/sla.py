"""SLA (服务水平): business time, the targets of a ticket, and the worker's sweep.

Business time is the weekly hours of `BusinessHours` (in the company's time zone,
BABEL_DEFAULT_TIMEZONE) on working days. A working day is decided in this order:
1. a `ServiceCalendarDay` row (a company holiday, or a weekend made a working day);
2. `chinese_calendar` for the years it knows (up to 2026 in the installed release): its public
   holidays have no hours, and its 调休 weekend working days get the hours of a normal workday;
3. for years it does not know (2027 on): the plain weekly hours (so weekends are off), plus the
   rows of 1. (the calendar screen says so; enter the year's holidays there).

A ticket's targets are UTC moments (naive, like every stored datetime): due = start + N business
minutes. It is at risk once `at_risk_percent` of its business time to the nearer pending target
has passed; that moment is stored (`sla_risk_at`), so the sweep is a few set-based UPDATEs over
indexed columns, not business-time arithmetic per row.

'waiting' (等待客户) pauses the resolution clock: the business minutes left when the ticket
started waiting are still left when it leaves that status, so the due (and at-risk) moments move
on by the business time spent waiting. The first-response clock is not paused (a ticket waits for
the customer only after someone answered).
"""

from __future__ import annotations

import datetime as dt
import math
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import chinese_calendar
from flask import current_app, has_app_context
from flask_babel import gettext
from flask_babel import lazy_gettext as _
from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.orm import Session

from app.errors import ErrorCollector
from app.notifications import notify, queue_mail
from app.services import RecordService, service_for, text_up_to, write_transaction
from models.base import utcnow
from models.customers import CUSTOMER_LEVELS, Customer
from models.security import CrmUser, Department
from models.service import (
    CALENDAR_DAY_KINDS,
    OPEN_TICKET_STATUSES,
    TICKET_PRIORITIES,
    BusinessHours,
    ServiceCalendarDay,
    SlaPolicy,
    Ticket,
)

#: the default weekly hours (Mon-Fri, morning and afternoon) and targets seeded by `flask crm init`
DEFAULT_HOURS = ((dt.time(8, 30), dt.time(12, 0)), (dt.time(13, 30), dt.time(17, 30)))
#: priority -> (name, first response minutes, resolution minutes), in business time
DEFAULT_POLICIES = {
    "urgent": ("紧急工单", 30, 4 * 60),
    "high": ("高优先级工单", 60, 8 * 60),
    "normal": ("普通工单", 4 * 60, 24 * 60),
    "low": ("低优先级工单", 8 * 60, 40 * 60),
}
WEEKDAYS = (_("周一"), _("周二"), _("周三"), _("周四"), _("周五"), _("周六"), _("周日"))
#: the longest span business-time arithmetic walks (a target beyond it is a configuration error)
MAX_DAYS = 3 * 366
#: the link of a ticket in notifications and mails
TICKET_LINK = "/ticketview/show/{id}"


def calendar_knows(year: int) -> bool:
    """Whether chinese_calendar has the public holidays of `year`."""
    try:
        chinese_calendar.is_workday(dt.date(year, 6, 1))
    except NotImplementedError:
        return False
    return True


# --- business time -----------------------------------------------------------------------------
@dataclass
class BusinessCalendar:
    """The business hours and calendar rows, read once; answers business-time questions."""

    zone: ZoneInfo
    #: weekday (0 = Monday) -> sorted (start, end) local times
    weekly: dict[int, list[tuple[dt.time, dt.time]]]
    #: date -> 'holiday' | 'workday' (the calendar rows)
    overrides: dict[dt.date, str]
    _days: dict[dt.date, list[tuple[dt.datetime, dt.datetime]]] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session, zone: str | None = None) -> BusinessCalendar:
        if zone is None:
            zone = current_app.config["BABEL_DEFAULT_TIMEZONE"] if has_app_context() else "Asia/Shanghai"
        weekly: dict[int, list[tuple[dt.time, dt.time]]] = {}
        for row in session.execute(
            select(BusinessHours.weekday, BusinessHours.start_time, BusinessHours.end_time)
        ):
            weekly.setdefault(row.weekday, []).append((row.start_time, row.end_time))
        for intervals in weekly.values():
            intervals.sort()
        overrides = {
            row.day: row.kind
            for row in session.execute(select(ServiceCalendarDay.day, ServiceCalendarDay.kind))
        }
        return cls(ZoneInfo(zone), weekly, overrides)

    def workday_hours(self) -> list[tuple[dt.time, dt.time]]:
        """The hours of a weekend day made a working day: those of the first weekday that has any."""
        for weekday in range(7):
            if self.weekly.get(weekday):
                return self.weekly[weekday]
        return []

    def hours_of(self, day: dt.date) -> list[tuple[dt.time, dt.time]]:
        """The local working intervals of one date."""
        kind = self.overrides.get(day)
        weekly = self.weekly.get(day.weekday(), [])
        if kind == "holiday":
            return []
        if kind == "workday":
            return weekly or self.workday_hours()
        try:
            on_holiday, name = chinese_calendar.get_holiday_detail(day)
        except NotImplementedError:  # a year the package does not know: the weekly hours alone
            return weekly
        if on_holiday and name is not None:  # a public holiday (春节, 国庆 ...)
            return []
        if not on_holiday and day.weekday() >= 5:  # 调休: a weekend day worked
            return weekly or self.workday_hours()
        return weekly

    def intervals(self, day: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
        """The working intervals of a local date as naive UTC moments."""
        if day not in self._days:
            result = []
            for start, end in self.hours_of(day):
                a = dt.datetime.combine(day, start, self.zone).astimezone(dt.UTC).replace(tzinfo=None)
                b = dt.datetime.combine(day, end, self.zone).astimezone(dt.UTC).replace(tzinfo=None)
                result.append((a, b))
            self._days[day] = result
        return self._days[day]

    def local_date(self, moment: dt.datetime) -> dt.date:
        return moment.replace(tzinfo=dt.UTC).astimezone(self.zone).date()

    def add_minutes(self, start: dt.datetime, minutes: float) -> dt.datetime:
        """The UTC moment `minutes` business minutes after `start` (naive UTC)."""
        left = dt.timedelta(minutes=minutes)
        day = self.local_date(start)
        if left <= dt.timedelta(0):
            return start
        for _i in range(MAX_DAYS):
            for a, b in self.intervals(day):
                a = max(a, start)
                if a >= b:
                    continue
                if b - a >= left:
                    return a + left
                left -= b - a
            day += dt.timedelta(days=1)
        raise ValueError("no business hours within three years: check 服务时间")

    def minutes_between(self, start: dt.datetime, end: dt.datetime) -> float:
        """Business minutes from `start` to `end` (0 when end is not after start)."""
        if end <= start:
            return 0.0
        total = dt.timedelta(0)
        day, last = self.local_date(start), self.local_date(end)
        while day <= last:
            for a, b in self.intervals(day):
                a, b = max(a, start), min(b, end)
                if b > a:
                    total += b - a
            day += dt.timedelta(days=1)
        return total.total_seconds() / 60


# --- targets -----------------------------------------------------------------------------------
def policy_for(session: Session, ticket: Ticket) -> SlaPolicy | None:
    """The active policy of the ticket's priority: the customer level's own, else the level-less one."""
    level = None
    if ticket.customer_id is not None:
        level = session.scalar(select(Customer.level).where(Customer.id == ticket.customer_id))
    rows = session.scalars(
        select(SlaPolicy).where(
            SlaPolicy.active.is_(True), SlaPolicy.priority == (ticket.priority or "normal")
        )
    ).all()
    by_level = {row.customer_level: row for row in rows}
    return by_level.get(level) if level in by_level else by_level.get(None)


def _risk_minutes(policy: SlaPolicy, minutes: int) -> int:
    return max(1, math.ceil(minutes * policy.at_risk_percent / 100))


def apply_targets(session: Session, ticket: Ticket, now: dt.datetime) -> None:
    """Set the ticket's SLA policy and due moments (a new ticket, or its priority changed).

    Targets count from the ticket's creation: a priority raised later brings the due closer.
    A ticket without a matching active policy has no targets (and is never at risk).
    """
    calendar = BusinessCalendar.load(session)
    policy = policy_for(session, ticket)
    ticket.sla_policy = policy
    ticket.sla_policy_id = policy.id if policy is not None else None
    start = ticket.created_at or now
    if policy is None:
        ticket.first_response_due = ticket.resolution_due = ticket.sla_risk_at = None
        ticket.sla_state = "ok"
        return
    ticket.first_response_due = calendar.add_minutes(start, policy.first_response_minutes)
    ticket.resolution_due = calendar.add_minutes(start, policy.resolution_minutes)
    _set_risk(calendar, ticket, policy, start, now)
    ticket.sla_state = _state(ticket, now)


def _set_risk(
    calendar: BusinessCalendar, ticket: Ticket, policy: SlaPolicy, start: dt.datetime, now: dt.datetime
) -> None:
    """The at-risk moment of the nearer pending target (first response, else resolution)."""
    moments = []
    if ticket.first_response_at is None and ticket.first_response_due is not None:
        moments.append(calendar.add_minutes(start, _risk_minutes(policy, policy.first_response_minutes)))
    if ticket.resolution_due is not None:
        total = policy.resolution_minutes
        # the resolution's at-risk moment as its remaining share from the due backwards, so a
        # paused (moved) due keeps the same share
        remaining = total - _risk_minutes(policy, total)
        moments.append(_minus_business(calendar, ticket.resolution_due, remaining, start))
    ticket.sla_risk_at = min(moments) if moments else None


def _minus_business(
    calendar: BusinessCalendar, due: dt.datetime, minutes: float, floor: dt.datetime
) -> dt.datetime:
    """The moment `minutes` business minutes before `due` (not before `floor`): found forwards
    from `floor` as due minus the business time between, so there is one arithmetic to trust."""
    span = calendar.minutes_between(floor, due)
    return calendar.add_minutes(floor, max(0.0, span - minutes))


def _state(ticket: Ticket, now: dt.datetime) -> str:
    """Where an open ticket stands at `now`."""
    if (
        ticket.first_response_at is None
        and ticket.first_response_due is not None
        and ticket.first_response_due <= now
    ):
        return "breached"
    if ticket.status != "waiting" and ticket.resolution_due is not None and ticket.resolution_due <= now:
        return "breached"
    if ticket.status != "waiting" and ticket.sla_risk_at is not None and ticket.sla_risk_at <= now:
        return "at_risk"
    return "ok"


def on_status_change(session: Session, ticket: Ticket, old_status: str | None, now: dt.datetime) -> None:
    """React to a status change: pause/resume the resolution clock, resolution met or breached,
    new targets on reopening."""
    new_status = ticket.status
    if old_status == new_status:
        return
    calendar: BusinessCalendar | None = None
    if old_status == "waiting" and ticket.sla_paused_at is not None:
        calendar = BusinessCalendar.load(session)
        _resume(calendar, ticket, now)
    if new_status == "waiting":
        ticket.sla_paused_at = now
    elif new_status in ("resolved", "closed"):
        if ticket.resolution_due is not None and old_status not in ("resolved", "closed"):
            ticket.resolution_breached = bool(ticket.resolution_breached or now > ticket.resolution_due)
            if ticket.first_response_at is None and ticket.first_response_due is not None:
                ticket.first_response_breached = bool(
                    ticket.first_response_breached or now > ticket.first_response_due
                )
            breached = ticket.resolution_breached or ticket.first_response_breached
            ticket.sla_state = "breached" if breached else "met"
        ticket.sla_risk_at = None
    elif new_status == "reopened" and old_status in ("resolved", "closed"):
        _reopen(session, calendar or BusinessCalendar.load(session), ticket, now)
    elif ticket.sla_state not in ("met",):
        ticket.sla_state = _state(ticket, now)


def _resume(calendar: BusinessCalendar, ticket: Ticket, now: dt.datetime) -> None:
    """Leaving 'waiting': the resolution due and the at-risk moment move on by the business time
    spent waiting (what was left when the pause began is left now)."""
    paused = ticket.sla_paused_at
    ticket.sla_paused_at = None
    if paused is None or now <= paused:
        return
    if ticket.resolution_due is not None and ticket.resolution_due > paused:
        left = calendar.minutes_between(paused, ticket.resolution_due)
        ticket.resolution_due = calendar.add_minutes(now, left)
    if ticket.sla_risk_at is not None and ticket.sla_risk_at > paused:
        left = calendar.minutes_between(paused, ticket.sla_risk_at)
        ticket.sla_risk_at = calendar.add_minutes(now, left)
    ticket.sla_state = _state(ticket, now)
    if ticket.sla_state == "ok":
        ticket.sla_notified = None


def _reopen(session: Session, calendar: BusinessCalendar, ticket: Ticket, now: dt.datetime) -> None:
    """A reopened ticket gets a new resolution target from now (its earlier met/breached flags stay
    for the analysis)."""
    policy = session.get(SlaPolicy, ticket.sla_policy_id) if ticket.sla_policy_id else None
    if policy is None or not policy.active:
        ticket.sla_risk_at = None
        ticket.sla_state = "ok"
        return
    ticket.resolution_due = calendar.add_minutes(now, policy.resolution_minutes)
    _set_risk(calendar, ticket, policy, now, now)
    ticket.sla_state = _state(ticket, now)
    ticket.sla_notified = None


def on_first_response(session: Session, ticket: Ticket, now: dt.datetime) -> None:
    """The first reply to the customer: the first-response target met or breached."""
    if ticket.first_response_at is None:
        ticket.first_response_at = now
    if ticket.first_response_due is not None:
        ticket.first_response_breached = bool(
            ticket.first_response_breached or ticket.first_response_at > ticket.first_response_due
        )
    policy = session.get(SlaPolicy, ticket.sla_policy_id) if ticket.sla_policy_id else None
    if policy is not None and ticket.is_open:
        calendar = BusinessCalendar.load(session)
        start = ticket.created_at or now
        _set_risk(calendar, ticket, policy, start, now)
        before = ticket.sla_state
        ticket.sla_state = _state(ticket, now)
        if ticket.sla_state != before and ticket.sla_state == "ok":
            ticket.sla_notified = None


def time_left_minutes(ticket: Ticket, now: dt.datetime | None = None) -> int | None:
    """Wall-clock minutes to the nearer pending target (negative once breached); None: no target."""
    now = now or utcnow()
    dues = []
    if ticket.first_response_at is None and ticket.first_response_due is not None:
        dues.append(ticket.first_response_due)
    if ticket.resolution_due is not None:
        dues.append(ticket.resolution_due)
    if not dues or not ticket.is_open:
        return None
    return math.floor((min(dues) - now).total_seconds() / 60)


# --- the sweep ---------------------------------------------------------------------------------
def sla_sweep(session: Session, now: dt.datetime, batch: int = 500) -> dict[str, int]:
    """Mark open tickets at risk or breached, then tell each one's assignee and their manager (the
    team's leader when unassigned) once per state. Commits its own work; idempotent (a second run
    at the same moment changes and sends nothing).

    The marks are ONE set-based UPDATE (CASE per column) touching only the rows that change, so
    the open tickets are read once, not once per rule. Returns how many tickets were marked and
    how many were told."""
    is_open = Ticket.status.in_(OPEN_TICKET_STATUSES)
    running = Ticket.status != "waiting"
    first_late = and_(
        Ticket.first_response_at.is_(None),
        Ticket.first_response_due.is_not(None),
        Ticket.first_response_due <= now,
    )
    resolution_late = and_(running, Ticket.resolution_due.is_not(None), Ticket.resolution_due <= now)
    late = or_(first_late, resolution_late)
    risky = and_(
        running, Ticket.sla_state == "ok", Ticket.sla_risk_at.is_not(None), Ticket.sla_risk_at <= now
    )
    changes = or_(
        and_(first_late, Ticket.first_response_breached.is_(False)),
        and_(resolution_late, Ticket.resolution_breached.is_(False)),
        and_(late, Ticket.sla_state != "breached"),
        risky,
    )
    with write_transaction(session):
        marked = session.execute(
            update(Ticket)
            .where(is_open, changes)
            .values(
                first_response_breached=case((first_late, True), else_=Ticket.first_response_breached),
                resolution_breached=case((resolution_late, True), else_=Ticket.resolution_breached),
                sla_state=case((late, "breached"), (risky, "at_risk"), else_=Ticket.sla_state),
                updated_at=Ticket.updated_at,  # a system mark, not an edit
            )
            .execution_options(synchronize_session=False)
        ).rowcount
    notified = _notify_changes(session, now, batch)
    return {"marked": marked, "notified": notified}


def _notify_changes(session: Session, now: dt.datetime, batch: int) -> int:
    """One notice per ticket and state, in batches: a batch is claimed by setting sla_notified to
    a random marker in one UPDATE (only still-pending rows), read back by that marker, told, and
    set to the state, all in one transaction. Another sweep at the same time waits for the rows
    (PostgreSQL, MariaDB) or the database (SQLite) and then finds them no longer pending, so
    nobody is told twice; the notices and mails commit with the claim or not at all."""
    config = current_app.config
    zone = ZoneInfo(config["BABEL_DEFAULT_TIMEZONE"])
    base_url = config["CRM_BASE_URL"].rstrip("/")
    candidates = and_(
        Ticket.status.in_(OPEN_TICKET_STATUSES),
        Ticket.sla_state.in_(("at_risk", "breached")),
        or_(Ticket.sla_notified.is_(None), Ticket.sla_notified != Ticket.sla_state),
    )
    keep = {"updated_at": Ticket.updated_at}  # a system mark, not an edit
    told, last_id = 0, 0
    while True:
        marker = "c:" + secrets.token_hex(4)  # 10 characters, the column's width
        with write_transaction(session):
            ids = session.scalars(
                select(Ticket.id).where(candidates, Ticket.id > last_id).order_by(Ticket.id).limit(batch)
            ).all()
            if not ids:
                return told
            last_id = ids[-1]
            session.execute(
                update(Ticket)
                .where(Ticket.id.in_(ids), candidates)
                .values(sla_notified=marker, **keep)
                .execution_options(synchronize_session=False)
            )
            rows = session.execute(
                select(
                    Ticket.id,
                    Ticket.number,
                    Ticket.subject,
                    Ticket.sla_state,
                    Ticket.owner_id,
                    Ticket.department_id,
                    Ticket.first_response_at,
                    Ticket.first_response_due,
                    Ticket.resolution_due,
                ).where(Ticket.id.in_(ids), Ticket.sla_notified == marker)
            ).all()
            people = _recipients(session, rows)
            for row in rows:
                _tell(session, row, people.get(row.id, []), zone, base_url)
            session.execute(
                update(Ticket)
                .where(Ticket.id.in_(ids), Ticket.sla_notified == marker)
                .values(sla_notified=Ticket.sla_state, **keep)
                .execution_options(synchronize_session=False)
            )
        told += len(rows)


def _recipients(session: Session, rows: Iterable[Any]) -> dict[int, list[tuple[int, str | None]]]:
    """ticket id -> [(user id, e-mail)]: the assignee and their manager, or the team's leader when
    the ticket has no assignee (active users only, each once)."""
    owner_ids = {r.owner_id for r in rows if r.owner_id}
    department_ids = {r.department_id for r in rows if not r.owner_id and r.department_id}
    users: dict[int, tuple[str | None, int | None, bool]] = {}
    if owner_ids:
        for u in session.execute(
            select(CrmUser.id, CrmUser.email, CrmUser.manager_id, CrmUser.active).where(
                CrmUser.id.in_(owner_ids)
            )
        ):
            users[u.id] = (u.email, u.manager_id, u.active)
    leaders = {}
    if department_ids:
        leaders = {
            row.id: row.leader_id
            for row in session.execute(
                select(Department.id, Department.leader_id).where(Department.id.in_(department_ids))
            )
        }
    extra = {m for (_e, m, _a) in users.values() if m} | {v for v in leaders.values() if v}
    extra -= set(users)
    if extra:
        for u in session.execute(
            select(CrmUser.id, CrmUser.email, CrmUser.manager_id, CrmUser.active).where(CrmUser.id.in_(extra))
        ):
            users[u.id] = (u.email, u.manager_id, u.active)
    result: dict[int, list[tuple[int, str | None]]] = {}
    for row in rows:
        ids = (
            [row.owner_id, users[row.owner_id][1]]
            if row.owner_id in users
            else [leaders.get(row.department_id)]
        )
        seen: list[tuple[int, str | None]] = []
        for user_id in ids:
            if user_id and user_id in users and users[user_id][2] and user_id not in {s[0] for s in seen}:
                seen.append((user_id, users[user_id][0]))
        result[row.id] = seen
    return result


def _tell(
    session: Session, row: Any, people: list[tuple[int, str | None]], zone: ZoneInfo, base_url: str
) -> None:
    dues = []
    if row.first_response_at is None and row.first_response_due is not None:
        dues.append(row.first_response_due)
    if row.resolution_due is not None:
        dues.append(row.resolution_due)
    due = min(dues) if dues else None
    when = f"{due.replace(tzinfo=dt.UTC).astimezone(zone):%Y-%m-%d %H:%M}" if due else "-"
    if row.sla_state == "breached":
        subject = gettext("工单已超时: %(number)s %(subject)s", number=row.number, subject=row.subject)
        body = gettext("工单 %(number)s 已超过 SLA 目标 (%(when)s)", number=row.number, when=when)
    else:
        subject = gettext("工单即将超时: %(number)s %(subject)s", number=row.number, subject=row.subject)
        body = gettext("工单 %(number)s 将于 %(when)s 超过 SLA 目标", number=row.number, when=when)
    link = TICKET_LINK.format(id=row.id)
    for user_id, email in people:
        notify(session, user_id, subject, body, link)
        if email:
            text = "\n".join(
                [gettext("您好,"), "", body, "", gettext("查看工单: %(url)s", url=base_url + link)]
            )
            due_key = due.isoformat() if due else "-"
            queue_mail(
                session, email, subject, text, dedup_key=f"sla:{row.id}:{row.sla_state}:{due_key}:{user_id}"
            )


# --- defaults ----------------------------------------------------------------------------------
def seed_service_defaults(session: Session) -> dict[str, int]:
    """Default business hours (Mon-Fri 08:30-12:00, 13:30-17:30) and SLA policies, once: a table
    that already has rows is left as the admin made it. The caller commits."""
    added = {"business_hours": 0, "sla_policies": 0}
    if session.scalar(select(BusinessHours.id).limit(1)) is None:
        for weekday in range(5):
            for start, end in DEFAULT_HOURS:
                session.add(BusinessHours(weekday=weekday, start_time=start, end_time=end))
                added["business_hours"] += 1
    if session.scalar(select(SlaPolicy.id).limit(1)) is None:
        for priority, (name, first, resolution) in DEFAULT_POLICIES.items():
            session.add(
                SlaPolicy(
                    name=name,
                    priority=priority,
                    first_response_minutes=first,
                    resolution_minutes=resolution,
                    at_risk_percent=80,
                    active=True,
                )
            )
            added["sla_policies"] += 1
    session.flush()
    return added


# --- record services: validation of the setup screens and API --------------------------------
def _positive(values: dict[str, Any], errors: ErrorCollector, column: str) -> None:
    value = values.get(column)
    if value is None:
        errors.add(column, gettext("请填写分钟数"))
    elif not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        errors.add(column, gettext("分钟数必须是大于 0 的整数"))


class SlaPolicyService(RecordService):
    model = SlaPolicy
    choices = {"priority": TICKET_PRIORITIES, "customer_level": CUSTOMER_LEVELS}
    cleaners = {"name": text_up_to(100)}
    required = {"name": _("请填写名称"), "priority": _("请选择优先级")}

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        _positive(values, errors, "first_response_minutes")
        _positive(values, errors, "resolution_minutes")
        first, resolution = values.get("first_response_minutes"), values.get("resolution_minutes")
        if "first_response_minutes" not in errors.errors and "resolution_minutes" not in errors.errors:
            if resolution < first:
                errors.add("resolution_minutes", gettext("解决时限不能短于首次响应时限"))
        percent = values.get("at_risk_percent")
        if percent is None:
            values["at_risk_percent"] = 80
        elif not isinstance(percent, int) or isinstance(percent, bool) or not 1 <= percent <= 99:
            errors.add("at_risk_percent", gettext("预警比例应为 1 到 99 之间的整数"))
        if values.get("active") is None:
            values["active"] = True
        if values.get("priority") and "priority" not in errors.errors:
            other = select(SlaPolicy.id).where(SlaPolicy.priority == values["priority"])
            level = values.get("customer_level")
            other = other.where(
                SlaPolicy.customer_level.is_(None) if level is None else SlaPolicy.customer_level == level
            )
            if pk is not None:
                other = other.where(SlaPolicy.id != pk)
            if session.scalar(other) is not None:
                errors.add("priority", gettext("该优先级和客户等级已有 SLA 策略"))


class BusinessHoursService(RecordService):
    model = BusinessHours

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        weekday = values.get("weekday")
        if (
            weekday is None
            or isinstance(weekday, bool)
            or not isinstance(weekday, int)
            or not 0 <= weekday <= 6
        ):
            errors.add("weekday", gettext("星期应为 0 (周一) 到 6 (周日)"))
            weekday = None
        start, end = values.get("start_time"), values.get("end_time")
        if start is None:
            errors.add("start_time", gettext("请填写开始时间"))
        if end is None:
            errors.add("end_time", gettext("请填写结束时间"))
        if start is None or end is None:
            return
        if start >= end:
            errors.add("end_time", gettext("结束时间必须晚于开始时间"))
            return
        if weekday is None:
            return
        others = select(BusinessHours.start_time, BusinessHours.end_time).where(
            BusinessHours.weekday == weekday
        )
        if pk is not None:
            others = others.where(BusinessHours.id != pk)
        for other_start, other_end in session.execute(others):
            if start < other_end and other_start < end:
                errors.add(
                    "start_time",
                    gettext(
                        "与同一天的 %(start)s-%(end)s 重叠",
                        start=f"{other_start:%H:%M}",
                        end=f"{other_end:%H:%M}",
                    ),
                )
                return


class ServiceCalendarDayService(RecordService):
    model = ServiceCalendarDay
    choices = {"kind": CALENDAR_DAY_KINDS}
    cleaners = {"name": text_up_to(100)}
    required = {"day": _("请填写日期"), "kind": _("请选择类型")}

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        day = values.get("day")
        if isinstance(day, dt.datetime):
            values["day"] = day = day.date()
        if day is None:
            return
        other = select(ServiceCalendarDay.id).where(ServiceCalendarDay.day == day)
        if pk is not None:
            other = other.where(ServiceCalendarDay.id != pk)
        if session.scalar(other) is not None:
            errors.add("day", gettext("该日期已有记录"))


sla_policy_service = service_for(SlaPolicy)
business_hours_service = service_for(BusinessHours)
calendar_day_service = service_for(ServiceCalendarDay)
