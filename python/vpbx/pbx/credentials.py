"""The credentials the registrar checks, cached in memory (the SIP path never waits on
the disk): HA1 per (username, base digest algorithm), loaded from the store with
`vpbx.store.users.load_ha1s` and swapped whole when the store changes (the io layer
polls for changes; `vpbx user add` takes effect within about a second, no restart).

A lookup is one dict read whether the user exists or not (no extension enumeration
by timing, see vpbx.sip.auth).
"""

from __future__ import annotations

from collections.abc import Mapping


class CredentialCache:
    """`lookup(username, algorithm)` over a snapshot {algorithm: {username: ha1}}."""

    __slots__ = ("_table", "generation")

    def __init__(self, table: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self._table: dict[str, dict[str, str]] = {}
        self.generation = 0
        if table is not None:
            self.replace(table)

    def replace(self, table: Mapping[str, Mapping[str, str]]) -> None:
        """Swap in a new snapshot (a reload after the store changed)."""
        self._table = {alg: dict(users) for alg, users in table.items()}
        self.generation += 1

    def lookup(self, username: str, algorithm: str) -> str | None:
        users = self._table.get(algorithm)
        return None if users is None else users.get(username)

    def accounts(self) -> int:
        """Accounts known (for /health)."""
        return max((len(users) for users in self._table.values()), default=0)
