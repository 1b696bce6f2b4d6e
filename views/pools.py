"""Screens and REST APIs of the customer pool (公海), handover (转移) and collaborators (团队成员).

Rules live in app.pools; these stay declarative. The pool screens (PoolCustomerView/Api) list
customers through the pool scope (app.access.pool_clause) instead of the owner scope, and leave
out the fields the pool hides from its browsers. The customer actions (claim, release, assign,
lock, transfer) are mixins that views/customers.py adds to the customer screen and API.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.actions import action
from flask_appbuilder.api import API_RESULT_RES_KEY
from flask_appbuilder.api import expose as api_expose
from flask_appbuilder.security.decorators import permission_name, protect
from flask_babel import lazy_gettext as _
from sqlalchemy import ColumnElement, select
from wtforms import StringField

from app.access import (
    POOL_SCOPE,
    DataScopeFilter,
    assignable_user_ids,
    browsable_pool_ids,
    current_actor,
    pool_clause,
    scope_clause,
)
from app.errors import DomainError
from app.extensions import db
from app.permissions import FieldPolicy, field_key  # field permissions
from app.pools import HANDOVER_PARTS, assign, claim, release, set_locked, transfer
from models.customers import Customer
from models.pools import POOL_MOVES, CustomerPool, CustomerTeamMember, PoolMove, PoolRule
from models.security import CrmUser
from views.base import CrmInterface, CrmModelApi, CrmModelView, shape_widget
from views.custom_forms import PREFIX
from views.widgets import customer_select

LABELS = {
    "name": _("名称"),
    "description": _("说明"),
    "active": _("启用"),
    "departments": _("服务部门"),
    "recycle_enabled": _("自动回收"),
    "rule_logic": _("规则组合"),
    "exempt_won": _("已成交客户不回收"),
    "exempt_locked": _("锁定客户不回收"),
    "exempt_open_opportunity": _("有进行中商机的客户不回收"),
    "warn_days": _("提前提醒天数"),
    "daily_claim_cap": _("每人每日领取上限"),
    "reclaim_cooldown_days": _("前负责人重新领取冷却天数"),
    "max_owned": _("每人客户库容"),
    "max_locked": _("每人锁定库容"),
    "hidden_fields": _("对公海浏览者隐藏的字段"),
    "rules": _("回收规则"),
    "pool": _("公海"),
    "pool_id": _("公海"),
    "kind": _("规则类型"),
    "days": _("天数"),
    "days_by_level": _("按客户级别的天数"),
    "position": _("排序"),
    "customer": _("客户"),
    "action": _("操作"),
    "from_user": _("原负责人"),
    "to_user": _("新负责人"),
    "reason": _("原因"),
    "actor": _("操作人"),
    "moved_at": _("时间"),
    "batch": _("批次"),
    "user": _("成员"),
    "access": _("权限"),
    "until": _("截止日期"),
    "note": _("备注"),
}
#: customers seen in a pool: their own labels (a customer's "kind" is not a rule's kind)
POOL_CUSTOMER_LABELS = {
    "name": _("客户名称"),
    "kind": _("客户类型"),
    "pool_id": _("公海"),
    "level": _("客户级别"),
    "status": _("客户状态"),
    "industry": _("行业"),
    "size": _("企业规模"),
    "website": _("网址"),
    "mobile": _("手机号"),
    "phone": _("电话"),
    "email": _("电子邮箱"),
    "city": _("城市"),
    "address": _("地址"),
    "source": _("客户来源"),
    "notes": _("备注"),
    "pooled_at": _("进入公海时间"),
}


# --- form fields for the JSON columns --------------------------------------------------------------
class LevelDaysField(StringField):
    """`key=60, potential=15` in the form, {"key": 60, "potential": 15} in the column; what is
    not a number is passed on as text so the service names the mistake."""

    def _value(self) -> str:
        data = self.data if isinstance(self.data, dict) else {}
        return ", ".join(f"{level}={days}" for level, days in data.items())

    def process_formdata(self, valuelist: list[Any]) -> None:
        text = (valuelist[0] if valuelist else "") or ""
        parsed: dict[str, Any] = {}
        for part in text.replace(",", ",").split(","):
            if not part.strip():
                continue
            level, _sep, days = part.partition("=")
            days = days.strip()
            parsed[level.strip()] = int(days) if days.isdigit() else days
        self.data = parsed


class FieldListField(StringField):
    """`mobile, email` in the form, ["mobile", "email"] in the column."""

    def _value(self) -> str:
        return ", ".join(self.data) if isinstance(self.data, list) else ""

    def process_formdata(self, valuelist: list[Any]) -> None:
        text = (valuelist[0] if valuelist else "") or ""
        self.data = [name.strip() for name in text.replace(",", ",").split(",") if name.strip()]


# --- configuration ---------------------------------------------------------------------------------
RULE_FIELDS = ["pool", "kind", "days", "days_by_level", "position"]


class PoolRuleView(CrmModelView):
    datamodel = CrmInterface(PoolRule)
    list_title = _("回收规则")
    label_columns = LABELS
    description_columns = {"days_by_level": _("例如 key=60, potential=15 (重点客户 60 天,潜在客户 15 天)")}
    list_columns = ["pool", "position", "kind", "days", "days_by_level"]
    show_columns = add_columns = edit_columns = RULE_FIELDS
    add_form_extra_fields = edit_form_extra_fields = {
        "days_by_level": LevelDaysField(LABELS["days_by_level"])
    }
    base_order = ("position", "asc")


class PoolMoveView(CrmModelView):
    """The history of customers entering and leaving pools and changing hands (read-only)."""

    datamodel = CrmInterface(PoolMove)
    list_title = _("公海记录")
    base_permissions = ["can_list", "can_show"]
    label_columns = LABELS
    list_columns = ["moved_at", "action", "customer", "pool", "from_user", "to_user", "reason", "actor"]
    show_columns = [*list_columns, "batch"]
    search_columns = ["action", "customer", "pool", "moved_at", "batch"]
    formatters_columns = {"action": POOL_MOVES.label}
    base_order = ("id", "desc")


POOL_FIELDS = [
    "name",
    "description",
    "active",
    "departments",
    "recycle_enabled",
    "rule_logic",
    "exempt_won",
    "exempt_locked",
    "exempt_open_opportunity",
    "warn_days",
    "daily_claim_cap",
    "reclaim_cooldown_days",
    "max_owned",
    "max_locked",
    "hidden_fields",
]


class CustomerPoolView(CrmModelView):
    """Pool configuration (admins): departments served, rules, claim limits, hidden fields."""

    datamodel = CrmInterface(CustomerPool)
    list_title = _("公海设置")
    label_columns = LABELS
    description_columns = {
        "hidden_fields": _("字段名,逗号分隔,如 mobile, email, phone 或自定义字段的 API 名称"),
        "max_owned": _("0 表示不限"),
        "max_locked": _("0 表示不限"),
        "daily_claim_cap": _("0 表示不限"),
    }
    list_columns = [
        "name",
        "active",
        "departments",
        "rule_logic",
        "warn_days",
        "daily_claim_cap",
        "max_owned",
    ]
    show_columns = add_columns = edit_columns = POOL_FIELDS
    add_form_extra_fields = edit_form_extra_fields = {
        "hidden_fields": FieldListField(LABELS["hidden_fields"])
    }
    related_views = [PoolRuleView, PoolMoveView]
    base_order = ("id", "asc")


class CustomerTeamMemberView(CrmModelView):
    datamodel = CrmInterface(CustomerTeamMember)
    list_title = _("团队成员")
    label_columns = LABELS
    list_columns = ["customer", "user", "access", "until", "note"]
    show_columns = add_columns = edit_columns = ["customer", "user", "access", "until", "note"]
    add_form_extra_fields = edit_form_extra_fields = {"customer": customer_select(LABELS["customer"])}
    search_columns = ["customer", "user", "access", "until"]
    base_order = ("id", "desc")


# --- the pool screens: customers in the pools the user may browse ----------------------------------
def use_pool_scope(view: Any) -> None:
    """Replace the owner scope the base class attached by the pool scope (same filter class,
    so the conventions test and every list/show/API by id keep one data-scope filter)."""
    view.base_filters = [["id", DataScopeFilter, POOL_SCOPE]]
    view._base_filters = view.datamodel.get_filters().add_filter_list(view.base_filters)


def hidden_fields(pool_ids: set[int] | None) -> set[str]:
    """What the pools hide from their browsers (None: every pool), as column and form names."""
    query = select(CustomerPool.hidden_fields)
    if pool_ids is not None:
        query = query.where(CustomerPool.id.in_(sorted(pool_ids)))
    names = {name for fields in db.session.scalars(query) for name in fields or []}
    if "street" in names:
        names.add("address")  # the address shows the street
    return names | {PREFIX + name for name in names}


def pool_names() -> dict[int, str]:
    return {pool_id: name for pool_id, name in db.session.execute(select(CustomerPool.id, CustomerPool.name))}


def without_hidden(widget: Any, hidden: set[str]) -> None:
    """Drop hidden columns from a rendered list or show widget (values stay aligned): the pool's
    hidden fields go through the same mechanism as the field permissions."""
    shape_widget(widget, FieldPolicy(Customer, {field_key(name): "hidden" for name in hidden}), in_list=False)


POOL_CUSTOMER_LIST = ["name", "kind", "level", "industry", "city", "pool_id", "pooled_at"]
POOL_CUSTOMER_SHOW = [
    "name",
    "kind",
    "level",
    "status",
    "source",
    "industry",
    "size",
    "website",
    "mobile",
    "phone",
    "email",
    "address",
    "notes",
    "pool_id",
    "pooled_at",
]


class PoolCustomerView(CrmModelView):
    """公海客户: the customers waiting in the pools serving the user's department; claim them,
    or (managers) assign them."""

    datamodel = CrmInterface(Customer)
    list_title = _("公海客户")
    show_title = _("公海客户详情")
    base_permissions = ["can_list", "can_show", "can_claim", "can_assign"]
    method_permission_name = {"claim_action": "claim", "assign_action": "assign", "assign_form": "assign"}
    label_columns = POOL_CUSTOMER_LABELS
    list_columns = POOL_CUSTOMER_LIST
    show_columns = POOL_CUSTOMER_SHOW
    search_columns = ["name", "level", "industry", "pool_id", "pooled_at"]
    order_columns = ["name", "level", "pooled_at"]
    base_order = ("pooled_at", "desc")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        use_pool_scope(self)
        self.formatters_columns = {**self.formatters_columns, "pool_id": self._pool_name}

    @staticmethod
    def _pool_name(pool_id: Any) -> str:
        return pool_names().get(pool_id, "") if pool_id else ""

    def _get_list_widget(self, filters: Any, *args: Any, **kwargs: Any) -> Any:
        widgets = super()._get_list_widget(filters, *args, **kwargs)
        without_hidden(widgets["list"], hidden_fields(browsable_pool_ids(db.session, current_actor())))
        return widgets

    def _get_show_widget(self, pk: Any, item: Any, *args: Any, **kwargs: Any) -> Any:
        widgets = super()._get_show_widget(pk, item, *args, **kwargs)
        without_hidden(widgets["show"], hidden_fields({item.pool_id}))
        return widgets

    @action("claim_action", _("领取"), _("确定领取所选客户?"), "fa-hand-paper-o")
    def claim_action(self, items: Any) -> Any:
        """Claim each selected customer; the rules refuse some with their reason."""
        actor, claimed = current_actor(), 0
        for item in items if isinstance(items, list) else [items]:
            if item is None:
                continue
            try:
                claim(db.session, item.id, actor)
                claimed += 1
            except DomainError as exc:
                db.session.rollback()
                flash(f"{item.name}: {exc.summary()}", "warning")
        if claimed:
            flash(str(_("已领取 %(n)s 个客户", n=claimed)), "success")
        return redirect(url_for(".list"))

    @action("assign_action", _("分配"), None, "fa-share")
    def assign_action(self, items: Any) -> Any:
        ids = [str(item.id) for item in (items if isinstance(items, list) else [items]) if item is not None]
        return redirect(url_for(".assign_form", ids=",".join(ids)))

    @expose("/assign", methods=["GET", "POST"])
    @has_access
    def assign_form(self) -> Any:
        """Choose the person to give the selected pool customers to."""
        ids = _ids(request.values.get("ids", ""))
        if request.method == "POST":
            to_user = request.form.get("to_user_id", type=int)
            done = 0
            for customer_id in ids:
                try:
                    assign(db.session, customer_id, to_user, current_actor())
                    done += 1
                except DomainError as exc:
                    db.session.rollback()
                    flash(f"{customer_id}: {exc.summary()}", "warning")
            if done:
                flash(str(_("已分配 %(n)s 个客户", n=done)), "success")
            return redirect(url_for(".list"))
        return self.render_template(
            "crm/pool_form.html",
            title=_("从公海分配客户"),
            customers=_names(ids, pool_clause(db.session, current_actor())),
            ids=ids,
            users=_assignable_users(),
            need_user=True,
            need_reason=False,
            parts=[],
        )


def _ids(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip().isdigit()][:5000]


def _names(ids: list[int], visible: ColumnElement[bool] | None) -> list[str]:
    """Names of the selected customers for the confirm form, only those the actor may act on
    (ids come from the query string, so anyone could ask for any id)."""
    query = select(Customer.name).where(Customer.id.in_(ids[:50]))
    if visible is not None:
        query = query.where(visible)
    return list(db.session.scalars(query))


def _owned_names(ids: list[int]) -> list[str]:
    return _names(ids, scope_clause(db.session, Customer, current_actor(), write=True))


def _assignable_users() -> list[CrmUser]:
    allowed = assignable_user_ids(db.session, current_actor())
    query = select(CrmUser).where(CrmUser.active.is_(True)).order_by(CrmUser.username)
    if allowed is not None:
        query = query.where(CrmUser.id.in_(sorted(allowed)))
    return list(db.session.scalars(query))


class CustomerPoolActions:
    """The customer screen's pool and handover actions (mixed into views.customers.CustomerView):
    release with a reason, lock and unlock, transfer the selected customers."""

    method_permission_name = {
        "release_action": "edit",
        "release_form": "edit",
        "lock_action": "edit",
        "unlock_action": "edit",
        "transfer_action": "edit",
        "transfer_form": "edit",
    }

    actions: dict[str, Any]

    def actions_for(self, customer: Any) -> dict[str, Any]:
        """The actions a customer's own page offers: lock or unlock, as it stands; a customer
        in a pool has no owner to release or hand it over (its list keeps them all, for a
        selection of several)."""
        drop = {"lock_action" if customer.locked else "unlock_action"}
        if customer.pool_id is not None:
            drop |= {"release_action", "transfer_action", "lock_action", "unlock_action"}
        return {name: item for name, item in self.actions.items() if name not in drop}

    @action("release_action", _("退回公海"), None, "fa-undo")
    def release_action(self, items: Any) -> Any:
        ids = [str(item.id) for item in (items if isinstance(items, list) else [items]) if item is not None]
        return redirect(url_for(".release_form", ids=",".join(ids)))

    @expose("/release", methods=["GET", "POST"])
    @has_access
    def release_form(self) -> Any:
        """Give the selected customers back to their pool, with a reason."""
        ids = _ids(request.values.get("ids", ""))
        if request.method == "POST":
            done = 0
            for customer_id in ids:
                try:
                    release(db.session, customer_id, request.form.get("reason"), current_actor())
                    done += 1
                except DomainError as exc:
                    db.session.rollback()
                    flash(f"{customer_id}: {exc.summary()}", "warning")
            if done:
                flash(str(_("已退回 %(n)s 个客户到公海", n=done)), "success")
            return redirect(url_for(".list"))
        return self.render_template(
            "crm/pool_form.html",
            title=_("退回公海"),
            customers=_owned_names(ids),
            ids=ids,
            users=[],
            need_user=False,
            need_reason=True,
            parts=[],
        )

    def _lock(self, items: Any, locked: bool) -> Any:
        for item in items if isinstance(items, list) else [items]:
            if item is None:
                continue
            try:
                set_locked(db.session, item.id, locked, current_actor())
            except DomainError as exc:
                db.session.rollback()
                flash(f"{item.name}: {exc.summary()}", "warning")
        return redirect(request.referrer or url_for(".list"))

    @action("lock_action", _("锁定"), None, "fa-lock")
    def lock_action(self, items: Any) -> Any:
        return self._lock(items, True)

    @action("unlock_action", _("解锁"), None, "fa-unlock")
    def unlock_action(self, items: Any) -> Any:
        return self._lock(items, False)

    @action("transfer_action", _("转移给他人"), None, "fa-exchange")
    def transfer_action(self, items: Any) -> Any:
        ids = [str(item.id) for item in (items if isinstance(items, list) else [items]) if item is not None]
        return redirect(url_for(".transfer_form", ids=",".join(ids)))

    @expose("/transfer", methods=["GET", "POST"])
    @has_access
    def transfer_form(self) -> Any:
        """Move the selected customers and what belongs to them to another owner."""
        ids = _ids(request.values.get("ids", ""))
        if request.method == "POST":
            try:
                result = transfer(
                    db.session,
                    ids,
                    request.form.get("to_user_id", type=int),
                    request.form.get("reason"),
                    current_actor(),
                    request.form.getlist("include"),
                )
            except DomainError as exc:
                db.session.rollback()
                flash(exc.summary(), "warning")
                return redirect(url_for(".transfer_form", ids=",".join(map(str, ids))))
            flash(str(_("已转移 %(n)s 个客户", n=result.customers)), "success")
            return redirect(url_for(".list"))
        return self.render_template(
            "crm/pool_form.html",
            title=_("转移客户"),
            customers=_owned_names(ids),
            ids=ids,
            users=_assignable_users(),
            need_user=True,
            need_reason=True,
            parts=[(part, PART_LABELS[part]) for part in HANDOVER_PARTS],
        )


PART_LABELS = {"opportunities": _("进行中的商机"), "orders": _("未完成的订单"), "tasks": _("未完成的任务")}


# --- REST ------------------------------------------------------------------------------------------
def _json_body() -> dict[str, Any] | None:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else ({} if not request.data else None)


class CustomerPoolApiActions:
    """POST /api/v1/customer/<id>/claim, /release, /assign, /lock and /transfer (mixed into
    views.customers.CustomerApi); rules and data scope are the services'."""

    def _run(self, work: Any) -> Any:
        body = _json_body()
        if body is None:
            return self.response_400(message="Request is not a JSON object")  # type: ignore[attr-defined]
        return self.answer(  # type: ignore[attr-defined]
            lambda: work(body), lambda result: self.response(200, result=result)  # type: ignore[attr-defined]
        )

    @staticmethod
    def _customer(customer: Customer) -> dict[str, Any]:
        return {
            "id": customer.id,
            "owner_id": customer.owner_id,
            "pool_id": customer.pool_id,
            "locked": customer.locked,
        }

    @api_expose("/<int:pk>/claim", methods=["POST"])
    @protect()
    @permission_name("put")
    def claim(self, pk: int) -> Any:
        """Claim a customer from a pool (daily cap, cooldown, capacity apply).
        ---
        post:
          parameters:
          - {in: path, name: pk, schema: {type: integer}}
          responses:
            200: {description: 'the customer: id, owner_id, pool_id, locked'}
            400: {description: 'a claim rule refused it (message says which)'}
            404: {description: 'not in a pool the user may browse'}
            409: {description: 'someone claimed it first'}
        """
        return self._run(lambda body: self._customer(claim(db.session, pk, current_actor())))

    @api_expose("/<int:pk>/release", methods=["POST"])
    @protect()
    @permission_name("put")
    def release(self, pk: int) -> Any:
        """Give an owned customer back to its department's pool.
        ---
        post:
          parameters:
          - {in: path, name: pk, schema: {type: integer}}
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {reason: {type: string}}, required: [reason]}
          responses:
            200: {description: 'the customer: id, owner_id, pool_id, locked'}
            400: {description: 'no reason, or no pool serves its department'}
            404: {description: 'not an owned customer within the owner scope'}
        """
        return self._run(
            lambda body: self._customer(release(db.session, pk, body.get("reason"), current_actor()))
        )

    @api_expose("/<int:pk>/assign", methods=["POST"])
    @protect()
    @permission_name("put")
    def assign(self, pk: int) -> Any:
        """Give a pooled customer to a user (managers and admins; capacity applies).
        ---
        post:
          parameters:
          - {in: path, name: pk, schema: {type: integer}}
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {to_user_id: {type: integer}}, required: [to_user_id]}
          responses:
            200: {description: 'the customer: id, owner_id, pool_id, locked'}
            403: {description: 'a rep, or a user outside the actor scope'}
        """
        return self._run(
            lambda body: self._customer(assign(db.session, pk, body.get("to_user_id"), current_actor()))
        )

    @api_expose("/<int:pk>/lock", methods=["POST"])
    @protect()
    @permission_name("put")
    def lock(self, pk: int) -> Any:
        """Lock (or with {"locked": false} unlock) an owned customer; max_locked applies.
        ---
        post:
          parameters:
          - {in: path, name: pk, schema: {type: integer}}
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {locked: {type: boolean, default: true}}}
          responses:
            200: {description: 'the customer: id, owner_id, pool_id, locked'}
        """
        return self._run(
            lambda body: self._customer(
                set_locked(db.session, pk, bool(body.get("locked", True)), current_actor())
            )
        )

    @api_expose("/transfer", methods=["POST"])
    @protect()
    @permission_name("put")
    def transfer(self) -> Any:
        """Hand customers over to another owner, with their open opportunities, unfinished
        orders and open tasks, in one transaction.
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  required: [customer_ids, to_user_id, reason]
                  properties:
                    customer_ids: {type: array, items: {type: integer}}
                    to_user_id: {type: integer}
                    reason: {type: string}
                    include: {type: array, items: {type: string, enum: [opportunities, orders, tasks]}}
          responses:
            200: {description: 'batch id and how many customers, opportunities, orders, tasks moved'}
            400: {description: 'bad input (message per field)'}
            403: {description: 'a customer outside the owner scope or a target the actor may not assign'}
        """
        return self._run(
            lambda body: transfer(
                db.session,
                body.get("customer_ids"),
                body.get("to_user_id"),
                body.get("reason"),
                current_actor(),
                body.get("include"),
            ).as_dict()
        )


