"""API tokens acting for a user, expiring, touched at most once a minute, and old login
sessions purged."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from vpbx.store import Database, sqlite_url, tokens, users

T0 = 1_700_000_000.0


def test_user_tokens_expire_and_sessions_are_purged(tmp_path: Path) -> None:
    async def body() -> None:
        db = await Database.open(sqlite_url(tmp_path / "vpbx.db"))
        try:
            async with db.begin() as conn:
                user, _ = await users.create_user(conn, "1001", "pw", realm="r", now=T0)
                session, plain = await tokens.create_token(
                    conn, tokens.SESSION_ROLE, now=T0, user_id=user.id, expires_at=T0 + 100
                )
                _, service = await tokens.create_token(conn, "admin", now=T0)
                with pytest.raises(ValueError, match="expire after"):
                    await tokens.create_token(conn, "admin", now=T0, expires_at=T0)
            assert session.user_id == user.id and session.expires_at == T0 + 100
            async with db.begin() as conn:
                found = await tokens.verify_token(conn, plain, now=T0 + 99)
                assert found is not None and found.user_id == user.id
                assert await tokens.verify_token(conn, plain, now=T0 + 100) is None  # expired
                # last_used_at is written at most once per TOUCH_INTERVAL_S
                await tokens.verify_token(conn, service, now=T0 + 10)
                await tokens.verify_token(conn, service, now=T0 + 20)
                listed = {t.role: t for t in await tokens.list_tokens(conn)}
                assert listed["admin"].last_used_at == T0 + 10
                await tokens.verify_token(conn, service, now=T0 + 10 + tokens.TOUCH_INTERVAL_S)
                listed = {t.role: t for t in await tokens.list_tokens(conn)}
                assert listed["admin"].last_used_at == T0 + 10 + tokens.TOUCH_INTERVAL_S
            async with db.begin() as conn:
                assert await tokens.purge_expired(conn, now=T0 + 50) == 0
                assert await tokens.purge_expired(conn, now=T0 + 200) == 1
                assert [t.role for t in await tokens.list_tokens(conn)] == ["admin"]  # service tokens stay
        finally:
            await db.close()

    asyncio.run(body())
