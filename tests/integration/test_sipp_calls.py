"""Calls through `vpbx serve` with SIPp on both ends (Debian package sip-tester), real
sockets, media anchored on vpbx's engine:

    SIPp UAC --SIP/RTP--> vpbx (B2BUA + engine) --SIP/RTP--> SIPp UAS (registered as 1001)

The UAS first registers as extension 1001 with digest auth (register_auth.xml) on the
port it then answers on, from 127.0.0.3. Callers on 127.0.0.1 authenticate (407);
127.0.0.2 plays a trusted provider delivering calls to the company number 5551000
(-> 1001). The UAS address is trusted too: it answers 120 calls at once, and the source
guard's per-address rate limit (30/s, burst 120) would drop some of its responses, as it
would for any one device; an operator trusts such a gateway the same way.
"""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from media_node_proc import free_port
from vpbx_server import VpbxServer, sipp_binary, vpbx_env

from vpbx.media import Encoder

HERE = Path(__file__).parent / "sipp"
ROOT = Path(__file__).resolve().parents[2]
PORT_MIN, PORT_MAX = 43000, 43999
CALLEE, CALLEE_PW = "1001", "pw-1001"
CALLER, CALLER_PW = "1002", "pw-1002"
THIRD, THIRD_PW = "1003", "pw-1003"  # the blind transfer's target
TCP_PHONE, TCP_PHONE_PW = "1004", "pw-1004"  # registered over TCP
NUMBER = "5551000"
PROVIDER = "127.0.0.2"
PHONE = "127.0.0.3"  # the callee (SIPp UAS)
TIMEOUT = 30.0


