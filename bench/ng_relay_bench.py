"""Same-codec relay under NG control: `vpbx media-node` against Debian's rtpengine (userspace,
no kernel module) driven by the same load generator (bench/ng-loadgen, Rust).

For each node and each N: start the node fresh on 127.0.0.1, set up N calls through NG
offer/answer, stream 20 ms PCMU (172-byte packets) both ways at 50 packets/s per direction
per call, and measure loss and the node's CPU time per relayed packet (utime+stime of the
node process from /proc/PID/stat over the measurement window, divided by the packets that
came back to the generator in that window). "sent/target" below 100% means the generator
(sharing the machine's cores with the node) could not keep real-time pace at that N.
Prints a table with the ratio and writes JSON to bench/results/ng_relay.json.

``--pin NODE_CPU,GEN_CPU`` runs the node on one core with one media thread (vpbx ``--workers 1``,
rtpengine ``--num-threads=1``) and the generator on another (taskset), so the node's capacity
per core is measured without the generator competing for it.

    .venv/bin/python bench/ng_relay_bench.py                    # N = 100, 500, 1000, 2000
    .venv/bin/python bench/ng_relay_bench.py --calls 100 --seconds 5 --nodes vpbx
    .venv/bin/python bench/ng_relay_bench.py --pin 0,1 --calls 1000,2000,3000 --nodes vpbx
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOADGEN_DIR = ROOT / "bench" / "ng-loadgen"
LOADGEN = LOADGEN_DIR / "target" / "release" / "ng-loadgen"
RESULTS = ROOT / "bench" / "results"
PORT_MIN, PORT_MAX = 20000, 39999


def _free_port(kind: int) -> int:
    """A port nobody on 127.0.0.1 holds now (others may run benchmarks on this machine too)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


NG_VPBX, HTTP_VPBX = _free_port(socket.SOCK_DGRAM), _free_port(socket.SOCK_STREAM)
NG_RTPENGINE = _free_port(socket.SOCK_DGRAM)


