"""The weekly mailed dashboard report: through the outbox to a real SMTP server on loopback, once
per subscription and week, on the subscription's weekday (company time zone), computed as the
subscriber (their data scope, their saved filters)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import delete, select

from app import analytics
from app.access import scope_clause
from app.analytics.reports import send_due_reports, subscribe
from app.customers import customer_service
from app.extensions import db
from app.notifications import deliver_outbox
from models.analytics import DashboardSubscription
from models.customers import Customer
from models.notifications import OutboxMessage
from models.security import CrmUser
from tests import test_worker
from tests.conftest import unique_mobile, unique_name, user
from tests.test_worker import SmtpServer, fresh, settings

#: the real SMTP server on loopback of the worker's tests
smtp = test_worker.smtp

PREFIX = "报表测试客户"
#: Monday 2030-01-07 08:00 in Shanghai is 00:00 UTC; ISO week 2030-W02
MONDAY = dt.datetime(2030, 1, 7, 0, 0)
seen_filters: list[analytics.Filters] = []


def visible_customers(session: Any, actor: CrmUser, filters: analytics.Filters) -> pd.DataFrame:
    """The test customers the actor may see, with their owner: the mail shows whose scope ran."""
    seen_filters.append(filters)
    clause = scope_clause(session, Customer, actor)
    query = select(Customer.name, CrmUser.username).join(CrmUser, CrmUser.id == Customer.owner_id)
    query = query.where(Customer.name.like(f"{PREFIX}%"))
    if clause is not None:
        query = query.where(clause)
    rows = session.execute(query.order_by(Customer.name)).all()
    return pd.DataFrame(rows, columns=["客户", "负责人"])


CHART = analytics.Chart("visible", "sales", "测试可见客户", visible_customers, None, None, 1, 12)


@pytest.fixture(autouse=True)
def report_chart() -> Iterator[None]:
    """Only the test's chart on the sales dashboard while a test runs."""
    saved = dict(analytics.CHARTS["sales"])
    analytics.CHARTS["sales"].clear()
    analytics.register(CHART)
    seen_filters.clear()
    try:
        yield
    finally:
        analytics.CHARTS["sales"].clear()
        analytics.CHARTS["sales"].update(saved)
        db.session.rollback()
        db.session.execute(delete(DashboardSubscription))
        db.session.commit()


@pytest.fixture(scope="module")
def customers(app: Any) -> dict[str, str]:
    """One test customer owned by rep_a (team1) and one by rep_c (team2)."""
    names = {}
    with app.app_context():
        for username in ("rep_a", "rep_c"):
            name = unique_name(PREFIX)
            customer_service.save(db.session, Customer(name=name, mobile=unique_mobile()), user(username))
            names[username] = name
    return names


def deliver(app: Any, now: dt.datetime) -> None:
    with app.app_context():
        deliver_outbox(db.session, settings(app), now)
        db.session.remove()


def mails_to(server: SmtpServer, username: str) -> list[Any]:
    address = user(username).email
    return [message for _from, to, message in server.mailbox.messages if address in to]


