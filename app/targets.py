"""Sales targets (业绩目标): the rules of a target and its actual figure.

The actual of a target is read from the money, never typed in:
- contract amount: the total of orders approved (or executing, completed) in the period, by
  approval time in the company's time zone; voided and unapproved orders do not count;
- collected amount: approved collections received in the period, except those of voided orders
  (a voided order's money is refunded or booked again against its replacement).
A person's target counts the orders they own; a department's counts the orders owned by the
members of the department and of every department below it (membership as it is now).

Actuals for a whole page of targets come from one grouped query per metric (a SUM per period
and owner), never one query per target.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context
from flask_babel import gettext as _
from flask_babel import lazy_gettext as lazy
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from app.access import department_tree_ids, subject_in_scope
from app.errors import AccessDenied, ErrorCollector
from app.services import RecordService, text_up_to
from models.orders import TARGET_METRICS, TARGET_PERIODS, Order, Payment, SalesTarget, target_subject
from models.security import CrmUser

PERIOD_MONTHS = {"month": 1, "quarter": 3, "year": 12}
#: orders whose amount counts as signed business
COUNTED_ORDER_STATUSES = ("approved", "executing", "completed")
CENT = Decimal("0.01")


def period_start(period: str, day: dt.date) -> dt.date:
    """The first day of the month, quarter or year that contains `day`."""
    months = PERIOD_MONTHS[period]
    return day.replace(month=(day.month - 1) // months * months + 1, day=1)


def period_end(period: str, start: dt.date) -> dt.date:
    """The day after the period that starts on `start`."""
    month_index = start.year * 12 + start.month - 1 + PERIOD_MONTHS[period]
    return dt.date(month_index // 12, month_index % 12 + 1, 1)


def _start_message(period: str) -> str:
    if period == "quarter":
        return _("季度目标应从 1月1日、4月1日、7月1日或10月1日开始")
    if period == "year":
        return _("年度目标应从 1月1日开始")
    return _("月度目标应从当月 1 日开始")


class SalesTargetService(RecordService):
    model = SalesTarget
    choices = {"period": TARGET_PERIODS, "metric": TARGET_METRICS}
    cleaners = {"notes": text_up_to(2000)}
    required = {
        "period": lazy("请选择周期"),
        "period_start": lazy("请填写周期开始日期"),
        "metric": lazy("请选择指标"),
        "amount": lazy("请填写目标金额"),
    }

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        if bool(values.get("user_id")) == bool(values.get("department_id")):
            errors.add("user", _("请选择人员或部门 (只能选一个)"))
        amount = values.get("amount")
        if amount is not None and Decimal(amount) <= 0:
            errors.add("amount", _("目标金额应大于 0"))
        period, start = values.get("period"), values.get("period_start")
        if period in PERIOD_MONTHS and isinstance(start, dt.date) and period_start(period, start) != start:
            errors.add("period_start", _start_message(period))
        if errors:
            return
        duplicate = select(SalesTarget.id).where(
            SalesTarget.subject == target_subject(values.get("user_id"), values.get("department_id")),
            SalesTarget.period == period,
            SalesTarget.period_start == start,
            SalesTarget.metric == values.get("metric"),
        )
        if pk is not None:
            duplicate = duplicate.where(SalesTarget.id != pk)
        if session.scalar(duplicate) is not None:
            errors.add("period_start", _("该周期已有同一指标的目标"))

    def authorize(self, session: Session, item: Any, actor: CrmUser | None) -> None:
        """Only a role that may set targets, and only for people and departments within the
        actor's data scope (app.access): a manager sets their own team's, not another team's.
        The stored row is checked by require_writable; this checks where it goes."""
        if actor is None:
            return
        if not may_manage_targets(actor):
            raise AccessDenied(_("您的角色不能设置业绩目标"))
        person = item.user.id if item.user is not None else item.user_id
        department = item.department.id if item.department is not None else item.department_id
        if not subject_in_scope(session, SalesTarget, actor, person, department):
            field = "user" if person is not None else "department"
            raise AccessDenied({field: [_("您只能为自己数据权限内的人员或部门设置业绩目标")]})


#: the permissions (app/security.py: TARGETS with WRITE) that let a role set targets
MANAGE_PERMISSIONS = frozenset(
    {
        ("can_add", "SalesTargetView"),
        ("can_edit", "SalesTargetView"),
        ("can_delete", "SalesTargetView"),
        ("can_post", "SalesTargetApi"),
        ("can_put", "SalesTargetApi"),
        ("can_delete", "SalesTargetApi"),
    }
)


def may_manage_targets(actor: CrmUser) -> bool:
    """Whether one of the actor's roles may write targets: the role permissions an admin sets
    decide, so the CLI, import and the worker obey the same rule as the screens and REST."""
    permissions = current_app.appbuilder.sm.get_user_permissions(actor)
    return not MANAGE_PERMISSIONS.isdisjoint(permissions)


# --- actuals -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TargetProgress:
    """A target with its actual figure and completion (percent, one decimal)."""

    target: SalesTarget
    actual: Decimal

    @property
    def completion(self) -> Decimal:
        if not self.target.amount:
            return Decimal("0")
        return (self.actual * 100 / Decimal(self.target.amount)).quantize(Decimal("0.1"))


def _zone(timezone: str | None) -> ZoneInfo:
    if timezone is None:
        timezone = current_app.config["BABEL_DEFAULT_TIMEZONE"] if has_app_context() else "Asia/Shanghai"
    return ZoneInfo(timezone)


def _utc_midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    """Local midnight of `day` as naive UTC, like the date-time columns."""
    return dt.datetime.combine(day, dt.time(), zone).astimezone(dt.UTC).replace(tzinfo=None)


def _owners(session: Session, targets: list[SalesTarget]) -> dict[int, set[int]]:
    """target id -> the users whose orders count for it."""
    members: dict[int | None, set[int]] = defaultdict(set)
    if any(t.department_id for t in targets):
        for user_id, department_id in session.execute(select(CrmUser.id, CrmUser.department_id)):
            members[department_id].add(user_id)
    owners = {}
    for target in targets:
        if target.user_id is not None:
            owners[target.id] = {target.user_id}
        else:
            tree = department_tree_ids(session, target.department_id)
            owners[target.id] = set().union(*(members[d] for d in tree))
    return owners


def _sums(
    session: Session, metric: str, periods: list[tuple[dt.date, dt.date]], owners: set[int], zone: ZoneInfo
) -> dict[int, list[Decimal]]:
    """owner -> the metric's total in each period: one grouped query."""
    if metric == "contract":
        moment, amount = Order.approved_at, Order.total_amount
        bounds = [(_utc_midnight(s, zone), _utc_midnight(e, zone)) for s, e in periods]
        query = select(Order.owner_id).where(Order.status.in_(COUNTED_ORDER_STATUSES))
    else:
        moment, amount = Payment.received_on, Payment.amount
        bounds = periods
        query = (
            select(Order.owner_id)
            .join(Payment, Payment.order_id == Order.id)
            .where(Payment.status == "approved", Order.status != "voided")
        )
    totals = [func.sum(case((and_(moment >= start, moment < end), amount), else_=0)) for start, end in bounds]
    query = (
        query.add_columns(*totals)
        .where(
            Order.owner_id.in_(sorted(owners)),
            or_(*(and_(moment >= start, moment < end) for start, end in bounds)),
        )
        .group_by(Order.owner_id)
    )
    return {row[0]: [Decimal(str(v or 0)) for v in row[1:]] for row in session.execute(query)}


