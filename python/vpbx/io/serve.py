"""`vpbx serve` on uvloop: SIP over UDP and TCP (registrar with digest auth, OPTIONS, and
calls through the B2BUA with media anchored on the in-process engine), accounts, numbers,
bindings and CDRs in the embedded database, ``/metrics`` and ``/health`` over HTTP, and a
graceful stop on SIGINT/SIGTERM.

- Credentials: an in-memory HA1 cache (vpbx.pbx.CredentialCache) loaded from the store
  and reloaded when accounts change. Every ``reload_interval_s`` the watcher reads
  SQLite's ``PRAGMA data_version`` on a connection it keeps (it changes when another
  connection, e.g. the CLI, commits); when it changed, a cheap fingerprint of the users
  and SIP-account tables decides whether to reload (registration writes change
  data_version too, and must not cause reloads).
- Bindings: vpbx.pbx.DatabaseLocationStore over the write-behind RegistrationWriter, so
  they survive a restart; SIGTERM flushes what is queued before the process exits.
- Calls: vpbx.io.calls (engine, NG commands, dialplan watcher) and vpbx.pbx.calls.B2bua;
  CDRs go through the write-behind CdrWriter, flushed on SIGTERM too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final

import sqlalchemy as sa
import uvloop
from sqlalchemy.ext.asyncio import AsyncConnection

from vpbx.io.calls import CallNode, DialplanWatcher, advertised_host
from vpbx.io.cdr_writer import CdrWriter, CdrWriterStats
from vpbx.io.directory_sync import DirectorySyncLoop, directory_sync_running, ldap_login
from vpbx.io.http import api_context, start_http, tls_context
from vpbx.io.qualify import TICK_S, QualifyRunner
from vpbx.io.registration_writer import RegistrationWriter, WriterStats
from vpbx.io.sip_transport import SipTransport
from vpbx.io.trunks import TrunkManager
from vpbx.logs import configure_logging, get_logger
from vpbx.metrics import Metrics
from vpbx.pbx import Binding, CredentialCache, DatabaseLocationStore, Registrar, RegistrarStats
from vpbx.pbx.calls import Admission, AdmissionConfig, B2bua, B2buaConfig, CallStats, Dialplan
from vpbx.pbx.qualify import Qualifier
from vpbx.pbx.trunk_calls import TrunkCalls
from vpbx.security import GuardStats, SourceGuard, guard_config
from vpbx.settings import DirectorySettings, ServeSettings, parse_host_port
from vpbx.sip import DigestAuthenticator, TransactionLayer
from vpbx.sip.digest import BASE_ALGORITHMS
from vpbx.sip_service import SipService
from vpbx.store import ConflictError, Database, StoreError, data_dir_url
from vpbx.store import numbers as numbers_repo
from vpbx.store import users as users_repo
from vpbx.store.schema import sip_accounts, users

__all__ = ["Server", "run", "serve"]

log = get_logger("vpbx.serve")

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
HOUSEKEEPING_S: Final = 5.0
GC_GEN0_THRESHOLD: Final = 50_000
CALL_TIMER_S: Final = 0.5  # no-answer timeouts are checked this often
LAG_PROBE_S: Final = 0.05  # how often the SIP input's queueing delay is sampled (admission)

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


async def seed_numbers(db: Database, entries: Iterable[tuple[str, str]]) -> None:
    """`--number NUMBER:EXT`: route the number to the extension unless it is routed already
    (an existing number is left as the CLI set it)."""
    now = time.time()
    async with db.begin() as conn:
        for number, ext in entries:
            if await users_repo.get_user(conn, ext) is None:
                raise StoreError(f"--number {number}:{ext}: extension {ext} does not exist")
            try:
                await numbers_repo.add_number(conn, number, "extension", ext, now=now)
            except ConflictError:
                continue
            except ValueError as e:
                raise StoreError(f"--number {number}:{ext}: {e}") from None


class CredentialWatcher:
    """Reloads `cache` when the accounts in the database change (see the module doc)."""

    def __init__(self, db: Database, cache: CredentialCache) -> None:
        self.db = db
        self.cache = cache
        self.reloads = 0
        self.on_reload: Callable[[], object] | None = None  # after each reload (drop bindings)
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
        if self.on_reload is not None:
            self.on_reload()
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
        *,
        cdrs: CdrWriter,
        node: CallNode,
    ) -> None:
        self.settings = settings
        self.service = service
        self.cache = cache
        self.writer = writer
        self.cdrs = cdrs
        self.node = node
        self.b2bua: B2bua | None = None
        self.sip_address: tuple[str, int] = ("", 0)
        self.sip_tls_address: tuple[str, int] | None = None  # SIP over TLS, when configured
        self.http_address: tuple[str, int] = ("", 0)
        self.metrics = Metrics()
        self.metrics.add_sip(self)
        self.trunks: TrunkManager | None = None  # set once SIP listens
        self.qualifier: Qualifier | None = None  # OPTIONS qualify, when qualify_interval_s > 0
        self.metrics.add_calls(self)
        self.metrics.add_engine(node)

    # CallFigures
    def call_stats(self) -> CallStats:
        return self.b2bua.stats if self.b2bua is not None else CallStats()

    def cdr_stats(self) -> tuple[CdrWriterStats, int]:
        return self.cdrs.stats, self.cdrs.pending

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
        stats = self.writer.stats  # registrations
        return {
            "status": "ok",
            "sip": f"udp+tcp {self.sip_address[0]}:{self.sip_address[1]}",
            "sip_tls": None if self.sip_tls_address is None else "{}:{}".format(*self.sip_tls_address),
            "realm": self.settings.realm,
            "accounts": self.cache.accounts(),
            "registrations": self.registrations(),
            "registration_writes_pending": self.writer.pending,
            "registration_write_failures": stats.failures,
            "registration_last_error": stats.last_error,
            "trunks": [] if self.trunks is None else self.trunks.health(),
            "contacts_reachable": None if self.qualifier is None else self.qualifier.counts()[0],
            "contacts_unreachable": None if self.qualifier is None else self.qualifier.counts()[1],
            "calls_active": self.call_stats().active,
            "cdrs_pending": self.cdrs.pending,
            "cdr_write_failures": self.cdrs.stats.failures,
            "media_ports_used": 0 if self.node.engine.closed else self.node.engine_stats()["ports_used"],
        }


def drop_vanished_bindings(writer: RegistrationWriter, cache: CredentialCache) -> int:
    """Forget the bindings of accounts that are gone or disabled (user removed with the CLI,
    person disabled by the directory sync): their phones stop receiving calls at once rather
    than when the registration would have expired. Returns how many AORs were dropped."""
    gone = [aor for aor in writer.aors() if cache.lookup(aor, "MD5") is None]
    for aor in gone:
        writer.remove_all(aor)
    if gone:
        log.info("registrations_dropped", aors=len(gone), reason="account gone or disabled")
    return len(gone)


def start_qualify(settings: ServeSettings, server: Server, transport: SipTransport, b2bua: B2bua) -> None:
    """OPTIONS qualify of every binding (vpbx.io.qualify), and calls skip unreachable contacts."""
    if settings.qualify_interval_s <= 0:
        return
    local = (advertised_host(settings), server.sip_address[1])
    qualifier = Qualifier(interval_s=settings.qualify_interval_s, local=lambda _dest: local)
    location = server.service.registrar.location
    writer = server.writer

    def bindings(now: float) -> Iterable[Binding]:
        return [b for aor in writer.aors() for b in location.bindings(aor, now)]

    server.qualifier = qualifier
    server.metrics.add_qualify(qualifier)
    runner = QualifyRunner(
        qualifier, transport, server.service, bindings=bindings, on_rtt=server.metrics.observe_contact_rtt
    )
    transport.every(TICK_S, runner.tick)
    b2bua.reachable = qualifier.reachable


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


def build_b2bua(settings: ServeSettings, service: SipService, calls: _Calls, server: Server) -> B2bua:
    """The B2BUA on the bound SIP address, sharing the registrar's authenticator, guard,
    credentials and location store."""
    registrar = service.registrar
    config = B2buaConfig(
        host=advertised_host(settings),
        port=server.sip_address[1],
        realm=settings.realm,
        no_answer_s=settings.no_answer_timeout_s,
        no_answer_status=settings.no_answer_status,
        max_calls=settings.max_calls,
    )
    b2bua = B2bua(
        config,
        dialplan=calls.dialplan,
        location=registrar.location,
        authenticator=registrar.authenticator,
        lookup_ha1=registrar.lookup_ha1,
        media=calls.node.media,
        port=service,
        clock=time.time,
        guard=registrar.guard,
        allowlists=registrar.allowlists,
        on_cdr=calls.cdrs.add,
        on_setup=server.metrics.observe_setup,
        admission=Admission(
            AdmissionConfig(max_setup=settings.max_calls_in_setup, max_lag_s=settings.max_sip_lag_ms / 1000)
        ),
    )
    service.calls = b2bua
    calls.node.b2bua = b2bua
    return b2bua


async def serve(
    settings: ServeSettings,
    stop: asyncio.Event,
    *,
    accounts: Iterable[tuple[str, str]] = (),
    numbers: Iterable[tuple[str, str]] = (),
    on_ready: Callable[[Server], None] | None = None,
    directory: DirectorySettings | None = None,
) -> None:
    """Serve until `stop` is set; always flushes the registration writer on the way out.
    `directory`: run the periodic LDAP sync (vpbx.io.directory_sync) while serving."""
    db = await Database.open(data_dir_url(settings.data_dir))
    try:
        await seed_users(db, accounts, settings.realm)
        await seed_numbers(db, numbers)
        cache = CredentialCache()
        watcher = CredentialWatcher(db, cache)
        await watcher.start()
        writer = await RegistrationWriter.open(db, now=time.time())
        cdrs = CdrWriter(db)
        cdrs.start()
        dialplan = Dialplan()
        dialplan_watcher = DialplanWatcher(db, dialplan)
        await dialplan_watcher.start()
        node = CallNode(settings, advertised_host(settings))
        try:
            calls = _Calls(cdrs=cdrs, node=node, dialplan=dialplan, watcher=dialplan_watcher)
            async with directory_sync_running(db, directory) as sync_loop:
                calls.directory, calls.sync_loop = directory, sync_loop
                await _serve(settings, stop, db, cache, watcher, writer, calls, on_ready)
        finally:
            node.close()
            await dialplan_watcher.close()
            await watcher.close()
            try:
                await writer.close()
                log.info("registrations_flushed", written=writer.stats.written)
            finally:
                await cdrs.close()
                log.info("cdrs_flushed", written=cdrs.stats.written)
    finally:
        await db.close()


SyncSeam = Callable[[bool], Awaitable[Mapping[str, Any]]]  # dry_run -> the run's report
LoginSeam = Callable[[str, str], str | None]  # (login, password) -> directory id (blocking)


class _Calls:
    """The call pieces `serve` makes before the SIP side exists."""

    def __init__(
        self, *, cdrs: CdrWriter, node: CallNode, dialplan: Dialplan, watcher: DialplanWatcher
    ) -> None:
        self.cdrs = cdrs
        self.node = node
        self.dialplan = dialplan
        self.watcher = watcher
        self.directory: DirectorySettings | None = None  # [directory], when configured
        self.sync_loop: DirectorySyncLoop | None = None  # its periodic sync, when running

    def directory_seams(self) -> tuple[SyncSeam | None, LoginSeam | None]:
        """What the API's POST /directory/sync and directory logins call (None, None
        without a [directory] table)."""
        directory, sync_loop = self.directory, self.sync_loop
        if directory is None or sync_loop is None:
            return None, None
        loop = sync_loop

        async def sync(dry_run: bool) -> Mapping[str, Any]:
            return dataclasses.asdict(await loop.run_once(dry_run=dry_run))

        return sync, functools.partial(ldap_login, directory)


async def _serve(  # noqa: PLR0917
    settings: ServeSettings,
    stop: asyncio.Event,
    db: Database,
    cache: CredentialCache,
    watcher: CredentialWatcher,
    writer: RegistrationWriter,
    calls: _Calls,
    on_ready: Callable[[Server], None] | None,
) -> None:
    service = build_registrar(settings, cache, writer)
    server = Server(settings, service, cache, writer, cdrs=calls.cdrs, node=calls.node)
    sync, directory_login = calls.directory_seams()
    if calls.sync_loop is not None:
        server.metrics.add_directory(calls.sync_loop)
    transport = SipTransport(TransactionLayer(), service.on_action, guard=service.registrar.guard)
    service.responder = transport
    service.sender = transport
    http = None
    reload_task: asyncio.Task[None] | None = None
    dialplan_task: asyncio.Task[None] | None = None
    try:
        server.sip_address = await transport.listen(*settings.sip_address)
        sip_tls = tls_context(settings.sip_tls_cert, settings.sip_tls_key)
        if settings.sip_tls_listen is not None and sip_tls is not None:
            tls_host, tls_port = parse_host_port(settings.sip_tls_listen, any_port=True)
            server.sip_tls_address = await transport.listen_tls(tls_host, tls_port, sip_tls)
        b2bua = build_b2bua(settings, service, calls, server)
        server.b2bua = b2bua
        calls.node.watch()
        transport.every(HOUSEKEEPING_S, service.housekeeping)
        server.trunks = await TrunkManager.open(
            db, transport, service, listen=server.sip_address, reload_interval_s=settings.reload_interval_s
        )
        server.metrics.add_trunks(server.trunks)
        trunk_calls = TrunkCalls(server.trunks.trunks, server.trunks.host_addresses)
        b2bua.trunks = trunk_calls  # outbound legs, inbound INVITEs from providers
        calls.dialplan.outbound = trunk_calls.outbound
        transport.every(CALL_TIMER_S, b2bua.on_timer)
        start_qualify(settings, server, transport, b2bua)
        transport.probe_queue(LAG_PROBE_S, b2bua.note_lag)
        dialplan_task = asyncio.get_running_loop().create_task(
            calls.watcher.run(settings.reload_interval_s), name="vpbx-dialplan-watcher"
        )
        http = await start_http(
            *settings.http_address,
            metrics=server.metrics.exposition,
            health=server.health,
            api=api_context(
                settings, db, sip_address=server.sip_address, sync=sync, directory_login=directory_login
            ),
            ssl_context=tls_context(settings.http_tls_cert, settings.http_tls_key),
        )
        server.http_address = http.address
        watcher.on_reload = functools.partial(drop_vanished_bindings, writer, cache)
        drop_vanished_bindings(writer, cache)  # accounts removed while the server was down
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
        if server.b2bua is not None:
            server.b2bua.shutdown()
        transport.close()
        for task in (reload_task, dialplan_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if http is not None:
            await http.close()


def _ready_line(server: Server) -> None:
    sip, http, tls = server.sip_address, server.http_address, server.sip_tls_address
    also = "" if tls is None else f", tls {tls[0]}:{tls[1]}"
    print(
        f"vpbx: SIP listening on udp+tcp {sip[0]}:{sip[1]}{also} realm={server.settings.realm}; "
        f"HTTP on {http[0]}:{http[1]}",
        flush=True,
    )


def _hints(accounts: list[tuple[str, str]], numbers: list[tuple[str, str]]) -> Callable[[Server], None]:
    """The ready line, and with seeded accounts how to register a softphone to them."""

    def ready(server: Server) -> None:
        _ready_line(server)
        if not accounts:
            return
        host = server.b2bua.config.host if server.b2bua is not None else server.sip_address[0]
        port = server.sip_address[1]
        print(f"vpbx: register a softphone to {host}:{port} (UDP or TCP) as one of:", flush=True)
        for ext, password in accounts:
            print(f"vpbx:   user {ext}  password {password}  domain {host}", flush=True)
        exts = [ext for ext, _ in accounts]
        if len(exts) > 1:
            print(f"vpbx: then call {exts[1]} from {exts[0]}", flush=True)
        for number, ext in numbers:
            print(f"vpbx: a call to {number} rings {ext}", flush=True)
        print(
            f"vpbx: calls so far: vpbx --data-dir {server.settings.data_dir} calls list; Ctrl-C stops",
            flush=True,
        )

    return ready


async def _main(
    settings: ServeSettings,
    accounts: list[tuple[str, str]],
    numbers: list[tuple[str, str]],
    directory: DirectorySettings | None,
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await serve(
            settings,
            stop,
            accounts=accounts,
            numbers=numbers,
            on_ready=_hints(accounts, numbers),
            directory=directory,
        )
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


def run(
    settings: ServeSettings,
    accounts: list[tuple[str, str]],
    numbers: list[tuple[str, str]] | None = None,
    *,
    directory: DirectorySettings | None = None,
) -> int:
    """Runs `vpbx serve` on uvloop until SIGINT/SIGTERM; returns the process exit code.
    `directory`: the [directory] table when one is configured (periodic LDAP sync, API
    sync and directory logins)."""
    configure_logging(settings.log_level)
    tune_gc()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_main(settings, accounts, numbers or [], directory))
