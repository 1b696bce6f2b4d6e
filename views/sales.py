"""Screens and REST APIs for selling: products, pipelines and stages, leads (with conversion),
opportunities, follow-ups and tasks. Rules live in app.sales; these stay declarative."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.api import expose as api_expose
from flask_appbuilder.security.decorators import permission_name, protect
from flask_babel import lazy_gettext as _

from app.access import current_actor
from app.extensions import db
from app.sales import convert_lead
from models.sales import Interaction, Lead, Opportunity, Pipeline, Product, Stage, StageChange, Task
from views.base import AssignableUserFilter, CrmInterface, CrmModelApi, CrmModelView, run_and_redirect
from views.widgets import customer_select

LABELS = {
    # shared
    "name": _("名称"),
    "customer": _("客户"),
    "contact": _("联系人"),
    "owner": _("负责人"),
    "department": _("所属部门"),
    "notes": _("备注"),
    "status": _("状态"),
    "created_at": _("创建时间"),
    "updated_at": _("更新时间"),
    # products
    "sku": _("产品编码"),
    "category": _("类别"),
    "unit": _("单位"),
    "price": _("单价 (元)"),
    "on_sale": _("在售"),
    "description": _("说明"),
    # pipelines and stages
    "pipeline": _("销售流程"),
    "stages": _("阶段"),
    "position": _("排序"),
    "active": _("启用"),
    "probability": _("赢率 (%)"),
    "is_won": _("赢单阶段"),
    "is_lost": _("输单阶段"),
    "allow_back": _("允许回退"),
    # leads
    "company": _("公司"),
    "title": _("职务"),
    "mobile": _("手机号"),
    "phone": _("电话"),
    "email": _("电子邮箱"),
    "source": _("来源"),
    "interest": _("意向"),
    "converted_at": _("转化时间"),
    # opportunities
    "stage": _("阶段"),
    "amount": _("预计金额 (元)"),
    "expected_close": _("预计成交日期"),
    "close_reason": _("赢单/输单原因"),
    "closed_at": _("关闭时间"),
    "products": _("意向产品"),
    "stage_changed_at": _("进入当前阶段"),
    "history": _("阶段记录"),
    # follow-ups and tasks
    "kind": _("方式"),
    "occurred_at": _("跟进时间"),
    "duration_minutes": _("时长 (分钟)"),
    "lead": _("线索"),
    "opportunity": _("商机"),
    "subject": _("主题"),
    "content": _("跟进内容"),
    "outcome": _("结果"),
    "next_contact_at": _("下次联系时间"),
    "participants": _("参与同事"),
    "contacts": _("参与联系人"),
    "due_at": _("截止时间"),
    "done_at": _("完成时间"),
    "from_stage": _("原阶段"),
    "to_stage": _("新阶段"),
    "changed_at": _("时间"),
    "changed_by": _("操作人"),
}
OWNER_CHOICES = {"owner": [["id", AssignableUserFilter, None]]}


def _customer_fields() -> dict[str, Any]:
    return {"customer": customer_select(LABELS["customer"])}


# --- products and pipelines ---------------------------------------------------------------------
PRODUCT_FIELDS = ["sku", "name", "category", "unit", "price", "on_sale", "description"]


class ProductView(CrmModelView):
    datamodel = CrmInterface(Product)
    list_title = _("产品")
    label_columns = LABELS
    list_columns = ["sku", "name", "category", "unit", "price", "on_sale"]
    show_columns = [*PRODUCT_FIELDS, "created_at", "updated_at"]
    add_columns = edit_columns = PRODUCT_FIELDS
    search_columns = ["sku", "name", "category", "on_sale"]
    order_columns = ["sku", "name", "category", "price"]
    base_order = ("sku", "asc")


STAGE_FIELDS = ["pipeline", "name", "position", "probability", "is_won", "is_lost", "allow_back"]


class StageView(CrmModelView):
    datamodel = CrmInterface(Stage)
    list_title = _("销售阶段")
    label_columns = LABELS
    list_columns = ["pipeline", "position", "name", "probability", "is_won", "is_lost", "allow_back"]
    show_columns = add_columns = edit_columns = STAGE_FIELDS
    search_columns = ["pipeline", "name"]
    base_order = ("position", "asc")


class PipelineView(CrmModelView):
    datamodel = CrmInterface(Pipeline)
    list_title = _("销售流程")
    label_columns = LABELS
    list_columns = ["position", "name", "description", "active"]
    show_columns = add_columns = edit_columns = ["name", "description", "position", "active"]
    base_order = ("position", "asc")
    related_views = [StageView]


# --- leads ---------------------------------------------------------------------------------------
LEAD_FIELDS = [
    "name",
    "company",
    "title",
    "mobile",
    "phone",
    "email",
    "source",
    "interest",
    "status",
    "owner",
    "notes",
]


class LeadView(CrmModelView):
    datamodel = CrmInterface(Lead)
    list_title = _("线索")
    label_columns = LABELS
    list_columns = ["name", "company", "mobile", "source", "status", "owner", "created_at"]
    show_columns = [*LEAD_FIELDS, "converted_at", "customer", "contact", "created_at"]
    add_columns = edit_columns = LEAD_FIELDS
    search_columns = ["name", "company", "mobile", "email", "source", "status", "owner"]
    order_columns = ["name", "company", "status", "created_at"]
    base_order = ("id", "desc")
    add_form_query_rel_fields = edit_form_query_rel_fields = OWNER_CHOICES

    @expose("/convert/<int:pk>", methods=["POST"])
    @has_access
    @permission_name("edit")
    def convert(self, pk: int) -> Any:
        """The convert button of a lead: attach to the customer the user chose, or create one."""
        lead = self.datamodel.get(pk, self._base_filters)
        if lead is None:
            flash(str(_("线索不存在或您无权访问")), "danger")
            return redirect(url_for(".list"))
        chosen = request.form.get("customer_id", type=int)
        work = lambda: convert_lead(db.session, lead, current_actor(), customer_id=chosen)  # noqa: E731
        to_customer = lambda created: url_for("CustomerView.show", pk=created["customer_id"])  # noqa: E731
        return run_and_redirect(work, str(_("线索已转化")), to_customer, url_for(".show", pk=pk))


# --- opportunities -------------------------------------------------------------------------------
OPPORTUNITY_FIELDS = [
    "name",
    "customer",
    "contact",
    "pipeline",
    "stage",
    "amount",
    "expected_close",
    "probability",
    "products",
    "owner",
    "close_reason",
]


class StageChangeView(CrmModelView):
    datamodel = CrmInterface(StageChange)
    list_title = _("阶段记录")
    base_permissions = ["can_list", "can_show"]
    label_columns = LABELS
    list_columns = ["opportunity", "from_stage", "to_stage", "changed_at", "changed_by"]
    base_order = ("id", "desc")


class OpportunityView(CrmModelView):
    datamodel = CrmInterface(Opportunity)
    list_title = _("商机")
    label_columns = LABELS
    list_columns = ["name", "customer", "stage", "amount", "expected_close", "owner", "status"]
    show_columns = [*OPPORTUNITY_FIELDS, "status", "closed_at", "stage_changed_at", "created_at"]
    add_columns = edit_columns = OPPORTUNITY_FIELDS
    search_columns = ["name", "customer", "pipeline", "stage", "status", "owner", "expected_close", "amount"]
    order_columns = ["name", "amount", "expected_close", "updated_at"]
    base_order = ("id", "desc")
    add_form_extra_fields = edit_form_extra_fields = _customer_fields()
    add_form_query_rel_fields = edit_form_query_rel_fields = OWNER_CHOICES
    related_views = [StageChangeView]


# --- follow-ups and tasks ------------------------------------------------------------------------
INTERACTION_FIELDS = [
    "kind",
    "occurred_at",
    "duration_minutes",
    "customer",
    "contact",
    "opportunity",
    "subject",
    "content",
    "outcome",
    "next_contact_at",
    "participants",
    "contacts",
]


class InteractionView(CrmModelView):
    datamodel = CrmInterface(Interaction)
    list_title = _("跟进记录")
    label_columns = LABELS
    list_columns = ["occurred_at", "kind", "customer", "subject", "owner", "next_contact_at"]
    show_columns = [*INTERACTION_FIELDS, "owner", "created_at"]
    add_columns = edit_columns = INTERACTION_FIELDS
    search_columns = ["kind", "customer", "occurred_at", "next_contact_at", "owner"]
    order_columns = ["occurred_at", "next_contact_at"]
    base_order = ("occurred_at", "desc")
    add_form_extra_fields = edit_form_extra_fields = _customer_fields()


TASK_FIELDS = ["title", "due_at", "status", "owner", "customer", "opportunity", "notes"]


class TaskView(CrmModelView):
    datamodel = CrmInterface(Task)
    list_title = _("任务")
    label_columns = {**LABELS, "title": _("任务")}
    list_columns = ["title", "due_at", "status", "owner", "customer"]
    show_columns = [*TASK_FIELDS, "done_at", "created_at"]
    add_columns = edit_columns = TASK_FIELDS
    search_columns = ["title", "status", "due_at", "owner", "customer"]
    order_columns = ["due_at", "status"]
    base_order = ("due_at", "asc")
    add_form_extra_fields = edit_form_extra_fields = _customer_fields()
    add_form_query_rel_fields = edit_form_query_rel_fields = OWNER_CHOICES


# --- REST ----------------------------------------------------------------------------------------
class ProductApi(CrmModelApi):
    resource_name = "product"
    datamodel = CrmInterface(Product)
    list_columns = show_columns = ["id", *PRODUCT_FIELDS, "custom", "updated_at"]
    add_columns = edit_columns = [*PRODUCT_FIELDS, "custom"]
    order_columns = ["id", "sku", "name", "price"]
    search_columns = ["sku", "name", "category", "on_sale"]


class PipelineApi(CrmModelApi):
    resource_name = "pipeline"
    datamodel = CrmInterface(Pipeline)
    list_columns = show_columns = [
        "id",
        "name",
        "description",
        "position",
        "active",
        "stages.id",
        "stages.name",
    ]
    add_columns = edit_columns = ["name", "description", "position", "active"]
    order_columns = ["id", "position", "name"]


class StageApi(CrmModelApi):
    resource_name = "stage"
    datamodel = CrmInterface(Stage)
    list_columns = show_columns = ["id", "pipeline.id", "pipeline.name", *STAGE_FIELDS[1:]]
    add_columns = edit_columns = STAGE_FIELDS
    order_columns = ["id", "position"]
    search_columns = ["pipeline", "name"]


class LeadApi(CrmModelApi):
    resource_name = "lead"
    datamodel = CrmInterface(Lead)
    list_columns = ["id", "name", "company", "mobile", "email", "source", "status", "owner.id", "created_at"]
    show_columns = [
        "id",
        *[f for f in LEAD_FIELDS if f != "owner"],
        "owner.id",
        "owner.username",
        "converted_at",
        "customer.id",
        "contact.id",
        "opportunity_id",
        "custom",
        "created_at",
    ]
    add_columns = edit_columns = [*LEAD_FIELDS, "custom"]
    order_columns = ["id", "name", "status", "created_at"]
    search_columns = ["name", "company", "mobile", "email", "source", "status", "owner"]
    add_query_rel_fields = edit_query_rel_fields = OWNER_CHOICES

    @api_expose("/<int:pk>/convert", methods=["POST"])
    @protect()
    @permission_name("put")
    def convert(self, pk: int) -> Any:
        """Convert a lead into customer, contact and opportunity.
        ---
        post:
          parameters:
          - {in: path, name: pk, schema: {type: integer}}
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    customer_id: {type: integer, description: attach to this existing customer}
                    create_opportunity: {type: boolean, default: true}
                    opportunity_name: {type: string}
                    pipeline_id: {type: integer}
                    amount: {type: number}
                    expected_close: {type: string, format: date}
          responses:
            200: {description: 'the ids created or used: customer_id, contact_id, opportunity_id'}
            400: {$ref: '#/components/responses/400'}
            404: {$ref: '#/components/responses/404'}
            409: {description: 'similar customers exist: candidates lists their ids; send customer_id'}
        """
        lead = self.datamodel.get(pk, self._base_filters)
        if lead is None:
            return self.response_404()
        body = request.get_json(silent=True) or {}
        if not isinstance(body, dict):
            return self.response_400(message="Request is not a JSON object")
        return self.answer(
            lambda: convert_lead(
                db.session,
                lead,
                current_actor(),
                customer_id=body.get("customer_id"),
                create_opportunity=bool(body.get("create_opportunity", True)),
                opportunity_name=body.get("opportunity_name"),
                pipeline_id=body.get("pipeline_id"),
                amount=body.get("amount"),
                expected_close=body.get("expected_close"),
            ),
            lambda created: self.response(200, result=created),
        )


class OpportunityApi(CrmModelApi):
    resource_name = "opportunity"
    datamodel = CrmInterface(Opportunity)
    defaulted_columns = ("pipeline", "stage")  # the first active pipeline, its first stage
    list_columns = [
        "id",
        "name",
        "customer.id",
        "customer.name",
        "pipeline.id",
        "stage.id",
        "stage.name",
        "amount",
        "expected_close",
        "status",
        "owner.id",
        "updated_at",
    ]
    show_columns = [
        *list_columns,
        "contact.id",
        "probability",
        "effective_probability",
        "products.id",
        "close_reason",
        "closed_at",
        "stage_changed_at",
        "custom",
        "created_at",
    ]
    add_columns = edit_columns = [*OPPORTUNITY_FIELDS, "custom"]
    order_columns = ["id", "name", "amount", "expected_close", "updated_at"]
    search_columns = ["name", "customer", "pipeline", "stage", "status", "owner", "expected_close", "amount"]
    add_query_rel_fields = edit_query_rel_fields = OWNER_CHOICES


class InteractionApi(CrmModelApi):
    resource_name = "interaction"
    datamodel = CrmInterface(Interaction)
    list_columns = [
        "id",
        "kind",
        "occurred_at",
        "customer.id",
        "customer.name",
        "subject",
        "owner_id",
        "next_contact_at",
    ]
    show_columns = [
        *list_columns,
        "duration_minutes",
        "contact.id",
        "lead.id",
        "opportunity.id",
        "content",
        "outcome",
        "participants.id",
        "contacts.id",
        "custom",
        "created_at",
    ]
    add_columns = edit_columns = [*INTERACTION_FIELDS, "lead", "custom"]
    order_columns = ["id", "occurred_at", "next_contact_at"]
    search_columns = ["kind", "customer", "contact", "opportunity", "lead", "occurred_at", "next_contact_at"]


class TaskApi(CrmModelApi):
    resource_name = "task"
    datamodel = CrmInterface(Task)
    list_columns = ["id", "title", "due_at", "status", "owner.id", "customer.id", "lead.id", "opportunity.id"]
    show_columns = [
        *list_columns,
        "notes",
        "done_at",
        "reminded_at",
        "interaction.id",
        "custom",
        "created_at",
    ]
    add_columns = edit_columns = [*TASK_FIELDS, "lead", "custom"]
    order_columns = ["id", "due_at", "status"]
    search_columns = ["title", "status", "due_at", "owner", "customer", "lead", "opportunity"]
    add_query_rel_fields = edit_query_rel_fields = OWNER_CHOICES


class StageChangeApi(CrmModelApi):
    """The stage history, read-only (funnel and velocity analytics)."""

    resource_name = "stage_change"
    datamodel = CrmInterface(StageChange)
    base_permissions = ["can_get", "can_info"]
    list_columns = show_columns = [
        "id", "opportunity.id", "from_stage.id", "from_stage.name", "to_stage.id", "to_stage.name",
        "changed_at", "changed_by.id",
    ]  # fmt: skip
    order_columns = ["id", "changed_at"]
    search_columns = ["opportunity", "changed_at"]
