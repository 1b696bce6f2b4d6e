"""Registers every screen and API, with menus grouped the way a CRM user thinks.

客户 (customers), 销售 (sales), 服务 (service), 营销 (marketing), 分析 (analytics), 设置 (settings):
later issues add their views to the same categories through their own `register()`.
"""

from __future__ import annotations

from flask_appbuilder import AppBuilder
from flask_babel import lazy_gettext as _

from views import customers, search, security

CUSTOMERS = "Customers"
SETTINGS = "Settings"


def register_all(appbuilder: AppBuilder) -> None:
    """Add every domain's views; menu names are stable ids, labels are translated."""
    customers_menu = {"category": CUSTOMERS, "category_label": _("客户"), "category_icon": "fa-users"}
    appbuilder.add_view(
        customers.CustomerView, "Customers", label=_("客户"), icon="fa-building", **customers_menu
    )
    appbuilder.add_view(
        customers.ContactView, "Contacts", label=_("联系人"), icon="fa-address-book", **customers_menu
    )
    appbuilder.add_view(
        customers.CustomerGroupView,
        "Customer groups",
        label=_("客户分组"),
        icon="fa-object-group",
        **customers_menu,
    )
    appbuilder.add_view(customers.TagView, "Tags", label=_("标签"), icon="fa-tags", **customers_menu)

    settings_menu = {"category": SETTINGS, "category_label": _("设置"), "category_icon": "fa-cogs"}
    appbuilder.add_view(
        security.DepartmentView, "Departments", label=_("部门"), icon="fa-sitemap", **settings_menu
    )
    appbuilder.add_view(
        security.RoleDataScopeView, "Data scopes", label=_("数据权限"), icon="fa-filter", **settings_menu
    )
    appbuilder.add_view(
        customers.IndustryView, "Industries", label=_("行业"), icon="fa-industry", **settings_menu
    )
    appbuilder.add_view(customers.RegionView, "Regions", label=_("行政区划"), icon="fa-map", **settings_menu)
    appbuilder.add_view_no_menu(search.SearchView)

    for api in (
        customers.CustomerApi,
        customers.ContactApi,
        customers.IndustryApi,
        customers.TagApi,
        customers.CustomerGroupApi,
        customers.RegionApi,
        security.DepartmentApi,
        security.RoleDataScopeApi,
        search.SearchApi,
    ):
        appbuilder.add_api(api)
