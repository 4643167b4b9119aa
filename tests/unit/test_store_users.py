"""Users and SIP accounts: only HA1s are stored, and lookup_ha1 gives exactly what
vpbx.sip.digest computes, for every algorithm, and nothing for disabled accounts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from vpbx.sip.digest import BASE_ALGORITHMS, compute_ha1
from vpbx.store import ConflictError, Database, sqlite_url, users

REALM = "pbx.example.com"


@contextlib.asynccontextmanager
async def opened(tmp_path: Path) -> AsyncIterator[Database]:
    db = await Database.open(sqlite_url(tmp_path / "vpbx.db"))
    try:
        yield db
    finally:
        await db.close()


def test_create_user_stores_ha1s_not_the_password(tmp_path: Path) -> None:
    async def body() -> None:
        async with opened(tmp_path) as db:
            async with db.begin() as conn:
                user, account = await users.create_user(
                    conn,
                    "1001",
                    "correct horse",
                    realm=REALM,
                    now=10.0,
                    display_name="Анна Иванова",
                    profile={"department": "Sales", "email": "anna@example.com"},
                    allowed_cidrs=["10.0.0.0/8"],
                )
            assert (user.extension, user.display_name, user.department) == ("1001", "Анна Иванова", "Sales")
            assert (account.username, account.realm, account.allowed_cidrs) == (
                "1001",
                REALM,
                ("10.0.0.0/8",),
            )
            async with db.connect() as conn:
                for alg in ("MD5", "SHA-256", "md5", "sha-256-sess"):
                    expected = compute_ha1("1001", REALM, "correct horse", alg.upper().removesuffix("-SESS"))
                    assert await users.lookup_ha1(conn, "1001", alg) == expected
                if "SHA-512-256" in BASE_ALGORITHMS:
                    expected = compute_ha1("1001", REALM, "correct horse", "SHA-512-256")
                    assert await users.lookup_ha1(conn, "1001", "SHA-512-256") == expected
                assert await users.lookup_ha1(conn, "1001", "SHA-1") is None
                assert await users.lookup_ha1(conn, "9999", "MD5") is None
                dump = (await conn.execute(sa.text("SELECT * FROM sip_accounts"))).all()
                assert "correct horse" not in repr(dump)
                assert await users.load_ha1s(conn, "SHA-256") == {
                    "1001": compute_ha1("1001", REALM, "correct horse", "SHA-256")
                }

    asyncio.run(body())


def test_separate_sip_username_and_password_change(tmp_path: Path) -> None:
    async def body() -> None:
        async with opened(tmp_path) as db:
            async with db.begin() as conn:
                await users.create_user(conn, "1002", "old", realm=REALM, now=1.0, username="anna")
                assert await users.set_password(conn, "anna", "new", now=2.0)
                assert not await users.set_password(conn, "nobody", "new", now=2.0)
            async with db.connect() as conn:
                assert await users.lookup_ha1(conn, "1002", "MD5") is None
                assert await users.lookup_ha1(conn, "anna", "MD5") == compute_ha1("anna", REALM, "new")
                assert [a.username for a in await users.accounts_of(conn, "1002")] == ["anna"]

    asyncio.run(body())


def test_conflicts_are_reported_not_overwritten(tmp_path: Path) -> None:
    async def body() -> None:
        async with opened(tmp_path) as db:
            async with db.begin() as conn:
                await users.create_user(conn, "1001", "a", realm=REALM, now=1.0)
            async with db.begin() as conn:
                with pytest.raises(ConflictError, match="extension 1001"):
                    await users.create_user(conn, "1001", "b", realm=REALM, now=2.0, username="x")
                with pytest.raises(ConflictError, match="SIP username 1001"):
                    await users.create_user(conn, "1002", "b", realm=REALM, now=2.0, username="1001")
                with pytest.raises(ValueError, match="unknown user fields"):
                    await users.create_user(conn, "1003", "b", realm=REALM, now=2.0, profile={"salary": "1"})
            async with db.connect() as conn:
                assert await users.lookup_ha1(conn, "1001", "MD5") == compute_ha1("1001", REALM, "a")
                assert [u.extension for u in await users.list_users(conn)] == ["1001"]

    asyncio.run(body())


def test_disabled_user_has_no_ha1_and_comes_back_with_the_same_extension(tmp_path: Path) -> None:
    async def body() -> None:
        async with opened(tmp_path) as db:
            async with db.begin() as conn:
                await users.create_user(conn, "1001", "pw", realm=REALM, now=1.0)
                assert await users.set_user_enabled(conn, "1001", False, now=5.0)
                assert await users.set_user_enabled(conn, "1001", False, now=9.0)  # keeps the first time
            async with db.connect() as conn:
                assert await users.lookup_ha1(conn, "1001", "SHA-256") is None
                user = await users.get_user(conn, "1001")
                assert user is not None and not user.enabled and user.disabled_at == 5.0
                assert await users.list_users(conn, enabled=True) == []
            async with db.begin() as conn:
                assert await users.set_user_enabled(conn, "1001", True, now=20.0)
                assert not await users.set_user_enabled(conn, "404", True, now=20.0)
            async with db.connect() as conn:
                assert await users.lookup_ha1(conn, "1001", "MD5") == compute_ha1("1001", REALM, "pw")
                user = await users.get_user(conn, "1001")
                assert user is not None and user.enabled and user.disabled_at is None

    asyncio.run(body())


def test_profile_update_directory_identity_and_roles(tmp_path: Path) -> None:
    async def body() -> None:
        async with opened(tmp_path) as db:
            async with db.begin() as conn:
                await users.create_user(
                    conn, "1001", "pw", realm=REALM, now=1.0, profile={"directory_id": "guid-1"}
                )
                assert await users.update_user(conn, "1001", now=2.0, department="Support", position="Lead")
                assert not await users.update_user(conn, "404", now=2.0, department="x")
                with pytest.raises(ValueError, match="unknown user fields"):
                    await users.update_user(conn, "1001", now=2.0, enabled="0")
                assert await users.grant_role(conn, "1001", "employee", source="directory")
                assert await users.grant_role(conn, "1001", "team_lead")
                assert await users.grant_role(conn, "1001", "team_lead")  # idempotent
                assert not await users.grant_role(conn, "404", "admin")
            async with db.begin() as conn:
                user = await users.get_user_by_directory_id(conn, "guid-1")
                assert user is not None and (user.department, user.position) == ("Support", "Lead")
                assert [u.extension for u in await users.list_users(conn, department="Support")] == ["1001"]
                assert await users.roles_of(conn, "1001") == ["employee", "team_lead"]
                assert await users.revoke_role(conn, "1001", "employee")
                assert not await users.revoke_role(conn, "1001", "employee")
                assert await users.roles_of(conn, "1001") == ["team_lead"]
                assert await users.set_allowed_cidrs(conn, "1001", ["192.0.2.0/24"], now=3.0)
                account = await users.get_account(conn, "1001")
                assert account is not None and account.allowed_cidrs == ("192.0.2.0/24",)

    asyncio.run(body())
