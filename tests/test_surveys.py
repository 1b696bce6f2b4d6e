"""Satisfaction surveys: created and mailed when a ticket is resolved (once, through the outbox, to a
real SMTP server on loopback), linked from the status page, answered once without login
(a second answer is a 409 and changes nothing), ratings validated, a low rating followed up by the
team's leader, and the read-only list and API."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from app import service as tickets
from app import support, surveys
from app.extensions import db
from models.notifications import OutboxMessage
from models.sales import Task
from models.security import Department
from models.service import Survey, Ticket
from tests import test_worker
from tests.conftest import unique_mobile, unique_name, user

smtp = test_worker.smtp  # the real SMTP server on loopback (aiosmtpd)


def open_ticket(client: Any, email: str | None = None) -> tuple[Ticket, str]:
    """A ticket from the public form (so it has a status page), assigned to rep_a of 一部."""
    challenge = support.make_challenge(time.time() - 10)
    a, b = map(int, re.findall(r"\d+", challenge.question))
    form = {
        "name": "赵先生",
        "mobile": unique_mobile(),
        "email": email or f"survey-{uuid.uuid4().hex[:8]}@example.cn",
        "subject": unique_name("满意度"),
        "description": "发票抬头开错了,需要重开。",
        "challenge": challenge.token,
        "answer": str(a + b),
    }
    response = client.post("/support/new", data=form)
    assert response.status_code == 201, response.get_data(as_text=True)[:1000]
    token = re.search(r"/support/t/([A-Za-z0-9_-]{20,})", response.get_data(as_text=True)).group(1)
    ticket = support.ticket_by_token(db.session, token)
    ticket.owner_id = user("rep_a").id
    db.session.commit()
    return ticket, token


def resolve(ticket: Ticket) -> None:
    admin = user("admin")
    tickets.change_status(
        db.session, ticket, "resolved", admin, resolution="已重开发票", resolution_method="reissue"
    )
    db.session.commit()


def survey_of(ticket: Ticket) -> Survey | None:
    db.session.rollback()
    return db.session.scalar(select(Survey).where(Survey.ticket_id == ticket.id))


def survey_token_of(client: Any, status_token: str) -> str:
    page = client.get(f"/support/t/{status_token}").get_data(as_text=True)
    found = re.search(r"/support/survey/([A-Za-z0-9_-]{20,})", page)
    assert found, "the status page shows the survey link once resolved"
    return found.group(1)


def test_resolving_sends_the_survey_once_to_a_real_smtp_server(app, client, smtp) -> None:
    email = f"survey-{uuid.uuid4().hex[:8]}@example.cn"
    ticket, status_token = open_ticket(client, email)
    assert survey_of(ticket) is None
    assert "/support/survey/" not in client.get(f"/support/t/{status_token}").get_data(as_text=True)
    resolve(ticket)
    survey = survey_of(ticket)
    assert survey is not None and survey.answered_at is None and survey.rating is None
    test_worker.run_jobs(app)
    subject = f"请评价我们的服务: 工单 {ticket.number}"
    received = smtp.mailbox.with_subject(subject)
    assert len(received) == 1 and received[0][1] == [email]
    body = received[0][2].get_content()
    link_token = re.search(r"/support/survey/([A-Za-z0-9_-]{20,})", body).group(1)
    assert support.token_hash(link_token) == survey.token_hash
    assert survey_token_of(client, status_token) == link_token  # the status page shows the same link
    # reopened by the customer and resolved again: the same survey, no second mail
    assert client.post(f"/support/t/{status_token}", data={"body": "还是不对"}).status_code == 303
    db.session.rollback()
    ticket = db.session.get(Ticket, ticket.id)
    assert ticket.status == "reopened"
    resolve(ticket)
    test_worker.run_jobs(app)
    assert len(smtp.mailbox.with_subject(subject)) == 1
    assert db.session.scalar(select(func.count()).where(Survey.ticket_id == ticket.id)) == 1
    assert (
        db.session.scalar(select(func.count()).where(OutboxMessage.dedup_key == f"survey:{ticket.id}")) == 1
    )


def test_staff_replies_reach_the_requester_once_and_notes_never(app, client, api_as, smtp) -> None:
    """A public reply is mailed to the requester (its text, once, through the outbox to the real
    SMTP server); an internal note and the customer's own message are not."""
    email = f"reply-{uuid.uuid4().hex[:8]}@example.cn"
    ticket, status_token = open_ticket(client, email)
    api, headers = api_as("admin")
    url = f"/api/v1/ticket/{ticket.id}/comments"
    replies = ({"body": "您好,新发票已寄出,顺丰单号 SF123"}, {"body": "内部: 财务已确认", "internal": True})
    for reply in replies:
        assert api.post(url, json=reply, headers=headers).status_code == 201
    assert client.post(f"/support/t/{status_token}", data={"body": "收到,谢谢"}).status_code == 303
    test_worker.run_jobs(app)
    test_worker.run_jobs(app)  # a second pass sends nothing again
    received = smtp.mailbox.with_subject(f"工单 {ticket.number} 有新的回复")
    assert len(received) == 1 and received[0][1] == [email]
    body = received[0][2].get_content()
    assert "新发票已寄出,顺丰单号 SF123" in body and ticket.number in body
    assert "财务已确认" not in body and "收到,谢谢" not in body
    queued = db.session.scalars(select(OutboxMessage.subject).where(OutboxMessage.to_address == email)).all()
    assert sorted(queued) == [f"工单 {ticket.number} 有新的回复", f"您的服务工单已提交: {ticket.number}"]


