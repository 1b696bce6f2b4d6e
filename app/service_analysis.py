"""Feedback analysis of the service desk (issue 8): satisfaction (CSAT), response and resolution
times, volume, backlog, and the words that recur in low-rated comments.

Every function takes `(session, user, filters)` (app.analytics.Filters), applies the user's data
scope on tickets (app.access.scope_clause) and aggregates in the database (GROUP BY, window
functions for medians); only the small result is shaped with pandas. The one exception is the
word count: jieba segments Chinese text in Python, so only the low-rated comments, at most
LOW_COMMENT_LIMIT of the newest in the range, are read.

Periods (month, week) are local calendar periods of the company's time zone
(BABEL_DEFAULT_TIMEZONE, a fixed offset: China has no daylight saving), the database columns
being UTC. Durations are wall-clock hours (app.sla measures its targets in business minutes, but
no SQL can count business hours; whether a target was met comes from the SLA flags, which are in
business time).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

import jieba
import pandas as pd
from flask import current_app, has_app_context
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    func,
    literal_column,
    not_,
    or_,
    select,
)
from sqlalchemy.orm import Session

from app.access import department_tree_ids, scope_clause
from app.analytics import Filters
from app.errors import ValidationFailed
from customfields.definitions import definitions
from customfields.query import filter_condition
from models.customers import Customer, Region
from models.security import CrmUser, Department
from models.service import (
    OPEN_TICKET_STATUSES,
    TICKET_CHANNELS,
    TICKET_PRIORITIES,
    TICKET_STATUSES,
    Survey,
    Ticket,
    TicketCategory,
)

jieba.setLogLevel(logging.WARNING)

#: a rating at or above this is "satisfied" (CSAT = share of 4 and 5 on a 1-5 scale)
SATISFIED_RATING = 4
DEFAULT_LOW_RATING = 2
#: the newest low-rated comments read into Python for the word count
LOW_COMMENT_LIMIT = 5000
TOP_WORDS = 30
#: the default range when the filters give none: the last 12 months
DEFAULT_MONTHS = 12
#: open tickets by age: (upper bound in days, label msgid); the last bucket has no bound
AGE_BUCKETS = (
    (1, lazy_gettext("1 天内")),
    (3, lazy_gettext("1-3 天")),
    (7, lazy_gettext("3-7 天")),
    (30, lazy_gettext("7-30 天")),
    (None, lazy_gettext("30 天以上")),
)

#: Chinese words that carry no complaint (function words, fillers, politeness); jieba keeps them
STOP_WORDS = frozenset(
    """
    的 了 和 是 就 都 而 及 与 着 或 一个 没有 我们 你们 他们 她们 它们 我 你 他 她 它 这 那 这个 那个
    这些 那些 这样 那样 也 还 又 很 太 非常 比较 有点 一点 一些 有些 就是 但是 但 可是 不过 然后 而且
    因为 所以 如果 虽然 还是 已经 一直 才 再 在 对 把 被 让 给 从 向 到 为 以 于 之 上 下 中 里 后 前
    吗 吧 呢 啊 呀 哦 嗯 哈 么 啦 嘛 呗 不 没 有 要 会 能 可以 可能 应该 需要 希望 觉得 感觉 知道 什么
    怎么 怎么样 为什么 多少 哪里 这里 那里 时候 现在 今天 昨天 明天 一下 一次 一样 这么 那么 还要
    一个多 其他 其它 自己 大家 谢谢 感谢 您好 你好 麻烦 请 一般 以后 之后 之前 的话 等等 真的 实在 特别 确实
    """.split()
)
_WORD = re.compile(r"[\w\u4e00-\u9fff]")
_DIGITS = re.compile(r"^[\d.,%]+$")

DIMENSIONS = ("month", "week", "department", "agent", "category", "district", "priority", "channel")


# --- the shared parts: dialect expressions, the tickets' conditions, labels -------------------
def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _zone() -> ZoneInfo:
    name = current_app.config.get("BABEL_DEFAULT_TIMEZONE", "UTC") if has_app_context() else "UTC"
    return ZoneInfo(name)


def _offset_minutes() -> int:
    offset = dt.datetime.now(_zone()).utcoffset() or dt.timedelta(0)
    return int(offset.total_seconds() // 60)


def _local(session: Session, column: Any) -> Any:
    """The UTC column moved to the company's local time."""
    minutes = _offset_minutes()
    if minutes == 0:
        return column
    dialect = _dialect(session)
    if dialect == "sqlite":
        return func.datetime(column, f"{minutes:+d} minutes")
    if dialect == "postgresql":
        return column + literal_column(f"INTERVAL '{minutes} minutes'")
    return func.date_add(column, literal_column(f"INTERVAL {minutes} MINUTE"))


