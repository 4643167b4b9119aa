"""The state of one B2BUA call: the A leg (the caller's INVITE we answer as a UAS) and
the B legs (the INVITEs we send as a UAC, one per contact when forking), plus what the
CDR and the metrics need. Plain data; the B2BUA changes it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Literal, Protocol

from vpbx.sip.auth_client import DigestClient
from vpbx.sip.dialog import Dialog
from vpbx.sip.message import Request, Response
from vpbx.sip.transaction_actions import Deliver, Timeout, TransportError
from vpbx.sip.transaction_match import Dest, TransactionKey
from vpbx.sip.uri import SipUri
from vpbx.store.cdrs import Cdr

from .routing import Route

__all__ = [
    "ALLOW",
    "B2buaConfig",
    "Call",
    "CallPhase",
    "CallStats",
    "ClientHandler",
    "Leg",
    "LegHandler",
    "Party",
    "Relay",
    "Side",
    "SipPort",
    "Transfer",
    "best_status",
    "disposition_of",
    "ignore",
    "sip_user",
]

# Methods the B2BUA serves (the Allow header of its responses, §20.5).
ALLOW: Final = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "UPDATE", "REFER", "REGISTER")

ClientHandler = Callable[[Deliver | Timeout | TransportError], None]
LegHandler = Callable[["Call", "Leg", Deliver | Timeout | TransportError], None]
Side = Literal["a", "b"]


class SipPort(Protocol):
    """What the B2BUA asks of the transport + transaction layer (vpbx.sip_service wires it)."""

    def respond(self, key: TransactionKey, response: Response) -> None:
        """The response for server transaction `key`."""
        ...

    def request(
        self, request: Request, dest: Dest, transport: str, handler: ClientHandler
    ) -> TransactionKey | None:
        """Start a client transaction; `handler` hears its responses, Timeout and
        TransportError. None: the layer refused (client transaction table full)."""
        ...

    def stateless(self, message: Request | Response, dest: Dest, transport: str) -> None:
        """Send outside a transaction (the ACK for a 2xx, §13.2.2.4)."""
        ...


@dataclass(frozen=True, slots=True)
class B2buaConfig:
    """host/port: our address in Via and Contact. no_answer_s: ring time before the
    forks are cancelled and A gets `no_answer_status` (480 or 408)."""

    host: str
    port: int
    realm: str
    no_answer_s: float = 30.0
    no_answer_status: int = 480
    max_calls: int = 100_000  # all calls of this node; beyond: 503 Retry-After


def sip_user(request: Request) -> str:
    uri = request.uri
    return (uri.user or "") if isinstance(uri, SipUri) else ""


class CallPhase(StrEnum):
    SETUP = "setup"  # INVITE from A not answered yet
    ANSWERED = "answered"  # 2xx sent to A
    ENDED = "ended"


@dataclass(slots=True)
class Leg:
    """One B-side INVITE (a fork). `dialog` exists from its first 1xx-with-tag or 2xx."""

    request: Request
    key: TransactionKey | None
    dest: Dest
    transport: str
    status: int = 0  # the last status received (0: none yet)
    dialog: Dialog | None = None
    final: bool = False  # a final response or a timeout ended its INVITE
    cancelled: bool = False
    auth: DigestClient | None = None  # answers the far end's 401/407 (a trunk's credentials)
    on_event: ClientHandler | None = None  # the handler of its transaction (kept for the retry)


@dataclass(slots=True)
class Party:
    """One side of an answered call: its dialog (ours towards it), where to send, its media
    party tag (NG from/to tag), our tag in its dialog, and the last SDP it sent."""

    dialog: Dialog
    dest: Dest
    transport: str
    media_tag: str
    local_tag: str
    sdp: bytes = b""


@dataclass(slots=True)
class Relay:
    """A request from one side passed to the other, waiting for its final response."""

    side: Side  # where the request came from
    key: TransactionKey  # its server transaction
    request: Request


@dataclass(slots=True)
class Call:
    """One call through the B2BUA. The media session is keyed by A's Call-ID; the media
    parties are A's From tag and the answering B leg's To tag."""

    a_request: Request
    a_key: TransactionKey
    a_dest: Dest  # where requests to A go (the flow its INVITE came on)
    a_transport: str
    a_tag: str  # our To tag towards A
    route: Route
    caller: str | None  # the authenticated account, None for a trusted source
    direction: str  # internal | inbound
    from_user: str
    started: float
    no_answer_at: float
    b_call_id: str
    b_tag: str  # our From tag towards B
    a_dialog: Dialog | None = None
    legs: list[Leg] = field(default_factory=list)
    winner: Leg | None = None
    phase: CallPhase = CallPhase.SETUP
    setup_seen: bool = False  # 180/183/200 relayed (call setup time observed)
    answered: float | None = None
    relays: list[Relay] = field(default_factory=list)
    parties: dict[Side, Party] = field(default_factory=dict)  # set when answered; a transfer swaps one
    transfer: Transfer | None = None
    transferred_to: str | None = None
    recording_path: str | None = None

    @property
    def media_id(self) -> str:
        return self.a_request.call_id

    @property
    def a_from_tag(self) -> str:
        return self.a_request.from_.tag or ""

    @property
    def b_to_tag(self) -> str:
        leg = self.winner
        return "" if leg is None or leg.dialog is None else leg.dialog.remote_tag

    def live_legs(self) -> Iterable[Leg]:
        return (leg for leg in self.legs if not leg.final)

    def dialog(self, side: Side) -> Dialog | None:
        party = self.parties.get(side)
        if party is not None:
            return party.dialog
        return self.a_dialog if side == "a" else None

    def dest(self, side: Side) -> tuple[Dest, str]:
        party = self.parties.get(side)
        if party is not None:
            return party.dest, party.transport
        return self.a_dest, self.a_transport

    def cdr(self, *, disposition: str, cause: str, now: float) -> Cdr:
        answered = self.answered
        return Cdr(
            call_id=self.a_request.call_id,
            direction=self.direction,
            from_number=self.from_user,
            to_number=self.route.dialled,
            started_at=self.started,
            disposition=disposition,
            answered_at=answered,
            ended_at=now,
            hangup_cause=cause
            if self.transferred_to is None
            else f"{cause} (transferred to {self.transferred_to})",
            duration_s=max(0.0, now - self.started),
            billsec=0.0 if answered is None else max(0.0, now - answered),
            recording_path=self.recording_path,
        )


@dataclass(slots=True)
class Transfer:
    """A blind transfer in progress (RFC 3515): `side` sent the REFER (the transferor), the
    other side stays (the transferee) and is connected to whoever of `legs` answers."""

    side: Side
    target: str
    legs: list[Leg] = field(default_factory=list)
    call_id: str = ""
    tag: str = ""
    deadline: float = 0.0


@dataclass(slots=True)
class CallStats:
    """Counters read by /metrics and /health (declared in vpbx.metrics)."""

    active: int = 0
    totals: dict[tuple[str, str], int] = field(default_factory=dict)  # (direction, result) -> n
    challenges: int = 0
    auth_failures: int = 0
    limited: int = 0  # refused by a per-number or per-account limit
    shed: int = 0  # new INVITEs answered 503 by the overload admission
    input_lag_s: float = 0.0  # the last SIP input lag sample (admission)

    def count(self, direction: str, result: str) -> None:
        key = (direction, result)
        self.totals[key] = self.totals.get(key, 0) + 1


def decrement(table: dict[str, int], name: str) -> None:
    """One call fewer under `name` (a per-number or per-account count); zero drops the key."""
    left = table.get(name, 0) - 1
    if left > 0:
        table[name] = left
    else:
        table.pop(name, None)


def ignore(_event: Deliver | Timeout | TransportError) -> None:
    """The handler of requests whose outcome changes nothing (BYE, CANCEL, NOTIFY)."""
    return


def best_status(statuses: list[int]) -> int:
    """The final response for A when every fork failed (after §16.7 step 6): a 6xx ends
    the search, 486 (busy somewhere) beats the rest, else the lowest class, else 480."""
    finals = [s for s in statuses if s >= 300]
    for s in finals:
        if s >= 600:
            return s
    if 486 in finals:
        return 486
    if not finals:
        return 480
    return min(finals, key=lambda s: (s // 100, s))


def disposition_of(status: int) -> str:
    if status in (486, 600):
        return "busy"
    if status in (408, 480):
        return "no-answer"
    if status == 487:
        return "cancelled"
    if status in (403, 404, 484, 603):
        return "rejected"
    return "failed"
