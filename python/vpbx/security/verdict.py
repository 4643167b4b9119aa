"""What a digest check means at the front door, the same for REGISTER (the registrar) and
INVITE (the B2BUA): the source guard hears successes and failures per username, and the
right password from outside the account's source allowlist counts as a wrong one (a 403
would confirm the password to whoever holds it)."""

from __future__ import annotations

from dataclasses import dataclass

from vpbx.sip.auth import AuthResult

from .guard import SourceGuard
from .netlist import AccountAllowlists


@dataclass(frozen=True, slots=True)
class Verdict:
    """`username`: authenticated and allowed from here; else the caller challenges again,
    unless `banned` (this failure got the source banned: answer nothing)."""

    username: str | None = None
    outside: bool = False  # right credentials, source outside the account's allowlist
    failed: bool = False  # counted as a failed authentication
    banned: bool = False


def judge(
    result: AuthResult,
    ip: str,
    now: float,
    *,
    guard: SourceGuard | None,
    allowlists: AccountAllowlists | None,
) -> Verdict:
    """Tell the guard about `result` from `ip` and say what to answer."""
    username = result.username
    outside = (
        result.ok and username is not None and allowlists is not None and not allowlists.permits(username, ip)
    )
    if result.ok and username is not None and not outside:
        if guard is not None:
            guard.record_auth_success(ip, now, username)
        return Verdict(username=username)
    failed = outside or result.is_failure
    banned = failed and guard is not None and guard.record_auth_failure(ip, now, username)
    return Verdict(outside=outside, failed=failed, banned=banned)
