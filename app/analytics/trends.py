"""Trends and opportunities (趋势与机会, issue 9 part 3), kept simple and honest.

- Demand trends: live-order amounts per product category (order lines) and per customer industry
  (orders) over the last four complete quarters; the growth of the last two quarters against the
  two before, with the four amounts shown. No forecast, no fitted model: four sums and a ratio.
  A group that had nothing in the two earlier quarters has no growth rate (shown as new, last).
- Potential customers: customers that look like the best customers of their industry (same
  size, level or city as most of them: at least two of the three) but bought less than a fifth of
  their average over the last 12 months, with the reasons per customer. They are kept by the
  worker in customer_rollups (PotentialCustomer) and in the customer group 潜力客户（系统）, the
  segment to act on: the customer list filtered by that group (potential_segment_url).

All charts are on the customers dashboard. Filters: data scope, owner, department tree and the
custom-field filter (indexed select fields) on all three; the date range's end picks the last
complete quarter of the trends (today without one), the start is not used; the potential
customers are those of today's refresh (the last 12 months), so the date range does not apply.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from app.analytics import Chart, Filters, links, register, rollups
from app.analytics.customer_rollups import PotentialCustomer, potential_group_id, scope_rows
from app.analytics.customers import (
    customer_list,
    fact_rows,
    industry_link,
    industry_names,
    money,
    owner_conditions,
)
from app.clock import local_today
from models.customers import COMPANY_SIZES, CUSTOMER_LEVELS, Customer, Industry, Region
from models.security import CrmUser

#: quarters compared: the last two against the two before
QUARTERS = 4
#: the potential customers shown (the best matches first); the group holds all of them
POTENTIAL_ROWS = 50
#: at most this many rising and this many falling groups are drawn (the table has them all)
TREND_BARS = 10


def quarter_start(day: dt.date) -> dt.date:
    return dt.date(day.year, (day.month - 1) // 3 * 3 + 1, 1)


def last_quarters(filters: Filters) -> list[dt.date]:
    """The first days of the last QUARTERS complete quarters on or before the end of the range
    (today without one), oldest first."""
    end = filters.date_to or local_today()
    start = quarter_start(end)
    following = dt.date(start.year + (start.month + 2) // 12, (start.month + 2) % 12 + 1, 1)
    if end != following - dt.timedelta(days=1):  # the quarter of `end` is not complete
        start = quarter_start(start - dt.timedelta(days=1))
    quarters = [start]
    while len(quarters) < QUARTERS:
        quarters.insert(0, quarter_start(quarters[0] - dt.timedelta(days=1)))
    return quarters


def quarter_label(start: dt.date) -> str:
    return f"{start.year}Q{(start.month - 1) // 3 + 1}"


def _trend_frame(
    session: Session, user: CrmUser, filters: Filters, fact: str, dim1: str | None, names: dict[str, str]
) -> pd.DataFrame:
    quarters = last_quarters(filters)
    labels = [quarter_label(q) for q in quarters]
    last_month = rollups.month_start(quarters[-1] + dt.timedelta(days=62))
    sums: dict[str, list[float]] = {}
    for period, key, _n, amount in fact_rows(
        session, user, filters, fact, dim1, quarters[0], last_month, by_period=True
    ):
        index = labels.index(quarter_label(quarter_start(period)))
        sums.setdefault(key or "", [0.0] * QUARTERS)[index] += money(amount)
    rows = []
    for key, amounts in sums.items():
        half = QUARTERS // 2
        earlier, recent = round(sum(amounts[:half]), 2), round(sum(amounts[half:]), 2)
        growth = round(100 * (recent - earlier) / earlier, 1) if earlier else None
        rows.append(
            {
                "key": key,
                "name": names.get(key, key) if key else _("未填写"),
                **{label: round(value, 2) for label, value in zip(labels, amounts, strict=True)},
                "earlier": earlier,
                "recent": recent,
                "growth_pct": growth,
            }
        )
    columns = ["key", "name", *labels, "earlier", "recent", "growth_pct"]
    frame = pd.DataFrame(rows, columns=columns)
    if frame.empty:
        return frame
    frame["_new"] = frame["growth_pct"].isna()
    frame = frame.sort_values(
        ["_new", "growth_pct", "name"], ascending=[True, False, True], ignore_index=True
    )
    return frame.drop(columns="_new")


def category_trend_data(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
    """Order-line amounts per product category, by quarter, fastest growing first."""
    return _trend_frame(session, user, filters, "line", None, {})


def industry_trend_data(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
    """Order amounts per customer industry, by quarter, fastest growing first."""
    frame = _trend_frame(session, user, filters, "order_by", "industry", industry_names(session))
    frame.insert(0, "industry_id", [int(key) if key else None for key in frame["key"]])
    return frame


def trend_figure(df: pd.DataFrame, filters: Filters) -> go.Figure:
    """Growth of the last two quarters against the two before, the fastest rising and falling."""
    rated = df[df["growth_pct"].notna()]
    if len(rated) > 2 * TREND_BARS:
        rated = pd.concat([rated.head(TREND_BARS), rated.tail(TREND_BARS)])
    quarters = [c for c in df.columns if len(c) == 6 and c[4] == "Q"]
    hover = ["<br>".join(f"{q}: ¥{row[q]:,.2f}" for q in quarters) for _index, row in rated.iterrows()]
    figure = go.Figure(
        go.Bar(
            x=rated["name"],
            y=rated["growth_pct"],
            marker_color=["#2e7d32" if g >= 0 else "#c62828" for g in rated["growth_pct"]],
            text=[f"{g:+.1f}%" for g in rated["growth_pct"]],
            hovertext=hover,
            customdata=rated["key"],
        )
    )
    figure.update_layout(yaxis_title=_("近两季度较前两季度增长 (%)"))
    return figure


# --- potential customers --------------------------------------------------------------------------
def potential_data(session: Session, user: CrmUser, filters: Filters) -> pd.DataFrame:
    """The best-matching potential customers in scope, with their reasons in words."""
    model = PotentialCustomer
    conditions = [scope_rows(session, user, model, "customer"), *owner_conditions(session, model, filters)]
    if filters.custom:
        rollups.check_custom(session, list(filters.custom))
        chosen = [rollups.keyed_value_sql(session, name) == code for name, code in filters.custom.items()]
        # per listed row, its customer by primary key (never every customer with that choice)
        conditions.append(exists().where(Customer.id == model.customer_id, *chosen))
    order = [model.score.desc(), model.gap.desc(), model.customer_id]
    # the first rows in the list's order (its index) first, then their customers: joined in one
    # query, a planner may walk every customer instead
    top = select(model.customer_id).where(*conditions).order_by(*order).limit(POTENTIAL_ROWS).subquery()
    rows = session.execute(
        select(model, Customer.name, Customer.size, Customer.level, Region.name, Industry.name)
        .select_from(top)
        .join(model, model.customer_id == top.c.customer_id)
        .join(Customer, Customer.id == model.customer_id)
        .join(Industry, Industry.id == model.industry_id)
        .outerjoin(Region, Region.code == Customer.city_code)
        .order_by(*order)
    ).all()
    data = []
    for potential, name, size, level, city, industry in rows:
        data.append(
            {
                "customer_id": potential.customer_id,
                "customer": name,
                "industry_id": potential.industry_id,
                "industry": industry,
                "amount": money(potential.amount),
                "peer_average": money(potential.peer_average),
                "traits": int(potential.score),
                "reasons": potential_reasons(potential, industry, size, level, city),
            }
        )
    columns = [
        "customer_id",
        "customer",
        "industry_id",
        "industry",
        "amount",
        "peer_average",
        "traits",
        "reasons",
    ]
    return pd.DataFrame(data, columns=columns)


def potential_reasons(
    potential: PotentialCustomer, industry: str, size: str | None, level: str | None, city: str | None
) -> str:
    """Why a customer is on the list, in the current language."""
    reasons = [
        _(
            "同行业（%(industry)s）最佳客户 %(peers)s 家，"
            "近 12 个月平均采购 ¥%(average)s，该客户 ¥%(amount)s",
            industry=industry,
            peers=potential.peers,
            average=f"{money(potential.peer_average):,.2f}",
            amount=f"{money(potential.amount):,.2f}",
        )
    ]
    if potential.same_size:
        reasons.append(_("规模相同：%(size)s", size=COMPANY_SIZES.label(size)))
    if potential.same_level:
        reasons.append(_("级别相同：%(level)s", level=CUSTOMER_LEVELS.label(level)))
    if potential.same_city:
        reasons.append(_("同城：%(city)s", city=city or ""))
    return "；".join(reasons)


def potential_figure(df: pd.DataFrame, filters: Filters) -> go.Figure:
    headers = [_("客户"), _("行业"), _("近 12 个月采购 (¥)"), _("同行最佳客户平均 (¥)"), _("原因")]
    cells = [
        df["customer"],
        df["industry"],
        [f"{v:,.2f}" for v in df["amount"]],
        [f"{v:,.2f}" for v in df["peer_average"]],
        df["reasons"],
    ]
    return go.Figure(
        go.Table(
            columnwidth=[2, 1, 1, 1, 5],
            header={"values": headers, "align": "left"},
            cells={"values": cells, "align": "left"},
        )
    )


def potential_link(row: dict[str, Any], filters: Filters) -> str | None:
    return links.show_link("customerview", row.get("customer_id"))


def category_link(row: dict[str, Any], filters: Filters) -> str | None:
    """The products of the category (the product list filters by category)."""
    if not row.get("key"):
        return None
    return links.list_link("productview", links.equal("category", row["key"], text=True))


def potential_segment_url(session: Session) -> str | None:
    """The customer list filtered to the potential customers (their group), None before the
    first refresh. The list applies the user's data scope as always."""
    group_id = potential_group_id(session)
    return None if group_id is None else customer_list("groups", group_id)


