"""The customers dashboard's own rollups (issue 9): what app/analytics/rollups.py does not keep.

The shared rollup (`crm_rollup`, app/analytics/rollups.py) serves the charts over a period (new
customers by month, orders and revenue by industry or frequency class, order lines by category).
What it cannot serve, or not fast enough, is kept here:

- `crm_rollup_customer_dim`: customers as they are now, by one dimension (industry, level, city,
  district, purchase-frequency class, RFM segment) x owner x department x custom_key. Summing the
  shared `customer` fact over every creation month would read months x owners x values rows; this
  table has no month. The RFM segment needs each buying customer's quintile scores among all
  buying customers, which is no sum of monthly rows at all.
- `crm_rollup_customer_company`: the shared rollup's customer, order_by and line facts summed over
  every owner (CompanyRollup), and the company rows of the first table: what a user who sees
  everything reads when filtering by no owner or department (company_view).
- `crm_rollup_potential_customer`: the "potential customers" (trends.py) with what they share
  with the best customers of their industry; bounded by the rule that selects them.

`custom_key` is the shared rollup's key of the customer's indexed select custom fields and its
locality ("|api=code|...|locality=local|", rollups.custom_key_sql), so a filter or dimension by
such a field means the same here as on every other chart. Data scope is applied when reading, on
the owner and department columns, through app.access.owner_clause (scope_rows).

Freshness: the worker's `rollups` job (every 10 minutes; rollups.refresh_rollups calls
refresh_customer_rollups) rebuilds the company sums from crm_rollup on every run, so they are as
fresh as crm_rollup; the customer dimensions, RFM and the potential customers are rebuilt whole
when an hour old (REFRESH_EVERY) or when the shared rollups are rebuilt in full: at most one hour
behind the records. The grouping runs in the
database; only grouped rows (tens of thousands at the standard scale) pass through Python, so the
write transaction that replaces them is short.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    Numeric,
    Select,
    SmallInteger,
    String,
    and_,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.access import owner_clause, user_scope
from app.analytics import rollups
from models.analytics import Rollup
from models.base import Choices, Model
from models.customers import Customer, CustomerGroup, customer_group_member
from models.orders import LIVE_ORDER, Order
from models.security import CrmUser

MONEY = Numeric(16, 2)

#: RFM segments over the last 12 months: R, F and M each high (quintile score above the mean
#: score 3, i.e. 4 or 5) or low
RFM_SEGMENTS = Choices(
    ("vip", "重要价值客户"),  # R high F high M high
    ("develop", "重要发展客户"),  # R high F low M high
    ("keep", "重要保持客户"),  # R low F high M high
    ("retain", "重要挽留客户"),  # R low F low M high
    ("general_value", "一般价值客户"),  # R high F high M low
    ("general_develop", "一般发展客户"),  # R high F low M low
    ("general_keep", "一般保持客户"),  # R low F high M low
    ("general_retain", "一般挽留客户"),  # R low F low M low
    ("none", "近 12 个月未购买"),  # no live order in the 12 months
)
#: how often the customers' own rollups are rebuilt (the worker's run every 10 minutes checks)
REFRESH_EVERY = dt.timedelta(hours=1)
#: the best customers: top decile of revenue over the last 12 months (cume_dist above this)
BEST_DECILE = 0.9
#: a potential customer bought less than this share of its best peers' average
POTENTIAL_SHARE = Decimal("0.2")
#: ... and shares at least this many of the three traits (size, level, city) with them
POTENTIAL_MIN_TRAITS = 2
#: the static customer group (客户分组) that holds the potential customers: the segment to act on
POTENTIAL_GROUP = "潜力客户（系统）"
POTENTIAL_GROUP_NOTE = "由客户看板每 10 分钟更新：与同行业最佳客户相似但近 12 个月采购很少的客户"


class CustomerDimRollup(Model):
    """Customers now, per dimension value, owner, department and custom-field choice."""

    __tablename__ = "crm_rollup_customer_dim"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dim: Mapped[str] = mapped_column(String(12), nullable=False)
    value: Mapped[str] = mapped_column(String(40), nullable=False, default="")
    owner_id: Mapped[int | None] = mapped_column(Integer)
    department_id: Mapped[int | None] = mapped_column(Integer)
    #: the customer's indexed select custom fields, as crm_rollup.custom_key
    custom_key: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    customers: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: a row summed over every owner and department (owner and department empty), read by users
    #: who see everything and filter by neither: an admin reads a few rows, not one per owner
    company: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    #: when the table was rebuilt (the same on every row)
    refreshed_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)

    __table_args__ = (
        Index("ix_rollup_customer_dim_owner", "dim", "company", "owner_id"),
        Index("ix_rollup_customer_dim_department", "dim", "company", "department_id"),
    )


class CompanyRollup(Model):
    """The shared rollup's period facts the customers dashboard reads (customer, order_by, line),
    summed over every owner and department: for users who see everything and filter by neither.
    crm_rollup keeps a row per owner, month, custom key and value (at the standard scale about a
    million order_by rows a year); an admin's chart reads this table's few thousand instead.
    Order lines are summed over products (dim1 empty): the dashboard reads categories."""

    __tablename__ = "crm_rollup_customer_company"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fact: Mapped[str] = mapped_column(String(12), nullable=False)
    period: Mapped[dt.date] = mapped_column(Date, nullable=False)
    custom_key: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    dim1: Mapped[str | None] = mapped_column(String(100))
    dim2: Mapped[str | None] = mapped_column(String(100))
    n: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2), nullable=False, default=Decimal("0"))

    __table_args__ = (Index("ix_rollup_customer_company_fact", "fact", "dim1", "period"),)


class PotentialCustomer(Model):
    """A customer like the best of its industry that has bought little (see trends.py)."""

    __tablename__ = "crm_rollup_potential_customer"

    customer_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    owner_id: Mapped[int | None] = mapped_column(Integer, index=True)
    department_id: Mapped[int | None] = mapped_column(Integer, index=True)
    industry_id: Mapped[int] = mapped_column(Integer, nullable=False)
    #: the customer's live orders over the last 12 months, and its best peers' average
    amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False, default=Decimal("0"))
    peer_average: Mapped[Decimal] = mapped_column(MONEY, nullable=False)
    peers: Mapped[int] = mapped_column(Integer, nullable=False)
    same_size: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    same_level: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    same_city: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    #: traits shared (2 or 3), then the gap to the peers' average: the list's order
    score: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    gap: Mapped[Decimal] = mapped_column(MONEY, nullable=False)
    computed_on: Mapped[dt.date] = mapped_column(Date, nullable=False)

    __table_args__ = (Index("ix_rollup_potential_order", "score", "gap"),)


#: dimensions of CustomerDimRollup: name -> the customer column it groups by
def _dim_columns() -> dict[str, ColumnElement[Any]]:
    return {
        "industry": Customer.industry_id,
        "level": Customer.level,
        "city": Customer.city_code,
        "district": Customer.district_code,
        "frequency": Customer.purchase_frequency,
    }


def as_text(column: Any) -> ColumnElement[str]:
    """A dimension value as the text stored in `value` ('' for none)."""
    return func.coalesce(cast(column, String(40)), literal_column("''"))  # one GROUP BY expression


# --- refresh --------------------------------------------------------------------------------------
def _score(distribution: ColumnElement[float]) -> ColumnElement[int]:
    """A quintile score 1-5 from cume_dist (ties share a score, unlike NTILE)."""
    return case(
        (distribution <= literal(0.2, Float), 1),
        (distribution <= literal(0.4, Float), 2),
        (distribution <= literal(0.6, Float), 3),
        (distribution <= literal(0.8, Float), 4),
        else_=5,
    )


def live_order_totals(today: dt.date) -> Any:
    """Each customer's last live order date, live orders and their total over the 12 months up to
    `today` (one GROUP BY; the customers with none are not in it)."""
    return (
        select(
            Order.customer_id.label("customer_id"),
            func.max(Order.ordered_on).label("last_order"),
            func.count(Order.id).label("orders"),
            func.sum(Order.total_amount).label("revenue"),
        )
        .where(Order.status.in_(LIVE_ORDER), *within_year(today))
        .group_by(Order.customer_id)
        .subquery()
    )


def within_year(today: dt.date) -> list[ColumnElement[bool]]:
    """Orders of the 12 months up to `today` (the window of RFM and of the best customers)."""
    return [Order.ordered_on > today - dt.timedelta(days=365), Order.ordered_on <= today]


def rfm_subquery(key: ColumnElement[str], today: dt.date) -> Any:
    """Each buying customer's R, F and M scores (quintiles over all buying customers, company-wide:
    a rep's 重要价值客户 are valuable by the company's measure), its segment, owner, department and
    custom key. The customers are joined inside, driven by the buyers (a join of all customers to
    this windowed subquery made SQLite rescan it per customer)."""
    agg = live_order_totals(today)
    scored = (
        select(
            agg.c.customer_id,
            Customer.owner_id,
            Customer.department_id,
            key.label("custom_key"),
            _score(func.cume_dist().over(order_by=agg.c.last_order)).label("r"),
            _score(func.cume_dist().over(order_by=agg.c.orders)).label("f"),
            _score(func.cume_dist().over(order_by=agg.c.revenue)).label("m"),
        )
        .select_from(agg)
        .join(Customer, Customer.id == agg.c.customer_id)
        .subquery()
    )
    r_high, f_high, m_high = scored.c.r > 3, scored.c.f > 3, scored.c.m > 3
    segment = case(
        (and_(r_high, f_high, m_high), "vip"),
        (and_(r_high, m_high), "develop"),
        (and_(f_high, m_high), "keep"),
        (m_high, "retain"),
        (and_(r_high, f_high), "general_value"),
        (r_high, "general_develop"),
        (f_high, "general_keep"),
        else_="general_retain",
    )
    return select(
        scored.c.customer_id,
        scored.c.owner_id,
        scored.c.department_id,
        scored.c.custom_key,
        scored.c.r,
        scored.c.f,
        scored.c.m,
        segment.label("segment"),
    ).subquery()


def not_among(session: Session, column: Any, ids: Select) -> ColumnElement[bool]:
    """`column NOT IN (ids)`, as NOT EXISTS on PostgreSQL. There NOT IN runs the subquery row by
    row once its ids outgrow work_mem (1,000,000 customers against 860,000 buyers: it never
    finished), while NOT EXISTS is a hashed anti-join. SQLite and MariaDB build the NOT IN set
    once; SQLite would rescan a windowed subquery for each row of an EXISTS or a join (170 s
    instead of 1.5 s at 100,000 customers)."""
    if session.get_bind().dialect.name != "postgresql":
        return column.not_in(ids)
    found = ids.subquery()
    (value,) = found.c
    return ~exists().where(value == column)


def _dim_rows(session: Session, today: dt.date) -> list[dict[str, Any]]:
    """Customers now per dimension value, owner, department and custom key: one GROUP BY each."""
    fields = rollups.keyed_fields(session)
    key = rollups.custom_key_sql(fields)
    keyed = [key]  # never a constant (locality is always in it): PostgreSQL would refuse one here
    queries = []
    for column in _dim_columns().values():
        grouped = [as_text(column), Customer.owner_id, Customer.department_id]
        queries.append(select(*grouped, key, func.count()).group_by(*grouped, *keyed))
    rfm = rfm_subquery(key, today)
    grouped = [rfm.c.segment, rfm.c.owner_id, rfm.c.department_id, rfm.c.custom_key]
    queries.append(select(*grouped, func.count()).group_by(*grouped))
    buyers = select(Order.customer_id).where(Order.status.in_(LIVE_ORDER), *within_year(today))
    grouped = [Customer.owner_id, Customer.department_id]
    queries.append(
        select(literal_column("'none'"), *grouped, key, func.count())
        .where(not_among(session, Customer.id, buyers))
        .group_by(*grouped, *keyed)
    )
    rows: list[dict[str, Any]] = []
    company: dict[tuple[str, str, str], int] = defaultdict(int)
    for dim, query in zip([*_dim_columns(), "segment", "segment"], queries, strict=True):
        for found, owner_id, department_id, custom_key, count in session.execute(query):
            rows.append(
                {
                    "dim": dim,
                    "value": found,
                    "owner_id": owner_id,
                    "department_id": department_id,
                    "custom_key": custom_key or "",
                    "customers": count,
                    "company": False,
                }
            )
            company[dim, found, custom_key or ""] += count
    for (dim, found, custom_key), count in company.items():
        rows.append(
            {
                "dim": dim,
                "value": found,
                "owner_id": None,
                "department_id": None,
                "custom_key": custom_key,
                "customers": count,
                "company": True,
            }
        )
    return rows


def refresh_company_sums(session: Session) -> int:
    """Rebuild CompanyRollup from crm_rollup (a GROUP BY over the shared rollup, not the records:
    cheap enough for every 10-minute run, so it is as fresh as crm_rollup). Returns its rows."""
    connection = session.connection()
    connection.execute(delete(CompanyRollup))
    columns = ["fact", "period", "custom_key", "dim1", "dim2", "n", "amount"]
    facts = select(
        Rollup.fact,
        Rollup.period,
        Rollup.custom_key,
        Rollup.dim1,
        Rollup.dim2,
        func.sum(Rollup.n),
        func.sum(Rollup.amount),
    ).where(Rollup.fact.in_(["customer", "order_by"]))
    grouped = [Rollup.fact, Rollup.period, Rollup.custom_key, Rollup.dim1, Rollup.dim2]
    connection.execute(insert(CompanyRollup).from_select(columns, facts.group_by(*grouped)))
    lines = select(
        Rollup.fact,
        Rollup.period,
        Rollup.custom_key,
        literal_column("NULL"),
        Rollup.dim2,
        func.sum(Rollup.n),
        func.sum(Rollup.amount),
    ).where(Rollup.fact == "line")
    grouped = [Rollup.fact, Rollup.period, Rollup.custom_key, Rollup.dim2]
    connection.execute(insert(CompanyRollup).from_select(columns, lines.group_by(*grouped)))
    return session.scalar(select(func.count()).select_from(CompanyRollup)) or 0


def _replace(session: Session, model: type, rows: list[dict[str, Any]]) -> None:
    """Replace a table's rows through the connection: derived data, not audited (as rollups.py)."""
    connection, table = session.connection(), model.__table__
    connection.execute(table.delete())
    for start in range(0, len(rows), 5000):
        connection.execute(table.insert(), rows[start : start + 5000])


