"""``vpbx media-node`` as a real process on 127.0.0.1, driven the way Kamailio's rtpengine
module drives rtpengine: NG over UDP, RTP between two test sockets through the node's ports,
/health and /metrics over HTTP, and SIGTERM at the end.

Ports: RTP from 42000..42999 (one slice per node), NG and HTTP on free ephemeral ports.
Every wait has a timeout; every node process is killed in teardown whatever happens.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import dominant_freq, sine
from vpbx.media import Decoder, Encoder, RtpPacket
from vpbx.ng import decode, encode
from vpbx.sdp import parse as parse_sdp

STARTUP_TIMEOUT = 30.0
REPLY_TIMEOUT = 5.0
STOP_TIMEOUT = 15.0


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    proc: subprocess.Popen[bytes]
    ng_port: int
    http_port: int
    log: Path
    port_min: int
    port_max: int

    _cookies = itertools.count(1)

    def ng_raw(self, datagram: bytes, timeout: float = REPLY_TIMEOUT) -> bytes | None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(datagram, ("127.0.0.1", self.ng_port))
            try:
                return s.recv(65536)
            except TimeoutError:
                return None

    def ng(self, **request: Any) -> dict[str, Any]:
        """Sends one NG request (keys with ``_`` spelled with ``-``); returns the reply with
        str keys and values."""
        cookie = f"t{next(self._cookies)}".encode()
        body = encode({k.replace("_", "-"): v for k, v in request.items()})
        reply = self.ng_raw(cookie + b" " + body)
        assert reply is not None, f"no reply to {request.get('command')}"
        got_cookie, _, rest = reply.partition(b" ")
        assert got_cookie == cookie
        return _text(decode(rest))

    def http(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as r:
                return int(r.status), bytes(r.read())
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def health(self) -> dict[str, Any]:
        status, body = self.http("/health")
        assert status == 200, body
        doc = json.loads(body)
        assert isinstance(doc, dict)
        return doc

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, body = self.http("/metrics")
        assert status == 200
        out = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return out

    def stats(self) -> dict[str, Any]:
        reply = self.ng(command="statistics")
        assert reply["result"] == "ok"
        stats = reply["statistics"]
        assert isinstance(stats, dict)
        return stats

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]


def _text(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, dict):
        return {_text(k): _text(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_text(x) for x in v]
    return v


@contextlib.contextmanager
def media_node(tmp: Path, port_min: int, port_max: int, *extra: str) -> Iterator[Node]:
    ng_port, http_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    log = tmp / f"node-{port_min}.log"
    args = [
        sys.executable,
        "-m",
        "vpbx",
        "media-node",
        "--interface",
        "127.0.0.1",
        "--listen-ng",
        f"127.0.0.1:{ng_port}",
        "--listen-http",
        f"127.0.0.1:{http_port}",
        "--port-min",
        str(port_min),
        "--port-max",
        str(port_max),
        "--workers",
        "2",
        *extra,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPBX_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=tmp, env=env)
    node = Node(proc, ng_port, http_port, log, port_min, port_max)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"media node exited with {proc.returncode}:\n{log.read_text()}")
            with contextlib.suppress(OSError):
                if node.http("/health")[0] == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"media node not healthy within {STARTUP_TIMEOUT} s:\n{log.read_text()}")
            time.sleep(0.1)
        yield node
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    with media_node(tmp_path_factory.mktemp("node"), 42000, 42599, "--timeout", "60") as n:
        yield n


# -- SIP side helpers ----------------------------------------------------------------------------


def sdp(port: int, *formats: tuple[int, str]) -> str:
    """A phone's SDP offering ``formats`` ((pt, "NAME/RATE"), ...) on 127.0.0.1:``port``."""
    pts = " ".join(str(pt) for pt, _ in formats)
    lines = [
        "v=0",
        "o=phone 4711 1 IN IP4 127.0.0.1",
        "s=call",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        f"m=audio {port} RTP/AVP {pts}",
        *(f"a=rtpmap:{pt} {enc}" for pt, enc in formats),
        "a=ptime:20",
        "a=sendrecv",
    ]
    return "\r\n".join(lines) + "\r\n"


