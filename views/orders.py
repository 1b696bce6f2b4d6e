"""Screens and REST APIs for orders and contracts, their lines, payment plans, collections and
invoices. Rules live in app.orders; these stay declarative, plus the actions (submit for
approval, status moves, the signed contract file) and the order's lines nested in its API."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, request, send_file, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.api import expose as api_expose
from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
from flask_appbuilder.models.sqla.filters import FilterEqual, FilterInFunction
from flask_appbuilder.security.decorators import permission_name, protect
from flask_babel import lazy_gettext as _
from marshmallow import Schema, ValidationError, fields
from wtforms import DecimalField
from wtforms.validators import InputRequired, Optional

from app.access import DataScopeFilter, current_actor
from app.extensions import db
from app.orders import (
    LIVE_ORDER,
    attach_signed_file,
    move_order,
    replace_lines,
    signed_file,
    submit_document,
    submit_order,
)
from models.orders import Invoice, Order, OrderLine, Payment, PaymentPlan
from views.base import (
    AssignableUserFilter,
    CrmInterface,
    CrmModelApi,
    CrmModelView,
    PermittedTabsMixin,
    run_and_redirect,
)
from views.widgets import customer_select

LABELS = {
    "number": _("编号"),
    "kind": _("类型"),
    "title": _("标题"),
    "customer": _("客户"),
    "contact": _("联系人"),
    "opportunity": _("商机"),
    "status": _("状态"),
    "ordered_on": _("下单日期"),
    "sign_date": _("签约日期"),
    "start_date": _("开始日期"),
    "end_date": _("结束日期"),
    "signed_file": _("签署文件"),
    "total_amount": _("订单金额 (元)"),
    "paid_amount": _("已回款 (元)"),
    "invoiced_amount": _("已开票 (元)"),
    "paid_percent": _("回款比例 (%)"),
    "invoiced_percent": _("开票比例 (%)"),
    "max_discount_percent": _("最大折扣 (%)"),
    "approved_at": _("审批通过时间"),
    "void_reason": _("作废原因"),
    "owner": _("负责人"),
    "department": _("所属部门"),
    "notes": _("备注"),
    "created_at": _("创建时间"),
    "updated_at": _("更新时间"),
    # lines
    "order": _("订单"),
    "position": _("序号"),
    "product": _("产品"),
    "description": _("说明"),
    "quantity": _("数量"),
    "unit_price": _("单价 (元)"),
    "discount_percent": _("折扣 (%)"),
    "amount": _("金额 (元)"),
    # plans and collections
    "planned_amount": _("计划金额 (元)"),
    "planned_date": _("计划日期"),
    "remind_days": _("提前提醒天数"),
    "collected_amount": _("已回款 (元)"),
    "reminded_at": _("提醒时间"),
    "plan": _("回款计划"),
    "received_on": _("回款日期"),
    "method": _("回款方式"),
    "account": _("收款账户"),
    # invoices
    "issued_on": _("开票日期"),
    "tax_number": _("税号"),
    "bank_name": _("开户行"),
    "bank_account": _("银行账号"),
    "address_phone": _("地址电话"),
}


def _in_scope(*conditions: list[Any]) -> dict[str, list[list[Any]]]:
    """Order dropdowns of the money screens: orders in the user's data scope, and conditions."""
    return {"order": [["id", DataScopeFilter, None], *conditions]}


def _live_statuses() -> list[str]:
    return list(LIVE_ORDER)


LIVE_ORDERS = _in_scope(["status", FilterInFunction, _live_statuses])


# --- lines, plans, collections and invoices -------------------------------------------------------
LINE_FIELDS = ["order", "product", "description", "quantity", "unit_price", "discount_percent"]


def _line_numbers() -> dict[str, DecimalField]:
    """A discount of 0 is an answer (FAB would require a non-zero value of a NOT NULL column); the
    unit price defaults to the product's."""
    return {
        "quantity": DecimalField(
            LABELS["quantity"], [InputRequired()], places=None, widget=BS3TextFieldWidget()
        ),
        "unit_price": DecimalField(LABELS["unit_price"], [Optional()], widget=BS3TextFieldWidget()),
        "discount_percent": DecimalField(
            LABELS["discount_percent"], [Optional()], default=0, places=None, widget=BS3TextFieldWidget()
        ),
    }


