"""The SIP service as `vpbx serve` runs it: transport + transaction layer + registrar +
(when given) the B2BUA for calls; OPTIONS answered, every other request refused (405 for
methods we know but do not serve, 501 for the rest, RFC 3261 §8.2.1).

Calls: an INVITE without To tag goes to `B2bua.on_invite`; CANCEL to `on_cancel` with the
INVITE transaction it cancels (§9.2); requests with a To tag (BYE, re-INVITE, UPDATE,
INFO, OPTIONS) to the B2BUA's dialogs; the ACK for a 2xx (no transaction, §17.2.3) to
`on_ack`; a server transaction's timeout (no ACK for a 2xx, §13.3.1.4) to `on_timeout`.
The service is the B2BUA's `SipPort`: requests it starts are tracked (`track`) so their
responses reach the leg that sent them.

`SipService` is the transaction user (TU): it takes the layer's actions and answers
requests through a `Responder` (the transport). It holds no sockets and reads no
clock itself (the wall clock is a parameter); `run_sip_service` wires it to the
asyncio transport of vpbx.io.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, Protocol

from vpbx.pbx import MemoryLocationStore, Registrar
from vpbx.pbx.calls import ALLOW as CALL_ALLOW
from vpbx.pbx.calls import B2bua
from vpbx.security import AccountAllowlists, GuardConfig, SourceGuard
from vpbx.sip import Deliver, DigestAuthenticator, Request, Response, build_response, compute_ha1s, new_tag
from vpbx.sip.transaction_actions import (
    Action,
    Overload,
    Terminated,
    Timeout,
    TransactionLimitError,
    TransportError,
)
from vpbx.sip.transaction_match import Dest, TransactionKey
from vpbx.store.errors import StoreError

ALLOW: Final = ("REGISTER", "OPTIONS")
# Methods of RFC 3261 and its extensions we know but do not serve yet: 405 with Allow.
KNOWN_METHODS: Final = frozenset(
    {"INVITE", "ACK", "BYE", "CANCEL", "SUBSCRIBE", "NOTIFY", "MESSAGE", "INFO", "PRACK"}
    | {"UPDATE", "REFER", "PUBLISH"}
)
SERVER: Final = "vpbx"
RETRY_AFTER_S: Final = 5


ClientHandler = Callable[[Deliver | Timeout | TransportError], None]


class Responder(Protocol):
    def respond(self, key: TransactionKey, response: Response) -> None: ...


class Sender(Protocol):
    """A Responder that also starts client transactions (vpbx.io.sip_transport.SipTransport)."""

    def respond(self, key: TransactionKey, response: Response) -> None: ...

    def send_request(self, request: Request, dest: Dest, transport: str = "UDP") -> TransactionKey: ...

    def send_stateless(self, message: Request | Response, dest: Dest, transport: str = "UDP") -> None: ...


@dataclass(slots=True)
class ServiceStats:
    requests: dict[str, int] = field(default_factory=dict)  # by method (bounded: known + "other")
    overloaded: int = 0
    store_refused: int = 0  # REGISTERs answered 503 because the location store refused


class SipService:
    """Answers what the transaction layer delivers. `responder` is set once the
    transport exists (they refer to each other)."""

    def __init__(self, registrar: Registrar, *, wall: Callable[[], float] = time.time) -> None:
        self.registrar = registrar
        self.wall = wall
        self.responder: Responder | None = None
        self.sender: Sender | None = None  # set with the transport; needed for calls
        self.calls: B2bua | None = None
        self.stats = ServiceStats()
        # Client transactions we started (trunk REGISTER, B2BUA legs): who hears their outcome.
        self._clients: dict[TransactionKey, ClientHandler] = {}

    def track(self, key: TransactionKey, handler: ClientHandler) -> None:
        """`handler` gets every Deliver (each response), Timeout and TransportError of client
        transaction `key` until it terminates (§17.1)."""
        self._clients[key] = handler

    # -- SipPort (vpbx.pbx.calls.model) for the B2BUA --------------------------------------

    def respond(self, key: TransactionKey, response: Response) -> None:
        if self.responder is not None:
            self.responder.respond(key, response)

    def request(
        self, request: Request, dest: Dest, transport: str, handler: ClientHandler
    ) -> TransactionKey | None:
        if self.sender is None:
            return None
        try:
            key = self.sender.send_request(request, dest, transport)
        except TransactionLimitError:
            return None
        self.track(key, handler)
        return key

    def stateless(self, message: Request | Response, dest: Dest, transport: str) -> None:
        if self.sender is not None:
            self.sender.send_stateless(message, dest, transport)

    def allow(self) -> tuple[str, ...]:
        return CALL_ALLOW if self.calls is not None else ALLOW

    def on_action(self, action: Action) -> None:
        if isinstance(action, Deliver):
            message = action.message
            if isinstance(message, Request) and action.key is not None and action.source is not None:
                self._on_request(message, action.key, action.source, action.transport, action.related)
            elif isinstance(message, Request) and message.method == "ACK" and self.calls is not None:
                self.calls.on_ack(message)
            elif isinstance(message, Response) and action.key is not None:
                handler = self._clients.get(action.key)
                if handler is not None:
                    handler(action)
            # ACK for a 2xx and stray responses: nothing to do yet.
        elif isinstance(action, (Timeout, TransportError)):
            handler = self._clients.get(action.key)
            if handler is not None:
                handler(action)
            elif isinstance(action, Timeout) and self.calls is not None:
                self.calls.on_timeout(action.key, action.timer)
        elif isinstance(action, Terminated):
            self._clients.pop(action.key, None)
        elif isinstance(action, Overload):
            self.stats.overloaded += 1

    def _on_request(
        self,
        request: Request,
        key: TransactionKey,
        source: tuple[str, int],
        transport: str,
        related: TransactionKey | None = None,
    ) -> None:
        method = request.method
        counted = method if method in KNOWN_METHODS or method in ALLOW else "other"
        self.stats.requests[counted] = self.stats.requests.get(counted, 0) + 1
        calls = self.calls
        if calls is not None and method != "REGISTER":
            if method == "CANCEL":
                calls.on_cancel(request, key, related)
                return
            if method == "INVITE" and not request.to.tag:
                calls.on_invite(request, key, source, transport)
                return
            if request.to.tag and method != "ACK":
                calls.on_in_dialog(request, key)
                return
        response: Response | None
        if method == "REGISTER":
            try:
                response = self.registrar.handle(request, source, self.wall(), transport)
            except StoreError:  # the location store's queue is full: the disk is gone
                self.stats.store_refused += 1
                response = build_response(request, 503, to_tag=new_tag())
                response.headers.add("Retry-After", str(RETRY_AFTER_S))  # §21.5.4
        elif method == "OPTIONS":
            response = options_response(request, self.allow())
        elif method == "CANCEL":
            response = build_response(request, 481, to_tag=new_tag())  # no INVITE to cancel (§9.2)
        elif method in KNOWN_METHODS:
            response = build_response(request, 405, to_tag=new_tag())
            response.headers.add("Allow", ", ".join(self.allow()))  # §21.4.6
        else:
            response = build_response(request, 501, to_tag=new_tag())
        if response is None or self.responder is None:
            return  # dropped: a banned source hears nothing
        response.headers.add("Server", SERVER)
        self.responder.respond(key, response)

    def housekeeping(self) -> None:
        """Expire bindings, sweep the guard, forget old nonce-counts (every few seconds)."""
        now = self.wall()
        registrar = self.registrar
        registrar.location.expire(now)
        if registrar.guard is not None:
            registrar.guard.sweep(now)
        registrar.authenticator.prune(now)


def options_response(request: Request, allow: tuple[str, ...] = ALLOW) -> Response:
    """200 to OPTIONS with what we do (§11.2)."""
    response = build_response(request, 200, to_tag=new_tag())
    headers = response.headers
    headers.add("Allow", ", ".join(allow))
    headers.add("Accept", "application/sdp")
    headers.add("Accept-Encoding", "identity")
    headers.add("Accept-Language", "en")
    headers.add("Supported", "")
    return response


def static_users(users: Iterable[tuple[str, str]], realm: str) -> Callable[[str, str], str | None]:
    """A credential lookup over (extension, password) pairs, HA1s computed once."""
    table = {ext: compute_ha1s(ext, realm, password) for ext, password in users}

    def lookup(username: str, algorithm: str) -> str | None:
        return table.get(username, {}).get(algorithm)

    return lookup


def build_service(
    realm: str,
    users: Iterable[tuple[str, str]],
    *,
    trusted: tuple[str, ...] = (),
    allowlists: AccountAllowlists | None = None,
    algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
    secret: bytes | None = None,
) -> SipService:
    """A SipService with an in-memory location store and a static user table."""
    guard = SourceGuard(GuardConfig(trusted=trusted))
    authenticator = DigestAuthenticator(realm, secret or os.urandom(32), algorithms=algorithms)
    registrar = Registrar(
        realm, authenticator, static_users(users, realm), MemoryLocationStore(), guard, allowlists=allowlists
    )
    return SipService(registrar)


async def run_sip_service(
    service: SipService, host: str, port: int, on_ready: Callable[[tuple[str, int]], None] | None = None
) -> None:
    """Listen on UDP and TCP host:port and serve until the transport is closed."""
    from vpbx.io.sip_transport import SipTransport  # noqa: PLC0415 (keeps this module loop-free)
    from vpbx.sip import TransactionLayer  # noqa: PLC0415

    transport = SipTransport(TransactionLayer(), service.on_action, guard=service.registrar.guard)
    service.responder = transport
    service.sender = transport
    bound = await transport.listen(host, port)
    transport.every(5.0, service.housekeeping)
    if on_ready is not None:
        on_ready(bound)
    try:
        await transport.wait_closed()
    finally:
        transport.close()
