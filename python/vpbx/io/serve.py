"""`vpbx serve` on uvloop: SIP over UDP and TCP (registrar with digest auth, OPTIONS),
accounts and bindings in the embedded database, ``/metrics`` and ``/health`` over HTTP,
and a graceful stop on SIGINT/SIGTERM.

- Credentials: an in-memory HA1 cache (vpbx.pbx.CredentialCache) loaded from the store
  and reloaded when accounts change. Every ``reload_interval_s`` the watcher reads
  SQLite's ``PRAGMA data_version`` on a connection it keeps (it changes when another
  connection, e.g. the CLI, commits); when it changed, a cheap fingerprint of the users
  and SIP-account tables decides whether to reload (registration writes change
  data_version too, and must not cause reloads).
- Bindings: vpbx.pbx.DatabaseLocationStore over the write-behind RegistrationWriter, so
  they survive a restart; SIGTERM flushes what is queued before the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import sqlalchemy as sa
import uvloop
from sqlalchemy.ext.asyncio import AsyncConnection

from vpbx.io.http import start_http
from vpbx.io.registration_writer import RegistrationWriter, WriterStats
from vpbx.io.sip_transport import SipTransport
from vpbx.io.trunks import TrunkManager
from vpbx.logs import configure_logging, get_logger
from vpbx.metrics import Metrics
from vpbx.pbx import CredentialCache, DatabaseLocationStore, Registrar, RegistrarStats
from vpbx.security import GuardStats, SourceGuard, guard_config
from vpbx.settings import ServeSettings
from vpbx.sip import DigestAuthenticator, TransactionLayer
from vpbx.sip.digest import BASE_ALGORITHMS
from vpbx.sip_service import SipService
from vpbx.store import ConflictError, Database, StoreError, data_dir_url
from vpbx.store import users as users_repo
from vpbx.store.schema import sip_accounts, users

__all__ = ["Server", "run", "serve"]

log = get_logger("vpbx.serve")

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
HOUSEKEEPING_S: Final = 5.0
GC_GEN0_THRESHOLD: Final = 50_000

Fingerprint = tuple[Any, ...]


async def load_credentials(conn: AsyncConnection) -> dict[str, dict[str, str]]:
    return {alg: await users_repo.load_ha1s(conn, alg) for alg in BASE_ALGORITHMS}


async def accounts_fingerprint(conn: AsyncConnection) -> Fingerprint:
    """Changes whenever an account or user is added, removed, re-keyed, enabled or disabled
    (every such write sets updated_at; a removal lowers the count)."""
    row = []
    for table in (sip_accounts, users):
        query = sa.select(sa.func.count(), sa.func.max(table.c.updated_at), sa.func.sum(table.c.id))
        row.extend((await conn.execute(query)).one())
    return tuple(row)


async def seed_users(db: Database, accounts: Iterable[tuple[str, str]], realm: str) -> None:
    """`--user EXT:PASSWORD`: create the account, or set its password when it exists."""
    now = time.time()
    async with db.begin() as conn:
        for ext, password in accounts:
            try:
                await users_repo.create_user(conn, ext, password, realm=realm, now=now)
            except ConflictError:
                await users_repo.set_password(conn, ext, password, now=now)


class CredentialWatcher:
    """Reloads `cache` when the accounts in the database change (see the module doc)."""

    def __init__(self, db: Database, cache: CredentialCache) -> None:
        self.db = db
        self.cache = cache
        self.reloads = 0
        self._conn: AsyncConnection | None = None
        self._version: Any = None
        self._fingerprint: Fingerprint | None = None

    async def start(self) -> None:
        self._conn = await self.db.engine.connect()
        self._version = await self._data_version()
        await self._reload(force=True)

    async def _data_version(self) -> Any:
        if self._conn is None or self.db.dialect != "sqlite":
            return None  # other databases: the fingerprint alone decides
        value = (await self._conn.exec_driver_sql("PRAGMA data_version")).scalar()
        await self._conn.rollback()
        return value

    async def _reload(self, *, force: bool = False) -> bool:
        assert self._conn is not None
        conn = self._conn
        try:
            fingerprint = await accounts_fingerprint(conn)
            if not force and fingerprint == self._fingerprint:
                return False
            table = await load_credentials(conn)
            allowed, max_calls = await users_repo.load_account_limits(conn)
        finally:
            await conn.rollback()
        self._fingerprint = fingerprint
        self.cache.replace(table, allowed_cidrs=allowed, max_calls=max_calls)
        if self.cache.broken_allowlists:
            log.warning("allowlists_invalid_accounts_locked", accounts=self.cache.broken_allowlists)
        self.reloads += 1
        return True

    async def poll(self) -> bool:
        """One check; True when the cache was reloaded."""
        version = await self._data_version()
        if version is not None and version == self._version:
            return False
        self._version = version
        if await self._reload():
            log.info("accounts_reloaded", accounts=self.cache.accounts())
            return True
        return False

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.poll()
            except (sa.exc.SQLAlchemyError, OSError) as exc:  # keep the old snapshot, try again
                log.warning("accounts_reload_failed", reason=str(exc))

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


class Server:
    """The running pieces, and the figures /metrics and /health read from them."""

    def __init__(
        self,
        settings: ServeSettings,
        service: SipService,
        cache: CredentialCache,
        writer: RegistrationWriter,
    ) -> None:
        self.settings = settings
        self.service = service
        self.cache = cache
        self.writer = writer
        self.sip_address: tuple[str, int] = ("", 0)
        self.http_address: tuple[str, int] = ("", 0)
        self.metrics = Metrics()
        self.metrics.add_sip(self)
        self.trunks: TrunkManager | None = None  # set once SIP listens

    # SipFigures
    def registrar_stats(self) -> RegistrarStats:
        return self.service.registrar.stats

    def guard_stats(self) -> GuardStats | None:
        guard = self.service.registrar.guard
        return None if guard is None else guard.stats(time.time())

    def writer_stats(self) -> tuple[WriterStats, int]:
        return self.writer.stats, self.writer.pending

    def registrations(self) -> int:
        return self.service.registrar.location.count()

    def accounts(self) -> int:
        return self.cache.accounts()

    def sip_requests(self) -> Mapping[str, int]:
        return self.service.stats.requests

    def health(self) -> dict[str, Any]:
        stats = self.writer.stats
        return {
            "status": "ok",
            "sip": f"udp+tcp {self.sip_address[0]}:{self.sip_address[1]}",
            "realm": self.settings.realm,
            "accounts": self.cache.accounts(),
            "registrations": self.registrations(),
            "registration_writes_pending": self.writer.pending,
            "registration_write_failures": stats.failures,
            "registration_last_error": stats.last_error,
            "trunks": [] if self.trunks is None else self.trunks.health(),
        }


def build_registrar(
    settings: ServeSettings, cache: CredentialCache, writer: RegistrationWriter
) -> SipService:
    algorithms = ("MD5",) if settings.md5_only else ("SHA-256", "MD5")
    guard = SourceGuard(guard_config(settings))
    authenticator = DigestAuthenticator(settings.realm, os.urandom(32), algorithms=algorithms)
    registrar = Registrar(
        settings.realm,
        authenticator,
        cache.lookup,
        DatabaseLocationStore(writer),
        guard,
        allowlists=cache.allowlists,
        min_expires=settings.min_expires,
        max_expires=settings.max_expires,
        default_expires=settings.default_expires,
    )
    return SipService(registrar)


async def serve(
    settings: ServeSettings,
    stop: asyncio.Event,
    *,
    accounts: Iterable[tuple[str, str]] = (),
    on_ready: Callable[[Server], None] | None = None,
) -> None:
    """Serve until `stop` is set; always flushes the registration writer on the way out."""
    db = await Database.open(data_dir_url(settings.data_dir))
    try:
        await seed_users(db, accounts, settings.realm)
        cache = CredentialCache()
        watcher = CredentialWatcher(db, cache)
        await watcher.start()
        writer = await RegistrationWriter.open(db, now=time.time())
        try:
            await _serve(settings, stop, db, cache, watcher, writer, on_ready)
        finally:
            await watcher.close()
            await writer.close()
            log.info("registrations_flushed", written=writer.stats.written)
    finally:
        await db.close()


async def _serve(  # noqa: PLR0917
    settings: ServeSettings,
    stop: asyncio.Event,
    db: Database,
    cache: CredentialCache,
    watcher: CredentialWatcher,
    writer: RegistrationWriter,
    on_ready: Callable[[Server], None] | None,
) -> None:
    service = build_registrar(settings, cache, writer)
    server = Server(settings, service, cache, writer)
    transport = SipTransport(TransactionLayer(), service.on_action, guard=service.registrar.guard)
    service.responder = transport
    http = None
    reload_task: asyncio.Task[None] | None = None
    try:
        server.sip_address = await transport.listen(*settings.sip_address)
        transport.every(HOUSEKEEPING_S, service.housekeeping)
        server.trunks = await TrunkManager.open(
            db, transport, service, listen=server.sip_address, reload_interval_s=settings.reload_interval_s
        )
        server.metrics.add_trunks(server.trunks)
        http = await start_http(
            *settings.http_address, metrics=server.metrics.exposition, health=server.health
        )
        server.http_address = http.address
        reload_task = asyncio.get_running_loop().create_task(
            watcher.run(settings.reload_interval_s), name="vpbx-credential-watcher"
        )
        log.info(
            "serve_started",
            sip=f"{server.sip_address[0]}:{server.sip_address[1]}",
            http=f"{http.address[0]}:{http.address[1]}",
            realm=settings.realm,
            data_dir=str(settings.data_dir),
            accounts=cache.accounts(),
            registrations=writer.count(),
        )
        if on_ready is not None:
            on_ready(server)
        await stop.wait()
        log.info("serve_stopping")
    finally:
        if server.trunks is not None:
            await server.trunks.close()  # unregisters while the transport still runs
        transport.close()
        if reload_task is not None:
            reload_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reload_task
        if http is not None:
            await http.close()


def _ready_line(server: Server) -> None:
    sip, http = server.sip_address, server.http_address
    print(
        f"vpbx: SIP listening on udp+tcp {sip[0]}:{sip[1]} realm={server.settings.realm}; "
        f"HTTP on {http[0]}:{http[1]}",
        flush=True,
    )


async def _main(settings: ServeSettings, accounts: list[tuple[str, str]]) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await serve(settings, stop, accounts=accounts, on_ready=_ready_line)
    except StoreError as e:
        log.error("serve_failed", reason=str(e))
        print(f"vpbx: error: {e}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    except OSError as e:  # a listen address in use or not ours
        log.error("serve_failed", reason=str(e))
        print(f"vpbx: error: {e}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    log.info("serve_stopped")
    return EXIT_OK


def tune_gc() -> None:
    """Fewer, cheaper collections: what was imported at start-up is frozen out of the
    collector's sight, and the youngest generation is collected every 50,000 allocations
    instead of 700. A SIP server allocates a burst of short-lived objects per request;
    with the defaults, full collections over the whole heap stalled the loop long enough
    for phones to retransmit (RFC 3261 T1 = 500 ms) under load."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 100)


def run(settings: ServeSettings, accounts: list[tuple[str, str]]) -> int:
    """Runs `vpbx serve` on uvloop until SIGINT/SIGTERM; returns the process exit code."""
    configure_logging(settings.log_level)
    tune_gc()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_main(settings, accounts))
