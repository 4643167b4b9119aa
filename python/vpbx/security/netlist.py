"""Address lists: CIDR sets (trusted networks, per-account source allowlists) and the
key a source address is tracked under.

Membership costs one dict-free set lookup per distinct prefix length in the list, not
one comparison per network, so lists of thousands of provider ranges stay cheap.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Final

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_BITS: Final = {4: 32, 6: 128}


def parse_ip(text: str) -> IpAddress | None:
    """An address as a transport reports it ("192.0.2.1", "2001:db8::1", "[2001:db8::1]",
    "fe80::1%eth0"); IPv4-mapped IPv6 becomes IPv4. None if it is no address."""
    if text[:1] == "[" and text[-1:] == "]":
        text = text[1:-1]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        mapped = addr.ipv4_mapped
        if mapped is not None:
            return mapped
        if addr.scope_id is not None:
            addr = ipaddress.IPv6Address(int(addr))
    return addr


def source_key(text: str, ipv6_prefix: int = 64) -> str:
    """The identity a source is rate-limited and banned under: the IPv4 address, or the
    IPv6 /`ipv6_prefix` network (one host usually owns a whole /64, RFC 4291 §2.5.1,
    so counting single IPv6 addresses would let it walk around any ban). Text that is
    no address is its own key."""
    if text.count(".") == 3 and text.isascii() and text.replace(".", "").isdigit():
        return text  # the everyday IPv4 case, without building objects
    addr = parse_ip(text)
    if addr is None:
        return text
    if addr.version == 4 or ipv6_prefix >= 128:
        return str(addr)
    shift = 128 - ipv6_prefix
    return f"{ipaddress.IPv6Address((int(addr) >> shift) << shift)}/{ipv6_prefix}"


class CidrSet:
    """A set of IPv4/IPv6 networks ("10.0.0.0/8", "2001:db8::/32", "192.0.2.7").

    Raises ValueError for an entry that is no network (host bits set are allowed and
    ignored, as in `ipaddress.ip_network(strict=False)`).
    """

    __slots__ = ("_by_version", "networks")

    def __init__(self, networks: Iterable[str] = ()) -> None:
        self.networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = tuple(
            ipaddress.ip_network(n.strip(), strict=False) for n in networks
        )
        # version -> [(shift, {network bits >> shift})], longest prefix first
        grouped: dict[int, dict[int, set[int]]] = {4: {}, 6: {}}
        for net in self.networks:
            shift = _BITS[net.version] - net.prefixlen
            grouped[net.version].setdefault(shift, set()).add(int(net.network_address) >> shift)
        self._by_version: dict[int, tuple[tuple[int, frozenset[int]], ...]] = {
            v: tuple((s, frozenset(vals)) for s, vals in sorted(g.items())) for v, g in grouped.items()
        }

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __len__(self) -> int:
        return len(self.networks)

    def __repr__(self) -> str:
        return f"CidrSet({[str(n) for n in self.networks]!r})"

    def contains(self, ip: str | IpAddress) -> bool:
        """True if `ip` is in one of the networks; False for text that is no address."""
        addr = parse_ip(ip) if isinstance(ip, str) else ip
        if addr is None:
            return False
        value = int(addr)
        return any((value >> shift) in values for shift, values in self._by_version[addr.version])

    __contains__ = contains


class AccountAllowlists:
    """Per-account source allowlists: an account with a list may only be used from
    those networks. An account without a list may be used from anywhere.

    The registrar asks after the digest checked out, and answers a source outside the
    list exactly like a wrong password (the same fresh challenge, counted as a failed
    authentication by the guard): the answer must not confirm the password to
    whoever holds it in the wrong place."""

    __slots__ = ("_lists",)

    def __init__(self, lists: Mapping[str, Iterable[str]] | None = None) -> None:
        self._lists: dict[str, CidrSet] = {}
        for account, networks in (lists or {}).items():
            self.set(account, networks)

    def replace(self, lists: Mapping[str, Iterable[str]]) -> list[str]:
        """Swap in every account's list at once (a reload from the store), in place, so
        that whoever holds this object sees the new lists. An account whose list has an
        entry that is no network is locked out (allowed from nowhere) rather than opened
        to everyone; their names are returned, for a warning."""
        fresh: dict[str, CidrSet] = {}
        broken: list[str] = []
        for account, networks in lists.items():
            try:
                cidrs = CidrSet(networks)
            except (ValueError, TypeError, AttributeError):  # not a network, not even text
                broken.append(account)
                fresh[account] = CidrSet()  # contains nothing: permits nothing
                continue
            if cidrs:
                fresh[account] = cidrs
        self._lists = fresh
        return broken

    def set(self, account: str, networks: Iterable[str]) -> None:
        """Replace the account's list; an empty list removes the restriction."""
        cidrs = CidrSet(networks)
        if cidrs:
            self._lists[account] = cidrs
        else:
            self._lists.pop(account, None)

    def remove(self, account: str) -> None:
        self._lists.pop(account, None)

    def get(self, account: str) -> CidrSet | None:
        return self._lists.get(account)

    def __len__(self) -> int:
        return len(self._lists)

    def permits(self, account: str, ip: str) -> bool:
        cidrs = self._lists.get(account)
        return cidrs is None or cidrs.contains(ip)
