"""Screens and REST APIs for customers, contacts and their reference lists."""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import request
from flask_appbuilder import expose, has_access
from flask_appbuilder.api import expose as api_expose  # 查重
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.filters import FilterEqual, FilterEqualFunction
from flask_appbuilder.security.decorators import permission_name, protect  # 查重
from flask_babel import lazy_gettext as _
from flask_babel import lazy_pgettext
from sqlalchemy import select
from wtforms import BooleanField

from app.access import current_actor  # field permissions
from app.crypto import EncryptedString, blind_index
from app.customers import (
    DUPLICATE_FIELDS,
    TIMELINE_KINDS,
    TIMELINE_VIEWS,
    TimelineCursor,
    customer_figures,
    customer_timeline,
    find_duplicates,
)
from app.errors import DomainError  # 查重
from app.extensions import db
from app.permissions import field_policy  # field permissions
from models.customers import Contact, Customer, CustomerGroup, Industry, Region, Tag
from models.orders import Order  # field permissions
from views.base import AssignableUserFilter, CrmInterface, CrmModelApi, CrmModelView, PermittedTabsMixin
from views.orders import OrderView
from views.pools import CustomerPoolActions, CustomerPoolApiActions, CustomerTeamMemberView
from views.sales import InteractionView, OpportunityView, TaskView
from views.service import TicketView
from views.widgets import customer_select

#: the panels of one kind of customer (the form shows both: the kind may change)
COMPANY_FIELDSET = (_("企业信息"), {"fields": ["credit_code", "industry", "size", "website"]})
PERSON_FIELDSET = (_("个人信息"), {"fields": ["id_number", "gender", "birth_date", "occupation"]})

CUSTOMER_LABELS = {
    "kind": _("客户类型"),
    "name": _("客户名称"),
    "credit_code": _("统一社会信用代码"),
    "industry": _("行业"),
    "size": _("企业规模"),
    "website": _("网址"),
    "gender": _("性别"),
    "birth_date": _("出生日期"),
    "occupation": _("职业"),
    "mobile": _("手机号"),
    "phone": _("电话"),
    "email": _("电子邮箱"),
    "province": _("省份"),
    "city": _("城市"),
    "district": _("区县"),
    "street": _("详细地址"),
    "address": _("地址"),
    "source": _("客户来源"),
    "level": _("客户级别"),
    "status": _("客户状态"),
    "purchase_frequency": _("采购频次"),
    "locality": _("地域"),
    "credit_limit": _("信用额度 (元)"),
    "invoice_title": _("开票名称"),
    "tax_number": _("税号"),
    "bank_name": _("开户行"),
    "bank_account": _("银行账号"),
    "invoice_address_phone": _("开票地址电话"),
    "id_number": _("身份证号"),
    "notes": _("备注"),
    "owner": _("负责人"),
    "department": _("所属部门"),
    "tags": _("标签"),
    "groups": _("分组"),
    "contacts": lazy_pgettext("plural", "联系人"),
    "created_at": _("创建时间"),
    "updated_at": _("更新时间"),
    "created_by": _("创建人"),
    "updated_by": _("更新人"),
}

CONTACT_LABELS = {
    "customer": _("所属客户"),
    "name": _("姓名"),
    "title": _("职务"),
    "mobile": _("手机号"),
    "phone": _("电话"),
    "email": _("电子邮箱"),
    "wechat": _("微信号"),
    "gender": _("性别"),
    "birthday": _("生日"),
    "is_primary": _("主要联系人"),
    "notes": _("备注"),
    "created_at": _("创建时间"),
}

#: What a user writes about a contact, on screens and through the API alike
CONTACT_FIELDS = [
    "customer",
    "name",
    "title",
    "mobile",
    "phone",
    "email",
    "wechat",
    "gender",
    "birthday",
    "is_primary",
    "notes",
]

#: 开票信息: copied onto each invoice of the customer's orders
INVOICING_FIELDS = ["invoice_title", "tax_number", "bank_name", "bank_account", "invoice_address_phone"]

#: What customers can be filtered by, on the list screen and in the REST API alike
CUSTOMER_FILTERS = [
    "name",
    "kind",
    "level",
    "status",
    "source",
    "mobile",
    "phone",
    "email",
    "credit_code",
    "industry",
    "owner",
    "purchase_frequency",
    "locality",
    # encryption at rest: stored encrypted, so only "exact" (through the blind index)
    "id_number",
    "bank_account",
]


