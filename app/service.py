"""The service desk (服务工单): the rules of tickets, their categories, conversation and assignment
rules, and the use cases every screen, the REST API, the public form and the worker call.

The ticket operations (create, change status, comment, attach, assign, link a customer) flush
and never commit: the caller owns the transaction (a screen or endpoint commits through
`commit_work`, the public form after its own steps), so a ticket and everything it sets off
(history, SLA targets, survey, notices) are written together or not at all.

Who may work a ticket (comment, change status, assign, attach): whoever may change it by data
scope (assignee, team by the role's scope), plus the members of its team while nobody has it
(the team's unassigned queue). Who may read it: the same, plus whoever may see its customer.
"""

from __future__ import annotations

import datetime as dt
from typing import IO, Any
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context
from flask_babel import gettext as _
from flask_babel import lazy_gettext as lazy
from sqlalchemy import ColumnElement, and_, false, func, inspect, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.sql.elements import False_, True_

from app import assignment, sla, surveys, validators
from app.access import assignable_user_ids, extend_scope, scope_clause
from app.customfields import UploadRule, file_store, upload_rule
from app.errors import AccessDenied, ErrorCollector, ValidationFailed
from app.extensions import db
from app.notifications import notify
from app.orders import starts_with
from app.services import (
    RecordService,
    acting_as,
    apply_values,
    column_values,
    many_to_one_columns,
    require_visible,
    text_up_to,
    write_transaction,
)
from models.base import utcnow
from models.customers import CUSTOMER_LEVELS, Contact, Customer, Region
from models.security import CrmUser, Department
from models.service import (
    ASSIGNMENT_STRATEGIES,
    MATCH_STATES,
    RESOLUTION_METHODS,
    SLA_STATES,
    TICKET_CHANNELS,
    TICKET_PRIORITIES,
    TICKET_STATUSES,
    AssignmentRule,
    Ticket,
    TicketAttachment,
    TicketCategory,
    TicketComment,
    TicketStatusChange,
)

#: the ticket page in notices
TICKET_LINK = "/ticketview/show/{id}"
#: the default business types (业务类型), seeded for a new company
DEFAULT_CATEGORIES = ("配送延迟", "产品包装", "质量问题", "发票", "技术支持", "售后安装", "其他")
#: status moves; new and assigned are reached by assignment only (assign_ticket, app.assignment)
STATUS_FLOW: dict[str, set[str]] = {
    "new": {"assigned", "in_progress", "waiting", "resolved", "closed"},
    "assigned": {"new", "in_progress", "waiting", "resolved", "closed"},
    "in_progress": {"waiting", "resolved", "closed"},
    "waiting": {"in_progress", "resolved", "closed"},
    "resolved": {"closed", "reopened"},
    "closed": {"reopened"},
    "reopened": {"assigned", "in_progress", "waiting", "resolved", "closed"},
}
#: statuses a user may choose on the ticket page (the others follow from assignment)
MANUAL_STATUSES = ("in_progress", "waiting", "resolved", "closed", "reopened")
MAX_TEXT = 20000
NUMBER_ATTEMPTS = 20


# --- who may see and work tickets ----------------------------------------------------------------
def team_queue_clause(user: CrmUser) -> ColumnElement[bool] | None:
    """The user's team's unassigned tickets (the queue members take tickets from)."""
    if not user.department_id:
        return None
    return and_(Ticket.owner_id.is_(None), Ticket.department_id == user.department_id)


def _also_visible(user: CrmUser) -> ColumnElement[bool]:
    """Besides the data scope: the team's unassigned queue, and the tickets of every customer the
    user may see (a sales rep reads their customers' tickets)."""
    clauses = []
    queue = team_queue_clause(user)
    if queue is not None:
        clauses.append(queue)
    customers = scope_clause(db.session, Customer, user)
    if customers is None or isinstance(customers, True_):
        clauses.append(Ticket.customer_id.is_not(None))
    elif not isinstance(customers, False_):
        clauses.append(Ticket.customer_id.in_(select(Customer.id).where(customers)))
    return or_(*clauses) if clauses else false()


extend_scope(Ticket, _also_visible)


