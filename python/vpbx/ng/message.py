"""NG message framing and the retransmission cache.

Every NG message is ``<cookie> <dictionary>``: a cookie chosen by the client, one space, then
the document. A reply carries the request's cookie, which is how the client matches it, and a
request that arrives again with the same cookie is a retransmission: it is answered with the
reply already given, not executed a second time (NG protocol document, introduction).

Sans-IO: time is an argument (``now``, seconds), nothing here reads a clock.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["MAX_COOKIE", "Frame", "NgFramingError", "ReplyCache", "join", "split"]

#: Longest cookie accepted. Clients use short tokens (Kamailio: ``<pid>_<counter>``).
MAX_COOKIE = 128


class NgFramingError(ValueError):
    """No cookie can be recovered from a datagram: it cannot be answered at all."""


@dataclass(frozen=True, slots=True)
class Frame:
    cookie: bytes
    body: bytes


def split(datagram: bytes) -> Frame:
    """Cut a message at its first space into cookie and document."""
    space = datagram.find(b" ", 0, MAX_COOKIE + 1)
    if space < 0:
        if len(datagram) > MAX_COOKIE and b" " in datagram:
            raise NgFramingError(f"cookie longer than {MAX_COOKIE} bytes")
        raise NgFramingError("no space after the cookie")
    if space == 0:
        raise NgFramingError("empty cookie")
    cookie = bytes(datagram[:space])
    if any(b < 0x21 or b == 0x7F for b in cookie):
        raise NgFramingError("cookie holds control characters")
    return Frame(cookie, bytes(datagram[space + 1 :]))


def join(cookie: bytes, body: bytes) -> bytes:
    """A message: ``<cookie> <body>``."""
    return cookie + b" " + body


Source = tuple[str, int]


class ReplyCache:
    """Replies by (source address, cookie), kept ``ttl`` seconds, at most ``max_entries`` of them
    and at most ``max_bytes`` of reply data (the oldest go first when full).

    rtpengine keeps cookies for 30 to 60 s; clients retransmit within a few seconds, so 30 s
    (the default) covers every retransmission a client makes.
    """

    def __init__(self, ttl: float = 30.0, max_entries: int = 20_000, max_bytes: int = 64 << 20) -> None:
        if ttl <= 0 or max_entries <= 0 or max_bytes <= 0:
            raise ValueError("ttl, max_entries and max_bytes must be positive")
        self.ttl = ttl
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[Source, bytes], tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def _expire(self, now: float) -> None:
        # Entries are stored in insertion order and all live `ttl`, so expired ones are in front.
        # (A clock that steps backwards only delays expiry.)
        while self._entries:
            key, (expires, reply) = next(iter(self._entries.items()))
            if expires > now:
                break
            del self._entries[key]
            self._bytes -= len(reply)

    def get(self, source: Source, cookie: bytes, now: float) -> bytes | None:
        """The reply cached for this request, or None."""
        self._expire(now)
        hit = self._entries.get((source, cookie))
        if hit is None:
            return None
        self.hits += 1
        return hit[1]

    def put(self, source: Source, cookie: bytes, reply: bytes, now: float) -> None:
        """Remember the reply given to (source, cookie) until ``now + ttl``."""
        self._expire(now)
        key = (source, cookie)
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old[1])
        if len(reply) > self.max_bytes:
            return
        while self._entries and (
            len(self._entries) >= self.max_entries or self._bytes + len(reply) > self.max_bytes
        ):
            _, (_, dropped) = self._entries.popitem(last=False)
            self._bytes -= len(dropped)
            self.evicted += 1
        self._entries[key] = (now + self.ttl, reply)
        self._bytes += len(reply)
