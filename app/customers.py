"""Customers and contacts: their rules (accuracy, duplicates, ownership) and use cases."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as lazy
from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from app import validators
from app.access import current_actor, scope_clause
from app.crypto import blind_index
from app.errors import ErrorCollector
from app.permissions import mask_name
from app.regions import parse_address
from app.services import (
    ACTOR_KEY,
    OwnedRecordService,
    RecordService,
    parent_is_new,
    require_visible,
    service_for,
    text_up_to,
)
from models.customers import (
    COMPANY_SIZES,
    CUSTOMER_KINDS,
    CUSTOMER_LEVELS,
    CUSTOMER_SOURCES,
    CUSTOMER_STATUSES,
    GENDERS,
    LOCALITIES,
    PURCHASE_FREQUENCIES,
    Contact,
    Customer,
    Region,
)
from models.orders import (
    DOCUMENT_STATUSES,
    LIVE_ORDER,
    ORDER_KINDS,
    ORDER_STATUSES,
    PAYMENT_METHODS,
    Order,
    Payment,
)
from models.sales import INTERACTION_KINDS, Interaction, Opportunity, Stage, StageChange, Task
from models.security import CrmUser
from models.service import TICKET_STATUSES, Ticket

#: Fields whose value must be unique among customers, with how the message names them
UNIQUE_CUSTOMER_FIELDS = {"mobile": "手机号", "email": "电子邮箱", "credit_code": "统一社会信用代码"}


def _check_dates(values: dict[str, Any], errors: ErrorCollector, field: str) -> None:
    value = values.get(field)
    if value is None:
        return
    if isinstance(value, dt.datetime):
        value = values[field] = value.date()
    if not isinstance(value, dt.date):
        errors.add(field, _("不是有效的日期"))
    elif value > dt.date.today():
        errors.add(field, _("日期不能晚于今天"))
    elif value.year < 1900:
        errors.add(field, _("日期不能早于 1900 年"))


REGION_FIELDS = ("province_code", "city_code", "district_code")


def fill_region_from_street(values: dict[str, Any]) -> None:
    """A full address typed into the street field (山东省东营市垦利区胜利大街100号) is split."""
    street = values.get("street")
    if not street or any(values.get(k) for k in REGION_FIELDS):
        return
    parsed = parse_address(street)
    if parsed.province_code:
        values.update(
            province_code=parsed.province_code,
            city_code=parsed.city_code,
            district_code=parsed.district_code,
            street=parsed.street or None,
        )


def check_region(session: Session, values: dict[str, Any], errors: ErrorCollector) -> None:
    """Province, city and district must nest; missing upper levels are filled from lower ones."""
    fill_region_from_street(values)
    codes = {k: values.get(k) for k in REGION_FIELDS}
    wanted = [c for c in codes.values() if c]
    if not wanted:
        return
    regions = {r.code: r for r in session.scalars(select(Region).where(Region.code.in_(wanted)))}
    expected_level = {"province_code": 1, "city_code": 2, "district_code": 3}
    for field, code in codes.items():
        if code and (code not in regions or regions[code].level != expected_level[field]):
            errors.add(field.removesuffix("_code"), _("不是有效的行政区划"))
            return
    district, city = codes["district_code"], codes["city_code"]
    if district:
        parent = regions[district].parent_code
        if city and parent != city:
            errors.add("district", _("该区县不属于所选城市"))
            return
        values["city_code"] = city = parent
        if city not in regions:
            regions[city] = session.get(Region, city)
    if city:
        parent = regions[city].parent_code
        if codes["province_code"] and parent != codes["province_code"]:
            errors.add("city", _("该城市不属于所选省份"))
            return
        values["province_code"] = parent


class CustomerService(OwnedRecordService):
    model = Customer
    choices = {
        "kind": CUSTOMER_KINDS,
        "size": COMPANY_SIZES,
        "gender": GENDERS,
        "source": CUSTOMER_SOURCES,
        "level": CUSTOMER_LEVELS,
        "status": CUSTOMER_STATUSES,
        "purchase_frequency": PURCHASE_FREQUENCIES,
        "locality": LOCALITIES,
    }

    cleaners = {
        "name": text_up_to(200),
        "occupation": text_up_to(100),
        "street": text_up_to(255),
        "credit_code": validators.clean_credit_code,
        "mobile": validators.clean_mobile,
        "phone": validators.clean_phone,
        "email": validators.clean_email,
        "website": validators.clean_url,
        # invoicing details (开票信息), copied onto invoices
        "invoice_title": text_up_to(200),
        "tax_number": validators.clean_tax_number,
        "bank_name": text_up_to(100),
        "bank_account": validators.clean_bank_account,
        "invoice_address_phone": text_up_to(255),
        # encryption at rest: 身份证号 (18 characters, checksum), upper-case X
        "id_number": validators.clean_id_number,
    }
    required = {"name": lazy("请填写客户名称")}
    defaults = {"kind": "company", "level": "normal", "status": "prospect"}

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        for field, default in self.defaults.items():
            if not values.get(field) and field not in errors.errors:
                values[field] = default
        _check_dates(values, errors, "birth_date")
        if values.get("kind") == "individual" and values.get("credit_code"):
            errors.add("credit_code", _("个人客户没有统一社会信用代码"))
        # --- encryption at rest ---
        company_with_id = values.get("id_number") and values.get("kind") != "individual"
        if company_with_id and "id_number" not in errors.errors:
            errors.add("id_number", _("只有个人客户有身份证号"))
        if values.get("credit_limit") is not None and values["credit_limit"] < 0:
            errors.add("credit_limit", _("信用额度不能为负数"))
        check_region(session, values, errors)
        self.check_owner(session, values, pk, errors)
        self.check_duplicates(session, values, pk, errors)

    def check_duplicates(
        self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector
    ) -> None:
        """Refuse a mobile, e-mail or credit code that another customer already has."""
        for field, label in UNIQUE_CUSTOMER_FIELDS.items():
            value = values.get(field)
            if not value or field in errors.errors:
                continue
            query = select(Customer.id, Customer.name, Customer.owner_id).where(
                getattr(Customer, field) == value
            )
            if pk is not None:
                query = query.where(Customer.id != pk)
            existing = session.execute(query.limit(1)).first()
            if existing:
                errors.add(field, duplicate_message(session, _(label), value, existing))
        self.check_id_number_duplicate(session, values, pk, errors)

    # --- encryption at rest ---
    def check_id_number_duplicate(
        self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector
    ) -> None:
        """The ID number is stored encrypted: another customer's equal one is found by blind index."""
        value = values.get("id_number")
        if not value or "id_number" in errors.errors:
            return
        query = select(Customer.id, Customer.name, Customer.owner_id).where(
            Customer.id_number_bidx == blind_index(value, "customer.id_number")
        )
        if pk is not None:
            query = query.where(Customer.id != pk)
        existing = session.execute(query.limit(1)).first()
        if existing:  # 查重: details only inside the user's data scope
            errors.add("id_number", duplicate_message(session, _("身份证号"), value, existing))