def html_of(message: Any) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def test_the_weekly_mail_is_sent_once_per_week_within_the_subscribers_scope(
    app: Any, smtp: SmtpServer, customers: dict[str, str]
) -> None:
    session = db.session
    for username in ("rep_a", "manager1", "director"):
        subscribe(session, user(username), "sales", {"range": "12m"}, 0)

    report = send_due_reports(fresh(), MONDAY)
    assert report == {"sent": 3, "skipped": 0}
    deliver(app, MONDAY)
    # each subscriber's numbers, computed as them: rep_a and manager1 (team1) see rep_a's customer,
    # the director (the sales tree) rep_c's as well
    for username, visible in (
        ("rep_a", {"rep_a"}),
        ("manager1", {"rep_a"}),
        ("director", {"rep_a", "rep_c"}),
    ):
        (message,) = mails_to(smtp, username)
        assert message["Subject"] == "每周报表: 销售分析"
        html = html_of(message)
        text = message.get_body(preferencelist=("plain",)).get_content()
        assert "测试可见客户" in html and "<table" in html
        for owner, name in customers.items():
            assert (name in html) == (owner in visible), (username, owner)
            assert (name in text) == (owner in visible), (username, owner)
        assert 'href="http://127.0.0.1:8080/dashboards/sales?range=12m"' in html.replace("&amp;", "&")
    # the saved quick range is read again when sending: the 12 months up to that Monday's month
    assert {(f.date_from, f.date_to) for f in seen_filters} == {(dt.date(2029, 2, 1), dt.date(2030, 1, 31))}

    # later the same week: nothing again (also not when a subscription's mark were lost: dedup key)
    assert send_due_reports(fresh(), MONDAY + dt.timedelta(days=2)) == {"sent": 0, "skipped": 0}
    fresh().execute(DashboardSubscription.__table__.update().values(last_sent_at=None))
    db.session.commit()
    assert send_due_reports(fresh(), MONDAY + dt.timedelta(days=3)) == {"sent": 0, "skipped": 3}
    deliver(app, MONDAY + dt.timedelta(days=3))
    assert len(mails_to(smtp, "rep_a")) == 1

    # the next week: once more
    assert send_due_reports(fresh(), MONDAY + dt.timedelta(days=7)) == {"sent": 3, "skipped": 0}
    deliver(app, MONDAY + dt.timedelta(days=7))
    assert len(mails_to(smtp, "rep_a")) == 2
    keys = set(
        fresh().scalars(
            select(OutboxMessage.dedup_key).where(OutboxMessage.dedup_key.like("dashboard-report:%"))
        )
    )
    assert {key.rsplit(":", 1)[1] for key in keys} >= {"2030-W02", "2030-W03"}


def test_a_subscription_waits_for_its_weekday_in_the_company_time_zone(
    app: Any, smtp: SmtpServer, customers: dict[str, str]
) -> None:
    subscribe(db.session, user("rep_a"), "sales", {}, 3)  # Thursday
    assert send_due_reports(fresh(), MONDAY) == {"sent": 0, "skipped": 0}
    # Wednesday 23:00 in Shanghai (15:00 UTC): not yet
    assert send_due_reports(fresh(), MONDAY + dt.timedelta(days=2, hours=15)) == {"sent": 0, "skipped": 0}
    # Wednesday 16:30 UTC is Thursday 00:30 in Shanghai: due
    assert send_due_reports(fresh(), MONDAY + dt.timedelta(days=2, hours=16, minutes=30)) == {
        "sent": 1,
        "skipped": 0,
    }
    deliver(app, MONDAY + dt.timedelta(days=3))
    (message,) = mails_to(smtp, "rep_a")
    assert customers["rep_a"] in html_of(message) and customers["rep_c"] not in html_of(message)
    # a worker that missed Thursday still sends it on Saturday, once
    assert send_due_reports(fresh(), MONDAY + dt.timedelta(days=5)) == {"sent": 0, "skipped": 0}


def test_inactive_subscriptions_and_lost_permissions_are_not_mailed(app: Any, smtp: SmtpServer) -> None:
    paused = subscribe(db.session, user("rep_a"), "sales", {}, 0)
    paused.active = False
    db.session.commit()
    # a subscription to a dashboard the role no longer opens (rep_b: sales rep, service dashboard)
    db.session.add(
        DashboardSubscription(user_id=user("rep_b").id, dashboard="service", weekday=0, filters={})
    )
    db.session.commit()
    assert send_due_reports(fresh(), MONDAY) == {"sent": 0, "skipped": 1}
    deliver(app, MONDAY)
    assert mails_to(smtp, "rep_a") == [] and mails_to(smtp, "rep_b") == []


def test_saved_filters_that_no_longer_hold_are_named_in_the_mail(app: Any, smtp: SmtpServer) -> None:
    db.session.add(
        DashboardSubscription(
            user_id=user("rep_a").id, dashboard="sales", weekday=0, filters={"owner": "999999"}
        )
    )
    db.session.commit()
    assert send_due_reports(fresh(), MONDAY) == {"sent": 1, "skipped": 0}
    deliver(app, MONDAY)
    (message,) = mails_to(smtp, "rep_a")
    assert "保存的筛选条件已失效" in html_of(message)
    assert seen_filters == [analytics.Filters()]
