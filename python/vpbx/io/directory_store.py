"""The store side of the directory sync: read what the store holds, apply a plan in bulk.

Everything runs on the caller's connection, inside its one transaction: a plan is applied
completely or not at all. Bulk statements (executemany, chunked IN lists) keep a 50,000-user
first sync to a few statements per kind.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from vpbx.directory import Current, Plan
from vpbx.directory.mapping import PHOTO_COLUMN, STORED_FIELDS
from vpbx.directory.plan import Create
from vpbx.sip.digest import compute_ha1s
from vpbx.store.schema import registrations, roles, sip_accounts, user_roles, users
from vpbx.store.users import HA1_COLUMNS, USER_COLUMNS

__all__ = ["apply_plan", "load_current", "new_secret"]

CHUNK: Final = 500  # ids per IN list (SQLite's variable limit is far above)
PHOTO_BATCH_BYTES: Final = 512 * 1024  # photo bytes held per UPDATE batch (the memory target)
#: A photo's bytes by its SHA-256 (vpbx.io.ldap_client.PhotoSpool.get)
PhotoSource = Callable[[str], bytes]
_COLUMNS: Final = tuple(STORED_FIELDS.values())
T = TypeVar("T")


def new_secret() -> str:
    """A generated SIP password: 144 random bits, URL-safe (24 characters)."""
    return secrets.token_urlsafe(18)


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def _ha1s(username: str, realm: str, password: str) -> dict[str, str | None]:
    ha1s = compute_ha1s(username, realm, password)
    return {col.name: ha1s.get(alg) for alg, col in HA1_COLUMNS.items()}


async def load_current(conn: AsyncConnection) -> tuple[list[Current], set[str]]:
    """Every user (manual ones too: their extensions are taken) with the roles the directory
    granted them, and every SIP username in use."""
    granted: dict[int, set[str]] = {}
    query = (
        sa.select(user_roles.c.user_id, roles.c.name)
        .join(roles, roles.c.id == user_roles.c.role_id)
        .where(user_roles.c.source == "directory")
    )
    for user_id, name in await conn.execute(query):
        granted.setdefault(int(user_id), set()).add(str(name))
    out = []
    for r in await conn.execute(sa.select(*USER_COLUMNS)):
        m = r._mapping
        out.append(
            Current(
                id=m["id"],
                extension=m["extension"],
                directory_id=m["directory_id"],
                directory_dn=m["directory_dn"],
                enabled=bool(m["enabled"]),
                disabled_at=m["disabled_at"],
                fields={c: m[c] for c in _COLUMNS},
                roles=frozenset(granted.get(m["id"], ())),
            )
        )
    names = {str(n) for n in (await conn.execute(sa.select(sip_accounts.c.username))).scalars()}
    return out, names


async def _role_ids(conn: AsyncConnection, names: Iterable[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for name in sorted(set(names)):
        found = (await conn.execute(sa.select(roles.c.id).where(roles.c.name == name))).scalar_one_or_none()
        if found is None:
            found = (
                await conn.execute(sa.insert(roles).values(name=name).returning(roles.c.id))
            ).scalar_one()
        ids[name] = int(found)
    return ids


async def _drop_registrations(conn: AsyncConnection, user_ids: Sequence[int]) -> None:
    """Bindings of these users' accounts go with them (their phones can no longer be reached)."""
    for chunk in _chunks(user_ids):
        names = sa.select(sip_accounts.c.username).where(sip_accounts.c.user_id.in_(chunk))
        await conn.execute(sa.delete(registrations).where(registrations.c.username.in_(names)))


async def _set_enabled(conn: AsyncConnection, user_ids: Sequence[int], enabled: bool, now: float) -> None:
    for chunk in _chunks(user_ids):
        values: dict[str, Any] = {"enabled": enabled, "updated_at": now}
        values["disabled_at"] = None if enabled else sa.func.coalesce(users.c.disabled_at, now)
        await conn.execute(sa.update(users).where(users.c.id.in_(chunk)).values(values))
        await conn.execute(
            sa.update(sip_accounts)
            .where(sip_accounts.c.user_id.in_(chunk))
            .values(enabled=enabled, updated_at=now)
        )


def _user_row(c: Create, now: float) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(_COLUMNS)
    row.update(c.person.fields)
    row["display_name"] = row["display_name"] or ""
    row.update(
        extension=c.extension,
        directory_id=c.person.directory_id,
        directory_dn=c.person.dn,
        enabled=True,
        disabled_at=None,
        created_at=now,
        updated_at=now,
    )
    return row


def _account_row(c: Create, user_id: int, realm: str, now: float) -> dict[str, Any]:
    secret = new_secret()
    return {
        "user_id": user_id,
        "username": c.extension,
        "realm": realm,
        "secret": secret,
        "max_calls": 4,
        "allowed_cidrs": "[]",
        "enabled": True,
        "created_at": now,
        "updated_at": now,
        **_ha1s(c.extension, realm, secret),
    }


