"""parse_message: bytes of one SIP message to a Request or Response (RFC 3261 §7, §18.3).

The header section is split once into fields; the values every SIP element needs (Via,
From, To, Call-ID, CSeq, Max-Forwards, Contact, Date) are interpreted and checked at
once, so that a malformed message is refused before anyone acts on it (RFC 4475
§3.1.2). Everything else is interpreted on first access (message.py) and cached.
"""

from __future__ import annotations

import re
from itertools import islice
from typing import Final

from .errors import SipParseError
from .grammar import TOKEN_RE, ctl_outside_quoted_pairs, parse_int
from .headers import CANONICAL, NAME_CACHE, Field, Headers, field_name
from .message import Request, Response, attach_request_headers
from .uri import SipUri, parse_uri

# Request-URI schemes this element handles; others get 416 (§8.2.2.1, RFC 4475 §3.3.2).
SUPPORTED_URI_SCHEMES: Final = frozenset({"sip", "sips", "tel"})

_FOLD_RE: Final = re.compile(r"\r\n[ \t]+")  # LWS = [*WSP CRLF] 1*WSP (§25.1)
_CTL_RE: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_VERSION_RE: Final = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)
# Fields that must not repeat (§7.3.1, RFC 4475 §3.3.8).
_SINGLE: Final = ("from", "to", "call-id", "cseq", "max-forwards")


