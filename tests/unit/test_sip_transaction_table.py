"""Every row of every transaction table, driven through the public API: bring a fresh
transaction into the row's state, cause the row's event, check the next state and the
actions its steps name. Then transaction matching (RFC 3261 §17.1.3, §17.2.3, §9.2),
response routing (§18.2.2) and the overload signal."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from vpbx.sip import Headers, Request, Response, build_response, parse_message
from vpbx.sip.transaction import (
    Action,
    Deliver,
    Discarded,
    Overload,
    Send,
    Terminated,
    Timeout,
    TransactionKey,
    TransactionLayer,
    TransactionLimitError,
    TransportError,
    build_ack,
    build_cancel,
)
from vpbx.sip.transaction_match import response_destination
from vpbx.sip.transaction_table import TABLES, Event, Kind, Op, Row, State

PEER = ("198.51.100.7", 5062)


def request(
    method: str = "INVITE",
    branch: str | None = "z9hG4bK776asdhds",
    host: str = "pc33.atlanta.example.com",
    extra: str = "",
) -> Request:
    branch_param = "" if branch is None else f";branch={branch}"
    msg = parse_message(
        (
            f"{method} sip:bob@biloxi.example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host}{branch_param}\r\n"
            "Max-Forwards: 70\r\n"
            "To: Bob <sip:bob@biloxi.example.com>\r\n"
            "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
            "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
            f"CSeq: 314159 {method}\r\n"
            "Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
            f"{extra}Content-Length: 0\r\n\r\n"
        ).encode()
    )
    assert isinstance(msg, Request)
    return msg


def reply(req: Request, code: int) -> Response:
    out = parse_message(build_response(req, code, to_tag="a6c85cf").to_bytes())
    assert isinstance(out, Response)
    return out


def ack_of(req: Request, resp: Response, branch: str | None = None) -> Request:
    ack = build_ack(req, resp)
    if branch is not None:
        ack.headers.set("Via", f"SIP/2.0/UDP pc33.atlanta.example.com;branch={branch}")
    out = parse_message(ack.to_bytes())
    assert isinstance(out, Request)
    return out


# -- a driver for every row ------------------------------------------------------------------


@dataclass
class Rig:
    """One transaction of `kind` (its key and request) in a fresh layer."""

    kind: Kind
    layer: TransactionLayer = field(default_factory=TransactionLayer)
    key: TransactionKey | None = None
    req: Request | None = None
    invite_key: TransactionKey | None = None  # the INVITE of a held CANCEL
    invite: Request | None = None
    now: float = 0.0

    def run(self, fn: Callable[[], list[Action]]) -> list[Action]:
        self.now += 0.01
        return fn()

    def start(self) -> list[Action]:
        """Create the transaction: the (INITIAL, first event) row."""
        lay = self.layer
        if self.kind is Kind.CLIENT_INVITE:
            self.req = request()
            self.key, out = lay.send_request(self.req, PEER, "UDP", self.now)
        elif self.kind is Kind.CLIENT_NON_INVITE:
            self.req = request("OPTIONS")
            self.key, out = lay.send_request(self.req, PEER, "UDP", self.now)
        else:
            self.req = request("INVITE" if self.kind is Kind.SERVER_INVITE else "REGISTER")
            out = lay.receive(self.req, PEER, "UDP", self.now)
            assert isinstance(out[0], Deliver)
            self.key = out[0].key
        return out

    def hold_cancel(self) -> None:
        """A CANCEL held back in Initial, its INVITE in Calling (§9.1)."""
        self.invite = request()
        self.invite_key, _ = self.layer.send_request(self.invite, PEER, "UDP", self.now)
        self.req = build_cancel(self.invite)
        self.key, out = self.layer.send_request(self.req, PEER, "UDP", self.now)
        assert out == []

    def to_state(self, state: State) -> None:
        assert self.kind is not Kind.UAS_2XX
        if state is State.INITIAL:
            self.hold_cancel()
            return
        self.start()
        assert self.key is not None and self.req is not None
        steps: dict[tuple[Kind, State], Callable[[], object]] = {
            (Kind.CLIENT_INVITE, State.PROCEEDING): lambda: self.event(Event.RECV_1XX),
            (Kind.CLIENT_INVITE, State.COMPLETED): lambda: self.event(Event.RECV_3XX_6XX),
            (Kind.CLIENT_INVITE, State.ACCEPTED): lambda: self.event(Event.RECV_2XX),
            (Kind.CLIENT_NON_INVITE, State.PROCEEDING): lambda: self.event(Event.RECV_1XX),
            (Kind.CLIENT_NON_INVITE, State.COMPLETED): lambda: self.event(Event.RECV_2XX),
            (Kind.SERVER_INVITE, State.COMPLETED): lambda: self.event(Event.TU_3XX_6XX),
            (Kind.SERVER_INVITE, State.CONFIRMED): lambda: (
                self.event(Event.TU_3XX_6XX),
                self.event(Event.ACK),
            ),
            (Kind.SERVER_INVITE, State.ACCEPTED): lambda: self.event(Event.TU_2XX),
            (Kind.SERVER_NON_INVITE, State.PROCEEDING): lambda: self.event(Event.TU_1XX),
            (Kind.SERVER_NON_INVITE, State.COMPLETED): lambda: self.event(Event.TU_2XX),
        }
        step = steps.get((self.kind, state))
        if step is not None:
            step()
        assert self.layer.state(self.key) is state

    def event(self, event: Event) -> list[Action]:
        lay, key, req = self.layer, self.key, self.req
        assert key is not None and req is not None
        self.now += 0.01
        now = self.now
        codes = {Event.RECV_1XX: 180, Event.RECV_2XX: 200, Event.RECV_3XX_6XX: 486}
        tu_codes = {Event.TU_1XX: 180, Event.TU_2XX: 200, Event.TU_3XX_6XX: 486}
        if self.kind is Kind.CLIENT_NON_INVITE:
            codes[Event.RECV_1XX] = 100
        if self.kind is Kind.SERVER_NON_INVITE:
            tu_codes[Event.TU_1XX] = 100
        if event in codes:
            return lay.receive(reply(req, codes[event]), PEER, "UDP", now)
        if event in tu_codes:
            return lay.respond(key, build_response(req, tu_codes[event], to_tag="a6c85cf"), now)
        if event is Event.REQUEST:
            return lay.receive(req, PEER, "UDP", now)
        if event is Event.ACK:
            return lay.receive(ack_of(req, reply(req, 486)), PEER, "UDP", now)
        if event is Event.TRANSPORT_ERROR:
            return lay.transport_error(key, now)
        if event is Event.TU_REQUEST:  # the held CANCEL goes out with the INVITE's 1xx
            assert self.invite is not None
            return lay.receive(reply(self.invite, 180), PEER, "UDP", now)
        if event is Event.ABANDON:
            assert self.invite is not None
            return lay.receive(reply(self.invite, 486), PEER, "UDP", now)
        if event is Event.CANCEL_SENT:
            return lay.send_request(build_cancel(req), PEER, "UDP", now)[1]
        # A timer: run the clock until this transaction's timer has fired.
        timer = event.value.removeprefix("Timer ")
        deadline = next(when for t, when in lay.timers(key).items() if t.value == timer)
        self.now = deadline
        return lay.on_timer(deadline)


# Rows whose start state needs a setup the generic path cannot give.
def _prepare(rig: Rig, state: State, event: Event) -> None:
    if (rig.kind, state, event) == (Kind.CLIENT_INVITE, State.PROCEEDING, Event.TIMER_CANCEL):
        rig.event(Event.CANCEL_SENT)
    if (rig.kind, state, event) == (Kind.CLIENT_INVITE, State.CALLING, Event.CANCEL_SENT):
        pass  # the held CANCEL is the action: no Send until a 1xx


_EXPECTED: dict[Op, type] = {
    Op.DELIVER: Deliver,
    Op.REPORT_TIMEOUT: Timeout,
    Op.REPORT_TRANSPORT_ERROR: TransportError,
    Op.SEND_ACK: Send,
    Op.SEND_TRYING: Send,
    Op.SEND_RESPONSE: Send,
}

ROWS = [
    pytest.param(kind, state, event, row, id=f"{kind}|{state}|{event}")
    for kind, table in TABLES.items()
    if kind is not Kind.UAS_2XX
    for (state, event), row in table.items()
]


@pytest.mark.parametrize(("kind", "state", "event", "row"), ROWS)
def test_every_row(kind: Kind, state: State, event: Event, row: Row) -> None:
    rig = Rig(kind)
    if state is State.INITIAL and kind is not Kind.CLIENT_NON_INVITE:
        out = rig.start()  # the creating row
    else:
        rig.to_state(state)
        _prepare(rig, state, event)
        out = rig.event(event)
    assert rig.key is not None
    mine = [a for a in out if getattr(a, "key", rig.key) == rig.key]
    if row.next is State.TERMINATED:
        assert rig.layer.state(rig.key) is None
        assert Terminated(rig.key) in out
    else:
        assert rig.layer.state(rig.key) is row.next
        assert not any(isinstance(a, Terminated) and a.key == rig.key for a in out)
    for step in row.steps:
        if isinstance(step, Op) and step in _EXPECTED:
            assert any(isinstance(a, _EXPECTED[step]) for a in mine), (step, out)
    if Op.SEND_REQUEST in row.steps:
        assert any(isinstance(a, Send) and a.key == rig.key for a in out)


def test_every_table_names_its_rfc_section() -> None:
    for table in TABLES.values():
        for row in table.values():
            assert "§" in row.ref


def test_unlisted_pairs_are_absorbed() -> None:
    rig = Rig(Kind.CLIENT_INVITE)
    rig.to_state(State.COMPLETED)
    assert rig.event(Event.RECV_1XX) == [] and rig.event(Event.RECV_2XX) == []
    assert rig.layer.state(rig.key) is State.COMPLETED  # type: ignore[arg-type]


def test_uas_2xx_rows() -> None:
    layer = TransactionLayer()
    req = request()
    (delivered,) = layer.receive(req, PEER, "UDP", 0.0)
    key = delivered.key  # type: ignore[union-attr]
    assert key is not None
    ok = build_response(req, 200, to_tag="a6c85cf")
    layer.respond(key, ok, 0.0)  # (Initial, 2xx from TU) -> Waiting for ACK
    assert [type(a) for a in layer.on_timer(0.5)] == [Send]  # (Waiting, Timer 2xx)
    again = build_response(req, 200, to_tag="a6c85cf")
    again.headers.add("Subject", "newer")
    layer.respond(key, again, 0.6)  # (Waiting, 2xx from TU): the newer one is retransmitted
    (resent,) = layer.on_timer(1.5)
    assert isinstance(resent, Send) and b"Subject: newer" in resent.data
    out = layer.receive(ack_of(req, ok, "z9hG4bKack2xx"), PEER, "UDP", 1.6)  # (Waiting, ACK)
    assert [type(a) for a in out] == [Deliver]
    assert layer.on_timer(10.0) == []


# -- matching ---------------------------------------------------------------------------------


def first_key(out: list[Action]) -> TransactionKey | None:
    assert isinstance(out[0], Deliver)
    return out[0].key


def test_retransmission_versus_new_request() -> None:
    layer = TransactionLayer()
    key = first_key(layer.receive(request(), PEER, "UDP", 0.0))
    assert key == TransactionKey(True, "z9hg4bk776asdhds", "pc33.atlanta.example.com:", "INVITE")
    # Same branch in another case and host case: the same transaction (§7.3.1, §19.1.4).
    same = request(branch="Z9HG4BK776ASDHDS", host="PC33.atlanta.example.com")
    assert layer.receive(same, PEER, "UDP", 0.1) == []
    # Another sent-by, another method or another branch: new transactions (§17.2.3).
    for other in (
        request(host="pc34.atlanta.example.com"),
        request("OPTIONS"),
        request(branch="z9hG4bK776asdhdt"),
    ):
        assert first_key(layer.receive(other, PEER, "UDP", 0.2)) not in (None, key)
    assert len(layer) == 4


def test_ack_for_non_2xx_matches_the_invite_but_ack_for_2xx_does_not() -> None:
    layer = TransactionLayer()
    req = request()
    key = first_key(layer.receive(req, PEER, "UDP", 0.0))
    assert key is not None
    busy = build_response(req, 486, to_tag="x")
    layer.respond(key, busy, 0.1)
    assert layer.receive(ack_of(req, busy), PEER, "UDP", 0.2) == []  # matched, absorbed
    assert layer.state(key) is State.CONFIRMED
    req2 = request(branch="z9hG4bKsecond")
    key2 = first_key(layer.receive(req2, PEER, "UDP", 0.0))
    ok = build_response(req2, 200, to_tag="y")
    layer.respond(key2, ok, 0.1)  # type: ignore[arg-type]
    ack = ack_of(req2, ok, branch="z9hG4bKend2end")
    (delivered,) = layer.receive(ack, PEER, "UDP", 0.2)
    assert isinstance(delivered, Deliver) and delivered.key is None and delivered.related == key2


def test_stray_ack_goes_to_the_tu_unrelated() -> None:
    layer = TransactionLayer()
    req = request()
    ack = ack_of(req, reply(req, 200), branch="z9hG4bKnothing")
    assert layer.receive(ack, PEER, "UDP", 0.0) == [Deliver(ack, None, PEER, "UDP")]


def test_cancel_finds_its_invite_server_transaction() -> None:
    layer = TransactionLayer()
    invite = request()
    ikey = first_key(layer.receive(invite, PEER, "UDP", 0.0))
    cancel = build_cancel(invite)
    assert layer.cancel_target(cancel) == ikey
    (delivered,) = layer.receive(cancel, PEER, "UDP", 0.1)
    assert isinstance(delivered, Deliver)
    assert delivered.related == ikey and delivered.key is not None and delivered.key.method == "CANCEL"
    layer.respond(delivered.key, build_response(cancel, 200, to_tag="t"), 0.2)
    layer.respond(ikey, build_response(invite, 487, to_tag="t"), 0.2)  # type: ignore[arg-type]
    lonely = build_cancel(request(branch="z9hG4bKunknown"))
    (unmatched,) = layer.receive(lonely, PEER, "UDP", 0.3)
    assert isinstance(unmatched, Deliver) and unmatched.related is None  # the TU answers 481


def test_rfc2543_matching_without_magic_cookie() -> None:
    layer = TransactionLayer()
    old = request(branch=None)
    key = first_key(layer.receive(old, PEER, "UDP", 0.0))
    assert key is not None and key.sent_by == "" and key.branch.startswith("2543|")
    assert layer.receive(request(branch=None), PEER, "UDP", 0.1) == []  # retransmission
    assert layer.cancel_target(build_cancel(old)) == key
    final = build_response(old, 404, to_tag="rt")
    layer.respond(key, final, 0.2)
    wrong = build_ack(old, build_response(old, 404, to_tag="other"))
    (unmatched,) = layer.receive(wrong, PEER, "UDP", 0.3)
    assert isinstance(unmatched, Deliver) and unmatched.key is None  # To tag differs (§17.2.3)
    assert layer.receive(build_ack(old, final), PEER, "UDP", 0.4) == []
    assert layer.state(key) is State.CONFIRMED
    other_branch = request(branch="1234")  # a branch without the cookie is RFC 2543 too
    assert first_key(layer.receive(other_branch, PEER, "UDP", 0.5)) not in (None, key)


def test_client_matching_by_branch_and_cseq_method() -> None:
    layer = TransactionLayer()
    req = request()
    key, _ = layer.send_request(req, PEER, "UDP", 0.0)
    resp = reply(req, 180)
    resp.headers.set("CSeq", "314159 CANCEL")  # right branch, other method: not this one
    assert layer.receive(resp, PEER, "UDP", 0.1) == [Deliver(resp, None, PEER, "UDP")]
    other = reply(request(branch="z9hG4bKelse"), 180)
    assert layer.receive(other, PEER, "UDP", 0.1) == [Deliver(other, None, PEER, "UDP")]
    assert layer.state(key) is State.CALLING


def test_response_destination_rules() -> None:
    def via(text: str) -> Request:
        return request(extra="") if not text else _with_via(text)

    udp = via("SIP/2.0/UDP 203.0.113.5:5070;branch=z9hG4bKa").via[0]
    assert response_destination(udp, PEER, "UDP") == ("198.51.100.7", 5070)  # sent-by port (§18.2.2)
    bare = via("SIP/2.0/UDP 203.0.113.5;branch=z9hG4bKa").via[0]
    assert response_destination(bare, PEER, "UDP") == ("198.51.100.7", 5060)
    rport = via("SIP/2.0/UDP 203.0.113.5:5070;rport;branch=z9hG4bKa").via[0]
    assert response_destination(rport, PEER, "UDP") == PEER  # RFC 3581
    maddr = via("SIP/2.0/UDP 203.0.113.5;maddr=239.255.255.1;branch=z9hG4bKa").via[0]
    assert response_destination(maddr, PEER, "UDP") == ("239.255.255.1", 5060)
    assert response_destination(udp, PEER, "TCP") == PEER  # the connection it came on


def _with_via(via: str) -> Request:
    req = request()
    req.headers.set("Via", via)
    return req


def test_overload_answers_503_and_keeps_nothing() -> None:
    layer = TransactionLayer(max_server_transactions=2, overload_retry_after=7)
    a = request(branch="z9hG4bKa")
    layer.receive(a, PEER, "UDP", 0.0)
    layer.receive(request(branch="z9hG4bKb"), PEER, "UDP", 0.0)
    out = layer.receive(request(branch="z9hG4bKc"), PEER, "UDP", 0.0)
    assert [type(x) for x in out] == [Send, Overload] and len(layer) == 2
    refusal = parse_message(out[0].data)  # type: ignore[union-attr]
    assert isinstance(refusal, Response) and refusal.status == 503
    assert refusal.headers.get("Retry-After") == "7" and refusal.to.tag
    assert layer.overloaded == 1
    layer.on_timer(0.3)  # 100 Trying
    assert [type(x) for x in layer.receive(a, PEER, "UDP", 0.6)] == [Send]  # retransmission: the 100
    ack = ack_of(a, reply(a, 200), branch="z9hG4bKack")
    assert [type(x) for x in layer.receive(ack, PEER, "UDP", 0.7)] == [Deliver]  # ACKs never refused
    quiet = TransactionLayer(max_server_transactions=0, overload_retry_after=None)
    assert [type(x) for x in quiet.receive(a, PEER, "UDP", 0.0)] == [Overload]


def test_client_limit_and_bad_requests_raise() -> None:
    layer = TransactionLayer(max_client_transactions=1)
    layer.send_request(request(), PEER, "UDP", 0.0)
    with pytest.raises(ValueError, match="already used"):
        layer.send_request(request(), PEER, "UDP", 0.0)
    with pytest.raises(TransactionLimitError):
        layer.send_request(request(branch="z9hG4bKother"), PEER, "UDP", 0.0)
    with pytest.raises(ValueError, match="z9hG4bK"):
        TransactionLayer().send_request(request(branch="old"), PEER, "UDP", 0.0)
    with pytest.raises(ValueError, match="ACK"):
        TransactionLayer().send_request(request("ACK"), PEER, "UDP", 0.0)
    no_via = Request("OPTIONS", "sip:x@example.com", Headers([("CSeq", "1 OPTIONS")]))
    with pytest.raises(ValueError, match="z9hG4bK"):
        TransactionLayer().send_request(no_via, PEER, "UDP", 0.0)


def test_unusable_messages_are_discarded_not_raised() -> None:
    layer = TransactionLayer()
    bare = Request("OPTIONS", "sip:x@example.com", Headers([("Max-Forwards", "70")]))
    (out,) = layer.receive(bare, PEER, "UDP", 0.0)
    assert isinstance(out, Discarded) and "Via" in out.reason
    unknown = TransactionKey(True, "z9hg4bkx", "h:", "INVITE")
    assert [type(a) for a in layer.respond(unknown, reply(request(), 200), 0.0)] == [Discarded]
    assert layer.transport_error(unknown, 0.0) == []


def test_send_stateless() -> None:
    req = request("ACK")
    (out,) = TransactionLayer().send_stateless(req, PEER, "udp")
    assert out == Send(req.to_bytes(), PEER, "UDP", None, req)
