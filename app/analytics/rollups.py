"""The dashboards' rollups (汇总表): sums and counts by month, kept fresh by the worker.

Why: at 1M customers and 2M orders one live GROUP BY over the raw tables takes 0.3 to 4.6 s
(ARCHITECTURE.md section 6), so a whole dashboard cannot be answered live in 500 ms. The
dashboards read one small table instead, `crm_rollup` (models/analytics.py: Rollup), one row per

    fact, period, owner_id, department_id, custom_key, dim1, dim2, dim3  ->  n, amount, amount2

Measures are additive only (sums and counts), so any roll-up of rows is exact: sum the rows of the
months, owners, departments and dimension values wanted. Distinct counts (customers who bought)
are not additive and are not here.

Dimensions common to every fact:
- `period`: the first day of the month, in the company's time zone (BABEL_DEFAULT_TIMEZONE) for
  date-time columns; the Monday of the week for `pool`.
- `owner_id`, `department_id`: the record's owner and the department copied on it (the columns
  the data scope reads: a dashboard applies `app.access.owner_clause` of the source entity to
  these two columns, see `scope_clause()` below).
- `custom_key`: the customer's indexed select custom fields, "|api=code|api2=|" sorted by API
  name, then its locality (本地/外地: "|locality=local|", LOCALITY); filter with
  `custom_condition()`, split with `custom_value()`. Only select fields of customers marked
  indexed are keyed (`dashboard_field`, a bounded number of choices each): a filter or dimension
  on another field is refused (ValidationFailed), mark the field indexed to use it. Locality
  multiplies each fact's rows by its values present (local, remote, empty: at most 3).

Facts (dim1 / dim2 / dim3; n; amount; amount2):
- `order`: live orders (approved, executing, completed) by order month (ordered_on);
  - / - / -; orders; total_amount; paid_amount.
- `order_by`: the same orders by one customer dimension at a time;
  dim1 = industry | level | frequency | source, dim2 = its value (industry id, choice code;
  NULL when empty); orders; total; paid.
  For one dimension, filter dim1 (never sum across dim1: each order is counted once per dim1).
- `line`: the lines of those orders; dim1 = product id, dim2 = product category; lines;
  line amount; quantity.
- `customer`: customers by creation month (created_at); dim1 = all | industry | city |
  district | level | frequency | source | status | locality, dim2 = its value; customers; -; -.
  Pooled customers have no owner (only an "all" data scope sees them).
- `opportunity`: opportunities by expected close month while open, by closing month once won or
  lost (creation month when the date is missing); dim1 = pipeline id, dim2 = stage id,
  dim3 = "open", or "won:<reason>" / "lost:<reason>"; opportunities; amount; weighted amount
  (amount x effective probability / 100: the opportunity's own, else its stage's).
- `stage`: stage changes (StageChange) by the month of the change; dim1 = pipeline id of the
  opportunity, dim2 = the stage entered, dim3 = the stage left (NULL: created); changes; days
  spent in the stage left (since the previous change); changes that had a previous change.
  Funnel: entries per stage = n by dim2; velocity: days per stage = sum(amount) / sum(amount2)
  by dim3.
- `plan`: payment plans (回款计划) of live orders by planned month; dim1 = plan status; plans;
  planned amount; collected amount. Overdue = planned - collected of status "overdue".
- `payment`: approved collections (回款) not of voided orders, by received month; -; payments;
  amount; -.
- `followup`: follow-ups (跟进记录) by month; owner = who followed up, department = that
  user's department; -; follow-ups; -; -.
- `pool`: customer pool moves by week; owner = who got the customer (claim, assign) or lost it
  (recycle, release), department = that user's; dim1 = action, dim2 = pool id, dim3 = the recycle
  reason (the rule); moves; -; -.

Department-grain copies (DEPARTMENT_FACTS: "d_order", "d_line", ...): each fact summed over the
owners of a department (owner_id NULL), rebuilt with the fact. Users whose data scope is "all"
and who filter by no owner read those (`rows_of`): a tenth of the rows at 200 owners in 20
departments. Readers must name the fact they sum: never sum a fact with its copy.

Freshness (the bound the dashboards state): `refresh_rollups` runs every 10 minutes (worker job
`rollups`). Each run recomputes, per fact, only the periods touched since the previous run (rows
whose updated_at, or for append-only tables whose own time, is at or after the previous run
minus OVERLAP): every group of such a period is deleted and rebuilt from the source in one
transaction, so an owner or status change inside the period is exact too. Opportunities change
period when their expected close date moves, so a run that sees any opportunity changed
recomputes that whole fact (500,000 opportunities: see bench/README.md). A new, approved,
edited or voided order therefore shows within 10 minutes. What a watermark cannot see is
covered by a full rebuild of every fact at least every 24 hours (REBUILD_EVERY), and at once
when the indexed select custom fields change: a customer's reclassification (industry, level,
purchase frequency, custom fields), records deleted, plans turning overdue (the daily run),
and records moved to another month (order date, plan date). So: writes within 10 minutes,
customer reclassification and deletions within 24 hours.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context
from flask_babel import gettext as _
from sqlalchemy import (
    ColumnElement,
    Date,
    Select,
    String,
    and_,
    case,
    cast,
    delete,
    false,
    func,
    insert,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import True_

from app.access import owner_clause
from app.analytics import customer_rollups, top_customers  # the dashboards' own tables
from app.errors import ValidationFailed
from customfields.definitions import CustomField, definitions
from customfields.query import custom_sql
from models.analytics import ROLLUP_FACTS, Rollup, RollupState
from models.customers import LOCALITIES, Customer
from models.orders import LIVE_ORDER, Order, OrderLine, Payment, PaymentPlan
from models.pools import PoolMove
from models.sales import Interaction, Opportunity, Product, Stage, StageChange
from models.security import CrmUser

#: every fact is rebuilt in full at least this often (what no watermark sees)
REBUILD_EVERY = dt.timedelta(hours=24)
#: rows written shortly before the previous run may commit after it: look back this far again
OVERLAP = dt.timedelta(minutes=5)
#: the data-scope entity of each fact (whose role scope applies to owner_id / department_id)
SCOPE_ENTITY = {
    "order": "order", "order_by": "order", "line": "order", "plan": "order", "payment": "order",
    "customer": "customer", "followup": "customer", "pool": "customer",
    "opportunity": "opportunity", "stage": "opportunity",
}  # fmt: skip
#: department-grain copies of the facts (fact name -> its copy's): the same rows summed over the
#: owners of each department (owner_id NULL), for users who see everything ("all" data scope) and
#: filter by no owner: 20 departments instead of 200 owners, so an admin's chart reads a tenth of
#: the rows. Rebuilt with their fact, from its rows, in the same transaction.
DEPARTMENT_FACTS = {
    "order": "d_order", "line": "d_line", "customer": "d_customer", "opportunity": "d_opp",
    "stage": "d_stage", "plan": "d_plan", "payment": "d_payment", "followup": "d_followup", "pool": "d_pool",
}  # fmt: skip
#: the customer dimensions orders are summed by (city and district: the customers dashboard's own
#: crm_rollup_customer_dim; at 137 districts x 200 owners x 13 months they alone would be 1.5M rows)
ORDER_DIMENSIONS = ("industry", "level", "frequency", "source")
CUSTOMER_DIMENSIONS = (
    "all",
    "industry",
    "city",
    "district",
    "level",
    "frequency",
    "source",
    "status",
    "locality",
)


# --- the custom key --------------------------------------------------------------------------------
#: a standard customer column keyed like an indexed select field (本地/外地 客户), so it filters and
#: splits every chart the custom fields do; no custom field can take its name (API names may not
#: repeat a standard field's)
LOCALITY = "locality"


def dashboard_field(field: CustomField) -> bool:
    """Whether the dashboards can filter or split by a custom field: a live select field of
    customers marked indexed. The one rule: the filter bar offers these (filters.select_fields),
    the rollups key them (custom_key) and check_custom accepts them. Another field would need a
    live join of every order to its customer (seconds at 1M customers, ARCHITECTURE.md 6)."""
    return (
        field.entity == "customer"
        and field.field_type == "select"
        and bool(field.indexed)
        and not field.archived
        and not getattr(field, "sensitive", False)
    )


def keyed_fields(session: Session) -> list[CustomField]:
    """The customer custom fields in custom_key (dashboard_field), by API name."""
    fields = [f for f in definitions(session, "customer") if dashboard_field(f)]
    return sorted(fields, key=lambda f: f.api_name)


def keyed_names(session: Session) -> set[str]:
    """What a dashboard filter or dimension may name: the keyed fields and locality."""
    return {f.api_name for f in keyed_fields(session)} | {LOCALITY}


def _signature(fields: list[CustomField]) -> str:
    return ",".join([*(f.api_name for f in fields), LOCALITY])[:500]


def _sql_text(value: str) -> ColumnElement[str]:
    """A string constant written into the SQL (so GROUP BY sees one expression on PostgreSQL)."""
    return literal_column("'" + value.replace("'", "''") + "'", String())


def keyed_value_sql(session: Session, api_name: str) -> ColumnElement[Any]:
    """A keyed name's value on crm_customer as SQL (the custom field's, or the locality column)."""
    if api_name == LOCALITY:
        return Customer.locality
    fields = {f.api_name: f for f in keyed_fields(session)}
    return custom_sql(Customer, fields[api_name])


def custom_key_sql(fields: list[CustomField]) -> ColumnElement[str]:
    """The customer's custom_key as SQL: "|api=code|...|locality=code|" (never empty)."""
    key: ColumnElement[str] = _sql_text("|")
    parts = [(f.api_name, custom_sql(Customer, f)) for f in fields] + [(LOCALITY, Customer.locality)]
    for name, value in parts:
        key = key + _sql_text(f"{name}=") + func.coalesce(value, _sql_text("")) + _sql_text("|")
    return key


