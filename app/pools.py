"""The customer pool (公海) and handover (转移): pool configuration, claiming, releasing, assigning
and locking customers, the daily recycle run with its warnings, moving customers to another
owner, and collaborators (团队成员).

Decisions, in one place:
- A customer is *won* (exempt from recycling when the pool says so, and never caught by the
  "not won within N days" rule) when its status is 'won' **or** it has a won opportunity: the
  status is set by hand or by import, the opportunity by the pipeline; either is proof enough.
- Every rule counts from when the current owner got the customer (owned_since, else created_at)
  at the earliest: a follow-up or an opportunity of the previous owner does not shorten it.
- A customer in a pool has no owner and no department (department_id NULL): the normal customer
  lists show owned customers only; who sees a pooled customer is the pool screens' rule
  (app.access.pool_clause: the pools serving one's department, all of them for scope "all").
- A handover moves the customer, its open opportunities and tasks of the previous owner and
  its unfinished orders (draft to executing); completed and voided orders keep their owner
  (the sales credit of what was done), follow-ups keep theirs (who wrote them). Contacts have no
  owner: they follow their customer through its data scope.
- Capacity (库容) is checked on claims and assignments from a pool, not on handovers (a manager
  moving a leaver's customers decides that).

Every decision is SQL over sets of rows (bulk UPDATE and INSERT ... SELECT), never a Python loop
over customers: the recycle run handles a million customers on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as lazy
from sqlalchemy import (
    DateTime,
    Integer,
    String,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from app.access import (
    assignable_user_ids,
    browsable_pool_ids,
    first_in_scope,
    owner_clause,
    pool_departments,
    pool_of_department,
    user_scope,
)
from app.clock import local_today
from app.errors import AccessDenied, Conflict, ErrorCollector, NotFound, ValidationFailed
from app.notifications import queue_mail
from app.services import RecordService, acting_as, parent_is_new, text_up_to, unindexed, write_transaction
from models.base import utcnow
from models.customers import CUSTOMER_LEVELS, Customer
from models.notifications import Notification
from models.orders import Order
from models.pools import (
    RULE_KINDS,
    RULE_LOGIC,
    TEAM_ACCESS,
    CustomerPool,
    CustomerTeamMember,
    PoolMove,
    PoolRule,
)
from models.sales import Opportunity, Task
from models.security import CrmUser, Department

#: "never" in due-date arithmetic (a won customer under "not won within N days")
NEVER = dt.datetime(9999, 1, 1)
#: the recycle run keeps due dates this many days beyond the pool's warning days (a daily run:
#: the workbench's "back to the pool soon" list stays complete until the next one)
SCHEDULE_MARGIN_DAYS = 2
#: what a handover carries along with the customers, unless the request names fewer
HANDOVER_PARTS = ("opportunities", "orders", "tasks")
#: orders still being worked on: they follow their customer to the new owner
OPEN_ORDER_STATUSES = ("draft", "pending", "approved", "executing")
#: ids per statement in bulk operations (well below every database's parameter limit)
CHUNK = 1000
#: the customer link of a pool warning; the due date makes it once per customer and due date
WARNING_LINK = "/customerview/show/{id}?recycle_on={day}"


# --- SQL date arithmetic, the same on SQLite, PostgreSQL and MySQL/MariaDB -------------------------
class add_days(FunctionElement):  # noqa: N801  (an SQL function)
    """`when` + `days` days (days: an integer SQL expression, e.g. a CASE over the level)."""

    type = DateTime()
    inherit_cache = True
    name = "add_days"


@compiles(add_days, "sqlite")
def _add_days_sqlite(element: add_days, compiler: Any, **kw: Any) -> str:
    when, days = element.clauses.clauses
    return f"datetime({compiler.process(when, **kw)}, '+' || ({compiler.process(days, **kw)}) || ' days')"


@compiles(add_days, "postgresql")
def _add_days_postgresql(element: add_days, compiler: Any, **kw: Any) -> str:
    when, days = element.clauses.clauses
    days_sql = compiler.process(days, **kw)
    return f"({compiler.process(when, **kw)} + make_interval(days => CAST({days_sql} AS INTEGER)))"


@compiles(add_days)  # MySQL and MariaDB
def _add_days_mysql(element: add_days, compiler: Any, **kw: Any) -> str:
    when, days = element.clauses.clauses
    return f"DATE_ADD({compiler.process(when, **kw)}, INTERVAL ({compiler.process(days, **kw)}) DAY)"


class earliest(FunctionElement):  # noqa: N801
    """The smallest of several non-null values (min() on SQLite, LEAST elsewhere)."""

    type = DateTime()
    inherit_cache = True
    name = "earliest"


class latest(FunctionElement):  # noqa: N801
    """The largest of several non-null values (max() on SQLite, GREATEST elsewhere)."""

    type = DateTime()
    inherit_cache = True
    name = "latest"


@compiles(earliest)
def _earliest(element: earliest, compiler: Any, **kw: Any) -> str:
    name = "min" if compiler.dialect.name == "sqlite" else "LEAST"
    return f"{name}({', '.join(compiler.process(c, **kw) for c in element.clauses.clauses)})"


@compiles(latest)
def _latest(element: latest, compiler: Any, **kw: Any) -> str:
    name = "max" if compiler.dialect.name == "sqlite" else "GREATEST"
    return f"{name}({', '.join(compiler.process(c, **kw) for c in element.clauses.clauses)})"


def _number(value: int) -> ColumnElement[int]:
    """An integer written into the SQL (a plain int, checked by the services)."""
    return literal_column(str(int(value)), Integer())


# --- configuration: pools, rules, collaborators ----------------------------------------------------
#: customer columns an admin may hide from pool browsers (besides custom fields by API name)
HIDEABLE_COLUMNS = (
    "mobile", "phone", "email", "website", "street", "credit_code", "notes", "credit_limit",
    "birth_date", "occupation", "invoice_title", "tax_number", "bank_name", "bank_account",
    "invoice_address_phone", "contacts",
)  # fmt: skip


def _non_negative(values: dict[str, Any], errors: ErrorCollector, *fields: str) -> None:
    for field in fields:
        value = values.get(field)
        if value is None:
            values[field] = 0
        elif not isinstance(value, int) or value < 0:
            errors.add(field, _("应为不小于 0 的整数"))


class CustomerPoolService(RecordService):
    model = CustomerPool
    choices = {"rule_logic": RULE_LOGIC}
    cleaners = {"name": text_up_to(100), "description": text_up_to(255)}
    required = {"name": lazy("请填写公海名称")}

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        values["rule_logic"] = values.get("rule_logic") or "or"
        _non_negative(
            values, errors, "warn_days", "daily_claim_cap", "reclaim_cooldown_days", "max_owned", "max_locked"
        )
        hidden = values.get("hidden_fields") or []
        if isinstance(hidden, str):
            hidden = [part.strip() for part in hidden.replace(",", ",").split(",") if part.strip()]
        if not isinstance(hidden, list) or not all(isinstance(name, str) for name in hidden):
            errors.add("hidden_fields", _("请填写字段名的列表"))
            return
        from customfields.definitions import CustomField  # noqa: PLC0415  (engine model)

        custom = set(session.scalars(select(CustomField.api_name).where(CustomField.entity == "customer")))
        unknown = [name for name in hidden if name not in HIDEABLE_COLUMNS and name not in custom]
        if unknown:
            errors.add(
                "hidden_fields",
                _(
                    "不能隐藏的字段: %(names)s;可隐藏: %(allowed)s 及客户自定义字段",
                    names=", ".join(unknown),
                    allowed=", ".join(HIDEABLE_COLUMNS),
                ),
            )
        values["hidden_fields"] = list(dict.fromkeys(hidden))

    def before_save(self, session: Session, item: CustomerPool, actor: CrmUser | None, is_new: bool) -> None:
        """A department is served by one active pool (where its customers go is never in doubt)."""
        if not item.active:
            return
        wanted = {department.id for department in item.departments}
        if not wanted:
            return
        from models.pools import pool_department  # noqa: PLC0415

        query = (
            select(Department.name, CustomerPool.name)
            .join(pool_department, pool_department.c.department_id == Department.id)
            .join(CustomerPool, CustomerPool.id == pool_department.c.pool_id)
            .where(Department.id.in_(wanted), CustomerPool.active.is_(True))
        )
        if item.id is not None:
            query = query.where(CustomerPool.id != item.id)
        taken = session.execute(query).first()
        if taken:
            raise ValidationFailed(
                {"departments": [_("部门「%(dept)s」已由公海「%(pool)s」服务", dept=taken[0], pool=taken[1])]}
            )


class PoolRuleService(RecordService):
    model = PoolRule
    choices = {"kind": RULE_KINDS}
    required = {"kind": lazy("请选择规则类型"), "days": lazy("请填写天数")}

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        if not values.get("pool_id") and not parent_is_new(values, "pool_id"):
            errors.add("pool", _("请选择所属公海"))
        days = values.get("days")
        if days is not None and (not isinstance(days, int) or days < 1):
            errors.add("days", _("天数应为正整数"))
        by_level = values.get("days_by_level") or {}
        if not isinstance(by_level, dict):
            errors.add("days_by_level", _('请按客户级别填写天数,如 {"key": 60}'))
            return
        for level, value in by_level.items():
            if level not in CUSTOMER_LEVELS:
                errors.add(
                    "days_by_level",
                    _(
                        "未知的客户级别 %(level)s,可选: %(levels)s",
                        level=level,
                        levels=", ".join(CUSTOMER_LEVELS),
                    ),
                )
            elif not isinstance(value, int) or isinstance(value, bool) or value < 1:
                errors.add("days_by_level", _("天数应为正整数"))
        values["days_by_level"] = by_level
        values["position"] = values.get("position") or 0


class CustomerTeamMemberService(RecordService):
    """Collaborators are added by whoever owns the customer (or has it in their owner scope),
    never by another collaborator."""

    model = CustomerTeamMember
    choices = {"access": TEAM_ACCESS}
    cleaners = {"note": text_up_to(2000)}
    required = {"customer_id": lazy("请选择客户"), "user_id": lazy("请选择成员")}

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        values["access"] = values.get("access") or "read"
        customer_id, user_id = values.get("customer_id"), values.get("user_id")
        if user_id and not session.scalar(select(CrmUser.active).where(CrmUser.id == user_id)):
            errors.add("user", _("该用户不存在或已停用"))
        if customer_id and user_id:
            owner_id = session.scalar(select(Customer.owner_id).where(Customer.id == customer_id))
            if owner_id == user_id:
                errors.add("user", _("负责人无需加入团队成员"))
            query = select(CustomerTeamMember.id).where(
                CustomerTeamMember.customer_id == customer_id, CustomerTeamMember.user_id == user_id
            )
            if pk is not None:
                query = query.where(CustomerTeamMember.id != pk)
            if session.scalar(query) is not None:
                errors.add("user", _("该用户已是团队成员"))
        until = values.get("until")
        if isinstance(until, dt.datetime):
            until = values["until"] = until.date()
        if pk is None and until is not None and until < local_today():
            errors.add("until", _("截止日期不能早于今天"))

    def authorize(self, session: Session, item: CustomerTeamMember, actor: CrmUser | None) -> None:
        if actor is None:
            return
        customer_id = item.customer.id if item.customer is not None else item.customer_id
        visible = session.scalar(
            select(Customer.id).where(Customer.id == customer_id, owner_clause(session, Customer, actor))
        )
        if visible is None:
            raise AccessDenied({"customer": [_("只有客户的负责人(或其上级)可以管理团队成员")]})


# --- lookups --------------------------------------------------------------------------------------
def _pool(session: Session, pool_id: int | None) -> CustomerPool | None:
    return session.get(CustomerPool, pool_id) if pool_id is not None else None


def home_pool(session: Session, user: CrmUser) -> CustomerPool | None:
    """The pool serving the user's department: its limits (库容) apply to the user."""
    return _pool(session, pool_of_department(session, user.department_id))


