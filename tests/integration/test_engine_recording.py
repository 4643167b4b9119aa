"""Call recording through the in-process engine and the NG backend: two phones send different
tones as PCMU at real-time pace (one losing 5% of its packets); the WAV is stereo with each
phone's tone on its own channel and lasts as long as the recording ran."""

from __future__ import annotations

import socket
import threading
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from vpbx.media import Encoder, Engine, RtpPacket
from vpbx.media.ng_backend import EngineBackend, recording_name
from vpbx.ng import Endpoint, LegCodecs, RecordingOptions
from vpbx.sdp import Codec

PCMU = Codec("PCMU", 8000, None, None, 0)


@pytest.fixture
def engine() -> Iterator[Engine]:
    with Engine(interfaces=["127.0.0.1"], port_min=42900, port_max=42999, workers=1) as e:
        yield e


@pytest.fixture
def phones() -> Iterator[tuple[socket.socket, socket.socket]]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
        s.settimeout(1.0)
    try:
        yield socks[0], socks[1]
    finally:
        for s in socks:
            s.close()


def send_tone(
    sock: socket.socket, to: tuple[str, int], freq: float, ms: int, drop: Callable[[int], bool]
) -> None:
    enc = Encoder("PCMU", 8000)
    start = time.monotonic()
    for i in range(ms // 20):
        n = np.arange(i * 160, (i + 1) * 160)
        pcm = (np.sin(2 * np.pi * freq * n / 8000) * 8000).astype(np.int16)
        pkt = RtpPacket(0, i, i * 160, 0x1000 + int(freq), enc.encode(pcm))
        if not drop(i):
            sock.sendto(pkt.serialize(), to)
        time.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))


def talk(a: socket.socket, to_a: tuple[str, int], b: socket.socket, to_b: tuple[str, int]) -> None:
    """A sends 400 Hz losing every 20th packet, B sends 1000 Hz, for 1.5 s at once."""
    ts = [
        threading.Thread(target=send_tone, args=(a, to_a, 400.0, 1500, lambda i: i % 20 == 7)),
        threading.Thread(target=send_tone, args=(b, to_b, 1000.0, 1500, lambda i: False)),
    ]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def read_wav(path: Path) -> tuple[int, npt.NDArray[np.int16]]:
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return w.getframerate(), data.reshape(-1, w.getnchannels())


def dominant(x: npt.NDArray[np.int16], rate: int) -> tuple[float, float]:
    """The strongest frequency and the share of the spectrum's energy within ±20 Hz of it."""
    spec = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    peak = float(freqs[int(np.argmax(spec))])
    near = spec[np.abs(freqs - peak) <= 20].sum()
    return peak, float(near / spec.sum())


def check_stereo(path: Path, wall_s: float) -> None:
    rate, pcm = read_wav(path)
    assert rate == 8000 and pcm.shape[1] == 2
    # within 80 ms of wall time: less than the 100 ms an unfilled 5% loss would cost
    assert abs(len(pcm) / rate - wall_s) <= 0.08, (len(pcm) / rate, wall_s)
    steady = pcm[1600:10400]  # skip the jitter buffers' start-up, stop before the end
    for channel, freq in ((0, 400.0), (1, 1000.0)):
        peak, share = dominant(steady[:, channel], rate)
        # the jitter buffer's time stretching may shift a tone by up to 1% when the
        # sender runs late on a loaded machine (media-core jitter/stretch.rs)
        assert abs(peak - freq) <= max(5.0, 0.01 * freq), (channel, peak)
        assert share > 0.7, (channel, share)


def test_stereo_recording_through_the_binding(
    engine: Engine, phones: tuple[socket.socket, socket.socket], tmp_path: Path
) -> None:
    pa, pb = phones
    s = engine.create_session("rec-1")
    a = engine.add_leg(s, codec="PCMU")
    b = engine.add_leg(s, codec="PCMU")
    engine.set_remote(s, a["leg"], pa.getsockname())
    engine.set_remote(s, b["leg"], pb.getsockname())
    engine.connect(s, a["leg"], b["leg"])
    path = tmp_path / "call.wav"
    engine.start_recording(s, path)
    assert engine.engine_stats()["recordings_active"] == 1
    t0 = time.monotonic()
    talk(pa, a["rtp"], pb, b["rtp"])
    info = engine.stop_recording(s)
    wall = time.monotonic() - t0
    assert info["path"] == str(path) and info["channels"] == 2 and info["sample_rate"] == 8000
    assert info["gaps_filled"] >= 3
    check_stereo(path, wall)
    assert engine.engine_stats()["recordings_active"] == 0
    with pytest.raises(ValueError, match="not recording"):
        engine.stop_recording(s)
    engine.delete_session(s)


def test_record_call_starts_when_the_call_connects(
    engine: Engine, phones: tuple[socket.socket, socket.socket], tmp_path: Path
) -> None:
    pa, pb = phones
    be = EngineBackend(engine, recording_dir=tmp_path / "rec")
    call_id = "../../etc/passwd\x00 évil@host"
    la = be.allocate_leg(call_id, "alice", 0)
    lb = be.allocate_leg(call_id, "bob", 0)
    be.start_recording(call_id, RecordingOptions())  # before connect: pending
    assert engine.engine_stats()["recordings_active"] == 0
    for party in ("alice", "bob"):
        be.set_codecs(call_id, party, 0, LegCodecs((PCMU,), (PCMU,)))

    be.set_remote(call_id, "alice", 0, Endpoint("127.0.0.1", pa.getsockname()[1]))
    be.set_remote(call_id, "bob", 0, Endpoint("127.0.0.1", pb.getsockname()[1]))
    be.connect(call_id, "alice", "bob", [False])  # relayed: decoded only for the recording
    assert be.statistics().recordings_active == 1
    t0 = time.monotonic()
    talk(pa, (la.address, la.rtp_port), pb, (lb.address, lb.rtp_port))
    be.pause_recording(call_id)
    be.stop_recording(call_id)
    wall = time.monotonic() - t0
    files = list((tmp_path / "rec").iterdir())
    assert len(files) == 1 and files[0].parent == tmp_path / "rec"
    assert files[0].name.startswith("etc_passwd_") and files[0].suffix == ".wav"
    check_stereo(files[0], wall)
    assert be.statistics().recordings_active == 0
    # the relay was untouched: bob got alice's packets as sent
    assert len(pb.recv(2048)) == 172


def test_recording_names_are_safe() -> None:
    n = recording_name("a/b\\c..d:e", 0.0)
    assert n.startswith("a_b_c_d_e-") and n.endswith("-19700101T000000Z.wav")
    assert "/" not in recording_name("/" * 100, 0.0)
    assert recording_name("x/y", 0.0) != recording_name("x_y", 0.0)
