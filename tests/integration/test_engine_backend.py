"""EngineBackend: the NG layer's MediaBackend over a real in-process Engine (127.0.0.1,
ports 41400..41499), checked call by call and through the NG commands."""

from __future__ import annotations

import contextlib
import socket
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from vpbx.media import (
    Decoder,
    DtmfDetector,
    Encoder,
    Engine,
    RtpPacket,
    dtmf_tone,
    parse_telephone_event,
    telephone_event_packets,
)
from vpbx.media.ng_backend import EngineBackend
from vpbx.ng import (
    BackendError,
    Endpoint,
    LegCodecs,
    LegStats,
    MediaSource,
    NgServer,
    decode,
    encode,
)
from vpbx.ng.bencode import Encodable
from vpbx.sdp import Codec

PCMU = Codec("PCMU", 8000, None, None, 0)
PCMA = Codec("PCMA", 8000, None, None, 8)
G729 = Codec("G729", 8000, None, None, 18)
EVENTS = Codec("telephone-event", 8000, None, "0-16", 101)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine() -> Iterator[Engine]:
    with Engine(
        interfaces=["127.0.0.1", "lo2/127.0.0.2!192.0.2.7"], port_min=41400, port_max=41499, workers=1
    ) as e:
        yield e


@pytest.fixture
def phones() -> Iterator[tuple[socket.socket, socket.socket]]:
    socks = []
    for _ in range(2):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(1.0)
        socks.append(s)
    try:
        yield socks[0], socks[1]
    finally:
        for s in socks:
            s.close()


def port(s: socket.socket) -> int:
    return int(s.getsockname()[1])


def test_legs_map_to_one_session_per_call(engine: Engine) -> None:
    be = EngineBackend(engine)
    a = be.allocate_leg("c1", "alice", 0)
    assert a.address == "127.0.0.1" and a.rtcp_port == a.rtp_port + 1
    assert be.allocate_leg("c1", "alice", 0) == a  # again: same ports
    b = be.allocate_leg("c1", "bob", 0, interface="lo2")
    assert b.address == "192.0.2.7"  # the advertised address of the named interface
    mux = be.allocate_leg("c1", "bob", 1, interface="lo2", rtcp_mux=True)
    assert mux.rtcp_port is None
    s = engine.engine_stats()
    assert (s["sessions"], s["legs"], s["ports_used"]) == (1, 3, 5)
    with pytest.raises(BackendError, match="Unknown interface 'nope'"):
        be.allocate_leg("c1", "carol", 0, interface="nope")
    with pytest.raises(BackendError, match="family IP6"):
        be.allocate_leg("c2", "carol", 0, family="IP6")
    assert engine.engine_stats()["sessions"] == 1  # the failed call left nothing behind
    assert be.delete("c1").legs.keys() == {("alice", 0), ("bob", 0), ("bob", 1)}
    assert engine.engine_stats()["ports_used"] == 0
    assert be.delete("c1") == be.query("c1")  # unknown calls: empty stats, no error


def test_relay_then_transcode_then_stats_and_delete(
    engine: Engine, phones: tuple[socket.socket, socket.socket]
) -> None:
    finished: list[LegStats] = []
    clock = Clock()
    be = EngineBackend(engine, on_leg_finished=finished.append, clock=clock)
    pa, pb = phones
    a = be.allocate_leg("c1", "alice", 0)
    be.allocate_leg("c1", "bob", 0)
    be.set_remote("c1", "alice", 0, Endpoint("127.0.0.1", port(pa)))
    be.set_remote("c1", "bob", 0, Endpoint("127.0.0.1", port(pb)))
    be.set_codecs("c1", "alice", 0, LegCodecs((PCMU, EVENTS), (PCMU, EVENTS), 20))
    be.set_codecs("c1", "bob", 0, LegCodecs((PCMA, EVENTS), (PCMA, EVENTS), 20))

    be.connect("c1", "alice", "bob", [False])  # relay: the payload goes through as it is
    assert be.transcoded_streams() == 0
    pkt = RtpPacket(0, 1, 160, 9, bytes(160)).serialize()
    pa.sendto(pkt, ("127.0.0.1", a.rtp_port))
    assert pb.recv(2048) == pkt

    be.connect("c1", "alice", "bob", [True])  # transcode: PCMU in, PCMA out
    assert be.transcoded_streams() == 2 and be.statistics().transcoded_media == 1
    for i in range(10):
        pa.sendto(RtpPacket(0, 2 + i, 160 * (1 + i), 9, bytes(160)).serialize(), ("127.0.0.1", a.rtp_port))
    out = RtpPacket.parse(pb.recv(2048))
    assert out.payload_type == 8 and len(out.payload) == 160

    q = be.query("c1")
    alice = q.legs[("alice", 0)]
    assert alice.rtp.packets == 11 and alice.rtp.endpoint == ("127.0.0.1", port(pa))
    assert alice.codec == "PCMU/8000" and alice.transcoding
    assert alice.mos is not None and 4.3 < alice.mos <= 4.5
    assert alice.packet_loss_pct == 0.0 and alice.jitter_ms is not None
    assert alice.rtp.last_packet is not None and clock.now - 1 < alice.rtp.last_packet <= clock.now
    assert q.legs[("bob", 0)].mos is None  # bob sent nothing

    final = be.delete("c1")
    assert final.legs[("alice", 0)].rtp.packets == 11
    assert [s.rtp.packets for s in finished] == [11]  # only streams that carried media
    assert engine.engine_stats()["ports_used"] == 0 and be.transcoded_streams() == 0


