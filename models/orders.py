"""The money: orders and contracts with their lines, payment plans (回款计划), collections
(回款) and invoices (发票). Totals are computed by the services in app/orders.py and stored, so
lists, targets and dashboards read plain columns."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from flask_babel import lazy_gettext
from sqlalchemy import (
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.crypto import EncryptedString
from customfields import CustomFieldsMixin
from models.base import Choices, Model, OwnedMixin, TimestampMixin
from models.customers import Contact, Customer
from models.sales import Opportunity, Product
from models.security import CrmUser, Department

ORDER_KINDS = Choices(("order", "订单"), ("contract", "合同"))
ORDER_STATUSES = Choices(
    ("draft", "草稿"),
    ("pending", "审批中"),
    ("approved", "已审批"),
    ("executing", "执行中"),
    ("completed", "已完成"),
    ("voided", "已作废"),
)
#: orders that count: approved and not voided (targets, purchase frequency, the customer's figures)
LIVE_ORDER = ("approved", "executing", "completed")
PLAN_STATUSES = Choices(
    ("pending", "待回款"), ("partial", "部分回款"), ("done", "已回款"), ("overdue", "已逾期")
)
#: collections and invoices go through approval like orders (审批中 until approved)
DOCUMENT_STATUSES = Choices(
    ("draft", "草稿"), ("pending", "审批中"), ("approved", "已审批"), ("rejected", "已驳回")
)
PAYMENT_METHODS = Choices(
    ("transfer", "银行转账"),
    ("acceptance", "承兑汇票"),
    ("cheque", "支票"),
    ("cash", "现金"),
    ("online", "在线支付"),
)
INVOICE_KINDS = Choices(("special", "增值税专用发票"), ("normal", "增值税普通发票"))

MONEY = Numeric(14, 2)


class Order(OwnedMixin, TimestampMixin, CustomFieldsMixin, Model):
    """订单 / 合同: what the customer bought, approved before it is executed; never deleted once
    approved, only voided with a reason."""

    __tablename__ = "crm_order"
    __entity_label__ = lazy_gettext("订单")
    __money__ = ("total_amount", "paid_amount", "invoiced_amount")

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(40), nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(String(10), nullable=False, default="order")
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("crm_customer.id", ondelete="RESTRICT"), nullable=False
    )
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("crm_contact.id", ondelete="SET NULL"))
    opportunity_id: Mapped[int | None] = mapped_column(
        ForeignKey("crm_opportunity.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(10), nullable=False, default="draft", index=True)
    ordered_on: Mapped[dt.date] = mapped_column(Date, nullable=False, default=dt.date.today)
    # contracts
    sign_date: Mapped[dt.date | None] = mapped_column(Date)
    start_date: Mapped[dt.date | None] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date, index=True)
    #: the signed contract: a file key of customfields.files.FileStore (stored outside the database)
    signed_file: Mapped[str | None] = mapped_column(String(255))
    # computed by app/orders.py
    total_amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False, default=Decimal("0"))
    paid_amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False, default=Decimal("0"))
    invoiced_amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False, default=Decimal("0"))
    #: the largest line discount, percent: approval flows for discounts above a threshold read it
    max_discount_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2), nullable=False, default=Decimal("0"))
    approved_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    void_reason: Mapped[str | None] = mapped_column(String(255))
    notes: Mapped[str | None] = mapped_column(Text)

    owner: Mapped[CrmUser | None] = relationship(CrmUser, foreign_keys="Order.owner_id")
    department: Mapped[Department | None] = relationship(Department, foreign_keys="Order.department_id")
    customer: Mapped[Customer] = relationship(Customer)
    contact: Mapped[Contact | None] = relationship(Contact)
    opportunity: Mapped[Opportunity | None] = relationship(Opportunity)
    lines: Mapped[list[OrderLine]] = relationship(
        "OrderLine", back_populates="order", order_by="OrderLine.position", cascade="all, delete-orphan"
    )
    plans: Mapped[list[PaymentPlan]] = relationship(
        "PaymentPlan", back_populates="order", order_by="PaymentPlan.number", cascade="all, delete-orphan"
    )

    __table_args__ = (
        Index("ix_order_customer", "customer_id", "ordered_on"),
        # targets and dashboards: approved amounts per owner and period; it holds what the top
        # customers of an owner sum (and the department, to tell a manager's own orders apart)
        Index(
            "ix_order_owner_live",
            "owner_id",
            "status",
            "ordered_on",
            "department_id",
            "customer_id",
            "total_amount",
        ),
        # the sales dashboard's top customers of a department: the index holds what it sums
        Index(
            "ix_order_department_live", "department_id", "status", "ordered_on", "customer_id", "total_amount"
        ),
    )

    def __str__(self) -> str:
        return f"{self.number} {self.title}"

    @property
    def paid_percent(self) -> Decimal:
        return _percent(self.paid_amount, self.total_amount)

    @property
    def invoiced_percent(self) -> Decimal:
        return _percent(self.invoiced_amount, self.total_amount)


def _percent(part: Decimal | None, whole: Decimal | None) -> Decimal:
    if not whole:
        return Decimal("0")
    return (Decimal(part or 0) * 100 / Decimal(whole)).quantize(Decimal("0.1"))


class OrderLine(Model):
    """订单明细: a product, quantity, unit price and discount; amount is computed."""

    __tablename__ = "crm_order_line"
    __money__ = ("unit_price", "amount")

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("crm_order.id", ondelete="CASCADE"), nullable=False, index=True
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("crm_product.id", ondelete="RESTRICT"))
    description: Mapped[str | None] = mapped_column(String(255))
    quantity: Mapped[Decimal] = mapped_column(Numeric(14, 3), nullable=False)
    unit_price: Mapped[Decimal] = mapped_column(MONEY, nullable=False)
    #: percent off the line, 0-100
    discount_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2), nullable=False, default=Decimal("0"))
    amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False, default=Decimal("0"))

    __scope_parent__ = "order"

    order: Mapped[Order] = relationship(Order, back_populates="lines")
    product: Mapped[Product | None] = relationship(Product)


class PaymentPlan(Model):
    """回款计划: one instalment of an order; its status follows the approved collections."""

    __tablename__ = "crm_payment_plan"
    __money__ = ("planned_amount", "collected_amount")

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("crm_order.id", ondelete="CASCADE"), nullable=False, index=True
    )
    number: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    planned_amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False)
    planned_date: Mapped[dt.date] = mapped_column(Date, nullable=False, index=True)
    remind_days: Mapped[int] = mapped_column(Integer, nullable=False, default=3)
    collected_amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False, default=Decimal("0"))
    status: Mapped[str] = mapped_column(String(10), nullable=False, default="pending", index=True)
    reminded_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    notes: Mapped[str | None] = mapped_column(String(255))

    __scope_parent__ = "order"

    order: Mapped[Order] = relationship(Order, back_populates="plans")

    def __str__(self) -> str:
        return f"{self.order.number if self.order else ''} #{self.number}"


class Payment(TimestampMixin, CustomFieldsMixin, Model):
    """回款: money received against an order (and one of its plans); counts once approved."""

    __tablename__ = "crm_payment"
    __entity_label__ = lazy_gettext("回款")
    __money__ = ("amount",)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("crm_order.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    plan_id: Mapped[int | None] = mapped_column(
        ForeignKey("crm_payment_plan.id", ondelete="SET NULL"), index=True
    )
    amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False)
    received_on: Mapped[dt.date] = mapped_column(Date, nullable=False, index=True)
    method: Mapped[str] = mapped_column(String(12), nullable=False, default="transfer")
    account: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(10), nullable=False, default="draft", index=True)
    approved_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    notes: Mapped[str | None] = mapped_column(Text)

    __scope_parent__ = "order"

    order: Mapped[Order] = relationship(Order)
    plan: Mapped[PaymentPlan | None] = relationship(PaymentPlan)

    def __str__(self) -> str:
        return f"{self.order.number if self.order else ''} ¥{self.amount}"


class Invoice(TimestampMixin, CustomFieldsMixin, Model):
    """发票: issued against an order with the customer's invoicing details as they were then."""

    __tablename__ = "crm_invoice"
    __entity_label__ = lazy_gettext("发票")
    __money__ = ("amount",)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("crm_order.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    number: Mapped[str | None] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(10), nullable=False, default="special")
    amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False)
    issued_on: Mapped[dt.date | None] = mapped_column(Date, index=True)
    status: Mapped[str] = mapped_column(String(10), nullable=False, default="draft", index=True)
    approved_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # the customer's invoicing details, copied when the invoice is made
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    tax_number: Mapped[str | None] = mapped_column(String(20))
    bank_name: Mapped[str | None] = mapped_column(String(100))
    # --- encryption at rest (app/crypto.py) ---
    bank_account: Mapped[str | None] = mapped_column(EncryptedString(40, "crm_invoice.bank_account"))
    address_phone: Mapped[str | None] = mapped_column(String(255))
    notes: Mapped[str | None] = mapped_column(Text)

    __scope_parent__ = "order"

    order: Mapped[Order] = relationship(Order)

    def __str__(self) -> str:
        return self.number or f"{self.order.number if self.order else ''} ¥{self.amount}"