def refresh_potential_customers(session: Session, today: dt.date) -> int:
    """Rebuild the potential customers and the group that holds them; returns how many.

    The best customers are the top decile of live-order revenue over the last 12 months; per
    industry, their average and their most common size, level and city form the profile. A
    customer of that industry outside the best, with less than POTENTIAL_SHARE of the average and
    at least POTENTIAL_MIN_TRAITS of the three traits in common, is a potential customer.
    """
    revenue = (
        select(Order.customer_id.label("customer_id"), func.sum(Order.total_amount).label("amount"))
        .where(Order.status.in_(LIVE_ORDER), *within_year(today))
        .group_by(Order.customer_id)
        .subquery()
    )
    ranked = select(
        revenue.c.customer_id, revenue.c.amount, func.cume_dist().over(order_by=revenue.c.amount).label("cd")
    ).subquery()
    best = (
        select(ranked.c.customer_id, ranked.c.amount)
        .where(ranked.c.cd > literal(BEST_DECILE, Float), ranked.c.amount > 0)
        .subquery()
    )
    traits = session.execute(
        select(Customer.industry_id, Customer.size, Customer.level, Customer.city_code, best.c.amount)
        .select_from(best)  # driven by the best (a join the other way rescans the window per customer)
        .join(Customer, Customer.id == best.c.customer_id)
        .where(Customer.industry_id.is_not(None))
    ).all()  # the best decile's rows: bounded by a tenth of the buying customers, five columns
    per_industry: dict[int, list[Any]] = defaultdict(list)
    for row in traits:
        per_industry[row.industry_id].append(row)
    profiles: dict[int, dict[str, Any]] = {}
    for industry_id, members in per_industry.items():

        def mode(values: list[Any]) -> Any:
            counted = Counter(v for v in values if v is not None).most_common()
            # a tie for the most common value has no typical value: that trait cannot match
            if not counted or (len(counted) > 1 and counted[0][1] == counted[1][1]):
                return None
            return counted[0][0]

        total = sum((Decimal(m.amount) for m in members), Decimal("0"))
        profiles[industry_id] = {
            "peers": len(members),
            "average": (total / len(members)).quantize(Decimal("0.01")),
            "size": mode([m.size for m in members]),
            "level": mode([m.level for m in members]),
            "city": mode([m.city_code for m in members]),
        }
    session.connection().execute(delete(PotentialCustomer))
    group_id = _potential_group(session)
    session.connection().execute(
        delete(customer_group_member).where(customer_group_member.c.group_id == group_id)
    )
    if not profiles:
        return 0

    def by_industry(key: str, default: Any = None) -> Any:
        return case({i: p[key] for i, p in profiles.items()}, value=Customer.industry_id, else_=default)

    def same(key: str, column: Any) -> ColumnElement[bool]:
        wanted = {i: p[key] for i, p in profiles.items() if p[key] is not None}
        if not wanted:
            return literal(False)
        return func.coalesce(column == case(wanted, value=Customer.industry_id, else_=None), False)

    same_size, same_level, same_city = (
        same("size", Customer.size),
        same("level", Customer.level),
        same("city", Customer.city_code),
    )
    score = sum((case((flag, 1), else_=0) for flag in (same_size, same_level, same_city)), literal(0))
    # the customer's own amount through ix_order_customer (customer_id, ordered_on), per candidate
    own = (
        select(func.sum(Order.total_amount))
        .where(
            Order.customer_id == Customer.id,
            Order.status.in_(LIVE_ORDER),
            *within_year(today),
        )
        .correlate(Customer)
        .scalar_subquery()
    )
    amount = func.coalesce(own, 0)
    average = by_industry("average")
    best_ids = select(best.c.customer_id)
    candidates = select(
        Customer.id,
        Customer.owner_id,
        Customer.department_id,
        Customer.industry_id,
        amount,
        average,
        by_industry("peers"),
        same_size,
        same_level,
        same_city,
        score,
        average - amount,
        literal(today, Date),
    ).where(
        Customer.industry_id.in_(sorted(profiles)),
        not_among(session, Customer.id, best_ids),
        amount < average * POTENTIAL_SHARE,
        score >= POTENTIAL_MIN_TRAITS,
    )
    columns = [
        "customer_id", "owner_id", "department_id", "industry_id", "amount", "peer_average", "peers",
        "same_size", "same_level", "same_city", "score", "gap", "computed_on",
    ]  # fmt: skip
    session.connection().execute(insert(PotentialCustomer).from_select(columns, candidates))
    session.connection().execute(
        insert(customer_group_member).from_select(
            ["customer_id", "group_id"], select(PotentialCustomer.customer_id, literal(group_id))
        )
    )
    return session.scalar(select(func.count()).select_from(PotentialCustomer)) or 0


