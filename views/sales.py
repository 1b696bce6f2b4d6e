"""Screens and REST APIs for selling: products, pipelines and stages, leads (with conversion),
opportunities, follow-ups and tasks. Rules live in app.sales; these stay declarative."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.actions import action
from flask_appbuilder.api import expose as api_expose
from flask_appbuilder.security.decorators import permission_name, protect
from flask_babel import lazy_gettext as _
from flask_babel import lazy_pgettext
from sqlalchemy import select

from app.access import assignable_user_ids, current_actor
from app.errors import DomainError
from app.extensions import db
from app.sales import (
    active_pipelines,
    assign_leads,
    conversion_candidates,
    convert_lead,
    default_pipeline_id,
    ensure_convertible,
    move_opportunities,
)
from models.sales import Interaction, Lead, Opportunity, Pipeline, Product, Stage, StageChange, Task
from models.security import CrmUser
from views.base import AssignableUserFilter, CrmInterface, CrmModelApi, CrmModelView
from views.widgets import customer_select, remote_select

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


def _customer_and_lead_fields() -> dict[str, Any]:
    """A follow-up's or task's customer and lead, each picked by typing (large tables)."""
    return {**_customer_fields(), "lead": remote_select(LABELS["lead"], Lead)}


def _selected(items: Any) -> list[Any]:
    """The records an action got: one from a show page, a list from the list's checkboxes."""
    return [item for item in (items if isinstance(items, list) else [items]) if item is not None]


def _refused(exc: DomainError) -> int:
    """Flash a service's refusal (rolled back) and give its status for the re-rendered form."""
    db.session.rollback()
    flash(exc.summary(), "warning")
    return exc.status


def _choose_one(items: Any, endpoint: str, message: Any) -> Any:
    """A single-record action of the list: to its form when exactly one record was selected."""
    chosen = _selected(items)
    if len(chosen) != 1:
        flash(str(message), "warning")
        return redirect(url_for(".list"))
    return redirect(url_for(endpoint, pk=chosen[0].id))


# --- products and pipelines ---------------------------------------------------------------------
PRODUCT_FIELDS = ["sku", "name", "category", "unit", "price", "on_sale", "description"]


class ProductView(CrmModelView):
    datamodel = CrmInterface(Product)
    list_title = lazy_pgettext("plural", "产品")
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
    method_permission_name = {"move_action": "edit", "move_form": "edit"}

    @action("move_action", _("迁移商机到..."), None, "fa-exchange")
    def move_action(self, items: Any) -> Any:
        return _choose_one(items, ".move_form", _("请只选择一个阶段"))

    @expose("/move/<int:pk>", methods=["GET", "POST"])
    @has_access
    def move_form(self, pk: int) -> Any:
        """Move every opportunity of this stage to another stage of its pipeline (app.sales
        move_opportunities), so that the stage can be deleted."""
        stage = self.datamodel.get(pk, self._base_filters)
        if stage is None:
            abort(404)
        status = 200
        if request.method == "POST":
            target = db.session.get(Stage, request.form.get("target_id", type=int) or 0)
            try:
                moved = move_opportunities(db.session, stage, target, current_actor())
            except DomainError as exc:
                status = _refused(exc)
            else:
                message = _("已把 %(n)s 个商机迁移到「%(stage)s」", n=moved, stage=target.name)
                flash(str(message), "success")
                return redirect(url_for(".show", pk=pk))
        others = select(Stage).where(Stage.pipeline_id == stage.pipeline_id, Stage.id != stage.id)
        choices = [(s.id, s.name) for s in db.session.scalars(others.order_by(Stage.position))]
        page = self.render_template(
            "crm/sales_choose.html",
            title=_("迁移商机到..."),
            intro=_("把阶段「%(stage)s」(%(pipeline)s) 中的商机全部迁移到:", stage=stage.name,
                    pipeline=stage.pipeline.name),
            names=[],
            ids=[],
            field="target_id",
            label=_("目标阶段"),
            choices=choices,
            chosen=request.form.get("target_id", type=int),
            back=url_for(".show", pk=pk),
        )  # fmt: skip
        return page, status


