"""NG control protocol over UDP: an asyncio datagram protocol around the sans-IO
:class:`vpbx.ng.NgServer`. Each datagram is one request; the reply goes back to its source."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, cast

from vpbx.ng import NgOutcome, NgServer

__all__ = ["NgObserver", "NgUdpProtocol", "serve_ng_udp"]

NgObserver = Callable[[NgOutcome, tuple[str, int], float], object]
"""Told about every datagram: its outcome, its source and the seconds it took to handle."""


class NgUdpProtocol(asyncio.DatagramProtocol):
    def __init__(
        self,
        server: NgServer,
        clock: Callable[[], float] = time.time,
        observer: NgObserver | None = None,
    ) -> None:
        self.server = server
        self.clock = clock
        self.observer = observer
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # the selector loop's datagram transport does not subclass DatagramTransport
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        source = (str(addr[0]), int(addr[1]))
        started = time.perf_counter()
        outcome = self.server.handle(data, source, self.clock())
        if outcome.reply is not None and self.transport is not None:
            self.transport.sendto(outcome.reply, addr)
        if self.observer is not None:
            self.observer(outcome, source, time.perf_counter() - started)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for replies to vanished clients: nothing to do for a stateless server
        pass


async def serve_ng_udp(
    server: NgServer, host: str, port: int, observer: NgObserver | None = None
) -> tuple[asyncio.DatagramTransport, NgUdpProtocol]:
    """Listen for NG requests on ``host:port`` (port 0 picks a free one); ``observer`` hears
    how each datagram went (for logs and metrics)."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: NgUdpProtocol(server, observer=observer), local_addr=(host, port)
    )
    return transport, protocol
