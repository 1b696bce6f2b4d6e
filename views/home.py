"""The home page: a start for the role that logs in, not Flask-AppBuilder's empty welcome."""

from __future__ import annotations

from flask import current_app, redirect, url_for
from flask_appbuilder import IndexView, expose

from app.access import current_actor
from app.home import home_summary, workbench
from models.base import utcnow
from models.customers import CUSTOMER_LEVELS
from models.orders import TARGET_METRICS, TARGET_PERIODS


class HomeView(IndexView):
    route_base = ""
    default_view = "index"
    index_template = "crm/home.html"

    @expose("/")
    def index(self):  # noqa: ANN201 - a Flask response
        user = current_actor()
        if user is None:
            return redirect(url_for(f"{self.appbuilder.sm.auth_view.endpoint}.login"))
        session, config = self.appbuilder.session, current_app.config
        summary = home_summary(session, user, config["CRM_COUNT_CAP"])
        now = utcnow()
        work = workbench(session, user, now, config["BABEL_DEFAULT_TIMEZONE"])
        return self.render_template(
            self.index_template,
            summary=summary,
            work=work,
            user=user,
            levels=CUSTOMER_LEVELS,
            periods=TARGET_PERIODS,
            metrics=TARGET_METRICS,
            now_utc=now,
        )
