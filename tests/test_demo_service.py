"""The service desk's demo data (app.demo_service): teams, agents, rules, SLA defaults and a year of
tickets that the analysis can read. The whole demo company (`flask crm first-run`) is loaded by
tests/test_cli.py; here the service part runs on the test organisation, and its tickets are
removed afterwards so other tests' counts are not disturbed."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from sqlalchemy import delete, func, select

from app import demo_service as ds
from app import service_analysis as sa
from app import sla
from app.analytics import Filters
from app.extensions import db
from models.security import CrmUser, Department
from models.service import (
    TICKET_STATUSES,
    AssignmentRule,
    BusinessHours,
    SlaPolicy,
    Survey,
    Ticket,
    TicketCategory,
    TicketComment,
    TicketStatusChange,
)
from tests.conftest import PASSWORD

COUNT = 120


@pytest.fixture(scope="module")
def demo(app):
    with app.app_context():
        session = db.session
        sm = app.appbuilder.sm
        if session.scalar(select(Department).where(Department.name == ds.SUPPORT_DEPARTMENT)) is None:
            root = session.scalar(select(Department).where(Department.name == "总公司"))
            support = Department(name=ds.SUPPORT_DEPARTMENT, parent_id=root.id)
            session.add(support)
            session.flush()
            sm.add_user(
                "svc_head", "杰", "吴", "svc_head@test.example.cn", sm.find_role("Support Agent"), PASSWORD
            )
            head = session.scalar(select(CrmUser).where(CrmUser.username == "svc_head"))
            head.department_id = support.id
            support.leader_id = head.id
            session.commit()
        first = session.scalar(select(func.max(Ticket.id))) or 0
        sla.seed_service_defaults(session)
        categories = ds.ensure_categories(session)
        teams = ds.ensure_teams(session, PASSWORD)
        districts = ds.district_codes(session)
        rules = ds.ensure_rules(session, categories, teams, districts)
        session.commit()
        counts = ds.generate_tickets(session, random.Random(5), rules, categories, districts, COUNT)
        again = (ds.ensure_categories(session), ds.ensure_rules(session, categories, teams, districts))
        session.commit()
        data = {"first": first, "counts": counts, "districts": districts, "again": again}
    yield data
    with app.app_context():
        ours = select(Ticket.id).where(Ticket.id > first)
        for model in (Survey, TicketComment, TicketStatusChange):
            db.session.execute(delete(model).where(model.ticket_id.in_(ours)))
        db.session.execute(delete(Ticket).where(Ticket.id > first))
        db.session.commit()


def tickets(demo) -> list[Ticket]:
    return list(db.session.scalars(select(Ticket).where(Ticket.id > demo["first"]).order_by(Ticket.id)))


def test_setup_teams_agents_categories_rules_and_sla(demo) -> None:
    names = set(db.session.scalars(select(TicketCategory.name)))
    assert set(ds.CATEGORIES) <= names
    assert len(demo["again"][1]) == 5  # idempotent: the same five rules, not ten
    assert db.session.scalar(select(func.count()).select_from(AssignmentRule)) >= 5
    for team, _districts, agents in ds.TEAMS:
        department = db.session.scalar(select(Department).where(Department.name == team))
        assert department.parent.name == ds.SUPPORT_DEPARTMENT
        for username, *_names in agents:
            user = db.session.scalar(select(CrmUser).where(CrmUser.username == username))
            assert user.department_id == department.id
            assert [r.name for r in user.roles] == ["Support Agent"]
    assert set(demo["districts"]) >= {"东营区", "河口区", "垦利区", "利津县", "广饶县"}
    assert db.session.scalar(select(func.count()).select_from(BusinessHours)) > 0
    assert db.session.scalar(select(func.count()).select_from(SlaPolicy)) >= 4


def test_tickets_in_every_status_with_history_and_sla(demo) -> None:
    rows = tickets(demo)
    assert len(rows) == COUNT == demo["counts"]["tickets"]
    assert set(Counter(t.status for t in rows)) == set(TICKET_STATUSES.codes)
    assert len({t.number for t in rows}) == COUNT and all(t.number.startswith("GD-") for t in rows)
    for ticket in rows:
        history = ticket.history
        assert history[0].from_status is None and history[0].to_status == "new"
        assert history[-1].to_status == ticket.status
        assert [h.changed_at for h in history] == sorted(h.changed_at for h in history)
        assert ticket.first_response_due is not None and ticket.resolution_due is not None
        if ticket.status in ("resolved", "closed"):
            assert ticket.resolution and ticket.resolution_method and ticket.resolved_at
            assert ticket.sla_state == (
                "breached" if ticket.resolution_breached or ticket.first_response_breached else "met"
            )
        if ticket.status != "new":
            assert ticket.owner_id is not None and ticket.assignment_rule_id is not None
        if ticket.first_response_at is not None:
            assert ticket.first_response_at >= ticket.created_at
            assert any(not c.internal and not c.from_customer for c in ticket.comments)


def test_assignment_follows_the_rules(demo) -> None:
    head = db.session.scalar(select(Department.leader_id).where(Department.name == ds.SUPPORT_DEPARTMENT))
    guo = db.session.scalar(select(CrmUser.id).where(CrmUser.username == "agent_guo"))
    invoice = db.session.scalar(select(TicketCategory.id).where(TicketCategory.name == "发票"))
    technical = set(
        db.session.scalars(select(TicketCategory.id).where(TicketCategory.name.in_(["技术支持", "售后安装"])))
    )
    guangrao = {demo["districts"]["利津县"], demo["districts"]["广饶县"]}
    checked = 0
    for ticket in tickets(demo):
        if ticket.owner_id is None:
            continue
        if ticket.category_id == invoice:
            assert ticket.owner_id == head
        elif ticket.category_id not in technical and ticket.district_code in guangrao:
            assert ticket.owner_id == guo
            checked += 1
    assert checked > 0


def test_surveys_skew_high_and_low_ratings_say_why(demo) -> None:
    rows = tickets(demo)
    surveys = list(db.session.scalars(select(Survey).where(Survey.ticket_id.in_([t.id for t in rows]))))
    resolved_once = [t for t in rows if t.status in ("resolved", "closed", "reopened")]
    assert len(surveys) == len(resolved_once) == demo["counts"]["surveys"]
    ratings = [s.rating for s in surveys if s.rating is not None]
    assert len(ratings) == demo["counts"]["answered"] > 0
    assert sum(ratings) / len(ratings) > 3.5
    low = [s for s in surveys if s.rating is not None and s.rating <= 2]
    assert low and all(s.comment for s in low)
    assert all(s.answered_at >= s.sent_at for s in surveys if s.answered_at)


def test_the_analysis_reads_the_demo(demo) -> None:
    admin = db.session.scalar(select(CrmUser).where(CrmUser.username == "admin"))
    support = db.session.scalar(select(Department.id).where(Department.name == ds.SUPPORT_DEPARTMENT))
    filters = Filters(department_id=support)
    by_category = sa.csat_by_category(db.session, admin, filters)
    assert by_category["answered"].sum() >= demo["counts"]["answered"]
    frame = sa.low_rated_words(db.session, admin, filters)
    words = set(frame[frame["kind"] == "word"]["term"])
    complaints = {
        w for texts in ds.TEXTS.values() for c in texts[2] for clause in sa.segment(c) for w in clause
    }
    assert words and words <= complaints
    assert sa.backlog_by_status(db.session, admin, filters)["tickets"].sum() > 0
