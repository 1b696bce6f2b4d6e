"""Approvals (审批): the engine that sends documents through the flows an admin configures.

A kind of document (orders and contracts, collections, invoices) registers itself once with
`register_document()`, saying how to title it, what amount it carries, how to read a field for
a flow's conditions, and what happens to the document's own status when it is submitted,
approved, rejected or sent back. The engine knows nothing else about documents.

`submit()` picks the first active flow whose conditions hold; no flow means the document is
approved at once (a small company need not configure any). Each step asks its approvers (the
submitter's superior, N levels of superiors, the department leader, a role or a named user);
all of them must agree (会签) or the first one decides for the step (或签).

Decisions (rules in one place, here):
- A submitter never approves their own request: they are left out of every step's approvers.
- A step that resolves to nobody (the top of the manager chain has no superior, a department
  without a leader, or only the submitter would approve) is skipped, with a 'skipped' decision
  recorded that says why: a boss's own contract must not be stuck forever. A step naming a role
  without active users, or an inactive user, is a configuration mistake: submission is refused
  with a message for the admin instead of skipping what someone meant to be checked.
- Steps are resolved when they are reached (a new manager approves what reaches them after the
  change). A flow's steps cannot change while one of its requests is pending.
- Deciding locks the request row and claims the decision by a conditional UPDATE, so a double
  click or two approvers of a 或签 step at the same moment cannot both count.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import current_app, has_app_context
from flask_appbuilder.security.sqla.models import Role
from flask_babel import gettext as _
from flask_babel import lazy_gettext as lazy
from sqlalchemy import Boolean, Date, DateTime, Integer, Numeric, String, Text, func, inspect, select, update
from sqlalchemy.orm import Session

from app import validators
from app.access import entity_name, extend_scope
from app.errors import AccessDenied, Conflict, ErrorCollector, NotFound, ValidationFailed
from app.notifications import notify, queue_mail
from app.services import RecordService, acting_as, text_up_to, write_transaction
from customfields import CustomFieldsMixin
from customfields.definitions import CustomField, definitions
from customfields.query import sql_value, storage_kind, typed_value
from customfields.values import FIELD_PREFIX
from models.approvals import (
    APPROVAL_DOCUMENTS,
    APPROVER_KINDS,
    STEP_MODES,
    ApprovalDecision,
    ApprovalFlow,
    ApprovalRequest,
    ApprovalStep,
)
from models.base import utcnow
from models.security import CrmUser, Department

#: the screen an approval notification links to
REQUEST_LINK = "/approvalrequestview/show/{id}"


@dataclass(frozen=True)
class DocumentKind:
    """How the engine treats one kind of document (registered by its domain's service)."""

    name: str  # "order", "payment", "invoice" (APPROVAL_DOCUMENTS)
    model: type
    title: Callable[[Any], str]
    amount: Callable[[Any], Decimal | None]
    #: the value a flow condition names: a column, a computed figure or "custom.<api_name>"
    field_value: Callable[[Any, str], Any]
    #: status changes of the document itself; each runs in the caller's transaction
    on_submitted: Callable[[Session, Any], None]
    on_approved: Callable[[Session, Any, dt.datetime], None]
    #: returned=True: sent back to the submitter to change and submit again
    on_rejected: Callable[[Session, Any, str, bool], None]
    #: computed figures a condition may name besides the model's columns: name -> value type
    #: ("number", "text", "date", "datetime" or "boolean"), e.g. {"paid_percent": "number"}
    figures: Mapping[str, str] = field(default_factory=dict)
    #: the document's own screen, for notifications; the approval request's page by default
    link: Callable[[Any], str] | None = None


DOCUMENT_KINDS: dict[str, DocumentKind] = {}


def register_document(kind: DocumentKind) -> None:
    DOCUMENT_KINDS[kind.name] = kind


def record_field(record: Any, name: str) -> Any:
    """The usual `field_value`: a custom value for "custom.<api_name>", else the attribute."""
    if name.startswith(FIELD_PREFIX):
        return (getattr(record, "custom", None) or {}).get(name.removeprefix(FIELD_PREFIX))
    return getattr(record, name, None)


# --- conditions ------------------------------------------------------------------------------------
OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda left, right: left == right,
    "neq": lambda left, right: left != right,
    "gt": lambda left, right: left > right,
    "gte": lambda left, right: left >= right,
    "lt": lambda left, right: left < right,
    "lte": lambda left, right: left <= right,
    "in": lambda left, right: left in right,
}
ORDERED_OPERATORS = {"gt", "gte", "lt", "lte"}
ORDERED_TYPES = {"number", "date", "datetime"}
#: custom-field storage kinds -> condition value types; the others (multi-select, file, long
#: text) cannot be compared
CUSTOM_TYPES = {
    "integer": "number", "decimal": "number", "currency": "number", "percent": "number",
    "reference": "number", "date": "date", "datetime": "datetime", "boolean": "boolean",
    "text": "text", "email": "text", "phone": "text", "url": "text", "select": "text",
}  # fmt: skip


