"""Roles from directory groups, nested groups included (sans-IO).

Where the server has LDAP_MATCHING_RULE_IN_CHAIN (Active Directory) the client asks it
for each role's transitive members directly. Elsewhere (OpenLDAP has no such rule) the
:class:`GroupWalk` resolves nesting itself: it says which DNs to read, is fed each one's
``member`` values, and never reads a DN twice (cycles end).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

MAX_GROUPS: Final = 10_000  # a bound on the walk, whatever the directory holds


def normalize_dn(dn: str) -> str:
    """A DN in a form good enough for equality: lower case, no blanks around ``,`` and ``=``
    (RFC 4514 §2 allows them when reading; attribute types and common values compare
    case-insensitively)."""
    if " ," not in dn and ", " not in dn and " =" not in dn and "= " not in dn:
        return dn.lower()  # the common case, fast
    parts = []
    for rdn in dn.split(","):
        name, _, value = rdn.partition("=")
        parts.append(f"{name.strip()}={value.strip()}")
    return ",".join(parts).lower()


class GroupWalk:
    """Breadth-first walk from each role's group DNs. ``user_dns``: the DNs of users in
    scope (a member that is a user needs no read)."""

    def __init__(self, role_groups: Mapping[str, Iterable[str]], user_dns: Iterable[str]) -> None:
        self._users = {normalize_dn(d) for d in user_dns}
        self._roots = {role: [normalize_dn(g) for g in groups] for role, groups in role_groups.items()}
        self._members: dict[str, list[str]] = {}
        self._queued: set[str] = {g for groups in self._roots.values() for g in groups}
        self._pending: list[str] = sorted(self._queued)
        self.missing: list[str] = []  # role groups that do not exist

    def pending(self) -> list[str]:
        """DNs to read next (empty: done)."""
        out, self._pending = self._pending, []
        return out

    def feed(self, dn: str, members: Iterable[str] | None) -> None:
        """The ``member`` values of ``dn``; None when ``dn`` does not exist or is no group."""
        key = normalize_dn(dn)
        if members is None:
            if any(key in groups for groups in self._roots.values()):
                self.missing.append(dn)
            return
        normalized = [normalize_dn(m) for m in members]
        self._members[key] = normalized
        for m in normalized:
            if m not in self._users and m not in self._queued and len(self._queued) < MAX_GROUPS:
                self._queued.add(m)
                self._pending.append(m)

    def roles_by_user(self) -> dict[str, set[str]]:
        """Normalized user DN -> the roles its (nested) group memberships grant."""
        out: dict[str, set[str]] = {}
        for role, groups in self._roots.items():
            seen: set[str] = set()
            stack = list(groups)
            while stack:
                group = stack.pop()
                if group in seen:
                    continue
                seen.add(group)
                for m in self._members.get(group, ()):
                    if m in self._users:
                        out.setdefault(m, set()).add(role)
                    elif m in self._members:
                        stack.append(m)
        return out


def roles_from_chain(members_by_role: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    """The same result from per-role transitive member lists (IN_CHAIN searches)."""
    out: dict[str, set[str]] = {}
    for role, dns in members_by_role.items():
        for dn in dns:
            out.setdefault(normalize_dn(dn), set()).add(role)
    return out
