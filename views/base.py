"""KeGuan's base screen and REST classes: every entity's views inherit these and stay declarative.

What they add to Flask-AppBuilder, once for all entities:
- the data-scope filter (app.access) on every list, show, edit, delete and REST call;
- writes through the entity's service (app.services), whose rules give field-level errors:
  inline in forms, 400 with {field: [messages]} in the API, never a 500;
- select widgets and translated labels for choice columns;
- a capped COUNT(*) so list pages stay fast at a million rows.
"""

from __future__ import annotations

import copy
import csv
import functools
import io
from collections.abc import Callable
from contextvars import ContextVar
from itertools import islice
from typing import Any

from apispec.ext.marshmallow import MarshmallowPlugin
from flask import (
    Response,
    abort,
    current_app,
    flash,
    has_request_context,
    redirect,
    request,
    stream_with_context,
    url_for,
)
from flask_appbuilder import ModelRestApi, ModelView, expose, has_access
from flask_appbuilder.api import API_RESULT_RES_KEY
from flask_appbuilder.fieldwidgets import Select2Widget
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.security.decorators import permission_name
from flask_appbuilder.urltools import get_filter_args, get_order_args, get_page_args, get_page_size_args
from flask_appbuilder.widgets import ListWidget
from flask_babel import get_locale, lazy_gettext
from markupsafe import Markup
from marshmallow import ValidationError
from sqlalchemy import Boolean, DateTime, inspect
from sqlalchemy.orm import selectinload
from wtforms import BooleanField, SelectField, StringField
from wtforms.validators import InputRequired, Optional

from app.access import (
    DataScopeFilter,
    assignable_user_ids,
    current_actor,
    entity_name,
    is_scoped,
    listing_children_of,
    role_names,
)
from app.audit import entity_of, record_export  # the export event
from app.customfields import reference_labels, visible_fields
from app.errors import DomainError
from app.extensions import db
from app.permissions import FieldPolicy, field_policy, stored_value  # field permissions (字段权限)
from app.services import column_values, many_to_one_columns, service_for
from customfields import CustomFieldsMixin
from customfields.query import filter_condition, order_by
from customfields.schema import entity_schema
from customfields.values import FIELD_PREFIX
from views.audit import HistoryMixin  # every record's History tab
from views.custom_filters import sortable, with_custom_filters
from views.custom_forms import PREFIX, form_name, with_custom_fields, with_search_fields
from views.formatters import display_custom, display_formatter
from views.widgets import LocalDateTimeField, remote_search_fields

#: Conditions and ordering a REST list adds for this request (custom-field filters), set by
#: CrmModelApi around FAB's list code and read by CrmInterface; a ContextVar is per request.
LIST_EXTRAS: ContextVar[tuple[list[Any], list[Any]]] = ContextVar("keguan_list_extras", default=([], []))


class CrmInterface(SQLAInterface):
    """SQLAInterface whose writes go through the entity's service and whose count is capped."""

    #: relationships a list page shows: loaded for the whole page at once (no query per row)
    eager_relations: tuple[str, ...] = ()

    def apply_all(
        self,
        query: Any,
        filters: Any = None,
        order_column: str = "",
        order_direction: str = "",
        page: int | None = None,
        page_size: int | None = None,
        select_columns: list[str] | None = None,
        outer_default_load: bool = False,
    ) -> Any:
        conditions, ordering = LIST_EXTRAS.get()
        if conditions:
            query = query.filter(*conditions)
        if ordering:  # before FAB's pagination; FAB then adds no order of its own
            query = query.order_by(*ordering)
            order_column = ""
        query = super().apply_all(
            query, filters, order_column, order_direction, page, page_size, select_columns, outer_default_load
        )
        if self.eager_relations and not select_columns:
            query = query.options(*(selectinload(getattr(self.obj, name)) for name in self.eager_relations))
        return query

    def query_count(self, query: Any, filters: Any = None, select_columns: Any = None) -> int:
        """Count up to CRM_COUNT_CAP + 1 rows, reading only primary keys (an index can answer)."""
        cap = current_app.config["CRM_COUNT_CAP"]
        conditions, _ordering = LIST_EXTRAS.get()
        if conditions:
            query = query.filter(*conditions)
        inner = self._apply_inner_all(query, filters, select_columns=select_columns, aliases_mapping={})
        keys = inspect(self.obj).primary_key
        return inner.with_entities(*keys).limit(cap + 1).count()

    def _service(self) -> Any:
        return service_for(self.obj)

    def add(self, item: Any, commit: bool = True) -> None:
        service = self._service()
        if service is None:
            return super().add(item, commit)
        service.save(self.session, item, current_actor())

    def edit(self, item: Any, commit: bool = True) -> None:
        service = self._service()
        if service is None:
            return super().edit(item, commit)
        service.save(self.session, item, current_actor())

    def delete(self, item: Any, commit: bool = True) -> None:
        service = self._service()
        if service is None:
            return super().delete(item, commit)
        service.delete(self.session, item, current_actor())


class AssignableUserFilter(BaseFilter):
    """Owner dropdowns offer only users the current user may assign records to."""

    name = "assignable users"

    def apply(self, query: Any, value: Any) -> Any:
        actor = current_actor()
        if actor is None:
            return query.filter(self.model.id.is_(None))
        allowed = assignable_user_ids(self.datamodel.session, actor)
        return query if allowed is None else query.filter(self.model.id.in_(sorted(allowed)))


