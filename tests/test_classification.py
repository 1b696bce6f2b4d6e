"""Purchase frequency and local/remote, recomputed in bulk (by the worker and `flask crm classify`)."""

from __future__ import annotations

import datetime as dt

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
