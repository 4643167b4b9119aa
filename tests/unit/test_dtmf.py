"""DTMF as a caller's keypad produces it: tones in the audio, or RFC 4733
telephone-event packets."""

from __future__ import annotations

import subprocess
import tempfile
import wave

import numpy as np
import pytest

from conftest import sine
from vpbx.media import (
    Decoder,
    DtmfDetector,
    DtmfEventReceiver,
    Encoder,
    MediaError,
    dtmf_tone,
    parse_telephone_event,
    telephone_event_packets,
)
from vpbx.media.chain import resample

KEYS = "0123456789*#ABCD"


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_every_key_is_detected_once(rate: int) -> None:
    for key in KEYS:
        det = DtmfDetector(rate)
        pcm = np.concatenate([dtmf_tone(rate, key, 100), np.zeros(rate // 10, np.int16)])
        assert det.feed(pcm) == [key], key


def test_a_dialled_number_through_g711_arrives_in_order() -> None:
    number = "0123456789*#"
    parts = []
    for k in number:
        parts += [dtmf_tone(8000, k, 50), np.zeros(400, np.int16)]
    pcm = np.concatenate(parts)
    enc, dec = Encoder("PCMA", 8000), Decoder("PCMA", 8000)
    heard = np.concatenate([dec.decode(enc.encode(pcm[i : i + 160])) for i in range(0, len(pcm), 160)])
    det = DtmfDetector(8000)
    got = [k for i in range(0, len(heard), 160) for k in det.feed(heard[i : i + 160])]
    assert "".join(got) == number


def test_speechlike_signals_do_not_trigger() -> None:
    det = DtmfDetector(8000)
    noise = np.random.default_rng(3).normal(0, 3000, 8000).astype(np.int16)
    assert det.feed(noise) == []
    assert det.feed(sine(8000, 1000.0, 1.0)) == []
    two_close = sine(8000, 697.0, 0.5) // 2 + sine(8000, 770.0, 0.5) // 2  # two row tones: not a key
    assert det.feed(two_close) == []


def test_rfc4733_packets_of_one_press() -> None:
    pkts = telephone_event_packets("5", 100, clock_rate=8000, ptime_ms=20, volume=10, timestamp=1000)
    markers = [m for m, _, _ in pkts]
    assert markers[0] and not any(markers[1:])  # RFC 4733 §2.5.1.2
    assert {ts for _, ts, _ in pkts} == {1000}  # one event, one timestamp
    events = [parse_telephone_event(p) for _, _, p in pkts]
    assert [e["end"] for e in events][-3:] == [True, True, True]  # §2.5.1.4 end sent 3 times
    assert events[-1]["duration"] == 800 and events[0]["digit"] == "5"
    assert parse_telephone_event(bytes.fromhex("0b8a0320")) == {
        "event": 11,
        "digit": "#",
        "end": True,
        "volume": 10,
        "duration": 800,
    }


def test_receiver_reports_each_press_once_despite_loss_and_repeats() -> None:
    rx = DtmfEventReceiver(8000)
    got = []
    ts = 0
    for key in "123#":
        pkts = telephone_event_packets(key, 120, timestamp=ts)
        stream = pkts[1:] + pkts[-1:]  # first packet lost, end repeated again
        for marker, t, payload in stream:
            d = rx.feed(t, marker, payload)
            if d is not None:
                got.append(d)
        ts += 8000
    assert got == list("123#")
    cur = rx.current()
    assert cur is not None and cur["digit"] == "#" and cur["ended"] is True


def test_bad_dtmf_input_is_a_clear_error() -> None:
    with pytest.raises(MediaError, match="truncated"):
        parse_telephone_event(b"\x01")
    with pytest.raises(MediaError):
        dtmf_tone(8000, "X", 100)
    with pytest.raises(MediaError, match="one character"):
        telephone_event_packets("12", 100)
    with pytest.raises(MediaError):
        DtmfDetector(0)


def test_speech_does_not_trigger_talk_off() -> None:
    """Talk-off: a minute of synthetic speech in several voices yields no key."""
    text = (
        "Please hold while we transfer your call to the next available agent. "
        "One two three four five six seven eight nine ten. She sells sea shells by the sea shore."
    )
    seconds = 0.0
    for voice in ("en", "en-us", "de", "fr", "en+f3"):
        with tempfile.NamedTemporaryFile(suffix=".wav") as f:
            subprocess.run(["espeak-ng", "-v", voice, "-w", f.name, text], check=True, capture_output=True)
            with wave.open(f.name) as w:
                x = np.frombuffer(w.readframes(w.getnframes()), np.int16)
                rate = w.getframerate()
        speech = resample(x, rate, 8000)
        seconds += len(speech) / 8000
        assert DtmfDetector(8000).feed(speech) == [], voice
    assert seconds > 30