def form_values(form: Any, model: type, instance: Any = None) -> dict[str, Any]:
    """The values a form would write, as column values (relations become their keys)."""
    values = column_values(instance) if instance is not None else {}
    rel_columns = many_to_one_columns(model)
    for name, field in form._fields.items():
        if getattr(field, "keeps_stored_value", False):
            continue  # field permissions: a read-only or masked field keeps the stored value
        if name in rel_columns:
            target = field.data
            values[rel_columns[name]] = inspect(target).identity[0] if target is not None else None
        elif name in values or hasattr(model, name):
            values[name] = field.data
    return values


def with_domain_validation(form_class: type, view: CrmModelView) -> type:
    """A subclass of a FAB form whose validate() also runs the entity service's rules.

    Errors appear under their fields and the user's input stays in the form; normalised values
    (trimmed, half-width, +86 removed...) are written back before saving.
    """

    class DomainValidatedForm(form_class):  # type: ignore[misc, valid-type]
        def validate(self, extra_validators: Any = None) -> bool:
            if not super().validate(extra_validators):
                return False
            model = view.datamodel.obj
            service = service_for(model)
            pk = getattr(self, "_id", None)
            instance = view.datamodel.get(pk) if pk is not None else None
            values = form_values(self, model, instance)
            if hasattr(self, "custom_values"):
                values["custom"] = {**(values.get("custom") or {}), **self.custom_values()}
            try:
                cleaned = service.clean(view.datamodel.session, values, pk=pk)
            except DomainError as exc:
                column_to_rel = {col: rel for rel, col in many_to_one_columns(model).items()}
                for field_name, messages in exc.errors.items():
                    target = (
                        self._fields.get(field_name)
                        or self._fields.get(column_to_rel.get(field_name, ""))
                        or self._fields.get(field_name.replace(FIELD_PREFIX, PREFIX, 1))
                    )
                    if target is None:
                        self.form_errors.extend(messages)
                    else:
                        target.errors = list(target.errors) + messages
                return False
            for name, field in self._fields.items():
                if name in cleaned and not isinstance(cleaned[name], (list, dict)):
                    if name not in many_to_one_columns(model):
                        field.data = cleaned[name]
            return True

    DomainValidatedForm.__name__ = form_class.__name__
    return DomainValidatedForm


def choice_fields(model: type, label_columns: dict[str, Any]) -> dict[str, SelectField]:
    """Select widgets for the service's choice columns, labels in the request's language."""
    service = service_for(model)
    fields = {}
    for column, choices in (service.choices if service else {}).items():
        column_attr = getattr(model, column)
        required = not column_attr.property.columns[0].nullable

        def options(
            form: Any = None, field: Any = None, *, choices: Any = choices, required: bool = required
        ) -> list[tuple[str, str]]:
            # WTForms calls this per form instance, so labels follow the request's language
            return ([] if required else [("", "—")]) + choices.options()

        fields[column] = SelectField(
            label_columns.get(column, column),
            choices=options,
            widget=Select2Widget(),
            default=column_attr.property.columns[0].default.arg
            if column_attr.property.columns[0].default is not None
            and not callable(column_attr.property.columns[0].default.arg)
            else None,
            validate_choice=False,  # the service validates, with its own message
        )
    return fields


def boolean_fields(model: type, label_columns: dict[str, Any]) -> dict[str, BooleanField]:
    """Checkboxes for boolean columns. FAB marks a NOT NULL boolean's checkbox `required`, and a
    browser then refuses the form until every such box is ticked: "no" is a valid answer."""
    fields = {}
    for column in inspect(model).columns:
        if isinstance(column.type, Boolean) and not column.primary_key:
            fixed = column.default is not None and not callable(column.default.arg)
            default = column.default.arg if fixed else False
            fields[column.key] = BooleanField(label_columns.get(column.key, column.key), default=default)
    return fields


def datetime_fields(model: type, label_columns: dict[str, Any]) -> dict[str, LocalDateTimeField]:
    """Date-time inputs in the company's time zone (the columns hold UTC); required when the
    column is NOT NULL without a default, as FAB's own field was."""
    fields = {}
    for column in inspect(model).columns:
        if isinstance(column.type, DateTime) and not column.primary_key:
            default = column.default.arg if column.default is not None else None
            if callable(default):  # SQLAlchemy's wrapper of utcnow takes the execution context
                default = functools.partial(default, None)
            fields[column.key] = LocalDateTimeField(
                label_columns.get(column.key, column.key),
                [InputRequired()] if not column.nullable and default is None else [Optional()],
                default=default,
            )
    return fields


class CappedCountListWidget(ListWidget):
    """The list table, whose header says "10000+" when the capped count ran out."""

    template = "crm/widgets/list.html"


