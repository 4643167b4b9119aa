"""Trunks in `vpbx serve`: loads them from the store, follows CLI changes, and drives one
vpbx.pbx.TrunkRegistration per registering trunk over the server's SIP transport.

    manager = await TrunkManager.open(db, transport, service, listen=("0.0.0.0", 5060))
    manager.health()        # [{"name": ..., "state": "registered", "last_error": None, ...}]
    await manager.close()   # unregisters (Expires: 0), waits a little for the answers

- Changes: every `reload_interval_s` the manager reads SQLite's ``PRAGMA data_version`` on a
  connection it keeps (it changes when another connection commits); when it changed, the
  trunks table's fingerprint decides whether to reload. A trunk removed, disabled or set to
  --no-register is unregistered; a changed trunk is unregistered and registered afresh.
- Sending: REGISTERs leave from the SIP listening socket (so the provider's INVITEs to our
  Contact reach the same port) as client transactions (SipTransport.send_request), whose
  answers come back through SipService.track. The provider's host is resolved once per
  attempt series (loop.getaddrinfo); a name that does not resolve is a failure like a timeout.
- Contact: our listening address; when that is a wildcard (0.0.0.0), the local address the
  kernel would use towards the provider (a connected UDP socket, nothing sent).
- Clock: the machines run on loop.time(); one loop.call_at per trunk for its next deadline.

The B2BUA seam: `trunks()` gives the enabled trunks (vpbx.store.trunks.Trunk) for
vpbx.pbx.trunk_routing.route_outbound / match_inbound, `host_addresses()` the resolved
addresses of their hosts for match_inbound (a trunk that does not register is resolved
when loaded). Those addresses and the trunks' inbound CIDRs are the source guard's
providers (SourceGuard.set_providers): never rate-limited nor banned.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from vpbx.io.sip_transport import SipTransport
from vpbx.logs import get_logger
from vpbx.pbx.trunk_registration import TrunkRegistration
from vpbx.sip import Request, Response
from vpbx.sip.transaction_actions import Deliver, Timeout, TransactionLimitError, TransportError
from vpbx.sip_service import SipService
from vpbx.store import Database
from vpbx.store import trunks as trunks_repo
from vpbx.store.trunks import Trunk

__all__ = ["TrunkManager", "TrunkStatus"]

log = get_logger("vpbx.trunks")

CLOSE_WAIT_S: Final = 2.0  # how long close() waits for unregistrations to be answered
_PROBE: Final = ("192.0.2.1", 9)  # TEST-NET: only to ask the routing table for a source


@dataclass(frozen=True, slots=True)
class TrunkStatus:
    """One trunk as /health and /metrics show it."""

    name: str
    host: str
    state: str  # disabled | registering | registered | failing
    last_error: str | None
    registered_for_s: float | None  # seconds the registrar's grant still runs
    failures: int


@dataclass(slots=True, eq=False)
class _Entry:
    trunk: Trunk
    machine: TrunkRegistration
    dest: tuple[str, int] | None = None
    timer: asyncio.TimerHandle | None = None
    addresses: list[str] = field(default_factory=list)
    counted: int = 0  # the machine's failures already added to TrunkManager.failures
    logged: str = "disabled"  # the state last logged


def local_address(listen: tuple[str, int], towards: str | None) -> tuple[str, int]:
    """Our address as the provider should see it in Contact and Via (module doc)."""
    host, port = listen
    if host not in ("0.0.0.0", "::", ""):
        return listen
    family = socket.AF_INET6 if towards is not None and ":" in towards else socket.AF_INET
    target = (towards, 9) if towards is not None else _PROBE
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(target)
            return str(probe.getsockname()[0]), port
    except OSError:
        return ("127.0.0.1", port)


class TrunkManager:
    """The registering trunks of one server (module doc)."""

    def __init__(
        self,
        db: Database,
        transport: SipTransport,
        service: SipService,
        *,
        listen: tuple[str, int],
        backoff_min_s: float = 30.0,
        backoff_max_s: float = 300.0,
    ) -> None:
        self.db = db
        self.transport = transport
        self.service = service
        self.listen = listen
        self.backoff = (backoff_min_s, backoff_max_s)
        self.entries: dict[str, _Entry] = {}
        self.retiring: list[_Entry] = []
        self.config: dict[str, Trunk] = {}  # every trunk in the store, by name
        self.failures: dict[str, int] = {}  # registration failures by trunk name (kept after removal)
        self.resolved: dict[str, list[str]] = {}  # addresses of enabled trunks that do not register
        self.reloads = 0
        self._conn: AsyncConnection | None = None
        self._version: Any = None
        self._fingerprint: tuple[Any, ...] | None = None
        self._task: asyncio.Task[None] | None = None
        self._jobs: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(
        cls,
        db: Database,
        transport: SipTransport,
        service: SipService,
        *,
        listen: tuple[str, int],
        reload_interval_s: float = 1.0,
    ) -> TrunkManager:
        """Load the trunks, start registering, and watch the store for changes."""
        manager = cls(db, transport, service, listen=listen)
        manager._conn = await db.engine.connect()
        manager._version = await manager._data_version()
        await manager.reload(force=True)
        manager._task = asyncio.get_running_loop().create_task(
            manager._watch(reload_interval_s), name="vpbx-trunk-watcher"
        )
        return manager

    # -- the store ----------------------------------------------------------------------------

    async def _data_version(self) -> Any:
        if self._conn is None or self.db.dialect != "sqlite":
            return None
        value = (await self._conn.exec_driver_sql("PRAGMA data_version")).scalar()
        await self._conn.rollback()
        return value

    async def reload(self, *, force: bool = False) -> bool:
        """Read the trunks when they changed; True when something was reloaded."""
        assert self._conn is not None
        conn = self._conn
        try:
            version = await self._data_version()
            if not force and version is not None and version == self._version:
                return False
            self._version = version
            fingerprint = await trunks_repo.fingerprint(conn)
            if not force and fingerprint == self._fingerprint:
                return False
            rows = await trunks_repo.list_trunks(conn)
        finally:
            await conn.rollback()
        self._fingerprint = fingerprint
        self.reloads += 1
        await self.apply(rows)
        return True

    async def _watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                if await self.reload():
                    log.info("trunks_reloaded", trunks=sorted(self.config))
            except (sa.exc.SQLAlchemyError, OSError) as exc:  # keep what runs, try again
                log.warning("trunks_reload_failed", reason=str(exc))

    async def apply(self, rows: list[Trunk]) -> None:
        """Make the running registrations match `rows`."""
        loop = asyncio.get_running_loop()
        self.config = {t.name: t for t in rows}
        wanted = {t.name: t for t in rows if t.enabled and t.register}
        for name, entry in list(self.entries.items()):
            if wanted.get(name) != entry.trunk:
                del self.entries[name]
                self._retire(entry, loop.time())
        for name, trunk in wanted.items():
            if name not in self.entries:
                await self._add(trunk, loop.time())
        resolved: dict[str, list[str]] = {}
        for trunk in rows:
            if trunk.enabled and trunk.name not in wanted:
                try:
                    resolved[trunk.name] = await self._resolve(trunk)
                except OSError:
                    resolved[trunk.name] = []
        self.resolved = resolved
        self._update_guard()

    def provider_networks(self) -> list[str]:
        """The enabled trunks' inbound CIDRs and host addresses (what parses as a network)."""
        out: list[str] = []
        candidates = [c for t in self.trunks() for c in t.inbound_cidrs]
        candidates += [a for addresses in self.host_addresses().values() for a in addresses]
        for text in candidates:
            try:
                out.append(str(ipaddress.ip_network(text.split("%", 1)[0], strict=False)))
            except ValueError:
                continue
        return list(dict.fromkeys(out))

    def _update_guard(self) -> None:
        guard = self.service.registrar.guard
        if guard is not None:
            guard.set_providers(self.provider_networks())

    async def _resolve(self, trunk: Trunk) -> list[str]:
        infos = await asyncio.get_running_loop().getaddrinfo(
            trunk.host.strip("[]"), trunk.port, type=socket.SOCK_DGRAM
        )
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    async def _add(self, trunk: Trunk, now: float) -> None:
        try:
            addresses = await self._resolve(trunk)
        except OSError:
            addresses = []
        local = local_address(self.listen, addresses[0] if addresses else None)
        lo, hi = self.backoff
        machine = TrunkRegistration(trunk, local=local, backoff_min_s=lo, backoff_max_s=hi)
        entry = _Entry(trunk, machine, (addresses[0], trunk.port) if addresses else None, addresses=addresses)
        self.entries[trunk.name] = entry
        log.info(
            "trunk_registering", trunk=trunk.name, host=trunk.host, port=trunk.port, contact=machine.contact
        )
        self._send(entry, machine.start(now))

    def _retire(self, entry: _Entry, now: float) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
        request = entry.machine.stop(now)
        log.info("trunk_unregistering" if request is not None else "trunk_stopped", trunk=entry.trunk.name)
        if request is not None:
            self.retiring.append(entry)
            self._send(entry, request)

    # -- SIP ------------------------------------------------------------------------------------

    def _send(self, entry: _Entry, request: Request | None) -> None:
        if request is None:
            return
        if entry.dest is None:
            job = asyncio.get_running_loop().create_task(self._resolve_and_send(entry, request))
            self._jobs.add(job)
            job.add_done_callback(self._jobs.discard)
            return
        try:
            key = self.transport.send_request(request, entry.dest, entry.trunk.transport.upper())
        except (TransactionLimitError, OSError) as exc:  # overloaded, or the socket is gone
            self._after(entry, entry.machine.on_failure(f"cannot send: {exc}", self._now()))
            return
        self.service.track(key, lambda action: self._on_result(entry, action))

    async def _resolve_and_send(self, entry: _Entry, request: Request) -> None:
        try:
            entry.addresses = await self._resolve(entry.trunk)
        except OSError as exc:
            self._after(
                entry, entry.machine.on_failure(f"cannot resolve {entry.trunk.host}: {exc}", self._now())
            )
            return
        entry.dest = (entry.addresses[0], entry.trunk.port)
        self._update_guard()
        self._send(entry, request)

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _on_result(self, entry: _Entry, action: Deliver | Timeout | TransportError) -> None:
        machine, now = entry.machine, self._now()
        if isinstance(action, Deliver):
            if not isinstance(action.message, Response):
                return
            request = machine.on_response(action.message, now)
        elif isinstance(action, Timeout):
            request = machine.on_failure("timeout", now)
        else:
            request = machine.on_failure("transport error", now)
        self._after(entry, request)

    def _after(self, entry: _Entry, request: Request | None) -> None:
        """Count failures, log state changes, send what the machine asked for, re-arm its timer."""
        machine = entry.machine
        name = entry.trunk.name
        new_failures = machine.failures_total - entry.counted
        if new_failures:
            entry.counted = machine.failures_total
            self.failures[name] = self.failures.get(name, 0) + new_failures
        if machine.stopping:
            if machine.finished and entry in self.retiring:
                self.retiring.remove(entry)
                log.info("trunk_unregistered", trunk=name)
        elif new_failures:
            log.warning(
                "trunk_failing", trunk=name, reason=machine.last_error, retry_in_s=self._retry_in(entry)
            )
        elif machine.state != entry.logged and machine.state == "registered":
            log.info("trunk_registered", trunk=name, expires_in_s=self._expires_in(entry))
        entry.logged = machine.state
        self._send(entry, request)
        self._arm(entry)

    def _retry_in(self, entry: _Entry) -> float | None:
        deadline = entry.machine.next_deadline
        return None if deadline is None else round(deadline - self._now(), 1)

    def _expires_in(self, entry: _Entry) -> float | None:
        until = entry.machine.registered_until
        return None if until is None else round(until - self._now(), 1)

    def _arm(self, entry: _Entry) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
        deadline = entry.machine.next_deadline
        if deadline is not None and not entry.machine.stopping:
            entry.timer = asyncio.get_running_loop().call_at(deadline, self._on_timer, entry)

    def _on_timer(self, entry: _Entry) -> None:
        entry.timer = None
        if entry.machine.state == "failing":
            entry.dest = None  # resolve again: the provider may have moved
        self._after(entry, entry.machine.on_timer(self._now()))

    # -- figures ----------------------------------------------------------------------------------

    def trunks(self) -> list[Trunk]:
        """The enabled trunks, for the B2BUA's routing (vpbx.pbx.trunk_routing)."""
        return [t for t in self.config.values() if t.enabled]

    def host_addresses(self) -> dict[str, list[str]]:
        registering = {name: list(e.addresses) for name, e in self.entries.items()}
        return {name: list(a) for name, a in self.resolved.items()} | registering

    def statuses(self) -> list[TrunkStatus]:
        out = []
        for name, trunk in sorted(self.config.items()):
            entry = self.entries.get(name)
            machine = entry.machine if entry is not None else None
            out.append(
                TrunkStatus(
                    name=name,
                    host=f"{trunk.host}:{trunk.port}",
                    state=machine.state if machine is not None else "disabled",
                    last_error=machine.last_error if machine is not None else None,
                    registered_for_s=self._expires_in(entry)
                    if entry is not None and entry.machine.state == "registered"
                    else None,
                    failures=self.failures.get(name, 0),
                )
            )
        return out

    def health(self) -> list[dict[str, Any]]:
        return [
            {
                "name": s.name,
                "host": s.host,
                "state": s.state,
                "last_error": s.last_error,
                "registered_for_s": s.registered_for_s,
                "failures": s.failures,
            }
            for s in self.statuses()
        ]

    # TrunkFigures (vpbx.metrics)
    def registered(self) -> dict[str, bool]:
        return {s.name: s.state == "registered" for s in self.statuses()}

    def registration_failures(self) -> dict[str, int]:
        """Every configured trunk (0 when it never failed) and removed ones that failed."""
        return {name: 0 for name in self.config} | self.failures

    # -- shutdown -------------------------------------------------------------------------------

    async def close(self) -> None:
        """Unregister every trunk and wait (CLOSE_WAIT_S at most) for the answers."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        now = self._now()
        for entry in list(self.entries.values()):
            self._retire(entry, now)
        self.entries.clear()
        deadline = now + CLOSE_WAIT_S
        while (self.retiring or self._jobs) and self._now() < deadline:
            await asyncio.sleep(0.02)
        for job in list(self._jobs):
            job.cancel()
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
