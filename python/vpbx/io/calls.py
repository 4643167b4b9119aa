"""Calls in `vpbx serve`: the media engine, the NG layer over it, the B2BUA, and the
dialplan kept in step with the database.

- `CallNode` assembles Engine -> EngineBackend -> NgCommands -> NgMediaControl -> B2bua;
  engine events come in through vpbx.io.media_events.EventWatcher: a media timeout on
  every leg of a call hangs the call up (BYE both sides, CDR "media timeout").
- `DialplanWatcher` reloads the numbers and accounts (max_calls) the router reads when
  the CLI changes them: SQLite's `PRAGMA data_version` on a kept connection, then a cheap
  fingerprint of the two tables (as vpbx.io.serve.CredentialWatcher does for HA1s).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from vpbx.io.media_events import EventWatcher
from vpbx.logs import get_logger
from vpbx.media import Engine
from vpbx.media.engine import EngineEvent, EngineStats
from vpbx.media.ng_backend import EngineBackend
from vpbx.ng import NgCommands
from vpbx.pbx.calls import B2bua, Dialplan, DialplanSnapshot, NgMediaControl, NumberEntry
from vpbx.settings import ServeSettings
from vpbx.store import Database
from vpbx.store.schema import numbers, sip_accounts

__all__ = ["CallNode", "DialplanWatcher", "advertised_host", "load_dialplan"]

log = get_logger("vpbx.calls")

WILDCARDS: Final = frozenset({"0.0.0.0", "::", ""})


def advertised_host(settings: ServeSettings) -> str:
    """The host for Via/Contact/SDP: `sip_advertise`, else the listen host, else (listening
    on a wildcard) the address this machine sends from (no packet is sent)."""
    if settings.sip_advertise:
        return settings.sip_advertise
    host = settings.sip_address[0]
    if host not in WILDCARDS:
        return host
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: routing lookup only
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


async def load_dialplan(conn: AsyncConnection) -> DialplanSnapshot:
    accounts = {
        str(r.username): int(r.max_calls)
        for r in await conn.execute(
            sa.select(sip_accounts.c.username, sip_accounts.c.max_calls).where(
                sip_accounts.c.enabled.is_(True)
            )
        )
    }
    entries = {
        str(r.e164): NumberEntry(str(r.e164), str(r.target_kind), str(r.target_value), int(r.max_calls))
        for r in await conn.execute(sa.select(numbers).where(numbers.c.enabled.is_(True)))
    }
    return DialplanSnapshot(accounts=accounts, numbers=entries)


async def dialplan_fingerprint(conn: AsyncConnection) -> tuple[Any, ...]:
    """Changes when a number or account is added, removed, re-targeted or re-limited."""
    n, a = numbers.c, sip_accounts.c
    query_n = sa.select(
        sa.func.count(),
        sa.func.sum(n.id),
        sa.func.sum(n.max_calls),
        sa.func.sum(sa.cast(n.enabled, sa.Integer)),
        sa.func.sum(sa.func.length(n.target_value) * n.id),
    )
    query_a = sa.select(
        sa.func.count(), sa.func.max(a.updated_at), sa.func.sum(a.id), sa.func.sum(a.max_calls)
    )
    return (*(await conn.execute(query_n)).one(), *(await conn.execute(query_a)).one())


class DialplanWatcher:
    """Keeps `dialplan` equal to the database (see the module doc)."""

    def __init__(self, db: Database, dialplan: Dialplan) -> None:
        self.db = db
        self.dialplan = dialplan
        self.reloads = 0
        self._conn: AsyncConnection | None = None
        self._version: Any = None
        self._fingerprint: tuple[Any, ...] | None = None

    async def start(self) -> None:
        self._conn = await self.db.engine.connect()
        self._version = await self._data_version()
        await self._reload(force=True)

    async def _data_version(self) -> Any:
        if self._conn is None or self.db.dialect != "sqlite":
            return None
        value = (await self._conn.exec_driver_sql("PRAGMA data_version")).scalar()
        await self._conn.rollback()
        return value

    async def _reload(self, *, force: bool = False) -> bool:
        assert self._conn is not None
        conn = self._conn
        try:
            fingerprint = await dialplan_fingerprint(conn)
            if not force and fingerprint == self._fingerprint:
                return False
            snapshot = await load_dialplan(conn)
        finally:
            await conn.rollback()
        self._fingerprint = fingerprint
        self.dialplan.load(snapshot)
        self.reloads += 1
        return True

    async def poll(self) -> bool:
        version = await self._data_version()
        if version is not None and version == self._version:
            return False
        self._version = version
        if await self._reload():
            snap = self.dialplan.snapshot
            log.info("dialplan_reloaded", numbers=len(snap.numbers), accounts=len(snap.accounts))
            return True
        return False

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.poll()
            except (sa.exc.SQLAlchemyError, OSError) as exc:  # keep the old snapshot
                log.warning("dialplan_reload_failed", reason=str(exc))

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


class CallNode:
    """The media side of calls: engine + NG commands + the MediaControl the B2BUA uses.
    `b2bua` is attached once the SIP side exists; `close()` deletes every call's media
    and stops the engine."""

    def __init__(
        self,
        settings: ServeSettings,
        host: str,
        *,
        on_leg_finished: Callable[[Any], object] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        interface = settings.media_interface or host
        self.engine = Engine(
            interfaces=[interface],
            port_min=settings.port_min,
            port_max=settings.port_max,
            media_timeout_s=settings.media_timeout_s,
        )
        extra: dict[str, Any] = {}
        if settings.recording_dir is not None:
            extra["recording_dir"] = settings.recording_dir
        self.backend = EngineBackend(self.engine, on_leg_finished=on_leg_finished, clock=clock, **extra)
        self.commands = NgCommands(self.backend, max_calls=max(settings.max_calls, 1))
        self.media = NgMediaControl(self.commands, clock=clock)
        self.b2bua: B2bua | None = None
        self.media_timeouts = 0
        self._watcher: EventWatcher | None = None

    def watch(self) -> None:
        """Start delivering engine events on the running loop."""
        self._watcher = EventWatcher(self.engine, self.on_event)

    def on_event(self, event: EngineEvent) -> None:
        if event["type"] == "media_timeout":
            self.media_timeouts += 1
            expired = self.backend.note_timeout(event["session"], event["leg"])
            if expired is not None and self.b2bua is not None:
                log.warning("call_media_timeout", call_id=expired)
                self.b2bua.media_timeout(expired)
        elif event["type"] == "media_resumed":
            self.backend.note_resumed(event["session"], event["leg"])
        elif event["type"] == "recording_failed":
            log.error("recording_failed", call_id=self.backend.recording_failed(event["session"]))

    # NodeFigures (vpbx.metrics.EngineCollector)
    def engine_stats(self) -> EngineStats:
        return self.engine.engine_stats()

    def transcoded_streams(self) -> int:
        return self.backend.transcoded_streams()

    def ng_calls(self) -> int:
        return len(self.commands.calls)

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
        if self.engine.closed:
            return
        for call_id in list(self.commands.calls):
            self.commands.remove_call(call_id, "forced")
        self.engine.close()
