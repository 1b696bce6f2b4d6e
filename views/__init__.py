"""Registers every screen and API, with menus grouped the way a CRM user thinks.

客户 (customers), 销售 (sales), 服务 (service), 营销 (marketing), 分析 (analytics), 设置 (settings):
later issues add their views to the same categories through their own `register()`.
"""

from __future__ import annotations

from flask_appbuilder import AppBuilder
from flask_babel import lazy_gettext as _

from views import customers, customfields, search, security

CUSTOMERS = "Customers"
SETTINGS = "Settings"


#: (view, menu name (a stable id), label, icon, category, category label, category icon)
MENU = [
    (customers.CustomerView, "Customers", _("客户"), "fa-building", CUSTOMERS),
    (customers.ContactView, "Contacts", _("联系人"), "fa-address-book", CUSTOMERS),
    (customers.CustomerGroupView, "Customer groups", _("客户分组"), "fa-object-group", CUSTOMERS),
    (customers.TagView, "Tags", _("标签"), "fa-tags", CUSTOMERS),
    (security.DepartmentView, "Departments", _("部门"), "fa-sitemap", SETTINGS),
    (security.RoleDataScopeView, "Data scopes", _("数据权限"), "fa-filter", SETTINGS),
    (customfields.CustomFieldView, "Custom fields", _("自定义字段"), "fa-sliders", SETTINGS),
    (customers.IndustryView, "Industries", _("行业"), "fa-industry", SETTINGS),
    (customers.RegionView, "Regions", _("行政区划"), "fa-map", SETTINGS),
]
CATEGORIES = {CUSTOMERS: (_("客户"), "fa-users"), SETTINGS: (_("设置"), "fa-cogs")}

APIS = [
    customers.CustomerApi,
    customers.ContactApi,
    customers.IndustryApi,
    customers.TagApi,
    customers.CustomerGroupApi,
    customers.RegionApi,
    security.DepartmentApi,
    security.RoleDataScopeApi,
    customfields.CustomFieldApi,
    customfields.CustomFileApi,
    search.SearchApi,
]


def register_all(appbuilder: AppBuilder) -> None:
    """Add every domain's views and APIs; menu names are stable ids, labels are translated."""
    for view, name, label, icon, category in MENU:
        category_label, category_icon = CATEGORIES[category]
        appbuilder.add_view(
            view,
            name,
            label=label,
            icon=icon,
            category=category,
            category_label=category_label,
            category_icon=category_icon,
        )
    appbuilder.add_view_no_menu(search.SearchView)
    for api in APIS:
        appbuilder.add_api(api)
