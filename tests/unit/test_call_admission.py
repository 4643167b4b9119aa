"""Overload shedding of new calls: the admission policy alone (fake clock) and through the
B2BUA (what a caller hears: 503 + Retry-After at once; calls already up go on)."""

from __future__ import annotations

import pytest
from test_b2bua import Rig, answered_call, final

from vpbx.pbx.calls import Admission, AdmissionConfig

T0 = 1_700_000_000.0


def test_lag_over_the_limit_sheds_for_hold_time_then_recovers_by_itself() -> None:
    adm = Admission(AdmissionConfig(max_setup=0, max_lag_s=0.2, hold_s=1.0))
    assert adm.check(10_000, T0) is None  # max_setup 0: no setup limit
    adm.note_lag(0.15, T0)
    assert adm.check(0, T0) is None  # under the limit
    adm.note_lag(0.35, T0 + 1)
    assert adm.check(0, T0 + 1) == "lag"
    adm.note_lag(0.01, T0 + 1.5)  # back to normal, still inside hold_s of the late sample
    assert adm.check(0, T0 + 1.9) == "lag"
    assert adm.check(0, T0 + 2.0) is None  # recovered without anyone's help
    assert adm.shed == {"lag": 2, "setup": 0}


def test_setup_limit_and_off_switches() -> None:
    adm = Admission(AdmissionConfig(max_setup=3, max_lag_s=0))
    assert adm.check(2, T0) is None
    assert adm.check(3, T0) == "setup"
    adm.note_lag(60.0, T0)  # max_lag_s 0: lag not watched
    assert adm.check(0, T0) is None
    assert adm.shed["setup"] == 1


def test_negative_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        AdmissionConfig(max_lag_s=-1)


def test_b2bua_answers_503_with_retry_after_beyond_the_setup_limit() -> None:
    rig = Rig()
    rig.b2bua.admission = Admission(AdmissionConfig(max_setup=2, max_lag_s=0, retry_after_s=7))
    rig.register("1002", "10.0.0.2")
    _a1, k1 = rig.invite()
    _a2, _k2 = rig.invite()
    assert rig.b2bua.in_setup == 2
    _a3, k3 = rig.invite()
    refused = final(rig.port, k3)
    assert refused.status == 503 and refused.headers.get("retry-after") == "7"
    assert rig.port.statuses(k3) == [503]  # no 100 first: refused before any work
    assert len(rig.port.sent("INVITE")) == 2 and len(rig.media.offers) == 2  # no fork, no media
    assert rig.b2bua.stats.shed == 1 and not rig.cdrs
    # one of the ringing calls is answered: room again
    first = rig.port.sent("INVITE")[0]
    rig.answer_leg(first, 200, body=b"v=0\r\nc=IN IP4 10.0.0.2\r\nm=audio 5000 RTP/AVP 0\r\n")
    assert final(rig.port, k1).status == 200 and rig.b2bua.in_setup == 1
    _a4, k4 = rig.invite()
    assert rig.port.statuses(k4) == [100] and rig.b2bua.in_setup == 2


def test_b2bua_sheds_while_lagging_but_serves_calls_already_up() -> None:
    rig = Rig()
    rig.b2bua.admission = Admission(AdmissionConfig(max_lag_s=0.2, hold_s=1.0))
    a, _key, _leg, ok = answered_call(rig)
    rig.b2bua.note_lag(0.6)  # from the transport's probe
    assert rig.b2bua.stats.input_lag_s == 0.6  # vpbx_sip_input_lag_seconds
    _b, refused = rig.invite()
    assert final(rig.port, refused).status == 503
    # the answered call still hangs up normally
    bye = rig.in_dialog("BYE", a.call_id, to_tag=ok.to.tag or "", from_tag=a.from_.tag or "", seq=2)
    assert final(rig.port, bye).status == 200 and rig.b2bua.stats.active == 0
    assert rig.b2bua.in_setup == 0
    rig.clock.now += 1.1  # no late sample since: new calls are taken again
    _c, again = rig.invite()
    assert rig.port.statuses(again) == [100]
