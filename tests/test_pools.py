"""The customer pool (公海): every recycle rule kind with per-level N, AND/OR and the exemptions
against a frozen clock; never twice; the warning once per due date; claim cap, cooldown,
capacity (owned and locked) and the race; pool scope and hidden fields in screens and API.

The tests work in a department of their own (公海测试部, under 销售中心) with its own people, so
the recycle runs never touch the customers of other test modules.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select, update

from app.demo_pools import load_pool_demo
from app.extensions import db
from app.pools import claim, due_for_recycle, recycle
from models.base import utcnow
from models.customers import Customer
from models.notifications import Notification, OutboxMessage
from models.pools import CustomerPool, PoolMove, PoolRule
from models.sales import Opportunity, Pipeline, Stage
from models.security import CrmUser, Department
from tests.conftest import PASSWORD, unique_name, user

NOW = dt.datetime(2031, 6, 15, 2, 0)  # the frozen clock of every recycle run here
_pool_names = itertools.count(1)


def days_ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


@pytest.fixture(scope="module")
def org(app) -> dict[str, int]:
    """公海测试部 with two reps and a manager; 公海对照部 with one rep (not served by the pools)."""
    sm = app.appbuilder.sm
    with app.app_context():
        sales = db.session.scalar(select(Department).where(Department.name == "销售中心"))
        ids: dict[str, int] = {}
        for key, name in (("dept", "公海测试部"), ("other", "公海对照部")):
            department = Department(name=name, parent_id=sales.id)
            db.session.add(department)
            db.session.commit()
            ids[key] = department.id
        for username, role, dept in (
            ("pool_rep1", "Sales Rep", "dept"),
            ("pool_rep2", "Sales Rep", "dept"),
            ("pool_mgr", "Sales Manager", "dept"),
            ("pool_outsider", "Sales Rep", "other"),
        ):
            sm.add_user(
                username, username, "Pool", f"{username}@pool.example.cn", sm.find_role(role), PASSWORD
            )
            person = db.session.scalar(select(CrmUser).where(CrmUser.username == username))
            person.department_id = ids[dept]
            db.session.commit()
            ids[username] = person.id
        return ids


@pytest.fixture()
def make_pool(org) -> Iterator[Callable[..., CustomerPool]]:
    """A pool serving 公海测试部 with the given rules ((kind, days, days_by_level), ...); it is
    deactivated afterwards (one active pool per department)."""
    made: list[int] = []

    def _make(rules: list[tuple[str, int, dict[str, int]]] = (), **settings: Any) -> CustomerPool:
        defaults = {"daily_claim_cap": 0, "reclaim_cooldown_days": 0, "warn_days": 3}
        pool = CustomerPool(name=f"测试公海{next(_pool_names)}", **{**defaults, **settings})
        pool.departments = [db.session.get(Department, org["dept"])]
        pool.rules = [
            PoolRule(kind=kind, days=days, days_by_level=by_level, position=i)
            for i, (kind, days, by_level) in enumerate(rules)
        ]
        db.session.add(pool)
        db.session.commit()
        made.append(pool.id)
        return pool

    yield _make
    db.session.rollback()
    db.session.execute(update(CustomerPool).where(CustomerPool.id.in_(made)).values(active=False))
    db.session.commit()


def owned_customer(org: dict[str, int], owner: str = "pool_rep1", **columns: Any) -> int:
    """A customer of `owner` (in 公海测试部); timestamps set afterwards as the test says."""
    timestamps = {
        k: columns.pop(k) for k in ("created_at", "owned_since", "last_followup_at") if k in columns
    }
    customer = Customer(name=unique_name("公海客户"), owner_id=org[owner], **columns)
    db.session.add(customer)
    db.session.commit()
    values = {"created_at": days_ago(400), **timestamps}
    db.session.execute(update(Customer).where(Customer.id == customer.id).values(**values))
    db.session.commit()
    return customer.id


def pooled_customer(pool: CustomerPool, **columns: Any) -> int:
    customer = Customer(name=unique_name("池中客户"), pool_id=pool.id, pooled_at=days_ago(1), **columns)
    db.session.add(customer)
    db.session.commit()
    return customer.id


@pytest.fixture(scope="module")
def stages(app) -> dict[str, int]:
    with app.app_context():
        flow = Pipeline(name=unique_name("公海流程"), position=-2)
        flow.stages = [
            Stage(name="初步", position=0, probability=10),
            Stage(name="赢单", position=1, probability=100, is_won=True),
        ]
        db.session.add(flow)
        db.session.commit()
        return {"pipeline": flow.id, "open": flow.stages[0].id, "won": flow.stages[1].id}


def opportunity(
    stages: dict[str, int], customer_id: int, owner_id: int, won: bool = False, age: float = 1
) -> int:
    item = Opportunity(
        name=unique_name("商机"),
        customer_id=customer_id,
        pipeline_id=stages["pipeline"],
        stage_id=stages["won" if won else "open"],
        owner_id=owner_id,
    )
    db.session.add(item)
    db.session.commit()
    db.session.execute(update(Opportunity).where(Opportunity.id == item.id).values(created_at=days_ago(age)))
    db.session.commit()
    return item.id


def state(customer_id: int) -> Customer:
    db.session.expire_all()
    return db.session.get(Customer, customer_id)


def moves(customer_id: int, action: str | None = None) -> list[PoolMove]:
    query = select(PoolMove).where(PoolMove.customer_id == customer_id).order_by(PoolMove.id)
    if action:
        query = query.where(PoolMove.action == action)
    return list(db.session.scalars(query))


# --- recycle rules ---------------------------------------------------------------------------------
def test_no_followup_rule_with_days_per_level(org, make_pool) -> None:
    pool = make_pool([("no_followup", 30, {"key": 60})])
    late = owned_customer(org, last_followup_at=days_ago(31))
    recent = owned_customer(org, last_followup_at=days_ago(29))
    key_recent = owned_customer(org, level="key", last_followup_at=days_ago(45))
    key_late = owned_customer(org, level="key", last_followup_at=days_ago(61))
    never = owned_customer(org, owned_since=days_ago(35))  # never followed up: since it was got
    claimed = owned_customer(org, owned_since=days_ago(5), last_followup_at=days_ago(90))

    recycle(db.session, NOW)

    for customer_id in (late, key_late, never):
        customer = state(customer_id)
        assert customer.pool_id == pool.id and customer.owner_id is None, customer_id
        assert customer.department_id is None and customer.recycle_at is None and customer.pooled_at == NOW
        (move,) = moves(customer_id)
        assert move.action == "recycle" and move.from_user_id == org["pool_rep1"] and move.pool_id == pool.id
    assert "60" in moves(key_late)[0].reason and "未跟进" in moves(key_late)[0].reason
    assert "30" in moves(late)[0].reason
    for customer_id in (recent, key_recent, claimed):
        customer = state(customer_id)
        assert customer.owner_id == org["pool_rep1"] and customer.pool_id is None and not moves(customer_id)
    # the due date (30, or 60 days for a key customer, after the last follow-up or the claim) is
    # kept once it is within the warning days and two more (3 + 2): 1 day ahead; not 15 or 25 yet
    assert abs(state(recent).recycle_at - days_ago(29 - 30)) < dt.timedelta(seconds=1)
    assert state(key_recent).recycle_at is None and state(claimed).recycle_at is None
    later = NOW + dt.timedelta(days=11)  # key_recent is then due in 4 days, claimed in 14
    recycle(db.session, later)
    assert abs(state(key_recent).recycle_at - days_ago(45 - 60)) < dt.timedelta(seconds=1)
    assert state(claimed).recycle_at is None and state(claimed).owner_id == org["pool_rep1"]
    assert state(recent).owner_id is None  # due a day after NOW: back in the pool


def test_no_opportunity_rule_counts_from_the_newest_opportunity(org, make_pool, stages) -> None:
    make_pool([("no_opportunity", 30, {})])
    stale = owned_customer(org)
    opportunity(stages, stale, org["pool_rep1"], age=40)
    fresh = owned_customer(org)
    opportunity(stages, fresh, org["pool_rep1"], age=40)
    opportunity(stages, fresh, org["pool_rep1"], age=10)
    none_but_new_owner = owned_customer(org, owned_since=days_ago(10))
    opportunity(stages, none_but_new_owner, org["pool_rep1"], age=100)

    recycle(db.session, NOW)

    assert state(stale).owner_id is None and "未新建商机" in moves(stale)[0].reason
    assert state(fresh).owner_id == org["pool_rep1"]
    assert state(none_but_new_owner).owner_id == org["pool_rep1"]


def test_not_won_rule_and_what_counts_as_won(org, make_pool, stages) -> None:
    make_pool([("not_won", 90, {"potential": 30})], exempt_won=False)
    plain = owned_customer(org, owned_since=days_ago(100))
    young = owned_customer(org, owned_since=days_ago(80))
    potential = owned_customer(org, level="potential", owned_since=days_ago(40))
    won_status = owned_customer(org, status="won", owned_since=days_ago(100))
    won_deal = owned_customer(org, owned_since=days_ago(100))
    opportunity(stages, won_deal, org["pool_rep1"], won=True)

    recycle(db.session, NOW)

    assert state(plain).owner_id is None and "未成交" in moves(plain)[0].reason
    assert state(potential).owner_id is None and "30" in moves(potential)[0].reason
    assert state(young).owner_id == org["pool_rep1"]
    # won either way: the not-won rule never fires, even without the won exemption
    for customer_id in (won_status, won_deal):
        assert state(customer_id).owner_id == org["pool_rep1"] and state(customer_id).recycle_at is None


def test_exemptions_won_locked_and_open_opportunity(org, make_pool, stages) -> None:
    make_pool([("no_followup", 30, {})], exempt_won=True, exempt_locked=True, exempt_open_opportunity=True)
    won = owned_customer(org, status="won", last_followup_at=days_ago(50))
    locked = owned_customer(org, locked=True, last_followup_at=days_ago(50))
    busy = owned_customer(org, last_followup_at=days_ago(50))
    opportunity(stages, busy, org["pool_rep1"])
    plain = owned_customer(org, last_followup_at=days_ago(50))

    recycle(db.session, NOW)

    for customer_id in (won, locked, busy):
        assert state(customer_id).owner_id == org["pool_rep1"] and state(customer_id).recycle_at is None
    assert state(plain).owner_id is None


def test_locked_customers_recycle_when_the_pool_does_not_exempt_them(org, make_pool) -> None:
    make_pool([("no_followup", 30, {})], exempt_locked=False)
    locked = owned_customer(org, locked=True, last_followup_at=days_ago(50))
    recycle(db.session, NOW)
    assert state(locked).owner_id is None and state(locked).locked is False


def test_rules_combined_with_and_or(org, make_pool) -> None:
    rules = [("no_followup", 30, {}), ("not_won", 90, {})]
    both_rules = make_pool(rules, rule_logic="and")
    one_rule = owned_customer(org, owned_since=days_ago(50), last_followup_at=days_ago(40))
    both = owned_customer(org, owned_since=days_ago(100), last_followup_at=days_ago(40))
    recycle(db.session, NOW)
    assert state(one_rule).owner_id == org["pool_rep1"]
    assert state(one_rule).recycle_at is None  # the later rule: in 40 days, beyond the warning days
    recycle(db.session, NOW + dt.timedelta(days=38))
    assert abs(state(one_rule).recycle_at - days_ago(50 - 90)) < dt.timedelta(seconds=1)
    assert state(both).owner_id is None
    reason = moves(both)[0].reason
    assert "未跟进" in reason and "未成交" in reason

    both_rules.active = False  # one active pool per department
    db.session.commit()
    make_pool(rules, rule_logic="or")
    either = owned_customer(org, owned_since=days_ago(50), last_followup_at=days_ago(40))
    recycle(db.session, NOW)
    assert state(either).owner_id is None and "未跟进" in moves(either)[0].reason


def test_never_twice_and_the_warning_once_per_due_date(org, make_pool) -> None:
    make_pool([("no_followup", 30, {})], warn_days=3)
    due = owned_customer(org, last_followup_at=days_ago(31))
    soon = owned_customer(org, last_followup_at=days_ago(28))  # due in 2 days
    link = f"/customerview/show/{soon}?recycle_on="

    def warnings() -> int:
        return db.session.scalar(
            select(func.count()).select_from(Notification).where(Notification.link.startswith(link))
        )

    first = recycle(db.session, NOW)
    second = recycle(db.session, NOW + dt.timedelta(hours=1))
    assert len(moves(due, "recycle")) == 1 and first.recycled >= 1 and second.recycled == 0
    assert warnings() == 1
    mails = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.to_address == "pool_rep1@pool.example.cn")
    ).all()
    assert any(state(soon).name in mail.body_text for mail in mails)
    # the next day: still warned once
    recycle(db.session, NOW + dt.timedelta(days=1))
    assert warnings() == 1
    # a follow-up moves the due date; when the new one comes near, the owner is warned again
    db.session.execute(update(Customer).where(Customer.id == soon).values(last_followup_at=NOW))
    db.session.commit()
    recycle(db.session, NOW + dt.timedelta(days=1))
    assert warnings() == 1
    recycle(db.session, NOW + dt.timedelta(days=28))
    assert warnings() == 2
    assert state(soon) in due_for_recycle(db.session, user("pool_rep1"), NOW + dt.timedelta(days=28), 50)


def test_due_for_recycle_lists_the_users_own_customers_soonest_first(org, make_pool) -> None:
    make_pool([("no_followup", 30, {})], warn_days=5)
    later = owned_customer(org, last_followup_at=days_ago(26))
    sooner = owned_customer(org, last_followup_at=days_ago(28))
    far = owned_customer(org, last_followup_at=days_ago(5))
    someone_elses = owned_customer(org, owner="pool_rep2", last_followup_at=days_ago(28))
    recycle(db.session, NOW)
    listed = [c.id for c in due_for_recycle(db.session, user("pool_rep1"), NOW, 100)]
    assert listed.index(sooner) < listed.index(later)
    assert far not in listed and someone_elses not in listed
    assert someone_elses in [c.id for c in due_for_recycle(db.session, user("pool_mgr"), NOW, 100)]


def test_recycle_command(app, org, make_pool) -> None:
    make_pool([("no_followup", 30, {})])
    result = app.test_cli_runner().invoke(args=["crm", "recycle"])
    assert result.exit_code == 0, result.output
    assert "customers recycled" in result.output


# --- claiming -------------------------------------------------------------------------------------
def post(api_as: Any, username: str, path: str, body: dict[str, Any] | None = None) -> Any:
    client, headers = api_as(username)
    return client.post(f"/api/v1/{path}", json=body or {}, headers=headers)


def test_claim_takes_a_customer_and_a_second_claim_is_refused(api_as, org, make_pool) -> None:
    pool = make_pool()
    customer_id = pooled_customer(pool)
    first = post(api_as, "pool_rep1", f"customer/{customer_id}/claim")
    assert first.status_code == 200, first.json
    assert first.json["result"] == {
        "id": customer_id,
        "owner_id": org["pool_rep1"],
        "pool_id": None,
        "locked": False,
    }
    customer = state(customer_id)
    assert customer.department_id == org["dept"] and customer.owned_since is not None
    (move,) = moves(customer_id)
    assert move.action == "claim" and move.to_user_id == org["pool_rep1"] and move.pool_id == pool.id
    second = post(api_as, "pool_rep2", f"customer/{customer_id}/claim")
    assert second.status_code == 409 and state(customer_id).owner_id == org["pool_rep1"]


def test_claim_race_one_wins(org, make_pool) -> None:
    """Two people read the customer as free; the conditional UPDATE lets one of them have it."""
    from app.pools import _take_from_pool

    pool = make_pool()
    customer_id = pooled_customer(pool)
    customer = db.session.get(Customer, customer_id)
    _take_from_pool(db.session, customer, pool, user("pool_rep1"), None, "claim")
    db.session.commit()
    with pytest.raises(Exception) as refused:
        _take_from_pool(db.session, customer, pool, user("pool_rep2"), None, "claim")
    db.session.rollback()
    assert getattr(refused.value, "status", None) == 409
    assert state(customer_id).owner_id == org["pool_rep1"] and len(moves(customer_id)) == 1


def test_daily_claim_cap(api_as, org, make_pool) -> None:
    pool = make_pool(daily_claim_cap=2)
    ids = [pooled_customer(pool) for _ in range(3)]
    assert post(api_as, "pool_rep2", f"customer/{ids[0]}/claim").status_code == 200
    assert post(api_as, "pool_rep2", f"customer/{ids[1]}/claim").status_code == 200
    refused = post(api_as, "pool_rep2", f"customer/{ids[2]}/claim")
    assert refused.status_code == 400 and "上限" in str(refused.json["message"])
    assert state(ids[2]).pool_id == pool.id
    # another person has their own cap; tomorrow the cap starts again
    assert post(api_as, "pool_mgr", f"customer/{ids[2]}/claim").status_code == 200


def test_claim_cap_resets_the_next_day(org, make_pool) -> None:
    pool = make_pool(daily_claim_cap=1)
    first, second = pooled_customer(pool), pooled_customer(pool)
    claim(db.session, first, user("pool_rep1"), utcnow())
    tomorrow = utcnow() + dt.timedelta(days=1)
    assert claim(db.session, second, user("pool_rep1"), tomorrow).owner_id == org["pool_rep1"]


def test_cooldown_before_the_previous_owner_claims_back(api_as, org, make_pool) -> None:
    pool = make_pool(reclaim_cooldown_days=15)
    customer_id = owned_customer(org)
    released = post(api_as, "pool_rep1", f"customer/{customer_id}/release", {"reason": "客户暂无需求"})
    assert released.status_code == 200, released.json
    assert state(customer_id).pool_id == pool.id and moves(customer_id, "release")[0].reason == "客户暂无需求"
    again = post(api_as, "pool_rep1", f"customer/{customer_id}/claim")
    assert again.status_code == 400 and "冷却" in str(again.json["message"])
    later = utcnow() + dt.timedelta(days=16)
    assert claim(db.session, customer_id, user("pool_rep1"), later).owner_id == org["pool_rep1"]


def test_capacity_owned_and_locked(api_as, org, make_pool) -> None:
    owned = db.session.scalar(select(func.count()).where(Customer.owner_id == org["pool_rep2"]))
    locked = db.session.scalar(
        select(func.count()).where(Customer.owner_id == org["pool_rep2"], Customer.locked.is_(True))
    )
    pool = make_pool(max_owned=owned + 1, max_locked=locked + 1)
    ids = [pooled_customer(pool) for _ in range(2)]
    assert post(api_as, "pool_rep2", f"customer/{ids[0]}/claim").status_code == 200
    full = post(api_as, "pool_rep2", f"customer/{ids[1]}/claim")
    assert full.status_code == 400 and "库容" in str(full.json["message"])
    mine = [owned_customer(org, owner="pool_rep2") for _ in range(2)]
    assert post(api_as, "pool_rep2", f"customer/{mine[0]}/lock").json["result"]["locked"] is True
    too_many = post(api_as, "pool_rep2", f"customer/{mine[1]}/lock")
    assert too_many.status_code == 400 and "锁定库容" in str(too_many.json["message"])
    assert post(api_as, "pool_rep2", f"customer/{mine[0]}/lock", {"locked": False}).status_code == 200
    assert post(api_as, "pool_rep2", f"customer/{mine[1]}/lock").status_code == 200


def test_pool_scope_release_and_assign_rules(api_as, org, make_pool) -> None:
    pool = make_pool()
    customer_id = pooled_customer(pool)
    # a rep of a department the pool does not serve neither sees nor claims it
    assert post(api_as, "pool_outsider", f"customer/{customer_id}/claim").status_code == 404
    client, headers = api_as("pool_outsider")
    assert client.get(f"/api/v1/poolcustomer/{customer_id}", headers=headers).status_code == 404
    # unknown customers and customers with an owner
    assert post(api_as, "pool_rep1", "customer/999999999/claim").status_code == 404
    owned = owned_customer(org, owner="pool_rep2")
    assert post(api_as, "pool_rep1", f"customer/{owned}/claim").status_code == 409
    # release: a reason is required; only the owner's scope may release
    assert post(api_as, "pool_rep2", f"customer/{owned}/release").status_code == 400
    assert post(api_as, "pool_rep1", f"customer/{owned}/release", {"reason": "x"}).status_code == 404
    assert state(owned).owner_id == org["pool_rep2"]
    # assign: managers to someone in their scope; not reps
    refused = post(api_as, "pool_rep1", f"customer/{customer_id}/assign", {"to_user_id": org["pool_rep1"]})
    assert refused.status_code == 403
    outside = post(api_as, "pool_mgr", f"customer/{customer_id}/assign", {"to_user_id": user("rep_c").id})
    assert outside.status_code == 403
    given = post(api_as, "pool_mgr", f"customer/{customer_id}/assign", {"to_user_id": org["pool_rep2"]})
    assert given.status_code == 200 and state(customer_id).owner_id == org["pool_rep2"]
    assert moves(customer_id)[-1].action == "assign" and moves(customer_id)[-1].actor_id == org["pool_mgr"]
    # not JSON
    client, headers = api_as("pool_rep1")
    bad = client.post(f"/api/v1/customer/{owned}/release", data="[1]", headers=headers)
    assert bad.status_code == 400


def test_hidden_fields_never_reach_pool_browsers(api_as, login_as, org, make_pool) -> None:
    pool = make_pool(hidden_fields=["mobile", "email"])
    customer_id = pooled_customer(
        pool, mobile="13912345671", email="secret@pool.example.cn", phone="0546-8881234"
    )
    client, headers = api_as("pool_rep1")
    shown = client.get(f"/api/v1/poolcustomer/{customer_id}", headers=headers)
    assert shown.status_code == 200, shown.json
    assert "mobile" not in shown.json["result"] and "email" not in shown.json["result"]
    assert shown.json["result"]["phone"] == "0546-8881234"
    listed = client.get(
        "/api/v1/poolcustomer/?q=(page_size:100,order_column:id,order_direction:desc)", headers=headers
    )
    assert listed.status_code == 200
    assert customer_id in listed.json["ids"]
    assert "13912345671" not in listed.get_data(as_text=True)
    screen = login_as("pool_rep1")
    page = screen.get(f"/poolcustomerview/show/{customer_id}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "13912345671" not in text and "secret@pool.example.cn" not in text and "0546-8881234" in text
    listing = screen.get("/poolcustomerview/list/")
    assert listing.status_code == 200 and pool.name in listing.get_data(as_text=True)
    # the customers' own column titles (a customer's kind is not a recycle rule's kind)
    assert "客户类型" in listing.get_data(as_text=True) and "规则类型" not in listing.get_data(as_text=True)
    # the pool's customer is not in the owners' customer list (no owner, no department)
    assert screen.get(f"/customerview/show/{customer_id}").status_code == 404
    # claimed: the owner sees everything
    assert post(api_as, "pool_rep1", f"customer/{customer_id}/claim").status_code == 200
    assert (
        client.get(f"/api/v1/customer/{customer_id}", headers=headers).json["result"]["mobile"]
        == "13912345671"
    )


def test_claim_and_release_through_the_screens(login_as, org, make_pool) -> None:
    pool = make_pool()
    customer_id = pooled_customer(pool)
    screen = login_as("pool_rep1")
    response = screen.post(
        "/poolcustomerview/action_post", data={"action": "claim_action", "rowid": [customer_id]}
    )
    assert response.status_code == 302
    assert state(customer_id).owner_id == org["pool_rep1"]
    form = screen.get(f"/customerview/release?ids={customer_id}")
    assert form.status_code == 200 and "原因" in form.get_data(as_text=True)
    done = screen.post("/customerview/release", data={"ids": str(customer_id), "reason": "不再跟进"})
    assert done.status_code == 302 and state(customer_id).pool_id == pool.id


def test_confirm_forms_name_only_customers_the_actor_may_act_on(login_as, org, make_pool) -> None:
    """The ids of the release, transfer and assign forms come from the query string: another
    department's customer must not have its name shown there."""
    pool = make_pool()
    owned = owned_customer(org)
    owned_name = state(owned).name
    pooled = pooled_customer(pool)
    pooled_name = state(pooled).name
    owner = login_as("pool_rep1")
    assert owned_name in owner.get(f"/customerview/release?ids={owned}").get_data(as_text=True)
    outsider = login_as("pool_outsider")
    for path in (f"/customerview/release?ids={owned}", f"/customerview/transfer?ids={owned}"):
        page = outsider.get(path)
        assert page.status_code == 200
        assert owned_name not in page.get_data(as_text=True)
    page = outsider.get(f"/poolcustomerview/assign?ids={pooled}")
    assert pooled_name not in page.get_data(as_text=True)
    manager = login_as("pool_mgr")
    assert pooled_name in manager.get(f"/poolcustomerview/assign?ids={pooled}").get_data(as_text=True)


