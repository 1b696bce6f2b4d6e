"""KeGuan's security manager: our user model, per-request permission cache, built-in roles."""

from __future__ import annotations

import re
import secrets
import string
from typing import Any

from flask import current_app, flash, g, has_app_context, has_request_context, redirect, request
from flask_appbuilder.actions import action
from flask_appbuilder.api import expose, safe
from flask_appbuilder.exceptions import PasswordComplexityValidationError
from flask_appbuilder.security.decorators import permission_name, protect
from flask_appbuilder.security.sqla.apis.user.api import UserApi
from flask_appbuilder.security.sqla.manager import SecurityManager
from flask_appbuilder.security.views import UserDBModelView
from flask_babel import gettext
from flask_babel import lazy_gettext as _
from flask_limiter import Limiter
from sqlalchemy import select
from sqlalchemy.orm import Session
from wtforms.validators import DataRequired

from app import login as login_service
from app import mfa, ratelimit, validators
from app.access import DEFAULT_ROLE_SCOPES, department_tree_ids, request_cache
from app.errors import ErrorCollector
from app.permissions import seed_default_rules
from app.services import RecordService, text_up_to
from models.security import DATA_SCOPES, CrmUser, Department, RoleDataScope, RoleMfaPolicy
from views.login import CrmAuthDBView, CrmSecurityApi

READ = r"can_(list|show|get|info)"
WRITE = r"can_(list|show|get|info|add|edit|delete|post|put)"
SELF_SERVICE = [
    (r"UserDBModelView", r"can_userinfo|userinfoedit|resetmypassword"),
    (r"UserInfoEditView", r"can_this_form_(get|post)"),
    (r"ResetMyPasswordView", r"can_this_form_(get|post)"),
    (r"SearchView", r"can_results"),
    (r"SearchApi", r"can_get"),
    (r"CustomFileApi", r"can_(get|post)"),  # the API itself checks record scope and field rights
    (r"Notification(View|Api)", r"can_(list|show|get|info|edit|put)"),  # one's own only (base filter)
    # approvals: the scope rule shows what waits for me, what I decided and my own; the engine
    # decides whether I may decide
    (r"ApprovalRequest(View|Api)", r"can_(list|show|get|info|decide)"),
    (r"ApprovalDecision(View|Api)", READ),
    # 我的订阅: one's own dashboard subscriptions only (base filter); made on a dashboard
    (r"DashboardSubscription(View|Api)", r"can_(list|show|get|info|edit|put|delete)"),
]
CUSTOMER_DATA = r"(Customer|Contact)(View|Api)"
SALES_DATA = r"(Lead|Opportunity|Interaction|Task)(View|Api)"
SALES_SETUP = r"(Product|Pipeline|Stage|StageChange)(View|Api)"
TARGETS = r"SalesTarget(View|Api)"  # 业绩目标: sales roles read them, managers set them
ORDERS = r"(Order|OrderLine)(View|Api)"  # orders and contracts: sales roles write their own
MONEY = r"(PaymentPlan|Payment|Invoice)(View|Api)"  # Finance writes; owners read their orders' (scope)
#: 公海: browse and claim (managers also assign); the rules, the history and collaborators
POOL_BROWSE = (r"PoolCustomer(View|Api)", r"can_(list|show|get|info|claim)")
POOL_ASSIGN = (r"PoolCustomer(View|Api)", r"can_(list|show|get|info|claim|assign)")
POOL_RULES = (r"(CustomerPool|PoolRule|PoolMove)(View|Api)", READ)
TEAM = (r"CustomerTeamMember(View|Api)", WRITE)  # the service lets only owners (scope) add members
EXPORT = (r"(Customer|Contact)View", r"can_export")  # CSV of whole lists: not for every rep
REFERENCE_DATA = r"(Industry|Tag|CustomerGroup|Region)(View|Api)"
#: 服务工单: tickets with their conversation, history, attachments and surveys; `can_work` covers
#: the ticket actions (comment, change status, assign, link a customer)
SERVICE_DATA = (
    r"(Ticket|TicketComment|TicketAttachment|TicketStatusChange|Survey)(View|Api)",
    r"can_(list|show|get|info|add|edit|delete|post|put|work)",
)
SERVICE_READ = (r"(Ticket|TicketComment|TicketAttachment|TicketStatusChange|Survey)(View|Api)", READ)
#: the service desk's setup: categories, assignment rules, SLA policies, business hours, calendar
SERVICE_SETUP = r"(TicketCategory|AssignmentRule|SlaPolicy|BusinessHours|ServiceCalendarDay)(View|Api)"
#: 分析: the dashboards (each query within the user's data scope) and their subscriptions
DASHBOARD = r"can_(show|data|export|print|subscribe)"
SALES_DASHBOARDS = (r"(Sales|Customer)DashboardView", DASHBOARD)
SERVICE_DASHBOARD = (r"ServiceDashboardView", DASHBOARD)

