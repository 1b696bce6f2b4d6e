"""The sales dashboard (销售看板): revenue, orders, rankings, targets, collections, the pipeline
and the customer pool, aggregated from the rollups (app/analytics/rollups.py) within the acting
user's data scope.

Every data function reads `crm_rollup` (a few thousand rows at most for any filter) except
`top_customers` (a bounded live query: see its docstring) and `targets` (app.targets computes
the actuals). Filters: the date range is applied by whole months (weeks for the pool), the owner
and the department tree to the rollup's owner and department, the pipeline to the pipeline
charts, custom-field filters to every chart keyed by customer (all but `targets`).
The custom-field dimension (Filters.dimension: an indexed select field or locality, 本地/外地)
splits: revenue by month, orders and average order value, collections and the weighted forecast;
the other charts ignore it.

Numbers follow the rollups' definitions: revenue = total of live orders (approved, executing,
completed) by order date; collected = approved collections not of voided orders by received date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from sqlalchemy import ColumnElement, and_, func, or_, select, union_all
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import True_

from app.access import (
    department_tree_ids,
    disjoint_owner_branches,
    owner_clause,
    scope_clause,
)
from app.analytics import Chart, Filters, links, register
from app.analytics.export import row_ids
from app.analytics.rollups import (
    check_custom,
    custom_condition,
    custom_value,
    keyed_value_sql,
    month_start,
    next_month,
    rows_of,
    value_label,
    week_start,
)
from app.analytics.top_customers import precomputed_top
from app.clock import local_today
from app.targets import PERIOD_MONTHS, period_end, progress
from models.analytics import Rollup, TopCustomerRollup
from models.customers import Customer
from models.orders import LIVE_ORDER, TARGET_METRICS, TARGET_PERIODS, Order, SalesTarget
from models.pools import POOL_MOVES
from models.sales import Pipeline, Product
from models.security import CrmUser, Department

TOP = 10
ZERO = Decimal("0")


# --- periods and filters -------------------------------------------------------------------------
def add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def month_range(filters: Filters) -> tuple[dt.date, dt.date]:
    """First and last month (first days, inclusive) of the filters; default the last 12 months."""
    today = filters.date_to or local_today()
    last = month_start(filters.date_to or today)
    first = month_start(filters.date_from) if filters.date_from else add_months(last, -11)
    return first, last


def months_between(first: dt.date, last: dt.date) -> list[dt.date]:
    months, month = [], first
    while month <= last:
        months.append(month)
        month = next_month(month)
    return months


def _conditions(
    session: Session,
    user: CrmUser,
    filters: Filters,
    fact: str,
    first: dt.date,
    last: dt.date,
    per_owner: bool = False,
) -> list[ColumnElement[bool]]:
    """The rollup rows of a fact within the data scope and the filters (periods inclusive): the
    department-grain copy for a user who sees everything and filters by no owner (rollups.rows_of)
    unless the chart groups by owner."""
    name, conditions = rows_of(session, fact, user, filters.owner_id, per_owner)
    conditions += [Rollup.fact == name, Rollup.period >= first, Rollup.period <= last]
    if filters.department_id:
        conditions.append(
            Rollup.department_id.in_(sorted(department_tree_ids(session, filters.department_id)))
        )
    if filters.custom:
        conditions.extend(custom_condition(session, dict(filters.custom)))
    return conditions


def _dimension(session: Session, filters: Filters) -> str | None:
    if filters.dimension:
        check_custom(session, [filters.dimension])
    return filters.dimension


def _money(value: Any) -> float:
    return round(float(value or 0), 2)


def _label(text: Any) -> str:
    return str(text)


def _month_text(day: dt.date) -> str:
    return f"{day:%Y-%m}"


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, str):
        return dt.date.fromisoformat(value[:10])
    return value


def _names(session: Session, model: type, ids: Iterable[Any]) -> dict[int, str]:
    """id -> display name of a few records, reading only the name columns (loading the ORM
    objects, a user with their roles, cost more than the rollup query itself)."""
    wanted = sorted({int(i) for i in ids if i is not None and str(i) != ""})
    if not wanted:
        return {}
    if model is CrmUser:
        rows = session.execute(
            select(CrmUser.id, CrmUser.first_name, CrmUser.last_name, CrmUser.username).where(
                CrmUser.id.in_(wanted)
            )
        )
        return {row.id: _person(row.first_name, row.last_name, row.username) for row in rows}
    rows = session.execute(select(model.id, model.name).where(model.id.in_(wanted)))
    return {row[0]: row[1] for row in rows}


def _person(first: str | None, last: str | None, username: str) -> str:
    """A user's name as CrmUser.__str__ writes it (Chinese: family name first, no space)."""
    probe = CrmUser(first_name=first or "", last_name=last or "", username=username)
    return str(probe)


def _grouped(session: Session, conditions: list, by: list, measures: list) -> list[Any]:
    return session.execute(select(*by, *measures).where(*conditions).group_by(*by)).all()


