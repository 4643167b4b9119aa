"""Server transactions (RFC 3261 §17.2, RFC 6026 §7.1) and the UAS core's 2xx
retransmission (§13.3.1.4): 100 Trying after 200 ms, response retransmission on request
retransmits, Timers G/H/I/J/L, ACK absorption, reliable transports. Fake clock only."""

from __future__ import annotations

from vpbx.sip import Request, Response, build_response, parse_message
from vpbx.sip.timers import Timer, TimerConfig
from vpbx.sip.transaction import (
    Action,
    Deliver,
    Discarded,
    Send,
    Terminated,
    Timeout,
    TransactionKey,
    TransactionLayer,
    TransportError,
    build_ack,
)
from vpbx.sip.transaction_table import State

ALICE = ("192.0.2.101", 5060)


def request(method: str = "INVITE", branch: str = "z9hG4bKnashds8", transport: str = "UDP") -> Request:
    # After RFC 3665 §3.1 F1 (Alice calls Bob directly).
    return parse_message(
        (
            f"{method} sip:bob@biloxi.example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/{transport} client.atlanta.example.com:5060;branch={branch}\r\n"
            "Max-Forwards: 70\r\n"
            "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
            "To: Bob <sip:bob@biloxi.example.com>\r\n"
            "Call-ID: 3848276298220188511@atlanta.example.com\r\n"
            f"CSeq: 1 {method}\r\n"
            "Contact: <sip:alice@client.atlanta.example.com>\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
    )  # type: ignore[return-value]


def answer(req: Request, code: int) -> Response:
    return build_response(req, code, to_tag=None if code == 100 else "8321234356")


def ack_for(req: Request, resp: Response, branch: str | None = None) -> Request:
    """The ACK a client sends: same branch for a non-2xx (§17.1.1.3), new one for a 2xx."""
    ack = build_ack(req, resp)
    if branch is not None:
        ack.headers.set("Via", f"SIP/2.0/UDP client.atlanta.example.com:5060;branch={branch}")
    parsed = parse_message(ack.to_bytes())
    assert isinstance(parsed, Request)
    return parsed


def status_of(action: Action) -> int:
    assert isinstance(action, Send)
    msg = parse_message(action.data)
    assert isinstance(msg, Response)
    return msg.status


def run_until(layer: TransactionLayer, end: float) -> list[tuple[float, Action]]:
    seen: list[tuple[float, Action]] = []
    while (deadline := layer.next_deadline()) is not None and deadline <= end:
        seen += [(deadline, a) for a in layer.on_timer(deadline)]
    return seen


def new_invite(layer: TransactionLayer, transport: str = "UDP") -> tuple[Request, TransactionKey]:
    req = request(transport=transport)
    out = layer.receive(req, ALICE, transport, 0.0)
    assert len(out) == 1 and isinstance(out[0], Deliver) and out[0].message is req
    assert out[0].key is not None and out[0].source == ALICE
    return req, out[0].key


# -- server INVITE (§17.2.1) --------------------------------------------------------------


def test_100_trying_after_200_ms_then_retransmitted_on_invite_retransmission() -> None:
    layer = TransactionLayer()
    req, key = new_invite(layer)
    assert layer.state(key) is State.PROCEEDING
    seen = run_until(layer, 0.3)
    assert [(t, status_of(a)) for t, a in seen] == [(0.2, 100)]
    trying = parse_message(seen[0][1].data)  # type: ignore[union-attr]
    assert trying.to.tag is None  # §8.2.6.2: no tag on 100
    again = layer.receive(req, ALICE, "UDP", 0.5)
    assert [status_of(a) for a in again] == [100]  # not delivered to the TU again


def test_tu_answering_within_200_ms_suppresses_the_100() -> None:
    layer = TransactionLayer()
    req, key = new_invite(layer)
    out = layer.respond(key, answer(req, 180), 0.05)
    assert [status_of(a) for a in out] == [180]
    assert [a for _, a in run_until(layer, 10.0) if isinstance(a, Send)] == []
    assert [status_of(a) for a in layer.receive(req, ALICE, "UDP", 0.5)] == [180]  # last provisional


def test_request_retransmission_before_any_response_is_absorbed() -> None:
    layer = TransactionLayer(TimerConfig(trying_delay=1.0))
    req, _ = new_invite(layer)
    assert layer.receive(req, ALICE, "UDP", 0.5) == []


def test_final_3xx_6xx_retransmitted_by_g_until_h() -> None:
    layer = TransactionLayer()
    req, key = new_invite(layer)
    out = layer.respond(key, answer(req, 486), 0.1)
    assert [status_of(a) for a in out] == [486] and layer.state(key) is State.COMPLETED
    seen = run_until(layer, 100.0)
    times = [round(t, 6) for t, a in seen if isinstance(a, Send)]
    # G: T1, then doubling up to T2 (§17.2.1); H = 64*T1 from the final response.
    assert times == [0.6, 1.6, 3.6, 7.6, 11.6, 15.6, 19.6, 23.6, 27.6, 31.6]
    assert [(t, a) for t, a in seen if not isinstance(a, Send)] == [
        (32.1, Timeout(key, Timer.H)),
        (32.1, Terminated(key)),
    ]


def test_invite_retransmission_in_completed_gets_the_final_again() -> None:
    layer = TransactionLayer()
    req, key = new_invite(layer)
    layer.respond(key, answer(req, 404), 0.1)
    assert [status_of(a) for a in layer.receive(req, ALICE, "UDP", 0.3)] == [404]


def test_ack_confirms_absorbs_and_timer_i_ends_it() -> None:
    layer = TransactionLayer()
    req, key = new_invite(layer)
    final = answer(req, 603)
    layer.respond(key, final, 0.1)
    ack = ack_for(req, final)
    assert layer.receive(ack, ALICE, "UDP", 0.3) == []  # absorbed, not delivered (§17.2.1)
    assert layer.state(key) is State.CONFIRMED
    assert layer.receive(ack, ALICE, "UDP", 0.4) == []
    assert layer.receive(req, ALICE, "UDP", 0.5) == []
    assert run_until(layer, 100.0) == [(5.3, Terminated(key))]  # I = T4, no more 603s


def test_reliable_transport_no_g_and_i_zero() -> None:
    layer = TransactionLayer()
    req, key = new_invite(layer, "TCP")
    final = answer(req, 480)
    out = layer.respond(key, final, 0.05)
    assert [status_of(a) for a in out] == [480] and out[0].dest == ALICE  # type: ignore[union-attr]
    assert layer.next_deadline() == 32.05  # H only
    assert layer.receive(ack_for(req, final), ALICE, "TCP", 0.3) == [Terminated(key)]


def test_timer_h_over_tcp() -> None:
    layer = TransactionLayer()
    req, key = new_invite(layer, "TLS")
    layer.respond(key, answer(req, 500), 0.0)
    assert run_until(layer, 40.0) == [(32.0, Timeout(key, Timer.H)), (32.0, Terminated(key))]


def test_2xx_goes_to_accepted_absorbs_retransmits_and_l_ends_it() -> None:
    layer = TransactionLayer(retransmit_2xx=False)
    req, key = new_invite(layer)
    out = layer.respond(key, answer(req, 200), 0.1)
    assert [status_of(a) for a in out] == [200] and layer.state(key) is State.ACCEPTED
    assert layer.receive(req, ALICE, "UDP", 0.6) == []  # RFC 6026 §7.1: absorbed, not new
    assert [status_of(a) for a in layer.respond(key, answer(req, 200), 0.7)] == [200]  # the TU's own
    assert run_until(layer, 100.0) == [(32.1, Terminated(key))]  # L = 64*T1
    assert [type(a) for a in layer.receive(req, ALICE, "UDP", 40.0)] == [Deliver]  # now new


def test_uas_core_retransmits_2xx_until_the_ack() -> None:
    layer = TransactionLayer()
    req, key = new_invite(layer)
    ok = answer(req, 200)
    layer.respond(key, ok, 0.0)
    seen = run_until(layer, 4.0)
    assert [(t, status_of(a)) for t, a in seen] == [(0.5, 200), (1.5, 200), (3.5, 200)]  # §13.3.1.4
    ack = ack_for(req, ok, branch="z9hG4bKnew2xxack")
    out = layer.receive(ack, ALICE, "UDP", 3.7)
    # §17.2.3: the ACK for a 2xx matches no transaction; `related` names the INVITE's.
    assert out == [Deliver(ack, None, ALICE, "UDP", related=key)]
    assert run_until(layer, 100.0) == [(32.0, Terminated(key))]  # no more 200s


def test_uas_core_2xx_retransmission_caps_at_t2_and_gives_up() -> None:
    layer = TransactionLayer()
    req, key = new_invite(layer, "TCP")  # §13.3.1.4 applies whatever the transport
    layer.respond(key, answer(req, 200), 0.0)
    seen = run_until(layer, 100.0)
    times = [t for t, a in seen if isinstance(a, Send)]
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert [a for _, a in seen if not isinstance(a, Send)] == [
        Terminated(key),
        Timeout(key, Timer.ACK_WAIT),  # no ACK in 64*T1: the TU should send BYE
    ]


def test_ack_in_accepted_with_the_invite_branch_goes_to_the_tu() -> None:
    layer = TransactionLayer()
    req, key = new_invite(layer)
    ok = answer(req, 200)
    layer.respond(key, ok, 0.0)
    ack = ack_for(req, ok)  # same branch as the INVITE (RFC 2543-style client)
    assert layer.receive(ack, ALICE, "UDP", 0.2) == [Deliver(ack, key, ALICE, "UDP")]  # RFC 6026 §8.7
    assert [a for _, a in run_until(layer, 10.0) if isinstance(a, Send)] == []  # 2xx retransmits stopped


def test_timer_c_when_the_tu_never_answers() -> None:
    layer = TransactionLayer()
    req, key = new_invite(layer)
    layer.respond(key, answer(req, 180), 100.0)  # restarts C: §13.3.1.1 asks for one a minute
    seen = [(t, a) for t, a in run_until(layer, 1000.0) if not isinstance(a, Send)]
    assert seen == [(280.0, Timeout(key, Timer.C)), (280.0, Terminated(key))]


def test_server_invite_transport_errors() -> None:
    layer = TransactionLayer()
    req, key = new_invite(layer)
    assert layer.transport_error(key, 0.1) == [TransportError(key), Terminated(key)]
    req, key = new_invite(layer)
    layer.respond(key, answer(req, 486), 0.1)
    assert layer.transport_error(key, 0.2) == [TransportError(key), Terminated(key)]
    req, key = new_invite(layer)
    layer.respond(key, answer(req, 200), 0.1)
    assert layer.transport_error(key, 0.2) == [TransportError(key)]  # stays Accepted
    assert layer.state(key) is State.ACCEPTED


def test_tu_responses_the_state_does_not_take_are_discarded() -> None:
    layer = TransactionLayer()
    req, key = new_invite(layer)
    layer.respond(key, answer(req, 486), 0.1)
    out = layer.respond(key, answer(req, 200), 0.2)
    assert [type(a) for a in out] == [Discarded]
    layer.on_timer(100.0)
    assert [type(a) for a in layer.respond(key, answer(req, 180), 101.0)] == [Discarded]


# -- server non-INVITE (§17.2.2) ----------------------------------------------------------


def test_non_invite_server_lifecycle_over_udp() -> None:
    layer = TransactionLayer()
    req = request("REGISTER")
    (delivered,) = layer.receive(req, ALICE, "UDP", 0.0)
    assert isinstance(delivered, Deliver) and delivered.key is not None
    key = delivered.key
    assert layer.state(key) is State.TRYING
    assert layer.receive(req, ALICE, "UDP", 0.5) == []  # Trying: retransmission discarded
    assert [status_of(a) for a in layer.respond(key, answer(req, 100), 0.6)] == [100]
    assert layer.state(key) is State.PROCEEDING
    assert [status_of(a) for a in layer.receive(req, ALICE, "UDP", 1.5)] == [100]
    assert [status_of(a) for a in layer.respond(key, answer(req, 200), 2.0)] == [200]
    assert layer.state(key) is State.COMPLETED
    assert [status_of(a) for a in layer.receive(req, ALICE, "UDP", 3.5)] == [200]  # last response again
    assert [type(a) for a in layer.respond(key, answer(req, 500), 3.6)] == [Discarded]  # §17.2.2
    assert run_until(layer, 100.0) == [(34.0, Terminated(key))]  # Timer J = 64*T1


def test_non_invite_server_over_tcp_j_is_zero() -> None:
    layer = TransactionLayer()
    req = request("OPTIONS", transport="TCP")
    (delivered,) = layer.receive(req, ALICE, "TCP", 0.0)
    assert delivered.key is not None  # type: ignore[union-attr]
    out = layer.respond(delivered.key, answer(req, 200), 0.1)  # type: ignore[union-attr]
    assert [type(a) for a in out] == [Send, Terminated]
    assert layer.next_deadline() is None


def test_non_invite_server_guard_when_the_tu_never_answers() -> None:
    layer = TransactionLayer()
    (delivered,) = layer.receive(request("BYE"), ALICE, "UDP", 0.0)
    key = delivered.key  # type: ignore[union-attr]
    assert key is not None
    assert run_until(layer, 100.0) == [(32.0, Timeout(key, Timer.GUARD)), (32.0, Terminated(key))]


def test_non_invite_server_transport_error() -> None:
    layer = TransactionLayer()
    req = request("INFO")
    (delivered,) = layer.receive(req, ALICE, "UDP", 0.0)
    key = delivered.key  # type: ignore[union-attr]
    assert key is not None
    layer.respond(key, answer(req, 200), 0.1)
    assert layer.transport_error(key, 0.2) == [TransportError(key), Terminated(key)]