def selected_city() -> int | None:
    """The city whose districts the form offers: the one posted, or the edited record's.

    Rendering all 2,900 districts made the customer form take 120 ms; the districts of one
    city are a few dozen, and crm.js loads them from /api/v1/region/ when the city changes.
    """
    posted = request.form.get("city")
    if posted:
        return int(posted) if posted.isdigit() else None
    district = request.form.get("district", "")
    if district.isdigit():  # a district alone: its own city (the service fills the city in)
        return db.session.scalar(select(Region.parent_code).where(Region.code == int(district)))
    pk = (request.view_args or {}).get("pk")
    if pk and str(pk).isdigit():
        return db.session.scalar(select(Customer.city_code).where(Customer.id == int(pk)))
    return None


REGION_LEVEL_FILTERS = {
    "province": [["level", FilterEqual, 1]],
    "city": [["level", FilterEqual, 2]],
    "district": [["level", FilterEqual, 3], ["parent_code", FilterEqualFunction, selected_city]],
    "owner": [["id", AssignableUserFilter, None]],
}


class ContactView(CrmModelView):
    datamodel = CrmInterface(Contact)
    list_title = lazy_pgettext("plural", "联系人")
    show_title = _("联系人详情")
    add_title = _("新建联系人")
    edit_title = _("编辑联系人")
    label_columns = CONTACT_LABELS
    list_columns = ["name", "customer", "title", "mobile", "phone", "email", "is_primary"]
    show_columns = [*CONTACT_FIELDS, "created_at"]
    add_columns = CONTACT_FIELDS
    edit_columns = add_columns
    search_columns = ["name", "mobile", "phone", "email", "title"]
    order_columns = ["name", "mobile", "created_at"]
    base_order = ("id", "desc")
    # a required Boolean column would make FAB require the box to be ticked
    add_form_extra_fields = {
        "customer": customer_select(CONTACT_LABELS["customer"]),
        "is_primary": BooleanField(CONTACT_LABELS["is_primary"]),
    }
    edit_form_extra_fields = {
        "customer": customer_select(CONTACT_LABELS["customer"]),
        "is_primary": BooleanField(CONTACT_LABELS["is_primary"]),
    }


# --- encryption at rest ---
class BlindIndexEqual(BaseFilter):
    """等于 on an encrypted column: the value's blind index against the stored one (exact only)."""

    name = _("等于")
    arg_name = "exact"  # not "eq": FAB maps REST operators to filter classes globally

    def apply(self, query: Any, value: Any) -> Any:
        if value in (None, ""):
            return query
        model = self.datamodel.obj
        index_column, purpose = model.__blind_indexes__[self.column_name]
        return query.filter(getattr(model, index_column) == blind_index(str(value), purpose))


class EncryptedFilterConverter(CrmInterface.filter_converter_class):  # type: ignore[name-defined, misc]
    """Encrypted columns offer no LIKE, prefix or ordering filter: only 等于, by blind index."""

    def convert(self, col_name: str) -> Any:
        column = self.datamodel.list_columns.get(col_name)
        if column is not None and isinstance(column.type, EncryptedString):
            if col_name not in getattr(self.datamodel.obj, "__blind_indexes__", {}):
                return None
            return [BlindIndexEqual(col_name, self.datamodel)]
        return super().convert(col_name)


class CustomerInterface(CrmInterface):
    filter_converter_class = EncryptedFilterConverter


