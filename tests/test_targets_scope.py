"""Sales targets under data scope (app.access.subject_clause): who sees which person's and
department's target on the screens and in REST, and who may set them.

The organisation is tests/conftest.py's: 一部 (team1: manager1, rep_a, rep_b) and 二部 (team2:
manager2, rep_c) under 销售中心 (director) under 总公司 (boss). Targets live in 2017 so no
other test's targets mix in; each has an amount of its own, to find it on a page."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, func, select

from app.analytics import Filters, sales
from app.errors import AccessDenied
from app.extensions import db
from app.services import service_for
from models.orders import SalesTarget
from models.security import Department
from tests.conftest import user

YEAR = 2017
#: target name -> (whose: a username or a department name, amount)
TARGETS: dict[str, tuple[str, str]] = {
    "rep_a": ("rep_a", "7310001"),
    "rep_b": ("rep_b", "7310002"),
    "rep_c": ("rep_c", "7310003"),
    "manager1": ("manager1", "7310004"),
    "team1": ("一部", "7310005"),
    "team2": ("二部", "7310006"),
    "sales": ("销售中心", "7310007"),
    "root": ("总公司", "7310008"),
}
DEPARTMENT_TARGETS = {"team1", "team2", "sales", "root"}


def departments() -> dict[str, int]:
    return {d.name: d.id for d in db.session.scalars(select(Department))}


def _whose(name: str) -> dict[str, int]:
    who, _amount = TARGETS[name]
    if name in DEPARTMENT_TARGETS:
        return {"department_id": departments()[who]}
    return {"user_id": user(who).id}


def _in_period() -> Any:
    return SalesTarget.period_start.between(dt.date(YEAR, 1, 1), dt.date(YEAR, 12, 31))


@pytest.fixture(scope="module")
def targets(app: Flask) -> Iterator[dict[str, int]]:
    """One yearly contract target per person and department above, set by the system."""
    with app.app_context():
        ids = {}
        for name, (_who, amount) in TARGETS.items():
            item = SalesTarget(
                period="year", period_start=dt.date(YEAR, 1, 1), metric="contract", amount=Decimal(amount),
                **_whose(name),
            )  # fmt: skip
            db.session.add(item)
            db.session.flush()
            ids[name] = item.id
        db.session.commit()
        yield ids
        db.session.rollback()
        db.session.execute(delete(SalesTarget).where(_in_period()))
        db.session.commit()


def api_visible(api_as: Any, username: str, targets: dict[str, int]) -> set[str]:
    client, headers = api_as(username)
    response = client.get("/api/v1/target/?q=(page_size:100)", headers=headers)
    assert response.status_code == 200, response.json
    names = {pk: name for name, pk in targets.items()}
    return {names[row["id"]] for row in response.json["result"] if row["id"] in names}


def screen_visible(login_as: Any, username: str) -> set[str]:
    page = login_as(username).get("/salestargetview/list/?psize_SalesTargetView=100")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    return {name for name, (_who, amount) in TARGETS.items() if f"{int(amount):,}.00" in text}


SEES = {
    # a rep: their own target and their department's
    "rep_a": {"rep_a", "team1"},
    "rep_c": {"rep_c", "team2"},
    # a manager (department tree): their department's people and the department
    "manager1": {"rep_a", "rep_b", "manager1", "team1"},
    "manager2": {"rep_c", "team2"},
    # one level up: both teams, their people and the sales centre
    "director": {"rep_a", "rep_b", "rep_c", "manager1", "team1", "team2", "sales"},
    "admin": set(TARGETS),
}


@pytest.mark.parametrize("username", list(SEES))
def test_who_sees_which_targets_in_rest(targets, api_as, username: str) -> None:
    assert api_visible(api_as, username, targets) == SEES[username]


@pytest.mark.parametrize("username", ["rep_a", "manager1", "admin"])
def test_the_screen_lists_the_same_targets(targets, login_as, username: str) -> None:
    assert screen_visible(login_as, username) == SEES[username]


def test_a_target_outside_the_scope_is_not_found(targets, api_as, login_as) -> None:
    client, headers = api_as("rep_a")
    screen = login_as("rep_a")
    for name in ("rep_b", "rep_c", "team2", "sales"):
        assert client.get(f"/api/v1/target/{targets[name]}", headers=headers).status_code == 404, name
        assert screen.get(f"/salestargetview/show/{targets[name]}").status_code == 404, name
    for name in ("rep_a", "team1"):
        shown = client.get(f"/api/v1/target/{targets[name]}", headers=headers)
        assert shown.status_code == 200 and "actual" in shown.json["result"], name
        assert screen.get(f"/salestargetview/show/{targets[name]}").status_code == 200, name
    manager = login_as("manager1")
    assert manager.get(f"/salestargetview/show/{targets['rep_b']}").status_code == 200
    assert manager.get(f"/salestargetview/show/{targets['team2']}").status_code == 404


def test_the_scope_of_targets_is_its_own_setting(targets, api_as) -> None:
    """An admin widens the Sales Rep's scope for targets alone (数据权限 per entity)."""
    from models.security import RoleDataScope

    rep_role = user("rep_a").roles[0].id
    db.session.add(RoleDataScope(role_id=rep_role, entity="sales_target", scope="department"))
    db.session.commit()
    try:
        assert api_visible(api_as, "rep_a", targets) == {"rep_a", "rep_b", "manager1", "team1"}
        assert api_visible(api_as, "rep_c", targets) == {"rep_c", "team2"}  # 二部 has no one else
    finally:
        db.session.execute(
            delete(RoleDataScope).where(
                RoleDataScope.role_id == rep_role, RoleDataScope.entity == "sales_target"
            )
        )
        db.session.commit()


