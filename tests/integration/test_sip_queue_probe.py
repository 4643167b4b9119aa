"""SipTransport.probe_queue over a real UDP socket: the overload signal of call admission.
An idle transport reads its probes within milliseconds; behind a burst of requests (as on
a saturated node) a probe waits for the burst to be worked off and says so; once the
burst is gone the samples fall back by themselves."""

from __future__ import annotations

import asyncio
import socket

from vpbx.io.sip_transport import SipTransport
from vpbx.sip import TransactionLayer
from vpbx.sip_service import build_service

INTERVAL = 0.02
BURST = 4000


def options(port: int, n: int) -> bytes:
    return (
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKburst{n}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:b@127.0.0.1>;tag={n}\r\nTo: <sip:127.0.0.1>\r\n"
        f"Call-ID: burst{n}@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def _samples() -> tuple[list[float], list[float], list[float]]:
    service = build_service("test", [])
    transport = SipTransport(TransactionLayer(), service.on_action)
    service.responder = transport
    _host, port = await transport.listen("127.0.0.1", 0)
    samples: list[float] = []
    transport.probe_queue(INTERVAL, samples.append)
    burst = [options(port, n) for n in range(BURST)]
    try:
        await asyncio.sleep(0.3)
        idle = list(samples)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for data in burst:  # queued in the listener's socket while the loop is here
                s.sendto(data, ("127.0.0.1", port))
            await asyncio.sleep(0.05)
            for data in burst:  # more arriving while the first half is read
                s.sendto(data.replace(b"burst", b"again"), ("127.0.0.1", port))
        loaded = len(samples)
        deadline = asyncio.get_running_loop().time() + 5
        while transport.stats.received < 2 * BURST and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        during = samples[len(idle) :]
        await asyncio.sleep(0.3)
        after = samples[max(loaded, len(idle) + len(during)) :]
    finally:
        transport.close()
    return idle, during, after


def test_probe_reports_the_queueing_delay_and_recovers() -> None:
    idle, during, after = asyncio.run(asyncio.wait_for(_samples(), 15))
    assert len(idle) >= 5 and max(idle) < 0.05, idle
    assert max(during) >= 0.05, during  # a probe queued behind the burst
    assert len(after) >= 5 and max(after) < 0.05, after