@dataclass
class Pbx:
    proc: VpbxServer
    data_dir: Path
    uas_port: int

    @property
    def target(self) -> str:
        return f"{self.proc.sip[0]}:{self.proc.sip[1]}"

    def metrics(self) -> dict[str, float]:
        assert self.proc.http is not None
        url = f"http://{self.proc.http[0]}:{self.proc.http[1]}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def last_cdr(self, after: int) -> tuple[int, str, str, str, float]:
        """The newest CDR with id > after (written behind: wait for it, bounded)."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with sqlite3.connect(self.data_dir / "vpbx.db") as db:
                row = db.execute(
                    "select id, direction, disposition, hangup_cause, billsec from cdrs where id > ? "
                    "order by id desc limit 1",
                    (after,),
                ).fetchone()
            if row is not None:
                return row  # type: ignore[no-any-return]
            time.sleep(0.1)
        pytest.fail("no CDR written")

    def cdr_count(self) -> int:
        with sqlite3.connect(self.data_dir / "vpbx.db") as db:
            return int(db.execute("select coalesce(max(id), 0) from cdrs").fetchone()[0])


def udp_port() -> int:
    return free_port(socket.SOCK_DGRAM)


def cli(data_dir: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "vpbx", "--data-dir", str(data_dir), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=vpbx_env(),
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def sipp(tmp: Path, name: str, scenario: str, *args: str, ip: str = "127.0.0.1") -> list[str]:
    if scenario.startswith(("uas", "register")):
        ip = PHONE
    return [
        sipp_binary(),
        "-sf",
        str(HERE / scenario),
        "-i",
        ip,
        "-mi",
        ip,
        "-nostdin",
        "-timeout",
        "25s",
        "-timeout_error",
        "-trace_err",
        "-error_file",
        str(tmp / f"{name}-errors.log"),
        "-trace_logs",
        "-log_file",
        str(tmp / f"{name}-actions.log"),
        *args,
    ]


def report(tmp: Path) -> str:
    parts = []
    for p in sorted(tmp.glob("*.log")):
        parts.append(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-30:]))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    data_dir = tmp_path_factory.mktemp("vpbx-calls")
    cli(data_dir, "user", "add", CALLEE, "--password", CALLEE_PW)
    cli(data_dir, "user", "add", CALLER, "--password", CALLER_PW)
    cli(data_dir, "user", "add", THIRD, "--password", THIRD_PW)
    cli(data_dir, "user", "add", TCP_PHONE, "--password", TCP_PHONE_PW)
    cli(data_dir, "number", "add", NUMBER, "--to", CALLEE)
    config = data_dir / "vpbx.toml"
    config.write_text(
        f'[serve]\nport_min = {PORT_MIN}\nport_max = {PORT_MAX}\ntrusted = ["{PROVIDER}/32", "{PHONE}/32"]\n'
        'md5_only = true\nlog_level = "warning"\nno_answer_timeout_s = 20\n'
        "qualify_interval_s = 0\n"  # SIPp scenarios do not answer OPTIONS
    )
    args = ["serve", "--config", str(config), "--data-dir", str(data_dir)]
    args += ["--sip-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]
    proc = VpbxServer(args, timeout=TIMEOUT)
    try:
        try:
            proc.start()
        except RuntimeError as e:
            pytest.fail(str(e))
        uas_port = udp_port()
        pbx = Pbx(proc, data_dir, uas_port)
        register = sipp(data_dir, "register", "register_auth.xml", pbx.target, "-s", CALLEE)
        register += ["-au", CALLEE, "-ap", CALLEE_PW, "-p", str(uas_port), "-m", "1"]
        reg = subprocess.run(
            register,
            check=False,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            cwd=data_dir,
        )
        assert reg.returncode == 0, reg.stdout[-2000:] + report(data_dir)
        yield pbx
    finally:
        proc.stop()


def run_pair(pbx: Pbx, tmp: Path, uas: list[str], uac: list[str], *, poll: list[float] | None = None) -> None:
    """Start the UAS on the registered port, run the UAC to completion, both must exit 0."""
    with (tmp / "uas-out.txt").open("wb") as out:
        uas_proc = subprocess.Popen(uas, stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
    stop = threading.Event()
    sampler = None
    if poll is not None:

        def sample() -> None:
            while not stop.is_set():
                poll.append(pbx.metrics().get("vpbx_calls_active", 0.0))
                stop.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
    try:
        time.sleep(0.3)  # let the UAS bind
        assert uas_proc.poll() is None, report(tmp)
        if sampler is not None:
            sampler.start()
        uac_proc = subprocess.run(uac, check=False, capture_output=True, timeout=TIMEOUT, cwd=tmp)
        assert uac_proc.returncode == 0, uac_proc.stdout.decode()[-3000:] + report(tmp)
        assert uas_proc.wait(timeout=15) == 0, report(tmp)
    finally:
        stop.set()
        if sampler is not None:
            sampler.join(timeout=5)
        if uas_proc.poll() is None:
            uas_proc.kill()
        uas_proc.wait(timeout=5)


def media_lines(log: Path, tag: str) -> list[tuple[str, int]]:
    text = log.read_text(errors="replace") if log.exists() else ""
    return [(ip, int(port)) for ip, port in re.findall(rf"{tag} ([0-9.]+):(\d+)", text)]


def test_call_between_extensions_relays_rtp_both_ways_through_vpbx(pbx: Pbx, tmp_path: Path) -> None:
    t = np.arange(8000 * 3) / 8000
    (tmp_path / "audio.pcmu").write_bytes(
        Encoder("PCMU", 8000).encode((8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16))
    )
    before_cdr, before = pbx.cdr_count(), pbx.metrics()
    uas = sipp(tmp_path, "uas", "uas.xml", "-p", str(pbx.uas_port), "-mp", str(udp_port()), "-m", "1")
    uac = sipp(tmp_path, "uac", "uac_auth.xml", pbx.target, "-s", CALLEE, "-au", CALLER, "-ap", CALLER_PW)
    uac += ["-auth_uri", f"{CALLEE}@{pbx.target}"]  # SIPp's default digest uri is host:port only
    uac += ["-p", str(udp_port()), "-mp", str(udp_port()), "-m", "1"]
    run_pair(pbx, tmp_path, [*uas, "-rtp_echo"], uac)
    # Each side saw vpbx's media address, never the other phone's.
    (offer,) = media_lines(tmp_path / "uas-actions.log", "OFFER-MEDIA")
    (answer,) = media_lines(tmp_path / "uac-actions.log", "ANSWER-MEDIA")
    for ip, port in (offer, answer):
        assert ip == "127.0.0.1" and PORT_MIN <= port <= PORT_MAX, (offer, answer)
    after = pbx.metrics()
    relayed = after["vpbx_media_packets_relayed_total"] - before.get("vpbx_media_packets_relayed_total", 0)
    assert relayed >= 0.9 * 2 * 2 * 50, relayed  # 2 s of 20 ms packets, echoed back
    assert after['vpbx_calls_total{direction="internal",result="answered"}'] >= 1
    _id, direction, disposition, cause, billsec = pbx.last_cdr(before_cdr)
    assert (direction, disposition, cause) == ("internal", "answered", "caller hung up")
    assert billsec >= 1.5
    listing = cli(pbx.data_dir, "calls", "list")
    assert "answered" in listing and CALLEE in listing


def test_cancel_before_answer_gives_487_and_a_cancelled_cdr(pbx: Pbx, tmp_path: Path) -> None:
    before_cdr = pbx.cdr_count()
    uas = sipp(tmp_path, "uas", "uas_ring.xml", "-p", str(pbx.uas_port), "-mp", str(udp_port()), "-m", "1")
    uac = sipp(tmp_path, "uac", "uac_cancel.xml", pbx.target, "-s", NUMBER, ip=PROVIDER)
    uac += ["-p", str(udp_port()), "-mp", str(udp_port()), "-m", "1"]
    run_pair(pbx, tmp_path, uas, uac)
    _id, direction, disposition, _cause, billsec = pbx.last_cdr(before_cdr)
    assert (direction, disposition, billsec) == ("inbound", "cancelled", 0.0)


def test_bye_from_the_callee_reaches_the_caller(pbx: Pbx, tmp_path: Path) -> None:
    before_cdr = pbx.cdr_count()
    uas = sipp(tmp_path, "uas", "uas_bye.xml", "-p", str(pbx.uas_port), "-mp", str(udp_port()), "-m", "1")
    uac = sipp(tmp_path, "uac", "uac_wait_bye.xml", pbx.target, "-s", NUMBER, ip=PROVIDER)
    uac += ["-p", str(udp_port()), "-mp", str(udp_port()), "-m", "1"]
    run_pair(pbx, tmp_path, uas, uac)
    _id, _direction, disposition, cause, _billsec = pbx.last_cdr(before_cdr)
    assert (disposition, cause) == ("answered", "callee hung up")


def test_120_concurrent_calls_to_one_number(pbx: Pbx, tmp_path: Path) -> None:
    calls = 120
    before_cdr = pbx.cdr_count()
    uas = sipp(tmp_path, "uas", "uas.xml", "-p", str(pbx.uas_port), "-mp", str(udp_port()), "-m", str(calls))
    uac = sipp(tmp_path, "uac", "uac_hold.xml", pbx.target, "-s", NUMBER, ip=PROVIDER)
    uac += ["-p", str(udp_port()), "-mp", str(udp_port()), "-m", str(calls), "-l", str(calls)]
    uac += ["-r", "200", "-d", "4000"]
    samples: list[float] = []
    run_pair(pbx, tmp_path, uas, uac, poll=samples)
    assert max(samples) >= calls, samples
    deadline = time.monotonic() + 5
    while pbx.cdr_count() - before_cdr < calls and time.monotonic() < deadline:
        time.sleep(0.1)
    with sqlite3.connect(pbx.data_dir / "vpbx.db") as db:
        rows = db.execute("select disposition, count(*) from cdrs where id > ? group by 1", (before_cdr,))
        assert dict(rows.fetchall()) == {"answered": calls}
    m = pbx.metrics()
    assert m["vpbx_calls_active"] == 0 and m["vpbx_media_sessions"] == 0
    assert m['vpbx_calls_total{direction="inbound",result="answered"}'] >= calls
    assert m["vpbx_call_setup_seconds_count"] >= calls
    assert pbx.proc.http is not None
    url = f"http://{pbx.proc.http[0]}:{pbx.proc.http[1]}/health"
    with urllib.request.urlopen(url, timeout=5) as r:
        health = json.loads(r.read())
    assert health["calls_active"] == 0 and health["cdrs_pending"] == 0


def test_blind_transfer_by_the_caller(pbx: Pbx, tmp_path: Path) -> None:
    """The caller (127.0.0.2) reaches 1001, REFERs it to 1003 (a second SIPp UAS, registered
    now); 1001 ends up talking to 1003, which hangs up: vpbx BYEs 1001."""
    third_port = udp_port()
    register = sipp(tmp_path, "register3", "register_auth.xml", pbx.target, "-s", THIRD)
    register += ["-au", THIRD, "-ap", THIRD_PW, "-p", str(third_port), "-m", "1"]
    reg = subprocess.run(register, check=False, capture_output=True, timeout=TIMEOUT, cwd=tmp_path)
    assert reg.returncode == 0, report(tmp_path)
    before_cdr = pbx.cdr_count()
    third = sipp(tmp_path, "uas3", "uas_bye.xml", "-p", str(third_port), "-mp", str(udp_port()), "-m", "1")
    with (tmp_path / "uas3-out.txt").open("wb") as out:
        third_proc = subprocess.Popen(third, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        uas = sipp(tmp_path, "uas", "uas.xml", "-p", str(pbx.uas_port), "-mp", str(udp_port()), "-m", "1")
        uac = sipp(
            tmp_path, "uac", "uac_refer.xml", pbx.target, "-s", CALLEE, "-key", "target", THIRD, ip=PROVIDER
        )
        uac += ["-p", str(udp_port()), "-mp", str(udp_port()), "-m", "1"]
        run_pair(pbx, tmp_path, uas, uac)
        assert third_proc.wait(timeout=15) == 0, report(tmp_path)
    finally:
        if third_proc.poll() is None:
            third_proc.kill()
        third_proc.wait(timeout=5)
    assert "TRANSFER-RESULT SIP/2.0 200" in (tmp_path / "uac-actions.log").read_text()
    _id, _direction, disposition, cause, _billsec = pbx.last_cdr(before_cdr)
    # 1003 took the transferring caller's side of the call, and hung up from there
    assert (disposition, cause) == ("answered", f"caller hung up (transferred to {THIRD})")


def test_hold_re_invite_is_relayed_with_its_direction(pbx: Pbx, tmp_path: Path) -> None:
    """The caller holds (re-INVITE a=sendonly): the callee is offered sendonly through the
    engine and its a=recvonly answer comes back to the caller."""
    uas = sipp(
        tmp_path, "uas", "uas_reinvite.xml", "-p", str(pbx.uas_port), "-mp", str(udp_port()), "-m", "1"
    )
    uac = sipp(tmp_path, "uac", "uac_reinvite.xml", pbx.target, "-s", NUMBER, ip=PROVIDER)
    uac += ["-p", str(udp_port()), "-mp", str(udp_port()), "-m", "1"]
    run_pair(pbx, tmp_path, uas, uac)
    assert "HOLD-OFFER sendonly" in (tmp_path / "uas-actions.log").read_text(), report(tmp_path)
    assert "HOLD-ANSWER recvonly" in (tmp_path / "uac-actions.log").read_text(), report(tmp_path)


def test_callee_registered_over_tcp_is_called_over_tcp(pbx: Pbx, tmp_path: Path) -> None:
    """A UDP caller reaches a phone that registered over TCP: vpbx opens TCP to it (§18.1.1)."""
    port = udp_port()
    register = sipp(tmp_path, "register4", "register_auth.xml", pbx.target, "-s", TCP_PHONE, "-t", "t1")
    register += ["-au", TCP_PHONE, "-ap", TCP_PHONE_PW, "-p", str(port), "-m", "1"]
    reg = subprocess.run(register, check=False, capture_output=True, timeout=TIMEOUT, cwd=tmp_path)
    assert reg.returncode == 0, report(tmp_path)
    before_cdr = pbx.cdr_count()
    uas = sipp(tmp_path, "uas", "uas.xml", "-t", "t1", "-p", str(port), "-mp", str(udp_port()), "-m", "1")
    uac = sipp(tmp_path, "uac", "uac_hold.xml", pbx.target, "-s", TCP_PHONE, "-d", "500", ip=PROVIDER)
    uac += ["-p", str(udp_port()), "-mp", str(udp_port()), "-m", "1"]
    run_pair(pbx, tmp_path, uas, uac)
    _id, _direction, disposition, cause, _billsec = pbx.last_cdr(before_cdr)
    assert (disposition, cause) == ("answered", "caller hung up")


def test_call_without_media_is_hung_up_after_the_media_timeout(tmp_path: Path) -> None:
    """No RTP either way for media_timeout_s: the engine's event makes vpbx BYE both sides."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    cli(data_dir, "user", "add", CALLEE, "--password", CALLEE_PW)
    config = data_dir / "vpbx.toml"
    config.write_text(
        f'[serve]\nport_min = {PORT_MIN}\nport_max = {PORT_MAX}\ntrusted = ["{PROVIDER}/32", "{PHONE}/32"]\n'
        'md5_only = true\nlog_level = "warning"\nmedia_timeout_s = 1.5\nqualify_interval_s = 0\n'
    )
    args = ["serve", "--config", str(config), "--data-dir", str(data_dir)]
    proc = VpbxServer([*args, "--sip-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"], timeout=TIMEOUT)
    try:
        proc.start()
        pbx = Pbx(proc, data_dir, udp_port())
        register = sipp(tmp_path, "register", "register_auth.xml", pbx.target, "-s", CALLEE)
        register += ["-au", CALLEE, "-ap", CALLEE_PW, "-p", str(pbx.uas_port), "-m", "1"]
        assert subprocess.run(register, check=False, capture_output=True, timeout=TIMEOUT).returncode == 0
        uas = sipp(tmp_path, "uas", "uas.xml", "-p", str(pbx.uas_port), "-mp", str(udp_port()), "-m", "1")
        uac = sipp(tmp_path, "uac", "uac_wait_bye.xml", pbx.target, "-s", CALLEE, ip=PROVIDER)
        uac += ["-p", str(udp_port()), "-mp", str(udp_port()), "-m", "1"]
        started = time.monotonic()
        run_pair(pbx, tmp_path, uas, uac)  # both get a BYE from vpbx, nobody hung up
        assert time.monotonic() - started < 10
        _id, _direction, disposition, cause, _billsec = pbx.last_cdr(0)
        assert (disposition, cause) == ("answered", "media timeout")
    finally:
        proc.stop()
