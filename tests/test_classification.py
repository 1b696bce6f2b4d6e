"""Purchase frequency and local/remote, recomputed in bulk (by the worker and `flask crm classify`)."""

from __future__ import annotations

import datetime as dt

import pytest

from app.classification import FrequencyRule, classify_locality, classify_purchase_frequency
from app.extensions import db
from app.sales import opportunity_service
from models.customers import Customer
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