class Phone:
    """A UDP socket standing in for a phone's RTP port."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])

    def close(self) -> None:
        self.sock.close()

    def send(self, to: tuple[str, int], packets: list[bytes], pace_s: float = 0.0) -> None:
        start = time.monotonic()
        for i, p in enumerate(packets):
            self.sock.sendto(p, to)
            if pace_s:
                time.sleep(max(0.0, start + (i + 1) * pace_s - time.monotonic()))

    def receive(self, want: int, quiet_s: float = 1.0) -> list[bytes]:
        """Datagrams until ``want`` arrived or nothing came for ``quiet_s``."""
        self.sock.settimeout(quiet_s)
        got: list[bytes] = []
        while len(got) < want:
            try:
                got.append(self.sock.recv(4096))
            except TimeoutError:
                break
        return got


@pytest.fixture
def phones() -> Iterator[tuple[Phone, Phone]]:
    a, b = Phone(), Phone()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def media_address(sdp_text: str) -> tuple[str, int]:
    sd = parse_sdp(sdp_text.encode())
    conn = sd.media_connection(0)
    assert conn is not None
    return conn.address, sd.media[0].port


def kamailio_offer(call_id: str, sdp_text: str, **extra: Any) -> dict[str, Any]:
    """An offer as Kamailio's rtpengine_offer("replace-origin replace-session-connection
    ICE=remove") sends it."""
    return {
        "command": "offer",
        "call-id": call_id,
        "from-tag": f"{call_id}-a",
        "via-branch": f"z9hG4bK{call_id}",
        "received-from": ["IP4", "127.0.0.1"],
        "replace": ["origin", "session-connection"],
        "ICE": "remove",
        "sdp": sdp_text,
        **extra,
    }


Formats = list[tuple[int, str]]


def call(  # noqa: PLR0917
    node: Node, call_id: str, a: Phone, b: Phone, offer_formats: Formats, answer_formats: Formats, **opts: Any
) -> tuple[tuple[str, int], tuple[str, int], dict[str, Any], dict[str, Any]]:
    """Offer from ``a``, answer from ``b``; returns (where a sends, where b sends, offer, answer)."""
    offer = node.ng(**kamailio_offer(call_id, sdp(a.port, *offer_formats), **opts))
    assert offer["result"] == "ok", offer
    answer = node.ng(
        command="answer",
        call_id=call_id,
        from_tag=f"{call_id}-a",
        to_tag=f"{call_id}-b",
        via_branch=f"z9hG4bK{call_id}",
        replace=["origin", "session-connection"],
        sdp=sdp(b.port, *answer_formats),
    )
    assert answer["result"] == "ok", answer
    # a sends to the address in the answer it gets; b to the one in the offer it got
    return media_address(answer["sdp"]), media_address(offer["sdp"]), offer, answer


def rtp_packets(n: int, pt: int, ssrc: int, tag: int) -> list[bytes]:
    return [
        RtpPacket(pt, 1000 + i, 160 * i, ssrc, bytes((tag + i + k) % 256 for k in range(160))).serialize()
        for i in range(n)
    ]


# -- tests -----------------------------------------------------------------------------------------


def test_ping_and_health(node: Node) -> None:
    assert node.ng(command="ping") == {"result": "pong"}
    # JSON works too (the NG protocol accepts both), answered in JSON
    reply = node.ng_raw(b'j1 {"command": "ping"}')
    assert reply == b'j1 {"result":"pong"}'
    h = node.health()
    assert h["status"] == "ok" and h["workers"] == 2
    assert h["interfaces"][0]["advertised"] == "127.0.0.1"


def test_offer_answer_relays_every_packet_both_ways(node: Node, phones: tuple[Phone, Phone]) -> None:
    a, b = phones
    used_before = node.stats()["engine"]["portsused"]
    to_node_a, to_node_b, offer, answer = call(node, "relay-1", a, b, [(0, "PCMU/8000")], [(0, "PCMU/8000")])
    for where in (to_node_a, to_node_b):
        assert where[0] == "127.0.0.1" and node.port_min <= where[1] <= node.port_max
    assert "a=rtpmap:0 PCMU/8000" in offer["sdp"] and "a=rtpmap:0 PCMU/8000" in answer["sdp"]
    assert node.stats()["engine"]["portsused"] == used_before + 4

    from_a, from_b = rtp_packets(50, 0, 0xA, 1), rtp_packets(50, 0, 0xB, 2)
    a.send(to_node_a, from_a, pace_s=0.002)
    assert b.receive(50) == from_a  # every packet, same bytes, same order
    b.send(to_node_b, from_b, pace_s=0.002)
    assert a.receive(50) == from_b

    q = node.ng(command="query", call_id="relay-1")
    assert q["result"] == "ok"
    assert q["totals"]["RTP"]["packets"] == 100
    tags = q["tags"]
    for tag in ("relay-1-a", "relay-1-b"):
        stream = tags[tag]["medias"][0]["streams"][0]
        assert stream["stats"]["packets"] == 50
        assert "confirmed" in stream["flags"]  # latched on the phone's real address

    d = node.ng(command="delete", call_id="relay-1", from_tag="relay-1-a")
    assert d["result"] == "ok" and d["totals"]["RTP"]["packets"] == 100
    assert node.stats()["engine"]["portsused"] == used_before
    assert node.ng(command="query", call_id="relay-1")["error-reason"] == "Unknown call-id"


