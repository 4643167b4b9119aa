"""Hypothesis fuzzing: whatever the bytes, parse_message and StreamFramer raise nothing
but SipParseError, every accessor of a parsed message raises nothing else either, and a
parsed message serializes to bytes that parse back to an equal message."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vpbx.sip import Message, Request, SipParseError, StreamFramer, parse_message, parse_uri

SHARED = Path(os.environ.get("VPBX_SHARED") or Path(__file__).resolve().parents[2] / ".." / "shared")
VECTORS = SHARED / "testdata" / "rfc4475"

# Seeds of our own, so that the mutation tests run even without shared/.
OWN_SEEDS = [
    b"INVITE sip:bob@biloxi.example.com;transport=tcp SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP [2001:db8::9:1]:5060;branch=z9hG4bK776;rport;received=192.0.2.1\r\n"
    b"v: SIP/2.0/UDP host.example.com;branch=z9hG4bK1, SIP/2.0/UDP h2;ttl=3;maddr=239.1.1.1\r\n"
    b'Max-Forwards: 70\r\nt: "Bob \\"B\\"" <sip:bob@biloxi.example.com>\r\n'
    b"f: Alice <sip:alice@atlanta.example.com;user=phone>;tag=19\r\ni: a84b4c76e66710@pc33\r\n"
    b"CSeq: 314159 INVITE\r\nm: <sip:alice@192.0.2.101>;expires=60;q=0.5, <tel:+1-201-555-0123>\r\n"
    b"Route: <sip:p1.example.com;lr>, <sip:[2001:db8::1];lr>\r\n"
    b'Authorization: Digest username="a", realm="r", uri="sip:x;a,b", response="0a", nc=00000001\r\n'
    b"Supported: timer, 100rel\r\nAllow: INVITE, ACK\r\nExpires: 30\r\n"
    b"Date: Sat, 13 Nov 2010 23:29:00 GMT\r\nc: application/sdp\r\nl: 4\r\n\r\nv=0\r\n",
    b"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\n"
    b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>;tag=2\r\nCall-ID: x@y\r\n"
    b'CSeq: 1 REGISTER\r\nWWW-Authenticate: Digest realm="example.com", qop="auth,auth-int", '
    b'nonce="abc=", algorithm=SHA-256\r\nContent-Length: 0\r\n\r\n',
    b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK2\r\n"
    b"From: sip:a@example.com;tag=1\r\nTo: sip:a@example.com\r\nCall-ID: r@h\r\nCSeq: 2 REGISTER\r\n"
    b"Contact: *\r\nExpires: 0\r\n\r\n",
]
SEEDS = OWN_SEEDS + (sorted(p.read_bytes() for p in VECTORS.glob("*.dat")) if VECTORS.is_dir() else [])
SPECIAL = [bytes([b]) for b in b'\r\n \t:;,<>"\\%@[]?=/&+*.0129aAZ\x00\x7f\xff'] + [
    b"\r\n",
    b"\r\n ",
    b"\r\n\r\n",
    b"%",
    b"%2",
    b"%00",
    b"\xd0\xb0",
    b"SIP/2.0",
    b"sip:",
    b"sips:",
    b"tel:",
    b"[::1]",
    b"Via: ",
    b"Content-Length: ",
    b"l: 99999\r\n",
    b'"',
    b'\\"',
]
ACCESSORS = [name for name, value in vars(Message).items() if isinstance(value, property)]
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["replace", "insert", "delete", "duplicate", "special"]))
        i = draw(st.integers(0, len(data)))
        j = draw(st.integers(i, min(len(data), i + 12)))
        if op == "replace" and i < len(data):
            data[i] = draw(st.integers(0, 255))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=6))
        elif op == "delete":
            del data[i:j]
        elif op == "duplicate":
            data[i:i] = data[i:j]
        else:
            data[i:j] = draw(st.sampled_from(SPECIAL))
    return bytes(data)


def exercise(data: bytes, *, stream: bool = False) -> None:
    try:
        msg = parse_message(data, stream=stream)
    except SipParseError as err:
        assert 400 <= err.status <= 599
        response = err.response(to_tag="fz")
        assert (response is None) == err.drop
        if response is not None:
            response.to_bytes()
        return
    for name in ACCESSORS:
        with contextlib.suppress(SipParseError):
            getattr(msg, name)
    wire = msg.to_bytes()
    again = parse_message(wire)
    assert again == msg
    assert again.to_bytes() == wire
    if isinstance(msg, Request):
        assert str(parse_uri(str(msg.uri))) == str(msg.uri)


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    exercise(data)


@FUZZ
@given(st.lists(st.sampled_from(SPECIAL), max_size=40).map(b"".join))
def test_random_sip_punctuation(data: bytes) -> None:
    exercise(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nX: " + data)
    exercise(data)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_messages(data: bytes) -> None:
    exercise(data)


@FUZZ
@given(mutated(), st.lists(st.integers(1, 200), max_size=12))
def test_stream_framer_on_mutated_streams(data: bytes, cuts: list[int]) -> None:
    framer = StreamFramer(max_header=2048, max_body=512)
    stream = b"\r\n\r\n" + data + b"\r\n" + data
    pos = 0
    for size in [*cuts, len(stream)]:
        for item in framer.feed(stream[pos : pos + size]):
            if isinstance(item, bytes):
                exercise(item, stream=True)
            elif isinstance(item, SipParseError):
                assert item.status in (400, 413, 513)
        pos += size
        assert framer.buffered <= 2048 + 512 + 4  # header + body limits bound the memory
    assert pos >= len(stream)


@FUZZ
@given(st.lists(st.binary(max_size=300) | st.sampled_from(SPECIAL), max_size=12))
def test_stream_framer_on_random_bytes(chunks: list[bytes]) -> None:
    framer = StreamFramer(max_header=512, max_body=128)
    for chunk in chunks:
        for item in framer.feed(chunk):
            if isinstance(item, bytes):
                exercise(item, stream=True)
        assert framer.buffered <= 512 + 128 + 4


@FUZZ
@given(st.lists(st.sampled_from(SEEDS), min_size=1, max_size=4), st.data())
def test_stream_framer_rebuilds_messages_split_anywhere(seeds: list[bytes], data: st.DataObject) -> None:
    good = []
    for seed in seeds:
        try:
            good.append(parse_message(seed).to_bytes())
        except SipParseError:
            continue
    stream = b"\r\n".join(good)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    framer = StreamFramer()
    out = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        out += framer.feed(stream[a:b])
    assert out == good
    assert framer.buffered == 0
