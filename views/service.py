"""Screens and REST APIs of the service desk: tickets (the queue, the ticket page with its
conversation, attachments, history and actions), categories and assignment rules. Rules live in
app.service and app.assignment; these stay declarative, plus the ticket actions (reply,
internal note, status, assign, link a customer, files) that use the `can_work` permission."""

from __future__ import annotations

import re
from typing import Any

from flask import abort, current_app, flash, redirect, request, send_file, url_for
from flask_appbuilder import AppBuilder, expose, has_access
from flask_appbuilder.api import expose as api_expose
from flask_appbuilder.fieldwidgets import BS3TextFieldWidget, Select2ManyWidget
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.filters import FilterEqual, FilterEqualFunction, FilterInFunction
from flask_appbuilder.security.decorators import permission_name, protect
from flask_babel import lazy_gettext as _
from marshmallow import Schema, ValidationError, fields
from sqlalchemy import or_, select
from sqlalchemy.orm import joinedload
from wtforms import SelectMultipleField, StringField

from app.access import assignable_user_ids, current_actor, request_cache
from app.extensions import db
from app.service import (
    MANUAL_STATUSES,
    add_attachment,
    add_comment,
    assign_ticket,
    attachment_file,
    change_status,
    commit_work,
    conversation,
    link_customer,
    may_work,
)
from models.base import utcnow
from models.customers import CUSTOMER_LEVELS, Region
from models.security import CrmUser, Department
from models.service import (
    OPEN_TICKET_STATUSES,
    RESOLUTION_METHODS,
    SLA_STATES,
    TICKET_STATUSES,
    AssignmentRule,
    Ticket,
    TicketAttachment,
    TicketCategory,
    TicketComment,
    TicketStatusChange,
)
from views.base import CrmInterface, CrmModelApi, CrmModelView, run_and_redirect
from views.formatters import _local_datetime, joined
from views.widgets import customer_select

LABELS = {
    "number": _("工单编号"),
    "subject": _("标题"),
    "description": _("问题描述"),
    "customer": _("客户"),
    "contact": _("联系人"),
    "category": _("业务类型"),
    "priority": _("优先级"),
    "channel": _("来源渠道"),
    "district": _("区县"),
    "status": _("状态"),
    "requester_name": _("提交人"),
    "requester_mobile": _("提交人手机"),
    "requester_email": _("提交人邮箱"),
    "match_state": _("客户匹配"),
    "assignment_rule": _("分派规则"),
    "assigned_at": _("分派时间"),
    "owner": _("处理人"),
    "department": _("处理团队"),
    "resolution": _("处理结果"),
    "resolution_method": _("解决方式"),
    "first_response_at": _("首次响应时间"),
    "resolved_at": _("解决时间"),
    "closed_at": _("关闭时间"),
    "reopen_count": _("重开次数"),
    "sla_policy": _("SLA 策略"),
    "first_response_due": _("首次响应期限"),
    "resolution_due": _("解决期限"),
    "sla_state": _("SLA 状态"),
    "created_at": _("创建时间"),
    "updated_at": _("更新时间"),
    # comments, history, attachments
    "ticket": _("工单"),
    "author": _("作者"),
    "author_name": _("作者"),
    "from_customer": _("客户留言"),
    "internal": _("内部备注"),
    "body": _("内容"),
    "from_status": _("原状态"),
    "to_status": _("新状态"),
    "changed_at": _("时间"),
    "changed_by": _("操作人"),
    "note": _("说明"),
    "filename": _("文件名"),
    "size": _("大小 (字节)"),
    "uploaded_at": _("上传时间"),
    # categories and rules
    "name": _("名称"),
    "position": _("序号"),
    "active": _("启用"),
    "district_codes": _("区县/城市"),
    "category_ids": _("业务类型"),
    "customer_levels": _("客户级别"),
    "target_user": _("分派给用户"),
    "target_department": _("分派给团队"),
    "strategy": _("团队内分派方式"),
    "last_assigned_user": _("上次分派给"),
}


