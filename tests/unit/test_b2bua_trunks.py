"""Calls over trunks in the B2BUA (fake port, fake media, fake clock): the TrunkCalls
resolver picks the trunk and writes the B leg the provider expects, the provider's 407 is
answered once with the trunk's credentials, refusals become the caller's answer, and an
INVITE from the provider's address reaches a company number without a challenge."""

from __future__ import annotations

from dataclasses import replace

from test_b2bua import ANSWER, OFFER, REALM, Rig, Sent, final

from vpbx.pbx.calls import FromTrunk, Refused, Route
from vpbx.pbx.trunk_calls import TrunkCalls, target_of
from vpbx.pbx.trunk_routing import OutboundRoute, route_outbound
from vpbx.security import GuardConfig, SourceGuard
from vpbx.sip import DigestAuthenticator, Request, Response, compute_ha1s, parse_message
from vpbx.sip.transaction_actions import Deliver
from vpbx.sip.transaction_match import TransactionKey
from vpbx.store.trunks import TrunkSpec

PROVIDER = "192.0.2.50"
PROV = TrunkSpec(
    name="prov",
    host=PROVIDER,
    port=5070,
    username="7001",
    secret="s3cret",
    outbound_prefixes=("+7", "8"),
    caller_id="+74950000001",
)
PROVIDER_REALM = "provider.test"


def rig_with(*trunks: TrunkSpec) -> tuple[Rig, TrunkCalls]:
    rig = Rig(trusted=False)
    calls = TrunkCalls(lambda: list(trunks))
    rig.b2bua.trunks = calls
    rig.b2bua.dialplan.outbound = calls.outbound
    return rig, calls


