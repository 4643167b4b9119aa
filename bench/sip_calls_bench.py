"""Call setups per second (RFC 7501 §4 / RFC 7502 §5.1 style) through `vpbx serve` with media
anchored in-process, against Debian's Kamailio as a stateful proxy with `vpbx media-node` as
its rtpengine (media anchored too: the fair comparison) and as a plain proxy (no media: the
reference). All driven by the same SIPp scenarios on 127.0.0.1:

    SIPp UAC --INVITE/ACK/BYE--> server --> SIPp UAS (vpbx: registered as 1001 and called
                                            through the number 5551000; Kamailio: the
                                            Request-URI names the UAS, a static route)

Each call: INVITE with a PCMU offer, 180, 200 with an answer, ACK, held --call-ms (1 s),
BYE, 200. No RTP is sent (SIPp streaming RTP for hundreds of calls a second would take the
cores the servers are measured on); the servers still allocate and rewrite media ports for
every call. For each server the rate steps up (--seconds per step, fresh server) until a
step shows a failed call, a 503 (vpbx shedding) or a retransmission by either SIPp (T1 =
500 ms without an answer: a late server); the previous step is the capacity. CPU is
utime+stime of the server's processes (Kamailio's children and the media node included) per
call.

Then, for vpbx (unless --no-overload): 1.5x the capacity for 10 s on one server; once the
load is gone, how long until SIP input is read promptly again (vpbx_sip_input_lag_seconds),
then half the capacity, which must be clean: vpbx keeps answering (503 + Retry-After for
what it sheds) and recovers by itself. --held N holds N calls (ramp at --held-rate/s) and
reports the server's RSS growth per call. --keep leaves the SIPp logs and stats.

    .venv/bin/python bench/sip_calls_bench.py
    .venv/bin/python bench/sip_calls_bench.py --servers vpbx --rates 100,200,300 --no-overload
    .venv/bin/python bench/sip_calls_bench.py --servers vpbx --rates 0 --no-overload --held 5000
Prints a table and writes bench/results/sip_calls.json. Needs sipp (sip-tester) and kamailio.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sip_register_bench
from sip_register_bench import children_of, cpu_seconds, last_row, stop, wait_answering

ROOT = Path(__file__).resolve().parent.parent
SIPP = ROOT / "bench" / "sipp"
PROXY_CFG = ROOT / "bench" / "kamailio" / "proxy.cfg.in"
RESULTS = ROOT / "bench" / "results"
MODULE_DIRS = ("/usr/lib/x86_64-linux-gnu/kamailio/modules", "/usr/lib/kamailio/modules")
CALLEE, CALLEE_PW, NUMBER = "1001", "pw-1001", "5551000"
PORT_MIN, PORT_MAX = 20000, 60000
NUMBER_LIMIT = 1000  # numbers.max_calls's default
TRANSIENT_S = 35.0  # Timer L/M (64 * T1) and a margin: held-call memory is measured after it
DEFAULT_RATES = "100,200,300,400,500,600,800,1000,1200,1500,2000,2500,3000"
SERVERS = ("vpbx", "kamailio+media", "kamailio")


def free_port() -> int:
    """A port free for UDP and TCP (vpbx takes both); another process may race us: retried."""
    for _ in range(50):
        with contextlib.suppress(OSError):
            return sip_register_bench.free_port()
    raise OSError("no free port")


@dataclass(slots=True)
class Step:
    server: str
    rate: int
    seconds: float
    attempted: int
    succeeded: int
    failed: int
    shed_503: int
    retransmissions: int
    achieved_rate: float
    setup_ms: float
    cpu_us_per_call: float | None

    @property
    def clean(self) -> bool:
        return self.failed == 0 and self.retransmissions == 0 and self.shed_503 == 0


@dataclass(slots=True)
class Server:
    name: str
    port: int
    pids: list[int]
    http: int | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def metric(self, name: str) -> float | None:
        if self.http is None:
            return None
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.rsplit(" ", 1)[1])
        return None


def raise_nofile() -> None:
    """The engine holds 4 sockets a call (RTP + RTCP, both legs): servers inherit the hard limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:  # root may raise the hard limit too
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(hard, 65536), max(hard, 65536)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def sipp(tmp: Path, name: str, scenario: str, *args: str) -> list[str]:
    return [
        "sipp",
        "-sf",
        str(SIPP / scenario),
        "-i",
        "127.0.0.1",
        "-mi",
        "127.0.0.1",
        "-nostdin",
        "-trace_err",
        "-error_file",
        str(tmp / f"{name}-errors.log"),
        *args,
    ]