TARGET_PERIODS = Choices(("month", "月度"), ("quarter", "季度"), ("year", "年度"))
TARGET_METRICS = Choices(("contract", "合同金额"), ("collected", "回款金额"))


class SalesTarget(TimestampMixin, CustomFieldsMixin, Model):
    """业绩目标: an amount to reach per person or department, per month, quarter or year, for
    contract amount (approved orders) or collected amount (approved collections)."""

    __tablename__ = "crm_sales_target"
    __entity_label__ = lazy_gettext("业绩目标")
    __money__ = ("amount",)
    #: data scope (app.access.subject_clause): a person's target follows the person, a
    #: department's the department
    __scope_subject__ = ("user_id", "department_id")

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="CASCADE"), index=True)
    department_id: Mapped[int | None] = mapped_column(
        ForeignKey("crm_department.id", ondelete="CASCADE"), index=True
    )
    period: Mapped[str] = mapped_column(String(10), nullable=False, default="month")
    #: first day of the period (1 Jan, 1 Apr, 1 Jul or 1 Oct for quarters)
    period_start: Mapped[dt.date] = mapped_column(Date, nullable=False)
    metric: Mapped[str] = mapped_column(String(10), nullable=False, default="contract")
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2), nullable=False)
    notes: Mapped[str | None] = mapped_column(Text)
    #: 'user:<id>' or 'department:<id>', kept by the flush (target_subject below): the unique key
    #: needs a column that is never NULL, since (user_id, department_id, ...) with one of the two
    #: always NULL never collides in SQL, and two Save clicks at once made two targets
    subject: Mapped[str] = mapped_column(String(24), nullable=False)

    user: Mapped[CrmUser | None] = relationship(CrmUser, foreign_keys=[user_id])
    department: Mapped[Department | None] = relationship(Department)

    __table_args__ = (
        UniqueConstraint("subject", "period", "period_start", "metric", name="uq_sales_target"),
    )


def target_subject(user_id: int | None, department_id: int | None) -> str:
    """The never-NULL half of a target's unique key: whose target it is."""
    return f"user:{user_id}" if user_id is not None else f"department:{department_id}"


@event.listens_for(SalesTarget, "before_insert")
@event.listens_for(SalesTarget, "before_update")
def _keep_subject(_mapper: Any, _connection: Any, target: SalesTarget) -> None:
    target.subject = target_subject(target.user_id, target.department_id)
