"""The public support pages end to end, without login: the form (human check, bad input: a clear
message and nothing written, the rate limit), the private status page (public conversation only,
a wrong token is a 404 that reveals nothing, the customer's reply) and what anonymous visitors
may not reach."""

from __future__ import annotations

import base64
import io
import re
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from app import service as tickets
from app import support
from app.extensions import db
from models.notifications import OutboxMessage
from models.service import Ticket, TicketComment
from tests.conftest import unique_mobile, unique_name, user
from tests.login_support import other_app


def solved(issued_ago: float = 10) -> dict[str, str]:
    """A challenge issued `issued_ago` seconds ago, with its right answer."""
    challenge = support.make_challenge(time.time() - issued_ago)
    a, b = map(int, re.findall(r"\d+", challenge.question))
    return {"challenge": challenge.token, "answer": str(a + b)}


def good_form(**changes: Any) -> dict[str, str]:
    form = {
        "name": "李女士",
        "mobile": unique_mobile(),
        "email": "",
        "subject": unique_name("网页报修"),
        "description": "收到的货物包装破损,有两桶漏液。",
        "website": "",
        **solved(),
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v is not None}


def counts() -> tuple[int, int, int]:
    db.session.rollback()
    return (
        db.session.scalar(select(func.count()).select_from(Ticket)),
        db.session.scalar(select(func.count()).select_from(TicketComment)),
        db.session.scalar(select(func.count()).select_from(OutboxMessage)),
    )


def submit(client: Any, **changes: Any) -> tuple[Any, str | None]:
    """Post the form; (response, the status-page token shown once)."""
    response = client.post("/support/new", data=good_form(**changes))
    found = re.search(r"/support/t/([A-Za-z0-9_-]{20,})", response.get_data(as_text=True))
    return response, found.group(1) if found else None


def test_the_form_is_public_and_self_contained(client) -> None:
    response = client.get("/support/new")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'name="challenge"' in page and 'name="website"' in page and "= ?" in page
    assert "<script" not in page and "cdn" not in page.lower() and "//" not in page.replace("://", "")
    assert response.headers["Cache-Control"] == "no-store"
    assert "Content-Security-Policy" in response.headers
    english = client.get("/support/new?_l_=en").get_data(as_text=True)
    assert "Submit" in english or "提交" in english  # English once the catalogue has the strings


def test_submit_creates_a_ticket_and_shows_its_private_link_once(client) -> None:
    before = counts()
    email = f"customer-{uuid.uuid4().hex[:8]}@example.cn"
    response, token = submit(client, email=email)
    assert response.status_code == 201, response.get_data(as_text=True)[:2000]
    assert token is not None
    db.session.rollback()
    ticket = db.session.scalar(select(Ticket).where(Ticket.access_token_hash == support.token_hash(token)))
    assert ticket is not None and ticket.channel == "web" and ticket.status in ("new", "assigned")
    assert ticket.number in response.get_data(as_text=True)
    assert ticket.requester_email == email and ticket.match_state == "unmatched"
    assert ticket.access_token_hash != token  # only the hash is stored
    assert ticket.resolution_due is not None  # SLA targets set
    mail = db.session.scalar(
        select(OutboxMessage).where(OutboxMessage.dedup_key == f"ticket-link:{ticket.id}")
    )
    assert mail is not None and mail.to_address == email and token in mail.body_text
    assert counts()[0] == before[0] + 1
    # the link works without login, and shows the ticket
    page = client.get(f"/support/t/{token}")
    assert page.status_code == 200 and ticket.subject in page.get_data(as_text=True)
    assert page.headers["Referrer-Policy"] == "no-referrer"