def test_pool_configuration_is_validated(api_as, org) -> None:
    body = {"name": unique_name("坏公海"), "hidden_fields": ["no_such_field"], "daily_claim_cap": -1}
    response = post(api_as, "admin", "pool/", body)
    assert response.status_code == 400
    assert set(response.json["message"]) >= {"hidden_fields", "daily_claim_cap"}
    good = post(
        api_as, "admin", "pool/", {"name": unique_name("空公海"), "active": False, "hidden_fields": []}
    )
    assert good.status_code == 201, good.json
    rule = post(api_as, "admin", "poolrule/", {"pool": good.json["id"], "kind": "nonsense", "days": 0})
    assert rule.status_code == 400 and {"kind", "days"} <= set(rule.json["message"])
    # a rep reads the pools but cannot configure them
    assert post(api_as, "pool_rep1", "pool/", {"name": unique_name("公海")}).status_code == 403


def test_pool_demo(org) -> None:
    """Two pools with rules, customers in the pool and a history of moves (runs last: its pool
    then serves the test department and is deactivated here)."""
    reps = [user("pool_rep1"), user("pool_rep2")]
    for _ in range(16):
        owned_customer(org)
    counts = load_pool_demo(db.session, random.Random(7), reps)
    local = db.session.scalar(select(CustomerPool).where(CustomerPool.name == "东营公海"))
    assert [rule.kind for rule in local.rules] == ["no_followup", "not_won"]
    assert local.rules[0].days_for("key") == 60
    assert counts["pooled"] >= 1
    assert db.session.scalar(select(func.count()).where(Customer.pool_id == local.id)) >= counts["pooled"]
    local.active = False
    db.session.commit()
