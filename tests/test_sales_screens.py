"""Selling in the browser: converting a lead from its page (the duplicate check's candidates, a new
customer or an existing one, an opportunity), assigning leads in bulk, follow-ups and tasks linked
to a lead, and moving a stage's opportunities before deleting the stage. Through the test client,
on the real database, as the user would."""

from __future__ import annotations

import datetime as dt
import html
import os
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.extensions import db
from models.base import utcnow
from models.customers import Customer
from models.sales import Interaction, Lead, Opportunity, Pipeline, Stage, StageChange, Task
from tests.conftest import unique_mobile, unique_name, user
from tests.login_support import csrf_from


@pytest.fixture(scope="module")
def flow(app: Flask) -> dict[str, int]:
    """A pipeline of this test process (初访 -> 报价 -> 签约) and a stage of another pipeline."""
    with app.app_context():
        pipeline = Pipeline(name=f"界面测试流程{os.getpid()}", position=-2)
        pipeline.stages = [Stage(name=n, position=i) for i, n in enumerate(("初访", "报价", "签约"))]
        other = Pipeline(name=f"另一流程{os.getpid()}", position=-3)
        other.stages = [Stage(name="别的阶段", position=0)]
        db.session.add_all([pipeline, other])
        db.session.commit()
        return {"id": pipeline.id, **{s.name: s.id for s in pipeline.stages}, "other": other.stages[0].id}


def api_post(api_as: Any, username: str, resource: str, body: dict[str, Any]) -> int:
    client, headers = api_as(username)
    response = client.post(f"/api/v1/{resource}/", json=body, headers=headers)
    assert response.status_code == 201, response.json
    return response.json["id"]


def new_lead(api_as: Any, username: str = "rep_a", **values: Any) -> int:
    body = {"name": "王经理", "company": unique_name("界面线索公司"), "mobile": unique_mobile(), **values}
    return api_post(api_as, username, "lead", body)


def count(model: type) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model))


