"""Client transactions over real sockets: a SipService sends OPTIONS through its transport
to another vpbx SIP service and hears the answer (the path trunk registration and B2BUA
legs take)."""

from __future__ import annotations

import asyncio

from vpbx.io.sip_transport import SipTransport
from vpbx.sip import Request, Response, TransactionLayer, new_branch, new_call_id, new_tag, parse_message
from vpbx.sip.transaction_actions import Deliver, Timeout, TransportError
from vpbx.sip_service import build_service


def options_to(dest: tuple[str, int], local: tuple[str, int]) -> Request:
    text = (
        f"OPTIONS sip:{dest[0]}:{dest[1]} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch={new_branch()};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{local[0]}>;tag={new_tag()}\r\n"
        f"To: <sip:{dest[0]}:{dest[1]}>\r\n"
        f"Call-ID: {new_call_id()}\r\n"
        "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


async def _exchange() -> list[Deliver | Timeout | TransportError]:
    answering = build_service("test", [])
    server = SipTransport(TransactionLayer(), answering.on_action)
    answering.responder = server
    server_address = await server.listen("127.0.0.1", 0)
    asking = build_service("test", [])
    client = SipTransport(TransactionLayer(), asking.on_action)
    asking.responder = client
    client_address = await client.listen("127.0.0.1", 0)
    heard: list[Deliver | Timeout | TransportError] = []
    done = asyncio.Event()

    def on_result(action: Deliver | Timeout | TransportError) -> None:
        heard.append(action)
        done.set()

    try:
        key = client.send_request(options_to(server_address, client_address), server_address)
        asking.track(key, on_result)
        await asyncio.wait_for(done.wait(), 5.0)
    finally:
        client.close()
        server.close()
    return heard


def test_options_answer_reaches_the_tracking_handler() -> None:
    heard = asyncio.run(_exchange())
    assert len(heard) == 1
    action = heard[0]
    assert isinstance(action, Deliver)
    assert isinstance(action.message, Response)
    assert action.message.status == 200
    assert "REGISTER" in (action.message.headers.get("allow") or "")
