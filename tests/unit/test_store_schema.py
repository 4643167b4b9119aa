"""The store opens, migrates a fresh SQLite file to head, is idempotent, matches
schema.py exactly, and says clearly when the database directory is missing."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from vpbx.store import Database, StoreError, head_revision, sqlite_url, users
from vpbx.store.schema import metadata

TABLES = {
    "users",
    "sip_accounts",
    "roles",
    "user_roles",
    "numbers",
    "registrations",
    "cdrs",
    "api_tokens",
    "directory_runs",
    "trunks",
}


def _diff(connection: sa.Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def test_fresh_file_is_migrated_to_head(tmp_path: Path) -> None:
    async def body() -> None:
        path = tmp_path / "vpbx.db"
        db = await Database.open(sqlite_url(path))
        try:
            assert await db.revision() == head_revision() == "0004"
            async with db.connect() as conn:
                names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
                assert names >= TABLES
                assert await conn.run_sync(_diff) == []  # migrations == schema.py
                mode = (await conn.execute(sa.text("PRAGMA journal_mode"))).scalar_one()
                fks = (await conn.execute(sa.text("PRAGMA foreign_keys"))).scalar_one()
                busy = (await conn.execute(sa.text("PRAGMA busy_timeout"))).scalar_one()
            assert (mode, fks, busy) == ("wal", 1, 5000)
        finally:
            await db.close()
        assert path.exists()

    asyncio.run(body())


def test_opening_twice_is_idempotent_and_keeps_data(tmp_path: Path) -> None:
    async def body() -> None:
        url = sqlite_url(tmp_path / "vpbx.db")
        db = await Database.open(url)
        async with db.begin() as conn:
            await users.create_user(conn, "1001", "secret", realm="pbx", now=1.0)
        await db.close()
        for _ in range(2):
            db = await Database.open(url)
            try:
                assert await db.revision() == head_revision()
                async with db.connect() as conn:
                    assert (await users.get_user(conn, "1001")) is not None
            finally:
                await db.close()

    asyncio.run(body())


def test_foreign_keys_cascade(tmp_path: Path) -> None:
    async def body() -> None:
        db = await Database.open(sqlite_url(tmp_path / "vpbx.db"))
        try:
            async with db.begin() as conn:
                await users.create_user(conn, "1001", "secret", realm="pbx", now=1.0)
                await users.grant_role(conn, "1001", "employee")
                assert await users.delete_user(conn, "1001")
            async with db.connect() as conn:
                assert await users.get_account(conn, "1001") is None
                left = (await conn.execute(sa.text("SELECT count(*) FROM user_roles"))).scalar_one()
                assert left == 0
        finally:
            await db.close()

    asyncio.run(body())


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    async def body() -> None:
        missing = tmp_path / "gone" / "vpbx.db"
        with pytest.raises(StoreError, match=r"directory .*gone does not exist"):
            await Database.open(sqlite_url(missing))
        # A directory that disappears between runs (unmounted volume, deleted data dir).
        data = tmp_path / "data"
        data.mkdir()
        db = await Database.open(sqlite_url(data / "vpbx.db"))
        await db.close()
        shutil.rmtree(data)
        with pytest.raises(StoreError, match="does not exist"):
            await Database.open(sqlite_url(data / "vpbx.db"))

    asyncio.run(body())


def test_unusable_file_is_a_store_error(tmp_path: Path) -> None:
    async def body() -> None:
        (tmp_path / "dir.db").mkdir()  # a directory where the file should be
        with pytest.raises(StoreError, match="is not a file"):
            await Database.open(sqlite_url(tmp_path / "dir.db"))
        (tmp_path / "junk.db").write_bytes(b"this is not an SQLite database" * 100)
        with pytest.raises(StoreError, match=r"cannot open database .*junk\.db"):
            await Database.open(sqlite_url(tmp_path / "junk.db"))

    asyncio.run(body())
