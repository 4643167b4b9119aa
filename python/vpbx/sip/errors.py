"""The one exception of the SIP message layer.

A malformed message must get a clear answer and lose nothing (DESIGN.md rule 7): the
error says which status to answer with (RFC 3261 §21; 400 for syntax, 505 for a version
we do not speak, 416 for a Request-URI scheme we do not handle, 413/513 for sizes), and,
when the message was a request whose Via can still be read, the header fields needed to
build that answer (§8.2.6). Without them the message cannot be answered: `drop` is true.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .status import reason_phrase

if TYPE_CHECKING:
    from .fields import Via
    from .headers import Headers
    from .message import Response


class SipParseError(ValueError):
    """A message (or one of its header fields) that does not follow the grammar.

    Attributes:
        status: the status code to answer a request with (400, 413, 416, 505, 513, ...).
        reason: the default reason phrase of `status`.
        detail: what exactly is wrong, for logs (never sent on the wire).
        headers: the request's header fields when an answer can be built, else None.
        top_via: the topmost Via, read leniently, where the answer goes (§18.2.2).
    """

    status: int
    reason: str
    detail: str
    headers: Headers | None
    top_via: Via | None

    def __init__(self, detail: str, status: int = 400) -> None:
        super().__init__(f"{status} {reason_phrase(status)}: {detail}")
        self.status = status
        self.reason = reason_phrase(status)
        self.detail = detail
        self.headers = None
        self.top_via = None

    @property
    def drop(self) -> bool:
        """True when no answer can be sent: a response, or a request without a usable Via."""
        return self.headers is None or self.top_via is None

    def response(self, to_tag: str | None = None) -> Response | None:
        """The error response to send (Via, From, To, Call-ID, CSeq copied per §8.2.6.2),
        or None when the message must be dropped."""
        if self.headers is None or self.top_via is None:
            return None
        from .message import response_from_headers  # noqa: PLC0415 (import cycle)

        return response_from_headers(self.headers, self.status, self.reason, to_tag)
