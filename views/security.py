"""Settings screens for the organisation (departments, each role's data scope, MFA per role) and
the personal security pages (MFA enrolment, API tokens)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import flash, redirect, request, session, url_for
from flask_appbuilder import AppBuilder, BaseView, expose
from flask_babel import gettext, lazy_pgettext
from flask_babel import lazy_gettext as _
from flask_login import current_user
from wtforms.validators import DataRequired

from app import login as login_service
from app import mfa, tokens
from app.errors import DomainError
from app.extensions import db
from models.base import utcnow
from models.security import (
    DATA_SCOPES,
    TOKEN_SCOPES,
    CrmUser,
    Department,
    RoleDataScope,
    RoleMfaPolicy,
)
from views.base import CrmInterface, CrmModelApi, CrmModelView


class DepartmentView(CrmModelView):
    datamodel = CrmInterface(Department)
    list_title = lazy_pgettext("plural", "部门")
    label_columns = {
        "name": _("部门名称"),
        "parent": _("上级部门"),
        "leader": _("负责人"),
        "position": _("排序"),
        "children": _("下级部门"),
    }
    list_columns = ["name", "parent", "leader", "position"]
    show_columns = ["name", "parent", "leader", "children", "position"]
    add_columns = edit_columns = ["name", "parent", "leader", "position"]
    base_order = ("position", "asc")


class RoleDataScopeView(CrmModelView):
    """数据权限: which rows each role sees ('*' = every entity unless overridden)."""

    datamodel = CrmInterface(RoleDataScope)
    list_title = _("数据权限")
    label_columns = {"role": _("角色"), "entity": _("对象 (* 为全部)"), "scope": _("数据范围")}
    list_columns = add_columns = edit_columns = ["role", "entity", "scope"]
    formatters_columns = {"scope": DATA_SCOPES.label}


class DepartmentApi(CrmModelApi):
    resource_name = "department"
    datamodel = CrmInterface(Department)
    list_columns = show_columns = ["id", "name", "parent_id", "leader_id", "position"]
    add_columns = edit_columns = ["name", "parent", "leader", "position"]


class RoleDataScopeApi(CrmModelApi):
    resource_name = "data_scope"
    datamodel = CrmInterface(RoleDataScope)
    list_columns = show_columns = ["id", "role.id", "role.name", "entity", "scope"]
    add_columns = edit_columns = ["role", "entity", "scope"]


# --- 个人中心: MFA and API tokens; 设置: MFA per role -----------------------------------------
def _signed_in(view: Callable[..., Any]) -> Callable[..., Any]:
    """Self-service security pages: any logged-in user (no role permission needed, so a user
    whom a role forces to enrol can always reach them)."""

    @functools.wraps(view)
    def wrapped(self: BaseView, *args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return redirect(self.appbuilder.get_url_for_login_with(request.full_path))
        return view(self, *args, **kwargs)

    return wrapped


class MfaView(BaseView):
    """双因素认证: enrol with a QR code, confirm with a code, recovery codes, disable."""

    route_base = "/mfa"
    default_view = "index"

    def _page(self, status: int = 200, **extra: Any) -> Any:
        user = db.session.get(CrmUser, current_user.id)
        enrolled = mfa.has_mfa(db.session, user.id)
        context: dict[str, Any] = {
            "enrolled": enrolled,
            "required": mfa.mfa_required(db.session, user),
            "remaining": mfa.remaining_recovery_codes(db.session, user.id) if enrolled else 0,
        }
        if not enrolled and not extra.get("recovery_codes"):
            pending = mfa.start_enrolment(db.session, user)
            db.session.commit()
            context["secret"] = pending.secret
            context["qr_svg"] = mfa.qr_svg(mfa.provisioning_uri(user, pending.secret))
        context.update(extra)
        return self.render_template("crm/mfa.html", title=_("双因素认证"), **context), status

    @expose("/")
    @_signed_in
    def index(self) -> Any:
        return self._page()

    @expose("/confirm", methods=["POST"])
    @_signed_in
    def confirm(self) -> Any:
        user = db.session.get(CrmUser, current_user.id)
        try:
            codes = mfa.confirm_enrolment(db.session, user, request.form.get("code", ""))
        except DomainError as exc:
            db.session.rollback()
            return self._page(exc.status, errors=exc.errors)
        db.session.commit()
        session[login_service.VERIFIED] = True  # this session proved the code just now
        return self._page(recovery_codes=codes, enrolled=True)

    @expose("/recovery", methods=["POST"])
    @_signed_in
    def recovery(self) -> Any:
        """New recovery codes (the old ones stop working); needs a current code."""
        user = db.session.get(CrmUser, current_user.id)
        if not mfa.verify_code(db.session, user, request.form.get("code")):
            db.session.rollback()
            return self._page(400, errors={"code": [gettext("验证码或恢复码不正确")]})
        codes = mfa.new_recovery_codes(db.session, user.id)
        db.session.commit()
        return self._page(recovery_codes=codes, enrolled=True)

    @expose("/disable", methods=["POST"])
    @_signed_in
    def disable(self) -> Any:
        user = db.session.get(CrmUser, current_user.id)
        try:
            mfa.disable(db.session, user, request.form.get("password", ""), request.form.get("code", ""))
        except DomainError as exc:
            db.session.rollback()
            return self._page(exc.status, errors=exc.errors)
        db.session.commit()
        session.pop(login_service.VERIFIED, None)
        flash(gettext("双因素认证已停用"), "success")
        return redirect(url_for("MfaView.index"))


class ApiTokenView(BaseView):
    """API 令牌: the user's own tokens; a new token is shown once."""

    route_base = "/api-tokens"
    default_view = "index"

    def _page(self, status: int = 200, **extra: Any) -> Any:
        context = {
            "tokens": tokens.user_tokens(db.session, current_user.id),
            "scopes": TOKEN_SCOPES.options(),
            "scope_label": TOKEN_SCOPES.label,
            "now": utcnow(),
            **extra,
        }
        return self.render_template("crm/tokens.html", title=_("API 令牌"), **context), status

    @expose("/")
    @_signed_in
    def index(self) -> Any:
        return self._page()

    @expose("/create", methods=["POST"])
    @_signed_in
    def create(self) -> Any:
        user = db.session.get(CrmUser, current_user.id)
        form = request.form
        try:
            _token, raw = tokens.create_token(
                db.session, user, form.get("name"), form.get("scope"), form.get("expires_days")
            )
        except DomainError as exc:
            db.session.rollback()
            return self._page(exc.status, errors=exc.errors)
        db.session.commit()
        return self._page(201, new_token=raw)

    @expose("/<int:token_id>/revoke", methods=["POST"])
    @_signed_in
    def revoke(self, token_id: int) -> Any:
        user = db.session.get(CrmUser, current_user.id)
        try:
            tokens.revoke_token(db.session, user, token_id)
        except DomainError as exc:
            db.session.rollback()
            return self._page(exc.status, errors=exc.errors)
        db.session.commit()
        flash(gettext("令牌已吊销"), "success")
        return redirect(url_for("ApiTokenView.index"))


