"""Simultaneous calls per account (issue 4: "max concurrent calls per account"), sans-IO.

    limits = AccountCallLimits(cache.max_calls)     # account -> its limit (the store's max_calls)
    if not limits.start(account, call_id):          # a new call leg the account places
        refuse(403, "Too Many Calls")               # the B2BUA chooses the answer
    ...
    limits.end(call_id)                             # the leg ended, whichever way

A call counts from `start` until `end`; starting the same call-id again (a retransmitted
or re-authenticated INVITE) does not count twice. The limit is read at each `start`,
so a changed max_calls applies to the next call without touching the ones running.
"""

from __future__ import annotations

from collections.abc import Callable


class AccountCallLimits:
    __slots__ = ("_accounts", "_calls", "limit_of", "refused_total")

    def __init__(self, limit_of: Callable[[str], int]) -> None:
        self.limit_of = limit_of
        self._calls: dict[str, str] = {}  # call-id -> account
        self._accounts: dict[str, int] = {}  # account -> calls running
        self.refused_total = 0

    def start(self, account: str, call_id: str) -> bool:
        """Count a call of `account`; False (nothing counted) when it is at its limit."""
        owner = self._calls.get(call_id)
        if owner is not None:
            return owner == account
        running = self._accounts.get(account, 0)
        if running >= self.limit_of(account):
            self.refused_total += 1
            return False
        self._calls[call_id] = account
        self._accounts[account] = running + 1
        return True

    def end(self, call_id: str) -> bool:
        """The call is over; False if it was not counted."""
        account = self._calls.pop(call_id, None)
        if account is None:
            return False
        left = self._accounts[account] - 1
        if left:
            self._accounts[account] = left
        else:
            del self._accounts[account]
        return True

    def active(self, account: str) -> int:
        return self._accounts.get(account, 0)

    def __len__(self) -> int:
        """Calls counted, all accounts together."""
        return len(self._calls)
