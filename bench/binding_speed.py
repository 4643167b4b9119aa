"""Nanoseconds per 20 ms frame through the Python binding, next to the same
operation measured in Rust by criterion (bench/rust), and the binding's
overhead. Run `make bench` (or `cargo bench --manifest-path bench/rust/Cargo.toml`
first, then this script) on an idle machine.

Prints a table and writes bench/results/binding_speed.json.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from vpbx.media import Decoder, Encoder, JitterBuffer, Mixer, Resampler, RtpPacket

ROOT = Path(__file__).resolve().parent
CRITERION = ROOT / "rust" / "target" / "criterion"


def per_call_ns(fn: Callable[[], object], min_seconds: float = 0.5) -> float:
    """Best of 5 runs of the mean time per call, each run >= min_seconds/5."""
    n = 1
    while True:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        dt = time.perf_counter_ns() - t0
        if dt > min_seconds * 1e9 / 5:
            break
        n *= 2
    best = float(dt) / n
    for _ in range(4):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


def rust_ns(group: str, name: str) -> float | None:
    f = CRITERION / group / name / "new" / "estimates.json"
    if not f.exists():
        return None
    return float(json.loads(f.read_text())["mean"]["point_estimate"])


def sine(rate: int, n: int) -> np.ndarray:
    return (8000 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.int16)


def main() -> None:
    rows: list[dict[str, object]] = []

    def add(name: str, py_ns: float, rust: float | None) -> None:
        over = None if rust is None else py_ns - rust
        rows.append(
            {
                "op": name,
                "python_ns": round(py_ns, 1),
                "rust_ns": rust and round(rust, 1),
                "overhead_ns": over and round(over, 1),
                "overhead_pct": over and rust and round(100 * over / rust, 1),
            }
        )

    for codec, clock, rate, params in [
        ("PCMU", 8000, 8000, {}),
        ("PCMA", 8000, 8000, {}),
        ("G722", 8000, 16000, {}),
        ("opus", 48000, 48000, {"complexity": 5}),
        ("opus", 48000, 16000, {"sample_rate": 16000, "complexity": 5}),
    ]:
        frame = sine(rate, rate // 50)
        enc = Encoder(codec, clock, **params)
        dec = Decoder(codec, clock, **({"sample_rate": rate} if codec == "opus" else {}))
        for _ in range(50):  # a steady-state packet: the 50th frame, as the Rust bench decodes
            payload = enc.encode(frame)
        key = f"{codec}@{rate}"
        add(f"{key} encode", per_call_ns(partial(enc.encode, frame)), rust_ns("codec_20ms", f"{key}_encode"))
        add(
            f"{key} decode", per_call_ns(partial(dec.decode, payload)), rust_ns("codec_20ms", f"{key}_decode")
        )

    for a, b in [(8000, 48000), (48000, 8000), (8000, 16000), (16000, 8000)]:
        r = Resampler(a, b)
        frame = sine(a, a // 50)
        add(
            f"resample {a}->{b}",
            per_call_ns(partial(r.process, frame)),
            rust_ns("dsp_20ms", f"resample {a}-_{b}"),
        )

    for n in (3, 10):
        m = Mixer(160)
        frames = [sine(8000, 160) for _ in range(n)]
        add(f"mix {n} parties", per_call_ns(partial(m.mix, frames)), rust_ns("dsp_20ms", f"mix {n} parties"))

    # Jitter buffer: one push and one pop per 20 ms of a PCMU stream.
    enc = Encoder("PCMU", 8000)
    payload = enc.encode(sine(8000, 160))
    packets = [
        RtpPacket(0, i & 0xFFFF, (i * 160) & 0xFFFFFFFF, 1, payload).serialize() for i in range(200_000)
    ]
    jb = JitterBuffer(8000, 20, codec="PCMU", payload_type=0)
    state = {"i": 0}

    def push_pop() -> None:
        i = state["i"]
        jb.push(packets[i % len(packets)], i * 20.0)
        jb.pop(i * 20.0 + 1.0)
        state["i"] = i + 1

    add("jitter push+pop PCMU", per_call_ns(push_pop, 0.3), rust_ns("dsp_20ms", "jitter push+pop PCMU"))

    machine = platform.processor() or platform.machine()
    title = f"vpbx media core, ns per 20 ms frame ({machine}, Python {platform.python_version()})"
    print(title)
    print(f"{'operation':28} {'python ns':>10} {'rust ns':>10} {'overhead':>10} {'%':>7}")

    def cell(v: object) -> str:
        return "-" if v is None else str(v)

    for r in rows:
        cells = (cell(r["python_ns"]), cell(r["rust_ns"]), cell(r["overhead_ns"]), cell(r["overhead_pct"]))
        print(f"{r['op']:28} {cells[0]:>10} {cells[1]:>10} {cells[2]:>10} {cells[3]:>7}")
    out = ROOT / "results" / "binding_speed.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"title": title, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