def _split(rows: list[Any], dimension: str | None) -> list[tuple[Any, ...]]:
    """Rows (period, custom_key, ...) -> (period, dimension value or None, ...) summed."""
    sums: dict[tuple, list[Decimal]] = {}
    for row in rows:
        value = value_label(dimension, custom_value(row[1], dimension)) or None if dimension else None
        key = (_as_date(row[0]), value)
        current = sums.setdefault(key, [ZERO] * (len(row) - 2))
        for index, measure in enumerate(row[2:]):
            current[index] += Decimal(str(measure or 0))
    return [(*key, *values) for key, values in sorted(sums.items(), key=lambda kv: (kv[0][0], str(kv[0][1])))]


def _by_period(session: Session, user: CrmUser, filters: Filters, fact: str, first: dt.date, last: dt.date,
               measures: list, extra: list | None = None) -> list[tuple[Any, ...]]:  # fmt: skip
    """(period, dimension value, *measures) of a fact, split by the filters' dimension."""
    dimension = _dimension(session, filters)
    conditions = _conditions(session, user, filters, fact, first, last) + (extra or [])
    by = [Rollup.period, Rollup.custom_key if dimension else Rollup.fact]
    return _split(_grouped(session, conditions, by, measures), dimension)


def _list(values: Any) -> list[Any]:
    return [v.item() if hasattr(v, "item") else v for v in list(values)]


def _bar(x: Any, y: Any, name: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "bar", "x": _list(x), "y": _list(y), "name": str(name), **extra}


def _line(x: Any, y: Any, name: Any, **extra: Any) -> dict[str, Any]:
    return {
        "type": "scatter",
        "mode": "lines+markers",
        "x": _list(x),
        "y": _list(y),
        "name": str(name),
        **extra,
    }


def _figure(data: list[dict[str, Any]], **layout: Any) -> go.Figure:
    """A figure from plain trace and layout dicts, without plotly's per-property validation:
    the traces are built here from known columns, and validating them cost 5-50 ms per chart
    (make_subplots alone about 45 ms), a large share of a 500 ms dashboard."""
    return go.Figure(data=data, layout=layout, _validate=False)


def _title(text: Any) -> dict[str, Any]:
    return {"title": {"text": str(text)}}


