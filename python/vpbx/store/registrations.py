"""Registrar bindings (RFC 3261 §10.3): one row per (AOR username, Contact URI).

These functions write straight to the database; the SIP path goes through
`vpbx.io.registration_writer.RegistrationWriter`, which batches them off the request path.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from .schema import registrations


@dataclass(frozen=True, slots=True)
class Binding:
    username: str  # the AOR's user part
    contact: str  # the Contact URI, as registered
    expires_at: float  # epoch seconds
    received: str | None = None  # "host:port" the REGISTER came from (RFC 3581)
    transport: str = "udp"
    call_id: str = ""
    cseq: int = 0
    user_agent: str | None = None
    instance_id: str | None = None  # +sip.instance (RFC 5626 §4.1)
    reg_id: int | None = None  # reg-id (RFC 5626 §4.2)
    q: float | None = None

    def remaining(self, now: float) -> float:
        return self.expires_at - now

    def is_current(self, now: float) -> bool:
        return self.expires_at > now


BINDING_FIELDS: Final = tuple(Binding.__dataclass_fields__)
_COLUMNS: Final = tuple(registrations.c[name] for name in BINDING_FIELDS)


def _binding(m: sa.RowMapping) -> Binding:
    return Binding(**m)


def _upsert_statement(conn: AsyncConnection) -> Any:
    """INSERT … ON CONFLICT (username, contact) DO UPDATE, in the connection's dialect."""
    return _upsert_for(conn.dialect.name)


@functools.cache
def _upsert_for(dialect: str) -> Any:
    # Built once per dialect: constructing `excluded` walks the table's columns, which cost
    # 7% of a loaded registrar's CPU when it was rebuilt on every flush.
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(registrations)
    changed = {name: stmt.excluded[name] for name in (*BINDING_FIELDS, "updated_at")}
    del changed["username"], changed["contact"]
    return stmt.on_conflict_do_update(index_elements=["username", "contact"], set_=changed)


async def upsert_bindings(conn: AsyncConnection, bindings: Iterable[Binding], *, now: float) -> int:
    rows = [asdict(b) | {"updated_at": now} for b in bindings]
    if rows:
        await conn.execute(_upsert_statement(conn), rows)
    return len(rows)


async def upsert_binding(conn: AsyncConnection, binding: Binding, *, now: float) -> None:
    await upsert_bindings(conn, [binding], now=now)


async def remove_binding(conn: AsyncConnection, username: str, contact: str) -> bool:
    result = await conn.execute(
        sa.delete(registrations).where(
            registrations.c.username == username, registrations.c.contact == contact
        )
    )
    return result.rowcount > 0


async def remove_all_bindings(conn: AsyncConnection, username: str) -> int:
    """`Contact: *` with Expires: 0 (RFC 3261 §10.3 step 6)."""
    result = await conn.execute(sa.delete(registrations).where(registrations.c.username == username))
    return result.rowcount


def _ordered(query: sa.Select[Any]) -> sa.Select[Any]:
    # highest q first (absent q counts as 1.0), then the most recent registration
    return query.order_by(sa.func.coalesce(registrations.c.q, 1.0).desc(), registrations.c.expires_at.desc())


async def current_bindings(conn: AsyncConnection, username: str, *, now: float) -> list[Binding]:
    query = sa.select(*_COLUMNS).where(registrations.c.username == username, registrations.c.expires_at > now)
    return [_binding(r._mapping) for r in await conn.execute(_ordered(query))]


async def all_current_bindings(conn: AsyncConnection, *, now: float) -> list[Binding]:
    query = sa.select(*_COLUMNS).where(registrations.c.expires_at > now)
    return [_binding(r._mapping) for r in await conn.execute(_ordered(query))]


async def purge_expired(conn: AsyncConnection, *, now: float) -> int:
    result = await conn.execute(sa.delete(registrations).where(registrations.c.expires_at <= now))
    return result.rowcount
