"""Domain errors: each carries an HTTP status and messages keyed by field.

Services raise them; the REST base class and the form hook turn them into a 4xx response or
inline form errors, so no endpoint repeats a try/except.
"""

from __future__ import annotations

from collections.abc import Mapping


class DomainError(Exception):
    """A business rule refused the operation."""

    status = 400

    def __init__(self, errors: Mapping[str, list[str]] | str) -> None:
        if isinstance(errors, str):
            errors = {"_schema": [errors]}
        self.errors: dict[str, list[str]] = {k: list(v) for k, v in errors.items()}
        super().__init__(self.summary())

    def summary(self) -> str:
        return "; ".join(
            msg if field == "_schema" else f"{field}: {msg}"
            for field, msgs in self.errors.items()
            for msg in msgs
        )


class ValidationFailed(DomainError):
    """Input that breaks a validation rule: 400 with a message per field (the issue tracker asks
    400 for invalid custom values; one status for every validation error keeps clients simple)."""

    status = 400


class AccessDenied(DomainError):
    """The actor may not touch this record or assign it there."""

    status = 403


class ErrorCollector:
    """Collects every field error first, then raises once (a form shows them all together)."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.errors.setdefault(field, []).append(str(message))

    def __bool__(self) -> bool:
        return bool(self.errors)

    def raise_if_any(self) -> None:
        if self.errors:
            raise ValidationFailed(self.errors)


class Conflict(DomainError):
    """The request would duplicate an existing record; the caller chooses (409), e.g. attach a
    converted lead to the customer that already exists."""

    status = 409


class NotFound(DomainError):
    """No such record within the actor's data scope (404: another user's record is not revealed)."""

    status = 404