#: Built-in roles: (view name regex, permission regex) pairs, applied by `flask crm init`.
ROLE_PERMISSIONS: dict[str, list[tuple[str, str]]] = {
    "Sales Rep": [
        (CUSTOMER_DATA, WRITE),
        POOL_BROWSE,
        POOL_RULES,
        TEAM,
        (SALES_DATA, WRITE),
        (r"Kanban(View|Api)", WRITE),  # the opportunity board (a move edits the opportunity)
        (ORDERS, WRITE),
        (MONEY, READ),
        (SALES_SETUP, READ),
        (TARGETS, READ),
        (REFERENCE_DATA, READ),
        SERVICE_READ,  # the tickets of their own customers (scope)
        SALES_DASHBOARDS,
        *SELF_SERVICE,
    ],
    "Sales Manager": [
        (CUSTOMER_DATA, WRITE),
        POOL_ASSIGN,
        POOL_RULES,
        TEAM,
        (SALES_DATA, WRITE),
        (r"Kanban(View|Api)", WRITE),  # the opportunity board (a move edits the opportunity)
        (r"ProductView|ProductApi", WRITE),
        (ORDERS, WRITE),
        (MONEY, READ),
        (SALES_SETUP, READ),
        (TARGETS, WRITE),
        EXPORT,
        (r"(Tag|CustomerGroup)(View|Api)", WRITE),
        (REFERENCE_DATA, READ),
        (r"Department(View|Api)", READ),
        SERVICE_READ,
        SALES_DASHBOARDS,
        SERVICE_DASHBOARD,
        *SELF_SERVICE,
    ],
    "Marketing": [
        (CUSTOMER_DATA, READ),
        (r"Lead(View|Api)", WRITE),
        (SALES_SETUP, READ),
        EXPORT,
        (r"(Tag|CustomerGroup)(View|Api)", WRITE),
        (REFERENCE_DATA, READ),
        (r"CustomerDashboardView", DASHBOARD),
        *SELF_SERVICE,
    ],
    "Support Agent": [
        (r"Customer(View|Api)", READ),
        (r"Contact(View|Api)", WRITE),
        (r"(Interaction|Task)(View|Api)", WRITE),
        (REFERENCE_DATA, READ),
        SERVICE_DATA,
        (SERVICE_SETUP, READ),
        SERVICE_DASHBOARD,
        *SELF_SERVICE,
    ],
    "Finance": [
        (CUSTOMER_DATA, READ),
        (SALES_DATA, READ),
        (ORDERS, READ),
        (MONEY, WRITE),
        (SALES_SETUP, READ),
        EXPORT,
        (REFERENCE_DATA, READ),
        SALES_DASHBOARDS,
        *SELF_SERVICE,
    ],
    "Read Only": [
        (r"AuditLogView", r"can_history"),  # 审计室 sees the history of the records it may see
        (CUSTOMER_DATA, READ),
        (SALES_DATA, READ),
        (ORDERS, READ),
        (SALES_SETUP, READ),
        (REFERENCE_DATA, READ),
        (r"Department(View|Api)", READ),
        *SELF_SERVICE,
    ],
}