def workable_clause(session: Session, actor: CrmUser) -> ColumnElement[bool]:
    """The tickets the actor may work on: those they may change, and their team's queue."""
    clause = scope_clause(session, Ticket, actor, write=True)
    if clause is None or isinstance(clause, True_):
        return Ticket.id.is_not(None)
    queue = team_queue_clause(actor)
    return clause if queue is None else or_(clause, queue)


def may_work(session: Session, ticket: Ticket, actor: CrmUser | None) -> bool:
    if actor is None or ticket.id is None:
        return True
    with session.no_autoflush:
        query = select(Ticket.id).where(Ticket.id == ticket.id, workable_clause(session, actor))
        return session.scalar(query) is not None


def require_workable(session: Session, ticket: Ticket, actor: CrmUser | None) -> None:
    if not may_work(session, ticket, actor):
        raise AccessDenied(_("您只能处理自己或本团队待分派的工单"))


# --- record services -----------------------------------------------------------------------------
def _stored(session: Session, model: type, pk: Any) -> Any:
    if pk is None:
        return None
    return session.execute(select(model.__table__).where(model.__table__.c.id == pk)).first()


def clean_long_text(value: Any, max_length: int = MAX_TEXT) -> str | None:
    """Trimmed text whose line breaks are kept (a description, a reply); blank becomes None."""
    if value is None:
        return None
    text = validators.to_half_width(str(value)).strip()
    if not text:
        return None
    if len(text) > max_length:
        raise ValueError(_("最多 %(n)s 个字符", n=max_length))
    return text


def _transition_error(old: str, new: str) -> str:
    return _("工单不能从「%(a)s」变为「%(b)s」", a=TICKET_STATUSES.label(old), b=TICKET_STATUSES.label(new))


class TicketCategoryService(RecordService):
    model = TicketCategory
    cleaners = {"name": text_up_to(100)}
    required = {"name": lazy("请填写分类名称")}

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        values["position"] = values.get("position") or 0
        values["active"] = True if values.get("active") is None else values["active"]
        if values.get("name"):
            query = select(TicketCategory.id).where(
                TicketCategory.name == values["name"], TicketCategory.id != (pk or 0)
            )
            if session.scalar(query) is not None:
                errors.add("name", _("已有同名的工单分类"))

    def before_delete(self, session: Session, item: TicketCategory) -> None:
        if session.scalar(select(Ticket.id).where(Ticket.category_id == item.id).limit(1)) is not None:
            raise ValidationFailed({"name": [_("该分类已有工单,不能删除,请停用")]})


def _int_list(raw: Any) -> tuple[list[int], list[str]]:
    """A list of integers from a list, or a text of codes separated by commas or spaces."""
    if raw in (None, ""):
        return [], []
    if isinstance(raw, str):
        raw = raw.replace(",", " ").replace("、", " ").replace(",", " ").split()
    if not isinstance(raw, (list, tuple, set)):
        return [], [str(raw)]
    good, bad = [], []
    for item in raw:
        try:
            good.append(int(str(item).strip()))
        except ValueError:
            bad.append(str(item))
    return sorted(set(good)), bad


