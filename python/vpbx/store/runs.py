"""Directory sync reports (issue 5: every run writes a report kept in the database)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .schema import directory_runs

RUN_STATUSES: Final = frozenset({"running", "ok", "aborted", "failed"})


@dataclass(frozen=True, slots=True)
class DirectoryRun:
    started_at: float
    status: str
    finished_at: float | None = None
    dry_run: bool = False
    seen: int = 0
    created: int = 0
    updated: int = 0
    disabled: int = 0
    removed: int = 0
    conflicts: int = 0
    errors: int = 0
    report: dict[str, Any] = field(default_factory=dict)
    id: int | None = None

    def __post_init__(self) -> None:
        if self.status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {sorted(RUN_STATUSES)}, not {self.status!r}")


async def record_run(conn: AsyncConnection, run: DirectoryRun) -> int:
    values = asdict(run)
    del values["id"]
    values["report"] = json.dumps(run.report, sort_keys=True, default=str)
    result = await conn.execute(sa.insert(directory_runs).values(values).returning(directory_runs.c.id))
    return int(result.scalar_one())


async def list_runs(conn: AsyncConnection, *, limit: int = 50) -> list[DirectoryRun]:
    query = sa.select(directory_runs).order_by(directory_runs.c.started_at.desc(), directory_runs.c.id.desc())
    out = []
    for row in await conn.execute(query.limit(limit)):
        values = dict(row._mapping)
        values["report"] = json.loads(values["report"] or "{}")
        out.append(DirectoryRun(**values))
    return out