def test_what_cannot_be_done_says_why(engine: Engine) -> None:
    be = EngineBackend(engine)
    be.allocate_leg("c1", "alice", 0)
    be.allocate_leg("c1", "bob", 0)
    be.set_codecs("c1", "alice", 0, LegCodecs((PCMU,), (PCMU,)))
    be.set_codecs("c1", "bob", 0, LegCodecs((G729,), (G729,)))
    with pytest.raises(BackendError, match="G729/8000 is not supported"):
        be.connect("c1", "alice", "bob", [True])
    be.connect("c1", "alice", "bob", [False])  # relaying G.729 needs no codec of ours
    with pytest.raises(BackendError, match="not an IP address"):
        be.set_remote("c1", "alice", 0, Endpoint("phone.example", 4000))
    be.set_remote("c1", "alice", 0, Endpoint("0.0.0.0", 4000))  # hold: nothing to do
    with pytest.raises(BackendError, match="No media 3"):
        be.set_codecs("c1", "alice", 3, LegCodecs((PCMU,), (PCMU,)))
    with pytest.raises(BackendError, match="Unknown call-id"):
        be.connect("zz", "a", "b", [False])
    with pytest.raises(BackendError, match=r"/x\.wav"):
        be.play_media("c1", "alice", MediaSource(file="/x.wav"))
    with pytest.raises(BackendError, match="blob"):
        be.play_media("c1", "alice", MediaSource(blob=b"RIFF"))
    with pytest.raises(BackendError, match="Not currently playing media"):
        be.stop_media("c1", "alice")
    # the key alice presses goes to bob, whose G.729 the engine cannot encode
    with pytest.raises(BackendError, match="G729/8000 is not supported"):
        be.play_dtmf("c1", "alice", 5, duration_ms=100, volume_db=-8, pause_ms=100)


def test_play_media_and_dtmf_on_a_relayed_call(
    engine: Engine, phones: tuple[socket.socket, socket.socket], tmp_path: Path
) -> None:
    be = EngineBackend(engine)
    pa, pb = phones
    for party, phone, codecs in (("alice", pa, (PCMU, EVENTS)), ("bob", pb, (PCMU,))):
        be.allocate_leg("c1", party, 0)
        be.set_remote("c1", party, 0, Endpoint("127.0.0.1", port(phone)))
        be.set_codecs("c1", party, 0, LegCodecs(codecs, codecs, 20))
    be.connect("c1", "alice", "bob", [False])
    prompt = tmp_path / "hello.wav"
    with wave.open(str(prompt), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(2 * 3200))  # 200 ms of silence
    assert be.play_media("c1", "bob", MediaSource(file=str(prompt)), repeat_times=2) == 400
    got = [RtpPacket.parse(pb.recv(2048)) for _ in range(20)]
    assert {p.payload_type for p in got} == {0}
    assert be.stop_media("c1", "bob") == 0
    # only alice has telephone-event: the pair is transcoded (PCMU to PCMU) to convert keys
    assert be.transcoded_streams() == 2
    # bob presses 9: alice negotiated telephone-event, so RFC 4733 events reach her
    be.play_dtmf("c1", "bob", 9, duration_ms=100, volume_db=-8, pause_ms=100)
    events = [RtpPacket.parse(pa.recv(2048)) for _ in range(5)]
    assert {p.payload_type for p in events} == {101} and events[0].marker
    # alice presses 1: bob has no telephone-event, so he hears in-band tones
    be.play_dtmf("c1", "alice", 1, duration_ms=100, volume_db=-8, pause_ms=100)
    tones = [RtpPacket.parse(pb.recv(2048)) for _ in range(5)]
    assert {p.payload_type for p in tones} == {0}
    be.delete("c1")