@contextlib.contextmanager
def vpbx_server(tmp: Path, *, max_calls: int = 20_000) -> Iterator[Server]:
    """vpbx serve with the callee registered (SIPp, digest auth); yields the server and the
    UAS port the callee registered from."""
    port, http = free_port(), free_port()
    data = Path(tempfile.mkdtemp(prefix="data-", dir=tmp))
    config = data / "vpbx.toml"
    config.write_text(
        f"[serve]\nport_min = {PORT_MIN}\nport_max = {PORT_MAX}\nmax_calls = {max(max_calls, 10_000)}\n"
        "no_answer_timeout_s = 20\nmedia_timeout_s = 3600\n"
        "qualify_interval_s = 0\n"  # SIPp does not answer OPTIONS
    )
    args = [sys.executable, "-m", "vpbx", "serve", "--config", str(config), "--data-dir", str(data)]
    args += ["--md5-only", "--trusted", "127.0.0.0/8", "--log-level", "warning"]
    args += ["--user", f"{CALLEE}:{CALLEE_PW}", "--number", f"{NUMBER}:{CALLEE}"]
    args += ["--sip-listen", f"127.0.0.1:{port}", "--http-listen", f"127.0.0.1:{http}"]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    env = {k: v for k, v in env.items() if not k.startswith("VPBX_")}
    log_path = tmp / "vpbx.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_answering(proc, port, log_path)
        uas_port = free_port()
        reg = sipp(tmp, "register", "register_callee.xml", f"127.0.0.1:{port}", "-s", CALLEE)
        reg += ["-au", CALLEE, "-ap", CALLEE_PW, "-p", str(uas_port), "-m", "1", "-timeout", "20s"]
        reg += ["-timeout_error"]
        done = subprocess.run(reg, cwd=tmp, capture_output=True, timeout=30, check=False)
        if done.returncode != 0:
            raise SystemExit(f"the callee did not register: {done.stdout.decode()[-2000:]}")
        if max_calls > NUMBER_LIMIT:  # the number's own limit (1,000 by default) too
            with contextlib.closing(sqlite3.connect(data / "vpbx.db")) as db, db:
                db.execute("update numbers set max_calls = ?", (max_calls,))
            time.sleep(2.5)  # serve reloads the dialplan within reload_interval_s (1 s)
        yield Server("vpbx", port, [proc.pid], http=http, extra={"uas_port": uas_port})
    finally:
        stop(proc)


@contextlib.contextmanager
def media_node(tmp: Path) -> Iterator[tuple[int, int]]:
    ng, http = free_port(), free_port()
    args = [sys.executable, "-m", "vpbx", "media-node", "--interface", "127.0.0.1"]
    args += ["--listen-ng", f"127.0.0.1:{ng}", "--listen-http", f"127.0.0.1:{http}"]
    args += ["--port-min", str(PORT_MIN), "--port-max", str(PORT_MAX), "--timeout", "3600"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPBX_")}
    env["PYTHONPATH"] = str(ROOT / "python")
    with (tmp / "media-node.log").open("ab") as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http}/health", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("vpbx media-node did not come up") from None
                time.sleep(0.2)
        yield ng, proc.pid
    finally:
        stop(proc)


