"""Calls over trunks, sans-IO: the B2BUA's TrunkResolver (vpbx.pbx.calls.routing) over the
trunk list the io side keeps (vpbx.io.trunks.TrunkManager), using the rules of
vpbx.pbx.trunk_routing.

    calls = TrunkCalls(manager.trunks, manager.host_addresses)
    dialplan.outbound = calls.outbound     # "+7495..." -> Route("trunk", "prov", ...) | Refused
    b2bua.trunks = calls                   # targets(route, now), from_trunk(request, ip)

Outbound: a dialled number no extension or company number claims goes by the trunks'
prefix rules (`route_outbound`): the longest prefix wins; a refusal is the caller's answer
(403 international not allowed on that trunk, 404 no trunk, 484 nothing left after the
trunk's strip rule), and nothing is sent to any provider; what is no number at all
("alice") stays a plain 404. The B leg (`targets`) is INVITE sip:NUMBER@host:port with
From <sip:from_user@from_domain> (the trunk's from_user, default its username; from_domain,
default its host: the identity the provider authenticates and bills), To the same number at
the provider, a P-Asserted-Identity with the trunk's caller_id when set (RFC 3325 §9.1;
the number the called party sees), and the trunk's credentials (auth_username or username,
secret) for the provider's 401/407. A company number whose target is a trunk is sent over
that trunk by the same rules.

Inbound (`from_trunk`): an INVITE from one of an enabled trunk's addresses (its host as
resolved by the io side, or its inbound CIDRs) comes from that trunk, with the DID
`match_inbound` finds in it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from vpbx.pbx.calls.routing import FromTrunk, Refused, Route, Target
from vpbx.pbx.trunk_routing import (
    OutboundRoute,
    RouteRefused,
    match_inbound,
    normalize_dialled,
    route_outbound,
)
from vpbx.sip.message import Request
from vpbx.store.trunks import TrunkSpec

__all__ = ["TrunkCalls", "target_of"]


def target_of(route: OutboundRoute) -> Target:
    """The B leg for an outbound route (module doc)."""
    trunk = route.trunk
    headers: tuple[tuple[str, str], ...] = ()
    if trunk.caller_id is not None:
        headers = (("P-Asserted-Identity", f"<sip:{trunk.caller_id}@{route.from_domain}>"),)
    host = route.request_uri.split("@", 1)[1].split(";", 1)[0]
    return Target(
        uri=route.request_uri,
        dest=route.dest,
        transport=route.transport,
        from_user=route.from_user,
        from_host=route.from_domain,
        to_uri=f"sip:{route.number}@{host}",
        headers=headers,
        auth=(trunk.auth_username or trunk.username, trunk.secret),
    )


class TrunkCalls:
    """See the module doc. `trunks` and `host_addresses` are read at every call, so the CLI's
    changes (the io side reloads them) apply to the next call."""

    __slots__ = ("host_addresses", "trunks")

    def __init__(
        self,
        trunks: Callable[[], Sequence[TrunkSpec]],
        host_addresses: Callable[[], Mapping[str, Iterable[str]]] = dict,
    ) -> None:
        self.trunks = trunks
        self.host_addresses = host_addresses

    def outbound(self, dialled: str) -> Route | Refused | None:
        """The Dialplan's outbound hook: a "trunk" route, a refusal, or None (no trunks at all:
        the plain 404 of an unknown number)."""
        trunks = self.trunks()
        if not trunks or normalize_dialled(dialled) is None:
            return None  # "alice" is an unknown user, not an incomplete number
        found = route_outbound(dialled, trunks)
        if isinstance(found, RouteRefused):
            return Refused(found.code, found.reason)
        return Route("trunk", found.trunk.name, dialled)

    def targets(self, route: Route, now: float) -> list[Target]:
        """The B leg over trunk `route.target`; [] (503) when it is gone, disabled, or no
        longer takes the number."""
        del now
        trunk = next((t for t in self.trunks() if t.name == route.target and t.enabled), None)
        if trunk is None:
            return []
        found = route_outbound(route.dialled, [trunk])
        return [target_of(found)] if isinstance(found, OutboundRoute) else []

    def from_trunk(self, request: Request, source_ip: str) -> FromTrunk | None:
        trunks = self.trunks()
        if not trunks:
            return None
        match = match_inbound(request, source_ip, trunks, self.host_addresses())
        return None if match is None else FromTrunk(match.trunk.name, match.did)
