"""Conference mixing, the two-leg recording mixer, and WAV files that survive
a killed writer."""

from __future__ import annotations

import signal
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from conftest import dominant_freq, sine
from vpbx.media import MediaError, Mixer, RecordingMixer, WavWriter, repair_wav


def test_everyone_hears_everyone_but_themself() -> None:
    m = Mixer(160)
    a, b, c = (np.full(160, v, np.int16) for v in (100, 200, 400))
    out = m.mix([a, b, c, None])
    assert [int(o[0]) for o in out] == [600, 500, 300, 700]
    assert int(m.full_mix()[0]) == 700


def test_mix_saturates_instead_of_wrapping() -> None:
    m = Mixer(4)
    loud = np.full(4, 30000, np.int16)
    out = m.mix([loud, loud, loud])
    assert int(out[0][0]) == 32767
    out = m.mix([-loud, -loud, -loud])
    assert int(out[0][0]) == -32768


def test_mix_rejects_wrong_frame_length() -> None:
    with pytest.raises(MediaError, match="160"):
        Mixer(160).mix([np.zeros(80, np.int16)])


def test_stereo_recording_keeps_each_leg_on_its_channel_across_loss() -> None:
    rate, frame = 8000, 160
    rec = RecordingMixer(rate, stereo=True)
    a, b = sine(rate, 300.0, 2.0), sine(rate, 1000.0, 2.0)
    rng = np.random.default_rng(7)
    out = []
    dropped = 0
    for i in range(0, len(a), frame):
        if rng.random() < 0.05:
            dropped += 1  # leg A's packet was lost: nothing pushed
        else:
            rec.push("a", i, a[i : i + frame])
        rec.push("b", i, b[i : i + frame])
        out.append(rec.drain(i + frame))
    pcm = np.concatenate(out).reshape(-1, 2)
    assert dropped > 0
    assert len(pcm) == len(a)  # real time despite the loss
    assert abs(dominant_freq(pcm[:, 0], rate) - 300) < 5
    assert abs(dominant_freq(pcm[:, 1], rate) - 1000) < 5
    silent = np.sum(np.all(pcm[:, 0].reshape(-1, frame) == 0, axis=1))
    assert silent == dropped
    assert rec.stats("a")["silence_samples_inserted"] == dropped * frame


def test_wav_writer_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    x = sine(16000, 440.0, 1.0)
    with WavWriter(path, 16000) as w:
        for i in range(0, len(x), 320):
            w.write(x[i : i + 320])
    with wave.open(str(path)) as r:
        assert (r.getframerate(), r.getnchannels(), r.getsampwidth()) == (16000, 1, 2)
        assert np.array_equal(np.frombuffer(r.readframes(r.getnframes()), np.int16), x)
    with pytest.raises(MediaError, match="closed"):
        w.write(x)


WRITER = """
import os, signal, sys
import numpy as np
from vpbx.media import WavWriter
w = WavWriter(sys.argv[1], 8000, channels=2, header_interval_ms=1000)
frame = np.arange(320, dtype=np.int16)  # 20 ms stereo
for _ in range(125):  # 2.5 s
    w.write(frame)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_wav_survives_a_killed_writer_and_repair_restores_all(tmp_path: Path) -> None:
    path = tmp_path / "killed.wav"
    proc = subprocess.run([sys.executable, "-c", WRITER, str(path)], check=False)
    assert proc.returncode == -signal.SIGKILL
    with wave.open(str(path)) as r:  # playable as it was left
        assert r.getnchannels() == 2
        assert r.getnframes() >= 2 * 8000
    report = repair_wav(path)
    assert report["changed"] and report["frames"] == 20000
    with wave.open(str(path)) as r:
        assert r.getnframes() == 20000
        frames = np.frombuffer(r.readframes(20000), np.int16)
        assert np.array_equal(frames[:320], np.arange(320))
    assert repair_wav(path)["changed"] is False


def test_repair_refuses_a_file_that_is_not_wav(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"hello world, not a riff file at all" * 3)
    with pytest.raises(MediaError, match="RIFF"):
        repair_wav(junk)
    with pytest.raises(MediaError, match="i/o"):
        repair_wav(tmp_path / "missing.wav")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_full_disk_is_a_clear_error() -> None:
    with pytest.raises(MediaError, match="i/o"):
        w = WavWriter("/dev/full", 8000)
        w.write(np.zeros(8000, np.int16))
        w.close()
