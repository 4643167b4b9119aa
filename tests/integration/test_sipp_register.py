"""`vpbx serve` over real sockets: SIPp registers with digest auth (Debian package
sip-tester), a wrong password never gets a 200, malformed datagrams get their 400 and
the server keeps serving, and TCP answers OPTIONS and CRLF keep-alives."""

from __future__ import annotations

import re
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from media_node_proc import free_port
from vpbx_server import VpbxServer, sipp_binary

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).parent / "sipp" / "register_auth.xml"
USER, PASSWORD, REALM = "1001", "s3cret-1001", "vpbx.test"
TIMEOUT = 30.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    data_dir = tmp_path_factory.mktemp("vpbx-data")
    # SIPp 3.6 answers only the first challenge and knows only MD5: offer MD5 alone.
    args = ["serve", "--data-dir", str(data_dir), "--sip-listen", "127.0.0.1:0"]
    args += ["--http-listen", "127.0.0.1:0"]
    args += ["--user", f"{USER}:{PASSWORD}", "--user", "1002:other", "--realm", REALM, "--md5-only"]
    proc = VpbxServer(args, timeout=TIMEOUT)
    try:
        try:
            proc.start()
        except RuntimeError as e:
            pytest.fail(str(e))
        yield proc.sip
    finally:
        proc.stop()


def run_sipp(
    target: tuple[str, int], password: str, tmp_path: Path, *extra: str
) -> tuple[int, int, int, str]:
    """(exit code, successful calls, failed calls, output)."""
    cmd = [sipp_binary(), f"{target[0]}:{target[1]}", "-sf", str(SCENARIO), "-s", USER]
    cmd += ["-au", USER, "-ap", password, "-i", "127.0.0.1", "-p", str(free_port(socket.SOCK_DGRAM))]
    cmd += ["-nostdin", "-timeout", "15", "-timeout_error", *extra]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    ok = re.search(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", out)
    failed = re.search(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", out)
    return proc.returncode, int(ok.group(1)) if ok else -1, int(failed.group(1)) if failed else -1, out


def test_sipp_registers_with_digest_auth(server: tuple[str, int], tmp_path: Path) -> None:
    code, ok, failed, out = run_sipp(server, PASSWORD, tmp_path, "-m", "1")
    assert (code, ok, failed) == (0, 1, 0), out[-3000:]


def test_sipp_wrong_password_gets_no_200(server: tuple[str, int], tmp_path: Path) -> None:
    code, ok, failed, out = run_sipp(server, "not-the-password", tmp_path, "-m", "1", "-trace_msg")
    assert code != 0 and ok == 0 and failed == 1, out[-3000:]
    messages = "".join(p.read_text() for p in tmp_path.glob("*_messages.log"))
    assert "SIP/2.0 401" in messages and "SIP/2.0 200" not in messages


def exchange(sock: socket.socket, data: bytes) -> bytes:
    sock.sendto(data, sock.getpeername())
    return sock.recv(65535)


def options(port: int, call_id: str) -> bytes:
    return (
        f"OPTIONS sip:{USER}@{REALM} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{uuid.uuid4().hex};rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:probe@127.0.0.1>;tag=p1\r\n"
        f"To: <sip:{USER}@{REALM}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def test_malformed_datagram_gets_400_and_server_keeps_serving(server: tuple[str, int]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.bind(("127.0.0.1", 0))
        sock.connect(server)
        port = sock.getsockname()[1]
        bad = options(port, "bad-1").replace(b"CSeq: 1 OPTIONS", b"CSeq: one OPTIONS")
        reply = exchange(sock, bad)
        assert reply.startswith(b"SIP/2.0 400 "), reply
        assert b"Call-ID: bad-1" in reply
        assert re.search(rb"received=127\.0\.0\.1|rport", reply)
        # garbage that cannot be answered is dropped, and the server is still there
        sock.send(b"\x00\xffnot sip at all\r\n\r\n")
        reply = exchange(sock, options(port, "good-1"))
        assert reply.startswith(b"SIP/2.0 200 "), reply
        assert re.search(rb"\r\nAllow: [^\r]*REGISTER", reply)
        assert b"\r\nAccept: application/sdp" in reply and b"\r\nSupported:" in reply
        assert re.search(rb"Via: [^\r]*rport=%d[^\r]*received=127\.0\.0\.1" % port, reply), reply
        # a method we do not serve: 405 with what we do (calls included)
        subscribe = options(port, "sub-1").replace(b"OPTIONS", b"SUBSCRIBE")
        reply = exchange(sock, subscribe)
        assert reply.startswith(b"SIP/2.0 405 "), reply
        assert re.search(rb"\r\nAllow: [^\r]*INVITE", reply)
        # an INVITE from an unknown source: 100 at once, then the proxy challenge (RFC 3261 §22.3)
        invite = options(port, "inv-1").replace(b"OPTIONS", b"INVITE")
        assert exchange(sock, invite).startswith(b"SIP/2.0 100 ")
        reply = sock.recv(65535)
        assert reply.startswith(b"SIP/2.0 407 ") and b"\r\nProxy-Authenticate: Digest" in reply, reply


def test_tcp_options_and_keepalive(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=5) as sock:
        port = sock.getsockname()[1]
        sock.sendall(b"\r\n\r\n")
        assert sock.recv(16) == b"\r\n"
        sock.sendall(options(port, "tcp-1").replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65535)
            assert chunk
            data += chunk
        assert data.startswith(b"SIP/2.0 200 "), data
