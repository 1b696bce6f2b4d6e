"""Expression indexes for custom fields marked `indexed`, created and dropped by the engine.

An index is built on exactly the expressions `customfields.query` uses for filters and sorting,
so the database can match them. SQLite and PostgreSQL index expressions directly; MariaDB has no
expression indexes (MySQL 8 has, untested), so there indexed fields are filtered by a scan.

Index names carry the field and its stored type: a type change builds a new index and drops the
old one. DDL runs in the caller's transaction (transactional on SQLite and PostgreSQL).
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Index, select, text
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateIndex

from customfields.definitions import CustomField
from customfields.query import custom_sql, index_expressions, storage_kind


def name_prefix(field: CustomField) -> str:
    digest = hashlib.sha1(f"{field.entity}.{field.api_name}".encode()).hexdigest()[:6]
    return f"ix_cf_{field.api_name[:30]}_{digest}_"


def existing_indexes(session: Session, field: CustomField) -> set[str]:
    """Names of the field's indexes in the database (whatever type they were built for)."""
    dialect = session.get_bind().dialect.name
    pattern = name_prefix(field).replace("_", r"\_") + "%"
    if dialect == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE :p ESCAPE '\\'"
    elif dialect == "postgresql":
        sql = "SELECT indexname FROM pg_indexes WHERE indexname LIKE :p ESCAPE '\\'"
    else:
        return set()
    return set(session.scalars(text(sql), {"p": pattern}))


def sync_indexes(session: Session, model: type, field: CustomField, deleted: bool = False) -> None:
    """Make the database hold exactly the indexes `field` needs: those of its current type when
    it is indexed (archived too: its data stays), none when it is not or is being deleted."""
    dialect = session.get_bind().dialect.name
    wanted: dict[str, Index] = {}
    if field.indexed and not deleted:
        prefix = name_prefix(field) + storage_kind(field)[:3]
        for number, expressions in enumerate(index_expressions(model, field, dialect)):
            index = Index(f"{prefix}{number}", *expressions)
            model.__table__.indexes.discard(index)  # built for DDL only, not part of the models
            wanted[index.name] = index
    connection = session.connection()
    for name in existing_indexes(session, field) - set(wanted):
        connection.exec_driver_sql(f'DROP INDEX IF EXISTS "{name}"')
    present = existing_indexes(session, field)
    built = [name for name in wanted if name not in present]
    for name in built:
        ddl = CreateIndex(wanted[name]).compile(
            dialect=connection.dialect, compile_kwargs={"literal_binds": True}
        )
        connection.exec_driver_sql(str(ddl))
    if built and session.scalar(select(model.id).where(custom_sql(model, field).is_not(None)).limit(1)):
        refresh_statistics(session, model.__table__.name, built)


def refresh_statistics(session: Session, table: str, index_names: list[str]) -> None:
    """Tell the planner how selective expression indexes are. Without statistics an equality on
    one looks as good as one on the owner index, so a rep's list filtered by a five-choice select
    walked 200,000 index entries instead of the rep's 5,000 customers. SQLite: `ANALYZE` of the
    indexes (reads them once, far cheaper than building them); PostgreSQL: `ANALYZE` of the table
    (a sample; expression statistics come only from it; autovacuum repeats it as data changes).

    A field without values yet is not analysed when its index is built: "every row is NULL"
    would make SQLite shun the index until the next run; the worker's daily
    `statistics_job` keeps them current as values arrive."""
    connection = session.connection()
    dialect = connection.dialect.name
    if dialect == "sqlite":
        for name in index_names:
            connection.exec_driver_sql(f'ANALYZE "{name}"')
    elif dialect == "postgresql":
        connection.exec_driver_sql(f'ANALYZE "{table}"')


def refresh_all_statistics(session: Session) -> int:
    """Planner statistics of every custom-field index, from the data as it is now (daily)."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        sql = "SELECT tbl_name, name FROM sqlite_master WHERE type = 'index' AND name LIKE :p ESCAPE '\\'"
    elif dialect == "postgresql":
        sql = "SELECT tablename, indexname FROM pg_indexes WHERE indexname LIKE :p ESCAPE '\\'"
    else:
        return 0
    per_table: dict[str, list[str]] = {}
    for table, name in session.execute(text(sql), {"p": r"ix\_cf\_%"}):
        per_table.setdefault(table, []).append(name)
    for table, names in per_table.items():
        refresh_statistics(session, table, names)
    return sum(len(names) for names in per_table.values())
