"""Authentication: bearer tokens to principals, and user login to session tokens.

- `Authorization: Bearer <token>` (RFC 6750 §2.1); a missing, unknown, revoked or
  expired token, or one acting for a disabled or deleted user, is 401 with a
  `WWW-Authenticate: Bearer` challenge (RFC 6750 §3).
- Login: directory users by an LDAP bind (the `directory_login` seam); local users (no
  directory id) by their extension and the password whose HA1 = MD5(user:realm:password)
  (RFC 2617 §3.2.2.2) is stored for their SIP account, compared in constant time. A
  failure is the same 401 whether the login exists or not; the source address is rate
  limited and banned after repeated failures (vpbx.security.SourceGuard).
"""

from __future__ import annotations

import hmac
import logging
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from vpbx.sip.digest import compute_ha1
from vpbx.store import tokens, users
from vpbx.store.schema import sip_accounts
from vpbx.store.schema import users as users_table

from .context import ApiContext
from .errors import ApiError
from .rbac import Principal

__all__ = ["authenticate", "bearer_token", "login"]

log = logging.getLogger(__name__)
CHALLENGE: Final = {"WWW-Authenticate": 'Bearer realm="vpbx"'}
BAD_LOGIN: Final = "invalid login or password"
_DUMMY_HA1: Final = "0" * 32


def unauthorized(message: str) -> ApiError:
    return ApiError("unauthorized", message, headers=CHALLENGE)


def bearer_token(header: str | None) -> str:
    """The token of an `Authorization: Bearer` header (RFC 6750 §2.1)."""
    if not header:
        raise unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise unauthorized("the Authorization header must be 'Bearer <token>'")
    return value.strip()


async def authenticate(ctx: ApiContext, header: str | None, *, now: float) -> Principal:
    plaintext = bearer_token(header)
    async with ctx.db.begin() as conn:
        token = await tokens.verify_token(conn, plaintext, now=now)
        if token is None:
            raise unauthorized("invalid, expired or revoked token")
        if token.user_id is None:
            return Principal(token_id=token.id, roles=frozenset({token.role}))
        row = (await conn.execute(sa.select(users_table).where(users_table.c.id == token.user_id))).first()
        if row is None or not row.enabled:
            raise unauthorized("the token's user is disabled or removed")
        session = token.role == tokens.SESSION_ROLE
        granted = await users.roles_of(conn, row.extension) if session else [token.role]
    return Principal(
        token_id=token.id,
        roles=frozenset(granted),
        user_id=int(row.id),
        extension=str(row.extension),
        department=row.department,
        session=session,
    )


async def _local_user_id(conn: AsyncConnection, login: str, password: str) -> int | None:
    """The id of the enabled local user whose extension is `login` and whose SIP account's
    MD5 HA1 matches `password`; the same work is done when there is no such user."""
    query = (
        sa.select(users_table.c.id, sip_accounts.c.username, sip_accounts.c.realm, sip_accounts.c.ha1_md5)
        .join(sip_accounts, sip_accounts.c.user_id == users_table.c.id)
        .where(
            users_table.c.extension == login,
            users_table.c.directory_id.is_(None),
            users_table.c.enabled.is_(True),
            sip_accounts.c.enabled.is_(True),
        )
        .order_by(sip_accounts.c.username)
    )
    rows = list(await conn.execute(query))
    if not rows:
        hmac.compare_digest(compute_ha1(login, "vpbx", password), _DUMMY_HA1)
        return None
    for uid, username, realm, ha1 in rows:
        if hmac.compare_digest(compute_ha1(username, realm, password), str(ha1)):
            return int(uid)
    return None


async def login(ctx: ApiContext, login_name: str, password: str, *, source: str) -> tuple[str, float, str]:
    """(session token, its expiry, the user's extension) or ApiError 401/429/503."""
    mono = ctx.monotonic()
    if ctx.guard.is_banned(source, mono):
        wait = max(1, int(ctx.guard.ban_remaining(source, mono)))
        raise ApiError(
            "too_many_requests",
            f"too many failed logins from this address; retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    if not ctx.guard.allow_request(source, mono):
        raise ApiError(
            "too_many_requests", "too many login attempts; slow down", headers={"Retry-After": "1"}
        )
    directory_down = False
    directory_id: str | None = None
    if ctx.directory_login is not None:
        try:
            directory_id = await ctx.directory_login(login_name, password)
        except Exception as exc:  # any failure to reach the directory
            log.warning("directory login unavailable: %s", exc)
            directory_down = True
    now = ctx.clock()
    async with ctx.db.begin() as conn:
        user_id: int | None = None
        if directory_id is not None:
            user = await users.get_user_by_directory_id(conn, directory_id)
            user_id = user.id if user is not None and user.enabled else None
        if user_id is None:
            user_id = await _local_user_id(conn, login_name, password)
        if user_id is None:
            ctx.guard.record_auth_failure(source, mono)
            if directory_down:
                raise ApiError("unavailable", "the directory cannot be reached; try again later")
            raise unauthorized(BAD_LOGIN)
        ctx.guard.record_auth_success(source, mono)
        await tokens.purge_expired(conn, now=now)  # old sessions do not pile up
        expires = now + ctx.session_ttl_s
        record, plaintext = await tokens.create_token(
            conn,
            tokens.SESSION_ROLE,
            now=now,
            user_id=user_id,
            expires_at=expires,
            description=f"login from {source}",
        )
        ext = (
            await conn.execute(sa.select(users_table.c.extension).where(users_table.c.id == user_id))
        ).scalar_one()
    log.info("api login: token %d for extension %s", record.id, ext)
    return plaintext, expires, str(ext)
