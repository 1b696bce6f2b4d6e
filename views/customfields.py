"""Settings > 自定义字段: the admin screen and REST API for custom-field definitions."""

from __future__ import annotations

import json

from flask import current_app, request, send_file
from flask_appbuilder.api import BaseApi, expose
from flask_appbuilder.fieldwidgets import (
    BS3TextAreaFieldWidget,
    BS3TextFieldWidget,
    Select2ManyWidget,
    Select2Widget,
)
from flask_appbuilder.security.decorators import protect
from flask_babel import lazy_gettext as _
from wtforms import SelectField, SelectMultipleField, StringField, TextAreaField

from app.access import current_actor, role_names
from app.customfields import ENTITY_MODELS, FIELD_TYPE_CHOICES, file_store, visible_fields, visible_records
from app.extensions import db
from customfields.definitions import CustomField
from customfields.types import FIELD_TYPES
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
    "target_entity": _("关联对象"),
    "file_types": _("允许的文件类型 (扩展名,每行一个)"),
    "max_file_mb": _("单个文件大小上限 (MB)"),
    "formula": _("公式"),
    "result_type": _("公式结果类型"),
    "archived": _("已归档"),
    "updated_at": _("更新时间"),
    "sensitive": _("敏感 (加密存储)"),
}
COLUMNS = [
    "entity", "api_name", "label_zh", "label_en", "field_type", "required", "default", "help_text",
    "section", "position", "choices", "min_value", "max_value", "max_length", "pattern", "target_entity",
    "file_types", "max_file_mb", "formula", "unique", "indexed", "visible_roles", "editable_roles",
    "show_in_list", "archived",
    "sensitive",
]  # fmt: skip

# --- encryption at rest ---
SENSITIVE_HELP = _(
    "值以 AES-256-GCM 加密存储,数据库中看不到明文。只能按完整的值精确筛选和搜索(通过盲索引),"
    "不能按部分内容筛选、不能排序、不能设为唯一。只适用于文本、长文本、电子邮箱、电话和网址字段,"
    "且只能在创建字段时设定。"
)


FORMULA_HELP = _(
    "用字段的 API 名称计算,例如 annual_volume * unit_price、IF(annual_volume >= 1000, \"重点\", \"普通\")、"
    "DAYS(TODAY(), first_order_date)、license_no & \"-\" & name。支持 + - * / ^、& 连接文本、"
    "比较与 AND/OR/NOT,函数 IF、ROUND、SUM、MIN、MAX、CONCAT、LEN、LEFT、RIGHT、TEXT、TODAY、DAYS、"
    "ADD_DAYS、ADD_MONTHS、YEAR、MONTH、ISBLANK、COALESCE 等"
)


class ListAsTextField(TextAreaField):
    """A JSON list edited as text, one item per line (the service splits it)."""

    def _value(self) -> str:
        return "\n".join(self.data) if isinstance(self.data, list) else (self.data or "")


def _role_options(form: object = None, field: object = None) -> list[tuple[str, str]]:
    """The roles a field can be shown to or edited by (read per form: roles change at run time)."""
    return [(role.name, role.name) for role in current_app.appbuilder.sm.get_all_roles()]


def _type_options(form: object = None, field: object = None) -> list[tuple[str, str]]:
    return FIELD_TYPE_CHOICES.options()  # per form instance: labels in the request's language


def _text_fields() -> dict:
    # the type select tells crm.js which per-type options to show
    options = json.dumps({code: sorted(handler.options) for code, handler in FIELD_TYPES.items()})
    return {
        "field_type": SelectField(
            LABELS["field_type"],
            choices=_type_options,
            widget=Select2Widget(),
            validate_choice=False,
            render_kw={"data-type-options": options},
        ),
        "choices": ListAsTextField(LABELS["choices"], widget=BS3TextAreaFieldWidget()),
        "file_types": ListAsTextField(LABELS["file_types"], widget=BS3TextAreaFieldWidget()),
        "formula": TextAreaField(
            LABELS["formula"], description=FORMULA_HELP, widget=BS3TextAreaFieldWidget()
        ),
        "visible_roles": SelectMultipleField(
            LABELS["visible_roles"], choices=_role_options, widget=Select2ManyWidget(), validate_choice=False
        ),
        "editable_roles": SelectMultipleField(
            LABELS["editable_roles"], choices=_role_options, widget=Select2ManyWidget(), validate_choice=False
        ),
        "default": StringField(LABELS["default"], widget=BS3TextFieldWidget()),
    }


