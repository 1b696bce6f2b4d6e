"""Selling: the rules of products, pipelines, leads, opportunities, follow-ups and tasks, and the
use cases that span them (lead conversion, stage moves, follow-ups updating their customer)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as lazy
from sqlalchemy import event, func, inspect, or_, select, update
from sqlalchemy.orm import Session

from app import validators
from app.customers import DuplicateMatch, describe_duplicate
from app.errors import Conflict, ErrorCollector, ValidationFailed
from app.services import (
    ACTOR_KEY,
    OwnedRecordService,
    RecordService,
    acting_as,
    require_visible,
    require_writable,
    service_for,
    text_up_to,
    write_transaction,
)
from models.base import utcnow
from models.customers import CUSTOMER_SOURCES, Contact, Customer
from models.sales import (
    INTERACTION_KINDS,
    LEAD_STATUSES,
    OPPORTUNITY_STATUSES,
    TASK_STATUSES,
    Interaction,
    Lead,
    Opportunity,
    Pipeline,
    Product,
    Stage,
    StageChange,
    Task,
)
from models.security import CrmUser


def _non_negative(values: dict[str, Any], errors: ErrorCollector, field: str) -> None:
    if values.get(field) is not None and values[field] < 0:
        errors.add(field, _("不能为负数"))


def _percent(values: dict[str, Any], errors: ErrorCollector, field: str) -> None:
    if values.get(field) is not None and not 0 <= values[field] <= 100:
        errors.add(field, _("应在 0 到 100 之间"))


def _actor(session: Session) -> CrmUser | None:
    return session.info.get(ACTOR_KEY)


# --- catalogue and pipelines ---------------------------------------------------------------------
class ProductService(RecordService):
    model = Product
    cleaners = {
        "sku": lambda v: (validators.clean_text(v, 50) or "").upper().replace(" ", "") or None,
        "name": text_up_to(200),
        "category": text_up_to(100),
        "unit": text_up_to(20),
    }
    required = {"sku": lazy("请填写产品编码"), "name": lazy("请填写产品名称"), "unit": lazy("请填写单位")}

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        _non_negative(values, errors, "price")
        if values.get("sku") and "sku" not in errors.errors:
            query = select(Product.name).where(Product.sku == values["sku"])
            if pk is not None:
                query = query.where(Product.id != pk)
            existing = session.scalar(query)
            if existing:
                errors.add("sku", _("产品编码已被「%(name)s」使用", name=existing))


class PipelineService(RecordService):
    model = Pipeline
    cleaners = {"name": text_up_to(100), "description": text_up_to(255)}
    required = {"name": lazy("请填写流程名称")}

    def before_delete(self, session: Session, item: Pipeline) -> None:
        count = session.scalar(select(func.count()).where(Opportunity.pipeline_id == item.id))
        if count:
            raise ValidationFailed({"name": [_("该流程下有 %(n)s 个商机,不能删除", n=count)]})


class StageService(RecordService):
    model = Stage
    cleaners = {"name": text_up_to(100)}
    required = {"name": lazy("请填写阶段名称"), "pipeline_id": lazy("请选择所属流程")}  # or a new pipeline

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        if values.get("probability") is None:
            values["probability"] = 100 if values.get("is_won") else 0
        _percent(values, errors, "probability")
        if values.get("is_won") and values.get("is_lost"):
            errors.add("is_lost", _("一个阶段不能既是赢单又是输单"))
        if values.get("pipeline_id") and values.get("name") and "name" not in errors.errors:
            query = select(Stage.id).where(
                Stage.pipeline_id == values["pipeline_id"], Stage.name == values["name"]
            )
            if pk is not None:
                query = query.where(Stage.id != pk)
                moved = session.scalar(select(Stage.pipeline_id).where(Stage.id == pk))
                if moved is not None and moved != values["pipeline_id"]:
                    errors.add("pipeline", _("阶段不能移到另一个流程"))
            if session.scalar(query) is not None:
                errors.add("name", _("该流程已有同名阶段"))

    def before_delete(self, session: Session, item: Stage) -> None:
        """A stage with opportunities cannot go: move them first (move_opportunities)."""
        count = session.scalar(select(func.count()).where(Opportunity.stage_id == item.id))
        if count:
            raise ValidationFailed(
                {
                    "name": [
                        _(
                            "阶段「%(name)s」中还有 %(n)s 个商机,请先在该阶段的详情页用"
                            "「迁移商机到...」把它们移到同一流程的其他阶段",
                            name=item.name,
                            n=count,
                        )
                    ]
                }
            )


def move_opportunities(session: Session, source: Stage, target: Stage | None, actor: CrmUser | None) -> int:
    """Move every opportunity of a stage to another stage of the same pipeline (before deleting
    the stage, say), recording each move in the history. Returns how many moved."""
    if target is None:
        raise ValidationFailed({"target": [_("请选择目标阶段")]})
    if source.pipeline_id != target.pipeline_id:
        raise ValidationFailed({"target": [_("只能移到同一流程的阶段")]})
    if source.id == target.id:
        raise ValidationFailed({"target": [_("请选择另一个阶段")]})
    with acting_as(session, actor), write_transaction(session):
        ids = list(session.scalars(select(Opportunity.id).where(Opportunity.stage_id == source.id)))
        now = utcnow()
        session.execute(
            update(Opportunity)
            .where(Opportunity.id.in_(ids))
            .values(stage_id=target.id, stage_changed_at=now, **closing_values(target, now))
        )
        session.add_all(
            StageChange(
                opportunity_id=i,
                from_stage_id=source.id,
                to_stage_id=target.id,
                changed_at=now,
                changed_by_id=actor.id if actor else None,
            )
            for i in ids
        )
    return len(ids)


def active_pipelines(session: Session) -> list[Pipeline]:
    """The pipelines a new opportunity may go into, in their order (the default first)."""
    query = select(Pipeline).where(Pipeline.active.is_(True)).order_by(Pipeline.position, Pipeline.id)
    return list(session.scalars(query))


def default_pipeline_id(session: Session) -> int | None:
    """The first active pipeline: where a new opportunity goes when none is chosen."""
    return session.scalar(
        select(Pipeline.id).where(Pipeline.active.is_(True)).order_by(Pipeline.position, Pipeline.id)
    )


def closing_values(stage: Stage, now: dt.datetime) -> dict[str, Any]:
    """status and closed_at that follow from being in `stage`."""
    status = "won" if stage.is_won else "lost" if stage.is_lost else "open"
    return {"status": status, "closed_at": now if status != "open" else None}


# --- leads -----------------------------------------------------------------------------------------
class LeadService(OwnedRecordService):
    model = Lead
    choices = {"status": LEAD_STATUSES, "source": CUSTOMER_SOURCES}
    cleaners = {
        "name": text_up_to(100),
        "company": text_up_to(200),
        "title": text_up_to(100),
        "mobile": validators.clean_mobile,
        "phone": validators.clean_phone,
        "email": validators.clean_email,
    }
    required = {"name": lazy("请填写线索联系人姓名")}

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        values["status"] = values.get("status") or "new"
        if not (values.get("mobile") or values.get("phone") or values.get("email")):
            errors.add("mobile", _("请至少填写手机号、电话或电子邮箱之一"))
        if pk is not None:
            before = session.execute(select(Lead.status, Lead.customer_id).where(Lead.id == pk)).first()
            if before and before.status == "converted" and values["status"] != "converted":
                errors.add("status", _("已转化的线索不能改回其他状态"))
        if values["status"] == "converted" and not values.get("customer_id"):
            errors.add("status", _("请用「转化」操作转化线索"))
        self.check_owner(session, values, pk, errors)


def assign_leads(session: Session, leads: Sequence[Lead], owner_id: Any, actor: CrmUser | None) -> int:
    """分配: give the leads to another owner in one transaction, all or none, by the rules of an
    edit: the actor must be able to change each lead and may only assign to a user inside their
    own data scope (OwnedRecordService.authorize). Returns how many were assigned."""
    if not leads:
        raise ValidationFailed({"ids": [_("请先在列表中选择线索")]})
    owner = session.get(CrmUser, owner_id) if isinstance(owner_id, int) else None
    if owner is None or not owner.active:
        raise ValidationFailed({"owner": [_("请选择负责人")]})
    with acting_as(session, actor), write_transaction(session):
        with session.no_autoflush:
            for lead in leads:
                require_writable(session, lead, actor)
                lead.owner = owner
                lead.updated_at = utcnow()
                if actor is not None:
                    lead.updated_by_id = actor.id
                lead_service.authorize(session, lead, actor)
        session.flush()
    return len(leads)


def ensure_convertible(lead: Lead) -> None:
    """A lead is converted once: the refusal, for the API, the convert form and its button."""
    if lead.status == "converted" or lead.customer_id is not None:
        when = f"{lead.converted_at:%Y-%m-%d}" if lead.converted_at else "—"
        raise ValidationFailed({"status": [_("该线索已于 %(when)s 转化", when=when)]})


def conversion_candidates(session: Session, lead: Lead, actor: CrmUser | None) -> list[DuplicateMatch]:
    """The duplicate check of conversion as the actor may learn it (the 查重 rules): a customer
    inside their data scope with its id and name, to attach to; others only as who to ask."""
    with acting_as(session, actor):
        found = []
        for customer in existing_customers(session, lead):
            matched = tuple(
                field
                for field, mine, theirs in (
                    ("mobile", lead.mobile, customer.mobile),
                    ("email", lead.email, customer.email),
                    ("name", lead.company, customer.name),
                )
                if mine and mine == theirs
            )
            found.append(describe_duplicate(session, customer.id, matched))
        return found


def _conversion_values(amount: Any, expected_close: Any) -> tuple[Decimal | None, dt.date | None]:
    """The opportunity's amount and expected close as given by a form or JSON, or every error."""
    errors = ErrorCollector()
    parsed_amount, parsed_date = None, None
    if amount not in (None, ""):
        try:
            parsed_amount = Decimal(str(amount).strip())
            if not parsed_amount.is_finite():
                raise InvalidOperation
        except (InvalidOperation, ValueError):
            errors.add("amount", _("请填写有效的金额"))
        else:
            if parsed_amount < 0:
                errors.add("amount", _("不能为负数"))
    if isinstance(expected_close, dt.date):
        parsed_date = expected_close
    elif expected_close not in (None, ""):
        try:
            parsed_date = dt.date.fromisoformat(str(expected_close).strip())
        except ValueError:
            errors.add("expected_close", _("请填写有效的日期 (如 2026-12-31)"))
    errors.raise_if_any()
    return parsed_amount, parsed_date


