"""Form fields KeGuan adds to Flask-AppBuilder's."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import inspect
from wtforms import Field
from wtforms.widgets import html_params

from app.extensions import db
from models.customers import Customer


class RemoteSelectWidget:
    """A select that asks the search API as the user types (select2 ajax, see crm.js).

    For relations too large to list in the page (a million customers), unlike FAB's
    related-field select that renders every row as an option.
    """

    def __init__(self, url: str, kind: str) -> None:
        self.url = url
        self.kind = kind

    def __call__(self, field: RemoteSelectField, **kwargs: Any) -> Markup:
        kwargs.setdefault("id", field.id)
        attrs = html_params(
            name=field.name,
            class_="form-control crm-remote-select",
            data_url=self.url,
            data_kind=self.kind,
            **kwargs,
        )
        option = ""
        if field.data is not None:
            text = getattr(field, "display", None) or str(field.data)
            option = f'<option value="{escape(field.pk)}" selected>{escape(text)}</option>'
        return Markup(f"<select {attrs}><option value=''></option>{option}</select>")


class RemoteSelectField(Field):
    """A many-to-one field whose value is a model instance, chosen by primary key."""

    def __init__(
        self,
        label: Any = None,
        validators: Any = None,
        *,
        model: type,
        session_getter: Any,
        url: str,
        kind: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(label, validators, widget=RemoteSelectWidget(url, kind), **kwargs)
        self.model = model
        self.session_getter = session_getter

    @property
    def pk(self) -> Any:
        return inspect(self.data).identity[0] if self.data is not None else ""

    def process_formdata(self, valuelist: list[str]) -> None:
        raw = valuelist[0] if valuelist else ""
        self.data = None
        if raw and raw.isdigit():
            self.data = self.session_getter().get(self.model, int(raw))


def customer_select(label: Any) -> RemoteSelectField:
    """Pick a customer by typing: the list of customers is too large for a plain select."""
    return RemoteSelectField(
        label, model=Customer, session_getter=lambda: db.session, url="/api/v1/search/", kind="customer"
    )
