"""PCMU <-> opus transcoding: calls per core and speech quality per opus complexity.

Capacity: ``vpbx-media-bench`` (rust/media-engine/src/bin/vpbx-media-bench) drives N calls
through the engine with one worker thread, leg A sending 20 ms PCMU and leg B 20 ms opus at
real-time pace both ways; the engine decodes and re-encodes every packet. Calls per core =
N / (worker thread CPU time / wall time), from the worker's own CPU clock.

Quality: the same path offline through the same codecs: speech (espeak-ng Harvard sentences)
at 8 kHz through PCMU, then opus as the engine runs it (8 kHz PCM, VoIP mode, default bitrate,
the complexity under test), decoded; PESQ (ITU-T P.862 narrowband, `pesq` package) against
the PCMU-decoded reference, so only what opus adds is scored. The opus -> PCMU direction does
not depend on the encoder complexity.

    .venv/bin/python bench/transcode_capacity.py                   # complexity 10,9,7,5; N=150
    .venv/bin/python bench/transcode_capacity.py --complexity 9,5 --calls 200 --seconds 5

Prints a table and writes bench/results/transcode_capacity.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path
from typing import Any

import numpy as np

from vpbx.media import Decoder, Encoder

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BENCH = ROOT / "target" / "release" / "vpbx-media-bench"
SENTENCES = (
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. "
    "It is easy to tell the depth of a well. These days a chicken leg is a rare dish. "
    "Rice is often served in round bowls. The juice of lemons makes fine punch."
)


def speech_8k() -> np.ndarray:
    """Harvard sentences from espeak-ng, resampled to 8 kHz (int16)."""
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is needed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(path), SENTENCES], check=True, timeout=60)
        with wave.open(str(path)) as w:
            rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
    # band-limit and decimate to 8 kHz (espeak-ng speaks at 22.05 kHz): FFT brick-wall at 3.8 kHz
    n_out = int(len(pcm) * 8000 / rate)
    spec = np.fft.rfft(pcm)
    freqs = np.fft.rfftfreq(len(pcm), 1.0 / rate)
    spec[freqs > 3800] = 0
    out = np.fft.irfft(spec[: n_out // 2 + 1], n_out) * (n_out / len(pcm))
    out *= 0.5 * 32767 / max(np.abs(out).max(), 1.0)
    return out.astype(np.int16)


def frames(pcm: np.ndarray, n: int) -> list[np.ndarray]:
    return [pcm[i : i + n] for i in range(0, len(pcm) - n + 1, n)]


def opus_pesq(speech: np.ndarray, complexity: int) -> tuple[float, float]:
    """(PESQ of PCMU -> opus at ``complexity`` against PCMU alone, mean opus bytes per packet)."""
    from pesq import pesq  # noqa: PLC0415 - optional dependency of the benchmarks

    ulaw_enc, ulaw_dec = Encoder("PCMU", 8000), Decoder("PCMU", 8000)
    ref = np.concatenate([ulaw_dec.decode(ulaw_enc.encode(f)) for f in frames(speech, 160)])
    enc = Encoder("opus", 48000, 1, sample_rate=8000, complexity=complexity)
    dec = Decoder("opus", 48000, 1, sample_rate=8000)
    sizes, out = [], []
    for f in frames(ref, 160):
        payload = enc.encode(f)
        sizes.append(len(payload))
        out.append(dec.decode(payload))
    deg = np.concatenate(out)
    n = min(len(ref), len(deg))
    score = float(pesq(8000, ref[:n].astype(np.float64), deg[:n].astype(np.float64), "nb"))
    return score, float(np.mean(sizes))


def capacity(complexity: int, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        cmd = [str(BENCH), "--calls", str(args.calls), "--seconds", str(args.seconds), "--warmup", "2"]
        cmd += ["--workers", "1", "--codec-b", "opus", "--opus-complexity", str(complexity)]
        cmd += ["--port-min", "24000", "--port-max", "27999", "--json", str(out)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=args.seconds + 120)
        row: dict[str, Any] = json.loads(out.read_text())["rows"][0]
        return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--complexity", default="10,9,7,5", help="comma-separated opus complexities")
    p.add_argument("--calls", type=int, default=150, help="concurrent transcoded calls")
    p.add_argument("--seconds", type=int, default=8, help="measurement window")
    p.add_argument("--out", type=Path, default=RESULTS / "transcode_capacity.json")
    args = p.parse_args()
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "vpbx-media-engine", "--bin", "vpbx-media-bench"],
        check=True,
        cwd=ROOT,
    )
    speech = speech_8k()
    rows = []
    for c in (int(x) for x in args.complexity.split(",")):
        cap = capacity(c, args)
        score, size = opus_pesq(speech, c)
        row = {
            "complexity": c,
            "calls": cap["calls"],
            "us_per_packet": cap["cpu_us_per_packet"],
            "worker_cpu_pct": cap["worker_cpu_pct"],
            "calls_per_core": cap["calls_per_core"],
            "loss_pct": cap["loss_pct"],
            "pesq_nb": score,
            "opus_bytes_per_packet": size,
        }
        rows.append(row)
        print(
            f"complexity {c:>2}: {row['us_per_packet']:.1f} us/pkt, {row['calls_per_core']:.0f} calls/core, "
            f"loss {row['loss_pct']:.3f}%, PESQ {score:.3f}",
            flush=True,
        )
    best = max(r["pesq_nb"] for r in rows)
    print()
    print("complexity | us/pkt | worker cpu% | calls/core | loss% | PESQ-NB | vs best | opus B/pkt")
    print("---------- | ------ | ----------- | ---------- | ----- | ------- | ------- | ----------")
    for r in rows:
        print(
            f"{r['complexity']} | {r['us_per_packet']:.1f} | {r['worker_cpu_pct']:.1f} | "
            f"{r['calls_per_core']:.0f} | {r['loss_pct']:.3f} | {r['pesq_nb']:.3f} | "
            f"{r['pesq_nb'] - best:+.3f} | {r['opus_bytes_per_packet']:.1f}"
        )
    doc = {
        "benchmark": "transcode_capacity",
        "host": {"machine": platform.machine(), "kernel": platform.release()},
        "params": {"calls": args.calls, "seconds": args.seconds},
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
