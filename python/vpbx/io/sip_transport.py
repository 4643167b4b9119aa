"""SIP over UDP, TCP and TLS on asyncio (uvloop in production): bytes in -> parse ->
TransactionLayer.receive; actions out -> socket writes (RFC 3261 §18, §26.2.1 for TLS).

    transport = SipTransport(TransactionLayer(), tu=on_action, guard=guard)
    await transport.listen("0.0.0.0", 5060)          # UDP and TCP on the same port
    await transport.listen_tls("0.0.0.0", 5061, server_context)   # optional
    transport.respond(key, response)                  # from the TU

- Received requests get `received` (and `rport` when asked) on their top Via
  (RFC 3261 §18.2.1, RFC 3581 §4) before the transaction layer sees them.
- Malformed messages are answered with SipParseError.response() (400, 505, 413 ...)
  or dropped when no answer can be formed (DESIGN.md rule 7); a TCP connection whose
  framing is lost is closed after that answer.
- TCP and TLS: one connection per (transport, remote address), reused for everything sent
  there (§18.1.1, §18.2.2 responses go back on the connection the request came in on);
  StreamFramer cuts messages and answers CRLFCRLF keep-alive pings with CRLF (RFC 5626
  §3.5.1). A TLS connection we open ourselves verifies the peer with `tls_client`.
- Timers: one loop.call_at for TransactionLayer.next_deadline().
- The source guard (rate limits, bans) runs before parsing: dropped means no answer.
- `probe_queue` measures how late UDP input is read (socket queue + loop): the overload
  signal of vpbx.pbx.calls.admission.

Two clocks: the transaction layer runs on loop.time() (monotonic); the guard is given
`wall()` (Unix time), the clock the registrar gives it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final, cast

from vpbx.security import SourceGuard
from vpbx.sip import (
    PONG,
    KeepAlive,
    Request,
    Response,
    SipParseError,
    StreamFramer,
    TransactionLayer,
    Via,
    is_keepalive,
    new_tag,
    parse_message,
)
from vpbx.sip.transaction_actions import Action, Send
from vpbx.sip.transaction_match import Dest, TransactionKey, response_destination

__all__ = ["SipTransport", "TransportStats"]

TuCallback = Callable[[Action], None]
UDP_RCVBUF: Final = 4 << 20  # bytes (the kernel caps it at net.core.rmem_max)
PROBE_LOST_S: Final = 1.0  # a probe unread for this long is forgotten (the kernel dropped it)
_PROBE = struct.Struct("!d")  # a probe datagram: the loop time it was sent at


class TransportStats:
    __slots__ = ("connections", "dropped", "guarded", "malformed", "received", "send_errors", "sent")

    def __init__(self) -> None:
        self.received = 0  # messages handed to the transaction layer
        self.malformed = 0  # answered with an error response or dropped
        self.dropped = 0  # malformed and not answerable
        self.guarded = 0  # refused by the source guard before parsing
        self.sent = 0
        self.send_errors = 0
        self.connections = 0  # TCP connections accepted or opened


def _peer(addr: Any) -> Dest:
    return str(addr[0]), int(addr[1])


def stamp_via(request: Request, source: Dest) -> None:
    """Add received (and fill rport) on the top Via (RFC 3261 §18.2.1, RFC 3581 §4):
    received when sent-by's host is not the source address, or whenever rport was
    asked for; rport gets the source port."""
    vias = request.via
    if not vias:
        return
    top = vias[0]
    ip, port = source
    host = top.host[1:-1] if top.host[:1] == "[" else top.host
    if host == ip and not top.has_rport:
        return
    params = dict(top.params)
    params["received"] = ip
    if "rport" in params:
        params["rport"] = str(port)
    headers = request.headers
    headers.pop_first("via")
    headers.add("Via", str(Via(top.transport, top.host, top.port, params)), first=True)


class _Datagram(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.owner.on_datagram(data, _peer(addr))

    def error_received(self, exc: Exception) -> None:
        self.owner.stats.send_errors += 1  # ICMP unreachable for something we sent


class _Stream(asyncio.Protocol):
    """One TCP or TLS connection: StreamFramer in, writes out."""

    def __init__(self, owner: SipTransport, name: str = "TCP") -> None:
        self.owner = owner
        self.name = name  # "TCP" or "TLS": the transport a Via names
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.peer: Dest = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.peer = _peer(transport.get_extra_info("peername"))
        self.owner.stats.connections += 1
        self.owner.connections[self.name, self.peer] = self

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        for item in self.framer.feed(data):
            if isinstance(item, bytes):
                owner.on_stream_message(item, self)
            elif isinstance(item, KeepAlive):
                self.write(PONG)
            else:
                owner.answer_error(item, self.peer, self.name, self)
        if self.framer.failed and self.transport is not None:
            self.transport.close()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        key = (self.name, self.peer)
        if self.owner.connections.get(key) is self:
            del self.owner.connections[key]
        self.transport = None


class SipTransport:
    """UDP and TCP listeners feeding one TransactionLayer; `tu` gets every action that
    is not a Send (Deliver, Timeout, Terminated, ...), in order."""

    def __init__(
        self,
        layer: TransactionLayer,
        tu: TuCallback | None = None,
        *,
        guard: SourceGuard | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.layer = layer
        self.tu = tu
        self.guard = guard
        self.wall = wall
        self.stats = TransportStats()
        self.connections: dict[tuple[str, Dest], _Stream] = {}
        self.tls_client: ssl.SSLContext | None = None  # for TLS connections we open
        self.tls_address: Dest | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._periodic: list[asyncio.TimerHandle] = []
        self._pending: dict[tuple[str, Dest], list[tuple[bytes, TransactionKey | None]]] = {}
        self._closed: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.address: Dest = ("", 0)
        self._probe: socket.socket | None = None
        self._probe_from: Dest = ("", 0)
        self._probe_sent: deque[float] = deque()
        self._on_probe: Callable[[float], object] | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    # -- lifecycle ------------------------------------------------------------------------

    async def listen(self, host: str, port: int) -> Dest:
        """UDP and TCP on host:port (port 0: a free port, the same for both). Returns
        the bound address."""
        loop = self.loop
        for _ in range(20):
            udp, _proto = await loop.create_datagram_endpoint(
                lambda: _Datagram(self), local_addr=(host, port)
            )
            bound = _peer(udp.get_extra_info("sockname"))
            try:
                server = await loop.create_server(lambda: _Stream(self), host, bound[1], reuse_address=True)
            except OSError:
                udp.close()
                if port:
                    raise
                continue
            sock = udp.get_extra_info("socket")
            if sock is not None:  # room for a burst: late is measurable (probe_queue), lost is not
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
            self._udp = udp
            self._servers.append(server)
            self.address = bound
            self._closed = loop.create_future()
            return bound
        raise OSError(f"no port free for both UDP and TCP on {host}")

    async def listen_tls(self, host: str, port: int, context: ssl.SSLContext) -> Dest:
        """SIP over TLS on host:port (RFC 3261 §26.2.1; port 0: a free one) with the server
        certificate in `context`. Returns the bound address."""
        server = await self.loop.create_server(lambda: _Stream(self, "TLS"), host, port, ssl=context)
        self._servers.append(server)
        sockets = server.sockets
        self.tls_address = _peer(sockets[0].getsockname()) if sockets else (host, port)
        return self.tls_address

    def every(self, seconds: float, fn: Callable[[], object]) -> None:
        """Run `fn` every `seconds` until close (housekeeping: expiry, sweeps)."""
        loop = self.loop

        def tick() -> None:
            fn()
            self._periodic[index] = loop.call_later(seconds, tick)

        index = len(self._periodic)
        self._periodic.append(loop.call_later(seconds, tick))

    def probe_queue(self, interval: float, on_sample: Callable[[float], object]) -> None:
        """Every `interval` s, a datagram from a socket of our own (never parsed as SIP: known
        by its source) to the UDP listener; `on_sample` gets how long it waited before being
        read (the kernel's queue plus the loop: what every SIP datagram waits), and at each
        tick the age of the oldest one still unread."""
        if self._udp is None:
            return
        host, port = self.address
        wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
        target = wildcard.get(host, host)
        sock = socket.socket(socket.AF_INET6 if ":" in target else socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.connect((target, port))
        self._probe, self._probe_from, self._on_probe = sock, _peer(sock.getsockname()), on_sample
        sent = self._probe_sent
        loop = self.loop

        def tick() -> None:
            now = loop.time()
            while sent and now - sent[0] > PROBE_LOST_S:
                sent.popleft()
            if sent and now - sent[0] > interval:
                on_sample(now - sent[0])  # not read yet: at least this late
            with contextlib.suppress(OSError):  # a full socket buffer: the next tick tells
                sock.send(_PROBE.pack(now))
                sent.append(now)

        self.every(interval, tick)

    def close(self) -> None:
        if self._probe is not None:
            self._probe.close()
            self._probe = None
        for handle in self._periodic:
            handle.cancel()
        if self._timer is not None:
            self._timer.cancel()
        if self._udp is not None:
            self._udp.close()
        for server in self._servers:
            server.close()
        for conn in list(self.connections.values()):
            if conn.transport is not None:
                conn.transport.close()
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> None:
        if self._closed is not None:
            await self._closed

    # -- input ----------------------------------------------------------------------------

    def on_datagram(self, data: bytes, source: Dest) -> None:
        if source == self._probe_from and self._on_probe is not None and len(data) == _PROBE.size:
            (at,) = _PROBE.unpack(data)
            sent = self._probe_sent
            while sent and sent[0] <= at:  # this one, and older ones the kernel dropped
                sent.popleft()
            self._on_probe(self.loop.time() - at)
            return
        if is_keepalive(data):
            return  # CRLF NAT keep-alive over UDP: nothing to answer
        guard = self.guard
        if guard is not None and not guard.allow_request(source[0], self.wall()):
            self.stats.guarded += 1
            return
        try:
            msg = parse_message(data)
        except SipParseError as err:
            self.answer_error(err, source, "UDP", None)
            return
        self._receive(msg, source, "UDP")

    def on_stream_message(self, data: bytes, conn: _Stream) -> None:
        guard = self.guard
        if guard is not None and not guard.allow_request(conn.peer[0], self.wall()):
            self.stats.guarded += 1
            return
        try:
            msg = parse_message(data, stream=True)
        except SipParseError as err:
            self.answer_error(err, conn.peer, conn.name, conn)
            return
        self._receive(msg, conn.peer, conn.name)

    def _receive(self, msg: Request | Response, source: Dest, transport: str) -> None:
        if isinstance(msg, Request):
            stamp_via(msg, source)
        self.stats.received += 1
        self.process(self.layer.receive(msg, source, transport, self.loop.time()))

    def answer_error(self, err: SipParseError, source: Dest, transport: str, conn: _Stream | None) -> None:
        """A message that could not be parsed: its error response, sent statelessly to
        where the top Via says (§18.2.2), or nothing when there is none to form."""
        self.stats.malformed += 1
        response = err.response(to_tag=new_tag())
        if response is None or err.top_via is None:
            self.stats.dropped += 1
            return
        data = response.to_bytes()
        if conn is not None:
            conn.write(data)
        elif self._udp is not None:
            self._udp.sendto(data, response_destination(err.top_via, source, "UDP"))
        self.stats.sent += 1

    # -- output ---------------------------------------------------------------------------

    def respond(self, key: TransactionKey, response: Response) -> None:
        """The TU's response for server transaction `key`."""
        self.process(self.layer.respond(key, response, self.loop.time()))

    def send_request(self, request: Request, dest: Dest, transport: str = "UDP") -> TransactionKey:
        """Start a client transaction (§17.1) for `request` towards `dest`; what comes back
        (Deliver of each response, Timeout, TransportError, Terminated) reaches the TU
        under the returned key."""
        key, actions = self.layer.send_request(request, dest, transport, self.loop.time())
        self.process(actions)
        return key

    def send_stateless(self, message: Request | Response, dest: Dest, transport: str = "UDP") -> None:
        """Send outside any transaction: the ACK for a 2xx (§13.2.2.4), a 2xx the UAS core
        retransmits itself (§13.3.1.4)."""
        self.process(self.layer.send_stateless(message, dest, transport))

    def process(self, actions: list[Action]) -> None:
        """Carry out the layer's actions in order, then re-arm the timer."""
        tu = self.tu
        for action in actions:
            if isinstance(action, Send):
                self._send(action)
            elif tu is not None:
                tu(action)
        self._arm()

    def _send(self, send: Send) -> None:
        self.stats.sent += 1
        if send.transport == "UDP":
            if self._udp is not None:
                self._udp.sendto(send.data, send.dest)
            return
        name = "TLS" if send.transport == "TLS" else "TCP"
        conn = self.connections.get((name, send.dest))
        if conn is not None and conn.transport is not None:
            conn.write(send.data)
            return
        self._connect(name, send.dest, send.data, send.key)

    def _connect(self, name: str, dest: Dest, data: bytes, key: TransactionKey | None) -> None:
        """Open a TCP (or TLS) connection to `dest` and send once it is up; a failure is
        reported to the transaction layer (§17.1.4, §17.2.4)."""
        slot = (name, dest)
        queued = self._pending.get(slot)
        if queued is not None:
            queued.append((data, key))
            return
        self._pending[slot] = [(data, key)]
        context = None
        if name == "TLS":
            context = self.tls_client or ssl.create_default_context()

        async def connect() -> None:
            try:
                await self.loop.create_connection(lambda: _Stream(self, name), dest[0], dest[1], ssl=context)
            except (OSError, ssl.SSLError):  # refused, unreachable, or the certificate did not verify
                self.stats.send_errors += 1
                now = self.loop.time()
                for _data, k in self._pending.pop(slot, []):
                    if k is not None:
                        self.process(self.layer.transport_error(k, now))
                return
            conn = self.connections.get(slot)
            for d, _k in self._pending.pop(slot, []):
                if conn is not None:
                    conn.write(d)

        task = self.loop.create_task(connect())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- timers ---------------------------------------------------------------------------

    def _arm(self) -> None:
        deadline = self.layer.next_deadline()
        if deadline is None:
            return
        if self._timer is not None:
            if self._timer_at <= deadline:
                return  # fires first; re-arms then
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.process(self.layer.on_timer(self.loop.time()))
