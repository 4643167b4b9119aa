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
from dataclasses import dataclass

from vpbx.ng import errors
from vpbx.ng.backend import MediaBackend
from vpbx.ng.bencode import MAX_SIZE, Format, NgDecodeError, decode_document, encode_document
from vpbx.ng.commands import NgCommands, Reply, error_reply
from vpbx.ng.message import NgFramingError, ReplyCache, join, split

__all__ = ["NgServer", "ServerCounters"]

log = logging.getLogger(__name__)


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
        self.counters.datagrams += 1
        try:
            frame = split(data)
        except NgFramingError as e:
            self.counters.dropped += 1
            log.debug("NG datagram from %s dropped: %s", source, e)
            return None
        cached = self.cache.get(source, frame.cookie, now)
        if cached is not None:
            self.counters.retransmissions += 1
            return cached
        reply, fmt = self._execute(frame.body, source, now)
        try:
            body = encode_document(reply, fmt)
        except (TypeError, ValueError):
            log.exception("NG reply could not be encoded")
            body = encode_document(error_reply(errors.INTERNAL), fmt)
        out = join(frame.cookie, body)
        self.cache.put(source, frame.cookie, out, now)
        return out

    def _execute(self, body: bytes, source: tuple[str, int], now: float) -> tuple[Reply, Format]:
        fmt = Format.JSON if body[:1] == b"{" else Format.BENCODE
        if not body:
            self.counters.decode_errors += 1
            return error_reply(errors.NO_PAYLOAD), fmt
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
            return error_reply(f"{reason}: {e}"), fmt
        self.counters.executed += 1
        return self.commands.handle(request, source, now), fmt