@dataclass(frozen=True)
class Operand:
    """What a condition's field names: its value type, and the custom field if it is one."""

    kind: str
    custom: CustomField | None = None


def _column_type(column_type: Any) -> str | None:
    if isinstance(column_type, Boolean):
        return "boolean"
    if isinstance(column_type, (Numeric, Integer)):
        return "number"
    if isinstance(column_type, DateTime):
        return "datetime"
    if isinstance(column_type, Date):
        return "date"
    if isinstance(column_type, (String, Text)):
        return "text"
    return None


def operand(session: Session, kind: DocumentKind, name: Any) -> Operand:
    """Resolve a condition's field, or raise ValueError with the message."""
    if not isinstance(name, str) or not name:
        raise ValueError(_("请填写字段"))
    if name.startswith(FIELD_PREFIX):
        api_name = name.removeprefix(FIELD_PREFIX)
        fields = (
            definitions(session, entity_name(kind.model)) if issubclass(kind.model, CustomFieldsMixin) else []
        )
        custom = next((f for f in fields if f.api_name == api_name), None)
        if custom is None:
            raise ValueError(_("未知的自定义字段 %(name)s", name=name))
        value_type = CUSTOM_TYPES.get(storage_kind(custom))
        if value_type is None:
            raise ValueError(_("该类型的自定义字段不能作为条件: %(name)s", name=name))
        return Operand(value_type, custom)
    if name in kind.figures:
        return Operand(kind.figures[name])
    columns = inspect(kind.model).columns
    value_type = _column_type(columns[name].type) if name in columns and name != "custom" else None
    if value_type is None:
        raise ValueError(_("未知字段 %(name)s", name=name))
    return Operand(value_type)


def _typed(target: Operand, raw: Any) -> Any:
    """One condition value in the type it is compared in, or ValueError."""
    if target.custom is not None:
        try:
            return sql_value(target.custom, typed_value(target.custom, raw))
        except (ValueError, TypeError) as exc:
            raise ValueError(str(exc) or _("值无效")) from exc
    if target.kind == "number":
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str, Decimal)):
            raise ValueError(_("应为数字"))
        try:
            number = Decimal(str(raw).strip())
        except InvalidOperation as exc:
            raise ValueError(_("应为数字")) from exc
        if not number.is_finite():
            raise ValueError(_("应为数字"))
        return number
    if target.kind == "boolean":
        if not isinstance(raw, bool):
            raise ValueError(_("应为 true 或 false"))
        return raw
    if target.kind in ("date", "datetime"):
        parse = dt.date.fromisoformat if target.kind == "date" else dt.datetime.fromisoformat
        try:
            return parse(str(raw))
        except ValueError as exc:
            raise ValueError(_("应为 ISO 格式的日期, 例如 2026-01-31")) from exc
    if not isinstance(raw, (str, int)) or isinstance(raw, bool):
        raise ValueError(_("应为文本"))
    return str(raw)


