"""Company numbers (DIDs) and where an inbound call to one goes.

A number carries many simultaneous calls: `max_calls` is a limit the router enforces,
defaulting high (1000), not a line count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .errors import ConflictError
from .schema import numbers

TARGET_KINDS: Final = frozenset({"extension", "group", "ivr", "trunk"})
DEFAULT_MAX_CALLS: Final = 1000
_NUMBER_RE: Final = re.compile(r"\+?[0-9]{2,20}")
_SEPARATORS: Final = re.compile(r"[\s\-().]")


@dataclass(frozen=True, slots=True)
class Number:
    id: int
    e164: str
    target_kind: str
    target_value: str
    max_calls: int
    enabled: bool
    created_at: float


def normalize_number(text: str) -> str:
    """ "+7 (495) 123-45-67" -> "+74951234567"; ValueError for anything not a number."""
    digits = _SEPARATORS.sub("", text)
    if not _NUMBER_RE.fullmatch(digits):
        raise ValueError(f"not a phone number: {text!r}")
    return digits


def _number(m: sa.RowMapping) -> Number:
    return Number(**m)


async def add_number(
    conn: AsyncConnection,
    number: str,
    target_kind: str,
    target_value: str,
    *,
    now: float,
    max_calls: int = DEFAULT_MAX_CALLS,
) -> Number:
    if target_kind not in TARGET_KINDS:
        raise ValueError(f"target kind must be one of {sorted(TARGET_KINDS)}, not {target_kind!r}")
    if max_calls < 1:
        raise ValueError("max_calls must be at least 1")
    e164 = normalize_number(number)
    if await get_number(conn, e164) is not None:
        raise ConflictError(f"number {e164} already exists")
    try:
        await conn.execute(
            sa.insert(numbers).values(
                e164=e164,
                target_kind=target_kind,
                target_value=target_value,
                max_calls=max_calls,
                enabled=True,
                created_at=now,
            )
        )
    except sa.exc.IntegrityError as exc:
        raise ConflictError(f"number {e164} already exists") from exc
    found = await get_number(conn, e164)
    assert found is not None
    return found


async def get_number(conn: AsyncConnection, number: str) -> Number | None:
    row = (await conn.execute(sa.select(numbers).where(numbers.c.e164 == number))).first()
    return None if row is None else _number(row._mapping)


async def list_numbers(conn: AsyncConnection) -> list[Number]:
    return [_number(r._mapping) for r in await conn.execute(sa.select(numbers).order_by(numbers.c.e164))]


async def remove_number(conn: AsyncConnection, number: str) -> bool:
    result = await conn.execute(sa.delete(numbers).where(numbers.c.e164 == normalize_number(number)))
    return result.rowcount > 0


async def route_number(conn: AsyncConnection, dialled: str) -> Number | None:
    """The enabled number a call to `dialled` (Request-URI user part or To) lands on.
    Matches with and without the leading "+", since trunks send both forms."""
    try:
        e164 = normalize_number(dialled)
    except ValueError:
        return None
    bare = e164.removeprefix("+")
    query = (
        sa.select(numbers)
        .where(numbers.c.e164.in_([bare, "+" + bare]), numbers.c.enabled.is_(True))
        .order_by(numbers.c.e164.desc())  # an exact "+..." entry first
    )
    row = (await conn.execute(query)).first()
    return None if row is None else _number(row._mapping)
