"""The opportunity kanban (商机看板): a pipeline's stages as columns, the opportunities as cards.

Queries only; the screen and its JSON endpoints are in views/kanban.py. Everything is within the
actor's data scope (app.access), and a move is an ordinary save through the opportunity service,
so the stage history and the rules (no moving back from some stages, a reason to lose) apply as
they do to a form or a REST edit.

At 100,000 open opportunities in one pipeline the board stays fast because no query reads more
than it shows: the column summary is one GROUP BY along ix_opportunity_board (pipeline, stage,
status, id, amount, owner, department: it covers the summary within any data scope, so a
manager's or an admin's board reads the index alone), and a column is read a page at a time,
newest first, by keyset on the id (`after`), a range scan of the same index that never counts
or skips rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from app.access import department_tree_ids, entity_name, scope_clause, subordinate_ids, user_scope
from app.errors import NotFound, ValidationFailed
from app.services import service_for
from models.base import utcnow
from models.customers import Customer
from models.sales import Opportunity, Pipeline, Stage
from models.security import CrmUser

PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
CENT = Decimal("0.01")


@dataclass(frozen=True)
class BoardFilters:
    """What the board shows besides data scope: one owner, and a month of expected close."""

    owner_id: int | None = None
    close_month: dt.date | None = None  # the first day of the month

    @classmethod
    def parse(cls, owner: Any = None, month: Any = None) -> BoardFilters:
        """From request values (`owner` an id, `month` YYYY-MM); a bad value is a 400 on its field."""
        errors: dict[str, list[str]] = {}
        owner_id = None
        if owner not in (None, ""):
            try:
                owner_id = int(owner)
            except (TypeError, ValueError):
                errors["owner"] = [_("负责人应为用户编号")]
        try:
            close_month = parse_month(month)
        except ValueError:
            close_month = None
            errors["month"] = [_("月份格式应为 YYYY-MM,例如 2026-03")]
        if errors:
            raise ValidationFailed(errors)
        return cls(owner_id, close_month)


def parse_month(value: Any) -> dt.date | None:
    """'2026-03' (or a date) -> 2026-03-01; empty -> None; anything else raises ValueError."""
    if value in (None, ""):
        return None
    if isinstance(value, dt.date):
        return value.replace(day=1)
    text = str(value).strip()
    if len(text) != 7 or text[4] != "-":
        raise ValueError(text)
    return dt.date(int(text[:4]), int(text[5:]), 1)


def _next_month(first: dt.date) -> dt.date:
    return dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)


def column_status(stage: Stage) -> str:
    """The status a column shows: closed (won or lost) opportunities in the won and lost columns,
    open ones in the others. The status follows the stage, so this is every opportunity of the
    stage, and the equality keeps the whole index (pipeline, stage, status, id) usable."""
    return "won" if stage.is_won else "lost" if stage.is_lost else "open"


def _conditions(
    session: Session,
    actor: CrmUser | None,
    pipeline_id: int,
    filters: BoardFilters,
    read_by_owner: bool = False,
) -> list[ColumnElement[bool]]:
    pipeline = Opportunity.pipeline_id == pipeline_id
    if read_by_owner:
        # `+ 0` keeps the pipeline a plain filter, so that the owner index finds the rows: SQLite
        # plans without statistics (KeGuan runs no ANALYZE) and would otherwise read the whole
        # pipeline through ix_opportunity_board to keep one rep's rows (at 100,000: 84 -> 6 ms)
        pipeline = Opportunity.pipeline_id + 0 == pipeline_id
    conditions = [pipeline, scope_clause(session, Opportunity, actor)]
    if filters.owner_id is not None:
        conditions.append(Opportunity.owner_id == filters.owner_id)
    if filters.close_month is not None:
        conditions.append(Opportunity.expected_close >= filters.close_month)
        conditions.append(Opportunity.expected_close < _next_month(filters.close_month))
    return conditions


def pipeline_stages(session: Session, pipeline_id: int) -> list[Stage]:
    """The pipeline's stages in order; NotFound when there is no such pipeline."""
    if session.get(Pipeline, pipeline_id) is None:
        raise NotFound({"pipeline": [_("销售流程不存在")]})
    return list(
        session.scalars(
            select(Stage).where(Stage.pipeline_id == pipeline_id).order_by(Stage.position, Stage.id)
        )
    )


