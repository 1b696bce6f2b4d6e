"""Backups: `flask crm backup` / `flask crm restore` round trip, no plaintext in the file,
tampering and wrong keys refused before anything is written, retention, the worker's job.

The restore target is a second database: a fresh SQLite file, or TEST_DATABASE_URL's database
name with "2" appended on PostgreSQL and MariaDB (keguan_h_backup -> keguan_h_backup2).
"""

from __future__ import annotations

import base64
import gzip
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, inspect, select
from sqlalchemy.engine import make_url

from app import audit, backup, crypto, worker
from app.extensions import db
from models.customers import Customer
from tests.conftest import TEST_CONFIG, _reset_database
from tests.test_encryption import make_individual, valid_id_number


def _second_url(database_url: str) -> str:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite:///{tempfile.mkdtemp(prefix='keguan-restore-')}/restored.db"
    return url.set(database=f"{url.database}2").render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def made(app: Flask, api_as: Any) -> dict[str, Any]:
    """A known individual customer, then a backup of the whole test database."""
    id_number = valid_id_number()
    created = make_individual(api_as, id_number=id_number)
    folder = tempfile.mkdtemp(prefix="keguan-backups-")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["crm", "backup", "--to", folder])
    assert result.exit_code == 0, result.output
    (path,) = Path(folder).glob("keguan-*.kgbak")
    return {"path": path, "id": created["id"], "id_number": id_number}


@pytest.fixture(scope="module")
def api_as(app: Flask):  # module-scoped twin of conftest's, for the module fixture above
    from tests.conftest import token_for

    def _api(username: str) -> tuple[Any, dict[str, str]]:
        client = app.test_client()
        return client, token_for(client, username)

    return _api


