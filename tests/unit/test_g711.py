"""G.711 bit-exactness over every input, against two independent references:
CPython's audioop (Sun's implementation of the same ITU algorithm) and a
from-the-tables Python transcription of ITU-T G.711 written here."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from vpbx.media import Decoder, Encoder

with warnings.catch_warnings():
    # Deprecated in 3.11, removed in 3.13 (where the audioop-lts package provides it).
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

ALL = np.arange(-32768, 32768, dtype=np.int16)


def ulaw_table_ref(x: int) -> int:
    """G.711 Table 2a, µ-law: 14-bit magnitude, bias 33, segment search."""
    sign = 0x80 if x >= 0 else 0x00
    mag = (x if x >= 0 else -x - 1) >> 2
    mag = min(mag + 33, 0x1FFF)
    seg = 0
    while mag >> (seg + 6) and seg < 7:
        seg += 1
    mant = (mag >> (seg + 1)) & 0x0F
    return (sign | (seg << 4) | mant) ^ 0x7F


def alaw_table_ref(x: int) -> int:
    """G.711 Table 1a, A-law: 12-bit magnitude, segment by leading one,
    even bits inverted (XOR 0x55)."""
    sign = 0x80 if x >= 0 else 0x00
    mag = (x if x >= 0 else -x - 1) >> 4
    seg = 0 if mag < 16 else mag.bit_length() - 4
    mant = mag if seg == 0 else (mag >> (seg - 1)) & 0x0F
    return (sign | (seg << 4) | mant) ^ 0x55


def test_alaw_encode_matches_audioop_for_every_sample() -> None:
    assert Encoder("PCMA", 8000).encode(ALL) == audioop.lin2alaw(ALL.tobytes(), 2)


def test_ulaw_encode_matches_audioop_for_every_sample() -> None:
    """ITU-T G.191's reference takes the magnitude of a negative sample as its
    one's complement (~x >> 2), so x and ~x map to mirrored codes and -1 maps to
    "negative zero" (0x7F). Sun's code behind audioop negates instead (-(x >> 2)),
    which shifts negative inputs by one 14-bit step: ITU(x) == Sun(x + 4) for
    x <= -5. Compare on that basis, every input checked."""
    ours = Encoder("PCMU", 8000).encode(ALL)
    pos = ALL >= 0
    theirs_pos = audioop.lin2ulaw(ALL[pos].tobytes(), 2)
    assert bytes(np.frombuffer(ours, np.uint8)[pos]) == theirs_pos
    neg = ALL[ALL <= -5]
    theirs_neg = audioop.lin2ulaw((neg + 4).astype(np.int16).tobytes(), 2)
    assert bytes(np.frombuffer(ours, np.uint8)[: len(neg)]) == theirs_neg
    assert Encoder("PCMU", 8000).encode(np.array([-4, -3, -2, -1, 0], np.int16)) == b"\x7f" * 4 + b"\xff"


@pytest.mark.parametrize(("name", "decode_ref"), [("PCMU", audioop.ulaw2lin), ("PCMA", audioop.alaw2lin)])
def test_decode_matches_audioop_for_every_code(name: str, decode_ref: object) -> None:
    codes = bytes(range(256))
    ours = Decoder(name, 8000).decode(codes)
    assert callable(decode_ref)
    theirs = np.frombuffer(decode_ref(codes, 2), dtype=np.int16)
    assert np.array_equal(ours, theirs)


def test_encode_matches_table_transcription() -> None:
    ulaw = Encoder("PCMU", 8000).encode(ALL)
    alaw = Encoder("PCMA", 8000).encode(ALL)
    for i, x in enumerate(ALL.tolist()):
        assert ulaw[i] == ulaw_table_ref(x), x
        assert alaw[i] == alaw_table_ref(x), x


def test_frame_round_trip_error_is_small() -> None:
    x = (8000 * np.sin(np.arange(160) / 3)).astype(np.int16)
    for name in ("PCMU", "PCMA"):
        y = Decoder(name, 8000).decode(Encoder(name, 8000).encode(x))
        assert y.dtype == np.int16 and len(y) == 160
        # G.711 keeps ~38 dB SNR on a loud signal.
        err = np.abs(y.astype(int) - x.astype(int))
        assert err.max() < 8000 / 16