def _send_audio(phone: socket.socket, to: int, pcm: npt.NDArray[np.int16], keys: dict[int, bytes]) -> None:
    """PCMU audio to port ``to`` at real pace, with the RFC 4733 packets of ``keys`` (frame ->
    packet) before the audio of their frame."""
    enc = Encoder("PCMU", 8000)
    start, seq = time.monotonic(), 1
    for i in range(len(pcm) // 160):
        for pkt in [keys[i]] if i in keys else []:
            parsed = RtpPacket.parse(pkt)
            parsed.sequence_number = seq
            phone.sendto(parsed.serialize(), ("127.0.0.1", to))
            seq += 1
        audio = RtpPacket(0, seq, 8000 + 160 * i, 7, enc.encode(pcm[160 * i : 160 * (i + 1)]))
        phone.sendto(audio.serialize(), ("127.0.0.1", to))
        seq += 1
        time.sleep(max(0.0, start + 0.02 * (i + 1) - time.monotonic()))


def _received(phone: socket.socket) -> list[RtpPacket]:
    """What arrives until the socket stays quiet for 0.3 s (200 packets at most)."""
    phone.settimeout(0.3)
    got: list[RtpPacket] = []
    with contextlib.suppress(TimeoutError):
        while len(got) < 200:
            got.append(RtpPacket.parse(phone.recv(2048)))
    return got


def _key_five(first_frame: int) -> dict[int, bytes]:
    """The RFC 4733 packets (PT 101) of a 100 ms "5" starting at 20 ms frame ``first_frame``."""
    events = telephone_event_packets("5", 100, timestamp=8000 + 160 * first_frame)
    return {
        first_frame + n: RtpPacket(101, 0, ts, 7, payload, marker=marker).serialize()
        for n, (marker, ts, payload) in enumerate(events)
    }


def test_keys_are_converted_when_only_one_side_has_telephone_event(
    engine: Engine, phones: tuple[socket.socket, socket.socket]
) -> None:
    """alice negotiated telephone-event, bob did not, with the same codec: the pair is
    transcoded, alice's RFC 4733 key is heard by bob as a tone, bob's tones reach alice as
    events."""
    be = EngineBackend(engine)
    pa, pb = phones
    ports = {}
    for party, phone, codecs in (("alice", pa, (PCMU, EVENTS)), ("bob", pb, (PCMU,))):
        ports[party] = be.allocate_leg("c1", party, 0).rtp_port
        be.set_remote("c1", party, 0, Endpoint("127.0.0.1", port(phone)))
        be.set_codecs("c1", party, 0, LegCodecs(codecs, codecs, 20))
    be.connect("c1", "alice", "bob", [False])
    assert be.transcoded_streams() == 2
    assert be.query("c1").legs[("alice", 0)].transcoding
    # alice presses 5 (RFC 4733, from frame 10 on): bob's audio carries the tone, once
    _send_audio(pa, ports["alice"], np.zeros(8000, dtype=np.int16), _key_five(10))
    dec = Decoder("PCMU", 8000)
    to_bob = _received(pb)
    assert {p.payload_type for p in to_bob} == {0}
    heard = np.concatenate([dec.decode(p.payload) for p in to_bob])
    assert DtmfDetector(8000).feed(heard) == ["5"]
    # bob plays the tones of 9 then # in his audio: alice gets RFC 4733 events, each key once
    silence = np.zeros(1600, dtype=np.int16)
    tones = np.concatenate([silence, dtmf_tone(8000, "9", 120), silence, dtmf_tone(8000, "#", 120), silence])
    _send_audio(pb, ports["bob"], tones.astype(np.int16), {})
    to_alice = [p for p in _received(pa) if p.payload_type == 101]
    parsed = [parse_telephone_event(p.payload) for p in to_alice]
    assert [e["digit"] for e, p in zip(parsed, to_alice, strict=True) if p.marker] == ["9", "#"]
    assert [e["digit"] for e in parsed if e["end"]] == ["9"] * 3 + ["#"] * 3
    be.delete("c1")


def test_ng_transcoded_call_turns_rfc4733_keys_into_tones(
    engine: Engine, phones: tuple[socket.socket, socket.socket]
) -> None:
    """Through the NG commands: alice offers PCMU with telephone-event, bob answers PCMA alone;
    alice's answer keeps telephone-event, and her RFC 4733 key reaches bob as a PCMA tone."""
    server = NgServer(EngineBackend(engine))
    pa, pb = phones
    cookies = iter(range(100))

    def ng(**req: Encodable) -> dict[bytes, bytes]:
        cookie = f"k{next(cookies)} ".encode()
        reply = server.handle_datagram(
            cookie + encode({k.replace("_", "-"): v for k, v in req.items()}), ("h", 1), 1.0
        )
        assert reply is not None and reply.startswith(cookie)
        doc = decode(reply[len(cookie) :])
        assert isinstance(doc, dict) and doc[b"result"] == b"ok", doc
        return doc  # type: ignore[return-value]

    head = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    offer = head + f"m=audio {port(pa)} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    ng(
        command="offer",
        call_id="t1",
        from_tag="a",
        sdp=offer,
        codec={"transcode": ["PCMA"], "mask": ["PCMU"]},
    )
    answer = head + f"m=audio {port(pb)} RTP/AVP 8\r\n"
    to_alice = ng(command="answer", call_id="t1", from_tag="a", to_tag="b", sdp=answer)[b"sdp"]
    assert b"telephone-event/8000" in to_alice
    alice_port = int(to_alice.split(b"m=audio ")[1].split()[0])
    _send_audio(pa, alice_port, np.zeros(8000, dtype=np.int16), _key_five(10))
    heard = _received(pb)
    assert heard and {p.payload_type for p in heard} == {8}
    dec = Decoder("PCMA", 8000)
    assert DtmfDetector(8000).feed(np.concatenate([dec.decode(p.payload) for p in heard])) == ["5"]
    ng(command="delete", call_id="t1")


