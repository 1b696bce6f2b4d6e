"""The customers dashboard's test dataset (tests/test_analytics_customers.py and
tests/test_analytics_trends.py), worked out by hand in their docstrings and comments.

The records belong to a department of their own (看板客户部, under 总公司) with its leader `mgr`
(Sales Manager) and reps `r1`, `r2`, so the department filter and the manager's scope see exactly
them; orders and creation dates lie between July 2030 and June 2031, so no other test's records
fall into those months, and the customers' rollups are refreshed "on" TODAY = 2031-06-30 (RFM and
the best customers read the 12 months before it: only these orders). When a module is done its
orders are voided, so the next module's dataset is the only one in those months.

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
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from flask import Flask
from sqlalchemy import select

from app.analytics import CHARTS, Filters
from app.analytics import charts as _charts  # noqa: F401  (registers the charts)
from app.analytics.customer_rollups import refresh_customer_rollups
from app.analytics.rollups import refresh_rollups
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


def at(day: str) -> dt.datetime:
    """02:00 UTC of that day: 10:00 in Shanghai, the same local day."""
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(2))


def new_order(customer: Customer, owner: CrmUser, day: str, status: str, amount: int, product: Any) -> Order:
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
    item.status, item.approved_at = "approved", at(day)
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


def dataset(app: Flask, tag: str) -> Iterator[dict[str, Any]]:
    """Build the dataset (names made unique by `tag`), refresh the rollups, yield its ids; then
    void its orders and retire its users."""
    field_name, plain_name = f"{tag}grade_{PID}", f"{tag}plain_{PID}"
    with app.app_context():
        session = db.session
        fields = [_define(session, field_name, True), _define(session, plain_name, False)]
        bump_version(session)
        root = session.scalar(select(Department).where(Department.parent_id.is_(None)))
        department = Department(name=f"看板客户部{tag}{PID}", parent_id=root.id)
        session.add(department)
        session.commit()
        sm = app.appbuilder.sm
        people: dict[str, CrmUser] = {}
        for key, role in (("mgr", "Sales Manager"), ("r1", "Sales Rep"), ("r2", "Sales Rep")):
            username = f"{tag}{key}{PID}"
            sm.add_user(
                username, username, "Test", f"{username}@test.example.cn", sm.find_role(role), PASSWORD
            )
            person = session.scalar(select(CrmUser).where(CrmUser.username == username))
            person.department_id = department.id
            people[key] = person
        session.commit()
        people["r1"].manager_id = people["r2"].manager_id = people["mgr"].id
        department.leader_id = people["mgr"].id
        industries = {
            key: Industry(name=f"客户看板行业{key}-{tag}{PID}", position=900) for key in ("I1", "I2")
        }
        session.add_all(industries.values())
        products = {
            category: Product(
                sku=f"AC-{category}-{tag}{PID}", name=f"看板{category}", category=category, unit="件"
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
                custom={field_name: grade, plain_name: grade} if grade else {},
                created_at=at(created),
                updated_at=utcnow(),
            )
            session.add(item)
            session.flush()
            customers[name] = item
        orders = []
        for name, day, status, amount, category in ORDERS:
            owner = people[CUSTOMERS[name][0]]
            product = products.get(category) if category else None
            orders.append(new_order(customers[name], owner, day, status, amount, product))
        session.commit()
        refresh_rollups(session, utcnow(), full=True)
        refresh_customer_rollups(session, TODAY, force=True)
        yield {
            "department": department.id,
            "people": {key: person.id for key, person in people.items()},
            "customers": {name: item.id for name, item in customers.items()},
            "industries": {key: item.id for key, item in industries.items()},
            "industry_names": {key: item.name for key, item in industries.items()},
            "field": field_name,
            "plain_field": plain_name,
        }
        session.rollback()
        for order in session.scalars(select(Order).where(Order.id.in_([o.id for o in orders]))):
            if order.status in ("approved", "executing", "completed"):
                order.status, order.void_reason = "voided", "测试结束"
                session.flush()
        for person in session.scalars(select(CrmUser).where(CrmUser.id.in_([p.id for p in people.values()]))):
            person.roles, person.active = [], False  # other tests count the users of a role
        for field in fields:
            if field.indexed:
                sync_indexes(session, Customer, field, deleted=True)
            session.delete(field)
        bump_version(session)
        session.commit()
        refresh_rollups(session, utcnow(), full=True)


def as_user(data: dict[str, Any], key: str) -> CrmUser:
    return db.session.get(CrmUser, data["people"][key]) if key in data["people"] else user(key)


def chart(key: str) -> Any:
    return CHARTS["customers"][key]


def figures(key: str, who: CrmUser, filters: Filters, *columns: str) -> set[tuple]:
    df = chart(key).data(db.session, who, filters)
    return {tuple(row) for row in df[list(columns)].itertuples(index=False)}
