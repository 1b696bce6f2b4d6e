"""Feedback analysis (app.service_analysis) on a small hand-computed dataset of 2021.

Seven tickets of three agents in two support teams under their own department (so the figures
are not disturbed by tickets other tests create), with surveys; every expected number below is
worked out by hand from the table in `dataset`. Times are UTC as stored; the company's zone is
Asia/Shanghai (+8), so T4, created 2021-03-31 18:00 UTC, belongs to April.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import delete, select

from app import service_analysis as sa
from app.analytics import Filters
from app.errors import ValidationFailed
from app.extensions import db
from models.security import CrmUser, Department, RoleDataScope
from models.service import Survey, Ticket, TicketCategory
from tests.conftest import PASSWORD

H = dt.timedelta(hours=1)
DONGYING, HEKOU = 370502, 370503
RANGE = Filters(date_from=dt.date(2021, 3, 1), date_to=dt.date(2021, 5, 31))

# number, agent, team, category, district, priority, channel, created (UTC), first response and
# resolution after (hours), status, breached (response, resolution), rating, answered, comment
TICKETS: list[tuple[Any, ...]] = [
    ("T1", "svc_a", "g1", "c1", DONGYING, "high", "web", dt.datetime(2021, 3, 1, 2), 2, 10, "closed",
     (False, False), 5, dt.datetime(2021, 3, 2, 2), "很满意"),
    ("T2", "svc_a", "g1", "c1", DONGYING, "normal", "phone", dt.datetime(2021, 3, 5, 2), 4, 20, "closed",
     (False, False), 2, dt.datetime(2021, 3, 6, 2), "配送太慢了，等了一个星期才到"),
    ("T3", "svc_b", "g1", "c2", HEKOU, "normal", "web", dt.datetime(2021, 3, 10, 2), 1, 6, "resolved",
     (False, False), 4, dt.datetime(2021, 3, 11, 2), None),
    ("T4", "svc_c", "g2", "c2", HEKOU, "normal", "email", dt.datetime(2021, 3, 31, 18), 3, 30, "closed",
     (False, True), 1, dt.datetime(2021, 4, 4, 2), "发票开错了，抬头不对，配送也太慢"),
    ("T5", "svc_c", "g2", "c1", HEKOU, "high", "web", dt.datetime(2021, 4, 29, 2), 8, 48, "closed",
     (True, False), 3, dt.datetime(2021, 5, 2, 2), "包装破损"),
    ("T6", "svc_b", "g1", "c1", HEKOU, "urgent", "phone", dt.datetime(2021, 4, 20, 2), None, None,
     "in_progress", (False, True), None, None, None),
    ("T7", "svc_c", "g2", None, None, "low", "web", dt.datetime(2021, 5, 15, 2), 5, None, "waiting",
     (False, False), None, None, None),
]  # fmt: skip


def by_key(frame: Any, *columns: str) -> dict[Any, tuple[Any, ...]]:
    return {row["label"]: tuple(row[c] for c in columns) for _i, row in frame.iterrows()}


@pytest.fixture(scope="module")
def dataset(app) -> Iterator[dict[str, Any]]:
    with app.app_context():
        session = db.session
        sm = app.appbuilder.sm
        root = session.scalar(select(Department).where(Department.name == "总公司"))
        parent = Department(name="析-客服部", parent_id=root.id)
        session.add(parent)
        session.flush()
        teams = {"g1": Department(name="析-东营服务组", parent_id=parent.id)}
        teams["g2"] = Department(name="析-广饶服务组", parent_id=parent.id)
        session.add_all(teams.values())
        categories = {"c1": TicketCategory(name="析-配送延迟"), "c2": TicketCategory(name="析-发票")}
        session.add_all(categories.values())
        session.flush()
        agents = {}
        for username, team in (("svc_a", "g1"), ("svc_b", "g1"), ("svc_c", "g2")):
            sm.add_user(username, username[-1], "客服", f"{username}@test.example.cn",
                        sm.find_role("Support Agent"), PASSWORD)  # fmt: skip
            agent = session.scalar(select(CrmUser).where(CrmUser.username == username))
            agent.department_id = teams[team].id
            agents[username] = agent
        session.flush()
        for row in TICKETS:
            (number, agent, team, category, district, priority, channel, created, first, resolved,
             status, (late_response, late_resolution), rating, answered, comment) = row  # fmt: skip
            ticket = Ticket(
                number=f"GD-ANALYSIS-{number}",
                subject=f"分析 {number}",
                description="分析用工单",
                owner_id=agents[agent].id,
                department_id=teams[team].id,
                category_id=categories[category].id if category else None,
                district_code=district,
                priority=priority,
                channel=channel,
                status=status,
                created_at=created,
                updated_at=created,
                first_response_at=created + first * H if first is not None else None,
                resolved_at=created + resolved * H if resolved is not None else None,
                closed_at=created + resolved * H if status == "closed" else None,
                resolution="已处理" if resolved is not None else None,
                resolution_method="explanation" if resolved is not None else None,
                first_response_due=created + 4 * H,
                resolution_due=created + 24 * H,
                first_response_breached=late_response,
                resolution_breached=late_resolution,
                custom={},
            )
            session.add(ticket)
            session.flush()
            if rating is not None:
                session.add(
                    Survey(
                        ticket_id=ticket.id,
                        token_hash=hashlib.sha256(number.encode()).hexdigest(),
                        sent_at=ticket.resolved_at,
                        answered_at=answered,
                        rating=rating,
                        comment=comment,
                    )
                )
        session.commit()
        data = {
            "department": parent.id,
            "teams": {k: v.id for k, v in teams.items()},
            "agents": {k: v.id for k, v in agents.items()},
            "categories": {k: v.id for k, v in categories.items()},
        }
    yield data
    with app.app_context():
        tickets = select(Ticket.id).where(Ticket.number.like("GD-ANALYSIS-%"))
        db.session.execute(delete(Survey).where(Survey.ticket_id.in_(tickets)))
        db.session.execute(delete(Ticket).where(Ticket.number.like("GD-ANALYSIS-%")))
        db.session.execute(delete(TicketCategory).where(TicketCategory.name.like("析-%")))
        db.session.commit()


@pytest.fixture()
def admin() -> CrmUser:
    return db.session.scalar(select(CrmUser).where(CrmUser.username == "admin"))


@pytest.fixture()
def ours(dataset) -> Filters:
    """The test's tickets only (their department tree), in March to May 2021."""
    return Filters(date_from=RANGE.date_from, date_to=RANGE.date_to, department_id=dataset["department"])