def test_deleting_a_party_and_media_timeouts(engine: Engine) -> None:
    be = EngineBackend(engine)
    a = be.allocate_leg("c1", "alice", 0)
    be.allocate_leg("c1", "bob", 0)
    be.allocate_leg("c1", "fork", 0)
    assert be.delete("c1", "fork").legs.keys() == {("fork", 0)}
    assert be.query("c1").legs.keys() == {("alice", 0), ("bob", 0)}
    session = engine.engine_stats()["sessions"]
    assert session == 1
    sid = next(s for s in range(1, 10) if be.session_call(s) == "c1")
    assert be.leg_key(sid, 0) == ("alice", 0) and be.leg_key(sid, 9) is None
    # not connected yet: silence alone never ends a ringing call
    assert be.note_timeout(sid, 0) is None and be.note_timeout(sid, 1) is None
    be.connect("c1", "alice", "bob", [False])  # connecting resets the silence marks
    assert be.note_timeout(sid, 0) is None
    be.note_resumed(sid, 0)
    assert be.note_timeout(sid, 1) is None
    assert be.note_timeout(sid, 0) == "c1"  # every leg silent: the call should go
    assert a.rtp_port > 0


def test_offer_answer_through_the_ng_commands(engine: Engine) -> None:
    server = NgServer(EngineBackend(engine))
    cookies = iter(range(100))

    def ng(**req: object) -> dict[bytes, object]:
        cookie = f"k{next(cookies)} ".encode()
        body = encode({k.replace("_", "-"): v for k, v in req.items()})
        reply = server.handle_datagram(cookie + body, ("h", 1), 1.0)
        assert reply is not None and reply.startswith(cookie)
        doc = decode(reply[len(cookie) :])
        assert isinstance(doc, dict)
        return doc  # type: ignore[return-value]

    sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\n"
    offer = ng(command="offer", call_id="n1", from_tag="a", sdp=sdp.format(4000))
    assert offer[b"result"] == b"ok" and b"m=audio 414" in offer[b"sdp"]  # type: ignore[operator]
    answer = ng(command="answer", call_id="n1", from_tag="a", to_tag="b", sdp=sdp.format(4002))
    assert answer[b"result"] == b"ok"
    assert engine.engine_stats()["ports_used"] == 4
    stats = ng(command="statistics")[b"statistics"]
    assert stats[b"engine"][b"portsused"] == 4  # type: ignore[index]
    assert ng(command="delete", call_id="n1")[b"result"] == b"ok"
    assert engine.engine_stats()["ports_used"] == 0


