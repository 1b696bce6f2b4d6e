"""Backups (备份): `flask crm backup` and `flask crm restore`, and the worker's daily job.

One format on SQLite, PostgreSQL and MariaDB, without client binaries (pg_dump, mysqldump): a
logical dump of every table of the models' metadata (FAB's tables included), read in ONE
transaction with a consistent snapshot (SQLite: the online backup API copies the database to a
private temporary file first, then that copy is read), streamed as JSON lines, gzip-compressed,
and encrypted with AES-256-GCM in 1 MiB chunks.

File layout::

    b"KEGUANBK" | header length (4 bytes, big endian) | header (JSON, plaintext)
    | chunks: length (4 bytes) | nonce (12 bytes) | ciphertext + tag

The header (format, created at, dialect, alembic revision, key id, per-table row counts, the
audit chain's head) is not secret but is authenticated: it is the associated data of every
chunk, together with the chunk's number and a "last chunk" flag, so an edited header, reordered,
removed or truncated chunks all fail. The file key is derived from the app's encryption key
(the one named by the key id: old keys listed in CRM_ENCRYPTION_KEYS still open old backups) and
a random salt, never the encryption key itself. Encrypted columns are dumped as stored
(ciphertext): a backup is as safe as the key, and useless without it.

Restore goes into an EMPTY database at the backup's alembic revision (migrated first when it has
no schema at all), in one transaction: the whole file is authenticated before anything is written,
rows are inserted as they were (the audit log's own rows too, with the audit hook disabled), row
counts and the audit chain are verified before the commit.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import gzip
import hashlib
import hmac
import io
import json
import os
import sqlite3
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import Flask
from sqlalchemy import (
    Column,
    Connection,
    Date,
    DateTime,
    Float,
    LargeBinary,
    Numeric,
    String,
    Table,
    Time,
    bindparam,
    create_engine,
    func,
    inspect,
    select,
    text,
    type_coerce,
)
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table
from sqlalchemy.schema import sort_tables_and_constraints
from sqlalchemy.types import TypeDecorator

from app import audit, crypto
from app.extensions import db
from models import Model

MAGIC = b"KEGUANBK"
FORMAT = 1
CHUNK = 1 << 20
#: rows read or written per batch (memory stays bounded)
BATCH = 1000
SUFFIX = ".kgbak"
PREFIX = "keguan-"
#: tables that hold a row right after the migrations: replaced by the backup's rows
SEEDED = {"crm_audit_head"}


class BackupError(Exception):
    """A backup that cannot be written or restored; the message says why and what to do."""


# --- tables and values --------------------------------------------------------------------------


def ordered_tables() -> tuple[list[Table], dict[str, set[str]]]:
    """Every table in foreign-key order, and per table the columns inserted as NULL first and set
    afterwards: references to the row's own table (a manager) and those of a cycle (a department's
    leader is a user, a user's department a department)."""
    pairs = sort_tables_and_constraints(Model.metadata.sorted_tables)
    tables = [table for table, _ in pairs if table is not None]
    late: dict[str, set[str]] = {}
    cyclic = [fkc for table, fkcs in pairs if table is None for fkc in fkcs]
    for table in tables:
        for fkc in table.foreign_key_constraints:
            if fkc.referred_table is table or fkc in cyclic:
                late.setdefault(table.name, set()).update(c.name for c in fkc.columns)
    return tables, late


def _raw_type(column: Column) -> Any:
    """Encrypted columns are copied as stored (ciphertext), never decrypted and re-encrypted."""
    return String() if isinstance(column.type, crypto.EncryptedString) else column.type


def _base_type(column: Column) -> Any:
    kind = column.type
    return kind.impl_instance if isinstance(kind, TypeDecorator) else kind