class OrderLineView(CrmModelView):
    """The lines of an order, on its page; added and changed while the order is a draft."""

    datamodel = CrmInterface(OrderLine)
    list_title = _("订单明细")
    label_columns = LABELS
    list_columns = [
        "position",
        "product",
        "description",
        "quantity",
        "unit_price",
        "discount_percent",
        "amount",
    ]
    show_columns = [*LINE_FIELDS, "amount"]
    add_columns = edit_columns = LINE_FIELDS
    base_order = ("position", "asc")
    add_form_query_rel_fields = edit_form_query_rel_fields = _in_scope(["status", FilterEqual, "draft"])
    add_form_extra_fields = _line_numbers()
    edit_form_extra_fields = _line_numbers()


PLAN_FIELDS = ["order", "number", "planned_amount", "planned_date", "remind_days", "notes"]


class PaymentPlanView(CrmModelView):
    datamodel = CrmInterface(PaymentPlan)
    list_title = _("回款计划")
    label_columns = LABELS
    list_columns = ["order", "number", "planned_amount", "planned_date", "collected_amount", "status"]
    show_columns = [*PLAN_FIELDS, "collected_amount", "status", "reminded_at"]
    add_columns = edit_columns = PLAN_FIELDS
    search_columns = ["order", "planned_date", "status"]
    base_order = ("planned_date", "asc")
    add_form_query_rel_fields = edit_form_query_rel_fields = _in_scope()


PAYMENT_FIELDS = ["order", "plan", "amount", "received_on", "method", "account", "notes"]


class SubmitActionMixin:
    """The 提交审批 button of a collection or an invoice (show page)."""

    @expose("/submit/<int:pk>", methods=["POST"])
    @has_access
    @permission_name("edit")
    def submit(self, pk: int) -> Any:
        record = self.datamodel.get(pk, self._base_filters)  # type: ignore[attr-defined]
        if record is None:
            flash(str(_("记录不存在或您无权访问")), "danger")
            return redirect(url_for(".list"))
        work = lambda: submit_document(db.session, record, current_actor())  # noqa: E731
        return run_and_redirect(work, str(_("已提交审批")), url_for(".show", pk=pk))


class PaymentView(SubmitActionMixin, CrmModelView):
    datamodel = CrmInterface(Payment)
    list_title = _("回款")
    label_columns = LABELS
    list_columns = ["order", "plan", "amount", "received_on", "method", "status"]
    show_columns = [*PAYMENT_FIELDS, "status", "approved_at", "created_at"]
    add_columns = edit_columns = PAYMENT_FIELDS
    search_columns = ["order", "received_on", "method", "status", "amount"]
    base_order = ("received_on", "desc")
    add_form_query_rel_fields = edit_form_query_rel_fields = LIVE_ORDERS
    show_template = "crm/order_document_show.html"


INVOICE_DETAILS = ["title", "tax_number", "bank_name", "bank_account", "address_phone"]
INVOICE_FIELDS = ["order", "kind", "amount", "number", "issued_on", "notes"]


class InvoiceView(SubmitActionMixin, CrmModelView):
    datamodel = CrmInterface(Invoice)
    list_title = _("发票")
    label_columns = {**LABELS, "number": _("发票号码"), "title": _("发票抬头"), "kind": _("发票类型")}
    list_columns = ["order", "kind", "amount", "number", "issued_on", "status"]
    show_columns = [*INVOICE_FIELDS, *INVOICE_DETAILS, "status", "approved_at", "created_at"]
    add_columns = INVOICE_FIELDS  # the details are copied from the customer
    edit_columns = [*INVOICE_FIELDS, *INVOICE_DETAILS]
    search_columns = ["order", "kind", "number", "issued_on", "status"]
    base_order = ("id", "desc")
    add_form_query_rel_fields = edit_form_query_rel_fields = LIVE_ORDERS
    show_template = "crm/order_document_show.html"


# --- orders ---------------------------------------------------------------------------------------
ORDER_FIELDS = [
    "kind",
    "title",
    "customer",
    "contact",
    "opportunity",
    "ordered_on",
    "sign_date",
    "start_date",
    "end_date",
    "owner",
    "notes",
]
ORDER_FIGURES = [
    "total_amount",
    "max_discount_percent",
    "paid_amount",
    "paid_percent",
    "invoiced_amount",
    "invoiced_percent",
]


