"""Custom fields on the screens: form fields built per request from the current definitions.

Flask-AppBuilder builds its forms once, at registration; KeGuan's base view asks here, on every
request, for a subclass of that form with one field per custom field the user may see (read-only
where they may not edit). Validation stays in the engine: the fields take text and the entity's
service checks it, so a form and the API give the same messages.
"""

from __future__ import annotations

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
from wtforms import BooleanField, Field, SelectField, SelectMultipleField, StringField, TextAreaField

from customfields.definitions import CustomField

PREFIX = "custom__"


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
                self[form_name(field)].data = value if value is not None else None

    def custom_values(self: Any) -> dict[str, Any]:
        """The editable custom fields the browser sent, keyed by API name.

        An empty field clears its value; an unticked box or an empty multi-select sends nothing,
        which for them means empty too. Fields not sent at all are left as they are.
        """
        return {
            name.removeprefix(PREFIX): self[name].data
            for name in editable_names
            if self[name].raw_data or isinstance(self[name], BooleanField | SelectMultipleField)
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