@contextlib.contextmanager
def kamailio_server(tmp: Path, *, media: bool, children: int) -> Iterator[Server]:
    binary = shutil.which("kamailio") or "/usr/sbin/kamailio"
    module_dir = next((d for d in MODULE_DIRS if Path(d).is_dir()), MODULE_DIRS[0])
    with contextlib.ExitStack() as stack:
        ng, node_pid = stack.enter_context(media_node(tmp)) if media else (0, None)
        port = free_port()
        values = {
            "SIP_PORT": port,
            "MODULE_DIR": module_dir,
            "CHILDREN": children,
            "NG_PORT": ng,
            "DEFINES": "#!define WITH_MEDIA" if media else "",
        }
        text = PROXY_CFG.read_text()
        for key, value in values.items():
            text = text.replace(f"@{key}@", str(value))
        cfg = tmp / f"proxy-{port}.cfg"
        cfg.write_text(text)
        run = tmp / f"kamailio-run-{port}"
        run.mkdir()
        args = [binary, "-DD", "-E", "-f", str(cfg), "-Y", str(run), "-P", str(run / "pid"), "-w", str(run)]
        args += ["-m", "256", "-M", "16"]
        log_path = tmp / "kamailio.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, cwd=tmp, start_new_session=True
            )
        try:
            wait_answering(proc, port, log_path)
            pids = [proc.pid, *children_of(proc.pid)]
            if node_pid is not None:
                pids.append(node_pid)
            yield Server("kamailio+media" if media else "kamailio", port, pids)
        finally:
            stop(proc)


@contextlib.contextmanager
def server_for(tmp: Path, name: str, children: int) -> Iterator[Server]:
    if name == "vpbx":
        with vpbx_server(tmp) as s:
            yield s
    else:
        with kamailio_server(tmp, media=name == "kamailio+media", children=children) as s:
            yield s


def counts_503(path: Path) -> int:
    """The 503s the UAC received (-trace_counts: a column per scenario message)."""
    rows = last_row(path)
    return sum(int(v or 0) for k, v in rows.items() if k.endswith("_503_Recv"))


