"""Garbage in, SdpError out: nothing else ever escapes the parser, and whatever parses can be
read, answered, rewritten and re-serialized without an exception."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vpbx.sdp import (
    RewriteOptions,
    SdpError,
    SessionDescription,
    answer,
    default_capabilities,
    is_on_hold,
    negotiated,
    parse,
    rewrite,
    serialize,
)

# SDP_FUZZ_EXAMPLES=20000 for a longer run; the default keeps the unit suite quick.
FUZZ = settings(
    max_examples=int(os.environ.get("SDP_FUZZ_EXAMPLES", "400")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

VALID = (
    "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    "m=audio 5004 RTP/AVP 96 0 8 101\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=rtcp:5005\r\na=sendrecv\r\n"
    "m=video 0 RTP/AVP 31\r\n"
)

TOKENS = st.sampled_from(
    [
        "0", "8", "9", "13", "18", "96", "101", "127", "128", "65535", "65536", "-1", "00", "1/2", "1/2/3",
        "IN", "IP4", "IP6", "ip4", "0.0.0.0", "::", "192.0.2.1", "2001:db8::1", "233.252.0.1/127",
        "RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF", "UDP/DTLS/SCTP", "audio", "video", "application",
        "opus/48000/2", "PCMU/8000", "telephone-event/8000", "telephone-event/48000", "CN/8000",
        "rtx/90000", "apt=96", "x/", "/", ":", "", "sendonly", "inactive", "0-16", "useinbandfec=1",
    ]
)  # fmt: skip
VALUE = st.lists(st.one_of(TOKENS, st.text(max_size=4)), max_size=6).map(" ".join)
ATTR = st.tuples(
    st.sampled_from(
        [
            *("rtpmap:", "fmtp:", "rtcp:", "ptime:", "maxptime:", "candidate:", "ice-ufrag:", "mid:"),
            *(
                "crypto:",
                "sendonly",
                "recvonly",
                "inactive",
                "sendrecv",
                "rtcp-mux",
                "end-of-candidates",
                "x:",
            ),
        ]
    ),
    VALUE,
).map(lambda t: f"a={t[0]}{t[1]}")
LINE = st.one_of(
    ATTR,
    st.tuples(st.sampled_from(list("vosicbtmkzrxau")), VALUE).map(lambda t: f"{t[0]}={t[1]}"),
    st.sampled_from(["m=audio 7000 RTP/AVP 0 8 101", "m=video 0 RTP/AVP 96", "c=IN IP4 0.0.0.0"]),
    st.text(max_size=12),
)
BODY = st.tuples(
    st.lists(LINE, max_size=25),
    st.sampled_from(["\r\n", "\n", "\r"]),
    st.booleans(),
).map(lambda t: t[1].join((["v=0", "o=- 1 1 IN IP4 192.0.2.1"] if t[2] else []) + t[0]))


def exercise(sd: SessionDescription) -> None:
    """Everything a caller may do with a parsed description; none of it may raise."""
    wire = serialize(sd)
    again = parse(wire)
    assert serialize(again) == wire  # serialization is a fixed point after one normalization
    _ = (sd.origin, sd.connection, sd.session_name, sd.timing, sd.direction, sd.connections)
    for i, m in enumerate(sd.media):
        _ = (m.m_value, m.payload_types, m.ptime, m.maxptime, m.rtcp, m.rtcp_mux, m.direction)
        _ = (m.connection, m.mid, m.candidates, m.crypto, m.fingerprint, m.setup, m.is_secure)
        _ = (sd.media_direction(i), sd.media_connection(i), sd.uses_ice(i))
        for c in m.codecs():
            assert c.pt is not None
            assert m.codec(c.pt) is not None
            _ = m.fmtp(c.pt)
    ports = [10000 + 2 * i for i in range(len(sd.media))]
    ans = answer(sd, default_capabilities(), address="198.51.100.1", ports=ports, session_id=1)
    assert len(ans.media) == len(sd.media)
    assert serialize(parse(serialize(ans))) == serialize(ans)
    negotiated(sd, ans)
    is_on_hold(sd)
    out = rewrite(
        sd,
        RewriteOptions(
            address="2001:db8::7",
            ports=ports,
            ice_remove=True,
            strip=["PCMA"],
            mask=["G722"],
            transcode=["opus", "PCMU"],
            replace_origin=True,
            replace_session_connection=True,
        ),
    )
    assert serialize(parse(serialize(out.sdp))) == serialize(out.sdp)


def parse_or_sdp_error(data: bytes | str) -> None:
    try:
        sd = parse(data)
    except SdpError as e:
        assert e.line is None or e.line >= 1
        return
    exercise(sd)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    parse_or_sdp_error(data)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_after_a_valid_header(data: bytes) -> None:
    parse_or_sdp_error(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n" + data)


@FUZZ
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    parse_or_sdp_error(text)


@FUZZ
@given(BODY)
def test_sdp_shaped_garbage(body: str) -> None:
    parse_or_sdp_error(body)


@FUZZ
@given(st.integers(min_value=0, max_value=12), st.lists(LINE, min_size=1, max_size=3))
def test_garbage_lines_spliced_into_a_valid_body(at: int, garbage: list[str]) -> None:
    lines = VALID.split("\r\n")
    lines[at:at] = garbage
    parse_or_sdp_error("\r\n".join(lines))


@FUZZ
@given(st.integers(min_value=0, max_value=len(VALID) - 1), st.binary(min_size=1, max_size=4))
def test_bytes_overwritten_in_a_valid_body(at: int, junk: bytes) -> None:
    wire = VALID.encode()
    parse_or_sdp_error(wire[:at] + junk + wire[at + len(junk) :])


def test_valid_body_itself_round_trips() -> None:
    assert serialize(parse(VALID)) == VALID.encode()
