"""Call detail records: one row per call, written when the call ends.

Listing is newest first with filters (time range on `started_at`, direction,
disposition, parties) and offset paging; `count_cdrs` takes the same filters.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .schema import cdrs

DIRECTIONS: Final = frozenset({"internal", "inbound", "outbound"})
DISPOSITIONS: Final = frozenset({"answered", "no-answer", "busy", "failed", "cancelled", "rejected"})
MAX_PAGE: Final = 1000


@dataclass(frozen=True, slots=True)
class Cdr:
    call_id: str
    direction: str
    from_number: str
    to_number: str
    started_at: float
    disposition: str
    answered_at: float | None = None
    ended_at: float | None = None
    hangup_cause: str | None = None
    duration_s: float = 0.0
    billsec: float = 0.0
    recording_path: str | None = None
    id: int | None = None

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, not {self.direction!r}")
        if self.disposition not in DISPOSITIONS:
            raise ValueError(f"disposition must be one of {sorted(DISPOSITIONS)}, not {self.disposition!r}")


@dataclass(frozen=True, slots=True)
class CdrFilter:
    since: float | None = None  # started_at >= since
    until: float | None = None  # started_at < until
    direction: str | None = None
    disposition: str | None = None
    parties: Collection[str] | None = None  # calls from or to any of these (own / department)
    call_id: str | None = None

    def conditions(self) -> list[sa.ColumnElement[bool]]:
        where: list[sa.ColumnElement[bool]] = []
        if self.since is not None:
            where.append(cdrs.c.started_at >= self.since)
        if self.until is not None:
            where.append(cdrs.c.started_at < self.until)
        if self.direction is not None:
            where.append(cdrs.c.direction == self.direction)
        if self.disposition is not None:
            where.append(cdrs.c.disposition == self.disposition)
        if self.parties is not None:
            parties = list(self.parties)
            where.append(sa.or_(cdrs.c.from_number.in_(parties), cdrs.c.to_number.in_(parties)))
        if self.call_id is not None:
            where.append(cdrs.c.call_id == self.call_id)
        return where


def _row(cdr: Cdr) -> dict[str, Any]:
    values = asdict(cdr)
    del values["id"]
    return values


async def insert_cdr(conn: AsyncConnection, cdr: Cdr) -> int:
    result = await conn.execute(sa.insert(cdrs).values(_row(cdr)).returning(cdrs.c.id))
    return int(result.scalar_one())


async def insert_cdrs(conn: AsyncConnection, records: Iterable[Cdr]) -> int:
    rows = [_row(c) for c in records]
    if rows:
        await conn.execute(sa.insert(cdrs), rows)
    return len(rows)


async def list_cdrs(
    conn: AsyncConnection, where: CdrFilter = CdrFilter(), *, limit: int = 100, offset: int = 0
) -> list[Cdr]:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
    if offset < 0:
        raise ValueError("offset must not be negative")
    query = (
        sa.select(cdrs)
        .where(*where.conditions())
        .order_by(cdrs.c.started_at.desc(), cdrs.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [Cdr(**r._mapping) for r in await conn.execute(query)]


async def count_cdrs(conn: AsyncConnection, where: CdrFilter = CdrFilter()) -> int:
    query = sa.select(sa.func.count()).select_from(cdrs).where(*where.conditions())
    return int((await conn.execute(query)).scalar_one())
