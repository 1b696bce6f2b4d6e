"""Helpers of the service desk tests: support teams of their own, customers, tickets, and the
clean-up that keeps assignment rules and tickets from leaking into other tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, func, select

from app.customers import customer_service
from app.extensions import db
from app.service import create_ticket
from models.customers import Customer
from models.security import CrmUser, Department
from models.service import AssignmentRule, Ticket, TicketCategory
from tests.conftest import unique_mobile, unique_name
from tests.login_support import new_user

DONGYING, HEKOU, KENLI, LIJIN, GUANGRAO = 370502, 370503, 370505, 370522, 370523
DONGYING_CITY = 370500


def root_department() -> Department:
    return db.session.scalar(select(Department).where(Department.parent_id.is_(None)).order_by(Department.id))


def support_team(app: Flask, size: int, role: str = "Support Agent") -> tuple[Department, list[CrmUser]]:
    """A department of its own (under the root) with `size` users of the role, ordered by id."""
    team = Department(name=unique_name("客服组"), parent_id=root_department().id)
    db.session.add(team)
    db.session.commit()
    members = []
    for _ in range(size):
        member = new_user(app, role)
        member.department_id = team.id
        members.append(member)
    db.session.commit()
    return team, sorted(members, key=lambda m: m.id)


def category(name: str | None = None) -> TicketCategory:
    item = db.session.scalar(select(TicketCategory).where(TicketCategory.name == name)) if name else None
    if item is None:
        item = TicketCategory(name=name or unique_name("分类"), position=500, active=True)
        db.session.add(item)
        db.session.commit()
    return item


def customer(owner: CrmUser, **values: Any) -> Customer:
    item = Customer(name=unique_name("服务客户"), mobile=values.pop("mobile", unique_mobile()), **values)
    customer_service.save(db.session, item, owner)
    return item


def rule(**values: Any) -> AssignmentRule:
    item = AssignmentRule(name=unique_name("规则"), **values)
    db.session.add(item)
    db.session.commit()
    return item


def ticket(actor: CrmUser | None = None, **values: Any) -> Ticket:
    """A ticket opened through app.service.create_ticket, committed."""
    values.setdefault("subject", "配送延迟,货物未到")
    values.setdefault("description", "订单已付款三天,仍未收到货。")
    values.setdefault("channel", "staff")
    item = create_ticket(db.session, actor=actor, **values)
    db.session.commit()
    return item


@pytest.fixture(autouse=True)
def service_cleanup() -> Iterator[None]:
    """Rules and tickets made by a test go afterwards (the first matching rule wins: a rule left
    behind would assign the next test's tickets)."""
    db.session.rollback()
    first = db.session.scalar(select(func.max(Ticket.id))) or 0
    yield
    db.session.rollback()
    db.session.execute(delete(Ticket).where(Ticket.id > first))
    db.session.execute(delete(AssignmentRule))
    db.session.commit()
