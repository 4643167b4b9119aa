"""SIPVicious (PyPI `sipvicious`) against a real `vpbx serve` (issue 4, "Security"):

- svwar, with every method it has (REGISTER, OPTIONS, INVITE), over a range holding the
  real extensions finds none; and a probe of our own shows why: every extension, known
  or not, gets the same status, headers and challenge (only nonce and To tag differ);
- svcrack with the right password at position 50 of its dictionary is banned after
  max_auth_failures attempts and never finds it, /metrics shows the ban, a phone at
  another address registers all along, and once the ban expires the attacker's address
  is served again; the same svcrack with the password at position 3 does find it (so
  the test can fail);
- an account's source allowlist set with the CLI while the server runs.

One server for the module (md5_only: svcrack speaks MD5 only; short bans through the
[serve] settings). Each test uses its own 127.x source addresses, so bans stay apart.
"""

from __future__ import annotations

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
from vpbx_server import ROOT, VpbxServer, vpbx_env

from vpbx.sip import DigestClient, Request, Response, parse_message

USERS = {"201": "s3cret-201", "202": "s3cret-202", "205": "s3cret-205", "210": "s3cret-210"}
SCAN_RANGE = "195-212"  # holds 201, 202, 205, 210
MAX_FAILURES = 5
BAN_S = 6.0  # longer than svcrack's --maximumtime (2 s idle), so it gives up while banned
TIMEOUT = 40.0
# svwar and svcrack 0.3.8 ignore their -b option (they bind the wildcard address), so
# toward 127.0.0.1 they always send from 127.0.0.1: the scanner's and attacker's address.
SCANNER = "127.0.0.1"
PHONE = "127.0.0.2"  # the legitimate phone: another source address


