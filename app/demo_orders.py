"""Demo data of the money: a year of orders and contracts (from the won opportunities, and some
repeat orders), their instalments, collections and invoices, in every state. Everything goes
through the services and the approvals engine, so the configured flows apply: with the demo
flows, large orders and every collection and invoice wait for their approvers (app/demo.py lets
them decide afterwards); without flows, documents are approved at once.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

from flask_appbuilder.security.sqla.models import Role
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clock import local_today
from app.errors import DomainError
from app.orders import (
    invoice_service,
    money,
    move_order,
    order_service,
    payment_service,
    plan_service,
    replace_lines,
    submit_document,
    submit_order,
)
from models.customers import Customer
from models.orders import Invoice, Order, Payment, PaymentPlan
from models.sales import Opportunity, Product
from models.security import CrmUser

VOID_REASONS = ["客户取消采购计划", "重复下单", "价格条款变更, 重新签订", "客户资金紧张, 暂停合作"]
ACCOUNTS = [
    "工商银行东营分行 1612 0000 0901",
    "建设银行东营分行 3705 0166 0808",
    "农商银行垦利支行 9100 2233",
]


def _recorders(session: Session, fallback: CrmUser) -> list[CrmUser]:
    """Who records collections and invoices: Finance, or an admin (whose entries Finance then
    confirms when a flow asks it to)."""
    found = session.scalars(
        select(CrmUser)
        .join(CrmUser.roles)
        .where(Role.name.in_(("Finance", "Admin")), CrmUser.active.is_(True))
        .order_by(CrmUser.id)
    ).all()
    return list(dict.fromkeys(found)) or [fallback]


def _at(day: dt.date, hour: int = 10) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour))


def load_order_demo(session: Session, rng: random.Random, reps: list[CrmUser]) -> dict[str, int]:
    """Orders and contracts over the past year with plans, collections and invoices. Commits."""
    today = local_today()
    products = list(session.scalars(select(Product).where(Product.on_sale.is_(True)).order_by(Product.id)))
    if not products or not reps:
        return {}
    counts = {"orders": 0, "contracts": 0, "plans": 0, "payments": 0, "invoices": 0, "voided": 0, "drafts": 0}
    won = session.scalars(
        select(Opportunity).where(Opportunity.status == "won").order_by(Opportunity.id)
    ).all()
    sources: list[tuple[Customer, Opportunity | None, CrmUser]] = [
        (o.customer, o, o.owner or rng.choice(reps)) for o in won
    ]
    customers = session.scalars(
        select(Customer).where(Customer.owner_id.is_not(None)).order_by(Customer.id).limit(60)
    ).all()
    for customer in customers:  # repeat business without an opportunity
        sources.extend((customer, None, customer.owner) for _ in range(rng.choice([0, 0, 1, 1, 2])))
    sources.sort(key=lambda source: rng.random())
    for customer, opportunity, owner in sources:
        try:
            _one_order(session, rng, today, products, customer, opportunity, owner, counts)
        except DomainError:
            session.rollback()  # a rule refused this one (say, a customer moved to the pool): skip it
    return counts


def _one_order(
    session: Session,
    rng: random.Random,
    today: dt.date,
    products: list[Product],
    customer: Customer,
    opportunity: Opportunity | None,
    owner: CrmUser,
    counts: dict[str, int],
) -> None:
    known = max(0, min(360, (today - customer.created_at.date()).days))  # not before the customer
    ordered_on = today - dt.timedelta(days=rng.randint(min(5, known), known))
    if opportunity is not None and opportunity.closed_at is not None:
        ordered_on = min(opportunity.closed_at.date() + dt.timedelta(days=rng.randint(0, 10)), today)
    contract = rng.random() < 0.6
    chosen = list(opportunity.products) if opportunity is not None and opportunity.products else []
    chosen = chosen or rng.sample(products, rng.randint(1, min(3, len(products))))
    order = Order(
        kind="contract" if contract else "order",
        title=f"{customer.name[:30]} - {chosen[0].name}{'采购合同' if contract else '订单'}",
        customer=customer,
        opportunity=opportunity,
        owner=owner,
        ordered_on=ordered_on,
    )
    if contract:
        order.sign_date = ordered_on
        order.start_date = ordered_on + dt.timedelta(days=rng.randint(1, 10))
        ending_soon = rng.random() < 0.15  # some end within the month: the workbench shows them
        order.end_date = (
            today + dt.timedelta(days=rng.randint(1, 30))
            if ending_soon
            else order.start_date + dt.timedelta(days=rng.choice([180, 365, 730]))
        )
    replace_lines(
        session,
        order,
        [
            {
                "product_id": product.id,
                "quantity": rng.choice([1, 2, 5, 10, 20, 50]),
                "unit_price": product.price,
                "discount_percent": rng.choice([0, 0, 0, 3, 5, 8, 12, 15]),
            }
            for product in chosen
        ],
    )
    order_service.save(session, order, owner)
    counts["contracts" if contract else "orders"] += 1
    fate = rng.random()
    if fate < 0.08:
        counts["drafts"] += 1
        return
    if fate < 0.12:
        move_order(session, order, "voided", owner, rng.choice(VOID_REASONS))
        counts["voided"] += 1
        return
    submit_order(session, order, owner)
    if order.status != "approved":
        return  # waits for its approvers (the demo flows)
    order.approved_at = _at(ordered_on + dt.timedelta(days=1), 16)
    session.commit()
    _money(session, rng, today, order, owner, counts)


def _money(
    session: Session, rng: random.Random, today: dt.date, order: Order, owner: CrmUser, counts: dict[str, int]
) -> None:
    """Instalments over the months after the order; collections and invoices for the ones due."""
    recorders = _recorders(session, owner)
    finance = rng.choice(recorders)
    instalments = rng.choice([1, 2, 3])
    shares = [Decimal(1)] if instalments == 1 else rng.choice(
        [[Decimal("0.3"), Decimal("0.7")], [Decimal("0.5"), Decimal("0.5")]]
        if instalments == 2
        else [[Decimal("0.3"), Decimal("0.4"), Decimal("0.3")],
              [Decimal("0.2"), Decimal("0.5"), Decimal("0.3")]]
    )  # fmt: skip
    total, planned = money(order.total_amount), Decimal(0)
    plans = []
    for number, share in enumerate(shares, start=1):
        amount = total - planned if number == len(shares) else money(total * share)
        planned += amount
        plan = PaymentPlan(
            order_id=order.id,
            number=number,
            planned_amount=amount,
            planned_date=order.ordered_on + dt.timedelta(days=30 * number + rng.randint(0, 20)),
            remind_days=rng.choice([3, 5, 7]),
        )
        plan_service.save(session, plan, finance)
        plans.append(plan)
        counts["plans"] += 1
    collected = Decimal(0)
    for plan in plans:
        if plan.planned_date > today + dt.timedelta(days=5):
            break  # not due yet
        roll = rng.random()
        if roll < 0.15:
            continue  # nothing came: overdue
        amount = plan.planned_amount if roll > 0.3 else money(plan.planned_amount * Decimal("0.4"))
        received = min(plan.planned_date + dt.timedelta(days=rng.randint(-5, 10)), today)
        payment = Payment(
            order_id=order.id,
            plan_id=plan.id,
            amount=amount,
            received_on=received,
            method=rng.choice(["transfer", "transfer", "transfer", "acceptance", "cheque"]),
            account=rng.choice(ACCOUNTS),
        )
        finance = rng.choice(recorders)
        payment_service.save(session, payment, finance)
        counts["payments"] += 1
        if rng.random() < 0.1:
            continue  # recorded, not yet submitted
        submit_document(session, payment, finance)
        if payment.status == "approved":
            payment.approved_at = _at(received, 15)
            collected += amount
        session.commit()
    if collected:
        _invoice(session, rng, order, collected, finance, counts)
        move_order(session, order, "executing", owner)
        if collected >= total and rng.random() < 0.8:
            move_order(session, order, "completed", owner)
    elif rng.random() < 0.05:
        move_order(session, order, "voided", owner, rng.choice(VOID_REASONS))
        counts["voided"] += 1


def _invoice(
    session: Session,
    rng: random.Random,
    order: Order,
    amount: Decimal,
    finance: CrmUser,
    counts: dict[str, Any],
) -> None:
    """One invoice for what was collected (the customer's invoicing details are copied)."""
    customer = order.customer
    invoice = Invoice(
        order_id=order.id,
        kind="special" if customer.tax_number or customer.credit_code else "normal",
        amount=amount,
        tax_number=customer.tax_number or customer.credit_code,
    )
    invoice_service.save(session, invoice, finance)
    counts["invoices"] += 1
    if rng.random() < 0.85:
        submit_document(session, invoice, finance)
        if invoice.status == "approved":
            invoice.issued_on = min(order.ordered_on + dt.timedelta(days=rng.randint(30, 60)), local_today())
            invoice.number = f"{37000000 + invoice.id:08d}{order.id:06d}"
            session.commit()
