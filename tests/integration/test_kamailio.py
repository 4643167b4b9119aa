"""A real call through Kamailio (Debian's package) whose rtpengine module anchors the media
on ``vpbx media-node`` over NG, between two SIPp endpoints.

    SIPp UAC --SIP--> Kamailio (stateful proxy) --SIP--> SIPp UAS (-rtp_echo)
        |           rtpengine_offer / _answer / _delete          |
        |                       | NG (bencode/UDP)               |
        +-------RTP-------> vpbx media-node <-------RTP----------+

The UAC streams PCMU from a raw file (``<exec rtp_stream>``) to the port the 200 OK names;
the UAS echoes whatever reaches its media port, so packets cross the node both ways.
Checked: SIPp's exit codes (every call completed), that each endpoint saw SDP pointing at
the node (127.0.0.1 and a port from the node's range), that the node relayed RTP
(``vpbx_media_packets_relayed_total`` on /metrics), and that the BYE's rtpengine_delete()
left no session behind.

Kamailio and SIPp come from Debian (``make test-deps`` installs ``kamailio`` and
``sip-tester``); if they are missing the test fails, it does not skip. Everything runs on
127.0.0.1 with free ports, every wait is bounded, and every process is killed in teardown.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from media_node_proc import Node, free_port, media_node

from conftest import sine
from vpbx.media import Encoder

HERE = Path(__file__).parent
CFG_TEMPLATE = HERE / "kamailio" / "kamailio.cfg.in"
UAC_XML = HERE / "sipp" / "uac.xml"
UAS_XML = HERE / "sipp" / "uas.xml"
MODULE_DIRS = ("/usr/lib/x86_64-linux-gnu/kamailio/modules", "/usr/lib/kamailio/modules")

PORT_MIN, PORT_MAX = 43000, 43099
CALLS = 2
CALL_SECONDS = 2.0  # the UAC's <pause> between ACK and BYE (uac.xml)
PACKETS_PER_SECOND = 50
STARTUP_TIMEOUT = 20.0
CALL_TIMEOUT = 60.0


def _require(tool: str) -> str:
    # Debian installs kamailio in /usr/sbin, which a non-root PATH often lacks.
    path = shutil.which(tool, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if path is None:
        pytest.fail(
            f"{tool} not found on PATH: `make test-deps` installs it (Debian packages "
            "kamailio and sip-tester)"
        )
    return path


def _module_dir() -> str:
    for d in MODULE_DIRS:
        if (Path(d) / "rtpengine.so").exists():
            return d
    pytest.fail(f"Kamailio's rtpengine module not found in {MODULE_DIRS}: `make test-deps` installs it")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _sip_answers(port: int, timeout: float) -> bool:
    """True once something on 127.0.0.1:``port`` answers an OPTIONS (Kamailio's cfg says 405)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(timeout)
        me = s.getsockname()[1]
        options = (
            f"OPTIONS sip:ping@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKping{time.monotonic_ns()}\r\n"
            f"From: <sip:probe@127.0.0.1:{me}>;tag=probe\r\n"
            f"To: <sip:ping@127.0.0.1:{port}>\r\n"
            f"Call-ID: probe-{time.monotonic_ns()}@127.0.0.1\r\n"
            "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        s.sendto(options.encode(), ("127.0.0.1", port))
        try:
            return s.recv(65536).startswith(b"SIP/2.0 ")
        except TimeoutError:
            return False


@contextlib.contextmanager
def kamailio(tmp: Path, ng_port: int) -> Iterator[int]:
    """Kamailio in the foreground on a free UDP port, its rtpengine module pointed at
    ``ng_port``; yields the SIP port."""
    binary = _require("kamailio")
    sip_port = free_port(socket.SOCK_DGRAM)
    cfg = tmp / "kamailio.cfg"
    text = CFG_TEMPLATE.read_text()
    for key, value in {"SIP_PORT": sip_port, "NG_PORT": ng_port, "MODULE_DIR": _module_dir()}.items():
        text = text.replace(f"@{key}@", str(value))
    cfg.write_text(text)
    run = tmp / "kamailio-run"
    run.mkdir()
    log = tmp / "kamailio.log"
    check = subprocess.run([binary, "-c", "-f", str(cfg)], capture_output=True, timeout=30, check=False)
    if check.returncode != 0:
        pytest.fail(f"kamailio -c rejected the config:\n{check.stderr.decode(errors='replace')}")
    args = [binary, "-DD", "-E", "-f", str(cfg), "-Y", str(run), "-P", str(run / "kamailio.pid")]
    args += ["-w", str(run), "-m", "64", "-M", "8"]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _sip_answers(sip_port, 0.3):
            if proc.poll() is not None:
                pytest.fail(f"kamailio exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                pytest.fail(f"kamailio not answering within {STARTUP_TIMEOUT} s:\n{log.read_text()}")
        yield sip_port
    finally:
        _stop(proc)


def _sipp_args(tmp: Path, name: str, scenario: Path, sip_port: int, media_port: int) -> list[str]:
    return [
        _require("sipp"),
        "-sf",
        str(scenario),
        "-i",
        "127.0.0.1",
        "-p",
        str(sip_port),
        "-mi",
        "127.0.0.1",
        "-mp",
        str(media_port),
        "-m",
        str(CALLS),
        "-nostdin",
        "-timeout",
        f"{int(CALL_TIMEOUT)}s",
        "-timeout_error",
        "-trace_err",
        "-error_file",
        str(tmp / f"{name}-errors.log"),
        "-trace_logs",
        "-log_file",
        str(tmp / f"{name}-actions.log"),
        "-trace_msg",
        "-message_file",
        str(tmp / f"{name}-messages.log"),
    ]


def _media_lines(log: Path, tag: str) -> list[tuple[str, int]]:
    text = log.read_text(errors="replace") if log.exists() else ""
    return [(ip, int(port)) for ip, port in re.findall(rf"{tag} \[?([0-9.]+)\]?:\[?(\d+)\]?", text)]


def _report(tmp: Path) -> str:
    parts = []
    for name in ("kamailio.log", "uac-errors.log", "uas-errors.log", "uac-out.log", "uas-out.log"):
        p = tmp / name
        if p.exists():
            parts.append(f"--- {name} (tail)\n" + "\n".join(p.read_text(errors="replace").splitlines()[-40:]))
    return "\n".join(parts)


def _relayed(node: Node) -> float:
    return node.metrics()[("vpbx_media_packets_relayed_total", ())]


def test_call_through_kamailio_is_anchored_on_media_node(tmp_path: Path) -> None:
    _require("kamailio")
    _require("sipp")
    # 3 s of a 440 Hz tone as raw PCMU for <exec rtp_stream="audio.pcmu,1,0"> (run in tmp_path).
    (tmp_path / "audio.pcmu").write_bytes(Encoder("PCMU", 8000).encode(sine(8000, 440.0, 3.0)))

    with media_node(tmp_path, PORT_MIN, PORT_MAX, "--timeout", "60") as node:
        before = _relayed(node)
        with kamailio(tmp_path, node.ng_port) as sip_port:
            uas_port, uac_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
            uas_media, uac_media = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
            uas_args = [*_sipp_args(tmp_path, "uas", UAS_XML, uas_port, uas_media), "-rtp_echo"]
            uac_args = [
                *_sipp_args(tmp_path, "uac", UAC_XML, uac_port, uac_media),
                f"127.0.0.1:{uas_port}",
                "-rsa",
                f"127.0.0.1:{sip_port}",
                "-s",
                "echo",
                "-l",
                str(CALLS),
                "-r",
                str(CALLS),
            ]
            with (tmp_path / "uas-out.log").open("wb") as uas_out:
                uas = subprocess.Popen(uas_args, stdout=uas_out, stderr=subprocess.STDOUT, cwd=tmp_path)
            try:
                time.sleep(0.3)  # let the UAS bind before the first INVITE reaches it
                assert uas.poll() is None, _report(tmp_path)
                with (tmp_path / "uac-out.log").open("wb") as uac_out:
                    uac = subprocess.run(
                        uac_args,
                        check=False,
                        stdout=uac_out,
                        stderr=subprocess.STDOUT,
                        cwd=tmp_path,
                        timeout=CALL_TIMEOUT,
                    )
                assert uac.returncode == 0, f"SIPp UAC exit code {uac.returncode}\n{_report(tmp_path)}"
                assert uas.wait(timeout=15) == 0, f"SIPp UAS exit code {uas.returncode}\n{_report(tmp_path)}"
            finally:
                _stop(uas)

        # The SDP each side received names the node, not the other phone.
        offers = _media_lines(tmp_path / "uas-actions.log", "OFFER-MEDIA")
        answers = _media_lines(tmp_path / "uac-actions.log", "ANSWER-MEDIA")
        assert len(offers) == CALLS and len(answers) == CALLS, _report(tmp_path)
        for ip, port in offers + answers:
            assert ip == "127.0.0.1"
            assert PORT_MIN <= port <= PORT_MAX, (port, offers, answers)
        assert not {p for _, p in offers} & {p for _, p in answers}, "offer and answer share a port"

        # RTP crossed the node both ways: UAC -> node -> UAS (echo) -> node -> UAC.
        relayed = _relayed(node) - before
        # The UAC streams for CALL_SECONDS per call; the echo doubles it (10% slack for pacing).
        both_ways = 2 * CALLS * CALL_SECONDS * PACKETS_PER_SECOND
        assert relayed >= 0.9 * both_ways, (relayed, both_ways, _report(tmp_path))

        # rtpengine_delete() on each BYE removed the calls from the node.
        deadline = time.monotonic() + 5
        while node.metrics()[("vpbx_media_sessions", ())] != 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert node.metrics()[("vpbx_media_sessions", ())] == 0