def test_csat_by_department_agent_category_district(ours, admin) -> None:
    columns = ("answered", "satisfied", "csat", "mean_rating")
    assert by_key(sa.csat_by_department(db.session, admin, ours), *columns) == {
        "析-东营服务组": (3, 2, 0.6667, 3.67),  # T1 5, T2 2, T3 4
        "析-广饶服务组": (2, 0, 0.0, 2.0),  # T4 1, T5 3
    }
    agents = by_key(sa.csat_by_agent(db.session, admin, ours), *columns)
    assert agents == {"客服a": (2, 1, 0.5, 3.5), "客服b": (1, 1, 1.0, 4.0), "客服c": (2, 0, 0.0, 2.0)}
    assert by_key(sa.csat_by_category(db.session, admin, ours), *columns) == {
        "析-配送延迟": (3, 1, 0.3333, 3.33),  # T1 5, T2 2, T5 3
        "析-发票": (2, 1, 0.5, 2.5),  # T3 4, T4 1
    }
    assert by_key(sa.csat_by_district(db.session, admin, ours), *columns) == {
        "东营区": (2, 1, 0.5, 3.5),
        "河口区": (3, 1, 0.3333, 2.67),
    }


def test_csat_by_period_uses_the_local_calendar(ours, admin) -> None:
    columns = ("answered", "satisfied", "csat", "mean_rating")
    assert by_key(sa.csat_by_month(db.session, admin, ours), *columns) == {
        "2021-03": (3, 2, 0.6667, 3.67),
        "2021-04": (1, 0, 0.0, 1.0),
        "2021-05": (1, 0, 0.0, 3.0),
    }
    # weeks by their Monday: 2021-03-02 is a Tuesday, 2021-03-06 a Saturday, 2021-03-11 a Thursday
    weeks = sa.csat_by_week(db.session, admin, ours)
    assert dict(zip(weeks["key"], weeks["answered"], strict=True)) == {
        "2021-03-01": 2,
        "2021-03-08": 1,
        "2021-03-29": 1,
        "2021-04-26": 1,
    }
    only_march = Filters(
        date_from=dt.date(2021, 3, 1), date_to=dt.date(2021, 3, 31), department_id=ours.department_id
    )
    assert sa.csat_by_month(db.session, admin, only_march)["key"].tolist() == ["2021-03"]