# --- 查重 (duplicate check) with field permissions: who owns it, not what it holds ---------------------
@dataclass(frozen=True)
class DuplicateMatch:
    """An existing customer that matches what the user typed. `visible` says whether it is inside the
    user's data scope: only then are its id and name given; otherwise the owner's name is masked
    (王**) and only the department is told, so a rep learns whom to ask and nothing more."""

    matched: tuple[str, ...]
    visible: bool
    owner: str
    department: str
    in_pool: bool
    id: int | None = None
    name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "matched": list(self.matched),
            "visible": self.visible,
            "owner": self.owner,
            "department": self.department,
            "in_pool": self.in_pool,
        }
        if self.visible:
            result.update(id=self.id, name=self.name)
        return result

    def message(self) -> str:
        if self.in_pool:
            return _("已存在,在公海中 (%(department)s)", department=self.department or "—")
        if self.visible:
            return _(
                "已存在:客户「%(name)s」(编号 %(id)s,负责人 %(owner)s)",
                name=self.name,
                id=self.id,
                owner=self.owner or _("无"),
            )
        return _(
            "已存在,负责人 %(owner)s (%(department)s)",
            owner=self.owner or _("无"),
            department=self.department or "—",
        )


#: what 查重 compares, with each value's cleaner (exact matches, each served by a unique or name index)
DUPLICATE_FIELDS: dict[str, Any] = {
    "name": lambda v: validators.clean_text(v, 200),
    "mobile": validators.clean_mobile,
    "credit_code": validators.clean_credit_code,
    "email": validators.clean_email,
}


