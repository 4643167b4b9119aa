"""The B2BUA core (RFC 3261 §13, §15, §9 from both sides), sans-IO.

    b2bua = B2bua(config, dialplan=..., location=..., authenticator=..., lookup_ha1=...,
                  media=NgMediaControl(...), port=service, clock=time.time, on_cdr=writer.add)
    b2bua.on_invite(request, key, source, transport)     # a new INVITE (no To tag)
    b2bua.on_cancel(request, key, related)               # CANCEL (§9.2)
    b2bua.on_in_dialog(request, key, source, transport)  # BYE, re-INVITE, INFO, ... (see indialog)
    b2bua.on_ack(request)                                # ACK for a 2xx (§13.3.1.4: ends retransmission)
    b2bua.on_timer()                                     # every ~0.5 s: no-answer timeouts

A call: the caller's INVITE (A leg) is authenticated (407, §22.3; a trusted source is
not challenged), routed (`Dialplan`), answered 100 at once (§8.2.6.1; the transaction
layer sends it), and forked as new INVITEs with our own Call-ID, tags and Contact to every
registered contact of the target (B legs, in parallel). 180/183 are relayed with the
media answer of their SDP (early media); the first 2xx wins: its SDP is answered by the
media engine, A gets a 2xx with the rewritten SDP, the winner an ACK (§13.2.2.4), the
other forks a CANCEL with Reason (RFC 3326). Failures end the call with the best final
response of the forks (6xx first, then 486, else the first). A CANCEL from A is answered
200, the INVITE 487 (§9.2), and every fork is cancelled.

Trunks: a route of kind "trunk" (a number targeting a trunk, or the Dialplan's `outbound`
prefix rules) dials the `Target`s the `trunks` resolver (vpbx.pbx.calls.routing.TrunkResolver,
the trunk module's seam) gives, with their caller-ID; without one the caller gets 503. A
provider's 401/407 is answered with the trunk's credentials (challenge.py). An INVITE from a
trunk's address is not challenged and reaches only company numbers (Dialplan.route_did).

Limits: numbers.max_calls per number and sip_accounts.max_calls per calling account;
over either the caller gets 486 Busy Here (the callee side is busy, so a trunk may
try elsewhere; 503 would make a provider fail the whole route over).

Overload (vpbx.pbx.calls.admission): while the node lags or too many calls are in setup, a
new INVITE gets 503 + Retry-After at once (no challenge, media or CDR); calls up go on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from vpbx.logs import get_logger
from vpbx.pbx.location import LocationStore
from vpbx.security import AccountAllowlists, SourceGuard, judge
from vpbx.sip.auth import DigestAuthenticator, LookupHa1
from vpbx.sip.auth_client import DigestClient
from vpbx.sip.dialog import Dialog, DialogError
from vpbx.sip.errors import SipParseError
from vpbx.sip.headers import Headers
from vpbx.sip.ids import new_branch, new_call_id, new_tag
from vpbx.sip.message import Request, Response, build_response
from vpbx.sip.timers import Timer
from vpbx.sip.transaction_actions import Deliver, Timeout, TransportError
from vpbx.sip.transaction_match import Dest, TransactionKey, build_cancel
from vpbx.sip.uri import SipUri, parse_uri
from vpbx.store.cdrs import Cdr

from .admission import Admission
from .challenge import answer_challenge
from .indialog import InDialog
from .media import MediaControl, MediaError, MediaUnavailableError
from .model import (
    ALLOW,
    B2buaConfig,
    Call,
    CallPhase,
    CallStats,
    Leg,
    LegHandler,
    Party,
    SipPort,
    best_status,
    decrement,
    disposition_of,
    ignore,
    sip_user,
)
from .routing import Dialplan, Refused, Route, Target, TrunkResolver
from .transfer import Transfers

__all__ = ["B2bua", "B2buaConfig", "best_status"]

log = get_logger("vpbx.calls")

MAX_FORWARDS: Final = 70
RETIRED_MAX: Final = 10_000
SUPPORTED: Final[frozenset[str]] = frozenset()  # option tags an INVITE may Require (none: no 100rel)
COMPLETED_ELSEWHERE: Final = 'SIP;cause=200;text="Call completed elsewhere"'  # RFC 3326 §2


class B2bua:
    """See the module docstring. `clock` is Unix time (CDRs and timers)."""

    def __init__(
        self,
        config: B2buaConfig,
        *,
        dialplan: Dialplan,
        location: LocationStore,
        authenticator: DigestAuthenticator,
        lookup_ha1: LookupHa1,
        media: MediaControl,
        port: SipPort,
        clock: Callable[[], float],
        guard: SourceGuard | None = None,
        on_cdr: Callable[[Cdr], object] | None = None,
        on_setup: Callable[[float], object] | None = None,
        trunks: TrunkResolver | None = None,
        allowlists: AccountAllowlists | None = None,
        admission: Admission | None = None,
    ) -> None:
        self.config = config
        self.dialplan = dialplan
        self.location = location
        self.authenticator = authenticator
        self.lookup_ha1 = lookup_ha1
        self.media = media
        self.port = port
        self.clock = clock
        self.guard = guard
        self.on_cdr = on_cdr
        self.on_setup = on_setup
        self.trunks = trunks  # outbound legs of "trunk" routes (the trunk module)
        self.allowlists = allowlists  # per-account source CIDRs, as the registrar applies them
        self.reachable: Callable[[str, str], bool] | None = None  # (aor, contact): OPTIONS qualify
        self.stats = CallStats()
        self.admission = admission if admission is not None else Admission()
        self.in_setup = 0  # calls admitted and not answered or ended yet
        self.calls: dict[TransactionKey, Call] = {}  # by A's INVITE server transaction
        self.by_dialog: dict[tuple[str, str], Call] = {}  # (Call-ID, our tag) -> call, both sides
        self.by_media: dict[str, Call] = {}
        self.retired: dict[tuple[str, str], None] = {}  # dialogs a transfer replaced (oldest first)
        self.per_number: dict[str, int] = {}
        self.per_account: dict[str, int] = {}
        self.dialogs = InDialog(self)
        self.transfers = Transfers(self)

    # -- addresses ---------------------------------------------------------------------------

    def via(self, transport: str) -> str:
        return f"SIP/2.0/{transport.upper()} {self.config.host}:{self.config.port}"

    def contact(self, transport: str) -> str:
        tail = "" if transport.upper() == "UDP" else f";transport={transport.lower()}"
        return f"<sip:vpbx@{self.config.host}:{self.config.port}{tail}>"

    def reply(self, request: Request, status: int, *, to_tag: str | None = None) -> Response:
        response = build_response(request, status, to_tag=to_tag or new_tag())
        response.headers.add("Server", "vpbx")
        return response

    # -- a new INVITE ------------------------------------------------------------------------

    def on_invite(self, request: Request, key: TransactionKey, source: Dest, transport: str) -> None:
        """An INVITE outside any dialog (§13.3.1)."""
        now = self.clock()
        if self.admission.check(self.in_setup, now) is not None:
            self.stats.shed += 1
            return self._unavailable(request, key)
        self.port.respond(key, build_response(request, 100))  # at once (§8.2.6.1, §17.2.1)
        try:
            self._invite(request, key, source, transport, now)
        except (SipParseError, DialogError) as err:
            status = err.status if isinstance(err, SipParseError) else 400
            self.port.respond(key, self.reply(request, status))

    def _invite(
        self, request: Request, key: TransactionKey, source: Dest, transport: str, now: float
    ) -> None:
        if key in self.calls:
            return  # a retransmission the layer let through (none expected)
        caller: str | None = None
        trunk = None if self.trunks is None else self.trunks.from_trunk(request, source[0])
        trusted = trunk is not None or (self.guard is not None and self.guard.is_trusted(source[0]))
        if not trusted:
            caller = self._authenticate(request, key, source, now)
            if caller is None:
                return
        direction = "internal" if caller is not None else "inbound"
        # An extension calls as itself whatever its From says (no caller-ID spoofing); a
        # trusted peer's From user is the caller's number.
        from_user = request.from_.uri.user if isinstance(request.from_.uri, SipUri) else None
        from_user = caller or from_user or "anonymous"
        dialled = sip_user(request)
        mf = request.max_forwards
        if mf is not None and mf <= 0:
            return self._refuse(request, key, 483, direction)  # §16.3 step 3 (a loop)
        route = self.dialplan.route(dialled) if trunk is None else self.dialplan.route_did(trunk.did)
        if route is None or isinstance(route, Refused):
            status = 404 if route is None else route.status
            return self._refuse(request, key, status, direction if route is None else "outbound")
        if route.kind == "trunk":
            direction = "outbound"
        if len(self.calls) >= self.config.max_calls:
            self.stats.count(direction, "failed")
            return self._unavailable(request, key)
        number = route.number
        if number is not None and self.per_number.get(number.e164, 0) >= number.max_calls:
            self.stats.limited += 1
            return self._refuse(request, key, 486, direction)
        if caller is not None and self.per_account.get(caller, 0) >= self.dialplan.account_limit(caller):
            self.stats.limited += 1
            return self._refuse(request, key, 486, direction)
        unsupported = [tag for tag in request.require if tag not in SUPPORTED]
        if unsupported:  # §8.2.2.3
            response = self.reply(request, 420)
            response.headers.add("Unsupported", ", ".join(unsupported))
            return self.port.respond(key, response)
        if not request.contacts:
            return self._refuse(request, key, 400, direction)  # §8.1.1.8: an INVITE needs a Contact
        content = request.content_type
        if not request.body or content is None or content.mime != "application/sdp":
            return self._refuse(request, key, 488, direction)  # no offer in the INVITE: not served
        targets = self.targets(route, now)
        if not targets:  # an extension not registered (480), a trunk down or unknown (503)
            return self._refuse(request, key, 480 if route.kind == "extension" else 503, direction)
        call = Call(
            a_request=request,
            a_key=key,
            a_dest=source,
            a_transport=transport,
            a_tag=new_tag(),
            route=route,
            caller=caller,
            direction=direction,
            from_user=from_user,
            started=now,
            no_answer_at=now + self.config.no_answer_s,
            b_call_id=new_call_id(self.config.host),
            b_tag=new_tag(),
        )
        try:
            offer = self.media.offer(call.media_id, call.a_from_tag, request.body)
        except MediaError as err:  # out of ports/sessions: 503 (§21.5.4); else the SDP: 488
            log.warning("call_media_refused", call_id=request.call_id, reason=str(err))
            return self._refuse(
                request, key, 503 if isinstance(err, MediaUnavailableError) else 488, direction
            )
        self._admit(call)
        for target in targets:
            self.fork(call, target, offer, mf)
        if not call.legs:
            self._fail(call, 480, "no contact reachable")

    def _unavailable(self, request: Request, key: TransactionKey) -> None:
        response = self.reply(request, 503)
        response.headers.add("Retry-After", str(self.admission.config.retry_after_s))  # §21.5.4
        self.port.respond(key, response)

    def _authenticate(self, request: Request, key: TransactionKey, source: Dest, now: float) -> str | None:
        """§22.3: 407 with Proxy-Authenticate, the same for unknown users as for wrong
        passwords (no enumeration), and the same again for the right password from outside
        the account's source allowlist (a 403 would confirm the password); a banned source
        hears nothing. The guard counts failures per username, as for REGISTER."""
        guard = self.guard
        if guard is not None and guard.is_banned(source[0], now):
            return None
        result = self.authenticator.verify(request, self.lookup_ha1, now, proxy=True)
        verdict = judge(result, source[0], now, guard=guard, allowlists=self.allowlists)
        if verdict.username is not None:
            return verdict.username
        if verdict.failed:
            self.stats.auth_failures += 1
            if verdict.banned:
                return None
        self.stats.challenges += 1
        challenge = self.authenticator.challenge(request, now, stale=result.stale, proxy=True)
        self.port.respond(key, challenge)
        return None

    def _refuse(self, request: Request, key: TransactionKey, status: int, direction: str) -> None:
        """A call refused before any B leg: the response and a CDR."""
        self.port.respond(key, self.reply(request, status))
        now = self.clock()
        disposition = disposition_of(status)
        self.stats.count(direction, disposition)
        if self.on_cdr is not None:
            from_uri = request.from_.uri
            self.on_cdr(
                Cdr(
                    call_id=request.call_id,
                    direction=direction,
                    from_number=(from_uri.user if isinstance(from_uri, SipUri) else None) or "anonymous",
                    to_number=sip_user(request),
                    started_at=now,
                    disposition=disposition,
                    ended_at=now,
                    hangup_cause=str(status),
                )
            )

    def _admit(self, call: Call) -> None:
        self.calls[call.a_key] = call
        self.by_dialog[call.a_request.call_id, call.a_tag] = call
        self.by_dialog[call.b_call_id, call.b_tag] = call
        self.by_media[call.media_id] = call
        self.stats.active = len(self.calls)
        self.in_setup += 1
        number = call.route.number
        if number is not None:
            self.per_number[number.e164] = self.per_number.get(number.e164, 0) + 1
        if call.caller is not None:
            self.per_account[call.caller] = self.per_account.get(call.caller, 0) + 1

    def targets(self, route: Route, now: float) -> list[Target]:
        """The B legs of a route: every registered contact of an extension, sent to where
        its REGISTER came from (the flow: RFC 3581 / NAT); a trunk's from its resolver."""
        if route.kind == "trunk":
            return [] if self.trunks is None else self.trunks.targets(route, now)
        bindings = self.location.bindings(route.target, now)
        ok = self.reachable  # contacts that stopped answering OPTIONS are skipped (issue 4)
        return [Target(b.uri, b.source, b.transport) for b in bindings if ok is None or ok(b.aor, b.uri)]

    def fork(
        self,
        call: Call,
        target: Target,
        offer: bytes,
        mf: int | None,
        *,
        legs: list[Leg] | None = None,
        dialog_ids: tuple[str, str] | None = None,
        parties: tuple[str, str] | None = None,
        on_event: LegHandler | None = None,
    ) -> None:
        """One B leg to `target` (§13.2.1) with the caller's identity (or the trunk's
        caller-ID) and our own Call-ID, tags and Contact. A transfer passes its own `legs`,
        `dialog_ids` (Call-ID, From tag), `parties` (from user, to user) and handler."""
        try:
            uri = parse_uri(target.uri)
        except SipParseError:
            return
        legs = call.legs if legs is None else legs
        call_id, tag = dialog_ids or (call.b_call_id, call.b_tag)
        from_user, to_user = parties or (call.from_user, call.route.target)
        transport = target.transport.upper()
        display = call.a_request.from_.display_name if parties is None else None
        name = f'"{display}" ' if display else ""
        from_user = target.from_user or from_user
        from_host = target.from_host or self.config.realm
        to_uri = target.to_uri or f"sip:{to_user}@{self.config.realm}"
        headers = Headers(
            [
                ("Via", f"{self.via(transport)};branch={new_branch()};rport"),
                ("Max-Forwards", str(min(MAX_FORWARDS, (mf if mf is not None else MAX_FORWARDS) - 1))),
                ("From", f"{name}<sip:{from_user}@{from_host}>;tag={tag}"),
                ("To", f"<{to_uri}>"),
                ("Call-ID", call_id),
                ("CSeq", f"{len(legs) + 1} INVITE"),
                ("Contact", self.contact(transport)),
                ("Allow", ", ".join(ALLOW)),
                ("Content-Type", "application/sdp"),
                *target.headers,
            ]
        )
        request = Request("INVITE", uri, headers, offer)
        leg = Leg(request, None, target.dest, transport)
        if target.auth is not None:
            leg.auth = DigestClient(*target.auth)
        legs.append(leg)
        handler = on_event or self._on_leg
        leg.on_event = lambda e: handler(call, leg, e)
        leg.key = self.port.request(request, leg.dest, transport, leg.on_event)
        if leg.key is None:
            leg.final = True
            legs.remove(leg)

    # -- B leg events --------------------------------------------------------------------------

    def _on_leg(self, call: Call, leg: Leg, event: Deliver | Timeout | TransportError) -> None:
        if isinstance(event, Deliver):
            if isinstance(event.message, Response):
                try:
                    self._leg_response(call, leg, event.message)
                except (SipParseError, DialogError) as err:  # a header that does not parse
                    log.warning("b_leg_response_unusable", call_id=call.media_id, reason=str(err))
            return
        if isinstance(event, Timeout) and event.timer is Timer.C:
            self.cancel_leg(leg)  # §16.6 step 11: no final response for too long
            return
        if leg.final:
            return
        leg.final = True
        leg.status = 408
        self._after_failure(call)

    def _leg_response(self, call: Call, leg: Leg, response: Response) -> None:
        status = response.status
        if status < 200:
            self._leg_provisional(call, leg, response)
        elif status < 300:
            self._leg_success(call, leg, response)
        elif not leg.final:
            failed = answer_challenge(self.port, leg, response) if status in (401, 407) else status
            if failed is None:
                return  # sent again with the trunk's credentials (§22.2)
            leg.final = True
            leg.status = failed
            self._after_failure(call)

    def _leg_provisional(self, call: Call, leg: Leg, response: Response) -> None:
        status = response.status
        leg.status = max(leg.status, status)
        if status == 100 or call.phase is not CallPhase.SETUP or leg.final:
            return
        if response.to.tag and leg.dialog is None:
            try:
                leg.dialog = Dialog.uac(leg.request, response, transport=leg.transport)
            except (DialogError, SipParseError):
                leg.dialog = None
        body = b""
        if response.body and leg.dialog is not None:
            try:
                body = self.media.answer(call.media_id, call.a_from_tag, leg.dialog.remote_tag, response.body)
            except MediaError:
                body = b""
        relayed = 183 if body else status
        self._to_a(call, relayed, body)
        self._setup_seen(call)

    def _leg_success(self, call: Call, leg: Leg, response: Response) -> None:
        dialog = leg.dialog
        remote_tag = response.to.tag or ""
        if dialog is None or dialog.remote_tag != remote_tag:
            try:
                dialog = Dialog.uac(leg.request, response, transport=leg.transport)
            except (DialogError, SipParseError):
                return
        else:
            dialog.receive_response(response)
        if call.winner is not None:
            if call.winner is leg and dialog.remote_tag == call.b_to_tag and call.winner.dialog is not None:
                self._ack(call.winner.dialog, leg)  # a retransmitted 2xx: ACK again (§13.2.2.4)
                return
            # Another fork (or another dialog of a fork) answered too: ACK and BYE it (§13.2.2.4).
            self._ack(dialog, leg)
            self.bye(dialog, leg.dest, leg.transport)
            return
        if call.phase is not CallPhase.SETUP:
            self._ack(dialog, leg)
            self.bye(dialog, leg.dest, leg.transport)
            return
        leg.dialog = dialog
        leg.final = True
        leg.status = response.status
        call.winner = leg
        self._ack(dialog, leg)
        try:
            body = self.media.answer(call.media_id, call.a_from_tag, dialog.remote_tag, response.body)
        except MediaError:
            self.bye(dialog, leg.dest, leg.transport)
            self._fail(call, 488, "media answer refused")
            return
        for other in call.legs:
            if other is not leg:
                self.cancel_leg(other, reason=COMPLETED_ELSEWHERE)
        call.phase = CallPhase.ANSWERED
        self.in_setup -= 1
        call.answered = self.clock()
        self._setup_seen(call)
        self._to_a(call, 200, body)
        a_dialog = call.a_dialog
        assert a_dialog is not None  # made by _to_a for the 2xx
        call.parties["a"] = Party(
            a_dialog, call.a_dest, call.a_transport, call.a_from_tag, call.a_tag, call.a_request.body
        )
        call.parties["b"] = Party(
            dialog, leg.dest, leg.transport, dialog.remote_tag, call.b_tag, response.body
        )
        call.a_request.compact()  # kept for the whole call, rarely read again: parsed views go
        for each in call.legs:
            each.request.compact()
        leg.on_event = leg.auth = None  # answered: no challenge to answer again (challenge.py)
        if dialog.last_ack is not None:
            dialog.last_ack.compact()

    def bye(self, dialog: Dialog, dest: Dest, transport: str) -> None:
        """BYE in `dialog` (§15.1.1); its outcome changes nothing here."""
        try:
            request = dialog.create_request("BYE", via=self.via(transport))
        except DialogError:
            return  # already ended
        self.port.request(request, dest, transport, ignore)

    def _ack(self, dialog: Dialog, leg: Leg) -> None:
        ack = dialog.last_ack or dialog.create_ack(via=self.via(leg.transport))
        self.port.stateless(ack, leg.dest, leg.transport)

    def _after_failure(self, call: Call) -> None:
        if call.phase is not CallPhase.SETUP or any(True for _ in call.live_legs()):
            return
        statuses = [leg.status for leg in call.legs]
        self._fail(call, best_status(statuses), None)

    def cancel_leg(self, leg: Leg, *, reason: str | None = None) -> None:
        """CANCEL a pending fork (§9.1); the transaction layer holds it until a 1xx came."""
        if leg.final or leg.cancelled or leg.key is None:
            return
        leg.cancelled = True
        cancel = build_cancel(leg.request)
        if reason is not None:
            cancel.headers.add("Reason", reason)
        self.port.request(cancel, leg.dest, leg.transport, ignore)

    # -- towards A -------------------------------------------------------------------------

    def _to_a(self, call: Call, status: int, body: bytes) -> None:
        response = self.reply(call.a_request, status, to_tag=call.a_tag)
        headers = response.headers
        if status > 100:
            for value in call.a_request.headers.get_list("record-route"):
                headers.add("Record-Route", value)  # §12.1.1: copied into dialog-creating responses
            headers.add("Contact", self.contact(call.a_transport))
            headers.add("Allow", ", ".join(ALLOW))
        if body:
            headers.add("Content-Type", "application/sdp")
            response.body = body
        if call.a_dialog is None and 100 < status < 300:
            call.a_dialog = Dialog.uas(call.a_request, response, transport=call.a_transport)
        elif call.a_dialog is not None:
            call.a_dialog.send_response(call.a_request, response)
        self.port.respond(call.a_key, response)

    def _setup_seen(self, call: Call) -> None:
        if not call.setup_seen:
            call.setup_seen = True
            if self.on_setup is not None:
                self.on_setup(max(0.0, self.clock() - call.started))

    # -- ending --------------------------------------------------------------------------------

    def _fail(self, call: Call, status: int, cause: str | None) -> None:
        """End a call in setup with `status` to A (and cancel what still rings)."""
        for leg in call.legs:
            self.cancel_leg(leg)
        if call.phase is CallPhase.SETUP:
            self.port.respond(call.a_key, self.reply(call.a_request, status, to_tag=call.a_tag))
        disposition = disposition_of(status)
        self.end(call, disposition, cause or str(status))

    def on_cancel(self, request: Request, key: TransactionKey, related: TransactionKey | None) -> None:
        """CANCEL from A (§9.2): 200 to it; if the INVITE is still pending, 487 to it and
        every fork cancelled. A CANCEL matching nothing gets 481."""
        call = None if related is None else self.calls.get(related)
        if call is None:
            # §9.2: 200 when the INVITE transaction exists (it was answered already), else 481
            self.port.respond(key, self.reply(request, 481 if related is None else 200))
            return
        self.port.respond(key, self.reply(request, 200, to_tag=call.a_tag))
        if call.phase is CallPhase.SETUP:
            for leg in call.legs:
                self.cancel_leg(leg, reason=None)
            self.port.respond(call.a_key, self.reply(call.a_request, 487, to_tag=call.a_tag))
            self.end(call, "cancelled", "caller cancelled")

    def on_ack(self, request: Request) -> None:
        """ACK for a 2xx (ours to A, §13.3.1.4): the layer stops retransmitting; a 2xx
        to a relayed re-INVITE needs nothing more."""
        return

    def on_timeout(self, key: TransactionKey, timer: Timer) -> None:
        """A server transaction's timeout: no ACK for our 2xx to A (§13.3.1.4) ends the call."""
        call = self.calls.get(key)
        if call is not None and timer is Timer.ACK_WAIT and call.phase is CallPhase.ANSWERED:
            self.hangup(call, "no ACK from caller")

    def on_timer(self) -> None:
        """No-answer timeouts of ringing calls (call every ~0.5 s)."""
        now = self.clock()
        for call in [c for c in self.calls.values() if c.phase is CallPhase.SETUP and c.no_answer_at <= now]:
            self._fail(call, self.config.no_answer_status, "no answer")
        for call in [c for c in self.calls.values() if c.transfer is not None and c.transfer.deadline <= now]:
            self.transfers.give_up(call, self.config.no_answer_status)

    def hangup(self, call: Call, cause: str, *, skip: str | None = None) -> None:
        """End an answered call from our side: BYE to both (or all but `skip`)."""
        if call.phase is CallPhase.SETUP:
            self._fail(call, 480 if cause != "media timeout" else 408, cause)
            return
        for side in call.parties:
            if side == skip:
                continue
            party = call.parties.get(side)
            if party is not None:
                self.bye(party.dialog, party.dest, party.transport)
        self.end(call, "answered", cause)

    def retire(self, call_id: str, tag: str) -> None:
        """Remember a dialog a transfer ended, so a late BYE in it still gets 200."""
        self.retired[call_id, tag] = None
        while len(self.retired) > RETIRED_MAX:
            del self.retired[next(iter(self.retired))]

    def shutdown(self) -> None:
        """The node stops: every call ends (BYE when answered, 503 while ringing)."""
        for call in list(self.calls.values()):
            if call.phase is CallPhase.SETUP:
                self._fail(call, 503, "shutdown")
            else:
                self.hangup(call, "shutdown")

    def media_timeout(self, media_id: str) -> None:
        call = self.by_media.get(media_id)
        if call is not None:
            self.hangup(call, "media timeout")

    def end(self, call: Call, disposition: str, cause: str) -> None:
        """Forget the call, release its media and limits, emit its CDR."""
        if call.phase is CallPhase.ENDED:
            return
        if call.phase is CallPhase.SETUP:
            self.in_setup -= 1
        call.phase = CallPhase.ENDED
        self.calls.pop(call.a_key, None)
        self.by_dialog.pop((call.a_request.call_id, call.a_tag), None)
        self.by_dialog.pop((call.b_call_id, call.b_tag), None)
        for party in call.parties.values():
            self.by_dialog.pop((party.dialog.call_id, party.local_tag), None)
        self.by_media.pop(call.media_id, None)
        self.stats.active = len(self.calls)
        number = call.route.number
        if number is not None:
            decrement(self.per_number, number.e164)
        if call.caller is not None:
            decrement(self.per_account, call.caller)
        self.media.delete(call.media_id)
        self.stats.count(call.direction, disposition)
        for relay in call.relays:
            self.port.respond(relay.key, self.reply(relay.request, 481))
        call.relays.clear()
        if self.on_cdr is not None:
            self.on_cdr(call.cdr(disposition=disposition, cause=cause, now=self.clock()))

    def note_lag(self, lag_s: float) -> None:
        """A sample of how late SIP input is read (vpbx.io.sip_transport probe_queue)."""
        self.stats.input_lag_s = lag_s
        self.admission.note_lag(lag_s, self.clock())

    def on_in_dialog(self, request: Request, key: TransactionKey) -> None:
        self.dialogs.on_request(request, key)