class CrmUserDBModelView(UserDBModelView):
    """The user admin screen with the department and the direct superior."""

    list_columns = ["first_name", "last_name", "username", "department", "roles", "active"]
    show_fieldsets = [
        (
            _("User info"),
            {"fields": ["username", "active", "roles", "login_count", "department", "manager"]},
        ),
        (_("Personal Info"), {"fields": ["first_name", "last_name", "email", "mobile"]}),
        (
            _("Audit Info"),
            {"fields": ["last_login", "fail_login_count", "locked_until", "created_on", "changed_on"]},
        ),
    ]
    edit_columns = [
        "first_name",
        "last_name",
        "username",
        "active",
        "email",
        "mobile",
        "department",
        "manager",
        "roles",
    ]
    add_columns = [*edit_columns, "password", "conf_password"]
    search_columns = ["first_name", "last_name", "username", "email", "department", "roles"]
    # every user belongs to a department (FAB's own rule on roles/groups kept)
    validators_columns = {**UserDBModelView.validators_columns, "department": [DataRequired()]}
    label_columns = {
        **UserDBModelView.label_columns,
        "department": _("部门"),
        "manager": _("直属上级"),
        "mobile": _("手机号"),
        "locked_until": _("锁定至 (UTC)"),
    }

    @action("unlock", _("解锁账户"), _("解除所选用户的登录锁定？"), "fa-unlock")
    def unlock(self, items: Any) -> Any:
        """An admin lifts a lock-out before it runs out."""
        for user in items if isinstance(items, list) else [items]:
            login_service.unlock(user, g.user)
        self.datamodel.session.commit()
        flash(gettext("已解锁"), "success")
        return redirect(self.get_redirect())

    @action(
        "mfa_reset",
        _("重置双因素认证"),
        _("删除所选用户的 MFA 绑定和恢复码？他们需要重新绑定。"),
        "fa-shield",
    )
    def mfa_reset(self, items: Any) -> Any:
        """Lost phone: the user's MFA is removed; a role that requires it makes them enrol again."""
        for user in items if isinstance(items, list) else [items]:
            mfa.admin_reset(self.datamodel.session, user, g.user)
        self.datamodel.session.commit()
        flash(gettext("已重置双因素认证"), "success")
        return redirect(self.get_redirect())


class CrmUserApi(UserApi):
    """FAB's user API (/api/v1/security/users), with a 404 for PUT of a user that does not exist:
    FAB's put loads no record before writing and answers a 500."""

    @expose("/<pk>", methods=("PUT",))
    @protect()
    @safe
    @permission_name("put")
    def put(self, pk: Any) -> Any:
        if self.datamodel.get(pk, self._base_filters) is None:
            return self.response_404()
        return super().put.__wrapped__(self, pk)  # the undecorated put: protect() ran above


