"""The API's handlers (thin: parse, call the scoped query, shape) and the route table
`ROUTES` that declares each one's path, permission and documentation."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import orjson
import pydantic
from aiohttp import web

from vpbx import __version__
from vpbx.store import runs, tokens
from vpbx.store.cdrs import DIRECTIONS, DISPOSITIONS, CdrFilter

from . import auth, params, queries
from .context import Call
from .errors import ApiError
from .models import (
    AnalyticsOut,
    BillingOut,
    CallList,
    LoginIn,
    LoginOut,
    MeOut,
    RunList,
    SipCredentialsOut,
    SyncOut,
    UserList,
    UserOut,
)
from .openapi import openapi_document
from .rbac import Need, Permission, Scope, scope_of
from .routes import Param, Route
from .scoping import cdr_condition, user_condition

__all__ = ["ROUTES", "json_response"]

CSV_PAGE: Final = 1000
CSV_COLUMNS: Final = (
    "id",
    "call_id",
    "direction",
    "from_number",
    "to_number",
    "started_at",
    "answered_at",
    "ended_at",
    "result",
    "hangup_cause",
    "duration_s",
    "billsec",
    "has_recording",
)


def json_response(doc: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(doc), status=status, content_type="application/json", headers=headers
    )


def _not_found(what: str) -> ApiError:
    return ApiError("not_found", f"{what} not found")


# --- auth -------------------------------------------------------------------------------


async def _login(call: Call) -> web.StreamResponse:
    try:
        body = LoginIn.model_validate_json(await call.request.read())
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        prefix = f"body field {where!r}" if where else "body"
        raise ApiError("bad_request", f"{prefix}: {first['msg']}") from None
    source = call.request.remote or "unknown"
    token, expires, extension = await auth.login(call.ctx, body.login, body.password, source=source)
    return json_response({"token": token, "expires_at": expires, "extension": extension})


async def _logout(call: Call) -> web.StreamResponse:
    if not call.caller.session:
        raise ApiError(
            "bad_request", "only login sessions log out; revoke API tokens with `vpbx token revoke`"
        )
    async with call.ctx.db.begin() as conn:
        await tokens.revoke_token(conn, call.caller.token_id, now=call.now)
    return json_response({"revoked": True})


async def _me(call: Call) -> web.StreamResponse:
    p = call.caller
    user = None
    if p.extension is not None:
        async with call.ctx.db.connect() as conn:
            user = await queries.get_user_view(conn, p, user_condition(p, Scope.SELF), p.extension)
    kind = "service" if p.user_id is None else ("session" if p.session else "user")
    return json_response(
        {
            "token_id": p.token_id,
            "kind": kind,
            "roles": sorted(p.roles),
            "permissions": sorted(str(x) for x in p.permissions),
            "user": user,
        }
    )


# --- users ------------------------------------------------------------------------------


async def _list_users(call: Call) -> web.StreamResponse:
    p, q = call.caller, call.query
    page = params.paging(q)
    f = queries.UserFilter(
        department=params.text(q, "department"), enabled=params.boolean(q, "enabled"), q=params.text(q, "q")
    )
    cond = user_condition(p, scope_of(p, "users:read"))
    async with call.ctx.db.connect() as conn:
        items, total = await queries.list_user_views(conn, p, cond, f, limit=page.limit, offset=page.offset)
    return json_response({"items": items, "total": total, "limit": page.limit, "offset": page.offset})


async def _get_user(call: Call) -> web.StreamResponse:
    p = call.caller
    cond = user_condition(p, scope_of(p, "users:read"))
    async with call.ctx.db.connect() as conn:
        view = await queries.get_user_view(conn, p, cond, call.request.match_info["extension"])
    if view is None:
        raise _not_found("user")
    return json_response(view)


async def _user_photo(call: Call) -> web.StreamResponse:
    p = call.caller
    cond = user_condition(p, scope_of(p, "users:read"))
    async with call.ctx.db.connect() as conn:
        found = await queries.get_user_photo(conn, cond, call.request.match_info["extension"])
    if found is None:
        raise _not_found("user")
    photo, sha = found
    if photo is None:
        raise _not_found("photo of this user")
    headers = {"Cache-Control": "private, no-cache", "X-Content-Type-Options": "nosniff"}
    if sha:
        headers["ETag"] = f'"{sha}"'
    return web.Response(body=photo, content_type="image/jpeg", headers=headers)


async def _sip_credentials(call: Call) -> web.StreamResponse:
    p = call.caller
    cond = user_condition(p, scope_of(p, "sip-credentials"))
    async with call.ctx.db.connect() as conn:
        creds = await queries.get_sip_credentials(conn, cond, call.request.match_info["extension"])
    if creds is None:
        raise _not_found("user")
    return json_response({**creds, "server": call.ctx.sip_server}, headers={"Cache-Control": "no-store"})


# --- calls ------------------------------------------------------------------------------


def _cdr_filter(q: Mapping[str, str]) -> CdrFilter:
    since, until = params.timestamp(q, "from"), params.timestamp(q, "to")
    if since is not None and until is not None and until <= since:
        raise ApiError("bad_request", "parameter 'to' must be later than 'from'")
    return CdrFilter(
        since=since,
        until=until,
        direction=params.choice(q, "direction", DIRECTIONS),
        disposition=params.choice(q, "result", DISPOSITIONS),
    )


def _wants_csv(call: Call) -> bool:
    fmt = params.choice(call.query, "format", ("json", "csv"))
    if fmt is not None:
        return fmt == "csv"
    accept = call.request.headers.get("Accept", "")
    return "text/csv" in accept and "application/json" not in accept


def _csv_cell(value: Any) -> str:
    """A CSV cell; text a spreadsheet would run as a formula (a caller id such as
    "=HYPERLINK(...)") is quoted with a leading apostrophe, phone numbers are not."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if text and (text[0] in "=@\t\r" or (text[0] in "+-" and not text[1:].replace(" ", "").isdigit())):
        return "'" + text
    return text


