"""Jitter buffer scenarios through the binding, on a fake clock: what a
listener would notice (gaps, repeats, growing delay) is what we assert."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import dominant_freq, sine
from vpbx.media import Encoder, JitterBuffer, MediaError, RtpPacket

RATE, FRAME = 8000, 160


def stream(seconds: float, ssrc: int = 0x1234, seq0: int = 100, ts0: int = 0) -> list[bytes]:
    x = sine(RATE, 440.0, seconds)
    enc = Encoder("PCMU", RATE)
    return [
        RtpPacket(
            0,
            (seq0 + i) & 0xFFFF,
            (ts0 + i * FRAME) & 0xFFFFFFFF,
            ssrc,
            enc.encode(x[i * FRAME : (i + 1) * FRAME]),
        ).serialize()
        for i in range(len(x) // FRAME)
    ]


def play(
    jb: JitterBuffer, packets: list[bytes], arrivals: list[float], until_ms: float, start_ms: float = 0.0
) -> np.ndarray:
    """Pushes packets at their arrival times and pops every 20 ms from start_ms."""
    order = sorted(range(len(packets)), key=lambda i: arrivals[i])
    out, k, t = [], 0, start_ms
    while t <= until_ms:
        while k < len(order) and arrivals[order[k]] <= t:
            jb.push(packets[order[k]], arrivals[order[k]])
            k += 1
        frame = jb.pop(t)
        if frame is not None:
            assert len(frame) == FRAME  # exactly one ptime, always
            out.append(frame)
        t += 20.0
    return np.concatenate(out)


def test_nothing_before_the_first_packet() -> None:
    jb = JitterBuffer(RATE, 20, codec="PCMU")
    assert jb.pop(0.0) is None
    assert jb.stats()["played"] == 0


def test_reordered_packets_play_in_order_without_loss() -> None:
    pkts = stream(4.0)
    arr = [
        40.0 + 20 * i + (25.0 if i % 10 == 3 else 0.0) for i in range(len(pkts))
    ]  # every 10th late by 15 ms
    jb = JitterBuffer(RATE, 20, codec="PCMU")
    out = play(jb, pkts, arr, 4600)
    s = jb.stats()
    assert s["reordered"] > 0 and s["lost"] == 0
    assert s["late"] <= 2  # the first few, before the target adapts
    assert abs(dominant_freq(out[4000:], RATE) - 440.0) < 3


def test_a_loss_burst_is_concealed_and_playout_stays_real_time() -> None:
    pkts = stream(4.0)
    arr = [40.0 + 20 * i for i in range(len(pkts))]
    kept = [i for i in range(len(pkts)) if not 80 <= i < 85]  # 100 ms burst
    jb = JitterBuffer(RATE, 20, codec="PCMU")
    out = play(jb, [pkts[i] for i in kept], [arr[i] for i in kept], 4200)
    s = jb.stats()
    assert s["lost"] == 5
    assert s["concealed_samples"] + s["silence_samples"] >= 5 * FRAME
    assert len(out) == len(play(JitterBuffer(RATE, 20, codec="PCMU"), pkts, arr, 4200))


@pytest.mark.parametrize("ppm", [100.0, -100.0])
def test_sender_clock_drift_keeps_delay_bounded(ppm: float) -> None:
    pkts = stream(120.0)  # two minutes; 100 ppm drifts 12 ms
    arr = [40.0 + 20 * i * (1 - ppm * 1e-6) for i in range(len(pkts))]
    jb = JitterBuffer(RATE, 20, codec="PCMU")
    play(jb, pkts, arr, arr[-1])  # stop with the last packet: measure steady state
    s = jb.stats()
    assert s["lost"] == 0 and s["late"] == 0
    assert abs(s["current_delay_ms"] - s["target_delay_ms"]) <= 10


def test_ssrc_change_switches_to_the_new_stream() -> None:
    first = stream(2.0, ssrc=1)
    second = stream(2.0, ssrc=2, seq0=9000, ts0=777_000)
    pkts = first + second
    arr = [40.0 + 20 * i for i in range(len(pkts))]
    jb = JitterBuffer(RATE, 20, codec="PCMU")
    out = play(jb, pkts, arr, 4400)
    s = jb.stats()
    assert s["ssrc_changes"] == 1
    assert s["played"] >= len(pkts) - 2
    assert abs(dominant_freq(out[-8000:], RATE) - 440.0) < 3


def test_spikes_raise_the_target_then_it_shrinks_back() -> None:
    pkts = stream(60.0)
    arr = [40.0 + 20 * i for i in range(len(pkts))]
    for spike in (200, 400):  # two 200 ms stalls, 4 s apart
        # Everything sent during the stall comes out in a clump when it
        # clears, together with the first packet sent after it.
        release = arr[spike] + 200.0
        for i in range(spike, spike + 10):
            arr[i] = max(arr[i], release)
    jb = JitterBuffer(RATE, 20, codec="PCMU", peak_hold_ms=5000)
    play(jb, pkts[:600], arr[:600], 12_000)
    grown = jb.stats()["target_delay_ms"]
    play(jb, pkts[600:], arr[600:], arr[-1], start_ms=12_020)
    s = jb.stats()
    assert grown >= 150
    assert s["target_delay_ms"] < 80  # calm again: the delay came back down


def test_garbage_is_refused_and_changes_nothing() -> None:
    jb = JitterBuffer(RATE, 20, codec="PCMU")
    jb.push(stream(0.1)[0], 0.0)
    before = jb.stats()
    with pytest.raises(MediaError, match="RTP"):
        jb.push(b"\x00\x01garbage", 1.0)
    with pytest.raises(MediaError):
        jb.push(stream(0.1)[1], float("nan"))
    assert jb.stats() == before
    with pytest.raises(MediaError, match="unsupported codec"):
        JitterBuffer(RATE, 20, codec="G729")
