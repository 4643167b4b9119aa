"""The NG server on a real UDP socket (127.0.0.1): ping, an offer, a retransmission, garbage."""

from __future__ import annotations

import asyncio

from vpbx.io.ng_udp import serve_ng_udp
from vpbx.ng import NgServer, decode, encode
from vpbx.ng.fake import FakeBackend

CALLER = (
    "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.replies.put_nowait(data)


async def _exchange() -> None:
    backend = FakeBackend({"default": {"IP4": "127.0.0.1"}})
    server = NgServer(backend)
    transport, _ = await serve_ng_udp(server, "127.0.0.1", 0)
    port = transport.get_extra_info("sockname")[1]
    loop = asyncio.get_running_loop()
    client_t, client = await loop.create_datagram_endpoint(_Client, remote_addr=("127.0.0.1", port))
    try:

        async def ask(datagram: bytes) -> bytes:
            client_t.sendto(datagram)
            return await asyncio.wait_for(client.replies.get(), timeout=5.0)

        assert await ask(b"42_1 d7:command4:pinge") == b"42_1 d6:result4:ponge"
        offer = b"42_2 " + encode({"command": "offer", "call-id": "u1", "from-tag": "a", "sdp": CALLER})
        reply = await ask(offer)
        cookie, _, body = reply.partition(b" ")
        doc = decode(body)
        assert cookie == b"42_2" and isinstance(doc, dict) and doc[b"result"] == b"ok"
        sdp = doc[b"sdp"]
        assert isinstance(sdp, bytes) and b"m=audio 30002 RTP/AVP 0" in sdp
        assert await ask(offer) == reply  # retransmission: same bytes, executed once
        assert len(backend.calls_to("allocate_leg")) == 2
        # garbage without a cookie gets no answer; the next request still does
        client_t.sendto(b"garbage")
        assert await ask(b'42_3 {"command": "ping"}') == b'42_3 {"result":"pong"}'
        assert server.counters.dropped == 1
    finally:
        client_t.close()
        transport.close()


def test_ng_over_udp() -> None:
    asyncio.run(asyncio.wait_for(_exchange(), timeout=20.0))