register(
    Chart(
        key="trend_categories",
        dashboard="customers",
        title=lazy_gettext("品类需求趋势（近四个完整季度）"),
        data=category_trend_data,
        figure=trend_figure,
        link=category_link,
        position=100,
        description=lazy_gettext(
            "增长 = 近两季度金额 ÷ 前两季度金额 − 1；前两季度为零的品类无增长率，列在最后"
        ),
    )
)
register(
    Chart(
        key="trend_industries",
        dashboard="customers",
        title=lazy_gettext("行业需求趋势（近四个完整季度）"),
        data=industry_trend_data,
        figure=trend_figure,
        link=industry_link,
        position=110,
        description=lazy_gettext(
            "增长 = 近两季度金额 ÷ 前两季度金额 − 1；前两季度为零的行业无增长率，列在最后"
        ),
    )
)
register(
    Chart(
        key="potential_customers",
        dashboard="customers",
        title=lazy_gettext("潜力客户"),
        data=potential_data,
        figure=potential_figure,
        link=potential_link,
        position=120,
        width=12,
        description=lazy_gettext(
            "与同行业最佳客户（近 12 个月采购额前 10%）在规模、级别、城市中至少两项相同，但采购额不到其平均"
            "五分之一的客户；全部名单见客户分组“潜力客户（系统）”"
        ),
    )
)