class CustomerView(CustomerPoolActions, PermittedTabsMixin, CrmModelView):
    datamodel = CustomerInterface(Customer)  # encryption at rest: blind-index filters
    list_title = lazy_pgettext("plural", "客户")
    show_title = _("客户详情")
    add_title = _("新建客户")
    edit_title = _("编辑客户")
    label_columns = CUSTOMER_LABELS
    list_columns = ["name", "kind", "level", "status", "mobile", "city", "owner", "updated_at"]
    show_fieldsets = [
        (_("基本信息"), {"fields": ["kind", "name", "level", "status", "source", "owner", "department"]}),
        COMPANY_FIELDSET,
        PERSON_FIELDSET,
        (_("联系方式"), {"fields": ["mobile", "phone", "email", "address"]}),
        (
            _("分类"),
            {"fields": ["purchase_frequency", "locality", "tags", "groups", "credit_limit", "notes"]},
        ),
        (_("开票信息"), {"fields": INVOICING_FIELDS, "expanded": False}),
        (
            _("记录信息"),
            {"fields": ["created_at", "created_by", "updated_at", "updated_by"], "expanded": False},
        ),
    ]
    add_fieldsets = [
        (_("基本信息"), {"fields": ["kind", "name", "level", "status", "source", "owner"]}),
        COMPANY_FIELDSET,
        PERSON_FIELDSET,
        (_("联系方式"), {"fields": ["mobile", "phone", "email", "province", "city", "district", "street"]}),
        (
            _("分类"),
            {"fields": ["purchase_frequency", "locality", "tags", "groups", "credit_limit", "notes"]},
        ),
        (_("开票信息"), {"fields": INVOICING_FIELDS, "expanded": False}),
    ]
    edit_fieldsets = add_fieldsets
    search_columns = [*CUSTOMER_FILTERS, "tags", "groups"]
    order_columns = ["name", "level", "status", "updated_at", "mobile"]
    base_order = ("id", "desc")
    add_form_query_rel_fields = REGION_LEVEL_FILTERS
    edit_form_query_rel_fields = REGION_LEVEL_FILTERS
    search_form_query_rel_fields = {"owner": [["id", AssignableUserFilter, None]]}
    related_views = [
        ContactView, OpportunityView, OrderView, InteractionView, TaskView, TicketView, CustomerTeamMemberView
    ]  # fmt: skip
    show_template = "crm/customer_show.html"
    lazy_tabs = True  # the 360 page shows the timeline; each tab's list loads when opened

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk: Any) -> Any:
        """The customer 360 page: key figures, the record, and one timeline (paged by time)."""
        widgets = self._show(pk)  # 404 outside the user's data scope
        cursor = TimelineCursor.parse(request.args.get("before"))
        return self.render_template(
            self.show_template,
            pk=pk,
            title=self.show_title,
            widgets=widgets,
            related_views=self.visible_related_views(),
            customer=self.datamodel.get(pk),
            figures=self._figures(int(pk)),
            timeline=customer_timeline(db.session, int(pk), current_actor(), self._timeline_kinds(), cursor),
        )

    def _get_show_widget(
        self, pk: Any, item: Any, widgets: Any = None, actions: Any = None, show_fieldsets: Any = None
    ) -> Any:
        """A company's page without the personal panel and a person's without the company one;
        lock or unlock, as the customer stands."""
        other = {"company": PERSON_FIELDSET, "individual": COMPANY_FIELDSET}.get(item.kind)
        fieldsets = [fieldset for fieldset in show_fieldsets or self.show_fieldsets if fieldset is not other]
        return super()._get_show_widget(pk, item, widgets, actions or self.actions_for(item), fieldsets)

    def _timeline_kinds(self) -> list[str]:
        """The timeline's sources whose screen the user's role may list (a Sales Rep reads the
        collections of their own orders, a Support Agent sees no orders at all)."""
        return [
            kind
            for kind in TIMELINE_KINDS
            if self.appbuilder.sm.has_access("can_list", TIMELINE_VIEWS[kind])
        ]

    # --- field permissions and 查重 ---
    @staticmethod
    def _figures(pk: int) -> Any:
        """The 360 figures without what has been collected when the user may not see it."""
        figures = customer_figures(db.session, pk)
        if field_policy(db.session, current_actor(), Order).hidden("paid_amount"):
            figures = dataclasses.replace(figures, paid_amount=None)
        return figures

    @expose("/duplicates", methods=["GET"])
    @has_access
    @permission_name("list")
    def duplicates(self) -> Any:
        """查重: does a customer with this name, mobile, credit code or e-mail exist, and who owns it?
        Outside the user's data scope only the owner (masked) and the department are told."""
        given = {field: request.args.get(field, "") for field in DUPLICATE_FIELDS}
        matches, errors = [], {}
        if any(given.values()):
            try:
                matches = find_duplicates(db.session, given)
            except DomainError as exc:
                errors = exc.errors
        return self.render_template(
            "crm/customer_duplicates.html",
            title=_("客户查重"),
            given=given,
            checked=any(given.values()) and not errors,
            matches=matches,
            errors=errors,
        )



class IndustryView(CrmModelView):
    datamodel = CrmInterface(Industry)
    list_title = lazy_pgettext("plural", "行业")
    label_columns = {"name": _("行业名称"), "position": _("排序")}
    list_columns = add_columns = edit_columns = ["name", "position"]
    base_order = ("position", "asc")


class TagView(CrmModelView):
    datamodel = CrmInterface(Tag)
    list_title = _("标签")
    label_columns = {"name": _("标签名称"), "color": _("颜色")}
    list_columns = add_columns = edit_columns = ["name", "color"]


class CustomerGroupView(CrmModelView):
    datamodel = CrmInterface(CustomerGroup)
    list_title = _("客户分组")
    label_columns = {
        "name": _("分组名称"),
        "description": _("说明"),
        "customers": lazy_pgettext("plural", "客户"),
    }
    list_columns = ["name", "description"]
    add_columns = edit_columns = ["name", "description"]


class RegionView(CrmModelView):
    datamodel = CrmInterface(Region)
    list_title = _("行政区划")
    base_permissions = ["can_list", "can_show"]
    label_columns = {"code": _("区划代码"), "name": _("名称"), "level": _("级别"), "parent": _("上级")}
    list_columns = show_columns = ["code", "name", "level", "parent"]
    search_columns = ["code", "name", "level"]
    base_order = ("code", "asc")