# --- the queue's order: time left, tickets without a due time last ------------------------------
class TicketInterface(CrmInterface):
    """Tickets ordered by resolution_due put those without a due time last on every database
    (PostgreSQL sorts NULL last in ascending order already; SQLite and MariaDB first). MariaDB
    has no NULLS LAST: it sorts by `resolution_due IS NULL` first, which no index serves."""

    def apply_all(
        self,
        query: Any,
        filters: Any = None,
        order_column: str = "",
        order_direction: str = "",
        page: int | None = None,
        page_size: int | None = None,
        select_columns: list[str] | None = None,
        outer_default_load: bool = False,
    ) -> Any:
        if order_column == "resolution_due":
            due = Ticket.resolution_due
            descending = order_direction == "desc"
            dialect = self.session.get_bind().dialect.name
            if descending:
                terms = [due.desc()]
            elif dialect == "postgresql":
                terms = [due.asc()]  # NULL sorts last already; ix_ticket_due is walked in order
            elif dialect == "sqlite":
                terms = [due.asc().nulls_last()]  # SQLite walks ix_ticket_due for this too
            else:
                terms = [due.is_(None), due.asc()]  # MariaDB: no NULLS LAST
            query = query.order_by(*terms, Ticket.id.desc() if descending else Ticket.id.asc())
            order_column = ""
        return super().apply_all(
            query, filters, order_column, order_direction, page, page_size, select_columns, outer_default_load
        )


def _open_statuses() -> list[str]:
    return list(OPEN_TICKET_STATUSES)


def _current_user_id() -> int | None:
    actor = current_actor()
    return actor.id if actor is not None else None


# --- categories ----------------------------------------------------------------------------------
class TicketCategoryView(CrmModelView):
    datamodel = CrmInterface(TicketCategory)
    list_title = _("工单分类")
    label_columns = LABELS
    list_columns = ["name", "position", "active"]
    show_columns = add_columns = edit_columns = ["name", "position", "active"]
    search_columns = ["name", "active"]
    base_order = ("position", "asc")


class TicketCategoryApi(CrmModelApi):
    resource_name = "ticketcategory"
    datamodel = CrmInterface(TicketCategory)
    list_columns = show_columns = ["id", "name", "position", "active"]
    add_columns = edit_columns = ["name", "position", "active"]
    order_columns = ["id", "name", "position"]
    search_columns = ["name", "active"]
    base_order = ("position", "asc")
    defaulted_columns = ("position", "active")


# --- assignment rules ----------------------------------------------------------------------------
_CODE_IN_TEXT = re.compile(r"(\d{6})")


def region_names(codes: list[int] | None) -> dict[int, str]:
    """Names of region codes, read once per request for a whole list page."""
    cache = request_cache("service_regions")
    missing = [c for c in codes or [] if c not in cache]
    if missing:
        cache.update(
            db.session.execute(select(Region.code, Region.name).where(Region.code.in_(missing))).all()
        )
    return {c: cache.get(c, str(c)) for c in codes or []}


class RegionCodesField(StringField):
    """Districts, counties or cities typed as names or codes (东营区, 河口区, 370522; a city's
    code matches all its districts); shown as 名称(代码). A name that is unknown or ambiguous
    stays as typed and the service refuses it with its message."""

    def _value(self) -> str:
        if self.raw_data:
            return self.raw_data[0]
        codes = self.data if isinstance(self.data, list) else []
        names = region_names(codes)
        return ", ".join(f"{names[c]}({c})" for c in codes)

    def process_formdata(self, valuelist: list[str]) -> None:
        raw = valuelist[0] if valuelist else ""
        tokens = [t.strip() for t in re.split(r"[,,、;;\s]+", raw) if t.strip()]
        result: list[Any] = []
        for token in tokens:
            code = _CODE_IN_TEXT.search(token)
            if code:
                result.append(int(code.group(1)))
                continue
            found = db.session.scalars(select(Region.code).where(Region.name == token).limit(2)).all()
            result.append(found[0] if len(found) == 1 else token)
        self.data = result


def _category_choices(form: Any = None, field: Any = None) -> list[tuple[int, str]]:
    rows = db.session.execute(
        select(TicketCategory.id, TicketCategory.name).order_by(TicketCategory.position)
    )
    return [(row.id, row.name) for row in rows]


def _level_choices(form: Any = None, field: Any = None) -> list[tuple[str, str]]:
    return CUSTOMER_LEVELS.options()


def _rule_fields() -> dict[str, Any]:
    return {
        "district_codes": RegionCodesField(
            LABELS["district_codes"],
            description=_("区县或城市的名称或代码,多个用逗号分隔;城市包含其下所有区县;留空表示不限"),
            widget=BS3TextFieldWidget(),
        ),
        "category_ids": SelectMultipleField(
            LABELS["category_ids"],
            choices=_category_choices,
            coerce=int,
            widget=Select2ManyWidget(),
            description=_("留空表示不限"),
            validate_choice=False,
        ),
        "customer_levels": SelectMultipleField(
            LABELS["customer_levels"],
            choices=_level_choices,
            widget=Select2ManyWidget(),
            description=_("留空表示不限"),
            validate_choice=False,
        ),
    }


def _format_districts(codes: Any) -> str:
    names = region_names(list(codes or []))
    return joined(names.values())


