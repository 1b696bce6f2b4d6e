"""Extensions, created unbound here and bound to the app in create_app()."""

from __future__ import annotations

import sqlite3

from flask_appbuilder import AppBuilder
from flask_appbuilder.utils.legacy import get_sqla_class
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import event
from sqlalchemy.engine import Engine

from models import Model

#: FAB's SQLA bound to FAB's Model metadata, so our tables and FAB's live in one schema
db = get_sqla_class()(metadata=Model.metadata)
appbuilder = AppBuilder(update_perms=True)
migrate = Migrate()
csrf = CSRFProtect()


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: object, connection_record: object) -> None:
    """Per SQLite connection: enforce foreign keys (and so ON DELETE CASCADE), which SQLite does
    only when asked; write-ahead logging, so that the web workers keep reading while the worker
    writes (a recycle run, a rollup rebuild), with the usual `synchronous=NORMAL` of WAL (a power
    cut may lose the last commits, never corrupts); and a 64 MiB page cache instead of 2 MiB (the
    daily jobs touch hundreds of thousands of rows at random)."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] not in ("wal", "memory"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()
