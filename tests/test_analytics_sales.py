"""The sales dashboard's figures against a small hand-computed dataset (exact), within the data
scope (rep, manager, admin), with a custom-field filter and dimension, and the rollups' freshness
(a new approved order shows after refresh_rollups; a voided one leaves).

The records live in 2017-2018 so that no other test's records fall into these months. Every
expected figure is worked out by hand in the comments of DATA below, not with the same SQL.

    customers  C1 rep_a (一部) grade A, local (本地), created 2018-01-10
               C2 rep_b (一部) grade B, remote (外地), created 2018-02-05
               C3 rep_c (二部) grade A, locality empty, created 2018-02-20
    orders     O1 2018-01-15 rep_a C1 approved   1000  line P1 x10
               O2 2018-01-20 rep_a C1 completed   500  line P2 x5
               O3 2018-02-10 rep_b C2 executing  2000  line P1 x20
               O4 2018-02-12 rep_c C3 approved   3000  line P2 x30
               O5 2018-03-05 rep_a C1 voided      700  (never counts)
               O6 2018-03-06 rep_b C2 pending     800  (never counts)
               O7 2017-01-25 rep_a C1 approved    400  line P1 x4 (last year's January)
               O8 2018-03-10 rep_c C3 approved    600  line P1 x6
    plans      O4: 3000 due 2018-02-28, 1000 collected, overdue; O3: 2000 due 2018-03-15, done
    payments   O4 1000 on 2018-03-01 approved; O3 2000 on 2018-03-20 approved;
               O5 300 on 2018-03-02 approved (voided order: never counts); O1 250 draft (never)
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, select

from app.analytics import CHARTS, Filters, charts_of, sales, top_customers
from app.analytics.rollups import custom_key_sql, keyed_fields, refresh_rollups
from app.errors import ValidationFailed
from app.extensions import db
from customfields.definitions import CustomField, bump_version
from customfields.indexes import sync_indexes
from models.analytics import Rollup, RollupState, TopCustomerRollup
from models.base import utcnow
from models.customers import Customer
from models.orders import Order, OrderLine, Payment, PaymentPlan, SalesTarget
from models.pools import CustomerPool, PoolMove
from models.sales import Interaction, Opportunity, Pipeline, Product, Stage, StageChange
from models.security import Department
from tests.conftest import unique_name, user

_numbers = itertools.count(1)
FIELD = f"grade_{os.getpid()}"
Q1 = Filters(date_from=dt.date(2018, 1, 1), date_to=dt.date(2018, 3, 31))


def _at(day: str, hour: int = 2) -> dt.datetime:
    """A moment of that day in UTC (02:00 UTC is 10:00 in Shanghai: the same local day)."""
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour))


def _order(
    customer: Customer, owner: str, day: str, status: str, amount: str, product: Product | None
) -> Order:
    """An order moved the way orders move: draft -> pending -> approved (-> executing -> completed,
    or voided)."""
    who = user(owner)
    item = Order(
        number=f"AS{os.getpid()}-{next(_numbers)}",
        title="看板测试订单",
        customer_id=customer.id,
        owner_id=who.id,
        department_id=who.department_id,
        ordered_on=dt.date.fromisoformat(day),
        lines=[
            OrderLine(
                position=1,
                product_id=product.id if product else None,
                description="看板测试",
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


def _payment(order: Order, amount: int, day: str, plan: PaymentPlan | None, approved: bool = True) -> Payment:
    item = Payment(
        order_id=order.id, plan_id=plan.id if plan else None, amount=Decimal(amount),
        received_on=dt.date.fromisoformat(day),
    )  # fmt: skip
    db.session.add(item)
    db.session.flush()
    if approved:
        item.status = "pending"
        db.session.flush()
        item.status, item.approved_at = "approved", _at(day)
        db.session.flush()
    return item


@pytest.fixture(scope="module")
def data(app) -> Any:
    with app.app_context():
        session = db.session
        field = CustomField(
            entity="customer",
            api_name=FIELD,
            label_zh="看板等级",
            field_type="select",
            choices=["A", "B"],
            indexed=True,
        )
        session.add(field)
        session.flush()
        sync_indexes(session, Customer, field)
        bump_version(session)
        departments = {d.name: d.id for d in session.scalars(select(Department))}

        def customer(owner: str, grade: str, created: str, locality: str | None = None) -> Customer:
            who = user(owner)
            item = Customer(
                locality=locality,
                name=unique_name("看板客户"),
                owner_id=who.id,
                department_id=who.department_id,
                custom={FIELD: grade},
                created_at=_at(created),
                updated_at=utcnow(),
            )
            session.add(item)
            session.flush()
            return item

        c1 = customer("rep_a", "A", "2018-01-10", "local")
        c2 = customer("rep_b", "B", "2018-02-05", "remote")
        c3 = customer("rep_c", "A", "2018-02-20")
        p1 = Product(sku=f"AS-P1-{os.getpid()}", name="看板阀门", category="阀门", unit="件")
        p2 = Product(sku=f"AS-P2-{os.getpid()}", name="看板水泵", category="泵", unit="台")
        session.add_all([p1, p2])
        session.flush()
        o1 = _order(c1, "rep_a", "2018-01-15", "approved", "1000", p1)
        _order(c1, "rep_a", "2018-01-20", "completed", "500", p2)
        o3 = _order(c2, "rep_b", "2018-02-10", "executing", "2000", p1)
        o4 = _order(c3, "rep_c", "2018-02-12", "approved", "3000", p2)
        o5 = _order(c1, "rep_a", "2018-03-05", "approved", "700", p1)  # voided below
        _order(c2, "rep_b", "2018-03-06", "pending", "800", p1)
        _order(c1, "rep_a", "2017-01-25", "approved", "400", p1)
        _order(c3, "rep_c", "2018-03-10", "approved", "600", p1)
        plan4 = PaymentPlan(
            order_id=o4.id, number=1, planned_amount=Decimal(3000), planned_date=dt.date(2018, 2, 28)
        )
        plan3 = PaymentPlan(
            order_id=o3.id, number=1, planned_amount=Decimal(2000), planned_date=dt.date(2018, 3, 15)
        )
        session.add_all([plan4, plan3])
        session.flush()
        _payment(o4, 1000, "2018-03-01", plan4)  # plan4: 1000 of 3000, its date passed: overdue
        _payment(o3, 2000, "2018-03-20", plan3)  # plan3: done
        _payment(o5, 300, "2018-03-02", None)  # approved before O5 is voided below
        _payment(o1, 250, "2018-01-30", None, approved=False)  # a draft
        o5.status, o5.void_reason = "voided", "客户取消"
        session.flush()
        # the plans as the approvals and the daily overdue run leave them (app.orders)
        plan4.collected_amount, plan4.status = Decimal(1000), "overdue"
        plan3.collected_amount, plan3.status = Decimal(2000), "done"
        session.flush()
        # follow-ups: rep_a twice (Jan, Feb), rep_b once (Feb)
        for owner, cust, day in (
            ("rep_a", c1, "2018-01-11"),
            ("rep_a", c1, "2018-02-11"),
            ("rep_b", c2, "2018-02-12"),
        ):
            session.add(
                Interaction(
                    customer_id=cust.id, owner_id=user(owner).id, occurred_at=_at(day), content="跟进"
                )
            )
        # the pipeline: S1 (10%), S2 (50%), won, lost
        pipeline = Pipeline(name=f"看板流程{os.getpid()}", position=999)
        s1 = Stage(name="初步", position=1, probability=10)
        s2 = Stage(name="方案", position=2, probability=50)
        won = Stage(name="赢单", position=3, probability=100, is_won=True)
        lost = Stage(name="输单", position=4, probability=0, is_lost=True)
        pipeline.stages = [s1, s2, won, lost]
        session.add(pipeline)
        session.flush()

        def opportunity(owner: str, cust: Customer, amount: int, stage: Stage, **extra: Any) -> Opportunity:
            who = user(owner)
            item = Opportunity(
                name=unique_name("看板商机"),
                customer_id=cust.id,
                owner_id=who.id,
                department_id=who.department_id,
                pipeline_id=pipeline.id,
                stage_id=stage.id,
                amount=Decimal(amount),
                **extra,
            )
            session.add(item)
            session.flush()
            return item

        op1 = opportunity("rep_a", c1, 10000, s2, expected_close=dt.date(2018, 4, 10))  # weighted 5000
        op2 = opportunity("rep_b", c2, 20000, s1, expected_close=dt.date(2018, 4, 20), probability=30)  # 6000
        op3 = opportunity("rep_c", c3, 5000, s2, expected_close=dt.date(2018, 5, 5))  # 2500
        op4 = opportunity(
            "rep_a", c1, 8000, won, status="won", closed_at=_at("2018-02-15"), close_reason="价格合适"
        )
        op5 = opportunity(
            "rep_c", c3, 3000, lost, status="lost", closed_at=_at("2018-03-15"), close_reason="价格太高"
        )
        op6 = opportunity(
            "rep_b", c2, 4000, lost, status="lost", closed_at=_at("2018-03-20"), close_reason="价格太高"
        )
        history = [
            (op1, None, s1, "2018-01-01"),
            (op1, s1, s2, "2018-01-11"),  # 10 days in S1
            (op2, None, s1, "2018-01-05"),
            (op3, None, s1, "2018-01-02"),
            (op3, s1, s2, "2018-01-22"),  # 20 days in S1
            (op4, None, s1, "2018-01-03"),
            (op4, s1, s2, "2018-01-13"),
            (op4, s2, won, "2018-02-15"),  # 10, 33
            (op5, None, s1, "2018-01-04"),
            (op5, s1, lost, "2018-03-15"),  # 70 days in S1
            (op6, None, s1, "2018-01-06"),
            (op6, s1, s2, "2018-01-16"),
            (op6, s2, lost, "2018-03-20"),  # 10, 63
        ]
        for item, before, after, day in history:
            session.add(
                StageChange(
                    opportunity_id=item.id,
                    from_stage_id=before.id if before else None,
                    to_stage_id=after.id,
                    changed_at=_at(day),
                )
            )
        pool = CustomerPool(name=f"看板公海{os.getpid()}")
        session.add(pool)
        session.flush()
        moves = [
            # Wednesday 10 Jan (week of Monday 8 Jan): rep_b's C2 recycled, claimed by rep_a the next day
            ("recycle", c2, "rep_b", None, "2018-01-10", f"自动回收公海「{pool.name}」: 未跟进 30 天"),
            ("claim", c2, None, "rep_a", "2018-01-11", None),
            ("release", c1, "rep_a", None, "2018-01-12", "不需要了"),  # neither recycled nor claimed
            (
                "recycle",
                c3,
                "rep_c",
                None,
                "2018-01-17",
                f"自动回收公海「{pool.name}」: 未成交 90 天",
            ),  # 15 Jan
        ]
        for action, cust, lost_by, got_by, day, reason in moves:
            session.add(
                PoolMove(
                    customer_id=cust.id,
                    action=action,
                    pool_id=pool.id,
                    reason=reason,
                    moved_at=_at(day),
                    from_user_id=user(lost_by).id if lost_by else None,
                    to_user_id=user(got_by).id if got_by else None,
                )
            )
        # targets of 2018
        session.add_all(
            [
                SalesTarget(
                    user_id=user("rep_a").id,
                    period="month",
                    period_start=dt.date(2018, 1, 1),
                    metric="contract",
                    amount=Decimal(3000),
                ),
                SalesTarget(
                    department_id=departments["二部"],
                    period="quarter",
                    period_start=dt.date(2018, 1, 1),
                    metric="contract",
                    amount=Decimal(10000),
                ),
                SalesTarget(
                    user_id=user("rep_b").id,
                    period="year",
                    period_start=dt.date(2018, 1, 1),
                    metric="collected",
                    amount=Decimal(4000),
                ),
            ]
        )
        session.commit()
        refresh_rollups(session, utcnow(), full=True)
        yield {
            "customers": (c1.id, c2.id, c3.id),
            "products": (p1.id, p2.id),
            "pipeline": pipeline.id,
            "stages": (s1.id, s2.id, won.id, lost.id),
            "departments": departments,
        }
        session.rollback()
        session.execute(delete(SalesTarget).where(SalesTarget.period_start < dt.date(2019, 1, 1)))
        field = session.scalar(select(CustomField).where(CustomField.api_name == FIELD))
        sync_indexes(session, Customer, field, deleted=True)
        session.delete(field)
        bump_version(session)
        session.commit()


def rows(df: Any, *columns: str) -> list[tuple]:
    return [tuple(row) for row in df[list(columns)].itertuples(index=False)]


def test_every_sales_chart_is_registered_and_draws(data) -> None:
    keys = {chart.key for chart in charts_of("sales")}
    assert keys == {c.key for c in sales.CHARTS}
    assert set(sales.DIMENSION_CHARTS) <= keys
    admin = user("admin")
    for chart in charts_of("sales"):
        df = chart.data(db.session, admin, Q1)
        assert len(df.index) > 0, chart.key
        if chart.figure is not None:
            assert chart.figure(df, Q1).to_json()
        if chart.link is not None and len(df.index):
            link = chart.link(df.iloc[0].to_dict(), Q1)
            assert link is None or link.startswith("/")
    assert CHARTS["sales"]["revenue"].title


def test_revenue_by_month_with_last_year(data) -> None:
    df = sales.revenue_by_month(db.session, user("admin"), Q1)
    # Jan: O1 1000 + O2 500 (last January: O7 400); Feb: O3 2000 + O4 3000;
    # Mar: O8 600 (O5 voided, O6 pending)
    assert rows(df, "month", "revenue", "orders", "revenue_last_year") == [
        ("2018-01", 1500.0, 2, 400.0),
        ("2018-02", 5000.0, 2, 0.0),
        ("2018-03", 600.0, 1, 0.0),
    ]
    link = sales.order_month_link({"month": "2018-02"}, Filters(owner_id=7))
    assert link == "/orderview/list/?_flt_1_ordered_on=2018-01-31&_flt_2_ordered_on=2018-03-01&_flt_0_owner=7"


def test_data_scope_rep_manager_admin(data) -> None:
    # rep_a: only O1, O2 (and O7 last year)
    rep = sales.revenue_by_month(db.session, user("rep_a"), Q1)
    assert rows(rep, "revenue", "revenue_last_year") == [(1500.0, 400.0), (0.0, 0.0), (0.0, 0.0)]
    # manager1 (一部 tree: rep_a, rep_b): Jan 1500, Feb O3 2000; not rep_c's
    # the admin filtering by rep_a reads the owner-grain rows; without an owner filter, the
    # department-grain copy (the other tests' admin figures): the same numbers either way
    mine = Filters(date_from=Q1.date_from, date_to=Q1.date_to, owner_id=user("rep_a").id)
    assert rows(sales.revenue_by_month(db.session, user("admin"), mine), "revenue") == rows(rep, "revenue")
    team2 = Filters(date_from=Q1.date_from, date_to=Q1.date_to, department_id=data["departments"]["二部"])
    assert rows(sales.revenue_by_month(db.session, user("admin"), team2), "revenue") == [
        (0.0,),
        (3000.0,),
        (600.0,),
    ]
    manager = sales.revenue_by_month(db.session, user("manager1"), Q1)
    assert rows(manager, "revenue") == [(1500.0,), (2000.0,), (0.0,)]
    # rep_c sees neither rep_a's customers nor their funnel
    top = sales.top_customers(db.session, user("rep_c"), Q1)
    assert rows(top, "customer_id", "revenue") == [(data["customers"][2], 3600.0)]
    ranking = sales.ranking_people(db.session, user("rep_a"), Q1)
    assert set(ranking["id"]) == {user("rep_a").id}


def test_orders_and_average_order_value(data) -> None:
    df = sales.orders_and_average(db.session, user("admin"), Q1)
    # Jan 1500 / 2 = 750; Feb 5000 / 2 = 2500; Mar 600 / 1
    assert rows(df, "month", "orders", "revenue", "average_order_value") == [
        ("2018-01", 2, 1500.0, 750.0),
        ("2018-02", 2, 5000.0, 2500.0),
        ("2018-03", 1, 600.0, 600.0),
    ]


def test_top_customers_and_products(data) -> None:
    c1, c2, c3 = data["customers"]
    p1, p2 = data["products"]
    top = sales.top_customers(db.session, user("admin"), Q1)
    # C3: O4 3000 + O8 600; C2: O3 2000; C1: O1 1000 + O2 500
    assert rows(top, "customer_id", "orders", "revenue") == [
        (c3, 2, 3600.0),
        (c2, 1, 2000.0),
        (c1, 2, 1500.0),
    ]
    products = sales.top_products(db.session, user("admin"), Q1)
    # P1: O1 1000 + O3 2000 + O8 600 (quantities 10 + 20 + 6); P2: O2 500 + O4 3000 (5 + 30)
    assert rows(products, "product_id", "category", "lines", "quantity", "revenue") == [
        (p1, "阀门", 3, 36.0, 3600.0),
        (p2, "泵", 2, 35.0, 3500.0),
    ]


def test_rankings_per_person_and_department(data) -> None:
    a, b, c = (user(name).id for name in ("rep_a", "rep_b", "rep_c"))
    people = sales.ranking_people(db.session, user("admin"), Q1)

    def ranked(df: Any, metric: str) -> list[tuple]:
        return rows(df[df["metric"] == metric], "rank", "id", "value")

    assert ranked(people, "contract") == [(1, c, 3600.0), (2, b, 2000.0), (3, a, 1500.0)]
    assert ranked(people, "collected") == [(1, b, 2000.0), (2, c, 1000.0)]  # O5's 300: voided order
    assert ranked(people, "new_customers") == [(1, a, 1), (2, b, 1), (3, c, 1)]  # ties by id
    assert ranked(people, "followups") == [(1, a, 2), (2, b, 1)]
    team1, team2 = data["departments"]["一部"], data["departments"]["二部"]
    departments = sales.ranking_departments(db.session, user("admin"), Q1)
    assert ranked(departments, "contract") == [(1, team2, 3600.0), (2, team1, 3500.0)]
    assert ranked(departments, "collected") == [(1, team1, 2000.0), (2, team2, 1000.0)]
    assert ranked(departments, "new_customers") == [(1, team1, 2), (2, team2, 1)]
    assert ranked(departments, "followups") == [(1, team1, 3)]


def test_targets_against_actuals(data) -> None:
    df = sales.targets(db.session, user("admin"), Q1)
    # rep_a January: O1 1000 + O2 500 approved in January = 1500 of 3000 (50%); 二部 Q1: O4 3000 +
    # O8 600 = 3600 of 10000 (36%); rep_b's year, collected: O3's 2000 of 4000 (50%)
    assert rows(df, "period", "who", "metric", "target", "actual", "completion") == [
        ("month", str(user("rep_a")), "contract", 3000.0, 1500.0, 50.0),
        ("quarter", "二部", "contract", 10000.0, 3600.0, 36.0),
        ("year", str(user("rep_b")), "collected", 4000.0, 2000.0, 50.0),
    ]
    assert list(sales.targets(db.session, user("rep_a"), Q1)["who"]) == [str(user("rep_a"))]
    # manager1 (一部): rep_a's and rep_b's targets, not 二部's
    assert len(sales.targets(db.session, user("manager1"), Q1).index) == 2


def test_collections_by_month(data) -> None:
    df = sales.collections(db.session, user("admin"), Q1)
    # Feb: O4's plan 3000, 1000 collected, overdue: 2000 outstanding; Mar: O3's plan 2000;
    # collected in March: 1000 (O4) + 2000 (O3); O5's 300 voided, O1's 250 a draft
    assert rows(df, "month", "planned", "collected", "overdue") == [
        ("2018-01", 0.0, 0.0, 0.0),
        ("2018-02", 3000.0, 0.0, 2000.0),
        ("2018-03", 2000.0, 3000.0, 0.0),
    ]


def test_funnel_velocity_forecast_and_reasons(data) -> None:
    s1, s2, won, _lost = data["stages"]
    filters = Filters(date_from=Q1.date_from, date_to=Q1.date_to, pipeline_id=data["pipeline"])
    funnel = sales.funnel(db.session, user("admin"), filters)
    # entries: S1 all six; S2 OP1, OP3, OP4, OP6 (4 of 6: 66.7%); won OP4 (1 of 4: 25%)
    assert rows(funnel, "stage_id", "entries", "conversion") == [
        (s1, 6, 100.0),
        (s2, 4, 66.7),
        (won, 1, 25.0),
    ]
    mine = sales.funnel(db.session, user("rep_a"), filters)  # OP1, OP4
    assert rows(mine, "entries", "conversion") == [(2, 100.0), (2, 100.0), (1, 50.0)]
    velocity = sales.velocity(db.session, user("admin"), filters)
    # left S1: 10 + 20 + 10 + 70 + 10 = 120 days over 5; left S2: 33 + 63 = 96 over 2
    assert rows(velocity, "stage_id", "moves_out", "average_days") == [(s1, 5, 24.0), (s2, 2, 48.0)]
    spring = Filters(
        date_from=dt.date(2018, 4, 1), date_to=dt.date(2018, 5, 31), pipeline_id=data["pipeline"]
    )
    forecast = sales.forecast(db.session, user("admin"), spring)
    # April: OP1 10000 x 50% + OP2 20000 x 30% (its own probability); May: OP3 5000 x 50%
    assert rows(forecast, "month", "opportunities", "amount", "weighted") == [
        ("2018-04", 2, 30000.0, 11000.0),
        ("2018-05", 1, 5000.0, 2500.0),
    ]
    assert rows(sales.forecast(db.session, user("rep_a"), spring), "amount", "weighted") == [
        (10000.0, 5000.0),
        (0.0, 0.0),
    ]
    reasons = sales.won_lost(db.session, user("admin"), filters)
    assert rows(reasons, "status", "reason", "opportunities", "amount") == [
        ("won", "价格合适", 1, 8000.0),
        ("lost", "价格太高", 2, 7000.0),
    ]


def test_pool_recycled_and_claimed_per_week(data) -> None:
    team1, team2 = data["departments"]["一部"], data["departments"]["二部"]
    january = Filters(date_from=dt.date(2018, 1, 1), date_to=dt.date(2018, 1, 31))
    df = sales.pool_moves(db.session, user("admin"), january)
    assert rows(df, "week", "action", "rule", "department_id", "department", "moves") == [
        ("2018-01-08", "claim", "", team1, "一部", 1),
        ("2018-01-08", "recycle", "未跟进 30 天", team1, "一部", 1),
        ("2018-01-15", "recycle", "未成交 90 天", team2, "二部", 1),
    ]
    # the figure: per week, then per department (a two-level axis), stacked by action and rule
    figure = sales.pool_figure(df, january)
    bars = {
        (trace.name, week, department): moves
        for trace in figure.data
        for week, department, moves in zip(trace.x[0], trace.x[1], trace.y, strict=True)
    }
    assert bars == {
        ("领取", "2018-01-08", "一部"): 1,
        ("自动回收 未跟进 30 天", "2018-01-08", "一部"): 1,
        ("自动回收 未成交 90 天", "2018-01-15", "二部"): 1,
    }


def test_locality_splits_and_filters_the_charts(data) -> None:
    """C1 local, C2 remote, C3 empty: revenue Jan 1500 local; Feb 2000 remote + 3000 empty;
    Mar 600 empty. Collected in March: O4 1000 (C3, empty), O3 2000 (C2, remote)."""
    split = Filters(date_from=Q1.date_from, date_to=Q1.date_to, dimension="locality")
    df = sales.revenue_by_month(db.session, user("admin"), split)
    assert rows(df[df["revenue"] > 0], "month", "dimension", "revenue") == [
        ("2018-01", "本地客户", 1500.0),
        ("2018-02", "", 3000.0),
        ("2018-02", "外地客户", 2000.0),
        ("2018-03", "", 600.0),
    ]
    assert sales.revenue_figure(df, split).to_json()
    orders = sales.orders_and_average(db.session, user("manager1"), split)  # 一部: C1, C2
    assert rows(orders[orders["orders"] > 0], "month", "dimension", "orders") == [
        ("2018-01", "本地客户", 2),
        ("2018-02", "外地客户", 1),
    ]
    collections = sales.collections(db.session, user("admin"), split)
    assert rows(collections[collections["month"] == "2018-03"], "dimension", "collected") == [
        ("", 1000.0),
        ("外地客户", 2000.0),
    ]
    spring = Filters(date_from=dt.date(2018, 4, 1), date_to=dt.date(2018, 5, 31), dimension="locality")
    forecast = sales.forecast(db.session, user("admin"), spring)
    # April: OP1 (C1 local) 10000 x 50%, OP2 (C2 remote) 20000 x 30%; May: OP3 (C3) 5000 x 50%
    assert rows(forecast[forecast["amount"] > 0], "month", "dimension", "weighted") == [
        ("2018-04", "外地客户", 6000.0),
        ("2018-04", "本地客户", 5000.0),
        ("2018-05", "", 2500.0),
    ]
    local = Filters(date_from=Q1.date_from, date_to=Q1.date_to, custom={"locality": "local"})
    assert rows(sales.revenue_by_month(db.session, user("admin"), local), "revenue") == [
        (1500.0,),
        (0.0,),
        (0.0,),
    ]
    remote = Filters(date_from=Q1.date_from, date_to=Q1.date_to, custom={"locality": "remote"})
    top = sales.top_customers(db.session, user("manager1"), remote)  # the live query
    assert rows(top, "customer_id", "revenue") == [(data["customers"][1], 2000.0)]


@pytest.mark.parametrize(("top", "candidates"), [(10, 1), (1, 2), (1, 1), (10, 200)])
def test_live_top_customers_with_a_filter_test_the_largest_first(data, monkeypatch, top, candidates) -> None:
    """The live top customers test a custom-field filter on the largest customers first and on all
    of them when too few of those match: the same answer either way (grade A: C3, then C1)."""
    monkeypatch.setattr(sales, "TOP", top)
    monkeypatch.setattr(sales, "CANDIDATES", candidates)
    graded = Filters(date_from=Q1.date_from, date_to=Q1.date_to, custom={FIELD: "A"})
    found = sales.top_customers(db.session, user("admin"), graded)  # Q1 2018: not a quick range
    assert list(found["customer_id"]) == [data["customers"][2], data["customers"][0]][:top]


def test_links_open_the_lists_of_the_bars(data, login_as) -> None:
    """A few links as the browser follows them: each opens a list (200) showing that bar's rows."""
    client = login_as("admin")
    january = Filters(date_from=dt.date(2018, 1, 1), date_to=dt.date(2018, 1, 31))
    pool = sales.pool_moves(db.session, user("admin"), january)
    recycled = pool[pool["week"] == "2018-01-15"].iloc[0].to_dict()
    page = client.get(sales.pool_link(recycled, january))
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "未成交 90 天" in text and "未跟进 30 天" not in text  # the week of 15 Jan only
    targets = sales.targets(db.session, user("admin"), Q1)
    page = client.get(CHARTS["sales"]["targets"].link(targets.iloc[1].to_dict(), Q1))
    assert page.status_code == 200 and "10,000" in page.get_data(as_text=True).replace("10000", "10,000")
    people = sales.ranking_people(db.session, user("admin"), Q1)
    followups = people[(people["metric"] == "followups") & (people["id"] == user("rep_a").id)]
    link = sales.person_link(followups.iloc[0].to_dict(), Q1)
    page = client.get(link)
    assert page.status_code == 200
    assert page.get_data(as_text=True).count("跟进") >= 2
    assert CHARTS["sales"]["ranking_departments"].link is None  # no list filters by department


