"""The sans-IO NG server: datagram in, datagram out.

:meth:`NgServer.handle_datagram` ties the pieces together: cut off the cookie
(:mod:`vpbx.ng.message`), answer retransmissions from the reply cache, decode the dictionary
(:mod:`vpbx.ng.bencode`, bencode or JSON), run the command (:mod:`vpbx.ng.commands`) and
encode the reply in the request's format with the request's cookie. A datagram without a
recoverable cookie cannot be answered; it is dropped and counted. The transport (UDP, TCP,
WebSocket) lives in ``vpbx.io``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from vpbx.ng import errors
from vpbx.ng.backend import MediaBackend
from vpbx.ng.bencode import MAX_SIZE, Format, NgDecodeError, Value, decode_document, encode_document
from vpbx.ng.commands import NgCommands, Reply, error_reply
from vpbx.ng.message import NgFramingError, ReplyCache, join, split

__all__ = ["NgOutcome", "NgServer", "ServerCounters"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NgOutcome:
    """What one datagram came to, for logs and metrics. ``result`` is ``ok`` or ``error`` for an
    executed request, ``retransmission`` for a reply from the cache, ``dropped`` for a datagram
    that cannot be answered. ``command`` is the canonical name, ``None`` when the request named
    none we know (``reason`` then says why)."""

    reply: bytes | None
    result: str
    command: str | None = None
    call_id: str | None = None
    from_tag: str | None = None
    reason: str | None = None


def _text(request: dict[bytes, Value], key: bytes) -> str | None:
    v = request.get(key)
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else None


@dataclass
class ServerCounters:
    datagrams: int = 0
    dropped: int = 0  # no cookie: not answerable
    decode_errors: int = 0  # answered with an error
    retransmissions: int = 0  # answered from the cache
    executed: int = 0  # commands run


class NgServer:
    """One NG endpoint. ``now`` passed to :meth:`handle_datagram` is UNIX time in seconds
    (it stamps calls and ages the retransmission cache)."""

    def __init__(
        self,
        backend: MediaBackend,
        *,
        cache_ttl: float = 30.0,
        cache_entries: int = 20_000,
        max_size: int = MAX_SIZE,
        max_calls: int = 100_000,
    ) -> None:
        self.commands = NgCommands(backend, max_calls=max_calls)
        self.cache = ReplyCache(cache_ttl, cache_entries)
        self.max_size = max_size
        self.counters = ServerCounters()

    def handle_datagram(self, data: bytes, source: tuple[str, int], now: float) -> bytes | None:
        """The reply to send back to ``source``, or None to send nothing."""
        return self.handle(data, source, now).reply

    def handle(self, data: bytes, source: tuple[str, int], now: float) -> NgOutcome:
        """Like :meth:`handle_datagram`, also telling what the request was and how it went."""
        self.counters.datagrams += 1
        try:
            frame = split(data)
        except NgFramingError as e:
            self.counters.dropped += 1
            log.debug("NG datagram from %s dropped: %s", source, e)
            return NgOutcome(None, "dropped", reason=str(e))
        cached = self.cache.get(source, frame.cookie, now)
        if cached is not None:
            self.counters.retransmissions += 1
            return NgOutcome(cached, "retransmission")
        outcome, reply, fmt = self._execute(frame.body, source, now)
        try:
            body = encode_document(reply, fmt)
        except (TypeError, ValueError):
            log.exception("NG reply could not be encoded")
            reply = error_reply(errors.INTERNAL)
            body = encode_document(reply, fmt)
        out = join(frame.cookie, body)
        self.cache.put(source, frame.cookie, out, now)
        error = reply.get("result") == "error"
        reason = reply.get("error-reason") if error else reply.get("warning")
        return replace(
            outcome,
            reply=out,
            result="error" if error else "ok",
            reason=reason if isinstance(reason, str) else None,
        )

    def _execute(self, body: bytes, source: tuple[str, int], now: float) -> tuple[NgOutcome, Reply, Format]:
        fmt = Format.JSON if body[:1] == b"{" else Format.BENCODE
        blank = NgOutcome(None, "error")
        if not body:
            self.counters.decode_errors += 1
            return blank, error_reply(errors.NO_PAYLOAD), fmt
        try:
            request, fmt = decode_document(body, max_size=self.max_size)
        except NgDecodeError as e:
            self.counters.decode_errors += 1
            if body[:1] == b"d":
                reason = errors.BAD_BENCODE
            elif body[:1] == b"{":
                reason = errors.BAD_JSON
            else:
                reason = errors.BAD_FORMAT
            return blank, error_reply(f"{reason}: {e}"), fmt
        self.counters.executed += 1
        handled = self.commands.handle_request(request, source, now)
        outcome = NgOutcome(
            None,
            "ok",
            handled.command,
            _text(request, b"call-id"),
            _text(request, b"from-tag"),
        )
        return outcome, handled.reply, fmt