def _checking_actor(session: Session) -> CrmUser | None:
    """Who is checking: the actor of a save, else the user of the request (None: the system)."""
    actor = session.info.get(ACTOR_KEY)
    return actor if actor is not None else current_actor()


def describe_duplicate(session: Session, customer_id: int, matched: tuple[str, ...]) -> DuplicateMatch:
    """One existing customer as the checking user may learn about it."""
    actor = _checking_actor(session)
    customer = session.get(Customer, customer_id)
    clause = scope_clause(session, Customer, actor) if actor is not None else None
    visible = actor is None or clause is None or (
        session.scalar(select(Customer.id).where(Customer.id == customer_id, clause)) is not None
    )
    owner = str(customer.owner) if customer.owner is not None else ""
    return DuplicateMatch(
        matched=matched,
        visible=visible,
        owner=owner if visible else mask_name(owner),
        department=customer.department.name if customer.department is not None else "",
        in_pool=customer.pool_id is not None,
        id=customer.id if visible else None,
        name=customer.name if visible else None,
    )


def duplicate_message(session: Session, label: str, value: Any, existing: Any) -> str:
    """The refusal of a duplicate value: details only when the user may see the existing customer."""
    match = describe_duplicate(session, existing.id, ())
    return f"{label} {value} {match.message()}"


def find_duplicates(session: Session, given: dict[str, Any], limit: int = 10) -> list[DuplicateMatch]:
    """查重: existing customers whose name, mobile, credit code or e-mail equals what was typed,
    each described as the checking user may learn it. Raises ValidationFailed on a value that is
    not valid (a mobile of 5 digits) or when nothing was given."""
    errors = ErrorCollector()
    values: dict[str, Any] = {}
    for field, cleaner in DUPLICATE_FIELDS.items():
        try:
            value = cleaner(given.get(field))
        except ValueError as exc:
            errors.add(field, str(exc))
            continue
        if value:
            values[field] = value
    if not values and not errors:
        errors.add("_schema", _("请填写客户名称、手机号、统一社会信用代码或电子邮箱"))
    errors.raise_if_any()
    matched: dict[int, list[str]] = {}
    for field, value in values.items():
        ids = session.scalars(select(Customer.id).where(getattr(Customer, field) == value).limit(limit))
        for customer_id in ids:
            matched.setdefault(customer_id, []).append(field)
    return [describe_duplicate(session, pk, tuple(fields)) for pk, fields in sorted(matched.items())][:limit]




class ContactService(RecordService):
    model = Contact
    choices = {"gender": GENDERS}

    cleaners = {
        "name": text_up_to(100),
        "title": text_up_to(100),
        "wechat": text_up_to(64),
        "mobile": validators.clean_mobile,
        "phone": validators.clean_phone,
        "email": validators.clean_email,
    }
    required = {"name": lazy("请填写联系人姓名")}

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        _check_dates(values, errors, "birthday")
        customer_id = values.get("customer_id")
        if parent_is_new(values, "customer_id"):
            return  # a contact created with its new customer (lead conversion, import)
        if not customer_id:
            errors.add("customer", _("请选择所属客户"))
        elif session.get(Customer, customer_id) is None:
            errors.add("customer", _("所属客户不存在"))
        elif values.get("mobile") and "mobile" not in errors.errors:
            query = select(Contact.name).where(
                Contact.customer_id == customer_id, Contact.mobile == values["mobile"]
            )
            if pk is not None:
                query = query.where(Contact.id != pk)
            existing = session.scalar(query.limit(1))
            if existing:
                errors.add("mobile", _("该客户已有手机号相同的联系人「%(name)s」", name=existing))

    def authorize(self, session: Session, item: Contact, actor: CrmUser | None) -> None:
        """A contact may only be attached to a customer the actor can see."""
        customer_id = item.customer.id if item.customer is not None else item.customer_id
        require_visible(session, Customer, customer_id, actor, "customer", _("客户"))