# --- REST ----------------------------------------------------------------------------------
CUSTOMER_API_COLUMNS = [
    "id",
    "kind",
    "name",
    "credit_code",
    "industry.id",
    "industry.name",
    "size",
    "website",
    "id_number",
    "gender",
    "birth_date",
    "occupation",
    "mobile",
    "phone",
    "email",
    "province.code",
    "province.name",
    "city.code",
    "city.name",
    "district.code",
    "district.name",
    "street",
    "source",
    "level",
    "status",
    "purchase_frequency",
    "locality",
    "credit_limit",
    *INVOICING_FIELDS,
    "notes",
    "owner.id",
    "owner.username",
    "department.id",
    "department.name",
    "tags.id",
    "tags.name",
    "groups.id",
    "groups.name",
    "custom",
    "created_at",
    "updated_at",
]
CUSTOMER_API_WRITE = [
    "kind",
    "name",
    "credit_code",
    "industry",
    "size",
    "website",
    "id_number",
    "gender",
    "birth_date",
    "occupation",
    "mobile",
    "phone",
    "email",
    "province",
    "city",
    "district",
    "street",
    "source",
    "level",
    "status",
    "purchase_frequency",
    "locality",
    "credit_limit",
    *INVOICING_FIELDS,
    "notes",
    "owner",
    "tags",
    "groups",
]


class CustomerApi(CustomerPoolApiActions, CrmModelApi):
    resource_name = "customer"
    datamodel = CustomerInterface(Customer)  # encryption at rest: blind-index filters
    list_columns = [
        "id",
        "kind",
        "name",
        "level",
        "status",
        "mobile",
        "phone",
        "email",
        "city.name",
        "district.name",
        "owner.id",
        "owner.username",
        "updated_at",
    ]
    show_columns = CUSTOMER_API_COLUMNS
    add_columns = edit_columns = [*CUSTOMER_API_WRITE, "custom"]
    order_columns = ["id", "name", "level", "status", "updated_at", "mobile"]
    search_columns = CUSTOMER_FILTERS
    add_query_rel_fields = {"owner": [["id", AssignableUserFilter, None]]}
    edit_query_rel_fields = add_query_rel_fields

    # --- 查重 ---
    @api_expose("/duplicates", methods=["GET"])
    @protect()
    @permission_name("get")
    def duplicates(self) -> Any:
        """查重: whether a customer with this name, mobile, credit code or e-mail exists.
        ---
        get:
          parameters:
          - {in: query, name: name, schema: {type: string}}
          - {in: query, name: mobile, schema: {type: string}}
          - {in: query, name: credit_code, schema: {type: string}}
          - {in: query, name: email, schema: {type: string}}
          responses:
            200:
              description: >-
                exists (bool), message, and result: the matches; a match outside the caller's data
                scope gives only the matched fields, the owner's name masked and the department
            400: {description: 'nothing given, or a value that is not valid'}
        """
        given = {field: request.args.get(field) for field in DUPLICATE_FIELDS}

        def done(matches: list[Any]) -> Any:
            message = "; ".join(m.message() for m in matches) if matches else str(_("没有找到重复的客户"))
            return self.response(
                200, exists=bool(matches), message=message, result=[m.as_dict() for m in matches]
            )

        return self.answer(lambda: find_duplicates(db.session, given), done)



class ContactApi(CrmModelApi):
    resource_name = "contact"
    datamodel = CrmInterface(Contact)
    list_columns = ["id", "name", "customer.id", "customer.name", "title", "mobile", "email", "is_primary"]
    show_columns = ["id", "customer.id", "customer.name", *CONTACT_FIELDS[1:], "custom", "created_at"]
    add_columns = edit_columns = [*CONTACT_FIELDS, "custom"]
    order_columns = ["id", "name", "mobile"]
    search_columns = ["name", "mobile", "phone", "email", "customer"]


class IndustryApi(CrmModelApi):
    resource_name = "industry"
    datamodel = CrmInterface(Industry)
    list_columns = show_columns = ["id", "name", "position"]
    add_columns = edit_columns = ["name", "position"]


class TagApi(CrmModelApi):
    resource_name = "tag"
    datamodel = CrmInterface(Tag)
    list_columns = show_columns = ["id", "name", "color"]
    add_columns = edit_columns = ["name", "color"]


class CustomerGroupApi(CrmModelApi):
    resource_name = "customer_group"
    datamodel = CrmInterface(CustomerGroup)
    list_columns = show_columns = ["id", "name", "description"]
    add_columns = edit_columns = ["name", "description"]


class RegionApi(CrmModelApi):
    resource_name = "region"
    datamodel = CrmInterface(Region)
    base_permissions = ["can_get", "can_info"]
    list_columns = show_columns = ["code", "name", "level", "parent_code"]
    search_columns = ["code", "name", "level", "parent_code"]
    order_columns = ["code", "name"]
    page_size = 100