def _potential_group(session: Session) -> int:
    group_id = session.scalar(select(CustomerGroup.id).where(CustomerGroup.name == POTENTIAL_GROUP))
    if group_id is None:
        group = CustomerGroup(name=POTENTIAL_GROUP, description=POTENTIAL_GROUP_NOTE)
        session.add(group)
        session.flush()
        group_id = group.id
    return group_id


def potential_group_id(session: Session) -> int | None:
    """The id of the potential customers' group (None until the first refresh)."""
    return session.scalar(select(CustomerGroup.id).where(CustomerGroup.name == POTENTIAL_GROUP))


def refresh_customer_rollups(session: Session, now: dt.datetime, force: bool = False) -> dict[str, int]:
    """Bring the customers dashboard's rollups up to date and commit (rollups.refresh_rollups
    calls it after its own run). The company sums follow crm_rollup on every run; the customer
    dimensions and the potential customers are rebuilt when forced (a full rollup rebuild) or when
    REFRESH_EVERY old: at the standard scale they read every customer and order (about a minute
    on SQLite), too much for every 10-minute run. Returns rows written."""
    report = {"customer_company*": refresh_company_sums(session)}
    last = session.scalar(select(CustomerDimRollup.refreshed_at).limit(1))
    if force or last is None or not dt.timedelta(0) <= now - last < REFRESH_EVERY:
        dim_rows = [{**row, "refreshed_at": now} for row in _dim_rows(session, now.date())]
        _replace(session, CustomerDimRollup, dim_rows)
        report["customer_dim*"] = len(dim_rows)
        report["potential_customer*"] = refresh_potential_customers(session, now.date())
    session.commit()
    return report


# --- reading --------------------------------------------------------------------------------------
def scope_rows(session: Session, user: CrmUser, model: type, entity: str) -> ColumnElement[bool]:
    """The user's data scope on a rollup's owner and department columns, by the rule of the
    `entity` ("customer", "order": app.access.owner_clause, given the rollup's columns under that
    entity's table name)."""
    proxy = type(
        f"{model.__name__}_{entity}",
        (),
        {"__tablename__": f"crm_{entity}", "owner_id": model.owner_id, "department_id": model.department_id},
    )
    return owner_clause(session, proxy, user)


def company_view(session: Session, user: CrmUser, entity: str, owner_id: Any, department_id: Any) -> bool:
    """Whether the company rows answer: the user sees every row of `entity` (data scope "all")
    and filters by no owner or department."""
    return not owner_id and not department_id and user_scope(session, user, entity) == "all"
