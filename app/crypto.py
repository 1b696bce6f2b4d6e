"""Encryption at rest (加密存储): AES-256-GCM values with a key id, and HMAC blind indexes.

A stored value reads ``enc1:<key id>:<base64url(nonce 12 bytes + ciphertext + tag)>``; the
associated data is the column it belongs to ("crm_customer.id_number"), so a value copied into
another column does not decrypt. The key id names the key that encrypted the value: old keys
stay readable while `flask crm rotate-key` re-encrypts everything under the current one.

Exact-match search works through a blind index: HMAC-SHA256 of the normalised value under a key
of its own (CRM_BLIND_INDEX_KEY, never the encryption key), derived per purpose, so equal values
are found without decrypting and a rotation of the encryption key leaves every index valid.

Keys (see README, "Encryption at rest"):
- CRM_ENCRYPTION_KEY: the current key, base64 of 32 bytes;
- CRM_ENCRYPTION_KEYS: older keys still read (comma-separated, base64), until rotate-key ran;
- CRM_BLIND_INDEX_KEY: base64 of 32 bytes, kept for the life of the database;
- none of them set and a SQLite database (the embedded setup): generated once into
  CRM_KEY_DIR (instance/ by default, files mode 0600) with a warning to back them up;
- a server database (PostgreSQL, MySQL) without them: the app refuses to start.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import sys
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import Flask, current_app
from sqlalchemy import Column, MetaData, String, Table, event, inspect, select, update
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session, object_session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.types import TypeDecorator

from customfields import query as cf_query
from customfields.definitions import CustomField
from customfields.mixin import CUSTOMISABLE, CustomFieldsMixin
from customfields.query import SEALED_SEPARATOR

__all__ = [
    "EncryptedString",
    "encrypt",
    "decrypt",
    "blind_index",
    "normalise",
    "key_id_of",
    "is_encrypted",
    "CryptoError",
    "KeyConfigurationError",
    "Keyring",
    "load_keyring",
    "keyring",
    "init_app",
    "new_key",
    "register_blind_indexes",
    "rotate",
]

log = logging.getLogger(__name__)

PREFIX = "enc1"
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32
#: files of the embedded setup, in CRM_KEY_DIR: current key first, older keys below it
KEY_FILE = "encryption_keys"
BLIND_KEY_FILE = "blind_index_key"
EXTENSION = "crm_crypto"


class CryptoError(Exception):
    """A value that cannot be decrypted: tampered, another column's, or an unknown key."""


class KeyConfigurationError(RuntimeError):
    """Keys missing or malformed: raised at start-up so the app never runs half-configured."""


def new_key() -> str:
    """A fresh key, base64 of 32 random bytes (what CRM_ENCRYPTION_KEY expects)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def _decode_key(text: str, name: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyConfigurationError(f"{name} is not valid base64") from exc
    if len(raw) != KEY_BYTES:
        raise KeyConfigurationError(f"{name} must be base64 of {KEY_BYTES} bytes, got {len(raw)} bytes")
    return raw


def key_id_of(key: bytes) -> str:
    """A short, stable id of a key (a one-way fingerprint): stored before each value."""
    return hashlib.sha256(b"keguan-key-id:" + key).hexdigest()[:8]


@dataclass
class Keyring:
    """The current key, the older keys still readable, and the blind-index root key."""

    current: bytes
    blind: bytes
    older: list[bytes] = field(default_factory=list)
    #: where the keys came from ("environment" or the key file), for messages
    source: str = "environment"

    def __post_init__(self) -> None:
        self.by_id = {key_id_of(k): k for k in [*self.older, self.current]}
        self.current_id = key_id_of(self.current)
        self._blind_keys: dict[str, bytes] = {}

    def key(self, key_id: str) -> bytes:
        try:
            return self.by_id[key_id]
        except KeyError:
            raise CryptoError(
                f"value encrypted with unknown key id {key_id!r}: add that key to CRM_ENCRYPTION_KEYS"
            ) from None

    def blind_key(self, purpose: str) -> bytes:
        """One HMAC key per purpose, so an index of one column says nothing about another's."""
        if purpose not in self._blind_keys:
            self._blind_keys[purpose] = hmac.new(
                self.blind, b"keguan-blind-index:" + purpose.encode(), hashlib.sha256
            ).digest()
        return self._blind_keys[purpose]