def existing_customers(session: Session, lead: Lead) -> list[Customer]:
    """Customers that look like the lead's company (same mobile, e-mail or name): the duplicate
    check of conversion. Found whatever the user's data scope, as the customer duplicate rule."""
    conditions = [Customer.mobile == lead.mobile] if lead.mobile else []
    if lead.email:
        conditions.append(Customer.email == lead.email)
    if lead.company:
        conditions.append(Customer.name == lead.company)
    if not conditions:
        return []
    return list(session.scalars(select(Customer).where(or_(*conditions)).order_by(Customer.id).limit(5)))


def convert_lead(
    session: Session,
    lead: Lead,
    actor: CrmUser | None,
    *,
    customer_id: int | None = None,
    new_customer: bool = False,
    create_opportunity: bool = True,
    opportunity_name: str | None = None,
    pipeline_id: int | None = None,
    amount: Any = None,
    expected_close: dt.date | None = None,
) -> dict[str, int | None]:
    """Turn a lead into customer + contact (+ opportunity) in one transaction.

    When a customer like the lead's company exists and neither `customer_id` says which to
    attach to nor `new_customer` confirms a new one, raises Conflict listing them as the 查重
    rules let the actor learn them (conversion_candidates: name and id only inside the data
    scope, else the masked owner and department), so the user can attach instead of creating a
    second customer, or knows whom to ask. A lead is converted once.
    """
    ensure_convertible(lead)
    for field, value in (("customer_id", customer_id), ("pipeline_id", pipeline_id)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ValidationFailed({field: [_("请选择有效的记录")]})
    amount, expected_close = _conversion_values(amount, expected_close)
    if customer_id is None and not new_customer:
        found = conversion_candidates(session, lead, actor)
        if found:
            raise Conflict(
                {
                    "customer_id": [
                        _(
                            "已有相似客户,请选择要关联的客户或确认新建: %(list)s",
                            list="; ".join(match.message() for match in found),
                        )
                    ],
                    # only customers inside the actor's data scope can be attached to (and named)
                    "candidates": [str(match.id) for match in found if match.visible],
                }
            )
    with acting_as(session, actor), write_transaction(session):
        with session.no_autoflush:
            if customer_id is not None:
                require_visible(session, Customer, customer_id, actor, "customer_id", _("客户"))
                customer = session.get(Customer, customer_id)
                if customer is None:
                    raise ValidationFailed({"customer_id": [_("客户不存在")]})
            else:
                customer = Customer(
                    name=lead.company or lead.name,
                    kind="company" if lead.company else "individual",
                    mobile=lead.mobile if not lead.company else None,
                    email=lead.email if not lead.company else None,
                    phone=lead.phone,
                    source=lead.source,
                    district_code=lead.district_code,
                    owner_id=lead.owner_id or (actor.id if actor else None),
                )
                session.add(customer)
            contact = None
            if lead.company or customer_id is not None:
                contact = (
                    session.scalar(
                        select(Contact).where(
                            Contact.customer_id == customer.id, Contact.mobile == lead.mobile
                        )
                    )
                    if lead.mobile and customer.id
                    else None
                )
                if contact is None:
                    contact = Contact(
                        customer=customer,
                        name=lead.name,
                        title=lead.title,
                        mobile=lead.mobile,
                        phone=lead.phone,
                        email=lead.email,
                    )
                    session.add(contact)
            opportunity = None
            if create_opportunity:
                pipeline = session.get(Pipeline, pipeline_id or default_pipeline_id(session) or 0)
                if pipeline is None or not pipeline.stages:
                    raise ValidationFailed({"pipeline_id": [_("请先配置销售流程和阶段")]})
                opportunity = Opportunity(
                    name=opportunity_name or f"{customer.name} - {lead.interest or _('新商机')}"[:200],
                    customer=customer,
                    contact=contact,
                    pipeline=pipeline,
                    stage=pipeline.stages[0],
                    amount=amount,
                    expected_close=expected_close,
                    owner_id=lead.owner_id or (actor.id if actor else None),
                )
                session.add(opportunity)
        session.flush()
        lead.status, lead.converted_at = "converted", utcnow()
        lead.customer_id, lead.contact_id = customer.id, contact.id if contact else None
        lead.opportunity_id = opportunity.id if opportunity else None
    return {
        "customer_id": lead.customer_id,
        "contact_id": lead.contact_id,
        "opportunity_id": lead.opportunity_id,
    }


# --- opportunities -------------------------------------------------------------------------------
class OpportunityService(OwnedRecordService):
    model = Opportunity
    choices = {"status": OPPORTUNITY_STATUSES}
    cleaners = {"name": text_up_to(200), "close_reason": text_up_to(255)}
    required = {"name": lazy("请填写商机名称"), "customer_id": lazy("请选择客户")}

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        _non_negative(values, errors, "amount")
        _percent(values, errors, "probability")
        pipeline_id = values.get("pipeline_id") or default_pipeline_id(session)
        values["pipeline_id"] = pipeline_id
        stage = session.get(Stage, values["stage_id"]) if values.get("stage_id") else None
        if stage is None and pipeline_id:
            stage = session.scalar(
                select(Stage).where(Stage.pipeline_id == pipeline_id).order_by(Stage.position)
            )
        if stage is None:
            errors.add("stage", _("请选择阶段 (先在设置中配置销售流程)"))
            return
        if stage.pipeline_id != pipeline_id:
            errors.add("stage", _("阶段「%(stage)s」不属于所选流程", stage=stage.name))
            return
        values["stage_id"] = stage.id
        if pk is not None:
            self.check_move(session, pk, stage, errors)
        closing = closing_values(stage, utcnow())
        newly_closed = closing["closed_at"] is not None and not values.get("closed_at")
        if closing["status"] != values.get("status") or newly_closed:
            values.update(closing)  # the status follows the stage; closed_at is kept while closed
        if stage.is_lost and not values.get("close_reason"):
            errors.add("close_reason", _("请填写输单原因"))
        contact_id, customer_id = values.get("contact_id"), values.get("customer_id")
        if contact_id and customer_id:
            owner_of_contact = session.scalar(select(Contact.customer_id).where(Contact.id == contact_id))
            if owner_of_contact != customer_id:
                errors.add("contact", _("联系人不属于该客户"))
        self.check_owner(session, values, pk, errors)

    def check_move(self, session: Session, pk: Any, target: Stage, errors: ErrorCollector) -> None:
        """Moving back to an earlier stage is allowed only from a stage that allows it."""
        current = session.scalar(
            select(Stage).join(Opportunity, Opportunity.stage_id == Stage.id).where(Opportunity.id == pk)
        )
        if current is None or current.id == target.id or current.pipeline_id != target.pipeline_id:
            return
        if target.position < current.position and not current.allow_back:
            errors.add("stage", _("「%(stage)s」阶段的商机不能退回到之前的阶段", stage=current.name))

    def authorize(self, session: Session, item: Opportunity, actor: CrmUser | None) -> None:
        """The customer must be visible when the opportunity is made or moved to another
        customer; an existing one stays workable by its owner even after its customer went back
        to the pool (or to a colleague), so it can still be moved on or closed."""
        super().authorize(session, item, actor)
        state = inspect(item)
        if state.persistent and not (
            state.attrs.customer_id.history.has_changes() or state.attrs.customer.history.has_changes()
        ):
            return
        customer_id = item.customer.id if item.customer is not None else item.customer_id
        require_visible(session, Customer, customer_id, actor, "customer", _("客户"))


def record_stage_changes(session: Session) -> None:
    """Every stage change, whatever made it (form, API, kanban, import), joins the history."""
    for item in [*session.new, *session.dirty]:
        if not isinstance(item, Opportunity):
            continue
        new_stage = item.stage.id if item.stage is not None and item.stage.id else item.stage_id
        old_stage = None
        if item not in session.new:  # the row still holds the stage it had before this flush
            old_stage = session.scalar(select(Opportunity.stage_id).where(Opportunity.id == item.id))
        if new_stage is None or new_stage == old_stage:
            continue
        now = utcnow()
        item.stage_changed_at = now
        actor = _actor(session)
        item.history.append(
            StageChange(
                from_stage_id=old_stage,
                to_stage_id=new_stage,
                changed_at=now,
                changed_by_id=actor.id if actor else None,
            )
        )


# --- follow-ups and tasks ------------------------------------------------------------------------
#: a follow-up records what happened: a time later than now by more than a clock's drift is refused
CLOCK_SKEW = dt.timedelta(minutes=10)


class InteractionService(RecordService):
    model = Interaction
    choices = {"kind": INTERACTION_KINDS}
    cleaners = {
        "subject": text_up_to(200),
        "outcome": text_up_to(255),
        "content": lambda v: validators.clean_text(v, 20000),
    }
    required = {"customer_id": lazy("请选择客户"), "content": lazy("请填写跟进内容")}

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        values["kind"] = values.get("kind") or "call"
        values["occurred_at"] = values.get("occurred_at") or utcnow()
        _non_negative(values, errors, "duration_minutes")
        customer_id = values.get("customer_id")
        for field, model in (("contact", Contact), ("opportunity", Opportunity), ("lead", Lead)):
            linked = values.get(f"{field}_id")
            if linked and customer_id:
                belongs = session.scalar(select(model.customer_id).where(model.id == linked))
                if belongs is not None and belongs != customer_id:
                    errors.add(field, _("所选记录不属于该客户"))
        next_at, occurred = values.get("next_contact_at"), values.get("occurred_at")
        if occurred and occurred > utcnow() + CLOCK_SKEW:
            errors.add("occurred_at", _("跟进时间不能晚于现在: 计划中的联系请填「下次联系时间」或建任务"))
        if next_at and occurred and next_at < occurred:
            errors.add("next_contact_at", _("下次联系时间应晚于本次跟进时间"))

    def before_save(self, session: Session, item: Interaction, actor: CrmUser | None, is_new: bool) -> None:
        if is_new and item.owner_id is None and actor is not None:
            item.owner_id = actor.id

    def authorize(self, session: Session, item: Interaction, actor: CrmUser | None) -> None:
        """The customer and, when one is linked, the lead must be inside the actor's data scope
        (a form's picker posts an id, which anyone could change)."""
        customer_id = item.customer.id if item.customer is not None else item.customer_id
        require_visible(session, Customer, customer_id, actor, "customer", _("客户"))
        lead_id = item.lead.id if item.lead is not None else item.lead_id
        require_visible(session, Lead, lead_id, actor, "lead", _("线索"))


def _recompute_last_follow_up(session: Session) -> None:
    """A follow-up deleted, moved to an earlier time or to another customer: its (old) customer's
    last follow-up time becomes that of its latest remaining follow-up, so a deleted or corrected
    record no longer keeps the customer out of the pool's no-follow-up rule."""
    stale: set[int] = set()
    leaving: set[int] = set()
    for item in session.deleted:
        if isinstance(item, Interaction):
            stale.add(item.customer_id)
            leaving.add(item.id)
    for item in session.dirty:
        if not isinstance(item, Interaction):
            continue
        moved = inspect(item).attrs.occurred_at.history.deleted
        customers = inspect(item).attrs.customer_id.history.deleted
        if moved or customers:
            stale.update(c for c in customers if c is not None)
            if moved and item.customer_id is not None:
                stale.add(item.customer_id)
            leaving.add(item.id)
    if not stale:
        return
    pending = [i for i in [*session.new, *session.dirty] if isinstance(i, Interaction)]
    for customer_id in stale:
        customer = session.get(Customer, customer_id)
        if customer is None or customer in session.deleted:
            continue
        stored = session.scalar(
            select(func.max(Interaction.occurred_at)).where(
                Interaction.customer_id == customer_id, Interaction.id.not_in(leaving)
            )
        )
        moments = [stored, *(i.occurred_at for i in pending if i.customer_id == customer_id)]
        customer.last_followup_at = max((m for m in moments if m is not None), default=None)


def follow_up_effects(session: Session) -> None:
    """A follow-up moves its customer's last follow-up (and next contact) time, and its next
    contact time becomes a task for whoever followed up (moved, not duplicated, on edit)."""
    _recompute_last_follow_up(session)
    for item in [*session.new, *session.dirty]:
        if not isinstance(item, Interaction):
            continue
        customer = item.customer or session.get(Customer, item.customer_id)
        if customer is None:
            continue
        if customer.last_followup_at is None or item.occurred_at > customer.last_followup_at:
            customer.last_followup_at = item.occurred_at
        if item.next_contact_at is None:
            continue
        if customer.next_contact_at is None or customer.next_contact_at < utcnow() or item in session.new:
            customer.next_contact_at = item.next_contact_at
        task = None
        if item.id is not None:
            task = session.scalar(select(Task).where(Task.interaction_id == item.id, Task.status == "open"))
        if task is None:
            task = Task(interaction=item, status="open")
            session.add(task)
        task.title = _("联系 %(customer)s", customer=customer.name)[:200]
        task.due_at = item.next_contact_at
        task.customer_id = customer.id
        task.opportunity_id = item.opportunity_id
        task.lead_id = item.lead_id
        task.owner_id = item.owner_id
        task.department_id = session.scalar(select(CrmUser.department_id).where(CrmUser.id == item.owner_id))


class TaskService(OwnedRecordService):
    model = Task
    choices = {"status": TASK_STATUSES}
    cleaners = {"title": text_up_to(200)}
    required = {"title": lazy("请填写任务内容"), "due_at": lazy("请填写截止时间")}

    def check(self, session: Session, values: dict[str, Any], pk: Any, errors: ErrorCollector) -> None:
        values["status"] = values.get("status") or "open"
        if values["status"] == "done" and not values.get("done_at"):
            values["done_at"] = utcnow()
        if values["status"] != "done":
            values["done_at"] = None
        if pk is not None:
            before = session.scalar(select(Task.due_at).where(Task.id == pk))
            if before is not None and values.get("due_at") and values["due_at"] != before:
                values["reminded_at"] = None  # a new due time gets its own reminder
        self.check_owner(session, values, pk, errors)

    def authorize(self, session: Session, item: Task, actor: CrmUser | None) -> None:
        super().authorize(session, item, actor)
        for model, column, label in ((Customer, "customer_id", _("客户")), (Lead, "lead_id", _("线索")),
                                     (Opportunity, "opportunity_id", _("商机"))):  # fmt: skip
            require_visible(session, model, getattr(item, column), actor, column.removesuffix("_id"), label)


@event.listens_for(Session, "before_flush")
def _sales_effects(session: Session, flush_context: Any, instances: Any) -> None:
    """After each record is cleaned (app.services' hook runs first): history and follow-ups."""
    record_stage_changes(session)
    follow_up_effects(session)


product_service = service_for(Product)
pipeline_service = service_for(Pipeline)
stage_service = service_for(Stage)
lead_service = service_for(Lead)
opportunity_service = service_for(Opportunity)
interaction_service = service_for(Interaction)
task_service = service_for(Task)
