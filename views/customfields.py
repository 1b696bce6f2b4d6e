"""Settings > 自定义字段: the admin screen and REST API for custom-field definitions."""

from __future__ import annotations

from flask_babel import lazy_gettext as _
from wtforms import StringField, TextAreaField

from customfields.definitions import CustomField
from views.base import CrmInterface, CrmModelApi, CrmModelView

LABELS = {
    "entity": _("对象"),
    "api_name": _("API 名称"),
    "label_zh": _("中文名称"),
    "label_en": _("英文名称"),
    "field_type": _("字段类型"),
    "required": _("必填"),
    "default": _("默认值"),
    "help_text": _("帮助说明"),
    "section": _("分组标题"),
    "position": _("排序"),
    "choices": _("选项 (每行一个)"),
    "min_value": _("最小值"),
    "max_value": _("最大值"),
    "max_length": _("最大长度"),
    "pattern": _("格式 (正则表达式)"),
    "unique": _("唯一"),
    "indexed": _("建索引"),
    "visible_roles": _("可见角色 (留空为全部)"),
    "editable_roles": _("可编辑角色 (留空为全部)"),
    "show_in_list": _("在列表中显示"),
    "archived": _("已归档"),
    "updated_at": _("更新时间"),
}
COLUMNS = [
    "entity", "api_name", "label_zh", "label_en", "field_type", "required", "default", "help_text",
    "section", "position", "choices", "min_value", "max_value", "max_length", "pattern", "unique",
    "indexed", "visible_roles", "editable_roles", "show_in_list", "archived",
]  # fmt: skip


class ListAsTextField(TextAreaField):
    """A JSON list edited as text, one item per line (the service splits it)."""

    def _value(self) -> str:
        return "\n".join(self.data) if isinstance(self.data, list) else (self.data or "")


def _text_fields() -> dict:
    return {
        "choices": ListAsTextField(LABELS["choices"]),
        "visible_roles": ListAsTextField(LABELS["visible_roles"]),
        "editable_roles": ListAsTextField(LABELS["editable_roles"]),
        "default": StringField(LABELS["default"]),
    }


class CustomFieldView(CrmModelView):
    datamodel = CrmInterface(CustomField)
    list_title = _("自定义字段")
    label_columns = LABELS
    list_columns = [
        "entity", "position", "label_zh", "api_name", "field_type", "required", "show_in_list", "archived",
    ]  # fmt: skip
    show_columns = [*COLUMNS, "updated_at"]
    add_columns = edit_columns = COLUMNS
    search_columns = ["entity", "api_name", "label_zh", "field_type", "archived"]
    base_order = ("entity", "asc")
    add_form_extra_fields = _text_fields()
    edit_form_extra_fields = _text_fields()


class CustomFieldApi(CrmModelApi):
    resource_name = "customfield"
    datamodel = CrmInterface(CustomField)
    list_columns = show_columns = ["id", *COLUMNS, "updated_at"]
    add_columns = edit_columns = COLUMNS
    order_columns = ["id", "entity", "position", "api_name"]
    search_columns = ["entity", "api_name", "field_type", "archived"]
