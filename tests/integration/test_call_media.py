"""The B2BUA's media seam over a real in-process engine: both SDPs anchored on the
engine's ports, transcoding when the callee takes only a codec the caller lacks, hold
offers from either side, ports freed on delete."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from vpbx.media import Engine
from vpbx.media.ng_backend import EngineBackend
from vpbx.ng import NgCommands
from vpbx.pbx.calls import MediaError, NgMediaControl
from vpbx.sdp import parse

SDP = (
    "v=0\r\no=- 1 1 IN IP4 10.1.1.{h}\r\ns=-\r\nc=IN IP4 10.1.1.{h}\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP {pt}\r\n{extra}"
)
PCMA = "a=rtpmap:8 PCMA/8000\r\n"


@pytest.fixture
def media() -> Iterator[tuple[NgMediaControl, EngineBackend, Engine]]:
    with Engine(interfaces=["127.0.0.1"], port_min=41600, port_max=41699, workers=1) as engine:
        backend = EngineBackend(engine)
        yield NgMediaControl(NgCommands(backend), clock=time.time), backend, engine


def sdp(h: int, port: int, pt: str, extra: str = "") -> bytes:
    return SDP.format(h=h, port=port, pt=pt, extra=extra).encode()


def endpoint(text: bytes) -> tuple[str, int, list[int]]:
    doc = parse(text)
    m = doc.media[0]
    conn = m.connection or doc.connection
    assert conn is not None
    return conn.address, m.port, [int(f) for f in m.formats]


def test_both_sides_see_the_engine_and_transcoding_is_offered(
    media: tuple[NgMediaControl, EngineBackend, Engine],
) -> None:
    control, backend, engine = media
    offer = control.offer("c1", "a-tag", sdp(1, 4000, "0"))
    host, port, formats = endpoint(offer)
    assert host == "127.0.0.1" and 41600 <= port <= 41699 and formats == [0, 8]  # PCMA added
    answer = control.answer("c1", "a-tag", "b-tag", sdp(2, 5000, "8", PCMA))  # callee: PCMA only
    host, port2, formats = endpoint(answer)
    assert host == "127.0.0.1" and port2 != port and formats == [0]  # the caller keeps its PCMU
    assert backend.transcoded_streams() == 2
    # hold from the callee: its re-offer goes through the engine the other way round
    hold = control.offer("c1", "b-tag", sdp(2, 5000, "8", PCMA + "a=sendonly\r\n"))
    assert b"a=sendonly" in hold and endpoint(hold)[:2] == ("127.0.0.1", port2)  # the caller's port stays
    control.answer("c1", "b-tag", "a-tag", sdp(1, 4000, "0", "a=recvonly\r\n"))
    assert engine.engine_stats()["ports_used"] == 4
    control.delete("c1")
    assert engine.engine_stats()["ports_used"] == 0
    control.delete("c1")  # idempotent


def test_bad_sdp_is_a_media_error(media: tuple[NgMediaControl, EngineBackend, Engine]) -> None:
    control, _backend, engine = media
    with pytest.raises(MediaError):
        control.offer("c2", "a", b"not sdp")
    assert engine.engine_stats()["ports_used"] == 0
