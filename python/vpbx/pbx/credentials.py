"""The credentials the registrar checks, cached in memory (the SIP path never waits on
the disk): HA1 per (username, base digest algorithm), loaded from the store with
`vpbx.store.users.load_ha1s`, and each account's limits (source allowlist, max_calls)
loaded with `vpbx.store.users.load_account_limits`; swapped whole when the store changes
(the io layer polls for changes; `vpbx user add` takes effect within about a second, no
restart).

    cache = CredentialCache()
    cache.replace(table, allowed_cidrs=allowed, max_calls=limits)
    Registrar(realm, auth, cache.lookup, location, guard, allowlists=cache.allowlists)

A lookup is one dict read whether the user exists or not (no extension enumeration
by timing, see vpbx.sip.auth). `allowlists` is one object for the cache's lifetime,
refilled in place, so a registrar built once sees every reload.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from vpbx.security import AccountAllowlists

DEFAULT_MAX_CALLS: Final = 4  # the store's default for an account (sip_accounts.max_calls)


class CredentialCache:
    """`lookup(username, algorithm)` over a snapshot {algorithm: {username: ha1}}, plus
    the accounts' allowlists and call limits."""

    __slots__ = ("_max_calls", "_table", "allowlists", "broken_allowlists", "generation")

    def __init__(self, table: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self._table: dict[str, dict[str, str]] = {}
        self._max_calls: dict[str, int] = {}
        self.allowlists = AccountAllowlists()
        self.broken_allowlists: list[str] = []  # accounts locked out by a list that is no CIDRs
        self.generation = 0
        if table is not None:
            self.replace(table)

    def replace(
        self,
        table: Mapping[str, Mapping[str, str]],
        *,
        allowed_cidrs: Mapping[str, Iterable[str]] | None = None,
        max_calls: Mapping[str, int] | None = None,
    ) -> None:
        """Swap in a new snapshot (a reload after the store changed). Allowlists and
        limits not given are emptied: every account from anywhere, the default limit."""
        self._table = {alg: dict(users) for alg, users in table.items()}
        self.broken_allowlists = self.allowlists.replace(allowed_cidrs or {})
        self._max_calls = dict(max_calls or {})
        self.generation += 1

    def lookup(self, username: str, algorithm: str) -> str | None:
        users = self._table.get(algorithm)
        return None if users is None else users.get(username)

    def max_calls(self, username: str) -> int:
        """The account's limit of simultaneous calls (for the B2BUA's admission)."""
        return self._max_calls.get(username, DEFAULT_MAX_CALLS)

    def accounts(self) -> int:
        """Accounts known (for /health)."""
        return max((len(users) for users in self._table.values()), default=0)