def test_response_and_resolution_times(ours, admin) -> None:
    columns = (
        "tickets",
        "first_response_median_h",
        "first_response_mean_h",
        "resolution_median_h",
        "resolution_mean_h",
        "first_response_sla_met",
        "resolution_sla_met",
    )
    months = by_key(sa.response_times_by_month(db.session, admin, ours), *columns)
    assert months["2021-03"] == (3, 2.0, 2.33, 10.0, 12.0, 1.0, 1.0)  # T1-T3
    # T4 (local April), T5, T6 (no response yet, resolution breached): response known for T4
    # (met) and T5 (breached); resolution known for all three, met by T5 only
    assert months["2021-04"] == (3, 5.5, 5.5, 39.0, 39.0, 0.5, 0.3333)
    assert months["2021-05"][:3] == (1, 5.0, 5.0)
    assert pd.isna(months["2021-05"][3]) and pd.isna(months["2021-05"][6])  # T7 still open
    priorities = by_key(sa.response_times_by_priority(db.session, admin, ours), *columns[:4])
    assert priorities["高"] == (2, 5.0, 5.0, 29.0)  # T1, T5
    assert priorities["普通"] == (3, 3.0, 2.67, 20.0)  # T2, T3, T4
    assert priorities["紧急"][0] == 1 and all(pd.isna(v) for v in priorities["紧急"][1:])  # T6
    categories = by_key(sa.response_times_by_category(db.session, admin, ours), "tickets", "resolved")
    assert categories == {"未分类": (1, 0), "析-配送延迟": (4, 3), "析-发票": (2, 2)}


def test_volume_and_backlog(ours, admin) -> None:
    frame = sa.volume_by_channel(db.session, admin, ours)
    volume = {(r["month"], r["key"]): r["created"] for _i, r in frame.iterrows()}
    assert volume == {
        ("2021-03", "phone"): 1,
        ("2021-03", "web"): 2,
        ("2021-04", "email"): 1,
        ("2021-04", "phone"): 1,
        ("2021-04", "web"): 1,
        ("2021-05", "web"): 1,
    }
    team = Filters(department_id=ours.department_id)
    status = sa.backlog_by_status(db.session, admin, team)
    assert dict(zip(status["status"], status["tickets"], strict=True)) == {
        "new": 0, "assigned": 0, "in_progress": 1, "waiting": 1, "reopened": 0
    }  # fmt: skip
    ages = sa.backlog_by_age(db.session, admin, team, now=dt.datetime(2021, 6, 1))
    assert ages["tickets"].tolist() == [0, 0, 0, 1, 1]  # T7 17 days, T6 42 days
    # open at each month's end: none in March; T5 (resolved 1 May) and T6 in April; T6, T7 in May
    ends = sa.backlog_by_month_end(db.session, admin, ours)
    assert dict(zip(ends["month"], ends["open_at_end"], strict=True)) == {
        "2021-03": 0,
        "2021-04": 2,
        "2021-05": 2,
    }