def test_custom_field_filter_and_dimension(data) -> None:
    graded = Filters(date_from=Q1.date_from, date_to=Q1.date_to, custom={FIELD: "A"})
    # grade A: C1 (O1, O2) and C3 (O4, O8)
    df = sales.revenue_by_month(db.session, user("admin"), graded)
    assert rows(df, "revenue") == [(1500.0,), (3000.0,), (600.0,)]
    top = sales.top_customers(db.session, user("admin"), graded)
    assert list(top["customer_id"]) == [data["customers"][2], data["customers"][0]]
    split = Filters(date_from=Q1.date_from, date_to=Q1.date_to, dimension=FIELD)
    df = sales.revenue_by_month(db.session, user("admin"), split)
    assert rows(df[df["revenue"] > 0], "month", "dimension", "revenue") == [
        ("2018-01", "A", 1500.0),
        ("2018-02", "A", 3000.0),
        ("2018-02", "B", 2000.0),
        ("2018-03", "A", 600.0),
    ]
    assert sales.revenue_figure(df, split).to_json()
    collections = sales.collections(db.session, user("admin"), split)
    assert rows(collections[collections["month"] == "2018-03"], "dimension", "collected") == [
        ("A", 1000.0),
        ("B", 2000.0),
    ]


@pytest.mark.parametrize(
    "filters", [Filters(custom={"no_such_field": "A"}), Filters(dimension="no_such_field")]
)
def test_an_unkeyed_custom_field_is_refused_with_a_message(data, filters) -> None:
    with pytest.raises(ValidationFailed) as refused:
        sales.revenue_by_month(db.session, user("admin"), filters)
    assert "no_such_field" in str(refused.value.errors)