class OrderView(PermittedTabsMixin, CrmModelView):
    datamodel = CrmInterface(Order)
    list_title = _("订单合同")
    label_columns = LABELS
    list_columns = ["number", "title", "kind", "customer", "total_amount", "paid_percent", "status", "owner"]
    show_fieldsets = [
        (
            _("基本信息"),
            {"fields": ["number", "kind", "title", "customer", "contact", "opportunity", "status"]},
        ),
        (_("金额"), {"fields": ORDER_FIGURES}),
        (_("合同"), {"fields": ["ordered_on", "sign_date", "start_date", "end_date"]}),
        (_("其他"), {"fields": ["owner", "department", "approved_at", "void_reason", "notes", "created_at"]}),
    ]
    add_columns = edit_columns = ORDER_FIELDS
    search_columns = ["number", "title", "kind", "customer", "status", "owner", "ordered_on", "end_date"]
    order_columns = ["number", "total_amount", "ordered_on", "end_date", "updated_at"]
    base_order = ("id", "desc")
    add_form_extra_fields = edit_form_extra_fields = {"customer": customer_select(LABELS["customer"])}
    add_form_query_rel_fields = edit_form_query_rel_fields = {
        "owner": [["id", AssignableUserFilter, None]],
        "contact": [["id", DataScopeFilter, None]],
        "opportunity": [["id", DataScopeFilter, None]],
    }
    related_views = [OrderLineView, PaymentPlanView, PaymentView, InvoiceView]
    show_template = "crm/order_show.html"
    export_exclude = ("lines", "plans")

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk: Any) -> Any:
        """The order with its lines, plans, collections and invoices, and its actions."""
        widgets = self._show(pk)  # 404 outside the user's data scope
        return self.render_template(
            self.show_template,
            pk=pk,
            title=self.show_title,
            widgets=widgets,
            related_views=self.visible_related_views(),
            order=self.datamodel.get(pk, self._base_filters),
            can_edit=self.appbuilder.sm.has_access("can_edit", self.class_permission_name),
        )

    def _run(self, pk: int, work: Any, done: Any) -> Any:
        order = self.datamodel.get(pk, self._base_filters)
        if order is None:
            flash(str(_("订单不存在或您无权访问")), "danger")
            return redirect(url_for(".list"))
        return run_and_redirect(lambda: work(order), str(done), url_for(".show", pk=pk))

    @expose("/submit/<int:pk>", methods=["POST"])
    @has_access
    @permission_name("edit")
    def submit(self, pk: int) -> Any:
        return self._run(pk, lambda o: submit_order(db.session, o, current_actor()), _("已提交审批"))

    @expose("/move/<int:pk>", methods=["POST"])
    @has_access
    @permission_name("edit")
    def move(self, pk: int) -> Any:
        """Start, complete or void (with the reason typed in) an order."""
        status, reason = request.form.get("status", ""), request.form.get("reason")
        return self._run(
            pk, lambda o: move_order(db.session, o, status, current_actor(), reason), _("订单状态已更新")
        )

    @expose("/signed_file/<int:pk>", methods=["POST"])
    @has_access
    @permission_name("edit")
    def upload(self, pk: int) -> Any:
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            flash(str(_("请选择文件")), "warning")
            return redirect(url_for(".show", pk=pk))
        return self._run(
            pk,
            lambda o: attach_signed_file(db.session, o, upload.stream, upload.filename, current_actor()),
            _("签署文件已上传"),
        )

    @expose("/signed_file/<int:pk>", methods=["GET"])
    @has_access
    @permission_name("show")
    def download(self, pk: int) -> Any:
        order = self.datamodel.get(pk, self._base_filters)
        found = signed_file(order) if order is not None else None
        if found is None:
            abort(404)
        path, meta = found
        return send_file(path, mimetype=meta["type"], as_attachment=True, download_name=meta["name"])


# --- REST -----------------------------------------------------------------------------------------
class LineInput(Schema):
    """One line as the order API takes it; the service checks the values."""

    product_id = fields.Integer(allow_none=True, load_default=None)
    description = fields.String(allow_none=True, load_default=None)
    quantity = fields.Decimal(required=True, allow_none=False)
    unit_price = fields.Decimal(allow_none=True, load_default=None)
    discount_percent = fields.Decimal(allow_none=True, load_default=None)


LINES = LineInput(many=True)
LINE_COLUMNS = [
    "id",
    "position",
    "product_id",
    "description",
    "quantity",
    "unit_price",
    "discount_percent",
    "amount",
]