def test_words_of_low_rated_comments(ours, admin) -> None:
    frame = sa.low_rated_words(db.session, admin, ours)
    words = {r["term"]: r["comments"] for _i, r in frame[frame["kind"] == "word"].iterrows()}
    # T2 and T4 only (ratings 2 and 1); T5's 包装破损 is rated 3; stop words and 了/对/也 are gone
    assert words == {"配送": 2, "太慢": 2, "星期": 1, "发票": 1, "开错": 1, "抬头": 1}
    assert frame["term"].tolist()[:2] == ["太慢", "配送"]
    phrases = frame[frame["kind"] == "phrase"]
    assert phrases["term"].tolist() == ["配送太慢"] and phrases["comments"].tolist() == [2]
    assert sa.segment("包装破损，桶都漏了！") == [["包装", "破损"]]


def test_an_agent_with_scope_self_sees_only_their_tickets(app, ours, dataset) -> None:
    role = app.appbuilder.sm.find_role("Support Agent")
    row = RoleDataScope(role_id=role.id, entity="ticket", scope="self")
    db.session.add(row)
    db.session.commit()
    try:
        agent = db.session.get(CrmUser, dataset["agents"]["svc_a"])
        columns = ("answered", "satisfied", "csat", "mean_rating")
        assert by_key(sa.csat_by_agent(db.session, agent, ours), *columns) == {"客服a": (2, 1, 0.5, 3.5)}
        assert by_key(sa.csat_by_department(db.session, agent, ours), *columns) == {
            "析-东营服务组": (2, 1, 0.5, 3.5)
        }
        words = sa.low_rated_words(db.session, agent, ours)
        assert "发票" not in words["term"].tolist() and "配送" in words["term"].tolist()
        other = db.session.get(CrmUser, dataset["agents"]["svc_c"])
        team = Filters(department_id=ours.department_id)
        assert sa.backlog_by_status(db.session, other, team)["tickets"].sum() == 1  # T7
        assert sa.response_times_by_month(db.session, agent, ours)["tickets"].sum() == 2
    finally:
        db.session.delete(db.session.get(RoleDataScope, row.id))
        db.session.commit()


def test_bad_filters_are_refused(ours, admin) -> None:
    with pytest.raises(ValidationFailed) as error:
        sa.csat(db.session, admin, ours, by="colour")
    assert "by" in error.value.errors
    backwards = Filters(date_from=dt.date(2021, 5, 1), date_to=dt.date(2021, 3, 1))
    with pytest.raises(ValidationFailed) as error:
        sa.backlog_by_month_end(db.session, admin, backwards)
    assert "date_from" in error.value.errors
    with pytest.raises(ValidationFailed) as error:
        sa.csat_by_month(db.session, admin, Filters(custom={"no_such_field": "x"}))
    assert "custom" in error.value.errors


def test_the_service_dashboard_charts_draw_the_analysis(ours, admin) -> None:
    from app.analytics import charts, charts_of  # noqa: F401 - registers every chart

    registered = {chart.key: chart for chart in charts_of("service")}
    assert {"csat_month", "csat_agent", "times_month", "backlog_status", "low_words"} <= set(registered)
    for chart in registered.values():
        frame = chart.data(db.session, admin, ours)
        assert chart.figure is not None and chart.figure(frame, ours).to_json()
    frame = registered["csat_category"].data(db.session, admin, ours)
    assert dict(zip(frame["label"], frame["answered"], strict=True)) == {"析-配送延迟": 3, "析-发票": 2}
    row = frame[frame["label"] == "析-发票"].iloc[0].to_dict()
    assert registered["csat_category"].link(row, ours).startswith("/ticketview/list/?_flt_0_category=")
    # without dates: the last 12 months (nothing of 2021)
    assert registered["csat_month"].data(db.session, admin, Filters(department_id=ours.department_id)).empty
