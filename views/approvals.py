"""Screens and REST APIs of approvals: the requests (审批) with their decisions and the approve /
reject / send-back actions, and the flows with their steps (设置 > 审批流程, admins).

Which requests a user sees is data scope plus "waiting for me or decided by me", one rule in
app.approvals registered with app.access, so the screens and the API share it; whether a user
may decide is the engine's rule too (403 unless they are a waiting approver).
"""

from __future__ import annotations

import json
from typing import Any

from flask import flash, redirect, request, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.api import expose as api_expose
from flask_appbuilder.security.decorators import permission_name, protect
from flask_appbuilder.security.sqla.models import Role
from flask_babel import gettext, lazy_pgettext
from flask_babel import lazy_gettext as _
from sqlalchemy import select
from wtforms import SelectField, TextAreaField

from app.access import current_actor
from app.approvals import decide, is_waiting_approver
from app.extensions import db
from models.approvals import (
    APPROVAL_DOCUMENTS,
    DECISIONS,
    REQUEST_STATUSES,
    ApprovalDecision,
    ApprovalFlow,
    ApprovalRequest,
    ApprovalStep,
)
from views.base import CrmInterface, CrmModelApi, CrmModelView, run_and_redirect

LABELS = {
    "name": _("名称"),
    "document": _("单据类型"),
    "active": _("启用"),
    "position": _("排序"),
    "conditions": _("适用条件"),
    "description": _("说明"),
    "steps": _("审批步骤"),
    "flow": _("审批流程"),
    "approver_kind": _("审批人"),
    "levels": _("上级层数"),
    "role_id": _("审批角色"),
    "user": _("指定人员"),
    "mode": _("审批方式"),
    "title": _("审批事项"),
    "amount": _("金额 (元)"),
    "status": _("状态"),
    "owner": _("提交人"),
    "submitted_at": _("提交时间"),
    "closed_at": _("结束时间"),
    "current_step": _("当前步骤"),
    "request": _("审批"),
    "step": _("步骤"),
    "approver": _("审批人"),
    "decision": _("意见"),
    "comment": _("理由/备注"),
    "decided_at": _("处理时间"),
}
CONDITIONS_HELP = _(
    '每个条件: {"field": 字段, "op": eq/neq/gt/gte/lt/lte/in, "value": 值}; 全部满足时适用本流程。'
    '字段可以是单据的字段 (如 total_amount、max_discount_percent) 或 "custom.<自定义字段API名>"'
)


class ConditionsField(TextAreaField):
    """A flow's conditions typed as JSON; each condition is checked by the flow's service."""

    def _value(self) -> str:
        if self.raw_data:
            return self.raw_data[0]
        return json.dumps(self.data or [], ensure_ascii=False)

    def process_formdata(self, valuelist: list[Any]) -> None:
        text = (valuelist[0] if valuelist else "").strip()
        try:
            self.data = json.loads(text) if text else []
        except ValueError as exc:
            self.data = None
            raise ValueError(gettext("不是有效的 JSON")) from exc


def _role_options(form: Any = None, field: Any = None) -> list[tuple[str, str]]:
    roles = db.session.execute(select(Role.id, Role.name).order_by(Role.name)).all()
    return [("", "—"), *[(str(role_id), name) for role_id, name in roles]]


def _optional_int(value: Any) -> int | None:
    return int(value) if value not in (None, "", "None") else None


def _choice_label(choices: Any) -> Any:
    return lambda value: choices.label(value)


# --- configuration -----------------------------------------------------------------------------------
STEP_FIELDS = ["flow", "position", "name", "approver_kind", "levels", "role_id", "user", "mode"]


class ApprovalStepView(CrmModelView):
    datamodel = CrmInterface(ApprovalStep)
    list_title = _("审批步骤")
    label_columns = LABELS
    list_columns = ["flow", "position", "name", "approver_kind", "levels", "user", "mode"]
    show_columns = add_columns = edit_columns = STEP_FIELDS
    base_order = ("position", "asc")
    description_columns = {
        "approver_kind": _("直属上级、多级上级 (填上级层数)、部门负责人、角色 (选角色) 或指定人员"),
        "mode": _("会签: 全部同意才通过; 或签: 一人同意即通过"),
    }
    add_form_extra_fields = edit_form_extra_fields = {
        "role_id": SelectField(LABELS["role_id"], choices=_role_options, coerce=_optional_int)
    }


