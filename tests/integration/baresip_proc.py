"""A headless baresip (Debian package baresip-core, version 1.0) as a test peer: one process
per phone with its own config folder (`baresip -f DIR`), driven over its ctrl_tcp socket.

- audio source: the `aufile` module plays a WAV file (8 kHz mono S16LE for G.711);
- audio sink: `aubridge` (a device nobody reads), and the `sndfile` filter writes what the
  phone sent (`*-enc.wav`) and what it decoded from the network (`*-dec.wav`) per call;
  baresip 1.0 stops writing `*-dec.wav` once a re-INVITE (hold) renegotiates the stream,
  even between two baresips without vpbx, so tests read it for calls without re-INVITEs;
- commands (`dial`, `accept`, `hangup`, `hold`, `resume`, `transfer`, `sndcode`) come from
  the `menu` module, sent as netstring-framed JSON on ctrl_tcp, which also reports call
  events (CALL_ESTABLISHED, CALL_CLOSED, CALL_DTMF_START...);
- the SIP trace (`-s`) goes to `DIR/stdout.log`, where the tests read the SDP it received.

Every wait is bounded; `stop()` kills the process whatever state it is in, and `-t` makes
baresip quit by itself even if a test runner dies before its teardown.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

START_TIMEOUT = 10.0
LIFETIME_S = 120  # baresip -t: it exits by itself after this long


def baresip_binary() -> str:
    path = shutil.which("baresip")
    if path is None:
        pytest.fail(
            "baresip is not installed: run `make test-deps` (TEST_PACKAGES includes baresip-core), "
            "or `apt-get install -y baresip-core`"
        )
    return path


def phone_ports() -> tuple[int, int]:
    """(SIP port, ctrl_tcp port), all distinct and free: the SIP port on UDP and TCP, and the
    next one on TCP too (baresip 1.0 always opens SIP over TLS on sip_listen's port + 1).
    All are held until chosen, so they cannot coincide; a phone must be started before the
    next one is created, or the kernel may hand the same free ports out again."""
    for _ in range(50):
        with contextlib.ExitStack() as held:
            tcp = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            try:
                udp = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                udp.bind(("127.0.0.1", port))
                tls = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                tls.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            ctrl = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            ctrl.bind(("127.0.0.1", 0))
            return port, int(ctrl.getsockname()[1])
    raise RuntimeError("no free ports for baresip")


def write_tone(path: Path, freq: float, *, seconds: float = 20.0, rate: int = 8000) -> Path:
    """A mono 16-bit WAV of a sine at `freq` Hz (aufile needs the codec's sample rate)."""
    t = np.arange(int(rate * seconds)) / rate
    samples = (8000 * np.sin(2 * np.pi * freq * t)).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


def read_wav(path: Path) -> tuple[np.ndarray[Any, np.dtype[np.float64]], int]:
    with wave.open(str(path), "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2, path
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
        return data, w.getframerate()


def dominant_frequency(samples: np.ndarray[Any, np.dtype[np.float64]], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    spectrum[0] = 0.0
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(spectrum.argmax())])


def tone_seconds(samples: np.ndarray[Any, np.dtype[np.float64]], rate: int, freq: float) -> float:
    """Seconds of 20 ms frames that are loud (RMS > 1000) and dominated by `freq` (± 20 Hz:
    a 20 ms frame resolves 50 Hz bins, so check by correlation instead of the FFT peak)."""
    n = rate // 50
    t = np.arange(n) / rate
    probe = np.exp(-2j * np.pi * freq * t)
    good = 0
    for start in range(0, len(samples) - n + 1, n):
        frame = samples[start : start + n]
        rms = float(np.sqrt(np.mean(frame**2)))
        if rms < 1000:
            continue
        # energy at `freq` relative to the frame's: 1.0 for a pure tone at `freq`
        share = 2 * abs(np.dot(frame, probe)) ** 2 / (n * float(np.dot(frame, frame)))
        good += share > 0.8
    return good / 50


class Baresip:
    """One baresip phone registered as `user` to the registrar at `registrar` (host, port)."""

    def __init__(
        self,
        home: Path,
        *,
        user: str,
        password: str,
        registrar: tuple[str, int],
        source: Path,
        codecs: str = "pcmu",
        answermode: str = "manual",
        transport: str = "udp",
        rtp_ports: tuple[int, int] = (61000, 64999),
        regint: int = 60,
    ) -> None:
        self.home = home
        self.user = user
        self.registrar = registrar
        self.sip, self.ctrl = phone_ports()
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.buf = b""
        self.events: list[dict[str, Any]] = []
        home.mkdir(parents=True, exist_ok=True)
        (home / "rec").mkdir(exist_ok=True)
        config = [
            "poll_method epoll",
            f"sip_listen 127.0.0.1:{self.sip}",
            "net_interface 127.0.0.1",
            "call_local_timeout 20",
            "call_max_calls 2",
            f"audio_source aufile,{source}",
            "audio_player aubridge,sink",
            "audio_alert aubridge,sink",
            f"rtp_ports {rtp_ports[0]}-{rtp_ports[1]}",
            "module_path /usr/lib/baresip/modules",
            "module g711.so",
            "module aufile.so",
            "module aubridge.so",
            "module sndfile.so",
            "module_tmp account.so",
            "module_app menu.so",
            "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen 127.0.0.1:{self.ctrl}",
            f"snd_path {home / 'rec'}",
        ]
        (home / "config").write_text("\n".join(config) + "\n")
        host, port = registrar
        # answermode: manual (rings until `accept`), auto (answers at once), early (183 with
        # SDP, then rings until `accept`; baresip 1.0 sends no RTP before it answers)
        params = f";auth_pass={password};audio_codecs={codecs};regint={regint};answermode={answermode}"
        (home / "accounts").write_text(f"<sip:{user}@{host}:{port};transport={transport}>{params}\n")
        (home / "contacts").write_text("")

    def start(self) -> Baresip:
        cmd = [baresip_binary(), "-f", str(self.home), "-s", "-t", str(LIFETIME_S)]
        with (self.home / "stdout.log").open("wb") as out:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=self.home
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(OSError):
                self.sock = socket.create_connection(("127.0.0.1", self.ctrl), timeout=1)
                return self
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"baresip {self.user} did not start:\n{self.tail()}")

    def log(self) -> str:
        path = self.home / "stdout.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def tail(self) -> str:
        """The end of the log for a failure message, without the call status lines that
        baresip rewrites in place every few ms."""
        lines = [ln for ln in self.log().replace("\r", "\n").splitlines() if " audio=" not in ln]
        return "\n".join(lines)[-4000:]

    def stop(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
            self.proc = None

    # ctrl_tcp: netstrings ("LEN:JSON,") both ways
    def _read(self, timeout: float) -> dict[str, Any] | None:
        assert self.sock is not None
        deadline = time.monotonic() + timeout
        while True:
            colon = self.buf.find(b":")
            if colon > 0:
                size = int(self.buf[:colon])
                end = colon + 1 + size
                if len(self.buf) > end:
                    msg: dict[str, Any] = json.loads(self.buf[colon + 1 : end])
                    self.buf = self.buf[end + 1 :]
                    return msg
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                return None
            self.buf += chunk

    def command(self, name: str, params: str = "", *, timeout: float = 5.0) -> dict[str, Any]:
        assert self.sock is not None
        body = json.dumps({"command": name, "params": params, "token": name}).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body + b",")
        deadline = time.monotonic() + timeout
        while (msg := self._read(deadline - time.monotonic())) is not None:
            if msg.get("response"):
                return msg
            self.events.append(msg)
        pytest.fail(f"baresip {self.user}: no answer to {name}:\n{self.tail()}")

    def wait_event(self, kind: str, *, timeout: float = 10.0) -> dict[str, Any]:
        """The first event of type `kind` (already received or arriving within `timeout`)."""
        for i, event in enumerate(self.events):
            if event.get("type") == kind:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while (msg := self._read(deadline - time.monotonic())) is not None:
            if msg.get("type") == kind:
                return msg
            if msg.get("event"):
                self.events.append(msg)
        seen = [e.get("type") for e in self.events]
        pytest.fail(f"baresip {self.user}: no {kind} event (saw {seen}):\n{self.tail()}")

    def heard(self) -> Path:
        """The WAV of what this phone decoded from the network during its (only) call."""
        files = sorted((self.home / "rec").glob("*-dec.wav"))
        assert len(files) == 1, files
        return files[0]

    def trace(self, start: str, *, proto: str = "") -> list[tuple[int, str]]:
        """(this phone's port, message) for each SIP message it received from the registrar
        (its `-s` trace shows each as "PROTO FROM -> TO" then the message) whose first line
        starts with `start`, e.g. "INVITE " or "SIP/2.0 200"; with `proto` ("UDP", "TCP"),
        only those that came that way."""
        host, port = self.registrar
        out = []
        for chunk in self.log().split("\x1b[36;1m#\n")[1:]:
            route, _, message = chunk.partition("\n")
            if route.startswith(proto) and f" {host}:{port} -> " in route and message.startswith(start):
                local = int(route.rpartition(":")[2])
                out.append((local, message.split("\x1b[;m")[0].replace("\r\n", "\n")))
        return out

    def received(self, start: str, *, proto: str = "") -> list[str]:
        """The messages of `trace`."""
        return [message for _port, message in self.trace(start, proto=proto)]
