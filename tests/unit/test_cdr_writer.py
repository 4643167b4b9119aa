"""CdrWriter (records written behind the call path, in batches, kept across failures and
flushed on close) and the dialplan the server reloads from the database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from vpbx.io.calls import DialplanWatcher
from vpbx.io.cdr_writer import CdrWriter
from vpbx.pbx.calls import Dialplan
from vpbx.store import Database, sqlite_url
from vpbx.store import users as users_repo
from vpbx.store.cdrs import Cdr, count_cdrs
from vpbx.store.numbers import add_number

NOW = 1_700_000_000.0
SLOW = 3_600_000.0  # ms: the timer never fires during a test; flushes are explicit


def cdr(n: int) -> Cdr:
    return Cdr(f"c{n}", "internal", "1001", "1002", NOW + n, "answered", NOW + n, NOW + n + 5, "bye", 5, 5)


def run(tmp_path: Path, test: Callable[[Database], Any]) -> None:
    async def body() -> None:
        db = await Database.open(sqlite_url(tmp_path / "vpbx.db"))
        try:
            await test(db)
        finally:
            await db.close()

    asyncio.run(body())


async def stored(db: Database) -> int:
    async with db.connect() as conn:
        return await count_cdrs(conn)


def test_records_are_batched_and_flushed_on_close(tmp_path: Path) -> None:
    async def test(db: Database) -> None:
        w = CdrWriter(db, interval_ms=SLOW, max_batch=100)
        w.start()
        for i in range(250):
            w.add(cdr(i))
        await asyncio.sleep(0.2)  # max_batch reached: the flusher writes without waiting for the timer
        assert await stored(db) >= 100 and w.stats.flushes >= 1
        await w.close()
        assert await stored(db) == 250 and w.pending == 0 and w.stats.written == 250

    run(tmp_path, test)


def test_failed_write_keeps_the_batch(tmp_path: Path) -> None:
    async def test(db: Database) -> None:
        failing = {"on": True}

        def fail(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if failing["on"] and statement.lstrip().upper().startswith("INSERT INTO CDRS"):
                raise RuntimeError("disk I/O error (injected)")

        sa.event.listen(db.engine.sync_engine, "before_cursor_execute", fail)
        w = CdrWriter(db, interval_ms=SLOW)
        w.add(cdr(1))
        w.add(cdr(2))
        with pytest.raises(RuntimeError, match="injected"):
            await w.flush()
        assert w.pending == 2 and w.stats.failures == 1
        failing["on"] = False
        await w.close()
        assert await stored(db) == 2

    run(tmp_path, test)


def test_dialplan_follows_numbers_and_accounts_added_while_running(tmp_path: Path) -> None:
    async def test(db: Database) -> None:
        async with db.begin() as conn:
            await users_repo.create_user(conn, "1001", "pw", realm="vpbx", now=time.time())
        dialplan = Dialplan()
        watcher = DialplanWatcher(db, dialplan)
        await watcher.start()
        try:
            assert dialplan.route("1001") is not None and dialplan.route("5551000") is None
            async with db.begin() as conn:
                await add_number(conn, "+1 555 1000", "extension", "1001", now=time.time(), max_calls=150)
            assert await watcher.poll()
            route = dialplan.route("15551000")
            assert route is not None and route.target == "1001" and route.number is not None
            assert route.number.max_calls == 150 and route.kind == "extension"
            assert not await watcher.poll()  # nothing changed since
        finally:
            await watcher.close()

    run(tmp_path, test)