class AssignmentRuleService(RecordService):
    model = AssignmentRule
    choices = {"strategy": ASSIGNMENT_STRATEGIES}
    cleaners = {"name": text_up_to(100)}
    required = {"name": lazy("请填写规则名称")}

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        values["strategy"] = values.get("strategy") or "round_robin"
        values["active"] = True if values.get("active") is None else values["active"]
        if values.get("name"):
            query = select(AssignmentRule.id).where(
                AssignmentRule.name == values["name"], AssignmentRule.id != (pk or 0)
            )
            if session.scalar(query) is not None:
                errors.add("name", _("已有同名的分派规则"))
        self._check_target(session, values, errors)
        codes, bad = _int_list(values.get("district_codes"))
        known = set(session.scalars(select(Region.code).where(Region.code.in_(codes)))) if codes else set()
        bad += [str(code) for code in codes if code not in known]
        if bad:
            errors.add("district_codes", _("未知的行政区划代码: %(codes)s", codes=", ".join(bad)))
        values["district_codes"] = codes
        ids, bad = _int_list(values.get("category_ids"))
        known = (
            set(session.scalars(select(TicketCategory.id).where(TicketCategory.id.in_(ids))))
            if ids
            else set()
        )
        bad += [str(i) for i in ids if i not in known]
        if bad:
            errors.add("category_ids", _("未知的工单分类: %(ids)s", ids=", ".join(bad)))
        values["category_ids"] = ids
        levels = values.get("customer_levels") or []
        if isinstance(levels, str):
            levels = levels.replace(",", " ").split()
        if not isinstance(levels, (list, tuple)) or any(level not in CUSTOMER_LEVELS for level in levels):
            errors.add(
                "customer_levels",
                _("不是有效的客户级别,可选: %(options)s", options=", ".join(CUSTOMER_LEVELS.codes)),
            )
            levels = []
        values["customer_levels"] = sorted(set(levels))
        self._check_position(session, values, pk, errors)

    def _check_target(self, session: Session, values: dict[str, Any], errors: ErrorCollector) -> None:
        user_id, department_id = values.get("target_user_id"), values.get("target_department_id")
        if user_id is None and department_id is None:
            errors.add("target_user", _("请选择分派给哪个用户或哪个团队(部门)"))
        elif user_id is not None and department_id is not None:
            errors.add("target_department", _("分派目标只能是一个用户或一个团队,不能同时选择"))
        elif user_id is not None:
            active = session.scalar(select(CrmUser.active).where(CrmUser.id == user_id))
            if not active:
                errors.add("target_user", _("该用户不存在或已停用"))
        elif session.scalar(select(Department.id).where(Department.id == department_id)) is None:
            errors.add("target_department", _("该部门不存在"))

    def _check_position(
        self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector
    ) -> None:
        """A new rule without a position goes last; two rules never share one (the order of
        evaluation must be unambiguous)."""
        position = values.get("position")
        if position in (None, "") or (pk is None and position == 0):
            last = session.scalar(
                select(func.max(AssignmentRule.position)).where(AssignmentRule.id != (pk or 0))
            )
            values["position"] = (last or 0) + 10
            return
        clash = session.scalar(
            select(AssignmentRule.name).where(
                AssignmentRule.position == position, AssignmentRule.id != (pk or 0)
            )
        )
        if clash is not None:
            errors.add("position", _("序号 %(n)s 已被规则「%(name)s」使用", n=position, name=clash))