def _encode(value: Any) -> Any:
    """JSON for what JSON lacks; restore turns it back by the column's type."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"cannot back up a value of type {type(value).__name__}")


def _decoder(column: Column) -> Any:
    kind = _base_type(column)
    if isinstance(column.type, crypto.EncryptedString):
        return None
    if isinstance(kind, DateTime):
        return dt.datetime.fromisoformat
    if isinstance(kind, Date):
        return dt.date.fromisoformat
    if isinstance(kind, Time):
        return dt.time.fromisoformat
    if isinstance(kind, Numeric) and not isinstance(kind, Float) and kind.asdecimal:
        return decimal.Decimal
    if isinstance(kind, LargeBinary):
        return base64.b64decode
    return None


# --- encryption ---------------------------------------------------------------------------------


def _file_key(ring: crypto.Keyring, key_id: str, salt: bytes) -> bytes:
    return hmac.new(ring.key(key_id), b"keguan-backup:" + salt, hashlib.sha256).digest()


def _chunk_aad(aad: bytes, number: int, last: bool) -> bytes:
    return aad + struct.pack(">QB", number, 1 if last else 0)


class _Sealer(io.RawIOBase):
    """A write-only stream that encrypts what it is given in numbered chunks."""

    def __init__(self, out: IO[bytes], key: bytes, aad: bytes) -> None:
        self.out, self.aead, self.aad = out, AESGCM(key), aad
        self.buffer = bytearray()
        self.number = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.buffer += data
        while len(self.buffer) > CHUNK:  # keep something back: the last chunk carries the flag
            self._emit(bytes(self.buffer[:CHUNK]), last=False)
            del self.buffer[:CHUNK]
        return len(data)

    def _emit(self, data: bytes, last: bool) -> None:
        nonce = os.urandom(crypto.NONCE_BYTES)
        sealed = self.aead.encrypt(nonce, data, _chunk_aad(self.aad, self.number, last))
        self.out.write(struct.pack(">I", len(sealed)) + nonce + sealed)
        self.number += 1

    def finish(self) -> None:
        self._emit(bytes(self.buffer), last=True)
        self.buffer.clear()


class _Opener(io.RawIOBase):
    """A read-only stream of the decrypted chunks; raises BackupError on any tampering."""

    def __init__(self, source: IO[bytes], key: bytes, aad: bytes) -> None:
        self.source, self.aead, self.aad = source, AESGCM(key), aad
        self.pending = b""
        self.number = 0
        self.done = False

    def readable(self) -> bool:
        return True

    def _next(self) -> bytes:
        size = self.source.read(4)
        if len(size) < 4:
            raise BackupError("备份文件不完整 (被截断) / backup file is truncated")
        (length,) = struct.unpack(">I", size)
        nonce = self.source.read(crypto.NONCE_BYTES)
        sealed = self.source.read(length)
        if len(nonce) < crypto.NONCE_BYTES or len(sealed) < length or length > CHUNK + crypto.TAG_BYTES:
            raise BackupError("备份文件不完整 (被截断) / backup file is truncated")
        for last in (False, True):
            try:
                plain = self.aead.decrypt(nonce, sealed, _chunk_aad(self.aad, self.number, last))
            except InvalidTag:
                continue
            self.number += 1
            if last:
                self.done = True
                if self.source.read(1):
                    raise BackupError("备份文件末尾有多余数据 / backup file has data after its end")
            return plain
        raise BackupError(
            "备份文件无法解密: 文件被改动或密钥不对 / backup file failed authentication: "
            "it was altered, or CRM_ENCRYPTION_KEY is not the key it was made with"
        )

    def readinto(self, target: Any) -> int:
        while not self.pending and not self.done:
            self.pending = self._next()
        count = min(len(target), len(self.pending))
        target[:count] = self.pending[:count]
        self.pending = self.pending[count:]
        return count


# --- writing a backup ---------------------------------------------------------------------------


def _revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return ",".join(sorted(versions)) or None


def _snapshot_connection(connection: Connection) -> None:
    """Start the consistent, read-only snapshot the whole dump is read from."""
    dialect = connection.dialect.name
    if dialect == "mysql":
        connection.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")


def _dump(connection: Connection, out: IO[bytes], ring: crypto.Keyring, dialect: str) -> dict[str, Any]:
    """Write header and encrypted body from one snapshot; returns the header."""
    tables, _late = ordered_tables()
    counts = {t.name: int(connection.scalar(select(func.count()).select_from(t)) or 0) for t in tables}
    head = connection.execute(select(audit.AuditHead.__table__)).mappings().first()
    salt = os.urandom(16)
    header = {
        "app": "KeGuan",
        "format": FORMAT,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "dialect": dialect,
        "alembic_revision": _revision(connection),
        "key_id": ring.current_id,
        "blind_key_id": crypto.key_id_of(ring.blind),
        "salt": base64.b64encode(salt).decode(),
        "tables": counts,
        "audit_head": {"last_id": int(head["last_id"]), "last_hash": head["last_hash"]} if head else None,
    }
    header_bytes = json.dumps(header, ensure_ascii=False, sort_keys=True).encode()
    out.write(MAGIC + struct.pack(">I", len(header_bytes)) + header_bytes)
    sealer = _Sealer(out, _file_key(ring, ring.current_id, salt), MAGIC + header_bytes)
    with gzip.GzipFile(fileobj=sealer, mode="wb", mtime=0) as packed:
        for table in tables:
            names = [c.name for c in table.columns]
            packed.write(json.dumps({"table": table.name, "columns": names}).encode() + b"\n")
            columns = [type_coerce(c, _raw_type(c)).label(c.name) for c in table.columns]
            query = select(*columns).order_by(*table.primary_key.columns)
            result = connection.execution_options(stream_results=True, yield_per=BATCH).execute(query)
            written = 0
            for rows in result.partitions(BATCH):
                lines = [json.dumps(list(row), ensure_ascii=False, default=_encode) for row in rows]
                packed.write(("\n".join(lines) + "\n").encode())
                written += len(lines)
            if written != counts[table.name]:
                raise BackupError(f"{table.name}: counted {counts[table.name]} rows, read {written}")
            packed.write(json.dumps({"end": table.name, "rows": written}).encode() + b"\n")
    sealer.finish()
    return header


def backup_name(now: dt.datetime | None = None) -> str:
    moment = now or dt.datetime.now(dt.UTC)
    return f"{PREFIX}{moment:%Y%m%d-%H%M%S-%f}{SUFFIX}"


def write_backup(app: Flask, folder: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """A backup of the app's database into `folder` (CRM_BACKUP_DIR); (its path, its header).

    Written under a temporary name, mode 0600, and renamed when complete: a crash never leaves a
    file that looks like a backup.
    """
    target = Path(folder or app.config["CRM_BACKUP_DIR"])
    target.mkdir(parents=True, exist_ok=True)
    ring = crypto.keyring()
    path = target / backup_name()
    partial = path.with_suffix(".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            engine = db.engine
            if engine.dialect.name == "sqlite":
                header = _dump_sqlite(engine, out, ring)
            else:
                options: dict[str, Any] = {"isolation_level": "REPEATABLE READ"}
                if engine.dialect.name == "postgresql":
                    options = {"isolation_level": "SERIALIZABLE", "postgresql_readonly": True,
                               "postgresql_deferrable": True}  # fmt: skip
                with engine.connect().execution_options(**options) as connection:
                    _snapshot_connection(connection)
                    header = _dump(connection, out, ring, engine.dialect.name)
                    connection.rollback()
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path, header


def _dump_sqlite(engine: Any, out: IO[bytes], ring: crypto.Keyring) -> dict[str, Any]:
    """SQLite: copy the live database with the online backup API (a consistent copy while others
    write), into a private temporary folder, and dump that copy."""
    with tempfile.TemporaryDirectory(prefix="keguan-backup-") as folder:
        copy_path = Path(folder) / "snapshot.db"
        raw = engine.raw_connection()
        try:
            copy = sqlite3.connect(copy_path)
            try:
                raw.driver_connection.backup(copy)
            finally:
                copy.close()
        finally:
            raw.close()
        snapshot = create_engine(f"sqlite:///{copy_path}")
        try:
            with snapshot.connect() as connection:
                return _dump(connection, out, ring, "sqlite")
        finally:
            snapshot.dispose()


def prune(folder: str | Path, keep: int) -> list[Path]:
    """Delete all but the `keep` newest backups in `folder` (by name: they carry their time)."""
    files = sorted(Path(folder).glob(f"{PREFIX}*{SUFFIX}"))
    doomed = files[: max(len(files) - max(keep, 1), 0)]
    for path in doomed:
        path.unlink()
    return doomed


# --- reading a backup ---------------------------------------------------------------------------


def read_header(path: str | Path) -> tuple[dict[str, Any], bytes, int]:
    """(header, its bytes, where the chunks start); BackupError when it is not a KeGuan backup."""
    with open(path, "rb") as source:
        start = source.read(len(MAGIC) + 4)
        if len(start) < len(MAGIC) + 4 or not start.startswith(MAGIC):
            raise BackupError("不是客管备份文件 / not a KeGuan backup file")
        (length,) = struct.unpack(">I", start[len(MAGIC):])
        header_bytes = source.read(length)
    try:
        header = json.loads(header_bytes)
    except ValueError as error:
        raise BackupError("备份文件头已损坏 / backup header is damaged") from error
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else "?"
        raise BackupError(f"unsupported backup format {found}: use the KeGuan version that made it")
    return header, header_bytes, len(MAGIC) + 4 + length


def _records(path: str | Path, ring: crypto.Keyring) -> Iterator[Any]:
    """The decrypted JSON records of the body, in order; BackupError on tampering or a wrong key."""
    header, header_bytes, offset = read_header(path)
    try:
        key = _file_key(ring, header["key_id"], base64.b64decode(header["salt"]))
    except crypto.CryptoError as error:
        raise BackupError(
            f"备份使用的密钥 {header['key_id']} 不可用 / the backup was made with key id "
            f"{header['key_id']}, which this installation does not have: set CRM_ENCRYPTION_KEY "
            "(or CRM_ENCRYPTION_KEYS) to that key"
        ) from error
    with open(path, "rb") as source:
        source.seek(offset)
        opener = _Opener(source, key, MAGIC + header_bytes)
        try:
            with gzip.GzipFile(fileobj=io.BufferedReader(opener, CHUNK), mode="rb") as packed:
                for line in packed:
                    yield json.loads(line)
        except (OSError, EOFError, ValueError) as error:
            raise BackupError(f"备份内容已损坏 / backup content is damaged: {error}") from error
        if not opener.done:
            raise BackupError("备份文件不完整 (被截断) / backup file is truncated")


def check(path: str | Path, ring: crypto.Keyring | None = None) -> dict[str, Any]:
    """Read the whole file once: every chunk authenticated, row counts as in the header."""
    header = read_header(path)[0]
    ring = ring or crypto.keyring()
    counts: dict[str, int] = {}
    current: str | None = None
    for record in _records(path, ring):
        if isinstance(record, list):
            if current is None:
                raise BackupError("backup content is damaged: a row outside a table")
            counts[current] += 1
        elif "table" in record:
            current = record["table"]
            counts[current] = 0
        elif "end" in record:
            if record["end"] != current or record["rows"] != counts[current]:
                raise BackupError(f"backup content is damaged: {current} rows do not match")
            current = None
    if counts != header["tables"]:
        raise BackupError("backup content is damaged: row counts differ from its header")
    return header


# --- restoring ----------------------------------------------------------------------------------


@dataclass
class RestoreReport:
    header: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)
    audit_rows: int = 0
    warnings: list[str] = field(default_factory=list)


def _row_counts(connection: Connection, tables: list[Table]) -> dict[str, int]:
    return {t.name: int(connection.scalar(select(func.count()).select_from(t)) or 0) for t in tables}


def _wipe(connection: Connection, tables: list[Table], late: dict[str, set[str]]) -> None:
    """Delete every row: the references of a cycle are cleared first, then the tables emptied in
    reverse foreign-key order (PostgreSQL: one TRUNCATE, which the audit log's append-only row
    trigger does not stop)."""
    if connection.dialect.name == "postgresql":
        names = ", ".join(connection.dialect.identifier_preparer.quote(t.name) for t in tables)
        connection.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        return
    for table in tables:
        if late.get(table.name):
            connection.execute(_light(table).update().values({name: None for name in late[table.name]}))
    for table in reversed(tables):
        connection.execute(table.delete())


def _light(table: Table) -> Any:
    """The table without the models' defaults, onupdate values and encryption: rows as they were."""
    return sa_table(table.name, *[sa_column(c.name, _raw_type(c)) for c in table.columns])


