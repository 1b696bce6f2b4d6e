"""Sales targets: actuals against hand-computed figures (a person, a department tree; month,
quarter and year; contract and collected amounts; voided, unapproved and time-zone edges), the
figures in the API and on the screen, and validation of bad input (4xx, nothing written).

The orders live in 2019 so no other test's orders fall into these periods."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.targets import period_end, period_start, progress, target_progress
from models.customers import Customer
from models.orders import Order, OrderLine, Payment, SalesTarget
from models.security import Department
from tests.conftest import unique_name, user

_numbers = itertools.count(1)
YEAR = 2019


def _order(
    customer_id: int, owner: str, amount: str, approved_at: dt.datetime | None, then: str = ""
) -> Order:
    """An order moved the way orders move: draft -> pending -> approved (-> executing, voided...)."""
    item = Order(
        number=f"TT{os.getpid()}-{next(_numbers)}",
        title="目标测试订单",
        customer_id=customer_id,
        owner_id=user(owner).id,
        total_amount=Decimal(amount),
        lines=[OrderLine(position=1, description="PAM", quantity=Decimal(1), unit_price=Decimal(amount))],
    )
    db.session.add(item)
    db.session.flush()
    item.status = "pending"
    db.session.flush()
    if approved_at is not None:
        item.status, item.approved_at = "approved", approved_at
        db.session.flush()
    for status in filter(None, then.split(",")):
        item.status = status
        if status == "voided":
            item.void_reason = "客户取消"
        db.session.flush()
    return item


def _payment(order: Order, amount: str, received_on: dt.date, approved: bool = True) -> Payment:
    item = Payment(order_id=order.id, amount=Decimal(amount), received_on=received_on)
    db.session.add(item)
    db.session.flush()
    if approved:
        item.status = "pending"
        db.session.flush()
        item.status, item.approved_at = "approved", dt.datetime(YEAR, 12, 31)
        db.session.flush()
    return item


@pytest.fixture(scope="module")
def money(app) -> dict[str, Any]:
    """rep_a, rep_b (一部) and rep_c (二部) sell in 2019; see each line for what counts."""
    with app.app_context():
        customer = Customer(name=unique_name("目标客户"), owner_id=user("rep_a").id)
        db.session.add(customer)
        db.session.flush()
        c = customer.id
        a1 = _order(c, "rep_a", "100000", dt.datetime(YEAR, 1, 15, 3))  # Jan, Q1
        _order(c, "rep_a", "50000", dt.datetime(YEAR, 2, 10, 3), then="executing")  # Feb, Q1
        a3 = _order(c, "rep_a", "30000", dt.datetime(YEAR, 1, 20, 3))  # voided below: never counts
        _order(c, "rep_a", "20000", None)  # pending: never counts
        # 17:00 UTC on 31 March is 01:00 on 1 April in Shanghai: April, Q2
        _order(c, "rep_a", "7000", dt.datetime(YEAR, 3, 31, 17))
        b1 = _order(c, "rep_b", "40000", dt.datetime(YEAR, 1, 5, 3), then="executing,completed")  # Jan
        _order(c, "rep_c", "70000", dt.datetime(YEAR, 3, 1, 3))  # 二部, March
        _payment(a1, "30000", dt.date(YEAR, 1, 20))  # Jan
        _payment(a1, "10000", dt.date(YEAR, 1, 25), approved=False)  # draft: never counts
        _payment(a3, "5000", dt.date(YEAR, 1, 22))  # its order is voided below: never counts
        _payment(b1, "15000", dt.date(YEAR, 4, 2))  # April, Q2
        a3.status, a3.void_reason = "voided", "客户取消"
        db.session.commit()
        departments = {d.name: d.id for d in db.session.scalars(select(Department))}
        return {"team1": departments["一部"], "sales": departments["销售中心"]}


def target(metric: str, period: str, month: int, amount: str = "200000", **whose: Any) -> SalesTarget:
    item = SalesTarget(
        metric=metric, period=period, period_start=dt.date(YEAR, month, 1), amount=Decimal(amount), **whose
    )
    db.session.add(item)
    db.session.flush()
    return item


@pytest.fixture()
def targets(money) -> Any:
    yield
    db.session.rollback()
    db.session.execute(delete(SalesTarget).where(SalesTarget.period_start < dt.date(YEAR + 1, 1, 1)))
    db.session.commit()


def actuals(*items: SalesTarget) -> list[Decimal]:
    return [figures.actual for figures in progress(db.session, items, "Asia/Shanghai")]


def test_periods() -> None:
    assert period_start("quarter", dt.date(YEAR, 5, 17)) == dt.date(YEAR, 4, 1)
    assert period_start("year", dt.date(YEAR, 5, 17)) == dt.date(YEAR, 1, 1)
    assert period_end("month", dt.date(YEAR, 12, 1)) == dt.date(YEAR + 1, 1, 1)
    assert period_end("quarter", dt.date(YEAR, 10, 1)) == dt.date(YEAR + 1, 1, 1)
    assert period_end("year", dt.date(YEAR, 1, 1)) == dt.date(YEAR + 1, 1, 1)


def test_contract_amount_of_a_person(targets, money) -> None:
    rep_a = user("rep_a").id
    assert actuals(
        target("contract", "month", 1, user_id=rep_a),
        target("contract", "month", 3, user_id=rep_a),
        target("contract", "month", 4, user_id=rep_a),
        target("contract", "quarter", 1, user_id=rep_a),
        target("contract", "quarter", 4, user_id=rep_a),
        target("contract", "year", 1, user_id=rep_a),
    ) == [
        Decimal("100000"),
        Decimal("0"),
        Decimal("7000"),
        Decimal("150000"),
        Decimal("7000"),
        Decimal("157000"),
    ]


def test_contract_amount_of_a_department_and_its_tree(targets, money) -> None:
    assert actuals(
        target("contract", "month", 1, department_id=money["team1"]),
        target("contract", "quarter", 1, department_id=money["team1"]),
        target("contract", "quarter", 1, department_id=money["sales"]),
        target("contract", "year", 1, department_id=money["sales"]),
    ) == [Decimal("140000"), Decimal("190000"), Decimal("260000"), Decimal("267000")]


def test_collected_amount(targets, money) -> None:
    rep_a = user("rep_a").id
    assert actuals(
        target("collected", "month", 1, user_id=rep_a),
        target("collected", "quarter", 1, user_id=rep_a),
        target("collected", "quarter", 4, department_id=money["team1"]),
        target("collected", "year", 1, department_id=money["sales"]),
        target("collected", "year", 1, user_id=user("rep_c").id),
    ) == [Decimal("30000"), Decimal("30000"), Decimal("15000"), Decimal("45000"), Decimal("0")]


def test_completion_and_the_workbench(targets, money) -> None:
    rep_a = user("rep_a").id
    month = target("contract", "month", 1, amount="200000", user_id=rep_a)
    target("collected", "quarter", 1, amount="40000", user_id=rep_a)
    target("contract", "year", 1, amount="1000000", department_id=money["team1"])
    target("contract", "month", 2, user_id=rep_a)  # another month: not on the 10 January board
    assert progress(db.session, [month], "Asia/Shanghai")[0].completion == Decimal("50.0")
    board = target_progress(db.session, user("rep_a"), dt.date(YEAR, 1, 10), "Asia/Shanghai")
    assert [(f.target.metric, f.target.period, f.actual, f.completion) for f in board] == [
        ("collected", "quarter", Decimal("30000.00"), Decimal("75.0")),
        ("contract", "month", Decimal("100000.00"), Decimal("50.0")),
        ("contract", "year", Decimal("197000.00"), Decimal("19.7")),
    ]


def test_api_and_screen_show_the_figures(targets, money, api_as, login_as) -> None:
    client, headers = api_as("manager1")
    created = client.post(
        "/api/v1/target/",
        json={
            "user": user("rep_a").id,
            "period": "quarter",
            "period_start": f"{YEAR}-01-01",
            "metric": "contract",
            "amount": 300000,
        },
        headers=headers,
    )
    assert created.status_code == 201, created.json
    shown = client.get(f"/api/v1/target/{created.json['id']}", headers=headers).json["result"]
    assert (shown["actual"], shown["completion"]) == (150000.0, 50.0)
    listed = client.get("/api/v1/target/?q=(page_size:100)", headers=headers).json["result"]
    assert {"actual": 150000.0, "completion": 50.0}.items() <= next(
        row for row in listed if row["id"] == created.json["id"]
    ).items()
    page = login_as("rep_a").get("/salestargetview/list/").get_data(as_text=True)
    assert "150,000.00" in page and "50.0%" in page
    rep, rep_headers = api_as("rep_a")  # reps read targets, they do not set them
    assert rep.get("/api/v1/target/", headers=rep_headers).status_code == 200
    body = {
        "user": user("rep_a").id,
        "period": "month",
        "period_start": f"{YEAR}-05-01",
        "metric": "contract",
    }
    assert rep.post("/api/v1/target/", json={**body, "amount": 1}, headers=rep_headers).status_code in (
        401,
        403,
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"department": "team1"}, "user"),  # both a person and a department
        ({"user": None}, "user"),  # neither
        ({"period": "quarter", "period_start": f"{YEAR}-02-01"}, "period_start"),
        ({"period": "year", "period_start": f"{YEAR}-04-01"}, "period_start"),
        ({"period_start": f"{YEAR}-03-15"}, "period_start"),
        ({"amount": 0}, "amount"),
        ({"amount": -5}, "amount"),
        ({"metric": "profit"}, "metric"),
        ({"period": "week"}, "period"),
    ],
)
def test_bad_targets_are_refused_with_a_message(targets, money, api_as, changes, field) -> None:
    client, headers = api_as("admin")
    body = {
        "user": user("rep_b").id,
        "period": "month",
        "period_start": f"{YEAR}-03-01",
        "metric": "collected",
        "amount": 1000,
        **changes,
    }
    if body.get("department") == "team1":
        body["department"] = money["team1"]
    before = db.session.scalar(select(func.count()).select_from(SalesTarget))
    response = client.post("/api/v1/target/", json=body, headers=headers)
    assert response.status_code == 400, response.json
    assert field in response.json["message"], response.json
    assert db.session.scalar(select(func.count()).select_from(SalesTarget)) == before


def test_a_second_target_for_the_same_period_is_refused(targets, money, api_as) -> None:
    client, headers = api_as("admin")
    body = {
        "department": money["team1"],
        "period": "year",
        "period_start": f"{YEAR}-01-01",
        "metric": "contract",
        "amount": 500000,
    }
    assert client.post("/api/v1/target/", json=body, headers=headers).status_code == 201
    again = client.post("/api/v1/target/", json={**body, "amount": 600000}, headers=headers)
    assert again.status_code == 400 and "period_start" in again.json["message"]
    other_metric = client.post("/api/v1/target/", json={**body, "metric": "collected"}, headers=headers)
    assert other_metric.status_code == 201


@pytest.mark.parametrize("whose", ["user", "department"])
def test_the_database_refuses_a_second_target_that_raced_past_the_check(targets, money, whose) -> None:
    """Two saves at once both pass the service's check (neither sees the other's row); the
    unique key (subject, period, period_start, metric) must still let only one in. One of
    user_id/department_id is always NULL, which is why the key holds `subject`, not the ids."""
    subject = {"user": user("rep_b")} if whose == "user" else {"department_id": money["team1"]}
    first = target("collected", "quarter", 4, **subject)
    db.session.commit()
    expected = f"user:{user('rep_b').id}" if whose == "user" else f"department:{money['team1']}"
    assert first.subject == expected
    # what the racing transaction writes once its check has passed
    raced = {
        "user_id": first.user_id,
        "department_id": first.department_id,
        "subject": first.subject,
        "period": "quarter",
        "period_start": first.period_start,
        "metric": "collected",
        "amount": Decimal("1"),
    }
    with pytest.raises(IntegrityError):
        db.session.execute(insert(SalesTarget).values(**raced))
    db.session.rollback()
    kept = db.session.scalars(select(SalesTarget.amount).where(SalesTarget.subject == expected)).all()
    assert kept == [Decimal("200000")]


def test_the_subject_follows_an_edit_from_a_person_to_a_department(targets, money) -> None:
    item = target("contract", "month", 5, user_id=user("rep_c").id)
    item.user_id, item.department_id = None, money["team1"]
    db.session.flush()
    assert item.subject == f"department:{money['team1']}"
    again = target("contract", "month", 5, user_id=user("rep_c").id)  # the person's slot is free again
    assert again.subject == f"user:{user('rep_c').id}"


def test_demo_flows_and_targets_load_once(app) -> None:
    import random

    from app.demo_approvals import FLOWS, demo_decide, load_approval_demo
    from models.approvals import ApprovalFlow

    reps = [user("rep_a"), user("rep_b"), user("rep_c")]
    names = [flow[0] for flow in FLOWS]
    db.session.execute(delete(ApprovalFlow).where(ApprovalFlow.name.in_(names)))
    db.session.commit()
    try:
        first = load_approval_demo(db.session, random.Random(1), reps)
        assert first["flows"] == len(FLOWS) and first["targets"] == 3 * 16 + 2 * 5
        assert load_approval_demo(db.session, random.Random(1), reps) == {"flows": 0, "targets": 0}
        assert set(demo_decide(db.session, random.Random(1))) == {"approve", "reject", "return", "waiting"}
    finally:
        db.session.rollback()
        db.session.execute(delete(ApprovalFlow).where(ApprovalFlow.name.in_(names)))
        this_year = dt.date.today().replace(month=1, day=1)
        db.session.execute(delete(SalesTarget).where(SalesTarget.period_start >= this_year))
        db.session.commit()