def condition_value(target: Operand, op: Any, raw: Any) -> Any:
    """The condition's comparison value, or ValueError (bad operator for the type, bad value)."""
    if op not in OPERATORS:
        raise ValueError(_("不支持的运算符 %(op)s, 可选: %(ops)s", op=op, ops=", ".join(OPERATORS)))
    if op in ORDERED_OPERATORS and target.kind not in ORDERED_TYPES:
        raise ValueError(_("该字段不能比较大小, 只能用 eq, neq 或 in"))
    if op == "in":
        if not isinstance(raw, list) or not raw:
            raise ValueError(_("in 的值应为非空列表"))
        return [_typed(target, item) for item in raw]
    if raw is None:
        raise ValueError(_("请填写比较的值"))
    return _typed(target, raw)


def check_conditions(session: Session, kind: DocumentKind, conditions: Any) -> list[str]:
    """Every problem of a flow's conditions, one message per faulty condition."""
    if conditions in (None, ""):
        return []
    if not isinstance(conditions, list):
        return [_('条件应为列表: [{"field": ..., "op": ..., "value": ...}]')]
    problems = []
    for number, condition in enumerate(conditions, start=1):
        try:
            if not isinstance(condition, dict) or set(condition) - {"field", "op", "value"}:
                raise ValueError(_('应为 {"field", "op", "value"}'))
            condition_value(
                operand(session, kind, condition.get("field")), condition.get("op"), condition.get("value")
            )
        except ValueError as exc:
            problems.append(_("第 %(n)s 个条件: %(problem)s", n=number, problem=str(exc)))
    return problems


def _record_value(target: Operand, value: Any) -> Any:
    if value is None:
        return None
    if target.custom is not None:
        return sql_value(target.custom, value)
    if target.kind == "number":
        return Decimal(str(value))
    return value


def conditions_hold(
    session: Session, kind: DocumentKind, record: Any, conditions: list[dict[str, Any]]
) -> bool:
    """Whether the record meets every condition (a missing value meets only neq)."""
    for condition in conditions or []:
        target = operand(session, kind, condition["field"])
        expected = condition_value(target, condition["op"], condition["value"])
        actual = _record_value(target, kind.field_value(record, condition["field"]))
        if actual is None:
            if condition["op"] != "neq":
                return False
            continue
        try:
            if not OPERATORS[condition["op"]](actual, expected):
                return False
        except TypeError:  # a computed figure of another type than declared
            return False
    return True


def matching_flow(session: Session, kind: DocumentKind, record: Any) -> ApprovalFlow | None:
    """The first active flow of the document kind (by position) whose conditions all hold."""
    flows = session.scalars(
        select(ApprovalFlow)
        .where(ApprovalFlow.document == kind.name, ApprovalFlow.active.is_(True))
        .order_by(ApprovalFlow.position, ApprovalFlow.id)
    )
    return next((flow for flow in flows if conditions_hold(session, kind, record, flow.conditions)), None)


# --- approvers ---------------------------------------------------------------------------------------
def _active(session: Session, user_ids: list[int | None]) -> list[int]:
    wanted = [i for i in user_ids if i is not None]
    if not wanted:
        return []
    active = set(session.scalars(select(CrmUser.id).where(CrmUser.id.in_(wanted), CrmUser.active.is_(True))))
    return [i for i in dict.fromkeys(wanted) if i in active]


def _superiors(session: Session, submitter: CrmUser, levels: int) -> list[int | None]:
    """Up to `levels` managers above the submitter, nearest first; stops at the top."""
    found: list[int | None] = []
    current = submitter.manager_id
    while current is not None and len(found) < levels and current not in found and current != submitter.id:
        found.append(current)
        current = session.scalar(select(CrmUser.manager_id).where(CrmUser.id == current))
    return found


def _department_leader(session: Session, submitter: CrmUser) -> list[int | None]:
    """The leader of the submitter's department; the parent's when the submitter leads it."""
    department = session.get(Department, submitter.department_id) if submitter.department_id else None
    while department is not None:
        if department.leader_id is not None and department.leader_id != submitter.id:
            return [department.leader_id]
        if department.leader_id is None:
            return []
        department = department.parent
    return []


