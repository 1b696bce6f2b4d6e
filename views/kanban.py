"""The opportunity kanban (商机看板): the board screen and its JSON endpoints.

The queries and the move are in app.kanban; these only parse the request and map the result.
The page posts moves with the session cookie, so the move endpoint checks the CSRF token that
the page renders (X-CSRFToken), as Flask-WTF's forms do; clients with a bearer token or an API
key are not exposed to CSRF and are not asked for it (FAB exempts API blueprints from it).
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.api import BaseApi
from flask_appbuilder.api import expose as api_expose
from flask_appbuilder.security.decorators import permission_name, protect
from flask_babel import get_locale
from flask_babel import lazy_gettext as _
from flask_wtf.csrf import CSRFError, generate_csrf

from app.access import current_actor
from app.errors import DomainError
from app.extensions import csrf, db
from app.kanban import (
    PAGE_SIZE,
    BoardFilters,
    active_pipelines,
    board_summary,
    column_page,
    move_card,
    owner_choices,
)
from app.sales import default_pipeline_id
from models.sales import Pipeline

#: the screen's texts, translated on the server and handed to kanban.js
JS_TEXTS = {
    "load_more": _("加载更多"),
    "loading": _("加载中…"),
    "empty": _("暂无商机"),
    "no_close": _("未定成交日期"),
    "days": _("%(n)s 天"),
    "days_title": _("在当前阶段的天数"),
    "moved": _("已移到「%(stage)s」"),
    "failed": _("未能移动"),
    "network": _("网络错误,请稍后重试"),
    "reason_title": _("输单原因"),
    "reason_help": _("移到「%(stage)s」需要填写输单原因"),
    "open": _("查看商机"),
}


def can_move_opportunities() -> bool:
    """Moving a card edits the opportunity: it also takes the right to edit opportunities."""
    return bool(current_app.appbuilder.sm.has_access("can_edit", "OpportunityView"))


class KanbanView(BaseView):
    """The board of one pipeline: /opportunityboard/ shows the first active pipeline."""

    route_base = "/opportunityboard"
    default_view = "board"

    @expose("/")
    @expose("/<int:pipeline_id>")
    @has_access
    @permission_name("list")
    def board(self, pipeline_id: int | None = None) -> Any:
        session, actor = db.session, current_actor()
        pipeline_id = pipeline_id or default_pipeline_id(session)
        pipeline = session.get(Pipeline, pipeline_id) if pipeline_id else None
        if pipeline_id and pipeline is None:
            abort(404)
        try:
            filters = BoardFilters.parse(request.args.get("owner"), request.args.get("month"))
        except DomainError as exc:
            flash(exc.summary(), "warning")
            filters = BoardFilters()
        owners = owner_choices(session, actor)
        if filters.owner_id not in {None, *(owner["id"] for owner in owners)}:
            filters = BoardFilters(None, filters.close_month)  # not someone the user may see
        columns = (
            board_summary(session, actor, pipeline.id, filters.owner_id, filters.close_month)
            if pipeline
            else []
        )
        config = {
            "pipeline": pipeline.id if pipeline else None,
            "columns": columns,
            "owner": filters.owner_id,
            "month": f"{filters.close_month:%Y-%m}" if filters.close_month else "",
            "can_move": can_move_opportunities(),
            "page_size": PAGE_SIZE,
            "locale": "zh-CN" if str(get_locale() or "zh").startswith("zh") else "en",
            "csrf_token": generate_csrf(),
            "urls": {
                "api": url_for("KanbanApi.move").rsplit("/", 1)[0],
                "board": url_for("KanbanView.board"),
                "show": url_for("OpportunityView.show", pk=0).rsplit("/", 1)[0] + "/",
            },
            "texts": {key: str(text) for key, text in JS_TEXTS.items()},
        }
        return self.render_template(
            "crm/kanban.html",
            pipeline=pipeline,
            pipelines=active_pipelines(session),
            owners=owners,
            filters=filters,
            config=config,
        )


def _int_arg(name: str) -> int | None:
    value = request.args.get(name)
    if value in (None, ""):
        return None
    if not value.isdigit():
        raise ValueError(name)
    return int(value)


class KanbanApi(BaseApi):
    """The board's data: column summaries, a page of cards, and moving a card."""

    resource_name = "kanban"
    allow_browser_login = True
    openapi_spec_tag = "Kanban"

    def _failed(self, exc: DomainError) -> Any:
        db.session.rollback()
        return self.response(exc.status, message=exc.errors)

    @api_expose("/<int:pipeline_id>", methods=["GET"])
    @protect()
    @permission_name("get")
    def summary(self, pipeline_id: int) -> Any:
        """The columns of a pipeline's board with their count and total amount.
        ---
        get:
          parameters:
          - {in: path, name: pipeline_id, required: true, schema: {type: integer}}
          - {in: query, name: owner, schema: {type: integer}, description: only this owner's}
          - {in: query, name: month, schema: {type: string, example: 2026-03}, description: expected close}
          responses:
            200:
              description: the stages in order, each with count and total (the actor's data scope)
            400: {$ref: '#/components/responses/400'}
            404: {$ref: '#/components/responses/404'}
        """
        unknown = set(request.args) - {"owner", "month"}
        if unknown:
            return self.response_400(message={name: ["unknown parameter"] for name in sorted(unknown)})
        try:
            filters = BoardFilters.parse(request.args.get("owner"), request.args.get("month"))
            columns = board_summary(
                db.session, current_actor(), pipeline_id, filters.owner_id, filters.close_month
            )
        except DomainError as exc:
            return self._failed(exc)
        return self.response(200, result=columns)

    @api_expose("/<int:pipeline_id>/<int:stage_id>", methods=["GET"])
    @protect()
    @permission_name("get")
    def column(self, pipeline_id: int, stage_id: int) -> Any:
        """A page of one column's cards, newest first.
        ---
        get:
          parameters:
          - {in: path, name: pipeline_id, required: true, schema: {type: integer}}
          - {in: path, name: stage_id, required: true, schema: {type: integer}}
          - {in: query, name: after, schema: {type: integer}, description: the last id of the page before}
          - {in: query, name: owner, schema: {type: integer}}
          - {in: query, name: month, schema: {type: string, example: 2026-03}}
          - {in: query, name: limit, schema: {type: integer, maximum: 100, default: 20}}
          responses:
            200:
              description: 'result: the cards; next: the `after` of the next page, null at the end'
            400: {$ref: '#/components/responses/400'}
            404: {$ref: '#/components/responses/404'}
        """
        unknown = set(request.args) - {"after", "owner", "month", "limit"}
        if unknown:
            return self.response_400(message={name: ["unknown parameter"] for name in sorted(unknown)})
        try:
            after, limit = _int_arg("after"), _int_arg("limit")
        except ValueError as exc:
            return self.response_400(message={str(exc): ["not a positive integer"]})
        try:
            filters = BoardFilters.parse(request.args.get("owner"), request.args.get("month"))
            page = column_page(
                db.session, current_actor(), pipeline_id, stage_id, filters, after, limit or PAGE_SIZE
            )
        except DomainError as exc:
            return self._failed(exc)
        return self.response(200, result=page["cards"], next=page["next"])

    @api_expose("/move", methods=["POST"])
    @protect()
    @permission_name("post")
    def move(self) -> Any:
        """Move an opportunity to another stage of its pipeline (the opportunity service's rules).
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  required: [opportunity, stage]
                  properties:
                    opportunity: {type: integer}
                    stage: {type: integer}
                    close_reason: {type: string, description: needed to move to a lost stage}
                    owner: {type: integer, description: the board's owner filter, for the summaries}
                    month: {type: string, description: the board's month filter, for the summaries}
          responses:
            200:
              description: 'result: the summaries of the two columns; card: the moved card'
            400: {$ref: '#/components/responses/400'}
            403: {$ref: '#/components/responses/403'}
            404: {$ref: '#/components/responses/404'}
        """
        refused = self._check_csrf()
        if refused is not None:
            return refused
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.response_400(message="Request is not a JSON object")
        ids = {key: body.get(key) for key in ("opportunity", "stage")}
        wrong = [key for key, value in ids.items() if not isinstance(value, int) or isinstance(value, bool)]
        if wrong:
            return self.response_400(message={key: ["an integer id is required"] for key in wrong})
        reason = body.get("close_reason")
        if reason is not None and not isinstance(reason, str):
            return self.response_400(message={"close_reason": ["a string is expected"]})
        if not can_move_opportunities():
            return self.response(403, message={"opportunity": [str(_("您没有编辑商机的权限"))]})
        try:
            filters = BoardFilters.parse(body.get("owner"), body.get("month"))
            moved = move_card(db.session, current_actor(), ids["opportunity"], ids["stage"], reason, filters)
        except DomainError as exc:
            return self._failed(exc)
        return self.response(200, result=moved["columns"], card=moved["card"])

    def _check_csrf(self) -> Any:
        """A request authenticated by the session cookie must carry the page's CSRF token."""
        if request.headers.get("Authorization") or not current_app.config.get("WTF_CSRF_ENABLED", True):
            return None
        try:
            csrf.protect()
        except CSRFError as exc:
            return self.response_400(message={"csrf_token": [exc.description]})
        return None
