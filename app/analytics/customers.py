"""The customers dashboard (客户分析, issue 9 part 2): who the customers are and what they buy.

Every chart reads the rollups of app/analytics/customer_rollups.py (refreshed by the worker every
10 minutes), within the acting user's data scope (app.access, on the rollups' owner and department
columns) and the dashboard's filters:

- owner and department tree: on every chart;
- date range: by whole months (the rollups' grain) on the charts over a period (new customers,
  revenue share of the frequency classes, orders and average order by industry); the
  distributions (industry, region, level, frequency classes, RFM) are of the customers as they
  are now and do not take a date range;
- one select-type custom field of customers as a filter on every chart, and one as a dimension
  (the "by custom field" chart); two custom filters at once are refused with a message (the
  rollups are split by one field at a time), as is a field the user may not see;
- pipeline: not applicable to customers.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from app.access import department_tree_ids, request_cache
from app.analytics import Chart, Filters, links, register, rollups
from app.analytics.customer_rollups import (
    RFM_SEGMENTS,
    CompanyRollup,
    CustomerDimRollup,
    company_view,
    scope_rows,
)
from app.clock import local_today
from models.analytics import Rollup
from models.customers import (
    CUSTOMER_LEVELS,
    CUSTOMER_SOURCES,
    PURCHASE_FREQUENCIES,
    Industry,
    Region,
)
from models.security import CrmUser

#: the region charts show this many bars (the largest); the rest are summed as 其他
REGION_BARS = 30
#: months a period chart shows when no date range is chosen (ending with this month)
DEFAULT_MONTHS = 12


# --- filters shared by the customers and trends charts -------------------------------------------
def owner_conditions(session: Session, model: type, filters: Filters) -> list[ColumnElement[bool]]:
    """The owner and department-tree filters on a rollup's owner and department columns."""
    conditions = []
    if filters.owner_id:
        conditions.append(model.owner_id == filters.owner_id)
    if filters.department_id:
        conditions.append(
            model.department_id.in_(sorted(department_tree_ids(session, filters.department_id)))
        )
    return conditions


def custom_conditions(session: Session, model: type, custom: dict[str, str]) -> list[ColumnElement[bool]]:
    """Custom-field filters on a table with the shared rollup's custom_key (indexed select fields
    only: rollups.check_custom refuses the others with a 400)."""
    if not custom:  # the check reads the field definitions: ~10 ms a chart for nothing
        return []
    checked = request_cache("analytics.custom_checked")
    names = tuple(sorted(custom))
    if names not in checked:
        rollups.check_custom(session, list(names))
        checked[names] = True
    return [model.custom_key.contains(f"|{name}={code}|", autoescape=True) for name, code in custom.items()]


def period_range(filters: Filters) -> tuple[dt.date, dt.date]:
    """The months (first days, inclusive) a period chart covers: those the date range touches;
    without a start, the DEFAULT_MONTHS ending with the month of date_to (today without one)."""
    end = rollups.month_start(filters.date_to or local_today())
    if filters.date_from:
        return rollups.month_start(filters.date_from), end
    start = end
    for _month in range(DEFAULT_MONTHS - 1):
        start = rollups.month_start(start - dt.timedelta(days=1))
    return start, end


def fact_rows(
    session: Session,
    user: CrmUser,
    filters: Filters,
    fact: str,
    dim1: str | None,
    start: dt.date,
    end: dt.date,
    by_period: bool = False,
) -> list[Any]:
    """Sums of the shared rollup: (period,) dim2, n, amount per group, within the user's scope of
    the fact's entity and the filters."""
    entity = rollups.SCOPE_ENTITY[fact]
    if company_view(session, user, entity, filters.owner_id, filters.department_id):
        model: Any = CompanyRollup  # summed over owners: a few rows, not one per owner
        conditions = []
    else:  # rollups.scope_clause, by the fact's entity
        model = Rollup
        conditions = [scope_rows(session, user, Rollup, entity), *owner_conditions(session, Rollup, filters)]
    conditions += [
        model.fact == fact,
        model.period >= start,
        model.period <= end,
        *custom_conditions(session, model, filters.custom),
    ]
    if dim1 is not None:
        conditions.append(model.dim1 == dim1)
    keys = [model.period, model.dim2] if by_period else [model.dim2]
    return session.execute(
        select(*keys, func.sum(model.n), func.sum(model.amount))
        .where(*conditions)
        .group_by(*keys)
        .order_by(*keys)
    ).all()


def month_label(day: dt.date) -> str:
    return f"{day.year}-{day.month:02d}"


def money(value: Any) -> float:
    """A SUM of money as a float rounded to the cent (Decimal on PostgreSQL, float on SQLite)."""
    return round(float(Decimal(str(value or 0))), 2)