class CrmSecurityManager(SecurityManager):
    user_model = CrmUser
    user_api = CrmUserApi
    userdbmodelview = CrmUserDBModelView
    # FAB's user-statistics chart loads Google Charts from the internet: KeGuan works offline
    userstatschartview = None
    # login with an MFA code step and lock-out (app/login.py)
    authdbview = CrmAuthDBView
    security_api = CrmSecurityApi

    def __init__(self, appbuilder: Any) -> None:
        # FAB's forms and user API call this for every password they set
        current_app.config.setdefault("FAB_PASSWORD_COMPLEXITY_VALIDATOR", password_complexity)
        super().__init__(appbuilder)

    def create_limiter(self, app: Any) -> Limiter:
        return ratelimit.create_limiter(app)

    # --- personal API tokens (app/tokens.py) through FAB's API-key path in protect() ----------
    # app.tokens.authenticate_request has checked the `Bearer kg_...` header before the view
    # (401/403 there); FAB_API_KEY_ENABLED makes protect() accept that user on every API, FAB's
    # own security API included, instead of asking for a JWT.
    def extract_api_key_from_request(self) -> str | None:  # type: ignore[override]
        return "kg_" if getattr(g, "_api_key_user", False) else None

    def validate_api_key(self, api_key_string: str) -> Any:
        return g.user if getattr(g, "_api_key_user", False) else None

    def register_views(self) -> None:
        """FAB's views, without FAB's own API-key API (its sst_ keys): KeGuan's tokens replace it."""
        enabled = current_app.config.get("FAB_API_KEY_ENABLED", False)
        current_app.config["FAB_API_KEY_ENABLED"] = False
        try:
            super().register_views()
        finally:
            current_app.config["FAB_API_KEY_ENABLED"] = enabled

    def on_user_login(self, user: Any) -> None:
        login_service.on_success(user)

    def on_user_login_failed(self, user: Any) -> None:
        login_service.on_failure(user)

    def auth_user_db(self, username: str, password: str) -> Any:
        """FAB's password check, with lock-out; a user with MFA is refused here (the login form
        and the API login run the code step themselves)."""
        result = login_service.check_password(username, password)
        if result.user is None or result.needs_code or login_service.mfa_blocks_api(result.user):
            return None
        login_service.finish_login(result.user)
        return result.user

    def add_user(
        self, username: str, first_name: str, last_name: str, email: str, *args: Any, **kwargs: Any
    ) -> Any:
        """FAB's add_user, with the password rule for a clear-text password (CLI, demo data)."""
        password = kwargs.get("password") or (args[1] if len(args) > 1 else "")
        if password and current_app.config.get("FAB_PASSWORD_COMPLEXITY_ENABLED"):
            problems = password_problems(password, username)
            if problems:
                raise PasswordComplexityValidationError("; ".join(problems))
        return super().add_user(username, first_name, last_name, email, *args, **kwargs)

    def _user_permissions(self, user: Any) -> set[tuple[str, str]]:
        """All (permission, view) pairs of a user, read once per request."""
        cache = request_cache("permissions")
        if user.id not in cache:
            cache[user.id] = self.get_user_permissions(user)
        return cache[user.id]

    def _has_view_access(self, user: object, permission_name: str, view_name: str) -> bool:
        return (permission_name, view_name) in self._user_permissions(user)

    def _get_user_permission_view_menus(
        self, user: object, permission_name: str, view_menus_name: list[str]
    ) -> set[str]:
        if user is None or not getattr(user, "is_authenticated", False):
            return super()._get_user_permission_view_menus(user, permission_name, view_menus_name)
        permissions = self._user_permissions(user)
        return {name for name in view_menus_name if (permission_name, name) in permissions}

    # --- built-in roles -----------------------------------------------------------------
    def sync_builtin_roles(self) -> None:
        """Create the built-in roles with their permissions, menus and default data scope.

        Permissions are stored in the database (not FAB_ROLES regexes) so an admin can change
        them in 设置 > 角色; running this again adds what a new version needs, removes nothing.
        """
        all_pvms = self.session.query(self.permissionview_model).all()
        menu_items = _menu_items(self.appbuilder)
        for role_name, rules in ROLE_PERMISSIONS.items():
            role = self.add_role(role_name)
            granted = {
                pvm
                for pvm in all_pvms
                for view_re, perm_re in rules
                if re.fullmatch(view_re, pvm.view_menu.name) and re.fullmatch(perm_re, pvm.permission.name)
            }
            listable = {pvm.view_menu.name for pvm in granted if pvm.permission.name == "can_list"}
            # a dashboard is a page, not a list: its menu entry follows can_show
            listable |= {
                pvm.view_menu.name
                for pvm in granted
                if pvm.permission.name == "can_show" and pvm.view_menu.name.endswith("DashboardView")
            }
            for item_name, category, view_name in menu_items:
                if view_name in listable:
                    for menu_name in (item_name, category):
                        if menu_name:
                            granted.add(self.add_permission_view_menu("menu_access", menu_name))
            for pvm in granted - set(role.permissions):
                role.permissions.append(pvm)
        admin = self.add_role(self.auth_role_admin)
        for pvm in set(all_pvms) - set(admin.permissions):
            admin.permissions.append(pvm)
        for role_name, scope in DEFAULT_ROLE_SCOPES.items():
            role = self.find_role(role_name)
            exists = self.session.scalar(
                select(RoleDataScope.id).where(RoleDataScope.role_id == role.id, RoleDataScope.entity == "*")
            )
            if role is not None and exists is None:
                self.session.add(RoleDataScope(role_id=role.id, entity="*", scope=scope))
        seed_default_rules(self.session)  # field permissions: finance fields, ID numbers (once)
        self.session.commit()


