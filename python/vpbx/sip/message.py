"""SIP requests and responses: typed accessors over the header fields, serialization,
and the responses a UAS builds from a request (RFC 3261 §7, §8.2.6, §20).

Parsing lives in parser.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Final, TypeVar, cast

from .address import Address, parse_address
from .errors import SipParseError
from .fields import (
    Auth,
    ContentType,
    CSeq,
    Via,
    parse_auth,
    parse_call_id,
    parse_content_type,
    parse_cseq,
    parse_date,
    parse_tokens,
    parse_via,
    parse_via_list,
)
from .grammar import is_token, parse_delta_seconds, parse_int, split_commas
from .headers import CANONICAL, Field, Headers
from .status import reason_phrase
from .uri import Uri, parse_uri

_CTL_RE: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

T = TypeVar("T")


class Message:
    """What requests and responses share: header fields, body and typed accessors.

    Typed values are views of the header fields, cached until the fields change:
    change a message through `headers`, not through the objects returned here.
    """

    __slots__ = ("body", "headers")

    headers: Headers
    body: bytes

    # -- typed access -------------------------------------------------------------------

    def _typed(self, key: str, build: Callable[[Headers], T]) -> T:
        typed = self.headers.typed
        if key in typed:
            return cast(T, typed[key])
        try:
            value = build(self.headers)
        except SipParseError as err:
            if isinstance(self, Request) and err.headers is None:
                attach_request_headers(err, self.headers, self.method)
            raise
        typed[key] = value
        return value

    @property
    def via(self) -> tuple[Via, ...]:
        """Every Via, topmost first (§20.42)."""
        return self._typed("via", lambda h: parse_via_list(h.get_list("via")))

    @property
    def from_(self) -> Address:
        return self._typed("from", lambda h: _party(h, "from"))

    @property
    def to(self) -> Address:
        return self._typed("to", lambda h: _party(h, "to"))

    @property
    def call_id(self) -> str:
        return self._typed("call-id", lambda h: parse_call_id(_single(h, "call-id")))

    @property
    def cseq(self) -> CSeq:
        return self._typed("cseq", lambda h: parse_cseq(_single(h, "cseq")))

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards, 0-255 (§20.22); None when absent (RFC 2543 peers, RFC 4475 §3.4.1)."""
        return self._typed("max-forwards", _max_forwards)

    @property
    def contacts(self) -> tuple[Address, ...]:
        """Contact addresses (§20.10); empty when absent or `*` (see contact_star)."""
        return self._typed("contact", _contacts)[1]

    @property
    def contact_star(self) -> bool:
        """True for `Contact: *` (REGISTER removing all bindings, §10.2.2)."""
        return self._typed("contact", _contacts)[0]

    @property
    def route(self) -> tuple[Address, ...]:
        return self._typed("route", lambda h: _name_addrs(h, "route"))

    @property
    def record_route(self) -> tuple[Address, ...]:
        return self._typed("record-route", lambda h: _name_addrs(h, "record-route"))

    @property
    def expires(self) -> int | None:
        """Expires in seconds (§20.19), capped at 2**32-1."""
        return self._typed("expires", _expires)

    @property
    def date(self) -> datetime | None:
        return self._typed("date", lambda h: None if "date" not in h else parse_date(_single(h, "date")))

    @property
    def content_type(self) -> ContentType | None:
        return self._typed(
            "content-type",
            lambda h: None if "content-type" not in h else parse_content_type(_single(h, "content-type")),
        )

    @property
    def content_length(self) -> int:
        """Always the body's length: it is what the message will say on output."""
        return len(self.body)

    @property
    def authorization(self) -> tuple[Auth, ...]:
        """One credentials per Authorization field; never split at commas (§20.7)."""
        return self._typed("authorization", lambda h: tuple(map(parse_auth, h.get_all("authorization"))))

    @property
    def proxy_authorization(self) -> tuple[Auth, ...]:
        return self._typed(
            "proxy-authorization", lambda h: tuple(map(parse_auth, h.get_all("proxy-authorization")))
        )

    @property
    def www_authenticate(self) -> tuple[Auth, ...]:
        return self._typed(
            "www-authenticate", lambda h: tuple(map(parse_auth, h.get_all("www-authenticate")))
        )

    @property
    def proxy_authenticate(self) -> tuple[Auth, ...]:
        return self._typed(
            "proxy-authenticate", lambda h: tuple(map(parse_auth, h.get_all("proxy-authenticate")))
        )

    @property
    def supported(self) -> tuple[str, ...]:
        return self._typed("supported", lambda h: parse_tokens(h.get_all("supported"), "Supported"))

    @property
    def require(self) -> tuple[str, ...]:
        return self._typed("require", lambda h: parse_tokens(h.get_all("require"), "Require"))

    @property
    def proxy_require(self) -> tuple[str, ...]:
        return self._typed(
            "proxy-require", lambda h: parse_tokens(h.get_all("proxy-require"), "Proxy-Require")
        )

    @property
    def unsupported(self) -> tuple[str, ...]:
        return self._typed("unsupported", lambda h: parse_tokens(h.get_all("unsupported"), "Unsupported"))

    @property
    def allow(self) -> tuple[str, ...]:
        return self._typed("allow", lambda h: parse_tokens(h.get_all("allow"), "Allow"))

    def compact(self) -> None:
        """Drop what lookups cached (Headers.compact); the fields and body stay."""
        self.headers.compact()

    # -- output -------------------------------------------------------------------------

    def start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """The message on the wire: CRLF line ends, canonical header names, and a
        Content-Length that always matches the body (§7.4.1, §18.3)."""
        lines = [self.start_line()]
        lines.extend(f"{name}: {value}" for name, value in self.headers)
        lines.append(f"Content-Length: {len(self.body)}\r\n\r\n")
        return "\r\n".join(lines).encode("utf-8") + self.body

    def __bytes__(self) -> bytes:
        return self.to_bytes()