def test_the_requester_is_matched_by_mobile(client, api_as) -> None:
    api, headers = api_as("admin")
    mobile = unique_mobile()
    created = api.post("/api/v1/customer/", json={"name": unique_name(), "mobile": mobile}, headers=headers)
    if created.status_code != 201:  # a customer's phone may be a contact's only: create the contact
        pytest.skip(created.get_data(as_text=True)[:200])
    response, token = submit(client, mobile=mobile)
    assert response.status_code == 201
    ticket = support.ticket_by_token(db.session, token)
    assert ticket.customer_id == created.json["id"] and ticket.match_state == "matched"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": ""}, "name", "请填写您的姓名"),
        ({"mobile": "12345"}, "mobile", "手机号"),
        ({"mobile": "", "email": ""}, "mobile", "至少填写手机号或电子邮箱"),
        ({"email": "not-an-email"}, "email", "电子邮箱"),
        ({"subject": ""}, "subject", "请填写问题标题"),
        ({"subject": "长" * 201}, "subject", "最多 200 个字符"),
        ({"description": "坏了"}, "description", "请描述您的问题"),
        ({"description": "长" * 5001}, "description", "最多 5000 个字"),
        ({"category": "999999"}, "category", "问题类型"),
        ({"answer": "99"}, "answer", "计算结果不正确"),
        ({"website": "http://spam.example"}, "answer", "未通过验证"),
        ({"challenge": "forged.0000"}, "answer", "验证已失效"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message_and_nothing_written(
    client, changes, field, message
) -> None:
    before = counts()
    response, token = submit(client, **changes)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert message in page and "工单尚未提交" in page
    assert token is None
    assert counts() == before
    if field not in ("answer", "category"):  # what was typed is kept (not a new question's answer)
        kept = {k: v for k, v in changes.items() if v and len(v) < 50}
        for value in kept.values():
            assert value in page


def test_a_tampered_answer_in_the_signed_challenge_is_refused(client) -> None:
    challenge = support.make_challenge(time.time() - 10)
    encoded, _dot, signature = challenge.token.partition(".")
    payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode().rsplit(":", 1)[0] + ":1"
    forged = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=") + "." + signature
    before = counts()
    response, _token = submit(client, challenge=forged, answer="1")
    assert response.status_code == 400 and "验证已失效" in response.get_data(as_text=True)
    assert counts() == before


def test_too_fast_and_stale_forms_are_refused(client) -> None:
    before = counts()
    fast, _ = submit(client, **solved(issued_ago=0))
    stale, _ = submit(client, **solved(issued_ago=3 * 3600))
    assert fast.status_code == 400 and "提交过快" in fast.get_data(as_text=True)
    assert stale.status_code == 400 and "停留时间过长" in stale.get_data(as_text=True)
    assert counts() == before


def test_the_form_is_rate_limited_per_ip(app, database_url) -> None:
    limited = other_app(
        database_url,
        RATELIMIT_ENABLED=True,
        CRM_PUBLIC_FORM_RATE_LIMIT="2 per minute",
        RATELIMIT_STORAGE_URI="memory://",
        RATELIMIT_KEY_PREFIX=f"keguan-test-{uuid.uuid4().hex}",
    )
    with limited.app_context():
        client = limited.test_client()
        for _ in range(3):
            assert client.get("/support/new").status_code == 200  # viewing is free
        first, _ = submit(client)
        second, _ = submit(client, name="")  # a refused submission counts too
        before = counts()
        third, token = submit(client)
        assert first.status_code == 201 and second.status_code == 400
        assert third.status_code == 429 and "Retry-After" in third.headers and token is None
        assert counts() == before
        db.session.remove()


# --- the status page ---------------------------------------------------------------------------
@pytest.fixture()
def submitted(client) -> tuple[Ticket, str]:
    response, token = submit(client)
    assert response.status_code == 201
    return support.ticket_by_token(db.session, token), token


def test_the_status_page_shows_the_public_conversation_only(client, submitted) -> None:
    ticket, token = submitted
    admin = user("admin")
    tickets.add_comment(db.session, ticket, "内部备注: 客户上次也投诉过", actor=admin, internal=True)
    tickets.add_comment(db.session, ticket, "您好,我们明天上门更换。", actor=admin)
    db.session.commit()
    page = client.get(f"/support/t/{token}").get_data(as_text=True)
    assert "我们明天上门更换" in page and "客服" in page
    assert "内部备注" not in page and "上次也投诉过" not in page
    assert admin.username not in page and "管理员" not in page  # staff names stay inside
    assert "rep_a" not in page


def test_a_wrong_token_is_a_404_that_reveals_nothing(client, submitted) -> None:
    ticket, token = submitted
    unknown = client.get(f"/support/t/{support.new_token()}")
    near = client.get(f"/support/t/{token[:-1]}{'A' if token[-1] != 'A' else 'B'}")
    junk = client.get("/support/t/..%2F..%2Fadmin")
    nowhere = client.get(f"/no-such-page-{uuid.uuid4().hex}")
    for response in (unknown, near, junk):
        body = response.get_data(as_text=True)
        assert response.status_code == 404
        assert ticket.number not in body and ticket.subject not in body
    assert unknown.get_data() == near.get_data()  # the same page whatever the token
    assert nowhere.status_code == 404
    assert client.post(f"/support/t/{support.new_token()}", data={"body": "hi"}).status_code == 404


def test_the_customer_replies_on_the_status_page(client, submitted) -> None:
    ticket, token = submitted
    before = counts()
    empty = client.post(f"/support/t/{token}", data={"body": "   "})
    assert empty.status_code == 400 and "请填写回复内容" in empty.get_data(as_text=True)
    assert counts() == before
    reply = client.post(f"/support/t/{token}", data={"body": "补充: 漏液的是 3 号桶"})
    assert reply.status_code == 303
    page = client.get(reply.headers["Location"]).get_data(as_text=True)
    assert "漏液的是 3 号桶" in page
    db.session.rollback()
    comment = db.session.scalars(
        select(TicketComment).where(TicketComment.ticket_id == ticket.id).order_by(TicketComment.id.desc())
    ).first()
    assert comment.from_customer and not comment.internal and comment.author_name == "李女士"


def test_a_reply_with_an_attachment(client, submitted) -> None:
    ticket, token = submitted
    data = {"body": "附上照片", "file": (io.BytesIO(b"plain text evidence\n"), "note.txt")}
    reply = client.post(f"/support/t/{token}", data=data, content_type="multipart/form-data")
    assert reply.status_code == 303, reply.get_data(as_text=True)[:1000]
    db.session.rollback()
    db.session.refresh(ticket)
    assert [a.filename for a in ticket.attachments] == ["note.txt"] and ticket.attachments[0].from_customer
    before = counts()
    bad = {"body": "再附一个", "file": (io.BytesIO(b"MZ\x90\x00binary"), "virus.exe")}
    refused = client.post(f"/support/t/{token}", data=bad, content_type="multipart/form-data")
    assert refused.status_code == 400
    assert counts() == before  # the reply with a refused file is not written either


def test_a_closed_ticket_takes_no_reply(client, submitted) -> None:
    ticket, token = submitted
    admin = user("admin")
    tickets.change_status(db.session, ticket, "closed", admin, note="重复提交")
    db.session.commit()
    before = counts()
    response = client.post(f"/support/t/{token}", data={"body": "还在吗"})
    assert response.status_code == 400 and "已关闭" in response.get_data(as_text=True)
    assert counts() == before


def test_anonymous_visitors_reach_nothing_else(client) -> None:
    for path in ("/ticketview/list/", "/surveyview/list/", "/slapolicyview/list/", "/customerview/list/"):
        response = client.get(path)
        assert response.status_code in (302, 401, 403, 404), path
        if response.status_code == 302:
            assert "/login" in response.headers["Location"]
    for path in ("/api/v1/ticket/", "/api/v1/survey/", "/api/v1/slapolicy/", "/api/v1/businesshours/"):
        assert client.get(path).status_code in (401, 404), path
