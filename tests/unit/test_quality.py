"""The E-model MOS estimate (ITU-T G.107 simplified; Ie/Bpl from G.113 Appendix I)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpbx.media.quality import DEFAULT_R, codec_impairment, delay_impairment, mos, mos_from_r, r_factor


def test_known_points_of_the_r_to_mos_mapping() -> None:
    assert mos_from_r(93.2) == pytest.approx(4.41, abs=0.005)
    assert mos_from_r(50.0) == pytest.approx(2.58, abs=0.006)
    assert mos_from_r(0.0) == 1.0 and mos_from_r(-5.0) == 1.0
    assert mos_from_r(100.0) == 4.5 and mos_from_r(120.0) == 4.5


def test_a_clean_g711_stream_scores_the_default_rating() -> None:
    assert r_factor(codec="PCMU/8000") == pytest.approx(DEFAULT_R)
    assert mos(codec="PCMA") == pytest.approx(4.41, abs=0.005)


def test_loss_costs_what_the_effective_equipment_impairment_says() -> None:
    # G.711 with PLC (Bpl 25.1): Ie,eff = 95 * 5 / (5 + 25.1) at 5 % random loss
    assert r_factor(loss_pct=5.0, codec="PCMU") == pytest.approx(DEFAULT_R - 95 * 5 / 30.1)
    assert mos(loss_pct=5.0, codec="PCMU") < mos(loss_pct=1.0, codec="PCMU") < mos(codec="PCMU")
    assert mos(loss_pct=100.0) < 1.2  # Ie,eff = 95 * 100 / 125.1: R about 17


def test_codecs_and_delay() -> None:
    assert codec_impairment("G729/8000").ie == 11.0
    assert codec_impairment("opus") == codec_impairment("PCMU")  # not in G.113: scored as G.711
    assert mos(codec="G729") < mos(codec="PCMU")
    assert delay_impairment(100.0) == 0.0 and delay_impairment(50.0) == 0.0
    assert 0.0 < delay_impairment(200.0) < delay_impairment(400.0)
    # jitter only matters once the estimated delay (2 x jitter + ptime) passes 100 ms
    assert mos(jitter_ms=30.0) == mos()
    assert mos(jitter_ms=150.0) < mos()


@given(
    st.floats(0, 100),
    st.floats(0, 100),
    st.floats(0, 1000),
    st.sampled_from(["PCMU", "PCMA", "G722", "opus", "G729", "G723", None]),
)
def test_mos_stays_in_range_and_falls_with_loss(
    loss: float, more: float, jitter: float, codec: str | None
) -> None:
    a = mos(loss_pct=loss, jitter_ms=jitter, codec=codec)
    b = mos(loss_pct=min(100.0, loss + more), jitter_ms=jitter, codec=codec)
    assert 1.0 <= b <= a <= 4.5
