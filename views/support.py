"""The public support pages, without login: the ticket form, its status page, the survey.

- `GET/POST /support/new`: the form (rate limited per IP, an offline human check); a ticket is
  created through app.service.create_ticket, and its private status link is shown once (and
  mailed when an e-mail was given).
- `GET/POST /support/t/<token>`: the status page, the public conversation and a reply (rate
  limited too, optionally with an attachment). An unknown token is the same plain 404 as any
  unknown page: nothing tells whether a ticket exists.
- `GET/POST /support/survey/<token>`: the 1-5 rating and a comment, answered once (409 after).

These are plain views without FAB's `has_access`, so they need no role; every other screen keeps
its permission check, so an anonymous visitor reaches these pages and nothing else. The pages are
standalone templates (app/templates/support/), with no script and nothing from other sites.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Response,
    abort,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_appbuilder import AppBuilder, BaseView, expose
from flask_babel import gettext

from app import service as tickets
from app import support, surveys
from app.errors import Conflict, DomainError, NotFound, ValidationFailed
from app.extensions import db
from app.notifications import queue_mail
from app.ratelimit import public_form_limit
from models.service import Survey


def _remember_language() -> None:
    """`?_l_=en` switches the public pages' language for the rest of the visit."""
    wanted = request.args.get("_l_")
    if wanted and wanted in current_app.config.get("LANGUAGES", {}):
        session["locale"] = wanted


def _page(template: str, status: int = 200, **context: Any) -> Response:
    """A public page: never cached, and its private link never sent on as a referrer."""
    response = make_response(render_template(template, **context), status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _messages(error: DomainError) -> dict[str, list[str]]:
    return {field: list(messages) for field, messages in error.errors.items()}


class SupportView(BaseView):
    """客户服务: the public pages (no login, no FAB permission)."""

    route_base = "/support"
    default_view = "new"

    # --- the form --------------------------------------------------------------------------
    def _form(
        self, status: int = 200, errors: dict[str, list[str]] | None = None, values: Any = None
    ) -> Response:
        return _page(
            "support/new.html",
            status,
            challenge=support.make_challenge(),
            categories=support.categories(db.session),
            errors=errors or {},
            values=values or {},
            honeypot=support.HONEYPOT_FIELD,
        )

    @expose("/new", methods=["GET", "POST"])
    @public_form_limit
    def new(self) -> Response:
        _remember_language()
        if request.method == "GET":
            return self._form()
        form = request.form
        raw = support.new_token()
        try:
            values = support.clean_request(db.session, form)
            ticket = tickets.create_ticket(db.session, channel="web", actor=None, **values)
            ticket.access_token_hash = support.token_hash(raw)
            db.session.flush()
            if ticket.requester_email:
                _mail_status_link(ticket, raw)
            db.session.commit()
        except ValidationFailed as error:
            db.session.rollback()
            return self._form(400, _messages(error), form)
        return _page("support/submitted.html", 201, ticket=ticket, link=support.status_url(raw))

    # --- the status page -------------------------------------------------------------------
    @expose("/t/<token>", methods=["GET", "POST"])
    @public_form_limit
    def status(self, token: str) -> Response:
        _remember_language()
        ticket = support.ticket_by_token(db.session, token)
        if ticket is None:
            abort(404)
        errors: dict[str, list[str]] = {}
        if request.method == "POST":
            try:
                self._reply(ticket)
                db.session.commit()
                return redirect(url_for("SupportView.status", token=token, _anchor="latest"), 303)
            except ValidationFailed as error:
                db.session.rollback()
                errors = _messages(error)
                ticket = support.ticket_by_token(db.session, token)
        survey = db.session.query(Survey).filter(Survey.ticket_id == ticket.id).one_or_none()
        code, label = support.public_status(ticket)
        return _page(
            "support/status.html",
            400 if errors else 200,
            ticket=ticket,
            status_code=code,
            status_label=label,
            messages=support.public_conversation(db.session, ticket),
            survey=survey,
            survey_link=surveys.link_of(survey)
            if survey is not None and survey.answered_at is None
            else None,
            errors=errors,
            local_time=support.local_time,
            can_reply=ticket.status != "closed",
            body=request.form.get("body", "") if errors else "",
        )

    def _reply(self, ticket: Any) -> None:
        """The customer's reply (and an optional file); nothing is written when anything is wrong."""
        body = support.clean_reply(request.form)
        upload = request.files.get("file")
        comment = tickets.add_comment(
            db.session, ticket, body, actor=None, from_customer=True, author_name=ticket.requester_name
        )
        if upload is not None and upload.filename:
            tickets.add_attachment(
                db.session,
                ticket,
                upload.stream,
                upload.filename,
                actor=None,
                from_customer=True,
                comment=comment,
            )

    # --- the survey ------------------------------------------------------------------------
    @expose("/survey/<token>", methods=["GET", "POST"])
    @public_form_limit
    def survey(self, token: str) -> Response:
        _remember_language()
        found = support.survey_by_token(db.session, token)
        if found is None:
            abort(404)
        context = {"survey": found, "ticket": found.ticket, "errors": {}, "values": {}}
        if request.method == "GET":
            if found.answered_at is not None:
                return _page("support/survey_done.html", 200, already=True, **context)
            return _page("support/survey.html", 200, **context)
        try:
            answered = surveys.answer(db.session, token, request.form)
        except NotFound:
            abort(404)
        except Conflict:
            db.session.rollback()
            found = support.survey_by_token(db.session, token)
            return _page("support/survey_done.html", 409, already=True, survey=found, ticket=found.ticket)
        except ValidationFailed as error:
            db.session.rollback()
            found = support.survey_by_token(db.session, token)
            return _page(
                "support/survey.html",
                400,
                survey=found,
                ticket=found.ticket,
                errors=_messages(error),
                values=request.form,
            )
        return _page("support/survey_done.html", 200, already=False, survey=answered, ticket=answered.ticket)


def _mail_status_link(ticket: Any, raw: str) -> None:
    """The private link by e-mail (once per ticket), in the ticket's transaction."""
    link = support.status_url(raw)
    subject = gettext("您的服务工单已提交: %(number)s", number=ticket.number)
    body = "\n".join(
        [
            gettext("您好 %(name)s,", name=ticket.requester_name or ""),
            "",
            gettext(
                "我们已收到您的问题「%(subject)s」,工单号 %(number)s。",
                subject=ticket.subject,
                number=ticket.number,
            ),
            gettext("通过下面的专属链接查看处理进度并回复 (请勿转发):"),
            link,
            "",
            "-- ",
            str(current_app.config.get("APP_NAME", "KeGuan")),
        ]
    )
    queue_mail(db.session, ticket.requester_email, subject, body, dedup_key=f"ticket-link:{ticket.id}")


def register(appbuilder: AppBuilder) -> None:
    """The public pages: no menu entry, no permission (see the module's docstring)."""
    appbuilder.add_view_no_menu(SupportView)