class CustomerPoolApi(CrmModelApi):
    resource_name = "pool"
    datamodel = CrmInterface(CustomerPool)
    list_columns = ["id", "name", "active", "rule_logic", "warn_days", "daily_claim_cap", "departments.id"]
    show_columns = [
        "id",
        *[f for f in POOL_FIELDS if f != "departments"],
        "departments.id",
        "departments.name",
        "rules.id",
        "rules.kind",
        "rules.days",
        "rules.days_by_level",
    ]
    add_columns = edit_columns = POOL_FIELDS
    order_columns = ["id", "name"]
    search_columns = ["name", "active"]


class PoolRuleApi(CrmModelApi):
    resource_name = "poolrule"
    datamodel = CrmInterface(PoolRule)
    list_columns = show_columns = ["id", "pool.id", "kind", "days", "days_by_level", "position"]
    add_columns = edit_columns = RULE_FIELDS
    order_columns = ["id", "position"]
    search_columns = ["pool", "kind"]


class PoolMoveApi(CrmModelApi):
    """Pool history, read-only."""

    resource_name = "poolmove"
    datamodel = CrmInterface(PoolMove)
    base_permissions = ["can_get", "can_info"]
    list_columns = show_columns = [
        "id", "customer.id", "customer.name", "action", "pool.id", "from_user.id", "to_user.id", "reason",
        "actor.id", "moved_at", "batch",
    ]  # fmt: skip
    order_columns = ["id", "moved_at"]
    search_columns = ["customer", "action", "pool", "moved_at", "batch"]


