"""Codec round trips through the binding: the tone that goes in comes out."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import dominant_freq, sine, snr_db
from vpbx.media import Decoder, Encoder, MediaError, Resampler, codec_names


def run_codec(name: str, clock: int, pcm: np.ndarray, frame: int, **params: int) -> np.ndarray:
    enc = Encoder(name, clock, **params)
    dec = Decoder(name, clock, **({"sample_rate": params["sample_rate"]} if "sample_rate" in params else {}))
    out = [dec.decode(enc.encode(pcm[i : i + frame])) for i in range(0, len(pcm) - frame + 1, frame)]
    return np.concatenate(out)


def test_registry_lists_the_sdp_names() -> None:
    assert set(codec_names()) >= {"PCMU", "PCMA", "G722", "L16", "opus"}


@pytest.mark.parametrize(
    ("rate", "params"),
    [
        (8000, {"sample_rate": 8000, "bandwidth": 4000}),
        (16000, {"sample_rate": 16000, "bandwidth": 8000}),
        (48000, {"sample_rate": 48000}),
    ],
)
def test_opus_keeps_frequency_and_snr(rate: int, params: dict[str, int]) -> None:
    x = sine(rate, 1000.0, 2.0)
    y = run_codec("opus", 48000, x, rate // 50, bitrate=32000, **params)
    assert len(y) == len(x)
    assert abs(dominant_freq(y[rate // 2 :], rate) - 1000.0) < 5
    assert snr_db(x, y) > 15


def test_opus_fec_recovers_a_lost_frame_better_than_plc() -> None:
    rate = 16000
    x = sine(rate, 440.0, 1.0)
    enc = Encoder("opus", 48000, sample_rate=rate, fec=1, packet_loss_perc=20, bitrate=24000)
    frames = [enc.encode(x[i : i + 320]) for i in range(0, len(x), 320)]
    lost = 25
    fec_dec = Decoder("opus", 48000, sample_rate=rate)
    plc_dec = Decoder("opus", 48000, sample_rate=rate)
    for f in frames[:lost]:
        fec_dec.decode(f)
        plc_dec.decode(f)
    recovered = fec_dec.recover(frames[lost + 1], 320)
    concealed = plc_dec.conceal(320)
    # Opus delays the signal by a few ms; compare energy-normalised error to a
    # delayed reference window.
    delay = 104  # 6.5 ms at 16 kHz: libopus' look-ahead
    ref = x[lost * 320 - delay : (lost + 1) * 320 - delay].astype(float)
    err_fec = np.mean((recovered - ref) ** 2)
    err_plc = np.mean((concealed - ref) ** 2)
    assert len(recovered) == 320 and len(concealed) == 320
    assert err_fec < err_plc


@pytest.mark.parametrize(("freq", "min_snr"), [(1000.0, 30.0), (6000.0, 15.0)])
def test_g722_keeps_both_subbands(freq: float, min_snr: float) -> None:
    """1 kHz lives in the lower sub-band, 6 kHz in the upper one (G.722 §1.2)."""
    enc, dec = Encoder("G722", 8000), Decoder("G722", 8000)
    assert (enc.sample_rate, enc.clock_rate) == (16000, 8000)  # RFC 3551 §4.5.2
    x = sine(16000, freq, 1.0)
    payloads = [enc.encode(x[i : i + 320]) for i in range(0, len(x), 320)]
    assert all(len(p) == 160 for p in payloads)  # 64 kbit/s, 20 ms
    y = np.concatenate([dec.decode(p) for p in payloads])
    assert len(y) == len(x)
    assert abs(dominant_freq(y[1600:], 16000) - freq) < 5
    assert snr_db(x, y) > min_snr


def test_g722_conceals_a_lost_packet_with_the_same_tone() -> None:
    enc, dec = Encoder("G722", 8000), Decoder("G722", 8000)
    x = sine(16000, 500.0, 0.5)
    frames = [enc.encode(x[i : i + 320]) for i in range(0, len(x), 320)]
    for f in frames[:10]:
        dec.decode(f)
    hidden = dec.conceal(320)
    assert len(hidden) == 320
    assert abs(dominant_freq(hidden, 16000) - 500.0) < 40
    assert np.sqrt(np.mean(hidden.astype(float) ** 2)) > 1000


def test_l16_is_lossless() -> None:
    x = np.random.default_rng(1).integers(-32768, 32767, 480, dtype=np.int16)
    enc, dec = Encoder("L16", 48000), Decoder("L16", 48000)
    payload = enc.encode(x)
    assert payload == x.astype(">i2").tobytes()
    assert np.array_equal(dec.decode(payload), x)


def test_unknown_codec_and_bad_params_are_clear() -> None:
    with pytest.raises(MediaError, match="unsupported codec G729/8000/1"):
        Encoder("G729", 8000)
    with pytest.raises(MediaError, match="unsupported codec PCMU/16000/1"):
        Encoder("PCMU", 16000)
    with pytest.raises(MediaError, match=r"opus: complexity=42 out of range 0..=10"):
        Encoder("opus", 48000, complexity=42)
    with pytest.raises(MediaError, match="unknown parameter"):
        Encoder("PCMU", 8000, bitrate=64000)
    with pytest.raises(TypeError, match="int or bool"):
        Encoder("opus", 48000, bitrate="high")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="1-D numpy int16 array"):
        Encoder("PCMU", 8000).encode([1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(MediaError, match="opus"):
        Decoder("opus", 48000).decode(b"\xff\xff\xff\xff")


def test_sdp_names_match_case_insensitively() -> None:
    assert Encoder("pcmu", 8000).name == "PCMU"
    assert Encoder("OPUS", 48000, 2).channels == 2


@pytest.mark.parametrize(("a", "b"), [(8000, 16000), (16000, 48000), (48000, 8000)])
def test_resampler_keeps_tone(a: int, b: int) -> None:
    r = Resampler(a, b)
    x = sine(a, 700.0, 1.0)
    y = np.concatenate([r.process(x[i : i + a // 50]) for i in range(0, len(x), a // 50)])
    assert len(y) == b
    assert abs(dominant_freq(y[b // 10 :], b) - 700.0) < 3