def progress(
    session: Session, targets: Iterable[SalesTarget], timezone: str | None = None
) -> list[TargetProgress]:
    """Each target with its actual, in the order given; one grouped query per metric."""
    targets = list(targets)
    zone = _zone(timezone)
    owners = _owners(session, targets)
    actual: dict[int, Decimal] = {}
    for metric in TARGET_METRICS:
        chosen = [t for t in targets if t.metric == metric]
        wanted = set().union(*(owners[t.id] for t in chosen)) if chosen else set()
        if not wanted:
            continue
        periods = sorted({(t.period_start, period_end(t.period, t.period_start)) for t in chosen})
        sums = _sums(session, metric, periods, wanted, zone)
        for target in chosen:
            index = periods.index((target.period_start, period_end(target.period, target.period_start)))
            actual[target.id] = sum((sums[o][index] for o in owners[target.id] if o in sums), Decimal("0"))
    return [TargetProgress(t, actual.get(t.id, Decimal("0")).quantize(CENT)) for t in targets]


def target_progress(
    session: Session, user: CrmUser, today: dt.date, timezone: str | None = None
) -> list[TargetProgress]:
    """The user's own and their department's targets for the periods containing `today`
    (month, quarter, year): what the workbench and dashboards show."""
    whose = [SalesTarget.user_id == user.id]
    if user.department_id is not None:
        whose.append(SalesTarget.department_id == user.department_id)
    current = [
        and_(SalesTarget.period == period, SalesTarget.period_start == period_start(period, today))
        for period in PERIOD_MONTHS
    ]
    targets = session.scalars(
        select(SalesTarget)
        .where(or_(*whose), or_(*current))
        .order_by(SalesTarget.user_id.is_(None), SalesTarget.metric, SalesTarget.period_start, SalesTarget.id)
    )
    return progress(session, targets, timezone)
