"""Storage of custom-field values: one JSON column (`custom`) on every customisable model.

Using the mixin is all an entity needs to carry custom fields: it registers the model under its
entity name (the table name without `crm_`), and the admin screens, forms, lists, filters, the
REST API and exports find it there.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import JSON
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

#: JSONB on PostgreSQL (indexable, compact), JSON elsewhere (SQLite TEXT, MySQL JSON)
JSONColumn = JSON().with_variant(JSONB(), "postgresql")

#: entity name -> model, for every model that uses the mixin
CUSTOMISABLE: dict[str, type] = {}


class CustomFieldsMixin:
    """Adds the `custom` column that holds a record's custom values keyed by API name.

    A model sets `__entity_label__` (a lazy translated name) for the admin screens.
    """

    __entity_label__: ClassVar[Any] = None
    custom: Mapped[dict[str, Any] | None] = mapped_column(JSONColumn, default=dict, nullable=True)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        table = cls.__dict__.get("__tablename__")
        if table:
            CUSTOMISABLE[table.removeprefix("crm_")] = cls


def entity_labels() -> dict[str, Any]:
    """Entity name -> its label, for every customisable model."""
    return {name: model.__entity_label__ or name for name, model in CUSTOMISABLE.items()}
