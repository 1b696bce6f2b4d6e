"""SLA: business time over lunch, weekends, public holidays, 调休 and calendar rows; the targets of a
ticket; the pause while waiting; the sweep's marks and its notices (once per state); the setup
screens' validation (bad input: a clear message, 4xx, nothing written)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, func, select

from app import service as tickets
from app import sla
from app.extensions import db
from models.notifications import Notification, OutboxMessage
from models.service import BusinessHours, ServiceCalendarDay, SlaPolicy, Ticket
from tests.conftest import unique_mobile, unique_name, user

ZONE = ZoneInfo("Asia/Shanghai")


def utc(local: str) -> dt.datetime:
    """A Shanghai wall-clock time as the naive UTC moment the database stores."""
    return dt.datetime.fromisoformat(local).replace(tzinfo=ZONE).astimezone(dt.UTC).replace(tzinfo=None)


def local(moment: dt.datetime) -> str:
    return f"{moment.replace(tzinfo=dt.UTC).astimezone(ZONE):%Y-%m-%d %H:%M}"


def calendar() -> sla.BusinessCalendar:
    return sla.BusinessCalendar.load(db.session)


@pytest.fixture()
def calendar_rows() -> Iterator[list[int]]:
    """Calendar rows a test adds, removed afterwards (they are company-wide)."""
    ids: list[int] = []
    yield ids
    db.session.rollback()
    db.session.execute(delete(ServiceCalendarDay).where(ServiceCalendarDay.id.in_(ids)))
    db.session.commit()


def new_ticket(priority: str = "normal", created: str = "2026-09-30 16:00", **extra) -> Ticket:
    ticket = tickets.create_ticket(
        db.session,
        subject=unique_name("SLA测试"),
        description="打印机无法连接",
        channel="phone",
        actor=None,
        priority=priority,
        requester_name="王先生",
        requester_mobile=unique_mobile(),
        now=utc(created),
        **extra,
    )
    db.session.commit()
    return ticket


# --- business time -----------------------------------------------------------------------------
def test_default_hours_and_policies_are_seeded() -> None:
    hours = db.session.scalars(select(BusinessHours).where(BusinessHours.weekday == 0)).all()
    assert sorted((f"{h.start_time:%H:%M}", f"{h.end_time:%H:%M}") for h in hours) == [
        ("08:30", "12:00"),
        ("13:30", "17:30"),
    ]
    assert not db.session.scalars(select(BusinessHours).where(BusinessHours.weekday >= 5)).all()
    policies = {p.priority: (p.first_response_minutes, p.resolution_minutes) for p in db.session.scalars(
        select(SlaPolicy).where(SlaPolicy.customer_level.is_(None))
    )}  # fmt: skip
    assert policies == {"urgent": (30, 240), "high": (60, 480), "normal": (240, 1440), "low": (480, 2400)}
    assert sla.seed_service_defaults(db.session) == {"business_hours": 0, "sla_policies": 0}  # once


def test_lunch_break_is_not_business_time() -> None:
    cal = calendar()
    assert local(cal.add_minutes(utc("2026-11-24 11:30"), 60)) == "2026-11-24 14:00"
    assert cal.minutes_between(utc("2026-11-24 11:00"), utc("2026-11-24 14:30")) == 120
    # before opening: the clock starts at 08:30
    assert local(cal.add_minutes(utc("2026-11-24 07:00"), 30)) == "2026-11-24 09:00"


def test_weekend_is_skipped() -> None:
    cal = calendar()
    # Friday 2026-11-27 17:00 + 60 min: 30 on Friday, 30 on Monday
    assert local(cal.add_minutes(utc("2026-11-27 17:00"), 60)) == "2026-11-30 09:00"
    assert cal.minutes_between(utc("2026-11-27 17:00"), utc("2026-11-30 09:00")) == 60


def test_national_day_holiday_and_the_adjusted_saturday() -> None:
    """国庆 2026 (chinese_calendar): 10-01..10-07 off, Saturday 10-10 worked (调休). 16:00 on
    09-30 + 4 business hours: 1.5 h on 09-30, then 2.5 h from 08:30 on Thursday 10-08."""
    cal = calendar()
    assert local(cal.add_minutes(utc("2026-09-30 16:00"), 240)) == "2026-10-08 11:00"
    assert cal.minutes_between(utc("2026-09-30 17:30"), utc("2026-10-08 08:30")) == 0
    # Friday 10-09 16:00 + 4 h: the 调休 Saturday 10-10 is a working day with a normal day's hours
    assert local(cal.add_minutes(utc("2026-10-09 16:00"), 240)) == "2026-10-10 11:00"
    # Saturday 10-17 is an ordinary weekend again
    assert local(cal.add_minutes(utc("2026-10-16 16:00"), 240)) == "2026-10-19 11:00"


def test_a_calendar_row_overrides_the_public_calendar(calendar_rows) -> None:
    """A company holiday on an ordinary Thursday, and a Sunday the company works."""
    holiday = ServiceCalendarDay(day=dt.date(2026, 10, 8), kind="holiday", name="公司假日")
    workday = ServiceCalendarDay(day=dt.date(2026, 10, 18), kind="workday", name="盘点加班")
    db.session.add_all([holiday, workday])
    db.session.commit()
    calendar_rows.extend([holiday.id, workday.id])
    cal = calendar()
    assert local(cal.add_minutes(utc("2026-09-30 16:00"), 240)) == "2026-10-09 11:00"
    assert local(cal.add_minutes(utc("2026-10-16 16:00"), 240)) == "2026-10-18 11:00"


def test_a_year_the_holiday_calendar_does_not_know_uses_plain_weekends_and_the_rows(calendar_rows) -> None:
    assert not sla.calendar_knows(2031)
    cal = calendar()
    # 2031-01-01 (a Wednesday, New Year in reality): unknown year, so a working day unless a row says so
    assert local(cal.add_minutes(utc("2030-12-31 17:00"), 60)) == "2031-01-01 09:00"
    # Saturday 2031-01-04 and Sunday: off
    assert local(cal.add_minutes(utc("2031-01-03 17:00"), 60)) == "2031-01-06 09:00"
    row = ServiceCalendarDay(day=dt.date(2031, 1, 1), kind="holiday", name="元旦")
    db.session.add(row)
    db.session.commit()
    calendar_rows.append(row.id)
    assert local(calendar().add_minutes(utc("2030-12-31 17:00"), 60)) == "2031-01-02 09:00"


# --- a ticket's targets ------------------------------------------------------------------------
def test_a_new_ticket_gets_its_priority_targets_and_at_risk_moment() -> None:
    ticket = new_ticket("urgent", "2026-11-24 11:45")
    policy = db.session.get(SlaPolicy, ticket.sla_policy_id)
    assert policy.priority == "urgent" and policy.customer_level is None
    assert local(ticket.first_response_due) == "2026-11-24 13:45"  # 15 min before lunch, 15 after
    assert local(ticket.resolution_due) == "2026-11-24 17:15"  # 4 business hours
    # at risk at 80 %: 24 of the 30 first-response minutes
    assert local(ticket.sla_risk_at) == "2026-11-24 13:39"
    assert ticket.sla_state == "ok"


def test_a_customer_level_policy_wins(api_as) -> None:
    from models.customers import Customer

    client, headers = api_as("admin")
    created = client.post("/api/v1/customer/", json={"name": unique_name(), "level": "key"}, headers=headers)
    assert created.status_code == 201, created.get_data(as_text=True)
    customer = db.session.get(Customer, created.json["id"])
    policy = SlaPolicy(
        name=unique_name("重点客户紧急"), priority="urgent", customer_level="key", first_response_minutes=15,
        resolution_minutes=120, at_risk_percent=50,
    )  # fmt: skip
    db.session.add(policy)
    db.session.commit()
    try:
        ticket = new_ticket("urgent", "2026-11-24 09:00", customer_id=customer.id)
        assert ticket.sla_policy_id == policy.id
        assert local(ticket.first_response_due) == "2026-11-24 09:15"
        assert local(ticket.sla_risk_at) == "2026-11-24 09:08"  # 50 % of 15 minutes, rounded up
        other = new_ticket("urgent", "2026-11-24 09:00")  # no customer: the level-less policy
        assert local(other.first_response_due) == "2026-11-24 09:30"
    finally:
        db.session.rollback()
        db.session.execute(
            Ticket.__table__.update().where(Ticket.sla_policy_id == policy.id).values(sla_policy_id=None)
        )
        db.session.delete(db.session.get(SlaPolicy, policy.id))
        db.session.commit()


def test_first_response_met_and_resolution_breached() -> None:
    ticket = new_ticket("high", "2026-11-24 09:00")  # 1 h / 8 h
    assert local(ticket.first_response_due) == "2026-11-24 10:00"
    assert local(ticket.resolution_due) == "2026-11-25 09:30"  # a business day is 7.5 hours
    agent = user("admin")
    tickets.add_comment(db.session, ticket, "您好,我们已收到", actor=agent, now=utc("2026-11-24 09:40"))
    db.session.commit()
    assert ticket.first_response_at == utc("2026-11-24 09:40") and not ticket.first_response_breached
    # the nearer pending target is now the resolution: 80 % of 480 min = 384 min after the start
    assert local(ticket.sla_risk_at) == "2026-11-24 16:54"
    tickets.change_status(db.session, ticket, "in_progress", agent, now=utc("2026-11-24 10:00"))
    tickets.change_status(
        db.session, ticket, "resolved", agent, resolution="已远程修复", resolution_method="remote",
        now=utc("2026-11-25 10:00"),
    )  # fmt: skip
    db.session.commit()
    assert ticket.resolution_breached and ticket.sla_state == "breached" and ticket.sla_risk_at is None


def test_waiting_pauses_the_resolution_clock() -> None:
    """Waiting for the customer from Tuesday 11:00 to Wednesday 14:00: the 360 business minutes
    left at 11:00 are still left at 14:00, so the due moves from Wednesday 09:30 to Thursday
    11:00; the sweep leaves the waiting ticket alone past its old due."""
    ticket = new_ticket("high", "2026-11-24 09:00")
    agent = user("admin")
    tickets.add_comment(db.session, ticket, "请提供型号", actor=agent, now=utc("2026-11-24 09:30"))
    tickets.change_status(db.session, ticket, "in_progress", agent, now=utc("2026-11-24 09:31"))
    assert local(ticket.resolution_due) == "2026-11-25 09:30"
    risk_before = ticket.sla_risk_at
    tickets.change_status(db.session, ticket, "waiting", agent, now=utc("2026-11-24 11:00"))
    db.session.commit()
    assert ticket.sla_paused_at == utc("2026-11-24 11:00")
    sla.sla_sweep(db.session, utc("2026-11-25 10:00"))
    db.session.refresh(ticket)
    assert ticket.sla_state == "ok" and not ticket.resolution_breached
    # the customer answers on the status page: back in progress, the clock runs again
    tickets.add_comment(db.session, ticket, "型号是 M1136", from_customer=True, now=utc("2026-11-25 14:00"))
    db.session.commit()
    assert ticket.status == "in_progress" and ticket.sla_paused_at is None
    assert local(ticket.resolution_due) == "2026-11-26 11:00"
    cal = calendar()
    waited = cal.minutes_between(utc("2026-11-24 11:00"), utc("2026-11-25 14:00"))
    assert cal.minutes_between(risk_before, ticket.sla_risk_at) == waited == 540
    sla.sla_sweep(db.session, utc("2026-11-26 11:01"))
    db.session.refresh(ticket)
    assert ticket.sla_state == "breached" and ticket.resolution_breached


def test_reopening_gives_a_new_resolution_target() -> None:
    ticket = new_ticket("urgent", "2026-11-24 09:00")
    agent = user("admin")
    tickets.add_comment(db.session, ticket, "处理中", actor=agent, now=utc("2026-11-24 09:05"))
    tickets.change_status(db.session, ticket, "in_progress", agent, now=utc("2026-11-24 09:06"))
    tickets.change_status(
        db.session, ticket, "resolved", agent, resolution="已处理", resolution_method="remote",
        now=utc("2026-11-24 10:00"),
    )  # fmt: skip
    db.session.commit()
    assert ticket.sla_state == "met" and not ticket.resolution_breached
    tickets.change_status(db.session, ticket, "reopened", agent, now=utc("2026-11-26 09:00"))
    db.session.commit()
    assert ticket.sla_state == "ok" and local(ticket.resolution_due) == "2026-11-26 14:30"


# --- the sweep ---------------------------------------------------------------------------------
def notices(ticket: Ticket) -> list[Notification]:
    return db.session.scalars(
        select(Notification)
        .where(Notification.link == sla.TICKET_LINK.format(id=ticket.id))
        .order_by(Notification.id)
    ).all()


def sla_mails(ticket: Ticket) -> list[OutboxMessage]:
    return db.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.dedup_key.like(f"sla:{ticket.id}:%"))
        .order_by(OutboxMessage.id)
    ).all()


def test_sweep_marks_at_risk_then_breached_and_tells_assignee_and_manager_once() -> None:
    ticket = new_ticket("urgent", "2026-03-03 09:00")  # a Tuesday; 30 min / 4 h
    rep, manager = user("rep_a"), user("manager1")
    ticket.owner_id = rep.id
    db.session.commit()
    assert ticket.department_id == rep.department_id

    report = sla.sla_sweep(db.session, utc("2026-03-03 09:20"))
    db.session.refresh(ticket)
    assert ticket.sla_state == "ok" and set(report) == {"marked", "notified"} and not notices(ticket)

    sla.sla_sweep(db.session, utc("2026-03-03 09:25"))  # 25 of 30 minutes: at risk (80 %)
    db.session.refresh(ticket)
    assert ticket.sla_state == "at_risk" and ticket.sla_notified == "at_risk"
    assert sorted(n.user_id for n in notices(ticket)) == sorted([rep.id, manager.id])
    assert sorted(m.to_address for m in sla_mails(ticket)) == sorted([rep.email, manager.email])

    again = sla.sla_sweep(db.session, utc("2026-03-03 09:25"))  # idempotent: nothing new
    assert again == {"marked": 0, "notified": 0}
    assert len(notices(ticket)) == 2

    sla.sla_sweep(db.session, utc("2026-03-03 09:31"))  # first response late
    db.session.refresh(ticket)
    assert (
        ticket.sla_state == "breached" and ticket.first_response_breached and not ticket.resolution_breached
    )
    assert len(notices(ticket)) == 4 and len(sla_mails(ticket)) == 4
    assert "已超时" in notices(ticket)[-1].title

    sla.sla_sweep(db.session, utc("2026-03-03 16:00"))  # later sweeps: the same state, no new notice
    sla.sla_sweep(db.session, utc("2026-03-04 16:00"))
    db.session.refresh(ticket)
    assert ticket.resolution_breached and len(notices(ticket)) == 4


def test_sweep_tells_the_team_leader_when_nobody_is_assigned() -> None:
    ticket = new_ticket("urgent", "2026-03-10 09:00")
    team1 = user("manager1").department_id
    ticket.owner_id = None
    ticket.department_id = team1
    db.session.commit()
    sla.sla_sweep(db.session, utc("2026-03-10 09:31"))
    db.session.refresh(ticket)
    assert ticket.sla_state == "breached"
    assert [n.user_id for n in notices(ticket)] == [user("manager1").id]


def test_sweep_uses_set_based_updates_for_many_tickets() -> None:
    """Many tickets at once (the scale run is bench/sla.py): every one marked, each told once."""
    created = [new_ticket("urgent", "2026-03-17 09:00") for _ in range(30)]
    for ticket in created:
        ticket.owner_id = user("rep_c").id
    db.session.commit()
    report = sla.sla_sweep(db.session, utc("2026-03-17 14:00"))
    assert report["marked"] >= 30 and report["notified"] >= 30
    states = db.session.scalars(select(Ticket.sla_state).where(Ticket.id.in_([t.id for t in created]))).all()
    assert set(states) == {"breached"}
    count = db.session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(Notification.link.in_([sla.TICKET_LINK.format(id=t.id) for t in created]))
    )
    assert count == 60  # rep_c and manager2, once each


# --- setup validation --------------------------------------------------------------------------
def _count(model: type) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"first_response_minutes": 0, "resolution_minutes": 60}, "first_response_minutes"),
        ({"first_response_minutes": 120, "resolution_minutes": 60}, "resolution_minutes"),
        ({"first_response_minutes": 30, "resolution_minutes": 60, "at_risk_percent": 100}, "at_risk_percent"),
        ({"first_response_minutes": 30, "resolution_minutes": 60, "priority": "asap"}, "priority"),
        ({"first_response_minutes": 30, "resolution_minutes": 60, "customer_level": "vip"}, "customer_level"),
        (
            {
                "first_response_minutes": 30,
                "resolution_minutes": 60,
                "priority": "normal",
                "customer_level": None,
            },
            "priority",
        ),  # exists
    ],
)
def test_sla_policy_validation(api_as, body, field) -> None:
    client, headers = api_as("admin")
    before = _count(SlaPolicy)
    payload = {"name": unique_name("策略"), "priority": "low", "customer_level": "potential", **body}
    response = client.post("/api/v1/slapolicy/", json=payload, headers=headers)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert field in response.get_data(as_text=True)
    assert _count(SlaPolicy) == before


def test_sla_policy_can_be_added_over_the_api(api_as) -> None:
    client, headers = api_as("admin")
    payload = {"name": unique_name("潜在客户低"), "priority": "low", "customer_level": "potential",
               "first_response_minutes": 600, "resolution_minutes": 3000, "at_risk_percent": 75}  # fmt: skip
    response = client.post("/api/v1/slapolicy/", json=payload, headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    db.session.rollback()
    db.session.delete(db.session.get(SlaPolicy, response.json["id"]))
    db.session.commit()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"weekday": 0, "start_time": "12:30:00", "end_time": "14:00:00"}, "start_time"),  # overlaps 13:30
        ({"weekday": 6, "start_time": "10:00:00", "end_time": "09:00:00"}, "end_time"),
        ({"weekday": 7, "start_time": "09:00:00", "end_time": "10:00:00"}, "weekday"),
    ],
)
def test_business_hours_validation(api_as, body, field) -> None:
    client, headers = api_as("admin")
    before = _count(BusinessHours)
    response = client.post("/api/v1/businesshours/", json=body, headers=headers)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert field in response.get_data(as_text=True)
    assert _count(BusinessHours) == before


def test_calendar_day_validation_and_screen(api_as, login_as, calendar_rows) -> None:
    client, headers = api_as("admin")
    response = client.post(
        "/api/v1/servicecalendarday/", json={"day": "2030-05-02", "kind": "holiday"}, headers=headers
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    calendar_rows.append(response.json["id"])
    before = _count(ServiceCalendarDay)
    twice = client.post(
        "/api/v1/servicecalendarday/", json={"day": "2030-05-02", "kind": "workday"}, headers=headers
    )
    bad_kind = client.post(
        "/api/v1/servicecalendarday/", json={"day": "2030-05-03", "kind": "party"}, headers=headers
    )
    assert twice.status_code == 400 and "day" in twice.get_data(as_text=True)
    assert bad_kind.status_code == 400 and "kind" in bad_kind.get_data(as_text=True)
    assert _count(ServiceCalendarDay) == before
    page = login_as("admin").get("/servicecalendardayview/list/")
    assert page.status_code == 200
    assert "2030-05-02" in page.get_data(as_text=True)


def test_worker_job_reports(app) -> None:
    from app import worker

    worker._app = app
    result = worker.sla_job()
    assert isinstance(result, str) and result


def test_business_hours_screen_adds_and_refuses_an_overlap(login_as) -> None:
    client = login_as("admin")
    assert client.get("/businesshoursview/add").status_code == 200
    before = _count(BusinessHours)
    added = client.post(
        "/businesshoursview/add", data={"weekday": "5", "start_time": "09:00", "end_time": "12:00"}
    )
    assert added.status_code == 302, added.get_data(as_text=True)[:1000]
    row = db.session.scalar(select(BusinessHours).where(BusinessHours.weekday == 5))
    try:
        assert (f"{row.start_time:%H:%M}", f"{row.end_time:%H:%M}") == ("09:00", "12:00")
        overlap = client.post(
            "/businesshoursview/add", data={"weekday": "5", "start_time": "11:00", "end_time": "13:00"}
        )
        assert overlap.status_code == 200 and "重叠" in overlap.get_data(as_text=True)
        assert _count(BusinessHours) == before + 1
        listed = client.get("/businesshoursview/list/").get_data(as_text=True)
        assert "周六" in listed and "09:00" in listed
    finally:
        db.session.rollback()
        db.session.execute(delete(BusinessHours).where(BusinessHours.weekday == 5))
        db.session.commit()


def test_sla_policy_screen_validates(login_as) -> None:
    client = login_as("admin")
    assert client.get("/slapolicyview/add").status_code == 200
    listed = client.get("/slapolicyview/list/")
    assert listed.status_code == 200 and "紧急工单" in listed.get_data(as_text=True)
    before = _count(SlaPolicy)
    data = {"name": unique_name("屏幕策略"), "priority": "low", "customer_level": "potential",
            "first_response_minutes": "90", "resolution_minutes": "60", "at_risk_percent": "80"}  # fmt: skip
    page = client.post("/slapolicyview/add", data=data)
    assert page.status_code == 200 and "解决时限不能短于首次响应时限" in page.get_data(as_text=True)
    assert _count(SlaPolicy) == before
