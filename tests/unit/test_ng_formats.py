"""vpbx.media.ng_formats: the payload type map between the two sides of a relayed call."""

from __future__ import annotations

from vpbx.media.ng_formats import pt_map
from vpbx.ng import LegCodecs
from vpbx.sdp import Codec

OPUS_111 = Codec("opus", 48000, 2, None, 111)
OPUS_96 = Codec("opus", 48000, 2, None, 96)
EV_101 = Codec("telephone-event", 8000, None, "0-16", 101)
EV_100 = Codec("telephone-event", 8000, None, "0-16", 100)
PCMU = Codec("PCMU", 8000, None, None, 0)


def test_renumbered_formats_map_from_what_one_side_sends_to_what_the_other_expects() -> None:
    a = LegCodecs(receive=(OPUS_111, EV_101, PCMU), send=(OPUS_111, EV_101, PCMU))
    b = LegCodecs(receive=(OPUS_96, EV_100), send=(OPUS_96, EV_100))
    assert pt_map(a, b) == {111: 96, 101: 100}  # PCMU: same number, and b does not take it
    assert pt_map(b, a) == {96: 111, 100: 101}


def test_same_numbers_or_unknown_legs_need_no_map() -> None:
    a = LegCodecs(receive=(OPUS_111, EV_101), send=(OPUS_111, EV_101))
    assert pt_map(a, a) == {}
    assert pt_map(a, None) == {} and pt_map(None, a) == {}
    # telephone-event at another clock rate is another format: not mapped onto it
    b = LegCodecs(
        receive=(Codec("telephone-event", 48000, None, None, 100),),
        send=(Codec("telephone-event", 48000, None, None, 100),),
    )
    assert pt_map(a, b) == {}
