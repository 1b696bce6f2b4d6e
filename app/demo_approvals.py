"""Demo data of approvals and targets: the flows a Dongying company would configure, monthly and
quarterly targets for every rep and their departments, and `demo_decide()` that lets approvers
act on waiting requests (the orders demo submits the documents; app/demo.py calls both)."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

from flask_appbuilder.security.sqla.models import Role
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.approvals import decide
from app.targets import PERIOD_MONTHS
from models.approvals import ApprovalDecision, ApprovalFlow, ApprovalRequest, ApprovalStep
from models.base import utcnow
from models.orders import Invoice, Order, Payment, SalesTarget
from models.security import CrmUser

#: (name, document, position, conditions, description, [(approver kind, mode, role name)])
FLOWS = [
    ("合同审批", "order", 10, [{"field": "total_amount", "op": "gt", "value": 100000}],
     "10万元以上的订单/合同: 直属上级, 再由财务审核",
     [("superior", "any", None), ("role", "any", "Finance")]),
    ("折扣审批", "order", 20, [{"field": "max_discount_percent", "op": "gt", "value": 10}],
     "折扣超过 10% 的订单: 部门负责人审批", [("department_leader", "any", None)]),
    ("回款确认", "payment", 10, [], "每笔回款由财务确认", [("role", "any", "Finance")]),
    ("开票审批", "invoice", 10, [], "开票前由财务审核", [("role", "any", "Finance")]),
]  # fmt: skip


def load_approval_demo(session: Session, rng: random.Random, reps: list[CrmUser]) -> dict[str, int]:
    """The approval flows and this year's targets (month and quarter) for each rep and their
    departments. Safe to run twice: existing flows and targets are kept. Commits.

    Needs the documents registered (app.orders, imported by the app's views) to check the flows."""
    roles = dict(session.execute(select(Role.name, Role.id)).all())
    existing = set(session.scalars(select(ApprovalFlow.name)))
    flows = 0
    for name, document, position, conditions, description, steps in FLOWS:
        if name in existing:
            continue
        session.add(
            ApprovalFlow(
                name=name,
                document=document,
                position=position,
                conditions=conditions,
                description=description,
                steps=[
                    ApprovalStep(position=i, approver_kind=kind, mode=mode, role_id=roles.get(role or ""))
                    for i, (kind, mode, role) in enumerate(steps, start=1)
                ],
            )
        )
        flows += 1
    year = utcnow().date().year
    wanted: list[dict[str, Any]] = []
    # sized to the demo's orders (about 50,000-170,000 yuan of approved orders per rep in the
    # year), so the completion rates on the workbench and the dashboard look like a real team's
    for rep in reps:
        monthly = Decimal(rng.choice([8_000, 10_000, 12_000, 15_000]))
        for month in range(1, 13):
            wanted.append(_target(user_id=rep.id, period="month", month=(year, month), amount=monthly))
        for quarter in range(4):
            start = (year, quarter * 3 + 1)
            wanted.append(
                _target(user_id=rep.id, period="quarter", month=start, amount=monthly * 2, metric="collected")
            )
    departments = {rep.department_id for rep in reps if rep.department_id}
    for department_id in sorted(departments):
        size = sum(1 for rep in reps if rep.department_id == department_id)
        for quarter in range(4):
            start = (year, quarter * 3 + 1)
            amount = Decimal(size * 30_000)
            wanted.append(_target(department_id=department_id, period="quarter", month=start, amount=amount))
        wanted.append(_target(department_id=department_id, period="year", month=(year, 1), amount=amount * 4))
    have = {
        (t.user_id, t.department_id, t.period, t.period_start, t.metric)
        for t in session.scalars(select(SalesTarget))
    }
    targets = [
        SalesTarget(**values)
        for values in wanted
        if (
            values["user_id"],
            values["department_id"],
            values["period"],
            values["period_start"],
            values["metric"],
        )
        not in have
    ]
    session.add_all(targets)
    session.commit()
    return {"flows": flows, "targets": len(targets)}


def _target(
    period: str,
    month: tuple[int, int],
    amount: Decimal,
    metric: str = "contract",
    user_id: int | None = None,
    department_id: int | None = None,
) -> dict[str, Any]:
    assert period in PERIOD_MONTHS
    return {
        "user_id": user_id,
        "department_id": department_id,
        "period": period,
        "period_start": dt.date(month[0], month[1], 1),
        "metric": metric,
        "amount": amount,
    }


REASONS = [
    "价格低于底价, 请重新报价",
    "付款条件需调整为预付 30%",
    "请补充交货期和验收标准",
    "客户信用额度不足",
]


def demo_decide(session: Session, rng: random.Random, leave_waiting: float = 0.2) -> dict[str, int]:
    """Approvers act on the waiting requests, one step each time it is called: mostly approve,
    sometimes reject or send back; `leave_waiting` of them stay for the workbench. Commits."""
    counts = {"approve": 0, "reject": 0, "return": 0, "waiting": 0}
    rows = session.execute(
        select(ApprovalRequest.id, ApprovalDecision.approver_id)
        .join(ApprovalDecision, ApprovalDecision.request_id == ApprovalRequest.id)
        .where(
            ApprovalRequest.status == "pending",
            ApprovalDecision.decision == "waiting",
            ApprovalDecision.step == ApprovalRequest.current_step,
        )
        .order_by(ApprovalRequest.id, ApprovalDecision.id)
    ).all()
    first_approver: dict[int, int] = {}
    for request_id, approver_id in rows:
        first_approver.setdefault(request_id, approver_id)
    for request_id, approver_id in first_approver.items():
        roll = rng.random()
        if roll < leave_waiting:
            counts["waiting"] += 1
            continue
        action = "approve" if roll < 0.8 else rng.choice(["reject", "return"])
        comment = None if action == "approve" else rng.choice(REASONS)
        decide(session, request_id, session.get(CrmUser, approver_id), action, comment)
        counts[action] += 1
    return counts


#: where a document's own day is kept: a request is submitted on it
DOCUMENT_DAYS: dict[str, tuple[type, str]] = {
    "order": (Order, "ordered_on"),
    "payment": (Payment, "received_on"),
    "invoice": (Invoice, "issued_on"),
}


def backdate_approvals(session: Session, rng: random.Random) -> None:
    """The demo's approvals happened when their documents were made, not when the demo was
    loaded: each request is submitted on its document's day (a request still waiting, within
    the last week), decided within a day or two, and an approved document approved at that
    moment (targets count actuals by approval time). Commits."""
    now = utcnow()
    requests = session.scalars(select(ApprovalRequest).options(selectinload(ApprovalRequest.decisions)))
    for request in requests:
        model, column = DOCUMENT_DAYS.get(request.document, (None, ""))
        document = session.get(model, request.document_id) if model is not None else None
        if document is None:
            continue
        day = getattr(document, column) or request.submitted_at.date()
        if request.status == "pending":
            day = max(day, (now - dt.timedelta(days=rng.randint(0, 6))).date())
        moment = min(dt.datetime.combine(day, dt.time(rng.randint(1, 3), rng.randint(0, 59))), now)
        request.submitted_at = moment  # (09:00-11:59 in Beijing, stored in UTC)
        for decision in request.decisions:
            if decision.decided_at is not None:
                later = rng.choice([1, 2, 3, 4, 5, 23, 24, 25])  # the same day or the next, in office hours
                moment = min(moment + dt.timedelta(hours=later), now)
                decision.decided_at = moment
        if request.closed_at is not None:
            request.closed_at = moment
            if request.status == "approved" and getattr(document, "approved_at", None) is not None:
                document.approved_at = moment
    session.commit()