def period_expression(session: Session, column: Any, period: str) -> ColumnElement[str]:
    """The local month ('2026-03') or week (its Monday, '2026-03-02') of a UTC datetime column."""
    local = _local(session, column)
    dialect = _dialect(session)
    if period == "month":
        if dialect == "sqlite":
            return func.strftime("%Y-%m", local)
        if dialect == "postgresql":
            return func.to_char(local, "YYYY-MM")
        return func.date_format(local, "%Y-%m")
    if dialect == "sqlite":
        return func.date(local, "weekday 0", "-6 days")
    if dialect == "postgresql":
        return func.to_char(func.date_trunc("week", local), "YYYY-MM-DD")
    return func.date_format(func.subdate(local, func.weekday(local)), "%Y-%m-%d")


def hours_between(session: Session, start: Any, end: Any) -> ColumnElement[float]:
    """Wall-clock hours from one datetime column to another, in SQL."""
    dialect = _dialect(session)
    if dialect == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 24.0
    if dialect == "postgresql":
        return func.extract("epoch", end - start) / 3600.0
    return func.timestampdiff(literal_column("SECOND"), start, end) / 3600.0


def local_midnight_utc(day: dt.date) -> dt.datetime:
    """The UTC moment (naive, as stored) at which a local day begins."""
    local = dt.datetime.combine(day, dt.time(), tzinfo=_zone())
    return local.astimezone(dt.UTC).replace(tzinfo=None)


