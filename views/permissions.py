"""字段权限: the admin's screen and REST resource for field rules (admins only: no built-in role but
Admin is granted them). The rules themselves are applied by app/permissions.py."""

from __future__ import annotations

from typing import Any

from flask_appbuilder.fieldwidgets import Select2Widget
from flask_babel import lazy_gettext as _
from wtforms import SelectField

from app.permissions import entity_choices
from models.permissions import FIELD_MODES, FieldRule
from views.base import CrmInterface, CrmModelApi, CrmModelView

LABELS = {
    "role": _("角色"),
    "entity": _("对象"),
    "field": _("字段"),
    "mode": _("权限"),
    "updated_at": _("更新时间"),
}
DESCRIPTIONS = {
    "field": _("列名或关系名 (如 credit_limit、mobile、owner),自定义字段写 API 名称 (如 custom.grade)"),
    "mode": _(
        "隐藏: 不显示也不能写;脱敏: 所有页面脱敏,建档后不能修改;"
        "列表中脱敏: 详情页显示原值;只读: 显示但不能修改"
    ),
}
FIELDS = ["role", "entity", "field", "mode"]


def _entity_options(form: Any = None, field: Any = None) -> list[tuple[str, str]]:
    return [("", "—"), *entity_choices().options()]


def _entity_label(entity: str) -> str:
    return entity_choices().label(entity)


ENTITY_SELECT = SelectField(
    LABELS["entity"], choices=_entity_options, widget=Select2Widget(), validate_choice=False
)


class FieldRuleView(CrmModelView):
    """字段权限: per role and entity, the fields that are hidden, masked or read-only."""

    datamodel = CrmInterface(FieldRule)
    list_title = _("字段权限")
    label_columns = LABELS
    description_columns = DESCRIPTIONS
    list_columns = [*FIELDS, "updated_at"]
    show_columns = add_columns = edit_columns = FIELDS
    search_columns = FIELDS
    order_columns = ["entity", "field", "mode", "updated_at"]
    base_order = ("entity", "asc")
    formatters_columns = {"mode": FIELD_MODES.label, "entity": _entity_label}
    add_form_extra_fields = edit_form_extra_fields = {"entity": ENTITY_SELECT}
    list_template = "crm/field_rules_list.html"


class FieldRuleApi(CrmModelApi):
    """/api/v1/fieldrule/: the same rules for scripts (admins only)."""

    resource_name = "fieldrule"
    datamodel = CrmInterface(FieldRule)
    list_columns = show_columns = ["id", "role.id", "role.name", "entity", "field", "mode", "updated_at"]
    add_columns = edit_columns = FIELDS
    search_columns = FIELDS
    order_columns = ["id", "entity", "field", "mode"]
