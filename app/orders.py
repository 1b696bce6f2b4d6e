"""The money: orders and contracts with their lines, payment plans (回款计划), collections (回款) and
invoices (发票), and the use cases that span them (numbering, submission for approval, status
moves, voiding, the signed contract file, the daily overdue and reminder run).

Rules that hold the money together, each in one place:
- a line's amount is quantity x unit price x (1 - discount/100), rounded half up to 0.01 CNY;
  the order keeps the sum and the largest discount (`line_amount`, `_order_effects`);
- lines change only while the order is a draft (`_order_effects`, whatever wrote them);
- plans, collections and invoices of an order never add up to more than its total, checked
  after locking the order row, so two concurrent writers cannot both pass (`cap_check`);
- a collection or an invoice counts once approved; the order's paid and invoiced amounts and
  the plans' collected amounts and statuses follow (`refresh_order_money`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import IO, Any

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as lazy
from sqlalchemy import ColumnElement, Select, event, func, inspect, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import approvals, validators
from app.access import scope_clause
from app.approvals import DocumentKind
from app.clock import local_today
from app.customfields import UploadRule, file_store, upload_rule
from app.errors import ErrorCollector, ValidationFailed
from app.notifications import notify, queue_mail
from app.services import (
    OwnedRecordService,
    RecordService,
    acting_as,
    column_values,
    parent_is_new,
    require_visible,
    service_for,
    text_up_to,
    write_transaction,
)
from customfields.values import FIELD_PREFIX
from models.base import utcnow
from models.customers import Contact, Customer
from models.orders import (
    DOCUMENT_STATUSES,
    INVOICE_KINDS,
    LIVE_ORDER,
    ORDER_KINDS,
    ORDER_STATUSES,
    PAYMENT_METHODS,
    PLAN_STATUSES,
    Invoice,
    Order,
    OrderLine,
    Payment,
    PaymentPlan,
)
from models.sales import Opportunity, Product
from models.security import CrmUser

CENT = Decimal("0.01")
ZERO = Decimal("0")

#: order status moves; voiding (with a reason) is allowed from every other status
ORDER_FLOW: dict[str, set[str]] = {
    "draft": {"pending"},
    "pending": {"approved", "draft"},  # the approvals engine: approved, rejected or sent back
    "approved": {"executing"},
    "executing": {"completed"},
    "completed": set(),
    "voided": set(),
}
#: collections and invoices: draft -> pending -> approved, or rejected / sent back to draft
DOCUMENT_FLOW: dict[str, set[str]] = {
    "draft": {"pending"},
    "pending": {"approved", "rejected", "draft"},
    "rejected": {"pending", "draft"},
    "approved": set(),
}
NUMBER_ATTEMPTS = 5


# --- money ---------------------------------------------------------------------------------------
def money(value: Any) -> Decimal:
    """A CNY amount rounded half up to the fen (0.01), the way invoices and contracts round."""
    return Decimal(value or 0).quantize(CENT, rounding=ROUND_HALF_UP)


def line_amount(quantity: Any, unit_price: Any, discount_percent: Any) -> Decimal:
    """quantity x unit price x (1 - discount/100), rounded once at the end."""
    factor = 1 - Decimal(discount_percent or 0) / 100
    return money(Decimal(quantity or 0) * Decimal(unit_price or 0) * factor)


def _as_decimal(values: dict[str, Any], errors: ErrorCollector, field: str) -> Decimal | None:
    value = values.get(field)
    if value in (None, ""):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        errors.add(field, _("不是有效的数字"))
        return None
    if not number.is_finite():
        errors.add(field, _("不是有效的数字"))
        return None
    values[field] = number
    return number


def _positive(values: dict[str, Any], errors: ErrorCollector, field: str) -> None:
    number = _as_decimal(values, errors, field)
    if number is not None and number <= 0:
        errors.add(field, _("应大于 0"))


def _stored(session: Session, model: type, pk: Any) -> Any:
    """The row as it is in the database (before this change), or None for a new record."""
    if pk is None:
        return None
    return session.execute(select(model.__table__).where(model.__table__.c.id == pk)).first()


def lock_order(session: Session, order_id: int) -> Order | None:
    """Lock the order row until the transaction ends (PostgreSQL, MariaDB; SQLite serialises
    writers anyway): every check of a sum against the order total runs after this."""
    session.execute(select(Order.id).where(Order.id == order_id).with_for_update())
    return session.get(Order, order_id)


def _sum_of(session: Session, query: Select) -> Decimal:
    """A sum read after lock_order. MySQL/MariaDB read a snapshot in REPEATABLE READ unless the
    read locks, so there it locks too (PostgreSQL's READ COMMITTED sees the latest commit)."""
    if session.get_bind().dialect.name in ("mysql", "mariadb"):
        query = query.with_for_update()
    return Decimal(session.scalar(query) or 0)


def cap_check(
    session: Session,
    model: type,
    order_id: int,
    amount_column: Any,
    counted: Any,
    amount: Decimal,
    pk: Any,
    what: str,
) -> str | None:
    """The message when `amount` plus the order's other counted `model` rows would exceed the
    order total, else None. Locks the order first."""
    order = lock_order(session, order_id)
    if order is None:
        return None
    others = _sum_of(
        session,
        select(func.sum(amount_column)).where(model.order_id == order_id, counted, model.id != (pk or 0)),
    )
    total = money(order.total_amount)
    if others + amount > total:
        return _(
            "%(what)s合计 ¥%(sum)s 超过订单金额 ¥%(total)s (已有 ¥%(others)s,最多还可 ¥%(left)s)",
            what=what,
            sum=money(others + amount),
            total=total,
            others=money(others),
            left=money(max(total - others, ZERO)),
        )
    return None


# --- numbering -----------------------------------------------------------------------------------
def number_pattern(kind: str) -> str:
    key = "CRM_CONTRACT_NUMBER_PATTERN" if kind == "contract" else "CRM_ORDER_NUMBER_PATTERN"
    return current_app.config[key]


def starts_with(session: Session, column: Any, prefix: str) -> ColumnElement[bool]:
    """`column` starts with `prefix`, as a condition the database answers from an index: SQLite's
    LIKE ignores case and so cannot use the (binary) unique index, GLOB can; PostgreSQL's LIKE
    uses the varchar_pattern_ops index of migration 5c1e0a7b9d2f; MariaDB's LIKE its own index."""
    if session.get_bind().dialect.name == "sqlite":
        return column.op("GLOB")("".join(f"[{c}]" if c in "*?[]" else c for c in prefix) + "*")
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(escaped + "%", escape="\\")


def next_number(session: Session, pattern: str, day: dt.date) -> str:
    """The day's next number of a pattern such as HT-{date:%Y%m%d}-{seq:04d}: one more than the
    largest already used with the same prefix and suffix (the unique index answers it)."""
    head, found, tail = pattern.partition("{seq")
    if not found or "}" not in tail:
        raise ValueError(f"number pattern without {{seq}}: {pattern}")
    seq_spec, suffix_template = "{seq" + tail[: tail.index("}") + 1], tail[tail.index("}") + 1 :]
    prefix, suffix = head.format(date=day), suffix_template.format(date=day)
    candidates = session.scalars(
        select(Order.number)
        .where(starts_with(session, Order.number, prefix))
        .order_by(func.length(Order.number).desc(), Order.number.desc())
        .limit(20)
    )
    last = 0
    for number in candidates:
        middle = number[len(prefix) : len(number) - len(suffix) if suffix else None]
        if number.endswith(suffix) and middle.isdigit():
            last = max(last, int(middle))
    return prefix + seq_spec.format(seq=last + 1) + suffix


# --- orders --------------------------------------------------------------------------------------
class OrderService(OwnedRecordService):
    model = Order
    choices = {"kind": ORDER_KINDS, "status": ORDER_STATUSES}
    cleaners = {"title": text_up_to(200), "void_reason": text_up_to(255)}
    required = {"title": lazy("请填写订单标题"), "customer_id": lazy("请选择客户")}

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        values["kind"] = values.get("kind") or "order"
        values["status"] = values.get("status") or "draft"
        values["ordered_on"] = values.get("ordered_on") or local_today()
        before = _stored(session, Order, pk)
        previous = before.status if before else None
        status = values["status"]
        if previous is None and status != "draft":
            errors.add("status", _("新订单只能是草稿,请通过「提交审批」推进"))
        elif previous is not None and status != previous:
            allowed = ORDER_FLOW.get(previous, set()) | ({"voided"} if previous != "voided" else set())
            if status not in allowed:
                errors.add(
                    "status",
                    _(
                        "订单不能从「%(a)s」变为「%(b)s」",
                        a=ORDER_STATUSES.label(previous),
                        b=ORDER_STATUSES.label(status),
                    ),
                )
        if status == "voided" and not values.get("void_reason"):
            errors.add("void_reason", _("作废订单请填写原因"))
        start, end = values.get("start_date"), values.get("end_date")
        if start and end and end < start:
            errors.add("end_date", _("结束日期不能早于开始日期"))
        if before is not None and before.number and values.get("number") != before.number:
            errors.add("number", _("订单编号生成后不能修改"))
        customer_id = values.get("customer_id")
        for field, model in (("contact", Contact), ("opportunity", Opportunity)):
            linked = values.get(f"{field}_id")
            if linked and customer_id:
                belongs = session.scalar(select(model.customer_id).where(model.id == linked))
                if belongs != customer_id:
                    errors.add(field, _("所选记录不属于该客户"))
        self.check_owner(session, values, pk, errors)

    def authorize(self, session: Session, item: Order, actor: CrmUser | None) -> None:
        super().authorize(session, item, actor)
        customer_id = item.customer.id if item.customer is not None else item.customer_id
        require_visible(session, Customer, customer_id, actor, "customer", _("客户"))

    def before_save(self, session: Session, item: Order, actor: CrmUser | None, is_new: bool) -> None:
        super().before_save(session, item, actor, is_new)
        check_lines(session, item)

    def save(self, session: Session, item: Order, actor: CrmUser | None) -> Order:
        """A new order gets the day's next number of its kind's pattern. Two writers may pick the
        same one; the unique index refuses the second, which then takes the next number."""
        if not (inspect(item).transient or inspect(item).pending) or item.number:
            return super().save(session, item, actor)
        for _attempt in range(NUMBER_ATTEMPTS):
            with session.no_autoflush:
                day = item.ordered_on or local_today()
                item.number = next_number(session, number_pattern(item.kind or "order"), day)
            try:
                return super().save(session, item, actor)
            except ValidationFailed as exc:
                taken = isinstance(exc.__cause__, IntegrityError) and session.scalar(
                    select(Order.id).where(Order.number == item.number)
                )
                item.number = None  # type: ignore[assignment]
                if not taken:
                    raise
        raise ValidationFailed({"number": [_("订单编号冲突,请重试")]})

    def after_save(self, session: Session, item: Order) -> None:
        """A voided order's pending approval is withdrawn in the same transaction: nobody should
        go on approving an order that no longer exists. So are those of its collections and
        invoices, which go back to draft: approving or rejecting them is refused once the order
        is voided, so their requests would otherwise wait forever, and a pending record can
        be neither changed nor deleted."""
        super().after_save(session, item)
        if item.status == "voided":
            reason = str(_("订单已作废: %(reason)s", reason=item.void_reason or ""))
            approvals.cancel_pending(session, "order", item.id, reason)
            for model, document in ((Payment, "payment"), (Invoice, "invoice")):
                waiting = select(model).where(model.order_id == item.id, model.status == "pending")
                for record in list(session.scalars(waiting)):
                    approvals.cancel_pending(session, document, record.id, reason)
                    record.status = "draft"

    def before_delete(self, session: Session, item: Order) -> None:
        """Only drafts (and orders voided before approval) go; approved money is only voided."""
        if item.approved_at is not None or item.status not in ("draft", "voided"):
            raise ValidationFailed(
                {
                    "status": [
                        _(
                            "「%(status)s」的订单不能删除,只能作废",
                            status=ORDER_STATUSES.label(item.status),
                        )
                    ]
                }
            )


class OrderLineService(RecordService):
    model = OrderLine
    cleaners = {"description": text_up_to(255)}
    required = {"quantity": lazy("请填写数量")}

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        if not values.get("order_id") and not parent_is_new(values, "order_id"):
            errors.add("order", _("请选择订单"))
        elif not values.get("position") and values.get("order_id"):  # a line added on its own: last
            last = session.scalar(
                select(func.max(OrderLine.position)).where(OrderLine.order_id == values["order_id"])
            )
            values["position"] = (last or 0) + 1
        product = session.get(Product, values["product_id"]) if values.get("product_id") else None
        if values.get("product_id") and product is None:
            errors.add("product", _("产品不存在"))
        if values.get("unit_price") is None and product is not None:
            values["unit_price"] = product.price
        if not values.get("description") and product is not None:
            values["description"] = product.name
        if product is None and not values.get("description") and "product" not in errors.errors:
            errors.add("description", _("请选择产品或填写说明"))
        _positive(values, errors, "quantity")
        price = _as_decimal(values, errors, "unit_price")
        if price is None and "unit_price" not in errors.errors:
            errors.add("unit_price", _("请填写单价"))
        elif price is not None and price < 0:
            errors.add("unit_price", _("不能为负数"))
        discount = _as_decimal(values, errors, "discount_percent")
        if discount is None and "discount_percent" not in errors.errors:
            values["discount_percent"] = discount = ZERO
        if discount is not None and not ZERO <= discount <= 100:
            errors.add("discount_percent", _("应在 0 到 100 之间"))
        if not errors.errors:
            values["amount"] = line_amount(
                values["quantity"], values["unit_price"], values["discount_percent"]
            )


def check_lines(session: Session, order: Order) -> None:
    """Every line's rules, errors keyed by position (lines.0.quantity), before anything is written."""
    errors = ErrorCollector()
    for index, line in enumerate(order.lines):
        values = column_values(line)
        values.setdefault("__pending__", set()).add("order_id")  # this order, maybe new
        try:
            line_service.clean(
                session, values, pk=inspect(line).identity[0] if inspect(line).identity else None
            )
        except ValidationFailed as exc:
            for field, messages in exc.errors.items():
                for message in messages:
                    errors.add(f"lines.{index}.{field}", message)
    errors.raise_if_any()


def replace_lines(session: Session, order: Order, rows: Iterable[dict[str, Any]]) -> None:
    """Give the order these lines (product_id, description, quantity, unit_price,
    discount_percent), numbered in the order given, in place of the ones it had; the service
    validates them when the order is saved."""
    for line in list(order.lines) if inspect(order).persistent else []:
        session.delete(line)  # deleted, not orphaned: an orphan would be checked as a line without order
    order.lines = [
        OrderLine(
            position=position,
            product_id=row.get("product_id"),
            description=row.get("description"),
            quantity=row.get("quantity"),
            unit_price=row.get("unit_price"),
            discount_percent=row.get("discount_percent"),
        )
        for position, row in enumerate(rows, start=1)
    ]


def _lines_changed(session: Session, order: Order) -> bool:
    history = inspect(order).attrs.lines.history
    if history.added or history.deleted:
        return True
    return any(line in session.new or session.is_modified(line) for line in order.lines)


@event.listens_for(Session, "before_flush")
def _order_effects(session: Session, flush_context: Any, instances: Any) -> None:
    """After each record is cleaned (app.services' hook runs first): lines are frozen once the
    order is submitted, and the order's total and largest discount follow its lines."""
    touched: dict[int, Order] = {}
    for item in [*session.new, *session.dirty, *session.deleted]:
        if isinstance(item, OrderLine):
            order = item.order or (session.get(Order, item.order_id) if item.order_id else None)
            if order is not None:
                touched[id(order)] = order
                if item in session.deleted:
                    order.lines  # noqa: B018  (loaded, so the total below sees the removal)
        elif isinstance(item, Order) and item not in session.deleted:
            touched[id(item)] = item
    for order in touched.values():
        if order in session.deleted:
            continue
        deleted_lines = [o for o in session.deleted if isinstance(o, OrderLine) and o.order is order]
        if not (_lines_changed(session, order) or deleted_lines or order in session.new):
            continue
        stored = session.scalar(select(Order.status).where(Order.id == order.id)) if order.id else "draft"
        if stored not in (None, "draft"):
            raise ValidationFailed({"lines": [_("订单提交审批后不能修改明细")]})
        lines = [line for line in order.lines if line not in deleted_lines]
        for line in lines:
            line.amount = line_amount(line.quantity, line.unit_price, line.discount_percent)
        order.total_amount = money(sum((line.amount for line in lines), ZERO))
        order.max_discount_percent = max(
            (Decimal(line.discount_percent or 0) for line in lines), default=ZERO
        )
        if order.id:
            planned = session.scalar(
                select(func.sum(PaymentPlan.planned_amount)).where(PaymentPlan.order_id == order.id)
            )
            if planned and Decimal(planned) > order.total_amount:
                raise ValidationFailed(
                    {"lines": [_("订单金额不能低于回款计划合计 ¥%(sum)s", sum=money(planned))]}
                )


def submit_order(session: Session, order: Order, actor: CrmUser | None) -> None:
    """Send a draft order for approval (approved at once when no flow applies)."""
    if order.status != "draft":
        raise ValidationFailed({"status": [_("只有草稿状态的订单可以提交审批")]})
    if not order.lines or not order.total_amount:
        raise ValidationFailed({"lines": [_("请先添加订单明细,订单金额应大于 0")]})
    with acting_as(session, actor), write_transaction(session):
        approvals.submit(session, "order", order, actor)


def move_order(
    session: Session, order: Order, status: str, actor: CrmUser | None, reason: str | None = None
) -> None:
    """Start executing, complete, or void (with a reason) an order; the service checks the move."""
    if status == "voided":
        order.void_reason = reason
    elif status not in ("executing", "completed"):
        raise ValidationFailed({"status": [_("请通过「提交审批」提交订单")]})
    order.status = status
    order_service.save(session, order, actor)


# --- the signed contract file --------------------------------------------------------------------
def contract_upload_rule() -> UploadRule:
    return upload_rule("order", "signed_file", "CRM_CONTRACT_FILE_TYPES", "CRM_CONTRACT_FILE_MB")


def attach_signed_file(
    session: Session, order: Order, stream: IO[bytes], filename: str, actor: CrmUser | None
) -> dict[str, Any]:
    """Store the signed contract (type and size limits, content matching the extension) and
    keep its key on the order. ValidationFailed when the file is refused."""
    if order.kind != "contract":
        raise ValidationFailed({"signed_file": [_("只有合同可以上传签署文件")]})
    try:
        meta = file_store().save(stream, filename, contract_upload_rule())  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValidationFailed({"signed_file": [str(exc)]}) from None
    order.signed_file = meta["id"]
    order_service.save(session, order, actor)
    return meta


def signed_file(order: Order) -> tuple[Any, dict[str, Any]] | None:
    """(path, description) of the order's signed file, None when there is none."""
    meta = file_store().describe(order.signed_file or "")
    path = file_store().path(order.signed_file or "")
    return (path, meta) if meta and path else None


# --- payment plans, collections and invoices ------------------------------------------------------
def plan_status(planned: Decimal, collected: Decimal, planned_date: dt.date | None, today: dt.date) -> str:
    """done once collected covers the plan; overdue when its date has passed; partial; pending."""
    if collected >= planned > 0:
        return "done"
    if planned_date is not None and planned_date < today:
        return "overdue"
    return "partial" if collected > 0 else "pending"


def _check_order(
    session: Session, values: dict[str, Any], errors: ErrorCollector, statuses: Iterable[str], message: str
) -> Order | None:
    order = session.get(Order, values["order_id"]) if values.get("order_id") else None
    if values.get("order_id") and order is None:
        errors.add("order", _("订单不存在"))
    elif order is not None and order.status not in statuses:
        errors.add("order", message)
    return order


class PaymentPlanService(RecordService):
    model = PaymentPlan
    choices = {"status": PLAN_STATUSES}  # computed from the collections; the labels show it
    cleaners = {"notes": text_up_to(255)}
    required = {
        "order_id": lazy("请选择订单"),
        "planned_amount": lazy("请填写计划回款金额"),
        "planned_date": lazy("请填写计划回款日期"),
    }

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        _positive(values, errors, "planned_amount")
        if values.get("remind_days") is None:
            values["remind_days"] = 3
        elif not 0 <= values["remind_days"] <= 365:
            errors.add("remind_days", _("应在 0 到 365 之间"))
        order = _check_order(
            session,
            values,
            errors,
            [s for s in ORDER_STATUSES if s != "voided"],
            _("已作废的订单不能添加回款计划"),
        )
        before = _stored(session, PaymentPlan, pk)
        if before is not None and before.order_id != values.get("order_id"):
            errors.add("order", _("回款计划不能移到另一个订单"))
        if before is not None and (before.planned_date, before.remind_days) != (
            values.get("planned_date"),
            values.get("remind_days"),
        ):
            values["reminded_at"] = None  # a new date gets its own reminder
        if order is None or errors:
            return
        if not values.get("number"):
            values["number"] = (
                session.scalar(select(func.max(PaymentPlan.number)).where(PaymentPlan.order_id == order.id))
                or 0
            ) + 1
        values["planned_amount"] = money(values["planned_amount"])
        values["collected_amount"] = money(values.get("collected_amount"))
        values["status"] = plan_status(
            values["planned_amount"], values["collected_amount"], values.get("planned_date"), local_today()
        )
        problem = cap_check(
            session, PaymentPlan, order.id, PaymentPlan.planned_amount, True, values["planned_amount"], pk,
            _("回款计划"),
        )  # fmt: skip
        if problem:
            errors.add("planned_amount", problem)

    def before_delete(self, session: Session, item: PaymentPlan) -> None:
        if item.collected_amount:
            raise ValidationFailed({"planned_amount": [_("已有回款的计划不能删除")]})


class MoneyDocumentService(RecordService):
    """What collections and invoices share: against a live order, within its total, frozen once
    submitted, counted once approved."""

    #: the approvals engine's name of the document
    document: str
    #: columns that cannot change once the document is submitted
    frozen: tuple[str, ...]
    what: Any

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        values["status"] = values.get("status") or "draft"
        _positive(values, errors, "amount")
        before = _stored(session, self.model, pk)
        previous = before.status if before else None
        # withdrawn (pending -> draft) because its order was voided (OrderService.after_save)
        withdrawn = ("voided",) if previous == "pending" and values["status"] == "draft" else ()
        message = _("订单审批通过后才能登记%(what)s", what=self.what)
        order = _check_order(session, values, errors, (*LIVE_ORDER, *withdrawn), message)
        if previous is None and values["status"] != "draft":
            errors.add("status", _("请通过「提交审批」提交"))
        elif previous is not None and values["status"] != previous:
            if values["status"] not in DOCUMENT_FLOW.get(previous, set()):
                errors.add("status", _("不能从「%(a)s」变为「%(b)s」", a=DOCUMENT_STATUSES.label(previous),
                                       b=DOCUMENT_STATUSES.label(values["status"])))  # fmt: skip
        if previous in ("pending", "approved"):
            changed = [c for c in self.frozen if _differs(getattr(before, c), values.get(c))]
            for column in changed:
                errors.add(column.removesuffix("_id"), _("已提交审批,不能修改"))
        self.check_document(session, values, pk, errors, order)
        if order is None or errors or values["status"] == "rejected":
            return
        values["amount"] = money(values["amount"])
        problem = cap_check(
            session, self.model, order.id, self.model.amount, self.model.status != "rejected",
            values["amount"], pk, self.what,
        )  # fmt: skip
        if problem:
            errors.add("amount", problem)

    def check_document(
        self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector, order: Order | None
    ) -> None:
        """The document's own rules (override)."""

    def after_save(self, session: Session, item: Any) -> None:
        refresh_order_money(session, item.order_id)

    def before_delete(self, session: Session, item: Any) -> None:
        if item.status in ("pending", "approved"):
            raise ValidationFailed(
                {"status": [_("「%(status)s」的记录不能删除", status=DOCUMENT_STATUSES.label(item.status))]}
            )


def _differs(stored: Any, value: Any) -> bool:
    if isinstance(stored, Decimal) or isinstance(value, Decimal):
        return money(stored) != money(value) if stored is not None and value is not None else stored != value
    return stored != value


class PaymentService(MoneyDocumentService):
    model = Payment
    document = "payment"
    frozen = ("order_id", "plan_id", "amount", "received_on", "method", "account")
    what = lazy("回款")
    choices = {"method": PAYMENT_METHODS, "status": DOCUMENT_STATUSES}
    cleaners = {"account": text_up_to(100)}
    required = {
        "order_id": lazy("请选择订单"),
        "amount": lazy("请填写回款金额"),
        "received_on": lazy("请填写回款日期"),
    }

    def check_document(
        self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector, order: Order | None
    ) -> None:
        values["method"] = values.get("method") or "transfer"
        if values.get("received_on") and values["received_on"] > local_today():
            errors.add("received_on", _("回款日期不能晚于今天"))
        if values.get("plan_id") and order is not None:
            belongs = session.scalar(select(PaymentPlan.order_id).where(PaymentPlan.id == values["plan_id"]))
            if belongs != order.id:
                errors.add("plan", _("回款计划不属于该订单"))


class InvoiceService(MoneyDocumentService):
    model = Invoice
    document = "invoice"
    frozen = (
        "order_id",
        "kind",
        "amount",
        "title",
        "tax_number",
        "bank_name",
        "bank_account",
        "address_phone",
    )
    what = lazy("开票")
    choices = {"kind": INVOICE_KINDS, "status": DOCUMENT_STATUSES}
    cleaners = {
        "number": text_up_to(40),
        "title": text_up_to(200),
        "tax_number": validators.clean_tax_number,
        "bank_name": text_up_to(100),
        "bank_account": validators.clean_bank_account,
        "address_phone": text_up_to(255),
    }
    required = {"order_id": lazy("请选择订单"), "amount": lazy("请填写开票金额")}

    def check_document(
        self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector, order: Order | None
    ) -> None:
        values["kind"] = values.get("kind") or "special"
        if pk is None and order is not None:  # the customer's invoicing details as they are now
            copy_invoicing_details(order.customer, values)
        if not values.get("title") and "title" not in errors.errors:
            errors.add("title", _("请填写发票抬头 (可在客户资料中维护开票信息)"))
        if values["kind"] == "special" and not values.get("tax_number") and "tax_number" not in errors.errors:
            errors.add("tax_number", _("增值税专用发票需要购买方税号"))
        if values.get("number") and "number" not in errors.errors:
            query = select(Invoice.id).where(Invoice.number == values["number"], Invoice.id != (pk or 0))
            if session.scalar(query) is not None:
                errors.add("number", _("发票号码已存在"))


#: invoice column <- customer column
INVOICING_DETAILS = {
    "title": "invoice_title",
    "tax_number": "tax_number",
    "bank_name": "bank_name",
    "bank_account": "bank_account",
    "address_phone": "invoice_address_phone",
}


def copy_invoicing_details(customer: Customer | None, values: dict[str, Any]) -> None:
    """Fill what the invoice leaves blank from the customer's invoicing details (名称 defaults to
    the customer's name)."""
    if customer is None:
        return
    for column, source in INVOICING_DETAILS.items():
        if not values.get(column):
            values[column] = getattr(customer, source) or (customer.name if column == "title" else None)


def refresh_order_money(session: Session, order_id: int, today: dt.date | None = None) -> None:
    """Paid and invoiced amounts of the order and each plan's collected amount and status, from
    the approved collections and invoices (in the caller's transaction)."""
    order = session.get(Order, order_id)
    if order is None:
        return
    approved = Payment.status == "approved"
    per_plan = dict(
        session.execute(
            select(Payment.plan_id, func.sum(Payment.amount))
            .where(Payment.order_id == order_id, approved, Payment.plan_id.is_not(None))
            .group_by(Payment.plan_id)
        ).all()
    )
    paid = session.scalar(select(func.sum(Payment.amount)).where(Payment.order_id == order_id, approved))
    invoiced = session.scalar(
        select(func.sum(Invoice.amount)).where(Invoice.order_id == order_id, Invoice.status == "approved")
    )
    today = today or local_today()
    for plan in order.plans:
        collected = money(per_plan.get(plan.id))
        if money(plan.collected_amount) != collected:
            plan.collected_amount = collected
        status = plan_status(money(plan.planned_amount), collected, plan.planned_date, today)
        if plan.status != status:
            plan.status = status
    if money(order.paid_amount) != money(paid):
        order.paid_amount = money(paid)
    if money(order.invoiced_amount) != money(invoiced):
        order.invoiced_amount = money(invoiced)


def submit_document(session: Session, record: Payment | Invoice, actor: CrmUser | None) -> None:
    """Send a collection or an invoice for approval (approved at once when no flow applies)."""
    service = service_for(type(record))
    if record.status not in ("draft", "rejected"):
        raise ValidationFailed({"status": [_("只有草稿或已驳回的记录可以提交审批")]})
    with acting_as(session, actor), write_transaction(session):
        approvals.submit(session, service.document, record, actor)


# --- the approvals engine's view of the documents ------------------------------------------------
def field_value(record: Any, name: str) -> Any:
    """A value a flow condition names: a column, a computed figure or custom.<api_name>."""
    if name.startswith(FIELD_PREFIX):
        return (record.custom or {}).get(name.removeprefix(FIELD_PREFIX))
    computed = {"paid_percent", "invoiced_percent"} if isinstance(record, Order) else set()
    if name in inspect(type(record)).columns.keys() or name in computed:
        return getattr(record, name)
    return None


def _submitted(session: Session, record: Any) -> None:
    record.status = "pending"
    session.flush()


def _approved(session: Session, record: Any, when: dt.datetime) -> None:
    record.status, record.approved_at = "approved", when
    session.flush()
    if not isinstance(record, Order):
        refresh_order_money(session, record.order_id)
        session.flush()


def _rejected(session: Session, record: Any, reason: str, returned: bool) -> None:
    """An order goes back to draft (to change and submit again); a collection or invoice is
    rejected, or back to draft when sent back."""
    record.status = "draft" if returned or isinstance(record, Order) else "rejected"
    session.flush()


approvals.register_document(
    DocumentKind(
        "order", Order,
        title=lambda o: f"{ORDER_KINDS.label(o.kind)} {o.number} {o.title}",
        amount=lambda o: o.total_amount,
        field_value=field_value, on_submitted=_submitted, on_approved=_approved, on_rejected=_rejected,
        figures={"paid_percent": "number", "invoiced_percent": "number"},
    )
)  # fmt: skip
approvals.register_document(
    DocumentKind(
        "payment", Payment,
        title=lambda p: str(_("回款 %(number)s ¥%(amount)s", number=p.order.number, amount=money(p.amount))),
        amount=lambda p: p.amount,
        field_value=field_value, on_submitted=_submitted, on_approved=_approved, on_rejected=_rejected,
    )
)  # fmt: skip
approvals.register_document(
    DocumentKind(
        "invoice", Invoice,
        title=lambda i: str(_("发票 %(number)s ¥%(amount)s", number=i.order.number, amount=money(i.amount))),
        amount=lambda i: i.amount,
        field_value=field_value, on_submitted=_submitted, on_approved=_approved, on_rejected=_rejected,
    )
)  # fmt: skip


# --- workbench and the daily run -----------------------------------------------------------------
def expiring_contracts(
    session: Session, user: CrmUser, today: dt.date, days: int, limit: int = 20
) -> list[Order]:
    """Approved or executing contracts ending within `days` from `today`, in the user's scope."""
    query = (
        select(Order)
        .where(
            Order.kind == "contract",
            Order.status.in_(("approved", "executing")),
            Order.end_date.between(today, today + dt.timedelta(days=days)),
        )
        .order_by(Order.end_date, Order.id)
        .limit(limit)
    )
    clause = scope_clause(session, Order, user)
    return list(session.scalars(query.where(clause) if clause is not None else query))


def payments_due(
    session: Session, user: CrmUser, today: dt.date, days: int, limit: int = 20
) -> list[PaymentPlan]:
    """Plans not yet collected, due within `days` from `today` or overdue, of live orders in the
    user's data scope, earliest first."""
    query = (
        select(PaymentPlan)
        .join(Order, Order.id == PaymentPlan.order_id)
        .where(
            PaymentPlan.status != "done",
            PaymentPlan.planned_date <= today + dt.timedelta(days=days),
            Order.status.in_(LIVE_ORDER),
        )
        .order_by(PaymentPlan.planned_date, PaymentPlan.id)
        .limit(limit)
    )
    # a plan is visible with its order (PaymentPlan.__scope_parent__): the order's own condition
    # on the joined order, rather than `order_id IN (the scope's orders)`, which SQLite built
    # first from a manager's team's 100,000 orders (~200 ms, even with no plan at all)
    clause = scope_clause(session, Order, user)
    return list(session.scalars(query.where(clause) if clause is not None else query))


PLAN_LINK = "/orderview/show/{id}"


def payment_plan_run(session: Session, today: dt.date | None = None, batch: int = 200) -> dict[str, int]:
    """The daily run: plans whose date passed become overdue, and the owners of live orders are
    reminded `remind_days` ahead, once per plan (a claim by conditional UPDATE, so two workers
    never remind twice). Returns how many plans went overdue and how many were reminded."""
    today = today or local_today()
    live = select(Order.id).where(Order.status.in_(LIVE_ORDER))
    with write_transaction(session):
        overdue = session.execute(
            update(PaymentPlan)
            .where(
                PaymentPlan.status.in_(("pending", "partial")),
                PaymentPlan.planned_date < today,
                PaymentPlan.order_id.in_(live),
            )
            .values(status="overdue")
            .execution_options(synchronize_session=False)
        ).rowcount
    reminded, last_id = 0, 0
    base_url = current_app.config["CRM_BASE_URL"].rstrip("/")
    while True:
        rows = session.execute(
            select(
                PaymentPlan.id, PaymentPlan.number, PaymentPlan.planned_date, PaymentPlan.planned_amount,
                PaymentPlan.collected_amount, PaymentPlan.remind_days, Order.id.label("order_id"),
                Order.number.label("order_number"), Order.title, Order.owner_id, CrmUser.email,
            )
            .join(Order, Order.id == PaymentPlan.order_id)
            .join(CrmUser, CrmUser.id == Order.owner_id)
            .where(
                PaymentPlan.status != "done",
                PaymentPlan.reminded_at.is_(None),
                Order.status.in_(LIVE_ORDER),
                CrmUser.active.is_(True),
                PaymentPlan.id > last_id,
                PaymentPlan.planned_date <= today + dt.timedelta(days=365),
            )
            .order_by(PaymentPlan.id)
            .limit(batch)
        ).all()  # fmt: skip
        if not rows:
            return {"overdue": overdue, "reminded": reminded}
        with write_transaction(session):
            for row in rows:
                if row.planned_date - dt.timedelta(days=row.remind_days) > today:
                    continue
                claimed = session.execute(
                    update(PaymentPlan)
                    .where(PaymentPlan.id == row.id, PaymentPlan.reminded_at.is_(None))
                    .values(reminded_at=utcnow())
                    .execution_options(synchronize_session=False)
                ).rowcount
                if claimed:
                    _remind_plan(session, row, today, base_url)
                    reminded += 1
        last_id = rows[-1].id


def _remind_plan(session: Session, row: Any, today: dt.date, base_url: str) -> None:
    left = money(row.planned_amount) - money(row.collected_amount)
    if row.planned_date < today:
        text = _("订单 %(number)s 第 %(n)s 期回款 ¥%(amount)s 已于 %(date)s 逾期", number=row.order_number,
                 n=row.number, amount=left, date=row.planned_date)  # fmt: skip
    else:
        text = _("订单 %(number)s 第 %(n)s 期回款 ¥%(amount)s 计划于 %(date)s 到账", number=row.order_number,
                 n=row.number, amount=left, date=row.planned_date)  # fmt: skip
    subject = _("回款提醒: %(title)s", title=row.title)
    link = PLAN_LINK.format(id=row.order_id)
    notify(session, row.owner_id, subject, text, link)
    if row.email:
        body = "\n".join([_("您好,"), "", text, "", _("查看订单: %(url)s", url=base_url + link)])
        queue_mail(session, row.email, subject, body, dedup_key=f"plan-reminder:{row.id}:{row.planned_date}")


order_service = service_for(Order)
line_service = service_for(OrderLine)
plan_service = service_for(PaymentPlan)
payment_service = service_for(Payment)
invoice_service = service_for(Invoice)
