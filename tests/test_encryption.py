"""Encryption at rest: AES-256-GCM values with a key id, blind indexes, rotation, key handling.

The raw-database test reads what the database itself holds (the SQLite file's bytes, or the
columns through plain SQL on PostgreSQL/MariaDB) and must find none of the plaintext.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from stdnum.cn import ric

from app import create_app, crypto
from app.extensions import db
from app.search import search
from models.audit import AuditLog
from models.customers import Customer
from tests.conftest import TEST_CONFIG, unique_name, user
from tests.customfield_support import create_customer, define

_serial = iter(range(1, 10_000))


def valid_id_number(birth: str = "19900307") -> str:
    """A resident ID number with a correct check digit (东营市东营区, a fresh sequence number)."""
    body = f"370502{birth}{(os.getpid() * 7 + next(_serial)) % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")  # the function skips the last character


def bank_account() -> str:
    return f"6222{os.getpid() % 10000:04d}{next(_serial):08d}"


def customer_count() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Customer))


def make_individual(api_as: Any, **values: Any) -> dict[str, Any]:
    client, headers = api_as("admin")
    body = {"name": unique_name("个人客户"), "kind": "individual", **values}
    response = client.post("/api/v1/customer/", json=body, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def ring(**config: Any) -> crypto.Keyring:
    return crypto.load_keyring({"SQLALCHEMY_DATABASE_URI": "sqlite://", **config})


def b64key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


# --- the primitives -------------------------------------------------------------------------------
def test_round_trip_with_key_id_and_column_binding() -> None:
    keys = ring(CRM_ENCRYPTION_KEY=b64key(), CRM_BLIND_INDEX_KEY=b64key())
    token = crypto.encrypt("37050219900307123X", "crm_customer.id_number", keys)
    assert token.startswith(f"enc1:{keys.current_id}:")
    assert "37050219900307123X" not in token
    assert crypto.decrypt(token, "crm_customer.id_number", keys) == "37050219900307123X"
    # a fresh nonce each time: equal values do not give equal ciphertexts
    assert crypto.encrypt("same", "t.c", keys) != crypto.encrypt("same", "t.c", keys)
    # bound to its column: the same token moved into another column does not decrypt
    with pytest.raises(crypto.CryptoError, match="moved from another column"):
        crypto.decrypt(token, "crm_customer.bank_account", keys)


def test_tampered_ciphertext_is_refused() -> None:
    keys = ring(CRM_ENCRYPTION_KEY=b64key(), CRM_BLIND_INDEX_KEY=b64key())
    token = crypto.encrypt("6222020200001234", "t.c", keys)
    head, data = token.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
    raw[15] ^= 0x01  # one bit of the ciphertext
    forged = head + ":" + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(crypto.CryptoError, match="failed authentication"):
        crypto.decrypt(forged, "t.c", keys)
    with pytest.raises(crypto.CryptoError, match="damaged"):
        crypto.decrypt(head + ":abc", "t.c", keys)
    with pytest.raises(crypto.CryptoError, match="not an encrypted value"):
        crypto.decrypt("6222020200001234", "t.c", keys)


def test_wrong_or_unknown_key_is_refused() -> None:
    mine = ring(CRM_ENCRYPTION_KEY=b64key(), CRM_BLIND_INDEX_KEY=b64key())
    theirs = ring(CRM_ENCRYPTION_KEY=b64key(), CRM_BLIND_INDEX_KEY=b64key())
    token = crypto.encrypt("secret", "t.c", mine)
    with pytest.raises(crypto.CryptoError, match="unknown key id"):
        crypto.decrypt(token, "t.c", theirs)
    # the right id with another key's bytes (a key file swapped by mistake) fails authentication
    impostor = crypto.Keyring(current=theirs.current, blind=theirs.blind)
    impostor.by_id[mine.current_id] = theirs.current
    with pytest.raises(crypto.CryptoError, match="failed authentication"):
        crypto.decrypt(token, "t.c", impostor)


def test_blind_index_is_keyed_per_purpose_and_normalised() -> None:
    keys = ring(CRM_ENCRYPTION_KEY=b64key(), CRM_BLIND_INDEX_KEY=b64key())
    a = crypto.blind_index("37050219900307123x", "customer.id_number", keys)
    assert a == crypto.blind_index(" 370502 19900307 123X", "customer.id_number", keys)
    assert a != crypto.blind_index("37050219900307123X", "customer.bank_account", keys)
    assert len(a) == 64 and int(a, 16) >= 0
    # the blind-index key is not the encryption key: a new encryption key keeps indexes equal
    other = crypto.Keyring(current=os.urandom(32), blind=keys.blind)
    assert crypto.blind_index("37050219900307123X", "customer.id_number", other) == a


def test_malformed_keys_are_refused() -> None:
    with pytest.raises(crypto.KeyConfigurationError, match="32 bytes"):
        ring(CRM_ENCRYPTION_KEY=base64.b64encode(b"short").decode(), CRM_BLIND_INDEX_KEY=b64key())
    with pytest.raises(crypto.KeyConfigurationError, match="not valid base64"):
        ring(CRM_ENCRYPTION_KEY="not base64!", CRM_BLIND_INDEX_KEY=b64key())


# --- key handling ---------------------------------------------------------------------------------
def test_embedded_default_key_is_generated_once_into_the_configured_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "instance"
    first = ring(CRM_KEY_DIR=str(folder))
    said = capsys.readouterr().err
    assert "generated an encryption key" in said and "BACK THIS FILE UP" in said
    for name in (crypto.KEY_FILE, crypto.BLIND_KEY_FILE):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    second = ring(CRM_KEY_DIR=str(folder))
    assert "generated" not in capsys.readouterr().err  # reused, nothing generated
    assert (second.current, second.blind) == (first.current, first.blind)
    token = crypto.encrypt("x", "t.c", first)
    assert crypto.decrypt(token, "t.c", second) == "x"


def test_an_app_on_sqlite_without_keys_generates_them_into_its_key_dir(tmp_path: Path) -> None:
    config = {
        **TEST_CONFIG,
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/embedded.db",
        "CRM_ENCRYPTION_KEY": "",
        "CRM_BLIND_INDEX_KEY": "",
        "CRM_KEY_DIR": str(tmp_path / "keys"),
    }
    application = create_app(config)
    assert (tmp_path / "keys" / crypto.KEY_FILE).exists()
    assert application.extensions[crypto.EXTENSION].source.endswith(crypto.KEY_FILE)


@pytest.mark.parametrize(
    "uri", ["postgresql+psycopg://keguan@127.0.0.1:1/keguan", "mysql+pymysql://keguan@127.0.0.1:1/keguan"]
)
def test_production_without_a_key_refuses_to_start(tmp_path: Path, uri: str) -> None:
    config = {
        **TEST_CONFIG,
        "SQLALCHEMY_DATABASE_URI": uri,
        "CRM_ENCRYPTION_KEY": "",
        "CRM_BLIND_INDEX_KEY": "",
        "CRM_KEY_DIR": str(tmp_path),
    }
    both = "CRM_ENCRYPTION_KEY and CRM_BLIND_INDEX_KEY must be set"
    with pytest.raises(crypto.KeyConfigurationError, match=both):
        create_app(config)
    assert list(tmp_path.iterdir()) == []  # no key generated for a server database
    with pytest.raises(crypto.KeyConfigurationError, match="CRM_BLIND_INDEX_KEY must be set"):
        create_app({**config, "CRM_ENCRYPTION_KEY": b64key()})


# --- stored encrypted, read as plaintext -------------------------------------------------------
def raw_database_contains(app: Flask, needles: list[str]) -> list[str]:
    """The needles found in what the database stores, read below the application."""
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    db.session.commit()
    if url.get_backend_name() == "sqlite":
        with db.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        path = Path(url.database)
        blob = b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
        return [n for n in needles if n.encode() in blob or n.encode("utf-16-le") in blob]
    found = []
    with db.engine.connect() as connection:
        for table in ("crm_customer", "crm_invoice", "crm_audit_log"):
            columns = [c for (c,) in connection.execute(text(_columns_sql(url.get_backend_name(), table)))]
            for column in columns:
                for (value,) in connection.execute(text(f"SELECT {_quote(url, column)} FROM {table}")):
                    found += [n for n in needles if value is not None and n in str(value)]
    return found


def _columns_sql(backend: str, table: str) -> str:
    schema = "current_schema()" if backend == "postgresql" else "database()"
    return (
        "SELECT column_name FROM information_schema.columns "
        f"WHERE table_schema = {schema} AND table_name = '{table}'"
    )


def _quote(url: Any, column: str) -> str:
    return f"`{column}`" if url.get_backend_name() != "postgresql" else f'"{column}"'


def test_raw_database_holds_no_plaintext(app: Flask, api_as: Any, clean_custom_fields: None) -> None:
    passport = define(api_as, label_zh="护照号", field_type="text", sensitive=True)["api_name"]
    secret = f"E{os.getpid():06d}{next(_serial):04d}"
    id_number, account = valid_id_number(), bank_account()
    created = make_individual(api_as, id_number=id_number, bank_account=account, custom={passport: secret})
    customer = db.session.get(Customer, created["id"])
    assert (customer.id_number, customer.bank_account) == (id_number, account)
    raw = db.session.execute(
        text("SELECT id_number, bank_account, id_number_bidx FROM crm_customer WHERE id = :id"),
        {"id": created["id"]},
    ).one()
    assert raw.id_number.startswith("enc1:") and raw.bank_account.startswith("enc1:")
    assert raw.id_number_bidx == crypto.blind_index(id_number, "customer.id_number")
    # an update is encrypted too, and the audit log keeps no value of it
    client, headers = api_as("admin")
    changed = bank_account()
    url = f"/api/v1/customer/{created['id']}"
    response = client.put(url, json={"bank_account": changed}, headers=headers)
    assert response.status_code == 200, response.json
    assert client.get(url, headers=headers).json["result"]["custom"][passport] == secret
    stored = db.session.execute(text("SELECT custom FROM crm_customer WHERE id = :id"), {"id": created["id"]})
    assert crypto.is_sealed(_json_value(stored.scalar(), passport))
    assert raw_database_contains(app, [id_number, account, changed, secret]) == []


def _json_value(raw: Any, key: str) -> Any:
    return (json.loads(raw) if isinstance(raw, str | bytes) else raw)[key]


def test_rest_show_and_list_screen_give_plaintext(api_as: Any, login_as: Any) -> None:
    id_number, account = valid_id_number(), bank_account()
    spaced = f"{account[:4]} {account[4:]}"
    created = make_individual(api_as, id_number=id_number.lower(), bank_account=spaced)
    client, headers = api_as("admin")
    shown = client.get(f"/api/v1/customer/{created['id']}", headers=headers).json["result"]
    assert shown["id_number"] == id_number  # normalised: upper-case X
    assert shown["bank_account"] == account
    page = login_as("admin").get(f"/customerview/show/{created['id']}").get_data(as_text=True)
    assert id_number in page and "身份证号" in page


# --- exact search through the blind index ----------------------------------------------------------
def test_search_box_finds_an_exact_id_number_or_bank_account(api_as: Any) -> None:
    id_number, account = valid_id_number("19951122"), bank_account()
    created = make_individual(api_as, id_number=id_number, bank_account=account)
    for query in (id_number, id_number.lower(), account, f"{account[:4]} {account[4:8]} {account[8:]}"):
        hits = search(db.session, user("admin"), query)
        assert [h.id for h in hits if h.kind == "customer"] == [created["id"]], query
    # no substring search on encrypted values
    assert created["id"] not in [h.id for h in search(db.session, user("admin"), id_number[:10])]


def test_rest_and_list_filter_by_exact_id_number(api_as: Any, login_as: Any) -> None:
    id_number = valid_id_number("19930101")
    created = make_individual(api_as, id_number=id_number)
    make_individual(api_as, id_number=valid_id_number("19930101"))
    client, headers = api_as("admin")
    query = json.dumps({"filters": [{"col": "id_number", "opr": "exact", "value": id_number.lower()}]})
    response = client.get(f"/api/v1/customer/?q={query}", headers=headers)
    assert response.status_code == 200, response.json
    assert [row["id"] for row in response.json["result"]] == [created["id"]]
    # LIKE on an encrypted column is not offered
    for opr in ("ct", "sw", "eq"):
        bad = json.dumps({"filters": [{"col": "id_number", "opr": opr, "value": id_number[:6]}]})
        assert client.get(f"/api/v1/customer/?q={bad}", headers=headers).status_code == 400, opr
    info = client.get("/api/v1/customer/_info?q=" + json.dumps({"keys": ["filters"]}), headers=headers).json
    assert [f["operator"] for f in info["filters"]["id_number"]] == ["exact"]
    page = login_as("admin").get(f"/customerview/list/?_flt_0_id_number={id_number}").get_data(as_text=True)
    assert f"/customerview/show/{created['id']}" in page


def test_duplicate_id_number_is_refused_through_the_blind_index(api_as: Any) -> None:
    id_number = valid_id_number("19920815")
    first = make_individual(api_as, id_number=id_number)
    client, headers = api_as("admin")
    before = customer_count()
    body = {"name": unique_name("重复"), "kind": "individual", "id_number": id_number.lower()}
    response = client.post("/api/v1/customer/", json=body, headers=headers)
    assert response.status_code == 400, response.json
    message = " ".join(response.json["message"]["id_number"])
    assert "身份证号" in message and "已存在" in message and str(first["id"]) in message
    assert customer_count() == before


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("370502199003071230", "校验位"),  # wrong check digit (the right one is computed below)
        ("37050219900307123", "18 位"),  # too short
        ("3705021990030712345", "18 位"),  # too long
        ("37050219901307123X", "出生日期"),  # month 13
    ],
)
def test_bad_id_number_is_refused_and_nothing_written(api_as: Any, value: str, message: str) -> None:
    if message == "校验位" and ric.calc_check_digit(value) == value[17]:
        value = value[:17] + ("1" if value[17] != "1" else "2")
    client, headers = api_as("admin")
    before = customer_count()
    body = {"name": unique_name("坏身份证"), "kind": "individual", "id_number": value}
    response = client.post("/api/v1/customer/", json=body, headers=headers)
    assert response.status_code == 400, response.json
    assert message in " ".join(response.json["message"]["id_number"])
    assert customer_count() == before


def test_a_company_has_no_id_number(api_as: Any) -> None:
    client, headers = api_as("admin")
    before = customer_count()
    body = {"name": unique_name("企业"), "kind": "company", "id_number": valid_id_number()}
    response = client.post("/api/v1/customer/", json=body, headers=headers)
    assert response.status_code == 400
    assert "个人客户" in " ".join(response.json["message"]["id_number"])
    assert customer_count() == before


def test_bad_id_number_in_the_form_is_shown_and_nothing_written(login_as: Any) -> None:
    before = customer_count()
    page = login_as("admin").post(
        "/customerview/add",
        data={"name": unique_name("表单"), "kind": "individual", "id_number": "12345", "level": "normal",
              "status": "prospect"},
    )
    assert page.status_code == 200
    assert "身份证号应为 18 位" in page.get_data(as_text=True)
    assert customer_count() == before


# --- rotation -------------------------------------------------------------------------------------
def test_rotate_key_re_encrypts_everything_and_all_still_reads(app: Flask, api_as: Any) -> None:
    id_number, account = valid_id_number("19980808"), bank_account()
    created = make_individual(api_as, id_number=id_number, bank_account=account)
    old_key, old_id = app.config["CRM_ENCRYPTION_KEY"], crypto.keyring().current_id
    new = b64key()
    app.config.update(CRM_ENCRYPTION_KEY=new, CRM_ENCRYPTION_KEYS=old_key)
    crypto.reload_keys(app)
    new_id = crypto.keyring().current_id
    assert new_id != old_id
    db.session.expire_all()
    assert db.session.get(Customer, created["id"]).id_number == id_number  # old key still read

    result = app.test_cli_runner().invoke(args=["crm", "rotate-key", "--batch", "2"])
    assert result.exit_code == 0, result.output
    assert "crm_customer.id_number:" in result.output and "crm_customer.bank_account:" in result.output
    stale = db.session.execute(
        text("SELECT count(*) FROM crm_customer WHERE id_number NOT LIKE :p OR bank_account NOT LIKE :p"),
        {"p": f"enc1:{new_id}:%"},
    ).scalar()
    assert stale == 0
    rotations = select(AuditLog).where(AuditLog.action == "key_rotation")
    event = db.session.scalar(rotations.order_by(AuditLog.id.desc()))
    assert event is not None and new_id in str(event.details)

    # the old key is no longer needed; everything reads, the blind index still finds
    app.config.update(CRM_ENCRYPTION_KEYS="")
    crypto.reload_keys(app)
    db.session.expire_all()
    customer = db.session.get(Customer, created["id"])
    assert (customer.id_number, customer.bank_account) == (id_number, account)
    assert [h.id for h in search(db.session, user("admin"), id_number)] == [created["id"]]
    # a second run has nothing left to do
    again = app.test_cli_runner().invoke(args=["crm", "rotate-key"])
    assert again.exit_code == 0 and "done: 0 values" in again.output


# --- sensitive custom fields ------------------------------------------------------------------------
def test_sensitive_custom_field_reads_plain_and_filters_only_exactly(
    api_as: Any, login_as: Any, clean_custom_fields: None
) -> None:
    name = define(api_as, label_zh="社保号", field_type="text", sensitive=True, indexed=True)["api_name"]
    secret = f"SB{os.getpid():06d}{next(_serial):04d}"
    response = create_customer(api_as, "admin", **{name: secret})
    assert response.status_code == 201, response.json
    created = response.json["id"]
    create_customer(api_as, "admin", **{name: secret + "9"})
    client, headers = api_as("admin")
    assert client.get(f"/api/v1/customer/{created}", headers=headers).json["result"]["custom"][name] == secret
    exact = json.dumps({"filters": [{"col": f"custom.{name}", "opr": "eq", "value": secret.lower()}]})
    found = client.get(f"/api/v1/customer/?q={exact}", headers=headers)
    assert found.status_code == 200, found.json
    assert [row["id"] for row in found.json["result"]] == [created]
    for opr in ("ct", "sw"):
        bad = json.dumps({"filters": [{"col": f"custom.{name}", "opr": opr, "value": secret[:4]}]})
        refused = client.get(f"/api/v1/customer/?q={bad}", headers=headers)
        assert refused.status_code == 400, (opr, refused.json)
    ordered = json.dumps({"order_column": f"custom.{name}", "order_direction": "asc"})
    assert client.get(f"/api/v1/customer/?q={ordered}", headers=headers).status_code == 400
    # the search box finds the whole value through the blind index, not a part of it
    assert created in [h.id for h in search(db.session, user("admin"), secret)]
    assert created not in [h.id for h in search(db.session, user("admin"), secret[:5])]
    # an update keeps it sealed, and the record reads back in plaintext
    edited = client.put(f"/api/v1/customer/{created}", json={"custom": {name: secret + "X"}}, headers=headers)
    assert edited.status_code == 200, edited.json
    db.session.expire_all()
    assert db.session.get(Customer, created).custom[name] == secret + "X"


def test_sensitive_flag_rules(api_as: Any, clean_custom_fields: None) -> None:
    client, headers = api_as("admin")
    body = {
        "entity": "customer", "label_zh": "金额", "api_name": f"amt{os.getpid()}", "field_type": "decimal",
        "sensitive": True,
    }
    response = client.post("/api/v1/customfield/", json=body, headers=headers)
    assert response.status_code == 400
    assert "加密存储" in " ".join(response.json["message"]["sensitive"])
    unique = {**body, "field_type": "text", "unique": True, "api_name": f"uq{os.getpid()}"}
    response = client.post("/api/v1/customfield/", json=unique, headers=headers)
    assert response.status_code == 400 and "unique" in response.json["message"]
    made = define(api_as, label_zh="普通", field_type="text")
    response = client.put(f"/api/v1/customfield/{made['id']}", json={"sensitive": True}, headers=headers)
    assert response.status_code == 400
    assert "创建字段时" in " ".join(response.json["message"]["sensitive"])


def test_rotation_covers_sensitive_custom_values(app: Flask, api_as: Any, clean_custom_fields: None) -> None:
    name = define(api_as, label_zh="证件", field_type="text", sensitive=True)["api_name"]
    secret = f"ZJ{os.getpid():06d}{next(_serial):04d}"
    created = create_customer(api_as, "admin", **{name: secret}).json["id"]
    old_key = app.config["CRM_ENCRYPTION_KEY"]
    app.config.update(CRM_ENCRYPTION_KEY=b64key(), CRM_ENCRYPTION_KEYS=old_key)
    new_id = crypto.reload_keys(app).current_id
    result = app.test_cli_runner().invoke(args=["crm", "rotate-key"])
    assert result.exit_code == 0, result.output
    assert f"crm_customer.custom.{name}: 1 re-encrypted" in result.output
    app.config.update(CRM_ENCRYPTION_KEYS="")
    crypto.reload_keys(app)
    db.session.expire_all()
    raw = db.session.execute(text("SELECT custom FROM crm_customer WHERE id = :id"), {"id": created}).scalar()
    assert f"enc1:{new_id}:" in _json_value(raw, name)
    assert db.session.get(Customer, created).custom[name] == secret
    client, headers = api_as("admin")
    exact = json.dumps({"filters": [{"col": f"custom.{name}", "opr": "eq", "value": secret}]})
    found = client.get(f"/api/v1/customer/?q={exact}", headers=headers).json["result"]
    assert [r["id"] for r in found] == [created]


def test_reindex_applies_a_new_blind_index_key(app: Flask, api_as: Any) -> None:
    id_number = valid_id_number("19970505")
    created = make_individual(api_as, id_number=id_number)
    old_blind = app.config["CRM_BLIND_INDEX_KEY"]
    app.config.update(CRM_BLIND_INDEX_KEY=b64key())
    crypto.reload_keys(app)
    try:
        assert created["id"] not in [h.id for h in search(db.session, user("admin"), id_number)]
        result = app.test_cli_runner().invoke(args=["crm", "rotate-key", "--reindex"])
        assert result.exit_code == 0, result.output
        assert [h.id for h in search(db.session, user("admin"), id_number)] == [created["id"]]
    finally:  # the other tests' customers were re-indexed too: index them back under the old key
        app.config.update(CRM_BLIND_INDEX_KEY=old_blind)
        crypto.reload_keys(app)
        assert app.test_cli_runner().invoke(args=["crm", "rotate-key", "--reindex"]).exit_code == 0


# --- the migration keeps the data ---------------------------------------------------------------------
def test_migration_encrypts_existing_bank_accounts_and_downgrade_decrypts(tmp_path: Path) -> None:
    """On a database of its own (SQLite): plaintext written before the migration is encrypted by it,
    with its blind index, and the downgrade gives the plaintext back."""
    from flask_migrate import downgrade, upgrade

    config = {**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/migrate.db"}
    application = create_app(config)
    account = "6222020200001234"
    with application.app_context():
        upgrade(revision="b2c3e5ec0002")
        db.session.execute(
            text(
                "INSERT INTO crm_customer (kind, name, level, status, locked, bank_account, created_at, "
                "updated_at) VALUES ('company', '迁移客户', 'normal', 'prospect', 0, :account, "
                "'2026-01-01', '2026-01-01')"
            ),
            {"account": account},
        )
        db.session.commit()
        upgrade(revision="c3e2c7a00003")
        row = db.session.execute(text("SELECT bank_account, bank_account_bidx FROM crm_customer")).one()
        assert row.bank_account.startswith("enc1:") and account not in row.bank_account
        assert crypto.decrypt(row.bank_account, "crm_customer.bank_account") == account
        assert row.bank_account_bidx == crypto.blind_index(account, "customer.bank_account")
        downgrade(revision="b2c3e5ec0002")
        assert db.session.execute(text("SELECT bank_account FROM crm_customer")).scalar() == account
        db.session.remove()
