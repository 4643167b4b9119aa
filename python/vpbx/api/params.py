"""Query-string parsing for the API (pure): every bad value raises a 400 naming the
parameter, with what was expected."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Final

from .errors import ApiError

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "Paging", "boolean", "choice", "paging", "text", "timestamp"]

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
_TRUE: Final = frozenset({"true", "1", "yes"})
_FALSE: Final = frozenset({"false", "0", "no"})


def _bad(name: str, expected: str, value: str) -> ApiError:
    shown = value if len(value) <= 40 else value[:40] + "…"
    return ApiError("bad_request", f"parameter {name!r}: expected {expected}, got {shown!r}")


def integer(query: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad(name, f"an integer from {low} to {high}", raw) from None
    if not low <= value <= high:
        raise _bad(name, f"an integer from {low} to {high}", raw)
    return value


class Paging:
    __slots__ = ("limit", "offset")

    def __init__(self, limit: int, offset: int) -> None:
        self.limit = limit
        self.offset = offset


def paging(query: Mapping[str, str], *, max_limit: int = MAX_LIMIT) -> Paging:
    return Paging(
        integer(query, "limit", DEFAULT_LIMIT, low=1, high=max_limit),
        integer(query, "offset", 0, low=0, high=2**31 - 1),
    )


def boolean(query: Mapping[str, str], name: str) -> bool | None:
    raw = query.get(name)
    if raw is None:
        return None
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise _bad(name, "true or false", raw)


def choice(query: Mapping[str, str], name: str, allowed: Collection[str]) -> str | None:
    raw = query.get(name)
    if raw is None:
        return None
    if raw not in allowed:
        raise _bad(name, "one of " + ", ".join(sorted(allowed)), raw)
    return raw


def text(query: Mapping[str, str], name: str, *, max_len: int = 255) -> str | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not raw or len(raw) > max_len:
        raise _bad(name, f"1 to {max_len} characters", raw)
    return raw


def timestamp(query: Mapping[str, str], name: str) -> float | None:
    """Epoch seconds, or an ISO 8601 date or date-time (UTC when no offset is given)."""
    raw = query.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            raise _bad(name, "epoch seconds or an ISO 8601 date-time", raw) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    if not math.isfinite(value):
        raise _bad(name, "epoch seconds or an ISO 8601 date-time", raw)
    return value
