"""Starting and stopping `python -m vpbx serve` for integration tests (bounded waits,
the process always reaped)."""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"listening on udp\+tcp ([\d.]+):(\d+).*?(?:HTTP on ([\d.]+):(\d+))?$")
TLS_READY = re.compile(r"listening on udp\+tcp [\d.]+:\d+, tls ([\d.]+):(\d+)")


def sipp_binary() -> str:
    path = shutil.which("sipp")
    if path is None:
        pytest.fail(
            "sipp is not installed: run `make test-deps` (TEST_PACKAGES includes sip-tester), "
            "or `apt-get install -y sip-tester`"
        )
    return path


def vpbx_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT / "python"))


class VpbxServer:
    """A `vpbx serve` process; `sip` and `http` are its bound addresses once started."""

    def __init__(self, args: list[str], *, timeout: float = 30.0) -> None:
        self.args = args
        self.timeout = timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.output: list[str] = []
        self.sip: tuple[str, int] = ("", 0)
        self.http: tuple[str, int] | None = None
        self.sip_tls: tuple[str, int] | None = None

    def start(self) -> VpbxServer:
        cmd = [sys.executable, "-m", "vpbx", *self.args]
        # unbuffered: a buffered reader would hide lines it already read from select()
        out = subprocess.PIPE
        proc = subprocess.Popen(
            cmd, env=vpbx_env(), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, bufsize=0
        )
        self.proc = proc
        assert proc.stdout is not None
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = proc.stdout.readline().decode(errors="replace")
            if not line:
                break  # the process ended
            self.output.append(line)
            m = READY.search(line.rstrip())
            if m is not None:
                self.sip = (m.group(1), int(m.group(2)))
                tls = TLS_READY.search(line)
                if tls is not None:
                    self.sip_tls = (tls.group(1), int(tls.group(2)))
                if m.group(3) is not None:
                    self.http = (m.group(3), int(m.group(4)))
                return self
        self.stop()
        raise RuntimeError(f"vpbx serve did not start: {''.join(self.output)[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Signal the process, wait for it (5 s, then kill); returns its exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(timeout=5)
        if proc.stdout is not None:
            self.output.append(proc.stdout.read().decode(errors="replace"))
            proc.stdout.close()
        self.proc = None
        return code
