"""The database side of `vpbx token ...` and `vpbx user role ...`: like vpbx.io.admin,
each call opens DATA_DIR/vpbx.db, does one transaction and closes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from vpbx.store import ApiToken, Database, StoreError, data_dir_url, tokens, users
from vpbx.store.schema import users as users_table

__all__ = ["ListedToken", "create_token", "grant_role", "list_tokens", "revoke_role", "revoke_token"]

T = TypeVar("T")


def _run(data_dir: Path, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    async def main() -> T:
        db = await Database.open(data_dir_url(data_dir))
        try:
            async with db.begin() as conn:
                return await work(conn)
        finally:
            await db.close()

    return asyncio.run(main())


@dataclass(frozen=True, slots=True)
class ListedToken:
    token: ApiToken
    extension: str | None  # the user it acts for


def create_token(
    data_dir: Path,
    role: str,
    *,
    description: str = "",
    extension: str | None = None,
    expires_in_s: float | None = None,
) -> tuple[ApiToken, str]:
    """(record, plaintext). Raises StoreError when `extension` does not exist."""

    async def work(conn: AsyncConnection) -> tuple[ApiToken, str]:
        user_id = None
        if extension is not None:
            user = await users.get_user(conn, extension)
            if user is None:
                raise StoreError(f"no user with extension {extension}")
            user_id = user.id
        now = time.time()
        expires = None if expires_in_s is None else now + expires_in_s
        return await tokens.create_token(
            conn, role, now=now, description=description, user_id=user_id, expires_at=expires
        )

    return _run(data_dir, work)


def list_tokens(data_dir: Path) -> list[ListedToken]:
    async def work(conn: AsyncConnection) -> list[ListedToken]:
        found = await tokens.list_tokens(conn)
        ids = {t.user_id for t in found if t.user_id is not None}
        query = sa.select(users_table.c.id, users_table.c.extension).where(users_table.c.id.in_(ids))
        exts = {int(i): str(e) for i, e in await conn.execute(query)} if ids else {}
        return [ListedToken(t, None if t.user_id is None else exts.get(t.user_id)) for t in found]

    return _run(data_dir, work)


def revoke_token(data_dir: Path, token_id: int) -> bool:
    async def work(conn: AsyncConnection) -> bool:
        return await tokens.revoke_token(conn, token_id, now=time.time())

    return _run(data_dir, work)


def grant_role(data_dir: Path, extension: str, role: str) -> bool:
    """A manual role grant; False when there is no such user."""

    async def work(conn: AsyncConnection) -> bool:
        return await users.grant_role(conn, extension, role, source="manual")

    return _run(data_dir, work)


def revoke_role(data_dir: Path, extension: str, role: str) -> bool:
    async def work(conn: AsyncConnection) -> bool:
        return await users.revoke_role(conn, extension, role)

    return _run(data_dir, work)


def roles_of(data_dir: Path, extension: str) -> list[str] | None:
    async def work(conn: AsyncConnection) -> list[str] | None:
        if await users.get_user(conn, extension) is None:
            return None
        return await users.roles_of(conn, extension)

    return _run(data_dir, work)