def text_of(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def fresh(model: type, pk: int) -> Any:
    db.session.expire_all()
    return db.session.get(model, pk)


# --- 1. converting a lead ------------------------------------------------------------------------
def test_a_lead_converts_from_its_page_into_a_new_customer_and_opportunity(api_as, login_as, flow) -> None:
    lead_id = new_lead(api_as, interest="液碱")
    browser = login_as("rep_a")
    show = text_of(browser.get(f"/leadview/show/{lead_id}"))
    assert "转化" in show and f"/leadview/action/convert_action/{lead_id}" in show
    # the show page's button (FAB's single action) opens the form
    opened = browser.post(f"/leadview/action/convert_action/{lead_id}")
    assert opened.status_code == 302 and opened.location.endswith(f"/leadview/convert/{lead_id}")
    form = text_of(browser.get(f"/leadview/convert/{lead_id}"))
    assert 'value="new" checked' in form and "已有相似客户" not in form
    customers = count(Customer)
    done = browser.post(
        f"/leadview/convert/{lead_id}",
        data={
            "customer": "new",
            "create_opportunity": "y",
            "pipeline_id": flow["id"],
            "amount": "50000",
            "expected_close": "2026-12-31",
        },
    )
    assert done.status_code == 302, text_of(done)[:2000]
    lead = fresh(Lead, lead_id)
    assert lead.status == "converted" and done.location.endswith(f"/customerview/show/{lead.customer_id}")
    assert count(Customer) == customers + 1
    assert lead.customer.owner.username == "rep_a" and lead.contact.customer_id == lead.customer_id
    opportunity = db.session.get(Opportunity, lead.opportunity_id)
    assert (opportunity.pipeline_id, opportunity.stage_id) == (flow["id"], flow["初访"])
    assert opportunity.amount == 50000 and str(opportunity.expected_close) == "2026-12-31"
    assert "线索已转化" in text_of(browser.get(done.location))
    # converting twice is refused, said clearly, and writes nothing
    again = browser.post(f"/leadview/convert/{lead_id}", data={"customer": "new", "create_opportunity": "y"})
    assert again.status_code == 400 and "该线索已于" in text_of(again) and "转化" in text_of(again)
    assert count(Customer) == customers + 1 and count(Opportunity) and fresh(Lead, lead_id).opportunity_id
    page = browser.get(f"/leadview/convert/{lead_id}")
    assert "该线索已于" in text_of(page) and 'name="customer"' not in text_of(page)


def test_converting_attaches_to_a_similar_customer_inside_the_users_scope(api_as, login_as) -> None:
    name = unique_name("重名化工")
    mine = api_post(api_as, "rep_a", "customer", {"name": name})
    theirs = api_post(api_as, "rep_c", "customer", {"name": name})  # outside rep_a's data scope
    lead_id = new_lead(api_as, company=name)
    browser = login_as("rep_a")
    form = text_of(browser.get(f"/leadview/convert/{lead_id}"))
    assert "已有相似客户" in form and f'value="{mine}" checked' in form
    assert f'value="{theirs}"' not in form and "已存在 (不在您的数据范围内)" in form
    customers, opportunities = count(Customer), count(Opportunity)
    # no choice sent: the duplicate check answers (409), nothing written
    undecided = browser.post(f"/leadview/convert/{lead_id}", data={"customer": ""})
    assert undecided.status_code == 409 and "已有相似客户" in text_of(undecided)
    # a customer outside the user's scope cannot be chosen by a crafted form
    crafted = browser.post(f"/leadview/convert/{lead_id}", data={"customer": str(theirs)})
    assert crafted.status_code == 403 and "您无权访问该客户" in text_of(crafted)
    assert (count(Customer), count(Opportunity)) == (customers, opportunities)
    assert fresh(Lead, lead_id).status != "converted"
    attached = browser.post(f"/leadview/convert/{lead_id}", data={"customer": str(mine)})
    assert attached.status_code == 302 and attached.location.endswith(f"/customerview/show/{mine}")
    lead = fresh(Lead, lead_id)
    assert lead.customer_id == mine and lead.opportunity_id is None  # no opportunity asked for
    assert lead.contact.customer_id == mine and lead.contact.name == "王经理"
    assert (count(Customer), count(Opportunity)) == (customers, opportunities)


def test_the_convert_form_refuses_bad_opportunity_values_and_writes_nothing(api_as, login_as) -> None:
    lead_id = new_lead(api_as)
    browser = login_as("rep_a")
    customers = count(Customer)
    for field, value, message in (
        ("amount", "十万", "请填写有效的金额"),
        ("amount", "-5", "不能为负数"),
        ("expected_close", "2026-13-45", "请填写有效的日期"),
    ):
        data = {"customer": "new", "create_opportunity": "y", field: value}
        refused = browser.post(f"/leadview/convert/{lead_id}", data=data)
        assert refused.status_code == 400 and message in text_of(refused), field
        assert f'value="{value}"' in text_of(refused)  # what was typed stays in the form
    assert count(Customer) == customers and fresh(Lead, lead_id).status != "converted"
    # the API goes through the same function: the same refusal, a 400 (not a 500)
    client, headers = api_as("rep_a")
    bad = client.post(f"/api/v1/lead/{lead_id}/convert", json={"amount": "abc"}, headers=headers)
    assert bad.status_code == 400 and "amount" in bad.json["message"]
    wrong_id = client.post(f"/api/v1/lead/{lead_id}/convert", json={"pipeline_id": "x"}, headers=headers)
    assert wrong_id.status_code == 400 and "pipeline_id" in wrong_id.json["message"]
    assert count(Customer) == customers


def test_the_api_creates_a_new_customer_when_told_to_despite_similar_ones(api_as) -> None:
    name = unique_name("同名新客户")
    existing = api_post(api_as, "rep_a", "customer", {"name": name})
    lead_id = new_lead(api_as, company=name)
    client, headers = api_as("rep_a")
    url = f"/api/v1/lead/{lead_id}/convert"
    assert client.post(url, json={}, headers=headers).status_code == 409
    created = client.post(url, json={"new_customer": True, "create_opportunity": False}, headers=headers)
    assert created.status_code == 200, created.json
    assert created.json["result"]["customer_id"] != existing


def test_a_lead_outside_the_users_scope_is_not_found(api_as, login_as) -> None:
    lead_id = new_lead(api_as, "rep_a")
    other = login_as("rep_c")
    assert other.get(f"/leadview/convert/{lead_id}").status_code == 404
    assert other.post(f"/leadview/convert/{lead_id}", data={"customer": "new"}).status_code == 404
    assert other.post(f"/leadview/action/convert_action/{lead_id}").status_code == 302  # to the form...
    assert other.get(f"/leadview/convert/{lead_id}").status_code == 404  # ...which is not theirs
    assert fresh(Lead, lead_id).status != "converted"


def test_converting_needs_the_csrf_token(app, api_as, login_as, monkeypatch) -> None:
    lead_id = new_lead(api_as)
    browser = login_as("rep_a")
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    form = browser.get(f"/leadview/convert/{lead_id}").get_data(as_text=True)
    forged = browser.post(f"/leadview/convert/{lead_id}", data={"customer": "new"})
    assert forged.status_code == 400 and fresh(Lead, lead_id).status != "converted"
    token = csrf_from(form)
    sent = browser.post(f"/leadview/convert/{lead_id}", data={"customer": "new", "csrf_token": token})
    assert sent.status_code == 302 and fresh(Lead, lead_id).status == "converted"


# --- 2. assigning leads ----------------------------------------------------------------------------
def test_a_manager_assigns_selected_leads_and_a_refused_assignee_changes_nothing(api_as, login_as) -> None:
    leads = [new_lead(api_as, "rep_a") for _ in range(2)]
    manager = login_as("manager1")
    chosen = manager.post("/leadview/action_post", data={"action": "assign_action", "rowid": leads})
    assert chosen.status_code == 302 and "/leadview/assign" in chosen.location
    form = text_of(manager.get(chosen.location))
    assert "已选择 2 条线索" in form and "rep_b" in form and "rep_c" not in form  # team1 only
    ids = ",".join(map(str, leads))
    # rep_c (another team) is not someone manager1 may assign to: nothing moves, whatever was posted
    refused = manager.post("/leadview/assign", data={"ids": ids, "owner_id": user("rep_c").id})
    assert refused.status_code == 403 and "您只能分配给自己数据权限内的人员" in text_of(refused)
    assert {fresh(Lead, pk).owner.username for pk in leads} == {"rep_a"}
    missing = manager.post("/leadview/assign", data={"ids": ids, "owner_id": ""})
    assert missing.status_code == 400 and "请选择负责人" in text_of(missing)
    done = manager.post("/leadview/assign", data={"ids": ids, "owner_id": user("rep_b").id})
    assert done.status_code == 302
    assert "已分配 2 条线索" in text_of(manager.get(done.location))
    rep_b = user("rep_b")
    for pk in leads:
        lead = fresh(Lead, pk)
        assert (lead.owner_id, lead.department_id) == (rep_b.id, rep_b.department_id)


def test_a_rep_may_not_give_a_lead_away_nor_touch_anothers(api_as, login_as) -> None:
    own, others = new_lead(api_as, "rep_a"), new_lead(api_as, "rep_c")
    rep = login_as("rep_a")
    refused = rep.post("/leadview/assign", data={"ids": str(own), "owner_id": user("rep_b").id})
    assert refused.status_code == 403 and "您只能分配给自己数据权限内的人员" in text_of(refused)
    # a lead outside the scope is not even selected: nothing to assign
    unseen = rep.post("/leadview/assign", data={"ids": str(others), "owner_id": user("rep_a").id})
    assert unseen.status_code == 400 and "请先在列表中选择线索" in text_of(unseen)
    assert fresh(Lead, own).owner.username == "rep_a" and fresh(Lead, others).owner.username == "rep_c"


# --- 3. follow-ups and tasks of a lead ---------------------------------------------------------------
def test_a_follow_up_and_a_task_from_the_screen_show_on_the_leads_page(api_as, login_as) -> None:
    customer = api_post(api_as, "rep_a", "customer", {"name": unique_name("线索跟进客户")})
    lead_id = new_lead(api_as)
    browser = login_as("rep_a")
    add_form = text_of(browser.get("/interactionview/add"))
    assert 'data-kind="lead"' in add_form  # picked by typing, not a list of every lead
    subject = unique_name("线索电话")
    added = browser.post(
        "/interactionview/add",
        data={
            "kind": "call",
            "occurred_at": "2026-11-02 10:00:00",
            "customer": customer,
            "lead": lead_id,
            "subject": subject,
            "content": "介绍液碱报价",
        },
    )
    assert added.status_code == 302, text_of(added)[:3000]
    follow_up = db.session.scalar(select(Interaction).where(Interaction.subject == subject))
    assert follow_up.lead_id == lead_id
    title = unique_name("回访线索")
    task_form = {"title": title, "due_at": "2026-11-09 09:00:00", "lead": lead_id}
    task = browser.post("/taskview/add", data=task_form)
    assert task.status_code == 302, text_of(task)[:3000]
    assert db.session.scalar(select(Task.lead_id).where(Task.title == title)) == lead_id
    page = text_of(browser.get(f"/leadview/show/{lead_id}"))
    assert subject in page and title in page
    # the picker finds the lead by name, within the data scope
    client, headers = api_as("rep_a")
    found = client.get(f"/api/v1/search/?kind=lead&id={lead_id}", headers=headers).json["result"]
    assert [hit["id"] for hit in found] == [lead_id]
    other, other_headers = api_as("rep_c")
    assert other.get(f"/api/v1/search/?kind=lead&id={lead_id}", headers=other_headers).json["result"] == []


def test_a_follow_up_cannot_name_a_lead_outside_the_users_scope(api_as, login_as) -> None:
    customer = api_post(api_as, "rep_a", "customer", {"name": unique_name("越权线索客户")})
    foreign = new_lead(api_as, "rep_c")
    subject = unique_name("越权跟进")
    body = {"kind": "call", "occurred_at": "2026-11-02 10:00:00", "customer": customer, "lead": foreign,
            "subject": subject, "content": "x"}  # fmt: skip
    refused = login_as("rep_a").post("/interactionview/add", data=body, follow_redirects=True)
    assert "您无权访问该线索" in text_of(refused)
    assert db.session.scalar(select(Interaction.id).where(Interaction.subject == subject)) is None


# --- 4. moving a stage's opportunities -----------------------------------------------------------------
def test_an_admin_moves_a_stages_opportunities_then_deletes_the_stage(api_as, login_as) -> None:
    pipeline = Pipeline(name=unique_name("迁移流程"))
    pipeline.stages = [Stage(name=n, position=i) for i, n in enumerate(("待删", "保留", "后续"))]
    other = Pipeline(name=unique_name("他流程"), stages=[Stage(name="外部", position=0)])
    db.session.add_all([pipeline, other])
    db.session.commit()
    doomed, kept, _later = (s.id for s in pipeline.stages)
    foreign = other.stages[0].id
    customer = api_post(api_as, "rep_a", "customer", {"name": unique_name("迁移客户")})
    deals = [
        api_post(api_as, "rep_a", "opportunity", {"name": f"迁移商机{n}", "customer": customer,
                                                   "pipeline": pipeline.id, "stage": doomed})
        for n in range(2)
    ]  # fmt: skip
    admin = login_as("admin")
    deleted = admin.post(f"/stageview/delete/{doomed}", follow_redirects=True)
    assert "迁移商机到..." in text_of(deleted) and db.session.get(Stage, doomed) is not None
    assert "迁移商机到..." in text_of(admin.get(f"/stageview/show/{doomed}"))
    opened = admin.post("/stageview/action_post", data={"action": "move_action", "rowid": [doomed]})
    assert opened.location.endswith(f"/stageview/move/{doomed}")
    form = text_of(admin.get(opened.location))
    assert f'value="{kept}"' in form and f'value="{foreign}"' not in form and f'value="{doomed}"' not in form
    crossed = admin.post(f"/stageview/move/{doomed}", data={"target_id": foreign})
    assert crossed.status_code == 400 and "只能移到同一流程的阶段" in text_of(crossed)
    empty = admin.post(f"/stageview/move/{doomed}", data={"target_id": ""})
    assert empty.status_code == 400 and "请选择目标阶段" in text_of(empty)
    assert {fresh(Opportunity, pk).stage_id for pk in deals} == {doomed}
    moved = admin.post(f"/stageview/move/{doomed}", data={"target_id": kept})
    assert moved.status_code == 302 and "已把 2 个商机迁移到「保留」" in text_of(admin.get(moved.location))
    admin_id = user("admin").id
    for pk in deals:
        assert fresh(Opportunity, pk).stage_id == kept
        last = db.session.scalars(
            select(StageChange).where(StageChange.opportunity_id == pk).order_by(StageChange.id.desc())
        ).first()
        assert (last.from_stage_id, last.to_stage_id, last.changed_by_id) == (doomed, kept, admin_id)
    admin.post(f"/stageview/delete/{doomed}")
    assert fresh(Stage, doomed) is None
    # the sales reps may not move opportunities between stages in bulk
    assert login_as("rep_a").get(f"/stageview/move/{kept}").status_code in (302, 403)


def test_times_on_the_forms_are_the_companys_local_time(api_as, login_as) -> None:
    """Moments are stored in UTC and typed and shown in the company's time zone (Asia/Shanghai,
    UTC+8): a call made ten minutes ago by the wall clock is accepted (read as UTC it would lie
    eight hours in the future and be refused), stored as UTC, and its edit form and page show
    the wall-clock times the rep typed; a task due at 09:00 reminds at 09:00 Beijing time."""
    customer = api_post(api_as, "rep_a", "customer", {"name": unique_name("时区客户")})
    browser = login_as("rep_a")
    now = utcnow().replace(microsecond=0)
    typed = (now + dt.timedelta(hours=8) - dt.timedelta(minutes=10)).replace(second=0)
    subject = unique_name("时区电话")
    added = browser.post(
        "/interactionview/add",
        data={
            "kind": "call",
            "occurred_at": f"{typed:%Y-%m-%d %H:%M}",
            "next_contact_at": "2026-12-01 09:30",
            "customer": customer,
            "subject": subject,
            "content": "本地时间的跟进",
        },
    )
    assert added.status_code == 302, text_of(added)[:3000]
    follow_up = db.session.scalar(select(Interaction).where(Interaction.subject == subject))
    assert follow_up.occurred_at == typed - dt.timedelta(hours=8)
    assert follow_up.next_contact_at == dt.datetime(2026, 12, 1, 1, 30)  # 09:30 in Beijing
    form = text_of(browser.get(f"/interactionview/edit/{follow_up.id}"))
    assert f'value="{typed:%Y-%m-%d %H:%M:%S}"' in form and 'value="2026-12-01 09:30:00"' in form
    assert "09:30" in text_of(browser.get(f"/interactionview/show/{follow_up.id}"))
    title = unique_name("时区任务")
    task = browser.post("/taskview/add", data={"title": title, "due_at": "2026-12-02 09:00"})
    assert task.status_code == 302, text_of(task)[:3000]
    assert db.session.scalar(select(Task.due_at).where(Task.title == title)) == dt.datetime(2026, 12, 2, 1, 0)
    refused = browser.post("/taskview/add", data={"title": unique_name("时区任务"), "due_at": "明天上午"})
    assert refused.status_code == 200 and "应为日期时间" in text_of(refused)