def local_day_start(now: dt.datetime) -> dt.datetime:
    """Midnight of `now`'s local day (CRM_TIMEZONE), as naive UTC like the stored times."""
    zone = ZoneInfo(current_app.config.get("BABEL_DEFAULT_TIMEZONE", "UTC"))
    local = now.replace(tzinfo=dt.UTC).astimezone(zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.astimezone(dt.UTC).replace(tzinfo=None)


def _local_date(moment: dt.datetime) -> dt.date:
    zone = ZoneInfo(current_app.config.get("BABEL_DEFAULT_TIMEZONE", "UTC"))
    return moment.replace(tzinfo=dt.UTC).astimezone(zone).date()


def _count(session: Session, *conditions: Any) -> int:
    return session.scalar(select(func.count()).select_from(Customer).where(*conditions)) or 0


def _pooled_customer(
    session: Session, customer_id: Any, actor: CrmUser | None
) -> tuple[Customer, CustomerPool]:
    """A customer sitting in a pool the actor may browse, else 404 (nothing is revealed)."""
    customer = session.get(Customer, customer_id) if isinstance(customer_id, int) else None
    pools = browsable_pool_ids(session, actor) if actor is not None else None
    if customer is None or customer.pool_id is None or (pools is not None and customer.pool_id not in pools):
        if customer is not None and customer.pool_id is None and customer.owner_id is not None:
            raise Conflict(_("该客户已有负责人,不在公海中"))
        raise NotFound(_("公海中没有该客户,或您无权访问该公海"))
    return customer, session.get(CustomerPool, customer.pool_id)


# --- claim rules ----------------------------------------------------------------------------------
def check_daily_cap(session: Session, pool: CustomerPool, user: CrmUser, now: dt.datetime) -> None:
    """A person claims at most daily_claim_cap customers from a pool per (local) day."""
    if not pool.daily_claim_cap:
        return
    claimed = session.scalar(
        select(func.count())
        .select_from(PoolMove)
        .where(
            PoolMove.to_user_id == user.id,
            PoolMove.action == "claim",
            PoolMove.moved_at >= local_day_start(now),
            PoolMove.pool_id == pool.id,
        )
    )
    if claimed >= pool.daily_claim_cap:
        raise ValidationFailed(
            _("今日已从「%(pool)s」领取 %(n)s 个客户,已达每日上限,请明天再领", pool=pool.name, n=claimed)
        )


def check_cooldown(
    session: Session, pool: CustomerPool, user: CrmUser, customer_id: int, now: dt.datetime
) -> None:
    """The previous owner waits reclaim_cooldown_days after losing a customer (recycled,
    released or handed over) before claiming it back."""
    if not pool.reclaim_cooldown_days:
        return
    lost_at = session.scalar(
        select(func.max(PoolMove.moved_at)).where(
            PoolMove.customer_id == customer_id, PoolMove.from_user_id == user.id
        )
    )
    if lost_at is None:
        return
    allowed = lost_at + dt.timedelta(days=pool.reclaim_cooldown_days)
    if now < allowed:
        raise ValidationFailed(
            _(
                "您是该客户的前负责人,需等到 %(day)s 之后才能重新领取 (冷却期 %(n)s 天)",
                day=f"{_local_date(allowed):%Y-%m-%d}",
                n=pool.reclaim_cooldown_days,
            )
        )


def check_capacity(
    session: Session, pool: CustomerPool | None, user_id: int, owned: int = 0, locked: int = 0
) -> None:
    """库容: a person owns at most max_owned customers and locks at most max_locked (0: no limit)."""
    if pool is None:
        return
    name = session.scalar(select(CrmUser.username).where(CrmUser.id == user_id))
    if owned and pool.max_owned:
        count = _count(session, Customer.owner_id == user_id)
        if count + owned > pool.max_owned:
            raise ValidationFailed(
                _(
                    "库容已满: %(user)s 已有 %(n)s 个客户,上限 %(max)s 个",
                    user=name,
                    n=count,
                    max=pool.max_owned,
                )
            )
    if locked and pool.max_locked:
        count = _count(session, Customer.owner_id == user_id, Customer.locked.is_(True))
        if count + locked > pool.max_locked:
            raise ValidationFailed(
                _(
                    "锁定库容已满: %(user)s 已锁定 %(n)s 个客户,上限 %(max)s 个",
                    user=name,
                    n=count,
                    max=pool.max_locked,
                )
            )


# --- moves of one customer ------------------------------------------------------------------------
def _take_from_pool(
    session: Session,
    customer: Customer,
    pool: CustomerPool,
    user: CrmUser,
    actor: CrmUser | None,
    action: str,
) -> None:
    """Give a pooled customer to `user` if it is still in that pool: the conditional UPDATE is
    the race guard (two people claiming at once: one row changes, the other gets 409)."""
    now = utcnow()
    department_id = session.scalar(select(CrmUser.department_id).where(CrmUser.id == user.id))
    result = session.execute(
        update(Customer)
        .where(Customer.id == customer.id, Customer.pool_id == pool.id, Customer.owner_id.is_(None))
        .values(
            owner_id=user.id,
            department_id=department_id,
            pool_id=None,
            pooled_at=None,
            owned_since=now,
            recycle_at=None,
            updated_at=now,
            updated_by_id=actor.id if actor is not None else None,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise Conflict(_("手慢了,该客户刚被他人领取"))
    session.add(
        PoolMove(
            customer_id=customer.id,
            action=action,
            pool_id=pool.id,
            to_user_id=user.id,
            actor_id=actor.id if actor is not None else None,
            moved_at=now,
        )
    )


def claim(session: Session, customer_id: Any, actor: CrmUser, now: dt.datetime | None = None) -> Customer:
    """领取: the actor takes a customer from a pool they may browse, within the pool's daily cap,
    cooldown and capacity."""
    now = now or utcnow()
    with acting_as(session, actor), write_transaction(session):
        customer, pool = _pooled_customer(session, customer_id, actor)
        check_daily_cap(session, pool, actor, now)
        check_cooldown(session, pool, actor, customer.id, now)
        check_capacity(session, pool, actor.id, owned=1)
        _take_from_pool(session, customer, pool, actor, actor, "claim")
    session.refresh(customer)
    return customer


def assign(session: Session, customer_id: Any, to_user_id: Any, actor: CrmUser) -> Customer:
    """分配: a manager or admin gives a pooled customer to someone they may assign to (capacity
    applies; the daily cap and cooldown are for claims)."""
    with acting_as(session, actor), write_transaction(session):
        customer, pool = _pooled_customer(session, customer_id, actor)
        if user_scope(session, actor, "customer") == "self":
            raise AccessDenied(_("只有主管或管理员可以从公海分配客户"))
        target = _assignable_target(session, to_user_id, actor)
        check_capacity(session, pool, target.id, owned=1)
        _take_from_pool(session, customer, pool, target, actor, "assign")
    session.refresh(customer)
    return customer


def release(session: Session, customer_id: Any, reason: Any, actor: CrmUser) -> Customer:
    """退回公海: the owner (or someone with the customer in their owner scope) gives it back to
    the pool serving its department, with a reason."""
    text = (str(reason).strip() if reason is not None else "")[:255]
    if not text:
        raise ValidationFailed({"reason": [_("请填写退回原因")]})
    now = utcnow()
    with acting_as(session, actor), write_transaction(session):
        customer = _owned_customer(session, customer_id, actor)
        pool_id = pool_of_department(session, customer.department_id)
        if pool_id is None:
            raise ValidationFailed(_("没有服务该部门的公海,不能退回"))
        result = session.execute(
            update(Customer)
            .where(
                Customer.id == customer.id, Customer.owner_id == customer.owner_id, Customer.pool_id.is_(None)
            )
            .values(
                **_pooled_values(pool_id, now),
                updated_by_id=actor.id,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            raise Conflict(_("该客户刚被他人修改,请刷新后重试"))
        session.add(
            PoolMove(
                customer_id=customer.id,
                action="release",
                pool_id=pool_id,
                from_user_id=customer.owner_id,
                reason=text,
                actor_id=actor.id,
                moved_at=now,
            )
        )
    session.refresh(customer)
    return customer


def set_locked(session: Session, customer_id: Any, locked: bool, actor: CrmUser) -> Customer:
    """锁定 / 解锁: a locked customer is exempt from recycling (when the pool says so) and counts
    against the owner's lock capacity (max_locked of the pool serving their department)."""
    with acting_as(session, actor), write_transaction(session):
        customer = _owned_customer(session, customer_id, actor)
        if locked and not customer.locked:
            owner = session.get(CrmUser, customer.owner_id)
            check_capacity(session, home_pool(session, owner), owner.id, locked=1)
        session.execute(
            update(Customer)
            .where(Customer.id == customer.id)
            .values(locked=bool(locked), updated_at=utcnow(), updated_by_id=actor.id)
            .execution_options(synchronize_session=False)
        )
    session.refresh(customer)
    return customer


def _owned_customer(session: Session, customer_id: Any, actor: CrmUser) -> Customer:
    """An owned customer inside the actor's owner scope (collaborators do not release or lock)."""
    found = (
        session.scalar(
            select(Customer).where(Customer.id == customer_id, owner_clause(session, Customer, actor))
        )
        if isinstance(customer_id, int)
        else None
    )
    if found is None:
        raise NotFound(_("客户不存在或您无权操作"))
    if found.owner_id is None:
        raise Conflict(_("该客户在公海中,没有负责人"))
    return found


def _assignable_target(session: Session, to_user_id: Any, actor: CrmUser) -> CrmUser:
    target = session.get(CrmUser, to_user_id) if isinstance(to_user_id, int) else None
    if target is None or not target.active:
        raise ValidationFailed({"to_user_id": [_("目标用户不存在或已停用")]})
    allowed = assignable_user_ids(session, actor)
    if allowed is not None and target.id not in allowed:
        raise AccessDenied({"to_user_id": [_("您只能分配给自己数据权限内的人员")]})
    return target


def _pooled_values(pool_id: Any, now: dt.datetime) -> dict[str, Any]:
    """The columns of a customer entering a pool (release, recycle)."""
    return {
        "owner_id": None,
        "department_id": None,
        "pool_id": pool_id,
        "pooled_at": now,
        "owned_since": None,
        "recycle_at": None,
        "locked": False,
        "updated_at": now,
    }


# --- the recycle run ------------------------------------------------------------------------------
def won_clause() -> ColumnElement[bool]:
    """A won customer: status 'won', or a won opportunity (see the module's decisions)."""
    won_deal = exists().where(Opportunity.customer_id == Customer.id, Opportunity.status == "won")
    return or_(Customer.status == "won", won_deal)


def _level_days(rule: PoolRule) -> ColumnElement[int]:
    """N of a rule for each customer: per level when set, else the rule's days."""
    by_level = {level: days for level, days in (rule.days_by_level or {}).items() if level in CUSTOMER_LEVELS}
    if not by_level:
        return _number(rule.days)
    return case(
        *[(Customer.level == level, _number(days)) for level, days in by_level.items()],
        else_=_number(rule.days),
    )


def _since_owned() -> ColumnElement[dt.datetime]:
    return func.coalesce(Customer.owned_since, Customer.created_at)


def _not_before_owned(moment: ColumnElement[Any]) -> ColumnElement[dt.datetime]:
    """The later of `moment` and when the owner got the customer (NULL-safe, every database)."""
    base = _since_owned()
    return case((moment > base, moment), else_=base)


def rule_due(rule: PoolRule) -> ColumnElement[dt.datetime]:
    """When one rule takes a customer back (NEVER: it cannot)."""
    days = _level_days(rule)
    if rule.kind == "no_followup":
        return add_days(_not_before_owned(Customer.last_followup_at), days)
    if rule.kind == "no_opportunity":
        newest = (
            select(func.max(Opportunity.created_at))
            .where(Opportunity.customer_id == Customer.id)
            .scalar_subquery()
        )
        return add_days(_not_before_owned(newest), days)
    if rule.kind == "not_won":
        return case((won_clause(), literal(NEVER, DateTime())), else_=add_days(_since_owned(), days))
    raise ValueError(f"unknown rule kind {rule.kind!r}")


def exempt_clause(pool: CustomerPool) -> ColumnElement[bool] | None:
    exemptions = []
    if pool.exempt_locked:
        exemptions.append(Customer.locked.is_(True))
    if pool.exempt_won:
        exemptions.append(won_clause())
    if pool.exempt_open_opportunity:
        exemptions.append(
            exists().where(Opportunity.customer_id == Customer.id, Opportunity.status == "open")
        )
    return or_(*exemptions) if exemptions else None


def recycle_due(pool: CustomerPool, horizon: dt.datetime = NEVER) -> ColumnElement[dt.datetime]:
    """When the pool takes a customer back: the first rule due (OR) or the last (AND); NULL when
    exempt, never, or after `horizon`."""
    dues = [rule_due(rule) for rule in pool.rules]
    combined = dues[0] if len(dues) == 1 else (latest if pool.rule_logic == "and" else earliest)(*dues)
    whens = [(combined >= literal(min(horizon, NEVER), DateTime()), null())]
    exempt = exempt_clause(pool)
    if exempt is not None:
        whens.insert(0, (exempt, null()))
    return case(*whens, else_=combined)


def _rule_text(rule: PoolRule, days: int) -> str:
    if rule.kind == "no_followup":
        return _("超过 %(n)s 天未跟进", n=days)
    if rule.kind == "no_opportunity":
        return _("超过 %(n)s 天未新建商机", n=days)
    return _("领取后 %(n)s 天内未成交", n=days)


def _rule_reason(rule: PoolRule) -> ColumnElement[str]:
    """The rule, as the customer's level makes it ("超过 60 天未跟进" for a key customer)."""
    by_level = {level: rule.days_for(level) for level in CUSTOMER_LEVELS}
    if len(set(by_level.values())) == 1:
        return literal(_rule_text(rule, rule.days), String())
    return case(
        *[
            (Customer.level == level, literal(_rule_text(rule, days), String()))
            for level, days in by_level.items()
        ],
        else_=literal(_rule_text(rule, rule.days), String()),
    )


def recycle_reason(pool: CustomerPool, now: dt.datetime) -> ColumnElement[str]:
    """Why a customer went back: the rule that was due (OR), or every rule (AND)."""
    prefix = _("自动回收公海「%(pool)s」: ", pool=pool.name)
    if pool.rule_logic == "and":
        parts: list[Any] = []
        for rule in pool.rules:
            parts += [_rule_reason(rule), literal("; ", String())]
        reason: ColumnElement[str] = parts[0]
        for part in parts[1:-1]:
            reason = reason + part
    else:
        fired = [(rule_due(rule) <= now, _rule_reason(rule)) for rule in pool.rules]
        reason = case(*fired, else_=_rule_reason(pool.rules[0]))
    return func.substr(literal(prefix, String()) + reason, 1, 255)


@dataclass
class RecycleReport:
    """What one recycle run did."""

    scheduled: int = 0
    recycled: int = 0
    warned: int = 0

    def __str__(self) -> str:
        return (
            f"{self.recycled} customers recycled, {self.scheduled} due dates updated, "
            f"{self.warned} owners warned"
        )


def recycle(session: Session, now: dt.datetime | None = None) -> RecycleReport:
    """The daily run: for each active pool, compute when each owned customer of the departments
    it serves goes back, keep it (recycle_at) for those due before the next run's warnings are
    due (warn_days + SCHEDULE_MARGIN_DAYS ahead; NULL for the others), take back those due by
    `now` (a PoolMove 'recycle' each, naming the rule), then warn owners of customers due within
    warn_days.

    Why a horizon: the first run (or a change of the rules) would otherwise write a due date into
    every owned customer; on PostgreSQL each such UPDATE writes a new row version and an entry in
    every index of crm_customer (500,000 customers: about two minutes). The dates are computed for
    every customer on every run anyway; only the few due soon are written.

    Idempotent: a recycled customer has no owner any more, so it is never taken back twice, and
    a warning is sent once per customer and due date.
    """
    now = now or utcnow()
    report = RecycleReport()
    pools = list(
        session.scalars(
            select(CustomerPool)
            .where(CustomerPool.active.is_(True), CustomerPool.recycle_enabled.is_(True))
            .options(selectinload(CustomerPool.rules))
            .order_by(CustomerPool.id)
        )
    )
    served = pool_departments(session)
    covered: set[int] = set()
    with write_transaction(session):
        for pool in pools:
            departments = sorted(served.get(pool.id, ()))
            if not pool.rules or not departments:
                continue
            covered.update(departments)
            owned = _owned_in(departments)
            due = recycle_due(pool, now + dt.timedelta(days=pool.warn_days + SCHEDULE_MARGIN_DAYS))
            report.scheduled += session.execute(
                update(Customer)
                .where(*owned, Customer.recycle_at.is_distinct_from(due))
                .values(recycle_at=due, updated_at=Customer.updated_at)  # a system mark, not an edit
                .execution_options(synchronize_session=False)
            ).rowcount
            report.recycled += _take_back(session, pool, owned, now)
        # customers no recycling pool serves (any more) have no due date
        session.execute(
            update(Customer)
            .where(Customer.recycle_at.is_not(None), ~and_(*_owned_in(sorted(covered))))
            .values(recycle_at=None, updated_at=Customer.updated_at)
            .execution_options(synchronize_session=False)
        )
    report.warned = warn_owners(session, pools, served, now)
    return report


def _owned_in(departments: Sequence[int]) -> list[ColumnElement[bool]]:
    return [
        Customer.owner_id.is_not(None),
        Customer.pool_id.is_(None),
        Customer.department_id.in_(departments),
    ]


def _take_back(
    session: Session, pool: CustomerPool, owned: list[ColumnElement[bool]], now: dt.datetime
) -> int:
    """Move the customers due by `now` into the pool: the history first (INSERT ... SELECT),
    then the customers (one UPDATE), in the caller's transaction."""
    due_now = [*owned, Customer.recycle_at.is_not(None), Customer.recycle_at <= now]
    batch = str(uuid.uuid4())
    columns = ["customer_id", "action", "pool_id", "from_user_id", "reason", "moved_at", "batch"]
    session.execute(
        insert(PoolMove).from_select(
            columns,
            select(
                Customer.id,
                literal("recycle", String()),
                literal(pool.id, Integer()),
                Customer.owner_id,
                recycle_reason(pool, now),
                literal(now, DateTime()),
                literal(batch, String()),
            ).where(*due_now),
        )
    )
    return session.execute(
        update(Customer)
        .where(*due_now)
        .values(**_pooled_values(pool.id, now))
        .execution_options(synchronize_session=False)
    ).rowcount


def warn_owners(
    session: Session,
    pools: Iterable[CustomerPool],
    served: dict[int, set[int]],
    now: dt.datetime,
    batch: int = 1000,
) -> int:
    """Tell owners which customers go back within warn_days: one in-app notification per
    customer and due date (its link carries the date, so a second run finds it), one e-mail per
    owner per run listing the new ones (deduplicated in the outbox). Returns how many warnings."""
    config = current_app.config
    base_url = config["CRM_BASE_URL"].rstrip("/")
    warned = 0
    digests: dict[int, list[str]] = defaultdict(list)
    emails: dict[int, str] = {}
    for pool in pools:
        departments = sorted(served.get(pool.id, ()))
        if not pool.warn_days or not departments:
            continue
        last_id = 0
        while True:
            rows = session.execute(
                select(Customer.id, Customer.name, Customer.owner_id, Customer.recycle_at, CrmUser.email)
                .join(CrmUser, CrmUser.id == Customer.owner_id)
                .where(
                    *_owned_in(departments),
                    Customer.recycle_at > now,
                    Customer.recycle_at <= now + dt.timedelta(days=pool.warn_days),
                    CrmUser.active.is_(True),
                    Customer.id > last_id,
                )
                .order_by(Customer.id)
                .limit(batch)
            ).all()
            if not rows:
                break
            last_id = rows[-1].id
            links = {row.id: WARNING_LINK.format(id=row.id, day=_local_date(row.recycle_at)) for row in rows}
            sent = set(
                session.scalars(
                    select(Notification.link).where(
                        Notification.user_id.in_({row.owner_id for row in rows}),
                        Notification.link.in_(list(links.values())),
                    )
                )
            )
            new = [row for row in rows if links[row.id] not in sent]
            with write_transaction(session):
                if new:
                    session.execute(
                        insert(Notification),
                        [_warning(row, pool, links[row.id], now) for row in new],
                    )
            for row in new:
                day = f"{_local_date(row.recycle_at):%Y-%m-%d}"
                digests[row.owner_id].append(f"{row.name} ({day}) {base_url}{links[row.id]}")
                if row.email:
                    emails[row.owner_id] = row.email
            warned += len(new)
    with write_transaction(session):
        for owner_id, lines in digests.items():
            if owner_id not in emails:
                continue
            key = hashlib.sha1("\n".join(sorted(lines)).encode()).hexdigest()
            body = "\n".join(
                [
                    _("您好,"),
                    "",
                    _("以下客户即将被收回公海,请及时跟进:"),
                    "",
                    *lines,
                    "",
                    "-- ",
                    config["APP_NAME"],
                ]
            )
            subject = _("%(n)s 个客户即将被收回公海", n=len(lines))
            queue_mail(session, emails[owner_id], subject, body, dedup_key=f"pool-warning:{owner_id}:{key}")
    return warned


def _warning(row: Any, pool: CustomerPool, link: str, now: dt.datetime) -> dict[str, Any]:
    day = f"{_local_date(row.recycle_at):%Y-%m-%d}"
    return {
        "user_id": row.owner_id,
        "title": _("客户即将被收回公海: %(name)s", name=row.name)[:200],
        "body": _(
            "客户「%(name)s」将于 %(day)s 被收回公海「%(pool)s」,请及时跟进或锁定",
            name=row.name,
            day=day,
            pool=pool.name,
        ),
        "link": link,
        "created_at": now,
    }


def due_for_recycle(session: Session, user: CrmUser, now: dt.datetime, limit: int = 10) -> list[Customer]:
    """The workbench list: customers in the user's data scope that their pool takes back within
    its warn_days, soonest first."""
    pools = session.scalars(
        select(CustomerPool).where(CustomerPool.active.is_(True), CustomerPool.recycle_enabled.is_(True))
    ).all()
    served = pool_departments(session)
    windows = [
        and_(
            Customer.department_id.in_(sorted(served[pool.id])),
            Customer.recycle_at <= now + dt.timedelta(days=pool.warn_days),
        )
        for pool in pools
        if pool.warn_days and served.get(pool.id)
    ]
    if not windows:
        return []
    conditions = [Customer.owner_id.is_not(None), Customer.recycle_at.is_not(None), or_(*windows)]
    return first_in_scope(session, Customer, user, conditions, [Customer.recycle_at], limit)


# --- handover (转移) --------------------------------------------------------------------------------
@dataclass
class HandoverResult:
    batch: str
    customers: int
    opportunities: int = 0
    orders: int = 0
    tasks: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield list(ids[start : start + CHUNK])


def _handover_ids(customer_ids: Any, errors: ErrorCollector) -> list[int]:
    if not isinstance(customer_ids, list) or not customer_ids:
        errors.add("customer_ids", _("请选择要转移的客户"))
        return []
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in customer_ids):
        errors.add("customer_ids", _("客户编号应为整数"))
        return []
    return sorted(set(customer_ids))


def transfer(
    session: Session,
    customer_ids: Any,
    to_user_id: Any,
    reason: Any,
    actor: CrmUser,
    include: Any = None,
) -> HandoverResult:
    """转移: move customers the actor may edit (their owner scope) to a user the actor may assign
    to, with what belongs to them (see the module's decisions), in one transaction: all or
    nothing. A PoolMove 'transfer' per customer, tied together by one batch id."""
    errors = ErrorCollector()
    ids = _handover_ids(customer_ids, errors)
    text = (str(reason).strip() if reason is not None else "")[:255]
    if not text:
        errors.add("reason", _("请填写转移原因"))
    parts = HANDOVER_PARTS if include is None else include
    if not isinstance(parts, list | tuple) or any(part not in HANDOVER_PARTS for part in parts):
        errors.add("include", _("可选: %(parts)s", parts=", ".join(HANDOVER_PARTS)))
    if not isinstance(to_user_id, int):
        errors.add("to_user_id", _("请选择接收人"))
    errors.raise_if_any()
    now = utcnow()
    result = HandoverResult(batch=str(uuid.uuid4()), customers=0)
    with acting_as(session, actor), write_transaction(session):
        target = _assignable_target(session, to_user_id, actor)
        _check_transferable(session, ids, actor, target)
        department_id = target.department_id
        moved = {
            "owner_id": target.id,
            "department_id": department_id,
            "updated_at": now,
            "updated_by_id": actor.id,
        }
        for chunk in _chunks(ids):
            previous_owner = (
                select(Customer.owner_id).where(Customer.id == Opportunity.customer_id).scalar_subquery()
            )
            if "opportunities" in parts:
                result.opportunities += _move(
                    session,
                    Opportunity,
                    moved,
                    Opportunity.customer_id.in_(chunk),
                    unindexed(Opportunity.status) == "open",
                    Opportunity.owner_id == previous_owner,
                )
            if "orders" in parts:
                result.orders += _move(
                    session,
                    Order,
                    moved,
                    Order.customer_id.in_(chunk),
                    unindexed(Order.status).in_(OPEN_ORDER_STATUSES),
                    Order.owner_id
                    == select(Customer.owner_id).where(Customer.id == Order.customer_id).scalar_subquery(),
                )
            if "tasks" in parts:
                result.tasks += _move(
                    session,
                    Task,
                    moved,
                    Task.customer_id.in_(chunk),
                    unindexed(Task.status) == "open",
                    Task.owner_id
                    == select(Customer.owner_id).where(Customer.id == Task.customer_id).scalar_subquery(),
                )
            session.execute(
                insert(PoolMove).from_select(
                    [
                        "customer_id",
                        "action",
                        "from_user_id",
                        "to_user_id",
                        "reason",
                        "actor_id",
                        "moved_at",
                        "batch",
                    ],
                    select(
                        Customer.id,
                        literal("transfer", String()),
                        Customer.owner_id,
                        literal(target.id, Integer()),
                        literal(text, String()),
                        literal(actor.id, Integer()),
                        literal(now, DateTime()),
                        literal(result.batch, String()),
                    ).where(Customer.id.in_(chunk)),
                )
            )
            result.customers += session.execute(
                update(Customer)
                .where(Customer.id.in_(chunk))
                .values(**moved, owned_since=now, recycle_at=None)
                .execution_options(synchronize_session=False)
            ).rowcount
            # the new owner needs no collaborator row on their own customer
            session.execute(
                delete(CustomerTeamMember).where(
                    CustomerTeamMember.customer_id.in_(chunk), CustomerTeamMember.user_id == target.id
                )
            )
    return result


def _move(session: Session, model: type, values: dict[str, Any], *conditions: Any) -> int:
    return session.execute(
        update(model).where(*conditions).values(**values).execution_options(synchronize_session=False)
    ).rowcount


def _check_transferable(session: Session, ids: list[int], actor: CrmUser, target: CrmUser) -> None:
    """Every customer must exist, be owned and lie in the actor's owner scope; else nothing moves."""
    editable: set[int] = set()
    for chunk in _chunks(ids):
        editable.update(
            session.scalars(
                select(Customer.id).where(
                    Customer.id.in_(chunk),
                    Customer.owner_id.is_not(None),
                    owner_clause(session, Customer, actor),
                )
            )
        )
    refused = [i for i in ids if i not in editable]
    if refused:
        shown = ", ".join(map(str, refused[:20])) + (" ..." if len(refused) > 20 else "")
        raise AccessDenied(
            {
                "customer_ids": [
                    _("以下客户不存在、在公海中或不在您的权限内,未转移任何客户: %(ids)s", ids=shown)
                ]
            }
        )