def custom_value(key: str | None, api_name: str) -> str | None:
    """A field's choice code in a custom_key (None when empty or not keyed)."""
    marker = f"|{api_name}="
    if not key or marker not in key:
        return None
    value = key.split(marker, 1)[1].split("|", 1)[0]
    return value or None


def value_label(api_name: str, value: str | None) -> str:
    """A keyed value as the charts show it: a select field's choice as it is, a locality's name
    (本地客户); "" when empty."""
    if not value:
        return ""
    return str(LOCALITIES.label(value)) if api_name == LOCALITY else value


def check_custom(session: Session, api_names: list[str]) -> None:
    """Refuse (400) a filter or dimension on a field the rollups do not key (dashboard_field)."""
    unknown = [name for name in api_names if name not in keyed_names(session)]
    if unknown:
        raise ValidationFailed(
            {
                "custom": [
                    _(
                        "自定义字段 %(names)s 不能用于看板筛选或维度: "
                        "只支持客户的单选字段中标记了「建索引」的",
                        names=", ".join(unknown),
                    )
                ]
            }
        )


def custom_condition(
    session: Session, chosen: dict[str, str], column: Any = Rollup.custom_key
) -> list[ColumnElement[bool]]:
    """Conditions on a rollup's custom_key `column` for custom-field filters {api_name: code}."""
    check_custom(session, list(chosen))
    return [column.contains(f"|{name}={code}|", autoescape=True) for name, code in chosen.items()]


