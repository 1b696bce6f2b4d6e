"""Auto-assignment rules: every kind of condition, first match by position, round-robin fairness
(also with two concurrent assignments), least open tickets, the default queue, and the rules'
validation on the screen and the REST API."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from flask import Flask
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from app import assignment
from app.extensions import db
from models.customers import Region
from models.service import AssignmentRule, Ticket
from tests.conftest import user
from tests.login_support import cleanup_users  # noqa: F401 (autouse: the users made here go)
from tests.service_support import (  # noqa: F401 (service_cleanup is autouse)
    DONGYING,
    DONGYING_CITY,
    GUANGRAO,
    HEKOU,
    LIJIN,
    category,
    customer,
    rule,
    service_cleanup,
    support_team,
    ticket,
)


def test_district_rule_assigns_to_its_user_and_is_named_on_the_ticket(app: Flask, api_as) -> None:
    _team, (agent,) = support_team(app, 1)
    by_district = rule(district_codes=[HEKOU, LIJIN], target_user_id=agent.id, position=10)
    matched = ticket(district_code=HEKOU)
    assert (matched.owner_id, matched.assignment_rule_id, matched.status) == (
        agent.id,
        by_district.id,
        "assigned",
    )
    assert matched.department_id == agent.department_id and matched.assigned_at is not None
    elsewhere = ticket(district_code=GUANGRAO)
    assert (elsewhere.owner_id, elsewhere.assignment_rule_id, elsewhere.status) == (None, None, "new")
    client, headers = api_as("admin")
    shown = client.get(f"/api/v1/ticket/{matched.id}", headers=headers).json["result"]
    assert shown["assignment_rule"] == {"id": by_district.id, "name": by_district.name}


def test_a_city_code_matches_all_its_districts(app: Flask) -> None:
    _team, (agent,) = support_team(app, 1)
    city = rule(district_codes=[DONGYING_CITY], target_user_id=agent.id, position=10)
    assert ticket(district_code=LIJIN).assignment_rule_id == city.id
    assert ticket(district_code=DONGYING).assignment_rule_id == city.id
    assert ticket(district_code=110101).assignment_rule_id is None  # 北京市东城区


def test_category_rule(app: Flask) -> None:
    _team, (agent,) = support_team(app, 1)
    invoices, delays = category("发票"), category("配送延迟")
    by_category = rule(category_ids=[invoices.id], target_user_id=agent.id, position=10)
    assert ticket(category_id=invoices.id).assignment_rule_id == by_category.id
    assert ticket(category_id=delays.id).owner_id is None
    assert ticket().owner_id is None  # no category: a category condition does not match


def test_customer_level_rule_and_the_customers_district(app: Flask) -> None:
    team, members = support_team(app, 2)
    vip = rule(customer_levels=["key"], target_department_id=team.id, position=10)
    key = customer(user("rep_a"), level="key", district_code=GUANGRAO)
    normal = customer(user("rep_a"), level="normal")
    assigned = ticket(customer_id=key.id)
    assert assigned.assignment_rule_id == vip.id and assigned.owner_id in {m.id for m in members}
    assert assigned.department_id == team.id
    assert assigned.district_code == GUANGRAO  # taken from the customer
    assert ticket(customer_id=normal.id).assignment_rule_id is None


def test_first_matching_rule_by_position_wins_and_inactive_rules_are_skipped(app: Flask) -> None:
    _team, (first_agent, second_agent) = support_team(app, 2)
    invoices = category("发票")
    later = rule(district_codes=[HEKOU], target_user_id=second_agent.id, position=20)
    earlier = rule(category_ids=[invoices.id], target_user_id=first_agent.id, position=10)
    both = ticket(district_code=HEKOU, category_id=invoices.id)
    assert (both.assignment_rule_id, both.owner_id) == (earlier.id, first_agent.id)
    earlier.active = False
    db.session.commit()
    assert ticket(district_code=HEKOU, category_id=invoices.id).assignment_rule_id == later.id


def test_a_rule_whose_user_left_is_skipped(app: Flask) -> None:
    _team, (gone, stays) = support_team(app, 2)
    rule(district_codes=[HEKOU], target_user_id=gone.id, position=10)
    fallback = rule(target_user_id=stays.id, position=20)  # no conditions: matches every ticket
    gone.active = False
    db.session.commit()
    assert (t := ticket(district_code=HEKOU)).assignment_rule_id == fallback.id and t.owner_id == stays.id


def test_round_robin_is_fair_and_goes_in_turn(app: Flask) -> None:
    team, members = support_team(app, 3)
    rule(target_department_id=team.id, strategy="round_robin", position=10)
    owners = [ticket(district_code=HEKOU).owner_id for _ in range(9)]
    ids = [m.id for m in members]
    assert owners == ids * 3
    assert set(Counter(owners).values()) == {3}


def test_round_robin_skips_inactive_members_and_a_team_without_members_gets_the_queue(app: Flask) -> None:
    team, (a, b, c) = support_team(app, 3)
    round_robin = rule(target_department_id=team.id, position=10)
    b.active = False
    db.session.commit()
    assert [ticket().owner_id for _ in range(4)] == [a.id, c.id, a.id, c.id]
    a.active = c.active = False
    db.session.commit()
    queued = ticket()
    assert (queued.owner_id, queued.department_id, queued.status) == (None, team.id, "new")
    assert queued.assignment_rule_id == round_robin.id


def test_least_open_tickets_goes_to_the_least_busy_member(app: Flask) -> None:
    team, (a, b, c) = support_team(app, 3)
    busy = rule(target_user_id=a.id, position=5, district_codes=[LIJIN])
    for _ in range(2):
        ticket(district_code=LIJIN)  # a has two open tickets
    busy.target_user_id = c.id
    db.session.commit()
    ticket(district_code=LIJIN)  # c has one
    rule(target_department_id=team.id, strategy="least_open", position=10)
    assert ticket(district_code=HEKOU).owner_id == b.id  # 2, 0, 1 open: b
    assert ticket(district_code=HEKOU).owner_id == c.id  # 2, 1, 1: a tie goes on in turn after b
    closed = ticket(district_code=LIJIN)  # c: 2 open now
    from app.service import change_status

    change_status(db.session, closed, "closed", None, note="重复工单")
    db.session.commit()
    assert ticket(district_code=HEKOU).owner_id == b.id  # 2, 1, 2: b


def test_no_match_goes_to_the_default_queue(app: Flask) -> None:
    team, _members = support_team(app, 1)
    app.config["CRM_SERVICE_DEFAULT_DEPARTMENT"] = team.name
    try:
        queued = ticket(district_code=GUANGRAO)
    finally:
        app.config["CRM_SERVICE_DEFAULT_DEPARTMENT"] = ""
    assert (queued.owner_id, queued.department_id, queued.status, queued.assignment_rule_id) == (
        None,
        team.id,
        "new",
        None,
    )
    unassigned = ticket(district_code=GUANGRAO)
    assert (unassigned.owner_id, unassigned.department_id, unassigned.status) == (None, None, "new")


def test_two_concurrent_round_robin_assignments_go_to_different_members(app: Flask) -> None:
    """The second assignment waits for the first one's lock on the pointer and takes the next
    member; without the lock both would read the same pointer and pick the same member."""
    team, members = support_team(app, 3)
    shared = rule(target_department_id=team.id, position=10)
    chosen: dict[str, Any] = {}
    first_locked, errors = threading.Event(), []

    def assign_in_own_session(name: str, wait_before_commit: threading.Event | None) -> None:
        try:
            with app.app_context():
                session = Session(bind=db.engine)
                try:
                    item = Ticket(subject="并发", description="并发分派", district_code=HEKOU)
                    assignment.assign(session, item)
                    chosen[name] = item.owner_id
                    if wait_before_commit is not None:
                        first_locked.set()
                        wait_before_commit.wait(10)
                    session.commit()
                finally:
                    session.close()
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    release = threading.Event()
    first = threading.Thread(target=assign_in_own_session, args=("first", release))
    first.start()
    assert first_locked.wait(10)
    second = threading.Thread(target=assign_in_own_session, args=("second", None))
    second.start()
    time.sleep(0.5)  # let the second reach the lock (it must wait, whatever the timing)
    assert "second" not in chosen
    release.set()
    first.join(20)
    second.join(20)
    assert errors == []
    assert chosen["first"] != chosen["second"]
    assert {chosen["first"], chosen["second"]} <= {m.id for m in members}
    db.session.expire_all()
    assert db.session.get(AssignmentRule, shared.id).last_assigned_user_id == chosen["second"]


def test_assignment_with_fifty_rules_reads_the_rules_once(app: Flask) -> None:
    team, _members = support_team(app, 3)
    elsewhere = db.session.scalars(
        select(Region.code).where(Region.level == 3, Region.code < 370000).order_by(Region.code).limit(49)
    ).all()
    for position, code in enumerate(elsewhere, start=1):
        rule(district_codes=[code], target_department_id=team.id, position=position)
    last = rule(district_codes=[HEKOU], target_department_id=team.id, strategy="least_open", position=100)
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    item = Ticket(subject="五十条规则", description="分派", district_code=HEKOU)
    event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert assignment.assign(db.session, item) is last
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
        db.session.rollback()
    whole_rules = [s for s in statements if "crm_assignment_rule.district_codes" in s]
    assert len(whole_rules) == 1  # the rules are read once
    assert len([s for s in statements if "count(" in s.lower()]) == 1  # open tickets, grouped
    # members, lock, pointer, the audit's read of the old pointer, its update, the assignee and team
    assert len(statements) <= 10, statements


# --- the rules' validation -----------------------------------------------------------------------
def _rule_count() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(AssignmentRule))


def test_rule_validation_through_the_api(app: Flask, api_as) -> None:
    client, headers = api_as("admin")
    team, (agent,) = support_team(app, 1)
    before = _rule_count()
    cases = [
        ({"name": "无目标"}, "target_user"),
        ({"name": "两个目标", "target_user": agent.id, "target_department": team.id}, "target_department"),
        ({"name": "错误地区", "target_user": agent.id, "district_codes": [999999, HEKOU]}, "district_codes"),
        ({"name": "错误分类", "target_user": agent.id, "category_ids": [987654]}, "category_ids"),
        ({"name": "错误级别", "target_user": agent.id, "customer_levels": ["gold"]}, "customer_levels"),
        ({"name": "错误方式", "target_department": team.id, "strategy": "random"}, "strategy"),
        ({"name": "", "target_user": agent.id}, "name"),
    ]
    for body, field in cases:
        response = client.post("/api/v1/assignmentrule/", json=body, headers=headers)
        assert response.status_code == 400, (body, response.json)
        assert field in response.json["message"], (body, response.json)
        assert response.json["message"][field][0]
    assert _rule_count() == before
    created = client.post(
        "/api/v1/assignmentrule/",
        json={"name": "河口区", "target_user": agent.id, "district_codes": [HEKOU], "position": 30},
        headers=headers,
    )
    assert created.status_code == 201, created.json
    assert created.json["result"]["district_codes"] == [HEKOU]
    clash = client.post(
        "/api/v1/assignmentrule/",
        json={"name": "同序号", "target_user": agent.id, "position": 30},
        headers=headers,
    )
    assert clash.status_code == 400 and "position" in clash.json["message"]
    duplicate = client.post(
        "/api/v1/assignmentrule/", json={"name": "河口区", "target_user": agent.id}, headers=headers
    )
    assert duplicate.status_code == 400 and "name" in duplicate.json["message"]
    last = client.post(
        "/api/v1/assignmentrule/", json={"name": "排最后", "target_user": agent.id}, headers=headers
    )
    assert last.status_code == 201 and last.json["result"]["position"] == 40  # after the last one
    assert _rule_count() == before + 2


def test_rule_screen_takes_district_names_and_refuses_unknown_ones(app: Flask, login_as) -> None:
    client = login_as("admin")
    team, _members = support_team(app, 1)
    invoices = category("发票")
    form = {
        "name": "东营城区",
        "position": "15",
        "active": "y",
        "district_codes": "东营区, 河口区、370522",
        "category_ids": [str(invoices.id)],
        "customer_levels": ["key", "normal"],
        "target_department": str(team.id),
        "strategy": "least_open",
    }
    response = client.post("/assignmentruleview/add", data=form)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    saved = db.session.scalar(select(AssignmentRule).where(AssignmentRule.name == "东营城区"))
    assert saved.district_codes == [DONGYING, HEKOU, LIJIN]
    assert saved.category_ids == [invoices.id] and saved.customer_levels == ["key", "normal"]
    listed = client.get("/assignmentruleview/list/").get_data(as_text=True)
    assert "东营区" in listed and "河口区" in listed and "利津县" in listed
    edit = client.get(f"/assignmentruleview/edit/{saved.id}").get_data(as_text=True)
    assert "东营区(370502)" in edit
    refused = client.post(
        "/assignmentruleview/add", data={**form, "name": "火星", "district_codes": "火星区"}
    )
    assert refused.status_code == 200
    assert "未知的行政区划代码" in refused.get_data(as_text=True) and "火星区" in refused.get_data(
        as_text=True
    )
    assert db.session.scalar(select(AssignmentRule).where(AssignmentRule.name == "火星")) is None
