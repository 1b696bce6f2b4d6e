"""Reference, file and formula fields: definitions, values through the API and the screens."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from app.extensions import db
from models.customers import Customer
from tests.conftest import unique_name
from tests.customfield_support import create_customer, define, names, rison_list

pytestmark = pytest.mark.usefixtures("clean_custom_fields")


def definition_errors(api_as: Any, **definition: Any) -> dict[str, Any]:
    client, headers = api_as("admin")
    body = {
        "entity": "customer",
        "label_zh": "字段",
        "api_name": f"bad_{next(names)}",
        **definition,
    }
    response = client.post("/api/v1/customfield/", json=body, headers=headers)
    assert response.status_code == 400, response.json
    return response.json["message"]


# --- formulas -----------------------------------------------------------------------------------
def test_formula_is_computed_stored_and_recomputed(api_as) -> None:
    volume = define(api_as, field_type="integer", label_zh="年采购量")["api_name"]
    price = define(api_as, field_type="currency", label_zh="单价")["api_name"]
    total = define(api_as, field_type="formula", label_zh="年采购额", formula=f"{volume} * {price}")
    assert total["api_name"]
    client, headers = api_as("admin")
    stored = client.get(f"/api/v1/customfield/{total['id']}", headers=headers).json["result"]
    assert stored["result_type"] == "number"
    created = create_customer(api_as, **{volume: 1200, price: "3.50"})
    assert created.status_code == 201, created.json
    assert created.json["result"]["custom"][total["api_name"]] == "4200"
    client, headers = api_as("rep_a")
    pk = created.json["id"]
    changed = client.put(f"/api/v1/customer/{pk}", json={"custom": {volume: 100}}, headers=headers)
    assert changed.json["result"]["custom"][total["api_name"]] == "350"
    cleared = client.put(f"/api/v1/customer/{pk}", json={"custom": {price: None}}, headers=headers)
    assert total["api_name"] not in cleared.json["result"]["custom"]  # blank input, blank result
    typed_in = client.put(
        f"/api/v1/customer/{pk}", json={"custom": {total["api_name"]: "1"}}, headers=headers
    )
    assert typed_in.status_code == 400 and f"custom.{total['api_name']}" in typed_in.json["message"]


def test_formula_reads_standard_fields_text_and_conditions(api_as) -> None:
    licence = define(api_as, field_type="text", label_zh="许可证号")["api_name"]
    volume = define(api_as, field_type="integer", label_zh="年采购量")["api_name"]
    label = define(api_as, field_type="formula", formula=f'{licence} & "-" & name')["api_name"]
    grade = define(
        api_as, field_type="formula", formula=f'IF({volume} >= 1000, "重点", "普通")', label_zh="分级"
    )["api_name"]
    created = create_customer(api_as, **{licence: "鲁危化001", volume: 5000})
    custom = created.json["result"]["custom"]
    assert custom[label] == f"鲁危化001-{created.json['result']['name']}"
    assert custom[grade] == "重点"
    by_grade = rison_list(
        api_as, "rep_a", f"(filters:!((col:custom.{grade},opr:eq,value:'重点')),page_size:100)"
    )
    assert created.json["id"] in {row["id"] for row in by_grade.json["result"]}


def test_formula_defined_later_fills_existing_records(api_as) -> None:
    volume = define(api_as, field_type="integer")["api_name"]
    pk = create_customer(api_as, **{volume: 7}).json["id"]
    double = define(api_as, field_type="formula", formula=f"{volume} * 2")["api_name"]
    db.session.expire_all()
    assert db.session.get(Customer, pk).custom[double] == "14"


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("1 +", "第"),  # syntax, with the position
        ("no_such_field * 2", "no_such_field"),
        ('"文本" * 2', "第"),
        ("", "公式"),
    ],
)
def test_bad_formulas_are_refused_with_a_message(api_as, formula: str, message: str) -> None:
    errors = definition_errors(api_as, field_type="formula", formula=formula)
    assert "formula" in errors and message in " ".join(errors["formula"])


def test_formula_rules_protect_their_inputs(api_as) -> None:
    volume = define(api_as, field_type="integer")
    double = define(api_as, field_type="formula", formula=f"{volume['api_name']} * 2")
    client, headers = api_as("admin")
    # the input cannot become text (the formula would break) nor be deleted
    retyped = client.put(f"/api/v1/customfield/{volume['id']}", json={"field_type": "text"}, headers=headers)
    assert retyped.status_code == 400 and double["api_name"] in str(retyped.json["message"])
    deleted = client.delete(f"/api/v1/customfield/{volume['id']}", headers=headers)
    assert deleted.status_code == 400 and double["api_name"] in str(deleted.json["message"])
    # a cycle through two formulas is refused
    cycle = client.put(
        f"/api/v1/customfield/{double['id']}",
        json={"formula": f"{volume['api_name']} + {double['api_name']}"},
        headers=headers,
    )
    assert cycle.status_code == 400
    other = define(api_as, field_type="formula", formula=f"{double['api_name']} + 1")
    loop = client.put(
        f"/api/v1/customfield/{double['id']}", json={"formula": f"{other['api_name']} * 2"}, headers=headers
    )
    assert loop.status_code == 400 and "formula" in loop.json["message"]
    assert definition_errors(api_as, field_type="formula", formula="1", required=True)


def test_time_dependent_formulas_are_recomputed_by_the_command(api_as, app) -> None:
    since = define(api_as, field_type="date")["api_name"]
    age = define(api_as, field_type="formula", formula=f"DAYS(TODAY(), {since})")["api_name"]
    pk = create_customer(api_as, **{since: "2020-01-01"}).json["id"]
    custom = {**db.session.get(Customer, pk).custom, age: "1"}  # as if computed long ago
    db.session.execute(update(Customer).where(Customer.id == pk).values(custom=custom))
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["crm", "recompute-formulas"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    assert int(db.session.get(Customer, pk).custom[age]) > 2000


# --- references ---------------------------------------------------------------------------------
def test_reference_points_at_a_visible_record(api_as, login_as) -> None:
    parent = define(api_as, field_type="reference", target_entity="customer", label_zh="上级客户")["api_name"]
    mine = create_customer(api_as, "rep_a").json
    created = create_customer(api_as, "rep_a", **{parent: mine["id"]})
    assert created.status_code == 201, created.json
    assert created.json["result"]["custom"][parent] == mine["id"]
    assert create_customer(api_as, "rep_a", **{parent: 999_999_999}).status_code == 400
    assert create_customer(api_as, "rep_a", **{parent: "abc"}).status_code == 400
    theirs = create_customer(api_as, "rep_c").json["id"]  # outside rep_a's data scope
    refused = create_customer(api_as, "rep_a", **{parent: theirs})
    assert refused.status_code == 400 and f"custom.{parent}" in refused.json["message"]
    show = login_as("rep_a").get(f"/customerview/show/{created.json['id']}").get_data(as_text=True)
    assert mine["result"]["name"] in show
    filtered = rison_list(api_as, "rep_a", f"(filters:!((col:custom.{parent},opr:eq,value:{mine['id']})))")
    assert [row["id"] for row in filtered.json["result"]] == [created.json["id"]]


def test_reference_definitions_need_a_target(api_as, login_as) -> None:
    assert "target_entity" in definition_errors(api_as, field_type="reference")
    assert "target_entity" in definition_errors(api_as, field_type="reference", target_entity="planet")
    define(api_as, field_type="reference", target_entity="user", label_zh="对接人")
    form = login_as("rep_a").get("/customerview/add").get_data(as_text=True)
    assert "对接人" in form and "rep_a" in form  # users offered in a select


# --- files --------------------------------------------------------------------------------------
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def upload(api_as: Any, api_name: str, content: bytes, filename: str, username: str = "rep_a") -> Any:
    client, headers = api_as(username)
    return client.post(
        f"/api/v1/customfile/customer/{api_name}",
        data={"file": (io.BytesIO(content), filename)},
        headers=headers,
        content_type="multipart/form-data",
    )


def test_files_are_uploaded_checked_attached_and_downloaded(api_as, app) -> None:
    scan = define(api_as, field_type="file", file_types=["pdf"], max_file_mb=1, label_zh="许可证扫描件")
    name = scan["api_name"]
    uploaded = upload(api_as, name, PDF, "许可证.pdf")
    assert uploaded.status_code == 201, uploaded.json
    file_id = uploaded.json["result"]["id"]
    # stored outside the database
    assert (Path(app.config["CRM_UPLOAD_DIR"]) / file_id[:2] / file_id).read_bytes() == PDF
    created = create_customer(api_as, **{name: [file_id]})
    assert created.status_code == 201, created.json
    assert created.json["result"]["custom"][name] == [
        {"id": file_id, "name": "许可证.pdf", "size": len(PDF), "type": "application/pdf"}
    ]
    client, headers = api_as("rep_a")
    url = f"/api/v1/customfile/customer/{created.json['id']}/{name}/{file_id}"
    download = client.get(url, headers=headers)
    assert download.status_code == 200 and download.data == PDF
    other, other_headers = api_as("rep_c")  # cannot see the customer
    assert other.get(url, headers=other_headers).status_code == 404


@pytest.mark.parametrize(
    ("content", "filename"),
    [
        (b"MZ\x90\x00 a windows program", "invoice.pdf"),  # an executable renamed
        (b"plain text", "notes.pdf"),  # not a PDF inside
        (PDF, "setup.exe"),  # not an allowed type
        (b"", "empty.pdf"),
        (PDF + b"0" * (1024 * 1024), "big.pdf"),  # over the 1 MB limit
    ],
)
def test_bad_uploads_are_refused(api_as, content: bytes, filename: str) -> None:
    name = define(api_as, field_type="file", file_types=["pdf"], max_file_mb=1)["api_name"]
    refused = upload(api_as, name, content, filename)
    assert refused.status_code == 400 and "file" in refused.json["message"]


def test_only_files_uploaded_for_the_field_can_be_attached(api_as) -> None:
    first = define(api_as, field_type="file")["api_name"]
    second = define(api_as, field_type="file")["api_name"]
    file_id = upload(api_as, first, PDF, "a.pdf").json["result"]["id"]
    assert create_customer(api_as, **{second: [file_id]}).status_code == 400
    assert create_customer(api_as, **{first: ["0" * 32]}).status_code == 400
    assert create_customer(api_as, **{first: ["../../etc/passwd"]}).status_code == 400


def test_files_through_the_form(api_as, login_as) -> None:
    name = define(api_as, field_type="file", label_zh="合同附件")["api_name"]
    client = login_as("rep_a")
    assert "合同附件" in client.get("/customerview/add").get_data(as_text=True)
    data = {
        "kind": "company", "level": "normal", "status": "prospect", "name": unique_name("附件"),
        f"custom__{name}": (io.BytesIO(PDF), "合同.pdf"),
    }  # fmt: skip
    saved = client.post("/customerview/add", data=data, content_type="multipart/form-data")
    assert saved.status_code == 302
    customer = db.session.scalar(select(Customer).where(Customer.name == data["name"]))
    (attached,) = customer.custom[name]
    assert attached["name"] == "合同.pdf"
    show = client.get(f"/customerview/show/{customer.id}").get_data(as_text=True)
    assert f"/api/v1/customfile/customer/{customer.id}/{name}/{attached['id']}" in show
    bad = {**data, "name": unique_name("附件"), f"custom__{name}": (io.BytesIO(b"MZ..."), "x.pdf")}
    before = db.session.scalar(select(func.count()).select_from(Customer))
    refused = client.post("/customerview/add", data=bad, content_type="multipart/form-data")
    assert refused.status_code == 200 and "不符" in refused.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Customer)) == before


def test_a_formula_may_not_show_a_hidden_input_to_more_roles(api_as) -> None:
    margin = define(api_as, field_type="decimal", visible_roles=["Admin", "Finance"])["api_name"]
    errors = definition_errors(api_as, field_type="formula", formula=f"{margin} * 2")
    assert "visible_roles" in errors and margin in errors["visible_roles"][0]
    define(api_as, field_type="formula", formula=f"{margin} * 2", visible_roles=["Finance"])