class Request(Message):
    __slots__ = ("method", "uri")

    method: str
    uri: Uri

    def __init__(
        self,
        method: str,
        uri: Uri | str,
        headers: Headers | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        if not is_token(method):
            raise ValueError(f"method is not a token: {method!r}")
        self.method = method
        self.uri = parse_uri(uri) if isinstance(uri, str) else uri
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = bytes(body)

    def start_line(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"  # Request-Line (§7.1)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return (
            self.method == other.method
            and str(self.uri) == str(other.uri)
            and self.headers == other.headers
            and self.body == other.body
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    __slots__ = ("reason", "status")

    status: int
    reason: str

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        if not 100 <= status <= 699:
            raise ValueError(f"status code out of range: {status}")
        reason = reason_phrase(status) if reason is None else reason
        if _CTL_RE.search(reason) or "\r" in reason or "\n" in reason:
            raise ValueError(f"reason phrase with control characters: {reason!r}")
        self.status = status
        self.reason = reason
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = bytes(body)

    def start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"  # Status-Line (§7.2)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Response):
            return NotImplemented
        return (
            self.status == other.status
            and self.reason == other.reason
            and self.headers == other.headers
            and self.body == other.body
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


# -- accessor helpers ---------------------------------------------------------------------


def _single(headers: Headers, key: str) -> str:
    values = headers.get_list(key)
    if len(values) != 1:
        name = CANONICAL.get(key, key)
        raise SipParseError(f"{name} missing" if not values else f"{name} given {len(values)} times")
    return values[0]


def _party(headers: Headers, key: str) -> Address:
    # From / To = ( name-addr / addr-spec ) *( SEMI ( tag-param / generic-param ) ),
    # tag-param = "tag" EQUAL token (§20.20, §20.39)
    address = parse_address(_single(headers, key))
    tag = address.params.get("tag", "")
    if tag is None or (tag and not is_token(tag)):
        raise SipParseError(f"{CANONICAL[key]} tag is not a token")
    return address


def _max_forwards(headers: Headers) -> int | None:
    if "max-forwards" not in headers:
        return None
    return parse_int(_single(headers, "max-forwards"), "Max-Forwards", 255)


def _expires(headers: Headers) -> int | None:
    if "expires" not in headers:
        return None
    return parse_delta_seconds(_single(headers, "expires"), "Expires")


def _contacts(headers: Headers) -> tuple[bool, tuple[Address, ...]]:
    # Contact = ("Contact" / "m") HCOLON ( STAR / (contact-param *(COMMA contact-param)))
    elements = [e for value in headers.get_list("contact") for e in split_commas(value)]
    if "*" in elements:
        if len(elements) != 1:
            raise SipParseError("Contact: * mixed with addresses")
        return True, ()
    out: list[Address] = []
    for element in elements:
        if not element:
            raise SipParseError("empty Contact element")
        address = parse_address(element)
        address.expires  # noqa: B018  (checks the parameters now)
        address.q  # noqa: B018
        out.append(address)
    return False, tuple(out)


def _name_addrs(headers: Headers, key: str) -> tuple[Address, ...]:
    # Route / Record-Route = name-addr *( SEMI rr-param ), comma lists (§20.30, §20.34)
    out: list[Address] = []
    for value in headers.get_all(key):
        for element in split_commas(value):
            if not element:
                raise SipParseError(f"empty {CANONICAL.get(key, key)} element")
            out.append(parse_address(element, name_addr_only=True))
    return tuple(out)


def attach_request_headers(err: SipParseError, headers: Headers, method: str) -> None:
    """Make `err` answerable: the request's fields and its top Via, read leniently.
    An ACK is never answered (§17.2.1, §17.2.3 ACK has no response)."""
    via = headers.get("via")
    if via is None or method == "ACK":
        return
    try:
        top = parse_via(split_commas(via)[0], lenient=True)
    except SipParseError:
        return
    err.headers = headers
    err.top_via = top


# -- responses ----------------------------------------------------------------------------


def build_response(
    request: Request, code: int, reason: str | None = None, to_tag: str | None = None
) -> Response:
    """A response to `request` (§8.2.6): Via fields, From, To, Call-ID and CSeq copied,
    Timestamp too for 100 (§8.2.6.1), and `to_tag` added to To when it has none and the
    response is not a 100 (§8.2.6.2)."""
    return response_from_headers(request.headers, code, reason, to_tag)


def response_from_headers(headers: Headers, code: int, reason: str | None, to_tag: str | None) -> Response:
    if to_tag is not None and not is_token(to_tag):
        raise ValueError(f"tag is not a token: {to_tag!r}")
    copied = _COPIED_100 if code == 100 else _COPIED
    found: dict[str, list[Field]] = {}
    for field in headers.fields():
        if field[0] in copied:
            found.setdefault(field[0], []).append(field)
    fields: list[Field] = []
    for key in copied:
        entries = found.get(key, [])
        if key == "via":
            fields += entries
        elif entries:  # single-valued: the first one (RFC 4475 §3.3.8 may send several)
            k, name, value = entries[0]
            if key == "to" and to_tag is not None and code > 100 and _lacks_tag(value):
                value = f"{value};tag={to_tag}"
            fields.append((k, name, value))
    return Response(code, reason, Headers.from_fields(fields))


_COPIED: Final = ("via", "from", "to", "call-id", "cseq")
_COPIED_100: Final = (*_COPIED, "timestamp")


def _lacks_tag(to_value: str) -> bool:
    try:
        return parse_address(to_value).tag is None
    except SipParseError:
        return False  # cannot tell where a tag would go: copy the field unchanged
