"""The entity's marshmallow schema of custom values: one field per definition the user may see.

It is the single validator of custom values (`clean_custom` deserialises through it, so forms,
the REST API, import and automation share every rule and message) and it describes `custom` in
the OpenAPI document. Built per definitions version, entity and set of roles, and cached.
"""

from __future__ import annotations

import threading
from typing import Any

from marshmallow import Schema, ValidationError, fields

from customfields.definitions import CustomField, current_version, database_key, definitions
from customfields.query import storage_kind

#: OpenAPI description of what each stored type looks like in JSON
OPENAPI_TYPES: dict[str, dict[str, Any]] = {
    "integer": {"type": "integer"},
    "decimal": {"type": "string", "format": "decimal", "example": "1234.5"},
    "currency": {"type": "string", "format": "decimal", "example": "1234.50"},
    "percent": {"type": "string", "format": "decimal", "example": "12.5"},
    "date": {"type": "string", "format": "date"},
    "datetime": {"type": "string", "format": "date-time"},
    "boolean": {"type": "boolean"},
    "multi_select": {"type": "array", "items": {"type": "string"}},
    "email": {"type": "string", "format": "email"},
    "url": {"type": "string", "format": "uri"},
    "reference": {"type": "integer", "minimum": 1},
    "file": {
        "type": "array",
        "items": {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}}},
    },
}


class CustomValue(fields.Field):
    """A custom field's value: deserialised by the field type's handler (None when blank)."""

    def __init__(self, definition: CustomField, editable: bool) -> None:
        openapi = dict(OPENAPI_TYPES.get(storage_kind(definition), {"type": "string"}))
        if definition.choices:
            target = openapi["items"] if openapi["type"] == "array" else openapi
            target["enum"] = definition.choice_values
        description = definition.label_zh + (f" / {definition.label_en}" if definition.label_en else "")
        if definition.help_text:
            description += f": {definition.help_text}"
        if definition.field_type == "formula":
            description += f" (= {definition.formula})"
        if definition.field_type == "reference":
            description += f" (→ {definition.target_entity} id)"
        super().__init__(
            allow_none=True,
            metadata={**openapi, "description": description, "nullable": True, "readOnly": not editable},
        )
        self.definition = definition

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        handler = self.definition.handler
        if handler.is_blank(value):
            return None
        try:
            return handler.to_storage(value, self.definition)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


_cache: dict[tuple[str, int, str, frozenset[str] | None], type[Schema]] = {}
_lock = threading.Lock()


def entity_schema(session: Any, entity: str, role_names: set[str] | None) -> type[Schema]:
    """The schema class of the custom values `role_names` may see on `entity` (None: all)."""
    roles = frozenset(role_names) if role_names is not None else None
    key = (database_key(session), current_version(session), entity, roles)
    with _lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    attributes: dict[str, Any] = {
        field.api_name: CustomValue(field, field.editable_by(role_names))
        for field in definitions(session, entity)
        if field.visible_to(role_names)
    }
    schema = Schema.from_dict(attributes, name=f"{entity.title()}Custom")
    with _lock:
        if len(_cache) > 1000:  # old versions
            _cache.clear()
        _cache[key] = schema
    return schema
