"""Extensions, created unbound here and bound to the app in create_app()."""

from __future__ import annotations

from flask_appbuilder import AppBuilder
from flask_appbuilder.utils.legacy import get_sqla_class
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

from models import Model

#: FAB's SQLA bound to FAB's Model metadata, so our tables and FAB's live in one schema
db = get_sqla_class()(metadata=Model.metadata)
appbuilder = AppBuilder(update_perms=True)
migrate = Migrate()
csrf = CSRFProtect()