# --- the data scope on rollup rows -------------------------------------------------------------------
def _scope_columns(fact: str) -> type:
    """The rollup's owner and department columns under the source entity's name, so that
    app.access.owner_clause applies that entity's data scope of the user's roles to them."""
    entity = SCOPE_ENTITY[fact]
    attributes = {
        "__tablename__": "crm_" + entity,
        "owner_id": Rollup.owner_id,
        "department_id": Rollup.department_id,
    }
    return type(f"RollupOf_{entity}", (), attributes)


def scope_clause(session: Session, fact: str, user: CrmUser | None) -> ColumnElement[bool]:
    """The rollup rows of `fact` the user sees: the owner/department part of their data scope of
    the source entity (a rep: own rows; a manager: the department tree's; admin: all).
    Collaborations and approval visibility (app.access extensions) are not part of "my numbers"."""
    return owner_clause(session, _scope_columns(fact), user)


# --- periods -----------------------------------------------------------------------------------------
def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)


def week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def _offset_hours() -> int:
    """The company's time zone offset from UTC now, whole hours (China: +8, no summer time)."""
    zone = current_app.config.get("BABEL_DEFAULT_TIMEZONE", "UTC") if has_app_context() else "UTC"
    offset = dt.datetime.now(ZoneInfo(zone)).utcoffset() or dt.timedelta()
    return int(offset.total_seconds() // 3600)


def _local(column: Any, dialect: str, hours: int) -> Any:
    """A naive UTC date-time column shifted to local time."""
    if not hours:
        return column
    if dialect == "sqlite":
        return func.datetime(column, f"{hours:+d} hours")
    if dialect == "postgresql":
        return column + literal_column(f"interval '{hours} hours'")
    return func.date_add(column, literal_column(f"INTERVAL {hours} HOUR"))


def _month_sql(column: Any, dialect: str) -> Any:
    if dialect == "sqlite":
        return func.date(column, "start of month")
    if dialect == "postgresql":
        return cast(func.date_trunc("month", column), Date)
    return cast(func.date_format(column, "%Y-%m-01"), Date)


def _week_sql(column: Any, dialect: str) -> Any:
    if dialect == "sqlite":
        return func.date(column, "weekday 0", "-6 days")
    if dialect == "postgresql":
        return cast(func.date_trunc("week", column), Date)
    return func.date_sub(func.date(column), literal_column(f"INTERVAL WEEKDAY({column}) DAY"))


def _days_sql(later: Any, earlier: Any, dialect: str) -> Any:
    if dialect == "sqlite":
        return func.julianday(later) - func.julianday(earlier)
    if dialect == "postgresql":
        return func.extract("epoch", later - earlier) / 86400.0
    return func.timestampdiff(literal_column("SECOND"), earlier, later) / 86400.0


# --- facts ---------------------------------------------------------------------------------------------
@dataclass
class Context:
    dialect: str
    hours: int
    key: ColumnElement[str]

    def local(self, column: Any) -> Any:
        return _local(column, self.dialect, self.hours)

    def month(self, column: Any, is_datetime: bool = False) -> Any:
        return _month_sql(self.local(column) if is_datetime else column, self.dialect)

    def week(self, column: Any) -> Any:
        return _week_sql(self.local(column), self.dialect)


def _in_periods(column: Any, periods: set[dt.date] | None, ctx: Context, weeks: bool = False) -> Any:
    """The source rows of some periods, as ranges on the raw column (index friendly)."""
    if periods is None:
        return None
    if not periods:
        return false()
    ranges = []
    for start in sorted(periods):
        end = start + dt.timedelta(days=7) if weeks else next_month(start)
        if isinstance(column.type, Date):
            ranges.append(and_(column >= start, column < end))
        else:  # naive UTC date-times: local midnight in UTC
            shift = dt.timedelta(hours=ctx.hours)
            low = dt.datetime.combine(start, dt.time()) - shift
            high = dt.datetime.combine(end, dt.time()) - shift
            ranges.append(and_(column >= low, column < high))
    return or_(*ranges)


def _where(query: Select, condition: Any) -> Select:
    return query if condition is None else query.where(condition)


def _text(column: Any) -> Any:
    return cast(column, String(100))


def _order_rows(ctx: Context, periods: set[dt.date] | None) -> list[Select]:
    query = (
        select(
            ctx.month(Order.ordered_on).label("period"),
            Order.owner_id.label("owner_id"),
            Order.department_id.label("department_id"),
            ctx.key.label("custom_key"),
            literal_column("NULL").label("dim1"),
            literal_column("NULL").label("dim2"),
            literal_column("NULL").label("dim3"),
            Order.total_amount.label("amount"),
            Order.paid_amount.label("amount2"),
        )
        .join(Customer, Customer.id == Order.customer_id)
        .where(Order.status.in_(LIVE_ORDER))
    )
    return [_where(query, _in_periods(Order.ordered_on, periods, ctx))]


ORDER_DIMENSION_COLUMNS: dict[str, Any] = {
    "industry": Customer.industry_id,
    "city": Customer.city_code,
    "district": Customer.district_code,
    "level": Customer.level,
    "frequency": Customer.purchase_frequency,
    "source": Customer.source,
    "locality": Customer.locality,
    "kind": Order.kind,
}


def _order_by_rows(ctx: Context, periods: set[dt.date] | None) -> list[Select]:
    queries = []
    for name in ORDER_DIMENSIONS:
        query = (
            select(
                ctx.month(Order.ordered_on).label("period"),
                Order.owner_id.label("owner_id"),
                Order.department_id.label("department_id"),
                ctx.key.label("custom_key"),
                _sql_text(name).label("dim1"),
                _text(ORDER_DIMENSION_COLUMNS[name]).label("dim2"),
                literal_column("NULL").label("dim3"),
                Order.total_amount.label("amount"),
                Order.paid_amount.label("amount2"),
            )
            .join(Customer, Customer.id == Order.customer_id)
            .where(Order.status.in_(LIVE_ORDER))
        )
        queries.append(_where(query, _in_periods(Order.ordered_on, periods, ctx)))
    return queries


def _line_rows(ctx: Context, periods: set[dt.date] | None) -> list[Select]:
    query = (
        select(
            ctx.month(Order.ordered_on).label("period"),
            Order.owner_id.label("owner_id"),
            Order.department_id.label("department_id"),
            ctx.key.label("custom_key"),
            _text(OrderLine.product_id).label("dim1"),
            Product.category.label("dim2"),
            literal_column("NULL").label("dim3"),
            OrderLine.amount.label("amount"),
            OrderLine.quantity.label("amount2"),
        )
        .select_from(OrderLine)
        .join(Order, Order.id == OrderLine.order_id)
        .join(Customer, Customer.id == Order.customer_id)
        .outerjoin(Product, Product.id == OrderLine.product_id)
        .where(Order.status.in_(LIVE_ORDER))
    )
    return [_where(query, _in_periods(Order.ordered_on, periods, ctx))]


CUSTOMER_DIMENSION_COLUMNS: dict[str, Any] = {
    "all": literal_column("NULL"),
    "industry": Customer.industry_id,
    "city": Customer.city_code,
    "district": Customer.district_code,
    "level": Customer.level,
    "frequency": Customer.purchase_frequency,
    "source": Customer.source,
    "status": Customer.status,
    "locality": Customer.locality,
}


def _customer_rows(ctx: Context, periods: set[dt.date] | None) -> list[Select]:
    queries = []
    for name in CUSTOMER_DIMENSIONS:
        value = CUSTOMER_DIMENSION_COLUMNS[name]
        query = select(
            ctx.month(Customer.created_at, True).label("period"),
            Customer.owner_id.label("owner_id"),
            Customer.department_id.label("department_id"),
            ctx.key.label("custom_key"),
            _sql_text(name).label("dim1"),
            (value if name == "all" else _text(value)).label("dim2"),
            literal_column("NULL").label("dim3"),
            literal_column("0").label("amount"),
            literal_column("0").label("amount2"),
        )
        queries.append(_where(query, _in_periods(Customer.created_at, periods, ctx)))
    return queries


def _opportunity_rows(ctx: Context, periods: set[dt.date] | None) -> list[Select]:
    closed = ctx.month(Opportunity.closed_at, True)
    created = ctx.month(Opportunity.created_at, True)
    period = case(
        (
            and_(Opportunity.status == "open", Opportunity.expected_close.is_not(None)),
            ctx.month(Opportunity.expected_close),
        ),
        (and_(Opportunity.status != "open", Opportunity.closed_at.is_not(None)), closed),
        else_=created,
    )
    state = case(
        (Opportunity.status == "open", _sql_text("open")),
        else_=Opportunity.status + _sql_text(":") + func.coalesce(Opportunity.close_reason, _sql_text("")),
    )
    probability = func.coalesce(Opportunity.probability, Stage.probability, 0)
    amount = func.coalesce(Opportunity.amount, 0)
    query = (
        select(
            period.label("period"),
            Opportunity.owner_id.label("owner_id"),
            Opportunity.department_id.label("department_id"),
            ctx.key.label("custom_key"),
            _text(Opportunity.pipeline_id).label("dim1"),
            _text(Opportunity.stage_id).label("dim2"),
            func.substr(state, 1, 255).label("dim3"),
            amount.label("amount"),
            (amount * probability / 100.0).label("amount2"),
        )
        .join(Customer, Customer.id == Opportunity.customer_id)
        .join(Stage, Stage.id == Opportunity.stage_id)
    )
    return [query]  # always the whole fact (see the module's docstring)


def _stage_rows(ctx: Context, periods: set[dt.date] | None) -> list[Select]:
    previous = (
        func.lag(StageChange.changed_at)
        .over(partition_by=StageChange.opportunity_id, order_by=(StageChange.changed_at, StageChange.id))
        .label("previous_at")
    )
    moves = select(
        StageChange.opportunity_id,
        StageChange.from_stage_id,
        StageChange.to_stage_id,
        StageChange.changed_at,
        previous,
    )
    if periods is not None:
        # the previous change of a move may be older than the periods: read each touched
        # opportunity's whole history, keep the moves of the periods below
        touched = select(StageChange.opportunity_id).where(_in_periods(StageChange.changed_at, periods, ctx))
        moves = moves.where(StageChange.opportunity_id.in_(touched))
    moves = moves.subquery("moves")
    days = case(
        (moves.c.previous_at.is_not(None), _days_sql(moves.c.changed_at, moves.c.previous_at, ctx.dialect)),
        else_=0,
    )
    query = (
        select(
            ctx.month(moves.c.changed_at, True).label("period"),
            Opportunity.owner_id.label("owner_id"),
            Opportunity.department_id.label("department_id"),
            ctx.key.label("custom_key"),
            _text(Opportunity.pipeline_id).label("dim1"),
            _text(moves.c.to_stage_id).label("dim2"),
            _text(moves.c.from_stage_id).label("dim3"),
            days.label("amount"),
            case((moves.c.previous_at.is_not(None), 1), else_=0).label("amount2"),
        )
        .select_from(moves)
        .join(Opportunity, Opportunity.id == moves.c.opportunity_id)
        .join(Customer, Customer.id == Opportunity.customer_id)
    )
    return [_where(query, _in_periods(moves.c.changed_at, periods, ctx) if periods is not None else None)]


def _plan_rows(ctx: Context, periods: set[dt.date] | None) -> list[Select]:
    query = (
        select(
            ctx.month(PaymentPlan.planned_date).label("period"),
            Order.owner_id.label("owner_id"),
            Order.department_id.label("department_id"),
            ctx.key.label("custom_key"),
            PaymentPlan.status.label("dim1"),
            literal_column("NULL").label("dim2"),
            literal_column("NULL").label("dim3"),
            PaymentPlan.planned_amount.label("amount"),
            PaymentPlan.collected_amount.label("amount2"),
        )
        .select_from(PaymentPlan)
        .join(Order, Order.id == PaymentPlan.order_id)
        .join(Customer, Customer.id == Order.customer_id)
        .where(Order.status.in_(LIVE_ORDER))
    )
    return [_where(query, _in_periods(PaymentPlan.planned_date, periods, ctx))]


def _payment_rows(ctx: Context, periods: set[dt.date] | None) -> list[Select]:
    query = (
        select(
            ctx.month(Payment.received_on).label("period"),
            Order.owner_id.label("owner_id"),
            Order.department_id.label("department_id"),
            ctx.key.label("custom_key"),
            literal_column("NULL").label("dim1"),
            literal_column("NULL").label("dim2"),
            literal_column("NULL").label("dim3"),
            Payment.amount.label("amount"),
            literal_column("0").label("amount2"),
        )
        .select_from(Payment)
        .join(Order, Order.id == Payment.order_id)
        .join(Customer, Customer.id == Order.customer_id)
        .where(Payment.status == "approved", Order.status != "voided")
    )
    return [_where(query, _in_periods(Payment.received_on, periods, ctx))]


def _followup_rows(ctx: Context, periods: set[dt.date] | None) -> list[Select]:
    who = aliased(CrmUser)
    query = (
        select(
            ctx.month(Interaction.occurred_at, True).label("period"),
            Interaction.owner_id.label("owner_id"),
            who.department_id.label("department_id"),
            ctx.key.label("custom_key"),
            literal_column("NULL").label("dim1"),
            literal_column("NULL").label("dim2"),
            literal_column("NULL").label("dim3"),
            literal_column("0").label("amount"),
            literal_column("0").label("amount2"),
        )
        .select_from(Interaction)
        .join(Customer, Customer.id == Interaction.customer_id)
        .outerjoin(who, who.id == Interaction.owner_id)
    )
    return [_where(query, _in_periods(Interaction.occurred_at, periods, ctx))]


def _pool_rows(ctx: Context, periods: set[dt.date] | None) -> list[Select]:
    who = aliased(CrmUser)
    person = func.coalesce(PoolMove.to_user_id, PoolMove.from_user_id)
    query = (
        select(
            ctx.week(PoolMove.moved_at).label("period"),
            person.label("owner_id"),
            who.department_id.label("department_id"),
            ctx.key.label("custom_key"),
            PoolMove.action.label("dim1"),
            _text(PoolMove.pool_id).label("dim2"),
            case((PoolMove.action == "recycle", PoolMove.reason), else_=None).label("dim3"),
            literal_column("0").label("amount"),
            literal_column("0").label("amount2"),
        )
        .select_from(PoolMove)
        .join(Customer, Customer.id == PoolMove.customer_id)
        .outerjoin(who, who.id == person)
    )
    return [_where(query, _in_periods(PoolMove.moved_at, periods, ctx, weeks=True))]


# --- what changed since the watermark ----------------------------------------------------------------
def _months(session: Session, query: Select) -> set[dt.date]:
    found = set()
    for (value,) in session.execute(query):
        if value is None:
            continue
        if isinstance(value, str):
            value = dt.date.fromisoformat(value[:10])
        elif isinstance(value, dt.datetime):
            value = value.date()
        found.add(value)
    return found


def _touched_orders(session: Session, ctx: Context, since: dt.datetime) -> set[dt.date]:
    return _months(session, select(ctx.month(Order.ordered_on)).where(Order.updated_at >= since).distinct())


def _touched_plans(session: Session, ctx: Context, since: dt.datetime) -> set[dt.date]:
    by_order = select(Order.id).where(Order.updated_at >= since)
    by_payment = select(Payment.order_id).where(Payment.updated_at >= since)
    query = select(ctx.month(PaymentPlan.planned_date)).where(
        or_(PaymentPlan.order_id.in_(by_order), PaymentPlan.order_id.in_(by_payment))
    )
    return _months(session, query.distinct())


def _touched_payments(session: Session, ctx: Context, since: dt.datetime) -> set[dt.date]:
    query = select(ctx.month(Payment.received_on)).where(
        or_(
            Payment.updated_at >= since,
            Payment.order_id.in_(select(Order.id).where(Order.updated_at >= since)),
        )
    )
    return _months(session, query.distinct())


def _touched_customers(session: Session, ctx: Context, since: dt.datetime) -> set[dt.date]:
    query = select(ctx.month(Customer.created_at, True)).where(Customer.updated_at >= since)
    return _months(session, query.distinct())


def _touched_opportunities(session: Session, ctx: Context, since: dt.datetime) -> set[dt.date] | None:
    changed = session.scalar(select(Opportunity.id).where(Opportunity.updated_at >= since).limit(1))
    return None if changed is not None else set()


def _touched_stages(session: Session, ctx: Context, since: dt.datetime) -> set[dt.date]:
    opportunities = select(Opportunity.id).where(Opportunity.updated_at >= since)
    query = select(ctx.month(StageChange.changed_at, True)).where(
        or_(StageChange.changed_at >= since, StageChange.opportunity_id.in_(opportunities))
    )
    return _months(session, query.distinct())


def _touched_followups(session: Session, ctx: Context, since: dt.datetime) -> set[dt.date]:
    query = select(ctx.month(Interaction.occurred_at, True)).where(Interaction.updated_at >= since)
    return _months(session, query.distinct())


def _touched_pool(session: Session, ctx: Context, since: dt.datetime) -> set[dt.date]:
    return _months(session, select(ctx.week(PoolMove.moved_at)).where(PoolMove.moved_at >= since).distinct())


@dataclass(frozen=True)
class Fact:
    name: str
    rows: Callable[[Context, set[dt.date] | None], list[Select]]
    touched: Callable[[Session, Context, dt.datetime], set[dt.date] | None]
    weeks: bool = False


FACTS: dict[str, Fact] = {
    fact.name: fact
    for fact in (
        Fact("order", _order_rows, _touched_orders),
        Fact("order_by", _order_by_rows, _touched_orders),
        Fact("line", _line_rows, _touched_orders),
        Fact("customer", _customer_rows, _touched_customers),
        Fact("opportunity", _opportunity_rows, _touched_opportunities),
        Fact("stage", _stage_rows, _touched_stages),
        Fact("plan", _plan_rows, _touched_plans),
        Fact("payment", _payment_rows, _touched_payments),
        Fact("followup", _followup_rows, _touched_followups),
        Fact("pool", _pool_rows, _touched_pool, weeks=True),
    )
}
assert set(FACTS) == set(ROLLUP_FACTS)

COLUMNS = ["period", "owner_id", "department_id", "custom_key", "dim1", "dim2", "dim3"]


def _rebuild(session: Session, fact: Fact, ctx: Context, periods: set[dt.date] | None) -> int:
    """Delete the fact's rows of `periods` (None: all) and insert them again from the source,
    grouped, with its department-grain copy. Returns the rows written (both). Sent through the
    connection: derived data, not audited."""
    connection = session.connection()
    condition = Rollup.fact == fact.name
    if periods is not None:
        if not periods:
            return 0
        condition = and_(condition, Rollup.period.in_(sorted(periods)))
    connection.execute(delete(Rollup).where(condition))
    rows = fact.rows(ctx, periods)
    source = (rows[0] if len(rows) == 1 else union_all(*rows)).subquery("source")
    grouped = [source.c[name] for name in COLUMNS]
    query = select(
        _sql_text(fact.name).label("fact"),
        *grouped,
        func.count().label("n"),
        func.coalesce(func.sum(source.c.amount), 0).label("amount"),
        func.coalesce(func.sum(source.c.amount2), 0).label("amount2"),
    ).group_by(*grouped)
    connection.execute(insert(Rollup).from_select(["fact", *COLUMNS, "n", "amount", "amount2"], query))
    copy = DEPARTMENT_FACTS.get(fact.name)
    if copy is not None:
        _rebuild_department_copy(connection, fact.name, copy, periods)
    # counted, not the INSERT's rowcount: psycopg reports 0 for INSERT ... SELECT here
    written = select(func.count()).where(Rollup.fact.in_([fact.name, copy or fact.name]))
    if periods is not None:
        written = written.where(Rollup.period.in_(sorted(periods)))
    return connection.scalar(written) or 0


def _rebuild_department_copy(connection: Any, fact: str, copy: str, periods: set[dt.date] | None) -> None:
    """The fact's rows of `periods` summed over owners into its department-grain copy."""
    condition = Rollup.fact == copy
    source = Rollup.fact == fact
    if periods is not None:
        condition = and_(condition, Rollup.period.in_(sorted(periods)))
        source = and_(source, Rollup.period.in_(sorted(periods)))
    connection.execute(delete(Rollup).where(condition))
    grouped = [Rollup.period, Rollup.department_id, Rollup.custom_key, Rollup.dim1, Rollup.dim2, Rollup.dim3]
    query = (
        select(
            _sql_text(copy).label("fact"),
            literal_column("NULL").label("owner_id"),
            *grouped,
            func.sum(Rollup.n),
            func.sum(Rollup.amount),
            func.sum(Rollup.amount2),
        )
        .where(source)
        .group_by(*grouped)
    )
    columns = ["fact", "owner_id", "period", "department_id", "custom_key", "dim1", "dim2", "dim3"]
    connection.execute(insert(Rollup).from_select([*columns, "n", "amount", "amount2"], query))


def rows_of(
    session: Session, fact: str, user: CrmUser | None, owner_id: int | None, per_owner: bool = False
) -> tuple[str, list[ColumnElement[bool]]]:
    """Which rows a chart reads: (fact name, conditions). A user who sees every row of the fact's
    entity and filters by no owner reads the department-grain copy (unless the chart groups by
    owner: `per_owner`); everyone else the owner-grain rows within their data scope."""
    scope = scope_clause(session, fact, user)
    if isinstance(scope, True_) and not owner_id and not per_owner and fact in DEPARTMENT_FACTS:
        return DEPARTMENT_FACTS[fact], []
    conditions = [scope]
    if owner_id:
        conditions.append(Rollup.owner_id == owner_id)
    return fact, conditions


def _state(session: Session, fact: str) -> Any:
    return session.connection().execute(select(RollupState).where(RollupState.fact == fact)).first()


def _save_state(
    session: Session, fact: str, now: dt.datetime, rebuilt: bool, signature: str, exists: bool
) -> None:
    values: dict[str, Any] = {"refreshed_at": now}
    if rebuilt:
        values |= {"rebuilt_at": now, "custom_fields": signature}
    table = RollupState.__table__
    if exists:
        session.connection().execute(table.update().where(table.c.fact == fact).values(**values))
    else:
        values.setdefault("rebuilt_at", None)
        values.setdefault("custom_fields", "")
        session.connection().execute(table.insert().values(fact=fact, **values))


def refresh_rollups(
    session: Session, now: dt.datetime, full: bool = False, facts: list[str] | None = None
) -> dict[str, int]:
    """Bring the dashboards' rollups up to date (worker, every 10 minutes): per fact, rebuild in
    full when never built, when `full`, when the keyed custom fields changed or after
    REBUILD_EVERY; else recompute the periods touched since the previous run. One commit per
    fact, then the company's top customers (app/analytics/top_customers.py: "top_customer" in
    `facts`). Returns fact -> rows written (a full rebuild's fact is reported as "<fact>*")."""
    dialect = session.get_bind().dialect.name
    fields = keyed_fields(session)
    signature = _signature(fields)
    ctx = Context(dialect, _offset_hours(), custom_key_sql(fields))
    report: dict[str, int] = {}
    touched_orders: set[dt.date] | None = None if full else set()
    for name in [name for name in facts or list(FACTS) if name in FACTS]:
        fact = FACTS[name]
        state = _state(session, name)
        rebuild = (
            full
            or state is None
            or state.rebuilt_at is None
            or state.custom_fields != signature
            or now - state.rebuilt_at >= REBUILD_EVERY
        )
        if rebuild:
            periods = None
            report[f"{name}*"] = _rebuild(session, fact, ctx, periods)
        else:
            since = (state.refreshed_at or now) - OVERLAP
            periods = fact.touched(session, ctx, since)
            report[name] = _rebuild(session, fact, ctx, periods)
        if name == "order":
            touched_orders = periods
        _save_state(session, name, now, rebuild, signature, state is not None)
        session.commit()
    if facts is None or top_customers.STATE in facts:  # after the orders: their touched months
        state = _state(session, top_customers.STATE)
        written = top_customers.refresh_top_customers(
            session, now, touched_orders, ctx.key, True, state.rebuilt_at if state else None
        )
        if written is not None:
            report["top_customer*"] = written
            _save_state(session, top_customers.STATE, now, True, signature, state is not None)
            session.commit()
    report |= customer_rollups.refresh_customer_rollups(session, now, full) if facts is None else {}
    return report


__all__ = [
    "CUSTOMER_DIMENSIONS",
    "FACTS",
    "ORDER_DIMENSIONS",
    "DEPARTMENT_FACTS",
    "REBUILD_EVERY",
    "check_custom",
    "custom_condition",
    "custom_value",
    "dashboard_field",
    "keyed_fields",
    "keyed_names",
    "keyed_value_sql",
    "month_start",
    "next_month",
    "refresh_rollups",
    "rows_of",
    "scope_clause",
    "value_label",
    "week_start",
]
