"""The search box: a results page for people and a JSON endpoint for scripts and select boxes."""

from __future__ import annotations

from flask import current_app, request
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.api import BaseApi, protect
from flask_babel import lazy_gettext as _

from app.access import current_actor
from app.search import PICKERS, pick, search


def _search_request() -> list:
    """Run the search described by the request's arguments for the current user: customers and
    contacts, or the records of one picker kind (an order by number, ...), by `q` or by `id`."""
    limit = request.args.get("limit", "20")
    kind = request.args.get("kind")
    if kind in PICKERS:
        pk = request.args.get("id", "")
        session, actor = current_app.appbuilder.session, current_actor()
        if pk.isdigit():
            return pick(session, actor, kind, pk=int(pk))
        return pick(session, actor, kind, request.args.get("q", ""), int(limit) if limit.isdigit() else 20)
    kinds = (kind,) if kind in ("customer", "contact") else ("customer", "contact")
    return search(
        current_app.appbuilder.session,
        current_actor(),
        request.args.get("q", ""),
        int(limit) if limit.isdigit() else 20,
        kinds,
    )


class SearchView(BaseView):
    route_base = "/search"
    default_view = "results"

    @expose("/")
    @has_access
    def results(self) -> str:
        hits = _search_request()
        query = request.args.get("q", "")
        return self.render_template("crm/search.html", query=query, hits=hits, title=_("搜索"))


class SearchApi(BaseApi):
    resource_name = "search"
    allow_browser_login = True
    openapi_spec_tag = "Search"

    @expose("/", methods=["GET"])
    @protect()
    def get(self):  # noqa: ANN201 - FAB response
        """Search customers and contacts, or pick an order, opportunity, ticket or lead.
        ---
        get:
          parameters:
          - in: query
            name: q
            schema: {type: string}
            description: >
              customers and contacts: name (contains), mobile or phone (prefix) or e-mail
              (prefix); orders and tickets: number (prefix); opportunities and leads: name (prefix)
          - in: query
            name: kind
            schema: {type: string, enum: [customer, contact, order, opportunity, ticket, lead]}
          - in: query
            name: id
            schema: {type: integer}
            description: orders, opportunities, tickets and leads only, the one record with this id
          - in: query
            name: limit
            schema: {type: integer, maximum: 50}
          responses:
            200:
              description: matches, best first
            401:
              $ref: '#/components/responses/401'
        """
        hits = _search_request()
        return self.response(200, result=[hit.as_dict() for hit in hits], count=len(hits))
