"""The transaction state machines of RFC 3261 §17, as data.

Each machine is a table `(state, event) -> Row(next state, steps, RFC reference)`.
A pair that is not in a table is absorbed: the event is ignored and nothing changes
(retransmissions the RFC says to discard, responses after the end, a TU answer to a
transaction that already answered ...). transaction.py runs the tables; it adds no
behaviour of its own beyond what a step names.

The INVITE machines follow RFC 6026 (which updates RFC 3261 §17.1.1 and §17.2.1): a
2xx takes both sides to "Accepted" instead of ending the transaction, so retransmitted
INVITEs and 2xx responses still match a transaction for 64*T1 (Timers L and M).

Beyond the four RFC machines there is a fifth, small one: the UAS core's retransmission
of a 2xx to INVITE until its ACK comes (§13.3.1.4, RFC 6026 §8.1). It is kept out of
the server transaction as RFC 6026 §7.1 asks, but runs on the same timers.

Steps:
    Op.*        an action, see `Op`
    Start(T)    start timer T at its initial value (§17, Table 4): not at all where
                the table says so for reliable transports, at once when it says 0
    Backoff(T)  restart T at twice its last interval (capped at T2 except for A)
    AtT2(T)     restart T at T2 (§17.1.2.2: Timer E in Proceeding)
    Stop(T)     cancel T
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Final

from .timers import Timer


class Kind(StrEnum):
    CLIENT_INVITE = "client INVITE"  # §17.1.1
    CLIENT_NON_INVITE = "client non-INVITE"  # §17.1.2
    SERVER_INVITE = "server INVITE"  # §17.2.1
    SERVER_NON_INVITE = "server non-INVITE"  # §17.2.2
    UAS_2XX = "UAS 2xx retransmission"  # §13.3.1.4 (not a transaction)


class State(StrEnum):
    INITIAL = "Initial"  # created, first event not yet run (a CANCEL held back, §9.1)
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"  # RFC 6026
    WAIT_ACK = "Waiting for ACK"  # UAS core, §13.3.1.4
    TERMINATED = "Terminated"


class Event(StrEnum):
    TU_REQUEST = "request from TU"
    ABANDON = "abandon"  # a held CANCEL whose INVITE ended first (§9.1)
    CANCEL_SENT = "CANCEL sent"  # the TU cancelled this INVITE (§9.1)
    REQUEST = "request"  # first copy or a retransmission
    ACK = "ACK"
    RECV_1XX = "1xx"
    RECV_2XX = "2xx"
    RECV_3XX_6XX = "300-699"
    TU_1XX = "1xx from TU"
    TU_2XX = "2xx from TU"
    TU_3XX_6XX = "300-699 from TU"
    TRANSPORT_ERROR = "transport error"
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_C = "Timer C"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_K = "Timer K"
    TIMER_L = "Timer L"
    TIMER_M = "Timer M"
    TIMER_TRYING = "Timer 100"
    TIMER_CANCEL = "Timer cancel"
    TIMER_GUARD = "Timer guard"
    TIMER_2XX = "Timer 2xx"
    TIMER_ACK_WAIT = "Timer 2xx-ack"


TIMER_EVENT: Final[dict[Timer, Event]] = {
    Timer.A: Event.TIMER_A,
    Timer.B: Event.TIMER_B,
    Timer.C: Event.TIMER_C,
    Timer.D: Event.TIMER_D,
    Timer.E: Event.TIMER_E,
    Timer.F: Event.TIMER_F,
    Timer.G: Event.TIMER_G,
    Timer.H: Event.TIMER_H,
    Timer.I: Event.TIMER_I,
    Timer.J: Event.TIMER_J,
    Timer.K: Event.TIMER_K,
    Timer.L: Event.TIMER_L,
    Timer.M: Event.TIMER_M,
    Timer.TRYING: Event.TIMER_TRYING,
    Timer.CANCEL: Event.TIMER_CANCEL,
    Timer.GUARD: Event.TIMER_GUARD,
    Timer.RETRANSMIT_2XX: Event.TIMER_2XX,
    Timer.ACK_WAIT: Event.TIMER_ACK_WAIT,
}


class Op(Enum):
    SEND_REQUEST = "pass the request to the transport (first time or again)"
    SEND_ACK = "pass the ACK for the non-2xx final response to the transport (§17.1.1.3)"
    SEND_RESPONSE = "pass the TU's response to the transport and keep it as the last one"
    RESEND_RESPONSE = "pass the last response to the transport again, if there is one"
    SEND_TRYING = "build a 100 Trying and send it (§17.2.1)"
    KEEP_RESPONSE = "keep the TU's newest 2xx as the one to retransmit"
    DELIVER = "pass the message up to the TU"
    REPORT_TIMEOUT = "tell the TU the transaction timed out"
    REPORT_TRANSPORT_ERROR = "tell the TU the transport failed"
    STOP_ALL = "cancel every timer of the transaction"
    RELEASE_CANCEL = "send the held CANCEL, now that a provisional response came (§9.1)"
    ABANDON_CANCEL = "drop the held CANCEL: the INVITE ended before any 1xx (§9.1)"
    RETRANSMIT_2XX = "hand the 2xx to the UAS core's retransmission (§13.3.1.4)"


@dataclass(frozen=True, slots=True)
class Start:
    timer: Timer


@dataclass(frozen=True, slots=True)
class Backoff:
    timer: Timer


@dataclass(frozen=True, slots=True)
class AtT2:
    timer: Timer


@dataclass(frozen=True, slots=True)
class Stop:
    timer: Timer


Step = Op | Start | Backoff | AtT2 | Stop


@dataclass(frozen=True, slots=True)
class Row:
    next: State
    steps: tuple[Step, ...]
    ref: str


Table = dict[tuple[State, Event], Row]

S, E = State, Event
A, B, C, D = Start(Timer.A), Start(Timer.B), Start(Timer.C), Start(Timer.D)

# -- client INVITE: §17.1.1.2 (Figure 5) with RFC 6026 §7.2 / §8.4 ---------------------------
_FINAL_ACKED = (Op.STOP_ALL, Op.SEND_ACK, Op.DELIVER, D)
CLIENT_INVITE: Final[Table] = {
    (S.INITIAL, E.TU_REQUEST): Row(S.CALLING, (Op.SEND_REQUEST, A, B), "§17.1.1.2"),
    (S.CALLING, E.TIMER_A): Row(S.CALLING, (Op.SEND_REQUEST, Backoff(Timer.A)), "§17.1.1.2"),
    (S.CALLING, E.TIMER_B): Row(S.TERMINATED, (Op.ABANDON_CANCEL, Op.REPORT_TIMEOUT), "§17.1.1.2"),
    (S.CALLING, E.TRANSPORT_ERROR): Row(
        S.TERMINATED, (Op.ABANDON_CANCEL, Op.REPORT_TRANSPORT_ERROR), "§17.1.1.2, §17.1.4"
    ),
    (S.CALLING, E.CANCEL_SENT): Row(S.CALLING, (), "§9.1: the CANCEL waits for a provisional response"),
    (S.CALLING, E.RECV_1XX): Row(S.PROCEEDING, (Op.STOP_ALL, Op.DELIVER, C, Op.RELEASE_CANCEL), "§17.1.1.2"),
    (S.CALLING, E.RECV_2XX): Row(
        S.ACCEPTED, (Op.STOP_ALL, Op.ABANDON_CANCEL, Op.DELIVER, Start(Timer.M)), "RFC 6026 §7.2, §8.4"
    ),
    (S.CALLING, E.RECV_3XX_6XX): Row(S.COMPLETED, (Op.ABANDON_CANCEL, *_FINAL_ACKED), "§17.1.1.2, §17.1.1.3"),
    (S.PROCEEDING, E.RECV_1XX): Row(S.PROCEEDING, (Op.DELIVER, C), "§17.1.1.2; C restarts, §16.6 step 11"),
    (S.PROCEEDING, E.RECV_2XX): Row(S.ACCEPTED, (Op.STOP_ALL, Op.DELIVER, Start(Timer.M)), "RFC 6026 §8.4"),
    (S.PROCEEDING, E.RECV_3XX_6XX): Row(S.COMPLETED, _FINAL_ACKED, "§17.1.1.2, §17.1.1.3"),
    (S.PROCEEDING, E.CANCEL_SENT): Row(S.PROCEEDING, (Start(Timer.CANCEL),), "§9.1"),
    (S.PROCEEDING, E.TIMER_C): Row(
        S.PROCEEDING, (Op.REPORT_TIMEOUT, Start(Timer.CANCEL)), "§16.6 step 11 (the TU should CANCEL), §9.1"
    ),
    (S.PROCEEDING, E.TIMER_CANCEL): Row(S.TERMINATED, (Op.REPORT_TIMEOUT,), "§9.1"),
    (S.PROCEEDING, E.TRANSPORT_ERROR): Row(S.TERMINATED, (Op.REPORT_TRANSPORT_ERROR,), "§17.1.4"),
    (S.COMPLETED, E.RECV_3XX_6XX): Row(S.COMPLETED, (Op.SEND_ACK,), "§17.1.1.2: ACK again, TU not told"),
    (S.COMPLETED, E.TIMER_D): Row(S.TERMINATED, (), "§17.1.1.2"),
    (S.COMPLETED, E.TRANSPORT_ERROR): Row(S.TERMINATED, (Op.REPORT_TRANSPORT_ERROR,), "§17.1.1.2"),
    (S.ACCEPTED, E.RECV_2XX): Row(S.ACCEPTED, (Op.DELIVER,), "RFC 6026 §8.4: to the TU, no ACK"),
    (S.ACCEPTED, E.TIMER_M): Row(S.TERMINATED, (), "RFC 6026 §8.4"),
}

# -- client non-INVITE: §17.1.2.2 (Figure 6) -------------------------------------------------
_NI_FINAL = Row(S.COMPLETED, (Op.STOP_ALL, Op.DELIVER, Start(Timer.K)), "§17.1.2.2")
CLIENT_NON_INVITE: Final[Table] = {
    (S.INITIAL, E.TU_REQUEST): Row(S.TRYING, (Op.SEND_REQUEST, Start(Timer.E), Start(Timer.F)), "§17.1.2.2"),
    (S.INITIAL, E.ABANDON): Row(S.TERMINATED, (), "§9.1: no CANCEL before a provisional response"),
    (S.TRYING, E.TIMER_E): Row(S.TRYING, (Op.SEND_REQUEST, Backoff(Timer.E)), "§17.1.2.2"),
    (S.TRYING, E.TIMER_F): Row(S.TERMINATED, (Op.REPORT_TIMEOUT,), "§17.1.2.2"),
    (S.TRYING, E.TRANSPORT_ERROR): Row(S.TERMINATED, (Op.REPORT_TRANSPORT_ERROR,), "§17.1.2.2"),
    (S.TRYING, E.RECV_1XX): Row(S.PROCEEDING, (Op.DELIVER,), "§17.1.2.2"),
    (S.TRYING, E.RECV_2XX): _NI_FINAL,
    (S.TRYING, E.RECV_3XX_6XX): _NI_FINAL,
    (S.PROCEEDING, E.TIMER_E): Row(S.PROCEEDING, (Op.SEND_REQUEST, AtT2(Timer.E)), "§17.1.2.2"),
    (S.PROCEEDING, E.TIMER_F): Row(S.TERMINATED, (Op.REPORT_TIMEOUT,), "§17.1.2.2"),
    (S.PROCEEDING, E.TRANSPORT_ERROR): Row(S.TERMINATED, (Op.REPORT_TRANSPORT_ERROR,), "§17.1.2.2"),
    (S.PROCEEDING, E.RECV_1XX): Row(S.PROCEEDING, (Op.DELIVER,), "§17.1.2.2"),
    (S.PROCEEDING, E.RECV_2XX): _NI_FINAL,
    (S.PROCEEDING, E.RECV_3XX_6XX): _NI_FINAL,
    (S.COMPLETED, E.TIMER_K): Row(S.TERMINATED, (), "§17.1.2.2"),
}

# -- server INVITE: §17.2.1 (Figure 7) with RFC 6026 §7.1 / §8.7 ------------------------------
_TO_ACCEPTED = (Op.STOP_ALL, Op.SEND_RESPONSE, Start(Timer.L), Op.RETRANSMIT_2XX)
SERVER_INVITE: Final[Table] = {
    (S.INITIAL, E.REQUEST): Row(S.PROCEEDING, (Op.DELIVER, Start(Timer.TRYING), C), "§17.2.1"),
    (S.PROCEEDING, E.TIMER_TRYING): Row(S.PROCEEDING, (Op.SEND_TRYING,), "§17.2.1"),
    (S.PROCEEDING, E.REQUEST): Row(S.PROCEEDING, (Op.RESEND_RESPONSE,), "§17.2.1: last provisional again"),
    (S.PROCEEDING, E.TU_1XX): Row(
        S.PROCEEDING, (Stop(Timer.TRYING), Op.SEND_RESPONSE, C), "§17.2.1; C restarts, §13.3.1.1"
    ),
    (S.PROCEEDING, E.TU_2XX): Row(S.ACCEPTED, _TO_ACCEPTED, "RFC 6026 §7.1, §8.7"),
    (S.PROCEEDING, E.TU_3XX_6XX): Row(
        S.COMPLETED, (Op.STOP_ALL, Op.SEND_RESPONSE, Start(Timer.G), Start(Timer.H)), "§17.2.1"
    ),
    (S.PROCEEDING, E.TIMER_C): Row(S.TERMINATED, (Op.REPORT_TIMEOUT,), "§13.3.1.1: the TU went silent"),
    (S.PROCEEDING, E.TRANSPORT_ERROR): Row(S.TERMINATED, (Op.REPORT_TRANSPORT_ERROR,), "§17.2.4"),
    (S.COMPLETED, E.REQUEST): Row(S.COMPLETED, (Op.RESEND_RESPONSE,), "§17.2.1"),
    (S.COMPLETED, E.TIMER_G): Row(S.COMPLETED, (Op.RESEND_RESPONSE, Backoff(Timer.G)), "§17.2.1"),
    (S.COMPLETED, E.TIMER_H): Row(S.TERMINATED, (Op.REPORT_TIMEOUT,), "§17.2.1"),
    (S.COMPLETED, E.ACK): Row(S.CONFIRMED, (Op.STOP_ALL, Start(Timer.I)), "§17.2.1"),
    (S.COMPLETED, E.TRANSPORT_ERROR): Row(S.TERMINATED, (Op.REPORT_TRANSPORT_ERROR,), "§17.2.1"),
    (S.CONFIRMED, E.ACK): Row(S.CONFIRMED, (), "§17.2.1: absorbed"),
    (S.CONFIRMED, E.REQUEST): Row(S.CONFIRMED, (), "§17.2.1: absorbed"),
    (S.CONFIRMED, E.TIMER_I): Row(S.TERMINATED, (), "§17.2.1"),
    (S.ACCEPTED, E.REQUEST): Row(S.ACCEPTED, (), "RFC 6026 §8.7: absorbed"),
    (S.ACCEPTED, E.ACK): Row(S.ACCEPTED, (Op.DELIVER,), "RFC 6026 §8.7: to the TU"),
    (S.ACCEPTED, E.TU_2XX): Row(S.ACCEPTED, (Op.SEND_RESPONSE, Op.RETRANSMIT_2XX), "RFC 6026 §8.7"),
    (S.ACCEPTED, E.TRANSPORT_ERROR): Row(S.ACCEPTED, (Op.REPORT_TRANSPORT_ERROR,), "RFC 6026 §8.7"),
    (S.ACCEPTED, E.TIMER_L): Row(S.TERMINATED, (), "RFC 6026 §8.7"),
}

# -- server non-INVITE: §17.2.2 (Figure 8) ---------------------------------------------------
_NIS_FINAL = Row(S.COMPLETED, (Op.STOP_ALL, Op.SEND_RESPONSE, Start(Timer.J)), "§17.2.2")
SERVER_NON_INVITE: Final[Table] = {
    (S.INITIAL, E.REQUEST): Row(S.TRYING, (Op.DELIVER, Start(Timer.GUARD)), "§17.2.2"),
    (S.TRYING, E.REQUEST): Row(S.TRYING, (), "§17.2.2: discarded"),
    (S.TRYING, E.TU_1XX): Row(S.PROCEEDING, (Op.SEND_RESPONSE,), "§17.2.2"),
    (S.TRYING, E.TU_2XX): _NIS_FINAL,
    (S.TRYING, E.TU_3XX_6XX): _NIS_FINAL,
    (S.TRYING, E.TIMER_GUARD): Row(
        S.TERMINATED, (Op.REPORT_TIMEOUT,), "guard: the client gave up (F, §17.1.2.2)"
    ),
    (S.TRYING, E.TRANSPORT_ERROR): Row(S.TERMINATED, (Op.REPORT_TRANSPORT_ERROR,), "§17.2.4"),
    (S.PROCEEDING, E.REQUEST): Row(S.PROCEEDING, (Op.RESEND_RESPONSE,), "§17.2.2"),
    (S.PROCEEDING, E.TU_1XX): Row(S.PROCEEDING, (Op.SEND_RESPONSE,), "§17.2.2"),
    (S.PROCEEDING, E.TU_2XX): _NIS_FINAL,
    (S.PROCEEDING, E.TU_3XX_6XX): _NIS_FINAL,
    (S.PROCEEDING, E.TIMER_GUARD): Row(
        S.TERMINATED, (Op.REPORT_TIMEOUT,), "guard: the client gave up (F, §17.1.2.2)"
    ),
    (S.PROCEEDING, E.TRANSPORT_ERROR): Row(S.TERMINATED, (Op.REPORT_TRANSPORT_ERROR,), "§17.2.2"),
    (S.COMPLETED, E.REQUEST): Row(S.COMPLETED, (Op.RESEND_RESPONSE,), "§17.2.2"),
    (S.COMPLETED, E.TIMER_J): Row(S.TERMINATED, (), "§17.2.2"),
    (S.COMPLETED, E.TRANSPORT_ERROR): Row(S.TERMINATED, (Op.REPORT_TRANSPORT_ERROR,), "§17.2.2"),
}

# -- UAS core: 2xx retransmission until the ACK (§13.3.1.4, RFC 6026 §8.1) -------------------
UAS_2XX: Final[Table] = {
    (S.INITIAL, E.TU_2XX): Row(
        S.WAIT_ACK, (Op.KEEP_RESPONSE, Start(Timer.RETRANSMIT_2XX), Start(Timer.ACK_WAIT)), "§13.3.1.4"
    ),
    (S.WAIT_ACK, E.TU_2XX): Row(S.WAIT_ACK, (Op.KEEP_RESPONSE,), "§13.3.1.4"),
    (S.WAIT_ACK, E.TIMER_2XX): Row(
        S.WAIT_ACK, (Op.RESEND_RESPONSE, Backoff(Timer.RETRANSMIT_2XX)), "§13.3.1.4: T1, doubling to T2"
    ),
    (S.WAIT_ACK, E.ACK): Row(S.TERMINATED, (), "§13.3.1.4: retransmissions cease with the ACK"),
    (S.WAIT_ACK, E.TIMER_ACK_WAIT): Row(S.TERMINATED, (Op.REPORT_TIMEOUT,), "§13.3.1.4: end the session"),
}

TABLES: Final[dict[Kind, Table]] = {
    Kind.CLIENT_INVITE: CLIENT_INVITE,
    Kind.CLIENT_NON_INVITE: CLIENT_NON_INVITE,
    Kind.SERVER_INVITE: SERVER_INVITE,
    Kind.SERVER_NON_INVITE: SERVER_NON_INVITE,
    Kind.UAS_2XX: UAS_2XX,
}
