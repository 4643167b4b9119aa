"""The SIP transaction layer (RFC 3261 §17, RFC 6026), sans-IO.

    layer = TransactionLayer()
    actions = layer.receive(message, source, "UDP", now)     # from the transport
    key, actions = layer.send_request(request, dest, "UDP", now)  # from the TU
    actions = layer.respond(server_key, response, now)        # from the TU
    actions = layer.on_timer(now)                             # when next_deadline() is due
    actions = layer.transport_error(key, now)                 # a Send for `key` failed

Nothing here opens a socket or reads a clock. The caller carries out the actions in
order: `Send` goes to the transport, the others go to the TU (transaction user).
Every transaction ends with exactly one `Terminated(key)` and is then forgotten.

The state machines are the tables of transaction_table.py; this module matches
messages to transactions (transaction_match.py) and carries out the steps the rows
name. Unmatched messages: a response goes to the TU with key None (§18.1.2); an ACK
that matches no transaction is the ACK for a 2xx and goes to the TU with key None
(§17.2.3: it is not part of the INVITE transaction).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from .errors import SipParseError
from .ids import new_tag
from .message import Message, Request, Response, build_response
from .timers import Entry, Timer, TimerConfig, TimerHeap
from .transaction_actions import (
    Action,
    Deliver,
    Discarded,
    Overload,
    Send,
    Terminated,
    Timeout,
    TransactionLimitError,
    TransportError,
)
from .transaction_match import (
    UNRELIABLE_TRANSPORTS,
    Dest,
    TransactionKey,
    build_ack,
    build_cancel,
    client_key,
    is_rfc3261_branch,
    response_destination,
    response_key,
    server_key,
)
from .transaction_table import (
    TABLES,
    TIMER_EVENT,
    AtT2,
    Backoff,
    Event,
    Kind,
    Op,
    Start,
    State,
    Step,
    Stop,
)

__all__ = [
    "Action",
    "Deliver",
    "Dest",
    "Discarded",
    "Overload",
    "Send",
    "Terminated",
    "Timeout",
    "TransactionKey",
    "TransactionLayer",
    "TransactionLimitError",
    "TransportError",
    "build_ack",
    "build_cancel",
]


# -- transactions -------------------------------------------------------------------------


class Transaction:
    """One transaction's state; the layer's to change."""

    __slots__ = (
        "ack_data",
        "cancel",
        "dest",
        "fire_now",
        "fired",
        "interval",
        "key",
        "kind",
        "last",
        "last_data",
        "related",
        "reliable",
        "req_to_tag",
        "request",
        "request_data",
        "source",
        "state",
        "table",
        "timers",
        "to_tag",
        "transport",
    )

    def __init__(
        self, key: TransactionKey, kind: Kind, request: Request | None, dest: Dest, transport: str
    ) -> None:
        self.key = key
        self.kind = kind
        self.table = _COMPILED[kind]
        self.state = State.INITIAL
        self.request: Request | None = request
        self.dest = dest
        self.source: Dest | None = None
        self.transport = transport
        self.reliable = transport not in UNRELIABLE_TRANSPORTS
        self.timers: dict[Timer, Entry] = {}  # running timers: their heap entries
        self.interval = 0.0
        self.fire_now: Event | None = None
        self.fired: Timer | None = None
        self.request_data: bytes | None = None
        self.ack_data: bytes | None = None
        self.last: Message | None = None
        self.last_data: bytes | None = None
        self.related: TransactionKey | None = None
        self.cancel: Transaction | None = None
        self.req_to_tag: str | None = None  # RFC 2543 matching (§17.2.3): To tag of the request
        self.to_tag: str | None = None  # and of the final response, which the ACK carries

    def __repr__(self) -> str:
        return f"<Transaction {self.kind} {self.state} {self.key.method} {self.key.branch[:24]}>"


Msg = Message | None
Out = list[Action]
OpFn = Callable[["TransactionLayer", Transaction, object, Message | None, float, list[Action]], None]
CompiledTable = dict[tuple[State, Event], tuple[State, tuple[tuple[OpFn, object], ...]]]
_COMPILED: dict[Kind, CompiledTable] = {}

_RESPONSE_EVENT: Final = (Event.RECV_1XX, Event.RECV_2XX, Event.RECV_3XX_6XX)
_TU_EVENT: Final = (Event.TU_1XX, Event.TU_2XX, Event.TU_3XX_6XX)
_TRANSPORTS: Final = {
    t: t.upper() for name in ("udp", "tcp", "tls", "sctp", "ws", "wss") for t in (name, name.upper())
}
_RETRANSMIT_TIMERS: Final = frozenset({Timer.A, Timer.E, Timer.G, Timer.RETRANSMIT_2XX})


def _class_of(status: int) -> int:
    return 0 if status < 200 else 1 if status < 300 else 2


class TransactionLayer:
    """All transactions of one SIP element, matched, timed and bounded.

    `max_server_transactions`: new requests beyond it get a stateless 503 with
    Retry-After (`overload_retry_after` seconds; None: no answer) and an `Overload`
    action; nothing is kept for them. `max_client_transactions`: send_request raises
    TransactionLimitError beyond it. Kept apart so that a flood of incoming requests
    cannot stop the element's own BYEs and re-INVITEs.

    `retransmit_2xx`: run the UAS core's 2xx retransmission (§13.3.1.4) for 2xx
    responses to INVITE given to `respond`, until the ACK comes or 64*T1 passes
    (then `Timeout(key, Timer.ACK_WAIT)`: the session should end with a BYE).
    """

    def __init__(
        self,
        timers: TimerConfig | None = None,
        *,
        max_server_transactions: int = 100_000,
        max_client_transactions: int = 50_000,
        overload_retry_after: int | None = 5,
        retransmit_2xx: bool = True,
    ) -> None:
        self.config = timers or TimerConfig()
        self.max_server_transactions = max_server_transactions
        self.max_client_transactions = max_client_transactions
        self.overload_retry_after = overload_retry_after
        self.retransmit_2xx = retransmit_2xx
        self._server: dict[TransactionKey, Transaction] = {}
        self._client: dict[TransactionKey, Transaction] = {}
        self._uas_2xx: dict[tuple[str, int, str], Transaction] = {}
        self._heap: TimerHeap[Transaction, Timer] = TimerHeap()
        self._durations = self.config.durations
        self.created = 0  # transactions started (each ends with one Terminated)
        self.overloaded = 0  # requests refused for lack of room
        self.retransmissions = 0  # requests and responses sent again

    # -- inspection -----------------------------------------------------------------------

    def __len__(self) -> int:
        """Live transactions, client and server."""
        return len(self._server) + len(self._client)

    def state(self, key: TransactionKey) -> State | None:
        """The state of a live transaction, None once it has ended."""
        txn = (self._server if key.server else self._client).get(key)
        return None if txn is None else txn.state

    def timers(self, key: TransactionKey) -> dict[Timer, float]:
        """The running timers of a live transaction and their deadlines."""
        txn = (self._server if key.server else self._client).get(key)
        return {} if txn is None else {timer: entry[0] for timer, entry in txn.timers.items()}

    def next_deadline(self) -> float | None:
        """When on_timer should run next; None when no timer is running."""
        return self._heap.next_deadline()

    def cancel_target(self, cancel: Request) -> TransactionKey | None:
        """The live INVITE server transaction a CANCEL request cancels (§9.2)."""
        key = server_key(cancel, "INVITE")
        txn = self._server.get(key)
        return None if txn is None else key

    # -- input ----------------------------------------------------------------------------

    def receive(self, msg: Request | Response, source: Dest, transport: str, now: float) -> list[Action]:
        """A message from the transport (already parsed and checked, §18.1.2, §18.2.1)."""
        out: list[Action] = []
        transport = _TRANSPORTS.get(transport) or transport.upper()
        if not msg.via:
            out.append(Discarded(msg, "no Via"))
            return out
        try:
            if isinstance(msg, Response):
                self._receive_response(msg, source, transport, now, out)
            else:
                self._receive_request(msg, source, transport, now, out)
        except SipParseError as err:  # a hand-built message lacking Via, CSeq, ...
            out.append(Discarded(msg, err.detail))
        return out

    def _receive_response(
        self, msg: Response, source: Dest, transport: str, now: float, out: list[Action]
    ) -> None:
        key = response_key(msg)
        txn = None if key is None else self._client.get(key)
        if txn is None:
            out.append(Deliver(msg, None, source, transport))  # §18.1.2: to the core
            return
        self._fire(txn, _RESPONSE_EVENT[_class_of(msg.status)], now, msg, out, source=source)

    def _receive_request(
        self, msg: Request, source: Dest, transport: str, now: float, out: list[Action]
    ) -> None:
        method = msg.method
        key = server_key(msg)
        txn = self._server.get(key)
        rfc2543 = not key.sent_by
        if method == "ACK":
            record = self._uas_2xx.get((msg.call_id, msg.cseq.seq, msg.from_.tag or ""))
            if txn is not None and (not rfc2543 or txn.to_tag == msg.to.tag):
                self._fire(txn, Event.ACK, now, msg, out, source=source)
            else:  # the ACK for a 2xx: end to end, no transaction of its own (§17.2.3)
                out.append(Deliver(msg, None, source, transport, None if record is None else record.key))
            if record is not None:
                self._fire(record, Event.ACK, now, msg, out, source=source)
            return
        if txn is not None:
            if rfc2543 and txn.req_to_tag != msg.to.tag:
                out.append(Discarded(msg, "RFC 2543 request matching a transaction but its To tag"))
                return
            self._fire(txn, Event.REQUEST, now, msg, out, source=source)
            return
        if len(self._server) >= self.max_server_transactions:
            self._overload(msg, source, transport, out)
            return
        kind = Kind.SERVER_INVITE if method == "INVITE" else Kind.SERVER_NON_INVITE
        txn = Transaction(key, kind, msg, response_destination(msg.via[0], source, transport), transport)
        txn.source = source
        if rfc2543:
            txn.req_to_tag = msg.to.tag
        if method == "CANCEL":
            txn.related = self.cancel_target(msg)
        self._server[key] = txn
        self.created += 1
        self._fire(txn, Event.REQUEST, now, msg, out, source=source)

    def _overload(self, msg: Request, source: Dest, transport: str, out: list[Action]) -> None:
        self.overloaded += 1
        if self.overload_retry_after is not None:
            response = build_response(msg, 503, to_tag=new_tag())
            response.headers.add("Retry-After", str(self.overload_retry_after))  # §21.5.4
            dest = response_destination(msg.via[0], source, transport)
            out.append(Send(response.to_bytes(), dest, transport, None, response))
        out.append(Overload(msg, source, transport))

    def send_request(
        self, request: Request, dest: Dest, transport: str, now: float
    ) -> tuple[TransactionKey, list[Action]]:
        """Start a client transaction for `request`, whose top Via must carry a fresh
        branch with the magic cookie (§8.1.1.7). A CANCEL (§9.1) shares its INVITE's
        branch; it is held back until the INVITE has had a provisional response, and
        dropped if the INVITE ends first. An ACK is no transaction: see send_stateless."""
        method = request.method
        if method == "ACK":
            raise ValueError("an ACK is not a transaction: use send_stateless (§17.1.1.3, §13.2.2.4)")
        branch = request.via[0].branch if request.via else None
        if not is_rfc3261_branch(branch):
            raise ValueError(f"top Via needs a branch starting with z9hG4bK (§8.1.1.7): {branch!r}")
        assert branch is not None
        key = client_key(branch, method)
        if key in self._client:
            raise ValueError(f"branch {branch} already used by a {method} transaction")
        if len(self._client) >= self.max_client_transactions:
            raise TransactionLimitError(f"{len(self._client)} client transactions")
        transport = transport.upper()
        kind = Kind.CLIENT_INVITE if method == "INVITE" else Kind.CLIENT_NON_INVITE
        txn = Transaction(key, kind, request, dest, transport)
        self._client[key] = txn
        self.created += 1
        out: list[Action] = []
        invite = self._client.get(client_key(branch, "INVITE")) if method == "CANCEL" else None
        if invite is not None and invite.state is State.CALLING:
            invite.cancel = txn  # §9.1: held until the INVITE has a provisional response
            return key, out
        self._fire(txn, Event.TU_REQUEST, now, None, out)
        if invite is not None:
            self._fire(invite, Event.CANCEL_SENT, now, None, out)
        return key, out

    def send_stateless(self, message: Message, dest: Dest, transport: str) -> list[Action]:
        """A message outside any transaction: the ACK for a 2xx (§13.2.2.4), a 2xx a
        UAS core retransmits itself, a stateless response."""
        return [Send(message.to_bytes(), dest, transport.upper(), None, message)]

    def respond(self, key: TransactionKey, response: Response, now: float) -> list[Action]:
        """The TU's response for server transaction `key`. Responses to a transaction
        that has ended, or that its state does not take (§17.2.2: further finals), are
        dropped with a Discarded action."""
        out: list[Action] = []
        txn = self._server.get(key)
        if txn is None:
            out.append(Discarded(response, "no such server transaction"))
            return out
        event = _TU_EVENT[_class_of(response.status)]
        if (txn.state, event) not in txn.table:
            out.append(Discarded(response, f"{txn.kind} transaction in {txn.state} takes no {event}"))
            return out
        self._fire(txn, event, now, response, out)
        return out

    def transport_error(self, key: TransactionKey, now: float) -> list[Action]:
        """The transport failed to send for `key` (§17.1.4, §17.2.4)."""
        out: list[Action] = []
        txn = (self._server if key.server else self._client).get(key)
        if txn is not None:
            self._fire(txn, Event.TRANSPORT_ERROR, now, None, out)
        return out

    def on_timer(self, now: float) -> list[Action]:
        """Run every timer due at `now`, earliest first. Each fires at its own deadline,
        so timers restarted by one that fired late keep the RFC's schedule."""
        out: list[Action] = []
        heap = self._heap
        while (entry := heap.pop_due(now)) is not None:
            when, txn, timer = entry
            del txn.timers[timer]
            txn.fired = timer
            self._fire(txn, TIMER_EVENT[timer], when, None, out)
        return out

    # -- the engine -----------------------------------------------------------------------

    def _fire(
        self,
        txn: Transaction,
        event: Event,
        now: float,
        msg: Message | None,
        out: list[Action],
        *,
        source: Dest | None = None,
    ) -> None:
        row = txn.table.get((txn.state, event))
        if row is None:
            return  # absorbed
        next_state, ops = row
        txn.state = next_state
        if source is not None and msg is not None and isinstance(msg, Response):
            txn.source = source
        for fn, arg in ops:
            fn(self, txn, arg, msg, now, out)
        if next_state is State.TERMINATED:
            self._end(txn, out)
        elif txn.fire_now is not None:
            pending, txn.fire_now = txn.fire_now, None
            self._fire(txn, pending, now, None, out)

    def _end(self, txn: Transaction, out: list[Action]) -> None:
        self._stop_all(txn)
        if txn.kind is Kind.UAS_2XX:
            self._uas_2xx.pop(_uas_2xx_key(txn.last), None)
            return
        table = self._server if txn.key.server else self._client
        if table.get(txn.key) is txn:
            del table[txn.key]
            out.append(Terminated(txn.key))
        txn.request = txn.last = txn.cancel = None

    def _stop_all(self, txn: Transaction) -> None:
        cancel = self._heap.cancel
        for handle in txn.timers.values():
            cancel(handle)
        txn.timers.clear()

    def _start(self, txn: Transaction, timer: Timer, duration: float | None, now: float) -> None:
        old = txn.timers.pop(timer, None)
        if old is not None:
            self._heap.cancel(old)
        if duration is None:
            return
        if timer in _RETRANSMIT_TIMERS:
            txn.interval = duration
        if duration <= 0:
            txn.fired = timer
            txn.fire_now = TIMER_EVENT[timer]  # §17: "set to zero" on reliable transports
            return
        txn.timers[timer] = self._heap.push(now + duration, txn, timer)

    def _send(self, txn: Transaction, data: bytes, msg: Message | None, out: list[Action]) -> None:
        out.append(Send(data, txn.dest, txn.transport, txn.key, msg))

    # -- steps (one per Op, Start, Backoff, AtT2, Stop) ---------------------------------------

    def _op_start(self, txn: Transaction, timer: object, msg: Msg, now: float, out: Out) -> None:
        assert isinstance(timer, Timer)
        self._start(txn, timer, self._durations[txn.reliable][timer], now)

    def _op_backoff(self, txn: Transaction, timer: object, msg: Msg, now: float, out: Out) -> None:
        assert isinstance(timer, Timer)
        self._start(txn, timer, self.config.backoff(timer, txn.interval), now)

    def _op_at_t2(self, txn: Transaction, timer: object, msg: Msg, now: float, out: Out) -> None:
        assert isinstance(timer, Timer)
        self._start(txn, timer, self.config.t2, now)

    def _op_stop(self, txn: Transaction, timer: object, msg: Msg, now: float, out: Out) -> None:
        assert isinstance(timer, Timer)
        running = txn.timers.pop(timer, None)
        if running is not None:
            self._heap.cancel(running)

    def _op_stop_all(self, txn: Transaction, arg: object, msg: Msg, now: float, out: Out) -> None:
        self._stop_all(txn)

    def _op_send_request(self, txn: Transaction, arg: object, msg: Msg, now: float, out: Out) -> None:
        request = txn.request
        assert request is not None
        if txn.request_data is None:
            txn.request_data = request.to_bytes()
        else:
            self.retransmissions += 1
        self._send(txn, txn.request_data, request, out)

    def _op_send_ack(self, txn: Transaction, arg: object, msg: Msg, now: float, out: Out) -> None:
        if txn.ack_data is None:
            assert txn.request is not None and isinstance(msg, Response)
            txn.ack_data = build_ack(txn.request, msg).to_bytes()
        self._send(txn, txn.ack_data, None, out)

    def _op_send_response(self, txn: Transaction, arg: object, msg: Msg, now: float, out: Out) -> None:
        assert isinstance(msg, Response)
        data = msg.to_bytes()
        txn.last, txn.last_data = msg, data
        if msg.status >= 200:
            # Only the bytes are needed from here on: drop the objects (memory, GC).
            txn.request = txn.last = None
            if not txn.key.sent_by:  # RFC 2543: the ACK carries the final's To tag
                txn.to_tag = msg.to.tag
        self._send(txn, data, msg, out)

    def _op_resend_response(self, txn: Transaction, arg: object, msg: Msg, now: float, out: Out) -> None:
        if txn.last_data is not None:
            self.retransmissions += 1
            self._send(txn, txn.last_data, txn.last, out)

    def _op_send_trying(self, txn: Transaction, arg: object, msg: Msg, now: float, out: Out) -> None:
        assert txn.request is not None
        self._op_send_response(txn, None, build_response(txn.request, 100), now, out)

    def _op_keep_response(self, txn: Transaction, arg: object, msg: Msg, now: float, out: Out) -> None:
        assert isinstance(msg, Response)
        txn.last, txn.last_data = msg, msg.to_bytes()

    def _op_deliver(self, txn: Transaction, arg: object, msg: Msg, now: float, out: Out) -> None:
        assert isinstance(msg, Request | Response)
        related = txn.related if txn.state is not State.ACCEPTED else None
        out.append(Deliver(msg, txn.key, txn.source, txn.transport, related))

    def _op_report_timeout(self, txn: Transaction, arg: object, msg: Msg, now: float, out: Out) -> None:
        assert txn.fired is not None
        out.append(Timeout(txn.key, txn.fired))

    def _op_report_transport_error(
        self, txn: Transaction, arg: object, msg: Msg, now: float, out: Out
    ) -> None:
        out.append(TransportError(txn.key))

    def _op_release_cancel(self, txn: Transaction, arg: object, msg: Msg, now: float, out: Out) -> None:
        cancel, txn.cancel = txn.cancel, None
        if cancel is not None:
            self._fire(cancel, Event.TU_REQUEST, now, None, out)
            self._fire(txn, Event.CANCEL_SENT, now, None, out)

    def _op_abandon_cancel(self, txn: Transaction, arg: object, msg: Msg, now: float, out: Out) -> None:
        cancel, txn.cancel = txn.cancel, None
        if cancel is not None:
            self._fire(cancel, Event.ABANDON, now, None, out)

    def _op_retransmit_2xx(self, txn: Transaction, arg: object, msg: Msg, now: float, out: Out) -> None:
        if not self.retransmit_2xx:
            return
        assert isinstance(msg, Response)
        try:
            key = _uas_2xx_key(msg)
        except SipParseError:
            return
        record = self._uas_2xx.get(key)
        if record is None:
            record = Transaction(txn.key, Kind.UAS_2XX, None, txn.dest, txn.transport)
            self._uas_2xx[key] = record
        self._fire(record, Event.TU_2XX, now, msg, out)


