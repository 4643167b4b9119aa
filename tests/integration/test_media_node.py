"""``vpbx media-node`` as a real process on 127.0.0.1, driven the way Kamailio's rtpengine
module drives rtpengine: NG over UDP, RTP between two test sockets through the node's ports,
/health and /metrics over HTTP, and SIGTERM at the end.

Ports: RTP from 42000..42999 (one slice per node), NG and HTTP on free ephemeral ports.
Every wait has a timeout; every node process is killed in teardown whatever happens.
"""

from __future__ import annotations

import json
import signal
import socket
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from media_node_proc import STOP_TIMEOUT, Node, media_node, text

from conftest import dominant_freq, sine
from vpbx.media import Decoder, Encoder, RtpPacket, parse_telephone_event, telephone_event_packets
from vpbx.ng import decode
from vpbx.sdp import parse as parse_sdp


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
        reply = json.loads(body) if body.startswith(b"{") else text(decode(body))
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
    # nothing to stop, and no file of ours as a blob
    r = node.ng(command="stop media", call_id="rec-1", from_tag="rec-1-a")
    assert r == {"result": "error", "error-reason": "Not currently playing media"}
    r = node.ng(command="play media", call_id="rec-1", from_tag="rec-1-a", blob=b"RIFF")
    assert r["result"] == "error" and "blob" in r["error-reason"]
    assert node.ng(command="delete", call_id="rec-1")["result"] == "ok"
    m = node.metrics()
    assert m[("vpbx_ng_commands_total", (("command", "invalid"), ("result", "error")))] >= 3
    assert m[("vpbx_ng_dropped_datagrams_total", ())] >= 1


def test_play_media_and_play_dtmf_reach_the_phones(
    node: Node, phones: tuple[Phone, Phone], tmp_path: Path
) -> None:
    a, b = phones
    formats = [(0, "PCMU/8000"), (101, "telephone-event/8000")]
    _, b_sends_to, _, _ = call(node, "play-1", a, b, formats, formats)
    prompt = tmp_path / "prompt.wav"
    with wave.open(str(prompt), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(sine(8000, 1000.0, 0.4).tobytes())
    r = node.ng(command="play media", call_id="play-1", from_tag="play-1-a", file=str(prompt))
    assert r == {"result": "ok", "duration": 400}
    got = [RtpPacket.parse(p) for p in a.receive(40, quiet_s=0.5)]
    assert 19 <= len(got) <= 21, len(got)  # 400 ms of 20 ms packets
    assert got[0].marker and {p.payload_type for p in got} == {0}
    dec = Decoder("PCMU", 8000)
    pcm = np.concatenate([dec.decode(p.payload) for p in got])
    assert abs(dominant_freq(pcm, 8000) - 1000.0) < 10.0
    missing = node.ng(command="play media", call_id="play-1", from_tag="play-1-a", file="/no/such.wav")
    assert missing["result"] == "error" and "/no/such.wav" in missing["error-reason"]

    # the key "pressed" by a reaches b as RFC 4733 events with b's payload type
    r = node.ng(command="play DTMF", call_id="play-1", from_tag="play-1-a", code="7", duration=100)
    assert r == {"result": "ok"}
    events = [RtpPacket.parse(p) for p in b.receive(20, quiet_s=0.5)]
    assert events and {p.payload_type for p in events} == {101}
    parsed = [parse_telephone_event(p.payload) for p in events]
    assert {e["digit"] for e in parsed} == {"7"} and sum(bool(e["end"]) for e in parsed) == 3

    # a key pressed on b's phone (RFC 4733) is logged and counted by the node
    events_out = [
        RtpPacket(101, 500 + i, 8000, 0xB0B, payload, marker=marker).serialize()
        for i, (marker, _, payload) in enumerate(telephone_event_packets("5", 100))
    ]
    b.send(b_sends_to, events_out, pace_s=0.02)
    deadline = time.monotonic() + 5.0
    while not any(line["event"] == "dtmf" for line in node.log_lines()):
        assert time.monotonic() < deadline, "no dtmf log line"
        time.sleep(0.1)
    line = next(line for line in node.log_lines() if line["event"] == "dtmf")
    assert (line["digit"], line["source"], line["call_id"]) == ("5", "rfc4733", "play-1")
    assert node.metrics()[("vpbx_media_dtmf_events_total", (("source", "rfc4733"),))] == 1
    # the prompt played to its end: logged and counted
    ended = [line for line in node.log_lines() if line["event"] == "play_ended"]
    assert [(e["reason"], e["call_id"]) for e in ended] == [("finished", "play-1")]
    assert node.metrics()[("vpbx_media_play_ended_total", (("reason", "finished"),))] == 1
    assert node.ng(command="delete", call_id="play-1")["result"] == "ok"


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


def test_an_unanswered_offer_is_deleted_after_the_offer_timeout(
    tmp_path: Path, phones: tuple[Phone, Phone]
) -> None:
    a, _ = phones
    with media_node(tmp_path, 42700, 42799, "--offer-timeout", "1") as n:
        offer = n.ng(**kamailio_offer("lost-1", sdp(a.port, (0, "PCMU/8000"))))
        assert offer["result"] == "ok" and n.stats()["engine"]["portsused"] == 4
        deadline = time.monotonic() + 10.0
        while n.ng(command="query", call_id="lost-1")["result"] == "ok":
            assert time.monotonic() < deadline, "the unanswered offer was never deleted"
            time.sleep(0.2)
        assert n.stats()["engine"]["portsused"] == 0
        assert n.metrics()[("vpbx_media_offers_timed_out_total", ())] == 1
        assert any(
            line["event"] == "offer_timed_out" and line["call_id"] == "lost-1" for line in n.log_lines()
        )


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
