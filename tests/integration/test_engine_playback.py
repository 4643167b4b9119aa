"""Prompts and DTMF through vpbx.media.Engine over real UDP on 127.0.0.1 (ports 41800..41859):
what an IVR needs (play a WAV, hear the caller's keys) and what a PBX sends (DTMF)."""

from __future__ import annotations

import contextlib
import select
import socket
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import dominant_freq, sine
from vpbx.media import Decoder, DtmfDetector, Engine, MediaError, RtpPacket, telephone_event_packets
from vpbx.media.engine import Address, EngineEvent


@contextlib.contextmanager
def engine(port_min: int) -> Iterator[Engine]:
    e = Engine(port_min=port_min, port_max=port_min + 19, workers=1)
    try:
        yield e
    finally:
        e.close()


@pytest.fixture
def peers() -> Iterator[Callable[[], socket.socket]]:
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


def receive(s: socket.socket, n: int, quiet: float = 0.5) -> list[RtpPacket]:
    """Up to ``n`` packets, until the socket is quiet for ``quiet`` seconds."""
    got: list[RtpPacket] = []
    s.settimeout(quiet)
    while len(got) < n:
        try:
            got.append(RtpPacket.parse(s.recv(2048)))
        except TimeoutError:
            break
    return got


def events_until(
    e: Engine, want: Callable[[list[EngineEvent]], bool], timeout: float = 3.0
) -> list[EngineEvent]:
    seen: list[EngineEvent] = []
    deadline = time.monotonic() + timeout
    while not want(seen):
        left = deadline - time.monotonic()
        assert left > 0, f"not within {timeout} s; got {seen}"
        select.select([e.event_fd()], [], [], left)
        seen.extend(e.poll_events())
    return seen


def pcmu_call(e: Engine, pa: socket.socket, pb: socket.socket, **dtmf: object) -> tuple[int, int, Address]:
    """Legs a (PCMU, telephone-event 101) and b connected; returns (session, leg a, a's port)."""
    s = e.create_session("ivr@test")
    a = e.add_leg(s)
    b = e.add_leg(s)
    e.set_leg_codec(s, a["leg"], "PCMU", telephone_event_pt=101, **dtmf)  # type: ignore[arg-type]
    e.set_remote(s, a["leg"], addr(pa))
    e.set_remote(s, b["leg"], addr(pb))
    e.connect(s, a["leg"], b["leg"])
    return s, a["leg"], a["rtp"]


def write_wav(path: Path, rate: int, seconds: float) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(sine(rate, 1000.0, seconds).tobytes())
    return path


def test_a_prompt_plays_and_ends_with_an_event(peers: Callable[[], socket.socket], tmp_path: Path) -> None:
    pa, pb = peers(), peers()
    with engine(41800) as e:
        s, a, _ = pcmu_call(e, pa, pb)
        info = e.play(s, a, write_wav(tmp_path / "p.wav", 48000, 0.3))
        assert info["duration_ms"] == 300
        assert e.session_stats(s)["legs"][0]["playing"] == info["play"]
        got = receive(pa, 40)
        assert 14 <= len(got) <= 16 and got[0].marker
        assert [p.sequence_number - got[0].sequence_number for p in got] == list(range(len(got)))
        pcm = np.concatenate([Decoder("PCMU", 8000).decode(p.payload) for p in got])
        assert abs(dominant_freq(pcm, 8000) - 1000.0) < 10.0
        seen = events_until(e, lambda evs: any(ev["type"] == "play_ended" for ev in evs))
        ended = [ev for ev in seen if ev["type"] == "play_ended"]
        expected = {"type": "play_ended", "session": s, "leg": a, "play": info["play"], "reason": "finished"}
        assert ended == [expected]
        with pytest.raises(MediaError, match="mono 16-bit"):
            stereo = tmp_path / "stereo.wav"
            with wave.open(str(stereo), "wb") as w:
                w.setnchannels(2)
                w.setsampwidth(2)
                w.setframerate(8000)
                w.writeframes(bytes(640))
            e.play(s, a, stereo)
        with pytest.raises(MediaError, match="repeat"):
            e.play(s, a, tmp_path / "p.wav", repeat=0)


def test_caller_keys_become_dtmf_events(peers: Callable[[], socket.socket]) -> None:
    pa, pb = peers(), peers()
    with engine(41820) as e:
        _, a, a_rtp = pcmu_call(e, pa, pb, detect_dtmf=True)
        for seq, (marker, ts, payload) in enumerate(telephone_event_packets("5", 120, timestamp=8000)):
            packet = RtpPacket(101, seq, ts, 0x77, payload, marker=marker).serialize()
            pa.sendto(packet, a_rtp)
            pa.sendto(packet, a_rtp)  # duplicated on the way: still one key
        seen = events_until(e, lambda evs: any(ev["type"] == "dtmf" for ev in evs))
        time.sleep(0.2)
        seen.extend(e.poll_events())
        keys = [ev for ev in seen if ev["type"] == "dtmf"]
        assert len(keys) == 1
        assert keys[0]["digit"] == "5" and keys[0]["source"] == "rfc4733" and keys[0]["leg"] == a


def test_dtmf_out_as_events_and_as_tones(peers: Callable[[], socket.socket]) -> None:
    pa, pb = peers(), peers()
    with engine(41840) as e:
        s, a, _ = pcmu_call(e, pa, pb)
        assert e.send_dtmf(s, a, "3") == 100
        got = receive(pa, 20)
        assert {p.payload_type for p in got} == {101} and got[0].marker
        assert e.send_dtmf(s, a, "42", mode="inband", duration_ms=80, pause_ms=60) == 220
        tones = [p for p in receive(pa, 30) if p.payload_type == 0]
        pcm = np.concatenate([Decoder("PCMU", 8000).decode(p.payload) for p in tones])
        assert DtmfDetector(8000).feed(pcm) == ["4", "2"]
        with pytest.raises(MediaError, match="not a key"):
            e.send_dtmf(s, a, "5x")
        with pytest.raises(MediaError, match="mode"):
            e.send_dtmf(s, a, "5", mode="sip-info")
