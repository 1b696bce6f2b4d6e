"""The customers dashboard's figures against a small hand-computed dataset (exact), within the
data scope (rep, manager, admin), with a custom-field filter and dimension, and the freshness of
its own rollups.

The records belong to a department of their own (看板客户部, under 总公司) with its leader `mgr`
(Sales Manager) and reps `r1`, `r2`, so the department filter and the manager's scope see exactly
them; orders and creation dates lie between July 2030 and June 2031, so no other test's records
fall into those months, and the customers' rollups are refreshed "on" TODAY = 2031-06-30 (RFM and
the best customers read the 12 months before it: only these orders).

    cust owner ind size   level     city district source     grade freq created
    c1   r1    I1  medium key       东营 东营区   exhibition A     high 2030-08-05
    c2   r1    I1  medium key       东营 河口区   referral   A     mid  2030-08-20
    c3   r1    I1  small  key       青岛 -        referral   B     low  2030-09-10
    c4   r1    I1  medium normal    青岛 -        website    B     low  2030-09-15
    c5   r2    I2  large  normal    东营 东营区   website    A     mid  2030-10-01
    c6   r2    I2  small  potential 东营 东营区   exhibition -     low  2030-10-02
    c7   r2    I2  micro  normal    青岛 -        -          B     low  2030-11-11
    c8   r2    I1  micro  normal    青岛 -        referral   A     low  2030-11-20
    c9   mgr   I1  medium key       东营 河口区   tender     A     high 2030-12-01
    c10  mgr   I1  medium normal    东营 东营区   website    B     low  2031-01-05
    c11  r1    I1  medium key       东营 东营区   visit      A     -    2031-02-10
    c12  r2    -   -      normal    -    -        visit      -     -    2031-03-01
The orders (ORDERS below; 阀 = 阀门, 泵 = 泵, - = a line without product):
    c1 08-10 1000 阀, 01-15 2000 泵, 05-20 3000 阀    c2 09-01 500 阀, 04-10 500 泵 (+ voided 9999)
    c3 10-10 300 泵      c4 06-01 200 阀 (+ pending 888)      c5 11-05 4000 泵, 03-03 4000 泵
    c6 12-12 100 阀      c7 02-02 50 -      c8 07-15 150 阀      c10 03-15 700 阀
    c9 07-20 5000 泵, 10-20 5000 泵, 01-20 5000 泵, 06-20 5000 阀
(order months: 07-12 are 2030, 01-06 are 2031)
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from app.analytics import CHARTS, Filters, charts_of
from app.analytics import charts as _charts  # noqa: F401  (registers the charts)
from app.analytics.customer_rollups import refresh_customer_rollups, rfm_subquery
from app.analytics.rollups import custom_key_sql, keyed_fields, refresh_rollups
from app.errors import ValidationFailed
from app.extensions import db
from customfields.definitions import CustomField, bump_version
from customfields.indexes import sync_indexes
from models.base import utcnow
from models.customers import Customer, Industry
from models.orders import Order, OrderLine
from models.sales import Product
from models.security import CrmUser, Department
from tests.conftest import PASSWORD, unique_name, user

PID = os.getpid()
FIELD = f"cgrade_{PID}"
PLAIN_FIELD = f"cplain_{PID}"  # a select field that is not indexed: the rollups do not key it
TODAY = dt.datetime(2031, 6, 30, 12)
YEAR = Filters(date_from=dt.date(2030, 7, 1), date_to=dt.date(2031, 6, 30))
_numbers = itertools.count(1)

CUSTOMERS = {
    # name: owner, industry, size, level, city, district, source, grade, frequency, created
    "c1": ("r1", "I1", "medium", "key", 370500, 370502, "exhibition", "A", "high", "2030-08-05"),
    "c2": ("r1", "I1", "medium", "key", 370500, 370503, "referral", "A", "mid", "2030-08-20"),
    "c3": ("r1", "I1", "small", "key", 370200, None, "referral", "B", "low", "2030-09-10"),
    "c4": ("r1", "I1", "medium", "normal", 370200, None, "website", "B", "low", "2030-09-15"),
    "c5": ("r2", "I2", "large", "normal", 370500, 370502, "website", "A", "mid", "2030-10-01"),
    "c6": ("r2", "I2", "small", "potential", 370500, 370502, "exhibition", None, "low", "2030-10-02"),
    "c7": ("r2", "I2", "micro", "normal", 370200, None, None, "B", "low", "2030-11-11"),
    "c8": ("r2", "I1", "micro", "normal", 370200, None, "referral", "A", "low", "2030-11-20"),
    "c9": ("mgr", "I1", "medium", "key", 370500, 370503, "tender", "A", "high", "2030-12-01"),
    "c10": ("mgr", "I1", "medium", "normal", 370500, 370502, "website", "B", "low", "2031-01-05"),
    "c11": ("r1", "I1", "medium", "key", 370500, 370502, "visit", "A", None, "2031-02-10"),
    "c12": ("r2", None, None, "normal", None, None, "visit", None, None, "2031-03-01"),
}
ORDERS = [
    # customer, day, status, amount, category (None: a line without a product)
    ("c1", "2030-08-10", "approved", 1000, "阀门"),
    ("c1", "2031-01-15", "completed", 2000, "泵"),
    ("c1", "2031-05-20", "executing", 3000, "阀门"),
    ("c2", "2030-09-01", "approved", 500, "阀门"),
    ("c2", "2031-04-10", "approved", 500, "泵"),
    ("c2", "2031-05-01", "voided", 9999, "泵"),
    ("c3", "2030-10-10", "approved", 300, "泵"),
    ("c4", "2031-06-01", "approved", 200, "阀门"),
    ("c4", "2031-05-05", "pending", 888, "阀门"),
    ("c5", "2030-11-05", "approved", 4000, "泵"),
    ("c5", "2031-03-03", "approved", 4000, "泵"),
    ("c6", "2030-12-12", "approved", 100, "阀门"),
    ("c7", "2031-02-02", "approved", 50, None),
    ("c8", "2030-07-15", "approved", 150, "阀门"),
    ("c9", "2030-07-20", "approved", 5000, "泵"),
    ("c9", "2030-10-20", "approved", 5000, "泵"),
    ("c9", "2031-01-20", "approved", 5000, "泵"),
    ("c9", "2031-06-20", "approved", 5000, "阀门"),
    ("c10", "2031-03-15", "approved", 700, "阀门"),
]


def _at(day: str) -> dt.datetime:
    """02:00 UTC of that day: 10:00 in Shanghai, the same local day."""
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(2))


def _order(customer: Customer, owner: CrmUser, day: str, status: str, amount: int, product: Any) -> Order:
    """An order moved the way orders move: draft -> pending -> approved (-> executing ->
    completed, or voided); app.orders computes the line amounts and the total."""
    item = Order(
        number=f"AC{PID}-{next(_numbers)}",
        title="客户看板测试订单",
        customer_id=customer.id,
        owner_id=owner.id,
        department_id=owner.department_id,
        ordered_on=dt.date.fromisoformat(day),
        lines=[
            OrderLine(
                position=1,
                product_id=product.id if product else None,
                description="客户看板测试",
                quantity=Decimal(amount) / 100,
                unit_price=Decimal(100),
            )
        ],
    )
    db.session.add(item)
    db.session.flush()
    item.status = "pending"
    db.session.flush()
    if status == "pending":
        return item
    item.status, item.approved_at = "approved", _at(day)
    db.session.flush()
    following = {"executing": ["executing"], "completed": ["executing", "completed"], "voided": ["voided"]}
    for step in following.get(status, []):
        item.status = step
        if step == "voided":
            item.void_reason = "客户取消"
        db.session.flush()
    return item


def _define(session: Any, api_name: str, indexed: bool) -> CustomField:
    field = CustomField(
        entity="customer",
        api_name=api_name,
        label_zh="客户看板等级",
        field_type="select",
        choices=["A", "B"],
        indexed=indexed,
    )
    session.add(field)
    session.flush()
    if indexed:
        sync_indexes(session, Customer, field)
    return field


@pytest.fixture(scope="module")
def data(app) -> Any:
    with app.app_context():
        session = db.session
        fields = [_define(session, FIELD, True), _define(session, PLAIN_FIELD, False)]
        bump_version(session)
        root = session.scalar(select(Department).where(Department.parent_id.is_(None)))
        department = Department(name=f"看板客户部{PID}", parent_id=root.id)
        session.add(department)
        session.commit()
        sm = app.appbuilder.sm
        people: dict[str, CrmUser] = {}
        for key, role in (("mgr", "Sales Manager"), ("r1", "Sales Rep"), ("r2", "Sales Rep")):
            username = f"cd{key}{PID}"
            sm.add_user(
                username, username, "Test", f"{username}@test.example.cn", sm.find_role(role), PASSWORD
            )
            person = session.scalar(select(CrmUser).where(CrmUser.username == username))
            person.department_id = department.id
            people[key] = person
        session.commit()
        people["r1"].manager_id = people["r2"].manager_id = people["mgr"].id
        department.leader_id = people["mgr"].id
        industries = {key: Industry(name=f"客户看板行业{key}-{PID}", position=900) for key in ("I1", "I2")}
        session.add_all(industries.values())
        products = {
            category: Product(
                sku=f"AC-{category}-{PID}", name=f"看板{category}", category=category, unit="件"
            )
            for category in ("阀门", "泵")
        }
        session.add_all(products.values())
        session.flush()
        customers: dict[str, Customer] = {}
        for name, row in CUSTOMERS.items():
            owner, industry, size, level, city, district, source, grade, frequency, created = row
            who = people[owner]
            item = Customer(
                name=unique_name(f"客户看板{name}-"),
                owner_id=who.id,
                department_id=department.id,
                industry_id=industries[industry].id if industry else None,
                size=size,
                level=level,
                province_code=370000 if city else None,
                city_code=city,
                district_code=district,
                source=source,
                purchase_frequency=frequency,
                custom={FIELD: grade, PLAIN_FIELD: grade} if grade else {},
                created_at=_at(created),
                updated_at=utcnow(),
            )
            session.add(item)
            session.flush()
            customers[name] = item
        for name, day, status, amount, category in ORDERS:
            owner = people[CUSTOMERS[name][0]]
            _order(customers[name], owner, day, status, amount, products.get(category) if category else None)
        session.commit()
        refresh_rollups(session, utcnow(), full=True)
        refresh_customer_rollups(session, TODAY, force=True)
        yield {
            "department": department.id,
            "people": {key: person.id for key, person in people.items()},
            "customers": {name: item.id for name, item in customers.items()},
            "industries": {key: item.id for key, item in industries.items()},
            "industry_names": {key: item.name for key, item in industries.items()},
        }
        session.rollback()
        for person in session.scalars(select(CrmUser).where(CrmUser.id.in_([p.id for p in people.values()]))):
            person.roles, person.active = [], False  # other tests count the users of a role
        for field in fields:
            if field.indexed:
                sync_indexes(session, Customer, field, deleted=True)
            session.delete(field)
        bump_version(session)
        session.commit()
        refresh_customer_rollups(session, utcnow(), force=True)


def as_user(data: dict[str, Any], key: str) -> CrmUser:
    return db.session.get(CrmUser, data["people"][key]) if key in data["people"] else user(key)


def chart(key: str) -> Any:
    return CHARTS["customers"][key]


def figures(key: str, who: CrmUser, filters: Filters, *columns: str) -> set[tuple]:
    df = chart(key).data(db.session, who, filters)
    return {tuple(row) for row in df[list(columns)].itertuples(index=False)}


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
    filters = Filters(date_from=YEAR.date_from, date_to=YEAR.date_to, dimension=FIELD)
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


def test_industry_purchase_frequency_and_average_order(data) -> None:
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
    grade_a = Filters(date_from=YEAR.date_from, date_to=YEAR.date_to, custom={FIELD: "A"})
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
    by_grade = Filters(dimension=FIELD)
    assert figures("by_custom_field", manager, by_grade, "value", "customers") == {
        ("A", 6),
        ("B", 4),  # c3 c4 c7 c10
        ("未填写", 2),  # c6 c12
    }
    assert chart("by_custom_field").data(db.session, manager, Filters()).empty  # no dimension chosen


def test_a_custom_field_the_rollups_do_not_key_is_refused(data) -> None:
    manager = as_user(data, "mgr")
    for filters in (Filters(custom={PLAIN_FIELD: "A"}), Filters(dimension=PLAIN_FIELD)):
        key = "by_custom_field" if filters.dimension else "by_industry"
        with pytest.raises(ValidationFailed) as refused:
            chart(key).data(db.session, manager, filters)
        assert PLAIN_FIELD in str(refused.value)


def test_a_new_order_shows_after_the_refresh(data) -> None:
    """Freshness: the rollups are derived; the next refresh (the worker, hourly at the latest for
    these) brings a new order in. c12 buys for the first time: it leaves 'none'."""
    manager = as_user(data, "mgr")
    before = dict(figures("rfm", manager, Filters(), "segment", "customers"))
    customer = db.session.get(Customer, data["customers"]["c12"])
    order = _order(customer, as_user(data, "r2"), "2031-06-25", "approved", 10, None)
    db.session.commit()
    try:
        assert dict(figures("rfm", manager, Filters(), "segment", "customers")) == before  # not yet
        assert refresh_customer_rollups(db.session, TODAY + dt.timedelta(minutes=10)) == {}  # fresh enough
        refresh_customer_rollups(db.session, TODAY + dt.timedelta(hours=1))
        after = dict(figures("rfm", manager, Filters(), "segment", "customers"))
        assert after["none"] == before["none"] - 1
        assert sum(after.values()) == sum(before.values()) == 12
    finally:
        order.status, order.void_reason = "voided", "测试结束"
        db.session.commit()
        refresh_customer_rollups(db.session, TODAY, force=True)
