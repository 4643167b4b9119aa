"""Client transactions (RFC 3261 §17.1, RFC 6026 §7.2): retransmission schedules, timers
B/D/F/K/M, the ACK for 300-699 (§17.1.1.3), reliable transports, CANCEL (§9.1).
Fake clock only: `now` is passed in, time advances by calling on_timer."""

from __future__ import annotations

from vpbx.sip import Request, Response, build_response, parse_message
from vpbx.sip.timers import Timer, TimerConfig
from vpbx.sip.transaction import (
    Action,
    Deliver,
    Send,
    Terminated,
    Timeout,
    TransactionLayer,
    TransportError,
    build_cancel,
)
from vpbx.sip.transaction_table import State

DEST = ("192.0.2.4", 5060)
PROXY = ("192.0.2.10", 5060)


def request(method: str = "INVITE", branch: str = "z9hG4bK74bf9", transport: str = "UDP") -> Request:
    # After RFC 3665 §3.2 F1, with a Route to the outbound proxy.
    return parse_message(
        (
            f"{method} sip:bob@biloxi.example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/{transport} client.atlanta.example.com:5060;branch={branch}\r\n"
            "Max-Forwards: 70\r\n"
            "Route: <sip:ss1.atlanta.example.com;lr>\r\n"
            "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
            "To: Bob <sip:bob@biloxi.example.com>\r\n"
            "Call-ID: 3848276298220188511@atlanta.example.com\r\n"
            f"CSeq: 1 {method}\r\n"
            "Contact: <sip:alice@client.atlanta.example.com>\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
    )  # type: ignore[return-value]


def response(req: Request, code: int, tag: str | None = "314159") -> Response:
    out = parse_message(build_response(req, code, to_tag=tag).to_bytes())
    assert isinstance(out, Response)
    return out


def sends(actions: list[Action]) -> list[Send]:
    return [a for a in actions if isinstance(a, Send)]


def run_until(layer: TransactionLayer, end: float) -> list[tuple[float, Action]]:
    """Advance the fake clock deadline by deadline up to `end`; every action with its time."""
    seen: list[tuple[float, Action]] = []
    while (deadline := layer.next_deadline()) is not None and deadline <= end:
        seen += [(deadline, a) for a in layer.on_timer(deadline)]
    return seen


def send_times(seen: list[tuple[float, Action]]) -> list[float]:
    return [round(t, 6) for t, a in seen if isinstance(a, Send)]


# -- client INVITE (§17.1.1) ---------------------------------------------------------------


def test_invite_over_udp_retransmits_at_a_doubling_then_times_out_at_b() -> None:
    layer = TransactionLayer()
    key, first = layer.send_request(request(), PROXY, "udp", 0.0)
    assert [type(a) for a in first] == [Send]
    assert first[0].dest == PROXY and first[0].transport == "UDP" and first[0].key == key
    assert first[0].data.startswith(b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n")
    assert layer.state(key) is State.CALLING
    seen = run_until(layer, 100.0)
    # Timer A: T1, 2*T1, 4*T1 ... not capped by T2 (§17.1.1.2); B = 64*T1.
    assert send_times(seen) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert all(a.data == first[0].data for _, a in seen if isinstance(a, Send))  # type: ignore[union-attr]
    tail = [(t, a) for t, a in seen if not isinstance(a, Send)]
    assert tail == [(32.0, Timeout(key, Timer.B)), (32.0, Terminated(key))]
    assert layer.state(key) is None and len(layer) == 0 and layer.next_deadline() is None


def test_provisional_stops_retransmissions_and_timer_b() -> None:
    layer = TransactionLayer()
    req = request()
    key, _ = layer.send_request(req, PROXY, "UDP", 0.0)
    assert send_times(run_until(layer, 0.6)) == [0.5]
    out = layer.receive(response(req, 180), PROXY, "UDP", 0.7)
    assert out == [Deliver(out[0].message, key, PROXY, "UDP")]  # type: ignore[union-attr]
    assert layer.state(key) is State.PROCEEDING
    assert run_until(layer, 150.0) == []  # no retransmission, no Timer B in Proceeding
    more = layer.receive(response(req, 183), PROXY, "UDP", 150.0)
    assert [type(a) for a in more] == [Deliver]


def test_timer_c_asks_the_tu_to_cancel_then_gives_up() -> None:
    layer = TransactionLayer(TimerConfig(timer_c=60.0))
    req = request()
    key, _ = layer.send_request(req, PROXY, "UDP", 0.0)
    layer.receive(response(req, 180), PROXY, "UDP", 1.0)
    layer.receive(response(req, 180), PROXY, "UDP", 30.0)  # restarts C (§16.6 step 11)
    seen = run_until(layer, 200.0)
    assert seen == [
        (90.0, Timeout(key, Timer.C)),
        (122.0, Timeout(key, Timer.CANCEL)),
        (122.0, Terminated(key)),
    ]


def test_non_2xx_final_is_acknowledged_inside_the_transaction() -> None:
    layer = TransactionLayer()
    req = request()
    key, _ = layer.send_request(req, PROXY, "UDP", 0.0)
    busy = response(req, 486)
    out = layer.receive(busy, PROXY, "UDP", 0.2)
    assert [type(a) for a in out] == [Send, Deliver]
    assert layer.state(key) is State.COMPLETED
    ack = parse_message(out[0].data)  # type: ignore[union-attr]
    assert isinstance(ack, Request) and out[0].dest == PROXY  # type: ignore[union-attr]
    # §17.1.1.3: Request-URI, Call-ID, From, CSeq number of the INVITE; To of the response;
    # the INVITE's top Via only (same branch) and its Route header fields.
    assert ack.method == "ACK" and str(ack.uri) == str(req.uri)
    assert str(ack.cseq) == "1 ACK" and ack.call_id == req.call_id
    assert ack.from_ == req.from_ and ack.to.tag == "314159"
    assert [str(v) for v in ack.via] == [str(req.via[0])]
    assert ack.headers.get_all("route") == ["<sip:ss1.atlanta.example.com;lr>"]
    # A retransmitted final: the same ACK again, and the TU is not told twice.
    again = layer.receive(busy, PROXY, "UDP", 1.0)
    assert [type(a) for a in again] == [Send] and again[0].data == out[0].data  # type: ignore[union-attr]
    # Timer D: 32 s on UDP.
    assert run_until(layer, 100.0) == [(32.2, Terminated(key))]


def test_reliable_transport_no_retransmission_and_timer_d_zero() -> None:
    layer = TransactionLayer()
    req = request(transport="TCP")
    key, out = layer.send_request(req, PROXY, "tcp", 0.0)
    assert len(out) == 1 and out[0].transport == "TCP"  # type: ignore[union-attr]
    assert layer.next_deadline() == 32.0  # Timer B only: no Timer A over TCP (§17.1.1.2)
    done = layer.receive(response(req, 603), PROXY, "TCP", 1.0)
    assert [type(a) for a in done] == [Send, Deliver, Terminated]  # ACK, response, D = 0
    assert layer.state(key) is None and layer.next_deadline() is None


def test_reliable_transport_timer_b_still_runs() -> None:
    layer = TransactionLayer()
    key, _ = layer.send_request(request(transport="TLS"), PROXY, "TLS", 0.0)
    assert run_until(layer, 40.0) == [(32.0, Timeout(key, Timer.B)), (32.0, Terminated(key))]


def test_2xx_goes_to_accepted_and_retransmissions_reach_the_tu() -> None:
    """RFC 6026 §7.2: 2xx -> Accepted, passed up, never ACKed by the transaction."""
    layer = TransactionLayer()
    req = request()
    key, _ = layer.send_request(req, PROXY, "UDP", 0.0)
    ok = response(req, 200)
    out = layer.receive(ok, PROXY, "UDP", 0.3)
    assert [type(a) for a in out] == [Deliver] and layer.state(key) is State.ACCEPTED
    again = layer.receive(ok, PROXY, "UDP", 0.8)
    assert again == [Deliver(ok, key, PROXY, "UDP")]
    forked = response(req, 200, tag="other-fork")
    assert [a.key for a in layer.receive(forked, PROXY, "UDP", 0.9)] == [key]  # type: ignore[union-attr]
    assert layer.receive(response(req, 486), PROXY, "UDP", 1.0) == []  # absorbed
    assert run_until(layer, 100.0) == [(32.3, Terminated(key))]  # Timer M = 64*T1
    late = layer.receive(ok, PROXY, "UDP", 40.0)
    assert late == [Deliver(ok, None, PROXY, "UDP")]  # §18.1.2: to the core, unmatched


def test_transport_error_in_calling() -> None:
    layer = TransactionLayer()
    key, _ = layer.send_request(request(), PROXY, "UDP", 0.0)
    assert layer.transport_error(key, 0.1) == [TransportError(key), Terminated(key)]
    assert layer.transport_error(key, 0.2) == []


def test_transport_error_in_completed_while_sending_ack() -> None:
    layer = TransactionLayer()
    req = request()
    key, _ = layer.send_request(req, PROXY, "UDP", 0.0)
    layer.receive(response(req, 404), PROXY, "UDP", 0.1)
    assert layer.transport_error(key, 0.2) == [TransportError(key), Terminated(key)]


# -- CANCEL (§9.1) -------------------------------------------------------------------------


def test_cancel_is_held_until_a_provisional_response() -> None:
    layer = TransactionLayer()
    invite = request()
    key, _ = layer.send_request(invite, PROXY, "UDP", 0.0)
    cancel = build_cancel(invite)
    assert cancel.via[0].branch == invite.via[0].branch and str(cancel.cseq) == "1 CANCEL"
    assert cancel.headers.get_all("route") == invite.headers.get_all("route")
    ckey, held = layer.send_request(cancel, PROXY, "UDP", 0.1)
    assert held == [] and layer.state(ckey) is State.INITIAL and ckey != key
    out = layer.receive(response(invite, 180), PROXY, "UDP", 0.2)
    assert [type(a) for a in out] == [Deliver, Send]
    assert out[1].data.startswith(b"CANCEL ") and out[1].key == ckey  # type: ignore[union-attr]
    assert layer.state(ckey) is State.TRYING
    # 200 to the CANCEL and 487 to the INVITE are told apart by CSeq method (§17.1.3).
    ok = layer.receive(response(cancel, 200), PROXY, "UDP", 0.3)
    assert [a.key for a in ok] == [ckey]  # type: ignore[union-attr]
    terminated = layer.receive(response(invite, 487), PROXY, "UDP", 0.4)
    assert [type(a) for a in terminated] == [Send, Deliver]
    assert terminated[1].key == key  # type: ignore[union-attr]


def test_held_cancel_is_dropped_when_the_invite_ends_first() -> None:
    layer = TransactionLayer()
    invite = request()
    key, _ = layer.send_request(invite, PROXY, "UDP", 0.0)
    ckey, _ = layer.send_request(build_cancel(invite), PROXY, "UDP", 0.1)
    out = layer.receive(response(invite, 486), PROXY, "UDP", 0.2)
    assert [type(a) for a in out] == [Terminated, Send, Deliver] and out[2].key == key  # type: ignore[union-attr]
    assert out[0] == Terminated(ckey) and not any(a.data.startswith(b"CANCEL") for a in sends(out))


def test_cancel_in_proceeding_starts_the_64_t1_wait() -> None:
    layer = TransactionLayer()
    invite = request()
    key, _ = layer.send_request(invite, PROXY, "UDP", 0.0)
    layer.receive(response(invite, 180), PROXY, "UDP", 1.0)
    ckey, out = layer.send_request(build_cancel(invite), PROXY, "UDP", 2.0)
    assert [type(a) for a in out] == [Send]
    layer.receive(response(build_cancel(invite), 200), PROXY, "UDP", 2.1)
    seen = run_until(layer, 100.0)
    # §9.1: no final response to the INVITE 64*T1 after the CANCEL: the INVITE is given up.
    assert (34.0, Timeout(key, Timer.CANCEL)) in seen and (34.0, Terminated(key)) in seen
    assert (7.1, Terminated(ckey)) in seen  # the CANCEL's own Timer K


# -- client non-INVITE (§17.1.2) -------------------------------------------------------------


def test_non_invite_over_udp_retransmits_capped_at_t2_then_times_out_at_f() -> None:
    layer = TransactionLayer()
    key, _ = layer.send_request(request("OPTIONS"), DEST, "UDP", 0.0)
    assert layer.state(key) is State.TRYING
    seen = run_until(layer, 100.0)
    assert send_times(seen) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert [(t, a) for t, a in seen if not isinstance(a, Send)] == [
        (32.0, Timeout(key, Timer.F)),
        (32.0, Terminated(key)),
    ]


def test_non_invite_provisional_moves_to_proceeding_and_e_runs_at_t2() -> None:
    layer = TransactionLayer()
    req = request("BYE")
    key, _ = layer.send_request(req, DEST, "UDP", 0.0)
    out = layer.receive(response(req, 100), DEST, "UDP", 0.2)
    assert [type(a) for a in out] == [Deliver] and layer.state(key) is State.PROCEEDING
    seen = run_until(layer, 14.0)
    # E fires at 0.5 as scheduled, then is reset to T2 each time (§17.1.2.2).
    assert send_times(seen) == [0.5, 4.5, 8.5, 12.5]


def test_non_invite_final_completes_and_timer_k_is_t4() -> None:
    layer = TransactionLayer()
    req = request("REGISTER")
    key, _ = layer.send_request(req, DEST, "UDP", 0.0)
    ok = response(req, 401)
    assert [type(a) for a in layer.receive(ok, DEST, "UDP", 0.1)] == [Deliver]
    assert layer.state(key) is State.COMPLETED
    assert layer.receive(ok, DEST, "UDP", 0.2) == []  # absorbed in Completed
    assert run_until(layer, 10.0) == [(5.1, Terminated(key))]


def test_non_invite_over_tcp() -> None:
    layer = TransactionLayer()
    req = request("OPTIONS", transport="TCP")
    key, _ = layer.send_request(req, DEST, "TCP", 0.0)
    assert layer.next_deadline() == 32.0  # F only
    out = layer.receive(response(req, 200), DEST, "TCP", 0.1)
    assert [type(a) for a in out] == [Deliver, Terminated] and out[1] == Terminated(key)  # K = 0


def test_non_invite_transport_errors() -> None:
    layer = TransactionLayer()
    req = request("MESSAGE")
    key, _ = layer.send_request(req, DEST, "UDP", 0.0)
    layer.receive(response(req, 100), DEST, "UDP", 0.1)
    assert layer.transport_error(key, 0.2) == [TransportError(key), Terminated(key)]


def test_configured_timer_values() -> None:
    layer = TransactionLayer(TimerConfig(t1=0.1, t2=0.4, t4=1.0))
    req = request("OPTIONS")
    key, _ = layer.send_request(req, DEST, "UDP", 0.0)
    seen = run_until(layer, 7.0)
    times = send_times(seen)
    assert times[:5] == [0.1, 0.3, 0.7, 1.1, 1.5]
    assert seen[-1] == (6.4, Terminated(key))  # F = 64 * 0.1


def test_held_cancel_is_dropped_on_timer_b_and_on_transport_error() -> None:
    for fail in ("timer", "transport"):
        layer = TransactionLayer()
        invite = request()
        key, _ = layer.send_request(invite, PROXY, "UDP", 0.0)
        ckey, _ = layer.send_request(build_cancel(invite), PROXY, "UDP", 0.1)
        if fail == "timer":
            ends = [a for _, a in run_until(layer, 40.0) if isinstance(a, Terminated)]
        else:
            ends = [a for a in layer.transport_error(key, 0.2) if isinstance(a, Terminated)]
        assert ends == [Terminated(ckey), Terminated(key)]
        assert len(layer) == 0 and layer.next_deadline() is None