def restore(app: Flask, path: str | Path, wipe: bool = False) -> RestoreReport:
    """Restore a backup into the app's database (see the module's docstring); BackupError if refused."""
    ring = crypto.keyring()
    header = check(path, ring)  # nothing is written before the whole file is authenticated
    report = RestoreReport(header=header)
    if header.get("blind_key_id") != crypto.key_id_of(ring.blind):
        report.warnings.append(
            "CRM_BLIND_INDEX_KEY differs from the backed-up installation's: exact search on encrypted "
            "fields finds nothing until `flask crm rotate-key --reindex` ran (or set the old key)"
        )
    session = db.session
    revision = _revision(session.connection())
    session.rollback()
    if revision is None:
        from flask_migrate import upgrade

        upgrade(revision=header["alembic_revision"])
        revision = _revision(session.connection())
        session.rollback()
    if revision != header["alembic_revision"]:
        raise BackupError(
            f"数据库版本 {revision} 与备份 {header['alembic_revision']} 不同 / the database is at "
            f"revision {revision}, the backup at {header['alembic_revision']}: restore into an empty "
            "database (it is migrated to the backup's revision), or upgrade/downgrade this one first"
        )
    tables, late = ordered_tables()
    by_name = {t.name: t for t in tables}
    if set(header["tables"]) != set(by_name):
        raise BackupError("the backup's tables differ from these models: use the KeGuan version that made it")
    session.info[audit.DISABLED] = True
    try:
        connection = session.connection()
        present = {name: n for name, n in _row_counts(connection, tables).items() if n and name not in SEEDED}
        if present and not wipe:
            listed = ", ".join(f"{name} {n}" for name, n in list(present.items())[:5])
            raise BackupError(
                f"目标数据库不是空的 ({listed}) / the target database is not empty ({listed}): "
                "restore into an empty database, or pass --yes to DELETE everything in it first"
            )
        _wipe(connection, tables, late)
        _insert_all(connection, path, ring, by_name, late)
        _reset_sequences(connection, tables)
        counts = _row_counts(connection, tables)
        if counts != header["tables"]:
            wrong = [name for name in counts if counts[name] != header["tables"].get(name)]
            raise BackupError(f"restored row counts differ from the backup: {', '.join(wrong)}")
        # a chain whose older rows a DBA purged starts later (README, "Audit log"): from there
        first = connection.scalar(select(func.min(audit.AuditLog.id)))
        verified = audit.verify(session, from_id=int(first) if first and int(first) > 1 else None)
        if not verified.ok:
            problems = "; ".join(map(str, verified.problems))
            raise BackupError(f"restored audit chain does not verify: {problems}")
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.info.pop(audit.DISABLED, None)
    report.counts, report.audit_rows = counts, verified.checked
    report.warnings += _rebuild_custom_field_indexes()
    return report


