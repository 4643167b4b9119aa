"""Users, their SIP accounts and roles.

Every function takes an `AsyncConnection`, so that a caller (the directory sync, the CLI)
composes several of them in one transaction: `async with db.begin() as conn: ...`.

Passwords are never stored: `create_user` / `set_password` keep HA1 = H(user:realm:pw)
for every digest algorithm this process can compute (RFC 7616 §3.4.2, RFC 8760), which is
all the authenticator needs (`lookup_ha1`).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from vpbx.sip.digest import base_algorithm, canonical_algorithm, compute_ha1s

from .errors import ConflictError
from .schema import roles, sip_accounts, user_roles, users

# digest base algorithm -> the column holding its HA1
HA1_COLUMNS: Final[dict[str, sa.Column[Any]]] = {
    "MD5": sip_accounts.c.ha1_md5,
    "SHA-256": sip_accounts.c.ha1_sha256,
    "SHA-512-256": sip_accounts.c.ha1_sha512_256,
}
PROFILE_FIELDS: Final = frozenset(
    {
        "display_name",
        "email",
        "department",
        "position",
        "phone",
        "mobile",
        "directory_id",
        "directory_dn",
        "manager_dn",
    }
)


@dataclass(frozen=True, slots=True)
class User:
    id: int
    extension: str
    display_name: str
    email: str | None
    department: str | None
    position: str | None
    phone: str | None
    mobile: str | None
    enabled: bool
    directory_id: str | None
    directory_dn: str | None
    disabled_at: float | None
    created_at: float
    updated_at: float
    manager_dn: str | None = None
    photo_sha256: str | None = None  # the photo bytes are read on their own (photo_of)


@dataclass(frozen=True, slots=True)
class SipAccount:
    id: int
    user_id: int | None
    username: str
    realm: str
    max_calls: int
    allowed_cidrs: tuple[str, ...]
    enabled: bool


_ACCOUNT_COLUMNS: Final = (
    sip_accounts.c.id,
    sip_accounts.c.user_id,
    sip_accounts.c.username,
    sip_accounts.c.realm,
    sip_accounts.c.max_calls,
    sip_accounts.c.allowed_cidrs,
    sip_accounts.c.enabled,
)


#: Every users column but the photo bytes: listing users never loads photos.
USER_COLUMNS: Final = tuple(c for c in users.c if c.name != "photo")


def _user(m: sa.RowMapping) -> User:
    return User(**m)


def _account(m: sa.RowMapping) -> SipAccount:
    values = dict(m)
    values["allowed_cidrs"] = tuple(json.loads(values["allowed_cidrs"] or "[]"))
    return SipAccount(**values)


def normalize_cidrs(cidrs: Iterable[str]) -> list[str]:
    """Networks as the store keeps them ("10.1.2.0/24", "2001:db8::/32"); raises ValueError
    naming the first entry that is no IPv4/IPv6 network. Host bits are dropped."""
    out: list[str] = []
    for text in cidrs:
        try:
            network = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{text!r} is not a CIDR (e.g. 192.0.2.0/24 or 2001:db8::/32)") from None
        if str(network) not in out:
            out.append(str(network))
    return out


def _ha1_values(username: str, realm: str, password: str) -> dict[str, str | None]:
    ha1s = compute_ha1s(username, realm, password)
    return {col.name: ha1s.get(alg) for alg, col in HA1_COLUMNS.items()}


async def create_user(
    conn: AsyncConnection,
    extension: str,
    password: str,
    *,
    realm: str,
    now: float,
    username: str | None = None,
    display_name: str = "",
    max_calls: int = 4,
    allowed_cidrs: Iterable[str] = (),
    profile: Mapping[str, str | None] | None = None,
) -> tuple[User, SipAccount]:
    """A user with `extension` and a SIP account (`username` defaults to the extension)
    whose password is kept only as HA1s. Raises ConflictError if either is taken."""
    username = extension if username is None else username
    fields = dict(profile or {})
    if unknown := set(fields) - PROFILE_FIELDS:
        raise ValueError(f"unknown user fields: {sorted(unknown)}")
    networks = normalize_cidrs(allowed_cidrs)
    if await get_user(conn, extension) is not None:
        raise ConflictError(f"extension {extension} is already taken")
    if await get_account(conn, username) is not None:
        raise ConflictError(f"SIP username {username} is already taken")
    fields.setdefault("display_name", display_name)
    try:
        user_id = (
            await conn.execute(
                sa.insert(users)
                .values(extension=extension, enabled=True, created_at=now, updated_at=now, **fields)
                .returning(users.c.id)
            )
        ).scalar_one()
        await conn.execute(
            sa.insert(sip_accounts).values(
                user_id=user_id,
                username=username,
                realm=realm,
                max_calls=max_calls,
                allowed_cidrs=json.dumps(networks),
                enabled=True,
                created_at=now,
                updated_at=now,
                **_ha1_values(username, realm, password),
            )
        )
    except sa.exc.IntegrityError as exc:  # lost a race with another writer
        raise ConflictError(f"extension {extension} or SIP username {username} is already taken") from exc
    user = await get_user(conn, extension)
    account = await get_account(conn, username)
    assert user is not None and account is not None
    return user, account


async def get_user(conn: AsyncConnection, extension: str) -> User | None:
    row = (await conn.execute(sa.select(*USER_COLUMNS).where(users.c.extension == extension))).first()
    return None if row is None else _user(row._mapping)


async def get_user_by_directory_id(conn: AsyncConnection, directory_id: str) -> User | None:
    row = (await conn.execute(sa.select(*USER_COLUMNS).where(users.c.directory_id == directory_id))).first()
    return None if row is None else _user(row._mapping)


async def photo_of(conn: AsyncConnection, extension: str) -> bytes | None:
    """The stored directory photo (JPEG bytes) of a user, None when there is none."""
    query = sa.select(users.c.photo).where(users.c.extension == extension)
    value = (await conn.execute(query)).scalar_one_or_none()
    return None if value is None else bytes(value)


async def list_users(
    conn: AsyncConnection, *, department: str | None = None, enabled: bool | None = None
) -> list[User]:
    query = sa.select(*USER_COLUMNS).order_by(users.c.extension)
    if department is not None:
        query = query.where(users.c.department == department)
    if enabled is not None:
        query = query.where(users.c.enabled == enabled)
    return [_user(r._mapping) for r in await conn.execute(query)]


async def update_user(conn: AsyncConnection, extension: str, *, now: float, **fields: str | None) -> bool:
    """Change profile fields (see PROFILE_FIELDS); False if there is no such user."""
    if unknown := set(fields) - PROFILE_FIELDS:
        raise ValueError(f"unknown user fields: {sorted(unknown)}")
    result = await conn.execute(
        sa.update(users).where(users.c.extension == extension).values(updated_at=now, **fields)
    )
    return result.rowcount > 0


async def set_user_enabled(conn: AsyncConnection, extension: str, enabled: bool, *, now: float) -> bool:
    """Enable or disable a user and their SIP accounts together. Disabling records the
    time (the start of the removal grace period); re-enabling keeps the extension."""
    user = await get_user(conn, extension)
    if user is None:
        return False
    await conn.execute(
        sa.update(users)
        .where(users.c.id == user.id)
        .values(enabled=enabled, updated_at=now, disabled_at=None if enabled else (user.disabled_at or now))
    )
    await conn.execute(
        sa.update(sip_accounts)
        .where(sip_accounts.c.user_id == user.id)
        .values(enabled=enabled, updated_at=now)
    )
    return True


async def delete_user(conn: AsyncConnection, extension: str) -> bool:
    """Remove a user; their SIP accounts and role grants go with them (ON DELETE CASCADE)."""
    result = await conn.execute(sa.delete(users).where(users.c.extension == extension))
    return result.rowcount > 0


async def get_account(conn: AsyncConnection, username: str) -> SipAccount | None:
    query = sa.select(*_ACCOUNT_COLUMNS).where(sip_accounts.c.username == username)
    row = (await conn.execute(query)).first()
    return None if row is None else _account(row._mapping)


async def accounts_of(conn: AsyncConnection, extension: str) -> list[SipAccount]:
    query = (
        sa.select(*_ACCOUNT_COLUMNS)
        .join(users, users.c.id == sip_accounts.c.user_id)
        .where(users.c.extension == extension)
        .order_by(sip_accounts.c.username)
    )
    return [_account(r._mapping) for r in await conn.execute(query)]


async def set_password(conn: AsyncConnection, username: str, password: str, *, now: float) -> bool:
    """Replace every stored HA1 of an account (its realm is kept)."""
    account = await get_account(conn, username)
    if account is None:
        return False
    await conn.execute(
        sa.update(sip_accounts)
        .where(sip_accounts.c.id == account.id)
        .values(updated_at=now, **_ha1_values(username, account.realm, password))
    )
    return True


async def set_allowed_cidrs(
    conn: AsyncConnection, username: str, cidrs: Sequence[str], *, now: float
) -> bool:
    """The networks the account may be used from (empty: anywhere). False if there is no
    such account; ValueError (nothing written) for an entry that is no network."""
    networks = normalize_cidrs(cidrs)
    result = await conn.execute(
        sa.update(sip_accounts)
        .where(sip_accounts.c.username == username)
        .values(allowed_cidrs=json.dumps(networks), updated_at=now)
    )
    return result.rowcount > 0


def _ha1_query(algorithm: str) -> sa.Select[Any] | None:
    canonical = canonical_algorithm(algorithm)
    column = None if canonical is None else HA1_COLUMNS.get(base_algorithm(canonical))
    if column is None:
        return None
    return (
        sa.select(column)
        .select_from(sip_accounts.outerjoin(users, users.c.id == sip_accounts.c.user_id))
        .where(sip_accounts.c.enabled.is_(True))
        .where(sa.or_(users.c.id.is_(None), users.c.enabled.is_(True)))
    )


async def lookup_ha1(conn: AsyncConnection, username: str, algorithm: str) -> str | None:
    """The stored HA1 of `username` for a digest `algorithm` ("MD5", "SHA-256", …; a
    -sess name maps to its base), or None when the account is unknown, disabled, or
    belongs to a disabled user. What vpbx.sip.auth.DigestAuthenticator asks for."""
    query = _ha1_query(algorithm)
    if query is None:
        return None
    value = (await conn.execute(query.where(sip_accounts.c.username == username))).scalar_one_or_none()
    return None if value is None else str(value)


async def load_ha1s(conn: AsyncConnection, algorithm: str) -> dict[str, str]:
    """Every active account's HA1 for `algorithm`: the snapshot an in-memory
    authenticator cache is built from (the SIP path must not wait on the disk)."""
    query = _ha1_query(algorithm)
    if query is None:
        return {}
    query = query.add_columns(sip_accounts.c.username)
    return {str(name): str(ha1) for ha1, name in await conn.execute(query) if ha1 is not None}


async def load_account_limits(conn: AsyncConnection) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Every active account's source allowlist (only accounts that have one) and its
    max_calls: what the credential cache keeps next to the HA1s. An allowlist that is
    not a JSON list of strings is kept as an invalid entry, which locks the account out
    (vpbx.security.AccountAllowlists.replace) instead of opening it."""
    query = _ha1_query("MD5")
    assert query is not None
    query = query.with_only_columns(
        sip_accounts.c.username, sip_accounts.c.allowed_cidrs, sip_accounts.c.max_calls
    )
    allowed: dict[str, list[str]] = {}
    max_calls: dict[str, int] = {}
    rows: Sequence[Any] = (await conn.execute(query)).all()
    for name, cidrs, calls in rows:
        try:
            networks = json.loads(cidrs or "[]")
        except ValueError:
            networks = ["<not JSON>"]
        if not isinstance(networks, list) or not all(isinstance(n, str) for n in networks):
            networks = ["<not a list of networks>"]
        if networks:
            allowed[str(name)] = networks
        max_calls[str(name)] = int(calls)
    return allowed, max_calls


