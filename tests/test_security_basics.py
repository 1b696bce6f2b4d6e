"""Security by default: CSRF on forms, security headers, no anonymous access, offline assets."""

from __future__ import annotations

from app import create_app
from tests.conftest import PASSWORD, TEST_CONFIG


def test_csrf_is_enforced_on_forms(database_url: str) -> None:
    app = create_app({**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": database_url, "WTF_CSRF_ENABLED": True})
    client = app.test_client()
    response = client.post("/login/", data={"username": "admin", "password": PASSWORD})
    assert response.status_code == 400  # no token
    page = client.get("/login/").get_data(as_text=True)
    assert 'name="csrf_token"' in page


def test_anonymous_is_sent_to_login(client) -> None:
    assert client.get("/").headers["Location"].startswith("/login")
    assert client.get("/customerview/list/").status_code == 302
    assert client.get("/api/v1/customer/").status_code == 401
    assert client.get("/api/v1/search/?q=东营").status_code == 401


def test_security_headers(client) -> None:
    response = client.get("/login/")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_no_outside_assets_and_no_google_charts(login_as) -> None:
    client = login_as("admin")
    for path in ["/", "/customerview/list/", "/users/list/"]:
        page = client.get(path).get_data(as_text=True)
        assert "https://" not in page.replace("https://github.com", ""), path
        assert "gstatic" not in page and "googleapis" not in page
    assert client.get("/users/userstatschart/").status_code == 404
