"""Form fields KeGuan adds to Flask-AppBuilder's."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from flask import has_request_context, request
from flask_appbuilder.fieldwidgets import DateTimePickerWidget
from flask_babel import lazy_gettext
from markupsafe import Markup, escape
from sqlalchemy import inspect
from wtforms import DateTimeField, Field
from wtforms.widgets import html_params

from app.access import current_actor
from app.clock import from_local, to_local
from app.extensions import db
from app.search import visible_record
from models.customers import Contact, Customer
from models.orders import Order
from models.sales import Lead, Opportunity
from models.service import Ticket


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
        elif field.searching:
            chosen = _filtered_record(field)
            if chosen is not None:
                option = f'<option value="{chosen.id}">{escape(str(chosen))}</option>'
        return Markup(f"<select {attrs}><option value=''></option>{option}</select>")


def _filtered_record(field: RemoteSelectField) -> Any | None:
    """The record a list is filtered by through this search field (`_flt_<n>_<name>=<id>` in the
    URL), if the user may see it: the filter bar then shows its name, not an empty box."""
    if not has_request_context():
        return None
    pattern = re.compile(rf"_flt_\d+_{re.escape(field.name)}")
    for key, value in request.args.items():
        if pattern.fullmatch(key) and value.isdigit():
            return visible_record(field.session_getter(), current_actor(), field.model, int(value))
    return None


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
        searching: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(label, validators, widget=RemoteSelectWidget(url, kind), **kwargs)
        self.model = model
        self.session_getter = session_getter
        #: in a list's filter bar (shows the record the list is filtered by)
        self.searching = searching

    @property
    def pk(self) -> Any:
        return inspect(self.data).identity[0] if self.data is not None else ""

    def process_formdata(self, valuelist: list[str]) -> None:
        raw = valuelist[0] if valuelist else ""
        self.data = None
        if raw and raw.isdigit():
            self.data = self.session_getter().get(self.model, int(raw))


#: models too large to list as the options of a select: the search API's kind for each
REMOTE_KINDS: dict[type, str] = {
    Customer: "customer",
    Contact: "contact",
    Order: "order",
    Opportunity: "opportunity",
    Ticket: "ticket",
    Lead: "lead",
}


def remote_search_fields(
    model: type, columns: list[str], labels: dict[str, Any]
) -> dict[str, RemoteSelectField]:
    """Filter-bar fields for the search columns that are many-to-one relations to a large model
    (an order list's customer): typed and looked up, where Flask-AppBuilder's select would list
    every customer in every list page (11 MB and 12 s at 100,000 customers)."""
    relationships = inspect(model).relationships
    fields = {}
    for name in columns:
        relation = relationships.get(name)
        target = relation.mapper.class_ if relation is not None and not relation.uselist else None
        if target in REMOTE_KINDS:
            fields[name] = RemoteSelectField(
                labels.get(name, name),
                model=target,
                session_getter=lambda: db.session,
                url="/api/v1/search/",
                kind=REMOTE_KINDS[target],
                searching=True,
            )
    return fields


def customer_select(label: Any) -> RemoteSelectField:
    """Pick a customer by typing: the list of customers is too large for a plain select."""
    return remote_select(label, Customer)


def remote_select(label: Any, model: type) -> RemoteSelectField:
    """Pick a record of a large table (REMOTE_KINDS) by typing, in an add or edit form."""
    return RemoteSelectField(
        label, model=model, session_getter=lambda: db.session, url="/api/v1/search/", kind=REMOTE_KINDS[model]
    )


class LocalDateTimePickerWidget(DateTimePickerWidget):
    """FAB's date-time picker, showing the field's text (its _value) instead of the raw data,
    which printed the stored UTC moment with its microseconds."""

    def __call__(self, field: Any, **kwargs: Any) -> Markup:
        kwargs.setdefault("id", field.id)
        kwargs.setdefault("name", field.name)
        return Markup(self.data_template % {"text": html_params(type="text", value=field._value(), **kwargs)})


class LocalDateTimeField(DateTimeField):
    """A moment typed and shown in the company's time zone and stored in UTC, as every time is
    (app.clock). FAB's own field shows and takes the stored UTC value: a rep in Dongying typing
    a call at 09:00 saved 17:00, and early in the morning a call of today was refused as future.
    Takes "2026-11-25 09:00", with seconds or a "T", or an ISO time with its own offset."""

    def __init__(self, label: Any = None, validators: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("widget", LocalDateTimePickerWidget())
        super().__init__(label, validators, **kwargs)

    def _value(self) -> str:
        if self.raw_data:
            return " ".join(self.raw_data)
        return f"{to_local(self.data):%Y-%m-%d %H:%M:%S}" if self.data else ""

    def process_formdata(self, valuelist: list[Any]) -> None:
        if not valuelist:
            return
        text = " ".join(valuelist).strip()
        self.data = None
        if not text:
            return
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(str(lazy_gettext("应为日期时间,格式 YYYY-MM-DD HH:MM"))) from None
        self.data = moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else from_local(moment)
