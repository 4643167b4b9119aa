"""Concurrent call recording: N relayed G.711 calls, each recorded as a stereo WAV.

Runs ``vpbx-media-bench`` (rust/media-engine/src/bin/vpbx-media-bench) twice with the same
load, N calls of 20 ms PCMU both ways at real-time pace: once relaying only, once with
``--record DIR`` (a stereo WAV per call, leg A left, leg B right, written by the engine's
workers for the whole run). The difference in the workers' CPU time is what recording costs;
per recorded call it is given as a share of one core (the issue's budget: <= 0.15%). Then every
file is opened with Python's ``wave`` module: 2 channels, 16-bit, 8 kHz, a header that agrees
with the file size, and a duration close to the run's; disk bytes per second are the files'
bytes over the recorded time. The files are deleted afterwards unless ``--keep``.

    .venv/bin/python bench/recording_bench.py                      # N = 1000, 10 s
    .venv/bin/python bench/recording_bench.py --calls 200 --seconds 5

Prints a table and writes bench/results/recording.json.
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

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BENCH = ROOT / "target" / "release" / "vpbx-media-bench"


def run(calls: int, seconds: int, record: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        cmd = [str(BENCH), "--calls", str(calls), "--seconds", str(seconds), "--warmup", "2"]
        cmd += ["--port-min", "20000", "--port-max", "29999", "--json", str(out)]
        if record is not None:
            cmd += ["--record", str(record)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=seconds + 300)
        row: dict[str, Any] = json.loads(out.read_text())["rows"][0]
        return row


def check_files(folder: Path, expect_s: float) -> dict[str, Any]:
    """Opens every WAV: format, header vs size, duration. Returns counts and extremes."""
    bad: list[str] = []
    durations = []
    for path in sorted(folder.glob("*.wav")):
        try:
            with wave.open(str(path)) as w:
                fmt = (w.getnchannels(), w.getsampwidth(), w.getframerate())
                frames = w.getnframes()
            data_bytes = path.stat().st_size - 44
            if fmt != (2, 2, 8000) or frames * 4 != data_bytes:
                bad.append(f"{path.name}: format {fmt}, {frames} frames, {data_bytes} data bytes")
                continue
            durations.append(frames / 8000)
        except (wave.Error, EOFError, OSError) as e:
            bad.append(f"{path.name}: {e}")
    short = [d for d in durations if d < expect_s * 0.95]
    return {
        "files": len(durations) + len(bad),
        "valid": len(durations),
        "invalid": bad[:5],
        "min_s": min(durations, default=0.0),
        "max_s": max(durations, default=0.0),
        "shorter_than_95pct": len(short),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=1000)
    p.add_argument("--seconds", type=int, default=10, help="measurement window (after 2 s warm-up)")
    p.add_argument("--dir", type=Path, default=None, help="where the WAVs go (default: a temp folder)")
    p.add_argument("--keep", action="store_true", help="keep the WAV files")
    p.add_argument("--out", type=Path, default=RESULTS / "recording.json")
    args = p.parse_args()
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "vpbx-media-engine", "--bin", "vpbx-media-bench"],
        check=True,
        cwd=ROOT,
    )
    folder = args.dir or Path(tempfile.mkdtemp(prefix="vpbx-rec-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        plain = run(args.calls, args.seconds, None)
        rec = run(args.calls, args.seconds, folder)
        files = check_files(folder, args.seconds + 2)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    extra_pct = rec["worker_cpu_pct"] - plain["worker_cpu_pct"]
    per_call_pct = extra_pct / args.calls
    recorded_s = rec["recorded_s"] / max(rec["recordings"], 1)
    bytes_per_s = rec["recorded_bytes"] / max(recorded_s, 1e-9)
    result = {
        "calls": args.calls,
        "seconds": args.seconds,
        "relay_worker_cpu_pct": plain["worker_cpu_pct"],
        "record_worker_cpu_pct": rec["worker_cpu_pct"],
        "recording_cpu_pct_per_call": per_call_pct,
        "relay_loss_pct": plain["loss_pct"],
        "record_loss_pct": rec["loss_pct"],
        "recordings": rec["recordings"],
        "recorded_s_per_call": recorded_s,
        "disk_bytes_per_s": bytes_per_s,
        "packets_concealed": rec["recorded_gaps"],
        "files": files,
    }
    print(f"{args.calls} calls, {args.seconds} s measured (+2 s warm-up)")
    print("run | worker cpu% (all workers, % of one core) | loss%")
    print("--- | --- | ---")
    print(f"relay only | {plain['worker_cpu_pct']:.1f} | {plain['loss_pct']:.4f}")
    print(f"relay + stereo recording | {rec['worker_cpu_pct']:.1f} | {rec['loss_pct']:.4f}")
    print(
        f"\nrecording: {per_call_pct:.4f}% of a core per recorded call; "
        f"{bytes_per_s / 1e6:.1f} MB/s to disk for {rec['recordings']} files "
        f"({bytes_per_s / max(rec['recordings'], 1) / 1e3:.1f} kB/s each); "
        f"{rec['recorded_gaps']} packets concealed"
    )
    print(
        f"files: {files['valid']}/{files['files']} valid WAV (2 ch, 16 bit, 8 kHz, header = size), "
        f"{files['min_s']:.2f}..{files['max_s']:.2f} s, "
        f"{files['shorter_than_95pct']} shorter than 95% of the run"
    )
    doc = {
        "benchmark": "recording",
        "host": {"machine": platform.machine(), "kernel": platform.release()},
        "result": result,
        "runs": {"relay": plain, "record": rec},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