def _is_server_database(uri: str) -> bool:
    return not uri.startswith("sqlite")


def _key_file(folder: Path, name: str, announce: str) -> list[str]:
    """Lines of a key file in the embedded setup, generating one key on first use (mode 0600)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(new_key() + "\n")
        consequence = "the encrypted data cannot be read" if name == KEY_FILE else "exact search on it fails"
        message = (
            f"KeGuan generated {announce} into {path} (no key configured). "
            f"BACK THIS FILE UP with the database: without it {consequence}."
        )
        # on the console whatever logging does (Alembic's logging setup silences other loggers)
        sys.stderr.write(f"WARNING: {message}\n")
        log.info(message)
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def load_keyring(config: Mapping[str, Any]) -> Keyring:
    """The keys from the settings, or the embedded key files; refuses what would be unsafe."""
    current_text = (config.get("CRM_ENCRYPTION_KEY") or "").strip()
    older_text = (config.get("CRM_ENCRYPTION_KEYS") or "").strip()
    blind_text = (config.get("CRM_BLIND_INDEX_KEY") or "").strip()
    uri = str(config.get("SQLALCHEMY_DATABASE_URI") or "")
    if _is_server_database(uri) and not (current_text and blind_text):
        named = (("CRM_ENCRYPTION_KEY", current_text), ("CRM_BLIND_INDEX_KEY", blind_text))
        missing = [name for name, value in named if not value]
        raise KeyConfigurationError(
            f"{' and '.join(missing)} must be set with a server database (PostgreSQL, MySQL): "
            "KeGuan generates keys into instance/ only for the embedded SQLite setup. "
            'Create one with: python -c "import base64,os;print(base64.b64encode(os.urandom(32)).decode())" '
            "and keep it safe: the encrypted data cannot be read without it (see README, Encryption at rest)."
        )
    folder = Path(config.get("CRM_KEY_DIR") or "instance")
    source = "environment"
    if current_text:
        current = _decode_key(current_text, "CRM_ENCRYPTION_KEY")
        older = [_decode_key(t, "CRM_ENCRYPTION_KEYS") for t in older_text.split(",") if t.strip()]
    else:
        lines = _key_file(folder, KEY_FILE, "an encryption key")
        source = str(folder / KEY_FILE)
        current = _decode_key(lines[0], source)
        older = [_decode_key(t, source) for t in lines[1:]]
        older += [_decode_key(t, "CRM_ENCRYPTION_KEYS") for t in older_text.split(",") if t.strip()]
    if blind_text:
        blind = _decode_key(blind_text, "CRM_BLIND_INDEX_KEY")
    else:
        blind = _decode_key(_key_file(folder, BLIND_KEY_FILE, "a blind-index key")[0], BLIND_KEY_FILE)
    return Keyring(current=current, blind=blind, older=older, source=source)


def init_app(app: Flask) -> None:
    """Load the keys at start-up: a server database without keys stops here, with the reason."""
    app.extensions[EXTENSION] = load_keyring(app.config)


def keyring() -> Keyring:
    """The current app's keys (loaded by init_app, or now if the app was built without it)."""
    ring = current_app.extensions.get(EXTENSION)
    if ring is None:
        ring = current_app.extensions[EXTENSION] = load_keyring(current_app.config)
    return ring


def reload_keys(app: Flask | None = None) -> Keyring:
    """Read the keys again (after the key file or settings changed: rotation, tests)."""
    target = app or current_app
    ring = target.extensions[EXTENSION] = load_keyring(target.config)
    return ring


def add_key_to_file(app: Flask | None = None) -> Keyring:
    """Embedded setup only: a new current key on top of the key file (older keys stay below it)."""
    target = app or current_app
    if (target.config.get("CRM_ENCRYPTION_KEY") or "").strip():
        raise KeyConfigurationError(
            "keys come from CRM_ENCRYPTION_KEY: set the new key there, move the old one to "
            "CRM_ENCRYPTION_KEYS, restart, then run rotate-key without --new-key"
        )
    ring = keyring()  # makes sure the file exists
    path = Path(target.config.get("CRM_KEY_DIR") or "instance") / KEY_FILE
    lines = path.read_text().splitlines()
    path.write_text("\n".join([new_key(), *[line for line in lines if line.strip()]]) + "\n")
    path.chmod(0o600)
    del ring
    return reload_keys(target)


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def is_encrypted(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX + ":")


