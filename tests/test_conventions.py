"""Every entity follows the same shape: a model, a screen, an API, a data-scope decision."""

from __future__ import annotations

import models
from app.access import UNSCOPED_MODELS, is_scoped
from views.base import CrmModelApi, CrmModelView

ENTITY_MODELS = [getattr(models, name) for name in models.__all__ if name not in {"Model"}]


def registered(app, base: type) -> dict[type, object]:
    return {view.datamodel.obj: view for view in app.appbuilder.baseviews if isinstance(view, base)}


def test_every_model_has_a_screen_and_an_api(app) -> None:
    screens, apis = registered(app, CrmModelView), registered(app, CrmModelApi)
    for model in ENTITY_MODELS:
        if model.__name__ == "CrmUser":
            continue  # Flask-AppBuilder's user screens and API (security menu)
        assert model in screens, f"{model.__name__} has no CrmModelView"
        assert model in apis, f"{model.__name__} has no CrmModelApi"


def test_every_model_decides_its_data_scope() -> None:
    for model in ENTITY_MODELS:
        assert is_scoped(model) != (model.__name__ in UNSCOPED_MODELS), model.__name__


def test_scoped_views_carry_the_scope_filter(app) -> None:
    for view in [*registered(app, CrmModelView).values(), *registered(app, CrmModelApi).values()]:
        has_filter = any(f[1].__name__ == "DataScopeFilter" for f in view.base_filters or [])
        assert has_filter == is_scoped(view.datamodel.obj), type(view).__name__
