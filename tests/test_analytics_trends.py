"""Trends and opportunities: the quarterly demand trends by category and industry and the
potential customers with their reasons, against the hand-computed dataset of
tests/customer_analytics_support.py (tag "ct"), within the data scope and the filters.

Quarters up to 2031-06-30: 2030Q3, 2030Q4, 2031Q1, 2031Q2 (live orders only):
    阀门  Q3 1000 (c1) + 500 (c2) + 150 (c8) = 1650; Q4 100 (c6); Q1 700 (c10);
          Q2 3000 (c1) + 200 (c4) + 5000 (c9) = 8200 -> 1750 then 8900: +408.6 %
    泵    Q3 5000 (c9); Q4 300 (c3) + 4000 (c5) + 5000 (c9) = 9300; Q1 2000 (c1) + 4000 (c5)
          + 5000 (c9) = 11000; Q2 500 (c2) -> 14300 then 11500: -19.6 %
    (none) Q1 50 (c7): nothing before, no growth rate, listed last
    I1    Q3 1000 + 500 + 150 + 5000 = 6650; Q4 300 + 5000 = 5300; Q1 2000 + 5000 + 700 = 7700;
          Q2 3000 + 500 + 200 + 5000 = 8700 -> 11950 then 16400: +37.2 %
    I2    Q3 0; Q4 4000 + 100 = 4100; Q1 4000 + 50 = 4050; Q2 0 -> 4100 then 4050: -1.2 %

Potential customers on 2031-06-30: the ten buyers' 12-month amounts are c9 20000, c5 8000, c1
6000, c2 1000, c10 700, c3 300, c4 200, c8 150, c6 100, c7 50; the top decile (cume_dist > 0.9)
is c9 alone (I1, medium, key, 东营市): the I1 profile, average 20000, threshold a fifth: 4000.
I1 customers outside the best: c1 (3 traits, 6000: bought enough), c2 (3 traits, 1000: yes),
c3 (level only), c4 (size only), c8 (none), c10 (size and city, 700: yes), c11 (3 traits, 0: yes).
Order: traits, then the gap to 20000: c11 (3, 20000), c2 (3, 19000), c10 (2, 19300).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from app.analytics import Filters
from app.analytics.trends import last_quarters, potential_segment_url
from app.extensions import db
from models.customers import Customer, customer_group_member
from tests.conftest import login, user
from tests.customer_analytics_support import as_user, chart, dataset

END = Filters(date_to=dt.date(2031, 6, 30))
QUARTERS = ["2030Q3", "2030Q4", "2031Q1", "2031Q2"]


@pytest.fixture(scope="module")
def data(app) -> Iterator[dict[str, Any]]:
    yield from dataset(app, "ct")


def trend(key: str, who: Any, filters: Filters) -> list[tuple]:
    df = chart(key).data(db.session, who, filters)
    growth = [None if g != g else g for g in df["growth_pct"]]  # NaN -> None
    return [
        (name, *[df[q][i] for q in QUARTERS], df["earlier"][i], df["recent"][i], growth[i])
        for i, name in enumerate(df["name"])
    ]


def test_the_last_four_complete_quarters() -> None:
    assert last_quarters(END) == [
        dt.date(2030, 7, 1),
        dt.date(2030, 10, 1),
        dt.date(2031, 1, 1),
        dt.date(2031, 4, 1),
    ]
    # 15 May: the second quarter is not complete, so it ends with the first
    assert last_quarters(Filters(date_to=dt.date(2031, 5, 15)))[-1] == dt.date(2031, 1, 1)
    assert last_quarters(Filters(date_to=dt.date(2031, 1, 1)))[0] == dt.date(2030, 1, 1)


def test_category_demand_grows_or_shrinks(data) -> None:
    manager = as_user(data, "mgr")
    assert trend("trend_categories", manager, END) == [
        ("阀门", 1650.0, 100.0, 700.0, 8200.0, 1750.0, 8900.0, 408.6),
        ("泵", 5000.0, 9300.0, 11000.0, 500.0, 14300.0, 11500.0, -19.6),
        ("未填写", 0.0, 0.0, 50.0, 0.0, 0.0, 50.0, None),
    ]
    figure = chart("trend_categories").figure(chart("trend_categories").data(db.session, manager, END), END)
    assert list(figure.data[0].y) == [408.6, -19.6]  # groups without a rate are not drawn


def test_industry_demand_grows_or_shrinks(data) -> None:
    names = data["industry_names"]
    manager = as_user(data, "mgr")
    assert trend("trend_industries", manager, END) == [
        (names["I1"], 6650.0, 5300.0, 7700.0, 8700.0, 11950.0, 16400.0, 37.2),
        (names["I2"], 0.0, 4100.0, 4050.0, 0.0, 4100.0, 4050.0, -1.2),
    ]
    # r2's own orders: c5 c6 c7 (I2) and c8's 150 in 2030Q3 (I1)
    assert trend("trend_industries", as_user(data, "r2"), END) == [
        (names["I2"], 0.0, 4100.0, 4050.0, 0.0, 4100.0, 4050.0, -1.2),
        (names["I1"], 150.0, 0.0, 0.0, 0.0, 150.0, 0.0, -100.0),
    ]
    # the admin with the department filter sees the manager's numbers
    admin = trend(
        "trend_industries", user("admin"), Filters(date_to=END.date_to, department_id=data["department"])
    )
    assert admin == trend("trend_industries", manager, END)
    # grade A only: I1 c1 c2 c8 c9; I2 c5
    grade_a = Filters(date_to=END.date_to, custom={data["field"]: "A"})
    assert trend("trend_industries", manager, grade_a)[0][:5] == (
        names["I1"], 1000 + 500 + 150 + 5000.0, 5000.0, 2000 + 5000.0, 3000 + 500 + 5000.0
    )  # fmt: skip


def test_potential_customers_with_their_reasons(data) -> None:
    manager, ids = as_user(data, "mgr"), data["customers"]
    df = chart("potential_customers").data(db.session, manager, Filters())
    names = {v: k for k, v in ids.items()}
    assert [(names[r.customer_id], r.traits, r.amount, r.peer_average) for r in df.itertuples()] == [
        ("c11", 3, 0.0, 20000.0),
        ("c2", 3, 1000.0, 20000.0),
        ("c10", 2, 700.0, 20000.0),
    ]
    industry = data["industry_names"]["I1"]
    reasons = dict(zip([names[i] for i in df["customer_id"]], df["reasons"], strict=True))
    assert reasons["c11"] == (
        f"同行业（{industry}）最佳客户 1 家，近 12 个月平均采购 ¥20,000.00，该客户 ¥0.00；"
        "规模相同：中型 (100-499人)；级别相同：重点客户；同城：东营市"
    )
    assert reasons["c10"] == (
        f"同行业（{industry}）最佳客户 1 家，近 12 个月平均采购 ¥20,000.00，该客户 ¥700.00；"
        "规模相同：中型 (100-499人)；同城：东营市"
    )
    assert chart("potential_customers").link({"customer_id": ids["c2"]}, Filters()) == (
        f"/customerview/show/{ids['c2']}"
    )
    assert chart("potential_customers").figure(df, Filters()).to_json()


def test_potential_customers_within_scope_and_filters(data) -> None:
    ids = data["customers"]
    names = {v: k for k, v in ids.items()}

    def listed(who: Any, filters: Filters) -> list[str]:
        df = chart("potential_customers").data(db.session, who, filters)
        return [names.get(i, i) for i in df["customer_id"]]

    assert listed(as_user(data, "r1"), Filters()) == ["c11", "c2"]
    assert listed(as_user(data, "r2"), Filters()) == []
    assert listed(user("admin"), Filters(department_id=data["department"])) == ["c11", "c2", "c10"]
    assert listed(user("admin"), Filters(owner_id=data["people"]["mgr"])) == ["c10"]
    assert listed(as_user(data, "mgr"), Filters(custom={data["field"]: "A"})) == ["c11", "c2"]  # c10 is B


def test_the_potential_customers_are_a_segment_of_the_customer_list(app, data) -> None:
    ids = data["customers"]
    url = potential_segment_url(db.session)
    group_id = int(url.rsplit("=", 1)[1])
    assert url == f"/customerview/list/?_flt_0_groups={group_id}"
    members = set(
        db.session.scalars(
            select(customer_group_member.c.customer_id).where(customer_group_member.c.group_id == group_id)
        )
    )
    assert members == {ids["c2"], ids["c10"], ids["c11"]}
    client = login(app.test_client(), as_user(data, "mgr").username)
    page = client.get(url).get_data(as_text=True)
    shown = {name for name, pk in ids.items() if db.session.get(Customer, pk).name in page}
    assert shown == {"c2", "c10", "c11"}
