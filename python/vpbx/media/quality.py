"""Call quality as a MOS estimate from the E-model (ITU-T G.107), computed from what a media
relay can measure: packet loss, interarrival jitter (RFC 3550 A.8) and the codec.

This is the simplified E-model: every parameter the relay cannot know (room noise, sidetone,
echo losses, signal levels) keeps its G.107 default value (G.107 Table 3), which makes the
basic signal-to-noise ratio minus the simultaneous impairments ``R0 - Is`` equal 93.2, and the
advantage factor ``A`` is 0. What is left is

    R = 93.2 - Idd(Ta) - Ie,eff

- ``Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl)``: the effective equipment
  impairment of the codec under random packet loss ``Ppl`` (percent), with ``BurstR = 1``
  (G.107, "effective equipment impairment factor"). ``Ie`` and ``Bpl`` per codec come from
  ITU-T G.113 Appendix I; codecs it does not list (G.722, opus and others) are scored as G.711,
  the E-model's narrowband scale having no better place for them.
- ``Idd``: the delay impairment for an absolute one-way delay ``Ta`` above 100 ms (G.107, with
  its defaults mT = 100 ms and sT = 1); below that it is 0. A relay cannot see the end-to-end
  delay, so ``Ta`` is estimated as a base network delay (0 unless given) plus a jitter buffer
  of twice the measured jitter plus one packet time.
- The MOS (conversational quality, 1 to 4.5) follows from R by G.107 Annex B.

Known points: R = 93.2 (no loss, little delay) gives MOS 4.41; R = 50 gives 2.58.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "DEFAULT_R",
    "CodecImpairment",
    "codec_impairment",
    "delay_impairment",
    "mos",
    "mos_from_r",
    "r_factor",
]

DEFAULT_R = 93.2
"""R with every G.107 parameter at its default (``R0 - Is``; ``A = 0``)."""


@dataclass(frozen=True, slots=True)
class CodecImpairment:
    """``ie``: equipment impairment factor; ``bpl``: packet-loss robustness factor."""

    ie: float
    bpl: float


# ITU-T G.113 Appendix I (Ie: Table I.1; Bpl: Table I.3). G.711 with the packet loss
# concealment of G.711 Appendix I, since endpoints conceal loss.
_G711 = CodecImpairment(ie=0.0, bpl=25.1)
_CODECS: dict[str, CodecImpairment] = {
    "pcmu": _G711,
    "pcma": _G711,
    "g729": CodecImpairment(ie=11.0, bpl=19.0),  # G.729A + VAD
    "g723": CodecImpairment(ie=15.0, bpl=16.1),  # G.723.1 at 6.3 kbit/s + VAD
}


def codec_impairment(codec: str | None) -> CodecImpairment:
    """Ie and Bpl for an SDP encoding name (``PCMU`` or ``PCMU/8000``); unknown: G.711's."""
    name = (codec or "").split("/", 1)[0].strip().lower()
    return _CODECS.get(name, _G711)


def delay_impairment(delay_ms: float) -> float:
    """``Idd`` of G.107 for an absolute one-way delay ``Ta`` in ms (0 up to 100 ms)."""
    if not delay_ms > 100.0:
        return 0.0
    x = math.log10(delay_ms / 100.0) / math.log10(2.0)
    return 25.0 * (math.pow(1.0 + x**6, 1 / 6) - 3.0 * math.pow(1.0 + (x / 3.0) ** 6, 1 / 6) + 2.0)


def r_factor(
    *,
    loss_pct: float = 0.0,
    jitter_ms: float = 0.0,
    codec: str | None = None,
    ptime_ms: float = 20.0,
    base_delay_ms: float = 0.0,
) -> float:
    """The transmission rating R (0..100) of a stream with ``loss_pct`` percent of its packets
    lost (random loss), ``jitter_ms`` interarrival jitter and ``codec`` (SDP name)."""
    imp = codec_impairment(codec)
    ppl = min(max(loss_pct, 0.0), 100.0)
    ie_eff = imp.ie + (95.0 - imp.ie) * ppl / (ppl + imp.bpl)  # BurstR = 1
    delay = max(base_delay_ms, 0.0) + 2.0 * max(jitter_ms, 0.0) + max(ptime_ms, 0.0)
    return min(max(DEFAULT_R - delay_impairment(delay) - ie_eff, 0.0), 100.0)


def mos_from_r(r: float) -> float:
    """G.107 Annex B: the estimated conversational MOS for a rating R. (The Annex B polynomial
    dips just under 1 for R below about 6.5; the result is kept on the MOS scale, 1 .. 4.5.)"""
    if r <= 0.0:
        return 1.0
    if r >= 100.0:
        return 4.5
    return max(1.0, 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6)


def mos(
    *,
    loss_pct: float = 0.0,
    jitter_ms: float = 0.0,
    codec: str | None = None,
    ptime_ms: float = 20.0,
    base_delay_ms: float = 0.0,
) -> float:
    """MOS estimate (1.0 .. 4.5) of one received stream; see :func:`r_factor`."""
    return mos_from_r(
        r_factor(
            loss_pct=loss_pct,
            jitter_ms=jitter_ms,
            codec=codec,
            ptime_ms=ptime_ms,
            base_delay_ms=base_delay_ms,
        )
    )
