"""The trunk registration state machine against a fake registrar that really checks digest
credentials, on a fake clock: register with auth, refresh before expiry, back off on
failure, unregister with Expires: 0."""

from __future__ import annotations

import dataclasses

from vpbx.pbx.trunk_registration import TrunkRegistration
from vpbx.sip import Request, Response, build_response, compute_ha1s
from vpbx.sip.auth import DigestAuthenticator
from vpbx.store.trunks import TrunkSpec

REALM = "provider.example"
TRUNK = TrunkSpec(name="prov", host="sip.provider.example", username="7001", secret="right", port=5070)
LOCAL = ("192.0.2.10", 5060)
T0 = 1_000.0


class Registrar:
    """Challenges until the credentials are right, then grants `grant` seconds."""

    def __init__(self, *, grant: int | None = 120, on_contact: bool = True) -> None:
        self.auth = DigestAuthenticator(REALM, b"k" * 32, algorithms=("MD5",))
        self.ha1s = compute_ha1s("7001", REALM, "right")
        self.grant = grant
        self.on_contact = on_contact
        self.seen: list[Request] = []

    def answer(self, request: Request, now: float) -> Response:
        self.seen.append(request)
        result = self.auth.verify(
            request, lambda user, alg: self.ha1s.get(alg) if user == "7001" else None, now
        )
        if not result.ok:
            return self.auth.challenge(request, now, stale=result.stale)
        response = build_response(request, 200, to_tag="reg")
        asked = request.expires
        granted = min(asked, self.grant) if asked is not None and self.grant is not None else asked
        contact = request.headers.get("contact") or ""
        if self.on_contact:
            response.headers.add("Contact", f"{contact};expires={granted}")
        else:
            response.headers.add("Expires", str(granted))
        return response


def machine(trunk: TrunkSpec = TRUNK) -> TrunkRegistration:
    return TrunkRegistration(trunk, local=LOCAL, backoff_min_s=30, backoff_max_s=300)


def drive(reg: TrunkRegistration, registrar: Registrar, request: Request | None, now: float) -> None:
    """Answer every REGISTER the machine sends until it stops sending (bounded)."""
    for _ in range(10):
        if request is None:
            return
        request = reg.on_response(registrar.answer(request, now), now)
    raise AssertionError("the machine kept sending")


def test_register_with_digest_then_refresh_before_expiry() -> None:
    reg, registrar = machine(), Registrar(grant=120)
    first = reg.start(T0)
    assert first is not None and reg.state == "registering"
    assert str(first.uri) == "sip:sip.provider.example:5070"
    assert first.headers.get("to") == "<sip:7001@sip.provider.example:5070>"
    assert first.headers.get("contact") == "<sip:7001@192.0.2.10:5060>"
    assert first.headers.get("expires") == "300" and "authorization" not in first.headers
    drive(reg, registrar, first, T0)
    assert reg.state == "registered" and reg.last_error is None
    assert reg.registered_until == T0 + 120  # the Contact's expires, not the 300 asked
    assert [r.cseq.seq for r in registrar.seen] == [1, 2]  # CSeq + 1 after the 401 (§22.2)
    assert {r.call_id for r in registrar.seen} == {reg.call_id}
    assert "authorization" in registrar.seen[1].headers
    assert reg.next_deadline == T0 + 90  # refreshed at 75 % of the granted time
    assert reg.on_timer(T0 + 89) is None
    refresh = reg.on_timer(T0 + 90)
    assert refresh is not None and refresh.cseq.seq == 3
    assert "authorization" in refresh.headers  # cached credentials, nc + 1: no new 401
    drive(reg, registrar, refresh, T0 + 90)
    assert reg.state == "registered" and len(registrar.seen) == 3
    assert reg.registered_until == T0 + 210


def test_expires_header_is_used_when_the_contact_has_none() -> None:
    reg, registrar = machine(), Registrar(grant=60, on_contact=False)
    drive(reg, registrar, reg.start(T0), T0)
    assert reg.registered_until == T0 + 60 and reg.next_deadline == T0 + 45


def test_wrong_secret_fails_and_backs_off_doubling_to_the_cap() -> None:
    reg, registrar = machine(dataclasses.replace(TRUNK, secret="wrong")), Registrar()
    drive(reg, registrar, reg.start(T0), T0)
    assert reg.state == "failing" and reg.last_error == "credentials rejected (401)"
    assert reg.failures_total == 1 and len(registrar.seen) == 2  # no loop on bad credentials
    delays = []
    now = T0
    for _ in range(6):
        assert reg.next_deadline is not None
        delays.append(reg.next_deadline - now)
        now = reg.next_deadline
        retry = reg.on_timer(now)
        assert retry is not None and reg.state == "registering"
        assert "authorization" not in retry.headers  # a retry starts afresh
        drive(reg, registrar, retry, now)
    assert delays == [30, 60, 120, 240, 300, 300]
    assert reg.failures_total == 7


