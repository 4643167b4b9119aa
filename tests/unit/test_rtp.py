"""RtpPacket through the binding: fields, extensions, and clear errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpbx.media import MediaError, RtpPacket


def test_fields_survive_a_round_trip() -> None:
    p = RtpPacket(96, 65535, 0xDEADBEEF, 0x01020304, b"\x01\x02\x03", marker=True, csrc=[7, 8], padding_len=4)
    p.set_extensions([(1, b"\xaa"), (5, b"\x01\x02")])
    wire = p.serialize()
    q = RtpPacket.parse(wire)
    assert q == p
    assert (q.version, q.payload_type, q.sequence_number, q.timestamp) == (2, 96, 65535, 0xDEADBEEF)
    assert (q.ssrc, q.csrc, q.marker, q.padding) == (0x01020304, [7, 8], True, True)
    assert q.payload == b"\x01\x02\x03"
    assert q.extension_profile == 0xBEDE
    assert q.extensions() == [(1, b"\xaa"), (5, b"\x01\x02")]


def test_known_wire_bytes() -> None:
    # V=2, PT=0, seq=1, ts=160, ssrc=0x11223344, payload 0xff
    wire = bytes.fromhex("80000001000000a011223344ff")
    p = RtpPacket.parse(wire)
    assert (p.payload_type, p.sequence_number, p.timestamp, p.ssrc, p.payload) == (
        0,
        1,
        160,
        0x11223344,
        b"\xff",
    )
    assert p.serialize() == wire


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated: need 12 bytes, have 0"),
        (b"\x80\x00", "truncated: need 12 bytes, have 2"),
        (bytes([0x40]) + bytes(11), "version 1, expected 2"),
        (bytes([0x82]) + bytes(11), "CSRC list: truncated"),
        (bytes([0x90]) + bytes(11), "header extension: truncated"),
        (bytes([0xA0]) + bytes(11) + b"\x05", "padding length 5"),
    ],
)
def test_malformed_packets_raise_clear_errors(data: bytes, message: str) -> None:
    with pytest.raises(MediaError, match=message):
        RtpPacket.parse(data)


def test_media_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="RTP"):
        RtpPacket.parse(b"junk")


def test_out_of_range_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="payload_type 128"):
        RtpPacket(payload_type=128)
    with pytest.raises(ValueError, match="at most 15"):
        RtpPacket(csrc=list(range(16)))


@given(st.binary(max_size=300))
def test_garbage_never_crashes(data: bytes) -> None:
    try:
        p = RtpPacket.parse(data)
    except MediaError:
        return
    assert RtpPacket.parse(p.serialize()) == p
