"""Every error the API answers, in one table: code -> HTTP status. The body is always
``{"error": {"code": CODE, "message": TEXT}}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["ERROR_STATUS", "ApiError"]

ERROR_STATUS: Final[Mapping[str, int]] = {
    "bad_request": 400,  # a parameter or the body is wrong; the message names it
    "unauthorized": 401,  # no token, an unknown, revoked or expired one, or a failed login
    "forbidden": 403,  # the message names the missing permission, nothing about the target
    "not_found": 404,  # no such target, or one outside the caller's scope (same answer)
    "method_not_allowed": 405,
    "not_acceptable": 406,
    "conflict": 409,  # e.g. a directory sync is already running
    "payload_too_large": 413,
    "too_many_requests": 429,  # login attempts from this address are paused
    "internal": 500,
    "unavailable": 503,  # a part the request needs is not configured or not reachable
}


class ApiError(Exception):
    """Raised by handlers and the auth step; the error middleware turns it into JSON."""

    def __init__(self, code: str, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        if code not in ERROR_STATUS:
            raise ValueError(f"unknown API error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = ERROR_STATUS[code]
        self.headers = dict(headers or {})

    def body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}