class TicketService(RecordService):
    model = Ticket
    choices = {
        "priority": TICKET_PRIORITIES,
        "channel": TICKET_CHANNELS,
        "status": TICKET_STATUSES,
        "match_state": MATCH_STATES,
        "resolution_method": RESOLUTION_METHODS,
        "sla_state": SLA_STATES,
    }
    cleaners = {
        "subject": text_up_to(200),
        "description": clean_long_text,
        "resolution": clean_long_text,
        "requester_name": text_up_to(100),
        "requester_mobile": validators.clean_mobile,
        "requester_email": validators.clean_email,
    }
    required = {"subject": lazy("请填写工单标题"), "description": lazy("请填写问题描述")}

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        for column, default in (("priority", "normal"), ("channel", "staff"), ("status", "new")):
            values[column] = values.get(column) or default
        values["match_state"] = values.get("match_state") or "matched"
        values["sla_state"] = values.get("sla_state") or "ok"
        before = _stored(session, Ticket, pk)
        if before is not None:
            if values.get("number") != before.number:
                errors.add("number", _("工单编号生成后不能修改"))
            old, new = before.status, values["status"]
            if new != old and new not in STATUS_FLOW.get(old, set()):
                errors.add("status", _transition_error(old, new))
        if values["status"] == "resolved":
            if not values.get("resolution") and "resolution" not in errors.errors:
                errors.add("resolution", _("解决工单请填写处理结果"))
            if not values.get("resolution_method") and "resolution_method" not in errors.errors:
                errors.add("resolution_method", _("解决工单请选择解决方式"))
        customer_id, contact_id = values.get("customer_id"), values.get("contact_id")
        if contact_id:
            belongs = session.scalar(select(Contact.customer_id).where(Contact.id == contact_id))
            if belongs is None:
                errors.add("contact", _("该联系人不存在"))
            elif customer_id and belongs != customer_id:
                errors.add("contact", _("所选联系人不属于该客户"))
        if customer_id and session.scalar(select(Customer.id).where(Customer.id == customer_id)) is None:
            errors.add("customer", _("该客户不存在"))
        district = values.get("district_code")
        if (
            district is not None
            and session.scalar(select(Region.code).where(Region.code == district)) is None
        ):
            errors.add("district", _("未知的行政区划代码: %(codes)s", codes=district))
        category = values.get("category_id")
        if category is not None:
            active = session.scalar(select(TicketCategory.active).where(TicketCategory.id == category))
            changed = before is None or before.category_id != category
            if active is None:
                errors.add("category", _("该工单分类不存在"))
            elif changed and not active:
                errors.add("category", _("该工单分类已停用"))
        if values.get("owner_id") and not values.get("department_id"):
            values["department_id"] = session.scalar(
                select(CrmUser.department_id).where(CrmUser.id == values["owner_id"])
            )

    def save(self, session: Session, item: Ticket, actor: CrmUser | None) -> Ticket:
        """A new ticket from a screen or the REST API opens like every other (create_ticket):
        numbered, matched, assigned, its history and SLA started; then committed."""
        state = inspect(item)
        if state.transient or state.pending:
            with acting_as(session, actor), write_transaction(session):
                open_ticket(session, item, actor)
            return item
        return super().save(session, item, actor)

    def before_save(self, session: Session, item: Ticket, actor: CrmUser | None, is_new: bool) -> None:
        stored = session.scalar(select(Ticket.priority).where(Ticket.id == item.id)) if not is_new else None
        item.__dict__["_priority_changed"] = not is_new and stored != item.priority

    def after_save(self, session: Session, item: Ticket) -> None:
        """A changed priority changes the SLA targets (they count from the ticket's creation)."""
        if item.__dict__.pop("_priority_changed", False):
            sla.apply_targets(session, item, utcnow())
            session.flush()

    def authorize(self, session: Session, item: Ticket, actor: CrmUser | None) -> None:
        require_workable(session, item, actor)


class TicketCommentService(RecordService):
    model = TicketComment
    cleaners = {"body": clean_long_text, "author_name": text_up_to(100)}
    required = {"body": lazy("请填写内容")}

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        if values.get("internal") and values.get("from_customer"):
            errors.add("internal", _("客户的留言不能是内部备注"))


ticket_service = TicketService()
category_service = TicketCategoryService()
rule_service = AssignmentRuleService()
comment_service = TicketCommentService()


# --- numbering -----------------------------------------------------------------------------------
def local_day(now: dt.datetime) -> dt.date:
    """The company's calendar day of a naive UTC moment (numbers count per local day)."""
    zone = current_app.config.get("BABEL_DEFAULT_TIMEZONE", "UTC") if has_app_context() else "UTC"
    return now.replace(tzinfo=dt.UTC).astimezone(ZoneInfo(zone)).date()


def number_prefix(day: dt.date) -> str:
    pattern = current_app.config.get("CRM_TICKET_NUMBER_PREFIX", "GD-{date:%Y%m%d}-")
    return pattern.format(date=day)


def next_ticket_number(session: Session, day: dt.date) -> str:
    """GD-YYYYMMDD-NNNN: one more than the day's largest number (the unique index answers)."""
    prefix = number_prefix(day)
    candidates = session.scalars(
        select(Ticket.number)
        .where(starts_with(session, Ticket.number, prefix))
        .order_by(func.length(Ticket.number).desc(), Ticket.number.desc())
        .limit(20)
    )
    last = max((int(n[len(prefix) :]) for n in candidates if n[len(prefix) :].isdigit()), default=0)
    return f"{prefix}{last + 1:04d}"