def step_candidates(session: Session, step: ApprovalStep, submitter: CrmUser) -> list[int]:
    """Who the step asks (active users, in order), before leaving out the submitter."""
    kind = step.approver_kind
    if kind == "superior":
        return _active(session, _superiors(session, submitter, 1))
    if kind == "superior_levels":
        return _active(session, _superiors(session, submitter, max(step.levels or 1, 1)))
    if kind == "department_leader":
        return _active(session, _department_leader(session, submitter))
    if kind == "role":
        return list(
            session.scalars(
                select(CrmUser.id)
                .join(CrmUser.roles)
                .where(Role.id == step.role_id, CrmUser.active.is_(True))
                .order_by(CrmUser.id)
            )
        )
    if kind == "user":
        return _active(session, [step.user_id])
    return []


def approvers(session: Session, step: ApprovalStep, submitter: CrmUser) -> list[int]:
    """The step's approvers: never the submitter themselves."""
    return [i for i in step_candidates(session, step, submitter) if i != submitter.id]


def _misconfigured(session: Session, flow: ApprovalFlow, submitter: CrmUser) -> list[str]:
    """Steps naming a role without active users or an inactive user: the admin must fix them."""
    problems = []
    for step in flow.steps:
        if step.approver_kind in ("role", "user") and not step_candidates(session, step, submitter):
            problems.append(
                _(
                    "审批流程「%(flow)s」的步骤「%(step)s」没有可用的审批人, 请联系管理员",
                    flow=flow.name,
                    step=step_label(step),
                )
            )
    return problems


def step_label(step: ApprovalStep) -> str:
    return step.name or APPROVER_KINDS.label(step.approver_kind)


# --- submitting and deciding ----------------------------------------------------------------------
def submit(session: Session, document: str, record: Any, actor: CrmUser | None) -> ApprovalRequest | None:
    """Send a document for approval. Returns the request, or None when no flow applies and the
    document was approved at once. The caller commits.

    Raises Conflict (409) when the document already waits for approval, ValidationFailed when
    the matching flow names a role or user nobody can act for (nothing is written then).
    """
    kind = DOCUMENT_KINDS[document]
    if actor is None:
        raise ValidationFailed({"approval": [_("提交审批需要提交人")]})
    if inspect(record).identity is None:
        session.flush()  # the request refers to the document by id
    pending = session.scalar(
        select(ApprovalRequest.id).where(
            ApprovalRequest.document == document,
            ApprovalRequest.document_id == record.id,
            ApprovalRequest.status == "pending",
        )
    )
    if pending is not None:
        raise Conflict({"status": [_("该单据已在审批中")]})
    submitter = session.get(CrmUser, actor.id)
    flow = matching_flow(session, kind, record)
    if flow is not None and (problems := _misconfigured(session, flow, submitter)):
        raise ValidationFailed({"approval": problems})
    kind.on_submitted(session, record)
    if flow is None:
        kind.on_approved(session, record, utcnow())
        return None
    request = ApprovalRequest(
        flow=flow,
        document=document,
        document_id=record.id,
        title=kind.title(record)[:255],
        amount=kind.amount(record),
        status="pending",
        current_step=-1,
        submitted_at=utcnow(),
        owner_id=submitter.id,
        department_id=submitter.department_id,
    )
    session.add(request)
    session.flush()
    _advance(session, request, kind, record, submitter)
    return request


def _advance(
    session: Session, request: ApprovalRequest, kind: DocumentKind, record: Any, submitter: CrmUser
) -> None:
    """Open the next step that has approvers (skipping, on record, those that have none), or
    approve the request when no step is left."""
    now = utcnow()
    for step in request.flow.steps if request.flow else []:
        if step.position <= request.current_step:
            continue
        request.current_step = step.position
        people = approvers(session, step, submitter)
        if not people:
            session.add(
                ApprovalDecision(
                    request=request,
                    step=step.position,
                    decision="skipped",
                    decided_at=now,
                    comment=_("「%(step)s」无审批人 (或只有提交人本人), 已跳过", step=step_label(step)),
                )
            )
            continue
        for approver_id in people:
            session.add(ApprovalDecision(request=request, step=step.position, approver_id=approver_id))
        session.flush()
        _tell_approvers(session, request, kind, record, people, submitter)
        return
    request.status = "approved"
    request.closed_at = now
    kind.on_approved(session, record, now)
    _tell_submitter(session, request, _("审批通过: %(title)s", title=request.title), None)


