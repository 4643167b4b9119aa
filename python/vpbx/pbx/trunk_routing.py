"""Which trunk a call leaves by, and which trunk a call came in from (sans-IO): the seam the
B2BUA (vpbx.pbx.calls) calls into. No sockets, no clock, no DNS.

Outbound (`route_outbound`), the way FreePBX outbound routes + trunk dial rules work:

1. The dialled number is normalized ("+7 (495) 123-45-67" -> "+74951234567", separators go).
2. Among the enabled trunks, the one with the longest outbound prefix the number starts
   with wins (ties: the first trunk in the order given, i.e. by name). None: 404.
3. International calls are refused (403) unless the trunk has allow_international. A
   number is *international* for a trunk when it starts with an international access code
   ("00", or "810" as dialled in Russia), or with "+" but not with one of the trunk's *home
   prefixes*: its outbound prefixes that are "+" and a country code ("+7"). So a trunk with
   prefixes ("+7", "8") takes "+74951234567" and "84951234567", refuses "+14155550100"
   (no match anyway: 404) and "81014155550100" (403); a trunk with prefix "+" and
   allow_international takes every "+..." number.
4. The number sent is `add_prefix + number[strip_digits:]` (Asterisk's dial-pattern
   "prepend" and "strip"), the same rule for every number the trunk takes (per-prefix
   rules are not modelled yet); nothing left: 484.
5. From: `from_user` (default: the username) @ `from_domain` (default: the host), the
   identity the provider authenticates; the caller ID presented (P-Asserted-Identity /
   display) is the trunk's `caller_id` when set, else the caller's own number.

Inbound (`match_inbound`): a request whose source address is in one of a trunk's inbound
CIDRs, or is one of its host's addresses (the io side resolves names and passes them in),
comes from that trunk. The DID is the Request-URI user when it is a number other than the
trunk's own username (providers that send INVITE sip:DID@pbx), else the To user; it is
normalized like vpbx.store.numbers so `numbers.route_number` finds it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from vpbx.sip.errors import SipParseError
from vpbx.sip.message import Request
from vpbx.sip.uri import SipUri, TelUri
from vpbx.store.trunks import TrunkSpec

__all__ = [
    "INTERNATIONAL_ACCESS_CODES",
    "InboundMatch",
    "OutboundRoute",
    "RouteRefused",
    "inbound_did",
    "is_international",
    "match_inbound",
    "normalize_dialled",
    "route_outbound",
]

INTERNATIONAL_ACCESS_CODES: Final = ("00", "810")
_SEPARATORS: Final = re.compile(r"[\s\-().]")
_DIALLED_RE: Final = re.compile(r"\+?[0-9]{1,32}")
_NUMBER_RE: Final = re.compile(r"\+?[0-9]{2,20}")  # as vpbx.store.numbers accepts


@dataclass(frozen=True, slots=True)
class OutboundRoute:
    """Send the call to `dest` over `transport` as INVITE `request_uri`."""

    trunk: TrunkSpec  # also the credentials for the provider's 401/407 (username, secret)
    number: str  # the number sent, rewritten
    request_uri: str
    dest: tuple[str, int]
    transport: str
    from_user: str
    from_domain: str
    caller_id: str | None  # the number presented; None: nothing to present


@dataclass(frozen=True, slots=True)
class RouteRefused:
    """No trunk takes the call: answer the caller with `code` (RFC 3261 §21.4)."""

    code: int  # 403 international denied, 404 no route, 484 not a number / nothing left
    reason: str


def normalize_dialled(text: str) -> str | None:
    """The dialled digits with separators removed, or None when it is not a number."""
    digits = _SEPARATORS.sub("", text)
    return digits if _DIALLED_RE.fullmatch(digits) else None


def _home_prefixes(trunk: TrunkSpec) -> list[str]:
    return [p for p in trunk.outbound_prefixes if p.startswith("+") and len(p) > 1]


def is_international(number: str, trunk: TrunkSpec) -> bool:
    """See the module doc, rule 3."""
    if number.startswith(INTERNATIONAL_ACCESS_CODES):
        return True
    if number.startswith("+"):
        return not any(number.startswith(p) for p in _home_prefixes(trunk))
    return False


def _best_trunk(number: str, trunks: Iterable[TrunkSpec]) -> TrunkSpec | None:
    best: TrunkSpec | None = None
    best_len = -1
    for trunk in trunks:
        if not trunk.enabled:
            continue
        for prefix in trunk.outbound_prefixes:
            if number.startswith(prefix) and len(prefix) > best_len:
                best, best_len = trunk, len(prefix)
    return best


def route_outbound(
    dialled: str, trunks: Sequence[TrunkSpec], *, caller: str | None = None
) -> OutboundRoute | RouteRefused:
    """The trunk and rewritten number for a call to `dialled` from `caller` (their number)."""
    number = normalize_dialled(dialled)
    if number is None:
        return RouteRefused(484, f"not a number: {dialled!r}")
    trunk = _best_trunk(number, trunks)
    if trunk is None:
        return RouteRefused(404, f"no trunk for {number}")
    if is_international(number, trunk) and not trunk.allow_international:
        return RouteRefused(403, f"international calls are not allowed on trunk {trunk.name}")
    sent = trunk.add_prefix + number[trunk.strip_digits :]
    if not sent or sent == "+":
        return RouteRefused(484, f"nothing left of {number} after stripping {trunk.strip_digits} digits")
    host = trunk.host if ":" not in trunk.host or trunk.host.startswith("[") else f"[{trunk.host}]"
    uri = f"sip:{sent}@{host}:{trunk.port}"
    if trunk.transport != "udp":
        uri += f";transport={trunk.transport}"
    return OutboundRoute(
        trunk=trunk,
        number=sent,
        request_uri=uri,
        dest=(trunk.host.strip("[]"), trunk.port),
        transport=trunk.transport.upper(),
        from_user=trunk.from_user or trunk.username,
        from_domain=trunk.from_domain or trunk.host,
        caller_id=trunk.caller_id or caller,
    )


@dataclass(frozen=True, slots=True)
class InboundMatch:
    trunk: TrunkSpec
    did: str | None  # None: no number in the request; the B2BUA answers 404


def _from_trunk(ip: str, trunk: TrunkSpec, addresses: Iterable[str]) -> bool:
    try:
        source = ipaddress.ip_address(ip)
    except ValueError:
        return False
    for cidr in trunk.inbound_cidrs:
        if source in ipaddress.ip_network(cidr, strict=False):
            return True
    host = trunk.host.strip("[]")
    return ip == host or ip in addresses


def _user_of(uri: object) -> str | None:
    if isinstance(uri, SipUri):
        return uri.user
    if isinstance(uri, TelUri):
        return uri.number
    return None


def inbound_did(request: Request, trunk: TrunkSpec) -> str | None:
    """The called company number of an inbound request (module doc)."""
    candidates = [_user_of(request.uri)]
    with contextlib.suppress(SipParseError):
        candidates.append(_user_of(request.to.uri))
    for user in candidates:
        if user is None or user == trunk.username:
            continue
        digits = _SEPARATORS.sub("", user)
        if _NUMBER_RE.fullmatch(digits):
            return digits
    return None


def match_inbound(
    request: Request,
    source_ip: str,
    trunks: Sequence[TrunkSpec],
    host_addresses: Mapping[str, Iterable[str]] | None = None,
) -> InboundMatch | None:
    """The enabled trunk `request` came from (by source address) and its DID; None: not
    from a trunk (a phone, or a stranger: the B2BUA authenticates it as usual)."""
    resolved = host_addresses or {}
    for trunk in trunks:
        if trunk.enabled and _from_trunk(source_ip, trunk, resolved.get(trunk.name, ())):
            return InboundMatch(trunk, inbound_did(request, trunk))
    return None