def key_id(token: str) -> str:
    """The key id a stored value was encrypted with."""
    return token.split(":", 2)[1]


def encrypt(text: str, context: str = "", ring: Keyring | None = None) -> str:
    """Encrypt under the current key; `context` (table.column) is bound as associated data."""
    ring = ring or keyring()
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(ring.current).encrypt(nonce, text.encode("utf-8"), context.encode("utf-8"))
    return f"{PREFIX}:{ring.current_id}:{_b64e(nonce + sealed)}"


def decrypt(token: str, context: str = "", ring: Keyring | None = None) -> str:
    """The plaintext of a stored value; CryptoError if tampered, of another column, or unknown key."""
    ring = ring or keyring()
    parts = token.split(":", 2) if isinstance(token, str) else []
    if len(parts) != 3 or parts[0] != PREFIX:
        raise CryptoError("not an encrypted value (expected enc1:<key id>:<data>)")
    key = ring.key(parts[1])
    try:
        raw = _b64d(parts[2])
    except (binascii.Error, ValueError) as exc:
        raise CryptoError("encrypted value is damaged (bad base64)") from exc
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise CryptoError("encrypted value is damaged (too short)")
    try:
        plain = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode("utf-8"))
    except InvalidTag:
        raise CryptoError(
            "encrypted value failed authentication: altered, moved from another column, or wrong key"
        ) from None
    return plain.decode("utf-8")


def normalise(value: str) -> str:
    """The form a blind index hashes: NFKC, no spaces or hyphens, upper case (x -> X in ID numbers)."""
    text = unicodedata.normalize("NFKC", str(value))
    return "".join(ch for ch in text if not ch.isspace() and ch != "-").upper()


def blind_index(value: str, purpose: str, ring: Keyring | None = None) -> str:
    """HMAC-SHA256 hex of the normalised value, under the blind-index key of `purpose`."""
    ring = ring or keyring()
    return hmac.new(ring.blind_key(purpose), normalise(value).encode("utf-8"), hashlib.sha256).hexdigest()


def stored_length(length: int) -> int:
    """Column width for an encrypted value of at most `length` characters (4 UTF-8 bytes each)."""
    sealed = NONCE_BYTES + 4 * length + TAG_BYTES
    return len(PREFIX) + 1 + 8 + 1 + (sealed * 4 + 2) // 3


class EncryptedString(TypeDecorator):
    """A string column stored encrypted: Python sees plaintext, the database only ciphertext.

    `length` is the plaintext's maximum; `context` (normally "table.column") is the associated
    data that binds each value to its column. Only `IS NULL` can be asked of such a column in
    SQL: equality, LIKE and ordering would compare ciphertexts, so search through its blind index.
    """

    impl = String
    cache_ok = True
    #: the audit log records a change of such a column as "***", never its value
    audit_redact = True

    def __init__(self, length: int, context: str = "", **kwargs: Any) -> None:
        super().__init__(stored_length(length), **kwargs)
        self.plain_length = length
        self.context = context

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return encrypt(str(value), self.context)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return decrypt(value, self.context)

    def copy(self, **kw: Any) -> EncryptedString:
        return EncryptedString(self.plain_length, self.context)


def register_blind_indexes(model: type) -> None:
    """Keep a model's blind-index columns in step with their encrypted columns.

    The model declares ``__blind_indexes__ = {"id_number": ("id_number_bidx", "customer.id_number")}``
    (encrypted attribute -> (index attribute, purpose)); every assignment of the attribute (forms,
    REST, services, import, the constructor) sets the index from the plaintext.
    """
    for attribute, (index_attribute, purpose) in model.__blind_indexes__.items():

        def _set(target: Any, value: Any, _old: Any, _initiator: Any, *, _index: str = index_attribute,
                 _purpose: str = purpose) -> None:
            setattr(target, _index, blind_index(value, _purpose) if value not in (None, "") else None)

        event.listen(getattr(model, attribute), "set", _set)
        # attribute and column share their name (as everywhere in KeGuan's models)
        BLIND_INDEXES[(model.__table__.name, attribute)] = (index_attribute, purpose)


#: (table, encrypted column) -> (its blind-index column, purpose), for rotation and migrations
BLIND_INDEXES: dict[tuple[str, str], tuple[str, str]] = {}
#: other stores of encrypted values (sensitive custom fields): callables (session, ring, batch,
#: everything) -> {label: values re-encrypted}, run by rotate()
ROTATION_SOURCES: list[Any] = []