class OrderApi(CrmModelApi):
    """Orders with their lines nested: `lines` on create replaces nothing, on update replaces
    every line (allowed while the order is a draft)."""

    resource_name = "order"
    datamodel = CrmInterface(Order)
    list_columns = [
        "id", "number", "kind", "title", "customer.id", "customer.name", "status", "ordered_on",
        "end_date", "total_amount", "paid_amount", "invoiced_amount", "owner.id", "updated_at",
    ]  # fmt: skip
    show_columns = [
        *list_columns,
        "contact.id",
        "opportunity.id",
        "sign_date",
        "start_date",
        "signed_file",
        "max_discount_percent",
        "paid_percent",
        "invoiced_percent",
        "approved_at",
        "void_reason",
        "notes",
        *[f"lines.{c}" for c in LINE_COLUMNS],
        "custom",
        "created_at",
    ]
    add_columns = edit_columns = [*ORDER_FIELDS, "custom"]
    order_columns = ["id", "number", "ordered_on", "end_date", "total_amount", "updated_at"]
    search_columns = ["number", "title", "kind", "customer", "status", "owner", "ordered_on", "end_date"]
    add_query_rel_fields = edit_query_rel_fields = {"owner": [["id", AssignableUserFilter, None]]}

    def _body(self) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None, Any]:
        """(the order's fields, its lines or None, an error response or None)."""
        if not request.is_json or not isinstance(request.json, dict):
            return None, None, self.response_400(message="Request is not a JSON object")
        body = dict(request.json)
        if "lines" not in body:
            return body, None, None
        try:
            return body, LINES.load(body.pop("lines") or []), None
        except ValidationError as err:
            return None, None, self.response_400(message={"lines": err.messages})

    def _save(self, status: int, item: Any) -> Any:
        return self._write(status, item, self.show_model_schema)

    def post_headless(self) -> Any:
        body, lines, error = self._body()
        if error is not None:
            return error
        try:
            item = self.add_model_schema.load(body)
        except ValidationError as err:
            return self.response_400(message=err.messages)
        replace_lines(self.datamodel.session, item, lines or [])
        return self._save(201, item)

    def put_headless(self, pk: Any) -> Any:
        item = self.datamodel.get(pk, self._base_filters)
        if not item:
            return self.response_404()
        body, lines, error = self._body()
        if error is not None:
            return error
        try:
            item = self.edit_model_schema.load(self._merge_update_item(item, body), instance=item)
        except ValidationError as err:
            self.datamodel.session.rollback()
            return self.response_400(message=err.messages)
        if lines is not None:
            replace_lines(self.datamodel.session, item, lines)
        return self._save(200, item)

    def _order_action(self, pk: int, work: Any) -> Any:
        order = self.datamodel.get(pk, self._base_filters)
        if order is None:
            return self.response_404()
        dump = lambda _done: self.response(200, result=self.show_model_schema.dump(order, many=False))  # noqa: E731
        return self.answer(lambda: work(order), dump)

    @api_expose("/<int:pk>/submit", methods=["POST"])
    @protect()
    @permission_name("put")
    def submit(self, pk: int) -> Any:
        """Submit a draft order for approval (approved at once when no flow applies).
        ---
        post:
          parameters:
          - {in: path, name: pk, schema: {type: integer}}
          responses:
            200: {description: the order}
            400: {$ref: '#/components/responses/400'}
            404: {$ref: '#/components/responses/404'}
        """
        return self._order_action(pk, lambda o: submit_order(self.datamodel.session, o, current_actor()))

    @api_expose("/<int:pk>/status", methods=["POST"])
    @protect()
    @permission_name("put")
    def status(self, pk: int) -> Any:
        """Move an approved order on: executing, completed, or voided (with a reason).
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
                    status: {type: string, enum: [executing, completed, voided]}
                    reason: {type: string, description: required to void}
          responses:
            200: {description: the order}
            400: {$ref: '#/components/responses/400'}
            404: {$ref: '#/components/responses/404'}
        """
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("status"), str):
            return self.response_400(message={"status": [str(_("请指定新状态"))]})
        reason = body.get("reason")
        return self._order_action(
            pk,
            lambda o: move_order(
                self.datamodel.session, o, body["status"], current_actor(), str(reason) if reason else None
            ),
        )

    @api_expose("/<int:pk>/signed_file", methods=["POST"])
    @protect()
    @permission_name("put")
    def upload_signed_file(self, pk: int) -> Any:
        """Upload the signed contract (multipart `file`; type and size limits in the settings).
        ---
        post:
          parameters:
          - {in: path, name: pk, schema: {type: integer}}
          requestBody:
            content:
              multipart/form-data:
                schema: {type: object, properties: {file: {type: string, format: binary}}}
          responses:
            200: {description: the order}
            400: {$ref: '#/components/responses/400'}
            404: {$ref: '#/components/responses/404'}
        """
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            return self.response_400(message={"file": [str(_("请选择文件"))]})
        return self._order_action(
            pk,
            lambda o: attach_signed_file(
                self.datamodel.session, o, upload.stream, upload.filename, current_actor()
            ),
        )

    @api_expose("/<int:pk>/signed_file", methods=["GET"])
    @protect()
    @permission_name("get")
    def download_signed_file(self, pk: int) -> Any:
        """Download the signed contract of an order within the user's data scope.
        ---
        get:
          parameters:
          - {in: path, name: pk, schema: {type: integer}}
          responses:
            200: {description: the file}
            404: {$ref: '#/components/responses/404'}
        """
        order = self.datamodel.get(pk, self._base_filters)
        found = signed_file(order) if order is not None else None
        if found is None:
            return self.response_404()
        path, meta = found
        return send_file(path, mimetype=meta["type"], as_attachment=True, download_name=meta["name"])


