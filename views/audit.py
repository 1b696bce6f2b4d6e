"""审计日志: the audit log screen and REST resource (read-only), and every record's History tab.

Nothing here writes: the screen and the API offer list and show only (no add, edit, delete), and
the ORM refuses to change audit rows anyway (app/audit.py). Who may read:
- the whole log (screen 审计日志, GET /api/v1/audit/): `can_list`/`can_get` on AuditLog*,
  i.e. Admin unless an admin grants it to another role;
- a record's History tab: `can_history` on AuditLogView (or the whole log), and only for a
  record the user can open (its data scope), with the fields the user may not see left out.

This module imports nothing from views.base (views.base mixes HistoryMixin into every screen).
"""

from __future__ import annotations

import json
from typing import Any

from flask import abort, current_app, render_template, request
from flask_appbuilder import AppBuilder, ModelRestApi, ModelView, expose, has_access
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.widgets import ListWidget
from flask_babel import get_locale, gettext
from flask_babel import lazy_gettext as _
from markupsafe import Markup
from sqlalchemy import inspect, select

from app.audit import REDACTED, entity_of, history_clause
from app.extensions import db
from models.audit import AuditLog

#: the menu category of FAB's own security screens (users, roles)
SECURITY = "Security"
#: the permission that shows History tabs (the whole log's can_list shows them too)
HISTORY_PERMISSION = "can_history"
AUDIT_VIEW = "AuditLogView"

ACTIONS = {
    "insert": _("新建"),
    "update": _("修改"),
    "delete": _("删除"),
    "recompute": _("批量重算"),
    "login": _("登录"),
    "login_failed": _("登录失败"),
    "logout": _("退出"),
    "account_locked": _("账号锁定"),
    "mfa_enrolled": _("启用两步验证"),
    "mfa_reset": _("重置两步验证"),
    "token_created": _("创建 API 令牌"),
    "token_revoked": _("吊销 API 令牌"),
    "export": _("导出"),
    "key_rotation": _("密钥轮换"),
}

LABELS = {
    "id": _("编号"),
    "created_at": _("时间 (UTC)"),
    "user_id": _("用户编号"),
    "username": _("用户"),
    "ip": _("IP 地址"),
    "action": _("操作"),
    "entity": _("对象"),
    "entity_id": _("记录编号"),
    "changes": _("变更"),
    "details": _("详情"),
    "prev_hash": _("前一哈希"),
    "hash": _("哈希"),
}


def action_label(code: str | None) -> str:
    return str(ACTIONS.get(code or "", code or ""))


def shown(value: Any) -> str:
    """A value of the changes table as text: lists joined, nothing as a dash."""
    if value is None or value == "":
        return "—"
    if isinstance(value, list):
        return ", ".join(shown(item) for item in value) or "—"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, bool):
        return str(_("是") if value else _("否"))
    return str(value)


def change_rows(changes: dict[str, Any] | None, label: Any = None, visible: Any = None) -> list[tuple]:
    """(field label, old, new) rows of a changes dict; `visible(field)` may drop or mask a field
    by returning None or a (old, new) replacement."""
    rows = []
    for key, pair in sorted((changes or {}).items()):
        old, new = pair if isinstance(pair, list | tuple) and len(pair) == 2 else (None, pair)
        if visible is not None:
            replaced = visible(key, old, new)
            if replaced is None:
                continue
            old, new = replaced
        rows.append((label(key) if label else key, shown(old), shown(new)))
    return rows


def may_read_log() -> bool:
    return bool(current_app.appbuilder.sm.has_access("can_list", AUDIT_VIEW))


def may_see_history() -> bool:
    sm = current_app.appbuilder.sm
    return bool(sm.has_access(HISTORY_PERMISSION, AUDIT_VIEW) or sm.has_access("can_list", AUDIT_VIEW))


class CappedAuditInterface(SQLAInterface):
    """COUNT(*) over a log of millions of rows is too slow for every page: count up to the cap."""

    def query_count(self, query: Any, filters: Any = None, select_columns: Any = None) -> int:
        cap = current_app.config["CRM_COUNT_CAP"]
        inner = self._apply_inner_all(query, filters, select_columns=select_columns, aliases_mapping={})
        return inner.with_entities(AuditLog.id).limit(cap + 1).count()


class AuditListWidget(ListWidget):
    """The list with the capped count in its header ("10000+")."""

    template = "crm/widgets/list.html"


class AuditLogView(ModelView):
    """审计日志: newest first, filters by user, action, entity, record, time and IP."""

    datamodel = CappedAuditInterface(AuditLog)
    base_permissions = ["can_list", "can_show", HISTORY_PERMISSION]
    #: no add, edit, delete, actions or download routes at all (404), whatever the permissions
    include_route_methods = {"list", "show"}
    list_title = _("审计日志")
    show_title = _("审计记录")
    list_widget = AuditListWidget
    #: the list template asks about an export button: there is none (no such permission exists)
    method_permission_name = {"export": "export"}
    page_size = 50
    base_order = ("id", "desc")
    label_columns = LABELS
    list_columns = ["id", "created_at", "username", "ip", "action", "entity", "entity_id"]
    show_columns = [*list_columns, "user_id", "changes", "details", "prev_hash", "hash"]
    search_columns = ["username", "user_id", "action", "entity", "entity_id", "created_at", "ip"]
    order_columns = ["id", "created_at"]
    formatters_columns = {"action": action_label}
    show_template = "crm/audit_show.html"

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk: Any) -> Any:
        """One row: who, when, where from, and the old -> new table."""
        row = db.session.get(AuditLog, pk) if str(pk).isdigit() else None
        if row is None:
            abort(404)
        return self.render_template(
            self.show_template,
            title=self.show_title,
            row=row,
            labels=LABELS,
            action=action_label(row.action),
            changes=change_rows(row.changes),
            details=json.dumps(row.details, ensure_ascii=False, indent=2, sort_keys=True)
            if row.details
            else "",
        )


