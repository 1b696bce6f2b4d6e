"""我的提醒 (each user's own in-app notifications, mark as read) and the e-mail outbox (admins).

Notifications are not owned records under data scope: every screen and API call shows the current
user only their own (a base filter on the recipient), whoever they are, the admin included.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.actions import action
from flask_appbuilder.models.sqla.filters import FilterEqualFunction
from flask_appbuilder.security.decorators import permission_name
from flask_babel import gettext
from flask_babel import lazy_gettext as _
from markupsafe import Markup

from app.access import current_actor
from app.notifications import mark_read, requeue
from models.notifications import OUTBOX_STATUSES, Notification, OutboxMessage
from views.base import CrmInterface, CrmModelApi, CrmModelView
from views.formatters import display_formatter


def current_user_id() -> int | None:
    """The recipient filter's value: the current user (None matches nobody)."""
    actor = current_actor()
    return actor.id if actor is not None else None


#: only the current user's notifications, in every list, page and API call
MINE = [["user_id", FilterEqualFunction, current_user_id]]

NOTIFICATION_LABELS = {
    "title": _("标题"),
    "body": _("内容"),
    "link": _("链接"),
    "created_at": _("时间"),
    "read_at": _("已读时间"),
    "id": _("打开"),
}


def safe_link(link: str | None) -> str | None:
    """A link inside this site (a path), never another site's address."""
    if link and link.startswith("/") and not link.startswith("//") and "\\" not in link:
        return link
    return None


def link_html(link: str | None) -> Markup | str:
    return Markup('<a href="{}">{}</a>').format(link, link) if safe_link(link) else ""


class NotificationView(CrmModelView):
    """我的提醒: newest first; opening one marks it read and goes to its record."""

    datamodel = CrmInterface(Notification)
    list_title = _("我的提醒")
    base_permissions = ["can_list", "can_show"]
    base_filters = MINE
    # marking read belongs to seeing: every role that may list its notifications may do it
    method_permission_name = {"mark_read_action": "show"}
    label_columns = NOTIFICATION_LABELS
    list_columns = ["title", "body", "created_at", "read_at", "id"]
    show_columns = ["title", "body", "link", "created_at", "read_at"]
    search_columns = ["title", "created_at", "read_at"]
    order_columns = ["created_at", "read_at"]
    base_order = ("created_at", "desc")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        when = display_formatter(Notification, "read_at")
        self.formatters_columns = {
            **self.formatters_columns,
            "read_at": lambda value: when(value) if value is not None else gettext("未读"),
            "link": link_html,
            "id": lambda pk: Markup('<a href="{}">{}</a>').format(
                url_for(f"{type(self).__name__}.open", pk=pk), gettext("查看记录")
            ),
        }

    @expose("/open/<int:pk>")
    @has_access
    @permission_name("show")
    def open(self, pk: int) -> Any:
        """Mark the notification read and go to its record."""
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            abort(404)
        mark_read(self.datamodel.session, current_actor(), [item.id])
        return redirect(safe_link(item.link) or url_for(f"{type(self).__name__}.show", pk=pk))

    @action("mark_read", _("标为已读"), icon="fa-check")
    def mark_read_action(self, items: Any) -> Any:
        items = items if isinstance(items, list) else [items]
        # mark_read() touches only the current user's rows, whatever ids were posted
        count = mark_read(self.datamodel.session, current_actor(), [i.id for i in items if i is not None])
        flash(gettext("已将 %(n)s 条提醒标为已读", n=count), "info")
        return redirect(url_for(f"{type(self).__name__}.list"))


class OutboxMessageView(CrmModelView):
    """发件箱: what the worker sent, is trying to send, or gave up on (admins only)."""

    datamodel = CrmInterface(OutboxMessage)
    list_title = _("发件箱")
    base_permissions = ["can_list", "can_show"]
    method_permission_name = {"requeue_action": "requeue"}
    label_columns = {
        "to_address": _("收件人"),
        "subject": _("主题"),
        "body_text": _("正文"),
        "body_html": _("HTML 正文"),
        "created_at": _("创建时间"),
        "status": _("状态"),
        "attempts": _("尝试次数"),
        "last_error": _("最近错误"),
        "next_attempt_at": _("下次尝试"),
        "sent_at": _("发送时间"),
        "dedup_key": _("去重键"),
    }
    list_columns = ["created_at", "to_address", "subject", "status", "attempts", "sent_at", "last_error"]
    show_columns = [
        "to_address", "subject", "body_text", "status", "attempts", "last_error", "next_attempt_at",
        "created_at", "sent_at", "dedup_key",
    ]  # fmt: skip
    search_columns = ["status", "to_address", "subject", "created_at", "sent_at"]
    order_columns = ["created_at", "sent_at", "status"]
    base_order = ("created_at", "desc")
    formatters_columns = {"status": OUTBOX_STATUSES.label}

    @action("requeue", _("重新发送"), _("重新发送所选的失败邮件?"), "fa-repeat")
    def requeue_action(self, items: Any) -> Any:
        items = items if isinstance(items, list) else [items]
        count = requeue(self.datamodel.session, [i.id for i in items if i is not None])
        flash(gettext("已重新排队 %(n)s 封失败的邮件", n=count), "info")
        return redirect(url_for(f"{type(self).__name__}.list"))


class NotificationApi(CrmModelApi):
    """The current user's notifications; PUT `read_at` marks one read (null: unread again)."""

    resource_name = "notification"
    datamodel = CrmInterface(Notification)
    base_permissions = ["can_get", "can_info", "can_put"]
    base_filters = MINE
    base_order = ("created_at", "desc")
    list_columns = show_columns = ["id", "title", "body", "link", "created_at", "read_at"]
    edit_columns = ["read_at"]
    order_columns = ["id", "created_at", "read_at"]
    search_columns = ["title", "created_at", "read_at"]


class OutboxMessageApi(CrmModelApi):
    """The outbox, read-only (admins)."""

    resource_name = "outbox"
    datamodel = CrmInterface(OutboxMessage)
    base_permissions = ["can_get", "can_info"]
    list_columns = [
        "id", "to_address", "subject", "status", "attempts", "created_at", "sent_at", "last_error",
    ]  # fmt: skip
    show_columns = [*list_columns, "body_text", "body_html", "next_attempt_at", "dedup_key"]
    order_columns = ["id", "created_at", "sent_at", "status"]
    search_columns = ["status", "to_address", "subject", "created_at", "sent_at"]
