"""Transport: `run.py --cert --key` serves HTTPS with HSTS and secure cookies; every response carries
the security headers; behind a proxy (CRM_PROXIES) the client's address and scheme are the real ones."""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import request

from app import create_app
from tests.conftest import TEST_CONFIG

ROOT = Path(__file__).resolve().parent.parent


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 (as `openssl req -x509` would make)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_py(database_url: str, instance: Path, *args: str) -> subprocess.Popen[str]:
    keys = {name: TEST_CONFIG[name] for name in ("CRM_ENCRYPTION_KEY", "CRM_BLIND_INDEX_KEY")}
    env = {**os.environ, **keys, "DATABASE_URL": database_url, "CRM_INSTANCE_DIR": str(instance)}
    return subprocess.Popen(
        [sys.executable, "run.py", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture()
def https_server(database_url: str, tmp_path: Path) -> Iterator[str]:
    cert, key = self_signed(tmp_path)
    port = free_port()
    server = run_py(database_url, tmp_path, "--port", str(port), "--cert", str(cert), "--key", str(key))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                time.sleep(0.2)
        yield f"https://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_run_py_serves_https_with_hsts_and_secure_cookies(https_server: str) -> None:
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE  # our own throwaway certificate
    with urllib.request.urlopen(f"{https_server}/login/", context=insecure, timeout=30) as response:
        assert response.status == 200
        headers = response.headers
        assert headers["Strict-Transport-Security"].startswith("max-age=")
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        cookies = headers.get_all("Set-Cookie") or []
        assert cookies and all("Secure" in cookie and "HttpOnly" in cookie for cookie in cookies)


def test_run_py_wants_both_cert_and_key(database_url: str, tmp_path: Path) -> None:
    cert, _key = self_signed(tmp_path)
    refused = run_py(database_url, tmp_path, "--cert", str(cert))
    output, _ = refused.communicate(timeout=60)
    assert refused.returncode == 2
    assert "--cert and --key go together" in output


def test_plain_http_has_the_headers_but_no_hsts(client) -> None:
    response = client.get("/login/")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    policy = response.headers["Content-Security-Policy"]
    for directive in ("script-src 'self'", "object-src 'none'", "frame-ancestors 'self'"):
        assert directive in policy
    assert "https:" not in policy  # no outside origin is allowed to serve scripts or styles
    assert "Strict-Transport-Security" not in response.headers


def test_behind_a_proxy_the_forwarded_scheme_and_address_count(database_url: str) -> None:
    app = create_app({**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": database_url, "CRM_PROXIES": 1})
    seen: dict[str, object] = {}

    @app.get("/_probe")
    def probe() -> str:
        seen.update(addr=request.remote_addr, secure=request.is_secure)
        return "ok"

    forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    response = app.test_client().get("/_probe", headers=forwarded)
    assert seen == {"addr": "203.0.113.7", "secure": True}
    assert "Strict-Transport-Security" in response.headers
    # without CRM_PROXIES the same headers are not trusted
    plain = create_app({**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": database_url})
    assert "Strict-Transport-Security" not in plain.test_client().get("/login/", headers=forwarded).headers