async def _calls_csv(call: Call, cond: Any, f: CdrFilter) -> web.StreamResponse:
    """Every matching call from `offset` on (at most `limit` when given), newest first,
    streamed in pages so an export of any size stays small in memory."""
    page = params.paging(call.query)
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": 'attachment; filename="calls.csv"',
        }
    )
    await resp.prepare(call.request)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    offset, left = page.offset, (page.limit if "limit" in call.query else None)
    after: tuple[float, int] | None = None
    async with call.ctx.db.connect() as conn:
        while left is None or left > 0:
            size = CSV_PAGE if left is None else min(CSV_PAGE, left)
            rows = await queries.list_calls(conn, cond, f, limit=size, offset=offset, after=after)
            for row in rows:
                writer.writerow([_csv_cell(row[c]) for c in CSV_COLUMNS])
            await resp.write(buf.getvalue().encode())
            buf.seek(0)
            buf.truncate()
            if rows:
                after, offset = (rows[-1]["started_at"], rows[-1]["id"]), 0
            if left is not None:
                left -= len(rows)
            if len(rows) < size:
                break
    await resp.write_eof()
    return resp


async def _list_calls(call: Call) -> web.StreamResponse:
    p = call.caller
    f = _cdr_filter(call.query)
    cond = cdr_condition(p, scope_of(p, "calls:read"))
    if _wants_csv(call):
        return await _calls_csv(call, cond, f)
    page = params.paging(call.query)
    async with call.ctx.db.connect() as conn:
        items = await queries.list_calls(conn, cond, f, limit=page.limit, offset=page.offset)
        total = await queries.count_calls(conn, cond, f)
    return json_response({"items": items, "total": total, "limit": page.limit, "offset": page.offset})


def _recording_file(stored: str, base: Path | None) -> Path | None:
    path = Path(stored)
    if not path.is_absolute():
        if base is None:
            return None
        path = base / path
    path = path.resolve()
    if base is not None and not path.is_relative_to(base.resolve()):
        return None
    return path if path.is_file() else None


async def _recording(call: Call) -> web.StreamResponse:
    p = call.caller
    raw = call.request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError("bad_request", f"parameter 'id': expected a call id (an integer), got {raw[:40]!r}")
    cond = cdr_condition(p, scope_of(p, "recordings:read"))
    async with call.ctx.db.connect() as conn:
        row = await queries.get_call(conn, cond, int(raw))
    if row is None:
        raise _not_found("call")
    stored = row["recording_path"]
    path = None if stored is None else _recording_file(str(stored), call.ctx.recordings_dir)
    if path is None:
        raise _not_found("recording of this call")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "audio/wav",
            "Content-Disposition": f'attachment; filename="call-{raw}.wav"',
        },
    )


async def _analytics(call: Call) -> web.StreamResponse:
    p = call.caller
    f = _cdr_filter(call.query)
    scope = scope_of(p, "analytics:read")
    async with call.ctx.db.connect() as conn:
        doc = await queries.analytics(conn, cdr_condition(p, scope), f, dialect=call.ctx.db.dialect)
    return json_response({"scope": scope.name.lower(), "since": f.since, "until": f.until, **doc})


async def _billing(call: Call) -> web.StreamResponse:
    f = _cdr_filter(call.query)
    async with call.ctx.db.connect() as conn:
        doc = await queries.billing(conn, f, dialect=call.ctx.db.dialect)
    return json_response({"since": f.since, "until": f.until, **doc})


# --- directory --------------------------------------------------------------------------


async def _directory_sync(call: Call) -> web.StreamResponse:
    dry_run = bool(params.boolean(call.query, "dry_run"))
    sync = call.ctx.sync
    if sync is None:
        raise ApiError(
            "unavailable", "directory sync is not configured: add a [directory] table to the config"
        )
    if call.ctx.sync_lock.locked():
        raise ApiError("conflict", "a directory sync is already running")
    async with call.ctx.sync_lock:
        try:
            report = await sync(dry_run)
        except Exception as exc:  # reported to the admin who asked
            raise ApiError("unavailable", f"directory sync failed: {exc}") from exc
    return json_response(dict(report))