# --- revenue by month with the same month last year -------------------------------------------------
def revenue_by_month(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
    """month, [dimension], revenue, orders, revenue_last_year (the same month a year before)."""
    first, last = month_range(filters)
    rows = _by_period(
        session,
        user,
        filters,
        "order",
        add_months(first, -12),
        last,
        [func.sum(Rollup.amount), func.sum(Rollup.n)],
    )
    values = {(period, value): (amount, count) for period, value, amount, count in rows}
    groups = sorted({value for _period, value in values}, key=str) or [None]
    records = []
    for month in months_between(first, last):
        for value in groups:
            amount, count = values.get((month, value), (ZERO, ZERO))
            before, _count = values.get((add_months(month, -12), value), (ZERO, ZERO))
            record = {"month": _month_text(month), "revenue": _money(amount), "orders": int(count)}
            record["revenue_last_year"] = _money(before)
            if filters.dimension:
                record["dimension"] = value or ""
            records.append(record)
    columns = [
        "month",
        *(["dimension"] if filters.dimension else []),
        "revenue",
        "orders",
        "revenue_last_year",
    ]
    return pd.DataFrame.from_records(records, columns=columns)


def revenue_figure(df: pd.DataFrame, filters: Filters) -> go.Figure:
    if "dimension" in df.columns:
        data = [
            _bar(part["month"], part["revenue"], value or _("(空)"))
            for value, part in df.groupby("dimension", sort=True)
        ]
        totals = df.groupby("month", sort=True)["revenue_last_year"].sum()
        data.append(_line(totals.index, totals.values, _("去年同期")))
        return _figure(data, barmode="stack", yaxis=_title(_("金额 (元)")), hovermode="x unified")
    data = [
        _bar(df["month"], df["revenue"], _("销售额")),
        _line(df["month"], df["revenue_last_year"], _("去年同期")),
    ]
    return _figure(data, yaxis=_title(_("金额 (元)")), hovermode="x unified")


def order_month_link(row: dict[str, Any], filters: Filters) -> str | None:
    month = links.month("ordered_on", links.month_of(row["month"]))
    return links.list_link("orderview", {**month, **links.equal("owner", filters.owner_id)})


# --- orders and average order value --------------------------------------------------------------------
def orders_and_average(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
    """month, [dimension], orders, revenue, average_order_value (revenue / orders; 0 without)."""
    first, last = month_range(filters)
    rows = _by_period(
        session, user, filters, "order", first, last, [func.sum(Rollup.n), func.sum(Rollup.amount)]
    )
    values = {(period, value): (count, amount) for period, value, count, amount in rows}
    groups = sorted({value for _period, value in values}, key=str) or [None]
    records = []
    for month in months_between(first, last):
        for value in groups:
            count, amount = values.get((month, value), (ZERO, ZERO))
            record = {"month": _month_text(month), "orders": int(count), "revenue": _money(amount)}
            record["average_order_value"] = _money(amount / count) if count else 0.0
            if filters.dimension:
                record["dimension"] = value or ""
            records.append(record)
    columns = [
        "month",
        *(["dimension"] if filters.dimension else []),
        "orders",
        "revenue",
        "average_order_value",
    ]
    return pd.DataFrame.from_records(records, columns=columns)


def orders_figure(df: pd.DataFrame, filters: Filters) -> go.Figure:
    if "dimension" in df.columns:
        data = [
            _bar(part["month"], part["orders"], value or _("(空)"))
            for value, part in df.groupby("dimension", sort=True)
        ]
        totals = df.groupby("month", sort=True)[["orders", "revenue"]].sum()
        average = (totals["revenue"] / totals["orders"].where(totals["orders"] > 0)).fillna(0).round(2)
        data.append(_line(totals.index, average.values, _("客单价"), yaxis="y2"))
    else:
        data = [
            _bar(df["month"], df["orders"], _("订单数")),
            _line(df["month"], df["average_order_value"], _("客单价"), yaxis="y2"),
        ]
    return _figure(
        data,
        barmode="stack",
        yaxis=_title(_("订单数")),
        yaxis2={**_title(_("客单价 (元)")), "overlaying": "y", "side": "right"},
    )


# --- top customers and products -----------------------------------------------------------------------
def top_customers(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
    """customer_id, customer, orders, revenue: the 10 largest customers of the period.

    A user who sees every order, filtering by no owner or department, over a quick date range
    of the filter bar: the precomputed top lists (app/analytics/top_customers.py). Otherwise a
    live query (a rollup at customer grain would be as large as the orders): the orders of the
    period within the data scope, grouped by customer, along the (owner, status, date) or the
    (department, status, date, customer, amount) index; for an "all" scope over another range it
    reads the period's orders (see bench/README.md)."""
    first, last = month_range(filters)
    scope = owner_clause(session, Order, user)  # as the rollup charts apply it (no extensions)
    rows = None
    if isinstance(scope, True_) and not filters.owner_id and not filters.department_id:
        custom = custom_condition(session, dict(filters.custom), TopCustomerRollup.custom_key)
        rows = precomputed_top(session, first, last, custom)
    if rows is None:
        rows = _live_top_customers(session, user, filters, first, last)
    names = _names(session, Customer, [r[0] for r in rows])
    records = [
        {"customer_id": cid, "customer": names.get(cid, ""), "orders": int(n), "revenue": _money(amount)}
        for cid, n, amount in rows
    ]
    return pd.DataFrame.from_records(records, columns=["customer_id", "customer", "orders", "revenue"])


def _live_top_customers(
    session: Session, user: CrmUser, filters: Filters, first: dt.date, last: dt.date
) -> list[Any]:
    """The period's live orders within the data scope summed per customer, the ten largest. The
    scope's branches (the departments, then the user's own orders elsewhere) are summed apart and
    added: each along its own index, the department's covering all it reads."""
    conditions = [
        Order.status.in_(LIVE_ORDER),
        Order.ordered_on >= first,
        Order.ordered_on < next_month(last),
    ]
    if filters.owner_id:
        conditions.append(Order.owner_id == filters.owner_id)
    if filters.department_id:
        conditions.append(
            Order.department_id.in_(sorted(department_tree_ids(session, filters.department_id)))
        )
    parts = [
        select(
            Order.customer_id.label("customer_id"),
            func.count().label("n"),
            func.sum(Order.total_amount).label("amount"),
        )
        .where(branch, *conditions)
        .group_by(Order.customer_id)
        for branch in disjoint_owner_branches(session, Order, user)
    ]
    sums = (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("sums")
    total = func.sum(sums.c.amount)
    ranked = (
        select(sums.c.customer_id, func.sum(sums.c.n).label("n"), total.label("amount"))
        .group_by(sums.c.customer_id)
        .order_by(total.desc(), sums.c.customer_id)
    )
    if not filters.custom:
        return session.execute(ranked.limit(TOP)).all()
    # the customers' value tested after summing, on the largest first: tested per order it cost
    # 470 ms for a manager on SQLite, and tested on every summed customer PostgreSQL hashed the
    # team's 50,000 customers (335 ms). The ten best that match are among the CANDIDATES largest
    # unless fewer than ten of those match; then all of them are tested.
    check_custom(session, list(filters.custom))
    matches = [keyed_value_sql(session, name) == code for name, code in filters.custom.items()]

    def best(candidates: int | None) -> list[Any]:
        chosen = (ranked.limit(candidates) if candidates else ranked).subquery("chosen")
        query = (
            select(chosen.c.customer_id, chosen.c.n, chosen.c.amount)
            .join(Customer, Customer.id == chosen.c.customer_id)
            .where(*matches)
            .order_by(chosen.c.amount.desc(), chosen.c.customer_id)
            .limit(TOP)
        )
        return list(session.execute(query).all())

    rows = best(CANDIDATES)
    return rows if len(rows) == TOP else best(None)


#: how many of the largest customers the live top customers test against a custom-field filter
#: before testing them all (a select field's value: a fifth of the customers, say, so 200 hold
#: ten matches but for a rare value)
CANDIDATES = 200


def _top_bar(df: pd.DataFrame, label: str, value: str, title: str) -> go.Figure:
    data = [_bar(df[value][::-1], df[label][::-1], title, orientation="h")]
    return _figure(data, xaxis=_title(title), yaxis={"automargin": True})


def top_customers_figure(df: pd.DataFrame, filters: Filters) -> go.Figure:
    return _top_bar(df, "customer", "revenue", _("销售额 (元)"))


def customer_link(row: dict[str, Any], filters: Filters) -> str | None:
    return links.show_link("customerview", row.get("customer_id"))


def top_products(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
    """product_id, product, category, lines, quantity, revenue: the 10 best-selling products."""
    first, last = month_range(filters)
    conditions = _conditions(session, user, filters, "line", first, last)
    amount = func.sum(Rollup.amount)
    rows = session.execute(
        select(Rollup.dim1, func.max(Rollup.dim2), func.sum(Rollup.n), func.sum(Rollup.amount2), amount)
        .where(*conditions)
        .group_by(Rollup.dim1)
        .order_by(amount.desc(), Rollup.dim1)
        .limit(TOP)
    ).all()
    names = _names(session, Product, [r[0] for r in rows])
    records = []
    for product_id, category, lines, quantity, revenue in rows:
        pid = int(product_id) if product_id else None
        records.append(
            {
                "product_id": pid,
                "product": names.get(pid, _("(无产品)")) if pid else _("(无产品)"),
                "category": category or "",
                "lines": int(lines),
                "quantity": float(quantity or 0),
                "revenue": _money(revenue),
            }
        )
    return pd.DataFrame.from_records(
        records, columns=["product_id", "product", "category", "lines", "quantity", "revenue"]
    )


def top_products_figure(df: pd.DataFrame, filters: Filters) -> go.Figure:
    return _top_bar(df, "product", "revenue", _("销售额 (元)"))


def product_link(row: dict[str, Any], filters: Filters) -> str | None:
    return links.show_link("productview", row.get("product_id"))


# --- rankings ------------------------------------------------------------------------------------------
#: metric -> (fact, measure, extra condition)
RANKED = {
    "contract": ("order", "amount"),
    "collected": ("payment", "amount"),
    "new_customers": ("customer", "n"),
    "followups": ("followup", "n"),
}


def _metric_label(metric: str) -> str:
    return {
        "contract": _("合同金额"),
        "collected": _("回款金额"),
        "new_customers": _("新增客户"),
        "followups": _("跟进次数"),
    }[metric]


def _ranking(session: Session, user: CrmUser, filters: Filters, column: Any, model: type) -> pd.DataFrame:
    first, last = month_range(filters)
    records = []
    for metric, (fact, measure) in RANKED.items():
        conditions = _conditions(
            session, user, filters, fact, first, last, per_owner=column is Rollup.owner_id
        )
        if fact == "customer":
            conditions.append(Rollup.dim1 == "all")
        total = func.sum(getattr(Rollup, measure))
        rows = session.execute(
            select(column, total)
            .where(*conditions, column.is_not(None))
            .group_by(column)
            .order_by(total.desc(), column)
            .limit(TOP)
        ).all()
        names = _names(session, model, [r[0] for r in rows])
        for rank, (key, value) in enumerate(rows, start=1):
            records.append(
                {
                    "metric": metric,
                    "metric_label": _metric_label(metric),
                    "rank": rank,
                    "id": key,
                    "name": names.get(key, ""),
                    "value": _money(value) if measure == "amount" else int(value or 0),
                }
            )
    return pd.DataFrame.from_records(
        records, columns=["metric", "metric_label", "rank", "id", "name", "value"]
    )


def ranking_people(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
    """排行榜 per person: contract amount, collected amount, new customers, follow-ups (top 10 each)."""
    return _ranking(session, user, filters, Rollup.owner_id, CrmUser)


def ranking_departments(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
    """排行榜 per department (the department on the records, not its tree)."""
    return _ranking(session, user, filters, Rollup.department_id, Department)


def ranking_figure(df: pd.DataFrame, filters: Filters) -> go.Figure:
    """Four horizontal bar charts side by side (the axes laid out by hand: make_subplots is slow)."""
    metrics = list(RANKED)
    width, gap = 1 / len(metrics), 0.06
    data, layout, titles = [], {"showlegend": False}, []
    for index, metric in enumerate(metrics):
        part = df[df["metric"] == metric]
        suffix = "" if index == 0 else str(index + 1)
        data.append(_bar(part["value"][::-1], part["name"][::-1], _metric_label(metric), orientation="h",
                         xaxis=f"x{suffix}", yaxis=f"y{suffix}"))  # fmt: skip
        start, end = index * width + (gap if index else 0), (index + 1) * width - gap / 2
        layout[f"xaxis{suffix}"] = {"domain": [start, end], "anchor": f"y{suffix}"}
        layout[f"yaxis{suffix}"] = {"anchor": f"x{suffix}", "automargin": True}
        titles.append(
            {"text": _metric_label(metric), "x": (start + end) / 2, "y": 1.0, "xref": "paper",
             "yref": "paper", "showarrow": False, "yanchor": "bottom"}
        )  # fmt: skip
    return _figure(data, annotations=titles, **layout)


#: metric -> the list of a person's rows and its date column
PERSON_LISTS = {"contract": ("orderview", "ordered_on"), "followups": ("interactionview", "occurred_at")}


def person_link(row: dict[str, Any], filters: Filters) -> str | None:
    """A person's orders (contract amount) or follow-ups of the period; the collected amount and
    new customers have no list that filters by owner and date."""
    first, last = month_range(filters)
    view, column = PERSON_LISTS.get(row.get("metric"), (None, None))
    if view is None or not row.get("id"):
        return None
    period = links.days(column, first, next_month(last), datetime=column == "occurred_at")
    return links.list_link(view, {**links.equal("owner", row["id"]), **period})


# --- targets against actuals -------------------------------------------------------------------------
def targets(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
    """业绩目标完成率: the targets the user may see (their data scope of targets) whose
    period starts in the date range (default: the month, quarter and year containing today),
    with their actuals from app.targets.progress (approval time, the company's time zone).
    Custom-field filters do not apply (a target is not per customer)."""
    who = select(CrmUser.id, CrmUser.department_id).subquery()
    query = (
        select(SalesTarget)
        .outerjoin(who, who.c.id == SalesTarget.user_id)
        .where(scope_clause(session, SalesTarget, user))  # the targets' own rule, as on their screen
    )
    if filters.date_from or filters.date_to:
        first, last = month_range(filters)
        query = query.where(SalesTarget.period_start >= first, SalesTarget.period_start <= last)
    else:
        today = local_today()
        query = query.where(
            or_(
                *(
                    and_(
                        SalesTarget.period == period, SalesTarget.period_start == _period_start(period, today)
                    )
                    for period in PERIOD_MONTHS
                )
            )
        )
    if filters.owner_id:
        query = query.where(SalesTarget.user_id == filters.owner_id)
    if filters.department_id:
        tree = sorted(department_tree_ids(session, filters.department_id))
        query = query.where(or_(SalesTarget.department_id.in_(tree), who.c.department_id.in_(tree)))
    chosen = list(
        session.scalars(
            query.order_by(SalesTarget.period_start, SalesTarget.period, SalesTarget.metric, SalesTarget.id)
        )
    )
    records = []
    for item in progress(session, chosen):
        target = item.target
        records.append(
            {
                "target_id": target.id,
                "period": target.period,
                "period_label": TARGET_PERIODS.label(target.period),
                "period_start": target.period_start.isoformat(),
                "period_end": (
                    period_end(target.period, target.period_start) - dt.timedelta(days=1)
                ).isoformat(),
                "who": str(target.user or target.department or ""),
                "metric": target.metric,
                "metric_label": TARGET_METRICS.label(target.metric),
                "target": _money(target.amount),
                "actual": _money(item.actual),
                "completion": float(item.completion),
            }
        )
    columns = [
        "target_id", "period", "period_label", "period_start", "period_end", "who", "metric", "metric_label",
        "target", "actual", "completion",
    ]  # fmt: skip
    return pd.DataFrame.from_records(records, columns=columns)


def _period_start(period: str, day: dt.date) -> dt.date:
    months = PERIOD_MONTHS[period]
    return day.replace(month=(day.month - 1) // months * months + 1, day=1)


TARGET_MET_COLOUR, TARGET_OPEN_COLOUR = "#2ca02c", "#636efa"


def targets_figure(df: pd.DataFrame, filters: Filters) -> go.Figure:
    """One horizontal bar per target: its completion in percent against a line at 100%, the
    amounts on hover. Targets of a department and of a rep differ by orders of magnitude, so
    bars of amounts side by side made the small ones unreadable; a share compares them."""
    rows = df.iloc[::-1]  # the first target on top
    labels = [f"{r.who} · {r.period_label} {r.period_start[:7]} · {r.metric_label}"
              for r in rows.itertuples()]
    bar = _bar(
        rows["completion"], labels, _("完成率"),
        orientation="h",
        ids=row_ids(rows.index),
        text=[f"{c:.1f}%" for c in rows["completion"]],
        textposition="outside",
        marker={"color": [TARGET_MET_COLOUR if c >= 100 else TARGET_OPEN_COLOUR for c in rows["completion"]]},
        customdata=[[f"¥{t:,.2f}", f"¥{a:,.2f}"]
                    for t, a in zip(rows["target"], rows["actual"], strict=True)],
        hovertemplate=f"%{{y}}<br>{_('目标')} %{{customdata[0]}}<br>{_('实际')} %{{customdata[1]}}"
        f"<br>{_('完成率')} %{{x:.1f}}%<extra></extra>",
    )  # fmt: skip
    widest = max([100.0, *df["completion"]]) * 1.15  # room for the text beside the longest bar
    return _figure(
        [bar],
        showlegend=False,
        height=max(320, 90 + 34 * len(rows.index)),
        xaxis={**_title(_("完成率 (%)")), "range": [0, widest], "ticksuffix": "%"},
        yaxis={"automargin": True},
        shapes=[{"type": "line", "xref": "x", "yref": "paper", "x0": 100, "x1": 100, "y0": 0, "y1": 1,
                 "line": {"color": "#d62728", "dash": "dash", "width": 1}}],
    )  # fmt: skip


# --- collections -----------------------------------------------------------------------------------
def collections(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
    """回款 by month: planned (plans of live orders by planned date), collected (approved
    collections by received date), overdue (planned - collected of overdue plans, by planned
    month); [dimension]."""
    first, last = month_range(filters)
    planned = _by_period(session, user, filters, "plan", first, last, [func.sum(Rollup.amount)])
    overdue = _by_period(
        session, user, filters, "plan", first, last,
        [func.sum(Rollup.amount - Rollup.amount2)], [Rollup.dim1 == "overdue"],
    )  # fmt: skip
    collected = _by_period(session, user, filters, "payment", first, last, [func.sum(Rollup.amount)])
    tables = [{(p, v): a for p, v, a in rows} for rows in (planned, collected, overdue)]
    groups = sorted({key[1] for table in tables for key in table}, key=str) or [None]
    records = []
    for month in months_between(first, last):
        for value in groups:
            record = {"month": _month_text(month)}
            if filters.dimension:
                record["dimension"] = value or ""
            for name, table in zip(("planned", "collected", "overdue"), tables, strict=True):
                record[name] = _money(table.get((month, value), ZERO))
            records.append(record)
    columns = ["month", *(["dimension"] if filters.dimension else []), "planned", "collected", "overdue"]
    return pd.DataFrame.from_records(records, columns=columns)


def collections_figure(df: pd.DataFrame, filters: Filters) -> go.Figure:
    totals = df.groupby("month", sort=True)[["planned", "collected", "overdue"]].sum()
    data = [
        _bar(totals.index, totals["planned"], _("计划回款")),
        _bar(totals.index, totals["collected"], _("已回款")),
        _bar(totals.index, totals["overdue"], _("逾期未回")),
    ]
    return _figure(data, barmode="group", yaxis=_title(_("金额 (元)")))


def plan_link(row: dict[str, Any], filters: Filters) -> str | None:
    return links.list_link("paymentplanview", links.month("planned_date", links.month_of(row["month"])))


# --- the pipeline ----------------------------------------------------------------------------------------
def chosen_pipeline(session: Session, filters: Filters) -> Pipeline | None:
    """The filters' pipeline, else the first active one (a funnel is one pipeline's stages)."""
    if filters.pipeline_id:
        return session.get(Pipeline, filters.pipeline_id)
    return session.scalar(
        select(Pipeline).where(Pipeline.active.is_(True)).order_by(Pipeline.position, Pipeline.id)
    )


def funnel(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
    """stage_id, stage, position, entries, conversion: entries into each stage of the pipeline in
    the period (stage changes into it; a move back and forth counts again), and the share of the
    previous stage's entries that reached this one (percent, one decimal; the first: 100).
    Lost stages are left out of the funnel."""
    pipeline = chosen_pipeline(session, filters)
    columns = ["stage_id", "stage", "position", "entries", "conversion"]
    if pipeline is None:
        return pd.DataFrame(columns=columns)
    first, last = month_range(filters)
    conditions = _conditions(session, user, filters, "stage", first, last) + [Rollup.dim1 == str(pipeline.id)]
    counts = dict(
        session.execute(
            select(Rollup.dim2, func.sum(Rollup.n)).where(*conditions).group_by(Rollup.dim2)
        ).all()
    )
    records, previous = [], None
    for stage in pipeline.stages:
        if stage.is_lost:
            continue
        entries = int(counts.get(str(stage.id), 0) or 0)
        if previous is None:
            conversion = 100.0 if entries else 0.0
        else:
            conversion = round(entries * 100 / previous, 1) if previous else 0.0
        records.append(
            {"stage_id": stage.id, "stage": stage.name, "position": stage.position, "entries": entries,
             "conversion": conversion}
        )  # fmt: skip
        previous = entries
    return pd.DataFrame.from_records(records, columns=columns)


def funnel_figure(df: pd.DataFrame, filters: Filters) -> go.Figure:
    data = [
        {
            "type": "funnel",
            "y": _list(df["stage"]),
            "x": _list(df["entries"]),
            "textinfo": "value+percent previous",
        }
    ]
    return _figure(data)


def stage_link(row: dict[str, Any], filters: Filters) -> str | None:
    params = {**links.equal("stage", row.get("stage_id")), **links.equal("owner", filters.owner_id)}
    return links.list_link("opportunityview", params)


def velocity(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
    """stage_id, stage, moves_out, average_days: how long opportunities stayed in each stage of
    the pipeline before leaving it (changes in the period that left it, time since the change
    before)."""
    pipeline = chosen_pipeline(session, filters)
    columns = ["stage_id", "stage", "moves_out", "average_days"]
    if pipeline is None:
        return pd.DataFrame(columns=columns)
    first, last = month_range(filters)
    conditions = _conditions(session, user, filters, "stage", first, last) + [
        Rollup.dim1 == str(pipeline.id),
        Rollup.dim3.is_not(None),
    ]
    rows = session.execute(
        select(Rollup.dim3, func.sum(Rollup.amount), func.sum(Rollup.amount2))
        .where(*conditions)
        .group_by(Rollup.dim3)
    ).all()
    sums = {key: (Decimal(str(days or 0)), int(moves or 0)) for key, days, moves in rows}
    records = []
    for stage in pipeline.stages:
        if stage.closes:
            continue
        days, moves = sums.get(str(stage.id), (ZERO, 0))
        records.append(
            {"stage_id": stage.id, "stage": stage.name, "moves_out": moves,
             "average_days": round(float(days) / moves, 1) if moves else 0.0}
        )  # fmt: skip
    return pd.DataFrame.from_records(records, columns=columns)


def velocity_figure(df: pd.DataFrame, filters: Filters) -> go.Figure:
    return _figure([_bar(df["stage"], df["average_days"], _("平均停留天数"))], yaxis=_title(_("天")))


def forecast_range(filters: Filters) -> tuple[dt.date, dt.date]:
    """The forecast looks ahead: by default this month and the next five."""
    if filters.date_from or filters.date_to:
        return month_range(filters)
    this = month_start(local_today())
    return this, add_months(this, 5)


def forecast(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
    """month, [dimension], opportunities, amount, weighted: open opportunities by expected close
    month; weighted = amount x effective probability (its own, else its stage's) / 100."""
    first, last = forecast_range(filters)
    extra = [Rollup.dim3 == "open"]
    pipeline = filters.pipeline_id
    if pipeline:
        extra.append(Rollup.dim1 == str(pipeline))
    rows = _by_period(
        session, user, filters, "opportunity", first, last,
        [func.sum(Rollup.n), func.sum(Rollup.amount), func.sum(Rollup.amount2)], extra,
    )  # fmt: skip
    values = {(p, v): (n, a, w) for p, v, n, a, w in rows}
    groups = sorted({v for _p, v in values}, key=str) or [None]
    records = []
    for month in months_between(first, last):
        for value in groups:
            count, amount, weighted = values.get((month, value), (ZERO, ZERO, ZERO))
            record = {"month": _month_text(month)}
            if filters.dimension:
                record["dimension"] = value or ""
            record |= {"opportunities": int(count), "amount": _money(amount), "weighted": _money(weighted)}
            records.append(record)
    columns = ["month", *(["dimension"] if filters.dimension else []), "opportunities", "amount", "weighted"]
    return pd.DataFrame.from_records(records, columns=columns)


def forecast_figure(df: pd.DataFrame, filters: Filters) -> go.Figure:
    totals = df.groupby("month", sort=True)[["amount", "weighted"]].sum()
    data = [
        _bar(totals.index, totals["amount"], _("商机金额")),
        _bar(totals.index, totals["weighted"], _("加权预测")),
    ]
    return _figure(data, barmode="group", yaxis=_title(_("金额 (元)")))


def forecast_link(row: dict[str, Any], filters: Filters) -> str | None:
    params = {
        **links.equal("status", "open", text=True),
        **links.month("expected_close", links.month_of(row["month"])),
        **links.equal("owner", filters.owner_id),
        **links.equal("pipeline", filters.pipeline_id),
    }
    return links.list_link("opportunityview", params)


def won_lost(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
    """status (won / lost), reason, opportunities, amount: opportunities closed in the period."""
    first, last = month_range(filters)
    conditions = _conditions(session, user, filters, "opportunity", first, last) + [Rollup.dim3 != "open"]
    if filters.pipeline_id:
        conditions.append(Rollup.dim1 == str(filters.pipeline_id))
    rows = session.execute(
        select(Rollup.dim3, func.sum(Rollup.n), func.sum(Rollup.amount))
        .where(*conditions)
        .group_by(Rollup.dim3)
    ).all()
    records = []
    for state, count, amount in rows:
        status, _sep, reason = (state or "").partition(":")
        records.append(
            {
                "status": status,
                "reason": reason or _("(未填写)"),
                "opportunities": int(count),
                "amount": _money(amount),
            }
        )
    frame = pd.DataFrame.from_records(records, columns=["status", "reason", "opportunities", "amount"])
    return frame.sort_values(
        ["status", "opportunities", "reason"], ascending=[False, False, True]
    ).reset_index(drop=True)


def won_lost_figure(df: pd.DataFrame, filters: Filters) -> go.Figure:
    data = []
    for status, label in (("won", _("赢单")), ("lost", _("输单"))):
        part = df[df["status"] == status]
        data.append(_bar(part["reason"], part["opportunities"], label))
    return _figure(data, barmode="group", yaxis=_title(_("商机数")))


def won_lost_link(row: dict[str, Any], filters: Filters) -> str | None:
    return links.list_link(
        "opportunityview",
        {**links.equal("status", row.get("status"), text=True), **links.equal("owner", filters.owner_id)},
    )


# --- the customer pool -------------------------------------------------------------------------------------
def pool_moves(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
    """week, action (recycle / claim), rule (the recycle reason), department, moves: customers
    taken back by the pools' rules and claimed from the pools, per week (Monday) and department
    of the person who lost or got them."""
    first, last = month_range(filters)
    first_week = week_start(first)
    last_week = week_start(filters.date_to or next_month(last) - dt.timedelta(days=1))
    conditions = _conditions(session, user, filters, "pool", first_week, last_week)
    conditions.append(Rollup.dim1.in_(["recycle", "claim"]))
    rows = session.execute(
        select(Rollup.period, Rollup.dim1, Rollup.dim3, Rollup.department_id, func.sum(Rollup.n))
        .where(*conditions)
        .group_by(Rollup.period, Rollup.dim1, Rollup.dim3, Rollup.department_id)
    ).all()
    names = _names(session, Department, [r[3] for r in rows])
    labels = {action: POOL_MOVES.label(action) for action in {r[1] for r in rows}}
    records = [
        {
            "week": _as_date(period).isoformat(),
            "action": action,
            "action_label": labels[action],
            "rule": _rule_text(rule) if action == "recycle" else "",
            "department_id": department,
            "department": names.get(department, "") if department else "",
            "moves": int(moves),
        }
        for period, action, rule, department, moves in rows
    ]
    frame = pd.DataFrame.from_records(
        records, columns=["week", "action", "action_label", "rule", "department_id", "department", "moves"]
    )
    return frame.sort_values(["week", "action", "department", "rule"]).reset_index(drop=True)


def _rule_text(reason: str | None) -> str:
    """The recycle reason without its "自动回收公海「X」: " prefix (the rule that fired)."""
    if not reason:
        return ""
    return reason.split(": ", 1)[1] if ": " in reason else reason


def pool_figure(df: pd.DataFrame, filters: Filters) -> go.Figure:
    """Per week and, within it, per department (a two-level axis), the moves stacked by action
    and rule; each bar names its row (export.row_ids), as week and count alone do not."""
    frame = df.reset_index(drop=True)
    department = frame["department"].where(frame["department"] != "", _("(无部门)"))
    data = []
    for (action, rule), part in frame.groupby(["action_label", "rule"], sort=True):
        x = [list(part["week"]), list(department[part.index])]
        data.append(
            {"type": "bar", "x": x, "y": _list(part["moves"]), "name": f"{action} {rule}".strip(),
             "ids": row_ids(part.index)}
        )  # fmt: skip
    return _figure(data, barmode="stack", yaxis=_title(_("客户数")), xaxis={"type": "multicategory"})


def pool_link(row: dict[str, Any], filters: Filters) -> str | None:
    """The pool moves of the bar's action and week (all rules and departments: the pool-move
    list filters by neither), within the user's data scope."""
    if not row.get("action") or not row.get("week"):
        return None
    week = links.week("moved_at", dt.date.fromisoformat(row["week"]), datetime=True)
    return links.list_link("poolmoveview", {**links.equal("action", row["action"], text=True), **week})


def target_link(row: dict[str, Any], filters: Filters) -> str | None:
    """The target itself (who, period, metric, amount)."""
    return links.show_link("salestargetview", row.get("target_id"))


# --- registration ----------------------------------------------------------------------------------------
CHARTS = [
    Chart("revenue", "sales", lazy_gettext("月度销售额 (同比)"), revenue_by_month, revenue_figure,
          order_month_link, 10, 12, lazy_gettext("已审批订单的金额, 按下单月份; 折线为去年同月")),
    Chart("orders", "sales", lazy_gettext("订单数与客单价"), orders_and_average, orders_figure,
          order_month_link, 20, 6),
    Chart("targets", "sales", lazy_gettext("业绩目标完成率"), targets, targets_figure, target_link, 30, 6,
          lazy_gettext("按审批时间统计; 自定义字段筛选不适用")),
    Chart("top_customers", "sales", lazy_gettext("客户排行 (前十)"), top_customers, top_customers_figure,
          customer_link, 40, 6),
    Chart("top_products", "sales", lazy_gettext("产品排行 (前十)"), top_products, top_products_figure,
          product_link, 50, 6),
    Chart("ranking_people", "sales", lazy_gettext("个人排行榜"), ranking_people, ranking_figure,
          person_link, 60, 12),
    Chart("ranking_departments", "sales", lazy_gettext("部门排行榜"), ranking_departments, ranking_figure,
          None, 70, 12),
    Chart("collections", "sales", lazy_gettext("回款: 计划、已回款与逾期"), collections, collections_figure,
          plan_link, 80, 12),
    Chart("funnel", "sales", lazy_gettext("销售漏斗与阶段转化率"), funnel, funnel_figure, stage_link, 90, 6),
    Chart("velocity", "sales", lazy_gettext("阶段停留天数"), velocity, velocity_figure, stage_link, 100, 6),
    Chart("forecast", "sales", lazy_gettext("加权预测 (按预计成交月份)"), forecast, forecast_figure,
          forecast_link, 110, 6),
    Chart("won_lost", "sales", lazy_gettext("赢单与输单原因"), won_lost, won_lost_figure,
          won_lost_link, 120, 6),
    Chart("pool", "sales", lazy_gettext("公海: 每周回收与领取 (按规则和部门)"), pool_moves, pool_figure,
          pool_link, 130, 12,
          lazy_gettext("每周 (周一起) 各部门的回收与领取, 按回收规则分色; 部门为失去或得到客户的人所在部门")),
]  # fmt: skip
for _chart in CHARTS:
    register(_chart)

#: charts that split by Filters.dimension (the others ignore it)
DIMENSION_CHARTS = ("revenue", "orders", "collections", "forecast")
#: charts the custom-field filter does not apply to
UNFILTERED_BY_CUSTOM = ("targets",)