@pytest.fixture()
def target(database_url: str) -> Iterator[Flask]:
    """An app on an empty second database (no schema: restore migrates it)."""
    from app import create_app

    url = _second_url(database_url)
    _reset_database(url)
    application = create_app({**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": url})
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def _customer_name(app: Flask, customer_id: int) -> str:
    return db.session.get(Customer, customer_id).name


def test_round_trip_restores_every_row_and_a_verifiable_audit_chain(
    app: Flask, made: dict, target: Flask
) -> None:
    header = backup.read_header(made["path"])[0]
    assert header["dialect"] == db.engine.dialect.name
    assert header["tables"]["crm_customer"] >= 1 and header["tables"]["crm_audit_log"] >= 1
    name = _customer_name(app, made["id"])
    with target.app_context():
        result = target.test_cli_runner().invoke(args=["crm", "restore", str(made["path"])])
        assert result.exit_code == 0, result.output
        assert "audit chain verified" in result.output
        # the same rows, read back from the restored database
        tables, _late = backup.ordered_tables()
        counts = {t.name: db.session.scalar(select(func.count()).select_from(t)) for t in tables}
        assert counts == header["tables"]
        customer = db.session.get(Customer, made["id"])
        assert (customer.name, customer.id_number) == (name, made["id_number"])  # still decrypts
        # exact search through the blind index still finds it
        index = crypto.blind_index(made["id_number"], "customer.id_number")
        assert db.session.scalar(select(Customer.id).where(Customer.id_number_bidx == index)) == made["id"]
        assert audit.verify(db.session).ok
        # the restored database goes on: new ids after the restored ones, audited as usual
        db.session.rollback()
        db.session.add(Customer(name="恢复后新客户", kind=customer.kind, owner_id=customer.owner_id,
                                department_id=customer.department_id))  # fmt: skip
        db.session.commit()
        assert audit.verify(db.session).checked == header["audit_head"]["last_id"] + 1


def test_a_non_empty_target_is_refused_unless_yes(made: dict, target: Flask) -> None:
    with target.app_context():
        runner = target.test_cli_runner()
        assert runner.invoke(args=["crm", "restore", str(made["path"])]).exit_code == 0
        again = runner.invoke(args=["crm", "restore", str(made["path"])])
        assert again.exit_code != 0 and "not empty" in again.output
        wiped = runner.invoke(args=["crm", "restore", str(made["path"]), "--yes"])
        assert wiped.exit_code == 0, wiped.output
        assert audit.verify(db.session).ok


def test_the_file_holds_no_plaintext(app: Flask, made: dict) -> None:
    data = made["path"].read_bytes()
    assert data.startswith(backup.MAGIC)
    for needle in (_customer_name(app, made["id"]), made["id_number"], "admin@", "crm_customer\", \"columns"):
        assert needle.encode() not in data
    body = data[backup.read_header(made["path"])[2]:]
    with pytest.raises(OSError):
        gzip.decompress(body)  # compressed, then encrypted: not readable without the key
    assert os.stat(made["path"]).st_mode & 0o077 == 0  # owner only


@pytest.mark.parametrize("where", ["body", "header", "truncated"])
def test_a_tampered_file_is_refused_before_anything_is_written(
    made: dict, target: Flask, tmp_path: Path, where: str
) -> None:
    data = bytearray(made["path"].read_bytes())
    start = backup.read_header(made["path"])[2]
    if where == "body":
        data[start + (len(data) - start) // 2] ^= 0x01
    elif where == "header":
        data[start - 3] = ord("X") if data[start - 3] != ord("X") else ord("Y")
    else:
        del data[len(data) - 40 :]
    bad = tmp_path / "bad.kgbak"
    bad.write_bytes(bytes(data))
    with target.app_context():
        result = target.test_cli_runner().invoke(args=["crm", "restore", str(bad)])
        assert result.exit_code != 0
        assert "altered" in result.output or "truncated" in result.output or "damaged" in result.output
        assert "Traceback" not in result.output
        assert not inspect(db.engine).has_table("crm_customer")  # not even migrated


def test_another_key_cannot_open_it(made: dict) -> None:
    other = base64.b64encode(os.urandom(32)).decode()
    ring = crypto.load_keyring({"CRM_ENCRYPTION_KEY": other, "CRM_BLIND_INDEX_KEY": other})
    with pytest.raises(backup.BackupError, match="key id"):
        backup.check(made["path"], ring)
    # the same key id but other key material (a forged header cannot help either)
    ring.by_id[crypto.key_id_of(crypto.keyring().current)] = ring.current
    with pytest.raises(backup.BackupError, match="altered|key"):
        backup.check(made["path"], ring)


def test_not_a_backup_is_refused(target: Flask, tmp_path: Path) -> None:
    junk = tmp_path / "junk.kgbak"
    junk.write_bytes(b"hello, not a backup")
    with target.app_context():
        result = target.test_cli_runner().invoke(args=["crm", "restore", str(junk)])
        assert result.exit_code != 0 and "not a KeGuan backup" in result.output


def test_retention_keeps_the_newest(tmp_path: Path) -> None:
    names = [f"keguan-2026110{day}-040000-000000.kgbak" for day in range(1, 6)]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not a backup")
    removed = backup.prune(tmp_path, 2)
    assert sorted(p.name for p in removed) == names[:3]
    assert sorted(p.name for p in tmp_path.iterdir()) == [*names[3:], "notes.txt"]


def test_the_worker_job_writes_a_backup_and_keeps_the_newest(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "CRM_BACKUP_DIR", str(tmp_path))
    monkeypatch.setitem(app.config, "CRM_BACKUP_KEEP", 2)
    monkeypatch.setattr(worker, "_app", app)
    old = [tmp_path / f"keguan-2020010{day}-040000-000000.kgbak" for day in (1, 2)]
    for path in old:
        path.write_bytes(b"old")
    spec = next(spec for spec in worker.JOBS if spec.id == "backup")
    result = spec.func()
    assert "1 old backups removed" in result
    files = sorted(tmp_path.glob("keguan-*.kgbak"))
    assert files[0] == old[1] and len(files) == 2
    assert backup.check(files[1])["tables"]["ab_user"] >= 1
