"""What bench.run and bench.custom share: the probe, the operation, and the raw list statements.

Kept apart from bench/run.py so that other modules can import them while run.py is `__main__`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import ColumnElement, Engine, Select, event, func, select
from sqlalchemy.orm import Session, aliased

from models.customers import (
    Customer,
    CustomerGroup,
    Industry,
    Region,
    Tag,
    customer_group_member,
    customer_tag,
)
from models.security import CrmUser, Department

PAGE_SIZE = 20
PASSWORD = "Bench-Passw0rd!"
#: the target of the customer screens (issue 3); a phase may set its own (the sales phase: 150)
DEFAULT_TARGET_MS = 100


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


def customer_record_statements(scope: ColumnElement[bool], customer_id: int) -> list[Select[Any]]:
    """One customer with every many-to-one name its page shows, its tags and its groups."""
    province, city, district = aliased(Region), aliased(Region), aliased(Region)
    owner, created_by, updated_by = aliased(CrmUser), aliased(CrmUser), aliased(CrmUser)
    record = (
        select(
            *Customer.__table__.columns,
            Industry.name,
            province.name,
            city.name,
            district.name,
            owner.username,
            Department.name,
            created_by.username,
            updated_by.username,
        )
        .outerjoin(Industry, Industry.id == Customer.industry_id)
        .outerjoin(province, province.code == Customer.province_code)
        .outerjoin(city, city.code == Customer.city_code)
        .outerjoin(district, district.code == Customer.district_code)
        .outerjoin(owner, owner.id == Customer.owner_id)
        .outerjoin(Department, Department.id == Customer.department_id)
        .outerjoin(created_by, created_by.id == Customer.created_by_id)
        .outerjoin(updated_by, updated_by.id == Customer.updated_by_id)
        .where(Customer.id == customer_id, scope)
    )
    tags = (
        select(Tag.id, Tag.name)
        .join(customer_tag, customer_tag.c.tag_id == Tag.id)
        .where(customer_tag.c.customer_id == customer_id)
    )
    groups = (
        select(CustomerGroup.id, CustomerGroup.name)
        .join(customer_group_member, customer_group_member.c.group_id == CustomerGroup.id)
        .where(customer_group_member.c.customer_id == customer_id)
    )
    return [record, tags, groups]


# --- timing ------------------------------------------------------------------------------------
class BenchError(Exception):
    """An operation that could not be timed (a non-200 answer or an exception)."""


class QueryLog:
    """Counts (and optionally keeps) every statement sent to the database."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        self.keep = False
        self.statements: list[str] = []
        event.listen(engine, "before_cursor_execute", self._on_execute)

    def _on_execute(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.count += 1
        if self.keep:
            self.statements.append(" ".join(statement.split()))

    def reset(self, keep: bool = False) -> None:
        self.count, self.keep, self.statements = 0, keep, []


@dataclass
class Result:
    operation: str
    db: str
    n: int
    median_ms: float
    p95_ms: float
    raw_sql_ms: float
    target_ms: int
    queries: int
    raw_queries: int
    overhead_ratio: float
    raw_p95_ms: float
    error: str | None = None

    def line(self) -> str:
        if self.error:
            return f"{self.operation:<48}{self.db:<12}{'ERROR':<36}{self.target_ms}  {self.error}"
        return (
            f"{self.operation:<48}{self.db:<12}{self.n:<5}{self.median_ms:<11.1f}"
            f"{self.p95_ms:<8.1f}{self.raw_sql_ms:<12.1f}{self.target_ms}"
        )


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def make_result(
    name: str,
    db_name: str,
    times: list[float],
    count: int,
    raw_times: list[float],
    raw_count: int,
    target_ms: int = DEFAULT_TARGET_MS,
) -> Result:
    median, raw_median = statistics.median(times), statistics.median(raw_times)
    return Result(
        operation=name,
        db=db_name,
        n=len(times),
        median_ms=round(median, 2),
        p95_ms=round(p95(times), 2),
        raw_sql_ms=round(raw_median, 2),
        target_ms=target_ms,
        queries=count,
        raw_queries=raw_count,
        overhead_ratio=round(median / raw_median, 1) if raw_median > 0 else math.inf,
        raw_p95_ms=round(p95(raw_times), 2),
    )


def failed_result(name: str, db_name: str, exc: Exception, target_ms: int = DEFAULT_TARGET_MS) -> Result:
    """An operation that could not be timed, with the reason (the other operations still run)."""
    message = str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
    nan = math.nan
    return Result(name, db_name, 0, nan, nan, nan, target_ms, 0, 0, nan, nan, message)


def login(app: Flask, username: str) -> tuple[FlaskClient, FlaskClient, dict[str, str]]:
    """A browser-like client logged in through /login/, and a client with a JWT for the API."""
    web = app.test_client()
    response = web.post("/login/", data={"username": username, "password": PASSWORD})
    if response.status_code != 302:
        raise SystemExit(f"login of {username} failed: {response.status_code}")
    api = app.test_client()
    response = api.post(
        "/api/v1/security/login", json={"username": username, "password": PASSWORD, "provider": "db"}
    )
    if response.status_code != 200 or not response.json:
        raise SystemExit(f"API login of {username} failed: {response.status_code}")
    return web, api, {"Authorization": f"Bearer {response.json['access_token']}"}


__all__ = [
    "DEFAULT_TARGET_MS",
    "PAGE_SIZE",
    "PASSWORD",
    "BenchError",
    "Operation",
    "Probe",
    "QueryLog",
    "RawContext",
    "Result",
    "capped_count_statement",
    "customer_record_statements",
    "customer_rows_statement",
    "failed_result",
    "login",
    "make_result",
    "p95",
]
