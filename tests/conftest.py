"""Shared helpers for the test suite."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def sine(rate: int, freq: float, seconds: float, amplitude: float = 8000.0) -> npt.NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def dominant_freq(x: npt.NDArray[np.int16], rate: int) -> float:
    """Frequency of the strongest FFT bin (Hann window), interpolated."""
    w = x.astype(np.float64) * np.hanning(len(x))
    spec = np.abs(np.fft.rfft(w))
    k = int(np.argmax(spec[1:]) + 1)
    if 0 < k < len(spec) - 1:
        a, b, c = np.log(spec[k - 1 : k + 2] + 1e-12)
        k = k + 0.5 * (a - c) / (a - 2 * b + c)
    return float(k * rate / len(x))


def snr_db(ref: npt.NDArray[np.int16], out: npt.NDArray[np.int16]) -> float:
    """SNR of `out` against `ref` after aligning by cross-correlation and
    fitting the gain (codecs may delay the signal)."""
    r = ref.astype(np.float64)
    o = out.astype(np.float64)
    n = min(len(r), len(o))
    r, o = r[:n], o[:n]
    corr = np.correlate(o[: n // 2 + 400], r[: n // 2], mode="valid")
    lag = int(np.argmax(corr))
    o = o[lag : lag + n - 400]
    r = r[: len(o)]
    gain = float(np.dot(o, r) / np.dot(r, r))
    noise = o - gain * r
    return float(10 * np.log10(np.dot(gain * r, gain * r) / max(np.dot(noise, noise), 1e-9)))