def _format_categories(ids: Any) -> str:
    cache = request_cache("service_categories")
    if "names" not in cache:
        cache["names"] = dict(db.session.execute(select(TicketCategory.id, TicketCategory.name)).all())
    return joined(cache["names"].get(i, f"#{i}") for i in ids or [])


def _format_levels(levels: Any) -> str:
    return joined(CUSTOMER_LEVELS.label(level) for level in levels or [])


RULE_FIELDS = [
    "name",
    "position",
    "active",
    "district_codes",
    "category_ids",
    "customer_levels",
    "target_user",
    "target_department",
    "strategy",
]
ACTIVE_USERS = {"target_user": [["active", FilterEqual, True]]}


class AssignmentRuleView(CrmModelView):
    """分派规则: tried by position, the first that matches assigns the ticket."""

    datamodel = CrmInterface(AssignmentRule)
    list_title = _("分派规则")
    label_columns = LABELS
    description_columns = {
        "position": _("从小到大依次匹配,第一条符合的规则生效;新规则填 0 则排在最后"),
        "target_department": _("团队成员为该部门的在职用户(不含下级部门)"),
        "strategy": _("分派给团队时: 轮流分派,或给未结工单最少的成员"),
    }
    list_columns = [
        "position",
        "name",
        "district_codes",
        "category_ids",
        "customer_levels",
        "target_user",
        "target_department",
        "strategy",
        "active",
    ]
    show_columns = [*RULE_FIELDS, "last_assigned_user", "updated_at"]
    add_columns = edit_columns = RULE_FIELDS
    search_columns = ["name", "active", "target_user", "target_department", "strategy"]
    base_order = ("position", "asc")
    formatters_columns = {
        "district_codes": _format_districts,
        "category_ids": _format_categories,
        "customer_levels": _format_levels,
    }
    add_form_extra_fields = _rule_fields()
    edit_form_extra_fields = _rule_fields()
    add_form_query_rel_fields = edit_form_query_rel_fields = ACTIVE_USERS


class AssignmentRuleApi(CrmModelApi):
    """Rules: `district_codes` region codes, `category_ids` ticket category ids, `customer_levels`
    level codes (key, normal, potential); an empty list is no condition."""

    resource_name = "assignmentrule"
    datamodel = CrmInterface(AssignmentRule)
    list_columns = show_columns = [
        "id", "name", "position", "active", "district_codes", "category_ids", "customer_levels",
        "target_user.id", "target_user.username", "target_department.id", "target_department.name",
        "strategy", "last_assigned_user_id", "updated_at",
    ]  # fmt: skip
    add_columns = edit_columns = RULE_FIELDS
    order_columns = ["id", "name", "position"]
    search_columns = ["name", "active", "target_user", "target_department", "strategy"]
    base_order = ("position", "asc")
    defaulted_columns = (
        "position",
        "active",
        "strategy",
        "district_codes",
        "category_ids",
        "customer_levels",
    )
    add_query_rel_fields = edit_query_rel_fields = ACTIVE_USERS

    def _write(self, status: int, item: Any, schema: Any) -> Any:
        return super()._write(status, item, self.show_model_schema)


# --- the ticket's children: read here, written through the ticket's actions -----------------------
class TicketCommentView(CrmModelView):
    datamodel = CrmInterface(TicketComment)
    list_title = _("工单沟通")
    label_columns = LABELS
    base_permissions = ["can_list", "can_show"]
    list_columns = ["ticket", "created_at", "author", "author_name", "internal", "from_customer", "body"]
    show_columns = list_columns
    search_columns = ["ticket", "internal", "from_customer", "created_at"]
    base_order = ("id", "desc")


class TicketCommentApi(CrmModelApi):
    resource_name = "ticketcomment"
    datamodel = CrmInterface(TicketComment)
    base_permissions = ["can_get", "can_info"]
    list_columns = show_columns = [
        "id", "ticket.id", "created_at", "author.id", "author.username", "author_name", "internal",
        "from_customer", "body",
    ]  # fmt: skip
    order_columns = ["id", "created_at"]
    search_columns = ["ticket", "internal", "from_customer", "created_at"]


class TicketStatusChangeView(CrmModelView):
    datamodel = CrmInterface(TicketStatusChange)
    list_title = _("工单状态记录")
    label_columns = LABELS
    base_permissions = ["can_list", "can_show"]
    list_columns = ["ticket", "from_status", "to_status", "changed_at", "changed_by", "note"]
    show_columns = list_columns
    search_columns = ["ticket", "to_status", "changed_at", "changed_by"]
    base_order = ("id", "desc")
    formatters_columns = {"from_status": TICKET_STATUSES.label, "to_status": TICKET_STATUSES.label}