def test_the_survey_is_answered_once(client) -> None:
    ticket, status_token = open_ticket(client)
    resolve(ticket)
    token = survey_token_of(client, status_token)
    form = client.get(f"/support/survey/{token}")
    assert form.status_code == 200 and ticket.number in form.get_data(as_text=True)
    first = client.post(f"/support/survey/{token}", data={"rating": "4", "comment": "师傅很耐心"})
    assert first.status_code == 200 and "感谢您的评价" in first.get_data(as_text=True)
    survey = survey_of(ticket)
    answered_at = survey.answered_at
    assert survey.rating == 4 and survey.comment == "师傅很耐心" and answered_at is not None
    assert survey.followup_task_id is None  # 4 is not a low rating
    second = client.post(f"/support/survey/{token}", data={"rating": "1", "comment": "改主意了"})
    assert second.status_code == 409 and "已经提交过评价" in second.get_data(as_text=True)
    survey = survey_of(ticket)
    assert (survey.rating, survey.comment, survey.answered_at) == (4, "师傅很耐心", answered_at)
    again = client.get(f"/support/survey/{token}")
    assert again.status_code == 200 and "已经提交过评价" in again.get_data(as_text=True)
    assert "/support/survey/" not in client.get(f"/support/t/{status_token}").get_data(as_text=True)


@pytest.mark.parametrize("rating", ["0", "6", "abc", "", None, "3.5"])
def test_a_bad_rating_is_refused_and_nothing_written(client, rating) -> None:
    ticket, status_token = open_ticket(client)
    resolve(ticket)
    token = survey_token_of(client, status_token)
    data = {"comment": "还行"} if rating is None else {"rating": rating, "comment": "还行"}
    response = client.post(f"/support/survey/{token}", data=data)
    assert response.status_code == 400 and "请选择 1 到 5 分" in response.get_data(as_text=True)
    survey = survey_of(ticket)
    assert survey.answered_at is None and survey.rating is None and survey.comment is None


def test_a_too_long_comment_is_refused(client) -> None:
    ticket, status_token = open_ticket(client)
    resolve(ticket)
    token = survey_token_of(client, status_token)
    response = client.post(f"/support/survey/{token}", data={"rating": "5", "comment": "好" * 2001})
    assert response.status_code == 400 and "最多 2000 个字" in response.get_data(as_text=True)
    assert survey_of(ticket).answered_at is None


def test_a_wrong_survey_token_is_404(client) -> None:
    assert client.get(f"/support/survey/{support.new_token()}").status_code == 404
    assert client.post(f"/support/survey/{support.new_token()}", data={"rating": "5"}).status_code == 404
    assert client.get("/support/survey/short").status_code == 404


def test_a_low_rating_creates_a_follow_up_task_for_the_team_leader(client) -> None:
    ticket, status_token = open_ticket(client)
    resolve(ticket)
    token = survey_token_of(client, status_token)
    before = db.session.scalar(select(func.count()).select_from(Task))
    response = client.post(f"/support/survey/{token}", data={"rating": "2", "comment": "等了三天"})
    assert response.status_code == 200
    survey = survey_of(ticket)
    task = db.session.get(Task, survey.followup_task_id)
    assert task is not None and task.owner_id == user("manager1").id  # leader of 一部 (rep_a's team)
    assert ticket.number in task.title and "等了三天" in task.notes and task.status == "open"
    assert db.session.scalar(select(func.count()).select_from(Task)) == before + 1


def test_without_a_team_leader_the_assignee_s_manager_follows_up(client) -> None:
    ticket, status_token = open_ticket(client)
    team1 = db.session.get(Department, user("rep_a").department_id)
    leader = team1.leader_id
    team1.leader_id = None
    db.session.commit()
    try:
        resolve(ticket)
        token = survey_token_of(client, status_token)
        assert client.post(f"/support/survey/{token}", data={"rating": "1"}).status_code == 200
        task = db.session.get(Task, survey_of(ticket).followup_task_id)
        assert task.owner_id == user("rep_a").manager_id == user("manager1").id
    finally:
        db.session.rollback()
        db.session.get(Department, team1.id).leader_id = leader
        db.session.commit()


def test_the_survey_list_and_api_are_read_only(client, api_as, login_as) -> None:
    ticket, status_token = open_ticket(client)
    resolve(ticket)
    token = survey_token_of(client, status_token)
    client.post(f"/support/survey/{token}", data={"rating": "5", "comment": "非常满意"})
    api, headers = api_as("admin")
    survey_id = survey_of(ticket).id
    shown = api.get(f"/api/v1/survey/{survey_id}", headers=headers)
    assert shown.status_code == 200
    assert shown.json["result"]["rating"] == 5 and shown.json["result"]["ticket"]["number"] == ticket.number
    added = api.post("/api/v1/survey/", json={"ticket_id": ticket.id}, headers=headers)
    changed = api.put(f"/api/v1/survey/{survey_id}", json={"rating": 1}, headers=headers)
    assert added.status_code in (403, 404, 405) and changed.status_code in (403, 404, 405)
    assert survey_of(ticket).rating == 5
    page = login_as("admin").get("/surveyview/list/")
    assert page.status_code == 200 and "非常满意" in page.get_data(as_text=True)


def test_survey_links_are_unguessable_and_stored_hashed(client) -> None:
    ticket, _status = open_ticket(client)
    resolve(ticket)
    survey = survey_of(ticket)
    raw = surveys.survey_token(survey.ticket_id, survey.sent_at)
    assert len(raw) >= 43 and survey.token_hash == support.token_hash(raw) and raw not in survey.token_hash