def _insert_numbered(session: Session, ticket: Ticket, now: dt.datetime) -> None:
    """Insert the ticket with the day's next number, safe with concurrent writers.

    SQLite lets one writer at a time: an empty UPDATE takes the write lock first, so no other
    transaction can insert a number between our read and our insert. PostgreSQL and MariaDB:
    insert in a savepoint; when a concurrent ticket took the number (unique index), try the next
    one (counting up from the taken number: MariaDB's snapshot would not show it on a re-read)."""
    day = local_day(now)
    if session.get_bind().dialect.name == "sqlite":
        assignment.sqlite_write_lock(session, Ticket.__tablename__)
        ticket.number = next_ticket_number(session, day)
        session.add(ticket)
        session.flush()
        return
    number = next_ticket_number(session, day)
    prefix = number_prefix(day)
    for _attempt in range(NUMBER_ATTEMPTS):
        ticket.number = number
        try:
            with session.begin_nested():
                session.add(ticket)
                session.flush()
            return
        except IntegrityError:
            taken = session.scalar(select(Ticket.id).where(Ticket.number == number).with_for_update())
            if taken is None:
                raise ValidationFailed({"_schema": [_("与已有记录冲突 (唯一或关联约束),未保存")]}) from None
            number = f"{prefix}{int(number[len(prefix) :]) + 1:04d}"
    raise ValidationFailed({"number": [_("工单编号冲突,请重试")]})


# --- opening a ticket ----------------------------------------------------------------------------
def match_requester(session: Session, ticket: Ticket) -> None:
    """Find the customer (and contact) of a requester by mobile, then e-mail; sets match_state."""
    if ticket.customer_id is not None:
        ticket.match_state = "matched"
        return
    found: tuple[int, int | None] | None = None
    for value, customer_column, contact_column in (
        (ticket.requester_mobile, Customer.mobile, Contact.mobile),
        (ticket.requester_email, Customer.email, Contact.email),
    ):
        if not value or found:
            continue
        customer_id = session.scalar(select(Customer.id).where(customer_column == value).limit(1))
        contact = session.execute(
            select(Contact.id, Contact.customer_id)
            .where(contact_column == value, *([Contact.customer_id == customer_id] if customer_id else []))
            .order_by(Contact.id)
            .limit(1)
        ).first()
        if customer_id is not None:
            found = (customer_id, contact.id if contact else None)
        elif contact is not None and contact.customer_id is not None:
            found = (contact.customer_id, contact.id)
    if found is None:
        ticket.match_state = "unmatched"
        return
    ticket.customer_id, ticket.contact_id = found
    ticket.match_state = "matched"


def open_ticket(
    session: Session, ticket: Ticket, actor: CrmUser | None, now: dt.datetime | None = None
) -> None:
    """Validate, match, assign, number and insert a new ticket with its first history row and SLA
    targets; flushes, does not commit. ValidationFailed before anything is written."""
    now = now or utcnow()
    with session.no_autoflush:
        ticket.status = "new"
        values = column_values(ticket)
        cleaned = ticket_service.clean(session, values, None)
        apply_values(session, ticket, values, cleaned)
        for column in many_to_one_columns(Ticket).values():  # a relationship set (REST, forms): its key too
            if column in cleaned and getattr(ticket, column) != cleaned[column]:
                setattr(ticket, column, cleaned[column])
        if actor is not None:
            require_visible(session, Customer, ticket.customer_id, actor, "customer", _("客户"))
        match_requester(session, ticket)
        if ticket.district_code is None and ticket.customer_id is not None:
            ticket.district_code = session.scalar(
                select(Customer.district_code).where(Customer.id == ticket.customer_id)
            )
        if actor is not None:
            ticket.created_by_id = ticket.updated_by_id = actor.id
        ticket.created_at = ticket.updated_at = now
        assignment.assign(session, ticket)
    _insert_numbered(session, ticket, now)
    record_change(session, ticket, None, ticket.status, actor, now)
    sla.apply_targets(session, ticket, now)
    session.flush()
    _tell_assignee(session, ticket, actor)


def create_ticket(
    session: Session,
    *,
    subject: str,
    description: str,
    channel: str,
    actor: CrmUser | None,
    customer_id: int | None = None,
    contact_id: int | None = None,
    category_id: int | None = None,
    priority: str = "normal",
    district_code: int | None = None,
    requester_name: str | None = None,
    requester_mobile: str | None = None,
    requester_email: str | None = None,
    custom: dict | None = None,
    now: dt.datetime | None = None,
) -> Ticket:
    """Open a ticket (staff, web form, e-mail, phone): validated (ValidationFailed with a message
    per field, nothing written), numbered GD-YYYYMMDD-NNNN, the requester matched to a customer
    by mobile or e-mail, the district taken from the customer, assigned by the rules, its first
    status change recorded and its SLA targets set. Flushes, does not commit."""
    ticket = Ticket(
        subject=subject,
        description=description,
        channel=channel,
        customer_id=customer_id,
        contact_id=contact_id,
        category_id=category_id,
        priority=priority,
        district_code=district_code,
        requester_name=requester_name,
        requester_mobile=requester_mobile,
        requester_email=requester_email,
        custom=custom or {},
    )
    open_ticket(session, ticket, actor, now)
    return ticket


