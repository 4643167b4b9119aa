"""name-addr / addr-spec with header parameters: From, To, Contact, Route,
Record-Route, Reply-To, Refer-To, Path, P-Asserted-Identity ... (RFC 3261 §20.10, §25.1).

    name-addr    = [ display-name ] LAQUOT addr-spec RAQUOT
    display-name = *(token LWS) / quoted-string

Without angle brackets every `;param` after the URI is a header parameter, and a URI
holding a comma, semicolon or question mark must be bracketed (§20): so `?` in a bare
addr-spec is an error (RFC 4475 §3.1.2.13, regbadct).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from .errors import SipParseError
from .grammar import (
    QUOTED_RE,
    TOKEN_CHARS,
    Params,
    format_params,
    parse_delta_seconds,
    parse_params,
    quote,
    unquote,
)
from .uri import Uri, parse_uri

_DISPLAY_TOKENS_RE: Final = re.compile(rf"[{TOKEN_CHARS}]+(?:[ \t]+[{TOKEN_CHARS}]+)*")
# qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )   (§25.1)
_QVALUE_RE: Final = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")


@dataclass(slots=True, eq=False)
class Address:
    """A URI with an optional display name (unquoted) and header parameters."""

    uri: Uri
    display_name: str | None = None
    params: Params = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        """The dialog tag of From/To (§19.3)."""
        return self.params.get("tag")

    @property
    def expires(self) -> int | None:
        """Contact `expires` parameter (§20.10), 2**32-1 at most."""
        value = self.params.get("expires")
        if value is None:
            return None
        return parse_delta_seconds(value, "Contact expires")

    @property
    def q(self) -> float | None:
        """Contact `q` preference (§20.10)."""
        value = self.params.get("q")
        if value is None:
            return None
        if _QVALUE_RE.fullmatch(value) is None:
            raise SipParseError(f"bad q value {value[:20]!r}")
        return float(value)

    def __str__(self) -> str:
        """Always the name-addr form, which is valid for every URI (§20)."""
        if self.display_name is not None:
            return f"{quote(self.display_name)} <{self.uri}>{format_params(self.params)}"
        return f"<{self.uri}>{format_params(self.params)}"

    def __repr__(self) -> str:
        return f"Address({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Address):
            return NotImplemented
        return (
            self.display_name == other.display_name
            and str(self.uri) == str(other.uri)
            and self.params == other.params
        )

    __hash__ = None  # type: ignore[assignment]


def parse_address(text: str, *, name_addr_only: bool = False) -> Address:
    """One name-addr or addr-spec followed by *( SEMI generic-param )."""
    s = text.strip(" \t")
    if not s:
        raise SipParseError("empty address")
    display: str | None = None
    if s[0] == '"':
        m = QUOTED_RE.match(s)
        if m is None:
            raise SipParseError("unterminated quoted display name")
        display = unquote(s[1 : m.end() - 1])
        lt = m.end()
        while lt < len(s) and s[lt] in " \t":
            lt += 1
        if lt == len(s) or s[lt] != "<":
            raise SipParseError("quoted display name without <URI>")
    else:
        lt = s.find("<")
        if lt > 0:
            words = s[:lt].rstrip(" \t")
            if _DISPLAY_TOKENS_RE.fullmatch(words) is None:
                raise SipParseError(f"display name is neither tokens nor quoted: {words[:60]!r}")
            display = words
    if lt >= 0:
        gt = s.find(">", lt)
        if gt < 0:
            raise SipParseError("'<' without '>'")
        uri = parse_uri(s[lt + 1 : gt])
        return Address(uri, display, parse_params(s, gt + 1) if gt + 1 < len(s) else {})
    if name_addr_only:
        raise SipParseError(f"expected <URI>: {s[:60]!r}")
    # addr-spec: the URI ends at the first ';' (§20)
    semi = s.find(";")
    spec = s if semi < 0 else s[:semi].rstrip(" \t")
    if "?" in spec or "," in spec:
        raise SipParseError(f"URI with '?' or ',' must be enclosed in <>: {spec[:60]!r}")
    uri = parse_uri(spec)
    return Address(uri, None, parse_params(s, semi) if semi >= 0 else {})