class CustomFieldView(CrmModelView):
    datamodel = CrmInterface(CustomField)
    list_title = _("自定义字段")
    label_columns = LABELS
    list_columns = [
        "entity", "position", "label_zh", "api_name", "field_type", "required", "show_in_list", "archived",
    ]  # fmt: skip
    show_columns = [*COLUMNS, "result_type", "updated_at"]
    add_columns = edit_columns = COLUMNS
    search_columns = ["entity", "api_name", "label_zh", "field_type", "archived"]
    base_order = ("entity", "asc")
    add_form_extra_fields = _text_fields()
    edit_form_extra_fields = _text_fields()
    description_columns = {"sensitive": SENSITIVE_HELP}


class CustomFieldApi(CrmModelApi):
    resource_name = "customfield"
    datamodel = CrmInterface(CustomField)
    list_columns = show_columns = ["id", *COLUMNS, "result_type", "updated_at"]
    add_columns = edit_columns = COLUMNS
    order_columns = ["id", "entity", "position", "api_name"]
    search_columns = ["entity", "api_name", "field_type", "archived"]


class CustomFileApi(BaseApi):
    """Attachments of file fields: upload (then put the returned id under `custom`) and download.

    Upload needs a field the user may edit; download needs the record within the user's data
    scope, a field the user may see, and the file to be one of that record's values.
    """

    resource_name = "customfile"
    allow_browser_login = True
    openapi_spec_tag = "Custom fields"

    @expose("/<entity>/<api_name>", methods=["POST"])
    @protect()
    def post(self, entity: str, api_name: str):  # noqa: ANN201 - FAB response
        """Upload a file for a file field.
        ---
        post:
          parameters:
          - {in: path, name: entity, schema: {type: string}, description: customer, contact...}
          - {in: path, name: api_name, schema: {type: string}}
          requestBody:
            content:
              multipart/form-data:
                schema: {type: object, properties: {file: {type: string, format: binary}}}
          responses:
            201: {description: 'the stored file: id, name, size, type'}
            400: {$ref: '#/components/responses/400'}
            404: {$ref: '#/components/responses/404'}
        """
        field = file_field(entity, api_name)
        if field is None or not field.editable_by(role_names(current_actor())):
            return self.response_404()
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            return self.response_400(message={"file": [str(_("请选择文件"))]})
        try:
            meta = file_store().save(upload.stream, upload.filename, field)
        except ValueError as exc:
            return self.response_400(message={"file": [str(exc)]})
        return self.response(201, result={k: meta[k] for k in ("id", "name", "size", "type")})

    @expose("/<entity>/<int:record_id>/<api_name>/<file_id>", methods=["GET"])
    @protect()
    def get(self, entity: str, record_id: int, api_name: str, file_id: str):  # noqa: ANN201
        """Download an attachment of a record.
        ---
        get:
          responses:
            200: {description: the file}
            404: {$ref: '#/components/responses/404'}
        """
        field = file_field(entity, api_name)
        records = visible_records(db.session, entity, {record_id}, current_actor()) if field else []
        stored = (records[0].custom or {}).get(api_name) if records else None
        if not stored or file_id not in {item.get("id") for item in stored}:
            return self.response_404()
        meta = file_store().describe(file_id)
        path = file_store().path(file_id)
        if meta is None or path is None:
            return self.response_404()
        return send_file(path, mimetype=meta["type"], as_attachment=True, download_name=meta["name"])


def file_field(entity: str, api_name: str) -> CustomField | None:
    """A live file field of a customisable entity that the current user may see."""
    model = ENTITY_MODELS.get(entity)
    if model is None:
        return None
    fields = visible_fields(db.session, model, current_actor())
    return next((f for f in fields if f.api_name == api_name and f.field_type == "file"), None)
