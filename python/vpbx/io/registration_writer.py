"""Write-behind location store: the registrar never waits on the disk.

The registrar calls `upsert` / `remove` / `remove_all` (plain methods, no await) and
reads `bindings(aor, now)`; both act on an in-memory view at once. The changes queue
up, coalesced per (AOR, contact) so that only the newest state of a binding is written,
and a background task writes them in ONE transaction every `interval_ms`, or as soon as
`max_batch` are queued.

Nothing is lost silently:
- a failed transaction puts the whole batch back in front of newer changes, counts the
  failure in `stats.failures`, and is retried with exponential backoff;
- the queue is bounded: when `max_pending` distinct changes wait (the disk is gone for a
  long time), `upsert` raises BacklogFullError and the registrar answers 503 instead of
  accepting a binding it could not keep;
- `close()` writes what is pending and raises StoreError if it cannot.

    writer = await RegistrationWriter.open(db, now=time.time())
    writer.upsert(Binding("1001", "sip:1001@10.0.0.5:5060", expires_at=now + 3600))
    writer.bindings("1001", now)     # immediately visible
    await writer.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from vpbx.store.db import Database
from vpbx.store.errors import BacklogFullError, StoreError
from vpbx.store.registrations import Binding, all_current_bindings, purge_expired, upsert_bindings
from vpbx.store.schema import registrations

log: Final = logging.getLogger("vpbx.io.registration_writer")

# (username, contact) -> the binding to store, or None to delete it;
# (username, None) -> None: delete every binding of the AOR (Contact: *).
_Key = tuple[str, str | None]
_Op = Binding | None


@dataclass(slots=True)
class WriterStats:
    flushes: int = 0  # transactions committed
    written: int = 0  # changes committed
    failures: int = 0  # transactions that failed (their changes were kept and retried)
    rejected: int = 0  # changes refused because the queue was full
    last_error: str | None = None


class RegistrationWriter:
    def __init__(
        self,
        db: Database,
        *,
        interval_ms: float = 50.0,
        max_batch: int = 500,
        max_pending: int = 100_000,
        max_backoff_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_batch < 1 or max_pending < max_batch:
            raise ValueError("need 1 <= max_batch <= max_pending")
        self._db = db
        self._interval = interval_ms / 1000.0
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._max_backoff = max_backoff_s
        self._clock = clock
        self._view: dict[str, dict[str, Binding]] = {}
        self._pending: dict[_Key, _Op] = {}
        self._purge_before: float | None = None
        self._lock = asyncio.Lock()
        self._has_work = asyncio.Event()
        self._full = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.stats: Final = WriterStats()

    @classmethod
    async def open(
        cls,
        db: Database,
        *,
        now: float,
        interval_ms: float = 50.0,
        max_batch: int = 500,
        max_pending: int = 100_000,
        max_backoff_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> RegistrationWriter:
        """Load the current bindings from the database and start the flusher."""
        writer = cls(
            db,
            interval_ms=interval_ms,
            max_batch=max_batch,
            max_pending=max_pending,
            max_backoff_s=max_backoff_s,
            clock=clock,
        )
        await writer.start(now)
        return writer

    async def start(self, now: float) -> None:
        try:
            async with self._db.connect() as conn:
                loaded = await all_current_bindings(conn, now=now)
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise StoreError(f"cannot load registrations: {exc}") from exc
        for b in loaded:
            self._view.setdefault(b.username, {})[b.contact] = b
        self._task = asyncio.get_running_loop().create_task(self._run(), name="vpbx-registration-writer")

    # -- the SIP path: synchronous, memory only --------------------------------------

    def upsert(self, binding: Binding) -> None:
        """Add or refresh a binding. Raises BacklogFullError when the queue is full."""
        self._enqueue((binding.username, binding.contact), binding)
        self._view.setdefault(binding.username, {})[binding.contact] = binding

    def remove(self, username: str, contact: str) -> None:
        self._enqueue((username, contact), None)
        aor = self._view.get(username)
        if aor is not None:
            aor.pop(contact, None)
            if not aor:
                del self._view[username]

    def remove_all(self, username: str) -> None:
        """Contact: * (RFC 3261 §10.3 step 6): earlier queued changes of the AOR are moot."""
        self._check_open()
        for key in [k for k in self._pending if k[0] == username]:
            del self._pending[key]
        self._enqueue((username, None), None)
        self._view.pop(username, None)

    def bindings(self, username: str, now: float) -> list[Binding]:
        """The AOR's current bindings, highest q first, then the newest."""
        found = [b for b in self._view.get(username, {}).values() if b.expires_at > now]
        found.sort(key=lambda b: (-(1.0 if b.q is None else b.q), -b.expires_at))
        return found

    def aors(self) -> list[str]:
        return list(self._view)

    def count(self) -> int:
        """Bindings in the view (expired ones not yet purged included)."""
        return sum(map(len, self._view.values()))

    def expired(self, now: float) -> list[Binding]:
        """The bindings `purge(now)` would drop (to report them before they go)."""
        return [b for aor in self._view.values() for b in aor.values() if b.expires_at <= now]

    def purge(self, now: float) -> int:
        """Forget expired bindings now; their rows go with the next transaction."""
        dropped = 0
        for username in list(self._view):
            aor = self._view[username]
            for contact in [c for c, b in aor.items() if b.expires_at <= now]:
                del aor[contact]
                dropped += 1
            if not aor:
                del self._view[username]
        self._purge_before = now if self._purge_before is None else max(now, self._purge_before)
        self._has_work.set()
        return dropped

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the registration writer is closed")

    def _enqueue(self, key: _Key, op: _Op) -> None:
        self._check_open()
        if key in self._pending:
            del self._pending[key]  # re-inserted at the end: the newest change goes last
        elif len(self._pending) >= self._max_pending:
            self.stats.rejected += 1
            raise BacklogFullError(
                f"{len(self._pending)} registration changes wait for the database "
                f"(last error: {self.stats.last_error})"
            )
        self._pending[key] = op
        self._has_work.set()
        if len(self._pending) >= self._max_batch:
            self._full.set()

    # -- the background side ------------------------------------------------------

    async def flush(self) -> int:
        """Write everything queued now, in one transaction; returns how many changes.
        On failure the changes stay queued and the error propagates."""
        return await self._flush_once()

    async def close(self) -> None:
        """Stop the flusher and write what is left. Raises StoreError (naming how many
        changes are unwritten) if the database refuses."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._has_work.set()
        self._full.set()
        if self._task is not None:
            await self._task
        try:
            await self._flush_once()
        except Exception as exc:
            raise StoreError(
                f"{len(self._pending)} registration changes could not be written: {exc}"
            ) from exc

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
            except Exception as exc:  # any failure: keep the batch, back off, retry
                backoff = min(self._max_backoff, max(2 * backoff, self._interval, 0.01))
                log.warning("registration write failed (retrying in %.2fs): %r", backoff, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), backoff)

    async def _flush_once(self) -> int:
        async with self._lock:
            self._full.clear()
            batch, self._pending = self._pending, {}
            purge, self._purge_before = self._purge_before, None
            if not batch and purge is None:
                self._has_work.clear()
                return 0
            try:
                async with self._db.begin() as conn:
                    await _apply(conn, batch, now=self._clock())
                    if purge is not None:
                        await purge_expired(conn, now=purge)
            except BaseException as exc:
                self._restore(batch, purge)
                self.stats.failures += 1
                self.stats.last_error = repr(exc)
                raise
            self.stats.flushes += 1
            self.stats.written += len(batch)
            if not self._pending and self._purge_before is None:
                self._has_work.clear()
            if len(self._pending) >= self._max_batch:
                self._full.set()
            return len(batch)

    def _restore(self, batch: dict[_Key, _Op], purge: float | None) -> None:
        """Put a failed batch back in front of the changes queued since."""
        for key, op in self._pending.items():
            batch.pop(key, None)
            batch[key] = op
        self._pending = batch
        if purge is not None:
            self._purge_before = purge if self._purge_before is None else max(purge, self._purge_before)
        self._has_work.set()


async def _apply(conn: AsyncConnection, batch: dict[_Key, _Op], *, now: float) -> None:
    """Execute the queued changes in order, grouping runs of the same kind into one
    executemany."""
    upserts: list[Binding] = []
    removals: list[dict[str, str]] = []

    async def drain() -> None:
        if upserts:
            await upsert_bindings(conn, upserts, now=now)
            upserts.clear()
        if removals:
            await conn.execute(_DELETE_ONE, removals)
            removals.clear()

    for (username, contact), op in batch.items():
        if op is not None:
            if removals:
                await drain()
            upserts.append(op)
        elif contact is not None:
            if upserts:
                await drain()
            removals.append({"u": username, "c": contact})
        else:
            await drain()
            await conn.execute(sa.delete(registrations).where(registrations.c.username == username))
    await drain()


_DELETE_ONE: Final = sa.delete(registrations).where(
    registrations.c.username == sa.bindparam("u"), registrations.c.contact == sa.bindparam("c")
)