class TicketStatusChangeApi(CrmModelApi):
    resource_name = "ticketstatuschange"
    datamodel = CrmInterface(TicketStatusChange)
    base_permissions = ["can_get", "can_info"]
    list_columns = show_columns = [
        "id", "ticket.id", "from_status", "to_status", "changed_at", "changed_by.id", "changed_by.username",
        "note",
    ]  # fmt: skip
    order_columns = ["id", "changed_at"]
    search_columns = ["ticket", "to_status", "changed_at", "changed_by"]


def _send_attachment(attachment: TicketAttachment | None) -> Any:
    found = attachment_file(attachment) if attachment is not None else None
    if found is None:
        return None
    path, meta = found
    return send_file(path, mimetype=meta["type"], as_attachment=True, download_name=attachment.filename)


class TicketAttachmentView(CrmModelView):
    datamodel = CrmInterface(TicketAttachment)
    list_title = _("工单附件")
    label_columns = LABELS
    base_permissions = ["can_list", "can_show"]
    list_columns = ["ticket", "filename", "size", "from_customer", "uploaded_at"]
    show_columns = list_columns
    search_columns = ["ticket", "filename", "uploaded_at"]
    base_order = ("id", "desc")

    @expose("/download/<int:pk>")
    @has_access
    @permission_name("show")
    def download(self, pk: int) -> Any:
        """The file, for users who may see its ticket (data scope), else 404."""
        response = _send_attachment(self.datamodel.get(pk, self._base_filters))
        if response is None:
            abort(404)
        return response


class TicketAttachmentApi(CrmModelApi):
    resource_name = "ticketattachment"
    datamodel = CrmInterface(TicketAttachment)
    base_permissions = ["can_get", "can_info"]
    list_columns = show_columns = [
        "id", "ticket.id", "comment_id", "filename", "size", "from_customer", "uploaded_at", "uploaded_by_id",
    ]  # fmt: skip
    order_columns = ["id", "uploaded_at"]
    search_columns = ["ticket", "filename", "uploaded_at"]

    @api_expose("/<int:pk>/file", methods=["GET"])
    @protect()
    @permission_name("get")
    def file(self, pk: int) -> Any:
        """Download an attachment of a ticket the user may see.
        ---
        get:
          parameters:
          - {in: path, name: pk, schema: {type: integer}}
          responses:
            200: {description: the file}
            404: {$ref: '#/components/responses/404'}
        """
        response = _send_attachment(self.datamodel.get(pk, self._base_filters))
        return response if response is not None else self.response_404()


# --- tickets -------------------------------------------------------------------------------------
TICKET_FIELDS = [
    "subject",
    "description",
    "customer",
    "category",
    "priority",
    "channel",
    "district",
    "requester_name",
    "requester_mobile",
    "requester_email",
]
DISTRICTS = {"district": [["level", FilterEqual, 3]], "category": [["active", FilterEqual, True]]}


class ServiceAreaFilter(BaseFilter):
    """The district filter of the ticket list offers the service area, not all 2,800 districts of
    China (the page would carry them all): the districts of CRM_HOME_CITY and those the active
    assignment rules name (a city or province named by a rule brings its districts); all
    districts when neither says anything."""

    name = "service area"

    def apply(self, query: Any, value: Any) -> Any:
        query = query.filter(Region.level == 3)
        conditions = []
        home = str(current_app.config.get("CRM_HOME_CITY") or "").strip()
        if home.isdigit():
            conditions.append(Region.parent_code == int(home))
        rules = db.session.scalars(
            select(AssignmentRule.district_codes).where(AssignmentRule.active.is_(True))
        )
        for code in {int(c) for codes in rules for c in codes or []}:
            if code % 10000 == 0:
                conditions.append(Region.code.between(code, code + 9999))
            elif code % 100 == 0:
                conditions.append(Region.code.between(code, code + 99))
            else:
                conditions.append(Region.code == code)
        return query.filter(or_(*conditions)) if conditions else query