class ApprovalFlowView(CrmModelView):
    datamodel = CrmInterface(ApprovalFlow)
    list_title = _("审批流程")
    label_columns = LABELS
    list_columns = ["position", "name", "document", "active", "description"]
    show_columns = add_columns = edit_columns = [
        "name",
        "document",
        "position",
        "active",
        "conditions",
        "description",
    ]
    base_order = ("position", "asc")
    description_columns = {"conditions": CONDITIONS_HELP}
    add_form_extra_fields = edit_form_extra_fields = {
        "conditions": ConditionsField(LABELS["conditions"], description=CONDITIONS_HELP)
    }
    formatters_columns = {"conditions": lambda value: json.dumps(value or [], ensure_ascii=False)}
    related_views = [ApprovalStepView]


# --- requests and decisions ----------------------------------------------------------------------------
class ApprovalDecisionView(CrmModelView):
    datamodel = CrmInterface(ApprovalDecision)
    list_title = _("审批记录")
    base_permissions = ["can_list", "can_show"]
    label_columns = LABELS
    list_columns = ["request", "step", "approver", "decision", "comment", "decided_at"]
    show_columns = list_columns
    base_order = ("id", "asc")
    formatters_columns = {"decision": _choice_label(DECISIONS)}


class ApprovalRequestView(CrmModelView):
    """审批: what waits for me, what I decided and my own requests; decide on the detail page."""

    datamodel = CrmInterface(ApprovalRequest)
    list_title = lazy_pgettext("plural", "审批")
    base_permissions = ["can_list", "can_show", "can_decide"]
    label_columns = LABELS
    list_columns = ["title", "document", "amount", "status", "owner", "submitted_at", "closed_at"]
    show_columns = [*list_columns, "flow", "current_step"]
    search_columns = ["title", "document", "status", "owner", "submitted_at"]
    order_columns = ["submitted_at", "amount", "status"]
    base_order = ("submitted_at", "desc")
    formatters_columns = {
        "status": _choice_label(REQUEST_STATUSES),
        "document": _choice_label(APPROVAL_DOCUMENTS),
    }
    related_views = [ApprovalDecisionView]
    show_template = "crm/approval_show.html"

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk: Any) -> Any:
        """The request with its decisions; the decide form when the user is waiting to decide."""
        widgets = self._show(pk)  # 404 outside the user's scope
        actor = current_actor()
        return self.render_template(
            self.show_template,
            pk=pk,
            title=self.show_title,
            widgets=widgets,
            related_views=self._related_views,
            can_decide=actor is not None and is_waiting_approver(db.session, int(pk), actor),
        )

    @expose("/decide/<int:pk>", methods=["POST"])
    @has_access
    @permission_name("decide")
    def decide(self, pk: int) -> Any:
        """The approve / reject / send-back buttons of the detail page."""
        if self.datamodel.get(pk, self._base_filters) is None:
            flash(str(_("审批不存在或您无权访问")), "danger")
            return redirect(url_for(".list"))
        action, comment = request.form.get("action", ""), request.form.get("comment")
        work = lambda: decide(db.session, pk, current_actor(), action, comment)  # noqa: E731
        return run_and_redirect(work, str(_("已处理")), url_for(".show", pk=pk))


# --- REST ------------------------------------------------------------------------------------------------
REQUEST_COLUMNS = [
    "id",
    "title",
    "document",
    "document_id",
    "amount",
    "status",
    "current_step",
    "flow.id",
    "flow.name",
    "owner.id",
    "submitted_at",
    "closed_at",
]


