"""Every accuracy rule with bad input: a clear field message, HTTP 4xx, nothing written."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app import validators
from app.extensions import db
from models.customers import Contact, Customer
from tests.conftest import unique_mobile, unique_name, valid_credit_code


def customer_count() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Customer))


# --- the normalisers, one value at a time ---------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13812345678", "13812345678"),
        ("+86 138-1234-5678", "13812345678"),
        ("0086 13812345678", "13812345678"),
        ("１３８１２３４５６７８", "13812345678"),  # full-width digits
        ("  138 1234 5678 ", "13812345678"),
        ("", None),
        (None, None),
    ],
)
def test_mobile_is_normalised(raw: str | None, expected: str | None) -> None:
    assert validators.clean_mobile(raw) == expected


@pytest.mark.parametrize("raw", ["12812345678", "1381234567", "138123456789", "abc", "23812345678"])
def test_bad_mobile_is_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        validators.clean_mobile(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0546-8123456", "0546-8123456"),
        ("(0546) 812 3456", "0546-8123456"),
        ("010-12345678", "010-12345678"),
        ("+86 546 8123456", "0546-8123456"),
        ("4008123456", "400-812-3456"),
        ("13812345678", "13812345678"),
    ],
)
def test_landline_is_normalised(raw: str, expected: str) -> None:
    assert validators.clean_phone(raw) == expected


@pytest.mark.parametrize("raw", ["12345", "0000-0000000", "phone", "0546-81234567890"])
def test_bad_landline_is_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        validators.clean_phone(raw)


def test_credit_code_checksum() -> None:
    code = valid_credit_code()
    assert validators.clean_credit_code(code.lower()) == code
    broken = code[:-1] + ("0" if code[-1] != "0" else "1")
    with pytest.raises(ValueError, match="校验位"):
        validators.clean_credit_code(broken)
    with pytest.raises(ValueError, match="18"):
        validators.clean_credit_code("9137050216")


def test_id_number_checksum_and_birth_date() -> None:
    assert validators.clean_id_number("11010519491231002x") == "11010519491231002X"
    with pytest.raises(ValueError):
        validators.clean_id_number("110105194912310021")  # wrong check digit
    with pytest.raises(ValueError):
        validators.clean_id_number("110105194913310028")  # month 13
    with pytest.raises(ValueError):
        validators.clean_id_number("1101051949123")


def test_email_and_url() -> None:
    assert validators.clean_email(" Zhang.San@Example.CN ") == "zhang.san@example.cn"
    with pytest.raises(ValueError):
        validators.clean_email("zhang@")
    assert validators.clean_url("www.slchem.com.cn") == "http://www.slchem.com.cn"
    with pytest.raises(ValueError):
        validators.clean_url("not a url")


def test_text_is_trimmed_and_half_width() -> None:
    assert validators.clean_text("  东营　ＡＢＣ化工  有限公司 ") == "东营 ABC化工 有限公司"


# --- through the REST API ---------------------------------------------------------------------
BAD_CUSTOMER_INPUT = [
    ({"mobile": "12345"}, "mobile"),
    ({"phone": "abc"}, "phone"),
    ({"email": "no-at-sign"}, "email"),
    ({"credit_code": "91370502MA3C8AB1X0"}, "credit_code"),
    ({"website": "not a url"}, "website"),
    ({"kind": "alien"}, "kind"),
    ({"level": "vip"}, "level"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"birth_date": "2999-01-01", "kind": "individual"}, "birth_date"),
    ({"kind": "individual", "credit_code": "__VALID__"}, "credit_code"),
    ({"credit_limit": -5}, "credit_limit"),
    ({"province": 110000, "city": 370500}, "city"),  # 东营市 is not in 北京市
    ({"city": 370500, "district": 370102}, "district"),  # 历下区 is in 济南, not 东营
    ({"district": 999999}, "district"),
]


@pytest.mark.parametrize(("fields", "bad_field"), BAD_CUSTOMER_INPUT)
def test_api_refuses_bad_customer(api_as, fields: dict, bad_field: str) -> None:
    client, headers = api_as("rep_a")
    payload = {"name": unique_name(), "mobile": unique_mobile(), **fields}
    if payload.get("credit_code") == "__VALID__":
        payload["credit_code"] = valid_credit_code()
    before = customer_count()
    response = client.post("/api/v1/customer/", json=payload, headers=headers)
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)
    assert bad_field in response.json["message"], response.json
    assert customer_count() == before


def test_api_refuses_non_json(api_as) -> None:
    client, headers = api_as("rep_a")
    response = client.post("/api/v1/customer/", data="name=x", headers=headers)
    assert response.status_code == 400


def test_region_is_completed_from_the_district(api_as) -> None:
    client, headers = api_as("rep_a")
    response = client.post(
        "/api/v1/customer/",
        json={"name": unique_name(), "district": 370505, "street": "胜利大街100号"},
        headers=headers,
    )
    assert response.status_code == 201, response.json
    customer = db.session.get(Customer, response.json["id"])
    assert (customer.province_code, customer.city_code, customer.district_code) == (370000, 370500, 370505)
    assert customer.address == "山东省东营市垦利区胜利大街100号"


def test_normalised_on_save(api_as) -> None:
    client, headers = api_as("rep_a")
    mobile = unique_mobile()
    response = client.post(
        "/api/v1/customer/",
        json={
            "name": "  东营　鲁明化工 ",
            "mobile": f"+86 {mobile[:3]}-{mobile[3:7]}-{mobile[7:]}",
            "phone": "（0546）8123456",
            "email": "Buyer@LuMing.CN",
        },
        headers=headers,
    )
    assert response.status_code == 201, response.json
    result = response.json["result"]
    assert (result["name"], result["mobile"], result["phone"], result["email"]) == (
        "东营 鲁明化工",
        mobile,
        "0546-8123456",
        "buyer@luming.cn",
    )


@pytest.mark.parametrize("field", ["mobile", "email", "credit_code"])
def test_duplicate_is_refused_naming_the_existing_record(api_as, field: str) -> None:
    client, headers = api_as("rep_a")
    value = {
        "mobile": unique_mobile(),
        "email": f"{unique_name('dup')}@example.cn",
        "credit_code": valid_credit_code(),
    }[field]
    first = client.post(
        "/api/v1/customer/", json={"name": "东营胜利油服有限公司", field: value}, headers=headers
    )
    assert first.status_code == 201, first.json
    # another rep, who cannot see the first customer, is still told it exists and who owns it:
    # the owner masked and the department (查重, field permissions), not the record itself
    other, other_headers = api_as("rep_c")
    before = customer_count()
    second = other.post(
        "/api/v1/customer/", json={"name": unique_name(), field: value}, headers=other_headers
    )
    assert second.status_code == 400
    message = " ".join(second.json["message"][field])
    assert "r**" in message and "一部" in message
    assert "东营胜利油服有限公司" not in message and f"编号 {first.json['id']}" not in message
    assert customer_count() == before
    # the rep's manager, who sees the first customer, is told which record it is
    manager, manager_headers = api_as("manager1")
    third = manager.post(
        "/api/v1/customer/", json={"name": unique_name(), field: value}, headers=manager_headers
    )
    message = " ".join(third.json["message"][field])
    assert "东营胜利油服有限公司" in message and str(first.json["id"]) in message and "rep_a" in message


def test_update_with_bad_value_changes_nothing(api_as) -> None:
    client, headers = api_as("rep_a")
    mobile = unique_mobile()
    created = client.post(
        "/api/v1/customer/", json={"name": unique_name(), "mobile": mobile}, headers=headers
    )
    pk = created.json["id"]
    response = client.put(f"/api/v1/customer/{pk}", json={"mobile": "999", "name": "新名字"}, headers=headers)
    assert response.status_code == 400
    db.session.expire_all()
    customer = db.session.get(Customer, pk)
    assert customer.mobile == mobile and customer.name != "新名字"


def test_contact_rules(api_as) -> None:
    client, headers = api_as("rep_a")
    customer = client.post("/api/v1/customer/", json={"name": unique_name()}, headers=headers).json["id"]
    mobile = unique_mobile()
    ok = client.post(
        "/api/v1/contact/", json={"customer": customer, "name": "刘经理", "mobile": mobile}, headers=headers
    )
    assert ok.status_code == 201, ok.json
    for payload, field in [
        ({"customer": customer, "name": "", "mobile": unique_mobile()}, "name"),
        ({"customer": customer, "name": "张三", "mobile": "1234"}, "mobile"),
        ({"customer": customer, "name": "张三", "email": "x@"}, "email"),
        ({"customer": customer, "name": "张三", "birthday": "2999-01-01"}, "birthday"),
        ({"customer": customer, "name": "李四", "mobile": mobile}, "mobile"),  # same mobile, same customer
    ]:
        db.session.rollback()
        before = db.session.scalar(select(func.count()).select_from(Contact))
        response = client.post("/api/v1/contact/", json=payload, headers=headers)
        assert response.status_code == 400, (payload, response.json)
        assert field in response.json["message"]
        db.session.rollback()
        assert db.session.scalar(select(func.count()).select_from(Contact)) == before


# --- through the screens ----------------------------------------------------------------------
def test_form_shows_field_errors_and_keeps_input(login_as) -> None:
    client = login_as("rep_a")
    before = customer_count()
    response = client.post(
        "/customerview/add",
        data={
            "kind": "company",
            "name": "东营黄河化工",
            "mobile": "12345",
            "email": "bad@",
            "level": "normal",
            "status": "prospect",
        },
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "手机号应为 11 位数字" in page and "不是有效的电子邮箱地址" in page
    assert "东营黄河化工" in page  # the user's input is still in the form
    assert customer_count() == before


def test_form_creates_normalised_customer(login_as) -> None:
    client = login_as("rep_a")
    mobile = unique_mobile()
    name = unique_name("东营河口")
    response = client.post(
        "/customerview/add",
        data={
            "kind": "company",
            "name": f" {name} ",
            "mobile": f"+86{mobile}",
            "level": "key",
            "status": "following",
            "district": "370503",
        },
    )
    assert response.status_code == 302
    db.session.rollback()
    customer = db.session.scalar(select(Customer).where(Customer.mobile == mobile))
    assert customer.name == name and customer.level == "key" and customer.city_code == 370500
    assert customer.owner.username == "rep_a" and customer.department.name == "一部"


def test_full_address_typed_in_street_is_split(api_as) -> None:
    client, headers = api_as("rep_a")
    response = client.post(
        "/api/v1/customer/",
        json={"name": unique_name(), "street": "山东省东营市垦利区胜利大街100号"},
        headers=headers,
    )
    assert response.status_code == 201, response.json
    customer = db.session.get(Customer, response.json["id"])
    assert (customer.city_code, customer.district_code, customer.street) == (370500, 370505, "胜利大街100号")
    plain = client.post(
        "/api/v1/customer/", json={"name": unique_name(), "street": "胜利大街100号"}, headers=headers
    )
    assert db.session.get(Customer, plain.json["id"]).street == "胜利大街100号"
