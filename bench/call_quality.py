"""Call quality through codec chains and simulated networks.

For each codec x network trace: speech (espeak-ng) is encoded, packetized,
sent through the trace (python/vpbx/media/netsim.py), played out by the
adaptive jitter buffer, and scored with PESQ (ITU-T P.862 via the `pesq`
package: narrowband for 8 kHz codecs, wideband for 16 kHz ones).

For the jitter buffer it reports late-loss (late / packets that arrived) and
mean buffering delay, next to an oracle: the smallest *fixed* playout delay
that achieves the same late-loss on that trace, given the whole trace in
advance, playing out on the receiver's 20 ms ticks like any frame-based
buffer (the continuous-time oracle, free of that granularity, is printed too).
Target: late-loss <= 1% and mean delay <= 1.5x the oracle's.

Run: `make bench` (installs pesq), or `.venv/bin/python bench/call_quality.py
[--seconds 60] [--codecs PCMU,G722,opus] [--networks ...]`.
Prints a table and writes bench/results/call_quality.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from vpbx.media.chain import ChainResult, resample, run_chain
from vpbx.media.netsim import PROFILES, NetworkProfile, arrivals

ROOT = Path(__file__).resolve().parent
SENTENCES = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
]


def speech(seconds: float) -> tuple[np.ndarray, int]:
    """Harvard sentences spoken by espeak-ng, repeated to `seconds`, at 16 kHz."""
    if not shutil.which("espeak-ng"):
        raise SystemExit("espeak-ng is needed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(path), " ".join(SENTENCES)], check=True)
        with wave.open(str(path)) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
            rate = w.getframerate()
    pcm = resample(pcm, rate, 16000)
    reps = int(np.ceil(seconds * 16000 / len(pcm)))
    return np.tile(pcm, reps)[: int(seconds * 16000)], 16000


def oracle_delays(
    profile: NetworkProfile, count: int, *, late_loss: float, ptime_ms: int, seed: int, first_tick_ms: float
) -> tuple[float, float]:
    """The smallest fixed playout delay whose late-loss on this trace is <=
    late_loss, in ms above the fastest packet's path (the jitter buffer's own
    measure of delay), given the whole trace in advance. Two versions:

    - continuous: playout may start at any instant;
    - on the grid: playout happens on the receiver's ptime ticks (as every
      frame-based buffer's does): frame i plays at tick first_tick + ptime*(i+d)
      for a whole number d, so the delay can only be first_tick - fastest + ptime*d.
    """
    arr = arrivals(profile, count, ptime_ms, seed)
    ok = ~np.isnan(arr)
    rel = arr[ok] - np.arange(count)[ok] * ptime_ms  # arrival minus media time
    fastest = float(rel.min())
    allowed = int(np.floor(late_loss * len(rel)))
    worst_kept = float(np.sort(rel)[len(rel) - 1 - allowed])
    continuous = worst_kept - fastest
    d = int(np.ceil((worst_kept - first_tick_ms) / ptime_ms))
    grid = first_tick_ms - fastest + ptime_ms * d
    return continuous, grid


def pesq_score(r: ChainResult) -> float | None:
    try:
        from pesq import pesq  # noqa: PLC0415 - optional dependency of the benchmark
    except ImportError:
        return None
    ref, deg = r.reference.astype(np.float64), r.output.astype(np.float64)
    rate = r.rate if r.rate in (8000, 16000) else 16000
    if r.rate != rate:
        ref = resample(r.reference, r.rate, rate).astype(np.float64)
        deg = resample(r.output, r.rate, rate).astype(np.float64)
    mode = "nb" if rate == 8000 else "wb"
    n = min(len(ref), len(deg))
    return float(pesq(rate, ref[:n], deg[:n], mode))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--codecs", default="PCMU,G722,opus")
    ap.add_argument(
        "--networks", default="clean,steady-20ms,bursty-200ms,loss-5pct,reorder,drift+100ppm,drift-100ppm"
    )
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    source, rate = speech(args.seconds)
    rows = []
    header = (
        f"{'codec':6} {'network':14} {'PESQ':>5} {'late%':>6} {'lost%':>6} "
        f"{'mean ms':>8} {'oracle ms':>9} {'(cont.)':>8} {'ratio':>6} {'ok':>3}"
    )
    print(header)
    for net in args.networks.split(","):
        profile = PROFILES[net]
        for codec in args.codecs.split(","):
            r = run_chain(source, rate, codec, profile, seed=args.seed)
            s = r.stats
            arrived = max(1.0, s["packets_received"] - s["duplicates"])
            late = s["late"] / arrived
            continuous, oracle = oracle_delays(
                profile,
                r.packets_sent,
                late_loss=late,
                ptime_ms=20,
                seed=args.seed,
                first_tick_ms=r.first_tick_ms,
            )
            ratio = s["mean_delay_ms"] / max(oracle, 1.0)
            ok = late <= 0.01 and s["mean_delay_ms"] <= 1.5 * oracle
            score = pesq_score(r)
            row = {
                "codec": codec,
                "network": net,
                "pesq": score,
                "late_loss": late,
                "network_loss": 1 - arrived / r.packets_sent,
                "mean_delay_ms": s["mean_delay_ms"],
                "oracle_delay_ms": oracle,
                "oracle_continuous_ms": continuous,
                "ratio": ratio,
                "ok": ok,
                "stats": s,
            }
            rows.append(row)
            print(
                f"{codec:6} {net:14} {score if score is None else f'{score:.2f}':>5} {100 * late:6.2f} "
                f"{100 * row['network_loss']:6.2f} {s['mean_delay_ms']:8.1f} {oracle:9.1f} {continuous:8.1f} "
                f"{ratio:6.2f} "
                f"{'yes' if ok else 'NO':>3}"
            )
    out = ROOT / "results" / "call_quality.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"seconds": args.seconds, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