class TicketView(CrmModelView):
    """服务工单: the queue (time left first), the ticket page and its actions."""

    datamodel = TicketInterface(Ticket)
    list_title = _("服务工单")
    label_columns = LABELS
    list_columns = [
        "number",
        "subject",
        "customer",
        "category",
        "priority",
        "status",
        "owner",
        "department",
        "resolution_due",
        "sla_state",
    ]
    show_fieldsets = [
        (
            _("工单"),
            {
                "fields": [
                    "number",
                    "subject",
                    "description",
                    "category",
                    "priority",
                    "channel",
                    "status",
                    "created_at",
                ]
            },
        ),  # fmt: skip
        (
            _("客户"),
            {
                "fields": [
                    "customer",
                    "contact",
                    "district",
                    "requester_name",
                    "requester_mobile",
                    "requester_email",
                    "match_state",
                ]
            },
        ),  # fmt: skip
        (_("分派"), {"fields": ["owner", "department", "assignment_rule", "assigned_at"]}),
        (
            _("SLA"),
            {
                "fields": [
                    "sla_policy",
                    "first_response_due",
                    "first_response_at",
                    "resolution_due",
                    "sla_state",
                ]
            },
        ),
        (
            _("处理结果"),
            {"fields": ["resolution", "resolution_method", "resolved_at", "closed_at", "reopen_count"]},
        ),
    ]
    add_columns = TICKET_FIELDS
    edit_columns = [c for c in TICKET_FIELDS if c != "channel"]
    search_columns = [
        "number",
        "subject",
        "status",
        "priority",
        "category",
        "district",
        "owner",
        "department",
        "sla_state",
        "channel",
        "match_state",
        "created_at",
        "resolution_due",
    ]  # not `customer`: the search form would list every customer (the customer's page lists its tickets)
    order_columns = ["number", "priority", "status", "resolution_due", "created_at", "updated_at"]
    base_order = ("resolution_due", "asc")
    add_form_extra_fields = edit_form_extra_fields = {"customer": customer_select(LABELS["customer"])}
    add_form_query_rel_fields = edit_form_query_rel_fields = DISTRICTS
    search_form_query_rel_fields = {"district": [["code", ServiceAreaFilter, None]]}
    show_template = "service/ticket_show.html"
    export_exclude = ("comments", "history", "attachments")

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk: Any) -> Any:
        """The ticket: details, SLA, the conversation (one query), files, history and actions."""
        widgets = self._show(pk)  # 404 outside the user's data scope
        ticket = self.datamodel.get(pk, self._base_filters)
        actor = current_actor()
        sm = self.appbuilder.sm
        can_work = sm.has_access("can_work", self.class_permission_name) and may_work(
            db.session, ticket, actor
        )
        history = db.session.scalars(
            select(TicketStatusChange)
            .options(joinedload(TicketStatusChange.changed_by))
            .where(TicketStatusChange.ticket_id == ticket.id)
            .order_by(TicketStatusChange.id)
        ).all()
        users, departments = [], []
        if can_work:
            allowed = assignable_user_ids(db.session, actor) if actor is not None else None
            query = select(CrmUser).where(CrmUser.active.is_(True)).order_by(CrmUser.username)
            if allowed is not None:
                query = query.where(CrmUser.id.in_(sorted(allowed)))
            users = db.session.scalars(query).all()
            departments = db.session.scalars(
                select(Department).order_by(Department.position, Department.id)
            ).all()
        return self.render_template(
            self.show_template,
            pk=pk,
            title=self.show_title,
            widgets=widgets,
            related_views=self._related_views,
            ticket=ticket,
            comments=conversation(db.session, ticket.id),
            attachments=ticket.attachments,
            history=history,
            can_work=can_work,
            users=users,
            departments=departments,
            statuses=[(s, TICKET_STATUSES.label(s)) for s in MANUAL_STATUSES],
            methods=RESOLUTION_METHODS.options(),
            status_label=TICKET_STATUSES.label,
            sla_label=SLA_STATES.label,
            when=_local_datetime,
            now=utcnow(),
        )

    def _work(self, pk: int, work: Any, done: Any) -> Any:
        ticket = self.datamodel.get(pk, self._base_filters)
        if ticket is None:
            flash(str(_("工单不存在或您无权访问")), "danger")
            return redirect(url_for("TicketView.list"))
        actor = current_actor()
        return run_and_redirect(
            lambda: commit_work(db.session, actor, lambda: work(ticket, actor)),
            str(done),
            url_for("TicketView.show", pk=pk),
        )

    @expose("/comment/<int:pk>", methods=["POST"])
    @has_access
    @permission_name("work")
    def comment(self, pk: int) -> Any:
        """A reply to the customer, or an internal note (the `internal` box)."""
        internal = request.form.get("internal") in ("1", "y", "on", "true")
        body = request.form.get("body", "")
        return self._work(
            pk,
            lambda t, actor: add_comment(db.session, t, body, actor=actor, internal=internal),
            _("已添加内部备注") if internal else _("已回复客户"),
        )

    @expose("/status/<int:pk>", methods=["POST"])
    @has_access
    @permission_name("work")
    def status(self, pk: int) -> Any:
        form = request.form
        return self._work(
            pk,
            lambda t, actor: change_status(
                db.session,
                t,
                form.get("status", ""),
                actor,
                note=form.get("note") or None,
                resolution=form.get("resolution") or None,
                resolution_method=form.get("resolution_method") or None,
            ),
            _("工单状态已更新"),
        )

    @expose("/assign/<int:pk>", methods=["POST"])
    @has_access
    @permission_name("work")
    def assign(self, pk: int) -> Any:
        user_id = request.form.get("user_id", type=int)
        department_id = request.form.get("department_id", type=int)
        return self._work(
            pk,
            lambda t, actor: assign_ticket(
                db.session, t, user_id=user_id, department_id=department_id, actor=actor
            ),
            _("工单已分派"),
        )

    @expose("/take/<int:pk>", methods=["POST"])
    @has_access
    @permission_name("work")
    def take(self, pk: int) -> Any:
        """接单: the current user takes the ticket (from the team's queue)."""
        return self._work(
            pk,
            lambda t, actor: assign_ticket(db.session, t, user_id=actor.id, department_id=None, actor=actor),
            _("您已接单"),
        )

    @expose("/link/<int:pk>", methods=["POST"])
    @has_access
    @permission_name("work")
    def link(self, pk: int) -> Any:
        customer_id = request.form.get("customer_id", type=int)
        contact_id = request.form.get("contact_id", type=int)
        return self._work(
            pk,
            lambda t, actor: link_customer(db.session, t, customer_id or 0, contact_id, actor),
            _("已关联客户"),
        )

    @expose("/attach/<int:pk>", methods=["POST"])
    @has_access
    @permission_name("work")
    def attach(self, pk: int) -> Any:
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            flash(str(_("请选择文件")), "warning")
            return redirect(url_for("TicketView.show", pk=pk))
        return self._work(
            pk,
            lambda t, actor: add_attachment(db.session, t, upload.stream, upload.filename, actor=actor),
            _("附件已上传"),
        )

    @expose("/file/<int:pk>/<int:attachment_id>")
    @has_access
    @permission_name("show")
    def file(self, pk: int, attachment_id: int) -> Any:
        """An attachment of a ticket the user may see (data scope), else 404."""
        ticket = self.datamodel.get(pk, self._base_filters)
        attachment = db.session.get(TicketAttachment, attachment_id) if ticket is not None else None
        if attachment is None or attachment.ticket_id != ticket.id:
            abort(404)
        response = _send_attachment(attachment)
        if response is None:
            abort(404)
        return response