class AuditLogApi(ModelRestApi):
    """GET /api/v1/audit/ and /api/v1/audit/<id>: read-only, no POST, PUT or DELETE."""

    resource_name = "audit"
    datamodel = CappedAuditInterface(AuditLog)
    allow_browser_login = True
    include_route_methods = {"get", "get_list", "info"}
    base_permissions = ["can_get", "can_info"]
    base_order = ("id", "desc")
    page_size = 50
    list_columns = ["id", "created_at", "user_id", "username", "ip", "action", "entity", "entity_id"]
    show_columns = [*list_columns, "changes", "details", "prev_hash", "hash"]
    search_columns = ["username", "user_id", "action", "entity", "entity_id", "created_at", "ip"]
    order_columns = ["id", "created_at"]


class HistoryTab:
    """What FAB's show template needs of a related view to draw a tab: a title (the tab's
    element id is the class name)."""

    title = _("历史")


class HistoryMixin:
    """A History tab on every record's page and /<view>/history/<pk> with all of it, paged.

    Mixed into CrmModelView, so every entity has it without code of its own. The tab is added
    to whatever the show page renders (FAB's show template and ours draw related-view tabs).
    """

    history_page_size = 20

    def render_template(self, template: str, **kwargs: Any) -> Any:
        widgets = kwargs.get("widgets")
        if (
            template == getattr(self, "show_template", None)
            and "related_views" in kwargs
            and isinstance(widgets, dict)
            and "pk" in kwargs
            and may_see_history()
        ):
            pk = kwargs["pk"]
            kwargs["related_views"] = [*(kwargs["related_views"] or []), HistoryTab()]
            kwargs["widgets"] = {
                **widgets,
                "related_views": [*widgets.get("related_views", []), lambda **_kw: self._history_tab(pk)],
            }
        return super().render_template(template, **kwargs)  # type: ignore[misc]

    def _history_entity(self) -> str:
        return entity_of(inspect(self.datamodel.obj).local_table.name)  # type: ignore[attr-defined]

    def _history_rows(self, pk: Any, page: int, size: int) -> tuple[list[dict[str, Any]], bool]:
        clause = history_clause(db.session, self._history_entity(), pk)
        query = select(AuditLog).where(clause).order_by(AuditLog.id.desc())
        found = list(db.session.scalars(query.offset(page * size).limit(size + 1)))
        rows = [
            {
                "row": row,
                "action": action_label(row.action),
                "changes": change_rows(row.changes, self._history_label, self._history_visible),
            }
            for row in found[:size]
        ]
        return rows, len(found) > size

    def _history_label(self, key: str) -> str:
        labels = getattr(self, "label_columns", {}) or {}
        if key.startswith("custom."):
            return self._custom_labels().get(key, key)
        return str(labels.get(key) or labels.get(key.removesuffix("_id")) or key)

    def _custom_labels(self) -> dict[str, str]:
        fields = getattr(self, "custom_fields", None)
        if fields is None:
            return {}
        language = str(get_locale() or "zh")[:2]
        return {f"custom.{field.api_name}": field.label(language) for field, _editable in fields()}

    def _history_visible(self, key: str, old: Any, new: Any) -> tuple[Any, Any] | None:
        """None for a field the user may not see; masked values for a masked one."""
        if key.startswith("custom.") and key not in self._custom_labels():
            return None  # archived, or hidden from the user's roles
        rules = getattr(self, "field_rules", None)
        if rules is None:
            return old, new
        policy = rules()
        if policy.hidden(key):
            return None
        if policy.masked(key, False):
            return tuple(v if v in (None, REDACTED) else policy.show(key, v, False) for v in (old, new))
        return old, new

    def _history_tab(self, pk: Any) -> Markup:
        rows, more = self._history_rows(pk, 0, self.history_page_size)
        return Markup(
            render_template(
                "crm/audit_history_rows.html", rows=rows, more=more, page=0,
                full_link=f"{request.script_root}{self.route_base}/history/{pk}",  # type: ignore[attr-defined]
            )
        )

    @expose("/history/<pk>", methods=["GET"])
    def history(self, pk: Any) -> Any:
        """All of a record's history, newest first, a page at a time; 404 outside the user's data
        scope or without the right to read history."""
        if not may_see_history():
            abort(404)
        item = self.datamodel.get(pk, self._base_filters)  # type: ignore[attr-defined]
        if item is None:
            abort(404)
        try:
            page = max(int(request.args.get("page", 0)), 0)
        except ValueError:
            page = 0
        rows, more = self._history_rows(pk, page, 50)
        return self.render_template(  # type: ignore[attr-defined]
            "crm/audit_history.html",
            # gettext, not the lazy _: a lazy string counts as safe markup (__html__) in Jinja and
            # the record's name inside it would reach the page unescaped
            title=gettext("历史: %(record)s", record=str(item)),
            rows=rows,
            more=more,
            page=page,
            show_link=f"{request.script_root}{self.route_base}/show/{pk}",  # type: ignore[attr-defined]
        )


def register(appbuilder: AppBuilder) -> None:
    """审计日志 in the security menu, and its read-only API."""
    appbuilder.add_view(
        AuditLogView,
        "Audit log",
        label=_("审计日志"),
        icon="fa-shield",
        category=SECURITY,
        category_label=_("Security"),
        category_icon="fa-cogs",
    )
    appbuilder.add_api(AuditLogApi)
