"""Shared pieces of the RFC 3261 §25 grammar: tokens, quoted strings, comma lists,
generic parameters and bounded numbers.

Everything here works on header values that were already unfolded (§7.3.1: a CRLF
followed by whitespace is the same as one SP), so SWS/LWS is just SP and HTAB.
The regular expressions are each matched once per element, never per character,
and are written so that they cannot backtrack badly on hostile input.
"""

from __future__ import annotations

import re
from typing import Final

from .errors import SipParseError

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")  (§25.1)
TOKEN_CHARS: Final = r"A-Za-z0-9\-.!%*_+`'~"
TOKEN: Final = f"[{TOKEN_CHARS}]+"
TOKEN_RE: Final = re.compile(TOKEN)

# quoted-string = SWS DQUOTE *(qdtext / quoted-pair) DQUOTE                         (§25.1)
# qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII  (no raw CTL but HTAB)
# quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
QUOTED: Final = r'"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*"'
QUOTED_RE: Final = re.compile(QUOTED)
_QUOTED_PAIR_RE: Final = re.compile(r"\\(.)", re.DOTALL)

# gen-value = token / host / quoted-string (§25.1). A bare IPv6 address is accepted as
# well because RFC 5118 §4.5 asks parsers to take `received=2001:db8::9:255`.
_GEN_VALUE: Final = rf"[0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f:.]*|\[[0-9A-Za-z:.%\-_~]*\]|{QUOTED}|{TOKEN}"
# *( SEMI generic-param ); SEMI = SWS ";" SWS, EQUAL = SWS "=" SWS
_PARAM_RE: Final = re.compile(rf"[ \t]*;[ \t]*({TOKEN})(?:[ \t]*=[ \t]*({_GEN_VALUE}))?[ \t]*")
_LIST_SPECIAL_RE: Final = re.compile(r'[,"<]')
_CTL_RE: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

Params = dict[str, str | None]
"""Parameters: names lowered (§7.3.1 says they are case-insensitive), values as written
(a quoted-string value keeps its quotes, so that it serializes back unchanged)."""


def is_token(text: str) -> bool:
    return TOKEN_RE.fullmatch(text) is not None


def unquote(inner: str) -> str:
    """The text of a quoted-string without its DQUOTEs, quoted-pairs resolved (§25.1)."""
    if "\\" not in inner:
        return inner
    return _QUOTED_PAIR_RE.sub(r"\1", inner)


def unquote_value(value: str | None) -> str | None:
    """A parameter value with its quotes (if any) removed and escapes resolved."""
    if value is not None and len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return unquote(value[1:-1])
    return value


def quote(text: str) -> str:
    """`text` as a quoted-string. CR and LF cannot be carried by one (§25.1)."""
    if "\r" in text or "\n" in text:
        raise ValueError("a quoted-string cannot carry CR or LF")
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    if _CTL_RE.search(text):  # other control characters travel as quoted-pairs
        text = _CTL_RE.sub(lambda m: "\\" + m.group(), text)
    return f'"{text}"'


def end_of_quoted(text: str, start: int) -> int:
    """Index just past the quoted-string that starts at text[start] == '"'."""
    m = QUOTED_RE.match(text, start)
    if m is None:
        raise SipParseError("unterminated or malformed quoted string")
    return m.end()


def split_commas(value: str) -> list[str]:
    """Split a header value at the commas that separate list elements (§7.3.1), never
    inside a quoted-string or a <URI>. Elements come back stripped; empty ones stay,
    so that callers can reject them where the grammar has no room for them."""
    if '"' not in value and "<" not in value:
        if "," not in value:
            return [value.strip(" \t")]
        return [part.strip(" \t") for part in value.split(",")]
    out: list[str] = []
    start = pos = 0
    search = _LIST_SPECIAL_RE.search
    while (m := search(value, pos)) is not None:
        i = m.start()
        c = value[i]
        if c == ",":
            out.append(value[start:i].strip(" \t"))
            start = pos = i + 1
        elif c == '"':
            pos = end_of_quoted(value, i)
        else:
            j = value.find(">", i)
            if j < 0:
                raise SipParseError("'<' without '>'")
            pos = j + 1
    out.append(value[start:].strip(" \t"))
    return out


def parse_params(text: str, pos: int = 0) -> Params:
    """Parse *( SEMI generic-param ) from text[pos:] to the end of the text (§25.1)."""
    params: Params = {}
    end = len(text)
    match = _PARAM_RE.match
    while pos < end:
        m = match(text, pos)
        if m is None:
            raise SipParseError(f"malformed parameter near {text[pos : pos + 40]!r}")
        name = m.group(1).lower()
        if name in params:
            raise SipParseError(f"parameter {name!r} given twice")
        params[name] = m.group(2)
        pos = m.end()
    return params


def format_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def parse_int(text: str, what: str, maximum: int) -> int:
    """1*DIGIT (ASCII only) not above `maximum`."""
    if len(text) < 10 and text.isdigit() and text.isascii():
        value = int(text)
        if value <= maximum:
            return value
    if not (text.isascii() and text.isdigit()):
        raise SipParseError(f"{what}: not a number: {text[:40]!r}")
    digits = text.lstrip("0")
    if len(digits) > len(str(maximum)) or (digits and int(digits) > maximum):
        raise SipParseError(f"{what}: {text[:40]} exceeds {maximum}")
    return int(digits or "0")


def parse_delta_seconds(text: str, what: str) -> int:
    """delta-seconds (§25.1); values past 2**32-1 are taken as 2**32-1 (§20.19 range)."""
    if not (text.isascii() and text.isdigit()):
        raise SipParseError(f"{what}: not a number: {text[:40]!r}")
    digits = text.lstrip("0")
    if len(digits) > 10:
        return 2**32 - 1
    return min(int(digits or "0"), 2**32 - 1)


def ctl_outside_quoted_pairs(line: str) -> bool:
    """True if `line` has a control character that is not escaped by a quoted-pair
    inside a quoted-string: the only place §25.1 lets NUL, BEL or DEL travel."""
    in_quotes = False
    escaped = False
    for ch in line:
        if escaped:
            escaped = False
            continue
        if in_quotes:
            if ch == "\\":
                escaped = True
            elif ch == '"':
                in_quotes = False
            elif (ch < " " and ch != "\t") or ch == "\x7f":
                return True
        elif ch == '"':
            in_quotes = True
        elif (ch < " " and ch != "\t") or ch == "\x7f":
            return True
    return False


def has_ctl(text: str) -> bool:
    return _CTL_RE.search(text) is not None
