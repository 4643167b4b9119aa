"""What the transaction layer asks of its caller: plain dataclasses, carried out in
order. `Send` goes to the transport; the others go to the transaction user (TU)."""

from __future__ import annotations

from dataclasses import dataclass

from .message import Message, Request, Response
from .timers import Timer
from .transaction_match import Dest, TransactionKey


@dataclass(slots=True)
class Send:
    """Pass `data` to the transport, to `dest`. `message` is what `data` serializes when
    the layer still holds it (None for the ACK of a 300-699 and for retransmitted final
    responses, which are kept as bytes only). `key`: the transaction that sends, so a
    failure can be reported with `transport_error(key)`; None for stateless sends."""

    data: bytes
    dest: Dest
    transport: str
    key: TransactionKey | None = None
    message: Message | None = None


@dataclass(slots=True)
class Deliver:
    """A message for the TU. `key` is its transaction (None for an unmatched response
    or an ACK for a 2xx). `related` is, for a CANCEL, the INVITE server transaction it
    cancels (§9.2), and for an ACK to a 2xx, the INVITE server transaction that sent
    the 2xx; None when there is none."""

    message: Request | Response
    key: TransactionKey | None
    source: Dest | None = None
    transport: str = ""
    related: TransactionKey | None = None


@dataclass(slots=True)
class Timeout:
    """Timer `timer` ran out: B, F (no final response: treat as 408, §8.1.3.1), H (no
    ACK), C (no final response in Proceeding: CANCEL it, §16.6), cancel (§9.1), guard
    (the TU never answered), 2xx-ack (no ACK for a 2xx: send BYE, §13.3.1.4)."""

    key: TransactionKey
    timer: Timer


@dataclass(slots=True)
class TransportError:
    """The transport could not send for this transaction (§17.1.4, §17.2.4)."""

    key: TransactionKey


@dataclass(slots=True)
class Terminated:
    """The transaction ended and is forgotten."""

    key: TransactionKey


@dataclass(slots=True)
class Overload:
    """A new request found the server transaction table full. It was not delivered;
    a 503 with Retry-After was sent unless the layer was told not to."""

    message: Request
    source: Dest
    transport: str


@dataclass(slots=True)
class Discarded:
    """A message the layer could not use (e.g. a response without a Via branch is
    still delivered, but a message whose matching fields cannot be read is not)."""

    message: Message
    reason: str


Action = Send | Deliver | Timeout | TransportError | Terminated | Overload | Discarded


class TransactionLimitError(RuntimeError):
    """send_request found the client transaction table full."""