def parse_message(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse one SIP message.

    `data` is one UDP datagram (default) or one message cut out of a TCP/TLS stream by
    StreamFramer (`stream=True`). Datagram framing follows §18.3: octets past
    Content-Length are discarded, a body shorter than Content-Length is an error, and
    without Content-Length the body is the rest of the datagram. On a stream,
    Content-Length is mandatory.

    Raises SipParseError only.
    """
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")  # §7.5: CRLFs before the start-line are ignored
    end = data.find(b"\r\n\r\n")
    head = data if end < 0 else data[:end]
    try:
        if end < 0:
            raise SipParseError("no empty line after the header fields" if data else "empty message")
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            raise SipParseError("header section is not UTF-8") from None
        return _parse(text, data, end + 4, stream)
    except SipParseError as err:
        if err.headers is None:
            attach_request_context(err, head)
        raise


def _parse(text: str, data: bytes, body_start: int, stream: bool) -> Request | Response:
    if "\r" in text or "\n" in text:
        crlf = text.count("\r\n")
        if text.count("\r") != crlf or text.count("\n") != crlf:
            raise SipParseError("CR or LF outside a CRLF line end")
        if "\r\n " in text or "\r\n\t" in text:
            text = _FOLD_RE.sub(" ", text)  # unfold (§7.3.1)
    lines = text.split("\r\n")
    if _CTL_RE.search(text) is not None and any(map(ctl_outside_quoted_pairs, lines)):
        raise SipParseError("control character outside a quoted-pair")

    # Header fields: name HCOLON value, HCOLON = *( SP / HTAB ) ":" SWS (§7.3.1)
    fields: list[Field] = []
    index: dict[str, list[str]] = {}
    content_length: str | None = None
    names = NAME_CACHE
    for line in islice(lines, 1, None):
        name, colon, value = line.partition(":")
        if not colon:
            raise SipParseError(f"header line without ':': {line[:60]!r}")
        named = names.get(name)
        if named is None:
            named = field_name(name.rstrip(" \t"))
            if named is None:
                raise SipParseError(f"bad header name {name[:60]!r}")
        key = named[0]
        value = value.strip(" \t")
        if key == "content-length":
            if content_length is not None:
                raise SipParseError("Content-Length given twice")  # RFC 4475 §3.3.9
            content_length = value
            continue
        fields.append((key, named[1], value))
        if key in index:
            index[key].append(value)
        else:
            index[key] = [value]

    # Body (§18.3)
    available = len(data) - body_start
    if content_length is not None:
        length = parse_int(content_length, "Content-Length", 2**32 - 1)
        if length > available:
            raise SipParseError(f"Content-Length {length} but {available} octets follow")
        if stream and length != available:
            raise SipParseError("stream message longer than its Content-Length")
        body = data[body_start : body_start + length]
    elif stream:
        raise SipParseError("Content-Length missing on a stream transport")
    else:
        body = data[body_start:]

    headers = Headers.from_fields(fields, index)
    start = lines[0]
    msg: Request | Response
    if start[:4].upper() == "SIP/":
        msg = _status_line(start, headers, body)
    else:
        msg = _request_line(start, headers, body)

    # The fields every element needs: present, single and well-formed (§8.1.1, §20).
    for key in ("via", "from", "to", "call-id", "cseq"):
        if key not in index:
            raise SipParseError(f"{CANONICAL[key]} missing")
    for key in _SINGLE:
        values = index.get(key)
        if values is not None and len(values) > 1:
            raise SipParseError(f"{CANONICAL[key]} given {len(values)} times")  # RFC 4475 §3.3.8
    msg.via  # noqa: B018
    msg.from_  # noqa: B018
    msg.to  # noqa: B018
    msg.call_id  # noqa: B018
    cseq = msg.cseq
    msg.contacts  # noqa: B018
    if "date" in index:
        msg.date  # noqa: B018
    if isinstance(msg, Request):
        msg.max_forwards  # noqa: B018
        if cseq.method != msg.method:
            raise SipParseError(f"CSeq method {cseq.method} differs from {msg.method}")  # RFC 4475 §3.1.2.17
        if msg.uri.scheme.lower() not in SUPPORTED_URI_SCHEMES:
            raise SipParseError(f"Request-URI scheme {msg.uri.scheme!r}", 416)  # §8.2.2.1
    return msg


def _request_line(start: str, headers: Headers, body: bytes) -> Request:
    # Request-Line = Method SP Request-URI SP SIP-Version CRLF: single SPs (§7.1, RFC 4475 §3.1.2.9)
    parts = start.split(" ")
    if len(parts) != 3:
        raise SipParseError(f"Request-Line is not 'Method SP Request-URI SP SIP-Version': {start[:80]!r}")
    method, uri_text, version = parts
    if version != "SIP/2.0" and version.upper() != "SIP/2.0":
        if _VERSION_RE.fullmatch(version):
            raise SipParseError(f"SIP version {version}", 505)  # §21.5.6, RFC 4475 §3.1.2.16
        raise SipParseError(f"bad SIP-Version {version[:20]!r}")
    if TOKEN_RE.fullmatch(method) is None:
        raise SipParseError(f"method is not a token: {method[:40]!r}")
    uri = parse_uri(uri_text)
    if isinstance(uri, SipUri) and uri.headers:
        raise SipParseError("headers in the Request-URI")  # §19.1.1 Table 1, RFC 4475 §3.1.2.11
    msg = Request.__new__(Request)
    msg.method, msg.uri, msg.headers, msg.body = method, uri, headers, body
    return msg


def _status_line(start: str, headers: Headers, body: bytes) -> Response:
    # Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF (§7.2)
    version, _, rest = start.partition(" ")
    code, _, reason = rest.partition(" ")
    if version.upper() != "SIP/2.0":
        raise SipParseError(f"SIP version {version[:20]}", 505 if _VERSION_RE.fullmatch(version) else 400)
    if len(code) != 3 or not (code.isascii() and code.isdigit()) or not 100 <= int(code) <= 699:
        raise SipParseError(f"bad status code {code[:20]!r}")  # RFC 4475 §3.1.2.19
    if _CTL_RE.search(reason):
        raise SipParseError("control character in the Reason-Phrase")
    msg = Response.__new__(Response)
    msg.status, msg.reason, msg.headers, msg.body = int(code), reason, headers, body
    return msg


def attach_request_context(err: SipParseError, head: bytes) -> None:
    """Give `err` what an error response needs (header fields, top Via), read leniently
    from the header section of a request that failed to parse; responses get nothing."""
    text = head.decode("utf-8", "replace")
    if text[:4].upper() == "SIP/":
        return  # a response is never answered (§18.1.2)
    fields: list[Field] = []
    method = text.split(" ", 1)[0]
    for line in _FOLD_RE.sub(" ", text).split("\r\n")[1:]:
        name, colon, value = line.partition(":")
        named = field_name(name.rstrip(" \t")) if colon else None
        if named is None or named[0] == "content-length" or _CTL_RE.search(value) or "\r" in value:
            continue
        fields.append((named[0], named[1], value.strip(" \t").replace("\n", " ")))
    attach_request_headers(err, Headers.from_fields(fields), method)
