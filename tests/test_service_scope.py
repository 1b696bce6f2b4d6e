"""Data scope on tickets: a Support Agent whose scope is `self` or `department` sees exactly the
tickets it allows (plus the team's unassigned queue and the tickets of customers they may see)
in the list, the ticket page, the REST list and get, and attachment downloads; and may work only
those they may change."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from sqlalchemy import delete, select

from app.errors import AccessDenied
from app.extensions import db
from app.service import add_attachment, assign_ticket, change_status
from models.security import CrmUser, RoleDataScope
from models.service import Ticket
from tests.conftest import unique_name
from tests.login_support import cleanup_users, new_user  # noqa: F401 (cleanup_users is autouse)
from tests.service_support import (  # noqa: F401 (service_cleanup is autouse)
    customer,
    service_cleanup,
    support_team,
    ticket,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@dataclass
class Desk:
    agent: CrmUser
    colleague: CrmUser
    stranger: CrmUser
    own: Ticket
    colleagues: Ticket
    queue: Ticket
    others: Ticket
    customers: Ticket  # another team's ticket about a customer the agent owns


@pytest.fixture(params=["self", "department"])
def desk(request: pytest.FixtureRequest, app: Flask) -> Iterator[tuple[str, Desk]]:
    """Two support teams; the agent's role is a copy of Support Agent with the given scope."""
    sm = app.appbuilder.sm
    role = sm.add_role(unique_name("受限客服"))
    role.permissions = list(sm.find_role("Support Agent").permissions)
    db.session.add(RoleDataScope(role_id=role.id, entity="*", scope=request.param))
    db.session.commit()
    team, (agent, colleague) = support_team(app, 2)
    _other_team, (stranger,) = support_team(app, 1)
    agent.roles = [role]
    db.session.commit()
    admin = db.session.scalar(select(CrmUser).where(CrmUser.username == "admin"))

    def given(owner: CrmUser | None, department_id: int | None = None, **values: object) -> Ticket:
        item = ticket(**values)
        assign_ticket(
            db.session, item, user_id=owner.id if owner else None, department_id=department_id, actor=admin
        )
        add_attachment(db.session, item, io.BytesIO(PNG), "照片.png", actor=admin)
        db.session.commit()
        return item

    desk = Desk(
        agent=agent,
        colleague=colleague,
        stranger=stranger,
        own=given(agent),
        colleagues=given(colleague),
        queue=given(None, team.id),
        others=given(stranger),
        customers=given(stranger, customer_id=customer(agent).id),
    )
    yield request.param, desk
    db.session.rollback()
    agent.roles = []
    db.session.commit()
    db.session.execute(delete(RoleDataScope).where(RoleDataScope.role_id == role.id))
    db.session.delete(db.session.get(type(role), role.id))
    db.session.commit()


def expected(scope: str, desk: Desk) -> tuple[set[int], set[int]]:
    """(visible, hidden) ticket ids for the scope."""
    visible = {desk.own.id, desk.queue.id, desk.customers.id}
    hidden = {desk.others.id}
    (visible if scope == "department" else hidden).add(desk.colleagues.id)
    return visible, hidden


def test_list_and_ticket_page(desk: tuple[str, Desk], login_as) -> None:
    scope, d = desk
    visible, hidden = expected(scope, d)
    client = login_as(d.agent.username)
    page = client.get("/ticketview/list/?psize_TicketView=100").get_data(as_text=True)
    numbers = {t.id: t.number for t in (d.own, d.colleagues, d.queue, d.others, d.customers)}
    for ticket_id in visible:
        assert numbers[ticket_id] in page, (scope, ticket_id)
        assert client.get(f"/ticketview/show/{ticket_id}").status_code == 200
    for ticket_id in hidden:
        assert numbers[ticket_id] not in page, (scope, ticket_id)
        assert client.get(f"/ticketview/show/{ticket_id}").status_code in (302, 404)


def test_rest_list_get_and_downloads(desk: tuple[str, Desk], api_as) -> None:
    scope, d = desk
    visible, hidden = expected(scope, d)
    client, headers = api_as(d.agent.username)
    listed = client.get("/api/v1/ticket/?q=(page_size:100)", headers=headers)
    assert listed.status_code == 200
    ids = {row["id"] for row in listed.json["result"]}
    assert visible <= ids and not hidden & ids, scope
    attachments = {row["ticket"]["id"]: row["id"] for row in _attachments(client, headers)}
    assert not hidden & set(attachments)
    for ticket_id in visible:
        assert client.get(f"/api/v1/ticket/{ticket_id}", headers=headers).status_code == 200
        assert client.get(f"/api/v1/ticket/{ticket_id}/comments", headers=headers).status_code == 200
        file_id = attachments[ticket_id]
        assert client.get(f"/api/v1/ticket/{ticket_id}/attachments/{file_id}", headers=headers).data == PNG
        assert client.get(f"/api/v1/ticketattachment/{file_id}/file", headers=headers).status_code == 200
    for item in (t for t in (d.colleagues, d.others) if t.id in hidden):
        file_id = item.attachments[0].id
        assert client.get(f"/api/v1/ticket/{item.id}", headers=headers).status_code == 404
        assert client.get(f"/api/v1/ticket/{item.id}/comments", headers=headers).status_code == 404
        assert (
            client.get(f"/api/v1/ticket/{item.id}/attachments/{file_id}", headers=headers).status_code == 404
        )
        assert client.get(f"/api/v1/ticketattachment/{file_id}/file", headers=headers).status_code == 404
        assert client.get(f"/api/v1/ticketattachment/{file_id}", headers=headers).status_code == 404


def _attachments(client, headers) -> list[dict]:
    response = client.get("/api/v1/ticketattachment/?q=(page_size:100)", headers=headers)
    assert response.status_code == 200
    return response.json["result"]


def test_screen_downloads(desk: tuple[str, Desk], login_as) -> None:
    scope, d = desk
    visible, hidden = expected(scope, d)
    client = login_as(d.agent.username)
    for item in (d.own, d.colleagues, d.queue, d.others, d.customers):
        file_id = item.attachments[0].id
        response = client.get(f"/ticketview/file/{item.id}/{file_id}")
        other = client.get(f"/ticketattachmentview/download/{file_id}")
        if item.id in visible:
            assert response.status_code == 200 and response.data == PNG
            assert other.status_code == 200
        else:
            assert response.status_code == 404 and other.status_code == 404


def test_working_follows_the_write_scope_and_the_team_queue(desk: tuple[str, Desk], api_as) -> None:
    scope, d = desk
    client, headers = api_as(d.agent.username)
    own = client.post(f"/api/v1/ticket/{d.own.id}/comments", json={"body": "处理中"}, headers=headers)
    assert own.status_code == 201
    # a customer's ticket of another team: readable, not workable
    refused = client.post(
        f"/api/v1/ticket/{d.customers.id}/status", json={"status": "in_progress"}, headers=headers
    )
    assert refused.status_code == 403
    # the team's queue: the agent takes a ticket from it
    taken = client.post(f"/api/v1/ticket/{d.queue.id}/assign", json={"user_id": d.agent.id}, headers=headers)
    assert taken.status_code == 200, taken.json
    assert taken.json["result"]["owner"]["id"] == d.agent.id
    colleague = client.post(
        f"/api/v1/ticket/{d.colleagues.id}/comments", json={"body": "帮忙"}, headers=headers
    )
    assert colleague.status_code == (201 if scope == "department" else 404)
    with pytest.raises(AccessDenied):
        change_status(db.session, d.others, "in_progress", d.agent)
