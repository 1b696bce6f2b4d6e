"""Importing this module registers every chart (app.analytics.register); the views import it."""

from __future__ import annotations

# the chart modules are imported here as they are written, e.g.:
# from app.analytics import customers, sales, service, trends  # noqa: F401
from app.analytics import customers, sales, service, trends  # noqa: F401,E402  (the three dashboards)