def industry_names(session: Session) -> dict[str, str]:
    return {str(i): name for i, name in session.execute(select(Industry.id, Industry.name))}


def customer_list(column: str, value: Any, text: bool = False) -> str | None:
    """The customer list filtered on one column (links.equal), None without a value. The list
    has no filter by city, district or RFM segment: those charts keep no link."""
    if value is None or value == "" or (not isinstance(value, str) and pd.isna(value)):
        return None
    return links.list_link("customerview", links.equal(column, value, text))


def dim_conditions(session: Session, user: CrmUser, filters: Filters) -> list[ColumnElement[bool]]:
    """The rows of CustomerDimRollup a user reads: the company rows, or the owner rows in scope."""
    model = CustomerDimRollup
    if company_view(session, user, "customer", filters.owner_id, filters.department_id):
        conditions = [model.company.is_(True)]
    else:
        conditions = [
            model.company.is_(False),
            scope_rows(session, user, model, "customer"),
            *owner_conditions(session, model, filters),
        ]
    return [*conditions, *custom_conditions(session, model, filters.custom)]


def dim_counts(session: Session, user: CrmUser, filters: Filters, dim: str) -> dict[str, int]:
    """Customers now per value of a dimension (customer_rollups), in scope and filters."""
    model = CustomerDimRollup
    rows = session.execute(
        select(model.value, func.sum(model.customers))
        .where(model.dim == dim, *dim_conditions(session, user, filters))
        .group_by(model.value)
    )
    return {value: int(count or 0) for value, count in rows if count}


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