class PipelineView(CrmModelView):
    datamodel = CrmInterface(Pipeline)
    list_title = _("销售流程")
    label_columns = LABELS
    list_columns = ["position", "name", "description", "active"]
    show_columns = add_columns = edit_columns = ["name", "description", "position", "active"]
    base_order = ("position", "asc")
    related_views = [StageView]


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
    list_title = lazy_pgettext("plural", "商机")
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
    "lead",
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
    search_columns = ["kind", "customer", "lead", "occurred_at", "next_contact_at", "owner"]
    order_columns = ["occurred_at", "next_contact_at"]
    base_order = ("occurred_at", "desc")
    add_form_extra_fields = edit_form_extra_fields = _customer_and_lead_fields()


TASK_FIELDS = ["title", "due_at", "status", "owner", "customer", "lead", "opportunity", "notes"]


class TaskView(CrmModelView):
    datamodel = CrmInterface(Task)
    list_title = lazy_pgettext("plural", "任务")
    label_columns = {**LABELS, "title": _("任务")}
    list_columns = ["title", "due_at", "status", "owner", "customer"]
    show_columns = [*TASK_FIELDS, "done_at", "created_at"]
    add_columns = edit_columns = TASK_FIELDS
    search_columns = ["title", "status", "due_at", "owner", "customer", "lead"]
    order_columns = ["due_at", "status"]
    base_order = ("due_at", "asc")
    add_form_extra_fields = edit_form_extra_fields = _customer_and_lead_fields()
    add_form_query_rel_fields = edit_form_query_rel_fields = OWNER_CHOICES


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
    list_title = lazy_pgettext("plural", "线索")
    label_columns = LABELS
    list_columns = ["name", "company", "mobile", "source", "status", "owner", "created_at"]
    show_columns = [*LEAD_FIELDS, "converted_at", "customer", "contact", "created_at"]
    add_columns = edit_columns = LEAD_FIELDS
    search_columns = ["name", "company", "mobile", "email", "source", "status", "owner"]
    order_columns = ["name", "company", "status", "created_at"]
    base_order = ("id", "desc")
    add_form_query_rel_fields = edit_form_query_rel_fields = OWNER_CHOICES
    related_views = [InteractionView, TaskView]
    method_permission_name = {
        "convert_action": "edit",
        "convert": "edit",
        "assign_action": "edit",
        "assign_form": "edit",
    }

    def _lead(self, pk: int) -> Lead:
        """The lead within the user's data scope, else 404 (as its show page)."""
        lead = self.datamodel.get(pk, self._base_filters)
        if lead is None:
            abort(404)
        return lead

    @action("convert_action", _("转化"), None, "fa-random")
    def convert_action(self, items: Any) -> Any:
        return _choose_one(items, ".convert", _("请只选择一条线索进行转化"))

    @expose("/convert/<int:pk>", methods=["GET", "POST"])
    @has_access
    def convert(self, pk: int) -> Any:
        """The convert form of a lead: the duplicate check's candidates to attach to (those inside
        the user's data scope) or a new customer and contact, and optionally an opportunity.
        Converts through app.sales.convert_lead, as the API does."""
        lead = self._lead(pk)
        form, status = request.form, 200
        try:
            ensure_convertible(lead)
        except DomainError as exc:  # converted already: said, with no form to send again
            refused = _refused(exc)
            return self._convert_page(lead, [], form), refused if request.method == "POST" else 200
        candidates = conversion_candidates(db.session, lead, current_actor())
        if request.method == "POST":
            choice = form.get("customer", "")
            try:
                created = convert_lead(
                    db.session,
                    lead,
                    current_actor(),
                    customer_id=int(choice) if choice.isdigit() else None,
                    new_customer=choice == "new",
                    create_opportunity=form.get("create_opportunity") == "y",
                    opportunity_name=form.get("opportunity_name") or None,
                    pipeline_id=form.get("pipeline_id", type=int),
                    amount=form.get("amount"),
                    expected_close=form.get("expected_close"),
                )
            except DomainError as exc:
                status = _refused(exc)
            else:
                flash(str(_("线索已转化")), "success")
                return redirect(url_for("CustomerView.show", pk=created["customer_id"]))
        return self._convert_page(lead, candidates, form), status

    def _convert_page(self, lead: Lead, candidates: list[Any], form: Any) -> str:
        visible = [c for c in candidates if c.visible]
        default = str(visible[0].id) if visible else "new"
        return self.render_template(
            "crm/lead_convert.html",
            title=_("转化线索"),
            lead=lead,
            convertible=lead.status != "converted" and lead.customer_id is None,
            candidates=candidates,
            pipelines=active_pipelines(db.session),
            values={
                "customer": form.get("customer", default),
                "create_opportunity": form.get("create_opportunity", "y" if request.method == "GET" else ""),
                "opportunity_name": form.get("opportunity_name", ""),
                "pipeline_id": form.get("pipeline_id", type=int) or default_pipeline_id(db.session),
                "amount": form.get("amount", ""),
                "expected_close": form.get("expected_close", ""),
            },
        )

    @action("assign_action", _("分配给..."), None, "fa-share")
    def assign_action(self, items: Any) -> Any:
        ids = ",".join(str(item.id) for item in _selected(items))
        return redirect(url_for(".assign_form", ids=ids))

    @expose("/assign", methods=["GET", "POST"])
    @has_access
    def assign_form(self) -> Any:
        """Give the selected leads to a user the actor may assign to (app.sales.assign_leads)."""
        ids = [int(p) for p in request.values.get("ids", "").split(",") if p.strip().isdigit()][:1000]
        leads = [lead for lead in (self.datamodel.get(i, self._base_filters) for i in ids) if lead]
        status = 200
        if request.method == "POST":
            try:
                owner_id = request.form.get("owner_id", type=int)
                done = assign_leads(db.session, leads, owner_id, current_actor())
            except DomainError as exc:
                status = _refused(exc)
            else:
                flash(str(_("已分配 %(n)s 条线索", n=done)), "success")
                return redirect(url_for(".list"))
        allowed = assignable_user_ids(db.session, current_actor())
        users = select(CrmUser).where(CrmUser.active.is_(True)).order_by(CrmUser.username)
        if allowed is not None:
            users = users.where(CrmUser.id.in_(sorted(allowed)))
        page = self.render_template(
            "crm/sales_choose.html",
            title=_("分配线索"),
            intro=_("已选择 %(n)s 条线索", n=len(leads)),
            names=[str(lead) for lead in leads[:50]],
            ids=[lead.id for lead in leads],
            field="owner_id",
            label=_("负责人"),
            choices=[(u.id, f"{u} ({u.username})") for u in db.session.scalars(users)],
            chosen=request.form.get("owner_id", type=int),
            back=url_for(".list"),
        )
        return page, status


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
                    new_customer:
                      type: boolean
                      default: false
                      description: create a new customer although similar ones exist (the 409)
                    create_opportunity: {type: boolean, default: true}
                    opportunity_name: {type: string}
                    pipeline_id: {type: integer}
                    amount: {type: number}
                    expected_close: {type: string, format: date}
          responses:
            200: {description: 'the ids created or used: customer_id, contact_id, opportunity_id'}
            400: {$ref: '#/components/responses/400'}
            404: {$ref: '#/components/responses/404'}
            409:
              description: >
                similar customers exist: candidates lists their ids; send customer_id or new_customer
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
                new_customer=body.get("new_customer") is True,
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
    add_columns = edit_columns = [*INTERACTION_FIELDS, "custom"]
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
    add_columns = edit_columns = [*TASK_FIELDS, "custom"]
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