def _uas_2xx_key(response: Message | None) -> tuple[str, int, str]:
    """The ACK for a 2xx has a branch of its own (§13.2.2.4, §17.1.1.3): it is matched to
    the 2xx by Call-ID, CSeq number and From tag (the dialog and the INVITE in it)."""
    assert response is not None
    return response.call_id, response.cseq.seq, response.from_.tag or ""


def _compile() -> None:
    ops: dict[Op, OpFn] = {
        Op.SEND_REQUEST: TransactionLayer._op_send_request,
        Op.SEND_ACK: TransactionLayer._op_send_ack,
        Op.SEND_RESPONSE: TransactionLayer._op_send_response,
        Op.RESEND_RESPONSE: TransactionLayer._op_resend_response,
        Op.SEND_TRYING: TransactionLayer._op_send_trying,
        Op.KEEP_RESPONSE: TransactionLayer._op_keep_response,
        Op.DELIVER: TransactionLayer._op_deliver,
        Op.REPORT_TIMEOUT: TransactionLayer._op_report_timeout,
        Op.REPORT_TRANSPORT_ERROR: TransactionLayer._op_report_transport_error,
        Op.STOP_ALL: TransactionLayer._op_stop_all,
        Op.RELEASE_CANCEL: TransactionLayer._op_release_cancel,
        Op.ABANDON_CANCEL: TransactionLayer._op_abandon_cancel,
        Op.RETRANSMIT_2XX: TransactionLayer._op_retransmit_2xx,
    }

    def step(s: Step) -> tuple[OpFn, object]:
        if isinstance(s, Op):
            return ops[s], None
        if isinstance(s, Start):
            return TransactionLayer._op_start, s.timer
        if isinstance(s, Backoff):
            return TransactionLayer._op_backoff, s.timer
        if isinstance(s, AtT2):
            return TransactionLayer._op_at_t2, s.timer
        assert isinstance(s, Stop)
        return TransactionLayer._op_stop, s.timer

    for kind, table in TABLES.items():
        _COMPILED[kind] = {pair: (row.next, tuple(map(step, row.steps))) for pair, row in table.items()}


_compile()