def _ng_ping(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        s.sendto(b"ping1 d7:command4:pinge", ("127.0.0.1", port))
        try:
            return b"pong" in s.recv(4096)
        except OSError:
            return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return int(r.status) == 200
    except OSError:
        return False


def _taskset(cpu: int | None) -> list[str]:
    return [] if cpu is None else ["taskset", "-c", str(cpu)]


def _node_command(kind: str, cpu: int | None, ports: tuple[int, int]) -> tuple[list[str], int]:
    port_min, port_max = ports
    if kind == "vpbx":
        args = [*_taskset(cpu), sys.executable, "-m", "vpbx", "media-node", "--interface", "127.0.0.1"]
        args += ["--listen-ng", f"127.0.0.1:{NG_VPBX}", "--listen-http", f"127.0.0.1:{HTTP_VPBX}"]
        args += ["--port-min", str(port_min), "--port-max", str(port_max), "--timeout", "120"]
        args += ["--max-sessions", "100000"]
        if cpu is not None:
            args += ["--workers", "1"]
        return args, NG_VPBX
    exe = shutil.which("rtpengine", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/bin")
    if exe is None:
        raise SystemExit("rtpengine not found: apt-get install -y rtpengine-daemon")
    args = [*_taskset(cpu), exe, "--foreground", "--table=-1", "--interface=127.0.0.1"]
    if cpu is not None:
        args += ["--num-threads=1"]
    args += [f"--listen-ng=127.0.0.1:{NG_RTPENGINE}", f"--port-min={port_min}", f"--port-max={port_max}"]
    args += ["--log-stderr", "--log-level=4", "--timeout=120", "--pidfile=/dev/null"]
    return args, NG_RTPENGINE


@contextlib.contextmanager
def node(
    kind: str, log: Path, cpu: int | None = None, ports: tuple[int, int] = (PORT_MIN, PORT_MAX)
) -> Iterator[tuple[int, int]]:
    """Starts a node (on ``cpu`` if given); yields (pid, NG port); stops it afterwards."""
    args, ng_port = _node_command(kind, cpu, ports)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPBX_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{kind} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            ready = _http_ok(f"http://127.0.0.1:{HTTP_VPBX}/health") if kind == "vpbx" else True
            if ready and _ng_ping(ng_port):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{kind} not ready in 30 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield proc.pid, ng_port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def udp_drops(pid: int) -> dict[str, int]:
    """Datagrams the kernel dropped on each of ``pid``'s UDP sockets (receive buffer full), by
    socket inode: the ``drops`` column of /proc/net/udp{,6}."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
    out: dict[str, int] = {}
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError), open(table, encoding="ascii") as f:
            next(f)
            for line in f:
                cols = line.split()
                if len(cols) > 12 and cols[9] in inodes:
                    out[cols[9]] = int(cols[12])
    return out


def run_one(kind: str, calls: int, args: argparse.Namespace) -> dict[str, Any]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    node_cpu, gen_cpu = args.pin if args.pin is not None else (None, None)
    ports = (args.port_min, args.port_max)
    with node(kind, RESULTS / f"ng_relay-{kind}.log", node_cpu, ports) as (pid, ng_port):
        cmd = [*_taskset(gen_cpu), str(LOADGEN), "--ng", f"127.0.0.1:{ng_port}", "--calls", str(calls)]
        cmd += ["--pid", str(pid), "--warmup", str(args.warmup), "--seconds", str(args.seconds)]
        cmd += ["--label", kind, "--sockets", str(args.sockets)]
        deadline = time.monotonic() + args.warmup + args.seconds + 120
        drops: dict[str, int] = {}  # the node's media sockets come and go with the calls
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as gen:
            while gen.poll() is None:
                if time.monotonic() > deadline:
                    gen.kill()
                    raise SystemExit(f"ng-loadgen timed out for {kind} N={calls}")
                for inode, n in udp_drops(pid).items():
                    drops[inode] = max(n, drops.get(inode, 0))
                time.sleep(0.5)
            stdout, stderr = gen.communicate(timeout=10)
        if gen.returncode != 0:
            raise SystemExit(f"ng-loadgen failed for {kind} N={calls}:\n{stderr}")
        result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
        # packets the node never read (its socket buffers overflowed), as a share of those sent;
        # the rest of loss_pct was lost on the generator's side
        result["node_drop_pct"] = 100.0 * sum(drops.values()) / max(result["sent"], 1)
        return result


def _fmt(v: Any, spec: str) -> str:
    return format(v, spec) if isinstance(v, int | float) else "-"


def table(rows: list[dict[str, Any]], kinds: list[str]) -> str:
    by = {(r["label"], r["calls"]): r for r in rows}
    head = ["calls", "pps target"]
    for k in kinds:
        head += [
            f"{k} us/pkt",
            f"{k} loss%",
            f"{k} node drop%",
            f"{k} cpu%",
            f"{k} KiB/call",
            f"{k} sent/target",
        ]
    if len(kinds) == 2:
        head.append(f"ratio {kinds[0]}/{kinds[1]}")
    head.append("gen cpu% (max)")
    lines = [" | ".join(head), " | ".join("-" * len(h) for h in head)]
    for n in sorted({r["calls"] for r in rows}):
        cells = [str(n), str(n * 100)]
        for k in kinds:
            r = by.get((k, n), {})
            cells += [
                _fmt(r.get("node_us_per_packet"), ".2f"),
                _fmt(r.get("loss_pct"), ".4f"),
                _fmt(r.get("node_drop_pct"), ".4f"),
                _fmt(r.get("node_cpu_pct"), ".1f"),
                _fmt(r.get("node_rss_kib_per_call"), ".1f"),
                _fmt(r["sent_pps"] / r["target_pps"] if r else None, ".0%"),
            ]
        if len(kinds) == 2:
            a, b = by.get((kinds[0], n), {}), by.get((kinds[1], n), {})
            ua, ub = a.get("node_us_per_packet"), b.get("node_us_per_packet")
            cells.append(f"{ua / ub:.2f}" if ua and ub else "-")
        gens = [by[(k, n)]["gen_cpu_pct"] for k in kinds if (k, n) in by]
        cells.append(_fmt(max(gens) if gens else None, ".1f"))
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def _cpu_pair(text: str) -> tuple[int, int]:
    node_cpu, _, gen_cpu = text.partition(",")
    try:
        pair = int(node_cpu), int(gen_cpu)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--pin wants NODE_CPU,GEN_CPU, got {text!r}") from None
    if pair[0] == pair[1]:
        raise argparse.ArgumentTypeError("--pin: node and generator need different CPUs")
    return pair


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", default="100,500,1000,2000", help="comma-separated N")
    p.add_argument("--nodes", default="vpbx,rtpengine", help="vpbx and/or rtpengine")
    p.add_argument("--seconds", type=float, default=10.0, help="measurement window")
    p.add_argument("--warmup", type=float, default=3.0, help="streaming before the window")
    p.add_argument("--sockets", type=int, default=16, help="generator sockets per side")
    p.add_argument("--out", type=Path, default=RESULTS / "ng_relay.json")
    p.add_argument("--port-min", type=int, default=PORT_MIN, help="the nodes' RTP port range")
    p.add_argument("--port-max", type=int, default=PORT_MAX)
    p.add_argument(
        "--pin",
        type=_cpu_pair,
        default=None,
        metavar="NODE_CPU,GEN_CPU",
        help="node on one core with one media thread, generator on another",
    )
    args = p.parse_args()
    subprocess.run(
        ["cargo", "build", "--release", "-q", "--manifest-path", str(LOADGEN_DIR / "Cargo.toml")], check=True
    )
    kinds = [k.strip() for k in args.nodes.split(",") if k.strip()]
    rows: list[dict[str, Any]] = []
    for n in (int(x) for x in args.calls.split(",")):
        for kind in kinds:
            r = run_one(kind, n, args)
            rows.append(r)
            print(
                f"{kind:>9} N={n:<5} {r['node_us_per_packet']:.2f} us/pkt, loss {r['loss_pct']:.4f}% "
                f"(node drops {r['node_drop_pct']:.4f}%), "
                f"node {r['node_cpu_pct']:.0f}% cpu, relayed {r['relayed_pps']:.0f}/{r['target_pps']} pps, "
                f"gen {r['gen_cpu_pct']:.0f}% cpu",
                flush=True,
            )
    print()
    print(table(rows, kinds))
    doc = {
        "benchmark": "ng_relay",
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "kernel": platform.release()},
        "params": {"seconds": args.seconds, "warmup": args.warmup, "sockets": args.sockets, "pin": args.pin},
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
