"""The string form of NG options, ``rtpp-flags`` (NG protocol document, introduction).

A client may pass its options as one string instead of dictionary keys, e.g.
``replace-origin via-branch=auto-next codec=[transcode=[PCMA PCMU] strip=[EVS]]``: words
separated by white space; a bare word is a flag, ``key=value`` sets an option, and square
brackets hold a list (or, when its items are ``key=value``, a dictionary). This module turns
such a string into the same dictionary a structured request would carry.
"""

from __future__ import annotations

from vpbx.ng.bencode import Value

__all__ = ["MAX_RTPP_DEPTH", "parse_rtpp_flags"]

MAX_RTPP_DEPTH = 8


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def word(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and not (
            self.text[self.pos].isspace() or self.text[self.pos] in "=[]"
        ):
            self.pos += 1
        return self.text[start : self.pos]

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _items(s: _Scanner, depth: int, closing: bool) -> list[tuple[str, Value | None]]:
    # A sequence of `word` / `word=value` up to "]" (when closing) or the end.
    out: list[tuple[str, Value | None]] = []
    while True:
        s.skip_space()
        c = s.peek()
        if c == "":
            if closing:
                raise ValueError(f"missing ']' at offset {s.pos}")
            return out
        if c == "]":
            if not closing:
                raise ValueError(f"unexpected ']' at offset {s.pos}")
            s.pos += 1
            return out
        if c in "=[":
            raise ValueError(f"unexpected {c!r} at offset {s.pos}")
        key = s.word()
        if s.peek() != "=":
            out.append((key, None))
            continue
        s.pos += 1
        if s.peek() == "[":
            s.pos += 1
            if depth >= MAX_RTPP_DEPTH:
                raise ValueError(f"brackets nested deeper than {MAX_RTPP_DEPTH}")
            out.append((key, _collect(_items(s, depth + 1, True))))
        else:
            out.append((key, _b(s.word())))


def _collect(items: list[tuple[str, Value | None]]) -> Value:
    if any(v is not None for _, v in items):
        return {_b(k): (b"" if v is None else v) for k, v in items}
    return [_b(k) for k, _ in items]


def parse_rtpp_flags(text: str) -> dict[bytes, Value]:
    """``"trust-address label=callee OSRTP=[accept]"`` ->
    ``{b"flags": [b"trust-address"], b"label": b"callee", b"OSRTP": [b"accept"]}``.
    Raises ValueError for unbalanced brackets."""
    out: dict[bytes, Value] = {}
    flags: list[Value] = []
    for key, value in _items(_Scanner(text), 0, False):
        if value is None:
            flags.append(_b(key))
        else:
            out.setdefault(_b(key), value)
    if flags:
        out[b"flags"] = flags
    return out
