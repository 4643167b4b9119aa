"""Directory sync runs: on demand (CLI, API), periodic (DirectorySyncLoop in `vpbx serve`)
and dry. The LDAP work (blocking ldap3) runs in a thread; the plan is applied and the run
recorded in one database transaction, so a run changes everything or nothing.

    report = await run_directory_sync(db, settings.directory)        # full reconcile
    user_id = ldap_login(settings.directory, "jdoe", "secret")       # blocking: in a thread

Safety (issue 5): a bind error, an unreachable server, a bad certificate or a failed search
fails the run before the store is touched; an empty result or one that would disable more
than max_shrink_ratio aborts it. Every run, failed ones too, is recorded in directory_runs
and counted in the metrics (vpbx.metrics.DirectoryCollector).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Final, Literal

import sqlalchemy as sa

from vpbx.directory import DirectoryStats, PlanConfig, SyncReport, make_plan
from vpbx.directory.report import failed, from_plan
from vpbx.io.directory_store import apply_plan, load_current
from vpbx.io.ldap_client import DirectoryError, Snapshot, bind_as, fetch_snapshot, rules_of
from vpbx.logs import get_logger
from vpbx.settings import DirectorySettings
from vpbx.store import Database, DirectoryRun, StoreError, data_dir_url
from vpbx.store.runs import list_runs, record_run

__all__ = [
    "DirectoryError",
    "DirectorySyncLoop",
    "directory_sync_running",
    "ldap_login",
    "run_directory_sync",
    "runs_in_data_dir",
    "sync_data_dir",
]

log = get_logger("vpbx.directory")

Progress = Callable[[int, int | None], None]
RECENT_RUNS: Final = 20  # where the last change mark is looked for
# One run at a time per database in this process (the API and the periodic loop may both ask).
_RUN_LOCKS: weakref.WeakKeyDictionary[Database, asyncio.Lock] = weakref.WeakKeyDictionary()


def _to_run(report: SyncReport) -> DirectoryRun:
    return DirectoryRun(
        started_at=report.started_at,
        finished_at=report.finished_at,
        status=report.status,
        dry_run=report.dry_run,
        seen=report.seen,
        created=report.created,
        updated=report.updated,
        disabled=report.disabled,
        removed=report.removed,
        conflicts=len(report.conflicts),
        errors=len(report.errors),
        report=report.as_json(),
    )


async def _last_mark(db: Database) -> str | None:
    async with db.connect() as conn:
        for run in await list_runs(conn, limit=RECENT_RUNS):
            if run.status == "ok" and not run.dry_run and run.report.get("high_water"):
                return str(run.report["high_water"])
    return None


async def run_directory_sync(
    db: Database,
    settings: DirectorySettings,
    *,
    dry_run: bool = False,
    now: float | None = None,
    progress: Progress | None = None,
    incremental: bool = False,
    stats: DirectoryStats | None = None,
    realm: str | None = None,
) -> SyncReport:
    """One sync run; never raises for directory trouble (the report says what happened).

    ``incremental``: only entries changed since the last successful run (falls back to a
    full run when there is none); it creates, updates, disables and re-enables but never
    treats absence as leaving (only a full run does, and only it removes users).
    ``realm``: digest realm of new SIP accounts (default: ``[serve] realm``).
    Runs on the same database never overlap in one process (the second waits)."""
    lock = _RUN_LOCKS.setdefault(db, asyncio.Lock())
    async with lock:
        return await _run(
            db,
            settings,
            dry_run=dry_run,
            now=now,
            progress=progress,
            incremental=incremental,
            stats=stats,
            realm=realm,
        )


async def _run(
    db: Database,
    settings: DirectorySettings,
    *,
    dry_run: bool,
    now: float | None,
    progress: Progress | None,
    incremental: bool,
    stats: DirectoryStats | None,
    realm: str | None,
) -> SyncReport:
    started = time.time() if now is None else now
    clock = time.monotonic()
    since = await _last_mark(db) if incremental else None
    mode: Literal["full", "incremental"] = "incremental" if since is not None else "full"

    def finished() -> float:
        return started + (time.monotonic() - clock)

    snapshot: Snapshot | None = None
    try:
        snapshot = await asyncio.to_thread(fetch_snapshot, settings, since=since, progress=progress)
    except DirectoryError as e:
        report = failed(
            e.reason, str(e), started_at=started, finished_at=finished(), dry_run=dry_run, mode=mode
        )
    if snapshot is not None:
        try:
            report = await _plan_and_apply(
                db,
                settings,
                snapshot,
                started=started,
                dry_run=dry_run,
                mode=mode,
                realm=realm,
                finished=finished,
            )
        except (StoreError, sa.exc.SQLAlchemyError) as e:
            report = failed(
                "store",
                f"store error: {e}",
                started_at=started,
                finished_at=finished(),
                dry_run=dry_run,
                mode=mode,
            )
        finally:
            snapshot.close()  # the spooled photos
    if report.status == "failed":
        with contextlib.suppress(StoreError, sa.exc.SQLAlchemyError):
            async with db.begin() as conn:
                await record_run(conn, _to_run(report))
    if stats is not None:
        stats.record(report)
    level = log.info if report.ok else log.warning
    level(
        "directory_sync",
        status=report.status,
        mode=report.mode,
        dry_run=dry_run,
        seen=report.seen,
        duration_s=round(report.duration_s, 3),
        reason=report.reason,
        message=report.message or None,
        **report.counts(),
    )
    return report


async def _plan_and_apply(
    db: Database,
    settings: DirectorySettings,
    snapshot: Snapshot,
    *,
    started: float,
    dry_run: bool,
    mode: Literal["full", "incremental"],
    realm: str | None,
    finished: Callable[[], float],
) -> SyncReport:
    _preset, rules = rules_of(settings)
    people, errors = snapshot.people, snapshot.errors
    config = PlanConfig(
        rules=rules,
        extension_range=settings.extension_bounds,
        grace_period_s=settings.grace_period_s,
        max_shrink_ratio=settings.max_shrink_ratio,
        full=mode == "full",
    )
    async with db.begin() as conn:  # one transaction: the plan and the run record
        current, usernames = await load_current(conn)
        plan = make_plan(
            current, people, roles_by_dn=snapshot.roles_by_dn, config=config, now=started, reserved=usernames
        )
        plan.errors[:0] = errors + [f"role group {g} not found" for g in snapshot.missing_groups]
        if not plan.abort and not dry_run:
            await apply_plan(
                conn, plan, realm=realm or settings.realm, now=started, photos=snapshot.photos.get
            )
        report = from_plan(plan, started_at=started, finished_at=finished(), dry_run=dry_run, mode=mode)
        report.high_water = snapshot.high_water
        await record_run(conn, _to_run(report))
    return report


def ldap_login(settings: DirectorySettings, login: str, password: str) -> str | None:
    """Blocking (run it in a thread): the directory id of the user whose login and password
    bind, None for bad credentials or a disabled account; raises DirectoryError when the
    directory is unreachable or misconfigured."""
    return bind_as(settings, login, password)


class DirectorySyncLoop:
    """Periodic sync for `vpbx serve`: a full reconcile at start and every
    ``full_interval_s``, incremental runs every ``interval_s`` in between.

        loop = DirectorySyncLoop.start(db, settings.directory)
        metrics.add_directory(loop)      # /metrics figures
        ...
        await loop.stop()
    """

    def __init__(self, db: Database, settings: DirectorySettings) -> None:
        self.db = db
        self.settings = settings
        self.stats = DirectoryStats()
        self.last_report: SyncReport | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def start(cls, db: Database, settings: DirectorySettings) -> DirectorySyncLoop:
        """Start the periodic task on the running loop (nothing runs when no url is set)."""
        loop = cls(db, settings)
        if settings.enabled:
            loop._task = asyncio.get_running_loop().create_task(loop._run(), name="directory-sync")
        return loop

    def directory_stats(self) -> DirectoryStats:
        return self.stats

    async def run_once(self, *, incremental: bool = False, dry_run: bool = False) -> SyncReport:
        """One run now, counted in this loop's figures."""
        report = await run_directory_sync(
            self.db, self.settings, incremental=incremental, dry_run=dry_run, stats=self.stats
        )
        self.last_report = report
        return report

    async def _run(self) -> None:
        last_full = -float("inf")
        while True:
            full = time.monotonic() - last_full >= self.settings.full_interval_s
            try:
                report = await self.run_once(incremental=not full)
                if full and report.ok:
                    last_full = time.monotonic()
            except Exception:  # a bug must not stop the periodic sync
                log.exception("directory_sync_crashed")
            await asyncio.sleep(self.settings.interval_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def sync_data_dir(
    data_dir: Path,
    settings: DirectorySettings,
    *,
    dry_run: bool = False,
    incremental: bool = False,
    progress: Progress | None = None,
) -> SyncReport:
    """One run on DATA_DIR/vpbx.db, for the command line (its own event loop)."""

    async def main() -> SyncReport:
        db = await Database.open(data_dir_url(data_dir))
        try:
            return await run_directory_sync(
                db, settings, dry_run=dry_run, incremental=incremental, progress=progress
            )
        finally:
            await db.close()

    return asyncio.run(main())


def runs_in_data_dir(data_dir: Path, *, limit: int = 20) -> list[DirectoryRun]:
    async def main() -> list[DirectoryRun]:
        db = await Database.open(data_dir_url(data_dir))
        try:
            async with db.connect() as conn:
                return await list_runs(conn, limit=limit)
        finally:
            await db.close()

    return asyncio.run(main())


@contextlib.asynccontextmanager
async def directory_sync_running(
    db: Database, settings: DirectorySettings | None
) -> AsyncIterator[DirectorySyncLoop | None]:
    """The periodic sync for the life of a block (None when no directory is configured):

    async with directory_sync_running(db, settings.directory) as sync_loop:
        if sync_loop is not None:
            server.metrics.add_directory(sync_loop)
    """
    if settings is None or not settings.enabled:
        yield None
        return
    loop = DirectorySyncLoop.start(db, settings)
    try:
        yield loop
    finally:
        await loop.stop()
