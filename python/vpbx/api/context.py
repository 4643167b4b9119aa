"""What the API handlers get: the process-wide `ApiContext` (database, realm, the seams
the directory part plugs into, clocks) and, per request, a `Call`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from vpbx.security import GuardConfig, SourceGuard
from vpbx.store import Database

from .rbac import Principal

__all__ = ["ApiContext", "Call", "login_guard"]

SyncFn = Callable[[bool], Awaitable[Mapping[str, Any]]]
"""Runs a directory sync (argument: dry_run) and returns its report."""
DirectoryLoginFn = Callable[[str, str], Awaitable[str | None]]
"""(login, password) -> the user's directory_id, None for bad credentials; raises when
the directory cannot be reached."""


def login_guard() -> SourceGuard:
    """Per-source limits for /auth/login: 5 failures in 5 minutes ban the address for 5
    minutes (doubling on repeat), and at most 1 attempt/s sustained, 10 in a burst."""
    return SourceGuard(
        GuardConfig(rate=1.0, burst=10.0, max_failures=5, failure_window=300.0, ban_time=300.0, flood_drops=0)
    )


@dataclass(slots=True)
class ApiContext:
    db: Database
    realm: str
    sip_server: str | None = None  # "host:port" phones register to (sip-credentials)
    recordings_dir: Path | None = None  # relative recording paths resolve under it
    sync: SyncFn | None = None
    directory_login: DirectoryLoginFn | None = None
    session_ttl_s: float = 12 * 3600.0
    guard: SourceGuard = field(default_factory=login_guard)
    clock: Callable[[], float] = time.time  # epoch seconds (token times)
    monotonic: Callable[[], float] = time.monotonic  # the guard's clock
    sync_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(frozen=True, slots=True)
class Call:
    """One request: the aiohttp request, the context, the authenticated caller (None on
    public routes) and the request's `now`."""

    request: web.Request
    ctx: ApiContext
    principal: Principal | None
    now: float

    @property
    def caller(self) -> Principal:
        assert self.principal is not None, "an authenticated route"
        return self.principal

    @property
    def query(self) -> Mapping[str, str]:
        return self.request.query
