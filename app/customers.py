"""Customers and contacts: their rules (accuracy, duplicates, ownership) and use cases."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as lazy
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import validators
from app.errors import ErrorCollector
from app.regions import parse_address
from app.services import (
    OwnedRecordService,
    RecordService,
    parent_is_new,
    require_visible,
    service_for,
    text_up_to,
)
from models.customers import (
    COMPANY_SIZES,
    CUSTOMER_KINDS,
    CUSTOMER_LEVELS,
    CUSTOMER_SOURCES,
    CUSTOMER_STATUSES,
    GENDERS,
    LOCALITIES,
    PURCHASE_FREQUENCIES,
    Contact,
    Customer,
    Region,
)
from models.security import CrmUser

#: Fields whose value must be unique among customers, with how the message names them
UNIQUE_CUSTOMER_FIELDS = {"mobile": "手机号", "email": "电子邮箱", "credit_code": "统一社会信用代码"}


def _check_dates(values: dict[str, Any], errors: ErrorCollector, field: str) -> None:
    value = values.get(field)
    if value is None:
        return
    if isinstance(value, dt.datetime):
        value = values[field] = value.date()
    if not isinstance(value, dt.date):
        errors.add(field, _("不是有效的日期"))
    elif value > dt.date.today():
        errors.add(field, _("日期不能晚于今天"))
    elif value.year < 1900:
        errors.add(field, _("日期不能早于 1900 年"))


REGION_FIELDS = ("province_code", "city_code", "district_code")


def fill_region_from_street(values: dict[str, Any]) -> None:
    """A full address typed into the street field (山东省东营市垦利区胜利大街100号) is split."""
    street = values.get("street")
    if not street or any(values.get(k) for k in REGION_FIELDS):
        return
    parsed = parse_address(street)
    if parsed.province_code:
        values.update(
            province_code=parsed.province_code,
            city_code=parsed.city_code,
            district_code=parsed.district_code,
            street=parsed.street or None,
        )


def check_region(session: Session, values: dict[str, Any], errors: ErrorCollector) -> None:
    """Province, city and district must nest; missing upper levels are filled from lower ones."""
    fill_region_from_street(values)
    codes = {k: values.get(k) for k in REGION_FIELDS}
    wanted = [c for c in codes.values() if c]
    if not wanted:
        return
    regions = {r.code: r for r in session.scalars(select(Region).where(Region.code.in_(wanted)))}
    expected_level = {"province_code": 1, "city_code": 2, "district_code": 3}
    for field, code in codes.items():
        if code and (code not in regions or regions[code].level != expected_level[field]):
            errors.add(field.removesuffix("_code"), _("不是有效的行政区划"))
            return
    district, city = codes["district_code"], codes["city_code"]
    if district:
        parent = regions[district].parent_code
        if city and parent != city:
            errors.add("district", _("该区县不属于所选城市"))
            return
        values["city_code"] = city = parent
        if city not in regions:
            regions[city] = session.get(Region, city)
    if city:
        parent = regions[city].parent_code
        if codes["province_code"] and parent != codes["province_code"]:
            errors.add("city", _("该城市不属于所选省份"))
            return
        values["province_code"] = parent


class CustomerService(OwnedRecordService):
    model = Customer
    choices = {
        "kind": CUSTOMER_KINDS,
        "size": COMPANY_SIZES,
        "gender": GENDERS,
        "source": CUSTOMER_SOURCES,
        "level": CUSTOMER_LEVELS,
        "status": CUSTOMER_STATUSES,
        "purchase_frequency": PURCHASE_FREQUENCIES,
        "locality": LOCALITIES,
    }

    cleaners = {
        "name": text_up_to(200),
        "occupation": text_up_to(100),
        "street": text_up_to(255),
        "credit_code": validators.clean_credit_code,
        "mobile": validators.clean_mobile,
        "phone": validators.clean_phone,
        "email": validators.clean_email,
        "website": validators.clean_url,
    }
    required = {"name": lazy("请填写客户名称")}
    defaults = {"kind": "company", "level": "normal", "status": "prospect"}

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        for field, default in self.defaults.items():
            if not values.get(field) and field not in errors.errors:
                values[field] = default
        _check_dates(values, errors, "birth_date")
        if values.get("kind") == "individual" and values.get("credit_code"):
            errors.add("credit_code", _("个人客户没有统一社会信用代码"))
        if values.get("credit_limit") is not None and values["credit_limit"] < 0:
            errors.add("credit_limit", _("信用额度不能为负数"))
        check_region(session, values, errors)
        self.check_owner(session, values, pk, errors)
        self.check_duplicates(session, values, pk, errors)

    def check_duplicates(
        self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector
    ) -> None:
        """Refuse a mobile, e-mail or credit code that another customer already has."""
        for field, label in UNIQUE_CUSTOMER_FIELDS.items():
            value = values.get(field)
            if not value or field in errors.errors:
                continue
            query = select(Customer.id, Customer.name, Customer.owner_id).where(
                getattr(Customer, field) == value
            )
            if pk is not None:
                query = query.where(Customer.id != pk)
            existing = session.execute(query.limit(1)).first()
            if existing:
                owner = session.get(CrmUser, existing.owner_id) if existing.owner_id else None
                errors.add(
                    field,
                    _(
                        "%(label)s %(value)s 已存在:客户「%(name)s」(编号 %(id)s,负责人 %(owner)s)",
                        label=_(label),
                        value=value,
                        name=existing.name,
                        id=existing.id,
                        owner=str(owner) if owner else _("无"),
                    ),
                )


class ContactService(RecordService):
    model = Contact
    choices = {"gender": GENDERS}

    cleaners = {
        "name": text_up_to(100),
        "title": text_up_to(100),
        "wechat": text_up_to(64),
        "mobile": validators.clean_mobile,
        "phone": validators.clean_phone,
        "email": validators.clean_email,
    }
    required = {"name": lazy("请填写联系人姓名")}

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        _check_dates(values, errors, "birthday")
        customer_id = values.get("customer_id")
        if parent_is_new(values, "customer_id"):
            return  # a contact created with its new customer (lead conversion, import)
        if not customer_id:
            errors.add("customer", _("请选择所属客户"))
        elif session.get(Customer, customer_id) is None:
            errors.add("customer", _("所属客户不存在"))
        elif values.get("mobile") and "mobile" not in errors.errors:
            query = select(Contact.name).where(
                Contact.customer_id == customer_id, Contact.mobile == values["mobile"]
            )
            if pk is not None:
                query = query.where(Contact.id != pk)
            existing = session.scalar(query.limit(1))
            if existing:
                errors.add("mobile", _("该客户已有手机号相同的联系人「%(name)s」", name=existing))

    def authorize(self, session: Session, item: Contact, actor: CrmUser | None) -> None:
        """A contact may only be attached to a customer the actor can see."""
        customer_id = item.customer.id if item.customer is not None else item.customer_id
        require_visible(session, Customer, customer_id, actor, "customer", _("客户"))


customer_service = service_for(Customer)
contact_service = service_for(Contact)