def test_rollups_stay_fresh(data) -> None:
    session = db.session
    march = Filters(date_from=dt.date(2018, 3, 1), date_to=dt.date(2018, 3, 31))
    customer = session.get(Customer, data["customers"][0])
    order = _order(customer, "rep_a", "2018-03-25", "approved", "900", None)
    session.commit()
    report = refresh_rollups(session, utcnow())
    assert "order*" not in report and report["order"] > 0  # incremental: the touched months only
    assert rows(sales.revenue_by_month(session, user("admin"), march), "revenue", "orders") == [(1500.0, 2)]
    order.status, order.void_reason = "voided", "客户取消"
    session.commit()
    refresh_rollups(session, utcnow())
    assert rows(sales.revenue_by_month(session, user("admin"), march), "revenue", "orders") == [(600.0, 1)]
    # a full rebuild gives the same rows as the incremental refreshes
    before = _snapshot()
    refresh_rollups(session, utcnow(), full=True)
    assert _snapshot() == before
    states = session.scalars(select(RollupState)).all()
    assert {s.fact for s in states} >= {"order", "opportunity", "pool"}


def _snapshot() -> list[tuple]:
    query = select(
        Rollup.fact,
        Rollup.period,
        Rollup.owner_id,
        Rollup.department_id,
        Rollup.custom_key,
        Rollup.dim1,
        Rollup.dim2,
        Rollup.dim3,
        Rollup.n,
        Rollup.amount,
        Rollup.amount2,
    ).where(Rollup.period < dt.date(2019, 1, 1))
    return sorted(tuple(str(v) for v in row) for row in db.session.execute(query))