class MyTicketView(TicketView):
    """我的工单: the current user's open tickets by time left (the agent's own queue); shares the
    permissions of TicketView."""

    class_permission_name = "TicketView"
    list_title = _("我的待办工单")
    base_filters = [
        ["owner_id", FilterEqualFunction, _current_user_id],
        ["status", FilterInFunction, _open_statuses],
    ]


# --- REST ----------------------------------------------------------------------------------------
class StatusInput(Schema):
    status = fields.String(required=True)
    note = fields.String(allow_none=True, load_default=None)
    resolution = fields.String(allow_none=True, load_default=None)
    resolution_method = fields.String(allow_none=True, load_default=None)


class CommentInput(Schema):
    body = fields.String(required=True)
    internal = fields.Boolean(load_default=False)


class AssignInput(Schema):
    user_id = fields.Integer(allow_none=True, load_default=None)
    department_id = fields.Integer(allow_none=True, load_default=None)


class LinkInput(Schema):
    customer_id = fields.Integer(required=True)
    contact_id = fields.Integer(allow_none=True, load_default=None)


def comment_row(comment: TicketComment) -> dict[str, Any]:
    author = comment.author
    return {
        "id": comment.id,
        "created_at": comment.created_at.isoformat() if comment.created_at else None,
        "author_id": comment.author_id,
        "author": (author.username if author is not None else None),
        "author_name": comment.author_name
        or (f"{author.last_name or ''}{author.first_name or ''}" if author is not None else None),
        "internal": comment.internal,
        "from_customer": comment.from_customer,
        "body": comment.body,
    }


TICKET_LIST = [
    "id", "number", "subject", "status", "priority", "channel", "category.id", "category.name",
    "customer.id", "customer.name", "district_code", "owner.id", "owner.username", "department.id",
    "department.name", "match_state", "sla_state", "first_response_due", "resolution_due", "created_at",
    "updated_at",
]  # fmt: skip


