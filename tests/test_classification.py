"""Purchase frequency and local/remote, recomputed in bulk (by the worker and `flask crm classify`)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from app.classification import FrequencyRule, classify_locality, classify_purchase_frequency
from app.extensions import db
from app.sales import opportunity_service
from models.customers import Customer
from models.orders import Order
from models.sales import Opportunity, Pipeline, Stage
from tests.conftest import unique_name, user

NOW = dt.datetime(2026, 11, 23, 8, 0)


def customer_with_purchases(pipeline: Pipeline, *days_ago: int, city: int | None = None) -> int:
    rep = user("rep_a")
    customer = Customer(
        name=unique_name("频次"), owner=rep, city_code=city, province_code=370000 if city else None
    )
    db.session.add(customer)
    db.session.commit()
    for days in days_ago:
        won = Opportunity(
            name=unique_name("成交"), customer=customer, pipeline=pipeline, stage=pipeline.stages[1]
        )
        opportunity_service.save(db.session, won, rep)
        won.closed_at = NOW - dt.timedelta(days=days)
        db.session.commit()
    return customer.id


def test_purchase_frequency_and_locality(app) -> None:
    pipeline = Pipeline(
        name=unique_name("频次流程"),
        stages=[Stage(name="接触", position=0), Stage(name="赢单", position=1, is_won=True, probability=100)],
    )
    db.session.add(pipeline)
    db.session.commit()
    often = customer_with_purchases(pipeline, 10, 40, 80, city=370500)  # 东营市
    sometimes = customer_with_purchases(pipeline, 5, 400, city=370100)  # 济南市; one purchase is too old
    never = customer_with_purchases(pipeline)
    rule = FrequencyRule(window_days=365, high=3, mid=1)
    assert classify_purchase_frequency(db.session, rule, NOW) >= 3
    assert classify_locality(db.session, home_city_code=370500) >= 2
    db.session.commit()
    db.session.expire_all()
    rows = {pk: db.session.get(Customer, pk) for pk in (often, sometimes, never)}
    assert [rows[pk].purchase_frequency for pk in (often, sometimes, never)] == ["high", "mid", "low"]
    assert [rows[pk].locality for pk in (often, sometimes)] == ["local", "remote"]
    assert rows[never].locality is None  # no city: left alone
    # idempotent: a second run changes nothing of these
    assert classify_purchase_frequency(db.session, rule, NOW) == 0


def test_classify_command_uses_the_settings(app, monkeypatch) -> None:
    monkeypatch.setitem(app.config, "CRM_HOME_CITY", "370500")
    result = app.test_cli_runner().invoke(args=["crm", "classify"])
    assert result.exit_code == 0, result.output
    assert "purchase frequency:" in result.output and "local/remote:" in result.output
    monkeypatch.setitem(app.config, "CRM_HOME_CITY", "")
    result = app.test_cli_runner().invoke(args=["crm", "classify"])
    assert "CRM_HOME_CITY not set" in result.output


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("CRM_HOME_CITY", "370000", "not a city code"),  # a province
        ("CRM_HOME_CITY", "东营", "not a city code"),
        ("CRM_FREQUENCY_MID", "9", "HIGH > MID > 0"),  # above HIGH (6)
        ("CRM_FREQUENCY_WINDOW_DAYS", "0", "window must be positive"),
    ],
)
def test_bad_classification_settings_are_refused(app, monkeypatch, setting, value, message) -> None:
    monkeypatch.setitem(app.config, setting, value)
    db.session.query(Customer).update({Customer.purchase_frequency: None})  # would be rewritten
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["crm", "classify"])
    assert result.exit_code != 0 and message in result.output
    assert db.session.query(Customer).filter(Customer.purchase_frequency.is_not(None)).count() == 0


def test_approved_orders_are_purchases_and_a_won_deal_counts_once(app) -> None:
    pipeline = Pipeline(
        name=unique_name("频次订单流程"),
        stages=[Stage(name="接触", position=0), Stage(name="赢单", position=1, is_won=True, probability=100)],
    )
    db.session.add(pipeline)
    db.session.commit()
    customer_id = customer_with_purchases(pipeline, 10, 20)  # two won deals
    customer = db.session.get(Customer, customer_id)
    deal = db.session.scalars(select(Opportunity).where(Opportunity.customer_id == customer_id)).first()

    def order(status: str, opportunity: Opportunity | None = None) -> None:
        row = Order(number=unique_name("CLS-"), title="采购", customer=customer, owner=customer.owner,
                    opportunity=opportunity)  # fmt: skip
        db.session.add(row)
        db.session.commit()
        values = {"status": status, "approved_at": NOW - dt.timedelta(days=5)}
        db.session.execute(update(Order).where(Order.id == row.id).values(**values))
        db.session.commit()

    order("completed", deal)  # the won deal's order: one purchase, not two
    order("executing")  # repeat business without a deal
    order("voided")  # not a purchase
    assert classify_purchase_frequency(db.session, FrequencyRule(365, high=4, mid=3), NOW) >= 1
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Customer, customer_id).purchase_frequency == "mid"  # 3 purchases, not 4 or 5