def csv_line(values: list[Any]) -> str:
    """One CSV line; a cell that a spreadsheet would run as a formula (=, +, -, @) is quoted
    with a leading apostrophe (CSV injection)."""
    buffer = io.StringIO()
    safe = ["'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text for text in map(str, values)]
    csv.writer(buffer).writerow(safe)
    return buffer.getvalue()


def custom_texts(fields: list[Any], items: list[Any]) -> list[list[str]]:
    """Each item's custom values as text, referenced records named with one query per field."""
    labels = {
        field.api_name: reference_labels(
            field.target_entity, {(item.custom or {}).get(field.api_name) for item in items}
        )
        for field in fields
        if field.field_type == "reference"
    }
    return [
        [display_custom(f, (item.custom or {}).get(f.api_name), labels.get(f.api_name)) for f in fields]
        for item in items
    ]


def show_values(model: type, fields: list[Any], item: Any) -> list[Any]:
    """The show page's custom values: text, with attachments as download links."""
    values: list[Any] = []
    for field, text in zip(fields, custom_texts(fields, [item])[0], strict=True):
        files = (item.custom or {}).get(field.api_name) if field.field_type == "file" else None
        if files:
            entity = model.__tablename__.removeprefix("crm_")
            links = [
                Markup('<a href="{}">{}</a>').format(
                    f"/api/v1/customfile/{entity}/{item.id}/{field.api_name}/{file['id']}", file["name"]
                )
                for file in files
            ]
            values.append(Markup("<br>").join(links))
        else:
            values.append(text)
    return values


# --- field permissions (字段权限): how screens apply app/permissions.py ---------------------------------
class KeptField(StringField):
    """A read-only (or, on an existing record, masked) field: shown disabled, whatever is posted is
    ignored and the stored value kept (a crafted POST changes nothing)."""

    keeps_stored_value = True

    def __init__(self, *args: Any, mask: Callable[[Any], Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mask = mask

    def process_formdata(self, valuelist: list[Any]) -> None:
        """The browser sends nothing for a disabled input; a crafted one is not listened to."""

    def _value(self) -> str:
        value = self.mask(self.data) if self.mask is not None else self.data
        return "" if value is None else str(value)

    def validate(self, form: Any, extra_validators: Any = ()) -> bool:
        self.errors = []
        return True

    def populate_obj(self, obj: Any, name: str) -> None:
        """Never written."""


def restrict_form(form: Any, policy: FieldPolicy, creating: bool) -> Any:
    """A subclass of a form without the hidden fields, with read-only fields (and, on an existing
    record, masked ones) shown disabled and kept as stored."""
    if form is None or not policy.modes:
        return form
    changes: dict[str, Any] = {}
    for name in dir(form):
        unbound = getattr(form, name, None)
        if name.startswith("_") or not hasattr(unbound, "_formfield"):
            continue
        if policy.hidden(name):
            changes[name] = None  # WTForms drops a field set to None in a subclass
        elif not policy.writable(name, creating):
            label = unbound.kwargs.get("label") or (unbound.args[0] if unbound.args else name)
            masked = policy.masked(name, in_list=False)
            changes[name] = KeptField(
                label,
                mask=(lambda value, name=name: policy.show(name, value, False)) if masked else None,
                description=unbound.kwargs.get("description", ""),
                render_kw={"readonly": True, "disabled": True},
            )
    return type(form.__name__, (form,), changes) if changes else form


def _as_is(value: Any) -> Any:
    """A masked value is already text (the mask); a blank stays blank, not "None"."""
    return "" if value is None else value


def shape_widget(widget: Any, policy: FieldPolicy, in_list: bool) -> None:
    """A rendered list or show widget without hidden columns and with masked values masked."""
    if not policy.modes:
        return
    args = widget.template_args
    columns = list(args.get("include_columns") or [])
    values = args.get("value_columns")
    is_show = "pk" in args  # a show widget: values by position; a list: a dict per row
    masked = [c for c in columns if not policy.hidden(c) and policy.masked(c, in_list)]
    if masked:
        formatters = args.get("formatters_columns") or {}
        args["formatters_columns"] = {**formatters, **dict.fromkeys(masked, _as_is)}
        if is_show and isinstance(values, list):
            shown = zip(columns, values, strict=False)
            args["value_columns"] = [policy.show(c, v, in_list) if c in masked else v for c, v in shown]
        elif values is not None:
            rows = list(values)
            for row in rows:
                for c in masked:
                    row[c] = policy.show(c, row.get(c), in_list)
            args["value_columns"] = rows
    if args.get("order_columns"):
        args["order_columns"] = [c for c in args["order_columns"] if policy.searchable(c)]
    hidden = {c for c in columns if policy.hidden(c)}
    if not hidden:
        return
    keep = [i for i, name in enumerate(columns) if name not in hidden]
    if is_show and isinstance(args.get("value_columns"), list):
        args["value_columns"] = [args["value_columns"][i] for i in keep]
    args["include_columns"] = [columns[i] for i in keep]
    if args.get("fieldsets"):
        args["fieldsets"] = [
            (title, {**spec, "fields": [f for f in spec["fields"] if f not in hidden]})
            for title, spec in args["fieldsets"]
        ]


def searchable_filters(filters: Any, policy: FieldPolicy) -> Any:
    """A copy of a list's filters without those on fields the user may not search by (hidden or
    masked everywhere): ignored, so a match cannot tell the value."""
    if not policy.modes:
        return filters
    kept = copy.copy(filters)  # keeps the search columns a custom-field copy knows
    active = zip(filters.filters, filters.values, strict=True)
    pairs = [(f, v) for f, v in active if policy.searchable(f.column_name)]
    kept.filters, kept.values = [f for f, _v in pairs], [v for _f, v in pairs]
    return kept


class PermittedTabsMixin:
    """A show page's related tabs: only those the user's role may list (an order's collections
    are not for every role; a customer's tickets are for sales and service). Its `show` passes
    `visible_related_views()` to the template, so headers and lists stay paired.

    With `lazy_tabs`, a tab's list is queried and rendered when the tab is opened
    (GET <view>/tab/<pk>/<ViewName>, same data scope and role checks; crm.js loads it, and its
    paging and sorting links, into the tab): the customer page had seven lists, each a count, a
    page of rows and their rendering, on every visit, for tabs that are mostly never opened."""

    lazy_tabs = False

    def visible_related_views(self) -> list[Any]:
        """The related views whose list the user's role may open."""
        return [
            view
            for view in self._related_views
            if self.appbuilder.sm.has_access("can_list", view.class_permission_name)
        ]

    def _get_related_views_widgets(
        self,
        item: Any,
        orders: Any = None,
        pages: Any = None,
        page_sizes: Any = None,
        widgets: Any = None,
        **kwargs: Any,
    ) -> Any:
        """FAB's related lists, for the visible tabs only (no shared state changed per request)."""
        orders, pages, page_sizes = orders or {}, pages or {}, page_sizes or {}
        widgets = widgets or {}
        if self.lazy_tabs:
            pk = self.datamodel.get_pk_value(item)
            widgets["related_views"] = [self._lazy_tab(pk, view) for view in self.visible_related_views()]
            return widgets
        widgets["related_views"] = [
            self._get_related_view_widget(
                item,
                view,
                *orders.get(view.__class__.__name__, ("", "")),
                page=pages.get(view.__class__.__name__),
                page_size=page_sizes.get(view.__class__.__name__),
            )
            for view in self.visible_related_views()
        ]
        return widgets

    def _lazy_tab(self, pk: Any, view: Any) -> Callable[..., Markup]:
        url = url_for(f"{type(self).__name__}.tab", pk=pk, view_name=type(view).__name__)
        loading, failed = lazy_gettext("加载中…"), lazy_gettext("加载失败,请刷新页面重试")
        return lambda **_kw: Markup(
            '<div class="crm-lazy-tab" data-url="{}" data-failed="{}"><p class="text-muted">{}</p></div>'
        ).format(url, failed, loading)

    @expose("/tab/<pk>/<view_name>", methods=["GET"])
    @has_access
    @permission_name("show")
    def tab(self, pk: Any, view_name: str) -> Any:
        """One related list of a record, as its tab shows it (a fragment for crm.js): 404 for a
        record outside the data scope or a tab the role may not list."""
        item = self.datamodel.get(pk, self._base_filters)
        view = next((v for v in self.visible_related_views() if type(v).__name__ == view_name), None)
        if item is None or view is None:
            abort(404)
        order_column, order_direction = get_order_args().get(view_name, ("", ""))
        widget = self._get_related_view_widget(
            item,
            view,
            order_column,
            order_direction,
            page=get_page_args().get(view_name),
            page_size=get_page_size_args().get(view_name),
        )
        return widget(pk=pk)


class NamedViews(list):
    """A view's related views as `related_views` names them: FAB's start-up also adds every
    registered subclass of a named class (a customer's tickets came twice, the second time as
    我的待办工单, with its own queries on every customer page)."""

    def __init__(self, classes: list[type], views: Any = ()) -> None:
        super().__init__()
        self.classes = classes
        for view in views:
            self.append(view)

    def append(self, view: Any) -> None:
        if type(view) in self.classes:
            super().append(view)


class CrmModelView(HistoryMixin, ModelView):  # HistoryMixin adds the History tab
    """Base screen for every KeGuan entity."""

    def get_init_inner_views(self) -> list[Any]:
        """Where FAB's start-up puts the related views: only the named classes (NamedViews)."""
        if not isinstance(self._related_views, NamedViews):
            self._related_views = NamedViews(self.related_views or [], self._related_views or [])
        return self._related_views

    page_size = 20
    #: columns never exported (in addition to to-many relations the list does not show)
    export_exclude: tuple[str, ...] = ()
    list_widget = CappedCountListWidget
    _base_add_form: Any = None
    _base_edit_form: Any = None

    def __init__(self, **kwargs: Any) -> None:
        model = self.datamodel.obj
        if is_scoped(model):
            self.base_filters = [["id", DataScopeFilter, None], *(self.base_filters or [])]
        if self.list_title:  # translated titles for every screen from the list's title
            self.add_title = self.add_title or lazy_gettext("新建%(name)s", name=self.list_title)
            self.edit_title = self.edit_title or lazy_gettext("编辑%(name)s", name=self.list_title)
            self.show_title = self.show_title or lazy_gettext("%(name)s详情", name=self.list_title)
        inputs = {**boolean_fields(model, self.label_columns), **datetime_fields(model, self.label_columns)}
        self.add_form_extra_fields = {**inputs, **(self.add_form_extra_fields or {})}
        self.edit_form_extra_fields = {**inputs, **(self.edit_form_extra_fields or {})}
        service = service_for(model)
        if service is not None:
            selects = choice_fields(model, self.label_columns)
            self.add_form_extra_fields = {**selects, **(self.add_form_extra_fields or {})}
            self.edit_form_extra_fields = {**selects, **(self.edit_form_extra_fields or {})}
            self.formatters_columns = {
                **{col: (lambda c: lambda v: c.label(v))(ch) for col, ch in service.choices.items()},
                **(self.formatters_columns or {}),
            }
        super().__init__(**kwargs)
        relationships = inspect(model).relationships
        self.datamodel.eager_relations = tuple(c for c in self.list_columns if c in relationships)
        shown = set(self.list_columns) | set(self.show_columns)
        self.formatters_columns = {
            **{name: display_formatter(model, name) for name in shown},
            **self.formatters_columns,
        }

    def _get_related_view_widget(self, item: Any, related_view: Any, *args: Any, **kwargs: Any) -> Any:
        """A tab of the record's children: the record passed this view's data scope, so children
        that follow its scope are limited by the foreign key alone (app.access)."""
        with listing_children_of(self.datamodel.obj):
            return super()._get_related_view_widget(item, related_view, *args, **kwargs)

    def _init_forms(self) -> None:
        # after FAB has settled the search columns (all searchable ones when a view names none)
        model, searched = self.datamodel.obj, list(self.search_columns)
        remote = remote_search_fields(model, searched, self.label_columns)
        # a choice column is filtered by picking its label (已审批), not by typing its code (approved)
        choices = {c: f for c, f in choice_fields(model, self.label_columns).items() if c in searched}
        self.search_form_extra_fields = {**remote, **choices, **(self.search_form_extra_fields or {})}
        super()._init_forms()
        if service_for(self.datamodel.obj) is not None:
            self.add_form = with_domain_validation(self.add_form, self)
            self.edit_form = with_domain_validation(self.edit_form, self)

    # --- custom fields: forms and widgets per request, from the current definitions ----------
    # FAB sets add_form/edit_form once in _init_forms; the getters add this request's fields.
    @property
    def add_form(self) -> Any:
        return restrict_form(self._with_custom(self._base_add_form), self.field_rules(), creating=True)

    @add_form.setter
    def add_form(self, form: Any) -> None:
        self._base_add_form = form

    @property
    def edit_form(self) -> Any:
        return restrict_form(self._with_custom(self._base_edit_form), self.field_rules(), creating=False)

    @edit_form.setter
    def edit_form(self, form: Any) -> None:
        self._base_edit_form = form

    def field_rules(self) -> FieldPolicy:
        """The current user's field permissions on this entity (none outside a request)."""
        if not has_request_context():
            return FieldPolicy(self.datamodel.obj)
        return field_policy(self.datamodel.session, current_actor(), self.datamodel.obj)

    def _searchable(self, widgets: Any) -> Any:
        """The filter bar without the fields the user may not search by."""
        search = widgets.get("search")
        if search is not None:
            policy = self.field_rules()
            args = search.template_args
            args["include_cols"] = [c for c in args.get("include_cols") or [] if policy.searchable(c)]
        return widgets

    def custom_fields(self) -> list[tuple[Any, bool]]:
        """(definition, editable) of the custom fields the current user may see."""
        model = self.datamodel.obj
        if not has_request_context() or not issubclass(model, CustomFieldsMixin):
            return []
        actor = current_actor()
        roles = role_names(actor)
        return [(f, f.editable_by(roles)) for f in visible_fields(self.datamodel.session, model, actor)]

    def _with_custom(self, form: Any) -> Any:
        fields = self.custom_fields() if form is not None else []
        return with_custom_fields(form, fields) if fields else form

    def _custom_fieldsets(self, fieldsets: Any, columns: list[str]) -> tuple[Any, list[str]]:
        """Fieldsets and columns with the custom fields, grouped by their section."""
        fields = self.custom_fields()
        if not fields:
            return fieldsets, columns
        names = [form_name(field) for field, _editable in fields]
        sections: dict[str, list[str]] = {}
        for field, _editable in fields:
            sections.setdefault(field.section or str(lazy_gettext("其他信息")), []).append(form_name(field))
        if fieldsets:
            return [*fieldsets, *[(title, {"fields": items}) for title, items in sections.items()]], columns
        return None, [*columns, *names]

    # --- lists: custom-field filters and sorting, per request ------------------------------
    def request_filters(self) -> Any:
        """This request's filters (FAB's, plus the custom fields'), set from the URL."""
        fields = [field for field, _editable in self.custom_fields()]
        filters = with_custom_filters(self._filters, fields) if fields else self._filters.copy()
        get_filter_args(filters)
        return searchable_filters(filters, self.field_rules())

    def request_order(self) -> tuple[str, str, list[Any]]:
        """(FAB order column, direction, ORDER BY terms for a custom column) of this request."""
        order_column, direction = get_order_args().get(self.__class__.__name__, ("", ""))
        if not order_column and self.base_order:
            order_column, direction = self.base_order
        if not order_column.startswith(PREFIX):
            return order_column, direction, []
        field = next((f for f, _e in self.custom_fields() if form_name(f) == order_column), None)
        if field is None or not sortable(field) or not self.field_rules().searchable(order_column):
            return "", "", []
        dialect = self.datamodel.session.get_bind().dialect.name
        return "", "", order_by(self.datamodel.obj, field, direction == "desc", dialect)

    def _list(self, **kwargs: Any) -> Any:
        """FAB's list page, with the custom fields the user may see as filters and sort keys."""
        fields = [field for field, _editable in self.custom_fields()]
        if not fields:
            return self._searchable(super()._list(**kwargs))
        filters = self.request_filters()
        order_column, direction, ordering = self.request_order()
        token = LIST_EXTRAS.set(([], ordering))
        try:
            widgets = self._get_list_widget(
                filters=filters,
                order_column=order_column,
                order_direction=direction,
                page=get_page_args().get(self.__class__.__name__),
                page_size=get_page_size_args().get(self.__class__.__name__),
                **kwargs,
            )
        finally:
            LIST_EXTRAS.reset(token)
        filterable = [f for f in fields if f.field_type != "file"]
        form = with_search_fields(self.search_form, filterable).refresh()
        self.update_redirect()
        widgets["search"] = self.search_widget(
            route_base=self.route_base,
            form=form,
            include_cols=[*self.search_columns, *[form_name(f) for f in filterable]],
            exclude_cols=[],
            filters=filters,
        )
        return self._searchable(widgets)

    def _get_list_widget(
        self,
        filters: Any,
        actions: Any = None,
        order_column: str = "",
        order_direction: str = "",
        page: Any = None,
        page_size: Any = None,
        widgets: Any = None,
        **kwargs: Any,
    ) -> Any:
        """FAB's list, with the custom fields an admin chose to show as columns; without hidden
        columns, masked values masked, no filter or order on what the user may not search by."""
        policy = self.field_rules()
        query_filters = searchable_filters(filters, policy)
        if order_column and not policy.searchable(order_column):
            order_column, order_direction = "", ""
        in_list = [field for field, _editable in self.custom_fields() if field.show_in_list]
        if not in_list:
            widgets = super()._get_list_widget(
                query_filters, actions, order_column, order_direction, page, page_size, widgets, **kwargs
            )
            shape_widget(widgets["list"], policy, in_list=True)
            return widgets
        widgets = widgets or {}
        if not order_column and self.base_order:
            order_column, order_direction = self.base_order
        count, items = self.datamodel.query(
            query_filters.get_joined_filters(self._base_filters),
            order_column,
            order_direction,
            page=page,
            page_size=page_size or self.page_size,
        )
        values = list(self.datamodel.get_values(items, self.list_columns))
        for row, texts in zip(values, custom_texts(in_list, items), strict=True):
            row.update({form_name(field): text for field, text in zip(in_list, texts, strict=True)})
        language = str(get_locale() or "zh")[:2]
        widgets["list"] = self.list_widget(
            label_columns={**self.label_columns, **{form_name(f): f.label(language) for f in in_list}},
            include_columns=[*self.list_columns, *[form_name(f) for f in in_list]],
            value_columns=values,
            order_columns=[*self.order_columns, *[form_name(f) for f in in_list if sortable(f)]],
            formatters_columns=self.formatters_columns,
            page=page,
            page_size=page_size or self.page_size,
            count=count,
            pks=[self._serialize_pk_if_composite(pk) for pk in self.datamodel.get_keys(items)],
            actions=actions or self.actions,
            filters=filters,
            modelview_name=self.__class__.__name__,
            **kwargs,
        )
        shape_widget(widgets["list"], policy, in_list=True)
        return widgets

    # --- CSV export: the list's filters, order and data scope; streamed ---------------------
    @expose("/export.csv")
    @has_access
    def export(self) -> Response:
        """The current list (filters, order, data scope) as CSV for Excel: UTF-8 with BOM,
        formula-like cells neutralised, streamed, at most CRM_EXPORT_MAX rows."""
        filters = self.request_filters()
        order_column, order_direction, ordering = self.request_order()
        token = LIST_EXTRAS.set(([], ordering))
        policy = self.field_rules()
        if order_column and not policy.searchable(order_column):
            order_column, order_direction = "", ""
        try:
            query = self.datamodel.apply_all(
                self.datamodel.session.query(self.datamodel.obj),
                filters.get_joined_filters(self._base_filters),
                order_column,
                order_direction,
                page=None,
                page_size=current_app.config["CRM_EXPORT_MAX"],
            )
        finally:
            LIST_EXTRAS.reset(token)
        # field permissions: hidden columns absent, masked values masked (as in lists)
        columns = [c for c in self.list_columns + self.show_columns if not c.startswith(PREFIX)]
        columns = policy.columns(dict.fromkeys(c for c in columns if c not in self.export_exclude))
        custom = [field for field, _editable in self.custom_fields()]
        record_export(  # the export event (entity, filters, columns, rows)
            entity_of(self.datamodel.obj.__table__.name),
            rows=query.count(),
            filters=request.args.to_dict(flat=False),
            columns=[*columns, *(f"custom.{f.api_name}" for f in custom)],
        )
        language = str(get_locale() or "zh")[:2]
        header = [str(self.label_columns.get(c, c)) for c in columns] + [f.label(language) for f in custom]

        def rows() -> Any:
            yield "\ufeff" + csv_line(header)
            batch = iter(query.yield_per(1000))
            while items := list(islice(batch, 1000)):
                for item, texts in zip(items, custom_texts(custom, items), strict=True):
                    values = [
                        policy.show(c, getattr(item, c, ""), True)
                        if policy.masked(c, True)
                        else self.formatters_columns.get(c, str)(getattr(item, c, ""))
                        for c in columns
                    ]
                    shown = zip(custom, texts, strict=True)
                    texts = [policy.show(FIELD_PREFIX + f.api_name, t, True) for f, t in shown]
                    yield csv_line(values + texts)

        filename = f"{self.datamodel.obj.__tablename__.removeprefix('crm_')}.csv"
        return Response(
            stream_with_context(rows()),
            mimetype="text/csv",
            headers={"Content-Disposition": f"attachment; filename={filename}"},
        )

    def _form_layout(self, fieldsets: Any, columns: list[str]) -> tuple[Any, list[str]]:
        """Fieldsets and columns of a form, with the custom fields and without hidden fields."""
        fieldsets, columns = self._custom_fieldsets(fieldsets, columns)
        policy = self.field_rules()
        if fieldsets:
            fieldsets = [(t, {**spec, "fields": policy.columns(spec["fields"])}) for t, spec in fieldsets]
        return fieldsets, policy.columns(columns)

    def _get_add_widget(self, form: Any, exclude_cols: Any = None, widgets: Any = None) -> Any:
        fieldsets, columns = self._form_layout(self.add_fieldsets, self.add_columns)
        widgets = widgets or {}
        widgets["add"] = self.add_widget(
            form=form, include_cols=columns, exclude_cols=exclude_cols or [], fieldsets=fieldsets
        )
        return widgets

    def _get_edit_widget(self, form: Any, exclude_cols: Any = None, widgets: Any = None) -> Any:
        fieldsets, columns = self._form_layout(self.edit_fieldsets, self.edit_columns)
        widgets = widgets or {}
        widgets["edit"] = self.edit_widget(
            form=form, include_cols=columns, exclude_cols=exclude_cols or [], fieldsets=fieldsets
        )
        return widgets

    def _get_show_widget(
        self, pk: Any, item: Any, widgets: Any = None, actions: Any = None, show_fieldsets: Any = None
    ) -> Any:
        fields = self.custom_fields()
        if not fields:
            widgets = super()._get_show_widget(pk, item, widgets, actions, show_fieldsets)
            shape_widget(widgets["show"], self.field_rules(), in_list=False)
            return widgets
        language = str(get_locale() or "zh")[:2]
        names = [form_name(field) for field, _editable in fields]
        fieldsets, columns = self._custom_fieldsets(show_fieldsets or self.show_fieldsets, self.show_columns)
        widgets = widgets or {}
        widgets["show"] = self.show_widget(
            pk=pk,
            label_columns={**self.label_columns, **{form_name(f): f.label(language) for f, _e in fields}},
            include_columns=[*self.show_columns, *names],
            value_columns=[
                *self.datamodel.get_values_item(item, self.show_columns),
                *show_values(self.datamodel.obj, [f for f, _e in fields], item),
            ],
            formatters_columns=self.formatters_columns,
            actions=actions or self.actions,
            fieldsets=fieldsets,
            modelview_name=self.__class__.__name__,
        )
        shape_widget(widgets["show"], self.field_rules(), in_list=False)
        return widgets


def _unknown_field() -> str:
    return str(lazy_gettext("未知的自定义字段"))


def visible_custom(model: type, rows: list[dict[str, Any]]) -> None:
    """Drop, in place, the custom values of archived fields and of fields hidden from the user."""
    if not issubclass(model, CustomFieldsMixin) or not any("custom" in row for row in rows):
        return
    shown = {f.api_name for f in visible_fields(current_app.appbuilder.session, model, current_actor())}
    for row in rows:
        if isinstance(row.get("custom"), dict):
            row["custom"] = {k: v for k, v in row["custom"].items() if k in shown}


def run_and_redirect(
    work: Callable[[], Any], done: str, to: str | Callable[[Any], str], refused_to: str | None = None
) -> Response:
    """Run a service call for a screen's button: flash its refusal (rolled back) or `done`, then
    redirect: to `to` (or `to(result)`), or to `refused_to` when refused and given."""
    try:
        result = work()
    except DomainError as exc:
        db.session.rollback()
        flash(exc.summary(), "warning")
        return redirect(refused_to or (to if isinstance(to, str) else request.referrer or "/"))
    flash(done, "success")
    return redirect(to(result) if callable(to) else to)


class CrmModelApi(ModelRestApi):
    """Base REST API for every KeGuan entity (OpenAPI docs from Flask-AppBuilder)."""

    allow_browser_login = True
    page_size = 20
    #: without an order_column a list has a stable order (newest first), so pages do not overlap
    #: (PostgreSQL returns rows in whatever order its plan yields)
    base_order = ("id", "desc")

    #: columns the service fills in when a client leaves them out (not required in the API)
    defaulted_columns: tuple[str, ...] = ()

    def __init__(self) -> None:
        model = self.datamodel.obj
        if is_scoped(model):
            self.base_filters = [["id", DataScopeFilter, None], *(self.base_filters or [])]
        super().__init__()

    # --- field permissions (字段权限) --------------------------------------------------------------
    def field_rules(self) -> FieldPolicy:
        """The current user's field permissions on this entity."""
        return field_policy(self.datamodel.session, current_actor(), self.datamodel.obj)

    def _unsearchable(self, args: dict[str, Any]) -> dict[str, list[str]]:
        """Filters and ordering on fields the user may not search by (hidden, masked everywhere):
        refused, since a match or an order would tell the value."""
        policy, errors = self.field_rules(), {}
        for item in args.get("filters", []):
            column = str(item.get("col", "")) if isinstance(item, dict) else ""
            if column and not policy.searchable(column):
                errors.setdefault(column, []).append(str(lazy_gettext("您无权按该字段筛选")))
        order = str(args.get("order_column", ""))
        if order and not policy.searchable(order):
            errors.setdefault(order, []).append(str(lazy_gettext("您无权按该字段排序")))
        return errors

    def _shape(self, data: dict[str, Any], rows: list[dict[str, Any]], in_list: bool) -> None:
        """A response without hidden fields (values and column names) and with masked values masked."""
        policy = self.field_rules()
        if not policy.modes:
            return
        for row in rows:
            policy.shape_row(row, in_list)
        for key in ("list_columns", "show_columns"):
            if isinstance(data.get(key), list):
                data[key] = policy.columns(data[key])
        for key in ("label_columns", "description_columns"):
            if isinstance(data.get(key), dict):
                data[key] = {k: v for k, v in data[key].items() if not policy.hidden(k)}

    def info_headless(self, **kwargs: Any) -> Any:
        """FAB's /_info without the fields hidden from the user (add/edit columns, filters)."""
        payload: dict[str, Any] = {}
        rison_args = kwargs.get("rison", {})
        self.set_response_key_mappings(payload, self.info, rison_args, **rison_args)
        policy = self.field_rules()
        for key in ("add_columns", "edit_columns"):
            if isinstance(payload.get(key), list):
                payload[key] = [c for c in payload[key] if not policy.hidden(str(c.get("name", "")))]
        if isinstance(payload.get("filters"), dict):
            payload["filters"] = {k: v for k, v in payload["filters"].items() if policy.searchable(k)}
        return self.response(200, **payload)

    def _init_model_schemas(self) -> None:
        super()._init_model_schemas()
        for name in self.defaulted_columns:
            if name in self.add_model_schema.fields:
                self.add_model_schema.fields[name].required = False

    def get_list_headless(self, **kwargs: Any) -> Any:
        """FAB's list, plus filters and ordering on custom fields: `col` or `order_column`
        `custom.<api_name>` in the usual rison syntax. Unknown fields or operators are a 400."""
        model = self.datamodel.obj
        args = dict(kwargs.get("rison") or {})
        refused = self._unsearchable(args)
        if refused:
            return self.response_400(message=refused)
        wanted = [f for f in args.get("filters", []) if str(f.get("col", "")).startswith(FIELD_PREFIX)]
        order = str(args.get("order_column", ""))
        if not wanted and not order.startswith(FIELD_PREFIX):
            return super().get_list_headless(**kwargs)
        if not issubclass(model, CustomFieldsMixin):
            return self.response_400(message="this resource has no custom fields")
        fields = {
            FIELD_PREFIX + f.api_name: f
            for f in visible_fields(self.datamodel.session, model, current_actor())
        }
        conditions, ordering, errors = [], [], {}
        for item in wanted:
            field = fields.get(item["col"])
            try:
                if field is None:
                    raise ValueError(_unknown_field())
                conditions.append(filter_condition(model, field, str(item.get("opr", "")), item.get("value")))
            except ValueError as exc:
                errors.setdefault(item["col"], []).append(str(exc))
        if order.startswith(FIELD_PREFIX):
            if order not in fields:
                errors.setdefault(order, []).append(_unknown_field())
            elif not sortable(fields[order]):
                errors.setdefault(order, []).append(str(lazy_gettext("该类型的字段不能排序")))
            else:
                descending = args.get("order_direction") == "desc"
                dialect = self.datamodel.session.get_bind().dialect.name
                ordering.extend(order_by(model, fields[order], descending, dialect))
            args.pop("order_column", None)
            args.pop("order_direction", None)
        if errors:
            return self.response_400(message=errors)
        args["filters"] = [f for f in args.get("filters", []) if f not in wanted]
        token = LIST_EXTRAS.set((conditions, ordering))
        try:
            return super().get_list_headless(**{**kwargs, "rison": args})
        finally:
            LIST_EXTRAS.reset(token)

    def add_apispec_components(self, api_spec: Any) -> None:
        """FAB's schemas, with `custom` described field by field (those the reader may see)."""
        super().add_apispec_components(api_spec)
        model = self.datamodel.obj
        if not issubclass(model, CustomFieldsMixin) or not has_request_context():
            return
        schema = entity_schema(self.datamodel.session, entity_name(model), role_names(current_actor()))
        plugin = next(p for p in api_spec.plugins if isinstance(p, MarshmallowPlugin))
        described = {
            **plugin.converter.schema2jsonschema(schema),
            "description": "Custom fields, keyed by API name (see /api/v1/customfield/)",
            "additionalProperties": False,
        }
        for name in (
            self.list_model_schema_name,
            self.add_model_schema_name,
            self.edit_model_schema_name,
            self.show_model_schema_name,
        ):
            properties = api_spec.components.schemas.get(name, {}).get("properties", {})
            if "custom" in properties:
                properties["custom"] = described

    def pre_get(self, data: dict[str, Any]) -> None:
        """Custom values the user may not see never leave the server."""
        visible_custom(self.datamodel.obj, [data.get(API_RESULT_RES_KEY) or {}])
        self._shape(data, [data.get(API_RESULT_RES_KEY) or {}], in_list=False)

    def pre_get_list(self, data: dict[str, Any]) -> None:
        visible_custom(self.datamodel.obj, data.get(API_RESULT_RES_KEY) or [])
        self._shape(data, data.get(API_RESULT_RES_KEY) or [], in_list=True)

    def answer(self, work: Callable[[], Any], done: Callable[[Any], Any]) -> Any:
        """Run a service call for an endpoint: its refusal (DomainError) is rolled back and
        answered with its 4xx and field messages; otherwise `done` builds the answer."""
        try:
            result = work()
        except DomainError as exc:
            self.datamodel.session.rollback()
            return self.response(exc.status, message=exc.errors)
        return done(result)

    def _write(self, status: int, item: Any, schema: Any) -> Any:
        """Save through the service; map its field errors to a 4xx response."""
        save = self.datamodel.add if status == 201 else self.datamodel.edit
        return self.answer(lambda: save(item), lambda _saved: self._written(status, item, schema))

    def _written(self, status: int, item: Any, schema: Any) -> Any:
        body: dict[str, Any] = {API_RESULT_RES_KEY: schema.dump(item, many=False)}
        visible_custom(self.datamodel.obj, [body[API_RESULT_RES_KEY]])
        self.field_rules().shape_row(body[API_RESULT_RES_KEY], in_list=False)
        if status == 201:
            body["id"] = self.datamodel.get_pk_value(item)
        return self.response(status, **body)

    def post_headless(self) -> Any:
        if not request.is_json or not isinstance(request.json, dict):
            return self.response_400(message="Request is not a JSON object")
        policy = self.field_rules()
        refused = policy.refusals(request.json, None)  # hidden, read-only: 403, nothing written
        if refused:
            return self.response(403, message=refused)
        try:
            item = self.add_model_schema.load(policy.writable_part(request.json, creating=True))
        except ValidationError as err:
            return self.response_400(message=err.messages)
        return self._write(201, item, self.add_model_schema)

    def put_headless(self, pk: Any) -> Any:
        item = self.datamodel.get(pk, self._base_filters)
        if not request.is_json or not isinstance(request.json, dict):
            return self.response_400(message="Request is not a JSON object")
        if not item:
            return self.response_404()
        policy = self.field_rules()
        refused = policy.refusals(request.json, lambda name: stored_value(item, name))
        if refused:
            return self.response(403, message=refused)
        try:
            data = self._merge_update_item(item, policy.writable_part(request.json, creating=False))
            item = self.edit_model_schema.load(data, instance=item)
        except ValidationError as err:
            self.datamodel.session.rollback()
            return self.response_400(message=err.messages)
        return self._write(200, item, self.edit_model_schema)

    def delete_headless(self, pk: Any) -> Any:
        item = self.datamodel.get(pk, self._base_filters)
        if not item:
            return self.response_404()
        try:
            self.datamodel.delete(item)
        except DomainError as exc:
            return self.response(exc.status, message=exc.errors)
        return self.response(200, message="OK")