async def _create(conn: AsyncConnection, plan: Plan, realm: str, now: float) -> dict[str, int]:
    """Users, then their generated SIP accounts, in chunks (bounded memory)."""
    if not plan.creates:
        return {}
    for chunk in _chunks(plan.creates):
        await conn.execute(sa.insert(users), [_user_row(c, now) for c in chunk])
    query = sa.select(users.c.directory_id, users.c.id).where(users.c.directory_id.is_not(None))
    ids = {str(d): int(i) for d, i in await conn.execute(query)}
    for chunk in _chunks(plan.creates):
        rows = [_account_row(c, ids[c.person.directory_id], realm, now) for c in chunk]
        await conn.execute(sa.insert(sip_accounts), rows)
    return ids


async def _update(conn: AsyncConnection, plan: Plan, now: float) -> None:
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    for u in plan.updates:
        if u.changes:
            groups.setdefault(frozenset(u.changes), []).append({"uid": u.user_id, **u.changes})
    for columns, rows in groups.items():
        stmt = (
            sa.update(users)
            .where(users.c.id == sa.bindparam("uid"))
            .values({**{c: sa.bindparam(c) for c in sorted(columns)}, "updated_at": now})
        )
        await conn.execute(stmt, rows)
    for u in plan.updates:
        if u.new_extension is not None:
            await _move_extension(conn, u.user_id, u.new_extension, now)


async def _move_extension(conn: AsyncConnection, user_id: int, extension: str, now: float) -> None:
    """A new extension from the directory: the generated account follows it (username =
    extension, HA1s recomputed from the kept secret); old bindings are dropped."""
    await _drop_registrations(conn, [user_id])
    await conn.execute(
        sa.update(users).where(users.c.id == user_id).values(extension=extension, updated_at=now)
    )
    query = sa.select(sip_accounts.c.id, sip_accounts.c.realm, sip_accounts.c.secret).where(
        sip_accounts.c.user_id == user_id, sip_accounts.c.secret.is_not(None)
    )
    for account_id, realm, secret in (await conn.execute(query)).all():
        await conn.execute(
            sa.update(sip_accounts)
            .where(sip_accounts.c.id == account_id)
            .values(username=extension, updated_at=now, **_ha1s(extension, realm, secret))
        )


async def _roles(conn: AsyncConnection, plan: Plan, created: dict[str, int]) -> None:
    grants = list(plan.grants)
    grants += [(created[c.person.directory_id], r) for c in plan.creates for r in sorted(c.roles)]
    if not grants and not plan.revokes:
        return
    ids = await _role_ids(conn, [r for _, r in grants] + [r for _, r in plan.revokes])
    for user_id, role in plan.revokes:
        await conn.execute(
            sa.delete(user_roles).where(
                user_roles.c.user_id == user_id,
                user_roles.c.role_id == ids[role],
                user_roles.c.source == "directory",
            )
        )
    if grants:
        held = {
            (int(u), int(r))
            for u, r in await conn.execute(sa.select(user_roles.c.user_id, user_roles.c.role_id))
        }
        rows = [
            {"user_id": u, "role_id": ids[r], "source": "directory"}
            for u, r in grants
            if (u, ids[r]) not in held
        ]
        if rows:
            await conn.execute(sa.insert(user_roles), rows)


async def _write_photos(
    conn: AsyncConnection, plan: Plan, created: dict[str, int], photos: PhotoSource | None
) -> None:
    """The photo bytes of every user whose photo_sha256 the plan set (created or changed),
    read from `photos` a batch at a time; a removed photo (hash None) clears the bytes."""
    wanted = [(u.user_id, u.changes[PHOTO_COLUMN]) for u in plan.updates if PHOTO_COLUMN in u.changes]
    wanted += [
        (created[c.person.directory_id], c.person.fields[PHOTO_COLUMN])
        for c in plan.creates
        if c.person.fields.get(PHOTO_COLUMN) is not None
    ]
    stmt = sa.update(users).where(users.c.id == sa.bindparam("uid")).values(photo=sa.bindparam("photo"))
    batch: list[dict[str, Any]] = []
    held = 0
    for user_id, sha in wanted:
        if sha is not None and photos is None:
            raise ValueError("the plan sets photos but no photo source was given")
        data = None if sha is None or photos is None else photos(sha)
        batch.append({"uid": user_id, "photo": data})
        held += len(data or b"")
        if held >= PHOTO_BATCH_BYTES or len(batch) >= CHUNK:
            await conn.execute(stmt, batch)
            batch, held = [], 0
    if batch:
        await conn.execute(stmt, batch)


async def apply_plan(
    conn: AsyncConnection, plan: Plan, *, realm: str, now: float, photos: PhotoSource | None = None
) -> None:
    """Apply a (not aborted) plan on `conn` (the caller's transaction). `photos` gives the
    bytes of the photos the plan's hashes name (the run's PhotoSpool)."""
    if plan.abort:
        raise ValueError(f"an aborted plan is not applied: {plan.abort}")
    await _update(conn, plan, now)
    disabled = [c.user_id for c in plan.disables]
    await _drop_registrations(conn, disabled)
    await _set_enabled(conn, disabled, False, now)
    await _set_enabled(conn, [c.user_id for c in plan.enables], True, now)
    removed = [c.user_id for c in plan.removals]
    await _drop_registrations(conn, removed)
    for chunk in _chunks(removed):
        await conn.execute(sa.delete(users).where(users.c.id.in_(chunk)))
    created = await _create(conn, plan, realm, now)
    await _write_photos(conn, plan, created, photos)
    await _roles(conn, plan, created)
