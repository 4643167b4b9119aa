"""Calls over a trunk through `vpbx serve`, SIPp playing the provider (real sockets, media
anchored on vpbx's engine):

    provider SIPp (127.0.0.2) --INVITE DID--> vpbx --> extension 1001 (SIPp UAS, 127.0.0.3)
    extension 1002 (SIPp UAC, 127.0.0.1) --INVITE +7...--> vpbx --407 dance--> provider SIPp UAS

The trunk is added with the CLI (host 127.0.0.2, --no-register: registration with auth
against SIPp is test_trunks.py), the DID with `vpbx number add`. The provider is not
trusted in the config: it is known by the trunk's address alone.
"""

from __future__ import annotations

import hashlib
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from media_node_proc import free_port
from vpbx_server import ROOT, VpbxServer, sipp_binary, vpbx_env

from vpbx.media import Encoder

HERE = Path(__file__).parent / "sipp"
PORT_MIN, PORT_MAX = 44000, 44999
CALLEE, CALLEE_PW = "1001", "pw-1001"
CALLER, CALLER_PW = "1002", "pw-1002"
DID = "+74951110000"
TRUNK_USER, TRUNK_SECRET = "7001", "trunk-s3cret"
FROM_USER, CALLER_ID = "74950000001", "+74950000001"
DIALLED = "+74957654321"
PROVIDER = "127.0.0.2"
PHONE = "127.0.0.3"  # the extension answering inbound calls
TIMEOUT = 30.0
REALM, NONCE = "provider.test", "5b8f2c3d4e5f60718293a4b5c6d7e8f9"  # trunk_outbound_uas.xml's challenge


@dataclass
class Pbx:
    proc: VpbxServer
    data_dir: Path
    uas_port: int
    provider_port: int

    @property
    def target(self) -> str:
        return f"{self.proc.sip[0]}:{self.proc.sip[1]}"

    def metric(self, name: str) -> float:
        assert self.proc.http is not None
        url = f"http://{self.proc.http[0]}:{self.proc.http[1]}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
        m = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
        return 0.0 if m is None else float(m.group(1))

    def cdrs_after(self, after: int, count: int = 1) -> list[tuple[str, str, str, str, float]]:
        """CDRs with id > after (written behind: wait for `count` of them, bounded)."""
        deadline = time.monotonic() + 5
        rows: list[tuple[str, str, str, str, float]] = []
        while time.monotonic() < deadline:
            with sqlite3.connect(self.data_dir / "vpbx.db") as db:
                rows = db.execute(
                    "select direction, disposition, from_number, to_number, billsec from cdrs "
                    "where id > ? order by id",
                    (after,),
                ).fetchall()
            if len(rows) >= count:
                return rows
            time.sleep(0.1)
        pytest.fail(f"expected {count} CDRs, got {rows}")

    def cdr_count(self) -> int:
        with sqlite3.connect(self.data_dir / "vpbx.db") as db:
            return int(db.execute("select coalesce(max(id), 0) from cdrs").fetchone()[0])


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


def sipp(tmp: Path, name: str, scenario: str, ip: str, *args: str) -> list[str]:
    return [
        sipp_binary(), "-sf", str(HERE / scenario), "-i", ip, "-mi", ip, "-nostdin",
        "-timeout", "20s", "-timeout_error", "-trace_err", "-error_file", str(tmp / f"{name}-errors.log"),
        "-trace_logs", "-log_file", str(tmp / f"{name}-actions.log"), "-m", "1", *args,
    ]  # fmt: skip


def report(tmp: Path) -> str:
    parts = []
    for p in sorted(tmp.glob("*.log")):
        parts.append(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-30:]))
    return "\n".join(parts)