def _few_owners(session: Session, actor: CrmUser | None, filters: BoardFilters) -> bool:
    """Whether the rows to aggregate belong to one or a few owners (the owner filter, or a scope
    of self or subordinates): then they are best read by owner, not by pipeline."""
    if filters.owner_id is not None:
        return True
    return actor is not None and user_scope(session, actor, entity_name(Opportunity)) in (
        "self",
        "subordinates",
    )


def board_summary(
    session: Session,
    actor: CrmUser | None,
    pipeline_id: int,
    owner_id: int | None = None,
    close_month: dt.date | str | None = None,
    stage_ids: Iterable[int] | None = None,
) -> list[dict[str, Any]]:
    """Every column of the board (or only `stage_ids`), in stage order: the stage and the count
    and total amount of the opportunities the actor may see, from one GROUP BY query."""
    stages = pipeline_stages(session, pipeline_id)
    if stage_ids is not None:
        wanted = set(stage_ids)
        stages = [stage for stage in stages if stage.id in wanted]
    filters = BoardFilters(owner_id, parse_month(close_month))
    query = (
        select(
            Opportunity.stage_id,
            Opportunity.status,
            func.count(Opportunity.id),
            func.coalesce(func.sum(Opportunity.amount), 0),
        )
        .where(*_conditions(session, actor, pipeline_id, filters, _few_owners(session, actor, filters)))
        .group_by(Opportunity.stage_id, Opportunity.status)
    )
    if stage_ids is not None:
        query = query.where(Opportunity.stage_id.in_(sorted(stage.id for stage in stages)))
    figures = {
        (stage_id, status): (count, total) for stage_id, status, count, total in session.execute(query)
    }
    columns = []
    for stage in stages:
        count, total = figures.get((stage.id, column_status(stage)), (0, 0))
        columns.append(
            {
                "id": stage.id,
                "name": stage.name,
                "position": stage.position,
                "probability": stage.probability,
                "is_won": stage.is_won,
                "is_lost": stage.is_lost,
                "allow_back": stage.allow_back,
                "count": count,
                "total": str(Decimal(total or 0).quantize(CENT)),
            }
        )
    return columns


def _card_query(session: Session, actor: CrmUser | None, pipeline_id: int, filters: BoardFilters) -> Any:
    return (
        select(
            Opportunity.id,
            Opportunity.name,
            Opportunity.amount,
            Opportunity.expected_close,
            Opportunity.stage_changed_at,
            Opportunity.stage_id,
            Customer.name.label("customer"),
            CrmUser,
        )
        .join(Customer, Customer.id == Opportunity.customer_id)
        .outerjoin(CrmUser, CrmUser.id == Opportunity.owner_id)
        .where(*_conditions(session, actor, pipeline_id, filters))
    )


def _card(row: Any, now: dt.datetime) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "customer": row.customer,
        "amount": None if row.amount is None else str(Decimal(row.amount).quantize(CENT)),
        "expected_close": row.expected_close.isoformat() if row.expected_close else None,
        "owner": str(row.CrmUser) if row.CrmUser is not None else "",
        "owner_id": row.CrmUser.id if row.CrmUser is not None else None,
        "stage": row.stage_id,
        "days_in_stage": max((now - row.stage_changed_at).days, 0) if row.stage_changed_at else 0,
    }


def column_page(
    session: Session,
    actor: CrmUser | None,
    pipeline_id: int,
    stage_id: int,
    filters: BoardFilters | None = None,
    after_id: int | None = None,
    limit: int = PAGE_SIZE,
) -> dict[str, Any]:
    """One page of a column's cards, newest first: `cards`, and `next` (the `after_id` of the
    following page) or None at the end. Keyset pagination: `after_id` is the last id shown."""
    stage = session.get(Stage, stage_id)
    if stage is None or stage.pipeline_id != pipeline_id:
        raise NotFound({"stage": [_("该销售流程中没有这个阶段")]})
    limit = max(1, min(int(limit), MAX_PAGE_SIZE))
    query = _card_query(session, actor, pipeline_id, filters or BoardFilters()).where(
        Opportunity.stage_id == stage.id, Opportunity.status == column_status(stage)
    )
    if after_id is not None:
        query = query.where(Opportunity.id < after_id)
    rows = session.execute(query.order_by(Opportunity.id.desc()).limit(limit + 1)).all()
    now = utcnow()
    cards = [_card(row, now) for row in rows[:limit]]
    return {"cards": cards, "next": cards[-1]["id"] if len(rows) > limit else None}


