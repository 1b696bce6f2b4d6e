"""The opportunity kanban (商机看板): column summaries within data scope, keyset paging, the owner
and month filters, moves through the opportunity service's rules (API and CSRF), and a real drag
and drop in headless Chromium."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from app.customers import customer_service
from app.extensions import db
from app.sales import opportunity_service
from models.base import utcnow
from models.customers import Customer
from models.sales import Opportunity, Pipeline, Stage, StageChange
from tests import test_browser
from tests.conftest import unique_name, user
from tests.test_browser import Server, admin_page, visit, wait_until

# the browser test's fixtures: the app on a socket, and a folder for screenshots
server = test_browser.server
screenshots = test_browser.screenshots

STAGES = [  # name, probability, allow_back, won, lost
    ("初步接洽", 10, True, False, False),
    ("方案报价", 40, True, False, False),
    ("商务谈判", 70, False, False, False),
    ("赢单", 100, True, True, False),
    ("输单", 0, True, False, True),
]


def make_pipeline() -> dict[str, int]:
    """A pipeline of this test alone: stage name -> id, and "id" for the pipeline."""
    flow = Pipeline(name=unique_name("看板流程"), position=100)
    flow.stages = [
        Stage(name=name, position=i, probability=p, allow_back=back, is_won=won, is_lost=lost)
        for i, (name, p, back, won, lost) in enumerate(STAGES)
    ]
    db.session.add(flow)
    db.session.commit()
    return {"id": flow.id, **{stage.name: stage.id for stage in flow.stages}}


def make_customer(owner: str) -> int:
    customer = Customer(name=unique_name("看板客户"))
    customer_service.save(db.session, customer, user(owner))
    return customer.id


def make_opportunity(
    board: dict[str, int],
    owner: str,
    stage: str = "初步接洽",
    amount: int | None = 10000,
    customer: int | None = None,
    **values: Any,
) -> int:
    item = Opportunity(
        name=values.pop("name", None) or unique_name("看板商机"),
        customer_id=customer or make_customer(owner),
        pipeline_id=board["id"],
        stage_id=board[stage],
        amount=None if amount is None else Decimal(amount),
        **values,
    )
    opportunity_service.save(db.session, item, user(owner))
    return item.id


def summary(api_as: Any, username: str, board: dict[str, int], query: str = "") -> dict[str, dict]:
    client, headers = api_as(username)
    response = client.get(f"/api/v1/kanban/{board['id']}{query}", headers=headers)
    assert response.status_code == 200, response.json
    return {column["name"]: column for column in response.json["result"]}


def figures(columns: dict[str, dict]) -> dict[str, tuple[int, Decimal]]:
    return {name: (c["count"], Decimal(c["total"])) for name, c in columns.items()}


def page(api_as: Any, username: str, board: dict[str, int], stage: str, query: str = "") -> Any:
    client, headers = api_as(username)
    return client.get(f"/api/v1/kanban/{board['id']}/{board[stage]}{query}", headers=headers)


def post_move(api_as: Any, username: str, body: dict[str, Any]) -> Any:
    client, headers = api_as(username)
    return client.post("/api/v1/kanban/move", json=body, headers=headers)


# --- summaries and data scope --------------------------------------------------------------------
def test_summary_counts_and_totals_within_data_scope(api_as) -> None:
    board = make_pipeline()
    make_opportunity(board, "rep_a", amount=100000)
    make_opportunity(board, "rep_a", amount=50000)
    make_opportunity(board, "rep_a", "方案报价", amount=30000)
    make_opportunity(board, "rep_a", "赢单", amount=80000)
    make_opportunity(board, "rep_a", "输单", amount=5000, close_reason="价格")
    make_opportunity(board, "rep_a", amount=None)  # no amount yet: counted, adds nothing
    make_opportunity(board, "rep_b", amount=20000)
    make_opportunity(board, "rep_c", amount=7000)

    mine = summary(api_as, "rep_a", board)
    assert list(mine) == [name for name, *_ in STAGES]  # every stage, in order, empty ones too
    assert figures(mine) == {
        "初步接洽": (3, Decimal("150000")),
        "方案报价": (1, Decimal("30000")),
        "商务谈判": (0, Decimal("0")),
        "赢单": (1, Decimal("80000")),
        "输单": (1, Decimal("5000")),
    }
    assert mine["方案报价"]["probability"] == 40 and mine["赢单"]["is_won"] and mine["输单"]["is_lost"]
    assert figures(summary(api_as, "manager1", board))["初步接洽"] == (4, Decimal("170000"))  # team 1
    assert figures(summary(api_as, "manager2", board))["初步接洽"] == (1, Decimal("7000"))  # team 2
    assert figures(summary(api_as, "admin", board))["初步接洽"] == (5, Decimal("177000"))
    assert figures(summary(api_as, "rep_c", board))["赢单"] == (0, Decimal("0"))


def test_board_needs_the_sales_permissions(api_as, login_as) -> None:
    board = make_pipeline()
    for username in ("finance", "readonly"):  # may read opportunities, not edit them: no board
        client, headers = api_as(username)
        assert client.get(f"/api/v1/kanban/{board['id']}", headers=headers).status_code == 403
        refused = login_as(username).get(f"/opportunityboard/{board['id']}")
        assert refused.status_code == 403
    client, headers = api_as("rep_a")
    assert client.get("/api/v1/kanban/999999", headers=headers).status_code == 404


# --- paging --------------------------------------------------------------------------------------
def test_a_column_loads_a_page_at_a_time_newest_first(api_as) -> None:
    board = make_pipeline()
    customer = make_customer("rep_a")
    ids = [make_opportunity(board, "rep_a", customer=customer, amount=1000 + i) for i in range(25)]
    make_opportunity(board, "rep_a", "方案报价")  # another column: not on these pages
    db.session.execute(
        update(Opportunity)
        .where(Opportunity.id == ids[-1])
        .values(stage_changed_at=utcnow() - dt.timedelta(days=3, hours=1))
    )
    db.session.commit()

    first = page(api_as, "rep_a", board, "初步接洽")
    assert first.status_code == 200, first.json
    cards = first.json["result"]
    assert [c["id"] for c in cards] == sorted(ids, reverse=True)[:20]
    assert first.json["next"] == cards[-1]["id"]
    newest = cards[0]
    assert newest["customer"] == db.session.get(Customer, customer).name
    assert newest["owner"] == str(user("rep_a")) and newest["amount"] == "1024.00"
    assert newest["days_in_stage"] == 3 and cards[1]["days_in_stage"] == 0

    second = page(api_as, "rep_a", board, "初步接洽", f"?after={first.json['next']}")
    assert [c["id"] for c in second.json["result"]] == sorted(ids, reverse=True)[20:]
    assert second.json["next"] is None
    small = page(api_as, "rep_a", board, "初步接洽", "?limit=10")
    assert len(small.json["result"]) == 10 and small.json["next"] == small.json["result"][-1]["id"]
    # someone else's column is empty for rep_c; bad requests are refused, not ignored
    assert page(api_as, "rep_c", board, "初步接洽").json == {"result": [], "next": None}
    assert page(api_as, "rep_a", board, "初步接洽", "?after=abc").status_code == 400
    assert page(api_as, "rep_a", board, "初步接洽", "?sort=name").status_code == 400
    other = make_pipeline()
    client, headers = api_as("rep_a")
    wrong = client.get(f"/api/v1/kanban/{board['id']}/{other['初步接洽']}", headers=headers)
    assert wrong.status_code == 404


# --- filters -------------------------------------------------------------------------------------
def test_filters_by_owner_and_close_month(api_as) -> None:
    board = make_pipeline()
    march = make_opportunity(board, "rep_a", amount=1000, expected_close=dt.date(2026, 3, 31))
    april = make_opportunity(board, "rep_a", amount=2000, expected_close=dt.date(2026, 4, 1))
    undated = make_opportunity(board, "rep_a", amount=4000)
    theirs = make_opportunity(board, "rep_b", amount=8000, expected_close=dt.date(2026, 3, 1))
    rep_b = user("rep_b").id

    def column_ids(username: str, query: str) -> set[int]:
        response = page(api_as, username, board, "初步接洽", query)
        assert response.status_code == 200, response.json
        return {c["id"] for c in response.json["result"]}

    assert column_ids("manager1", "") == {march, april, undated, theirs}
    assert column_ids("manager1", f"?owner={rep_b}") == {theirs}
    assert column_ids("manager1", "?month=2026-03") == {march, theirs}
    assert column_ids("manager1", f"?month=2026-03&owner={rep_b}") == {theirs}
    assert column_ids("rep_c", f"?owner={rep_b}") == set()  # the filter never widens the scope
    by_month = figures(summary(api_as, "manager1", board, "?month=2026-03"))
    assert by_month["初步接洽"] == (2, Decimal("9000"))
    assert figures(summary(api_as, "manager1", board, f"?owner={rep_b}"))["初步接洽"] == (1, Decimal("8000"))
    assert figures(summary(api_as, "manager1", board, "?month=2026-12"))["初步接洽"] == (0, Decimal("0"))
    client, headers = api_as("manager1")
    bad = client.get(f"/api/v1/kanban/{board['id']}?month=2026-13", headers=headers)
    assert bad.status_code == 400 and "month" in bad.json["message"]
    assert client.get(f"/api/v1/kanban/{board['id']}?owner=x", headers=headers).status_code == 400


# --- moves ---------------------------------------------------------------------------------------
def history(pk: int) -> list[tuple[int | None, int | None, str]]:
    rows = db.session.scalars(
        select(StageChange).where(StageChange.opportunity_id == pk).order_by(StageChange.id)
    )
    return [(h.from_stage_id, h.to_stage_id, h.changed_by.username) for h in rows]


def test_a_move_goes_through_the_opportunity_rules(api_as) -> None:
    board = make_pipeline()
    pk = make_opportunity(board, "rep_a", amount=60000)
    make_opportunity(board, "rep_a", "方案报价", amount=40000)

    moved = post_move(api_as, "manager1", {"opportunity": pk, "stage": board["方案报价"]})
    assert moved.status_code == 200, moved.json
    assert figures({c["name"]: c for c in moved.json["result"]}) == {
        "初步接洽": (0, Decimal("0")),
        "方案报价": (2, Decimal("100000")),
    }
    assert moved.json["card"]["id"] == pk and moved.json["card"]["stage"] == board["方案报价"]
    db.session.expire_all()
    first, offer = board["初步接洽"], board["方案报价"]
    assert history(pk) == [(None, first, "rep_a"), (first, offer, "manager1")]

    assert post_move(api_as, "rep_a", {"opportunity": pk, "stage": board["商务谈判"]}).status_code == 200
    back = post_move(api_as, "rep_a", {"opportunity": pk, "stage": board["方案报价"]})
    assert back.status_code == 400 and "商务谈判" in back.json["message"]["stage"][0]

    lost = post_move(api_as, "rep_a", {"opportunity": pk, "stage": board["输单"]})
    assert lost.status_code == 400 and "close_reason" in lost.json["message"]
    db.session.expire_all()
    assert db.session.get(Opportunity, pk).stage_id == board["商务谈判"]  # nothing written
    with_reason = {"opportunity": pk, "stage": board["输单"], "close_reason": " 价格偏高 "}
    reason = post_move(api_as, "rep_a", with_reason)
    assert reason.status_code == 200, reason.json
    db.session.expire_all()
    row = db.session.get(Opportunity, pk)
    assert (row.status, row.close_reason, row.closed_at is not None) == ("lost", "价格偏高", True)
    assert len(history(pk)) == 4

    theirs = make_opportunity(board, "rep_c")
    for outsider in ("rep_a", "manager1"):  # another team's: as if it did not exist
        assert post_move(api_as, outsider, {"opportunity": theirs, "stage": offer}).status_code == 404
    other = make_pipeline()
    elsewhere = post_move(api_as, "rep_c", {"opportunity": theirs, "stage": other["方案报价"]})
    assert elsewhere.status_code == 400 and "stage" in elsewhere.json["message"]
    assert post_move(api_as, "rep_c", {"opportunity": theirs, "stage": "x"}).status_code == 400
    assert post_move(api_as, "finance", {"opportunity": theirs, "stage": offer}).status_code == 403
    db.session.expire_all()
    assert db.session.get(Opportunity, theirs).stage_id == board["初步接洽"]


def test_a_move_with_the_session_cookie_needs_the_csrf_token(app, login_as, monkeypatch) -> None:
    board = make_pipeline()
    pk = make_opportunity(board, "rep_a")
    browser = login_as("rep_a")
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    html = browser.get(f"/opportunityboard/{board['id']}").get_data(as_text=True)
    config = json.loads(re.search(r'id="crm-kanban-config">(.*?)</script>', html, re.S).group(1))
    body = {"opportunity": pk, "stage": board["方案报价"]}
    forged = browser.post("/api/v1/kanban/move", json=body)
    assert forged.status_code == 400 and "csrf_token" in forged.json["message"]
    sent = browser.post("/api/v1/kanban/move", json=body, headers={"X-CSRFToken": config["csrf_token"]})
    assert sent.status_code == 200, sent.json


# --- the screen ----------------------------------------------------------------------------------
def test_the_board_page_in_both_languages(login_as) -> None:
    board = make_pipeline()
    client = login_as("rep_a")
    default = client.get("/opportunityboard/")
    assert default.status_code == 200 and "商机看板" in default.get_data(as_text=True)
    html = client.get(f"/opportunityboard/{board['id']}?owner={user('rep_a').id}&month=2026-03")
    text = html.get_data(as_text=True)
    assert html.status_code == 200 and "预计成交月份" in text and "crm/kanban.js" in text
    config = json.loads(re.search(r'id="crm-kanban-config">(.*?)</script>', text, re.S).group(1))
    assert [c["name"] for c in config["columns"]] == [name for name, *_ in STAGES]
    assert config["month"] == "2026-03" and config["can_move"] and config["texts"]["load_more"] == "加载更多"
    assert client.get("/opportunityboard/999999").status_code == 404
    client.get("/lang/en")
    english = client.get(f"/opportunityboard/{board['id']}").get_data(as_text=True)
    assert "Opportunity board" in english and "Load more" in english and "预计成交月份" not in english
    client.get("/lang/zh")


# --- in the browser ------------------------------------------------------------------------------
def column(page_: Any, stage_id: int) -> Any:
    return page_.locator(f'.crm-kanban-column[data-stage="{stage_id}"]')


def cards_in(stage_id: int) -> str:
    """A script expression: how many cards the column shows."""
    return f"document.querySelectorAll('section[data-stage=\"{stage_id}\"] .crm-kanban-card').length"


def test_drag_a_card_to_the_next_column(app, server: Server, screenshots: Path, monkeypatch) -> None:
    """Headless Chromium drags a card with native HTML5 drag and drop; the page posts the move
    with its CSRF token, moves the card, refreshes both headers, and the database has the move."""
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)  # the real path, token and all
    board = make_pipeline()
    pk = make_opportunity(board, "rep_a", amount=1234500, expected_close=dt.date(2026, 3, 31))
    make_opportunity(board, "rep_a", amount=500)
    make_opportunity(board, "rep_b", "方案报价", amount=100000)
    first, second = board["初步接洽"], board["方案报价"]
    with admin_page(server) as (page_, monitor):
        visit(page_, monitor, f"{server.url}/opportunityboard/{board['id']}")
        card = page_.locator(f'.crm-kanban-card[data-id="{pk}"]')
        card.wait_for()
        assert column(page_, first).locator(".crm-kanban-count").inner_text() == "2"
        assert column(page_, first).locator(".crm-kanban-total").inner_text() == "¥1,235,000"
        page_.screenshot(path=str(screenshots / "kanban-laptop.png"), full_page=True)

        card.drag_to(column(page_, second).locator(".crm-kanban-cards"))
        page_.wait_for_selector(
            f'.crm-kanban-column[data-stage="{second}"] .crm-kanban-card[data-id="{pk}"]:not(.is-pending)'
        )
        wait_until(
            page_,
            f"""document.querySelector('.crm-kanban-column[data-stage="{second}"] .crm-kanban-count')
                .textContent === '2'"""
        )
        assert column(page_, first).locator(".crm-kanban-count").inner_text() == "1"
        assert column(page_, first).locator(".crm-kanban-total").inner_text() == "¥500"
        assert column(page_, second).locator(".crm-kanban-total").inner_text() == "¥1,334,500"
        assert column(page_, first).locator(f'.crm-kanban-card[data-id="{pk}"]').count() == 0
        monitor.settle(page_)
        page_.set_viewport_size({"width": 2560, "height": 1440})
        page_.screenshot(path=str(screenshots / "kanban-large.png"), full_page=True)
        problems = monitor.report()
    assert not problems, problems
    db.session.rollback()  # a new transaction sees what the server thread committed (MySQL)
    assert db.session.get(Opportunity, pk).stage_id == second
    assert history(pk)[-1] == (first, second, "admin")


def test_refused_moves_in_the_browser(app, server: Server, screenshots: Path) -> None:
    """Moving back from a no-back stage puts the card back with the rule's message; the lost
    column asks for the reason in a dialog and then moves the card."""
    board = make_pipeline()
    pk = make_opportunity(board, "rep_a", "商务谈判", amount=9000)
    talks, offer, lost = board["商务谈判"], board["方案报价"], board["输单"]
    with admin_page(server) as (page_, monitor):
        visit(page_, monitor, f"{server.url}/opportunityboard/{board['id']}")
        card = page_.locator(f'.crm-kanban-card[data-id="{pk}"]')
        card.wait_for()
        card.drag_to(column(page_, offer).locator(".crm-kanban-cards"))
        toast = page_.locator(".crm-kanban-toast.alert-danger")
        toast.wait_for()
        assert "商务谈判" in toast.inner_text()
        page_.wait_for_selector(f'.crm-kanban-column[data-stage="{talks}"] .crm-kanban-card[data-id="{pk}"]')
        assert column(page_, offer).locator(".crm-kanban-count").inner_text() == "0"

        card.drag_to(column(page_, lost).locator(".crm-kanban-cards"))
        dialog = page_.locator("#crm-kanban-reason")
        dialog.locator("textarea").wait_for(state="visible")
        assert "输单" in dialog.locator(".crm-kanban-reason-help").inner_text()
        page_.screenshot(path=str(screenshots / "kanban-lost-reason.png"))
        dialog.locator("textarea").fill("客户预算取消")
        dialog.locator("button[type=submit]").click()
        page_.wait_for_selector(
            f'.crm-kanban-column[data-stage="{lost}"] .crm-kanban-card[data-id="{pk}"]:not(.is-pending)'
        )
        wait_until(
            page_,
            f"""document.querySelector('.crm-kanban-column[data-stage="{lost}"] .crm-kanban-count')
                .textContent === '1'"""
        )
        monitor.settle(page_)
        problems = [
            line
            for line in monitor.report().splitlines()  # the refusals themselves are expected
            if not ("status of 400" in line and "/api/v1/kanban/move" in line)
        ]
    assert not problems, problems
    db.session.rollback()  # a new transaction sees what the server thread committed (MySQL)
    row = db.session.get(Opportunity, pk)
    assert (row.stage_id, row.status, row.close_reason) == (lost, "lost", "客户预算取消")


def test_a_column_pages_and_filters_in_the_browser(server: Server) -> None:
    """A column shows 20 cards, then the rest when scrolled to its end; the month filter redraws
    the board and keeps itself in the address."""
    board = make_pipeline()
    customer = make_customer("rep_a")
    ids = [make_opportunity(board, "rep_a", customer=customer, amount=100) for _ in range(23)]
    march = make_opportunity(board, "rep_a", "方案报价", amount=700, expected_close=dt.date(2026, 3, 9))
    make_opportunity(board, "rep_a", "方案报价", amount=900, expected_close=dt.date(2026, 4, 9))
    first, offer = board["初步接洽"], board["方案报价"]
    with admin_page(server) as (page_, monitor):
        visit(page_, monitor, f"{server.url}/opportunityboard/{board['id']}")
        cards = column(page_, first).locator(".crm-kanban-card")
        wait_until(page_, f"{cards_in(first)} == 20")
        column(page_, first).locator(".crm-kanban-more").scroll_into_view_if_needed()
        wait_until(page_, f"{cards_in(first)} == 23")
        shown = [int(pk) for pk in cards.evaluate_all("els => els.map(e => e.dataset.id)")]
        assert shown == sorted(ids, reverse=True)
        assert column(page_, first).locator(".crm-kanban-more").is_hidden()

        page_.fill("#crm-kanban-month", "2026-03")
        wait_until(
            page_,
            f"""document.querySelector('.crm-kanban-column[data-stage="{offer}"] .crm-kanban-count')
                .textContent === '1'"""
        )
        page_.wait_for_selector(f'.crm-kanban-card[data-id="{march}"]')
        assert column(page_, first).locator(".crm-kanban-count").inner_text() == "0"
        assert "month=2026-03" in page_.url
        monitor.settle(page_)
        problems = monitor.report()
    assert not problems, problems