def encrypted_columns(metadata: MetaData) -> list[tuple[Table, Column]]:
    """Every column stored through EncryptedString, in every table of the metadata."""
    return [
        (table, column)
        for table in metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, EncryptedString)
    ]


def reseal(token: str, context: str, ring: Keyring) -> tuple[str, str]:
    """(the value re-encrypted under the current key, its plaintext)."""
    plain = decrypt(token, context, ring)
    return encrypt(plain, context, ring), plain


def rotate(
    session: Session,
    metadata: MetaData,
    batch: int = 500,
    ring: Keyring | None = None,
    everything: bool = False,
) -> dict[str, int]:
    """Re-encrypt every value not yet under the current key; {table.column: values re-encrypted}.

    Batches by primary key, each committed: memory stays bounded and a run that stops half way
    is simply run again (values already under the current key are not touched). Blind indexes
    are recomputed from the plaintext on the way (same key: same value; a changed
    CRM_BLIND_INDEX_KEY is applied to what is re-encrypted). `everything` also takes the values
    already under the current key: every blind index is then recomputed (after the blind-index
    key changed). Raw SQL, so neither the ORM nor the audit hook sees a million row updates: the
    caller records one key_rotation event.
    """
    ring = ring or keyring()
    current = f"{PREFIX}:{ring.current_id}:"
    counts: dict[str, int] = {}
    for table, column in encrypted_columns(metadata):
        (pk,) = table.primary_key.columns
        index = BLIND_INDEXES.get((table.name, column.name))
        raw = sa_table(table.name, sa_column(pk.name), sa_column(column.name, String),
                       *([sa_column(index[0], String)] if index else []))
        key, value = raw.c[pk.name], raw.c[column.name]
        context = column.type.context
        done, last = 0, None
        while True:
            query = select(key, value).where(value.is_not(None))
            if not everything:
                query = query.where(value.not_like(current + "%"))
            if last is not None:
                query = query.where(key > last)
            rows = session.connection().execute(query.order_by(key).limit(batch)).all()
            if not rows:
                break
            for row_key, token in rows:
                sealed, plain = reseal(token, context, ring)
                values = {column.name: sealed}
                if index:
                    values[index[0]] = blind_index(plain, index[1], ring) if plain else None
                session.connection().execute(update(raw).where(key == row_key).values(**values))
            session.commit()
            done += len(rows)
            last = rows[-1][0]
        counts[f"{table.name}.{column.name}"] = done
    for source in ROTATION_SOURCES:
        counts.update(source(session, ring, batch, everything))
    return counts


# --- sensitive custom fields: values sealed in the JSON column ------------------------------------
# A sensitive custom value is stored as "<blind index>.<enc1 token>" (customfields.query), so an
# exact filter is a prefix range and needs no other column. In memory it is always plaintext: the
# load/refresh events open what the database returns, and a write seals just before its INSERT or
# UPDATE and puts the plaintext back after it, so services, forms, formulas, the audit hook and
# exports never see ciphertext.
_SEALED = re.compile(r"^[0-9a-f]{64}\.enc1:")
#: session.info key: entity -> API names of its sensitive fields, valid for one flush
_SENSITIVE_KEY = "crm_sensitive_fields"
#: instance attribute holding the plaintext while the sealed values are being written
_PLAIN_KEY = "_crm_plain_custom"


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and bool(_SEALED.match(value))


def seal_value(text: str, purpose: str, ring: Keyring | None = None) -> str:
    """A sensitive custom value as stored: its blind index, then its encryption."""
    ring = ring or keyring()
    return f"{blind_index(text, purpose, ring)}{SEALED_SEPARATOR}{encrypt(text, purpose, ring)}"


def _token(stored: str) -> str:
    return stored.split(SEALED_SEPARATOR, 1)[1]


def open_value(stored: str, purpose: str, ring: Keyring | None = None) -> str:
    return decrypt(_token(stored), purpose, ring)


def _purpose(table: str, api_name: str) -> str:
    return f"{table}.custom.{api_name}"


def open_custom(table: str, custom: Any) -> Any:
    """A custom dict with every sealed value opened (the same dict when nothing is sealed)."""
    if not isinstance(custom, dict) or not any(is_sealed(v) for v in custom.values()):
        return custom
    return {k: open_value(v, _purpose(table, k)) if is_sealed(v) else v for k, v in custom.items()}


