"""The login form with its MFA code step, and the API login that takes the code as `totp`.

Both call app/login.py, so lock-out, MFA and the audit trail are one implementation.
"""

from __future__ import annotations

import time
from typing import Any

from flask import flash, g, redirect, request, session, url_for
from flask_appbuilder.api import safe
from flask_appbuilder.const import API_SECURITY_ACCESS_TOKEN_KEY, API_SECURITY_REFRESH_TOKEN_KEY
from flask_appbuilder.security.api import SecurityApi
from flask_appbuilder.security.decorators import no_cache
from flask_appbuilder.security.forms import LoginForm_db
from flask_appbuilder.security.schemas import login_post
from flask_appbuilder.security.views import AuthDBView
from flask_appbuilder.utils.base import get_safe_redirect
from flask_appbuilder.views import expose
from flask_babel import gettext
from flask_jwt_extended import create_access_token, create_refresh_token
from flask_login import login_user
from marshmallow import ValidationError

from app import login as login_service
from app.extensions import db
from models.security import CrmUser


class CrmAuthDBView(AuthDBView):
    """Password, then (when the user has MFA) a code, then logged in."""

    code_template = "crm/login_code.html"

    @expose("/login/", methods=["GET", "POST"])
    @no_cache
    def login(self) -> Any:
        if g.user is not None and g.user.is_authenticated:
            return redirect(self._get_safe_next_url())
        form = LoginForm_db()
        if form.validate_on_submit():
            next_url = get_safe_redirect(request.args.get("next", ""))
            result = login_service.check_password(form.username.data, form.password.data)
            if result.user is None:
                flash(result.message or "", "warning")
                return self._login_page(form), 401
            if result.needs_code:
                session[login_service.PENDING] = {
                    "uid": result.user.id,
                    "until": int(time.time()) + login_service.PENDING_SECONDS,
                    "next": next_url,
                }
                return redirect(url_for(".code"))
            return self._complete(result.user, next_url, verified=False)
        return self._login_page(form)

    def _login_page(self, form: LoginForm_db) -> str:
        title = self.title
        return self.render_template(self.login_template, title=title, form=form, appbuilder=self.appbuilder)

    @expose("/login/code", methods=["GET", "POST"])
    @no_cache
    def code(self) -> Any:
        """The second step: a TOTP code or a recovery code."""
        pending = session.get(login_service.PENDING)
        user = db.session.get(CrmUser, pending["uid"]) if pending else None
        if user is None or pending["until"] < time.time():
            session.pop(login_service.PENDING, None)
            flash(gettext("登录已超时，请重新输入用户名和密码"), "warning")
            return redirect(self.appbuilder.get_url_for_login)
        status = 200
        if request.method == "POST":  # CSRFProtect has checked the form's token
            result = login_service.check_code(user, request.form.get("code"))
            if result.user is not None:
                session.pop(login_service.PENDING, None)
                return self._complete(user, pending.get("next") or "", verified=True)
            if result.locked:
                session.pop(login_service.PENDING, None)
                flash(result.message or "", "warning")
                return redirect(self.appbuilder.get_url_for_login)
            flash(result.message or "", "warning")
            status = 401
        title = gettext("双因素认证")
        return self.render_template(self.code_template, title=title, appbuilder=self.appbuilder), status

    def _complete(self, user: CrmUser, next_url: str, verified: bool) -> Any:
        locale = session.get("locale")
        session.clear()  # nothing from before the login survives into the logged-in session
        if locale:
            session["locale"] = locale
        session.permanent = True
        login_user(user, remember=False)
        if verified:
            session[login_service.VERIFIED] = True
        login_service.finish_login(user)
        return redirect(next_url or self.appbuilder.get_url_for_index)

    @expose("/logout/")
    def logout(self) -> Any:
        response = super().logout()
        session.clear()
        return response


class CrmSecurityApi(SecurityApi):
    """POST /api/v1/security/login: with MFA the body also needs `totp` (a code or a recovery
    code); a role that requires MFA gets no token until the user has enrolled."""

    @expose("/login", methods=["POST"])
    @safe
    def login(self) -> Any:
        if not request.is_json or not isinstance(request.json, dict):
            return self.response_400(message="Request payload is not JSON")
        payload = dict(request.json)
        code = payload.pop("totp", None) or payload.pop("code", None)
        payload.pop("totp", None)
        try:
            login_payload = login_post.load(payload)
        except ValidationError as error:
            return self.response_400(message=error.messages)
        if login_payload["provider"] != "db":
            return self.response_400(message=gettext("只支持 db 登录"))
        result = login_service.check_password(login_payload["username"], login_payload["password"])
        if result.user is None:
            return self.response_401_with(result.message)
        user = result.user
        if result.needs_code:
            if not code:
                message = gettext("该账户已启用双因素认证：请在 totp 字段提供认证器验证码或恢复码")
                return self.response_401_with(message, mfa_required=True)
            checked = login_service.check_code(user, str(code))
            if checked.user is None:
                return self.response_401_with(checked.message, mfa_required=True)
        elif login_service.mfa_blocks_api(user):
            return self.response(403, message=login_service.enrol_first_message())
        login_service.finish_login(user)
        resp = {API_SECURITY_ACCESS_TOKEN_KEY: create_access_token(identity=str(user.id), fresh=True)}
        if login_payload.get("refresh"):
            resp[API_SECURITY_REFRESH_TOKEN_KEY] = create_refresh_token(identity=str(user.id))
        return self.response(200, **resp)

    def response_401_with(self, message: str | None, **extra: Any) -> Any:
        return self.response(401, message=message or gettext("用户名或密码错误"), **extra)
