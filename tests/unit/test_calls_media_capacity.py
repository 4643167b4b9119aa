"""A call the media layer cannot anchor for lack of capacity (ports, sessions) is refused
503 (RFC 3261 §21.5.4: overloaded, try later), not 488 (the offer itself is fine); an
unusable offer still gets 488. Found with baresip: a busy machine's port range made calls
fail with "488 Not Acceptable Here", which sends users hunting for codec problems."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from test_b2bua import OFFER, Rig, final

from vpbx.ng import NgCommands
from vpbx.ng.fake import FakeBackend
from vpbx.pbx.calls import MediaError, MediaUnavailableError, NgMediaControl


def control(backend: FakeBackend, *, max_calls: int = 100) -> NgMediaControl:
    return NgMediaControl(NgCommands(backend, max_calls=max_calls), clock=lambda: 1_700_000_000.0)


def test_running_out_of_ports_or_sessions_is_unavailable_not_a_bad_offer() -> None:
    one_pair = control(FakeBackend(port_min=30000, port_max=30001))
    with pytest.raises(MediaUnavailableError, match="Ran out of ports"):
        one_pair.offer("c1", "t1", OFFER)  # the offer needs a pair on each side
    one_call = control(FakeBackend(), max_calls=1)
    one_call.offer("c1", "t1", OFFER)
    with pytest.raises(MediaUnavailableError, match="Parallel session limit"):
        one_call.offer("c2", "t1", OFFER)
    with pytest.raises(MediaError) as bad:
        one_call.offer("c1", "t1", b"v=0\r\nthis is not SDP\r\n")
    assert not isinstance(bad.value, MediaUnavailableError)


class Refusing:
    """MediaControl whose offers fail with `error`."""

    def __init__(self, error: MediaError) -> None:
        self.error = error

    def offer(self, call_id: str, from_tag: str, sdp: bytes, *, transcode: Sequence[str] = ()) -> bytes:
        raise self.error

    def answer(self, call_id: str, from_tag: str, to_tag: str, sdp: bytes) -> bytes:
        raise AssertionError("no answer without an offer")

    def delete(self, call_id: str) -> None:
        pass


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (MediaUnavailableError("no free even/odd port pair on interface default in 30000..=30001"), 503),
        (MediaError("Failed to parse SDP"), 488),
    ],
)
def test_b2bua_refuses_an_unanchorable_call_by_cause(error: MediaError, status: int) -> None:
    rig = Rig()
    rig.register("1002", "10.0.0.2")
    rig.b2bua.media = Refusing(error)
    _a, key = rig.invite("1002")  # from a trusted address: no challenge
    assert final(rig.port, key).status == status
    assert not rig.port.sent("INVITE")  # the callee never rang
    assert [(c.disposition, c.hangup_cause) for c in rig.cdrs] == [("failed", str(status))]
    assert rig.b2bua.stats.active == 0
