"""Trunks over real sockets: SIPp plays the upstream provider's registrar; `vpbx serve` with
a trunk added through the CLI registers to it with digest auth (SIPp checks the digest),
refreshes, shows vpbx_trunk_registered 1, and sends Expires: 0 when the trunk is disabled
(removing it then drops it from /health) or the server stops. A provider answering 403
leaves the trunk "failing" in /health and /metrics."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from media_node_proc import free_port
from vpbx_server import ROOT, VpbxServer, sipp_binary, vpbx_env

SIPP_DIR = Path(__file__).parent / "sipp"
USER, SECRET = "7001", "trunk-s3cret"
TIMEOUT = 30.0


def wait_for(what: str, check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Provider:
    """A SIPp UAS on 127.0.0.1 running one provider scenario (always reaped)."""

    def __init__(self, scenario: str, tmp_path: Path) -> None:
        self.port = free_port(socket.SOCK_DGRAM)
        cmd = [sipp_binary(), "-sf", str(SIPP_DIR / scenario), "-i", "127.0.0.1", "-p", str(self.port)]
        if scenario == "trunk_registrar.xml":  # it checks the digest with these
            cmd += ["-set", "user", USER, "-set", "secret", SECRET]
        cmd += ["-m", "1", "-nostdin", "-trace_msg"]
        cmd += ["-timeout", str(int(TIMEOUT)), "-timeout_error"]
        self.tmp_path = tmp_path
        self.errors = (tmp_path / "sipp.err").open("w")
        self.proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=self.errors)

    def messages(self) -> str:
        """SIPp's trace of what it sent and received, then what it complained about."""
        trace = "".join(p.read_text(errors="replace") for p in self.tmp_path.glob("*_messages.log"))
        return trace + (self.tmp_path / "sipp.err").read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"SIPp did not finish: {self.messages()[-3000:]}") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)
        self.errors.close()


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "vpbx", "--data-dir", str(data_dir), *args]
    env = dict(vpbx_env(), COLUMNS="200")  # Rich tables unabridged
    return subprocess.run(
        cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def get(server: VpbxServer, path: str) -> bytes:
    assert server.http is not None
    url = f"http://{server.http[0]}:{server.http[1]}{path}"
    with urllib.request.urlopen(url, timeout=5) as reply:
        body: bytes = reply.read()
        return body


def trunk_health(server: VpbxServer) -> dict[str, Any]:
    doc = json.loads(get(server, "/health"))
    return {t["name"]: t for t in doc["trunks"]}


def metric(server: VpbxServer, name: str, trunk: str) -> float | None:
    text = get(server, "/metrics").decode()
    m = re.search(rf'^{name}{{trunk="{trunk}"}} ([0-9.e+]+)$', text, re.MULTILINE)
    return None if m is None else float(m.group(1))


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[VpbxServer, Path]]:
    data_dir = tmp_path / "data"
    args = [
        "serve",
        "--data-dir",
        str(data_dir),
        "--sip-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
    ]
    server = VpbxServer(args, timeout=TIMEOUT)
    try:
        try:
            server.start()
        except RuntimeError as e:
            pytest.fail(str(e))
        yield server, data_dir
    finally:
        server.stop()


def test_trunk_registers_with_digest_refreshes_and_unregisters(
    serve: tuple[VpbxServer, Path], tmp_path: Path
) -> None:
    server, data_dir = serve
    provider = Provider("trunk_registrar.xml", tmp_path)
    try:
        added = cli(
            data_dir, "trunk", "add", "prov", "--host", "127.0.0.1", "--port", str(provider.port),
            "--username", USER, "--secret", SECRET, "--prefix", "+7",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        wait_for("vpbx_trunk_registered 1", lambda: metric(server, "vpbx_trunk_registered", "prov") == 1.0)
        health = trunk_health(server)["prov"]
        assert health["state"] == "registered" and health["last_error"] is None
        assert 0 < health["registered_for_s"] <= 2.0  # the 2 s SIPp granted, not the 300 asked
        # refreshed before the 2 s run out, more than once, and still registered
        wait_for("two refreshes", lambda: provider.messages().count("CSeq: 4 REGISTER") >= 2, timeout=8)
        assert trunk_health(server)["prov"]["state"] == "registered"
        assert metric(server, "vpbx_trunk_registration_failures_total", "prov") == 0.0
        listed = cli(data_dir, "trunk", "list", "--http", "{}:{}".format(*server.http or ("", 0)))
        assert listed.returncode == 0 and "prov" in listed.stdout and "registered" in listed.stdout, (
            listed.stdout
        )

        disabled = cli(data_dir, "trunk", "disable", "prov")
        assert disabled.returncode == 0, disabled.stderr
        assert provider.wait(10) == 0, provider.messages()[-3000:]  # the Expires: 0 REGISTER got its 200
        wait_for("disabled in /health", lambda: trunk_health(server)["prov"]["state"] == "disabled")
        assert metric(server, "vpbx_trunk_registered", "prov") == 0.0
        removed = cli(data_dir, "trunk", "remove", "prov")
        assert removed.returncode == 0, removed.stderr
        wait_for("trunk gone from /health", lambda: "prov" not in trunk_health(server))
        assert metric(server, "vpbx_trunk_registered", "prov") is None
    finally:
        provider.stop()
    messages = provider.messages()
    first = messages.index("REGISTER sip:")
    assert "Authorization" not in messages[first : messages.index("SIP/2.0 401")]  # asked, then challenged
    assert re.search(r"Authorization: Digest username=\"7001\"", messages)
    assert re.search(r"^Expires: 0\r?$", messages, re.MULTILINE)
    call_ids = set(re.findall(r"^Call-ID: (\S+)", messages, re.MULTILINE))
    assert len(call_ids) == 1  # one Call-ID for the whole registration (RFC 3261 §10.2)


def test_provider_refusing_the_trunk_shows_it_failing(serve: tuple[VpbxServer, Path], tmp_path: Path) -> None:
    server, data_dir = serve
    provider = Provider("trunk_forbidden.xml", tmp_path)
    try:
        added = cli(
            data_dir, "trunk", "add", "refused", "--host", "127.0.0.1", "--port", str(provider.port),
            "--username", USER, "--secret", SECRET,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        wait_for("failing state", lambda: trunk_health(server).get("refused", {}).get("state") == "failing")
        health = trunk_health(server)["refused"]
        assert health["last_error"] == "403 Forbidden" and health["failures"] == 1
        assert metric(server, "vpbx_trunk_registered", "refused") == 0.0
        assert metric(server, "vpbx_trunk_registration_failures_total", "refused") == 1.0
        assert provider.wait(10) == 0
        listed = cli(data_dir, "trunk", "list", "--http", "{}:{}".format(*server.http or ("", 0)))
        assert "failing" in listed.stdout and "403 Forbidden" in listed.stdout, listed.stdout
    finally:
        provider.stop()


def test_server_stop_unregisters_the_trunk(serve: tuple[VpbxServer, Path], tmp_path: Path) -> None:
    server, data_dir = serve
    provider = Provider("trunk_registrar.xml", tmp_path)
    try:
        added = cli(
            data_dir, "trunk", "add", "prov", "--host", "127.0.0.1", "--port", str(provider.port),
            "--username", USER, "--secret", SECRET,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        wait_for("registered", lambda: metric(server, "vpbx_trunk_registered", "prov") == 1.0)
        assert server.stop() == 0  # SIGTERM
        assert provider.wait(10) == 0, provider.messages()[-3000:]
    finally:
        provider.stop()
    assert re.search(r"^Expires: 0\r?$", provider.messages(), re.MULTILINE)
