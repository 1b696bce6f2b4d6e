"""Custom fields on the screens: form fields built per request from the current definitions.

Flask-AppBuilder builds its forms once, at registration; KeGuan's base view asks here, on every
request, for a subclass of that form with one field per custom field the user may see (read-only
where they may not edit). Validation stays in the engine: the fields take text and the entity's
service checks it, so a form and the API give the same messages.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask_appbuilder.fieldwidgets import (
    BS3TextAreaFieldWidget,
    BS3TextFieldWidget,
    DatePickerWidget,
    DateTimePickerWidget,
    Select2ManyWidget,
    Select2Widget,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from markupsafe import Markup, escape
from wtforms import BooleanField, Field, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import Optional
from wtforms.widgets import html_params

from app.customfields import file_store, reference_labels, user_options
from customfields.definitions import USER_TARGET, CustomField
from customfields.query import storage_kind
from views.widgets import LocalDateTimeField, RemoteSelectWidget

PREFIX = "custom__"
#: reference targets the search API can look up as the user types
SEARCHABLE_TARGETS = ("customer", "contact")


class ReferenceField(Field):
    """The id of another record, chosen in a select that searches as the user types."""

    def __init__(self, label: Any, *, target: str, **kwargs: Any) -> None:
        super().__init__(label, widget=RemoteSelectWidget("/api/v1/search/", target), **kwargs)
        self.target = target

    @property
    def pk(self) -> Any:
        return self.data if self.data is not None else ""

    @property
    def display(self) -> str:
        return reference_labels(self.target, {self.data}).get(self.data, f"#{self.data}")

    def process_formdata(self, valuelist: list[str]) -> None:
        raw = (valuelist[0] if valuelist else "").strip()
        self.data = int(raw) if raw.isdigit() else (raw or None)


class FilesWidget:
    """The field's attachments, each with a box to keep it, and an input to add more."""

    def __call__(self, field: FilesField, **kwargs: Any) -> Markup:
        items = []
        for file_id in field.data or []:
            meta = file_store().describe(str(file_id)) or {"name": file_id, "size": 0}
            box = html_params(type="checkbox", name=field.name, value=file_id, checked=True)
            size = f"{(meta.get('size') or 0) / 1024:.0f} KB"
            items.append(f"<label class='crm-file'><input {box}> {escape(meta['name'])} ({size})</label>")
        upload = html_params(type="file", name=field.name, id=field.id, multiple=True, class_="form-control")
        accept = ",".join("." + t for t in field.definition.allowed_file_types)
        return Markup("<br>".join(items) + f"<input {upload} accept='{escape(accept)}'>")


class FilesField(Field):
    """Attachments: kept ids plus new uploads, which are stored as soon as the form arrives."""

    widget = FilesWidget()

    def __init__(self, label: Any, *, definition: CustomField, **kwargs: Any) -> None:
        super().__init__(label, **kwargs)
        self.definition = definition

    def process_formdata(self, valuelist: list[Any]) -> None:
        files: list[str] = []
        for item in valuelist:
            if isinstance(item, str):
                if item:
                    files.append(item)
            elif getattr(item, "filename", ""):
                files.append(file_store().save(item.stream, item.filename, self.definition)["id"])
        self.data = files


def form_name(field: CustomField) -> str:
    return PREFIX + field.api_name


def _language() -> str:
    locale = get_locale()
    return locale.language if locale else "zh"