def _body(**whose: Any) -> dict[str, Any]:
    return {
        "period": "month",
        "period_start": f"{YEAR}-06-01",
        "metric": "collected",
        "amount": 1000,
        **whose,
    }


def _count() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(SalesTarget).where(_in_period()))


def test_a_manager_sets_targets_of_their_team_only(targets, api_as) -> None:
    client, headers = api_as("manager1")
    before = _count()
    for body, field in (
        (_body(user=user("rep_c").id), "user"),
        (_body(department=departments()["二部"]), "department"),
        (_body(department=departments()["销售中心"]), "department"),  # above their department
    ):
        refused = client.post("/api/v1/target/", json=body, headers=headers)
        assert refused.status_code == 403, refused.json
        assert "数据权限" in refused.json["message"][field][0], refused.json
    assert _count() == before
    own_team = client.post("/api/v1/target/", json=_body(user=user("rep_b").id), headers=headers)
    assert own_team.status_code == 201, own_team.json
    department = client.post("/api/v1/target/", json=_body(department=departments()["一部"]), headers=headers)
    assert department.status_code == 201, department.json
    assert _count() == before + 2
    # moving a target of their team to another team's person is refused; nothing changes
    moved = client.put(
        f"/api/v1/target/{own_team.json['id']}", json={"user": user("rep_c").id}, headers=headers
    )
    assert moved.status_code == 403, moved.json
    db.session.expire_all()
    assert db.session.get(SalesTarget, own_team.json["id"]).user_id == user("rep_b").id
    # another team's targets are not there for them
    assert (
        client.put(f"/api/v1/target/{targets['rep_c']}", json={"amount": 5}, headers=headers).status_code
        == 404
    )
    assert client.delete(f"/api/v1/target/{targets['team2']}", headers=headers).status_code == 404
    assert db.session.get(SalesTarget, targets["team2"]) is not None
    assert db.session.get(SalesTarget, targets["rep_c"]).amount == Decimal(TARGETS["rep_c"][1])
    for pk in (own_team.json["id"], department.json["id"]):
        assert client.delete(f"/api/v1/target/{pk}", headers=headers).status_code == 200
    assert _count() == before