class RoleMfaPolicyView(CrmModelView):
    """MFA 策略: which roles must use MFA (the users are led to enrol at their next request)."""

    datamodel = CrmInterface(RoleMfaPolicy)
    list_title = _("MFA 策略")
    label_columns = {"role": _("角色"), "required": _("必须启用双因素认证")}
    list_columns = add_columns = edit_columns = ["role", "required"]
    validators_columns = {"role": [DataRequired()]}


def register(appbuilder: AppBuilder) -> None:
    """The personal security pages (个人中心) and the MFA policy screen (设置)."""
    appbuilder.add_view(
        RoleMfaPolicyView,
        "MFA policies",
        label=_("MFA 策略"),
        icon="fa-shield",
        category="Settings",
        category_label=_("设置"),
        category_icon="fa-cogs",
    )
    appbuilder.add_view_no_menu(MfaView)
    appbuilder.add_view_no_menu(ApiTokenView)
    for name, label, endpoint, icon in PERSONAL_LINKS:
        appbuilder.add_link(
            name,
            href=f"/{endpoint}/",
            label=label,
            icon=icon,
            category=PERSONAL,
            category_label=_("个人中心"),
            category_icon="fa-user-circle",
        )


PERSONAL = "Personal"
#: (menu name, label, route, icon) of the self-service pages every role reaches
PERSONAL_LINKS = [
    ("Two-factor authentication", _("双因素认证"), "mfa", "fa-shield"),
    ("API tokens", _("API 令牌"), "api-tokens", "fa-key"),
]
