"""Registers every screen and API, with menus grouped the way a CRM user thinks.

客户 (customers), 销售 (sales), 服务 (service), 营销 (marketing), 分析 (analytics), 设置 (settings):
later issues add their views to the same categories through their own `register()`.
"""

from __future__ import annotations

from flask_appbuilder import AppBuilder
from flask_babel import lazy_gettext as _
from flask_babel import lazy_pgettext

from views import (
    analytics,  # 分析: the dashboards
    approvals,
    audit,  # 审计日志
    customers,
    customfields,
    kanban,
    notifications,
    orders,
    permissions,
    pools,
    sales,
    search,
    security,
    service,  # 服务: tickets, categories, assignment rules
    sla,  # 服务: SLA policies, business hours, holidays; surveys
    support,  # the public pages: the ticket form, its status page, the survey
    targets,
)

CUSTOMERS = "Customers"
SALES = "Sales"
SERVICE = "Service"
SETTINGS = "Settings"


#: (view, menu name (a stable id), label, icon, category, category label, category icon)
MENU = [
    (customers.CustomerView, "Customers", lazy_pgettext("plural", "客户"), "fa-building", CUSTOMERS),
    (customers.ContactView, "Contacts", lazy_pgettext("plural", "联系人"), "fa-address-book", CUSTOMERS),
    (customers.CustomerGroupView, "Customer groups", _("客户分组"), "fa-object-group", CUSTOMERS),
    (customers.TagView, "Tags", _("标签"), "fa-tags", CUSTOMERS),
    (pools.PoolCustomerView, "Customer pool", _("公海客户"), "fa-life-ring", CUSTOMERS),
    (pools.PoolMoveView, "Pool history", _("公海记录"), "fa-history", CUSTOMERS),
    (pools.CustomerTeamMemberView, "Customer teams", _("团队成员"), "fa-user-plus", CUSTOMERS),
    (sales.LeadView, "Leads", lazy_pgettext("plural", "线索"), "fa-filter", SALES),
    (sales.OpportunityView, "Opportunities", lazy_pgettext("plural", "商机"), "fa-handshake-o", SALES),
    (kanban.KanbanView, "Opportunity board", _("商机看板"), "fa-columns", SALES),
    (sales.InteractionView, "Follow-ups", _("跟进记录"), "fa-comments", SALES),
    (sales.TaskView, "Tasks", lazy_pgettext("plural", "任务"), "fa-check-square-o", SALES),
    (notifications.NotificationView, "My reminders", _("我的提醒"), "fa-bell", SALES),
    (sales.ProductView, "Products", lazy_pgettext("plural", "产品"), "fa-cube", SALES),
    (orders.OrderView, "Orders", _("订单合同"), "fa-file-text-o", SALES),
    (orders.PaymentPlanView, "Payment plans", _("回款计划"), "fa-calendar", SALES),
    (orders.PaymentView, "Payments", _("回款"), "fa-money", SALES),
    (orders.InvoiceView, "Invoices", _("发票"), "fa-file-o", SALES),
    (approvals.ApprovalRequestView, "Approvals", lazy_pgettext("plural", "审批"), "fa-check-circle", SALES),
    (targets.SalesTargetView, "Sales targets", _("业绩目标"), "fa-bullseye", SALES),
    (service.TicketView, "Tickets", _("服务工单"), "fa-ticket", SERVICE),
    (service.MyTicketView, "My tickets", _("我的待办工单"), "fa-inbox", SERVICE),
    (sales.PipelineView, "Pipelines", _("销售流程"), "fa-random", SETTINGS),
    (pools.CustomerPoolView, "Customer pools", _("公海设置"), "fa-life-ring", SETTINGS),
    (security.DepartmentView, "Departments", lazy_pgettext("plural", "部门"), "fa-sitemap", SETTINGS),
    (security.RoleDataScopeView, "Data scopes", _("数据权限"), "fa-filter", SETTINGS),
    (customfields.CustomFieldView, "Custom fields", _("自定义字段"), "fa-sliders", SETTINGS),
    (customers.IndustryView, "Industries", lazy_pgettext("plural", "行业"), "fa-industry", SETTINGS),
    (customers.RegionView, "Regions", _("行政区划"), "fa-map", SETTINGS),
    (notifications.OutboxMessageView, "Outbox", _("发件箱"), "fa-envelope", SETTINGS),
    (approvals.ApprovalFlowView, "Approval flows", _("审批流程"), "fa-sitemap", SETTINGS),
]
CATEGORIES = {
    CUSTOMERS: (lazy_pgettext("plural", "客户"), "fa-users"),
    SALES: (_("销售"), "fa-line-chart"),
    SERVICE: (_("服务"), "fa-life-ring"),
    SETTINGS: (_("设置"), "fa-cogs"),
}

