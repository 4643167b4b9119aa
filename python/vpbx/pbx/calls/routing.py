"""The dialplan: where a call to a Request-URI user goes, from a snapshot of the store.

`Dialplan.route(user)` gives a `Route`: an extension (fork to all its contacts) or a
trunk (the seam the trunk module fills: a number whose target kind is "trunk", or the
`outbound` prefix rules), a `Refused` (the outbound rules' answer: 403 international not
allowed, 404, 484), or None (404). `route_did` is what a call from a trunk may reach: a
company number routed to an extension. The snapshot (`DialplanSnapshot`) is
replaced whole by the io layer when the CLI changes numbers or accounts; routing itself
reads no database.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from vpbx.sip.message import Request
from vpbx.sip.transaction_match import Dest
from vpbx.store.numbers import DEFAULT_MAX_CALLS, normalize_number

__all__ = [
    "DEFAULT_ACCOUNT_MAX_CALLS",
    "Dialplan",
    "DialplanSnapshot",
    "FromTrunk",
    "NumberEntry",
    "Refused",
    "Route",
    "Target",
    "TrunkResolver",
]

DEFAULT_ACCOUNT_MAX_CALLS: Final = 4  # sip_accounts.max_calls server default

RouteKind = Literal["extension", "trunk"]


@dataclass(frozen=True, slots=True)
class NumberEntry:
    """A company number (DID) as routing needs it."""

    e164: str
    target_kind: str  # extension | trunk (group, ivr: not routed yet)
    target_value: str
    max_calls: int = DEFAULT_MAX_CALLS


@dataclass(frozen=True, slots=True)
class Route:
    """Where a call goes. `kind` "extension": `target` is the extension (AOR) to fork to;
    "trunk": `target` is the trunk name and `dialled` the number to send it. `number` is
    the DID the call came in on (its per-number limit applies), None for a direct dial."""

    kind: RouteKind
    target: str
    dialled: str
    number: NumberEntry | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """Where one B leg goes: the Request-URI, the address and transport to send to, and
    (for a trunk) the From user/host the provider expects (caller-ID rules) instead of
    the caller's own."""

    uri: str
    dest: Dest
    transport: str = "UDP"
    from_user: str | None = None
    from_host: str | None = None
    to_uri: str | None = None  # To of the INVITE; default: the target user at our realm
    headers: tuple[tuple[str, str], ...] = ()  # added to the INVITE (a trunk's P-Asserted-Identity)
    # (username, password) answering the far end's 401/407 (a trunk's credentials, §22.2)
    auth: tuple[str, str] | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Refused:
    """No route, with the status the caller gets (RFC 3261 §21.4: 403, 404, 484)."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class FromTrunk:
    """An INVITE that came from a trunk's address: `did` is the company number it calls
    (None: none found, 404)."""

    trunk: str
    did: str | None


class TrunkResolver(Protocol):
    """The trunk module's seam: the B legs a "trunk" route dials (several for failover
    is allowed; they ring in parallel like forks). [] means the trunk is down: 503.
    `from_trunk`: whether a new INVITE from `source_ip` comes from a trunk (not
    challenged, routed by DID only)."""

    def targets(self, route: Route, now: float) -> list[Target]: ...

    def from_trunk(self, request: Request, source_ip: str) -> FromTrunk | None: ...


@dataclass(frozen=True, slots=True)
class DialplanSnapshot:
    """Accounts (extension -> max concurrent calls) and numbers (normalized e164 -> entry)."""

    accounts: Mapping[str, int] = field(default_factory=dict)
    numbers: Mapping[str, NumberEntry] = field(default_factory=dict)


class Dialplan:
    """Routes over the current snapshot (replace it with `load`)."""

    __slots__ = ("outbound", "snapshot")

    def __init__(
        self,
        snapshot: DialplanSnapshot | None = None,
        *,
        outbound: Callable[[str], Route | Refused | None] | None = None,
    ) -> None:
        self.snapshot = snapshot or DialplanSnapshot()
        # The trunk module's prefix rules ("00..." -> trunk), asked after extensions and numbers.
        self.outbound = outbound

    def load(self, snapshot: DialplanSnapshot) -> None:
        self.snapshot = snapshot

    def account_limit(self, username: str) -> int:
        return self.snapshot.accounts.get(username, DEFAULT_ACCOUNT_MAX_CALLS)

    def is_extension(self, user: str) -> bool:
        return user in self.snapshot.accounts

    def number(self, dialled: str) -> NumberEntry | None:
        """The number `dialled` lands on, with or without a leading "+" (trunks send both)."""
        try:
            e164 = normalize_number(dialled)
        except ValueError:
            return None
        numbers = self.snapshot.numbers
        bare = e164.removeprefix("+")
        return numbers.get("+" + bare) or numbers.get(bare)

    def route_did(self, did: str | None) -> Route | None:
        """A call from a trunk: only company numbers routed to an extension (a provider
        reaches neither extensions directly nor other trunks)."""
        entry = None if did is None else self.number(did)
        if entry is None or entry.target_kind != "extension":
            return None
        return Route("extension", entry.target_value, did or "", entry)

    def route(self, user: str) -> Route | Refused | None:
        """Extensions first (an extension may look like a number), then numbers, then the
        outbound (trunk prefix) rules."""
        if self.is_extension(user):
            return Route("extension", user, user)
        entry = self.number(user)
        if entry is None:
            return self.outbound(user) if self.outbound is not None else None
        if entry.target_kind == "extension":
            return Route("extension", entry.target_value, user, entry)
        if entry.target_kind == "trunk":
            return Route("trunk", entry.target_value, user, entry)
        return None  # group / ivr targets: not routed yet