customer_service = service_for(Customer)
contact_service = service_for(Contact)


# --- the customer 360 page: one timeline and the key figures ------------------------------------
#: the timeline's sources, in the order they sort among items of the same moment (newest first:
#: the later in this tuple, the earlier on the page)
TIMELINE_KINDS = ("opportunity", "stage", "task", "interaction", "order", "payment", "ticket")
#: the screen each source's items open (the page leaves out the sources whose list a role may not open)
TIMELINE_VIEWS = {
    "interaction": "InteractionView",
    "opportunity": "OpportunityView",
    "stage": "OpportunityView",
    "task": "TaskView",
    "order": "OrderView",
    "payment": "PaymentView",
    "ticket": "TicketView",
}


@dataclass(frozen=True)
class TimelineItem:
    kind: str  # one of TIMELINE_KINDS
    when: dt.datetime
    title: str
    detail: str
    view: str  # the screen that shows the record
    pk: int
    who: str
    #: the row's own id in its source (a stage move's, where `pk` is its opportunity's)
    key: int = 0

    @property
    def cursor(self) -> str:
        """Where the next page starts: after this item (see TimelineCursor)."""
        return TimelineCursor(self.when, TIMELINE_KINDS.index(self.kind), self.key).token()


@dataclass(frozen=True)
class TimelineCursor:
    """A keyset position in the timeline: (moment, source rank, row id), newest first. All three,
    because items share moments (an opportunity opens with its first stage move; a day's orders
    and collections all fall at midnight): paging by the moment alone drops the rest of a tie."""

    when: dt.datetime
    rank: int = -1  # -1: everything strictly before `when` (a bare timestamp)
    key: int = 0

    def token(self) -> str:
        return f"{self.when.isoformat()}~{self.rank}~{self.key}"

    @classmethod
    def parse(cls, text: str | None) -> TimelineCursor | None:
        """The `before` parameter of the 360 page; None when absent or not understood."""
        if not text:
            return None
        moment, _sep, rest = text.partition("~")
        try:
            when = dt.datetime.fromisoformat(moment)
            rank, key = (int(part) for part in rest.split("~")) if rest else (-1, 0)
        except ValueError:
            return None
        return cls(when.replace(tzinfo=None), rank, key)

    def before(self, kind: str, moment: Any, key: Any, is_date: bool = False) -> ColumnElement[bool]:
        """The rows of one source that come after this position: (moment, rank, id) smaller."""
        rank = TIMELINE_KINDS.index(kind)
        when: Any = self.when
        if is_date:  # a date column's item sits at midnight
            day = self.when.date()
            if self.when != dt.datetime.combine(day, dt.time.min):
                return moment <= day  # the cursor falls within the day: the whole day is before it
            when = day
        if rank < self.rank:
            return moment <= when
        if rank == self.rank:
            return or_(moment < when, and_(moment == when, key < self.key))
        return moment < when


def _name(user: Any) -> Any:
    """A user's name as the screens show it (姓 then 名), built in SQL."""
    return (func.coalesce(user.last_name, "") + func.coalesce(user.first_name, "")).label("who")


