"""Bencode (and JSON) documents of the NG control protocol.

The NG protocol carries one dictionary per message, either bencoded or as a JSON object; the
first byte tells which (``d`` or ``{``; NG protocol document, introduction). Bencode has four
kinds of values: byte strings ``<length>:<bytes>``, integers ``i<decimal>e``, lists
``l...e`` and dictionaries ``d<key><value>...e`` whose keys are byte strings. Like rtpengine we
do not insist on sorted dictionary keys, but we do reject a key given twice.

The decoder is iterative (an explicit stack, no recursion), bounded in input size, nesting
depth and number of values, and strict about the grammar: leading zeros, ``-0``, truncated
strings and trailing bytes are errors. Every error is a :class:`NgDecodeError` naming the byte
offset and what was expected there.

Decoded values are ``bytes``, ``int``, ``list`` and ``dict[bytes, ...]``. JSON documents are
mapped onto the same model (strings become UTF-8 bytes, booleans integers), so the layers above
see one shape whichever encoding the client used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import TypeAlias

__all__ = [
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_SIZE",
    "Encodable",
    "Format",
    "NgDecodeError",
    "Value",
    "decode",
    "decode_document",
    "decode_prefix",
    "encode",
    "encode_document",
]

#: A decoded value.
Value: TypeAlias = bytes | int | list["Value"] | dict[bytes, "Value"]
#: What :func:`encode` takes: decoded values, plus ``str`` (UTF-8) and ``bool`` (0/1) for
#: convenience, and any sequence or mapping.
Encodable: TypeAlias = (
    bytes | str | int | bool | Sequence["Encodable"] | Mapping[str, "Encodable"] | Mapping[bytes, "Encodable"]
)

MAX_SIZE = 1 << 20  # bytes of input: a UDP datagram is at most 64 KiB, TCP framing may allow more
MAX_DEPTH = 32  # nested lists/dictionaries; real NG messages use 3 or 4
MAX_ITEMS = 1 << 16  # values in one document
_MAX_INT_DIGITS = 64
_MAX_LEN_DIGITS = 10


class NgDecodeError(ValueError):
    """A document that is not valid bencode/JSON or breaks a limit. ``position`` is the byte
    offset where decoding stopped (None for JSON errors without one)."""

    def __init__(self, reason: str, position: int | None = None) -> None:
        where = f"at byte {position}: " if position is not None else ""
        super().__init__(where + reason)
        self.reason = reason
        self.position = position


class Format(Enum):
    """How a document was (or is to be) written."""

    BENCODE = "bencode"
    JSON = "json"


def _show(data: bytes, pos: int) -> str:
    if pos >= len(data):
        return "end of data"
    return repr(bytes(data[pos : pos + 1]))


# ---------------------------------------------------------------------------------------------
# Decoding


def _int_at(data: bytes, pos: int, end_byte: int, what: str, max_digits: int) -> tuple[int, int]:
    """Read ``-?[0-9]+`` up to ``end_byte``; returns (value, index of end_byte)."""
    start = pos
    neg = pos < len(data) and data[pos] == 0x2D  # '-'
    if neg:
        pos += 1
    digits_start = pos
    while pos < len(data) and 0x30 <= data[pos] <= 0x39:
        pos += 1
        if pos - digits_start > max_digits:
            raise NgDecodeError(f"{what} has more than {max_digits} digits", digits_start)
    if pos == digits_start:
        raise NgDecodeError(f"expected a digit in {what}, found {_show(data, pos)}", pos)
    if pos >= len(data) or data[pos] != end_byte:
        raise NgDecodeError(f"expected {chr(end_byte)!r} after {what}, found {_show(data, pos)}", pos)
    text = data[digits_start:pos]
    if len(text) > 1 and text[0] == 0x30:
        raise NgDecodeError(f"{what} has a leading zero", digits_start)
    if neg and text == b"0":
        raise NgDecodeError(f"{what} is negative zero", start)
    value = int(text)
    return (-value if neg else value), pos


def decode_prefix(
    data: bytes,
    pos: int = 0,
    *,
    max_depth: int = MAX_DEPTH,
    max_items: int = MAX_ITEMS,
) -> tuple[Value, int]:
    """Decode one bencoded value starting at ``pos``; returns it and the offset just past it."""
    data = bytes(data)
    n = len(data)
    stack: list[list[Value] | dict[bytes, Value]] = []
    keys: list[bytes | None] = []  # per dict on the stack: the key awaiting its value
    items = 0
    while True:
        if pos >= n:
            if not stack:
                raise NgDecodeError("expected a value, found end of data", pos)
            if isinstance(stack[-1], dict):
                what = "a key or 'e'" if keys[-1] is None else f"a value for key {keys[-1]!r}"
            else:
                what = "a value or 'e'"
            raise NgDecodeError(f"expected {what}, found end of data (unterminated container)", pos)
        c = data[pos]
        top = stack[-1] if stack else None
        if c == 0x65 and top is not None:  # 'e' closes the innermost container
            if isinstance(top, dict) and keys[-1] is not None:
                raise NgDecodeError(f"dictionary key {keys[-1]!r} has no value", pos)
            pos += 1
            stack.pop()
            keys.pop()
            value: Value = top
        elif isinstance(top, dict) and keys[-1] is None:
            # a dictionary key: must be a byte string
            if not 0x30 <= c <= 0x39:
                raise NgDecodeError(f"expected a byte-string key or 'e', found {_show(data, pos)}", pos)
            length, colon = _int_at(data, pos, 0x3A, "string length", _MAX_LEN_DIGITS)
            if colon + 1 + length > n:
                raise NgDecodeError(
                    f"string of length {length} runs past the end of data ({n - colon - 1} bytes left)", pos
                )
            key = data[colon + 1 : colon + 1 + length]
            if key in top:
                raise NgDecodeError(f"duplicate dictionary key {key!r}", pos)
            keys[-1] = key
            pos = colon + 1 + length
            continue
        else:
            items += 1
            if items > max_items:
                raise NgDecodeError(f"more than {max_items} values in one document", pos)
            if c == 0x69:  # 'i'
                value, end = _int_at(data, pos + 1, 0x65, "integer", _MAX_INT_DIGITS)
                pos = end + 1
            elif 0x30 <= c <= 0x39:
                length, colon = _int_at(data, pos, 0x3A, "string length", _MAX_LEN_DIGITS)
                if colon + 1 + length > n:
                    raise NgDecodeError(
                        f"string of length {length} runs past the end of data ({n - colon - 1} bytes left)",
                        pos,
                    )
                value = data[colon + 1 : colon + 1 + length]
                pos = colon + 1 + length
            elif c in (0x6C, 0x64):  # 'l', 'd'
                if len(stack) >= max_depth:
                    raise NgDecodeError(f"nesting deeper than {max_depth} levels", pos)
                stack.append([] if c == 0x6C else {})
                keys.append(None)
                pos += 1
                continue
            else:
                raise NgDecodeError(f"expected a value (i, l, d or a digit), found {_show(data, pos)}", pos)
        # attach the finished value to its parent, or return it
        if not stack:
            return value, pos
        parent = stack[-1]
        if isinstance(parent, list):
            parent.append(value)
        else:
            k = keys[-1]
            assert k is not None
            parent[k] = value
            keys[-1] = None


def decode(
    data: bytes,
    *,
    max_size: int = MAX_SIZE,
    max_depth: int = MAX_DEPTH,
    max_items: int = MAX_ITEMS,
) -> Value:
    """Decode exactly one bencoded value filling all of ``data``."""
    if len(data) > max_size:
        raise NgDecodeError(f"document of {len(data)} bytes exceeds the limit of {max_size}", 0)
    value, end = decode_prefix(data, 0, max_depth=max_depth, max_items=max_items)
    if end != len(data):
        raise NgDecodeError(f"expected end of data, found {_show(bytes(data), end)} (trailing bytes)", end)
    return value


# ---------------------------------------------------------------------------------------------
# JSON


def _json_depth(text: str, max_depth: int) -> None:
    # json.loads recurses per nesting level; refuse deep documents before handing them over.
    depth = 0
    in_string = escaped = False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > max_depth:
                raise NgDecodeError(f"nesting deeper than {max_depth} levels", i)
        elif ch in "]}":
            depth -= 1


def _no_constant(name: str) -> object:
    raise NgDecodeError(f"JSON constant {name} is not a valid NG value")


def _from_json(obj: object, max_items: int) -> Value:
    # Iterative conversion into the bencode model.
    counter = [0]

    def leaf(x: object) -> Value | None:
        counter[0] += 1
        if counter[0] > max_items:
            raise NgDecodeError(f"more than {max_items} values in one document")
        if isinstance(x, str):
            return x.encode("utf-8", "surrogatepass")
        if isinstance(x, bool):
            return int(x)
        if isinstance(x, int):
            return x
        if isinstance(x, float):
            if x.is_integer():
                return int(x)
            raise NgDecodeError(f"JSON number {x!r} is not an integer")
        return None

    root_out: list[Value] = []
    work: list[tuple[object, list[Value] | dict[bytes, Value], bytes | None]] = [(obj, root_out, None)]
    while work:
        src, dst, key = work.pop()
        out: Value | None
        if isinstance(src, dict):
            out = {}
            for k, v in reversed(list(src.items())):
                if v is not None:
                    work.append((v, out, str(k).encode("utf-8", "surrogatepass")))
        elif isinstance(src, list):
            out = []
            # filled in order: reserve slots by pushing in reverse and appending
            for v in reversed(src):
                if v is None:
                    raise NgDecodeError("JSON null inside a list is not a valid NG value")
                work.append((v, out, None))
        else:
            out = leaf(src)
            if out is None:
                raise NgDecodeError(f"unsupported JSON value {src!r}")
        if isinstance(dst, list):
            dst.append(out)
        else:
            assert key is not None
            dst[key] = out
    return root_out[0]


def _decode_json(data: bytes, max_depth: int, max_items: int) -> Value:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise NgDecodeError("JSON document is not valid UTF-8", e.start) from None
    _json_depth(text, max_depth)
    try:
        obj = json.loads(text, parse_constant=_no_constant)
    except NgDecodeError:
        raise
    except (ValueError, RecursionError) as e:
        pos = getattr(e, "pos", None)
        msg = getattr(e, "msg", str(e))
        raise NgDecodeError(f"invalid JSON: {msg}", pos) from None
    return _from_json(obj, max_items)


# ---------------------------------------------------------------------------------------------
# Documents


def decode_document(
    data: bytes,
    *,
    max_size: int = MAX_SIZE,
    max_depth: int = MAX_DEPTH,
    max_items: int = MAX_ITEMS,
) -> tuple[dict[bytes, Value], Format]:
    """Decode an NG dictionary: bencode if it starts with ``d``, JSON if with ``{``."""
    if not data:
        raise NgDecodeError("empty document", 0)
    if len(data) > max_size:
        raise NgDecodeError(f"document of {len(data)} bytes exceeds the limit of {max_size}", 0)
    first = data[0]
    value: Value
    if first == 0x64:  # 'd'
        value = decode(data, max_size=max_size, max_depth=max_depth, max_items=max_items)
        fmt = Format.BENCODE
    elif first == 0x7B:  # '{'
        value = _decode_json(bytes(data), max_depth, max_items)
        fmt = Format.JSON
    else:
        raise NgDecodeError(f"expected a dictionary ('d' or '{{'), found {_show(bytes(data), 0)}", 0)
    if not isinstance(value, dict):
        raise NgDecodeError("expected a dictionary", 0)
    return value, fmt


def encode(value: Encodable) -> bytes:
    """Bencode ``value``. Dictionary keys are written in insertion order (as rtpengine does)."""
    out: list[bytes] = []
    work: list[object] = [value]
    while work:
        v = work.pop()
        if isinstance(v, _Raw):
            out.append(v.data)
        elif isinstance(v, bytes | bytearray | memoryview):
            b = bytes(v)
            out.append(b"%d:%s" % (len(b), b))
        elif isinstance(v, str):
            b = v.encode("utf-8", "surrogateescape")
            out.append(b"%d:%s" % (len(b), b))
        elif isinstance(v, bool | int):
            out.append(b"i%de" % int(v))
        elif isinstance(v, Mapping):
            out.append(b"d")
            pending: list[object] = []
            for k, item in v.items():
                if not isinstance(k, str | bytes):
                    raise TypeError(f"dictionary key {k!r} is not a string")
                pending += [k, item]
            work.append(_Raw(b"e"))
            work.extend(reversed(pending))
        elif isinstance(v, Sequence):
            out.append(b"l")
            work.append(_Raw(b"e"))
            work.extend(reversed(list(v)))
        else:
            raise TypeError(f"cannot bencode {type(v).__name__}")
    return b"".join(out)


class _Raw:
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def _to_json(value: object) -> object:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "surrogateescape")
    if isinstance(value, str | bool | int):
        return value
    if isinstance(value, Mapping):
        return {
            (k.decode("utf-8", "surrogateescape") if isinstance(k, bytes) else k): _to_json(v)
            for k, v in value.items()
        }
    if isinstance(value, Sequence):
        return [_to_json(v) for v in value]
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def encode_document(value: Mapping[str, Encodable] | Mapping[bytes, Encodable], fmt: Format) -> bytes:
    """Write a reply dictionary in the request's format."""
    if fmt is Format.JSON:
        return json.dumps(_to_json(value), separators=(",", ":")).encode("utf-8", "surrogateescape")
    return encode(value)
