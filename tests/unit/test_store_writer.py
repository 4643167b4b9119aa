"""RegistrationWriter: changes are visible at once, written in batches (one transaction
per flush, counted with an engine event), kept and retried when the database fails,
bounded, and still there after a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from vpbx.io.registration_writer import RegistrationWriter
from vpbx.store import BacklogFullError, Binding, Database, StoreError, sqlite_url
from vpbx.store import registrations as regs

NOW = 1_700_000_000.0
SLOW = 3_600_000.0  # ms: the timer never fires during a test; flushes are explicit


class InjectedError(Exception):
    pass


class Probe:
    """Counts committed transactions and can make every write to `registrations` fail."""

    def __init__(self, db: Database) -> None:
        self.commits = 0
        self.failing = False
        self.failed = 0
        self.committed = asyncio.Event()
        self.failed_once = asyncio.Event()
        sa.event.listen(db.engine.sync_engine, "commit", self._on_commit)
        sa.event.listen(db.engine.sync_engine, "before_cursor_execute", self._on_execute)

    def _on_commit(self, _conn: Any) -> None:  # fires as the COMMIT starts
        self.commits += 1
        self.committed.set()

    def _on_execute(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if self.failing and "registrations" in statement and not statement.lstrip().startswith("SELECT"):
            self.failed += 1
            self.failed_once.set()
            raise InjectedError("disk I/O error (injected)")


def b(user: str, contact: str, expires_in: float = 3600.0, **kw: Any) -> Binding:
    return Binding(user, contact, NOW + expires_in, **kw)


async def stored(db: Database, user: str) -> list[str]:
    async with db.connect() as conn:
        return sorted(x.contact for x in await regs.current_bindings(conn, user, now=NOW))


def run(tmp_path: Path, test: Callable[[Database, Probe], Any]) -> None:
    async def body() -> None:
        db = await Database.open(sqlite_url(tmp_path / "vpbx.db"))
        try:
            await test(db, Probe(db))
        finally:
            await db.close()

    asyncio.run(body())


def test_many_changes_one_transaction_and_visible_at_once(tmp_path: Path) -> None:
    async def test(db: Database, probe: Probe) -> None:
        w = await RegistrationWriter.open(db, now=NOW, interval_ms=SLOW, max_batch=10_000)
        for i in range(300):
            w.upsert(b(f"{1000 + i % 100}", f"sip:{i}@10.0.0.{i % 250}"))
        for _ in range(10):  # refreshes of the same binding coalesce
            w.upsert(b("1000", "sip:0@10.0.0.0", cseq=7))
        assert w.pending == 300 and probe.commits == 0
        assert {x.cseq for x in w.bindings("1000", NOW) if x.contact == "sip:0@10.0.0.0"} == {7}
        assert {x.contact for x in w.bindings("1000", NOW)} == {
            "sip:0@10.0.0.0",
            "sip:100@10.0.0.100",
            "sip:200@10.0.0.200",
        }
        assert await w.flush() == 300
        assert probe.commits == 1 and w.pending == 0
        assert w.stats.flushes == 1 and w.stats.written == 300
        assert await w.flush() == 0 and probe.commits == 1  # nothing to do, no transaction
        assert len(await stored(db, "1000")) == 3
        await w.close()

    run(tmp_path, test)


def test_background_flush_on_size_and_on_timer(tmp_path: Path) -> None:
    async def test(db: Database, probe: Probe) -> None:
        w = await RegistrationWriter.open(db, now=NOW, interval_ms=SLOW, max_batch=20)
        for i in range(20):
            w.upsert(b("1001", f"sip:{i}@h"))
        await asyncio.wait_for(probe.committed.wait(), 10)  # max_batch reached: flushed without the timer
        assert await w.flush() == 0  # waits for the background transaction to finish; nothing left
        assert probe.commits == 1 and len(await stored(db, "1001")) == 20
        await w.close()

        probe.committed.clear()
        w = await RegistrationWriter.open(db, now=NOW, interval_ms=5, max_batch=1000)
        w.upsert(b("1002", "sip:x@h"))
        await asyncio.wait_for(probe.committed.wait(), 10)  # the interval elapsed
        assert await w.flush() == 0
        assert await stored(db, "1002") == ["sip:x@h"]
        await w.close()

    run(tmp_path, test)


def test_removals_wildcard_and_purge_keep_order(tmp_path: Path) -> None:
    async def test(db: Database, probe: Probe) -> None:
        w = await RegistrationWriter.open(db, now=NOW, interval_ms=SLOW)
        w.upsert(b("1001", "sip:a@h"))
        w.upsert(b("1001", "sip:b@h"))
        w.upsert(b("1002", "sip:c@h", 10))
        w.upsert(b("1003", "sip:d@h"))
        await w.flush()
        w.remove_all("1001")  # Contact: *
        w.upsert(b("1001", "sip:new@h"))  # then a fresh registration in the same batch
        w.remove("1003", "sip:d@h")
        w.remove("1003", "sip:never@h")
        assert [x.contact for x in w.bindings("1001", NOW)] == ["sip:new@h"]
        assert w.bindings("1003", NOW) == [] and w.aors() == ["1002", "1001"]
        assert w.purge(NOW + 20) == 1 and w.bindings("1002", NOW) == []
        await w.flush()
        assert await stored(db, "1001") == ["sip:new@h"]
        assert await stored(db, "1002") == [] and await stored(db, "1003") == []
        async with db.connect() as conn:
            assert len(await regs.all_current_bindings(conn, now=0)) == 1  # 1002's row was purged
        await w.close()

    run(tmp_path, test)


def test_db_failure_loses_nothing_and_bindings_survive_a_restart(tmp_path: Path) -> None:
    async def test(db: Database, probe: Probe) -> None:
        w = await RegistrationWriter.open(db, now=NOW, interval_ms=SLOW)
        w.upsert(b("1001", "sip:a@h", cseq=1))
        w.upsert(b("1001", "sip:b@h"))
        probe.failing = True
        with pytest.raises(InjectedError):
            await w.flush()
        assert w.pending == 2 and w.stats.failures == 1 and "injected" in (w.stats.last_error or "")
        assert len(w.bindings("1001", NOW)) == 2  # the SIP side does not notice
        # newer changes queued while the disk is away win over the failed batch's
        w.upsert(b("1001", "sip:a@h", cseq=2))
        w.remove("1001", "sip:b@h")
        w.upsert(b("1002", "sip:c@h"))
        with pytest.raises(InjectedError):
            await w.flush()
        assert w.pending == 3 and w.stats.failures == 2
        probe.failing = False
        assert await w.flush() == 3
        assert await stored(db, "1001") == ["sip:a@h"] and await stored(db, "1002") == ["sip:c@h"]
        w.upsert(b("1003", "sip:d@h"))
        await w.close()  # writes what is left

    run(tmp_path, test)

    async def restart() -> None:
        db = await Database.open(sqlite_url(tmp_path / "vpbx.db"))
        w = await RegistrationWriter.open(db, now=NOW, interval_ms=SLOW)
        try:
            (a,) = w.bindings("1001", NOW)
            assert a.cseq == 2
            assert [x.contact for x in w.bindings("1002", NOW)] == ["sip:c@h"]
            assert [x.contact for x in w.bindings("1003", NOW)] == ["sip:d@h"]
        finally:
            await w.close()
            await db.close()
        # expired bindings are not loaded
        db = await Database.open(sqlite_url(tmp_path / "vpbx.db"))
        w = await RegistrationWriter.open(db, now=NOW + 7200, interval_ms=SLOW)
        assert w.aors() == []
        await w.close()
        await db.close()

    asyncio.run(restart())


def test_background_retry_after_failure(tmp_path: Path) -> None:
    async def test(db: Database, probe: Probe) -> None:
        w = await RegistrationWriter.open(db, now=NOW, interval_ms=2, max_backoff_s=0.05)
        probe.failing = True
        w.upsert(b("1001", "sip:a@h"))
        await asyncio.wait_for(probe.failed_once.wait(), 10)
        probe.committed.clear()
        probe.failing = False
        await asyncio.wait_for(probe.committed.wait(), 10)  # retried by itself
        assert await w.flush() == 0
        assert await stored(db, "1001") == ["sip:a@h"] and w.stats.failures >= 1 and w.pending == 0
        await w.close()

    run(tmp_path, test)


def test_bounded_queue_refuses_loudly(tmp_path: Path) -> None:
    async def test(db: Database, probe: Probe) -> None:
        w = await RegistrationWriter.open(db, now=NOW, interval_ms=SLOW, max_batch=5, max_pending=5)
        probe.failing = True
        for i in range(5):
            w.upsert(b("1001", f"sip:{i}@h"))
        with pytest.raises(InjectedError):
            await w.flush()
        with pytest.raises(BacklogFullError, match="5 registration changes wait"):
            w.upsert(b("1001", "sip:5@h"))
        assert w.stats.rejected == 1 and len(w.bindings("1001", NOW)) == 5
        w.upsert(b("1001", "sip:0@h", cseq=9))  # a refresh of a queued binding still fits
        with pytest.raises(StoreError, match="5 registration changes could not be written"):
            await w.close()
        with pytest.raises(StoreError, match="closed"):
            w.upsert(b("1001", "sip:0@h"))
        assert w.pending == 5

    run(tmp_path, test)


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        RegistrationWriter(None, max_batch=10, max_pending=5)  # type: ignore[arg-type]
