"""Every screen in zh_CN (default) and en, switched by the language menu."""

from __future__ import annotations

import pytest

PAGES = [
    "/",
    "/customerview/list/",
    "/customerview/add",
    "/contactview/list/",
    "/departmentview/list/",
    "/search/?q=东营",
]


@pytest.mark.parametrize("path", PAGES)
def test_chinese_by_default(login_as, path: str) -> None:
    page = login_as("admin").get(path).get_data(as_text=True)
    assert "客户" in page and "Customers</a>" not in page


@pytest.mark.parametrize("path", PAGES)
def test_english_after_switching(login_as, path: str) -> None:
    client = login_as("admin")
    assert client.get("/lang/en").status_code == 302
    page = client.get(path).get_data(as_text=True)
    assert "Customer" in page, path
    assert "客户名称" not in page and "我负责的客户" not in page
    client.get("/lang/zh")
    assert "客户" in client.get(path).get_data(as_text=True)


def test_choice_labels_follow_language(login_as) -> None:
    client = login_as("admin")
    assert "重点客户" in client.get("/customerview/add").get_data(as_text=True)
    client.get("/lang/en")
    assert "Key customer" in client.get("/customerview/add").get_data(as_text=True)


def test_amounts_in_cny_and_times_in_local_zone(login_as, api_as) -> None:
    client, headers = api_as("admin")  # the credit limit is for Finance and Admin (field permissions)
    pk = client.post(
        "/api/v1/customer/", json={"name": "东营金额测试", "credit_limit": 1234567.5}, headers=headers
    ).json["id"]
    page = login_as("admin")
    assert "¥1,234,567.50" in page.get(f"/customerview/show/{pk}").get_data(as_text=True)
    page.get("/lang/en")
    assert "CN¥1,234,567.50" in page.get(f"/customerview/show/{pk}").get_data(as_text=True)