def test_forbidden_timeout_and_retry_after() -> None:
    reg = machine()
    request = reg.start(T0)
    assert request is not None
    assert reg.on_response(build_response(request, 403, to_tag="x"), T0) is None
    assert (reg.state, reg.last_error, reg.next_deadline) == ("failing", "403 Forbidden", T0 + 30)
    request = reg.on_timer(T0 + 30)
    assert request is not None
    assert reg.on_failure("timeout", T0 + 62) is None
    assert (reg.state, reg.last_error, reg.next_deadline) == ("failing", "timeout", T0 + 62 + 60)
    request = reg.on_timer(T0 + 122)
    assert request is not None
    busy = build_response(request, 503, to_tag="x")
    busy.headers.add("Retry-After", "17")
    reg.on_response(busy, T0 + 122)
    assert (reg.last_error, reg.next_deadline) == ("503 Service Unavailable", T0 + 139)
    # a success resets the backoff
    request = reg.on_timer(T0 + 139)
    assert request is not None
    drive(reg, Registrar(), request, T0 + 139)
    assert reg.state == "registered" and reg.consecutive_failures == 0 and reg.last_error is None


def test_interval_too_brief_is_asked_again_with_min_expires() -> None:
    reg = machine(dataclasses.replace(TRUNK, register_interval_s=30))
    request = reg.start(T0)
    assert request is not None
    brief = build_response(request, 423, to_tag="x")
    brief.headers.add("Min-Expires", "600")
    again = reg.on_response(brief, T0)
    assert again is not None and again.headers.get("expires") == "600" and again.cseq.seq == 2


def test_stale_and_foreign_answers_are_ignored() -> None:
    reg = machine()
    first = reg.start(T0)
    assert first is not None
    provisional = build_response(first, 100)
    assert reg.on_response(provisional, T0) is None and reg.state == "registering"
    challenge = Registrar().answer(first, T0)
    second = reg.on_response(challenge, T0)
    assert second is not None
    assert reg.on_response(build_response(first, 200, to_tag="x"), T0) is None  # CSeq 1: old
    assert reg.state == "registering"
    assert reg.on_failure("timeout", T0) is None and reg.state == "failing"
    assert reg.on_failure("timeout", T0) is None and reg.failures_total == 1  # nothing in flight


def test_stop_unregisters_with_expires_zero_answering_a_challenge() -> None:
    reg, registrar = machine(), Registrar()
    drive(reg, registrar, reg.start(T0), T0)
    registrar.auth = DigestAuthenticator(
        REALM, b"other-secret" * 3, algorithms=("MD5",)
    )  # cached nonce now bad
    bye = reg.stop(T0 + 10)
    assert bye is not None and reg.state == "disabled" and not reg.finished
    assert bye.headers.get("expires") == "0" and bye.headers.get("contact") == "<sip:7001@192.0.2.10:5060>"
    drive(reg, registrar, bye, T0 + 10)
    assert reg.finished
    assert [r.headers.get("expires") for r in registrar.seen[-2:]] == ["0", "0"]
    assert registrar.seen[-1].cseq.seq == bye.cseq.seq + 1
    assert reg.on_timer(T0 + 1000) is None and reg.start(T0 + 1000) is None  # done for good


def test_stop_without_a_registration_sends_nothing() -> None:
    reg = machine()
    request = reg.start(T0)
    assert request is not None
    reg.on_response(build_response(request, 403, to_tag="x"), T0)
    assert reg.stop(T0 + 1) is None and reg.finished and reg.state == "disabled"


def test_tcp_trunk_and_from_domain_shape_the_request() -> None:
    trunk = dataclasses.replace(TRUNK, transport="tcp", from_domain="voip.example", auth_username="auth7001")
    reg = TrunkRegistration(trunk, local=("2001:db8::1", 5061))
    request = reg.start(T0)
    assert request is not None
    assert str(request.uri) == "sip:voip.example;transport=tcp"
    assert request.via[0].transport == "TCP" and request.via[0].host == "[2001:db8::1]"
    assert request.headers.get("contact") == "<sip:7001@[2001:db8::1]:5061;transport=tcp>"
    assert request.headers.get("from", "").startswith("<sip:7001@voip.example>;tag=")
    assert reg.client.username == "auth7001"