def test_a_manager_cannot_set_another_teams_target_on_the_screen(targets, login_as) -> None:
    screen = login_as("manager1")
    offered = screen.get("/salestargetview/add").get_data(as_text=True)
    assert f'value="{user("rep_a").id}"' in offered and f'value="{user("rep_c").id}"' not in offered
    assert f'value="{departments()["一部"]}"' in offered and f'value="{departments()["二部"]}"' not in offered
    before = _count()
    form = {"user": user("rep_c").id, "period": "month", "period_start": f"{YEAR}-07-01"}
    page = screen.post("/salestargetview/add", data={**form, "metric": "contract", "amount": "1000"})
    assert page.status_code == 200  # the form again, with the refusal under the field
    assert _count() == before
    text = page.get_data(as_text=True)
    assert "不是有效的选项" in text, text[:2000]  # the dropdown does not offer rep_c


def test_a_rep_does_not_set_targets(targets, api_as) -> None:
    client, headers = api_as("rep_a")
    before = _count()
    own = client.post("/api/v1/target/", json=_body(user=user("rep_a").id), headers=headers)
    assert own.status_code in (401, 403)
    assert client.put(
        f"/api/v1/target/{targets['rep_a']}", json={"amount": 1}, headers=headers
    ).status_code in (
        401,
        403,
    )
    assert client.delete(f"/api/v1/target/{targets['team1']}", headers=headers).status_code in (401, 403)
    assert _count() == before


def test_the_service_refuses_a_role_without_the_right(targets) -> None:
    """Not only the screens: the service asks the role permissions too (CLI, import, worker)."""
    service = service_for(SalesTarget)
    item = SalesTarget(user_id=user("rep_a").id, **{k: v for k, v in _body().items() if k != "period_start"})
    item.period_start = dt.date(YEAR, 8, 1)
    with pytest.raises(AccessDenied):
        service.save(db.session, item, user("rep_a"))
    assert _count() == len(TARGETS)
    allowed = SalesTarget(user_id=user("rep_a").id, period="month", period_start=dt.date(YEAR, 8, 1),
                          metric="collected", amount=Decimal(1000))  # fmt: skip
    service.save(db.session, allowed, user("manager1"))
    service.delete(db.session, allowed, user("manager1"))
    assert _count() == len(TARGETS)


def test_targets_carry_custom_fields(targets, api_as, clean_custom_fields) -> None:
    from tests.customfield_support import define

    field = define(api_as, entity="sales_target", label_zh="考核口径", field_type="text")
    client, headers = api_as("manager1")
    body = _body(user=user("rep_b").id, custom={field["api_name"]: "含税"})
    created = client.post("/api/v1/target/", json=body, headers=headers)
    assert created.status_code == 201, created.json
    try:
        shown = client.get(f"/api/v1/target/{created.json['id']}", headers=headers).json["result"]
        assert shown["custom"] == {field["api_name"]: "含税"}
        db.session.expire_all()
        assert db.session.get(SalesTarget, created.json["id"]).custom == {field["api_name"]: "含税"}
        unknown = client.post("/api/v1/target/", json={**body, "custom": {"nope": 1}}, headers=headers)
        assert unknown.status_code == 400
    finally:
        db.session.execute(delete(SalesTarget).where(SalesTarget.id == created.json["id"]))
        db.session.commit()


@pytest.mark.parametrize("username", ["rep_a", "manager1", "director"])
def test_the_dashboard_shows_the_targets_the_screen_shows(targets, username: str) -> None:
    """业绩目标完成率 reads the targets' own scope rule: a rep sees their department's target too."""
    year = Filters(date_from=dt.date(YEAR, 1, 1), date_to=dt.date(YEAR, 12, 31))
    table = sales.targets(db.session, user(username), year)
    shown = {int(amount) for amount in table["target"]} if len(table) else set()
    assert shown == {int(TARGETS[name][1]) for name in SEES[username]}
