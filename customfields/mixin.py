"""Storage of custom-field values: one JSON column (`custom`) on every customisable model."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

#: JSONB on PostgreSQL (indexable, compact), JSON elsewhere (SQLite TEXT, MySQL JSON)
JSONColumn = JSON().with_variant(JSONB(), "postgresql")


class CustomFieldsMixin:
    """Adds the `custom` column that holds a record's custom values keyed by API name."""

    custom: Mapped[dict[str, Any] | None] = mapped_column(JSONColumn, default=dict, nullable=True)