def _sensitive_fields(session: Session, connection: Any, entity: str) -> set[str]:
    cache = session.info.setdefault(_SENSITIVE_KEY, {})
    if entity not in cache:
        fields = CustomField.__table__
        cache[entity] = set(
            connection.execute(
                select(fields.c.api_name).where(fields.c.entity == entity, fields.c.sensitive.is_(True))
            ).scalars()
        )
    return cache[entity]


def _opened_on_load(target: Any, *_args: Any) -> None:
    custom = target.__dict__.get("custom")
    opened = open_custom(target.__tablename__, custom)
    if opened is not custom:
        set_committed_value(target, "custom", opened)


def _seal_before_write(mapper: Any, connection: Any, target: Any) -> None:
    custom = target.__dict__.get("custom")
    if not isinstance(custom, dict) or not custom:
        return
    state = inspect(target)
    if state.persistent and not state.attrs.custom.history.has_changes():
        return  # unchanged: the database holds its sealed form already
    session = object_session(target)
    entity = target.__tablename__.removeprefix("crm_")
    sensitive = _sensitive_fields(session, connection, entity) if session is not None else set()
    names = [k for k in sensitive if isinstance(custom.get(k), str) and custom[k]]
    names = [k for k in names if not is_sealed(custom[k])]
    if not names:
        return
    table = target.__tablename__
    sealed = {k: seal_value(v, _purpose(table, k)) if k in names else v for k, v in custom.items()}
    target.__dict__[_PLAIN_KEY] = open_custom(table, custom)
    target.custom = sealed


def _plain_after_write(mapper: Any, connection: Any, target: Any) -> None:
    plain = target.__dict__.pop(_PLAIN_KEY, None)
    if plain is not None:
        set_committed_value(target, "custom", plain)


def _forget_sensitive(session: Session, *_args: Any) -> None:
    session.info.pop(_SENSITIVE_KEY, None)


def _rotate_custom(session: Session, ring: Keyring, batch: int, everything: bool = False) -> dict[str, int]:
    """Re-encrypt the sealed custom values of every customisable table (rotate()).

    Every sealed value is found by its form, also those of a field deleted since (values stay in
    the records): none may be left under a key that is about to be dropped.
    """
    current = f"{PREFIX}:{ring.current_id}:"
    counts: dict[str, int] = {}
    for _entity, model in sorted(CUSTOMISABLE.items()):
        table = model.__table__
        last = None
        while True:
            query = select(table.c.id, table.c.custom).where(table.c.custom.is_not(None))
            if last is not None:
                query = query.where(table.c.id > last)
            rows = session.connection().execute(query.order_by(table.c.id).limit(batch)).all()
            if not rows:
                break
            for row_id, custom in rows:
                stale = [
                    k for k, v in (custom or {}).items()
                    if is_sealed(v) and (everything or not _token(v).startswith(current))
                ]
                if not stale:
                    continue
                fresh = dict(custom)
                for k in stale:
                    purpose = _purpose(table.name, k)
                    fresh[k] = seal_value(open_value(custom[k], purpose, ring), purpose, ring)
                session.connection().execute(update(table).where(table.c.id == row_id).values(custom=fresh))
                for k in stale:
                    counts[f"{table.name}.custom.{k}"] = counts.get(f"{table.name}.custom.{k}", 0) + 1
            session.commit()
            last = rows[-1][0]
    return counts


def _install_custom_sealing() -> None:
    event.listen(CustomFieldsMixin, "load", _opened_on_load, propagate=True)
    event.listen(CustomFieldsMixin, "refresh", _opened_on_load, propagate=True)
    event.listen(CustomFieldsMixin, "before_insert", _seal_before_write, propagate=True)
    event.listen(CustomFieldsMixin, "before_update", _seal_before_write, propagate=True)
    event.listen(CustomFieldsMixin, "after_insert", _plain_after_write, propagate=True)
    event.listen(CustomFieldsMixin, "after_update", _plain_after_write, propagate=True)
    event.listen(Session, "after_flush", _forget_sensitive)
    event.listen(Session, "after_rollback", _forget_sensitive)
    cf_query.SEALING["index"] = blind_index
    ROTATION_SOURCES.append(_rotate_custom)


_install_custom_sealing()
