"""Simulated networks for demos and benchmarks: given a packet stream's send
times, decide each packet's arrival time (or loss).

Pure and deterministic: a seed in, arrival times out. No sockets, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class NetworkProfile:
    """How a path mistreats packets.

    jitter_ms: standard deviation of a Gaussian per-packet delay variation.
    spike_every_s / spike_ms: every so often the path stalls and a run of packets
        arrives late together (delay rising to spike_ms, then draining), as on a
        congested uplink or Wi-Fi retry storm.
    loss: independent random loss probability (0..1).
    burst_loss: probability that a loss continues into the next packet.
    reorder: probability that a packet swaps places with the next one.
    drift_ppm: sender clock running fast (+) or slow (-) against the receiver.
    """

    name: str = "clean"
    base_delay_ms: float = 40.0
    jitter_ms: float = 0.0
    spike_every_s: float = 0.0
    spike_ms: float = 0.0
    loss: float = 0.0
    burst_loss: float = 0.0
    reorder: float = 0.0
    drift_ppm: float = 0.0


PROFILES: dict[str, NetworkProfile] = {
    "clean": NetworkProfile("clean"),
    "steady-20ms": NetworkProfile("steady-20ms", jitter_ms=20.0 / 3),
    "bursty-200ms": NetworkProfile("bursty-200ms", jitter_ms=3.0, spike_every_s=4.0, spike_ms=200.0),
    "loss-5pct": NetworkProfile("loss-5pct", jitter_ms=2.0, loss=0.05),
    "reorder": NetworkProfile("reorder", jitter_ms=2.0, reorder=0.05),
    "drift+100ppm": NetworkProfile("drift+100ppm", jitter_ms=2.0, drift_ppm=100.0),
    "drift-100ppm": NetworkProfile("drift-100ppm", jitter_ms=2.0, drift_ppm=-100.0),
    "lossy-jittery": NetworkProfile("lossy-jittery", jitter_ms=10.0, loss=0.05, burst_loss=0.3, reorder=0.02),
}


def arrivals(profile: NetworkProfile, count: int, ptime_ms: float, seed: int = 1) -> npt.NDArray[np.float64]:
    """Arrival time in ms of each of `count` packets sent every `ptime_ms`
    (by the sender's clock); NaN marks a lost packet."""
    rng = np.random.default_rng(seed)
    send = np.arange(count, dtype=np.float64) * ptime_ms * (1.0 - profile.drift_ppm * 1e-6)
    delay = profile.base_delay_ms + np.abs(rng.normal(0.0, profile.jitter_ms, count))
    if profile.spike_every_s > 0 and profile.spike_ms > 0:
        period = max(1, round(profile.spike_every_s * 1000 / ptime_ms))
        for start in range(period // 2, count, period):
            # The path stalls for spike_ms: everything sent meanwhile arrives
            # in a clump when it clears.
            stall_end = send[start] + profile.spike_ms
            i = start
            while i < count and send[i] < stall_end:
                delay[i] = max(delay[i], stall_end - send[i] + profile.base_delay_ms)
                i += 1
    arrival = send + delay
    if profile.reorder > 0:
        swaps = np.nonzero(rng.random(count - 1) < profile.reorder)[0]
        for j in swaps.tolist():
            arrival[j], arrival[j + 1] = arrival[j + 1] + 0.1, arrival[j]
    if profile.loss > 0:
        lost = False
        draws = rng.random(count)
        for i in range(count):
            p = profile.burst_loss if lost and profile.burst_loss > 0 else profile.loss
            lost = bool(draws[i] < p)
            if lost:
                arrival[i] = np.nan
    return arrival
