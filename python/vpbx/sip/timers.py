"""Transaction timers: their names, their values (RFC 3261 §17 and Table 4 in
Appendix A, RFC 6026 for L and M) and a heap that holds thousands of them.

Nothing here reads a clock: deadlines are `now + duration`, with `now` handed in.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Generic, TypeVar


class Timer(StrEnum):
    """Every timer a transaction (or the UA core's 2xx retransmission) runs."""

    A = "A"  # INVITE request retransmit interval, unreliable transports      §17.1.1.2
    B = "B"  # INVITE transaction timeout                                      §17.1.1.2
    C = "C"  # no final response in Proceeding (proxy Timer C, > 3 min)        §16.6 step 11
    D = "D"  # wait time for response retransmits                             §17.1.1.2
    E = "E"  # non-INVITE request retransmit interval, unreliable transports  §17.1.2.2
    F = "F"  # non-INVITE transaction timeout                                 §17.1.2.2
    G = "G"  # INVITE response retransmit interval                            §17.2.1
    H = "H"  # wait time for ACK receipt                                      §17.2.1
    I = "I"  # wait time for ACK retransmits                                  §17.2.1  # noqa: E741
    J = "J"  # wait time for non-INVITE request retransmits                   §17.2.2
    K = "K"  # wait time for response retransmits                             §17.1.2.2
    L = "L"  # wait time for accepted INVITE request retransmits              RFC 6026 §7.1
    M = "M"  # wait time for retransmission of 2xx to INVITE                  RFC 6026 §7.2
    TRYING = "100"  # send 100 Trying unless the TU answers within 200 ms     §17.2.1
    CANCEL = "cancel"  # no final response 64*T1 after CANCEL: give up       §9.1
    GUARD = "guard"  # non-INVITE server: the TU never answered (64*T1)      §17.2.2 / §17.1.2.2
    RETRANSMIT_2XX = "2xx"  # UAS core retransmits a 2xx to INVITE           §13.3.1.4
    ACK_WAIT = "2xx-ack"  # no ACK for the 2xx within 64*T1                  §13.3.1.4


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """T1, T2, T4 (§17.1.1.1, Table 4) and the two values the RFC leaves open.

    `timer_c` guards an INVITE in Proceeding on both sides: a UAS must send a provisional
    response at least every minute (§13.3.1.1), and each one restarts it.
    """

    t1: float = 0.5  # RTT estimate
    t2: float = 4.0  # maximum retransmit interval for non-INVITE requests and INVITE responses
    t4: float = 5.0  # maximum duration a message will remain in the network
    timer_c: float = 180.0  # "> 3 min" (§16.6 step 11)
    trying_delay: float = 0.2  # §17.2.1: 100 Trying unless the TU answers within 200 ms
    durations: tuple[dict[Timer, float | None], dict[Timer, float | None]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not (0 < self.t1 <= self.t2) or self.t4 <= 0 or self.timer_c <= 0 or self.trying_delay < 0:
            raise ValueError(f"bad timer values: {self}")
        unreliable = {t: spec.unreliable(self) for t, spec in TIMER_TABLE.items()}
        reliable = {t: spec.reliable(self) for t, spec in TIMER_TABLE.items()}
        object.__setattr__(self, "durations", (unreliable, reliable))

    def duration(self, timer: Timer, reliable: bool) -> float | None:
        """The initial value of `timer`: None when it is not started on this kind of
        transport, 0 when it fires at once (§17: reliable transports)."""
        return self.durations[reliable][timer]

    def backoff(self, timer: Timer, interval: float) -> float:
        """The next retransmit interval after `interval`: A doubles without bound
        (§17.1.1.2); E, G and the 2xx retransmission double up to T2 (§17.1.2.2,
        §17.2.1, §13.3.1.4)."""
        doubled = 2 * interval
        return doubled if timer is Timer.A else min(doubled, self.t2)


@dataclass(frozen=True, slots=True)
class TimerSpec:
    unreliable: Callable[[TimerConfig], float | None]
    reliable: Callable[[TimerConfig], float | None]
    meaning: str
    ref: str


def _t1(c: TimerConfig) -> float:
    return c.t1


def _64t1(c: TimerConfig) -> float:
    return 64 * c.t1


def _t4(c: TimerConfig) -> float:
    return c.t4


def _none(c: TimerConfig) -> None:
    return None


def _zero(c: TimerConfig) -> float:
    return 0.0


# RFC 3261 Appendix A, Table 4 (values per transport), RFC 6026 for L and M.
TIMER_TABLE: Final[dict[Timer, TimerSpec]] = {
    Timer.A: TimerSpec(_t1, _none, "INVITE request retransmit interval", "§17.1.1.2"),
    Timer.B: TimerSpec(_64t1, _64t1, "INVITE transaction timeout", "§17.1.1.2"),
    Timer.C: TimerSpec(lambda c: c.timer_c, lambda c: c.timer_c, "no final response", "§16.6, §13.3.1.1"),
    Timer.D: TimerSpec(lambda c: max(32.0, 64 * c.t1), _zero, "response retransmits", "§17.1.1.2"),
    Timer.E: TimerSpec(_t1, _none, "non-INVITE request retransmit interval", "§17.1.2.2"),
    Timer.F: TimerSpec(_64t1, _64t1, "non-INVITE transaction timeout", "§17.1.2.2"),
    Timer.G: TimerSpec(_t1, _none, "INVITE response retransmit interval", "§17.2.1"),
    Timer.H: TimerSpec(_64t1, _64t1, "wait time for ACK receipt", "§17.2.1"),
    Timer.I: TimerSpec(_t4, _zero, "wait time for ACK retransmits", "§17.2.1"),
    Timer.J: TimerSpec(_64t1, _zero, "non-INVITE request retransmits", "§17.2.2"),
    Timer.K: TimerSpec(_t4, _zero, "response retransmits", "§17.1.2.2"),
    Timer.L: TimerSpec(_64t1, _64t1, "accepted INVITE request retransmits", "RFC 6026 §7.1"),
    Timer.M: TimerSpec(_64t1, _64t1, "retransmission of 2xx to INVITE", "RFC 6026 §7.2"),
    Timer.TRYING: TimerSpec(
        lambda c: c.trying_delay, lambda c: c.trying_delay, "100 Trying unless the TU answers", "§17.2.1"
    ),
    Timer.CANCEL: TimerSpec(_64t1, _64t1, "no final response after CANCEL", "§9.1"),
    Timer.GUARD: TimerSpec(_64t1, _64t1, "the TU never answered a non-INVITE", "§17.1.2.2"),
    Timer.RETRANSMIT_2XX: TimerSpec(_t1, _t1, "2xx retransmit interval", "§13.3.1.4"),
    Timer.ACK_WAIT: TimerSpec(_64t1, _64t1, "no ACK for a 2xx", "§13.3.1.4"),
}


OwnerT = TypeVar("OwnerT")
NameT = TypeVar("NameT")

Entry = list[Any]
"""A heap entry: [deadline, sequence number, owner, name]; owner None once cancelled."""


class TimerHeap(Generic[OwnerT, NameT]):
    """Deadlines in a binary heap, cancelled lazily (the heapq documentation's recipe).

    A timer is an `owner` (a transaction) and a `name` (which of its timers). `push`
    returns the heap entry as the handle; `cancel(handle)` empties it in O(1) and the
    empty entry is skipped when it surfaces. When cancelled entries outnumber running
    ones by much the heap is rebuilt, so memory follows the number of running timers.
    """

    __slots__ = ("_heap", "_live", "_seq")

    def __init__(self) -> None:
        self._heap: list[Entry] = []
        self._live = 0
        self._seq = 0

    def __len__(self) -> int:
        """Running (not cancelled, not fired) timers."""
        return self._live

    @property
    def entries(self) -> int:
        """Heap entries including cancelled ones not yet discarded."""
        return len(self._heap)

    def push(self, when: float, owner: OwnerT, name: NameT) -> Entry:
        self._seq += 1
        entry = [when, self._seq, owner, name]
        heapq.heappush(self._heap, entry)
        self._live += 1
        if len(self._heap) > 2 * self._live + 1024:
            self._compact()
        return entry

    def cancel(self, handle: Entry) -> None:
        if handle[2] is not None:
            handle[2] = None
            self._live -= 1

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and heap[0][2] is None:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> tuple[float, OwnerT, NameT] | None:
        """The earliest running timer whose deadline is `now` or earlier, removed."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, owner, name = heapq.heappop(heap)
            if owner is not None:
                self._live -= 1
                return when, owner, name
        return None

    def _compact(self) -> None:
        self._heap = [entry for entry in self._heap if entry[2] is not None]
        heapq.heapify(self._heap)
