"""Shared building blocks of KeGuan's models: choice lists and the common mixins."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from flask_appbuilder import Model
from flask_babel import lazy_gettext
from sqlalchemy import DateTime, ForeignKey, Integer
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

__all__ = ["Model", "Choices", "TimestampMixin", "OwnedMixin", "utcnow"]


def utcnow() -> dt.datetime:
    """Naive UTC now: the same on SQLite, PostgreSQL and MySQL columns without time zone."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Choices:
    """A fixed list of codes with translated labels, stored as short strings.

    Strings (not native ENUMs) keep the schema portable across SQLite, PostgreSQL and MySQL,
    and adding a choice needs no ALTER TYPE.
    """

    def __init__(self, *pairs: tuple[str, Any]) -> None:
        # a label is a msgid, or an already lazy translated string
        self._labels = {
            code: lazy_gettext(label) if isinstance(label, str) else label for code, label in pairs
        }

    def __contains__(self, code: object) -> bool:
        return code in self._labels

    def __iter__(self) -> Iterator[str]:
        return iter(self._labels)

    def label(self, code: str | None) -> str:
        return str(self._labels.get(code, code or ""))

    def options(self) -> list[tuple[str, str]]:
        """(code, label) pairs for a select widget, labels in the current language."""
        return [(code, str(label)) for code, label in self._labels.items()]

    @property
    def codes(self) -> list[str]:
        return list(self._labels)


class TimestampMixin:
    """Created/updated at and by. The service layer fills the `by` columns from its actor."""

    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow, nullable=False)

    @declared_attr
    def created_by_id(cls) -> Mapped[int | None]:
        return mapped_column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"), nullable=True)

    @declared_attr
    def updated_by_id(cls) -> Mapped[int | None]:
        return mapped_column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"), nullable=True)


class OwnedMixin:
    """A record owned by a user; the owner's department is copied on save for data scope.

    Keeping department_id on the row (not only on the user) lets the data-scope filter be one
    indexed IN (...) on this table, with no join to users.
    """

    @declared_attr
    def owner_id(cls) -> Mapped[int | None]:
        return mapped_column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"), index=True)

    @declared_attr
    def department_id(cls) -> Mapped[int | None]:
        return mapped_column(Integer, ForeignKey("crm_department.id", ondelete="SET NULL"), index=True)