def run_calls(
    tmp: Path, srv: Server, *, label: str, rate: int, seconds: float, call_ms: int, limit: int | None = None
) -> Step:
    """`rate` calls/s for `seconds` through `srv`, UAS and UAC both SIPp; waits for the end."""
    count = max(1, int(rate * seconds))
    uas_port = int(srv.extra.get("uas_port", 0)) or free_port()
    tag = f"{label}-{rate}-{time.monotonic_ns()}"
    wait = f"{int(seconds + call_ms / 1000 + 40)}s"
    uas = sipp(tmp, f"{tag}-uas", "calls_uas.xml", "-p", str(uas_port), "-mp", str(free_port()))
    uas += ["-trace_stat", "-stf", str(tmp / f"{tag}-uas.csv"), "-fd", "1", "-m", str(count)]
    uas += ["-aa"]  # stray BYE/CANCEL of an earlier step's calls: answered, not aborting calls
    uas += ["-timeout", wait, "-l", str(limit or max(2000, count))]
    uac = sipp(tmp, f"{tag}-uac", "calls_uac.xml", "-p", str(free_port()), "-mp", str(free_port()))
    uac += ["-r", str(rate), "-m", str(count), "-l", str(limit or max(2000, rate * 4)), "-d", str(call_ms)]
    uac += ["-trace_stat", "-stf", str(tmp / f"{tag}-uac.csv"), "-fd", "1", "-timeout", wait]
    uac += ["-trace_counts", "-default_behaviors", "all,-abortunexp", "-recv_timeout", "20s"]
    if srv.name == "vpbx":
        uac += [f"127.0.0.1:{srv.port}", "-s", NUMBER]
    else:  # Request-URI = the UAS, sent to the proxy
        uac += [f"127.0.0.1:{uas_port}", "-rsa", f"127.0.0.1:{srv.port}", "-s", "callee"]
    with (tmp / f"{tag}-uas.out").open("wb") as out:
        uas_proc = subprocess.Popen(uas, stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
    try:
        time.sleep(0.3)
        cpu0, t0 = cpu_seconds(srv.pids), time.monotonic()
        subprocess.run(uac, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds(srv.pids) - cpu0
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            uas_proc.wait(5)
        if uas_proc.poll() is None:
            uas_proc.kill()
            uas_proc.wait(5)
    uac_row, uas_row = last_row(tmp / f"{tag}-uac.csv"), last_row(tmp / f"{tag}-uas.csv")
    shed = counts_503(next(iter(sorted(tmp.glob("calls_uac_*counts.csv"))), tmp / "none"))
    for p in tmp.glob("calls_uac_*counts.csv"):
        p.unlink()
    ok = int(uac_row.get("SuccessfulCall(C)", 0)) - shed
    failed = int(uac_row.get("FailedCall(C)", 0))
    return Step(
        server=label,
        rate=rate,
        seconds=round(elapsed, 2),
        attempted=count,
        succeeded=ok,
        failed=failed + max(0, count - ok - failed - shed),
        shed_503=shed,
        retransmissions=int(uac_row.get("Retransmissions(C)", 0)) + int(uas_row.get("Retransmissions(C)", 0)),
        achieved_rate=float(uac_row.get("CallRate(C)", 0.0)),
        setup_ms=rtd_ms(uac_row),
        cpu_us_per_call=round(cpu / ok * 1e6, 1) if ok > 0 else None,
    )


def rtd_ms(row: dict[str, str]) -> float:
    """SIPp's cumulative mean of the 'setup' response time (INVITE -> 200), ms."""
    value = row.get("ResponseTimesetup(C)", "")  # HH:MM:SS:microseconds
    try:
        h, m, s, us = (int(part) for part in value.split(":"))
    except ValueError:
        return 0.0
    return round((h * 3600 + m * 60 + s) * 1000 + us / 1000, 1)


def capacity(
    tmp: Path, server: str, *, rates: list[int], seconds: float, call_ms: int, children: int
) -> tuple[int, list[Step]]:
    steps: list[Step] = []
    best = 0
    for rate in rates:
        with server_for(tmp, server, children) as srv:
            step = run_calls(tmp, srv, label=server, rate=rate, seconds=seconds, call_ms=call_ms)
        steps.append(step)
        print(
            f"  {server:15} {rate:5}/s  ok {step.succeeded:6}  failed {step.failed:5}  "
            f"503 {step.shed_503:5}  retrans {step.retransmissions:5}  setup {step.setup_ms:7} ms  "
            f"cpu {step.cpu_us_per_call} us/call",
            flush=True,
        )
        if not step.clean:
            break
        best = rate
    return best, steps


def overload(tmp: Path, best: int, call_ms: int) -> dict[str, object]:
    """1.5x capacity for 10 s, then half the capacity on the same server: answering, recovered?"""
    with vpbx_server(tmp) as srv:
        heavy = run_calls(tmp, srv, label="vpbx-overload", rate=int(best * 1.5), seconds=10, call_ms=call_ms)
        alive = srv.metric("vpbx_calls_active") is not None
        t0 = time.monotonic()  # the load is gone: how long until the calls left over end
        while (srv.metric("vpbx_calls_active") or 0) > 0 and time.monotonic() - t0 < 40:
            time.sleep(0.5)
        drained = round(time.monotonic() - t0, 1)
        calm = 0  # then until SIP input is read promptly again for 2 s (the node caught up)
        while calm < 4 and time.monotonic() - t0 < 60:
            time.sleep(0.5)
            calm = calm + 1 if (srv.metric("vpbx_sip_input_lag_seconds") or 0.0) < 0.05 else 0
        recovered_s = round(time.monotonic() - t0, 1)
        shed = srv.metric("vpbx_calls_shed_total")
        after = run_calls(tmp, srv, label="vpbx-after", rate=max(50, best // 2), seconds=5, call_ms=call_ms)
    for step in (heavy, after):
        print(
            f"  {step.server:15} {step.rate:5}/s  ok {step.succeeded:6}  failed {step.failed:5}  "
            f"503 {step.shed_503:5}  retrans {step.retransmissions:5}  setup {step.setup_ms} ms",
            flush=True,
        )
    answered = heavy.succeeded + heavy.shed_503
    return {
        "overload": asdict(heavy),
        "answered_share": round(answered / heavy.attempted, 3),
        "answering_after_overload": alive,
        "drained_s": drained,
        "recovered_s": recovered_s,
        "shed_total": shed,
        "recovery": asdict(after),
        "recovered": after.clean,
    }


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def linear_slope(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def held(tmp: Path, calls: int, rate: int) -> dict[str, object]:
    """`calls` calls up at once through vpbx (each held until all are up, plus 10 s): the
    server's RSS growth per call, media ports included (the engine's 4 sockets a call)."""
    ramp = calls / rate
    hold_ms = int((ramp + 15) * 1000)
    with vpbx_server(tmp, max_calls=calls + 100) as srv:
        pid = srv.pids[0]
        # warm: a few calls through every path before the baseline
        run_calls(tmp, srv, label="warm", rate=50, seconds=1, call_ms=100)
        time.sleep(1.0)
        base = rss_kib(pid)
        uas_port = int(srv.extra["uas_port"])
        tag = f"held-{time.monotonic_ns()}"
        limit = str(calls + 10)
        wait = f"{int(ramp + hold_ms / 1000 + 40)}s"
        uas = sipp(tmp, f"{tag}-uas", "calls_uas.xml", "-p", str(uas_port), "-mp", str(free_port()))
        uas += ["-m", str(calls), "-l", limit, "-timeout", wait]
        uac = sipp(tmp, f"{tag}-uac", "calls_uac.xml", "-p", str(free_port()), "-mp", str(free_port()))
        uac += ["-r", str(rate), "-m", str(calls), "-l", limit, "-d", str(hold_ms), "-timeout", wait]
        uac += ["-trace_stat", "-stf", str(tmp / f"{tag}-uac.csv"), "-fd", "1"]
        uac += [f"127.0.0.1:{srv.port}", "-s", NUMBER]
        procs = []
        try:
            for args, name in ((uas, "uas"), (uac, "uac")):
                with (tmp / f"{tag}-{name}.out").open("wb") as out:
                    procs.append(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=tmp))
                time.sleep(0.3)
            peak_active, peak_rss = 0.0, base
            start = time.monotonic()
            deadline = start + ramp + hold_ms / 1000 + 60
            samples: list[tuple[float, float, int]] = []  # (seconds, calls up, RSS KiB)
            while time.monotonic() < deadline and procs[1].poll() is None:
                time.sleep(1.0)
                active, rss = srv.metric("vpbx_calls_active") or 0.0, rss_kib(pid)
                samples.append((time.monotonic() - start, active, rss))
                if active >= peak_active:
                    peak_active, peak_rss = active, rss
                print(f"  held: {int(active):5} calls  rss {rss / 1024:7.1f} MiB", flush=True)
            for p in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(30)
            end_rss = rss_kib(pid)
            end_active = srv.metric("vpbx_calls_active")
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait(5)
    row = last_row(tmp / f"{tag}-uac.csv")
    per_call = (peak_rss - base) / peak_active if peak_active else None
    # Transactions outlive their call's setup by 32 s (Timer L/M, RFC 6026): once the ramp has
    # run longer than that, their number is constant and the slope of RSS over calls up is
    # what one more held call costs.
    ramp_up: list[tuple[float, int]] = []
    for t, c, r in samples:
        if ramp_up and c < ramp_up[-1][0]:
            break  # calls are ending: the ramp is over
        if t > TRANSIENT_S and c < peak_active * 0.995:
            ramp_up.append((c, r))
    slope = linear_slope(ramp_up) if len(ramp_up) >= 5 else None
    return {
        "calls": calls,
        "ramp_per_s": rate,
        "peak_active": peak_active,
        "rss_base_kib": base,
        "rss_peak_kib": peak_rss,
        "rss_after_kib": end_rss,
        "active_after": end_active,
        "kib_per_call": round(per_call, 2) if per_call is not None else None,
        "kib_per_call_steady": round(slope, 2) if slope is not None else None,
        "steady_window_calls": [ramp_up[0][0], ramp_up[-1][0]] if slope is not None else None,
        "succeeded": int(row.get("SuccessfulCall(C)", 0)),
        "failed": int(row.get("FailedCall(C)", 0)),
    }


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--rates", default=DEFAULT_RATES, help="0: no capacity steps")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--call-ms", type=int, default=1000)
    parser.add_argument("--kamailio-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--no-overload", action="store_true")
    parser.add_argument("--overload-capacity", type=int, default=0, help="use this, not the vpbx step found")
    parser.add_argument("--held", type=int, default=0, help="calls to hold through vpbx (0: none)")
    parser.add_argument("--held-rate", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, stats)")
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        raise SystemExit("sipp missing: apt-get install -y sip-tester")
    raise_nofile()
    rates = [int(r) for r in args.rates.split(",") if int(r) > 0]
    servers = [s for s in args.servers.split(",") if s]
    result: dict[str, object] = {
        "machine": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "call_ms": args.call_ms,
        "rtp": "none (SDP offer/answer only; ports allocated and rewritten)",
    }
    found: dict[str, int] = {}
    with contextlib.ExitStack() as stack:
        if args.keep:
            tmp = Path(tempfile.mkdtemp(prefix="vpbx-callbench-"))
            print(f"logs and stats in {tmp}")
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vpbx-callbench-")))
        if rates:
            for server in servers:
                best, steps = capacity(
                    tmp,
                    server,
                    rates=rates,
                    seconds=args.seconds,
                    call_ms=args.call_ms,
                    children=args.kamailio_children,
                )
                found[server] = best
                result[server] = {"capacity_per_s": best, "steps": [asdict(s) for s in steps]}
        cap = args.overload_capacity or found.get("vpbx", 0)
        if cap and not args.no_overload:
            result["vpbx_overload"] = overload(tmp, cap, args.call_ms)
        if args.held:
            result["vpbx_held"] = held(tmp, args.held, args.held_rate)
    print(
        f"\ncall setups/s, 0 failures and 0 retransmissions ({args.call_ms} ms calls, SIPp on the same cores)"
    )
    for server, best in found.items():
        print(f"  {server:15} {best:6}/s")
    for ref in ("kamailio+media", "kamailio"):
        if found.get(ref) and "vpbx" in found:
            print(f"  vpbx / {ref:15} = {found['vpbx'] / found[ref]:.2f}")
    if "vpbx_overload" in result:
        o = result["vpbx_overload"]
        assert isinstance(o, dict)
        print(
            f"  overload at 1.5x: answered (200 or 503) {o['answered_share']:.1%}, "
            f"answering after = {o['answering_after_overload']}, caught up {o['recovered_s']} s after "
            f"the load dropped, half the capacity clean after that = {o['recovered']}"
        )
    if "vpbx_held" in result:
        h = result["vpbx_held"]
        assert isinstance(h, dict)
        print(
            f"  held: {h['peak_active']:.0f} calls at once, {h['kib_per_call']} KiB RSS per call "
            f"over the idle server, {h['kib_per_call_steady']} KiB per further call (RSS slope "
            f"once setup transactions turn over)"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "sip_calls.json"
    old = json.loads(out.read_text()) if out.exists() else {}
    old.update(result)  # partial runs (--servers, --held) keep the other parts
    out.write_text(json.dumps(old, indent=2) + "\n")


if __name__ == "__main__":
    main()