def _insert_all(
    connection: Connection, path: str | Path, ring: crypto.Keyring, by_name: dict[str, Table],
    late: dict[str, set[str]],
) -> None:  # fmt: skip
    """Insert every row in file order (foreign-key order), then the columns held back."""
    later: list[tuple[Table, list[str], list[dict[str, Any]]]] = []
    table: Table | None = None
    batch: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    names: list[str] = []
    decoders: list[Any] = []
    held_columns: list[str] = []
    pk_names: list[str] = []

    def flush() -> None:
        if batch:
            connection.execute(_light(table).insert(), batch)
            batch.clear()

    for record in _records(path, ring):
        if isinstance(record, list):
            row = {}
            for name, decode, value in zip(names, decoders, record, strict=True):
                row[name] = decode(value) if decode is not None and value is not None else value
            if held_columns:
                keep = {c: row[c] for c in held_columns if row[c] is not None}
                if keep:
                    held.append({**{f"_pk_{c}": row[c] for c in pk_names}, **keep})
                    for column in keep:
                        row[column] = None
            batch.append(row)
            if len(batch) >= BATCH:
                flush()
        elif "table" in record:
            table = by_name[record["table"]]
            names = record["columns"]
            if set(names) != {c.name for c in table.columns}:
                raise BackupError(f"{table.name}: the backup's columns differ from this version's")
            decoders = [_decoder(table.c[name]) for name in names]
            held_columns = sorted(late.get(table.name, set()))
            pk_names = [c.name for c in table.primary_key.columns]
            held = []
        elif "end" in record:
            flush()
            if held:
                later.append((table, pk_names, held))
    for table_, pk_names_, rows in later:
        light = _light(table_)
        for column in sorted({c for row in rows for c in row if not c.startswith("_pk_")}):
            wanted = [row for row in rows if column in row]
            statement = light.update().values({column: bindparam(column)})
            for pk in pk_names_:
                statement = statement.where(light.c[pk] == bindparam(f"_pk_{pk}"))
            for start in range(0, len(wanted), BATCH):
                part = [{column: r[column], **{f"_pk_{p}": r[f"_pk_{p}"] for p in pk_names_}}
                        for r in wanted[start : start + BATCH]]  # fmt: skip
                connection.execute(statement, part)


