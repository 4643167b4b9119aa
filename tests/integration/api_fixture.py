"""A seeded vpbx API on 127.0.0.1 for the API tests: the real HTTP listener
(vpbx.io.http.start_http) in its own event loop thread, a SQLite store with users in two
departments, calls between them and recording files; a blocking HTTP client."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
import time
import urllib.error
import urllib.request
import wave
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from vpbx.api import ApiContext
from vpbx.io.http import HttpServer, start_http
from vpbx.store import Cdr, Database, cdrs, schema, sqlite_url, tokens, users

T = TypeVar("T")
REALM = "pbx.test"
T0 = 1_790_000_000.0  # 2026-09-21, a Monday
TIMEOUT = 10.0

# extension -> (name, department, roles, password)
PEOPLE: Mapping[str, tuple[str, str, tuple[str, ...], str]] = {
    "1001": ("Анна Смирнова", "Sales", ("employee",), "anna-pw"),
    "1002": ("Boris Lead", "Sales", ("team_lead",), "boris-pw"),
    "1003": ("Carl Seller", "Sales", ("employee",), "carl-pw"),
    "2001": ("Dina Support", "Support", ("employee",), "dina-pw"),
    "2002": ("Egor Lead", "Support", ("team_lead",), "egor-pw"),
    "3001": ("Mila Market", "Marketing", ("marketer",), "mila-pw"),
    "4001": ("Olga Books", "Finance", ("accountant",), "olga-pw"),
    "9001": ("Root Admin", "IT", ("admin",), "root-pw"),
}
# extension -> the directory photo the store holds (JPEG start and end markers around a body)
PHOTOS: Mapping[str, bytes] = {
    "1001": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + "Анна".encode() * 50 + bytes(range(256)) + b"\xff\xd9",
    "2001": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00dina" + b"\x00\xff" * 300 + b"\xff\xd9",
}
# extension -> the extension of their manager (by directory DN, as a sync stores it)
MANAGERS: Mapping[str, str] = {"1001": "1002", "1003": "1002", "2001": "2002", "3001": "8888"}  # 8888: gone
ROLE_USER = {
    "employee": "1001",
    "team_lead": "1002",
    "marketer": "3001",
    "accountant": "4001",
    "admin": "9001",
}

# call key -> (from, to, direction, disposition, billsec, recording file or None)
CALLS: Mapping[str, tuple[str, str, str, str, float, str | None]] = {
    "sales_internal": ("1001", "1003", "internal", "answered", 61.0, "sales.wav"),
    "support_out": ("2001", "+74951234567", "outbound", "answered", 30.0, "support.wav"),
    "sales_missed": ("+79161234567", "1002", "inbound", "no-answer", 0.0, None),
    "cross_dept": ("1001", "2001", "internal", "answered", 120.0, "cross.wav"),
    "finance_out": ("4001", "+74957654321", "outbound", "busy", 0.0, None),
    "evil_caller": ('=HYPERLINK("http://x")', "2002", "inbound", "answered", 5.0, None),
}


@dataclass
class ApiServer:
    base: str
    db: Database
    ctx: ApiContext
    loop: asyncio.AbstractEventLoop
    call_ids: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # role or name -> plaintext
    recordings: Path = Path()
    sync_calls: list[bool] = field(default_factory=list)
    http: HttpServer | None = None

    def run(self, coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT)  # type: ignore[arg-type]

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def get(self, path: str, who: str | None = None, **kw: Any) -> tuple[int, Any]:
        status, headers, raw = self.request("GET", path, token=self.tokens.get(who or "", who), **kw)
        return status, json.loads(raw) if headers.get("Content-Type", "").startswith(
            "application/json"
        ) else raw


def _wav(path: Path, seconds: float = 0.2) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x01\x00" * int(8000 * seconds))


async def _seed(server: ApiServer, recordings: Path) -> None:
    db = server.db
    async with db.begin() as conn:
        for ext, (name, dept, granted, password) in PEOPLE.items():
            await users.create_user(
                conn,
                ext,
                password,
                realm=REALM,
                now=T0,
                display_name=name,
                profile={"department": dept, "email": f"{ext}@corp.test", "mobile": f"+7900{ext}"},
            )
            for role in granted:
                await users.grant_role(conn, ext, role)
        for ext in PEOPLE:
            await users.update_user(conn, ext, now=T0, directory_dn=f"uid=u{ext},ou=People,dc=corp")
        for ext, boss in MANAGERS.items():
            await users.update_user(conn, ext, now=T0, manager_dn=f"uid=u{boss},ou=People,dc=corp")
        for ext, photo in PHOTOS.items():
            await conn.execute(
                sa.update(schema.users)
                .where(schema.users.c.extension == ext)
                .values(photo=photo, photo_sha256=hashlib.sha256(photo).hexdigest())
            )
        for i, (key, (src, dst, direction, disp, billsec, rec)) in enumerate(CALLS.items()):
            if rec is not None:
                _wav(recordings / rec)
            server.call_ids[key] = await cdrs.insert_cdr(
                conn,
                Cdr(
                    call_id=f"{key}@test",
                    direction=direction,
                    from_number=src,
                    to_number=dst,
                    started_at=T0 + 3600 * i,
                    answered_at=T0 + 3600 * i + 5 if disp == "answered" else None,
                    ended_at=T0 + 3600 * i + 5 + billsec,
                    disposition=disp,
                    duration_s=5 + billsec,
                    billsec=billsec,
                    recording_path=rec,
                ),
            )
        for role, ext in ROLE_USER.items():
            user = await users.get_user(conn, ext)
            assert user is not None
            _, plain = await tokens.create_token(
                conn, tokens.SESSION_ROLE, now=T0, user_id=user.id, expires_at=time.time() + 3600
            )
            server.tokens[role] = plain
        for role in ("admin", "employee", "accountant"):
            _, plain = await tokens.create_token(conn, role, now=T0, description=f"service {role}")
            server.tokens[f"service-{role}"] = plain
        _, plain = await tokens.create_token(conn, "admin", now=T0 - 100, expires_at=T0 - 50)
        server.tokens["expired"] = plain
        revoked, plain = await tokens.create_token(conn, "admin", now=T0)
        await tokens.revoke_token(conn, revoked.id, now=T0 + 1)
        server.tokens["revoked"] = plain


@contextlib.contextmanager
def api_server(tmp: Path, *, with_sync: bool = True) -> Iterator[ApiServer]:
    """The seeded server; the loop thread and the database are closed on exit."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="api-test-loop", daemon=True)
    thread.start()
    recordings = tmp / "recordings"
    recordings.mkdir()

    def run(coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(TIMEOUT)  # type: ignore[arg-type]

    db = run(Database.open(sqlite_url(tmp / "vpbx.db")))
    http: HttpServer | None = None
    try:
        sync_calls: list[bool] = []

        async def fake_sync(dry_run: bool) -> dict[str, Any]:
            sync_calls.append(dry_run)
            return {"status": "ok", "dry_run": dry_run, "created": 0}

        sync: Callable[[bool], Awaitable[dict[str, Any]]] | None = fake_sync if with_sync else None
        ctx = run(_make_context(db, recordings, sync))
        http = run(start_http("127.0.0.1", 0, metrics=lambda: b"", health=lambda: {"status": "ok"}, api=ctx))
        host, port = http.address
        server = ApiServer(
            f"http://{host}:{port}", db, ctx, loop, recordings=recordings, sync_calls=sync_calls, http=http
        )
        run(_seed(server, recordings))
        yield server
    finally:
        if http is not None:
            run(http.close())
        run(db.close())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(TIMEOUT)
        loop.close()


async def _make_context(
    db: Database, recordings: Path, sync: Callable[[bool], Awaitable[dict[str, Any]]] | None
) -> ApiContext:
    # built inside the loop: the context's asyncio.Lock belongs to it
    return ApiContext(db=db, realm=REALM, sip_server="pbx.test:5060", recordings_dir=recordings, sync=sync)
