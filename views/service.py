"""Placeholder: filled in by the service work of issue 8."""

from __future__ import annotations

from flask_appbuilder import AppBuilder


def register(appbuilder: AppBuilder) -> None:
    """Add this domain's views and APIs (none yet)."""