class ApprovalRequestApi(CrmModelApi):
    """审批 requests: read, and decide with approve / reject / return (send back)."""

    resource_name = "approval"
    datamodel = CrmInterface(ApprovalRequest)
    base_permissions = ["can_get", "can_info", "can_decide"]
    list_columns = REQUEST_COLUMNS
    show_columns = [
        *REQUEST_COLUMNS,
        "decisions.id",
        "decisions.step",
        "decisions.approver_id",
        "decisions.decision",
        "decisions.comment",
        "decisions.decided_at",
    ]
    order_columns = ["id", "submitted_at", "amount", "status"]
    search_columns = ["title", "document", "document_id", "status", "owner", "submitted_at"]

    def _decide(self, pk: int, action: str) -> Any:
        if self.datamodel.get(pk, self._base_filters) is None:
            return self.response_404()
        body = request.get_json(silent=True) or {}
        if not isinstance(body, dict):
            return self.response_400(message="Request is not a JSON object")
        comment = body.get("comment", body.get("reason"))
        if comment is not None and not isinstance(comment, str):
            return self.response_400(message={"comment": [gettext("应为文本")]})
        return self.answer(
            lambda: decide(db.session, pk, current_actor(), action, comment),
            lambda decided: self.response(200, result={"id": decided.id, "status": decided.status}),
        )

    @api_expose("/<int:pk>/approve", methods=["POST"])
    @protect()
    @permission_name("decide")
    def approve(self, pk: int) -> Any:
        """Approve (同意) as a waiting approver.
        ---
        post:
          parameters:
          - {in: path, name: pk, schema: {type: integer}}
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {comment: {type: string}}}
          responses:
            200: {description: 'the request id and its status after the decision'}
            403: {description: 'not a waiting approver of the current step'}
            404: {$ref: '#/components/responses/404'}
            409: {description: 'already decided, or the request is closed'}
        """
        return self._decide(pk, "approve")

    @api_expose("/<int:pk>/reject", methods=["POST"])
    @protect()
    @permission_name("decide")
    def reject(self, pk: int) -> Any:
        """Reject (驳回) with a reason: the request ends, the document is rejected.
        ---
        post:
          parameters:
          - {in: path, name: pk, schema: {type: integer}}
          requestBody:
            content:
              application/json:
                schema: {type: object, required: [comment], properties: {comment: {type: string}}}
          responses:
            200: {description: 'the request id and its status after the decision'}
            400: {$ref: '#/components/responses/400'}
            403: {description: 'not a waiting approver of the current step'}
            404: {$ref: '#/components/responses/404'}
            409: {description: 'already decided, or the request is closed'}
        """
        return self._decide(pk, "reject")

    @api_expose("/<int:pk>/return", methods=["POST"])
    @protect()
    @permission_name("decide")
    def send_back(self, pk: int) -> Any:
        """Send back (退回) with a reason: the submitter changes the document and submits again.
        ---
        post:
          parameters:
          - {in: path, name: pk, schema: {type: integer}}
          requestBody:
            content:
              application/json:
                schema: {type: object, required: [comment], properties: {comment: {type: string}}}
          responses:
            200: {description: 'the request id and its status after the decision'}
            400: {$ref: '#/components/responses/400'}
            403: {description: 'not a waiting approver of the current step'}
            404: {$ref: '#/components/responses/404'}
            409: {description: 'already decided, or the request is closed'}
        """
        return self._decide(pk, "return")


class ApprovalDecisionApi(CrmModelApi):
    """Every decision taken, read-only (follows its request's visibility)."""

    resource_name = "approval_decision"
    datamodel = CrmInterface(ApprovalDecision)
    base_permissions = ["can_get", "can_info"]
    list_columns = show_columns = [
        "id",
        "request.id",
        "step",
        "approver_id",
        "decision",
        "comment",
        "decided_at",
    ]
    order_columns = ["id", "decided_at"]
    search_columns = ["request", "decision", "approver"]


class ApprovalFlowApi(CrmModelApi):
    resource_name = "approval_flow"
    datamodel = CrmInterface(ApprovalFlow)
    list_columns = show_columns = [
        "id",
        "name",
        "document",
        "position",
        "active",
        "conditions",
        "description",
        "steps.id",
        "steps.position",
        "steps.approver_kind",
        "steps.mode",
    ]
    add_columns = edit_columns = ["name", "document", "position", "active", "conditions", "description"]
    order_columns = ["id", "position", "name"]
    search_columns = ["name", "document", "active"]


class ApprovalStepApi(CrmModelApi):
    resource_name = "approval_step"
    datamodel = CrmInterface(ApprovalStep)
    list_columns = show_columns = [
        "id",
        "flow.id",
        "position",
        "name",
        "approver_kind",
        "levels",
        "role_id",
        "user.id",
        "mode",
    ]
    add_columns = edit_columns = STEP_FIELDS
    order_columns = ["id", "position"]
    search_columns = ["flow", "approver_kind"]