def test_transcoding_pcmu_to_pcma_keeps_a_1khz_tone(node: Node, phones: tuple[Phone, Phone]) -> None:
    a, b = phones
    to_node_a, _, offer, answer = call(
        node,
        "tc-1",
        a,
        b,
        [(0, "PCMU/8000")],
        [(8, "PCMA/8000")],
        # "mask", not "strip": the offerer's PCMU stays usable for transcoding (rtpengine's
        # codec-mask); a stripped codec would be refused on both sides
        codec={"transcode": ["PCMA"], "mask": ["PCMU"]},
    )
    assert "PCMA/8000" in offer["sdp"] and "PCMU" not in offer["sdp"]
    assert "a=rtpmap:0 PCMU/8000" in answer["sdp"] and "PCMA" not in answer["sdp"]
    m = node.metrics()
    assert m[("vpbx_media_transcoded_streams", ())] == 2

    tone = sine(8000, 1000.0, 1.0)
    enc = Encoder("PCMU", 8000)
    packets = [
        RtpPacket(0, i, 160 * i, 0x1234, enc.encode(tone[160 * i : 160 * (i + 1)])).serialize()
        for i in range(50)
    ]
    a.send(to_node_a, packets, pace_s=0.02)
    got = [RtpPacket.parse(p) for p in b.receive(60)]
    assert len(got) >= 40, f"only {len(got)} transcoded packets"
    assert {p.payload_type for p in got} == {8}
    dec = Decoder("PCMA", 8000)
    got.sort(key=lambda p: p.sequence_number)
    pcm = np.concatenate([dec.decode(p.payload) for p in got])
    steady = pcm[800:]  # past the jitter buffer's start and the codec's
    assert abs(dominant_freq(steady, 8000) - 1000.0) < 10.0

    q = node.ng(command="query", call_id="tc-1")
    media = q["tags"]["tc-1-a"]["medias"][0]
    assert "transcoding" in media["flags"] and media["codec"] == "PCMU/8000"
    assert node.ng(command="delete", call_id="tc-1")["result"] == "ok"
    assert node.metrics()[("vpbx_media_transcoded_streams", ())] == 0