def card(session: Session, actor: CrmUser | None, opportunity_id: int) -> dict[str, Any] | None:
    """One opportunity as a card (after a move), or None outside the actor's data scope."""
    pipeline_id = session.scalar(select(Opportunity.pipeline_id).where(Opportunity.id == opportunity_id))
    if pipeline_id is None:
        return None
    query = _card_query(session, actor, pipeline_id, BoardFilters()).where(Opportunity.id == opportunity_id)
    row = session.execute(query).first()
    return _card(row, utcnow()) if row is not None else None


def move(
    session: Session,
    actor: CrmUser | None,
    opportunity_id: int,
    stage_id: int,
    close_reason: str | None = None,
) -> Opportunity:
    """Drop a card on another column: the opportunity (within the actor's data scope) goes to
    `stage_id` through the opportunity service, which records the history and applies the rules
    (moving back, a reason to lose, the owner and customer checks). Raises NotFound (404),
    ValidationFailed (400, a message per field) or AccessDenied (403)."""
    opportunity = session.scalar(
        select(Opportunity).where(Opportunity.id == opportunity_id, scope_clause(session, Opportunity, actor))
    )
    if opportunity is None:
        raise NotFound({"opportunity": [_("商机不存在或您无权访问")]})
    stage = session.get(Stage, stage_id)
    if stage is None or stage.pipeline_id != opportunity.pipeline_id:
        raise ValidationFailed({"stage": [_("目标阶段不属于该商机的销售流程")]})
    if stage.id == opportunity.stage_id:
        return opportunity  # dropped back on its own column
    opportunity.stage = stage  # the relationship, which the service reads over the stale key
    if close_reason:
        opportunity.close_reason = close_reason
    return service_for(Opportunity).save(session, opportunity, actor)


def move_card(
    session: Session,
    actor: CrmUser | None,
    opportunity_id: int,
    stage_id: int,
    close_reason: str | None = None,
    filters: BoardFilters | None = None,
) -> dict[str, Any]:
    """The board's drop: move() and then what the board redraws, the summaries of the two
    columns (under the board's filters) and the moved card."""
    source = session.scalar(select(Opportunity.stage_id).where(Opportunity.id == opportunity_id))
    moved = move(session, actor, opportunity_id, stage_id, close_reason)
    filters = filters or BoardFilters()
    columns = board_summary(
        session,
        actor,
        moved.pipeline_id,
        filters.owner_id,
        filters.close_month,
        stage_ids={source, moved.stage_id},
    )
    return {"columns": columns, "card": card(session, actor, moved.id)}


def owner_choices(session: Session, actor: CrmUser) -> list[dict[str, Any]]:
    """The people whose opportunities the actor may see (the owner filter), by name."""
    scope = user_scope(session, actor, entity_name(Opportunity))
    query = select(CrmUser)
    if scope == "subordinates":
        query = query.where(CrmUser.id.in_(sorted(subordinate_ids(session, actor.id))))
    elif scope in ("department", "department_tree") and actor.department_id:
        departments = (
            {actor.department_id}
            if scope == "department"
            else department_tree_ids(session, actor.department_id)
        )
        query = query.where((CrmUser.department_id.in_(sorted(departments))) | (CrmUser.id == actor.id))
    elif scope != "all":
        query = query.where(CrmUser.id == actor.id)
    users = session.scalars(query).all()
    return sorted(
        ({"id": u.id, "name": str(u)} for u in users), key=lambda u: (u["id"] != actor.id, u["name"])
    )


def active_pipelines(session: Session) -> list[Pipeline]:
    """The pipeline switcher: active pipelines in their order."""
    return list(
        session.scalars(
            select(Pipeline).where(Pipeline.active.is_(True)).order_by(Pipeline.position, Pipeline.id)
        )
    )