def timeline_queries(
    session: Session,
    customer_id: int,
    actor: CrmUser | None = None,
    kinds: Iterable[str] = TIMELINE_KINDS,
    cursor: TimelineCursor | None = None,
    size: int = 20,
) -> dict[str, Select[Any]]:
    """One page of each source of a customer's timeline, newest first: each reads at most `size`
    rows along its (customer, moment) index, with the names it shows joined. The caller has
    checked the customer is visible; orders and their collections also follow the order's own
    data scope (with an actor), since a collaborator on the customer does not see its money."""
    who, to_stage, from_stage = aliased(CrmUser), aliased(Stage), aliased(Stage)
    opportunities = select(Opportunity.id).where(Opportunity.customer_id == customer_id)
    order_scope = scope_clause(session, Order, actor) if actor is not None else None
    sources: dict[str, tuple[Select[Any], Any, Any, bool]] = {
        "interaction": (
            select(
                Interaction.id, Interaction.occurred_at.label("moment"), Interaction.kind,
                Interaction.subject, Interaction.content, _name(who),
            )
            .outerjoin(who, who.id == Interaction.owner_id)
            .where(Interaction.customer_id == customer_id),
            Interaction.occurred_at, Interaction.id, False,
        ),
        "opportunity": (
            select(
                Opportunity.id, Opportunity.created_at.label("moment"), Opportunity.name,
                Opportunity.amount, _name(who),
            )
            .outerjoin(who, who.id == Opportunity.owner_id)
            .where(Opportunity.customer_id == customer_id),
            Opportunity.created_at, Opportunity.id, False,
        ),
        "stage": (
            select(
                StageChange.id, StageChange.changed_at.label("moment"), StageChange.opportunity_id,
                Opportunity.name, to_stage.name.label("to_stage"), from_stage.name.label("from_stage"),
                _name(who),
            )
            .join(Opportunity, Opportunity.id == StageChange.opportunity_id)
            .outerjoin(to_stage, to_stage.id == StageChange.to_stage_id)
            .outerjoin(from_stage, from_stage.id == StageChange.from_stage_id)
            .outerjoin(who, who.id == StageChange.changed_by_id)
            .where(StageChange.opportunity_id.in_(opportunities)),
            StageChange.changed_at, StageChange.id, False,
        ),
        "task": (
            select(Task.id, Task.due_at.label("moment"), Task.title, Task.status, _name(who))
            .outerjoin(who, who.id == Task.owner_id)
            .where(Task.customer_id == customer_id),
            Task.due_at, Task.id, False,
        ),
        "order": (
            select(
                Order.id, Order.ordered_on.label("moment"), Order.number, Order.title, Order.kind,
                Order.status, Order.total_amount, _name(who),
            )
            .outerjoin(who, who.id == Order.owner_id)
            .where(Order.customer_id == customer_id, *([] if order_scope is None else [order_scope])),
            Order.ordered_on, Order.id, True,
        ),
        "payment": (
            select(
                Payment.id, Payment.received_on.label("moment"), Payment.amount, Payment.status,
                Payment.method, Payment.order_id, Order.number, _name(who),
            )
            .join(Order, Order.id == Payment.order_id)
            .outerjoin(who, who.id == Payment.created_by_id)
            .where(Order.customer_id == customer_id, *([] if order_scope is None else [order_scope])),
            Payment.received_on, Payment.id, True,
        ),
        "ticket": (
            select(
                Ticket.id, Ticket.created_at.label("moment"), Ticket.number, Ticket.subject,
                Ticket.status, _name(who),
            )
            .outerjoin(who, who.id == Ticket.owner_id)
            .where(Ticket.customer_id == customer_id),
            Ticket.created_at, Ticket.id, False,
        ),
    }  # fmt: skip
    pages = {}
    for kind in kinds:
        query, moment, key, is_date = sources[kind]
        if cursor is not None:
            query = query.where(cursor.before(kind, moment, key, is_date))
        pages[kind] = query.order_by(moment.desc(), key.desc()).limit(size)
    return pages


def _timeline_item(kind: str, row: Any) -> TimelineItem:
    """A timeline row as the page shows it: its title, detail and the record it opens."""
    moment = row.moment
    if not isinstance(moment, dt.datetime):  # a date: the item sits at midnight
        moment = dt.datetime.combine(moment, dt.time.min)
    pk = row.id
    if kind == "interaction":
        title = INTERACTION_KINDS.label(row.kind) + (f" · {row.subject}" if row.subject else "")
        detail = row.content[:200]
    elif kind == "opportunity":
        title = _("新商机 %(name)s", name=row.name)
        detail = f"¥{row.amount:,.2f}" if row.amount is not None else ""
    elif kind == "stage":
        title = _("商机 %(name)s: %(to)s", name=row.name, to=row.to_stage or "")
        detail = _("从「%(stage)s」", stage=row.from_stage) if row.from_stage else ""
        pk = row.opportunity_id
    elif kind == "task":
        title, detail = row.title, str(TASK_LABELS.get(row.status, row.status))
    elif kind == "order":
        title = f"{ORDER_KINDS.label(row.kind)} {row.number} · {row.title}"
        detail = f"¥{row.total_amount:,.2f} · {ORDER_STATUSES.label(row.status)}"
    elif kind == "payment":
        title = _("回款 ¥%(amount)s", amount=f"{row.amount:,.2f}")
        detail = f"{row.number} · {PAYMENT_METHODS.label(row.method)} · {DOCUMENT_STATUSES.label(row.status)}"
    else:
        title = _("工单 %(number)s · %(subject)s", number=row.number, subject=row.subject)
        detail = TICKET_STATUSES.label(row.status)
    return TimelineItem(kind, moment, title, detail, TIMELINE_VIEWS[kind], pk, row.who, row.id)