def sipvicious(tool: str, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run sipvicious.<tool> (svwar, svcrack, svmap) and return its output (stdout+stderr)."""
    cmd = [sys.executable, "-m", f"sipvicious.{tool}", *args]
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:  # pragma: no cover - the dev extra installs it
        pytest.fail("sipvicious is not installed: pip install -e '.[dev]'")


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "vpbx", "--data-dir", str(data_dir), *args]
    return subprocess.run(
        cmd, env=vpbx_env(), cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sipvicious") / "data"


@pytest.fixture(scope="module")
def server(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VpbxServer]:
    config = tmp_path_factory.mktemp("config") / "vpbx.toml"
    config.write_text(
        "[serve]\n"
        f"max_auth_failures = {MAX_FAILURES}\n"
        f"ban_time_s = {BAN_S}\n"
        "auth_failure_window_s = 60.0\n"
        "reload_interval_s = 0.2\n"
    )
    args = ["--data-dir", str(data_dir), "serve", "--config", str(config), "--md5-only"]
    args += ["--sip-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]
    for user, password in USERS.items():
        args += ["--user", f"{user}:{password}"]
    proc = VpbxServer(args, timeout=TIMEOUT).start()
    try:
        yield proc
    finally:
        proc.stop()


def metrics(server: VpbxServer) -> dict[str, float]:
    assert server.http is not None
    url = f"http://{server.http[0]}:{server.http[1]}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        body = r.read().decode()
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


# -- SIP from a chosen source address ---------------------------------------------------------


def _request(
    method: str,
    target: tuple[str, int],
    user: str,
    *,
    port: int,
    cseq: int = 1,
    call_id: str | None = None,
    branch: str | None = None,
    to_tag: str | None = None,
) -> Request:
    host = f"{target[0]}:{target[1]}"
    ruri = f"sip:{host}" if method == "REGISTER" else f"sip:{user}@{host}"
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch or 'z9hG4bK' + uuid.uuid4().hex};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{host}>;tag=t{cseq}",
        f"To: <sip:{user}@{host}>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id or uuid.uuid4().hex}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:{user}@127.0.0.1:{port}>",
        "Content-Length: 0",
    ]
    message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def _exchange(sock: socket.socket, request: Request, target: tuple[str, int], wait: float) -> Response | None:
    """Send, and return the final response (None: nothing within `wait` seconds)."""
    sock.settimeout(wait)
    sock.sendto(bytes(request), target)
    while True:
        try:
            data = sock.recv(65535)
        except TimeoutError:
            return None
        reply = parse_message(data)
        if isinstance(reply, Response) and reply.status >= 200:
            return reply


def register(
    target: tuple[str, int], user: str, password: str, *, source: str, wait: float = 2.0
) -> Response | None:
    """REGISTER from `source`, answering one digest challenge; the final answer, or None
    when the server said nothing (a banned source)."""
    client = DigestClient(user, password)
    call_id = uuid.uuid4().hex
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        port = sock.getsockname()[1]
        reply = _exchange(sock, _request("REGISTER", target, user, port=port, call_id=call_id), target, wait)
        if reply is None or reply.status != 401:
            return reply
        assert client.on_challenge(reply), client.error
        request = _request("REGISTER", target, user, port=port, cseq=2, call_id=call_id)
        client.authorize(request)
        return _exchange(sock, request, target, wait)


def shape(response: Response) -> tuple[object, ...]:
    """What a scanner could tell users apart by: everything but the nonce and the tag
    values (status, reason, header names in order, challenges, tag lengths)."""
    challenges = tuple(
        re.sub(r'nonce="[^"]*"', 'nonce="N"', value)
        for name in ("www-authenticate", "proxy-authenticate")
        for value in response.headers.get_all(name)
    )
    return (
        response.status,
        response.reason,
        tuple(name.lower() for name, _ in response.headers),
        challenges,
        len(response.to.tag or ""),
        len(response.body),
    )


# -- svmap, svwar -----------------------------------------------------------------------------


def test_svmap_finds_the_server(server: VpbxServer) -> None:
    host, port = server.sip
    out = sipvicious("svmap", "-p", str(port), "-b", SCANNER, host, timeout=20)
    text = out.stdout + out.stderr
    assert re.search(rf"\|\s*{re.escape(host)}:{port}\s*\|\s*vpbx\s*\|", text), text


@pytest.mark.parametrize("method", ["REGISTER", "OPTIONS", "INVITE"])
@pytest.mark.parametrize("force", [False, True], ids=["checked", "forced"])
def test_svwar_finds_no_extension(server: VpbxServer, method: str, force: bool) -> None:
    host, port = server.sip
    before = metrics(server)
    args = ["-m", method, "-e", SCAN_RANGE, "-p", str(port), "--maximumtime", "3"]
    out = sipvicious("svwar", *args, *(["--force"] if force else []), host)
    text = out.stdout + out.stderr
    # it reached the server (not "No server response") and reports nothing
    assert "No server response" not in text and "socket error" not in text, text
    assert "found nothing" in text, text
    assert not re.search(r"extension '\d+' (exists|probably exists)", text), text
    assert "| Extension" not in text, text
    if method == "REGISTER" and not force:
        # its sanity check: an unknown extension is challenged like any other
        assert "replied with an authentication request for an unknown extension" in text, text
    after = metrics(server)
    key = f'vpbx_sip_requests_total{{method="{method}"}}'
    assert after.get(key, 0) > before.get(key, 0), "svwar's requests never reached the server"
    # asking is no failed authentication: nobody gets banned for a scan without credentials
    assert after.get("vpbx_sip_bans_total", 0) == before.get("vpbx_sip_bans_total", 0)


@pytest.mark.parametrize("method", ["REGISTER", "OPTIONS", "INVITE"])
def test_known_and_unknown_extensions_get_the_same_answer(server: VpbxServer, method: str) -> None:
    """What svwar looks at, for every extension of the range: the answers must not differ."""
    shapes: dict[str, tuple[object, ...]] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((SCANNER, 0))
        port = sock.getsockname()[1]
        first, last = (int(x) for x in SCAN_RANGE.split("-"))
        for ext in range(first, last + 1):
            branch = "z9hG4bK" + uuid.uuid4().hex
            request = _request(method, server.sip, str(ext), port=port, branch=branch)
            reply = _exchange(sock, request, server.sip, 3)
            assert reply is not None, f"{method} {ext}: no answer"
            shapes[str(ext)] = shape(reply)
            if method == "INVITE" and reply.status >= 300:  # ACK a non-2xx final answer (§17.1.1.3)
                ack = _request(
                    "ACK",
                    server.sip,
                    str(ext),
                    port=port,
                    call_id=reply.call_id,
                    branch=branch,
                    to_tag=reply.to.tag,
                )
                sock.sendto(bytes(ack), server.sip)
    known = {shapes[u] for u in USERS}
    unknown = {s for ext, s in shapes.items() if ext not in USERS}
    assert len(known | unknown) == 1, {ext: s for ext, s in shapes.items()}


# -- svcrack ----------------------------------------------------------------------------------


def svcrack_args(server: VpbxServer, user: str, dictionary: Path) -> list[str]:
    """svcrack from SCANNER; it stops sending after 2 s without an answer."""
    host, port = server.sip
    return ["-u", user, "-d", str(dictionary), "-p", str(port), "--maximumtime", "2", host]


def test_svcrack_finds_a_password_early_in_its_dictionary(server: VpbxServer, tmp_path: Path) -> None:
    """The control: below the ban threshold the attack works, so the next test can fail."""
    dictionary = tmp_path / "words.txt"
    dictionary.write_text(f"123456\npassword\n{USERS['205']}\n")
    out = sipvicious("svcrack", *svcrack_args(server, "205", dictionary))
    text = out.stdout + out.stderr
    assert re.search(rf"\|\s*205\s*\|\s*{re.escape(USERS['205'])}\s*\|", text), text


def test_svcrack_is_banned_and_a_phone_elsewhere_keeps_working(server: VpbxServer, tmp_path: Path) -> None:
    attacker, victim = SCANNER, "202"
    password = USERS[victim]
    words = [f"guess{i:02d}" for i in range(1, 50)] + [password] + [f"later{i}" for i in range(20)]
    assert words.index(password) == 49  # position 50
    dictionary = tmp_path / "words.txt"
    dictionary.write_text("\n".join(words) + "\n")
    before = metrics(server)

    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sipvicious.svcrack", *svcrack_args(server, victim, dictionary)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        # the ban: visible in /metrics within a few seconds
        deadline = time.monotonic() + 5
        while metrics(server).get("vpbx_sip_bans_active", 0) < 1:
            assert time.monotonic() < deadline, "no ban while svcrack runs"
            time.sleep(0.1)
        banned_at = time.monotonic()
        # while banned: the attacker's address hears nothing, even with the right password ...
        assert register(server.sip, victim, password, source=attacker, wait=1.0) is None
        # ... and the phone at another address registers (during the attack, several times)
        for _ in range(3):
            reply = register(server.sip, "201", USERS["201"], source=PHONE)
            assert reply is not None and reply.status == 200, reply
        assert time.monotonic() - banned_at < BAN_S - 1, "the checks above outlasted the ban"
        text, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)
    elapsed = time.monotonic() - started

    assert "found nothing" in text, text
    assert password not in text and "The password for" not in text, text
    after = metrics(server)
    # banned after exactly max_auth_failures wrong passwords; the rest was dropped unanswered
    failures = after["vpbx_sip_auth_failures_total"] - before["vpbx_sip_auth_failures_total"]
    assert failures == MAX_FAILURES, failures
    assert after["vpbx_sip_bans_total"] - before["vpbx_sip_bans_total"] == 1
    assert after["vpbx_sip_requests_banned_total"] > before["vpbx_sip_requests_banned_total"]

    # after the ban: the attacker's address is served again (right password: registered)
    time.sleep(max(0.0, BAN_S + 0.5 - (time.monotonic() - banned_at)))
    assert metrics(server)["vpbx_sip_bans_active"] == 0
    reply = register(server.sip, victim, password, source=attacker)
    assert reply is not None and reply.status == 200, reply
    reply = register(server.sip, "201", USERS["201"], source=PHONE)
    assert reply is not None and reply.status == 200, reply
    assert elapsed < TIMEOUT


# -- per-account source allowlists, set with the CLI while the server runs ---------------------


def _status_eventually(
    server: VpbxServer, user: str, password: str, *, source: str, want: int, tries: int = 3
) -> int | None:
    """The REGISTER status from `source`, retried (bounded) until it is `want`: the server
    reloads accounts every 0.2 s. Few tries: each refusal counts as a failed login."""
    status = None
    for _ in range(tries):
        reply = register(server.sip, user, password, source=source)
        status = None if reply is None else reply.status
        if status == want:
            break
        time.sleep(0.5)
    return status


def test_allowlist_from_the_cli_is_enforced_without_restart(server: VpbxServer, data_dir: Path) -> None:
    user, password = "230", "pw-230-long"
    inside, outside = "127.0.0.10", "127.0.0.11"
    added = cli(data_dir, "user", "add", user, "--password", password, "--allow", f"{inside}/32")
    assert added.returncode == 0, added.stderr
    assert _status_eventually(server, user, password, source=inside, want=200, tries=6) == 200
    # the right password from elsewhere: the same 401 as a wrong one, never 200 or 403
    reply = register(server.sip, user, password, source=outside)
    wrong = register(server.sip, user, "wrong-password", source="127.0.0.12")
    assert reply is not None and wrong is not None and reply.status == wrong.status == 401
    assert shape(reply) == shape(wrong)

    # widen the list with `vpbx user allow`: the other address registers within a second or so
    allowed = cli(data_dir, "user", "allow", user, f"{inside}/32", "127.0.0.8/29")
    assert allowed.returncode == 0, allowed.stderr
    assert _status_eventually(server, user, password, source=outside, want=200) == 200
    listing = cli(data_dir, "user", "list")
    assert "127.0.0.8/29" in listing.stdout, listing.stdout

    # bad input: a clear error, nothing changed
    bad = cli(data_dir, "user", "allow", user, "10.0.0.300/8")
    assert bad.returncode == 2 and "is not a CIDR" in bad.stderr, bad.stderr
    missing = cli(data_dir, "user", "allow", "9999", "10.0.0.0/8")
    assert missing.returncode == 1 and "no SIP account 9999" in missing.stderr, missing.stderr
    reply = register(server.sip, user, password, source=outside)
    assert reply is not None and reply.status == 200, reply
