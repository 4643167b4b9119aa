"""OPTIONS qualify of registered contacts (issue 4): is the phone behind each binding still there?

    q = Qualifier(interval_s=30, local=lambda dest: ("192.0.2.10", 5060))
    q.sync(bindings, now)            # every current binding; forgets the ones that are gone
    for probe in q.due(now):         # OPTIONS to send as client transactions
        key = send(probe.request, probe.dest, probe.transport)
        ... q.on_answer(probe.key, probe.token, now) / q.on_failure(probe.key, probe.token, now)
    q.expire(now)                    # probes unanswered for timeout_s count as failures
    q.reachable(aor, uri)            # False only once a contact is known unreachable

Sans-IO: times are whatever clock the caller uses (monotonic in `vpbx serve`), nothing here
sends or sleeps.

- Probe: an OPTIONS request (RFC 3261 §11.1) whose Request-URI and To are the contact URI,
  Max-Forwards 70 (§8.1.1.6), a Call-ID and From tag of its own, and a Via with rport
  (RFC 3581 §3) so the answer comes back through the phone's NAT binding. It goes to the
  binding's source address and transport (where the REGISTER came from).
- Answer: any final response within the timeout makes the contact reachable — a 404, 405 or
  501 still shows that a UA is there and answering (§11.2). The round-trip time is kept.
- Failure: no final answer within `timeout_s` (default min(interval, 32 s = Timer F, §17.1.2.2))
  or a transport error. After `max_failures` consecutive failures the contact is unreachable;
  the next answer makes it reachable again.
- Spreading: a contact's first probe is at a fixed offset within the interval derived from a
  hash of its key (CRC-32), then every `interval_s` after that, so thousands of bindings do
  not probe in one burst and the order is the same run after run.
- A contact not yet probed (state "unknown") counts as reachable: calls ring it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, Literal

from vpbx.sip.ids import new_branch, new_call_id, new_tag
from vpbx.sip.message import Request
from vpbx.sip.transaction_match import Dest

from .location import Binding

__all__ = ["ContactKey", "ContactStatus", "Probe", "Qualifier", "options_request"]

TIMER_F_S: Final = 32.0  # 64*T1 with T1 = 500 ms (RFC 3261 §17.1.2.2)
MAX_FORWARDS: Final = "70"

ContactKey = tuple[str, str]  # (aor, contact URI): a binding's identity (vpbx.pbx.location)
State = Literal["unknown", "reachable", "unreachable"]


@dataclass(frozen=True, slots=True)
class Probe:
    """One OPTIONS to send; report its outcome with `token`."""

    key: ContactKey
    token: int
    request: Request
    dest: Dest
    transport: str


@dataclass(slots=True)
class ContactStatus:
    """What the qualifier knows of one contact."""

    aor: str
    uri: str
    dest: Dest
    transport: str
    next_probe: float
    state: State = "unknown"
    failures: int = 0  # consecutive
    rtt_s: float | None = None  # of the last answer
    sent_at: float | None = None  # the probe in flight, if any
    token: int = 0


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def options_request(
    uri: str, *, local: tuple[str, int], transport: str, branch: str, call_id: str, tag: str
) -> Request:
    """The OPTIONS of one probe (RFC 3261 §11.1; Via per §8.1.1.7 with rport, RFC 3581 §3)."""
    host, port = local
    me = f"sip:vpbx@{_host(host)}:{port}"
    return Request(
        "OPTIONS",
        uri,
        [
            ("Via", f"SIP/2.0/{transport.upper()} {_host(host)}:{port};branch={branch};rport"),
            ("Max-Forwards", MAX_FORWARDS),
            ("From", f"<{me}>;tag={tag}"),
            ("To", f"<{uri}>"),
            ("Call-ID", call_id),
            ("CSeq", "1 OPTIONS"),
            ("Accept", "application/sdp"),
        ],
    )


class Qualifier:
    """Probes every binding with OPTIONS and keeps each contact's reachability (module doc)."""

    def __init__(
        self,
        *,
        interval_s: float,
        local: Callable[[Dest], tuple[str, int]],
        timeout_s: float | None = None,
        max_failures: int = 2,
        branch: Callable[[], str] = new_branch,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("qualify interval must be > 0")
        if max_failures < 1:
            raise ValueError("max_failures must be >= 1")
        self.interval_s = interval_s
        self.timeout_s = min(interval_s, TIMER_F_S) if timeout_s is None else timeout_s
        self.max_failures = max_failures
        self.local = local
        self.branch = branch
        self.contacts: dict[ContactKey, ContactStatus] = {}
        self._tokens = 0

    # -- bindings ------------------------------------------------------------------------------

    def _offset(self, key: ContactKey) -> float:
        spread = zlib.crc32(f"{key[0]}\0{key[1]}".encode()) / 2**32
        return spread * self.interval_s

    def sync(self, bindings: Iterable[Binding], now: float) -> None:
        """Follow the location service: add new bindings, forget gone ones, and take a moved
        binding's new source/transport (a re-REGISTER from another NAT port)."""
        seen: set[ContactKey] = set()
        for b in bindings:
            key = (b.aor, b.uri)
            seen.add(key)
            status = self.contacts.get(key)
            if status is None:
                self.contacts[key] = ContactStatus(
                    b.aor, b.uri, b.source, b.transport.upper(), next_probe=now + self._offset(key)
                )
            elif status.dest != b.source or status.transport != b.transport.upper():
                status.dest, status.transport = b.source, b.transport.upper()
        for key in [k for k in self.contacts if k not in seen]:
            del self.contacts[key]

    # -- probes --------------------------------------------------------------------------------

    def due(self, now: float) -> list[Probe]:
        """The OPTIONS whose time has come (one in flight per contact at most)."""
        out: list[Probe] = []
        for key, s in self.contacts.items():
            if s.sent_at is not None or s.next_probe > now:
                continue
            self._tokens += 1
            s.token, s.sent_at = self._tokens, now
            # keep the contact's slot within the interval; skip slots missed (a stalled loop)
            s.next_probe += self.interval_s * max(1, int((now - s.next_probe) // self.interval_s) + 1)
            request = options_request(
                s.uri,
                local=self.local(s.dest),
                transport=s.transport,
                branch=self.branch(),
                call_id=new_call_id(),
                tag=new_tag(),
            )
            out.append(Probe(key, s.token, request, s.dest, s.transport))
        return out

    def _current(self, key: ContactKey, token: int) -> ContactStatus | None:
        s = self.contacts.get(key)
        if s is None or s.sent_at is None or s.token != token:
            return None  # forgotten, already timed out, or an older probe
        return s

    def on_answer(self, key: ContactKey, token: int, now: float) -> float | None:
        """A final response (any status) to probe `token`: reachable. Gives the round trip,
        or None when the probe was no longer awaited (late, or the binding is gone)."""
        s = self._current(key, token)
        if s is None or s.sent_at is None:
            return None
        rtt = max(0.0, now - s.sent_at)
        s.sent_at, s.failures, s.state, s.rtt_s = None, 0, "reachable", rtt
        return rtt

    def on_failure(self, key: ContactKey, token: int, now: float) -> None:
        """Probe `token` timed out or could not be sent."""
        del now
        s = self._current(key, token)
        if s is not None:
            self._fail(s)

    def _fail(self, s: ContactStatus) -> None:
        s.sent_at = None
        s.failures += 1
        if s.failures >= self.max_failures:
            s.state = "unreachable"

    def expire(self, now: float) -> list[ContactKey]:
        """Count probes unanswered for `timeout_s` as failures; gives the contacts that became
        unreachable now (for the log)."""
        lost: list[ContactKey] = []
        for key, s in self.contacts.items():
            if s.sent_at is not None and now - s.sent_at >= self.timeout_s:
                was = s.state
                self._fail(s)
                if s.state == "unreachable" and was != "unreachable":
                    lost.append(key)
        return lost

    # -- figures -------------------------------------------------------------------------------

    def reachable(self, aor: str, uri: str) -> bool:
        """May a call ring this contact? Only a contact known unreachable is skipped."""
        s = self.contacts.get((aor, uri))
        return s is None or s.state != "unreachable"

    def counts(self) -> tuple[int, int]:
        """(reachable, unreachable) contacts; those not yet probed are in neither."""
        states = [s.state for s in self.contacts.values()]
        return states.count("reachable"), states.count("unreachable")

    def next_deadline(self) -> float | None:
        """The earliest probe or timeout to handle."""
        times = [
            s.next_probe if s.sent_at is None else s.sent_at + self.timeout_s for s in self.contacts.values()
        ]
        return min(times, default=None)