ACTIONS = {"approve": "approved", "reject": "rejected", "return": "returned"}


def decide(
    session: Session, request_id: int, actor: CrmUser, action: str, comment: str | None = None
) -> ApprovalRequest:
    """An approver approves, rejects (驳回) or sends back (退回) a request; commits.

    403 for anyone who is not waiting to decide on it, 409 for a second decision or a closed
    request, 400 without a reason for a rejection or a send-back.
    """
    decision_code = ACTIONS.get(action)
    if decision_code is None:
        raise ValidationFailed({"action": [_("未知的操作 %(action)s", action=action)]})
    comment = validators.clean_text(comment, 2000) if comment is not None else None
    if decision_code != "approved" and not comment:
        raise ValidationFailed({"comment": [_("请填写理由")]})
    with acting_as(session, actor), write_transaction(session):
        request = session.scalar(
            select(ApprovalRequest).where(ApprovalRequest.id == request_id).with_for_update()
        )
        if request is None:
            raise NotFound(_("审批不存在"))
        mine = session.scalar(
            select(ApprovalDecision).where(
                ApprovalDecision.request_id == request.id,
                ApprovalDecision.approver_id == actor.id,
                ApprovalDecision.step == request.current_step,
                ApprovalDecision.decision == "waiting",
            )
        )
        if mine is None or request.status != "pending":
            _refuse(session, request, actor)
        now = utcnow()
        claimed = session.execute(
            update(ApprovalDecision)
            .where(ApprovalDecision.id == mine.id, ApprovalDecision.decision == "waiting")
            .values(decision=decision_code, comment=comment, decided_at=now)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:
            raise Conflict(_("您已处理过该审批"))
        session.expire(mine)
        _after_decision(session, request, actor, decision_code, comment or "", now)
    return request


def cancel_pending(session: Session, document: str, document_id: int, reason: str) -> int:
    """Withdraw a document's pending requests (the document was voided or deleted): the request
    becomes 撤销, waiting decisions 'skipped' with the reason, so nobody is left asked to approve
    something that no longer exists. Runs in the caller's transaction; returns how many."""
    now = utcnow()
    pending = select(ApprovalRequest.id).where(
        ApprovalRequest.document == document,
        ApprovalRequest.document_id == document_id,
        ApprovalRequest.status == "pending",
    )
    ids = list(session.scalars(pending))
    if not ids:
        return 0
    session.execute(
        update(ApprovalDecision)
        .where(ApprovalDecision.request_id.in_(ids), ApprovalDecision.decision == "waiting")
        .values(decision="skipped", comment=reason, decided_at=now)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(ApprovalRequest)
        .where(ApprovalRequest.id.in_(ids), ApprovalRequest.status == "pending")
        .values(status="cancelled", closed_at=now)
        .execution_options(synchronize_session=False)
    )
    return len(ids)


def _refuse(session: Session, request: ApprovalRequest, actor: CrmUser) -> None:
    """Why the actor may not decide: 409 when they took part already, 403 otherwise."""
    involved = session.scalar(
        select(func.count())
        .select_from(ApprovalDecision)
        .where(ApprovalDecision.request_id == request.id, ApprovalDecision.approver_id == actor.id)
    )
    if involved:
        raise Conflict(_("您已处理过该审批, 或它已由他人处理或已结束"))
    raise AccessDenied(_("您不是该审批当前步骤的审批人"))


def _after_decision(
    session: Session, request: ApprovalRequest, actor: CrmUser, decision: str, comment: str, now: dt.datetime
) -> None:
    """Close the step when it is done, move on, or end the request; tell the submitter."""
    kind = DOCUMENT_KINDS[request.document]
    record = session.get(kind.model, request.document_id)
    steps = request.flow.steps if request.flow else []
    step = next((s for s in steps if s.position == request.current_step), None)
    waiting = (
        ApprovalDecision.request_id == request.id,
        ApprovalDecision.step == request.current_step,
        ApprovalDecision.decision == "waiting",
    )
    if decision == "approved" and step is not None and step.mode == "all":
        if session.scalar(select(func.count()).select_from(ApprovalDecision).where(*waiting)):
            _tell_progress(session, request, actor, comment)  # 会签: the others still decide
            return
    # the step is decided: nobody else of it needs to act any more
    session.execute(
        update(ApprovalDecision)
        .where(*waiting)
        .values(decision="skipped", decided_at=now)
        .execution_options(synchronize_session=False)
    )
    if decision == "approved":
        _tell_progress(session, request, actor, comment)
        _advance(session, request, kind, record, session.get(CrmUser, request.owner_id))
        return
    request.status, request.closed_at = decision, now
    kind.on_rejected(session, record, comment, decision == "returned")
    subject = (
        _("审批被驳回: %(title)s", title=request.title)
        if decision == "rejected"
        else _("审批被退回: %(title)s", title=request.title)
    )
    _tell_submitter(session, request, subject, f"{actor}: {comment}")


# --- notifications -------------------------------------------------------------------------------
def _base_url() -> str:
    return current_app.config.get("CRM_BASE_URL", "").rstrip("/") if has_app_context() else ""


def _link(request: ApprovalRequest) -> str:
    return REQUEST_LINK.format(id=request.id)


def _mail(session: Session, user_id: int, subject: str, lines: list[str], dedup_key: str) -> None:
    email = session.scalar(select(CrmUser.email).where(CrmUser.id == user_id))
    if email:
        queue_mail(
            session, email, subject, "\n".join([_("您好,"), "", *lines, "", "-- ", "KeGuan"]), dedup_key
        )


def _tell_approvers(
    session: Session, request: ApprovalRequest, kind: DocumentKind, record: Any, people: list[int],
    submitter: CrmUser,
) -> None:  # fmt: skip
    """A new approval waits for each of them: in-app and by e-mail."""
    subject = _("待您审批: %(title)s", title=request.title)
    body = _("%(who)s 提交了审批: %(title)s", who=str(submitter), title=request.title)
    for approver_id in people:
        notify(session, approver_id, subject, body, _link(request))
        url = _base_url() + _link(request)
        _mail(session, approver_id, subject, [body, "", _("去审批: %(url)s", url=url)],
              f"approval:{request.id}:{request.current_step}:{approver_id}")  # fmt: skip


def _tell_progress(session: Session, request: ApprovalRequest, actor: CrmUser, comment: str) -> None:
    """One approver agreed: in-app only (the outcome comes by e-mail too)."""
    if request.owner_id is not None:
        title = _("%(who)s 同意了: %(title)s", who=str(actor), title=request.title)
        notify(session, request.owner_id, title, comment or None, _link(request))


def _tell_submitter(session: Session, request: ApprovalRequest, subject: str, body: str | None) -> None:
    """The request ended (approved, rejected, sent back): in-app and by e-mail."""
    if request.owner_id is None:
        return
    notify(session, request.owner_id, subject, body, _link(request))
    lines = [subject, *([body] if body else []), "", _base_url() + _link(request)]
    _mail(session, request.owner_id, subject, lines, f"approval-result:{request.id}:{request.status}")


# --- the workbench -------------------------------------------------------------------------------
def waiting_for(session: Session, user: CrmUser, limit: int = 10) -> list[ApprovalRequest]:
    """Requests waiting for the user's decision, oldest first (the workbench's 待我审批)."""
    return list(
        session.scalars(
            select(ApprovalRequest)
            .join(ApprovalDecision, ApprovalDecision.request_id == ApprovalRequest.id)
            .where(
                ApprovalDecision.approver_id == user.id,
                ApprovalDecision.decision == "waiting",
                ApprovalRequest.status == "pending",
            )
            .order_by(ApprovalRequest.submitted_at, ApprovalRequest.id)
            .limit(limit)
        )
    )


def is_waiting_approver(session: Session, request_id: int, user: CrmUser) -> bool:
    """Whether the user is asked to decide on the request now (the detail page's buttons)."""
    return (
        session.scalar(
            select(ApprovalDecision.id)
            .join(ApprovalRequest, ApprovalRequest.id == ApprovalDecision.request_id)
            .where(
                ApprovalDecision.request_id == request_id,
                ApprovalDecision.approver_id == user.id,
                ApprovalDecision.decision == "waiting",
                ApprovalDecision.step == ApprovalRequest.current_step,
                ApprovalRequest.status == "pending",
            )
        )
        is not None
    )


def _involved(user: CrmUser) -> Any:
    """Besides their data scope, a user sees the requests they are asked to decide or decided."""
    return ApprovalRequest.id.in_(
        select(ApprovalDecision.request_id).where(ApprovalDecision.approver_id == user.id)
    )


extend_scope(ApprovalRequest, _involved)


# --- configuration: flows and steps --------------------------------------------------------------------
def _pending_requests(session: Session, flow_id: int | None) -> int:
    if flow_id is None:
        return 0
    return (
        session.scalar(
            select(func.count())
            .select_from(ApprovalRequest)
            .where(ApprovalRequest.flow_id == flow_id, ApprovalRequest.status == "pending")
        )
        or 0
    )


def _pending_message(count: int) -> str:
    return _("该流程有 %(n)s 个审批中的申请, 请等它们结束后再修改步骤", n=count)


class ApprovalFlowService(RecordService):
    model = ApprovalFlow
    choices = {"document": APPROVAL_DOCUMENTS}
    cleaners = {"name": text_up_to(100), "description": text_up_to(255)}
    required = {"name": lazy("请填写流程名称"), "document": lazy("请选择单据类型")}

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        values["conditions"] = values.get("conditions") or []
        values["position"] = values.get("position") or 0
        if values.get("name") and "name" not in errors.errors:
            query = select(ApprovalFlow.id).where(ApprovalFlow.name == values["name"])
            if pk is not None:
                query = query.where(ApprovalFlow.id != pk)
            if session.scalar(query) is not None:
                errors.add("name", _("已有同名的审批流程"))
        document = values.get("document")
        if document in APPROVAL_DOCUMENTS and document not in DOCUMENT_KINDS:
            errors.add("document", _("该单据类型尚未启用审批"))
        elif document in DOCUMENT_KINDS:
            for problem in check_conditions(session, DOCUMENT_KINDS[document], values["conditions"]):
                errors.add("conditions", problem)

    def before_delete(self, session: Session, item: ApprovalFlow) -> None:
        if count := _pending_requests(session, item.id):
            raise ValidationFailed({"name": [_pending_message(count)]})


class ApprovalStepService(RecordService):
    model = ApprovalStep
    choices = {"approver_kind": APPROVER_KINDS, "mode": STEP_MODES}
    cleaners = {"name": text_up_to(100)}
    required = {
        "flow_id": lazy("请选择审批流程"),
        "approver_kind": lazy("请选择审批人类型"),
        "mode": lazy("请选择审批方式"),
    }

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        values["position"] = values.get("position") or 0
        kind = values.get("approver_kind")
        if kind == "superior_levels" and not 1 <= (values.get("levels") or 0) <= 10:
            errors.add("levels", _("层级应在 1 到 10 之间"))
        values["levels"] = values.get("levels") or 1
        if kind == "role" and not values.get("role_id"):
            errors.add("role", _("请选择审批角色"))
        if kind == "user" and not values.get("user_id"):
            errors.add("user", _("请选择审批人"))
        if kind != "role":
            values["role_id"] = None
        if kind != "user":
            values["user_id"] = None
        flow_id = values.get("flow_id")
        if flow_id is None:
            return
        same_place = select(ApprovalStep.id).where(
            ApprovalStep.flow_id == flow_id, ApprovalStep.position == values["position"]
        )
        if pk is not None:
            same_place = same_place.where(ApprovalStep.id != pk)
        if session.scalar(same_place) is not None:
            errors.add("position", _("该流程已有相同排序的步骤"))
        previous_flow = (
            session.scalar(select(ApprovalStep.flow_id).where(ApprovalStep.id == pk)) if pk else None
        )
        for flow in {flow_id, previous_flow} - {None}:
            if count := _pending_requests(session, flow):
                errors.add("flow", _pending_message(count))

    def before_delete(self, session: Session, item: ApprovalStep) -> None:
        if count := _pending_requests(session, item.flow_id):
            raise ValidationFailed({"flow": [_pending_message(count)]})
