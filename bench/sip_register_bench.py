"""Authenticated registrations per second (RFC 7501/7502 style): `vpbx serve` against Debian's
Kamailio as a registrar, both driven by the same SIPp scenario on 127.0.0.1.

Each REGISTER is challenged (401, MD5 digest: SIPp 3.6 does no SHA-256) and sent again with
credentials; 1,000 users from an injection file. For each server the rate steps up (5 s per
step, fresh server) until a step shows a failed registration or a SIPp retransmission (T1 =
500 ms without an answer): the previous step is the capacity (the "highest rate with 0 failures
and 0 retransmissions" of RFC 7502 §5.1). Then vpbx gets 1.5x its capacity for 10 s and, right
after, its capacity's half again: it must keep answering (503 + Retry-After is fine) and recover
by itself. CPU is utime+stime of the server's processes over the step, per registration.
SIPp shares the machine's cores with the server, as in the issue's reference figures.

    .venv/bin/python bench/sip_register_bench.py
    .venv/bin/python bench/sip_register_bench.py --servers vpbx --rates 1000,2000,3000
Prints a table and writes bench/results/sip_register.json. Needs sipp (sip-tester) and kamailio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "bench" / "sipp" / "register_users.xml"
KAMAILIO_CFG = ROOT / "bench" / "kamailio" / "registrar.cfg.in"
RESULTS = ROOT / "bench" / "results"
MODULE_DIRS = ("/usr/lib/x86_64-linux-gnu/kamailio/modules", "/usr/lib/kamailio/modules")
USERS = 1000
REALM = "vpbx"
DEFAULT_RATES = "500,1000,1500,2000,2500,3000,3500,4000,5000,6000,7000,8000"


@dataclass(slots=True)
class Step:
    server: str
    rate: int
    seconds: float
    attempted: int
    succeeded: int
    failed: int
    retransmissions: int
    achieved_rate: float
    cpu_us_per_registration: float | None

    @property
    def clean(self) -> bool:
        return self.failed == 0 and self.retransmissions == 0 and self.succeeded == self.attempted


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.bind(("127.0.0.1", 0))
        port = int(u.getsockname()[1])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
        t.bind(("127.0.0.1", port))  # vpbx listens on TCP at the same port
    return port


def options_answered(port: int, timeout: float = 0.5) -> bool:
    probe = (
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKprobe{time.time_ns()};rport\r\n"
        "From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: probe@bench\r\n"
        "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(probe, ("127.0.0.1", port))
        try:
            return s.recv(4096).startswith(b"SIP/2.0 ")
        except OSError:
            return False


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (proc(5) fields 14, 15)
    return total / os.sysconf("SC_CLK_TCK")


def seed_vpbx(data_dir: Path) -> None:
    sys.path.insert(0, str(ROOT / "python"))
    from vpbx.store import Database, data_dir_url  # noqa: PLC0415 (after the path is set)
    from vpbx.store import users as users_repo  # noqa: PLC0415

    async def seed() -> None:
        db = await Database.open(data_dir_url(data_dir))
        try:
            async with db.begin() as conn:
                for i in range(USERS):
                    ext = str(1000 + i)
                    await users_repo.create_user(conn, ext, f"pw{ext}", realm=REALM, now=time.time())
        finally:
            await db.close()

    asyncio.run(seed())


@contextlib.contextmanager
def vpbx_server(tmp: Path, port: int) -> Iterator[list[int]]:
    data = tmp / "vpbx-data"
    if not data.exists():
        data.mkdir()
        seed_vpbx(data)
    http = free_port()
    args = [sys.executable, "-m", "vpbx", "serve", "--data-dir", str(data), "--realm", REALM, "--md5-only"]
    args += ["--sip-listen", f"127.0.0.1:{port}", "--http-listen", f"127.0.0.1:{http}"]
    args += ["--trusted", "127.0.0.0/8", "--log-level", "warning"]
    # no OPTIONS qualify: SIPp does not answer it, and Kamailio here does not send it either
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"), VPBX_SERVE__QUALIFY_INTERVAL_S="0")
    with (tmp / "vpbx.log").open("ab") as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_answering(proc, port, tmp / "vpbx.log")
        yield [proc.pid]
    finally:
        stop(proc)


@contextlib.contextmanager
def kamailio_server(tmp: Path, port: int, children: int) -> Iterator[list[int]]:
    binary = shutil.which("kamailio") or "/usr/sbin/kamailio"
    module_dir = next((d for d in MODULE_DIRS if Path(d).is_dir()), MODULE_DIRS[0])
    text = KAMAILIO_CFG.read_text()
    values = {"SIP_PORT": port, "MODULE_DIR": module_dir, "CHILDREN": children, "PASSWORD": "pw$fU"}
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    cfg = tmp / "registrar.cfg"
    cfg.write_text(text)
    run = tmp / f"kamailio-run-{port}"
    run.mkdir()
    args = [binary, "-DD", "-E", "-f", str(cfg), "-Y", str(run), "-P", str(run / "pid"), "-w", str(run)]
    args += ["-m", "256", "-M", "16"]
    with (tmp / "kamailio.log").open("ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=tmp, start_new_session=True)
    try:
        wait_answering(proc, port, tmp / "kamailio.log")
        yield [proc.pid, *children_of(proc.pid)]
    finally:
        stop(proc)


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    return [int(p) for p in out.split()]


def wait_answering(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while not options_answered(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"server on {port} did not come up:\n{log.read_text(errors='replace')[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def sipp_step(tmp: Path, server: str, *, port: int, pids: list[int], rate: int, seconds: float) -> Step:
    users = tmp / "users.csv"
    if not users.exists():
        # SIPp expands an [authentication ...] keyword found in an injected field, not fields inside it
        lines = (f"{u};[authentication username={u} password=pw{u}]\n" for u in range(1000, 1000 + USERS))
        users.write_text("SEQUENTIAL\n" + "".join(lines))
    stats = tmp / f"{server}-{rate}.csv"
    count = int(rate * seconds)
    args = ["sipp", f"127.0.0.1:{port}", "-sf", str(SCENARIO), "-inf", str(users), "-r", str(rate)]
    args += ["-m", str(count), "-l", str(max(1000, rate * 2)), "-trace_stat", "-stf", str(stats), "-fd", "1"]
    args += ["-timeout", str(int(seconds * 3 + 30)), "-timeout_error", "-nostdin"]
    cpu0 = cpu_seconds(pids)
    t0 = time.monotonic()
    subprocess.run(args, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    elapsed = time.monotonic() - t0
    cpu = cpu_seconds(pids) - cpu0
    row = last_row(stats)
    ok = int(row.get("SuccessfulCall(C)", 0))
    return Step(
        server=server,
        rate=rate,
        seconds=round(elapsed, 2),
        attempted=count,
        succeeded=ok,
        failed=int(row.get("FailedCall(C)", 0)) + max(0, count - ok - int(row.get("FailedCall(C)", 0))),
        retransmissions=int(row.get("Retransmissions(C)", 0)),
        achieved_rate=float(row.get("CallRate(C)", 0.0)),
        cpu_us_per_registration=round(cpu / ok * 1e6, 1) if ok else None,
    )


def last_row(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    rows = list(csv.reader(path.open(), delimiter=";"))
    return dict(zip(rows[0], rows[-1], strict=False)) if len(rows) > 1 else {}


def capacity(
    tmp: Path, server: str, *, rates: list[int], seconds: float, children: int
) -> tuple[int, list[Step]]:
    steps: list[Step] = []
    best = 0
    for rate in rates:
        port = free_port()
        ctx = vpbx_server(tmp, port) if server == "vpbx" else kamailio_server(tmp, port, children)
        with ctx as pids:
            step = sipp_step(tmp, server, port=port, pids=pids, rate=rate, seconds=seconds)
        steps.append(step)
        print(
            f"  {server:9} {rate:6}/s  ok {step.succeeded:6}  failed {step.failed:5}  "
            f"retrans {step.retransmissions:5}  cpu {step.cpu_us_per_registration} us/reg",
            flush=True,
        )
        if not step.clean:
            break
        best = rate
    return best, steps


def overload(tmp: Path, best: int, seconds: float) -> dict[str, object]:
    """1.5x capacity, then half the capacity on the same running server: still up, recovered?"""
    port = free_port()
    with vpbx_server(tmp, port) as pids:
        heavy = sipp_step(tmp, "vpbx-overload", port=port, pids=pids, rate=int(best * 1.5), seconds=seconds)
        alive = options_answered(port, 2.0)
        after = sipp_step(tmp, "vpbx-after", port=port, pids=pids, rate=max(100, best // 2), seconds=5)
    return {
        "overload": asdict(heavy),
        "answering_after_overload": alive,
        "recovery": asdict(after),
        "recovered": after.clean,
    }


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--servers", default="vpbx,kamailio")
    parser.add_argument("--rates", default=DEFAULT_RATES)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--kamailio-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--no-overload", action="store_true")
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        raise SystemExit("sipp missing: apt-get install -y sip-tester")
    rates = [int(r) for r in args.rates.split(",")]
    servers = args.servers.split(",")
    machine = platform.processor() or platform.machine()
    result: dict[str, object] = {"machine": machine, "cores": os.cpu_count()}
    found: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="vpbx-regbench-") as name:
        tmp = Path(name)
        for server in servers:
            best, steps = capacity(
                tmp, server, rates=rates, seconds=args.seconds, children=args.kamailio_children
            )
            found[server] = best
            result[server] = {"capacity_per_s": best, "steps": [asdict(s) for s in steps]}
        if "vpbx" in found and found["vpbx"] and not args.no_overload:
            result["vpbx_overload"] = overload(tmp, found["vpbx"], 10.0)
    print("\nauthenticated registrations/s, 0 failures and 0 retransmissions (SIPp on the same cores)")
    for server, best in found.items():
        print(f"  {server:9} {best:6}/s")
    if found.get("kamailio"):
        print(f"  vpbx / kamailio = {found.get('vpbx', 0) / found['kamailio']:.2f}")
    if "vpbx_overload" in result:
        o = result["vpbx_overload"]
        assert isinstance(o, dict)
        alive, recovered = o["answering_after_overload"], o["recovered"]
        print(f"  overload at 1.5x: answering after = {alive}, recovered = {recovered}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sip_register.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
