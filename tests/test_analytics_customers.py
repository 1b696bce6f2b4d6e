"""The customers dashboard's figures against a small hand-computed dataset (exact), within the
data scope (rep, manager, admin), with a custom-field filter and dimension, and the freshness of
its own rollups.

The dataset and its table: tests/customer_analytics_support.py (tag "cd").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from app.analytics import Filters, charts_of
from app.analytics.customer_rollups import CustomerDimRollup, refresh_customer_rollups, rfm_subquery
from app.analytics.rollups import custom_key_sql, keyed_fields, refresh_rollups
from app.errors import ValidationFailed
from app.extensions import db
from models.base import utcnow
from models.customers import Customer
from tests.conftest import login, user
from tests.customer_analytics_support import TODAY, YEAR, as_user, chart, dataset, figures, new_order


@pytest.fixture(scope="module")
def data(app) -> Iterator[dict[str, Any]]:
    yield from dataset(app, "cd")


def test_every_customers_chart_is_registered_and_draws(data) -> None:
    keys = [c.key for c in charts_of("customers")]
    for expected in (
        "new_customers",
        "by_industry",
        "by_level",
        "by_city",
        "by_district",
        "purchase_frequency",
    ):
        assert expected in keys
    for expected in ("rfm", "industry_value", "by_custom_field"):
        assert expected in keys
    manager = as_user(data, "mgr")
    filters = Filters(date_from=YEAR.date_from, date_to=YEAR.date_to, dimension=data["field"])
    for item in charts_of("customers"):
        df = item.data(db.session, manager, filters)
        assert len(df) > 0, item.key
        if item.figure is not None:
            assert item.figure(df, filters).to_json()


def test_new_customers_by_month_and_source(data) -> None:
    manager = as_user(data, "mgr")
    assert figures("new_customers", manager, YEAR, "month", "source", "customers") == {
        ("2030-08", "exhibition", 1),  # c1
        ("2030-08", "referral", 1),  # c2
        ("2030-09", "referral", 1),  # c3
        ("2030-09", "website", 1),  # c4
        ("2030-10", "website", 1),  # c5
        ("2030-10", "exhibition", 1),  # c6
        ("2030-11", "", 1),  # c7 (no source)
        ("2030-11", "referral", 1),  # c8
        ("2030-12", "tender", 1),  # c9
        ("2031-01", "website", 1),  # c10
        ("2031-02", "visit", 1),  # c11
        ("2031-03", "visit", 1),  # c12
    }
    # a rep sees their own: r1 has c1-c4 and c11
    assert figures("new_customers", as_user(data, "r1"), YEAR, "month", "source", "customers") == {
        ("2030-08", "exhibition", 1),
        ("2030-08", "referral", 1),
        ("2030-09", "referral", 1),
        ("2030-09", "website", 1),
        ("2031-02", "visit", 1),
    }
    # one month only: October 2030
    october = Filters(date_from=dt.date(2030, 10, 1), date_to=dt.date(2030, 10, 31))
    assert figures("new_customers", manager, october, "month", "source", "customers") == {
        ("2030-10", "website", 1),
        ("2030-10", "exhibition", 1),
    }
    link = chart("new_customers").link({"source": "website"}, YEAR)
    assert link == "/customerview/list/?_flt_3_source=website"


def test_distribution_by_industry_level_and_region(data) -> None:
    manager, names = as_user(data, "mgr"), data["industry_names"]
    industry = figures("by_industry", manager, Filters(), "industry", "customers")
    assert industry == {(names["I1"], 8), (names["I2"], 3), ("未填写", 1)}
    assert figures("by_level", manager, Filters(), "level", "customers") == {
        ("key", 5),  # c1 c2 c3 c9 c11
        ("normal", 6),  # c4 c5 c7 c8 c10 c12
        ("potential", 1),  # c6
    }
    city = chart("by_city").data(db.session, manager, Filters())
    assert {(r.region, r.customers) for r in city.itertuples()} == {
        ("东营市", 7),
        ("青岛市", 4),
        ("未填写", 1),
    }
    assert set(city["code"].dropna().astype(int)) == {370500, 370200}
    district = chart("by_district").data(db.session, manager, Filters())
    assert {(r.region, r.customers) for r in district.itertuples()} == {
        ("东营区", 5),  # c1 c5 c6 c10 c11
        ("河口区", 2),  # c2 c9
        ("未填写", 5),  # c3 c4 c7 c8 c12
    }
    link = chart("by_industry").link({"industry_id": data["industries"]["I1"]}, Filters())
    assert link == f"/customerview/list/?_flt_0_industry={data['industries']['I1']}"
    assert chart("by_level").link({"level": "key"}, Filters()) == "/customerview/list/?_flt_3_level=key"


def test_purchase_frequency_classes_and_their_share_of_revenue(data) -> None:
    manager = as_user(data, "mgr")
    got = figures("purchase_frequency", manager, YEAR, "frequency", "customers", "revenue", "revenue_share")
    # revenue of the year: high c1 6000 + c9 20000; mid c2 1000 + c5 8000; low 300+200+100+50+150+700
    # shares of 36500: 26000 -> 71.2 %, 9000 -> 24.7 %, 1500 -> 4.1 %
    assert got == {
        ("high", 2, 26000.0, 71.2),
        ("mid", 2, 9000.0, 24.7),
        ("low", 6, 1500.0, 4.1),
        ("", 2, 0.0, 0.0),  # c11, c12 not classified yet
    }
    link = chart("purchase_frequency").link({"frequency": "high"}, YEAR)
    assert link == "/customerview/list/?_flt_3_purchase_frequency=high"


def test_rfm_scores_are_quintiles_of_the_twelve_months(data) -> None:
    """R by last order, F by orders, M by amount among the 10 buyers (cume_dist, ties share):
    R: c8 c3 ->1, c6 c7 ->2, c5 c10 ->3, c2 c1 ->4, c4 c9 ->5
    F: six with 1 order -> 6/10 -> 3, c2 c5 (2) -> 4, c1 (3) c9 (4) -> 5
    M: c7 c6 ->1, c8 c4 ->2, c3 c10 ->3, c2 c1 ->4, c5 c9 ->5"""
    key = custom_key_sql(keyed_fields(db.session))
    rfm = rfm_subquery(key, TODAY.date())
    ids = {v: k for k, v in data["customers"].items()}
    scores = {
        ids[row.customer_id]: (row.r, row.f, row.m, row.segment)
        for row in db.session.execute(select(rfm).where(rfm.c.customer_id.in_(list(ids))))
    }
    assert scores == {
        "c1": (4, 5, 4, "vip"),
        "c2": (4, 4, 4, "vip"),
        "c3": (1, 3, 3, "general_retain"),
        "c4": (5, 3, 2, "general_develop"),
        "c5": (3, 4, 5, "keep"),
        "c6": (2, 3, 1, "general_retain"),
        "c7": (2, 3, 1, "general_retain"),
        "c8": (1, 3, 2, "general_retain"),
        "c9": (5, 5, 5, "vip"),
        "c10": (3, 3, 3, "general_retain"),
    }
    manager = as_user(data, "mgr")
    assert figures("rfm", manager, Filters(), "segment", "customers") == {
        ("vip", 3),
        ("keep", 1),
        ("general_develop", 1),
        ("general_retain", 5),
        ("none", 2),  # c11, c12: no order in the 12 months
    }
    assert figures("rfm", as_user(data, "r1"), Filters(), "segment", "customers") == {
        ("vip", 2),  # c1 c2
        ("general_retain", 1),  # c3
        ("general_develop", 1),  # c4
        ("none", 1),  # c11
    }


def test_industry_purchase_frequency_and_averageorder(data) -> None:
    manager, names = as_user(data, "mgr"), data["industry_names"]
    df = chart("industry_value").data(db.session, manager, YEAR)
    got = {
        r.industry: (r.customers, r.orders, r.revenue, r.frequency, r.average_order) for r in df.itertuples()
    }
    # I1: orders c1 3 + c2 2 + c3 1 + c4 1 + c8 1 + c9 4 + c10 1 = 13, amount 28350, 8 customers
    # I2: c5 2 + c6 1 + c7 1 = 4 orders, 8150, 3 customers
    assert got[names["I1"]][:3] == (8, 13, 28350.0)
    assert got[names["I1"]][3] == pytest.approx(13 / 8, abs=0.005)
    assert got[names["I1"]][4] == 2180.77  # 28350 / 13 = 2180.769...
    assert got[names["I2"]] == (3, 4, 8150.0, 1.33, 2037.5)
    assert list(df["industry"]) == [names["I1"], names["I2"]]  # by revenue


def test_data_scope_rep_manager_admin(data) -> None:
    names = data["industry_names"]
    r1, r2 = as_user(data, "r1"), as_user(data, "r2")
    assert figures("by_industry", r1, Filters(), "industry", "customers") == {(names["I1"], 5)}
    assert figures("by_industry", r2, Filters(), "industry", "customers") == {
        (names["I2"], 3),
        (names["I1"], 1),
        ("未填写", 1),
    }
    # r1's revenue: c1 6000 (high), c2 1000 (mid), c3 300 + c4 200 (low)
    assert figures("purchase_frequency", r1, YEAR, "frequency", "revenue") == {
        ("high", 6000.0),
        ("mid", 1000.0),
        ("low", 500.0),
        ("", 0.0),
    }
    # the admin sees everyone's: the department filter gives the manager's numbers, the owner filter r1's
    admin = user("admin")
    department = Filters(department_id=data["department"])
    for key, columns in (("by_level", ("level", "customers")), ("rfm", ("segment", "customers"))):
        assert figures(key, admin, department, *columns) == figures(
            key, as_user(data, "mgr"), Filters(), *columns
        )
    owner = Filters(owner_id=data["people"]["r1"])
    assert figures("by_industry", admin, owner, "industry", "customers") == {(names["I1"], 5)}
    # a rep of another department sees none of these
    assert figures("by_industry", user("rep_c"), Filters(), "industry", "customers").isdisjoint(
        {(names["I1"], 5), (names["I2"], 3)}
    )


def test_filter_and_dimension_by_a_select_custom_field(data) -> None:
    manager, names = as_user(data, "mgr"), data["industry_names"]
    grade_a = Filters(date_from=YEAR.date_from, date_to=YEAR.date_to, custom={data["field"]: "A"})
    # grade A: c1 c2 c5 c8 c9 c11
    assert figures("by_industry", manager, grade_a, "industry", "customers") == {
        (names["I1"], 5),
        (names["I2"], 1),
    }
    assert figures("purchase_frequency", manager, grade_a, "frequency", "customers", "revenue") == {
        ("high", 2, 26000.0),  # c1 c9
        ("mid", 2, 9000.0),  # c2 c5
        ("low", 1, 150.0),  # c8
        ("", 1, 0.0),  # c11
    }
    assert figures("new_customers", manager, grade_a, "month", "customers") == {
        ("2030-08", 1),  # c1, c2 (two sources: two rows of 1)
        ("2030-10", 1),
        ("2030-11", 1),
        ("2030-12", 1),
        ("2031-02", 1),
    }
    by_grade = Filters(dimension=data["field"])
    assert figures("by_custom_field", manager, by_grade, "value", "customers") == {
        ("A", 6),
        ("B", 4),  # c3 c4 c7 c10
        ("未填写", 2),  # c6 c12
    }
    assert chart("by_custom_field").data(db.session, manager, Filters()).empty  # no dimension chosen


def test_a_custom_field_the_rollups_do_not_key_is_refused(data) -> None:
    manager = as_user(data, "mgr")
    for filters in (Filters(custom={data["plain_field"]: "A"}), Filters(dimension=data["plain_field"])):
        key = "by_custom_field" if filters.dimension else "by_industry"
        with pytest.raises(ValidationFailed) as refused:
            chart(key).data(db.session, manager, filters)
        assert data["plain_field"] in str(refused.value)


def test_a_new_order_shows_after_the_refresh(data) -> None:
    """Freshness: the rollups are derived. The company sums (what an admin reads) follow crm_rollup
    on every worker run; the customer dimensions and RFM are rebuilt when an hour old. c12 buys
    for the first time (10 on 2031-06-25, not yet classified): it leaves 'none'."""
    manager, admin = as_user(data, "mgr"), user("admin")
    before = dict(figures("rfm", manager, Filters(), "segment", "customers"))
    revenue_before = dict(figures("purchase_frequency", admin, YEAR, "frequency", "revenue"))
    customer = db.session.get(Customer, data["customers"]["c12"])
    order = new_order(customer, as_user(data, "r2"), "2031-06-25", "approved", 10, None)
    db.session.commit()
    try:
        assert dict(figures("rfm", manager, Filters(), "segment", "customers")) == before  # not yet
        # the worker's run: crm_rollup takes the order in, the company sums follow at once
        refresh_rollups(db.session, utcnow())
        revenue = dict(figures("purchase_frequency", admin, YEAR, "frequency", "revenue"))
        assert revenue[""] == revenue_before.get("", 0.0) + 10.0
        # the customer dimensions: rebuilt when an hour old, not before
        refresh_customer_rollups(db.session, TODAY, force=True)
        assert "customer_dim*" not in refresh_customer_rollups(db.session, TODAY + dt.timedelta(minutes=10))
        assert "customer_dim*" in refresh_customer_rollups(db.session, TODAY + dt.timedelta(hours=1))
        after = dict(figures("rfm", manager, Filters(), "segment", "customers"))
        assert after["none"] == before["none"] - 1
        assert sum(after.values()) == sum(before.values()) == 12
    finally:
        order.status, order.void_reason = "voided", "测试结束"
        db.session.commit()
        refresh_rollups(db.session, utcnow())
        refresh_customer_rollups(db.session, TODAY, force=True)


def test_an_admin_reads_the_company_rows(data) -> None:
    """Without an owner or department filter a user who sees everything reads the sums over every
    owner; they are the owner rows summed (no other test has orders in these months)."""
    admin = user("admin")
    revenue = figures("purchase_frequency", admin, YEAR, "frequency", "revenue")
    assert {(code, amount) for code, amount in revenue if amount} == {
        ("high", 26000.0),
        ("mid", 9000.0),
        ("low", 1500.0),
    }
    names = data["industry_names"]
    value = chart("industry_value").data(db.session, admin, YEAR)
    mine = {r.industry: (r.orders, r.revenue) for r in value.itertuples() if r.industry in names.values()}
    assert mine == {names["I1"]: (13, 28350.0), names["I2"]: (4, 8150.0)}
    rows = db.session.execute(
        select(
            CustomerDimRollup.dim, CustomerDimRollup.company, func.sum(CustomerDimRollup.customers)
        ).group_by(CustomerDimRollup.dim, CustomerDimRollup.company)
    ).all()
    totals: dict[str, dict[bool, int]] = {}
    for dim, company, count in rows:
        totals.setdefault(dim, {})[bool(company)] = int(count)
    assert totals and all(both[True] == both[False] for both in totals.values())


def test_the_dashboard_answers_a_refused_filter_with_400(app, data) -> None:
    client = login(app.test_client(), as_user(data, "mgr").username)
    ok = client.get(f"/dashboards/customers/data/by_level.json?cf_{data['field']}=A")
    assert ok.status_code == 200, ok.get_data(as_text=True)[:300]
    refused = client.get(f"/dashboards/customers/data/by_level.json?cf_{data['plain_field']}=A")
    assert refused.status_code == 400
    assert data["plain_field"] in refused.get_data(as_text=True)