class CustomerTeamMemberApi(CrmModelApi):
    resource_name = "customerteam"
    datamodel = CrmInterface(CustomerTeamMember)
    list_columns = show_columns = ["id", "customer.id", "customer.name", "user.id", "user.username", "access",
                                   "until", "note"]  # fmt: skip
    add_columns = edit_columns = ["customer", "user", "access", "until", "note"]
    order_columns = ["id", "until"]
    search_columns = ["customer", "user", "access"]


class PoolCustomerApi(CrmModelApi):
    """GET /api/v1/poolcustomer/: customers in the pools the user may browse, without the fields
    each pool hides."""

    resource_name = "poolcustomer"
    datamodel = CrmInterface(Customer)
    base_permissions = ["can_get", "can_info"]
    list_columns = [
        "id",
        "name",
        "kind",
        "level",
        "status",
        "industry.name",
        "city.name",
        "pool_id",
        "pooled_at",
    ]
    show_columns = [
        "id", "name", "kind", "level", "status", "source", "industry.name", "size", "website", "mobile",
        "phone", "email", "province.name", "city.name", "district.name", "street", "notes", "credit_code",
        "custom", "pool_id", "pooled_at",
    ]  # fmt: skip
    order_columns = ["id", "name", "level", "pooled_at"]
    search_columns = ["name", "level", "status", "industry", "pool_id"]

    def __init__(self) -> None:
        super().__init__()
        use_pool_scope(self)

    def pre_get(self, data: dict[str, Any]) -> None:
        super().pre_get(data)
        self._strip([data.get(API_RESULT_RES_KEY) or {}])

    def pre_get_list(self, data: dict[str, Any]) -> None:
        super().pre_get_list(data)
        self._strip(data.get(API_RESULT_RES_KEY) or [])

    @staticmethod
    def _strip(rows: list[dict[str, Any]]) -> None:
        """Remove, row by row, what the row's pool hides (columns and custom fields)."""
        hidden = {
            pool_id: set(fields or [])
            for pool_id, fields in db.session.execute(select(CustomerPool.id, CustomerPool.hidden_fields))
        }
        for row in rows:
            names = hidden.get(row.get("pool_id"), set())
            for name in names:
                row.pop(name, None)
            if isinstance(row.get("custom"), dict):
                row["custom"] = {k: v for k, v in row["custom"].items() if k not in names}