def record_change(
    session: Session,
    ticket: Ticket,
    old: str | None,
    new: str,
    actor: CrmUser | None,
    now: dt.datetime,
    note: str | None = None,
) -> TicketStatusChange:
    change = TicketStatusChange(
        ticket_id=ticket.id,
        from_status=old,
        to_status=new,
        changed_at=now,
        changed_by_id=actor.id if actor is not None else None,
        note=note[:500] if note else None,
    )
    session.add(change)
    return change


def _tell_assignee(
    session: Session, ticket: Ticket, actor: CrmUser | None, previous: int | None = None
) -> None:
    """An in-app notice to the new assignee (not when they took the ticket themselves)."""
    owner_id = ticket.owner_id
    if owner_id is None or owner_id == previous or (actor is not None and actor.id == owner_id):
        return
    notify(
        session,
        owner_id,
        _("新工单分派给您: %(number)s %(subject)s", number=ticket.number, subject=ticket.subject),
        None,
        TICKET_LINK.format(id=ticket.id),
    )


# --- status --------------------------------------------------------------------------------------
def change_status(
    session: Session,
    ticket: Ticket,
    to_status: str,
    actor: CrmUser | None,
    *,
    note: str | None = None,
    resolution: str | None = None,
    resolution_method: str | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Move a ticket along its allowed transitions, recording who and when. Resolving needs the
    resolution and the way it was solved; closing an unresolved ticket needs a note (why).
    Flushes, does not commit."""
    now = now or utcnow()
    errors = ErrorCollector()
    old = ticket.status
    if to_status not in TICKET_STATUSES:
        errors.add("status", _("不是有效的选项,可选: %(options)s", options=", ".join(MANUAL_STATUSES)))
    elif to_status == old:
        errors.add("status", _("工单已经是「%(s)s」", s=TICKET_STATUSES.label(old)))
    elif to_status in ("new", "assigned"):
        errors.add("status", _("请通过「分派」指定处理人"))
    elif to_status not in STATUS_FLOW.get(old, set()):
        errors.add("status", _transition_error(old, to_status))
    try:
        note = validators.clean_text(note, 500)
    except ValueError as exc:
        errors.add("note", str(exc))
    if to_status == "resolved":
        try:
            resolution = clean_long_text(resolution)
        except ValueError as exc:
            errors.add("resolution", str(exc))
        else:
            if not resolution:
                errors.add("resolution", _("解决工单请填写处理结果"))
        if not resolution_method:
            errors.add("resolution_method", _("解决工单请选择解决方式"))
        elif resolution_method not in RESOLUTION_METHODS:
            errors.add(
                "resolution_method",
                _("不是有效的选项,可选: %(options)s", options=", ".join(RESOLUTION_METHODS.codes)),
            )
    if to_status == "closed" and old != "resolved" and not note and "note" not in errors.errors:
        errors.add("note", _("未解决就关闭工单,请填写原因"))
    errors.raise_if_any()
    require_workable(session, ticket, actor)
    ticket.status = to_status
    if to_status == "resolved":
        ticket.resolution, ticket.resolution_method, ticket.resolved_at = resolution, resolution_method, now
    elif to_status == "closed":
        ticket.closed_at = now
    elif to_status == "reopened":
        ticket.reopen_count = (ticket.reopen_count or 0) + 1
        ticket.resolved_at = ticket.closed_at = None
    if actor is not None:
        ticket.updated_by_id = actor.id
    record_change(session, ticket, old, to_status, actor, now, note)
    session.flush()
    sla.on_status_change(session, ticket, old, now)
    if to_status == "resolved":
        surveys.on_resolved(session, ticket)
    session.flush()


# --- conversation and files ----------------------------------------------------------------------
def add_comment(
    session: Session,
    ticket: Ticket,
    body: str,
    *,
    actor: CrmUser | None = None,
    internal: bool = False,
    from_customer: bool = False,
    author_name: str | None = None,
    now: dt.datetime | None = None,
) -> TicketComment:
    """Add a reply, an internal note or the customer's message. The first public staff reply is
    the first response (SLA); every public staff reply is mailed to the requester; a customer's
    reply takes a waiting ticket back in progress and reopens a resolved one. Flushes, does not
    commit."""
    now = now or utcnow()
    errors = ErrorCollector()
    try:
        text = clean_long_text(body)
    except ValueError as exc:
        errors.add("body", str(exc))
        text = None
    if text is None and "body" not in errors.errors:
        errors.add("body", _("请填写内容"))
    if internal and from_customer:
        errors.add("internal", _("客户的留言不能是内部备注"))
    if from_customer and ticket.status == "closed":
        errors.add("body", _("工单已关闭,请提交新的工单"))
    errors.raise_if_any()
    if not from_customer:
        require_workable(session, ticket, actor)
    if from_customer:
        name = author_name or ticket.requester_name
        if not name and ticket.customer_id is not None:
            name = session.scalar(select(Customer.name).where(Customer.id == ticket.customer_id))
        author_id = None
    else:
        name, author_id = author_name, actor.id if actor is not None else None
    comment = TicketComment(
        ticket_id=ticket.id,
        author_id=author_id,
        author_name=(name or "")[:100] or None,
        from_customer=from_customer,
        internal=internal,
        body=text,
        created_at=now,
    )
    session.add(comment)
    session.flush()
    if not internal and not from_customer and actor is not None and ticket.first_response_at is None:
        ticket.first_response_at = now
        session.flush()
        sla.on_first_response(session, ticket, now)
    if not internal and not from_customer:
        surveys.mail_reply(session, ticket, comment)
    if from_customer:
        if ticket.status == "waiting":
            change_status(session, ticket, "in_progress", None, note=_("客户已回复"), now=now)
        elif ticket.status == "resolved":
            change_status(session, ticket, "reopened", None, note=_("客户回复,工单重新打开"), now=now)
        if ticket.owner_id is not None:
            notify(
                session,
                ticket.owner_id,
                _("客户回复了工单 %(number)s", number=ticket.number),
                text[:200],
                TICKET_LINK.format(id=ticket.id),
            )
    session.flush()
    return comment


def conversation(session: Session, ticket_id: int, include_internal: bool = True) -> list[TicketComment]:
    """A ticket's comments, oldest first, with their authors: one query however long."""
    query = (
        select(TicketComment)
        .where(TicketComment.ticket_id == ticket_id)
        .options(joinedload(TicketComment.author))
        .order_by(TicketComment.id)
    )
    if not include_internal:
        query = query.where(TicketComment.internal.is_(False))
    return list(session.scalars(query))


def ticket_upload_rule() -> UploadRule:
    return upload_rule("ticket", "attachment", "CRM_TICKET_FILE_TYPES", "CRM_TICKET_FILE_MB")


def add_attachment(
    session: Session,
    ticket: Ticket,
    stream: IO[bytes],
    filename: str,
    *,
    actor: CrmUser | None = None,
    from_customer: bool = False,
    comment: TicketComment | None = None,
) -> TicketAttachment:
    """Keep a file of the ticket (type and size limits, content matching the extension) in the
    FileStore; ValidationFailed when refused. Flushes, does not commit."""
    if not from_customer:
        require_workable(session, ticket, actor)
    try:
        meta = file_store().save(stream, filename, ticket_upload_rule())  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValidationFailed({"file": [str(exc)]}) from None
    attachment = TicketAttachment(
        ticket_id=ticket.id,
        comment_id=comment.id if comment is not None else None,
        file_key=meta["id"],
        filename=meta["name"],
        size=meta["size"],
        from_customer=from_customer,
        uploaded_at=utcnow(),
        uploaded_by_id=actor.id if actor is not None and not from_customer else None,
    )
    session.add(attachment)
    session.flush()
    return attachment


def attachment_file(attachment: TicketAttachment) -> tuple[Any, dict[str, Any]] | None:
    """(path, description) of a stored attachment, None when the file is gone."""
    meta = file_store().describe(attachment.file_key or "")
    path = file_store().path(attachment.file_key or "")
    return (path, meta) if meta and path else None


# --- assignment by hand, linking a customer ------------------------------------------------------
def assign_ticket(
    session: Session, ticket: Ticket, *, user_id: int | None, department_id: int | None, actor: CrmUser | None
) -> None:
    """Give a ticket to a user and/or a team by hand (the rule that assigned it is cleared). A user
    without a team gets the user's department. A new ticket becomes assigned; one taken off its
    assignee goes back to new, in its team's queue. Flushes, does not commit."""
    now = utcnow()
    errors = ErrorCollector()
    user = session.get(CrmUser, user_id) if user_id is not None else None
    department = session.get(Department, department_id) if department_id is not None else None
    if user_id is None and department_id is None:
        errors.add("owner", _("请选择处理人或处理团队"))
    if user_id is not None and (user is None or not user.active):
        errors.add("owner", _("该用户不存在或已停用"))
    if department_id is not None and department is None:
        errors.add("department", _("该部门不存在"))
    if not ticket.is_open:
        errors.add("status", _("「%(s)s」的工单不能再分派", s=TICKET_STATUSES.label(ticket.status)))
    errors.raise_if_any()
    require_workable(session, ticket, actor)
    if actor is not None and user is not None and user.id != actor.id:
        allowed = assignable_user_ids(session, actor)
        if allowed is not None and user.id not in allowed:
            raise AccessDenied({"owner": [_("您只能分配给自己数据权限内的人员")]})
    if department is None and user is not None and user.department_id is not None:
        department = session.get(Department, user.department_id)
    previous, old = ticket.owner_id, ticket.status
    ticket.owner = user
    ticket.department = department
    ticket.assignment_rule = None
    ticket.assigned_at = now if user is not None else None
    if actor is not None:
        ticket.updated_by_id = actor.id
    new = old
    if user is not None and old == "new":
        new = "assigned"
    elif user is None and old == "assigned":
        new = "new"
    if new != old:
        ticket.status = new
        record_change(session, ticket, old, new, actor, now, _("人工分派"))
    session.flush()
    if new != old:
        sla.on_status_change(session, ticket, old, now)
    _tell_assignee(session, ticket, actor, previous)
    session.flush()


def link_customer(
    session: Session, ticket: Ticket, customer_id: int, contact_id: int | None, actor: CrmUser | None
) -> None:
    """Link an (unmatched) ticket to a customer and optionally one of its contacts, by hand.
    Flushes, does not commit."""
    errors = ErrorCollector()
    customer = session.get(Customer, customer_id) if customer_id else None
    if customer is None:
        errors.add("customer", _("该客户不存在"))
    contact = session.get(Contact, contact_id) if contact_id else None
    if contact_id and (contact is None or (customer is not None and contact.customer_id != customer.id)):
        errors.add("contact", _("所选联系人不属于该客户"))
    errors.raise_if_any()
    require_workable(session, ticket, actor)
    require_visible(session, Customer, customer_id, actor, "customer", _("客户"))
    ticket.customer = customer
    ticket.contact = contact
    ticket.match_state = "linked"
    if ticket.district_code is None:
        ticket.district_code = customer.district_code  # type: ignore[union-attr]
    if actor is not None:
        ticket.updated_by_id = actor.id
    session.flush()


def commit_work(session: Session, actor: CrmUser | None, work: Any) -> Any:
    """Run a ticket operation for a screen or endpoint in one transaction (a refusal rolls it back
    and propagates); the audit trail names the actor."""
    with acting_as(session, actor), write_transaction(session):
        return work()


# --- setup ---------------------------------------------------------------------------------------
def seed_categories(session: Session) -> int:
    """The default business types, once (those missing are added); returns how many."""
    existing = set(session.scalars(select(TicketCategory.name)))
    added = 0
    for position, name in enumerate(DEFAULT_CATEGORIES, start=1):
        if name not in existing:
            session.add(TicketCategory(name=name, position=position * 10, active=True))
            added += 1
    session.flush()
    return added