def test_company_top_customers_are_precomputed_per_quick_range_and_stay_fresh(data) -> None:
    """The admin's top customers over a quick range come from crm_rollup_top_customer, with the
    same rows as the live query, for a custom-field filter too; a changed order of the range makes
    them stale, an order outside every range does not."""
    session = db.session
    c1, c2, c3 = data["customers"]
    key = custom_key_sql(keyed_fields(session))
    march_15 = dt.datetime(2018, 3, 15, 4, 0)  # the quick ranges: 2018-03, Q1 2018, 2018, 2017-04..2018-03
    assert (dt.date(2018, 1, 1), dt.date(2018, 3, 1)) in top_customers.quick_months(march_15.date())
    try:
        written = top_customers.refresh_top_customers(session, march_15, None, key, True, None)
        assert written and written >= 3
        session.merge(RollupState(fact=top_customers.STATE, rebuilt_at=march_15, refreshed_at=march_15))
        session.commit()
        kept = top_customers.precomputed_top(session, dt.date(2018, 1, 1), dt.date(2018, 3, 1), [])
        assert [row[0] for row in kept] == [c3, c2, c1]
        admin = user("admin")
        top = sales.top_customers(session, admin, Q1)  # from the precomputed rows
        assert rows(top, "customer_id", "orders", "revenue") == [
            (c3, 2, 3600.0),
            (c2, 1, 2000.0),
            (c1, 2, 1500.0),
        ]
        graded = Filters(date_from=Q1.date_from, date_to=Q1.date_to, custom={FIELD: "A"})
        assert list(sales.top_customers(session, admin, graded)["customer_id"]) == [c3, c1]
        # a range the filter bar does not offer is not kept: the live query answers
        january_february = Filters(date_from=dt.date(2018, 1, 1), date_to=dt.date(2018, 2, 28))
        assert top_customers.precomputed_top(session, dt.date(2018, 1, 1), dt.date(2018, 2, 1), []) is None
        assert list(sales.top_customers(session, admin, january_february)["customer_id"]) == [c3, c2, c1]
        # freshness: an order outside every range leaves the lists; one inside rebuilds them
        assert (
            top_customers.refresh_top_customers(session, march_15, {dt.date(2016, 5, 1)}, key, True, march_15)
            is None
        )
        customer = session.get(Customer, c2)
        order = _order(customer, "rep_b", "2018-02-20", "approved", "5000", None)
        session.commit()
        stale = sales.top_customers(session, admin, Q1)
        assert list(stale["customer_id"]) == [c3, c2, c1] and stale["revenue"].iloc[1] == 2000.0
        top_customers.refresh_top_customers(session, march_15, {dt.date(2018, 2, 1)}, key, True, march_15)
        session.commit()
        assert rows(sales.top_customers(session, admin, Q1), "customer_id", "revenue")[0] == (c2, 7000.0)
        order.status, order.void_reason = "voided", "测试"
        session.commit()
    finally:
        session.execute(delete(RollupState).where(RollupState.fact == top_customers.STATE))
        session.execute(delete(TopCustomerRollup))
        session.commit()


def test_a_line_without_a_product_has_no_link() -> None:
    """Top products: lines typed as free text (no product) come back from pandas as NaN."""
    assert sales.product_link({"product_id": float("nan")}, Filters()) is None
    assert sales.product_link({"product_id": 7.0}, Filters()) == "/productview/show/7"
