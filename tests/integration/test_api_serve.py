"""The API as `vpbx serve` ships it: HTTPS on the HTTP listener (a self-signed test
certificate), a token made with `vpbx token create`, a local user logging in with the
password given to `vpbx user add`, and `vpbx token revoke` taking effect at once."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vpbx_server import ROOT, VpbxServer, vpbx_env

TIMEOUT = 20.0


def cli(data_dir: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "vpbx", "--data-dir", str(data_dir), *args],
        env=vpbx_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    return done.stdout


def self_signed(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        [
            *(
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
            ),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=TIMEOUT,
    )
    return cert, key


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[VpbxServer, Path, ssl.SSLContext]]:
    data = tmp_path / "data"
    cert, key = self_signed(tmp_path)
    config = tmp_path / "vpbx.toml"
    config.write_text(f'[serve]\nhttp_tls_cert = "{cert}"\nhttp_tls_key = "{key}"\n')
    cli(data, "user", "add", "1001", "--password", "s3cret", "--name", "Anna")
    args = ["serve", "--config", str(config), "--data-dir", str(data)]
    args += ["--sip-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]
    proc = VpbxServer(args, timeout=TIMEOUT)
    try:
        yield proc.start(), data, ssl.create_default_context(cafile=str(cert))
    finally:
        proc.stop()


def call(
    base: str, tls: ssl.SSLContext, method: str, path: str, *, token: str | None = None, body: Any = None
) -> tuple[int, Any]:
    req = urllib.request.Request(
        base + path, method=method, data=None if body is None else json.dumps(body).encode()
    )
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT, context=tls) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_https_tokens_and_login(server: tuple[VpbxServer, Path, ssl.SSLContext]) -> None:
    proc, data, tls = server
    assert proc.http is not None
    base = f"https://{proc.http[0]}:{proc.http[1]}"
    admin = cli(data, "token", "create", "--role", "admin").strip().splitlines()[-1]
    status, doc = call(base, tls, "GET", "/api/v1/users", token=admin)
    assert status == 200 and [u["name"] for u in doc["items"]] == ["Anna"]

    status, doc = call(base, tls, "POST", "/api/v1/auth/login", body={"login": "1001", "password": "s3cret"})
    assert status == 200 and doc["extension"] == "1001"
    session = doc["token"]
    status, doc = call(base, tls, "GET", "/api/v1/users/1001/sip-credentials", token=session)
    assert status == 200 and doc["username"] == "1001" and doc["server"] == "127.0.0.1:" + str(proc.sip[1])
    assert call(base, tls, "GET", "/api/v1/billing/summary", token=session)[0] == 403
    assert call(base, tls, "POST", "/api/v1/auth/login", body={"login": "1001", "password": "nope"})[0] == 401

    token_id = call(base, tls, "GET", "/api/v1/me", token=admin)[1]["token_id"]
    cli(data, "token", "revoke", str(token_id))
    assert call(base, tls, "GET", "/api/v1/me", token=admin)[0] == 401
    # plain HTTP to the HTTPS port gets nowhere
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://{proc.http[0]}:{proc.http[1]}/health", timeout=TIMEOUT)
