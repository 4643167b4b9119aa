"""A call's media path, simulated end to end: PCM -> encoder -> RTP ->
network profile -> jitter buffer (decode, conceal) -> PCM.

Used by `vpbx demo` and by the call-quality benchmark. Deterministic: the
network is a seeded simulation and time is a number we advance, not a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from vpbx._native import Encoder, JitterBuffer, Resampler, RtpPacket
from vpbx.media.netsim import NetworkProfile, arrivals

Pcm = npt.NDArray[np.int16]

#: Codec name -> (RTP clock rate, PCM rate used, RTP payload type, params).
CODECS: dict[str, tuple[int, int, int, dict[str, int]]] = {
    "PCMU": (8000, 8000, 0, {}),
    "PCMA": (8000, 8000, 8, {}),
    "G722": (8000, 16000, 9, {}),
    "opus": (48000, 16000, 111, {"sample_rate": 16000, "bitrate": 24000, "fec": 1, "packet_loss_perc": 5}),
    "opus-fb": (48000, 48000, 111, {"sample_rate": 48000, "bitrate": 48000}),
}


@dataclass
class ChainResult:
    codec: str
    network: str
    rate: int
    reference: Pcm
    output: Pcm
    packets_sent: int
    stats: dict[str, float] = field(default_factory=dict)
    #: Time of the receiver's first playout tick (ms); ticks follow every ptime.
    first_tick_ms: float = 0.0


def resample(pcm: Pcm, rate_in: int, rate_out: int) -> Pcm:
    if rate_in == rate_out:
        return pcm
    r = Resampler(rate_in, rate_out)
    tail = np.zeros(rate_in // 10, np.int16)  # flush the resampler's delay
    out = np.concatenate([r.process(pcm), r.process(tail)])
    skip = r.delay
    return out[skip : skip + len(pcm) * rate_out // rate_in]


def run_chain(
    source: Pcm,
    source_rate: int,
    codec: str,
    profile: NetworkProfile,
    *,
    ptime_ms: int = 20,
    seed: int = 1,
    **jitter_params: float,
) -> ChainResult:
    """Sends `source` through one codec over one simulated network."""
    clock, rate, pt, params = CODECS[codec]
    name = "opus" if codec.startswith("opus") else codec
    ref = resample(source, source_rate, rate)
    frame = rate * ptime_ms // 1000
    ts_step = clock * ptime_ms // 1000
    n = len(ref) // frame
    ref = ref[: n * frame]
    enc = Encoder(name, clock, **params)
    packets = [
        RtpPacket(
            pt,
            (1000 + i) & 0xFFFF,
            (5000 + i * ts_step) & 0xFFFFFFFF,
            0x5EED,
            enc.encode(ref[i * frame : (i + 1) * frame]),
            marker=i == 0,
        ).serialize()
        for i in range(n)
    ]
    arrive = arrivals(profile, n, ptime_ms, seed)
    order = [i for i in np.argsort(arrive, kind="stable").tolist() if not np.isnan(arrive[i])]
    dec_params = {"sample_rate": params["sample_rate"]} if "sample_rate" in params else {}
    jb = JitterBuffer(clock, ptime_ms, codec=name, payload_type=pt, **dec_params, **jitter_params)  # type: ignore[arg-type]
    out: list[Pcm] = []
    k = 0
    # The receiver's playout clock ticks every ptime at a phase of its own,
    # unrelated to when packets arrive (drawn from the seed).
    phase = float(np.random.default_rng(seed + 7).uniform(0.0, ptime_ms))
    t0 = float(np.nanmin(arrive)) + phase if order else 0.0
    t = t0
    end = float(np.nanmax(arrive)) + 1500.0 if order else 0.0
    while t <= end:
        while k < len(order) and arrive[order[k]] <= t:
            jb.push(packets[order[k]], float(arrive[order[k]]))
            k += 1
        got = jb.pop(t)
        if got is not None:
            out.append(got)
        t += ptime_ms
    output = np.concatenate(out) if out else np.zeros(0, np.int16)
    return ChainResult(codec, profile.name, rate, ref, output, n, dict(jb.stats()), t0)