class OrderLineApi(CrmModelApi):
    """Lines, read-only: they are written through their order (`lines` in /api/v1/order/)."""

    resource_name = "orderline"
    datamodel = CrmInterface(OrderLine)
    base_permissions = ["can_get", "can_info"]
    list_columns = show_columns = ["order.id", *LINE_COLUMNS]
    order_columns = ["id", "position"]
    search_columns = ["order", "product"]


class MoneyApi(CrmModelApi):
    """Writes answer with the whole record: the status, plan number and copied invoicing details
    are the service's, not the client's."""

    def _write(self, status: int, item: Any, schema: Any) -> Any:
        return super()._write(status, item, self.show_model_schema)


class PaymentPlanApi(MoneyApi):
    resource_name = "paymentplan"
    datamodel = CrmInterface(PaymentPlan)
    list_columns = show_columns = [
        "id", "order.id", "order.number", "number", "planned_amount", "planned_date", "remind_days",
        "collected_amount", "status", "reminded_at", "notes",
    ]  # fmt: skip
    add_columns = edit_columns = PLAN_FIELDS
    order_columns = ["id", "planned_date", "number"]
    search_columns = ["order", "planned_date", "status"]


class SubmitApiMixin:
    @api_expose("/<int:pk>/submit", methods=["POST"])
    @protect()
    @permission_name("put")
    def submit(self, pk: int) -> Any:
        """Submit for approval (approved at once when no flow applies).
        ---
        post:
          parameters:
          - {in: path, name: pk, schema: {type: integer}}
          responses:
            200: {description: the record}
            400: {$ref: '#/components/responses/400'}
            404: {$ref: '#/components/responses/404'}
        """
        record = self.datamodel.get(pk, self._base_filters)  # type: ignore[attr-defined]
        if record is None:
            return self.response_404()  # type: ignore[attr-defined]
        return self.answer(  # type: ignore[attr-defined]
            lambda: submit_document(self.datamodel.session, record, current_actor()),  # type: ignore[attr-defined]
            lambda _done: self.response(200, result=self.show_model_schema.dump(record)),  # type: ignore[attr-defined]
        )


class PaymentApi(SubmitApiMixin, MoneyApi):
    resource_name = "payment"
    datamodel = CrmInterface(Payment)
    list_columns = [
        "id", "order.id", "order.number", "plan.id", "amount", "received_on", "method", "account", "status",
    ]  # fmt: skip
    show_columns = [*list_columns, "approved_at", "notes", "custom", "created_at"]
    add_columns = edit_columns = [*PAYMENT_FIELDS, "custom"]
    order_columns = ["id", "received_on", "amount"]
    search_columns = ["order", "plan", "received_on", "method", "status", "amount"]


class InvoiceApi(SubmitApiMixin, MoneyApi):
    resource_name = "invoice"
    datamodel = CrmInterface(Invoice)
    list_columns = ["id", "order.id", "order.number", "kind", "amount", "number", "issued_on", "status"]
    show_columns = [*list_columns, *INVOICE_DETAILS, "approved_at", "notes", "custom", "created_at"]
    add_columns = edit_columns = [*INVOICE_FIELDS, *INVOICE_DETAILS, "custom"]
    order_columns = ["id", "issued_on", "amount"]
    search_columns = ["order", "kind", "number", "issued_on", "status"]
    defaulted_columns = tuple(INVOICE_DETAILS)