def date_range(filters: Filters, today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """The filters' local dates (inclusive), by default the last DEFAULT_MONTHS whole months to today."""
    today = today or dt.datetime.now(_zone()).date()
    end = filters.date_to or today
    start = filters.date_from
    if start is None:
        month = end.year * 12 + end.month - 1 - (DEFAULT_MONTHS - 1)
        start = dt.date(month // 12, month % 12 + 1, 1)
    if start > end:
        raise ValidationFailed({"date_from": [_("开始日期不能晚于结束日期")]})
    return start, end


def ticket_conditions(
    session: Session, user: CrmUser | None, filters: Filters, date_column: Any = None
) -> list[ColumnElement[bool]]:
    """The data scope, the owner/department/custom-field filters and (on `date_column`) the dates."""
    conditions: list[ColumnElement[bool]] = []
    scope = scope_clause(session, Ticket, user)
    if scope is not None:
        conditions.append(scope)
    if filters.owner_id is not None:
        conditions.append(Ticket.owner_id == filters.owner_id)
    if filters.department_id is not None:
        conditions.append(Ticket.department_id.in_(department_tree_ids(session, filters.department_id)))
    if filters.custom:
        fields = {f.api_name: f for f in definitions(session, "customer")}
        customer_conditions = []
        for api_name, value in filters.custom.items():
            field = fields.get(api_name)
            if field is None or field.field_type != "select":
                message = _("没有可用于筛选的客户自定义字段 %(name)s", name=api_name)
                raise ValidationFailed({"custom": [message]})
            try:
                customer_conditions.append(filter_condition(Customer, field, "eq", value))
            except ValueError as exc:
                raise ValidationFailed({"custom": [str(exc)]}) from exc
        conditions.append(Ticket.customer_id.in_(select(Customer.id).where(*customer_conditions)))
    if date_column is not None and (filters.date_from or filters.date_to):
        if filters.date_from:
            conditions.append(date_column >= local_midnight_utc(filters.date_from))
        if filters.date_to:
            conditions.append(date_column < local_midnight_utc(filters.date_to + dt.timedelta(days=1)))
    return conditions


def dimension_key(session: Session, by: str, period_column: Any) -> ColumnElement[Any]:
    """The GROUP BY key of a dimension; ids of missing references are 0."""
    if by in ("month", "week"):
        return period_expression(session, period_column, by)
    column = {
        "department": Ticket.department_id,
        "agent": Ticket.owner_id,
        "category": Ticket.category_id,
        "district": Ticket.district_code,
        "priority": Ticket.priority,
        "channel": Ticket.channel,
    }.get(by)
    if column is None:
        raise ValidationFailed({"by": [_("不支持的分析维度 %(name)s", name=by)]})
    return column if by in ("priority", "channel") else func.coalesce(column, 0)


def dimension_labels(session: Session, by: str, keys: Iterable[Any]) -> dict[Any, str]:
    """Names of the keys of a dimension, looked up once for the few keys of the result."""
    keys = [k for k in keys if k is not None]
    if by in ("month", "week"):
        return {k: str(k) for k in keys}
    if by == "priority":
        return {k: TICKET_PRIORITIES.label(k) for k in keys}
    if by == "channel":
        return {k: TICKET_CHANNELS.label(k) for k in keys}
    ids = [int(k) for k in keys if k]
    names: dict[Any, str] = {0: _("未指定")}
    if by == "agent":
        names |= {u.id: str(u) for u in session.scalars(select(CrmUser).where(CrmUser.id.in_(ids)))}
        names[0] = _("未分派")
    else:
        model, key = {
            "department": (Department, Department.id),
            "category": (TicketCategory, TicketCategory.id),
            "district": (Region, Region.code),
        }[by]
        names |= dict(session.execute(select(key, model.name).where(key.in_(ids))).all())
        if by == "category":
            names[0] = _("未分类")
    return {k: names.get(int(k), str(k)) for k in keys}


def _frame(rows: list[Any], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


def _with_labels(session: Session, frame: pd.DataFrame, by: str) -> pd.DataFrame:
    labels = dimension_labels(session, by, frame["key"].tolist())
    frame.insert(1, "label", [labels.get(k, str(k)) for k in frame["key"]])
    return frame


# --- satisfaction ------------------------------------------------------------------------------
def csat(session: Session, user: CrmUser | None, filters: Filters, by: str = "month") -> pd.DataFrame:
    """Answered surveys by a dimension (the period is the answer's): answered, satisfied (4-5),
    csat (their share, 0-1) and mean_rating. The date filters apply to the answer."""
    key = dimension_key(session, by, Survey.answered_at).label("key")
    satisfied = func.sum(case((Survey.rating >= SATISFIED_RATING, 1), else_=0))
    stmt = (
        select(key, func.count().label("answered"), satisfied.label("satisfied"), func.avg(Survey.rating))
        .join(Ticket, Ticket.id == Survey.ticket_id)
        .where(
            Survey.rating.is_not(None),
            Survey.answered_at.is_not(None),
            *ticket_conditions(session, user, filters, Survey.answered_at),
        )
        .group_by(key)
        .order_by(key)
    )
    frame = _frame(session.execute(stmt).all(), ["key", "answered", "satisfied", "mean_rating"])
    frame["answered"] = frame["answered"].astype(int)
    frame["satisfied"] = frame["satisfied"].fillna(0).astype(int)
    frame["csat"] = (frame["satisfied"] / frame["answered"]).round(4) if len(frame) else []
    frame["mean_rating"] = frame["mean_rating"].astype(float).round(2)
    frame = frame[["key", "answered", "satisfied", "csat", "mean_rating"]]
    return _with_labels(session, frame, by)


def csat_by_month(session: Session, user: CrmUser | None, filters: Filters) -> pd.DataFrame:
    return csat(session, user, filters, "month")


def csat_by_week(session: Session, user: CrmUser | None, filters: Filters) -> pd.DataFrame:
    return csat(session, user, filters, "week")


def csat_by_department(session: Session, user: CrmUser | None, filters: Filters) -> pd.DataFrame:
    return csat(session, user, filters, "department")


def csat_by_agent(session: Session, user: CrmUser | None, filters: Filters) -> pd.DataFrame:
    return csat(session, user, filters, "agent")


def csat_by_category(session: Session, user: CrmUser | None, filters: Filters) -> pd.DataFrame:
    return csat(session, user, filters, "category")


def csat_by_district(session: Session, user: CrmUser | None, filters: Filters) -> pd.DataFrame:
    return csat(session, user, filters, "district")


# --- response and resolution times --------------------------------------------------------------
def _median(session: Session, key: Any, value: Any, conditions: list[Any]) -> Select[Any]:
    """The exact median of `value` per key in SQL: the middle row (or the mean of the two middle
    rows) of each key's values numbered in order (window functions: SQLite, PostgreSQL, MariaDB)."""
    values = select(key.label("key"), value.label("v")).where(value.is_not(None), *conditions).subquery()
    ranked = select(
        values.c.key,
        values.c.v,
        func.row_number().over(partition_by=values.c.key, order_by=values.c.v).label("rn"),
        func.count().over(partition_by=values.c.key).label("n"),
    ).subquery()
    return (
        select(ranked.c.key, func.avg(ranked.c.v))
        .where(ranked.c.rn * 2 >= ranked.c.n, ranked.c.rn * 2 <= ranked.c.n + 2)
        .group_by(ranked.c.key)
    )


def response_times(
    session: Session, user: CrmUser | None, filters: Filters, by: str = "month"
) -> pd.DataFrame:
    """Tickets created in the range by month, priority or category: how many, first response
    and resolution in wall-clock hours (count, median, mean), and the share of SLA targets met
    (of the tickets with a target whose outcome is known: answered/resolved, or breached)."""
    conditions = ticket_conditions(session, user, filters, Ticket.created_at)
    key = dimension_key(session, by, Ticket.created_at)
    first = hours_between(session, Ticket.created_at, Ticket.first_response_at)
    resolution = hours_between(session, Ticket.created_at, Ticket.resolved_at)
    response_met = and_(Ticket.first_response_at.is_not(None), not_(Ticket.first_response_breached))
    response_known = and_(
        Ticket.first_response_due.is_not(None),
        or_(Ticket.first_response_at.is_not(None), Ticket.first_response_breached),
    )
    resolution_met = and_(Ticket.resolved_at.is_not(None), not_(Ticket.resolution_breached))
    resolution_known = and_(
        Ticket.resolution_due.is_not(None),
        or_(Ticket.resolved_at.is_not(None), Ticket.resolution_breached),
    )

    def flag(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    totals = (
        select(
            key.label("key"),
            func.count(),
            func.count(Ticket.first_response_at),
            func.avg(first),
            func.count(Ticket.resolved_at),
            func.avg(resolution),
            flag(and_(response_known, response_met)),
            flag(response_known),
            flag(and_(resolution_known, resolution_met)),
            flag(resolution_known),
        )
        .where(*conditions)
        .group_by(key)
        .order_by(key)
    )
    columns = [
        "key",
        "tickets",
        "responded",
        "first_response_mean_h",
        "resolved",
        "resolution_mean_h",
        "response_met",
        "response_known",
        "resolution_met",
        "resolution_known",
    ]
    frame = _frame(session.execute(totals).all(), columns)
    medians_first = dict(session.execute(_median(session, key, first, conditions)).all())
    medians_resolution = dict(session.execute(_median(session, key, resolution, conditions)).all())
    frame["first_response_median_h"] = [_hours(medians_first.get(k)) for k in frame["key"]]
    frame["resolution_median_h"] = [_hours(medians_resolution.get(k)) for k in frame["key"]]
    for column in ("first_response_mean_h", "resolution_mean_h"):
        frame[column] = [_hours(v) for v in frame[column]]
    for column in columns[1:]:
        if not column.endswith("_h"):
            frame[column] = frame[column].fillna(0).astype(int)
    frame["first_response_sla_met"] = _share(frame["response_met"], frame["response_known"])
    frame["resolution_sla_met"] = _share(frame["resolution_met"], frame["resolution_known"])
    frame = frame[
        [
            "key",
            "tickets",
            "responded",
            "first_response_median_h",
            "first_response_mean_h",
            "resolved",
            "resolution_median_h",
            "resolution_mean_h",
            "first_response_sla_met",
            "resolution_sla_met",
        ]
    ]
    return _with_labels(session, frame, by)


def _hours(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), 2)


def _share(part: pd.Series, whole: pd.Series) -> list[float | None]:
    return [round(p / w, 4) if w else None for p, w in zip(part, whole, strict=True)]


def response_times_by_month(session: Session, user: CrmUser | None, filters: Filters) -> pd.DataFrame:
    return response_times(session, user, filters, "month")


def response_times_by_priority(session: Session, user: CrmUser | None, filters: Filters) -> pd.DataFrame:
    return response_times(session, user, filters, "priority")


def response_times_by_category(session: Session, user: CrmUser | None, filters: Filters) -> pd.DataFrame:
    return response_times(session, user, filters, "category")


# --- volume and backlog --------------------------------------------------------------------------
def volume(session: Session, user: CrmUser | None, filters: Filters, by: str = "channel") -> pd.DataFrame:
    """Tickets created per local month and channel (or category): month, key, label, created."""
    month = period_expression(session, Ticket.created_at, "month").label("month")
    key = dimension_key(session, by, Ticket.created_at).label("key")
    stmt = (
        select(month, key, func.count())
        .where(*ticket_conditions(session, user, filters, Ticket.created_at))
        .group_by(month, key)
        .order_by(month, key)
    )
    frame = _frame(session.execute(stmt).all(), ["month", "key", "created"])
    labels = dimension_labels(session, by, set(frame["key"]))
    frame.insert(2, "label", [labels.get(k, str(k)) for k in frame["key"]])
    frame["created"] = frame["created"].astype(int)
    return frame


def volume_by_channel(session: Session, user: CrmUser | None, filters: Filters) -> pd.DataFrame:
    return volume(session, user, filters, "channel")


def volume_by_category(session: Session, user: CrmUser | None, filters: Filters) -> pd.DataFrame:
    return volume(session, user, filters, "category")


def backlog_by_age(
    session: Session, user: CrmUser | None, filters: Filters, now: dt.datetime | None = None
) -> pd.DataFrame:
    """Open tickets now, by age since creation (the date filters do not apply: it is today's)."""
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    whens = [
        (Ticket.created_at > now - dt.timedelta(days=days), index)
        for index, (days, _label) in enumerate(AGE_BUCKETS)
        if days is not None
    ]
    bucket = case(*whens, else_=len(AGE_BUCKETS) - 1).label("bucket")
    stmt = (
        select(bucket, func.count())
        .where(Ticket.status.in_(OPEN_TICKET_STATUSES), *ticket_conditions(session, user, filters))
        .group_by(bucket)
    )
    counts = dict(session.execute(stmt).all())
    return pd.DataFrame(
        {
            "bucket": [str(label) for _days, label in AGE_BUCKETS],
            "tickets": [int(counts.get(i, 0)) for i in range(len(AGE_BUCKETS))],
        }
    )


def backlog_by_status(session: Session, user: CrmUser | None, filters: Filters) -> pd.DataFrame:
    """Open tickets now, by status (every open status, zeros included)."""
    stmt = (
        select(Ticket.status, func.count())
        .where(Ticket.status.in_(OPEN_TICKET_STATUSES), *ticket_conditions(session, user, filters))
        .group_by(Ticket.status)
    )
    counts = dict(session.execute(stmt).all())
    return pd.DataFrame(
        {
            "status": list(OPEN_TICKET_STATUSES),
            "label": [TICKET_STATUSES.label(s) for s in OPEN_TICKET_STATUSES],
            "tickets": [int(counts.get(s, 0)) for s in OPEN_TICKET_STATUSES],
        }
    )


def month_ends(start: dt.date, end: dt.date) -> list[tuple[str, dt.date]]:
    """(month, the local day after it) for each month from start's to end's."""
    result = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        following = dt.date(year + month // 12, month % 12 + 1, 1)
        result.append((f"{year:04d}-{month:02d}", following))
        year, month = following.year, following.month
    return result


def backlog_by_month_end(
    session: Session, user: CrmUser | None, filters: Filters, today: dt.date | None = None
) -> pd.DataFrame:
    """Tickets open at the end of each month of the range (the current month: so far), in one
    scan: created before the month's end, and still open or resolved/closed after it. A ticket
    reopened later counts as open since its creation (its earlier resolution is not kept)."""
    start, end = date_range(filters, today)
    months = month_ends(start, end)
    done = func.coalesce(Ticket.resolved_at, Ticket.closed_at, Ticket.created_at)
    is_open = Ticket.status.in_(OPEN_TICKET_STATUSES)
    limits = [local_midnight_utc(following) for _month, following in months]
    columns = [
        func.sum(case((and_(Ticket.created_at < limit, or_(is_open, done >= limit)), 1), else_=0))
        for limit in limits
    ]
    stmt = select(*columns).where(
        Ticket.created_at < limits[-1],
        or_(is_open, done >= limits[0]),
        *ticket_conditions(session, user, filters),
    )
    row = session.execute(stmt).one()
    return pd.DataFrame({"month": [m for m, _following in months], "open_at_end": [int(v or 0) for v in row]})


# --- recurring words of low-rated comments --------------------------------------------------------
def low_rating() -> int:
    if has_app_context():
        return int(current_app.config.get("CRM_SURVEY_LOW_RATING", DEFAULT_LOW_RATING))
    return DEFAULT_LOW_RATING


def segment(text: str) -> list[list[str]]:
    """The meaningful words of a comment in runs of adjacent words (punctuation, numbers and single
    characters end a run; stop words are skipped): jieba's segmentation without stop words,
    single characters, numbers and punctuation."""
    clauses: list[list[str]] = [[]]
    for token in jieba.lcut(text):
        token = token.strip()
        if not token or not _WORD.search(token):
            if clauses[-1]:
                clauses.append([])
            continue
        if token in STOP_WORDS:
            continue  # 配送也太慢: the phrase 配送太慢 survives the function word
        if len(token) < 2 or _DIGITS.match(token):
            if clauses[-1]:  # 问了三次都没说清楚: no phrase 三次清楚 across the content word 说
                clauses.append([])
            continue
        clauses[-1].append(token.lower())
    return [c for c in clauses if c]


def count_words(comments: Iterable[str], top: int = TOP_WORDS) -> pd.DataFrame:
    """The `top` words and the `top` two-word phrases (adjacent words of a clause) of the texts,
    each counted once per comment: kind ('word' or 'phrase'), term, comments (how many name it)."""
    words: Counter[str] = Counter()
    phrases: Counter[str] = Counter()
    for comment in comments:
        clauses = segment(comment or "")
        words.update({w for clause in clauses for w in clause})
        phrases.update({a + b for clause in clauses for a, b in zip(clause, clause[1:], strict=False)})
    rows = [("word", term, n) for term, n in sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
    rows += [
        ("phrase", term, n)
        for term, n in sorted(phrases.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        if n > 1
    ]
    return pd.DataFrame(rows, columns=["kind", "term", "comments"])


def low_rated_words(
    session: Session,
    user: CrmUser | None,
    filters: Filters,
    top: int = TOP_WORDS,
    limit: int = LOW_COMMENT_LIMIT,
) -> pd.DataFrame:
    """The words recurring in the comments of low ratings (<= CRM_SURVEY_LOW_RATING, default 2)
    answered in the range: the newest `limit` comments only are read."""
    stmt = (
        select(Survey.comment)
        .join(Ticket, Ticket.id == Survey.ticket_id)
        .where(
            Survey.rating <= low_rating(),
            Survey.comment.is_not(None),
            Survey.comment != "",
            *ticket_conditions(session, user, filters, Survey.answered_at),
        )
        .order_by(Survey.answered_at.desc(), Survey.id.desc())
        .limit(limit)
    )
    return count_words(session.scalars(stmt), top)


def figures(session: Session, user: CrmUser | None, filters: Filters) -> dict[str, Any]:
    """A one-line summary for a dashboard's header: CSAT, answered surveys, open tickets."""
    frame = csat(session, user, filters, "month")
    answered = int(frame["answered"].sum()) if len(frame) else 0
    satisfied = int(frame["satisfied"].sum()) if len(frame) else 0
    open_now = int(backlog_by_status(session, user, filters)["tickets"].sum())
    return {
        "answered": answered,
        "csat": round(satisfied / answered, 4) if answered else None,
        "open": open_now,
    }


__all__ = [
    "DIMENSIONS",
    "STOP_WORDS",
    "backlog_by_age",
    "backlog_by_month_end",
    "backlog_by_status",
    "count_words",
    "csat",
    "csat_by_agent",
    "csat_by_category",
    "csat_by_department",
    "csat_by_district",
    "csat_by_month",
    "csat_by_week",
    "figures",
    "hours_between",
    "low_rated_words",
    "period_expression",
    "response_times",
    "response_times_by_category",
    "response_times_by_month",
    "response_times_by_priority",
    "segment",
    "ticket_conditions",
    "volume",
    "volume_by_category",
    "volume_by_channel",
]
