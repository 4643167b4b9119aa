"""Where each address-of-record can be reached: the location service of RFC 3261 §10.

The registrar writes bindings (AOR -> contact) here and proxies/B2BUA legs read them.
`LocationStore` is the interface; `MemoryLocationStore` keeps everything in a dict
(one node, lost on restart). A database-backed store implements the same Protocol.

Times are absolute seconds on the clock the registrar is given (Unix time in the
service), so that a persistent store's bindings stay meaningful across restarts.
Keys are plain strings: the AOR key (see Registrar.aor_key) and the contact URI as
text; RFC 3261 §19.1.4 URI equality is the registrar's business, not the store's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from vpbx.sip.transaction_match import Dest


@dataclass(frozen=True, slots=True)
class Binding:
    """One contact of one AOR (RFC 3261 §10.3 step 7: the contact address, its expiry,
    and the Call-ID and CSeq of the REGISTER that last set it).

    aor: the AOR key ("1001" in a single-domain PBX).
    uri: the contact URI as text, the binding's identity within its AOR.
    contact: the Contact header value to list in 200 responses, without `expires`
        (it keeps q, +sip.instance, reg-id ...).
    source / transport: where the REGISTER came from (the NAT binding to send to).
    """

    aor: str
    uri: str
    contact: str
    expires_at: float
    call_id: str
    cseq: int
    source: Dest
    transport: str
    q: float | None = None
    user_agent: str | None = None
    registered_at: float = 0.0

    def remaining(self, now: float) -> int:
        """Whole seconds left, rounded up (a binding that still lives lists at least 1)."""
        left = self.expires_at - now
        whole = int(left)
        return whole + 1 if left > whole else whole


class LocationStore(Protocol):
    """The location service as the registrar needs it. Implementations must make a
    `replace` atomic: a REGISTER's updates are all visible or none (§10.3 step 7)."""

    def bindings(self, aor: str, now: float) -> list[Binding]:
        """The live bindings of `aor` (expires_at > now), in the order they were made."""
        ...

    def replace(self, aor: str, bindings: list[Binding]) -> None:
        """Make `bindings` the whole set of `aor` (an empty list removes the AOR)."""
        ...

    def expire(self, now: float) -> list[Binding]:
        """Remove and return every binding with expires_at <= now (housekeeping)."""
        ...

    def count(self) -> int:
        """Bindings held (for metrics; may include some not yet swept)."""
        ...


class MemoryLocationStore:
    """A LocationStore in a dict: AOR -> bindings."""

    __slots__ = ("_aors",)

    def __init__(self) -> None:
        self._aors: dict[str, list[Binding]] = {}

    def bindings(self, aor: str, now: float) -> list[Binding]:
        return [b for b in self._aors.get(aor, ()) if b.expires_at > now]

    def replace(self, aor: str, bindings: list[Binding]) -> None:
        if bindings:
            self._aors[aor] = list(bindings)
        else:
            self._aors.pop(aor, None)

    def expire(self, now: float) -> list[Binding]:
        gone: list[Binding] = []
        for aor in list(self._aors):
            kept: list[Binding] = []
            for b in self._aors[aor]:
                (kept if b.expires_at > now else gone).append(b)
            if kept:
                self._aors[aor] = kept
            else:
                del self._aors[aor]
        return gone

    def count(self) -> int:
        return sum(map(len, self._aors.values()))

    def aors(self) -> list[str]:
        return list(self._aors)