def form_field(field: CustomField, editable: bool) -> Field:
    """The WTForms field for one custom field (one widget per type)."""
    label = field.label(_language())
    options: dict[str, Any] = {"description": field.help_text or ""}
    if not editable:
        options["render_kw"] = {"readonly": True, "disabled": True}
    kind = field.field_type
    if kind == "boolean":
        return BooleanField(label, **options)
    if kind == "select":
        choices = [("", "—"), *[(c, c) for c in field.choice_values]]
        return SelectField(label, choices=choices, widget=Select2Widget(), validate_choice=False, **options)
    if kind == "multi_select":
        choices = [(c, c) for c in field.choice_values]
        return SelectMultipleField(
            label, choices=choices, widget=Select2ManyWidget(), validate_choice=False, **options
        )
    if kind == "long_text":
        return TextAreaField(label, widget=BS3TextAreaFieldWidget(), **options)
    if kind == "datetime":  # typed in the company's time zone, stored in UTC like every moment
        return LocalDateTimeField(label, [Optional()], **options)
    if kind == "reference" and field.target_entity == USER_TARGET:
        choices = [("", "—"), *user_options()]
        return SelectField(label, choices=choices, widget=Select2Widget(), validate_choice=False, **options)
    if kind == "reference" and field.target_entity in SEARCHABLE_TARGETS:
        return ReferenceField(label, target=field.target_entity, **options)
    if kind == "file":
        return FilesField(label, definition=field, **options)
    if kind == "formula":
        options["render_kw"] = {"readonly": True, "disabled": True}
        options["description"] = options["description"] or _("由公式计算: %(f)s", f=field.formula)
    widget = {"date": DatePickerWidget(), "datetime": DateTimePickerWidget()}.get(kind, BS3TextFieldWidget())
    return StringField(label, widget=widget, **options)


def with_custom_fields(form_class: type, fields: list[tuple[CustomField, bool]]) -> type:
    """A subclass of `form_class` with the custom fields; loads and stores values in `custom`."""
    attributes = {form_name(field): form_field(field, editable) for field, editable in fields}
    editable_names = {form_name(field) for field, editable in fields if editable}

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        # Flask-WTF reads the request's form unless formdata is given: pass through untouched
        form_class.__init__(self, *args, **kwargs)
        obj = kwargs.get("obj", args[1] if len(args) > 1 else None)
        stored = getattr(obj, "custom", None) or {}
        if obj is not None and not hasattr(obj, "getlist"):  # a record, not request.form
            for field, _editable in fields:
                value = stored.get(field.api_name)
                if field.field_type == "file":
                    value = [item["id"] for item in value or []]
                elif field.field_type == "reference" and field.target_entity == USER_TARGET:
                    value = str(value) if value is not None else None
                elif field.field_type == "datetime" and isinstance(value, str):
                    value = dt.datetime.fromisoformat(value)  # stored ISO text in UTC
                self[form_name(field)].data = value

    def custom_values(self: Any) -> dict[str, Any]:
        """The editable custom fields the browser sent, keyed by API name.

        An empty field clears its value; an unticked box or an empty multi-select sends nothing,
        which for them means empty too. Fields not sent at all are left as they are.
        """
        return {
            name.removeprefix(PREFIX): self[name].data
            for name in editable_names
            if self[name].raw_data or isinstance(self[name], BooleanField | SelectMultipleField | FilesField)
        }

    def populate_obj(self: Any, obj: Any) -> None:
        custom = {name: field for name, field in self._fields.items() if name.startswith(PREFIX)}
        for name in custom:
            del self._fields[name]
        try:
            form_class.populate_obj(self, obj)
        finally:
            self._fields.update(custom)
        obj.custom = {**(obj.custom or {}), **self.custom_values()}

    return type(
        form_class.__name__,
        (form_class,),
        {**attributes, "__init__": __init__, "custom_values": custom_values, "populate_obj": populate_obj},
    )


def search_field(field: CustomField) -> Field:
    """The input of a custom field in the list's filter bar (by the type of what it stores)."""
    kind = storage_kind(field)
    label = field.label(_language())
    if kind in ("select", "multi_select"):
        choices = [("", "—"), *[(c, c) for c in field.choice_values]]
        return SelectField(label, choices=choices, widget=Select2Widget(), validate_choice=False)
    if kind == "boolean":
        choices = [("true", _("是")), ("false", _("否"))]
        return SelectField(label, choices=choices, widget=Select2Widget(), validate_choice=False)
    if kind == "reference":
        return form_field(field, editable=True)
    widget = {"date": DatePickerWidget(), "datetime": DateTimePickerWidget()}.get(kind, BS3TextFieldWidget())
    return StringField(label, widget=widget)


def with_search_fields(form_class: type, fields: list[CustomField]) -> type:
    """The list's search form with an input per filterable custom field."""
    attributes = {form_name(field): search_field(field) for field in fields}
    return type(form_class.__name__, (form_class,), attributes)
