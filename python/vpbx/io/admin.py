"""The database side of the admin commands (`vpbx user add`, `vpbx number list` ...):
each opens DATA_DIR/vpbx.db (created, with migrations, on first use), does one
transaction and closes. A running `vpbx serve` sees the change within about a second
(it watches the database), so no restart is needed.

These are plain functions for the command line; the event loop they need lives here,
in vpbx.io, like every other piece of asyncio.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from vpbx.store import Cdr, Database, Number, StoreError, User, data_dir_url
from vpbx.store import cdrs as cdrs_repo
from vpbx.store import numbers as numbers_repo
from vpbx.store import users as users_repo

__all__ = [
    "add_number",
    "add_user",
    "allow_sources",
    "list_calls",
    "list_numbers",
    "list_users",
    "remove_number",
    "remove_user",
]

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


def add_user(
    data_dir: Path,
    extension: str,
    password: str,
    *,
    realm: str,
    name: str = "",
    allowed_cidrs: Sequence[str] = (),
) -> User:
    """Raises ConflictError when the extension (or SIP username) is taken, ValueError for
    an allowed network that is no CIDR."""

    async def work(conn: AsyncConnection) -> User:
        user, _account = await users_repo.create_user(
            conn,
            extension,
            password,
            realm=realm,
            now=time.time(),
            display_name=name,
            allowed_cidrs=allowed_cidrs,
        )
        return user

    return _run(data_dir, work)


def allow_sources(data_dir: Path, username: str, cidrs: Sequence[str]) -> bool:
    """Set the networks a SIP account may be used from (empty: anywhere). False when there
    is no such account; ValueError for an entry that is no CIDR."""

    async def work(conn: AsyncConnection) -> bool:
        return await users_repo.set_allowed_cidrs(conn, username, cidrs, now=time.time())

    return _run(data_dir, work)


def list_users(data_dir: Path) -> list[tuple[User, list[users_repo.SipAccount]]]:
    async def work(conn: AsyncConnection) -> list[tuple[User, list[users_repo.SipAccount]]]:
        return [
            (u, await users_repo.accounts_of(conn, u.extension)) for u in await users_repo.list_users(conn)
        ]

    return _run(data_dir, work)


def remove_user(data_dir: Path, extension: str) -> bool:
    """False when there is no such extension. Numbers routed to it are left in place."""

    async def work(conn: AsyncConnection) -> bool:
        return await users_repo.delete_user(conn, extension)

    return _run(data_dir, work)


def add_number(data_dir: Path, number: str, extension: str) -> Number:
    """Route `number` to `extension`. Raises StoreError when the extension does not exist,
    ConflictError when the number exists, ValueError when it is not a number."""

    async def work(conn: AsyncConnection) -> Number:
        if await users_repo.get_user(conn, extension) is None:
            raise StoreError(f"extension {extension} does not exist (add it with `vpbx user add`)")
        return await numbers_repo.add_number(conn, number, "extension", extension, now=time.time())

    return _run(data_dir, work)


def list_numbers(data_dir: Path) -> list[Number]:
    return _run(data_dir, numbers_repo.list_numbers)


def remove_number(data_dir: Path, number: str) -> bool:
    async def work(conn: AsyncConnection) -> bool:
        return await numbers_repo.remove_number(conn, number)

    return _run(data_dir, work)


def list_calls(data_dir: Path, limit: int) -> list[Cdr]:
    async def work(conn: AsyncConnection) -> list[Cdr]:
        return await cdrs_repo.list_cdrs(conn, limit=limit)

    return _run(data_dir, work)