def test_metrics_count_packets_commands_and_call_quality(node: Node, phones: tuple[Phone, Phone]) -> None:
    a, b = phones
    before = node.metrics()
    to_node_a, _, _, _ = call(node, "m-1", a, b, [(0, "PCMU/8000")], [(0, "PCMU/8000")])
    a.send(to_node_a, rtp_packets(30, 0, 7, 3), pace_s=0.02)
    assert len(b.receive(30)) == 30
    assert node.ng(command="delete", call_id="m-1")["result"] == "ok"
    after = node.metrics()

    def grew(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        return after.get((name, labels), 0.0) - before.get((name, labels), 0.0)

    assert grew("vpbx_media_packets_relayed_total") >= 30
    assert grew("vpbx_media_bytes_relayed_total") >= 30 * 172
    assert grew("vpbx_ng_commands_total", (("command", "offer"), ("result", "ok"))) == 1
    assert grew("vpbx_ng_commands_total", (("command", "answer"), ("result", "ok"))) == 1
    assert grew("vpbx_ng_commands_total", (("command", "delete"), ("result", "ok"))) == 1
    assert grew("vpbx_ng_request_duration_seconds_count", (("command", "offer"),)) == 1
    # a received a nothing, b 30 clean packets: one stream of quality samples, MOS of G.711
    assert grew("vpbx_mos_samples_total") == 1
    assert 4.3 < grew("vpbx_mos_total") <= 4.5
    assert grew("vpbx_call_mos_count") == 1
    assert grew("vpbx_packet_loss_ratio_total") == 0
    assert grew("vpbx_jitter_seconds_samples_total") == 1
    assert after[("vpbx_media_ports_used", (("interface", "default"),))] == 0
    assert after[("vpbx_media_ports_free", (("interface", "default"),))] == 600
    # no call-id ever becomes a label
    status, text = node.http("/metrics")
    assert status == 200 and b"m-1" not in text


def test_bad_input_gets_clear_errors_and_the_node_keeps_serving(node: Node) -> None:
    used = node.stats()["engine"]["portsused"]
    for malformed, reason in (
        (b"x1 d7:comma", "Could not decode bencode dictionary"),
        (b"x2 d7:command4:pinge-trailing", "Could not decode bencode dictionary"),
        (b"x3 li1ee", "Invalid NG data format"),
        (b'x4 {"command": ', "Failed to parse JSON document"),
    ):
        raw = node.ng_raw(malformed)
        assert raw is not None and raw.startswith(malformed.split(b" ")[0] + b" ")
        body = raw.partition(b" ")[2]
        reply = json.loads(body) if body.startswith(b"{") else _text(decode(body))
        assert reply["result"] == "error"
        assert reply["error-reason"].startswith(reason), reply
    assert node.ng(command="launch")["error-reason"] == "Unrecognized command"
    assert node.ng(command="offer", from_tag="a", sdp=sdp(4000, (0, "PCMU/8000")))["error-reason"] == (
        "No call-id in message"
    )
    garbage = node.ng(command="offer", call_id="bad-sdp", from_tag="a", sdp="this is not SDP")
    assert garbage["result"] == "error" and garbage["error-reason"].startswith("Failed to parse SDP")
    assert node.ng_raw(b"no-cookie-at-all", timeout=0.5) is None  # cannot be answered
    assert node.ng(command="ping") == {"result": "pong"}
    assert node.stats()["engine"]["portsused"] == used  # nothing leaked
    assert node.ng(command="query", call_id="bad-sdp")["error-reason"] == "Unknown call-id"

    # record-call before the answer: recording starts when the call connects
    ok = node.ng(**kamailio_offer("rec-1", sdp(4000, (0, "PCMU/8000")), flags=["record-call"]))
    assert ok["result"] == "ok" and "warning" not in ok
    r = node.ng(command="start recording", call_id="rec-1", from_tag="rec-1-a")
    assert r["result"] == "ok"
    # features the engine does not have yet say so
    for command, reason in (("play DTMF", "playing DTMF is not supported by this media node yet"),):
        r = node.ng(command=command, call_id="rec-1", from_tag="rec-1-a", code="5")
        assert r == {"result": "error", "error-reason": reason}
    assert node.ng(command="delete", call_id="rec-1")["result"] == "ok"
    m = node.metrics()
    assert m[("vpbx_ng_commands_total", (("command", "invalid"), ("result", "error")))] >= 3
    assert m[("vpbx_ng_dropped_datagrams_total", ())] >= 1


def test_media_timeout_deletes_a_silent_call(tmp_path: Path, phones: tuple[Phone, Phone]) -> None:
    a, b = phones
    with media_node(tmp_path, 42600, 42699, "--timeout", "1") as n:
        call(n, "quiet-1", a, b, [(0, "PCMU/8000")], [(0, "PCMU/8000")])
        deadline = time.monotonic() + 10.0
        while n.ng(command="query", call_id="quiet-1")["result"] == "ok":
            assert time.monotonic() < deadline, "the silent call was never deleted"
            time.sleep(0.2)
        m = n.metrics()
        assert m[("vpbx_media_timeouts_total", ())] >= 2
        assert m[("vpbx_media_sessions_timed_out_total", ())] == 1
        stats = n.stats()
        assert stats["totalstatistics"]["timeoutsessions"] == 1
        assert stats["engine"]["portsused"] == 0
        lines = n.log_lines()
        timeouts = [line for line in lines if line["event"] == "media_timeout"]
        assert {line["tag"] for line in timeouts} == {"quiet-1-a", "quiet-1-b"}
        assert all(line["call_id"] == "quiet-1" for line in timeouts)
        assert any(line["event"] == "call_timed_out" for line in lines)


def test_sigterm_deletes_calls_and_exits_zero(tmp_path: Path, phones: tuple[Phone, Phone]) -> None:
    a, _ = phones
    config = tmp_path / "media-node.toml"
    config.write_text('[media_node]\ntimeout = 300\nlog-level = "debug"\n')
    with media_node(tmp_path, 42700, 42799, "--config", str(config)) as n:
        assert n.ng(**kamailio_offer("stop-1", sdp(a.port, (0, "PCMU/8000"))))["result"] == "ok"
        assert n.health()["ports_used"] == 4
        n.proc.send_signal(signal.SIGTERM)
        assert n.proc.wait(timeout=STOP_TIMEOUT) == 0
        for port in range(42700, 42800):  # every port is free again
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", port))
        lines = n.log_lines()  # every line is JSON
        started = next(line for line in lines if line["event"] == "media_node_started")
        assert started["media_timeout_s"] == 300  # from the file; flags override the rest
        stopped = next(line for line in lines if line["event"] == "media_node_stopped")
        assert stopped["calls_deleted"] == 1
        offer = next(line for line in lines if line["event"] == "ng_command")
        assert (offer["command"], offer["call_id"], offer["result"]) == ("offer", "stop-1", "ok")
