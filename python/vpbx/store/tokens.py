"""API tokens: the plaintext is shown once at creation; only its SHA-256 is stored.

Tokens carry 256 random bits, so a fast hash is enough (nothing to brute-force), and a
lookup by hash keeps verification independent of how many tokens exist.

A token is either a service token (`user_id` None: the rights of its `role`, no "self"
or "department") or acts for one user (`user_id` set): a login session (role
`SESSION_ROLE`: whatever roles that user has at each request) or a token created for a
user with a fixed role. `expires_at` None means until revoked.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .schema import api_tokens

TOKEN_PREFIX: Final = "vpbx_"
SESSION_ROLE: Final = "session"
TOUCH_INTERVAL_S: Final = 60.0  # last_used_at is written at most this often per token


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: int
    role: str
    description: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None
    user_id: int | None = None
    expires_at: float | None = None

    def live(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


_COLUMNS: Final = (
    api_tokens.c.id,
    api_tokens.c.role,
    api_tokens.c.description,
    api_tokens.c.created_at,
    api_tokens.c.last_used_at,
    api_tokens.c.revoked_at,
    api_tokens.c.user_id,
    api_tokens.c.expires_at,
)


def token_hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8", "surrogatepass")).hexdigest()


def _token(m: sa.RowMapping) -> ApiToken:
    return ApiToken(**m)


async def create_token(
    conn: AsyncConnection,
    role: str,
    *,
    now: float,
    description: str = "",
    user_id: int | None = None,
    expires_at: float | None = None,
) -> tuple[ApiToken, str]:
    """A new token for `role` (acting for `user_id` when given, valid until `expires_at`
    when given): (its record, the plaintext — shown to the user once)."""
    if expires_at is not None and expires_at <= now:
        raise ValueError("a token must expire after it is created")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    result = await conn.execute(
        sa.insert(api_tokens)
        .values(
            token_sha256=token_hash(plaintext),
            role=role,
            description=description,
            created_at=now,
            user_id=user_id,
            expires_at=expires_at,
        )
        .returning(*_COLUMNS)
    )
    return _token(result.one()._mapping), plaintext


async def verify_token(
    conn: AsyncConnection, plaintext: str, *, now: float, touch: bool = True
) -> ApiToken | None:
    """The token's record if `plaintext` is a live token, else None (unknown, revoked,
    expired, or malformed). `touch` records the use in `last_used_at` (at most once per
    TOUCH_INTERVAL_S, so reads do not turn into a write per request)."""
    if not plaintext.startswith(TOKEN_PREFIX) or len(plaintext) > 256:
        return None
    query = sa.select(*_COLUMNS).where(
        api_tokens.c.token_sha256 == token_hash(plaintext), api_tokens.c.revoked_at.is_(None)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    token = _token(row._mapping)
    if not token.live(now):
        return None
    if touch and (token.last_used_at is None or now - token.last_used_at >= TOUCH_INTERVAL_S):
        await conn.execute(sa.update(api_tokens).where(api_tokens.c.id == token.id).values(last_used_at=now))
    return token


async def revoke_token(conn: AsyncConnection, token_id: int, *, now: float) -> bool:
    result = await conn.execute(
        sa.update(api_tokens)
        .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount > 0


async def list_tokens(conn: AsyncConnection) -> list[ApiToken]:
    return [_token(r._mapping) for r in await conn.execute(sa.select(*_COLUMNS).order_by(api_tokens.c.id))]


async def purge_expired(conn: AsyncConnection, *, now: float) -> int:
    """Delete tokens that expired or were revoked before `now` (old login sessions)."""
    result = await conn.execute(
        sa.delete(api_tokens).where(
            sa.or_(api_tokens.c.expires_at <= now, api_tokens.c.revoked_at <= now),
            api_tokens.c.user_id.is_not(None),
            api_tokens.c.role == SESSION_ROLE,
        )
    )
    return int(result.rowcount)