def test_relayed_opus_keeps_each_sides_payload_type_numbers(
    engine: Engine, phones: tuple[socket.socket, socket.socket]
) -> None:
    """Same codec, different numbers on the two sides (as a B2BUA's two negotiations give):
    the relayed packets are renumbered both ways, the payload untouched."""
    opus_a, opus_b = Codec("opus", 48000, 2, None, 111), Codec("opus", 48000, 2, None, 96)
    ev_a, ev_b = (
        Codec("telephone-event", 48000, None, "0-16", 101),
        Codec("telephone-event", 48000, None, "0-16", 100),
    )
    be = EngineBackend(engine)
    pa, pb = phones
    a = be.allocate_leg("c1", "alice", 0)
    b = be.allocate_leg("c1", "bob", 0)
    be.set_remote("c1", "alice", 0, Endpoint("127.0.0.1", port(pa)))
    be.set_remote("c1", "bob", 0, Endpoint("127.0.0.1", port(pb)))
    be.set_codecs("c1", "alice", 0, LegCodecs((opus_a, ev_a), (opus_a, ev_a), 20))
    be.set_codecs("c1", "bob", 0, LegCodecs((opus_b, ev_b), (opus_b, ev_b), 20))
    be.connect("c1", "alice", "bob", [False])
    assert be.transcoded_streams() == 0
    for pt, want in ((111, 96), (101, 100)):
        pa.sendto(RtpPacket(pt, 1, 960, 9, b"\x01\x02\x03").serialize(), ("127.0.0.1", a.rtp_port))
        got = RtpPacket.parse(pb.recv(2048))
        assert (got.payload_type, got.payload) == (want, b"\x01\x02\x03")
    for pt, want in ((96, 111), (100, 101)):
        pb.sendto(RtpPacket(pt, 1, 960, 7, b"\x04").serialize(), ("127.0.0.1", b.rtp_port))
        assert RtpPacket.parse(pa.recv(2048)).payload_type == want
    # the same numbers on both sides: no rewrite at all
    be.set_codecs("c1", "bob", 0, LegCodecs((opus_a, ev_a), (opus_a, ev_a), 20))
    be.connect("c1", "alice", "bob", [False])
    pa.sendto(RtpPacket(111, 2, 1920, 9, b"\x05").serialize(), ("127.0.0.1", a.rtp_port))
    assert RtpPacket.parse(pb.recv(2048)).payload_type == 111


def test_ng_flags_set_latching_per_leg(engine: Engine, phones: tuple[socket.socket, socket.socket]) -> None:
    """``asymmetric`` on one party: media to it goes to its SDP address even though its packets
    come from elsewhere; the other party (no flag) latches as usual."""
    be = EngineBackend(engine)
    pa, pb = phones
    sdp_a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sdp_a.bind(("127.0.0.1", 0))
    sdp_a.settimeout(1.0)
    try:
        a = be.allocate_leg("c1", "alice", 0)
        b = be.allocate_leg("c1", "bob", 0)
        be.set_remote("c1", "alice", 0, Endpoint("127.0.0.1", port(sdp_a)), latching="asymmetric")
        be.set_remote("c1", "bob", 0, Endpoint("127.0.0.1", port(pb) + 2))  # bob's SDP port is wrong
        be.connect("c1", "alice", "bob", [False])
        pb.sendto(RtpPacket(0, 1, 160, 2, bytes(160)).serialize(), ("127.0.0.1", b.rtp_port))
        assert sdp_a.recv(2048)  # alice asymmetric: bob's media goes to alice's SDP address
        pa.sendto(RtpPacket(0, 1, 160, 1, bytes(160)).serialize(), ("127.0.0.1", a.rtp_port))
        assert pb.recv(2048)  # bob latched: alice's media reaches where bob really is
        stats = be.query("c1").legs
        assert stats[("alice", 0)].rtp.endpoint is None and stats[("bob", 0)].rtp.endpoint == (
            "127.0.0.1",
            port(pb),
        )
    finally:
        sdp_a.close()
