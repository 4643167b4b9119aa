"""The B2BUA state machine with a fake SIP port, fake media and a fake clock: what the
caller and the callees would see on the wire, and the CDR each call leaves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from vpbx.pbx.calls import B2bua, B2buaConfig, Dialplan, DialplanSnapshot, NumberEntry, best_status
from vpbx.pbx.calls.model import ClientHandler
from vpbx.pbx.location import Binding, MemoryLocationStore
from vpbx.security import AccountAllowlists, GuardConfig, SourceGuard
from vpbx.sip import DigestAuthenticator, DigestClient, Request, Response, compute_ha1s, parse_message
from vpbx.sip.timers import Timer
from vpbx.sip.transaction_actions import Deliver, Timeout
from vpbx.sip.transaction_match import Dest, TransactionKey
from vpbx.store.cdrs import Cdr

REALM = "pbx.test"
CALLER = ("10.0.0.1", 5060)
TRUNK = ("192.0.2.10", 5060)
OFFER = b"v=0\r\no=a 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
ANSWER = b"v=0\r\no=b 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Sent:
    request: Request
    dest: Dest
    key: TransactionKey
    handler: ClientHandler


@dataclass
class FakePort:
    responses: list[tuple[TransactionKey, Response]] = field(default_factory=list)
    requests: list[Sent] = field(default_factory=list)
    stateless_sent: list[tuple[Request | Response, Dest]] = field(default_factory=list)

    def respond(self, key: TransactionKey, response: Response) -> None:
        self.responses.append((key, response))

    def request(self, request: Request, dest: Dest, transport: str, handler: ClientHandler) -> TransactionKey:
        key = TransactionKey(False, f"{request.via[0].branch}", "", request.method)
        self.requests.append(Sent(request, dest, key, handler))
        return key

    def stateless(self, message: Request | Response, dest: Dest, transport: str) -> None:
        self.stateless_sent.append((message, dest))

    def statuses(self, key: TransactionKey) -> list[int]:
        return [r.status for k, r in self.responses if k == key]

    def sent(self, method: str) -> list[Sent]:
        return [s for s in self.requests if s.request.method == method]


@dataclass
class FakeMedia:
    offers: list[tuple[str, str]] = field(default_factory=list)
    answers: list[tuple[str, str, str]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def offer(self, call_id: str, from_tag: str, sdp: bytes, *, transcode: Sequence[str] = ()) -> bytes:
        self.offers.append((call_id, from_tag))
        return sdp.replace(b"10.0.0.", b"203.0.113.")

    def answer(self, call_id: str, from_tag: str, to_tag: str, sdp: bytes) -> bytes:
        self.answers.append((call_id, from_tag, to_tag))
        return sdp.replace(b"10.0.0.", b"203.0.113.")

    def delete(self, call_id: str) -> None:
        self.deleted.append(call_id)


class Rig:
    def __init__(
        self,
        *,
        trusted: bool = True,
        accounts: dict[str, int] | None = None,
        allowlists: AccountAllowlists | None = None,
        **numbers: int,
    ) -> None:
        self.clock = Clock()
        self.port = FakePort()
        self.media = FakeMedia()
        self.cdrs: list[Cdr] = []
        self.location = MemoryLocationStore()
        snapshot = DialplanSnapshot(
            accounts=accounts if accounts is not None else {"1001": 4, "1002": 4},
            numbers={
                "+15551000": NumberEntry("+15551000", "extension", "1002", numbers.get("max_calls", 1000))
            },
        )
        ha1s = {"1001": compute_ha1s("1001", REALM, "pw1001")}
        self.auth = DigestAuthenticator(REALM, b"k" * 32, algorithms=("MD5",))
        guard = SourceGuard(GuardConfig(trusted=("10.0.0.0/8", "192.0.2.0/24") if trusted else ()))
        self.b2bua = B2bua(
            B2buaConfig(host="198.51.100.1", port=5060, realm=REALM, no_answer_s=30.0),
            dialplan=Dialplan(snapshot),
            location=self.location,
            authenticator=self.auth,
            lookup_ha1=lambda user, alg: ha1s.get(user, {}).get(alg),
            media=self.media,
            port=self.port,
            clock=self.clock,
            guard=guard,
            on_cdr=self.cdrs.append,
            allowlists=allowlists,
        )
        self.guard = guard
        self.n = 0

    def register(self, aor: str, *hosts: str) -> None:
        bindings = [
            Binding(
                aor,
                f"sip:{aor}@{h}:5060",
                f"<sip:{aor}@{h}:5060>",
                self.clock.now + 3600,
                "r",
                1,
                (h, 5060),
                "UDP",
            )
            for h in hosts
        ]
        self.location.replace(aor, bindings)

    def invite(
        self, to: str = "1002", *, source: Dest = CALLER, auth: str | None = None
    ) -> tuple[Request, TransactionKey]:
        self.n += 1
        lines = [
            f"INVITE sip:{to}@{REALM} SIP/2.0",
            f"Via: SIP/2.0/UDP {source[0]}:5060;branch=z9hG4bKa{self.n}",
            "Max-Forwards: 70",
            f"From: <sip:1001@{REALM}>;tag=at{self.n}",
            f"To: <sip:{to}@{REALM}>",
            f"Call-ID: a{self.n}@caller",
            "CSeq: 1 INVITE",
            f"Contact: <sip:1001@{source[0]}:5060>",
            "Content-Type: application/sdp",
        ]
        if auth is not None:
            lines.append(f"Proxy-Authorization: {auth}")
        request = parse_message(
            ("\r\n".join(lines) + f"\r\nContent-Length: {len(OFFER)}\r\n\r\n").encode() + OFFER
        )
        assert isinstance(request, Request)
        key = TransactionKey(True, f"z9hG4bKa{self.n}", f"{source[0]}:5060", "INVITE")
        self.b2bua.on_invite(request, key, source, "UDP")
        return request, key

    def authed_invite(self, source: Dest = ("203.0.113.9", 5060)) -> tuple[Request, TransactionKey]:
        return self.authed_invite_to("1002", source)

    def authed_invite_to(
        self, to: str, source: Dest = ("203.0.113.9", 5060)
    ) -> tuple[Request, TransactionKey]:
        """INVITE, 407, INVITE again with credentials (RFC 3261 §22.3)."""
        a, key = self.invite(to, source=source)
        challenge = final(self.port, key)
        assert challenge.status == 407
        client = DigestClient("1001", "pw1001")
        assert client.on_challenge(challenge)
        retry = Request(a.method, a.uri, a.headers.copy(), a.body)
        client.authorize(retry)
        auth = retry.headers.get("proxy-authorization")
        assert auth is not None
        return self.invite(to, source=source, auth=auth)

    def answer_leg(self, sent: Sent, status: int, *, tag: str = "bt", body: bytes = b"") -> Response:
        r = sent.request
        lines = [f"SIP/2.0 {status} X", f"Via: {r.headers.get('via')}"]
        to = r.headers.get("to") or ""
        lines += [f"From: {r.headers.get('from')}", f"To: {to}" if ";tag=" in to else f"To: {to};tag={tag}"]
        lines += [
            f"Call-ID: {r.call_id}",
            f"CSeq: {r.cseq.seq} INVITE",
            f"Contact: <sip:b@{sent.dest[0]}:5060>",
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        response = parse_message(
            ("\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        )
        assert isinstance(response, Response)
        sent.handler(Deliver(response, sent.key, sent.dest, "UDP"))
        return response

    def in_dialog(
        self,
        method: str,
        call_id: str,
        *,
        to_tag: str,
        from_tag: str,
        seq: int,
        body: bytes = b"",
        extra: Sequence[tuple[str, str]] = (),
    ) -> TransactionKey:
        lines = [
            f"{method} sip:vpbx@198.51.100.1:5060 SIP/2.0",
            f"Via: SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKd{seq}{method}",
        ]
        lines += [
            f"From: <sip:x@{REALM}>;tag={from_tag}",
            f"To: <sip:y@{REALM}>;tag={to_tag}",
            f"Call-ID: {call_id}",
        ]
        lines += [f"CSeq: {seq} {method}", "Contact: <sip:x@10.9.9.9:5060>"]
        lines += [f"{name}: {value}" for name, value in extra]
        if body:
            lines.append("Content-Type: application/sdp")
        request = parse_message(
            ("\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        )
        assert isinstance(request, Request)
        key = TransactionKey(True, f"z9hG4bKd{seq}{method}", "10.9.9.9:5060", method)
        self.b2bua.on_in_dialog(request, key)
        return key


def final(port: FakePort, key: TransactionKey) -> Response:
    finals = [r for k, r in port.responses if k == key and r.status >= 200]
    assert len(finals) == 1, [r.status for k, r in port.responses if k == key]
    return finals[0]


def answered_call(rig: Rig) -> tuple[Request, TransactionKey, Sent, Response]:
    rig.register("1002", "10.0.0.2")
    a, key = rig.invite()
    (leg,) = rig.port.sent("INVITE")
    rig.answer_leg(leg, 180)
    rig.answer_leg(leg, 200, body=ANSWER)
    return a, key, leg, final(rig.port, key)


def test_answered_call_anchors_media_and_acks_both_ways() -> None:
    rig = Rig()
    a, key, leg, ok = answered_call(rig)
    statuses = rig.port.statuses(key)
    assert statuses == [100, 180, 200]
    # B leg: our own Call-ID, tags and Contact; the SDP the engine gave; sent to the binding.
    assert leg.request.call_id != a.call_id and leg.dest == ("10.0.0.2", 5060)
    assert leg.request.from_.tag != a.from_.tag and "198.51.100.1" in str(leg.request.contacts[0])
    assert b"203.0.113.1" in leg.request.body and b"10.0.0.1" not in leg.request.body
    # A gets the answer rewritten, a To tag and our Contact.
    assert b"203.0.113.2" in ok.body and ok.to.tag and "198.51.100.1" in str(ok.contacts[0])
    ((ack, dest),) = rig.port.stateless_sent
    assert isinstance(ack, Request) and ack.method == "ACK" and dest == ("10.0.0.2", 5060)
    assert ack.cseq.seq == leg.request.cseq.seq and ack.to.tag == "bt"
    assert rig.b2bua.stats.active == 1 and not rig.cdrs


@pytest.mark.parametrize("side", ["a", "b"])
def test_bye_from_either_side_hangs_up_the_other(side: str) -> None:
    rig = Rig()
    a, _key, leg, ok = answered_call(rig)
    rig.clock.now += 42
    if side == "a":
        bye = rig.in_dialog("BYE", a.call_id, to_tag=ok.to.tag or "", from_tag=a.from_.tag or "", seq=2)
        (out,) = rig.port.sent("BYE")
        assert out.request.call_id == leg.request.call_id and out.dest == ("10.0.0.2", 5060)
        assert out.request.to.tag == "bt"
    else:
        bye = rig.in_dialog(
            "BYE", leg.request.call_id, to_tag=leg.request.from_.tag or "", from_tag="bt", seq=7
        )
        (out,) = rig.port.sent("BYE")
        assert out.request.call_id == a.call_id and out.dest == CALLER
        assert out.request.to.tag == a.from_.tag and out.request.from_.tag == ok.to.tag
    assert final(rig.port, bye).status == 200
    assert rig.media.deleted == [a.call_id] and rig.b2bua.stats.active == 0
    (cdr,) = rig.cdrs
    assert (cdr.disposition, cdr.direction, cdr.to_number, cdr.billsec) == (
        "answered",
        "inbound",
        "1002",
        42.0,
    )
    assert cdr.hangup_cause == ("caller hung up" if side == "a" else "callee hung up")


def test_cancel_from_caller_gives_487_and_cancels_the_fork() -> None:
    rig = Rig()
    rig.register("1002", "10.0.0.2")
    a, key = rig.invite()
    (leg,) = rig.port.sent("INVITE")
    rig.answer_leg(leg, 180)
    cancel_key = TransactionKey(True, "z9hG4bKa1", "10.0.0.1:5060", "CANCEL")
    cancel = Request("CANCEL", a.uri, [(n, v) for n, v in a.headers if n.lower() != "content-type"])
    rig.b2bua.on_cancel(cancel, cancel_key, key)
    assert rig.port.statuses(cancel_key) == [200]
    assert final(rig.port, key).status == 487
    (c,) = rig.port.sent("CANCEL")
    assert c.request.via[0].branch == leg.request.via[0].branch and c.dest == leg.dest
    assert rig.cdrs[0].disposition == "cancelled" and rig.media.deleted == [a.call_id]


def test_busy_callee_relays_486() -> None:
    rig = Rig()
    rig.register("1002", "10.0.0.2")
    _a, key = rig.invite()
    (leg,) = rig.port.sent("INVITE")
    rig.answer_leg(leg, 486)
    assert final(rig.port, key).status == 486
    assert rig.cdrs[0].disposition == "busy" and rig.cdrs[0].hangup_cause == "486"


def test_no_answer_timeout_cancels_and_answers_480() -> None:
    rig = Rig()
    rig.register("1002", "10.0.0.2")
    _a, key = rig.invite()
    (leg,) = rig.port.sent("INVITE")
    rig.answer_leg(leg, 180)
    rig.clock.now += 29.9
    rig.b2bua.on_timer()
    assert rig.port.statuses(key) == [100, 180]
    rig.clock.now += 0.2
    rig.b2bua.on_timer()
    assert final(rig.port, key).status == 480
    assert len(rig.port.sent("CANCEL")) == 1
    assert rig.cdrs[0].disposition == "no-answer" and rig.cdrs[0].hangup_cause == "no answer"


def test_forks_to_every_contact_first_2xx_wins_and_the_other_is_cancelled() -> None:
    rig = Rig()
    rig.register("1002", "10.0.0.2", "10.0.0.3")
    _a, key = rig.invite()
    legs = rig.port.sent("INVITE")
    assert [s.dest[0] for s in legs] == ["10.0.0.2", "10.0.0.3"]
    rig.answer_leg(legs[0], 180, tag="t2")
    rig.answer_leg(legs[1], 180, tag="t3")
    rig.answer_leg(legs[1], 200, tag="t3", body=ANSWER)
    assert final(rig.port, key).status == 200
    (cancel,) = rig.port.sent("CANCEL")
    assert cancel.dest[0] == "10.0.0.2"
    assert cancel.request.headers.get("reason") == 'SIP;cause=200;text="Call completed elsewhere"'
    # the cancelled fork's 487 changes nothing for A
    rig.answer_leg(legs[0], 487, tag="t2")
    assert final(rig.port, key).status == 200 and rig.b2bua.stats.active == 1


def test_all_forks_fail_best_response_wins() -> None:
    assert best_status([480, 486]) == 486
    assert best_status([404, 603, 486]) == 603
    assert best_status([503, 408]) == 408
    rig = Rig()
    rig.register("1002", "10.0.0.2", "10.0.0.3")
    _a, key = rig.invite()
    legs = rig.port.sent("INVITE")
    rig.answer_leg(legs[0], 480)
    assert rig.port.statuses(key) == [100]  # the other fork still rings
    rig.answer_leg(legs[1], 603)
    assert final(rig.port, key).status == 603 and rig.cdrs[0].disposition == "rejected"


def test_unknown_target_404_and_unregistered_extension_480() -> None:
    rig = Rig()
    _a, key = rig.invite("7777")
    assert final(rig.port, key).status == 404
    _a, key = rig.invite("1002")  # known, no contact
    assert final(rig.port, key).status == 480
    assert [c.disposition for c in rig.cdrs] == ["rejected", "no-answer"]
    assert not rig.port.sent("INVITE") and rig.b2bua.stats.active == 0


def test_number_routes_to_its_extension_and_its_limit_gives_486() -> None:
    rig = Rig(max_calls=2)
    rig.register("1002", "10.0.0.2")
    keys = [rig.invite("15551000", source=TRUNK)[1] for _ in range(3)]
    assert len(rig.port.sent("INVITE")) == 2
    assert all(s.request.uri.user == "1002" for s in rig.port.sent("INVITE"))  # type: ignore[union-attr]
    assert final(rig.port, keys[2]).status == 486 and rig.b2bua.stats.limited == 1


def test_account_limit_counts_calls_the_account_makes() -> None:
    rig = Rig(trusted=False, accounts={"1001": 1, "1002": 4})
    rig.register("1002", "10.0.0.2")
    _a, first = rig.authed_invite()
    _a, second = rig.authed_invite()
    assert rig.port.statuses(first) == [100] and final(rig.port, second).status == 486
    assert rig.cdrs[-1].direction == "internal" and rig.cdrs[-1].disposition == "busy"


def test_untrusted_caller_is_challenged_alike_known_or_not_then_authenticated() -> None:
    rig = Rig(trusted=False)
    rig.register("1002", "10.0.0.2")
    _a, key = rig.invite(source=("203.0.113.9", 5060))
    known = final(rig.port, key)
    _b, key = rig.invite(to="7777", source=("203.0.113.9", 5060))  # unknown target: still 407 first
    unknown = final(rig.port, key)
    assert known.status == unknown.status == 407
    assert [h.split("nonce=")[0] for h in known.headers.get_all("proxy-authenticate")] == [
        h.split("nonce=")[0] for h in unknown.headers.get_all("proxy-authenticate")
    ]
    _c, key = rig.authed_invite()
    assert rig.port.statuses(key) == [100]
    assert len(rig.port.sent("INVITE")) == 1 and rig.b2bua.per_account == {"1001": 1}
    assert rig.b2bua.stats.challenges == 3 and not rig.cdrs


def test_reinvite_hold_is_relayed_with_media_offer_answer_and_acked() -> None:
    rig = Rig()
    a, _key, leg, ok = answered_call(rig)
    hold = OFFER.replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n")
    rk = rig.in_dialog(
        "INVITE", a.call_id, to_tag=ok.to.tag or "", from_tag=a.from_.tag or "", seq=2, body=hold
    )
    (out,) = [s for s in rig.port.sent("INVITE") if s is not leg]
    assert out.request.call_id == leg.request.call_id and b"a=sendonly" in out.request.body
    assert rig.media.offers[-1] == (a.call_id, a.from_.tag)
    rig.answer_leg(out, 200, body=ANSWER.replace(b"t=0 0\r\n", b"t=0 0\r\na=recvonly\r\n"))
    response = final(rig.port, rk)
    assert response.status == 200 and b"a=recvonly" in response.body
    assert rig.media.answers[-1] == (a.call_id, a.from_.tag, "bt")
    acks = [m for m, _ in rig.port.stateless_sent if isinstance(m, Request) and m.method == "ACK"]
    assert [x.cseq.seq for x in acks] == [leg.request.cseq.seq, out.request.cseq.seq]


def test_in_dialog_options_answered_and_unknown_dialog_481() -> None:
    rig = Rig()
    a, _key, _leg, ok = answered_call(rig)
    k = rig.in_dialog("OPTIONS", a.call_id, to_tag=ok.to.tag or "", from_tag=a.from_.tag or "", seq=3)
    assert final(rig.port, k).status == 200
    k = rig.in_dialog("BYE", "nope", to_tag="x", from_tag="y", seq=4)
    assert final(rig.port, k).status == 481


def test_no_ack_for_our_2xx_ends_the_call_with_bye_both_ways() -> None:
    rig = Rig()
    _a, key, _leg, _ok = answered_call(rig)
    rig.b2bua.on_timeout(key, Timer.ACK_WAIT)
    assert {s.dest for s in rig.port.sent("BYE")} == {CALLER, ("10.0.0.2", 5060)}
    assert rig.cdrs[0].hangup_cause == "no ACK from caller"


def test_leg_timeout_counts_as_408() -> None:
    rig = Rig()
    rig.register("1002", "10.0.0.2")
    _a, key = rig.invite()
    (leg,) = rig.port.sent("INVITE")
    leg.handler(Timeout(leg.key, Timer.B))
    assert final(rig.port, key).status == 408


def test_183_with_sdp_is_early_media_through_the_engine() -> None:
    rig = Rig()
    setups: list[float] = []
    rig.b2bua.on_setup = setups.append
    rig.register("1002", "10.0.0.2")
    a, key = rig.invite()
    (leg,) = rig.port.sent("INVITE")
    rig.clock.now += 0.25
    rig.answer_leg(leg, 183, body=ANSWER)
    early = [r for k, r in rig.port.responses if k == key and r.status == 183]
    assert len(early) == 1 and b"203.0.113.2" in early[0].body
    assert rig.media.answers == [(a.call_id, a.from_.tag, "bt")] and setups == [0.25]
    rig.answer_leg(leg, 200, body=ANSWER)
    assert final(rig.port, key).status == 200 and setups == [0.25]  # observed once


def test_invite_requiring_an_extension_gets_420() -> None:
    rig = Rig()
    rig.register("1002", "10.0.0.2")
    a, _key = rig.invite()
    request = Request(a.method, a.uri, a.headers.copy(), a.body)
    request.headers.add("Require", "100rel")
    key = TransactionKey(True, "z9hG4bKreq", "10.0.0.1:5060", "INVITE")
    rig.b2bua.on_invite(request, key, CALLER, "UDP")
    response = final(rig.port, key)
    assert response.status == 420 and response.headers.get("unsupported") == "100rel"


def test_shutdown_ends_every_call() -> None:
    rig = Rig()
    a, _key, _leg, _ok = answered_call(rig)
    _b, ringing = rig.invite()
    rig.b2bua.shutdown()
    assert final(rig.port, ringing).status == 503
    assert {c.hangup_cause for c in rig.cdrs} == {"shutdown"} and rig.b2bua.stats.active == 0
    assert len(rig.port.sent("BYE")) == 2 and a.call_id in rig.media.deleted


def test_trunk_routes_go_through_the_trunk_resolver_seam() -> None:
    from vpbx.pbx.calls import Route, Target  # noqa: PLC0415

    class Trunks:
        def targets(self, route: Route, now: float) -> list[Target]:
            uri = f"sip:{route.dialled}@sip.provider.example"
            return [
                Target(uri, ("198.51.100.7", 5060), "UDP", from_user="+74951234567", from_host="pbx.example")
            ]

        def from_trunk(self, request: Request, source_ip: str) -> None:
            return None  # no INVITE comes from this trunk

    rig = Rig(trusted=False)
    rig.b2bua.dialplan.outbound = lambda user: Route("trunk", "main", user) if user.startswith("00") else None
    _a, key = rig.authed_invite_to("0049301234567")
    assert final(rig.port, key).status == 503  # no trunk module: the route exists, the trunk is down
    rig.b2bua.trunks = Trunks()
    _a, key = rig.authed_invite_to("0049301234567")
    (leg,) = rig.port.sent("INVITE")
    assert (
        leg.dest == ("198.51.100.7", 5060)
        and str(leg.request.uri) == "sip:0049301234567@sip.provider.example"
    )
    assert str(leg.request.from_.uri) == "sip:+74951234567@pbx.example"
    rig.answer_leg(leg, 200, body=ANSWER)
    assert final(rig.port, key).status == 200
    assert rig.cdrs[0].direction == "outbound"  # the refused one


def test_blind_transfer_by_the_callee_connects_the_caller_to_the_new_target() -> None:
    rig = Rig(accounts={"1001": 4, "1002": 4, "1003": 4})
    a, _key, leg, ok = answered_call(rig)
    rig.register("1003", "10.0.0.3")
    refer = rig.in_dialog(
        "REFER",
        leg.request.call_id,
        to_tag=leg.request.from_.tag or "",
        from_tag="bt",
        seq=8,
        extra=[("Refer-To", f"<sip:1003@{REALM}>")],
    )
    assert final(rig.port, refer).status == 202
    notifies = rig.port.sent("NOTIFY")
    assert [n.dest for n in notifies] == [("10.0.0.2", 5060)] and notifies[0].request.body.startswith(
        b"SIP/2.0 100"
    )
    (z,) = [s for s in rig.port.sent("INVITE") if s.dest == ("10.0.0.3", 5060)]
    assert rig.media.offers[-1] == (a.call_id, a.from_.tag)  # the transferee's SDP offered again
    assert z.request.from_.uri.user == "1001"  # type: ignore[union-attr]  # the transferee calls
    rig.answer_leg(z, 200, tag="zt", body=ANSWER)
    assert rig.media.answers[-1] == (a.call_id, a.from_.tag, "zt")
    final_notify = rig.port.sent("NOTIFY")[-1].request
    assert final_notify.body.startswith(b"SIP/2.0 200") and "terminated" in (
        final_notify.headers.get("subscription-state") or ""
    )
    assert [s.dest for s in rig.port.sent("BYE")] == [("10.0.0.2", 5060)]  # the transferor leaves
    late = rig.in_dialog("BYE", leg.request.call_id, to_tag=leg.request.from_.tag or "", from_tag="bt", seq=9)
    assert final(rig.port, late).status == 200
    rig.clock.now += 10
    bye = rig.in_dialog("BYE", a.call_id, to_tag=ok.to.tag or "", from_tag=a.from_.tag or "", seq=3)
    assert final(rig.port, bye).status == 200
    assert rig.port.sent("BYE")[-1].dest == ("10.0.0.3", 5060)
    (cdr,) = rig.cdrs
    assert cdr.disposition == "answered" and cdr.hangup_cause == "caller hung up (transferred to 1003)"


def test_transfer_to_nowhere_notifies_the_failure_and_the_call_goes_on() -> None:
    rig = Rig()
    a, _key, leg, _ok = answered_call(rig)
    refer = rig.in_dialog(
        "REFER",
        a.call_id,
        to_tag=_ok.to.tag or "",
        from_tag=a.from_.tag or "",
        seq=4,
        extra=[("Refer-To", "sip:7777@pbx.test")],
    )
    assert final(rig.port, refer).status == 202
    assert rig.port.sent("NOTIFY")[-1].request.body.startswith(b"SIP/2.0 404")
    assert rig.port.sent("NOTIFY")[-1].dest == CALLER
    assert rig.b2bua.stats.active == 1 and not rig.port.sent("BYE") and leg.request.method == "INVITE"


def test_right_password_from_outside_the_allowlist_is_challenged_like_a_wrong_one() -> None:
    rig = Rig(trusted=False, allowlists=AccountAllowlists({"1001": ["192.0.2.0/24"]}))
    rig.register("1002", "10.0.0.2")
    _a, key = rig.authed_invite(source=("203.0.113.9", 5060))  # 1001 may only call from 192.0.2.0/24
    assert final(rig.port, key).status == 407
    assert not rig.port.sent("INVITE") and rig.b2bua.stats.auth_failures == 1
    _b, key = rig.authed_invite(source=("192.0.2.7", 5060))
    assert rig.port.statuses(key) == [100] and len(rig.port.sent("INVITE")) == 1


def test_a_caller_holding_one_account_is_banned_guessing_another() -> None:
    """Failures are forgiven per username: calling as yourself between guesses at someone
    else's password does not reset the count (as for REGISTER)."""
    rig = Rig(trusted=False)
    rig.register("1002", "10.0.0.2")
    source = ("203.0.113.9", 5060)

    def guess() -> None:
        a, key = rig.invite(source=source)
        client = DigestClient("1003", "guess")
        assert client.on_challenge(final(rig.port, key))
        retry = Request(a.method, a.uri, a.headers.copy(), a.body)
        client.authorize(retry)
        rig.invite(source=source, auth=retry.headers.get("proxy-authorization"))

    for _ in range(rig.guard.config.max_failures - 1):
        guess()
        rig.authed_invite(source=source)  # a good call as 1001 in between
    assert not rig.guard.is_banned(source[0], rig.clock.now)
    guess()
    assert rig.guard.is_banned(source[0], rig.clock.now)
