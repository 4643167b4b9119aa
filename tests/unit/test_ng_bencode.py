"""Bencode/JSON documents of the NG protocol: round trips, the exact grammar, hostile input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vpbx.ng.bencode import (
    MAX_DEPTH,
    Format,
    NgDecodeError,
    Value,
    decode,
    decode_document,
    decode_prefix,
    encode,
    encode_document,
)

values: st.SearchStrategy[Value] = st.recursive(
    st.binary(max_size=40) | st.integers(min_value=-(10**30), max_value=10**30),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.binary(max_size=12), inner, max_size=6),
    max_leaves=40,
)


@given(values)
def test_round_trip(v: Value) -> None:
    assert decode(encode(v)) == v


@given(st.dictionaries(st.binary(max_size=12), values, max_size=6))
def test_document_round_trip_both_formats(d: dict[bytes, Value]) -> None:
    assert decode_document(encode_document(d, Format.BENCODE)) == (d, Format.BENCODE)


@given(st.binary(max_size=200))
@settings(max_examples=500)
def test_arbitrary_bytes_decode_or_fail_cleanly(data: bytes) -> None:
    try:
        decode(data)
    except NgDecodeError as e:
        assert e.position is None or 0 <= e.position <= len(data)


@given(values, st.integers(min_value=0, max_value=50))
def test_truncated_encodings_fail_with_a_position(v: Value, cut: int) -> None:
    data = encode(v)
    if cut >= len(data):
        return
    with pytest.raises(NgDecodeError) as e:
        decode(data[:cut])
    assert e.value.position is not None and e.value.position <= cut


def test_known_encodings() -> None:
    assert encode({"command": "ping"}) == b"d7:command4:pinge"
    assert encode([b"a", 0, -3, {b"k": []}]) == b"l1:ai0ei-3ed1:kleee"
    assert encode(True) == b"i1e"
    assert decode(b"d6:result4:ponge") == {b"result": b"pong"}
    assert decode(b"0:") == b""
    # rtpengine does not sort keys, and neither do we: order is kept both ways
    assert list(decode(b"d1:bi1e1:ai2ee")) == [b"b", b"a"]  # type: ignore[arg-type]
    assert encode({"b": 1, "a": 2}) == b"d1:bi1e1:ai2ee"


@pytest.mark.parametrize(
    ("data", "position", "words"),
    [
        (b"", 0, "expected a value"),
        (b"i12", 3, "expected 'e' after integer"),
        (b"i-0e", 1, "negative zero"),
        (b"i012e", 1, "leading zero"),
        (b"ie", 1, "expected a digit in integer"),
        (b"05:hello", 0, "leading zero"),
        (b"5:abc", 0, "runs past the end"),
        (b"5abc", 1, "expected ':' after string length"),
        (b"d3:key", 6, "unterminated"),
        (b"di1e1:ae", 1, "byte-string key"),
        (b"d1:ae", 4, "has no value"),
        (b"d1:ai1e1:ai2ee", 7, "duplicate dictionary key"),
        (b"l1:ae1:b", 5, "trailing bytes"),
        (b"x", 0, "expected a value (i, l, d or a digit)"),
        (b"l", 1, "unterminated"),
        (b"i" + b"9" * 80 + b"e", 1, "more than 64 digits"),
        (b"99999999999:x", 0, "more than 10 digits"),
    ],
)
def test_bad_bencode_says_where_and_what(data: bytes, position: int, words: str) -> None:
    with pytest.raises(NgDecodeError) as e:
        decode(data)
    assert e.value.position == position
    assert words in str(e.value)
    assert str(e.value).startswith(f"at byte {position}: ")


def test_hostile_nesting_is_refused_without_recursion() -> None:
    for opener in (b"l", b"d1:k"):
        deep = opener * 100_000  # far past any recursion limit
        with pytest.raises(NgDecodeError, match="nesting deeper than 32"):
            decode(deep)
    ok = b"l" * MAX_DEPTH + b"e" * MAX_DEPTH
    assert decode(ok) is not None


def test_hostile_sizes_are_refused() -> None:
    with pytest.raises(NgDecodeError, match="exceeds the limit"):
        decode(b"l" + b"i1e" * 400_000 + b"e")
    with pytest.raises(NgDecodeError, match="more than 100 values"):
        decode(b"l" + b"i1e" * 200 + b"e", max_items=100)
    with pytest.raises(NgDecodeError, match="runs past the end"):
        decode(b"4294967295:x")


def test_decode_prefix_returns_the_end() -> None:
    assert decode_prefix(b"i5eXYZ") == (5, 3)
    assert decode_prefix(b"xx4:spam", 2) == (b"spam", 8)


def test_json_documents() -> None:
    doc, fmt = decode_document(b'{"command": "ping", "n": 3, "ok": true, "l": ["a", 1], "skip": null}')
    assert fmt is Format.JSON
    assert doc == {b"command": b"ping", b"n": 3, b"ok": 1, b"l": [b"a", 1]}
    assert list(doc) == [b"command", b"n", b"ok", b"l"]
    assert json.loads(encode_document({"result": "pong", "x": [b"\xc3\xa9"]}, Format.JSON)) == {
        "result": "pong",
        "x": ["é"],
    }


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b'{"a": 1.5}', "not an integer"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": [null]}', "null inside a list"),
        (b'{"a": ', "invalid JSON"),
        (b"{" + b'"a":[' * 5000 + b"]" * 5000 + b"}", "nesting deeper"),
        (b'{"a": "\xff"}', "not valid UTF-8"),
        (b"[1]", "expected a dictionary"),
        (b"l1:ae", "expected a dictionary"),
        (b"i1e", "expected a dictionary"),
    ],
)
def test_bad_documents(data: bytes, words: str) -> None:
    with pytest.raises(NgDecodeError, match=words):
        decode_document(data)


def test_encode_rejects_what_it_cannot_write() -> None:
    bad: Any = {1: 2}
    with pytest.raises(TypeError):
        encode(bad)
    with pytest.raises(TypeError):
        encode(1.5)  # type: ignore[arg-type]