async def ensure_role(conn: AsyncConnection, name: str, description: str = "") -> int:
    """The id of role `name`, created if missing."""
    found = (await conn.execute(sa.select(roles.c.id).where(roles.c.name == name))).scalar_one_or_none()
    if found is not None:
        return int(found)
    inserted = await conn.execute(
        sa.insert(roles).values(name=name, description=description).returning(roles.c.id)
    )
    return int(inserted.scalar_one())


async def grant_role(conn: AsyncConnection, extension: str, role: str, *, source: str = "manual") -> bool:
    user = await get_user(conn, extension)
    if user is None:
        return False
    role_id = await ensure_role(conn, role)
    exists = (
        await conn.execute(
            sa.select(user_roles.c.user_id).where(
                user_roles.c.user_id == user.id, user_roles.c.role_id == role_id
            )
        )
    ).first()
    if exists is None:
        await conn.execute(sa.insert(user_roles).values(user_id=user.id, role_id=role_id, source=source))
    return True


async def revoke_role(conn: AsyncConnection, extension: str, role: str) -> bool:
    user = await get_user(conn, extension)
    if user is None:
        return False
    role_ids = sa.select(roles.c.id).where(roles.c.name == role).scalar_subquery()
    result = await conn.execute(
        sa.delete(user_roles).where(user_roles.c.user_id == user.id, user_roles.c.role_id == role_ids)
    )
    return result.rowcount > 0


async def roles_of(conn: AsyncConnection, extension: str) -> list[str]:
    query = (
        sa.select(roles.c.name)
        .join(user_roles, user_roles.c.role_id == roles.c.id)
        .join(users, users.c.id == user_roles.c.user_id)
        .where(users.c.extension == extension)
        .order_by(roles.c.name)
    )
    return [str(name) for name in (await conn.execute(query)).scalars()]
