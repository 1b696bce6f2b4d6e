"""Data scope (数据权限) on a three-level department tree, through screens, API and search."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import event, select

from app.access import scope_clause, user_scope
from app.customers import customer_service
from app.extensions import db
from models.customers import Contact, Customer
from models.security import RoleDataScope
from tests.conftest import unique_mobile, unique_name, user

OWNERS = ["rep_a", "rep_b", "rep_c", "manager1", "manager2", "director", "boss"]


@pytest.fixture(scope="module")
def owned(app) -> Iterator[dict[str, int]]:
    """One customer (with a contact) per owner; returns owner username -> customer id."""
    ids = {}
    with app.app_context():
        for username in OWNERS:
            owner = user(username)
            customer = Customer(name=unique_name(f"{username}的客户"), mobile=unique_mobile(), owner=owner)
            customer_service.save(db.session, customer, owner)
            db.session.add(Contact(customer_id=customer.id, name=f"{username}联系人", mobile=unique_mobile()))
            db.session.commit()
            ids[username] = customer.id
    yield ids


def visible(username: str, ids: dict[str, int]) -> set[str]:
    """Which of the fixture's customers a user sees, asked through the one scope rule."""
    clause = scope_clause(db.session, Customer, user(username))
    found = set(db.session.scalars(select(Customer.id).where(clause, Customer.id.in_(ids.values()))))
    return {name for name, pk in ids.items() if pk in found}


def test_default_scopes_per_role(owned: dict[str, int]) -> None:
    assert visible("rep_a", owned) == {"rep_a"}
    assert visible("manager1", owned) == {"manager1", "rep_a", "rep_b"}
    assert visible("director", owned) == {"director", "manager1", "manager2", "rep_a", "rep_b", "rep_c"}
    assert visible("boss", owned) == set(OWNERS)
    assert visible("admin", owned) == set(OWNERS)
    assert visible("readonly", owned) == {"manager1", "rep_a", "rep_b"}  # Read Only: own department


def set_scope(username: str, scope: str) -> int:
    """Give the user's role a customer-specific scope; returns the row to delete afterwards."""
    row = RoleDataScope(role_id=user(username).roles[0].id, entity="customer", scope=scope)
    db.session.add(row)
    db.session.commit()
    return row.id


def test_every_scope_on_the_tree(owned: dict[str, int]) -> None:
    """Give the Sales Rep role each scope in turn (per entity), and check rep_a's view."""
    expected = {
        "self": {"rep_a"},
        "subordinates": {"rep_a", "rep_b"},  # rep_b reports to rep_a
        "department": {"rep_a", "rep_b", "manager1"},
        "department_tree": {"rep_a", "rep_b", "manager1"},  # team1 has no sub-departments
        "all": set(OWNERS),
    }
    for scope, names in expected.items():
        row_id = set_scope("rep_a", scope)
        try:
            assert user_scope(db.session, user("rep_a"), "customer") == scope
            assert visible("rep_a", owned) == names, scope
        finally:
            db.session.delete(db.session.get(RoleDataScope, row_id))
            db.session.commit()
    assert visible("rep_a", owned) == {"rep_a"}


def test_widest_role_wins(owned: dict[str, int]) -> None:
    rep = user("rep_c")
    finance_role = user("finance").roles[0]
    rep.roles.append(finance_role)
    db.session.commit()
    try:
        assert visible("rep_c", owned) == set(OWNERS)  # Finance sees all
    finally:
        rep.roles.remove(finance_role)
        db.session.commit()
    assert visible("rep_c", owned) == {"rep_c"}


@pytest.mark.parametrize("path", ["/customerview/show/{pk}", "/customerview/edit/{pk}"])
def test_rep_cannot_open_another_reps_customer_on_screen(login_as, owned: dict[str, int], path: str) -> None:
    client = login_as("rep_a")
    assert client.get(path.format(pk=owned["rep_a"])).status_code == 200
    assert client.get(path.format(pk=owned["rep_c"])).status_code == 404


def test_rep_cannot_delete_or_edit_another_reps_customer(login_as, owned: dict[str, int]) -> None:
    client = login_as("rep_a")
    client.post(f"/customerview/edit/{owned['rep_c']}", data={"name": "改掉", "kind": "company"})
    client.post(f"/customerview/delete/{owned['rep_c']}")
    db.session.expire_all()
    customer = db.session.get(Customer, owned["rep_c"])
    assert customer is not None and customer.name != "改掉"


def test_rep_list_shows_only_own(login_as, owned: dict[str, int]) -> None:
    page = login_as("rep_a").get("/customerview/list/?psize_CustomerView=100").get_data(as_text=True)
    assert "rep_a的客户" in page and "rep_c的客户" not in page and "manager1的客户" not in page
    manager_page = (
        login_as("manager1").get("/customerview/list/?psize_CustomerView=100").get_data(as_text=True)
    )
    assert "rep_b的客户" in manager_page and "rep_c的客户" not in manager_page


