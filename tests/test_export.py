"""CSV export: the list's data scope and filters, custom fields, Excel-safe cells, permissions."""

from __future__ import annotations

import csv
import io

from app.extensions import db
from app.services import service_for
from customfields.definitions import CustomField
from tests.conftest import unique_mobile, unique_name


def exported(client, query: str = "") -> list[list[str]]:
    response = client.get(f"/customerview/export.csv{query}")
    assert response.status_code == 200, response.status_code
    assert response.mimetype == "text/csv"
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")  # Excel opens UTF-8 with a BOM correctly
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))


def test_export_follows_scope_filters_and_custom_fields(api_as, login_as) -> None:
    admin, admin_headers = api_as("admin")
    field = admin.post(
        "/api/v1/customfield/",
        json={
            "entity": "customer",
            "api_name": "annual_tons",
            "label_zh": "年采购量",
            "field_type": "integer",
        },
        headers=admin_headers,
    ).json["id"]
    try:
        tag = unique_name("导出")
        for username in ("rep_a", "rep_c"):
            client, headers = api_as(username)
            created = client.post(
                "/api/v1/customer/",
                json={"name": f"{tag}{username}", "mobile": unique_mobile(), "custom": {"annual_tons": 12}},
                headers=headers,
            )
            assert created.status_code == 201, created.json
        client, headers = api_as("rep_a")
        client.post("/api/v1/customer/", json={"name": '=HYPERLINK("http://x")' + tag}, headers=headers)
        manager = login_as("manager1")  # team1: sees rep_a's customers, not rep_c's
        rows = exported(manager, f"?_flt_2_name={tag}")
        header, body = rows[0], rows[1:]
        assert "客户名称" in header and "年采购量" in header
        names = [row[header.index("客户名称")] for row in body]
        assert f"{tag}rep_a" in names and f"{tag}rep_c" not in names
        assert '\'=HYPERLINK("http://x")' + tag in names  # a formula is neutralised
        assert body[names.index(f"{tag}rep_a")][header.index("年采购量")] == "12"
    finally:
        db.session.rollback()
        service_for(CustomField).delete(db.session, db.session.get(CustomField, field), None)


def test_reps_cannot_export(login_as) -> None:
    response = login_as("rep_a").get("/customerview/export.csv")
    assert response.status_code in (302, 403)
    assert "导出 CSV" not in login_as("rep_a").get("/customerview/list/").get_data(as_text=True)
    assert "导出 CSV" in login_as("manager1").get("/customerview/list/").get_data(as_text=True)
