"""CPU cost of prompt playback: N legs each playing a looping WAV prompt (PCMU, 20 ms) into a
sink socket on 127.0.0.1, measured as the engine worker's CPU time over a few seconds.

    .venv/bin/python bench/playback_cpu.py [--legs 200] [--seconds 5] [--codec PCMU]

Prints CPU per playing leg (% of one core) and per packet sent (µs). Bounded: at most 2000 legs,
at most 30 s, only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from vpbx.media import Engine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--legs", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--codec", default="PCMU")
    args = ap.parse_args()
    legs, seconds = min(args.legs, 2000), min(args.seconds, 30.0)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    dest = ("127.0.0.1", int(sink.getsockname()[1]))
    with tempfile.TemporaryDirectory() as tmp, Engine(port_min=45000, port_max=49999, workers=1) as e:
        prompt = Path(tmp) / "moh.wav"
        t = np.arange(8000 * 2) / 8000
        with wave.open(str(prompt), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes((8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16).tobytes())
        for i in range(legs):
            s = e.create_session(f"bench-{i}")
            leg = e.add_leg(s)["leg"]
            e.set_leg_codec(s, leg, args.codec, payload_type=None if args.codec != "opus" else 111)
            e.set_remote(s, leg, dest)
            e.play(s, leg, prompt, loop=True)
        time.sleep(0.5)  # past start-up

        def cpu_and_packets() -> tuple[float, int]:
            st = e.engine_stats()
            return st["workers"][0]["cpu_time_s"], sum(
                lg["packets_out"] for i in range(legs) for lg in e.session_stats(i + 1)["legs"]
            )

        cpu0, out0 = cpu_and_packets()
        time.sleep(seconds)
        cpu1, out1 = cpu_and_packets()
    sink.close()
    cpu, packets = cpu1 - cpu0, out1 - out0
    print(f"{legs} legs playing {args.codec} for {seconds:.0f} s: {packets} packets sent")
    print(f"worker CPU {cpu / seconds * 100:.1f}% of a core")
    print(f"per playing leg: {cpu / seconds / legs * 100:.3f}% of a core")
    print(f"per packet: {cpu / max(packets, 1) * 1e6:.2f} µs")


if __name__ == "__main__":
    main()
