"""IPv6 media: the engine relays over ::1, bridges an IPv6 phone to an IPv4 one, and the NG
layer rewrites an IPv6 SDP with the IPv6 interface's address (c=IN IP6, RFC 4566 §5.7).
Ports 41600..41699."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from vpbx.media import Engine, RtpPacket
from vpbx.media.ng_backend import EngineBackend
from vpbx.ng import NgServer, decode, encode
from vpbx.sdp import parse as parse_sdp


@pytest.fixture
def engine() -> Iterator[Engine]:
    with Engine(interfaces=["127.0.0.1", "v6/::1"], port_min=41600, port_max=41699, workers=1) as e:
        yield e


def udp(family: socket.AddressFamily, host: str) -> socket.socket:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.settimeout(2.0)
    return s


def packets(ssrc: int, n: int) -> list[bytes]:
    return [RtpPacket(0, i, i * 160, ssrc, bytes([i % 256]) * 160).serialize() for i in range(n)]


def relay(
    sender: socket.socket, to: tuple[str, int], receiver: socket.socket, sent: list[bytes]
) -> set[bytes]:
    for p in sent:
        sender.sendto(p, to)
    got = set()
    for _ in sent:
        try:
            data, _src = receiver.recvfrom(2048)
        except TimeoutError:
            break
        got.add(data)
    return got


def test_ipv6_phone_talks_to_ipv4_phone_through_the_engine(engine: Engine) -> None:
    v6, v4 = udp(socket.AF_INET6, "::1"), udp(socket.AF_INET, "127.0.0.1")
    try:
        s = engine.create_session("v6@test")
        a = engine.add_leg(s, interface="v6")
        b = engine.add_leg(s)
        assert a["rtp"][0] == "::1" and b["rtp"][0] == "127.0.0.1"
        engine.set_remote(s, a["leg"], v6.getsockname()[:2])
        engine.set_remote(s, b["leg"], v4.getsockname()[:2])
        engine.connect(s, a["leg"], b["leg"])
        there = packets(0x6, 50)
        assert relay(v6, a["rtp"], v4, there) == set(there)  # v6 -> v4, bytes unchanged
        back = packets(0x4, 50)
        assert relay(v4, b["rtp"], v6, back) == set(back)  # v4 -> v6
        legs = {leg["leg"]: leg for leg in engine.session_stats(s)["legs"]}
        assert legs[a["leg"]]["peer"] == tuple(v6.getsockname()[:2])
        assert legs[a["leg"]]["packets_in"] == legs[b["leg"]]["packets_out"] == 50
    finally:
        v6.close()
        v4.close()


def test_ng_offer_with_ipv6_sdp_gets_the_ipv6_interface(engine: Engine) -> None:
    server = NgServer(EngineBackend(engine))

    def ng(cookie: bytes, **req: object) -> dict[bytes, object]:
        body = encode({k.replace("_", "-"): v for k, v in req.items()})
        reply = server.handle_datagram(cookie + b" " + body, ("h", 1), 1.0)
        assert reply is not None
        doc = decode(reply[len(cookie) + 1 :])
        assert isinstance(doc, dict)
        return doc  # type: ignore[return-value]

    sdp = "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\n"
    offer = ng(b"o1", command="offer", call_id="v6call", from_tag="a", sdp=sdp.format(5000))
    assert offer[b"result"] == b"ok", offer
    rewritten = parse_sdp(offer[b"sdp"])  # type: ignore[arg-type]
    connection = rewritten.media[0].connection or rewritten.connection
    assert connection is not None
    assert (connection.addrtype, connection.address) == ("IP6", "::1")
    assert 41600 <= rewritten.media[0].port <= 41699
    answer = ng(b"a1", command="answer", call_id="v6call", from_tag="a", to_tag="b", sdp=sdp.format(5002))
    assert answer[b"result"] == b"ok", answer
    assert b"c=IN IP6 ::1" in answer[b"sdp"]  # type: ignore[operator]
    assert ng(b"d1", command="delete", call_id="v6call")[b"result"] == b"ok"
    assert engine.engine_stats()["ports_used"] == 0
