"""SIP, SIPS and TEL URIs (RFC 3261 §19.1, §25.1; RFC 3966, minimal) and other
absoluteURIs kept opaque.

Components are stored unescaped (esc01's `%75se%72` is the user `user`) and escaped
again on output, only where the component's grammar demands it: equal URIs
(§19.1.4) serialize the same way. Hosts are kept as written, IPv6 references with
their brackets (RFC 5118).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote_to_bytes

from .errors import SipParseError

_UNRESERVED: Final = r"A-Za-z0-9\-_.!~*'()"
# user = 1*( unreserved / escaped / user-unreserved ); user-unreserved = & = + $ , ; ? /
_USER_RE: Final = re.compile(rf"(?:[{_UNRESERVED}&=+$,;?/]|%[0-9A-Fa-f]{{2}})+")
# password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
_PASSWORD_RE: Final = re.compile(rf"(?:[{_UNRESERVED}&=+$,]|%[0-9A-Fa-f]{{2}})*")
# pname / pvalue = 1*paramchar; param-unreserved = [ ] / : & + $
_PARAMCHARS_RE: Final = re.compile(rf"(?:[{_UNRESERVED}\[\]/:&+$]|%[0-9A-Fa-f]{{2}})+")
# hname = 1*( hnv-unreserved / unreserved / escaped ); hnv-unreserved = [ ] / ? : + $
_HNV_RE: Final = re.compile(rf"(?:[{_UNRESERVED}\[\]/?:+$]|%[0-9A-Fa-f]{{2}})*")
_HOSTCHARS_RE: Final = re.compile(r"[A-Za-z0-9.\-]+")
_IPV4_RE: Final = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})")
_ZONE_RE: Final = re.compile(rf"(?:[{_UNRESERVED}]|%[0-9A-Fa-f]{{2}})+")
# RFC 3966 §3: global-number-digits / local-number-digits, params pname = 1*( alphanum / "-" )
_TEL_GLOBAL_RE: Final = re.compile(r"\+[0-9\-.()]+")
_TEL_LOCAL_RE: Final = re.compile(r"[0-9A-Fa-f*#\-.()]+")
_TEL_PNAME_RE: Final = re.compile(r"[A-Za-z0-9\-]+")
_VISUAL_SEPARATORS: Final = str.maketrans("", "", "-.()")
# absoluteURI = scheme ":" ( hier-part / opaque-part ), both made of uric (§25.1)
_SCHEME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_URIC_RE: Final = re.compile(rf"(?:[;/?:@&=+$,{_UNRESERVED}]|%[0-9A-Fa-f]{{2}})+")

_SAFE_USER: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()&=+$,;?/"
)
_SAFE_PASSWORD: Final = _SAFE_USER - frozenset(";?/")
_SAFE_PARAM: Final = (_SAFE_USER - frozenset("=,;?")) | frozenset("[]/:")
_SAFE_HNV: Final = (_SAFE_USER - frozenset("&=,;")) | frozenset("[]?:")

# §19.1.4: these URI parameters make two URIs differ when only one of them has it.
_MUST_MATCH_PARAMS: Final = ("user", "ttl", "method", "maddr", "transport")

_host_ok: set[str] = set()


def _unescape(text: str) -> str:
    if "%" not in text:
        return text
    return unquote_to_bytes(text).decode("utf-8", "surrogateescape")


def _escape(text: str, safe: frozenset[str]) -> str:
    if all(c in safe for c in text):
        return text
    return "".join(chr(b) if chr(b) in safe else f"%{b:02X}" for b in text.encode("utf-8", "surrogateescape"))


def check_host(host: str) -> None:
    """host = hostname / IPv4address / IPv6reference (§25.1, RFC 5118 §4.10)."""
    if host in _host_ok:
        return
    if not host:
        raise SipParseError("empty host")
    if host[0] == "[":
        if host[-1] != "]":
            raise SipParseError(f"unterminated IPv6 reference {host[:60]!r}")
        check_ipv6(host[1:-1])
    elif (m := _IPV4_RE.fullmatch(host)) is not None:
        if any(int(octet) > 255 for octet in m.groups()):
            raise SipParseError(f"bad IPv4 address {host!r}")
    else:
        # hostname = *( domainlabel "." ) toplabel [ "." ]; labels are alphanum with
        # inner hyphens and the top label starts with a letter.
        if _HOSTCHARS_RE.fullmatch(host) is None:
            raise SipParseError(f"bad host {host[:60]!r}")
        labels = (host[:-1] if host[-1] == "." else host).split(".")
        for label in labels:
            if not label or label[0] == "-" or label[-1] == "-":
                raise SipParseError(f"bad host {host[:60]!r}")
        if not labels[-1][0].isalpha():
            raise SipParseError(f"bad host {host[:60]!r}")
    if len(_host_ok) > 4096:
        _host_ok.clear()
    _host_ok.add(host)


def check_ipv6(text: str) -> None:
    """An IPv6 address as RFC 4291 writes it (RFC 5954 fixed RFC 3261's ABNF for the
    `::` + IPv4 forms), with an optional RFC 6874 zone after `%` / `%25`."""
    addr, pct, zone = text.partition("%")
    if pct and _ZONE_RE.fullmatch(zone) is None:
        raise SipParseError(f"bad IPv6 zone in {text[:60]!r}")
    if not addr or not all(c in "0123456789abcdefABCDEF:." for c in addr):
        raise SipParseError(f"bad IPv6 address {text[:60]!r}")
    try:
        ipaddress.IPv6Address(addr)
    except ValueError:
        raise SipParseError(f"bad IPv6 address {text[:60]!r}") from None


def host_key(host: str) -> str:
    """The form in which two hosts compare (§19.1.4: case-insensitive; IPv6 by value)."""
    if host[:1] == "[":
        addr, pct, zone = host[1:-1].partition("%")
        try:
            return f"[{ipaddress.IPv6Address(addr).compressed}{pct}{zone}]"
        except ValueError:
            pass
    return host.lower()


def parse_port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or int(text) > 65535:
        raise SipParseError(f"bad port {text[:20]!r}")
    return int(text)


def split_hostport(text: str) -> tuple[str, int | None]:
    """hostport = host [ ":" port ]; an IPv6 host is only accepted in brackets (RFC 5118 §4.2)."""
    if text[:1] == "[":
        close = text.find("]")
        if close < 0:
            raise SipParseError(f"unterminated IPv6 reference {text[:60]!r}")
        host, tail = text[: close + 1], text[close + 1 :]
        check_host(host)
        if not tail:
            return host, None
        if tail[0] != ":":
            raise SipParseError(f"junk after IPv6 reference {text[:60]!r}")
        return host, parse_port(tail[1:])
    host, colon, port = text.partition(":")
    check_host(host)
    return host, (parse_port(port) if colon else None)


@dataclass(slots=True, eq=False)
class SipUri:
    """sip: or sips: URI. `user`, `password`, parameter values and headers unescaped;
    parameter names lowered (they are case-insensitive)."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: list[tuple[str, str]] = field(default_factory=list)
    secure: bool = False

    @property
    def scheme(self) -> str:
        return "sips" if self.secure else "sip"

    @property
    def transport(self) -> str | None:
        return self.params.get("transport")

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def lr(self) -> bool:
        return "lr" in self.params

    @property
    def user_param(self) -> str | None:
        return self.params.get("user")

    @property
    def method(self) -> str | None:
        return self.params.get("method")

    @property
    def ttl(self) -> int | None:
        value = self.params.get("ttl")
        return int(value) if value is not None and value.isascii() and value.isdigit() else None

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(_escape(self.user, _SAFE_USER))
            if self.password is not None:
                out += (":", _escape(self.password, _SAFE_PASSWORD))
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        for name, value in self.params.items():
            out += (";", _escape(name, _SAFE_PARAM))
            if value is not None:
                out += ("=", _escape(value, _SAFE_PARAM))
        if self.headers:
            out.append("?")
            out.append("&".join(f"{_escape(n, _SAFE_HNV)}={_escape(v, _SAFE_HNV)}" for n, v in self.headers))
        return "".join(out)

    def __repr__(self) -> str:
        return f"SipUri({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        """URI equality of RFC 3261 §19.1.4."""
        if not isinstance(other, SipUri):
            return NotImplemented
        if (
            self.secure != other.secure
            or self.user != other.user  # userinfo: case-sensitive, after unescaping
            or self.password != other.password
            or self.port != other.port  # an absent port is not equal to 5060
            or host_key(self.host) != host_key(other.host)
        ):
            return False
        a, b = self.params, other.params
        for name in _MUST_MATCH_PARAMS:
            if (name in a) != (name in b):
                return False
        for name in a.keys() & b.keys():
            va, vb = a[name], b[name]
            if va is None or vb is None:
                if va is not vb:
                    return False
            elif va.lower() != vb.lower():
                return False
        # Header components are never ignored: both must carry the same ones.
        return sorted((n.lower(), v) for n, v in self.headers) == sorted(
            (n.lower(), v) for n, v in other.headers
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, and equality is not plain


@dataclass(slots=True, eq=False)
class TelUri:
    """tel: URI (RFC 3966), minimal: the number as written and raw parameters."""

    number: str
    params: dict[str, str | None] = field(default_factory=dict)

    scheme = "tel"

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    @property
    def digits(self) -> str:
        """The number without visual separators (RFC 3966 §5.1.1)."""
        return self.number.translate(_VISUAL_SEPARATORS)

    def __str__(self) -> str:
        return (
            "tel:"
            + self.number
            + "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.params.items())
        )

    def __repr__(self) -> str:
        return f"TelUri({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        """RFC 3966 §4: numbers without separators, parameters in any order, case-insensitive."""
        if not isinstance(other, TelUri):
            return NotImplemented
        if self.digits.lower() != other.digits.lower():
            return False
        return {k: (v.lower() if v else v) for k, v in self.params.items()} == {
            k: (v.lower() if v else v) for k, v in other.params.items()
        }

    __hash__ = None  # type: ignore[assignment]


@dataclass(slots=True, eq=False)
class AbsoluteUri:
    """Any other absoluteURI (§25.1), kept opaque: http:, isbn:, urn:, ..."""

    scheme: str
    opaque: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"

    def __repr__(self) -> str:
        return f"AbsoluteUri({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AbsoluteUri):
            return NotImplemented
        return self.scheme.lower() == other.scheme.lower() and self.opaque == other.opaque

    __hash__ = None  # type: ignore[assignment]


Uri = SipUri | TelUri | AbsoluteUri


def parse_uri(text: str) -> Uri:
    """Parse a SIP-URI / SIPS-URI / absoluteURI (§25.1); `tel:` as RFC 3966."""
    colon = text.find(":")
    if colon <= 0:
        raise SipParseError(f"not a URI: {text[:60]!r}")
    scheme = text[:colon].lower()
    if scheme == "sip":
        return _parse_sip(text[colon + 1 :], False)
    if scheme == "sips":
        return _parse_sip(text[colon + 1 :], True)
    if scheme == "tel":
        return _parse_tel(text[colon + 1 :])
    if _SCHEME_RE.fullmatch(text[:colon]) is None or _URIC_RE.fullmatch(text, colon + 1) is None:
        raise SipParseError(f"not a URI: {text[:60]!r}")
    return AbsoluteUri(text[:colon], text[colon + 1 :])


def _parse_sip(rest: str, secure: bool) -> SipUri:
    # SIP-URI = "sip:" [ userinfo ] hostport uri-parameters [ headers ]      (§19.1.1)
    uri = object.__new__(SipUri)
    uri.secure = secure
    uri.user = uri.password = None
    at = rest.find("@")  # '@' is legal nowhere else unescaped
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, colon, password = userinfo.partition(":")
        if _USER_RE.fullmatch(user) is None:
            raise SipParseError(f"bad user part {userinfo[:60]!r}")
        uri.user = _unescape(user)
        if colon:
            if _PASSWORD_RE.fullmatch(password) is None:
                raise SipParseError("bad password in URI")
            uri.password = _unescape(password)
    uri.headers = []
    rest, question, headers = rest.partition("?")
    if question:
        for header in headers.split("&"):
            name, eq, value = header.partition("=")
            if not eq or not name or _HNV_RE.fullmatch(name) is None or _HNV_RE.fullmatch(value) is None:
                raise SipParseError(f"bad URI header {header[:60]!r}")
            uri.headers.append((_unescape(name), _unescape(value)))
    hostport, semi, params = rest.partition(";")
    uri.host, uri.port = split_hostport(hostport)
    uri.params = {}
    if semi:
        for param in params.split(";"):
            name, eq, value = param.partition("=")
            if _PARAMCHARS_RE.fullmatch(name) is None or (eq and _PARAMCHARS_RE.fullmatch(value) is None):
                raise SipParseError(f"bad URI parameter {param[:60]!r}")
            name = _unescape(name).lower()
            if name in uri.params:
                raise SipParseError(f"URI parameter {name!r} given twice")
            uri.params[name] = _unescape(value) if eq else None
    return uri


def _parse_tel(rest: str) -> TelUri:
    number, semi, params = rest.partition(";")
    if _TEL_GLOBAL_RE.fullmatch(number) is None and (
        _TEL_LOCAL_RE.fullmatch(number) is None or number.translate(_VISUAL_SEPARATORS) == ""
    ):
        raise SipParseError(f"bad tel number {number[:40]!r}")
    if number[0] == "+" and number.translate(_VISUAL_SEPARATORS) == "+":
        raise SipParseError(f"bad tel number {number[:40]!r}")
    uri = TelUri(number)
    if semi:
        for param in params.split(";"):
            name, eq, value = param.partition("=")
            if _TEL_PNAME_RE.fullmatch(name) is None or (eq and _PARAMCHARS_RE.fullmatch(value) is None):
                raise SipParseError(f"bad tel parameter {param[:40]!r}")
            name = name.lower()
            if name in uri.params:
                raise SipParseError(f"tel parameter {name!r} given twice")
            uri.params[name] = value if eq else None
    return uri