class TicketApi(CrmModelApi):
    """Tickets. Created through the same rules as the screens (numbered, matched, assigned);
    status, comments, assignment, linking and files through their actions."""

    resource_name = "ticket"
    datamodel = TicketInterface(Ticket)
    list_columns = TICKET_LIST
    show_columns = [
        *TICKET_LIST,
        "description", "contact.id", "contact.name", "requester_name", "requester_mobile",
        "requester_email", "assignment_rule.id", "assignment_rule.name", "assigned_at", "resolution",
        "resolution_method", "first_response_at", "resolved_at", "closed_at", "reopen_count",
        "sla_policy_id", "first_response_breached", "resolution_breached", "custom",
    ]  # fmt: skip
    add_columns = [*TICKET_FIELDS, "contact", "custom"]
    edit_columns = [*[c for c in TICKET_FIELDS if c != "channel"], "contact", "custom"]
    order_columns = ["id", "number", "priority", "status", "resolution_due", "created_at", "updated_at"]
    search_columns = [
        "number", "subject", "status", "priority", "category", "district", "owner", "department",
        "sla_state", "channel", "match_state", "customer", "created_at", "resolution_due",
    ]  # fmt: skip
    base_order = ("resolution_due", "asc")
    defaulted_columns = ("priority", "channel")

    def _write(self, status: int, item: Any, schema: Any) -> Any:
        return super()._write(status, item, self.show_model_schema)

    def _action(self, pk: int, schema: Schema | None, work: Any, answer: Any = None) -> Any:
        ticket = self.datamodel.get(pk, self._base_filters)
        if ticket is None:
            return self.response_404()
        data: dict[str, Any] = {}
        if schema is not None:
            body = request.get_json(silent=True)
            if not isinstance(body, dict):
                return self.response_400(message="Request is not a JSON object")
            try:
                data = schema.load(body)
            except ValidationError as err:
                return self.response_400(message=err.messages)
        actor = current_actor()

        def done(result: Any) -> Any:
            if answer is not None:
                return answer(result)
            db.session.refresh(ticket)
            return self.response(200, result=self.show_model_schema.dump(ticket, many=False))

        return self.answer(lambda: commit_work(db.session, actor, lambda: work(ticket, actor, data)), done)

    @api_expose("/<int:pk>/status", methods=["POST"])
    @protect()
    @permission_name("work")
    def status(self, pk: int) -> Any:
        """Change the status (in_progress, waiting, resolved, closed, reopened).
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
                    status: {type: string, enum: [in_progress, waiting, resolved, closed, reopened]}
                    note: {type: string}
                    resolution: {type: string, description: required to resolve}
                    resolution_method: {type: string, description: required to resolve}
          responses:
            200: {description: the ticket}
            400: {$ref: '#/components/responses/400'}
            404: {$ref: '#/components/responses/404'}
        """
        return self._action(
            pk,
            StatusInput(),
            lambda t, actor, d: change_status(
                db.session,
                t,
                d["status"],
                actor,
                note=d["note"],
                resolution=d["resolution"],
                resolution_method=d["resolution_method"],
            ),
        )

    @api_expose("/<int:pk>/comments", methods=["POST"])
    @protect()
    @permission_name("work")
    def post_comment(self, pk: int) -> Any:
        """Reply to the customer, or add an internal note (`internal`: true).
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
                    body: {type: string}
                    internal: {type: boolean}
          responses:
            201: {description: the comment}
            400: {$ref: '#/components/responses/400'}
            404: {$ref: '#/components/responses/404'}
        """
        return self._action(
            pk,
            CommentInput(),
            lambda t, actor, d: add_comment(db.session, t, d["body"], actor=actor, internal=d["internal"]),
            lambda comment: self.response(201, result=comment_row(comment), id=comment.id),
        )

    @api_expose("/<int:pk>/comments", methods=["GET"])
    @protect()
    @permission_name("get")
    def get_comments(self, pk: int) -> Any:
        """The ticket's conversation, oldest first, internal notes marked.
        ---
        get:
          parameters:
          - {in: path, name: pk, schema: {type: integer}}
          responses:
            200: {description: the comments}
            404: {$ref: '#/components/responses/404'}
        """
        ticket = self.datamodel.get(pk, self._base_filters)
        if ticket is None:
            return self.response_404()
        rows = [comment_row(c) for c in conversation(db.session, ticket.id)]
        return self.response(200, result=rows, count=len(rows))

    @api_expose("/<int:pk>/history", methods=["GET"])
    @protect()
    @permission_name("get")
    def get_history(self, pk: int) -> Any:
        """Every status change of the ticket: from, to, when, by whom.
        ---
        get:
          parameters:
          - {in: path, name: pk, schema: {type: integer}}
          responses:
            200: {description: the status changes}
            404: {$ref: '#/components/responses/404'}
        """
        ticket = self.datamodel.get(pk, self._base_filters)
        if ticket is None:
            return self.response_404()
        rows = db.session.scalars(
            select(TicketStatusChange)
            .where(TicketStatusChange.ticket_id == ticket.id)
            .order_by(TicketStatusChange.id)
        )
        result = [
            {
                "from_status": row.from_status,
                "to_status": row.to_status,
                "changed_at": row.changed_at.isoformat(),
                "changed_by_id": row.changed_by_id,
                "note": row.note,
            }
            for row in rows
        ]
        return self.response(200, result=result, count=len(result))

    @api_expose("/<int:pk>/assign", methods=["POST"])
    @protect()
    @permission_name("work")
    def assign(self, pk: int) -> Any:
        """Assign by hand to a user and/or a team (department).
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
                    user_id: {type: integer}
                    department_id: {type: integer}
          responses:
            200: {description: the ticket}
            400: {$ref: '#/components/responses/400'}
            404: {$ref: '#/components/responses/404'}
        """
        return self._action(
            pk,
            AssignInput(),
            lambda t, actor, d: assign_ticket(
                db.session, t, user_id=d["user_id"], department_id=d["department_id"], actor=actor
            ),
        )

    @api_expose("/<int:pk>/link", methods=["POST"])
    @protect()
    @permission_name("work")
    def link(self, pk: int) -> Any:
        """Link the ticket to a customer (and one of its contacts).
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
                    customer_id: {type: integer}
                    contact_id: {type: integer}
          responses:
            200: {description: the ticket}
            400: {$ref: '#/components/responses/400'}
            404: {$ref: '#/components/responses/404'}
        """
        return self._action(
            pk,
            LinkInput(),
            lambda t, actor, d: link_customer(db.session, t, d["customer_id"], d["contact_id"], actor),
        )

    @api_expose("/<int:pk>/attachments", methods=["POST"])
    @protect()
    @permission_name("work")
    def upload(self, pk: int) -> Any:
        """Attach a file (multipart `file`; type and size limits in the settings).
        ---
        post:
          parameters:
          - {in: path, name: pk, schema: {type: integer}}
          requestBody:
            content:
              multipart/form-data:
                schema: {type: object, properties: {file: {type: string, format: binary}}}
          responses:
            201: {description: the attachment}
            400: {$ref: '#/components/responses/400'}
            404: {$ref: '#/components/responses/404'}
        """
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            return self.response_400(message={"file": [str(_("请选择文件"))]})
        return self._action(
            pk,
            None,
            lambda t, actor, d: add_attachment(db.session, t, upload.stream, upload.filename, actor=actor),
            lambda a: self.response(
                201, id=a.id, result={"id": a.id, "filename": a.filename, "size": a.size}
            ),
        )

    @api_expose("/<int:pk>/attachments/<int:attachment_id>", methods=["GET"])
    @protect()
    @permission_name("get")
    def download(self, pk: int, attachment_id: int) -> Any:
        """Download an attachment of a ticket the user may see.
        ---
        get:
          parameters:
          - {in: path, name: pk, schema: {type: integer}}
          - {in: path, name: attachment_id, schema: {type: integer}}
          responses:
            200: {description: the file}
            404: {$ref: '#/components/responses/404'}
        """
        ticket = self.datamodel.get(pk, self._base_filters)
        attachment = db.session.get(TicketAttachment, attachment_id) if ticket is not None else None
        if attachment is None or attachment.ticket_id != ticket.id:
            return self.response_404()
        response = _send_attachment(attachment)
        return response if response is not None else self.response_404()


SETTINGS = "Settings"


def register(appbuilder: AppBuilder) -> None:
    """设置: ticket categories and assignment rules; the ticket's children without a menu; every
    API. The 服务 menu's 服务工单 and 我的待办工单 are in views/__init__.py MENU (so the category
    sits before 设置)."""
    settings = {"category": SETTINGS, "category_label": _("设置"), "category_icon": "fa-cogs"}
    appbuilder.add_view(
        TicketCategoryView, "Ticket categories", label=_("工单分类"), icon="fa-tags", **settings
    )
    appbuilder.add_view(
        AssignmentRuleView, "Assignment rules", label=_("分派规则"), icon="fa-random", **settings
    )
    for view in (TicketCommentView, TicketStatusChangeView, TicketAttachmentView):
        appbuilder.add_view_no_menu(view)
    for api in (
        TicketApi,
        TicketCommentApi,
        TicketStatusChangeApi,
        TicketAttachmentApi,
        TicketCategoryApi,
        AssignmentRuleApi,
    ):
        appbuilder.add_api(api)
