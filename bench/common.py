"""What bench.run and bench.custom share: the probe, the operation, and the raw list statements.

Kept apart from bench/run.py so that other modules can import them while run.py is `__main__`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session, aliased

from models.customers import Customer, Region
from models.security import CrmUser

PAGE_SIZE = 20


@dataclass(frozen=True)
class Probe:
    """The records one repetition targets, all visible to the actor."""

    customer_id: int
    name_fragment: str  # >= 3 characters from the middle of a visible customer's name
    mobile_prefix: str  # the first 7 digits of a visible customer's mobile
    word: str  # a 2-character word
    owner_id: int  # a user whose customers the actor may see


@dataclass(frozen=True)
class RawContext:
    customer_scope: ColumnElement[bool]
    contact_scope: ColumnElement[bool]
    count_cap: int
    user: CrmUser


@dataclass(frozen=True)
class Operation:
    name: str
    url: Callable[[Probe], str]
    raw: Callable[[Session, RawContext, Probe], None]
    api: bool = False


def capped_count_statement(ctx: RawContext, model: Any, *conditions: Any) -> Select[Any]:
    """The list's count: at most count_cap + 1 primary keys (as CrmInterface.query_count)."""
    scope = ctx.customer_scope if model is Customer else ctx.contact_scope
    inner = select(model.id).where(scope, *conditions).limit(ctx.count_cap + 1).subquery()
    return select(func.count()).select_from(inner)


def customer_rows_statement(
    ctx: RawContext, *conditions: Any, order_by: Any = None, district: bool = False
) -> Select[Any]:
    """The 20 rows of a customer list (with city, owner and optionally district names)."""
    city, dist = aliased(Region), aliased(Region)
    columns = [
        Customer.id,
        Customer.name,
        Customer.kind,
        Customer.level,
        Customer.status,
        Customer.mobile,
        Customer.phone,
        Customer.email,
        Customer.updated_at,
        city.name,
        CrmUser.id,
        CrmUser.username,
    ]
    stmt = (
        select(*columns, *([dist.name] if district else []))
        .outerjoin(city, city.code == Customer.city_code)
        .outerjoin(CrmUser, CrmUser.id == Customer.owner_id)
    )
    if district:
        stmt = stmt.outerjoin(dist, dist.code == Customer.district_code)
    stmt = stmt.where(ctx.customer_scope, *conditions)
    if order_by is not None:
        stmt = stmt.order_by(*order_by)
    return stmt.limit(PAGE_SIZE)


__all__ = [
    "PAGE_SIZE",
    "Operation",
    "Probe",
    "RawContext",
    "capped_count_statement",
    "customer_rows_statement",
]
