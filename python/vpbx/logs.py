"""Logging for vpbx services: one JSON object per line (structlog), on standard error.

Every line has ``timestamp`` (UTC, ISO 8601), ``level`` and ``event`` (a short snake_case
name such as ``ng_command`` or ``media_timeout``) plus the event's own fields. Records of the
standard ``logging`` module (libraries, ``vpbx.ng``) come out in the same shape.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

__all__ = ["configure_logging", "get_logger"]

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def _event_first(logger: Any, method: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    """``timestamp``, ``level`` and ``event`` lead each line, so it reads left to right."""
    head: dict[str, Any] = {k: event.pop(k) for k in ("timestamp", "level", "event") if k in event}
    return {**head, **event}


def configure_logging(level: str = "info") -> None:
    """JSON lines at ``level`` (debug, info, warning, error) and above, for structlog and
    the standard library alike."""
    number = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            *_SHARED,
            structlog.processors.format_exc_info,
            _event_first,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(number),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _event_first,
                structlog.processors.JSONRenderer(sort_keys=False),
            ],
            foreign_pre_chain=[*_SHARED, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(number)


def get_logger(name: str) -> Any:
    """A structlog logger with ``component=name``; lazy, so it follows :func:`configure_logging`
    even when made at import time."""
    return structlog.get_logger(component=name)
