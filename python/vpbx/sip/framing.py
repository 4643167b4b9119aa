"""Cutting SIP messages out of a TCP/TLS byte stream (RFC 3261 §18.3, §7.5; RFC 5626 §3.5.1).

A message ends `Content-Length` octets after the empty line that closes its header
section. CRLFs between messages are skipped; a double CRLF is a keep-alive ping the
transport answers with a single CRLF. Header section and body sizes are bounded, so a
peer cannot make the buffer grow without end.
"""

from __future__ import annotations

import re
from typing import Final

from .errors import SipParseError
from .parser import attach_request_context

_FOLD_RE: Final = re.compile(rb"\r\n[ \t]+")
_PING: Final = b"\r\n\r\n"
PONG: Final = b"\r\n"
"""What to send back for a PING (RFC 5626 §3.5.1)."""


class KeepAlive:
    """The double-CRLF ping of RFC 5626 §3.5.1."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "PING"


PING: Final = KeepAlive()

FramerItem = bytes | KeepAlive | SipParseError


def is_keepalive(datagram: bytes) -> bool:
    """A UDP datagram made of CRLFs only: a NAT keep-alive, not a message."""
    return bool(datagram) and not datagram.strip(b"\r\n")


class StreamFramer:
    """Splits a stream into messages. `feed` returns, in order, each complete message
    (bytes, for `parse_message(..., stream=True)`), PING for each keep-alive, and a
    SipParseError for what cannot be framed:

    - a body over `max_body` (413): its octets are skipped and framing goes on;
    - a header section over `max_header` (513) or a bad/duplicated Content-Length (400):
      framing is lost, `failed` becomes true and the transport should close the
      connection once it has answered (when `err.drop` is false).

    A message without Content-Length is passed on as having no body; parse_message then
    refuses it with a 400 that can be answered (§18.3).
    """

    __slots__ = ("_buf", "_scanned", "_skip", "failed", "max_body", "max_header")

    def __init__(self, max_header: int = 64 * 1024, max_body: int = 1024 * 1024) -> None:
        self.max_header = max_header
        self.max_body = max_body
        self.failed = False
        self._buf = bytearray()
        self._scanned = 0  # buffer offset up to which no header end was found
        self._skip = 0  # octets of a refused body still to discard

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[FramerItem]:
        if self.failed:
            return []
        out: list[FramerItem] = []
        buf = self._buf
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        buf += data
        pos = 0
        while pos < len(buf):
            if buf[pos] == 13:  # CR: keep-alive or stray CRLF before a start-line (§7.5)
                if len(buf) - pos < 4 and _PING.startswith(buf[pos:]):
                    break  # could still become a ping
                if buf.startswith(_PING, pos):
                    out.append(PING)
                    pos += 4
                    continue
                if buf.startswith(b"\r\n", pos):
                    pos += 2
                    continue
            end = buf.find(b"\r\n\r\n", max(pos, self._scanned))
            if end < 0:
                if len(buf) - pos > self.max_header:
                    self._fail(out, SipParseError(f"header section over {self.max_header} octets", 513))
                    return out
                self._scanned = max(pos, len(buf) - 3)
                break
            if end - pos > self.max_header:
                self._fail(out, SipParseError(f"header section over {self.max_header} octets", 513))
                return out
            head = bytes(buf[pos:end])
            try:
                length = _content_length(head)
            except SipParseError as err:
                attach_request_context(err, head)
                self._fail(out, err)
                return out
            if length is None:
                length = 0  # parse_message(stream=True) answers this with 400
            elif length > self.max_body:
                too_big = SipParseError(f"body of {length} octets over the limit of {self.max_body}", 413)
                attach_request_context(too_big, head)
                out.append(too_big)
                available = len(buf) - (end + 4)
                self._skip = max(0, length - available)
                pos = end + 4 + min(length, available)
                self._scanned = pos
                continue
            total = end + 4 + length
            if len(buf) < total:
                self._scanned = end  # the header end is found again at once
                break
            out.append(bytes(buf[pos:total]))
            pos = total
            self._scanned = pos
        del buf[:pos]
        self._scanned = max(0, self._scanned - pos)
        return out

    def _fail(self, out: list[FramerItem], err: SipParseError) -> None:
        out.append(err)
        self.failed = True
        self._buf.clear()
        self._scanned = 0


def _content_length(head: bytes) -> int | None:
    """The Content-Length (or `l`) of a header section, None if absent."""
    if b"\r\n " in head or b"\r\n\t" in head:
        head = _FOLD_RE.sub(b" ", head)
    found: int | None = None
    for line in head.split(b"\r\n")[1:]:
        if line[:1] not in (b"l", b"L", b"c", b"C"):
            continue
        name, colon, value = line.partition(b":")
        name = name.rstrip(b" \t").lower()
        if not colon or name not in (b"l", b"content-length"):
            continue
        if found is not None:
            raise SipParseError("Content-Length given twice")
        value = value.strip(b" \t")
        if not value.isdigit():  # bytes.isdigit: ASCII digits only
            raise SipParseError(f"bad Content-Length {value[:20]!r}")
        found = int(value) if len(value) <= 12 else 10**12
    return found
