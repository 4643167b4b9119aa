"""The API's reads: every query takes the caller's scope condition (vpbx.api.scoping)
in its WHERE clause, and shapes rows into the documented JSON objects with only the
fields the caller may see."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from vpbx.store.cdrs import CdrFilter
from vpbx.store.schema import cdrs, roles, sip_accounts, user_roles, users
from vpbx.store.users import USER_COLUMNS

from .rbac import Permission, Principal, visible_fields

__all__ = [
    "UserFilter",
    "analytics",
    "billing",
    "call_view",
    "count_calls",
    "get_call",
    "get_sip_credentials",
    "get_user_photo",
    "get_user_view",
    "list_calls",
    "list_user_views",
]

DAY_S = 86400

# The manager is resolved at read time: the user whose directory DN is the row's manager_dn
# (an indexed, unique column), so it is right however the sync ordered creates and renames.
_manager = users.alias("manager")
_USER_VIEW_COLUMNS = (
    *USER_COLUMNS,
    _manager.c.extension.label("manager_extension"),
    _manager.c.display_name.label("manager_name"),
)
_USER_VIEW_FROM = users.outerjoin(_manager, _manager.c.directory_dn == users.c.manager_dn)


@dataclass(frozen=True, slots=True)
class UserFilter:
    department: str | None = None
    enabled: bool | None = None
    q: str | None = None  # substring of the extension, name (and e-mail if visible)


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _user_where(principal: Principal, scope_cond: sa.ColumnElement[bool], f: UserFilter) -> list[Any]:
    where: list[Any] = [scope_cond]
    if f.department is not None:
        where.append(users.c.department == f.department)
    if f.enabled is not None:
        where.append(users.c.enabled == f.enabled)
    if f.q is not None:
        pattern = _like(f.q)
        searched = [users.c.extension, users.c.display_name]
        # searching a field the caller cannot see would reveal it one guess at a time
        if Permission.USERS_READ_CONTACT in principal.permissions:
            searched.append(users.c.email)
        where.append(sa.or_(*(c.ilike(pattern, escape="\\") for c in searched)))
    return where


async def _extras(
    conn: AsyncConnection, user_ids: Sequence[int]
) -> tuple[dict[int, str], dict[int, list[str]]]:
    """First SIP username and role names of each user."""
    names: dict[int, str] = {}
    grants: dict[int, list[str]] = defaultdict(list)
    if not user_ids:
        return names, grants
    q = (
        sa.select(sip_accounts.c.user_id, sip_accounts.c.username)
        .where(sip_accounts.c.user_id.in_(user_ids))
        .order_by(sip_accounts.c.user_id, sip_accounts.c.username)
    )
    for uid, name in await conn.execute(q):
        names.setdefault(int(uid), str(name))
    q2 = (
        sa.select(user_roles.c.user_id, roles.c.name)
        .join(roles, roles.c.id == user_roles.c.role_id)
        .where(user_roles.c.user_id.in_(user_ids))
        .order_by(user_roles.c.user_id, roles.c.name)
    )
    for uid, name in await conn.execute(q2):
        grants[int(uid)].append(str(name))
    return names, grants


def _view(
    principal: Principal, row: sa.RowMapping, sip_username: str | None, granted: list[str]
) -> dict[str, Any]:
    full = {
        "extension": row["extension"],
        "name": row["display_name"],
        "position": row["position"],
        "department": row["department"],
        "enabled": bool(row["enabled"]),
        "sip_username": sip_username,
        "email": row["email"],
        "phone": row["phone"],
        "mobile": row["mobile"],
        "roles": granted,
        "manager": None
        if row["manager_extension"] is None
        else {"extension": row["manager_extension"], "name": row["manager_name"]},
    }
    fields = visible_fields(principal, is_self=row["id"] == principal.user_id)
    return {k: full[k] for k in fields}


async def list_user_views(
    conn: AsyncConnection,
    principal: Principal,
    scope_cond: sa.ColumnElement[bool],
    f: UserFilter,
    *,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    where = _user_where(principal, scope_cond, f)
    total = int(
        (await conn.execute(sa.select(sa.func.count()).select_from(users).where(*where))).scalar_one()
    )
    query = (
        sa.select(*_USER_VIEW_COLUMNS)
        .select_from(_USER_VIEW_FROM)
        .where(*where)
        .order_by(users.c.extension)
        .limit(limit)
        .offset(offset)
    )
    rows = [r._mapping for r in await conn.execute(query)]
    names, grants = await _extras(conn, [int(r["id"]) for r in rows])
    return [_view(principal, r, names.get(r["id"]), grants.get(r["id"], [])) for r in rows], total


async def get_user_view(
    conn: AsyncConnection, principal: Principal, scope_cond: sa.ColumnElement[bool], extension: str
) -> dict[str, Any] | None:
    query = (
        sa.select(*_USER_VIEW_COLUMNS)
        .select_from(_USER_VIEW_FROM)
        .where(scope_cond, users.c.extension == extension)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    m = row._mapping
    names, grants = await _extras(conn, [int(m["id"])])
    return _view(principal, m, names.get(m["id"]), grants.get(m["id"], []))


async def get_user_photo(
    conn: AsyncConnection, scope_cond: sa.ColumnElement[bool], extension: str
) -> tuple[bytes | None, str | None] | None:
    """(photo bytes or None, its SHA-256) of a user in scope; None when the user is not."""
    query = sa.select(users.c.photo, users.c.photo_sha256).where(scope_cond, users.c.extension == extension)
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    photo, sha = row
    return (None if photo is None else bytes(photo)), sha


async def get_sip_credentials(
    conn: AsyncConnection, scope_cond: sa.ColumnElement[bool], extension: str
) -> dict[str, Any] | None:
    query = (
        sa.select(
            users.c.extension,
            sip_accounts.c.username,
            sip_accounts.c.secret,
            sip_accounts.c.realm,
            sip_accounts.c.enabled,
        )
        .join(users, users.c.id == sip_accounts.c.user_id)
        .where(scope_cond, users.c.extension == extension)
        .order_by(sip_accounts.c.username)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    m = row._mapping
    return {
        "extension": m["extension"],
        "username": m["username"],
        "password": m["secret"],
        "realm": m["realm"],
        "enabled": bool(m["enabled"]),
    }


def call_view(m: sa.RowMapping) -> dict[str, Any]:
    return {
        "id": m["id"],
        "call_id": m["call_id"],
        "direction": m["direction"],
        "from_number": m["from_number"],
        "to_number": m["to_number"],
        "started_at": m["started_at"],
        "answered_at": m["answered_at"],
        "ended_at": m["ended_at"],
        "result": m["disposition"],
        "hangup_cause": m["hangup_cause"],
        "duration_s": m["duration_s"],
        "billsec": m["billsec"],
        "has_recording": m["recording_path"] is not None,
    }


async def list_calls(
    conn: AsyncConnection,
    scope_cond: sa.ColumnElement[bool],
    f: CdrFilter,
    *,
    limit: int,
    offset: int = 0,
    after: tuple[float, int] | None = None,
) -> list[dict[str, Any]]:
    """Newest first. `after` (started_at, id) of the last row seen continues a listing
    (keyset paging: calls written meanwhile neither repeat nor shift rows)."""
    where = [scope_cond, *f.conditions()]
    if after is not None:
        started, last_id = after
        where.append(
            sa.or_(cdrs.c.started_at < started, sa.and_(cdrs.c.started_at == started, cdrs.c.id < last_id))
        )
    query = (
        sa.select(cdrs)
        .where(*where)
        .order_by(cdrs.c.started_at.desc(), cdrs.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [call_view(r._mapping) for r in await conn.execute(query)]


async def count_calls(conn: AsyncConnection, scope_cond: sa.ColumnElement[bool], f: CdrFilter) -> int:
    query = sa.select(sa.func.count()).select_from(cdrs).where(scope_cond, *f.conditions())
    return int((await conn.execute(query)).scalar_one())


async def get_call(
    conn: AsyncConnection, scope_cond: sa.ColumnElement[bool], call: int
) -> sa.RowMapping | None:
    row = (await conn.execute(sa.select(cdrs).where(scope_cond, cdrs.c.id == call))).first()
    return None if row is None else row._mapping


def _floor(dialect: str, x: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    if dialect == "sqlite":  # CAST truncates, = floor for the non-negative epochs we store
        return sa.cast(x, sa.Integer)
    return sa.cast(sa.func.floor(x), sa.Integer)


def _ceil(dialect: str, x: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    if dialect == "sqlite":
        trunc = sa.cast(x, sa.Integer)
        return trunc + sa.case((x > trunc, 1), else_=0)
    return sa.cast(sa.func.ceil(x), sa.Integer)


def _tally(calls: Any, duration: Any, billsec: Any) -> dict[str, Any]:
    return {"calls": int(calls or 0), "duration_s": float(duration or 0.0), "billsec": float(billsec or 0.0)}


_SUMS = (sa.func.count(), sa.func.sum(cdrs.c.duration_s), sa.func.sum(cdrs.c.billsec))


async def analytics(
    conn: AsyncConnection, scope_cond: sa.ColumnElement[bool], f: CdrFilter, *, dialect: str
) -> dict[str, Any]:
    """One grouped scan (day x direction x result), folded into the three views here."""
    day = _floor(dialect, cdrs.c.started_at / DAY_S).label("day")
    query = (
        sa.select(day, cdrs.c.direction, cdrs.c.disposition, *_SUMS)
        .where(scope_cond, *f.conditions())
        .group_by(day, cdrs.c.direction, cdrs.c.disposition)
    )
    zero = {"calls": 0, "duration_s": 0.0, "billsec": 0.0}
    total = dict(zero)
    days: dict[int, dict[str, Any]] = {}
    by: dict[str, dict[str, dict[str, Any]]] = {"by_direction": {}, "by_result": {}}
    for d, direction, disposition, n, dur, bill in await conn.execute(query):
        tally = _tally(n, dur, bill)
        row = days.setdefault(int(d), {"answered": 0, **zero})
        if disposition == "answered":
            row["answered"] += tally["calls"]
        for bucket in (
            total,
            row,
            by["by_direction"].setdefault(str(direction), dict(zero)),
            by["by_result"].setdefault(str(disposition), dict(zero)),
        ):
            for k, v in tally.items():
                bucket[k] += v
    by_day = [
        {"day": datetime.fromtimestamp(d * DAY_S, UTC).date().isoformat(), **days[d]} for d in sorted(days)
    ]
    return {
        "total": total,
        "by_day": by_day,
        "by_direction": dict(sorted(by["by_direction"].items())),
        "by_result": dict(sorted(by["by_result"].items())),
    }


async def billing(conn: AsyncConnection, f: CdrFilter, *, dialect: str) -> dict[str, Any]:
    where = f.conditions()
    is_answered = cdrs.c.disposition == "answered"
    minutes = sa.func.sum(sa.case((is_answered, _ceil(dialect, cdrs.c.billsec / 60.0)), else_=0))
    answered = sa.func.sum(sa.case((is_answered, 1), else_=0))
    calls, ans, bill, mins = (
        await conn.execute(
            sa.select(sa.func.count(), answered, sa.func.sum(cdrs.c.billsec), minutes).where(*where)
        )
    ).one()
    rows = await conn.execute(
        sa.select(cdrs.c.direction, *_SUMS)
        .where(*where)
        .group_by(cdrs.c.direction)
        .order_by(cdrs.c.direction)
    )
    return {
        "calls": int(calls or 0),
        "answered": int(ans or 0),
        "billsec": float(bill or 0.0),
        "billable_minutes": int(mins or 0),
        "by_direction": {str(k): _tally(n, dur, bill2) for k, n, dur, bill2 in rows},
    }
