"""Registrar bindings in the database (RFC 3261 §10.3): upsert, expiry, wildcard
removal, purge; and company numbers with their routes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from vpbx.store import Binding, ConflictError, Database, numbers, sqlite_url
from vpbx.store import registrations as regs

NOW = 1_700_000_000.0


@contextlib.asynccontextmanager
async def opened(tmp_path: Path) -> AsyncIterator[Database]:
    db = await Database.open(sqlite_url(tmp_path / "vpbx.db"))
    try:
        yield db
    finally:
        await db.close()


def b(user: str, contact: str, expires_in: float, **kw: object) -> Binding:
    return Binding(user, contact, NOW + expires_in, **kw)  # type: ignore[arg-type]


def test_upsert_refreshes_one_row_per_contact(tmp_path: Path) -> None:
    async def body() -> None:
        async with opened(tmp_path) as db:
            async with db.begin() as conn:
                await regs.upsert_binding(conn, b("1001", "sip:1001@10.0.0.5:5060", 60, cseq=1), now=NOW)
                await regs.upsert_binding(
                    conn,
                    b(
                        "1001",
                        "sip:1001@10.0.0.5:5060",
                        3600,
                        cseq=2,
                        call_id="c1",
                        received="198.51.100.7:40000",
                        transport="tcp",
                        user_agent="baresip",
                        instance_id="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>",
                        reg_id=1,
                    ),
                    now=NOW + 1,
                )
                await regs.upsert_binding(conn, b("1001", "sip:1001@192.0.2.9", 600, q=0.5), now=NOW)
                await regs.upsert_binding(conn, b("1002", "sip:1002@10.0.0.6", 600), now=NOW)
            async with db.connect() as conn:
                found = await regs.current_bindings(conn, "1001", now=NOW)
            assert [x.contact for x in found] == ["sip:1001@10.0.0.5:5060", "sip:1001@192.0.2.9"]
            first = found[0]
            assert (first.cseq, first.call_id, first.transport, first.reg_id) == (2, "c1", "tcp", 1)
            assert first.received == "198.51.100.7:40000" and first.remaining(NOW) == 3600

    asyncio.run(body())


def test_expired_bindings_are_not_current_and_purge_removes_them(tmp_path: Path) -> None:
    async def body() -> None:
        async with opened(tmp_path) as db:
            async with db.begin() as conn:
                await regs.upsert_bindings(
                    conn,
                    [b("1001", "sip:a@h", 10), b("1001", "sip:b@h", 100), b("1002", "sip:c@h", 5)],
                    now=NOW,
                )
            async with db.connect() as conn:
                assert [x.contact for x in await regs.current_bindings(conn, "1001", now=NOW + 50)] == [
                    "sip:b@h"
                ]
                assert await regs.current_bindings(conn, "1002", now=NOW + 5) == []  # expires_at is exclusive
            async with db.begin() as conn:
                assert await regs.purge_expired(conn, now=NOW + 50) == 2
                assert [x.contact for x in await regs.all_current_bindings(conn, now=NOW)] == ["sip:b@h"]

    asyncio.run(body())


def test_remove_one_and_wildcard(tmp_path: Path) -> None:
    async def body() -> None:
        async with opened(tmp_path) as db:
            async with db.begin() as conn:
                await regs.upsert_bindings(
                    conn,
                    [b("1001", "sip:a@h", 60), b("1001", "sip:b@h", 60), b("1002", "sip:c@h", 60)],
                    now=NOW,
                )
                assert await regs.remove_binding(conn, "1001", "sip:a@h")
                assert not await regs.remove_binding(conn, "1001", "sip:a@h")
                assert await regs.remove_all_bindings(conn, "1001") == 1
                assert await regs.remove_all_bindings(conn, "1001") == 0
            async with db.connect() as conn:
                assert await regs.current_bindings(conn, "1001", now=NOW) == []
                assert len(await regs.current_bindings(conn, "1002", now=NOW)) == 1

    asyncio.run(body())


def test_numbers_route_with_and_without_plus(tmp_path: Path) -> None:
    async def body() -> None:
        async with opened(tmp_path) as db:
            async with db.begin() as conn:
                n = await numbers.add_number(conn, "+7 (495) 123-45-67", "extension", "1001", now=NOW)
                assert (n.e164, n.max_calls, n.enabled) == ("+74951234567", 1000, True)
                await numbers.add_number(conn, "88005553535", "group", "sales", now=NOW, max_calls=150)
                with pytest.raises(ConflictError):
                    await numbers.add_number(conn, "+74951234567", "extension", "1002", now=NOW)
                with pytest.raises(ValueError, match="target kind"):
                    await numbers.add_number(conn, "+1555", "fax", "x", now=NOW)
                with pytest.raises(ValueError, match="not a phone number"):
                    await numbers.add_number(conn, "sip:foo", "extension", "1001", now=NOW)
            async with db.connect() as conn:
                assert [x.e164 for x in await numbers.list_numbers(conn)] == ["+74951234567", "88005553535"]
                for dialled in ("+74951234567", "74951234567"):
                    route = await numbers.route_number(conn, dialled)
                    assert route is not None and (route.target_kind, route.target_value) == (
                        "extension",
                        "1001",
                    )
                route = await numbers.route_number(conn, "+88005553535")
                assert route is not None and route.max_calls == 150
                assert await numbers.route_number(conn, "123456") is None
                assert await numbers.route_number(conn, "not-a-number") is None
            async with db.begin() as conn:
                assert await numbers.remove_number(conn, "+7 495 123 45 67")
                assert await numbers.route_number(conn, "+74951234567") is None

    asyncio.run(body())
