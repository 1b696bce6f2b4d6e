"""Helpers of the custom-field tests: define a field through the admin API, create records."""

from __future__ import annotations

import os
from typing import Any

from tests.conftest import unique_mobile, unique_name

names = iter(range(1, 10_000))


def define(api_as: Any, **definition: Any) -> dict[str, Any]:
    """Create a definition through the admin API; returns its JSON with a fresh API name."""
    client, headers = api_as("admin")
    body = {"entity": "customer", "label_zh": "测试字段", **definition}
    body.setdefault("api_name", f"f{os.getpid()}_{next(names)}")
    response = client.post("/api/v1/customfield/", json=body, headers=headers)
    assert response.status_code == 201, response.json
    return {"id": response.json["id"], **body}


def create_customer(api_as: Any, username: str = "rep_a", **custom: Any) -> Any:
    client, headers = api_as(username)
    return client.post(
        "/api/v1/customer/",
        json={"name": unique_name(), "mobile": unique_mobile(), "custom": custom},
        headers=headers,
    )


def rison_list(api_as: Any, username: str, query: str) -> Any:
    client, headers = api_as(username)
    return client.get(f"/api/v1/customer/?q={query}", headers=headers)
