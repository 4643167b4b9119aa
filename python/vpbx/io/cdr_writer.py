"""Write-behind CDRs: the B2BUA never waits on the disk.

`add(cdr)` (plain method, no await) queues a record; a background task writes what is
queued in ONE transaction every `interval_ms`, or as soon as `max_batch` wait. A failed
transaction keeps the batch (in front of newer records), counts the failure and is
retried with exponential backoff; beyond `max_pending` queued records the oldest are
dropped and counted (`stats.dropped`: the disk has been gone for a long time, and calls
must go on). `close()` writes what is left (SIGTERM) and raises StoreError if it cannot.

    writer = CdrWriter(db); writer.start()
    writer.add(cdr)
    await writer.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from typing import Final

from vpbx.store.cdrs import Cdr, insert_cdrs
from vpbx.store.db import Database
from vpbx.store.errors import StoreError

__all__ = ["CdrWriter", "CdrWriterStats"]

log: Final = logging.getLogger("vpbx.io.cdr_writer")


@dataclass(slots=True)
class CdrWriterStats:
    flushes: int = 0
    written: int = 0
    failures: int = 0
    dropped: int = 0  # records lost because the queue was full
    last_error: str | None = None


class CdrWriter:
    def __init__(
        self,
        db: Database,
        *,
        interval_ms: float = 200.0,
        max_batch: int = 500,
        max_pending: int = 100_000,
        max_backoff_s: float = 5.0,
    ) -> None:
        if max_batch < 1 or max_pending < max_batch:
            raise ValueError("need 1 <= max_batch <= max_pending")
        self._db = db
        self._interval = interval_ms / 1000.0
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._max_backoff = max_backoff_s
        self._pending: deque[Cdr] = deque()
        self._lock = asyncio.Lock()
        self._has_work = asyncio.Event()
        self._full = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.stats: Final = CdrWriterStats()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="vpbx-cdr-writer")

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, cdr: Cdr) -> None:
        """Queue a record (the call path: memory only)."""
        if self._closed:
            raise StoreError("the CDR writer is closed")
        if len(self._pending) >= self._max_pending:
            self._pending.popleft()
            self.stats.dropped += 1
        self._pending.append(cdr)
        self._has_work.set()
        if len(self._pending) >= self._max_batch:
            self._full.set()

    async def flush(self) -> int:
        return await self._flush_once()

    async def close(self) -> None:
        """Stop the flusher and write what is left."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._has_work.set()
        self._full.set()
        if self._task is not None:
            await self._task
        try:
            while self._pending:
                await self._flush_once()
        except Exception as exc:
            raise StoreError(f"{len(self._pending)} CDRs could not be written: {exc}") from exc

    async def _run(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            await self._has_work.wait()
            if self._stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self._interval)
            try:
                await self._flush_once()
                backoff = 0.0
            except Exception as exc:  # keep the batch, back off, retry
                backoff = min(self._max_backoff, max(2 * backoff, self._interval, 0.01))
                log.warning("CDR write failed (retrying in %.2fs): %r", backoff, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), backoff)

    async def _flush_once(self) -> int:
        async with self._lock:
            self._full.clear()
            batch = [self._pending.popleft() for _ in range(min(self._max_batch, len(self._pending)))]
            if not batch:
                self._has_work.clear()
                return 0
            try:
                async with self._db.begin() as conn:
                    await insert_cdrs(conn, batch)
            except BaseException as exc:
                self._pending.extendleft(reversed(batch))
                self.stats.failures += 1
                self.stats.last_error = repr(exc)
                raise
            self.stats.flushes += 1
            self.stats.written += len(batch)
            if not self._pending:
                self._has_work.clear()
            elif len(self._pending) >= self._max_batch:
                self._full.set()
            return len(batch)