# --- 1. new customers by month and source --------------------------------------------------------
def new_customers_data(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
    """Customers created per month (company time zone) and source, in the months of the range."""
    start, end = period_range(filters)
    rows = [
        {
            "month": month_label(period),
            "source": source or "",
            "source_label": CUSTOMER_SOURCES.label(source) if source else _("未填写"),
            "customers": int(count or 0),
        }
        for period, source, count, _amount in fact_rows(
            session, user, filters, "customer", "source", start, end, by_period=True
        )
        if count
    ]
    return _frame(rows, ["month", "source", "source_label", "customers"])


def new_customers_figure(df: pd.DataFrame, filters: Filters) -> go.Figure:
    figure = go.Figure()
    for _source, part in df.groupby("source", sort=False):
        figure.add_bar(
            x=part["month"], y=part["customers"], name=part["source_label"].iloc[0], customdata=part["source"]
        )
    figure.update_layout(barmode="stack", xaxis_title=_("月份"), yaxis_title=_("新增客户数"))
    return figure


def source_link(row: dict[str, Any], filters: Filters) -> str | None:
    return customer_list("source", row.get("source"), text=True)


# --- 2. distribution by industry, region, level ---------------------------------------------------
def industry_data(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
    names = industry_names(session)
    counts = dim_counts(session, user, filters, "industry")
    rows = [
        {"industry_id": int(v) if v else None, "industry": names.get(v, _("未填写")), "customers": n}
        for v, n in counts.items()
    ]
    return _frame(rows, ["industry_id", "industry", "customers"]).sort_values(
        ["customers", "industry"], ascending=[False, True], ignore_index=True
    )


def industry_link(row: dict[str, Any], filters: Filters) -> str | None:
    industry = row.get("industry_id")
    return customer_list("industry", None if industry is None or pd.isna(industry) else int(industry))


def bar_figure(x: str, y: str, x_title: Any, y_title: Any, horizontal: bool = False) -> Any:
    def draw(df: pd.DataFrame, filters: Filters) -> go.Figure:
        if horizontal:
            figure = go.Figure(go.Bar(y=df[x], x=df[y], orientation="h"))
            figure.update_layout(
                yaxis={"autorange": "reversed", "title": str(x_title)}, xaxis_title=str(y_title)
            )
        else:
            figure = go.Figure(go.Bar(x=df[x], y=df[y]))
            figure.update_layout(xaxis_title=str(x_title), yaxis_title=str(y_title))
        return figure

    return draw


def _region_data(session: Session, user: CrmUser, filters: Filters, dim: str) -> pd.DataFrame:
    counts = dim_counts(session, user, filters, dim)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    shown, rest = ranked[:REGION_BARS], ranked[REGION_BARS:]
    codes = [int(code) for code, _n in shown if code]
    names = (
        dict(session.execute(select(Region.code, Region.name).where(Region.code.in_(codes))).all())
        if codes
        else {}
    )
    rows = [
        {
            "code": int(code) if code else None,
            "region": names.get(int(code), code) if code else _("未填写"),
            "customers": n,
        }
        for code, n in shown
    ]
    if rest:
        rows.append({"code": None, "region": _("其他"), "customers": sum(n for _c, n in rest)})
    return _frame(rows, ["code", "region", "customers"])


def city_data(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
    return _region_data(session, user, filters, "city")


def district_data(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
    return _region_data(session, user, filters, "district")


def level_data(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
    counts = dim_counts(session, user, filters, "level")
    rows = [
        {"level": code, "level_label": CUSTOMER_LEVELS.label(code), "customers": counts[code]}
        for code in [*CUSTOMER_LEVELS.codes, *sorted(set(counts) - set(CUSTOMER_LEVELS.codes))]
        if counts.get(code)
    ]
    return _frame(rows, ["level", "level_label", "customers"])


def level_figure(df: pd.DataFrame, filters: Filters) -> go.Figure:
    figure = go.Figure(
        go.Pie(labels=df["level_label"], values=df["customers"], customdata=df["level"], hole=0.4)
    )
    return figure


def level_link(row: dict[str, Any], filters: Filters) -> str | None:
    return customer_list("level", row.get("level"), text=True)


# --- 3. purchase-frequency classes and their share of revenue ------------------------------------
def frequency_data(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
    counts = dim_counts(session, user, filters, "frequency")
    start, end = period_range(filters)
    revenue = {
        value or "": money(amount)
        for value, _orders, amount in fact_rows(session, user, filters, "order_by", "frequency", start, end)
    }
    total = sum(revenue.values())
    codes = [
        *PURCHASE_FREQUENCIES.codes,
        *sorted((set(counts) | set(revenue)) - set(PURCHASE_FREQUENCIES.codes)),
    ]
    rows = [
        {
            "frequency": code,
            "frequency_label": PURCHASE_FREQUENCIES.label(code) if code else _("未分类"),
            "customers": counts.get(code, 0),
            "revenue": revenue.get(code, 0.0),
            "revenue_share": round(100 * revenue.get(code, 0.0) / total, 1) if total else 0.0,
        }
        for code in codes
        if counts.get(code) or revenue.get(code)
    ]
    return _frame(rows, ["frequency", "frequency_label", "customers", "revenue", "revenue_share"])


def frequency_figure(df: pd.DataFrame, filters: Filters) -> go.Figure:
    figure = go.Figure()
    figure.add_bar(x=df["frequency_label"], y=df["customers"], name=_("客户数"), customdata=df["frequency"])
    figure.add_scatter(
        x=df["frequency_label"],
        y=df["revenue_share"],
        name=_("收入占比 (%)"),
        yaxis="y2",
        mode="lines+markers+text",
        text=[f"{share}%" for share in df["revenue_share"]],
        textposition="top center",
    )
    figure.update_layout(
        yaxis_title=_("客户数"),
        yaxis2={"title": _("收入占比 (%)"), "overlaying": "y", "side": "right", "rangemode": "tozero"},
    )
    return figure


def frequency_link(row: dict[str, Any], filters: Filters) -> str | None:
    return customer_list("purchase_frequency", row.get("frequency"), text=True)


# --- 4. RFM segments ------------------------------------------------------------------------------
def rfm_data(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
    counts = dim_counts(session, user, filters, "segment")
    total = sum(counts.values())
    rows = [
        {
            "segment": code,
            "segment_label": RFM_SEGMENTS.label(code),
            "customers": counts[code],
            "share": round(100 * counts[code] / total, 1) if total else 0.0,
        }
        for code in RFM_SEGMENTS.codes
        if counts.get(code)
    ]
    return _frame(rows, ["segment", "segment_label", "customers", "share"])


# --- 5. by industry: purchase frequency and average order value ----------------------------------
def industry_value_data(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
    """Per industry in the period: orders ÷ customers of the industry (购买频次) and revenue ÷
    orders (客单价). The customers are the industry's customers now, in the same scope."""
    names = industry_names(session)
    counts = dim_counts(session, user, filters, "industry")
    rows = []
    start, end = period_range(filters)
    for value, orders, revenue in fact_rows(session, user, filters, "order_by", "industry", start, end):
        value, orders, amount = value or "", int(orders or 0), money(revenue)
        if not orders:
            continue
        customers = counts.get(value, 0)
        rows.append(
            {
                "industry_id": int(value) if value else None,
                "industry": names.get(value, _("未填写")),
                "customers": customers,
                "orders": orders,
                "revenue": amount,
                "frequency": round(orders / customers, 2) if customers else None,
                "average_order": round(amount / orders, 2),
            }
        )
    columns = ["industry_id", "industry", "customers", "orders", "revenue", "frequency", "average_order"]
    return _frame(rows, columns).sort_values(
        ["revenue", "industry"], ascending=[False, True], ignore_index=True
    )


def industry_value_figure(df: pd.DataFrame, filters: Filters) -> go.Figure:
    figure = go.Figure()
    figure.add_bar(
        x=df["industry"], y=df["average_order"], name=_("客单价 (¥)"), customdata=df["industry_id"]
    )
    figure.add_scatter(
        x=df["industry"], y=df["frequency"], name=_("购买频次 (订单/客户)"), yaxis="y2", mode="lines+markers"
    )
    figure.update_layout(
        yaxis_title=_("客单价 (¥)"),
        yaxis2={
            "title": _("购买频次 (订单/客户)"),
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
        },
    )
    return figure


# --- 6. by a custom field chosen as dimension -----------------------------------------------------
def dimension_data(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
    """Customers now per choice of the indexed select field (or locality) chosen as dimension
    (empty without one), within the other filters (a custom filter on the same field leaves its
    one choice). `code` is the stored choice, `value` as shown."""
    columns = ["code", "value", "customers"]
    if not filters.dimension:
        return _frame([], columns)
    rollups.check_custom(session, [filters.dimension])
    model = CustomerDimRollup
    rows = session.execute(
        # each customer is in exactly one row of each dimension: the level rows count them once
        select(model.custom_key, func.sum(model.customers))
        .where(model.dim == "level", *dim_conditions(session, user, filters))
        .group_by(model.custom_key)
    )
    found: dict[str, int] = {}
    for key, count in rows:
        value = rollups.custom_value(key, filters.dimension) or ""
        found[value] = found.get(value, 0) + int(count or 0)
    label = rollups.value_label
    data = [
        {"code": code, "value": label(filters.dimension, code) or _("未填写"), "customers": count}
        for code, count in sorted(found.items())
        if count
    ]
    return _frame(data, columns)


def dimension_link(row: dict[str, Any], filters: Filters) -> str | None:
    """Locality's customers on the customer list (a custom field's list filter is per request and
    per field: not linked)."""
    if filters.dimension != rollups.LOCALITY:
        return None
    return customer_list(rollups.LOCALITY, row.get("code"), text=True)


# --- registration ---------------------------------------------------------------------------------
register(
    Chart(
        key="new_customers",
        dashboard="customers",
        title=lazy_gettext("新增客户（按月、来源）"),
        data=new_customers_data,
        figure=new_customers_figure,
        link=source_link,
        position=10,
        width=12,
    )
)
register(
    Chart(
        key="by_industry",
        dashboard="customers",
        title=lazy_gettext("客户行业分布"),
        data=industry_data,
        figure=bar_figure(
            "industry", "customers", lazy_gettext("行业"), lazy_gettext("客户数"), horizontal=True
        ),
        link=industry_link,
        position=20,
    )
)
register(
    Chart(
        key="by_level",
        dashboard="customers",
        title=lazy_gettext("客户级别分布"),
        data=level_data,
        figure=level_figure,
        link=level_link,
        position=30,
    )
)
register(
    Chart(
        key="by_city",
        dashboard="customers",
        title=lazy_gettext("客户地区分布（城市）"),
        data=city_data,
        figure=bar_figure("region", "customers", lazy_gettext("城市"), lazy_gettext("客户数")),
        position=40,
    )
)
register(
    Chart(
        key="by_district",
        dashboard="customers",
        title=lazy_gettext("客户地区分布（区县）"),
        data=district_data,
        figure=bar_figure("region", "customers", lazy_gettext("区县"), lazy_gettext("客户数")),
        position=50,
    )
)
register(
    Chart(
        key="purchase_frequency",
        dashboard="customers",
        title=lazy_gettext("购买频次分类及收入占比"),
        data=frequency_data,
        figure=frequency_figure,
        link=frequency_link,
        position=60,
        description=lazy_gettext("客户数为当前分类；收入为所选期间已审批订单金额"),
    )
)
register(
    Chart(
        key="rfm",
        dashboard="customers",
        title=lazy_gettext("RFM 客户分群"),
        data=rfm_data,
        figure=bar_figure("segment_label", "customers", lazy_gettext("分群"), lazy_gettext("客户数")),
        position=70,
        description=lazy_gettext(
            "按近 12 个月最近一次下单（R）、订单数（F）、订单金额（M）在全公司有成交客户中的五分位打分；"
            "4 分及以上为高"
        ),
    )
)
register(
    Chart(
        key="industry_value",
        dashboard="customers",
        title=lazy_gettext("各行业购买频次与客单价"),
        data=industry_value_data,
        figure=industry_value_figure,
        link=industry_link,
        position=80,
        width=12,
        description=lazy_gettext("购买频次 = 期间订单数 ÷ 该行业客户数；客单价 = 期间订单金额 ÷ 订单数"),
    )
)
register(
    Chart(
        key="by_custom_field",
        dashboard="customers",
        title=lazy_gettext("客户分布（按自定义字段）"),
        data=dimension_data,
        figure=bar_figure("value", "customers", lazy_gettext("选项"), lazy_gettext("客户数")),
        link=dimension_link,
        position=90,
        description=lazy_gettext("在筛选栏的「维度」中选择本地/外地或客户的单选自定义字段"),
    )
)