def _menu_items(appbuilder: Any) -> list[tuple[str, str, str]]:
    """(menu item, category, view permission name) for every menu entry with a view."""
    items = []
    for category in appbuilder.menu.get_list():
        for item in category.childs or [category]:
            baseview = getattr(item, "baseview", None)
            if baseview is not None:
                parent = category.name if item is not category else ""
                items.append((item.name, parent, baseview.class_permission_name))
    return items


class DepartmentService(RecordService):
    model = Department

    cleaners = {"name": text_up_to(100)}
    required = {"name": _("请填写部门名称")}

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        parent_id = values.get("parent_id")
        if pk is not None and parent_id is not None and parent_id in department_tree_ids(session, pk):
            errors.add("parent", gettext("上级部门不能是本部门或其下级部门"))


class RoleDataScopeService(RecordService):
    model = RoleDataScope
    choices = {"scope": DATA_SCOPES}

    cleaners = {"entity": lambda v: validators.clean_text(v, 50) or "*"}
    required = {"scope": _("请选择数据范围")}


class RoleMfaPolicyService(RecordService):
    """MFA 策略: one row per role."""

    model = RoleMfaPolicy

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        role_id = values.get("role_id")
        if role_id is None:
            errors.add("role", gettext("请选择角色"))
            return
        other = select(RoleMfaPolicy.id).where(RoleMfaPolicy.role_id == role_id)
        if pk is not None:
            other = other.where(RoleMfaPolicy.id != pk)
        if session.scalar(other) is not None:
            errors.add("role", gettext("该角色已有 MFA 策略，请编辑已有的那一条"))


def password_problems(password: str, username: str | None = None) -> list[str]:
    """What a password lacks: CRM_PASSWORD_MIN_LENGTH characters, CRM_PASSWORD_MIN_CLASSES of
    lower case, upper case, digits and symbols, and it must not contain the username (nor reversed)."""
    config = current_app.config
    problems = []
    min_length = int(config.get("CRM_PASSWORD_MIN_LENGTH", 10))
    min_classes = int(config.get("CRM_PASSWORD_MIN_CLASSES", 3))
    if len(password) < min_length:
        problems.append(gettext("密码至少 %(n)s 个字符", n=min_length))
    classes = sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )
    if classes < min_classes:
        problems.append(gettext("密码须包含小写字母、大写字母、数字、符号中的至少 %(n)s 类", n=min_classes))
    name, lowered = (username or "").strip().lower(), password.lower()
    if len(name) >= 3 and (name in lowered or name[::-1] in lowered):
        problems.append(gettext("密码不能包含用户名"))
    return problems


def _username_of_request() -> str | None:
    """Whose password a form or the user API is setting: the username typed in, the user being
    reset (?pk= or /users/<pk>), or oneself."""
    if not has_request_context():
        return None
    named = request.form.get("username")
    if not named and request.is_json:
        body = request.get_json(silent=True)
        named = body.get("username") if isinstance(body, dict) else None
    if named:
        return str(named)
    pk = request.args.get("pk") or (request.view_args or {}).get("pk")
    if pk is not None and str(pk).isdigit():
        user = current_app.appbuilder.sm.get_user_by_id(int(pk))
        return user.username if user else None
    user = getattr(g, "user", None)
    return getattr(user, "username", None) if user is not None and user.is_authenticated else None


def password_complexity(password: str) -> None:
    """FAB_PASSWORD_COMPLEXITY_VALIDATOR: every form and the user API that set a password."""
    problems = password_problems(password or "", _username_of_request())
    if problems:
        raise PasswordComplexityValidationError("; ".join(problems))


def generate_password(length: int = 16) -> str:
    """A random password that satisfies the complexity rule (upper, lower, digit, symbol)."""
    if has_app_context():
        length = max(length, int(current_app.config.get("CRM_PASSWORD_MIN_LENGTH", 10)) + 2)
    alphabet = string.ascii_letters + string.digits
    while True:
        core = "".join(secrets.choice(alphabet) for _ in range(length - 2))
        candidate = core + secrets.choice("!@#%^*-_") + secrets.choice(string.digits)
        if any(c.isupper() for c in candidate) and any(c.islower() for c in candidate):
            return candidate
