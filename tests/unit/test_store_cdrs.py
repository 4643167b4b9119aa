"""CDRs with filters and paging; API tokens (plaintext once, hash stored); sync reports."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from vpbx.store import Cdr, CdrFilter, Database, DirectoryRun, cdrs, runs, sqlite_url, tokens

T0 = 1_700_000_000.0


@contextlib.asynccontextmanager
async def opened(tmp_path: Path) -> AsyncIterator[Database]:
    db = await Database.open(sqlite_url(tmp_path / "vpbx.db"))
    try:
        yield db
    finally:
        await db.close()


def sample() -> list[Cdr]:
    out = []
    for i in range(30):
        answered = i % 3 != 0
        out.append(
            Cdr(
                call_id=f"call-{i}",
                direction=("internal", "inbound", "outbound")[i % 3],
                from_number=f"10{i % 5:02d}",
                to_number="+74951234567" if i % 2 else "1001",
                started_at=T0 + 60 * i,
                answered_at=T0 + 60 * i + 5 if answered else None,
                ended_at=T0 + 60 * i + 35,
                disposition="answered" if answered else "no-answer",
                hangup_cause="16" if answered else "480",
                duration_s=35.0,
                billsec=30.0 if answered else 0.0,
            )
        )
    return out


def test_insert_filter_and_page(tmp_path: Path) -> None:
    async def body() -> None:
        async with opened(tmp_path) as db:
            async with db.begin() as conn:
                first = await cdrs.insert_cdr(conn, sample()[0])
                assert await cdrs.insert_cdrs(conn, sample()[1:]) == 29
            async with db.connect() as conn:
                newest = await cdrs.list_cdrs(conn, limit=5)
                assert [c.call_id for c in newest] == [f"call-{i}" for i in (29, 28, 27, 26, 25)]
                page2 = await cdrs.list_cdrs(conn, limit=5, offset=5)
                assert [c.call_id for c in page2] == [f"call-{i}" for i in (24, 23, 22, 21, 20)]
                assert await cdrs.count_cdrs(conn) == 30

                window = CdrFilter(since=T0 + 600, until=T0 + 1200)  # calls 10..19
                assert await cdrs.count_cdrs(conn, window) == 10
                inbound = CdrFilter(since=T0 + 600, until=T0 + 1200, direction="inbound")
                assert {c.call_id for c in await cdrs.list_cdrs(conn, inbound)} == {
                    "call-10",
                    "call-13",
                    "call-16",
                    "call-19",
                }
                missed = CdrFilter(disposition="no-answer")
                got = await cdrs.list_cdrs(conn, missed, limit=100)
                assert len(got) == 10 and all(c.answered_at is None and c.billsec == 0 for c in got)
                mine = CdrFilter(parties={"1001"})  # own calls: from or to 1001
                assert {c.call_id for c in await cdrs.list_cdrs(conn, mine, limit=100)} == {
                    f"call-{i}" for i in range(30) if i % 2 == 0 or i % 5 == 1
                }
                assert await cdrs.count_cdrs(conn, CdrFilter(parties=[])) == 0
                (one,) = await cdrs.list_cdrs(conn, CdrFilter(call_id="call-0"))
                assert one.id == first and one.hangup_cause == "480"
                with pytest.raises(ValueError, match="limit"):
                    await cdrs.list_cdrs(conn, limit=0)
                with pytest.raises(ValueError, match="offset"):
                    await cdrs.list_cdrs(conn, offset=-1)

    asyncio.run(body())


def test_cdr_values_are_checked() -> None:
    with pytest.raises(ValueError, match="direction"):
        Cdr("c", "sideways", "1", "2", T0, "answered")
    with pytest.raises(ValueError, match="disposition"):
        Cdr("c", "inbound", "1", "2", T0, "maybe")


def test_tokens_create_verify_revoke(tmp_path: Path) -> None:
    async def body() -> None:
        async with opened(tmp_path) as db:
            async with db.begin() as conn:
                record, plaintext = await tokens.create_token(conn, "admin", now=T0, description="ci")
                _, other = await tokens.create_token(conn, "accountant", now=T0)
            assert plaintext.startswith("vpbx_") and len(plaintext) > 40 and plaintext != other
            async with db.connect() as conn:
                stored = (await conn.execute(sa.text("SELECT token_sha256 FROM api_tokens"))).scalars().all()
            assert plaintext not in stored and tokens.token_hash(plaintext) in stored
            async with db.begin() as conn:
                ok = await tokens.verify_token(conn, plaintext, now=T0 + 5)
                assert ok is not None and ok.id == record.id and ok.role == "admin"
                for bad in (plaintext + "x", plaintext[:-1], "", "vpbx_", "Bearer " + plaintext, "x" * 1000):
                    assert await tokens.verify_token(conn, bad, now=T0) is None
            async with db.begin() as conn:
                (listed, _) = await tokens.list_tokens(conn)
                assert listed.last_used_at == T0 + 5 and listed.description == "ci"
                assert await tokens.revoke_token(conn, record.id, now=T0 + 10)
                assert not await tokens.revoke_token(conn, record.id, now=T0 + 11)
                assert await tokens.verify_token(conn, plaintext, now=T0 + 12) is None
                assert await tokens.verify_token(conn, other, now=T0 + 12) is not None

    asyncio.run(body())


def test_directory_run_reports(tmp_path: Path) -> None:
    async def body() -> None:
        async with opened(tmp_path) as db:
            async with db.begin() as conn:
                await runs.record_run(
                    conn,
                    DirectoryRun(started_at=T0, finished_at=T0 + 3, status="ok", seen=1000, created=1000),
                )
                await runs.record_run(
                    conn,
                    DirectoryRun(
                        started_at=T0 + 60,
                        status="aborted",
                        errors=1,
                        report={"reason": "result shrank by 45%"},
                    ),
                )
            async with db.connect() as conn:
                latest, first = await runs.list_runs(conn)
            assert latest.status == "aborted" and latest.report == {"reason": "result shrank by 45%"}
            assert (first.seen, first.created, first.dry_run) == (1000, 1000, False)
        with pytest.raises(ValueError, match="status"):
            DirectoryRun(started_at=T0, status="great")

    asyncio.run(body())