async def _directory_runs(call: Call) -> web.StreamResponse:
    limit = params.integer(call.query, "limit", 50, low=1, high=500)
    async with call.ctx.db.connect() as conn:
        found = await runs.list_runs(conn, limit=limit)
    return json_response({"items": [dataclasses.asdict(r) for r in found]})


async def _openapi(call: Call) -> web.StreamResponse:
    return json_response(openapi_document(ROUTES, version=__version__))


# --- the table --------------------------------------------------------------------------

_PAGING: Final = (
    Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": params.MAX_LIMIT, "default": 100}),
    Param("offset", "query", {"type": "integer", "minimum": 0, "default": 0}),
)
_RANGE: Final = (
    Param("from", "query", {"type": "string"}, "Calls started at or after: epoch seconds or ISO 8601 (UTC)."),
    Param("to", "query", {"type": "string"}, "Calls started before: epoch seconds or ISO 8601 (UTC)."),
    Param("direction", "query", {"type": "string", "enum": sorted(DIRECTIONS)}),
    Param("result", "query", {"type": "string", "enum": sorted(DISPOSITIONS)}, "The disposition."),
)
_EXTENSION: Final = Param("extension", "path", {"type": "string"})

ROUTES: Final[tuple[Route, ...]] = (
    Route("GET", "/openapi.json", _openapi, "This document.", auth=False, tag="meta"),
    Route(
        "POST",
        "/auth/login",
        _login,
        "Log in with a directory or local password; returns a session token.",
        auth=False,
        body=LoginIn,
        response=LoginOut,
        errors=(400, 401, 429, 503),
        tag="auth",
    ),
    Route("POST", "/auth/logout", _logout, "Revoke the session token used.", errors=(400,), tag="auth"),
    Route("GET", "/me", _me, "The caller: roles, permissions and own profile.", response=MeOut, tag="auth"),
    Route(
        "GET",
        "/users",
        _list_users,
        "Users in the caller's scope; fields filtered by role.",
        need=Need(resource="users:read"),
        params=(
            Param("department", "query", {"type": "string"}),
            Param("enabled", "query", {"type": "boolean"}),
            Param(
                "q", "query", {"type": "string"}, "Substring of extension or name (and e-mail if visible)."
            ),
            *_PAGING,
        ),
        response=UserList,
        errors=(400,),
        tag="users",
    ),
    Route(
        "GET",
        "/users/{extension}",
        _get_user,
        "One user (404 when outside the caller's scope).",
        need=Need(resource="users:read"),
        params=(_EXTENSION,),
        response=UserOut,
        errors=(404,),
        tag="users",
    ),
    Route(
        "GET",
        "/users/{extension}/photo",
        _user_photo,
        "The user's directory photo (JPEG); 404 when there is none or the user is outside the scope.",
        need=Need(resource="users:read"),
        params=(_EXTENSION,),
        media=("image/jpeg",),
        errors=(404,),
        tag="users",
    ),
    Route(
        "GET",
        "/users/{extension}/sip-credentials",
        _sip_credentials,
        "SIP account for provisioning a phone: the owner and administrators only.",
        need=Need(resource="sip-credentials"),
        params=(_EXTENSION,),
        response=SipCredentialsOut,
        errors=(404,),
        tag="users",
    ),
    Route(
        "GET",
        "/calls",
        _list_calls,
        "Call detail records in the caller's scope, newest first; CSV with Accept: text/csv or format=csv.",
        need=Need(resource="calls:read"),
        params=(*_RANGE, *_PAGING, Param("format", "query", {"type": "string", "enum": ["json", "csv"]})),
        response=CallList,
        media=("application/json", "text/csv"),
        errors=(400,),
        tag="calls",
    ),
    Route(
        "GET",
        "/calls/{id}/recording",
        _recording,
        "The call's recording (WAV).",
        need=Need(resource="recordings:read"),
        params=(Param("id", "path", {"type": "integer"}),),
        media=("audio/wav",),
        errors=(400, 404),
        tag="calls",
    ),
    Route(
        "GET",
        "/analytics/calls",
        _analytics,
        "Call counts and durations by day, direction and result (department or all).",
        need=Need(resource="analytics:read"),
        params=_RANGE[:2],
        response=AnalyticsOut,
        errors=(400,),
        tag="analytics",
    ),
    Route(
        "GET",
        "/billing/summary",
        _billing,
        "Billable seconds and minutes over all calls.",
        need=Need(permission=Permission.BILLING_READ),
        params=_RANGE[:3],
        response=BillingOut,
        errors=(400,),
        tag="billing",
    ),
    Route(
        "POST",
        "/directory/sync",
        _directory_sync,
        "Run a directory sync now (dry_run=true: report the changes, apply nothing).",
        need=Need(permission=Permission.DIRECTORY_SYNC),
        params=(Param("dry_run", "query", {"type": "boolean", "default": False}),),
        response=SyncOut,
        errors=(400, 409, 503),
        tag="directory",
    ),
    Route(
        "GET",
        "/directory/runs",
        _directory_runs,
        "Reports of past directory sync runs, newest first.",
        need=Need(permission=Permission.DIRECTORY_RUNS),
        params=(Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}),),
        response=RunList,
        errors=(400,),
        tag="directory",
    ),
)