def test_api_hides_other_reps_records(api_as, owned: dict[str, int]) -> None:
    client, headers = api_as("rep_a")
    assert client.get(f"/api/v1/customer/{owned['rep_a']}", headers=headers).status_code == 200
    assert client.get(f"/api/v1/customer/{owned['rep_c']}", headers=headers).status_code == 404
    assert (
        client.put(f"/api/v1/customer/{owned['rep_c']}", json={"name": "x"}, headers=headers).status_code
        == 404
    )
    assert client.delete(f"/api/v1/customer/{owned['rep_c']}", headers=headers).status_code == 404
    listed = client.get("/api/v1/customer/?q=(page_size:100)", headers=headers).json
    names = {row["name"] for row in listed["result"]}
    assert any(n.startswith("rep_a的客户") for n in names)
    assert not any(n.startswith(("rep_c", "manager", "rep_b")) for n in names)


def test_contacts_follow_their_customer(api_as, login_as, owned: dict[str, int]) -> None:
    client, headers = api_as("rep_a")
    contacts = client.get("/api/v1/contact/?q=(page_size:100)", headers=headers).json["result"]
    owners = {db.session.get(Customer, c["customer"]["id"]).owner.username for c in contacts}
    assert owners == {"rep_a"}
    other = db.session.scalar(select(Contact.id).where(Contact.customer_id == owned["rep_c"]))
    assert client.get(f"/api/v1/contact/{other}", headers=headers).status_code == 404
    assert login_as("rep_a").get(f"/contactview/show/{other}").status_code == 404
    # attaching a contact to a customer outside one's scope is refused
    response = client.post(
        "/api/v1/contact/", json={"customer": owned["rep_c"], "name": "王五"}, headers=headers
    )
    assert response.status_code == 403


def test_record_tabs_list_children_by_the_record_alone(login_as, owned: dict[str, int]) -> None:
    """A manager's 360 page of a subordinate's customer lists its contacts by `customer_id = ?`:
    the customer already passed the scope, so the tab does not rebuild the team's customer ids.
    The children's own screens still apply the scope."""
    statements: list[str] = []

    def remember(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        statements.append(statement)

    client = login_as("manager1")
    show = client.get(f"/customerview/show/{owned['rep_b']}").get_data(as_text=True)
    tab = f"/customerview/tab/{owned['rep_b']}/ContactView"
    assert f'data-url="{tab}"' in show  # the tab loads its list when opened
    event.listen(db.engine, "before_cursor_execute", remember)
    try:
        page = client.get(tab)
    finally:
        event.remove(db.engine, "before_cursor_execute", remember)
    assert page.status_code == 200 and "rep_b联系人" in page.get_data(as_text=True)
    contact_reads = [s for s in statements if "FROM crm_contact" in s]
    after_from = [s.split("FROM crm_contact", 1)[1] for s in contact_reads]
    assert after_from and not any("crm_customer" in rest for rest in after_from)
    # outside the tab, the rule is intact: another team's contact stays out of reach
    other = db.session.scalar(select(Contact.id).where(Contact.customer_id == owned["manager2"]))
    assert client.get(f"/contactview/show/{other}").status_code == 404
    assert client.get(f"/customerview/show/{owned['manager2']}").status_code == 404
    assert client.get(f"/customerview/tab/{owned['manager2']}/ContactView").status_code == 404
    # only the tabs the page names, and only for a role that may list them
    assert client.get(f"/customerview/tab/{owned['rep_b']}/MyTicketView").status_code == 404
    assert client.get(f"/customerview/tab/{owned['rep_b']}/AuditLogView").status_code == 404
    anonymous = client.application.test_client()
    assert anonymous.get(tab).status_code == 302  # not logged in: to the login page


def test_rep_cannot_give_a_customer_to_someone_else(api_as) -> None:
    client, headers = api_as("rep_a")
    response = client.post(
        "/api/v1/customer/", json={"name": unique_name(), "owner": user("rep_c").id}, headers=headers
    )
    assert response.status_code in (403, 400)
    manager, manager_headers = api_as("manager1")
    ok = manager.post(
        "/api/v1/customer/", json={"name": unique_name(), "owner": user("rep_b").id}, headers=manager_headers
    )
    assert ok.status_code == 201, ok.json
    refused = manager.post(
        "/api/v1/customer/", json={"name": unique_name(), "owner": user("rep_c").id}, headers=manager_headers
    )
    assert refused.status_code in (403, 400)


def test_search_respects_scope(api_as, owned: dict[str, int]) -> None:
    client, headers = api_as("rep_a")
    hits = client.get("/api/v1/search/?q=的客户&limit=50", headers=headers).json["result"]
    assert {h["id"] for h in hits if h["kind"] == "customer"} <= {owned["rep_a"]}
    boss, boss_headers = api_as("boss")
    boss_hits = boss.get("/api/v1/search/?q=rep_c的客户", headers=boss_headers).json["result"]
    assert owned["rep_c"] in {h["id"] for h in boss_hits}


def test_role_without_permission_gets_403_on_api(api_as) -> None:
    client, headers = api_as("finance")
    assert client.get("/api/v1/customer/", headers=headers).status_code == 200
    assert client.post("/api/v1/customer/", json={"name": "x"}, headers=headers).status_code == 403
