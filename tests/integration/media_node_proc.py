"""``vpbx media-node`` as a subprocess on 127.0.0.1, for the tests that drive it
(test_media_node.py, test_kamailio.py): start it, wait for /health, talk NG to it, stop it.
Every wait has a timeout; the process is killed in teardown whatever happens."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from vpbx.ng import decode, encode

STARTUP_TIMEOUT = 30.0
REPLY_TIMEOUT = 5.0
STOP_TIMEOUT = 15.0


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    proc: subprocess.Popen[bytes]
    ng_port: int
    http_port: int
    log: Path
    port_min: int
    port_max: int

    _cookies = itertools.count(1)

    def ng_raw(self, datagram: bytes, timeout: float = REPLY_TIMEOUT) -> bytes | None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(datagram, ("127.0.0.1", self.ng_port))
            try:
                return s.recv(65536)
            except TimeoutError:
                return None

    def ng(self, **request: Any) -> dict[str, Any]:
        """Sends one NG request (keys with ``_`` spelled with ``-``); returns the reply with
        str keys and values."""
        cookie = f"t{next(self._cookies)}".encode()
        body = encode({k.replace("_", "-"): v for k, v in request.items()})
        reply = self.ng_raw(cookie + b" " + body)
        assert reply is not None, f"no reply to {request.get('command')}"
        got_cookie, _, rest = reply.partition(b" ")
        assert got_cookie == cookie
        return text(decode(rest))

    def http(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as r:
                return int(r.status), bytes(r.read())
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def health(self) -> dict[str, Any]:
        status, body = self.http("/health")
        assert status == 200, body
        doc = json.loads(body)
        assert isinstance(doc, dict)
        return doc

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, body = self.http("/metrics")
        assert status == 200
        out = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return out

    def stats(self) -> dict[str, Any]:
        reply = self.ng(command="statistics")
        assert reply["result"] == "ok"
        stats = reply["statistics"]
        assert isinstance(stats, dict)
        return stats

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]


def text(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, dict):
        return {text(k): text(x) for k, x in v.items()}
    if isinstance(v, list):
        return [text(x) for x in v]
    return v


@contextlib.contextmanager
def media_node(tmp: Path, port_min: int, port_max: int, *extra: str) -> Iterator[Node]:
    ng_port, http_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    log = tmp / f"node-{port_min}.log"
    args = [
        sys.executable,
        "-m",
        "vpbx",
        "media-node",
        "--interface",
        "127.0.0.1",
        "--listen-ng",
        f"127.0.0.1:{ng_port}",
        "--listen-http",
        f"127.0.0.1:{http_port}",
        "--port-min",
        str(port_min),
        "--port-max",
        str(port_max),
        "--workers",
        "2",
        *extra,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPBX_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=tmp, env=env)
    node = Node(proc, ng_port, http_port, log, port_min, port_max)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"media node exited with {proc.returncode}:\n{log.read_text()}")
            with contextlib.suppress(OSError):
                if node.http("/health")[0] == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"media node not healthy within {STARTUP_TIMEOUT} s:\n{log.read_text()}")
            time.sleep(0.1)
        yield node
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)
