"""Typed values of the header fields a PBX reads: Via, CSeq, Content-Type,
Authorization / WWW-Authenticate and their Proxy- twins, Date, Call-ID and
option-tag lists (RFC 3261 §20, grammar in §25.1).

Each parser takes one already unfolded header value (or one element of a comma list)
and raises SipParseError (400) when it does not follow the grammar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from .errors import SipParseError
from .grammar import (
    QUOTED,
    TOKEN,
    TOKEN_RE,
    Params,
    format_params,
    parse_int,
    parse_params,
    quote,
    split_commas,
    unquote,
)
from .uri import check_host, check_ipv6, parse_port

# via-parm = sent-protocol LWS sent-by *( SEMI via-params )               (§20.42, §25.1)
# sent-protocol = protocol-name SLASH protocol-version SLASH transport; SLASH = SWS "/" SWS
# sent-by = host [ COLON port ]
_VIA_RE: Final = re.compile(
    rf"({TOKEN})[ \t]*/[ \t]*({TOKEN})[ \t]*/[ \t]*({TOKEN})[ \t]+"
    r"(\[[0-9A-Za-z:.%\-_~]*\]|[A-Za-z0-9.\-]+)(?:[ \t]*:[ \t]*([0-9]+))?[ \t]*"
)
_IPV4_RE: Final = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
# CSeq = "CSeq" HCOLON 1*DIGIT LWS Method                                    (§20.16)
_CSEQ_RE: Final = re.compile(rf"([0-9]+)[ \t]+({TOKEN})")
# media-type = m-type SLASH m-subtype *( SEMI m-parameter )                 (§20.15)
_MEDIA_RE: Final = re.compile(rf"({TOKEN})[ \t]*/[ \t]*({TOKEN})")
# auth-param = auth-param-name EQUAL ( token / quoted-string ), comma separated (§25.1)
_AUTH_PARAM_RE: Final = re.compile(rf"[ \t]*({TOKEN})[ \t]*=[ \t]*({QUOTED}|{TOKEN})[ \t]*(?:,|$)")
_AUTH_SCHEME_RE: Final = re.compile(rf"({TOKEN})(?:[ \t]+|$)")
# Call-ID = word [ "@" word ]; word = 1*(alphanum / - . ! % * _ + ` ' ~ ( ) < > : \ " / [ ] ? { })
_WORD: Final = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALL_ID_RE: Final = re.compile(rf"{_WORD}(?:@{_WORD})?")
# SIP-date = rfc1123-date, always GMT (§20.17, RFC 4475 §3.1.2.12)
_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DATE_RE: Final = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) (" + "|".join(_MONTHS) + r") ([0-9]{4}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) GMT"
)
# Digest parameters sent as tokens; all others are quoted-strings (RFC 3261 §25.1, RFC 7616 §3).
_UNQUOTED_AUTH_PARAMS: Final = frozenset({"algorithm", "nc", "stale", "qop"})

MAX_CSEQ: Final = 2**31 - 1  # §8.1.1.5: "MUST be less than 2**31"


@dataclass(slots=True, eq=False)
class Via:
    """One via-parm. `transport` upper-cased, `host` as written ([IPv6] in brackets)."""

    transport: str
    host: str
    port: int | None = None
    params: Params = field(default_factory=dict)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def has_rport(self) -> bool:
        """RFC 3581: the sender asks for the source port in `rport`."""
        return "rport" in self.params

    @property
    def rport(self) -> int | None:
        value = self.params.get("rport")
        return None if value is None else int(value)

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def ttl(self) -> int | None:
        value = self.params.get("ttl")
        return None if value is None else int(value)

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"

    def __repr__(self) -> str:
        return f"Via({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Via) and str(self) == str(other)

    __hash__ = None  # type: ignore[assignment]


def parse_via(text: str, *, lenient: bool = False) -> Via:
    """One via-parm. `lenient` ignores bad parameters: it serves to find where to send
    the 400 for a request whose Via parameters are broken (RFC 4475 §3.1.2.1)."""
    m = _VIA_RE.match(text)
    if m is None:
        raise SipParseError(f"bad Via {text[:60]!r}")
    name, version, transport, host, port = m.groups()
    if (name.upper() != "SIP" or version != "2.0") and not lenient:
        raise SipParseError(f"Via of protocol {name}/{version}")
    check_host(host)
    via = Via(transport.upper(), host, None if port is None else parse_port(port))
    try:
        via.params = parse_params(text, m.end())
        _check_via_params(via.params)
    except SipParseError:
        if not lenient:
            raise
        via.params = {}
    return via


def _check_via_params(params: Params) -> None:
    # via-ttl / via-maddr / via-received / via-branch (§20.42), response-port (RFC 3581 §3)
    for name in ("branch", "ttl", "maddr", "received", "rport"):
        if name not in params:
            continue
        value = params[name]
        if name == "rport":
            if value is not None:
                parse_port(value)
            continue
        if value is None:
            raise SipParseError(f"Via {name} without a value")
        if name == "branch":
            if TOKEN_RE.fullmatch(value) is None:
                raise SipParseError(f"Via branch is not a token: {value[:40]!r}")
        elif name == "ttl":
            parse_int(value, "Via ttl", 255)
        elif name == "maddr" or value[:1] == "[":  # received: RFC 5118 §4.5, with or without []
            check_host(value)
        elif ":" in value:
            check_ipv6(value)
        elif _IPV4_RE.fullmatch(value) is None:
            raise SipParseError(f"Via received is not an IP address: {value[:40]!r}")
        else:
            check_host(value)


def parse_via_list(values: list[str]) -> tuple[Via, ...]:
    out: list[Via] = []
    for value in values:
        for element in split_commas(value):
            if not element:
                raise SipParseError("empty Via element")
            out.append(parse_via(element))
    return tuple(out)


@dataclass(slots=True, frozen=True)
class CSeq:
    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def parse_cseq(text: str) -> CSeq:
    m = _CSEQ_RE.fullmatch(text)
    if m is None:
        raise SipParseError(f"bad CSeq {text[:60]!r}")
    return CSeq(parse_int(m.group(1), "CSeq", MAX_CSEQ), m.group(2))


@dataclass(slots=True, eq=False)
class ContentType:
    """m-type/m-subtype lowered; parameters as written (e.g. multipart `boundary`)."""

    type: str
    subtype: str
    params: Params = field(default_factory=dict)

    @property
    def mime(self) -> str:
        return f"{self.type}/{self.subtype}"

    def __str__(self) -> str:
        return f"{self.type}/{self.subtype}{format_params(self.params)}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ContentType) and str(self) == str(other)

    __hash__ = None  # type: ignore[assignment]


def parse_content_type(text: str) -> ContentType:
    m = _MEDIA_RE.match(text)
    if m is None:
        raise SipParseError(f"bad Content-Type {text[:60]!r}")
    return ContentType(m.group(1).lower(), m.group(2).lower(), parse_params(text, m.end()))


@dataclass(slots=True, eq=False)
class Auth:
    """Credentials (Authorization, Proxy-Authorization) or a challenge (WWW-Authenticate,
    Proxy-Authenticate): scheme plus parameters, names lowered, values unquoted (§20.7).

    A scheme other than Digest whose parameters do not follow auth-param syntax keeps
    them only in `raw` (RFC 4475 §3.3.7: unknown schemes must not cause a 400).
    """

    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    raw: str = ""

    @property
    def is_digest(self) -> bool:
        return self.scheme.lower() == "digest"

    def __str__(self) -> str:
        if not self.params:
            return f"{self.scheme} {self.raw}".rstrip()
        # Digest quotes all but a few parameters; other schemes quote what is no token.
        bare = _UNQUOTED_AUTH_PARAMS if self.is_digest else None
        return f"{self.scheme} " + ", ".join(
            f"{k}={v}" if (bare is None or k in bare) and TOKEN_RE.fullmatch(v) else f"{k}={quote(v)}"
            for k, v in self.params.items()
        )

    def __repr__(self) -> str:
        return f"Auth({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Auth):
            return NotImplemented
        return (
            self.scheme.lower() == other.scheme.lower()
            and self.params == other.params
            and (bool(self.params) or self.raw == other.raw)
        )

    __hash__ = None  # type: ignore[assignment]


def parse_auth(text: str) -> Auth:
    """credentials / challenge (§25.1): auth-scheme LWS auth-param *(COMMA auth-param)."""
    m = _AUTH_SCHEME_RE.match(text)
    if m is None:
        raise SipParseError(f"bad authentication header {text[:60]!r}")
    auth = Auth(m.group(1), {}, text[m.end() :])
    pos, end = m.end(), len(text)
    try:
        while pos < end:
            p = _AUTH_PARAM_RE.match(text, pos)
            if p is None:
                raise SipParseError(f"bad auth-param near {text[pos : pos + 40]!r}")
            name, value = p.group(1).lower(), p.group(2)
            if name in auth.params:
                raise SipParseError(f"auth-param {name!r} given twice")
            auth.params[name] = unquote(value[1:-1]) if value[0] == '"' else value
            pos = p.end()
    except SipParseError:
        if auth.is_digest:
            raise
        auth.params = {}
    else:
        if auth.is_digest and not auth.params:
            raise SipParseError("Digest without parameters")
    return auth


def parse_call_id(text: str) -> str:
    if _CALL_ID_RE.fullmatch(text) is None:
        raise SipParseError(f"bad Call-ID {text[:60]!r}")
    return text


def parse_date(text: str) -> datetime:
    m = _DATE_RE.fullmatch(text)
    if m is None:
        raise SipParseError(f"bad Date {text[:60]!r} (RFC 1123 date in GMT expected)")
    day, month, year, hour, minute, second = m.groups()
    try:
        return datetime(
            int(year), _MONTHS.index(month) + 1, int(day), int(hour), int(minute), int(second), tzinfo=UTC
        )
    except ValueError:
        raise SipParseError(f"bad Date {text[:60]!r}") from None


def parse_tokens(values: list[str], what: str) -> tuple[str, ...]:
    """A comma list of tokens (option-tags for Supported/Require/..., methods for Allow);
    an empty header field is an empty list (§20.37)."""
    out: list[str] = []
    for value in values:
        for raw in value.split(","):
            element = raw.strip(" \t")
            if not element:
                continue
            if TOKEN_RE.fullmatch(element) is None:
                raise SipParseError(f"{what}: not a token: {element[:40]!r}")
            out.append(element)
    return tuple(out)