def run_pair(tmp: Path, uas: list[str], uac: list[str]) -> None:
    """Start the UAS, run the UAC to completion; both must exit 0 (every wait bounded)."""
    with (tmp / "uas-out.txt").open("wb") as out:
        uas_proc = subprocess.Popen(uas, stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
    try:
        time.sleep(0.3)  # let the UAS bind
        assert uas_proc.poll() is None, report(tmp)
        uac_proc = subprocess.run(uac, check=False, capture_output=True, timeout=TIMEOUT, cwd=tmp)
        assert uac_proc.returncode == 0, uac_proc.stdout.decode()[-3000:] + report(tmp)
        assert uas_proc.wait(timeout=15) == 0, report(tmp)
    finally:
        if uas_proc.poll() is None:
            uas_proc.kill()
        uas_proc.wait(timeout=5)


def udp_port(ip: str = "127.0.0.1") -> int:
    if ip == "127.0.0.1":
        return free_port(socket.SOCK_DGRAM)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def digest_checks(header: str, username: str, password: str) -> bool:
    """The provider's check of a Proxy-Authorization answering trunk_outbound_uas.xml's
    challenge (RFC 2617 §3.2.2, MD5, with or without qop=auth)."""
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', header.removeprefix("Digest ")))

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    if (params.get("username"), params.get("realm"), params.get("nonce")) != (username, REALM, NONCE):
        return False
    ha1 = md5(f"{username}:{REALM}:{password}")
    ha2 = md5(f"INVITE:{params['uri']}")
    if params.get("qop") == "auth":
        expected = md5(f"{ha1}:{NONCE}:{params['nc']}:{params['cnonce']}:auth:{ha2}")
    else:
        expected = md5(f"{ha1}:{NONCE}:{ha2}")
    return params.get("response") == expected


def write_tone(tmp: Path) -> None:
    t = np.arange(8000 * 3) / 8000
    (tmp / "audio.pcmu").write_bytes(
        Encoder("PCMU", 8000).encode((8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16))
    )


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    data_dir = tmp_path_factory.mktemp("vpbx-trunk-calls")
    cli(data_dir, "user", "add", CALLEE, "--password", CALLEE_PW)
    cli(data_dir, "user", "add", CALLER, "--password", CALLER_PW)
    cli(data_dir, "number", "add", DID, "--to", CALLEE)
    provider_port = udp_port(PROVIDER)
    cli(
        data_dir, "trunk", "add", "prov", "--host", PROVIDER, "--port", str(provider_port),
        "--username", TRUNK_USER, "--secret", TRUNK_SECRET, "--no-register", "--prefix", "+7,00",
        "--from-user", FROM_USER, "--caller-id", CALLER_ID,
    )  # fmt: skip
    config = data_dir / "vpbx.toml"
    config.write_text(
        f'[serve]\nport_min = {PORT_MIN}\nport_max = {PORT_MAX}\nmd5_only = true\nlog_level = "warning"\n'
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
        pbx = Pbx(proc, data_dir, udp_port(), provider_port)
        register = sipp(data_dir, "register", "register_auth.xml", PHONE, pbx.target, "-s", CALLEE)
        register += ["-au", CALLEE, "-ap", CALLEE_PW, "-p", str(pbx.uas_port)]
        reg = subprocess.run(register, check=False, capture_output=True, timeout=TIMEOUT, cwd=data_dir)
        assert reg.returncode == 0, reg.stdout.decode()[-2000:] + report(data_dir)
        yield pbx
    finally:
        proc.stop()


def test_inbound_call_from_the_provider_reaches_the_did_extension_with_media(
    pbx: Pbx, tmp_path: Path
) -> None:
    write_tone(tmp_path)
    before_cdr = pbx.cdr_count()
    relayed_before = pbx.metric("vpbx_media_packets_relayed_total")
    uas = sipp(
        tmp_path, "uas", "uas.xml", PHONE, "-p", str(pbx.uas_port), "-mp", str(udp_port()), "-rtp_echo"
    )
    uac = sipp(tmp_path, "uac", "trunk_inbound_uac.xml", PROVIDER, pbx.target, "-s", DID)
    uac += ["-p", str(udp_port(PROVIDER)), "-mp", str(udp_port(PROVIDER))]
    run_pair(tmp_path, uas, uac)
    answer = re.search(r"ANSWER-MEDIA ([0-9.]+):(\d+)", (tmp_path / "uac-actions.log").read_text())
    assert answer is not None and answer.group(1) == "127.0.0.1"
    assert PORT_MIN <= int(answer.group(2)) <= PORT_MAX  # the provider talks to vpbx's engine
    relayed = pbx.metric("vpbx_media_packets_relayed_total") - relayed_before
    assert relayed >= 0.9 * 2 * 2 * 50, relayed  # 2 s of 20 ms packets, echoed back by the extension
    ((direction, disposition, from_number, to_number, billsec),) = pbx.cdrs_after(before_cdr)
    assert (direction, disposition, from_number, to_number) == ("inbound", "answered", "+74957654321", DID)
    assert billsec >= 1.5
    assert pbx.metric('vpbx_calls_total{direction="inbound",result="answered"}') >= 1


def test_outbound_call_answers_the_providers_407_and_presents_the_trunk_identity(
    pbx: Pbx, tmp_path: Path
) -> None:
    write_tone(tmp_path)
    before_cdr = pbx.cdr_count()
    relayed_before = pbx.metric("vpbx_media_packets_relayed_total")
    uas = sipp(
        tmp_path, "uas", "trunk_outbound_uas.xml", PROVIDER, "-p", str(pbx.provider_port),
        "-mp", str(udp_port(PROVIDER)), "-rtp_echo",
    )  # fmt: skip
    uac = sipp(tmp_path, "uac", "uac_auth.xml", "127.0.0.1", pbx.target, "-s", DIALLED)
    uac += ["-au", CALLER, "-ap", CALLER_PW, "-auth_uri", f"{DIALLED}@{pbx.target}"]
    uac += ["-p", str(udp_port()), "-mp", str(udp_port())]
    run_pair(tmp_path, uas, uac)
    log = (tmp_path / "uas-actions.log").read_text()
    proxy_auth = re.search(r"PROXY-AUTH (Digest .*)", log)
    assert proxy_auth is not None, log
    assert digest_checks(proxy_auth.group(1), TRUNK_USER, TRUNK_SECRET), proxy_auth.group(1)
    first = re.search(r"FIRST-INVITE cseq=(\d+)", log)
    retry = re.search(r"FROM-USER (\S+) PAI (\S*) cseq=(\d+)", log)
    assert first is not None and retry is not None, log
    assert retry.group(1) == FROM_USER and retry.group(2) == CALLER_ID
    assert int(retry.group(3)) == int(first.group(1)) + 1  # §22.2: CSeq one higher
    offer = re.search(r"OFFER-MEDIA ([0-9.]+):(\d+)", log)
    assert offer is not None and offer.group(1) == "127.0.0.1" and PORT_MIN <= int(offer.group(2)) <= PORT_MAX
    relayed = pbx.metric("vpbx_media_packets_relayed_total") - relayed_before
    assert relayed >= 0.9 * 2 * 2 * 50, relayed
    ((direction, disposition, from_number, to_number, billsec),) = pbx.cdrs_after(before_cdr)
    assert (direction, disposition, from_number, to_number) == ("outbound", "answered", CALLER, DIALLED)
    assert billsec >= 1.5


def test_international_call_without_permission_is_403_and_the_provider_hears_nothing(
    pbx: Pbx, tmp_path: Path
) -> None:
    before_cdr = pbx.cdr_count()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as provider:
        provider.bind((PROVIDER, pbx.provider_port))  # the provider's address, listening
        provider.settimeout(1.0)
        uac = sipp(tmp_path, "uac", "trunk_denied_uac.xml", "127.0.0.1", pbx.target, "-s", "0049301234567")
        uac += ["-au", CALLER, "-ap", CALLER_PW, "-auth_uri", f"0049301234567@{pbx.target}"]
        uac += ["-p", str(udp_port()), "-mp", str(udp_port())]
        done = subprocess.run(uac, check=False, capture_output=True, timeout=TIMEOUT, cwd=tmp_path)
        assert done.returncode == 0, done.stdout.decode()[-3000:] + report(tmp_path)
        with pytest.raises(TimeoutError):
            data = provider.recv(65536)
            pytest.fail(f"the provider got {data[:200]!r}")
    ((direction, disposition, _from, to_number, _billsec),) = pbx.cdrs_after(before_cdr)
    assert (direction, disposition, to_number) == ("outbound", "rejected", "0049301234567")


def options_answered(pbx: Pbx, source: str, count: int) -> int:
    """Send `count` OPTIONS from `source` within a second; how many were answered (3 s)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind((source, 0))
        port = sock.getsockname()[1]
        for n in range(count):
            if n % 20 == 0:
                time.sleep(0.05)  # 400/s: far over the rate, gentle on the socket buffers
            sock.sendto(
                (
                    f"OPTIONS sip:{pbx.target} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP {source}:{port};branch=z9hG4bKflood{n}\r\n"
                    f"From: <sip:probe@{source}>;tag=f{n}\r\nTo: <sip:{pbx.target}>\r\n"
                    f"Call-ID: flood{n}@{source}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                    "Content-Length: 0\r\n\r\n"
                ).encode(),
                pbx.proc.sip,
            )
        answered = set()
        deadline = time.monotonic() + 3
        sock.settimeout(0.5)
        while len(answered) < count and time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            m = re.search(rb"Call-ID: (flood\d+)", data)
            if m is not None:
                answered.add(m.group(1))
        return len(answered)


def test_the_provider_address_is_not_rate_limited_but_others_still_are(pbx: Pbx) -> None:
    """300 requests in under a second: over the guard's limit (burst 120, then 30/s) for any
    one source, but the trunk's host is the provider (many calls from one address); the
    config trusts nobody."""
    assert options_answered(pbx, PROVIDER, 300) == 300
    assert options_answered(pbx, "127.0.0.4", 300) < 200
