"""vpbx.media.Engine over real UDP sockets on 127.0.0.1.

Each test runs its own engine on its own slice of 41000-41999 so tests never
share ports; every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from conftest import dominant_freq, sine
from vpbx.io.media_events import EventWatcher, watch_events
from vpbx.media import Decoder, Encoder, Engine, MediaError, RtpPacket
from vpbx.media.engine import Address, EngineEvent, LegStats

Datagrams = list[tuple[bytes, Address]]


@contextlib.contextmanager
def engine(port_min: int, span: int = 20, **kw: object) -> Iterator[Engine]:
    e = Engine(port_min=port_min, port_max=port_min + span - 1, **kw)  # type: ignore[arg-type]
    try:
        yield e
    finally:
        e.close()


@pytest.fixture
def peers() -> Iterator[Callable[[], socket.socket]]:
    """Makes UDP sockets on 127.0.0.1 standing in for phones; closes them after."""
    made: list[socket.socket] = []

    def make() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.bind(("127.0.0.1", 0))
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def addr(s: socket.socket) -> Address:
    host, port = s.getsockname()
    return (host, port)


def rtp(seq: int, ssrc: int, tag: int, pt: int = 0) -> bytes:
    payload = bytes((tag ^ seq ^ i) & 0xFF for i in range(160))
    return RtpPacket(pt, seq, seq * 160, ssrc, payload).serialize()


def recv_n(s: socket.socket, n: int, timeout: float = 2.0) -> Datagrams:
    """Up to `n` datagrams, waiting at most `timeout` seconds in all."""
    got: Datagrams = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            data, src = s.recvfrom(2048)
        except TimeoutError:
            break
        got.append((data, (src[0], src[1])))
    return got


def wait_event(e: Engine, want: Callable[[EngineEvent], bool], timeout: float = 3.0) -> list[EngineEvent]:
    """Events (all of them) until one matches `want`; waits on the event fd."""
    seen: list[EngineEvent] = []
    deadline = time.monotonic() + timeout
    while not any(want(ev) for ev in seen):
        left = deadline - time.monotonic()
        assert left > 0, f"no matching event within {timeout} s; got {seen}"
        select.select([e.event_fd()], [], [], left)
        seen.extend(e.poll_events())
    return seen


def bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def leg_stats(e: Engine, session: int, leg: int) -> LegStats:
    (stats,) = [lg for lg in e.session_stats(session)["legs"] if lg["leg"] == leg]
    return stats


def call(
    e: Engine, pa: socket.socket, pb: socket.socket, **leg_kw: object
) -> tuple[int, int, Address, int, Address]:
    """A session with legs a (for peer pa) and b (for pb), connected."""
    s = e.create_session("call@test")
    a = e.add_leg(s, label="caller", **leg_kw)  # type: ignore[arg-type]
    b = e.add_leg(s, label="callee", **leg_kw)  # type: ignore[arg-type]
    e.set_remote(s, a["leg"], addr(pa))
    e.set_remote(s, b["leg"], addr(pb))
    e.connect(s, a["leg"], b["leg"])
    return s, a["leg"], a["rtp"], b["leg"], b["rtp"]


def test_relays_100_packets_each_way_unchanged(peers: Callable[[], socket.socket]) -> None:
    pa, pb = peers(), peers()
    with engine(41000, workers=2) as e:
        s, a, a_rtp, b, b_rtp = call(e, pa, pb)
        for sender, to, receiver, src, ssrc in [(pa, a_rtp, pb, b_rtp, 0xA), (pb, b_rtp, pa, a_rtp, 0xB)]:
            sent = [rtp(i, ssrc, tag=ssrc) for i in range(100)]
            for p in sent:
                sender.sendto(p, to)
            got = recv_n(receiver, 100)
            assert len(got) == 100
            assert sorted(d for d, _ in got) == sorted(sent), "payloads arrive unchanged"
            assert {from_ for _, from_ in got} == {src}, "sent from the other leg's port"
        for leg, peer, ssrc in [(a, pa, 0xA), (b, pb, 0xB)]:
            st = leg_stats(e, s, leg)
            assert (st["packets_in"], st["packets_out"]) == (100, 100)
            assert st["bytes_in"] == st["bytes_out"] == 100 * 172
            assert (st["ssrc"], st["lost"]) == (ssrc, 0)
            # RFC 3550 A.1: counting may start after the source's probation.
            assert 99 <= st["expected"] <= 100
            assert st["peer"] == addr(peer)
            assert st["latched"]
            assert not st["transcoding"]
            assert st["dropped"] == dict.fromkeys(st["dropped"], 0)
            assert st["last_packet_age_s"] is not None
            assert 0 <= st["last_packet_age_s"] < 5
        assert [lg["label"] for lg in e.session_stats(s)["legs"]] == ["caller", "callee"]
        assert e.engine_stats()["packets_relayed"] == 200


def test_latches_to_where_the_endpoint_really_sends_from(peers: Callable[[], socket.socket]) -> None:
    declared, real, pb = peers(), peers(), peers()
    with engine(41020) as e:
        s = e.create_session("nat@test")
        a = e.add_leg(s)
        b = e.add_leg(s)
        e.set_remote(s, a["leg"], addr(declared))  # what the SDP said (behind NAT)
        e.set_remote(s, b["leg"], addr(pb))
        e.connect(s, a["leg"], b["leg"])
        for i in range(5):
            real.sendto(rtp(i, 1, 1), a["rtp"])
        assert len(recv_n(pb, 5)) == 5
        events = wait_event(e, lambda ev: ev["type"] == "latched" and ev["leg"] == a["leg"])
        assert {
            "type": "latched",
            "session": s,
            "leg": a["leg"],
            "peer": addr(real),
            "rtcp": False,
        } in events
        for i in range(5):
            pb.sendto(rtp(i, 2, 2), b["rtp"])
        assert len(recv_n(real, 5)) == 5, "media goes to the latched address"
        assert recv_n(declared, 1, timeout=0.3) == [], "and not to the SDP one"
        st = leg_stats(e, s, a["leg"])
        assert (st["remote_rtp"], st["peer"], st["latched"]) == (addr(declared), addr(real), True)


def test_strict_source_drops_strangers(peers: Callable[[], socket.socket]) -> None:
    pa, pb, stranger = peers(), peers(), peers()
    with engine(41040, strict_source=True) as e:
        s, a, a_rtp, _, _ = call(e, pa, pb)
        pa.sendto(rtp(0, 1, 1), a_rtp)
        assert len(recv_n(pb, 1)) == 1
        for i in range(5):
            stranger.sendto(rtp(i, 9, 9), a_rtp)
        assert recv_n(pb, 1, timeout=0.3) == []
        assert leg_stats(e, s, a)["dropped"]["stranger"] == 5
        assert e.engine_stats()["dropped"]["stranger"] == 5


def test_delete_frees_every_port() -> None:
    with engine(41060, span=10, workers=1) as e:
        assert e.engine_stats()["ports_used"] == 0
        s = e.create_session("ports@test")
        a = e.add_leg(s)
        b = e.add_leg(s, rtcp_mux=True)
        assert a["rtcp"] is not None
        assert a["rtp"][1] % 2 == 0, "RTP on an even port (RFC 3550 §11)"
        assert a["rtcp"][1] == a["rtp"][1] + 1
        assert b["rtcp"] is None
        ports = [a["rtp"][1], a["rtcp"][1], b["rtp"][1]]
        st = e.engine_stats()
        assert (st["sessions"], st["legs"], st["ports_used"], st["ports_free"]) == (1, 2, 3, 7)
        assert not any(bindable(p) for p in ports)
        final = e.delete_session(s)
        assert (final["session"], final["call_id"], len(final["legs"])) == (s, "ports@test", 2)
        st = e.engine_stats()
        assert (st["sessions"], st["legs"], st["ports_used"], st["ports_free"]) == (0, 0, 0, 10)
        assert st["interfaces"][0]["ports_used"] == 0
        assert all(bindable(p) for p in ports)
        with pytest.raises(MediaError, match=f"unknown session #{s}"):
            e.session_stats(s)
        with pytest.raises(MediaError, match="unknown session"):
            e.delete_session(s)


def send_tone(sock: socket.socket, to: Address, codec: str, *, pt: int, freq: float, seconds: float) -> None:
    """`seconds` of a tone as 20 ms packets at real-time pace."""
    enc = Encoder(codec, 48000 if codec == "opus" else 8000)
    frame = enc.sample_rate // 50
    step = enc.clock_rate // 50
    pcm = sine(enc.sample_rate, freq, seconds)
    start = time.monotonic()
    for i in range(len(pcm) // frame):
        payload = enc.encode(pcm[i * frame : (i + 1) * frame])
        sock.sendto(RtpPacket(pt, i, i * step, 0x70E, payload).serialize(), to)
        time.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))


def receive_tone(sock: socket.socket, codec: str, pt: int) -> tuple[int, float]:
    """Decodes what arrives; returns the packet count and the dominant frequency."""
    got = recv_n(sock, 80, timeout=1.5)
    dec = Decoder(codec, 48000 if codec == "opus" else 8000)
    packets = [RtpPacket.parse(d) for d, _ in got]
    assert {p.payload_type for p in packets} == {pt}
    assert len({p.ssrc for p in packets}) == 1
    pcm = np.concatenate([dec.decode(p.payload) for p in packets])
    steady = pcm[dec.sample_rate // 10 :]  # past codec and jitter-buffer start-up
    return len(packets), dominant_freq(steady, dec.sample_rate)


def test_transcodes_pcmu_and_opus_both_ways(peers: Callable[[], socket.socket]) -> None:
    pa, pb = peers(), peers()
    with engine(41080, workers=1) as e:
        s = e.create_session("transcode@test")
        a = e.add_leg(s, codec="PCMU")
        b = e.add_leg(s, codec="opus", payload_type=111)
        e.set_remote(s, a["leg"], addr(pa))
        e.set_remote(s, b["leg"], addr(pb))
        e.connect(s, a["leg"], b["leg"])
        assert all(lg["transcoding"] for lg in e.session_stats(s)["legs"])
        opus_side = {"pt": 111, "freq": 440.0, "seconds": 1.0}
        other = threading.Thread(target=send_tone, args=(pb, b["rtp"], "opus"), kwargs=opus_side)
        other.start()
        send_tone(pa, a["rtp"], "PCMU", pt=0, freq=1000.0, seconds=1.0)
        other.join(timeout=5)
        for sock, codec, pt, freq in [(pb, "opus", 111, 1000.0), (pa, "PCMU", 0, 440.0)]:
            n, heard = receive_tone(sock, codec, pt)
            # All of the second but the jitter buffer's start-up delay.
            assert 40 <= n <= 56, f"{n} {codec} packets"
            assert abs(heard - freq) < 10, f"{codec} side hears {heard:.1f} Hz"


def test_media_timeout_arrives_through_watch_events(peers: Callable[[], socket.socket]) -> None:
    pa, pb = peers(), peers()
    with engine(41100, workers=1, media_timeout_s=0.2) as e:
        s, a, a_rtp, b, _ = call(e, pa, pb)

        async def main() -> list[EngineEvent]:
            got: asyncio.Queue[EngineEvent] = asyncio.Queue()
            task = asyncio.create_task(watch_events(e, got.put_nowait))
            seen: list[EngineEvent] = []
            while {ev["leg"] for ev in seen if ev["type"] == "media_timeout"} != {a, b}:
                seen.append(await asyncio.wait_for(got.get(), 3.0))
            pa.sendto(rtp(0, 1, 1), a_rtp)
            while seen[-1]["type"] != "media_resumed":
                seen.append(await asyncio.wait_for(got.get(), 3.0))
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert not asyncio.get_running_loop().remove_reader(e.event_fd()), "unregistered"
            return seen

        seen = asyncio.run(main())
        timeouts = [ev for ev in seen if ev["type"] == "media_timeout"]
        assert len(timeouts) == 2
        for ev in timeouts:
            assert ev["session"] == s
            assert 0.2 <= ev["silent_for_s"] < 2.0
        assert seen[-1] == {"type": "media_resumed", "session": s, "leg": a}


def test_watcher_survives_a_failing_callback(peers: Callable[[], socket.socket]) -> None:
    pa, pb = peers(), peers()
    with engine(41120, workers=1, media_timeout_s=0.1) as e:
        call(e, pa, pb)

        async def main() -> tuple[list[EngineEvent], list[dict[str, object]]]:
            loop = asyncio.get_running_loop()
            errors: list[dict[str, object]] = []
            loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
            calls: list[EngineEvent] = []
            done = asyncio.Event()

            def callback(ev: EngineEvent) -> None:
                calls.append(ev)
                if len(calls) == 2:
                    done.set()
                if len(calls) == 1:
                    raise RuntimeError("boom")

            with EventWatcher(e, callback) as w:
                await asyncio.wait_for(done.wait(), 3.0)
                assert w.delivered == 2
            assert w.closed
            return calls, errors

        calls, errors = asyncio.run(main())
        assert [ev["type"] for ev in calls] == ["media_timeout", "media_timeout"]
        assert len(errors) == 1
        assert isinstance(errors[0]["exception"], RuntimeError)


def test_bad_arguments_get_clear_errors(peers: Callable[[], socket.socket]) -> None:
    with pytest.raises(MediaError, match='local address "nope" is not an IP address'):
        Engine(interfaces=["nope"])
    with pytest.raises(MediaError, match="the advertised address cannot be unspecified"):
        Engine(interfaces=["0.0.0.0"])
    with pytest.raises(TypeError):
        Engine(interfaces="127.0.0.1")
    with pytest.raises(MediaError, match=re.escape("port range 41999..=41000")):
        Engine(port_min=41999, port_max=41000)
    with pytest.raises(MediaError, match=re.escape("port_max must be in 1..=65535, got 70000")):
        Engine(port_min=41000, port_max=70000)
    with pytest.raises(MediaError, match=re.escape("media_timeout_s must be a finite number of seconds > 0")):
        Engine(media_timeout_s=-1)
    with pytest.raises(MediaError, match=re.escape("opus_complexity must be in 0..=10")):
        Engine(opus_complexity=11)
    pa = peers()
    with engine(41140, span=4, workers=1, max_sessions=1) as e:
        s = e.create_session("bad@test")
        with pytest.raises(MediaError, match="too many sessions: the limit of 1"):
            e.create_session("second")
        assert e.engine_stats()["sessions_refused"] == 1
        with pytest.raises(TypeError):
            e.create_session(7)  # type: ignore[arg-type]
        for wrong in [99, -1]:
            with pytest.raises(MediaError, match=f"unknown session #?{wrong}"):
                e.add_leg(wrong)
        with pytest.raises(TypeError):
            e.add_leg("1")  # type: ignore[arg-type]
        with pytest.raises(MediaError, match='unknown interface "nope"'):
            e.add_leg(s, interface="nope")
        with pytest.raises(MediaError, match='unknown codec "G729"; known: PCMU, PCMA'):
            e.add_leg(s, codec="G729")
        with pytest.raises(MediaError, match="opus has no static payload type"):
            e.add_leg(s, codec="opus")
        with pytest.raises(MediaError, match=re.escape("payload_type must be in 0..=127")):
            e.add_leg(s, codec="opus", payload_type=200)
        with pytest.raises(MediaError, match="payload_type needs codec"):
            e.add_leg(s, payload_type=0)
        with pytest.raises(MediaError, match="L16 needs clock_rate"):
            e.add_leg(s, codec="L16", payload_type=96)
        with pytest.raises(MediaError, match="PCMU"):
            e.add_leg(s, codec="PCMU", clock_rate=16000)
        assert e.engine_stats()["ports_used"] == 0, "refused legs hold no ports"
        a = e.add_leg(s, codec="PCMU")
        b = e.add_leg(s, codec="opus", payload_type=111, ptime_ms=25)
        with pytest.raises(MediaError, match="no free"):
            e.add_leg(s)
        with pytest.raises(MediaError, match="ptime 25 ms"):
            e.connect(s, a["leg"], b["leg"])
        with pytest.raises(MediaError, match=f"unknown leg 9 in session #{s}"):
            e.connect(s, a["leg"], 9)
        with pytest.raises(TypeError, match=r"rtp must be a \(host, port\) tuple"):
            e.set_remote(s, a["leg"], "127.0.0.1:4000")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"rtcp must be a \(host, port\) tuple"):
            e.set_remote(s, a["leg"], addr(pa), ("127.0.0.1",))  # type: ignore[arg-type]
        with pytest.raises(MediaError, match=re.escape('rtp host "example.com" is not an IP address')):
            e.set_remote(s, a["leg"], ("example.com", 4000))
        with pytest.raises(MediaError, match=re.escape("rtp port must be in 1..=65535, got 70000")):
            e.set_remote(s, a["leg"], ("127.0.0.1", 70000))
        e.set_remote(s, a["leg"], ("::1", 4000))
        assert leg_stats(e, s, a["leg"])["remote_rtp"] == ("::1", 4000)
    with pytest.raises(MediaError, match="the media engine is closed"):
        e.create_session("late")
    with pytest.raises(MediaError, match="closed"):
        e.poll_events()
    e.close()  # idempotent


def test_close_and_garbage_collection_free_the_ports() -> None:
    e = Engine(port_min=41160, port_max=41163, workers=1)
    port = e.add_leg(e.create_session("gc@test"))["rtp"][1]
    assert not bindable(port)
    del e
    gc.collect()
    assert bindable(port)
    with Engine(port_min=41160, port_max=41163, workers=1) as e2:
        port = e2.add_leg(e2.create_session("with@test"))["rtp"][1]
        assert not e2.closed
        assert "port_min=41160" in repr(e2)
    assert e2.closed
    assert repr(e2) == "Engine(closed)"
    assert bindable(port)


def test_interfaces_advertise_their_public_address() -> None:
    ifs = ["lo/127.0.0.1", "pub/127.0.0.2!203.0.113.5"]
    with engine(41180, span=10, workers=1, interfaces=ifs) as e:
        s = e.create_session("if@test")
        a = e.add_leg(s)
        b = e.add_leg(s, interface="pub", rtcp_mux=True)
        assert a["rtp"][0] == "127.0.0.1"
        assert b["rtp"][0] == "203.0.113.5"
        assert [lg["interface"] for lg in e.session_stats(s)["legs"]] == ["lo", "pub"]
        st = [
            (i["name"], i["local"], i["advertised"], i["ports_used"]) for i in e.engine_stats()["interfaces"]
        ]
        assert st == [("lo", "127.0.0.1", "127.0.0.1", 2), ("pub", "127.0.0.2", "203.0.113.5", 1)]


def test_control_calls_from_many_threads() -> None:
    with engine(41200, span=100, workers=2) as e:
        errors: list[BaseException] = []

        def churn(n: int) -> None:
            try:
                for i in range(25):
                    s = e.create_session(f"t{n}-{i}")
                    legs = [e.add_leg(s, rtcp_mux=True)["leg"] for _ in range(2)]
                    e.connect(s, *legs)
                    e.session_stats(s)
                    assert e.delete_session(s)["call_id"] == f"t{n}-{i}"
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=churn, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        assert not any(t.is_alive() for t in threads)
        assert errors == []
        st = e.engine_stats()
        assert (st["sessions"], st["legs"], st["ports_used"]) == (0, 0, 0)


def test_set_leg_codec_switches_a_connected_pair_between_relay_and_transcoding() -> None:
    with engine(41300, span=10, workers=1) as e:
        s = e.create_session("late-codec@test")
        a, b = e.add_leg(s)["leg"], e.add_leg(s)["leg"]
        e.set_remote(s, a, ("127.0.0.1", 5000))
        e.set_remote(s, b, ("127.0.0.1", 5002))
        e.connect(s, a, b)

        def transcoding() -> list[bool]:
            return [lg["transcoding"] for lg in e.session_stats(s)["legs"]]

        assert transcoding() == [False, False]
        e.set_leg_codec(s, a, "PCMU")
        e.set_leg_codec(s, b, "opus", clock_rate=48000, payload_type=111)
        assert transcoding() == [True, True]  # reconnected at once
        with pytest.raises(MediaError, match="ptime 30"):
            e.set_leg_codec(s, b, "opus", clock_rate=48000, payload_type=111, ptime_ms=30)
        assert transcoding() == [True, True]  # the refused change left the pair as it was
        with pytest.raises(MediaError, match="payload_type needs codec"):
            e.set_leg_codec(s, a, None, payload_type=0)
        with pytest.raises(MediaError, match="unknown codec"):
            e.set_leg_codec(s, a, "G729")
        with pytest.raises(MediaError, match="unknown leg"):
            e.set_leg_codec(s, 7, "PCMU")
        e.set_leg_codec(s, b, None, clock_rate=48000)  # relay again; jitter at opus' clock
        assert transcoding() == [False, False]
