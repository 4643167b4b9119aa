"""OPTIONS qualify in a real `vpbx serve` (issue 4): a phone on a UDP socket registers with
digest auth and answers OPTIONS; when it stops answering, /metrics shows it unreachable
within a few seconds and a call to it gets 480 at once, nothing sent to the dead contact."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_serve import PASSWORD, TIMEOUT, USER, cli, http_get, serve_args
from vpbx_server import VpbxServer

from vpbx.sip import DigestClient, Request, Response, parse_message

WAIT_S = 10.0  # bound on every poll


class Phone:
    """A registered UA on one UDP socket: answers OPTIONS with 200 while `answering`."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.answering = True
        self.received: list[tuple[float, str]] = []  # (monotonic time, method) of requests
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def register(self) -> None:
        """REGISTER with Contact, answering the digest challenge (RFC 3261 §10.2, §22)."""
        client = DigestClient(USER, PASSWORD)
        call_id, (host, port) = uuid.uuid4().hex, self.server
        self.sock.settimeout(5)

        def request(cseq: int) -> bytes:
            text = (
                f"REGISTER sip:{host}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{uuid.uuid4().hex};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:{USER}@{host}>;tag=r{cseq}\r\n"
                f"To: <sip:{USER}@{host}>\r\n"
                f"Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n"
                f"Contact: <sip:{USER}@127.0.0.1:{self.port}>\r\nExpires: 3600\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            msg = parse_message(text.encode())
            if cseq > 1:
                client.authorize(msg)  # type: ignore[arg-type]
            return bytes(msg)

        self.sock.sendto(request(1), self.server)
        challenge = parse_message(self.sock.recv(65535))
        assert isinstance(challenge, Response) and challenge.status == 401, challenge
        assert client.on_challenge(challenge), client.error
        self.sock.sendto(request(2), self.server)
        reply = parse_message(self.sock.recv(65535))
        assert isinstance(reply, Response) and reply.status == 200, bytes(reply)

    def start(self) -> None:
        self.sock.settimeout(0.1)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            msg = parse_message(data)
            if not isinstance(msg, Request):
                continue
            self.received.append((time.monotonic(), msg.method))
            if msg.method == "OPTIONS" and self.answering:
                h = msg.headers
                answer = (
                    "SIP/2.0 200 OK\r\n"
                    + "".join(f"Via: {v}\r\n" for v in h.get_all("via"))
                    + f"From: {h.get('from')}\r\nTo: {h.get('to')};tag=ph\r\n"
                    + f"Call-ID: {h.get('call-id')}\r\nCSeq: {h.get('cseq')}\r\n"
                    + "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS\r\nContent-Length: 0\r\n\r\n"
                )
                self.sock.sendto(answer.encode(), peer)

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[VpbxServer]:
    data_dir = tmp_path / "data"
    added = cli(data_dir, "user", "add", USER, "--password", PASSWORD)
    assert added.returncode == 0, added.stderr
    config = tmp_path / "vpbx.toml"
    config.write_text("[serve]\nqualify_interval_s = 1\n")
    args = [*serve_args(data_dir), "--http-listen", "127.0.0.1:0", "--md5-only", "--trusted", "127.0.0.0/8"]
    proc = VpbxServer([*args, "--config", str(config)], timeout=TIMEOUT)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def metric(server: VpbxServer, name: str) -> float | None:
    assert server.http is not None
    _, body = http_get(server.http, "/metrics")
    m = re.search(rf"^{name} ([0-9.e+]+)$", body, re.M)
    return None if m is None else float(m.group(1))


def wait_metric(server: VpbxServer, name: str, value: float) -> float:
    """Poll /metrics until `name` == value; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < WAIT_S:
        if metric(server, name) == value:
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"{name} never reached {value} (last {metric(server, name)})")


def call(server: tuple[str, int]) -> list[int]:
    """An INVITE with an SDP offer from a trusted address to the extension; the statuses back."""
    host, port = server
    sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    sdp += "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        me = sock.getsockname()[1]
        text = (
            f"INVITE sip:{USER}@{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{uuid.uuid4().hex};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:5550100@127.0.0.1>;tag=c1\r\nTo: <sip:{USER}@{host}>\r\n"
            f"Call-ID: {uuid.uuid4().hex}\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:5550100@127.0.0.1:{me}>\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(sdp)}\r\n\r\n{sdp}"
        )
        sock.sendto(text.encode(), server)
        statuses: list[int] = []
        while not statuses or statuses[-1] < 200:
            reply = parse_message(sock.recv(65535))
            assert isinstance(reply, Response)
            statuses.append(reply.status)
        return statuses


def test_unanswered_contact_becomes_unreachable_and_calls_get_480(server: VpbxServer) -> None:
    phone = Phone(server.sip)
    try:
        phone.register()
        phone.start()
        wait_metric(server, "vpbx_contacts_reachable", 1.0)
        assert metric(server, "vpbx_contacts_unreachable") == 0.0
        rtt_count = metric(server, "vpbx_contact_rtt_seconds_count")
        assert rtt_count is not None and rtt_count >= 1
        probes = [t for t, m in phone.received if m == "OPTIONS"]
        assert len(probes) >= 1

        phone.answering = False
        took = wait_metric(server, "vpbx_contacts_unreachable", 1.0)
        assert took < 5.0, took  # 2 probes, 1 s apart, 1 s timeout
        assert metric(server, "vpbx_contacts_reachable") == 0.0
        assert server.http is not None
        _, body = http_get(server.http, "/health")
        health = json.loads(body)
        assert (health["contacts_reachable"], health["contacts_unreachable"]) == (0, 1), health

        started = time.monotonic()
        statuses = call(server.sip)
        assert statuses[-1] == 480, statuses
        assert time.monotonic() - started < 1.0  # at once, not after a ring timeout
        time.sleep(0.3)  # anything sent to the phone would have arrived by now
        assert "INVITE" not in [m for _, m in phone.received], phone.received

        phone.answering = True  # back: the next answer makes it reachable again
        wait_metric(server, "vpbx_contacts_reachable", 1.0)
        assert metric(server, "vpbx_contacts_unreachable") == 0.0
    finally:
        phone.close()