def respond(sent: Sent, status: int, *extra: tuple[str, str], body: bytes = b"") -> Response:
    r = sent.request
    lines = [f"SIP/2.0 {status} X", f"Via: {r.headers.get('via')}", f"From: {r.headers.get('from')}"]
    lines += [f"To: {r.headers.get('to')};tag=prov1", f"Call-ID: {r.call_id}", f"CSeq: {r.cseq.seq} INVITE"]
    lines += [f"Contact: <sip:{PROVIDER}:5070>"] if status < 300 else []
    lines += [f"{name}: {value}" for name, value in extra]
    if body:
        lines.append("Content-Type: application/sdp")
    response = parse_message(
        ("\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    )
    assert isinstance(response, Response)
    sent.handler(Deliver(response, sent.key, sent.dest, "UDP"))
    return response


class Provider:
    """The provider's side of digest auth: a real authenticator with the trunk's secret."""

    def __init__(self) -> None:
        self.auth = DigestAuthenticator(PROVIDER_REALM, b"p" * 32, algorithms=("MD5",))
        self.ha1s = compute_ha1s("7001", PROVIDER_REALM, "s3cret")

    def challenge(self, sent: Sent, now: float) -> Response:
        challenge = self.auth.challenge(sent.request, now, proxy=True)
        extra = [("Proxy-Authenticate", v) for v in challenge.headers.get_all("proxy-authenticate")]
        return respond(sent, 407, *extra)

    def accepts(self, request: Request, now: float) -> bool:
        result = self.auth.verify(request, lambda user, alg: self.ha1s.get(alg), now, proxy=True)
        return result.ok and result.username == "7001"


def test_outbound_call_leaves_by_the_trunk_with_its_identity_and_answers_the_407_once() -> None:
    rig, _calls = rig_with(PROV)
    _a, key = rig.authed_invite_to("+74951234567")
    (first,) = rig.port.sent("INVITE")
    req = first.request
    assert first.dest == (PROVIDER, 5070)
    assert str(req.uri) == f"sip:+74951234567@{PROVIDER}:5070"
    assert str(req.from_.uri) == f"sip:7001@{PROVIDER}"  # from_user defaults to the username
    assert str(req.to.uri) == f"sip:+74951234567@{PROVIDER}:5070"
    assert req.headers.get("P-Asserted-Identity") == f"<sip:+74950000001@{PROVIDER}>"
    assert req.headers.get("Proxy-Authorization") is None
    provider = Provider()
    provider.challenge(first, rig.clock.now)
    assert rig.port.statuses(key) == [100]  # the caller hears nothing of it
    _, second = rig.port.sent("INVITE")
    again = second.request
    # §8.1.3.5 / §22.2: a new transaction, CSeq one higher, same Call-ID, From tag, To
    assert again.cseq.seq == req.cseq.seq + 1 and again.call_id == req.call_id
    assert again.from_.tag == req.from_.tag and again.to.tag is None
    assert again.via[0].branch != req.via[0].branch and second.key != first.key
    assert again.body == req.body and str(again.uri) == str(req.uri)
    assert provider.accepts(again, rig.clock.now)
    respond(second, 180)
    respond(second, 200, body=ANSWER)
    assert final(rig.port, key).status == 200
    (ack, dest), *_ = rig.port.stateless_sent
    assert isinstance(ack, Request) and ack.method == "ACK" and ack.cseq.seq == again.cseq.seq
    assert dest == (PROVIDER, 5070)
    (call,) = rig.b2bua.calls.values()
    rig.b2bua.hangup(call, "caller hung up")
    (cdr,) = rig.cdrs
    assert (cdr.direction, cdr.disposition, cdr.to_number) == ("outbound", "answered", "+74951234567")


def test_from_user_and_domain_and_rewrite_rules_of_the_trunk_are_used() -> None:
    trunk = replace(
        PROV,
        from_user="pbx-main",
        from_domain="voip.example",
        caller_id=None,
        strip_digits=1,
        add_prefix="+7",
    )
    rig, _calls = rig_with(trunk)
    rig.authed_invite_to("84951234567")
    (leg,) = rig.port.sent("INVITE")
    assert str(leg.request.uri) == f"sip:+74951234567@{PROVIDER}:5070"
    assert str(leg.request.from_.uri) == "sip:pbx-main@voip.example"
    assert leg.request.headers.get("P-Asserted-Identity") is None


def test_credentials_refused_end_the_call_with_503_not_a_loop() -> None:
    rig, _calls = rig_with(PROV)
    _a, key = rig.authed_invite_to("+74951234567")
    provider = Provider()
    provider.challenge(rig.port.sent("INVITE")[0], rig.clock.now)
    provider.challenge(rig.port.sent("INVITE")[1], rig.clock.now)  # fresh again: wrong secret
    assert len(rig.port.sent("INVITE")) == 2  # no third attempt
    assert final(rig.port, key).status == 503  # the caller cannot answer the provider's challenge
    assert rig.cdrs[-1].direction == "outbound" and rig.cdrs[-1].disposition == "failed"


def test_a_stale_challenge_is_answered_again_and_a_late_407_is_ignored() -> None:
    rig, _calls = rig_with(PROV)
    _a, key = rig.authed_invite_to("+74951234567")
    provider = Provider()
    first = rig.port.sent("INVITE")[0]
    provider.challenge(first, rig.clock.now)
    second = rig.port.sent("INVITE")[1]
    stale = provider.auth.challenge(second.request, rig.clock.now, stale=True, proxy=True)
    respond(second, 407, *[("Proxy-Authenticate", v) for v in stale.headers.get_all("proxy-authenticate")])
    third = rig.port.sent("INVITE")[2]
    assert third.request.cseq.seq == second.request.cseq.seq + 1
    provider.challenge(first, rig.clock.now)  # a late retransmission for the first attempt
    assert len(rig.port.sent("INVITE")) == 3 and rig.port.statuses(key) == [100]
    respond(third, 200, body=ANSWER)
    assert final(rig.port, key).status == 200


def test_cancel_after_the_retry_cancels_the_authorized_invite() -> None:
    rig, _calls = rig_with(PROV)
    _a, key = rig.authed_invite_to("+74951234567")
    Provider().challenge(rig.port.sent("INVITE")[0], rig.clock.now)
    second = rig.port.sent("INVITE")[1]
    respond(second, 180)
    rig.clock.now += 31  # no answer
    rig.b2bua.on_timer()
    (cancel,) = rig.port.sent("CANCEL")
    assert cancel.request.via[0].branch == second.request.via[0].branch  # §9.1: the pending INVITE
    assert cancel.request.cseq.seq == second.request.cseq.seq
    assert final(rig.port, key).status == 480


def test_international_without_permission_is_403_and_nothing_is_sent() -> None:
    intl = replace(PROV, name="intl", outbound_prefixes=("00",))
    rig, _calls = rig_with(PROV, intl)
    _a, key = rig.authed_invite_to("0049301234567")
    assert final(rig.port, key).status == 403
    assert rig.port.sent("INVITE") == []
    assert rig.cdrs[-1].direction == "outbound" and rig.cdrs[-1].disposition == "rejected"
    _a, key = rig.authed_invite_to("+14155550100")  # no trunk has "+1" (nor "+")
    assert final(rig.port, key).status == 404
    rig2, _ = rig_with(replace(intl, allow_international=True))
    _a, key = rig2.authed_invite_to("0049301234567")
    (leg,) = rig2.port.sent("INVITE")
    assert str(leg.request.uri).startswith("sip:0049301234567@")


def test_no_trunk_takes_the_number_404_nothing_left_after_stripping_484() -> None:
    rig, calls = rig_with(PROV)
    _a, key = rig.authed_invite_to("+4930123")
    assert final(rig.port, key).status == 404
    assert calls.outbound("alice") is None  # an unknown user: 404, not "incomplete"
    short = TrunkCalls(lambda: [replace(PROV, strip_digits=12)])
    assert isinstance(refused := short.outbound("+7495123"), Refused) and refused.status == 484
    assert TrunkCalls(list).outbound("+74951234567") is None  # no trunks: an unknown number


def test_trunk_removed_or_disabled_between_routing_and_dialling_gives_503() -> None:
    trunks = [PROV]
    calls = TrunkCalls(lambda: trunks)
    route = calls.outbound("+74951234567")
    assert route == Route("trunk", "prov", "+74951234567")
    trunks[0] = replace(PROV, enabled=False)
    assert calls.targets(route, 0.0) == []


def test_target_carries_credentials_but_does_not_show_them() -> None:
    found = route_outbound("+74951234567", [replace(PROV, auth_username="auth7001")])
    assert isinstance(found, OutboundRoute)
    target = target_of(found)
    assert target.auth == ("auth7001", "s3cret") and "s3cret" not in repr(target)


# -- inbound -------------------------------------------------------------------------------


def provider_invite(rig: Rig, did: str, source: str = PROVIDER) -> tuple[Request, TransactionKey]:
    rig.n += 1
    lines = [
        f"INVITE sip:{did}@198.51.100.1:5060 SIP/2.0",
        f"Via: SIP/2.0/UDP {source}:5070;branch=z9hG4bKp{rig.n}",
        "Max-Forwards: 70",
        f"From: <sip:+74957654321@{source}>;tag=pt{rig.n}",
        f"To: <sip:{did}@198.51.100.1>",
        f"Call-ID: p{rig.n}@provider",
        "CSeq: 1 INVITE",
        f"Contact: <sip:+74957654321@{source}:5070>",
        "Content-Type: application/sdp",
    ]
    request = parse_message(
        ("\r\n".join(lines) + f"\r\nContent-Length: {len(OFFER)}\r\n\r\n").encode() + OFFER
    )
    assert isinstance(request, Request)
    key = TransactionKey(True, f"z9hG4bKp{rig.n}", f"{source}:5070", "INVITE")
    rig.b2bua.on_invite(request, key, (source, 5070), "UDP")
    return request, key


def test_inbound_from_the_provider_reaches_the_did_without_a_challenge() -> None:
    rig, calls = rig_with(PROV)
    rig.register("1002", "10.0.0.2")
    request, _ = provider_invite(rig, "+15551000")
    assert calls.from_trunk(request, PROVIDER) == FromTrunk("prov", "+15551000")
    key = TransactionKey(True, f"z9hG4bKp{rig.n}", f"{PROVIDER}:5070", "INVITE")
    (leg,) = rig.port.sent("INVITE")
    assert leg.dest == ("10.0.0.2", 5060) and leg.request.from_.uri.user == "+74957654321"  # type: ignore[union-attr]
    respond(leg, 200, body=ANSWER)
    assert final(rig.port, key).status == 200
    (call,) = rig.b2bua.calls.values()
    rig.b2bua.hangup(call, "callee hung up")
    assert (rig.cdrs[0].direction, rig.cdrs[0].disposition) == ("inbound", "answered")


def test_inbound_from_the_provider_reaches_neither_extensions_nor_trunks_nor_unknown_numbers() -> None:
    rig, _calls = rig_with(PROV)
    rig.register("1002", "10.0.0.2")
    for dialled in ("1002", "+74951234567", "+15559999"):
        _, key = provider_invite(rig, dialled)
        assert final(rig.port, key).status == 404, dialled  # no challenge: 404 at once
    assert rig.port.sent("INVITE") == []
    assert {c.direction for c in rig.cdrs} == {"inbound"}


def test_provider_by_inbound_cidr_and_strangers_still_challenged() -> None:
    rig, _calls = rig_with(replace(PROV, inbound_cidrs=("198.18.0.0/15",)))
    rig.register("1002", "10.0.0.2")
    _, key = provider_invite(rig, "+15551000", source="198.19.1.1")
    assert rig.port.sent("INVITE")  # routed, not challenged
    _, key = provider_invite(rig, "+15551000", source="203.0.113.77")
    assert final(rig.port, key).status == 407


def test_refer_from_the_provider_side_cannot_reach_a_trunk() -> None:
    rig, _calls = rig_with(PROV)
    rig.register("1002", "10.0.0.2")
    a, key = provider_invite(rig, "+15551000")
    (leg,) = rig.port.sent("INVITE")
    respond(leg, 200, body=ANSWER)
    assert final(rig.port, key).status == 200
    refer = rig.in_dialog(
        "REFER",
        a.call_id,
        to_tag=rig.port.responses[-1][1].to.tag or "",
        from_tag=a.from_.tag or "",
        seq=2,
        extra=[("Refer-To", f"<sip:+74951234567@{REALM}>")],
    )
    assert final(rig.port, refer).status == 202
    (*_, notify) = rig.port.sent("NOTIFY")
    assert b"403" in notify.request.body
    assert len(rig.port.sent("INVITE")) == 1  # nothing sent to the provider


def test_provider_addresses_are_exempt_from_limits_and_bans_but_not_trusted() -> None:
    guard = SourceGuard(GuardConfig(rate=1.0, burst=2.0, max_failures=2))
    guard.set_providers([f"{PROVIDER}/32", "198.18.0.0/15"])
    now = 100.0
    assert all(guard.allow_request(PROVIDER, now) for _ in range(500))  # far over rate 1/s, burst 2
    for _ in range(5):
        assert not guard.record_auth_failure("198.19.0.1", now, "x")
    assert not guard.is_banned("198.19.0.1", now) and guard.ban(PROVIDER, now) == 0.0
    assert not guard.is_trusted(PROVIDER)  # the B2BUA still challenges it unless it is a trunk's
    stranger = "203.0.113.5"
    assert [guard.allow_request(stranger, now) for _ in range(3)] == [True, True, False]
    guard.record_auth_failure(stranger, now)
    assert guard.record_auth_failure(stranger, now) and guard.is_banned(stranger, now)
    guard.set_providers([])  # the trunk removed: limits apply again
    assert [guard.allow_request(PROVIDER, now + 10) for _ in range(3)] == [True, True, False]


def test_an_extension_transfers_a_call_out_over_the_trunk_through_its_407() -> None:
    rig, _calls = rig_with(PROV)
    rig.register("1002", "10.0.0.2")
    _a, key = rig.authed_invite_to("1002")
    (leg,) = [s for s in rig.port.sent("INVITE") if s.dest == ("10.0.0.2", 5060)]
    respond(leg, 200, body=ANSWER)
    assert final(rig.port, key).status == 200
    refer = rig.in_dialog(
        "REFER",
        leg.request.call_id,
        to_tag=leg.request.from_.tag or "",
        from_tag="prov1",
        seq=8,
        extra=[("Refer-To", f"<sip:+74951234567@{REALM}>")],
    )
    assert final(rig.port, refer).status == 202  # the callee (an extension) may send it out
    (out,) = [s for s in rig.port.sent("INVITE") if s.dest == (PROVIDER, 5070)]
    assert str(out.request.from_.uri) == f"sip:7001@{PROVIDER}"
    Provider().challenge(out, rig.clock.now)
    retry = [s for s in rig.port.sent("INVITE") if s.dest == (PROVIDER, 5070)]
    assert len(retry) == 2 and Provider().accepts(retry[1].request, rig.clock.now)
    respond(retry[1], 200, body=ANSWER)
    assert rig.port.sent("NOTIFY")[-1].request.body.startswith(b"SIP/2.0 200")
