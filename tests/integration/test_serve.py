"""`vpbx serve` with its database: a user added with the CLI while the server runs can
register (SIPp, digest auth) without a restart; after a restart (SIGTERM, start again on
the same data dir) the binding is still there (a REGISTER without Contact lists it,
RFC 3261 §10.2.3); /health and /metrics answer."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from media_node_proc import free_port
from vpbx_server import ROOT, VpbxServer, sipp_binary, vpbx_env

from vpbx.sip import DigestClient, Response, parse_message

SCENARIO = Path(__file__).parent / "sipp" / "register_auth.xml"
USER, PASSWORD = "3001", "pw-3001"
TIMEOUT = 30.0


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "vpbx", "--data-dir", str(data_dir), *args]
    return subprocess.run(
        cmd, env=vpbx_env(), cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def serve_args(data_dir: Path) -> list[str]:
    return ["--data-dir", str(data_dir), "serve", "--sip-listen", "127.0.0.1:0"]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def servers() -> Iterator[list[VpbxServer]]:
    """Servers a test starts; all stopped at teardown."""
    started: list[VpbxServer] = []
    yield started
    for s in started:
        s.stop()


def start(servers: list[VpbxServer], data_dir: Path) -> VpbxServer:
    # trusted: the retries while the new account is not yet loaded must not get us banned
    args = [*serve_args(data_dir), "--http-listen", "127.0.0.1:0", "--md5-only", "--trusted", "127.0.0.0/8"]
    server = VpbxServer(args, timeout=TIMEOUT)
    servers.append(server)
    return server.start()


def sipp_register(target: tuple[str, int], cwd: Path) -> tuple[int, str]:
    cmd = [sipp_binary(), f"{target[0]}:{target[1]}", "-sf", str(SCENARIO), "-s", USER]
    cmd += [
        "-au",
        USER,
        "-ap",
        PASSWORD,
        "-i",
        "127.0.0.1",
        "-p",
        str(free_port(socket.SOCK_DGRAM)),
        "-m",
        "1",
    ]
    cmd += ["-nostdin", "-timeout", "10", "-timeout_error"]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd)
    return proc.returncode, proc.stdout + proc.stderr


def register_query(target: tuple[str, int]) -> Response:
    """A REGISTER without Contact (a query, §10.2.3), answering the digest challenge."""
    call_id = uuid.uuid4().hex
    client = DigestClient(USER, PASSWORD)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

        def request(cseq: int) -> bytes:
            text = (
                f"REGISTER sip:{target[0]}:{target[1]} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{uuid.uuid4().hex};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:{USER}@{target[0]}>;tag=q{cseq}\r\n"
                f"To: <sip:{USER}@{target[0]}>\r\n"
                f"Call-ID: {call_id}\r\n"
                f"CSeq: {cseq} REGISTER\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            msg = parse_message(text.encode())
            if cseq > 1:
                client.authorize(msg)  # type: ignore[arg-type]
            return bytes(msg)

        sock.sendto(request(1), target)
        challenge = parse_message(sock.recv(65535))
        assert isinstance(challenge, Response) and challenge.status == 401, challenge
        assert client.on_challenge(challenge), client.error
        sock.sendto(request(2), target)
        reply = parse_message(sock.recv(65535))
        assert isinstance(reply, Response)
        return reply


def http_get(address: tuple[str, int], path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://{address[0]}:{address[1]}{path}", timeout=5) as r:
        return r.status, r.read().decode()


def test_cli_user_added_while_running_registers_and_survives_restart(
    data_dir: Path, servers: list[VpbxServer], tmp_path: Path
) -> None:
    server = start(servers, data_dir)
    # unknown user: SIPp fails (401 again, no 200)
    code, out = sipp_register(server.sip, tmp_path)
    assert code != 0, out[-2000:]

    added = cli(data_dir, "user", "add", USER, "--password", PASSWORD, "--name", "Test User")
    assert added.returncode == 0, added.stderr
    deadline = time.monotonic() + 5.0  # the server looks for changes every second
    while True:
        code, out = sipp_register(server.sip, tmp_path)
        if code == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert code == 0, out[-3000:]

    assert server.http is not None
    status, body = http_get(server.http, "/metrics")
    assert status == 200
    assert re.search(r"^vpbx_registrations 1\.0$", body, re.M), body
    assert re.search(r'^vpbx_sip_register_results_total\{result="accepted"\} [1-9]', body, re.M)
    assert re.search(r"^vpbx_sip_auth_failures_total ", body, re.M)

    assert server.stop() == 0  # SIGTERM: graceful, pending registrations written

    again = start(servers, data_dir)
    reply = register_query(again.sip)
    assert reply.status == 200, bytes(reply)
    contacts = reply.headers.get_all("contact")
    assert any(f"sip:{USER}@127.0.0.1" in c and "expires=" in c for c in contacts), contacts
    assert again.http is not None
    status, body = http_get(again.http, "/health")
    doc = json.loads(body)
    assert status == 200 and doc["status"] == "ok" and doc["registrations"] == 1 and doc["accounts"] == 1

    # a removed user can no longer register, again without a restart
    assert cli(data_dir, "user", "remove", USER).returncode == 0
    deadline = time.monotonic() + 5.0
    while True:
        code, out = sipp_register(again.sip, tmp_path)
        if code != 0 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert code != 0, out[-2000:]
    # ... and its binding is gone at once (no calls ring a removed user's phone)
    status, body = http_get(again.http, "/health")
    assert json.loads(body)["registrations"] == 0, body


def test_serve_refuses_a_data_dir_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "not-a-dir"
    target.write_text("x")
    cmd = [sys.executable, "-m", "vpbx", *serve_args(target), "--http-listen", "127.0.0.1:0"]
    proc = subprocess.run(
        cmd, env=vpbx_env(), cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert proc.returncode == 1
    assert "is not a directory" in proc.stderr