TASK_LABELS = {"open": lazy("待办"), "done": lazy("已完成"), "cancelled": lazy("已取消")}


def customer_timeline(
    session: Session,
    customer_id: int,
    actor: CrmUser | None = None,
    kinds: Iterable[str] = TIMELINE_KINDS,
    cursor: TimelineCursor | None = None,
    size: int = 20,
) -> list[TimelineItem]:
    """Everything that happened with a customer, newest first, one page after `cursor`: the
    first `size` of each source's page, merged (see timeline_queries)."""
    items = [
        _timeline_item(kind, row)
        for kind, query in timeline_queries(session, customer_id, actor, kinds, cursor, size).items()
        for row in session.execute(query)
    ]
    items.sort(key=lambda item: (item.when, TIMELINE_KINDS.index(item.kind), item.key), reverse=True)
    return items[:size]


@dataclass(frozen=True)
class CustomerFigures:
    won_amount: Any
    won_count: int
    average_won: Any
    last_won: dt.datetime | None
    open_amount: Any
    open_count: int
    follow_ups: int
    #: live orders (approved, executing, completed): count, total (the customer's lifetime
    #: value), the last order's date and what has been collected
    order_count: int = 0
    order_amount: Any = 0
    paid_amount: Any = 0
    last_order_on: dt.date | None = None

    @property
    def average_order(self) -> Any:
        """平均订单金额: the lifetime value over the live orders."""
        return self.order_amount / self.order_count if self.order_count else 0


def figures_queries(customer_id: int) -> tuple[Select[Any], Select[Any], Select[Any]]:
    """customer_figures' three statements: opportunities by status, follow-ups, live orders."""
    opportunities = (
        select(Opportunity.status, func.count(), func.sum(Opportunity.amount))
        .add_columns(func.max(Opportunity.closed_at))
        .where(Opportunity.customer_id == customer_id)
        .group_by(Opportunity.status)
    )
    follow_ups = select(func.count()).where(Interaction.customer_id == customer_id)
    orders = select(
        func.count(), func.sum(Order.total_amount), func.sum(Order.paid_amount), func.max(Order.ordered_on)
    ).where(Order.customer_id == customer_id, Order.status.in_(LIVE_ORDER))
    return opportunities, follow_ups, orders


def customer_figures(session: Session, customer_id: int) -> CustomerFigures:
    """Key figures of a customer: its live orders (lifetime value, count, average, last purchase)
    with what has been collected, won deals, open pipeline and follow-ups."""
    opportunities, follow_ups_query, orders = figures_queries(customer_id)
    rows = {status: (count, total, last) for status, count, total, last in session.execute(opportunities)}
    won_count, won_amount, last_won = rows.get("won", (0, None, None))
    open_count, open_amount, _last = rows.get("open", (0, None, None))
    follow_ups = session.scalar(follow_ups_query) or 0
    order_count, order_amount, paid_amount, last_order_on = session.execute(orders).one()
    return CustomerFigures(
        won_amount=won_amount or 0,
        won_count=won_count,
        average_won=(won_amount / won_count) if won_count and won_amount is not None else 0,
        last_won=last_won,
        open_amount=open_amount or 0,
        open_count=open_count,
        follow_ups=follow_ups,
        order_count=order_count,
        order_amount=order_amount or 0,
        paid_amount=paid_amount or 0,
        last_order_on=last_order_on,
    )