def _reset_sequences(connection: Connection, tables: list[Table]) -> None:
    """PostgreSQL: each serial/identity sequence continues after the restored ids (MariaDB's
    AUTO_INCREMENT and SQLite's rowid do so by themselves)."""
    if connection.dialect.name != "postgresql":
        return
    for table in tables:
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or not _is_integer(keys[0]):
            continue
        name, key = table.name, keys[0].name
        connection.execute(
            text(
                f'SELECT setval(pg_get_serial_sequence(:t, :c), COALESCE(MAX("{key}"), 1), '
                f'MAX("{key}") IS NOT NULL) FROM "{name}"'
            ),
            {"t": name, "c": key},
        )


def _is_integer(column: Column) -> bool:
    try:
        return column.type.python_type is int
    except NotImplementedError:
        return False


def _rebuild_custom_field_indexes() -> list[str]:
    """The expression indexes of indexed custom fields live outside the migrations: build them."""
    from customfields.definitions import CustomField
    from customfields.indexes import sync_indexes
    from customfields.mixin import CUSTOMISABLE

    warnings = []
    session = db.session
    session.info[audit.DISABLED] = True
    try:
        for definition in session.scalars(select(CustomField)).all():
            model = CUSTOMISABLE.get(definition.entity)
            if model is None:
                warnings.append(f"custom field {definition.id}: unknown entity {definition.entity}")
                continue
            sync_indexes(session, model, definition)
        session.commit()
    finally:
        session.info.pop(audit.DISABLED, None)
    return warnings
