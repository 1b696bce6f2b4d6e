"""Handover (转移) and collaborators (团队成员): customers move with their open opportunities
(stage and history kept), unfinished orders and open tasks in one transaction, follow-ups keep
their author, nothing moves when one customer or the target is not allowed; a read-only
collaborator sees but cannot change, a write collaborator can, an expired one sees nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, insert, select, update

from app.extensions import db
from models.customers import Contact, Customer
from models.orders import Order
from models.pools import CustomerTeamMember, PoolMove
from models.sales import Interaction, Opportunity, Pipeline, Stage, StageChange, Task
from tests.conftest import unique_mobile, unique_name, user


def post(api_as: Any, username: str, path: str, body: Any) -> Any:
    client, headers = api_as(username)
    return client.post(f"/api/v1/{path}", json=body, headers=headers)


def customer_with_everything(owner: str) -> dict[str, int]:
    """A customer of `owner` with a contact, an open and a won opportunity (with stage history),
    a draft and a completed order, an open and a done task, and a follow-up."""
    person = user(owner)
    flow = db.session.scalar(select(Pipeline).where(Pipeline.name == "转移测试流程"))
    if flow is None:
        flow = Pipeline(name="转移测试流程", position=-3)
        flow.stages = [Stage(name="初步", position=0), Stage(name="赢单", position=1, is_won=True)]
        db.session.add(flow)
        db.session.commit()
    customer = Customer(name=unique_name("转移客户"), owner_id=person.id)
    db.session.add(customer)
    db.session.commit()
    contact = Contact(customer_id=customer.id, name="张三", mobile=unique_mobile())
    open_deal = Opportunity(
        name=unique_name("进行中"), customer_id=customer.id, pipeline_id=flow.id, stage_id=flow.stages[0].id,
        owner_id=person.id,
    )  # fmt: skip
    won_deal = Opportunity(
        name=unique_name("已赢单"), customer_id=customer.id, pipeline_id=flow.id, stage_id=flow.stages[1].id,
        owner_id=person.id,
    )  # fmt: skip
    due = dt.datetime(2031, 1, 1)
    open_task = Task(title="回访", due_at=due, customer_id=customer.id, owner_id=person.id)
    done_task = Task(title="已完成", due_at=due, customer_id=customer.id, owner_id=person.id, status="done")
    note = Interaction(customer_id=customer.id, content="电话沟通", owner_id=person.id)
    db.session.add_all([contact, open_deal, won_deal, open_task, done_task, note])
    db.session.commit()
    orders = {}
    for status in ("draft", "completed"):
        orders[status] = db.session.execute(
            insert(Order)
            .values(
                number=unique_name("DD"), title="订单", customer_id=customer.id, status=status,
                owner_id=person.id, department_id=person.department_id,
            )
            .returning(Order.id)
        ).scalar_one()  # fmt: skip
    db.session.commit()
    return {
        "customer": customer.id,
        "contact": contact.id,
        "open_deal": open_deal.id,
        "won_deal": won_deal.id,
        "open_task": open_task.id,
        "done_task": done_task.id,
        "note": note.id,
        "draft_order": orders["draft"],
        "completed_order": orders["completed"],
    }


def owners(ids: dict[str, int]) -> dict[str, int | None]:
    db.session.expire_all()
    return {
        "customer": db.session.get(Customer, ids["customer"]).owner_id,
        "open_deal": db.session.get(Opportunity, ids["open_deal"]).owner_id,
        "won_deal": db.session.get(Opportunity, ids["won_deal"]).owner_id,
        "open_task": db.session.get(Task, ids["open_task"]).owner_id,
        "done_task": db.session.get(Task, ids["done_task"]).owner_id,
        "note": db.session.get(Interaction, ids["note"]).owner_id,
        "draft_order": db.session.get(Order, ids["draft_order"]).owner_id,
        "completed_order": db.session.get(Order, ids["completed_order"]).owner_id,
    }


def test_handover_cascades_in_one_transaction(api_as) -> None:
    first, second = customer_with_everything("rep_a"), customer_with_everything("rep_a")
    history = db.session.scalar(
        select(func.count()).select_from(StageChange).where(StageChange.opportunity_id == first["open_deal"])
    )
    stage = db.session.get(Opportunity, first["open_deal"]).stage_id
    rep_a, rep_b = user("rep_a").id, user("rep_b").id
    body = {
        "customer_ids": [first["customer"], second["customer"]],
        "to_user_id": rep_b,
        "reason": "离职交接",
    }
    response = post(api_as, "manager1", "customer/transfer", body)
    assert response.status_code == 200, response.json
    result = response.json["result"]
    assert result["customers"] == 2 and result["opportunities"] == 2 and result["orders"] == 2
    assert result["tasks"] == 2
    for ids in (first, second):
        moved = owners(ids)
        assert moved["customer"] == moved["open_deal"] == moved["open_task"] == moved["draft_order"] == rep_b
        # closed work keeps its owner; follow-ups keep their author
        assert moved["won_deal"] == moved["done_task"] == moved["completed_order"] == moved["note"] == rep_a
        assert db.session.get(Customer, ids["customer"]).department_id == user("rep_b").department_id
        (move,) = db.session.scalars(select(PoolMove).where(PoolMove.customer_id == ids["customer"]))
        assert (move.action, move.from_user_id, move.to_user_id) == ("transfer", rep_a, rep_b)
        assert move.batch == result["batch"] and move.reason == "离职交接"
    deal = db.session.get(Opportunity, first["open_deal"])
    assert deal.stage_id == stage
    assert (
        db.session.scalar(
            select(func.count()).select_from(StageChange).where(StageChange.opportunity_id == deal.id)
        )
        == history
    )
    # rep_b now sees the contact through the customer
    client, headers = api_as("rep_b")
    assert client.get(f"/api/v1/contact/{first['contact']}", headers=headers).status_code == 200


def test_handover_only_some_parts(api_as) -> None:
    ids = customer_with_everything("rep_a")
    body = {
        "customer_ids": [ids["customer"]],
        "to_user_id": user("rep_b").id,
        "reason": "调整",
        "include": ["tasks"],
    }
    assert post(api_as, "manager1", "customer/transfer", body).status_code == 200
    moved = owners(ids)
    assert moved["customer"] == moved["open_task"] == user("rep_b").id
    assert moved["open_deal"] == moved["draft_order"] == user("rep_a").id


def test_nothing_moves_when_something_is_not_allowed(api_as) -> None:
    mine, theirs = customer_with_everything("rep_a"), customer_with_everything("rep_c")
    before = owners(mine), owners(theirs)
    # a customer outside the actor's scope: all refused
    both = {
        "customer_ids": [mine["customer"], theirs["customer"]],
        "to_user_id": user("rep_b").id,
        "reason": "x",
    }
    refused = post(api_as, "manager1", "customer/transfer", both)
    assert refused.status_code == 403 and str(theirs["customer"]) in str(refused.json["message"])
    # a target the actor may not assign to (a rep may only assign to themself)
    outside = {"customer_ids": [mine["customer"]], "to_user_id": user("rep_c").id, "reason": "x"}
    assert post(api_as, "rep_a", "customer/transfer", outside).status_code == 403
    # a rep cannot hand over someone else's customers
    assert (
        post(api_as, "rep_c", "customer/transfer", {**outside, "to_user_id": user("rep_c").id}).status_code
        == 403
    )
    assert (owners(mine), owners(theirs)) == before
    assert not db.session.scalars(select(PoolMove).where(PoolMove.customer_id == mine["customer"])).all()


def test_handover_bad_input_is_a_400(api_as) -> None:
    ids = customer_with_everything("rep_a")
    for body in (
        {},
        {"customer_ids": [], "to_user_id": user("rep_b").id, "reason": "x"},
        {"customer_ids": ["a"], "to_user_id": user("rep_b").id, "reason": "x"},
        {"customer_ids": [ids["customer"]], "to_user_id": "rep_b", "reason": "x"},
        {"customer_ids": [ids["customer"]], "to_user_id": user("rep_b").id, "reason": ""},
        {
            "customer_ids": [ids["customer"]],
            "to_user_id": user("rep_b").id,
            "reason": "x",
            "include": ["notes"],
        },
        {"customer_ids": [ids["customer"]], "to_user_id": 999999, "reason": "x"},
    ):
        response = post(api_as, "manager1", "customer/transfer", body)
        assert response.status_code == 400, (body, response.json)
    client, headers = api_as("manager1")
    assert client.post("/api/v1/customer/transfer", data="[]", headers=headers).status_code == 400
    assert owners(ids)["customer"] == user("rep_a").id


def test_handover_screen(login_as) -> None:
    ids = customer_with_everything("rep_a")
    screen = login_as("manager1")
    form = screen.get(f"/customerview/transfer?ids={ids['customer']}")
    assert form.status_code == 200 and "接收人" in form.get_data(as_text=True)
    data = {
        "ids": str(ids["customer"]),
        "to_user_id": user("rep_b").id,
        "reason": "交接",
        "include": ["tasks"],
    }
    assert screen.post("/customerview/transfer", data=data).status_code == 302
    assert owners(ids)["customer"] == user("rep_b").id


# --- collaborators ---------------------------------------------------------------------------------
def test_collaborators_read_and_write(api_as) -> None:
    ids = customer_with_everything("rep_a")
    customer_id = ids["customer"]
    reader, writer = user("rep_c"), user("rep_b")
    client_c, headers_c = api_as("rep_c")
    assert client_c.get(f"/api/v1/customer/{customer_id}", headers=headers_c).status_code == 404
    # only the owner's scope adds members; the service checks the pair
    added = post(
        api_as, "rep_a", "customerteam/", {"customer": customer_id, "user": reader.id, "access": "read"}
    )
    assert added.status_code == 201, added.json
    assert (
        post(api_as, "rep_a", "customerteam/", {"customer": customer_id, "user": reader.id}).status_code
        == 400
    )
    by_reader = post(api_as, "rep_c", "customerteam/", {"customer": customer_id, "user": writer.id})
    assert by_reader.status_code == 403
    assert (
        post(
            api_as, "rep_a", "customerteam/", {"customer": customer_id, "user": writer.id, "access": "write"}
        ).status_code
        == 201
    )
    # the reader sees the customer and its contacts, and changes nothing
    assert client_c.get(f"/api/v1/customer/{customer_id}", headers=headers_c).status_code == 200
    assert client_c.get(f"/api/v1/contact/{ids['contact']}", headers=headers_c).status_code == 200
    edit = client_c.put(f"/api/v1/customer/{customer_id}", json={"notes": "读者改的"}, headers=headers_c)
    assert edit.status_code == 403
    contact = {"customer": customer_id, "name": "李四"}
    assert client_c.post("/api/v1/contact/", json=contact, headers=headers_c).status_code == 403
    # the writer may
    client_b, headers_b = api_as("rep_b")
    changed = client_b.put(f"/api/v1/customer/{customer_id}", json={"notes": "协作者改的"}, headers=headers_b)
    assert changed.status_code == 200, changed.json
    db.session.expire_all()
    assert db.session.get(Customer, customer_id).notes == "协作者改的"
    # an end date in the past ends it
    db.session.execute(
        update(CustomerTeamMember)
        .where(CustomerTeamMember.customer_id == customer_id, CustomerTeamMember.user_id == reader.id)
        .values(until=dt.date(2020, 1, 1))
    )
    db.session.commit()
    assert client_c.get(f"/api/v1/customer/{customer_id}", headers=headers_c).status_code == 404
