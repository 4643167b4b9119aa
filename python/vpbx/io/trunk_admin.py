"""The database side of `vpbx trunk ...`: each call opens DATA_DIR/vpbx.db, does one
transaction and closes; a running `vpbx serve` picks the change up within about a second.
`server_status` asks a running server's /health for the trunks' registration state."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from vpbx.store import Database, data_dir_url
from vpbx.store import trunks as trunks_repo
from vpbx.store.db import DATABASE_FILE
from vpbx.store.trunks import Trunk, TrunkSpec

__all__ = ["add_trunk", "list_trunks", "remove_trunk", "server_status", "set_enabled"]

T = TypeVar("T")
STATUS_TIMEOUT_S = 1.0


def _run(data_dir: Path, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    async def main() -> T:
        db = await Database.open(data_dir_url(data_dir))
        try:
            async with db.begin() as conn:
                return await work(conn)
        finally:
            await db.close()

    return asyncio.run(main())


def add_trunk(data_dir: Path, spec: TrunkSpec) -> Trunk:
    """Raises ValueError for a bad value, ConflictError when the name is taken. The
    database now holds a provider password, so its files become readable by their owner
    only (0600)."""
    trunk = _run(data_dir, lambda conn: trunks_repo.add_trunk(conn, spec, now=time.time()))
    restrict(data_dir)
    return trunk


def restrict(data_dir: Path) -> None:
    """chmod 0600 the database files we own (best effort: another owner keeps its mode)."""
    for suffix in ("", "-wal", "-shm"):
        path = Path(data_dir).expanduser() / f"{DATABASE_FILE}{suffix}"
        with contextlib.suppress(OSError):
            if path.exists() and path.stat().st_uid == os.getuid():
                path.chmod(0o600)


def list_trunks(data_dir: Path) -> list[Trunk]:
    return _run(data_dir, trunks_repo.list_trunks)


def remove_trunk(data_dir: Path, name: str) -> bool:
    return _run(data_dir, lambda conn: trunks_repo.remove_trunk(conn, name))


def set_enabled(data_dir: Path, name: str, *, enabled: bool) -> Trunk | None:
    return _run(data_dir, lambda conn: trunks_repo.update_trunk(conn, name, now=time.time(), enabled=enabled))


def server_status(http: tuple[str, int]) -> dict[str, dict[str, Any]] | None:
    """The trunks in a running server's /health by name; None when no server answers."""
    host = "127.0.0.1" if http[0] in ("0.0.0.0", "") else http[0]
    host = f"[{host}]" if ":" in host else host
    url = f"http://{host}:{http[1]}/health"
    try:
        with urllib.request.urlopen(url, timeout=STATUS_TIMEOUT_S) as reply:
            doc = json.loads(reply.read())
    except urllib.error.HTTPError as e:  # 503: the server runs but is not healthy; the body still says why
        doc = json.loads(e.read() or b"{}")
    except (OSError, ValueError):
        return None
    trunks = doc.get("trunks") if isinstance(doc, dict) else None
    if not isinstance(trunks, list):
        return None
    return {str(t.get("name")): t for t in trunks if isinstance(t, dict)}