APIS = [
    customers.CustomerApi,
    customers.ContactApi,
    customers.IndustryApi,
    customers.TagApi,
    customers.CustomerGroupApi,
    customers.RegionApi,
    security.DepartmentApi,
    security.RoleDataScopeApi,
    permissions.FieldRuleApi,
    customfields.CustomFieldApi,
    customfields.CustomFileApi,
    search.SearchApi,
    sales.ProductApi,
    sales.PipelineApi,
    sales.StageApi,
    sales.LeadApi,
    sales.OpportunityApi,
    sales.InteractionApi,
    sales.TaskApi,
    sales.StageChangeApi,
    notifications.NotificationApi,
    notifications.OutboxMessageApi,
    kanban.KanbanApi,
    pools.CustomerPoolApi,
    pools.PoolRuleApi,
    pools.PoolMoveApi,
    pools.CustomerTeamMemberApi,
    pools.PoolCustomerApi,
    orders.OrderApi,
    orders.OrderLineApi,
    orders.PaymentPlanApi,
    orders.PaymentApi,
    orders.InvoiceApi,
    approvals.ApprovalRequestApi,
    approvals.ApprovalDecisionApi,
    approvals.ApprovalFlowApi,
    approvals.ApprovalStepApi,
    targets.SalesTargetApi,
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
    # 字段权限 in the security menu, beside a link to 数据权限 (data scopes)
    appbuilder.add_view(
        permissions.FieldRuleView,
        "Field rules",
        label=_("字段权限"),
        icon="fa-eye-slash",
        category="Security",
        category_label=_("Security"),
        category_icon="fa-cogs",
    )
    scope_view = next(v for v in appbuilder.baseviews if type(v) is security.RoleDataScopeView)
    appbuilder.add_link(
        "Data scopes (security menu)",
        href="/roledatascopeview/list/",
        label=_("数据权限"),
        icon="fa-filter",
        category="Security",
        baseview=scope_view,
    )
    # 查重: a menu link for everyone who may list customers (its menu access follows theirs)
    customer_view = next(v for v in appbuilder.baseviews if type(v) is customers.CustomerView)
    appbuilder.add_link(
        "Duplicate check",
        href="/customerview/duplicates",
        icon="fa-clone",
        label=_("客户查重"),
        category=CUSTOMERS,
        baseview=customer_view,
    )
    appbuilder.add_view_no_menu(search.SearchView)
    appbuilder.add_view_no_menu(sales.StageView)
    appbuilder.add_view_no_menu(sales.StageChangeView)
    appbuilder.add_view_no_menu(pools.PoolRuleView)
    appbuilder.add_view_no_menu(orders.OrderLineView)
    appbuilder.add_view_no_menu(approvals.ApprovalStepView)
    appbuilder.add_view_no_menu(approvals.ApprovalDecisionView)
    for api in APIS:
        appbuilder.add_api(api)
    audit.register(appbuilder)  # 审计日志 (security menu) and its read-only API
    security.register(appbuilder)  # 个人中心 (MFA, API tokens) and MFA per role
    service.register(appbuilder)  # 服务 menu: tickets, surveys; 设置: categories, rules, SLA, hours
    sla.register(appbuilder)  # 设置: SLA policies, business hours, calendar; 服务: surveys
    support.register(appbuilder)  # /support/...: no login
    analytics.register(appbuilder)  # 分析 menu: /dashboards/sales|customers|service
