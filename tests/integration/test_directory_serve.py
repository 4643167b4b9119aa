"""End to end: `vpbx directory sync` from a real slapd creates SIP accounts a phone can
register with on a running `vpbx serve`; disabling the person in the directory and
syncing again stops the phone registering (no restart); a failed sync exits non-zero."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ldap3
import pytest
import sqlalchemy as sa
from slapd import GROUPS, PEOPLE, SERVICE_DN, SERVICE_PASSWORD, USER_PASSWORD, Slapd, people_ldif, user_dn
from vpbx_server import ROOT, VpbxServer, vpbx_env

from vpbx.sip import DigestClient, Response, parse_message
from vpbx.store.schema import sip_accounts, users

TIMEOUT = 30.0


@pytest.fixture
def ldap(tmp_path: Path) -> Iterator[Slapd]:
    ldif, _ = people_ldif(1100)
    with Slapd.start(tmp_path / "slapd", ldif) as server:
        yield server


def write_config(path: Path, ldap: Slapd, data_dir: Path) -> None:
    path.write_text(
        f"""
[serve]
data_dir = "{data_dir}"
[directory]
url = ["{ldap.ldap_url}"]
start_tls = true
ca_file = "{ldap.ca_file}"
bind_dn = "{SERVICE_DN}"
bind_password_env = "TEST_LDAP_PASSWORD"
base_dn = "{PEOPLE}"
user_filter = "(objectClass=user)"
extension_range = "10000-19999"
[directory.roles]
admin = "cn=admins,{GROUPS}"
""",
        encoding="utf-8",
    )


def cli(config: Path, *args: str, password: str = SERVICE_PASSWORD) -> subprocess.CompletedProcess[str]:
    env = dict(vpbx_env(), TEST_LDAP_PASSWORD=password)
    return subprocess.run(
        [sys.executable, "-m", "vpbx", "--config", str(config), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def account_of(data_dir: Path, n: int) -> tuple[str, str]:
    """(username, generated password) of user n, read from the store."""
    engine = sa.create_engine(f"sqlite:///{data_dir / 'vpbx.db'}")
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.select(sip_accounts.c.username, sip_accounts.c.secret)
                .join(users, users.c.id == sip_accounts.c.user_id)
                .where(users.c.directory_dn == user_dn(n))
            ).one()
            return str(row[0]), str(row[1])
    finally:
        engine.dispose()


def register(target: tuple[str, int], username: str, password: str) -> int:
    """REGISTER with a Contact, answering one digest challenge; the final status code."""
    client = DigestClient(username, password)
    call_id = uuid.uuid4().hex
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

        def request(cseq: int) -> bytes:
            text = (
                f"REGISTER sip:{target[0]}:{target[1]} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{uuid.uuid4().hex};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:{username}@{target[0]}>;tag=t{cseq}\r\n"
                f"To: <sip:{username}@{target[0]}>\r\n"
                f"Call-ID: {call_id}\r\n"
                f"CSeq: {cseq} REGISTER\r\n"
                f"Contact: <sip:{username}@127.0.0.1:{port}>\r\n"
                "Expires: 600\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            msg = parse_message(text.encode())
            if cseq > 1:
                client.authorize(msg)  # type: ignore[arg-type]
            return bytes(msg)

        sock.sendto(request(1), target)
        challenge = parse_message(sock.recv(65535))
        assert isinstance(challenge, Response)
        if challenge.status != 401 or not client.on_challenge(challenge):
            return challenge.status
        sock.sendto(request(2), target)
        reply = parse_message(sock.recv(65535))
        assert isinstance(reply, Response)
        return reply.status


def test_synced_phone_registers_until_disabled(ldap: Slapd, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    config = tmp_path / "vpbx.toml"
    write_config(config, ldap, data_dir)

    refused = cli(config, "directory", "sync", password="wrong")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "bind" in refused.stderr and "nothing was changed" in refused.stderr

    done = cli(config, "directory", "sync")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "created" in done.stdout
    username, password = account_of(data_dir, 21)

    args = [
        "--data-dir",
        str(data_dir),
        "serve",
        "--sip-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
    ]
    server = VpbxServer([*args, "--md5-only", "--trusted", "127.0.0.0/8"], timeout=TIMEOUT).start()
    try:
        assert register(server.sip, username, password) == 200
        assert register(server.sip, username, "not-the-password") != 200

        admin = ldap.admin()
        admin.modify(user_dn(21), {"userAccountControl": [(ldap3.MODIFY_REPLACE, ["514"])]})
        admin.unbind()
        synced = cli(config, "directory", "sync")
        assert synced.returncode == 0, synced.stdout + synced.stderr
        deadline = time.monotonic() + 5.0  # the server reloads credentials about every second
        status = 200
        while time.monotonic() < deadline:
            status = register(server.sip, username, password)
            if status != 200:
                break
            time.sleep(0.3)
        assert status in {401, 403}, status
        runs = cli(config, "directory", "runs")
        assert runs.returncode == 0 and "failed" in runs.stdout and "ok" in runs.stdout
    finally:
        server.stop()


def test_sync_without_directory_config_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "vpbx.toml"
    config.write_text(f'[serve]\ndata_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    result = cli(config, "directory", "sync")
    assert result.returncode == 2 and "no directory configured" in result.stderr
    assert os.path.exists(tmp_path / "data") is False  # nothing was created


def http(server: VpbxServer, method: str, path: str, body: object = None, token: str = "") -> tuple[int, Any]:
    assert server.http is not None
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://{server.http[0]}:{server.http[1]}{path}", data=data, method=method
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as reply:
            raw = reply.read()
            status = reply.status
    except urllib.error.HTTPError as err:
        raw, status = err.read(), err.code
    text = raw.decode()
    return status, json.loads(text) if text.startswith(("{", "[")) else text


def test_serve_syncs_and_logs_directory_users_in(
    ldap: Slapd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`vpbx serve --config` with a [directory] table: the periodic sync runs at start and its
    figures reach /metrics; directory users log in to the API with their directory password
    and get the role of their group; an admin runs a dry-run sync through the API."""
    data_dir = tmp_path / "data"
    config = tmp_path / "vpbx.toml"
    write_config(config, ldap, data_dir)
    monkeypatch.setenv("TEST_LDAP_PASSWORD", SERVICE_PASSWORD)
    args = ["--config", str(config), "serve", "--sip-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]
    server = VpbxServer(args, timeout=TIMEOUT).start()
    try:
        deadline = time.monotonic() + TIMEOUT
        metrics = ""
        while time.monotonic() < deadline and "vpbx_directory_last_success_timestamp_seconds" not in metrics:
            time.sleep(0.3)
            metrics = str(http(server, "GET", "/metrics")[1])
        assert "vpbx_directory_last_success_timestamp_seconds" in metrics, metrics[-2000:]
        assert re.search(r"^vpbx_directory_entries_seen (\d+)", metrics, re.M)

        status, reply = http(
            server, "POST", "/api/v1/auth/login", {"login": "user00001", "password": USER_PASSWORD}
        )
        assert status == 200, reply
        token = reply["token"]
        status, me = http(server, "GET", "/api/v1/me", token=token)
        assert status == 200 and "admin" in me["roles"], me
        status, report = http(server, "POST", "/api/v1/directory/sync?dry_run=true", token=token)
        assert status == 200 and report["dry_run"] is True and report["status"] == "ok", report
        assert report["seen"] > 1000

        wrong = http(server, "POST", "/api/v1/auth/login", {"login": "user00001", "password": "nope"})
        disabled = http(
            server, "POST", "/api/v1/auth/login", {"login": "user00005", "password": USER_PASSWORD}
        )
        assert wrong[0] == disabled[0] == 401 and wrong[1] == disabled[1]
        status, reply = http(
            server, "POST", "/api/v1/auth/login", {"login": "user00004", "password": USER_PASSWORD}
        )
        assert status == 200, reply
        status, _ = http(server, "POST", "/api/v1/directory/sync", token=reply["token"])  # an employee
        assert status == 403
    finally:
        server.stop()
