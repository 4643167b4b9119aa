"""Requests inside a B2BUA call's dialogs (RFC 3261 §12.2.2, §14, §15; RFC 3311 UPDATE;
RFC 6086 INFO), from either side.

- BYE: 200 to it, BYE to the other side, the call ends (§15.1.2).
- re-INVITE / UPDATE (hold and resume are an offer with a=sendonly/inactive, RFC 3264 §8.4):
  the SDP is offered to the media engine by the side that sent it, the request goes on
  in the other side's dialog, the other side's answer comes back through the engine. A
  2xx to our re-INVITE is ACKed at once (§13.2.2.4); the sender's ACK to our 2xx ends
  there. While one is pending, another INVITE gets 491 (§14.2).
- INFO: relayed with its body; OPTIONS: answered 200 here (§11.2); REFER: a blind
  transfer (transfer.py); anything else 405.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from vpbx.sip.dialog import DialogError
from vpbx.sip.errors import SipParseError
from vpbx.sip.message import Request, Response
from vpbx.sip.transaction_actions import Deliver, Timeout, TransportError
from vpbx.sip.transaction_match import TransactionKey

from .media import MediaError
from .model import ALLOW, Call, CallPhase, Relay, Side

if TYPE_CHECKING:
    from .b2bua import B2bua

__all__ = ["InDialog"]

RELAYED: Final = frozenset({"INVITE", "UPDATE", "INFO"})
_OFFERS: Final = frozenset({"INVITE", "UPDATE"})


def other(side: Side) -> Side:
    return "b" if side == "a" else "a"


class InDialog:
    """The in-dialog half of the B2BUA (it shares the B2BUA's tables)."""

    def __init__(self, b2bua: B2bua) -> None:
        self.b = b2bua

    def find(self, request: Request) -> tuple[Call, Side] | None:
        """The call and side a request belongs to: our tag is its To tag (§12.2.2)."""
        tag = request.to.tag or ""
        call = self.b.by_dialog.get((request.call_id, tag))
        if call is None:
            return None
        for side, party in call.parties.items():
            if party.dialog.call_id == request.call_id and party.local_tag == tag:
                return call, side
        return call, ("a" if request.call_id == call.a_request.call_id and tag == call.a_tag else "b")

    def on_request(self, request: Request, key: TransactionKey) -> None:
        b = self.b
        found = self.find(request)
        if found is None:
            retired = (request.call_id, request.to.tag or "")
            if request.method == "BYE" and retired in b.retired:  # a transferor hanging up after us
                del b.retired[retired]
                b.port.respond(key, b.reply(request, 200))
                return
            b.port.respond(key, b.reply(request, 481))  # §12.2.2: no such dialog
            return
        call, side = found
        method = request.method
        dialog = call.dialog(side)
        if dialog is not None:
            try:
                refused = dialog.receive_request(request)
            except SipParseError as err:
                b.port.respond(key, b.reply(request, err.status))
                return
            if refused is not None:
                b.port.respond(key, b.reply(request, refused))
                return
        if method == "BYE":
            self._bye(call, side, request, key)
        elif method == "OPTIONS":
            response = b.reply(request, 200)
            response.headers.add("Allow", ", ".join(ALLOW))
            b.port.respond(key, response)
        elif method in RELAYED:
            self._relay(call, side, request, key)
        elif method == "REFER":
            b.transfers.on_refer(call, side, request, key)
        else:
            response = b.reply(request, 405)
            response.headers.add("Allow", ", ".join(ALLOW))  # §21.4.6
            b.port.respond(key, response)

    def _bye(self, call: Call, side: Side, request: Request, key: TransactionKey) -> None:
        b = self.b
        b.port.respond(key, b.reply(request, 200))
        if call.phase is CallPhase.SETUP:
            # A BYE before the 2xx (an early dialog, §15): like a CANCEL from that side.
            for leg in call.legs:
                b.cancel_leg(leg)
            b.port.respond(call.a_key, b.reply(call.a_request, 487, to_tag=call.a_tag))
            b.end(call, "cancelled", "BYE before answer")
            return
        b.hangup(call, "caller hung up" if side == "a" else "callee hung up", skip=side)

    def _relay(self, call: Call, side: Side, request: Request, key: TransactionKey) -> None:
        b = self.b
        method = request.method
        target = other(side)
        dialog = call.dialog(target)
        if call.phase is not CallPhase.ANSWERED or dialog is None:
            b.port.respond(key, b.reply(request, 491 if method in _OFFERS else 481))
            return
        if method in _OFFERS and any(r.request.method in _OFFERS for r in call.relays):
            b.port.respond(key, b.reply(request, 491))  # §14.2: an offer is pending
            return
        body = request.body
        content_type = request.headers.get("content-type")
        if method in _OFFERS and body:
            call.parties[side].sdp = body
            try:
                body = b.media.offer(call.media_id, self._tag(call, side), body)
            except MediaError:
                b.port.respond(key, b.reply(request, 488))
                return
            content_type = "application/sdp"
        extra = [("Content-Type", content_type)] if content_type and body else []
        dest, transport = call.dest(target)
        try:
            outgoing = dialog.create_request(method, via=b.via(transport), headers=extra, body=body)
        except DialogError:
            b.port.respond(key, b.reply(request, 481))
            return
        relay = Relay(side, key, request)
        call.relays.append(relay)

        def on_response(event: Deliver | Timeout | TransportError) -> None:
            self._relayed_response(call, relay, outgoing, event)

        if b.port.request(outgoing, dest, transport, on_response) is None:
            call.relays.remove(relay)
            b.port.respond(key, b.reply(request, 503))

    def _relayed_response(
        self, call: Call, relay: Relay, outgoing: Request, event: Deliver | Timeout | TransportError
    ) -> None:
        b = self.b
        if relay not in call.relays:
            if isinstance(event, Deliver) and isinstance(event.message, Response):
                self._ack_2xx(call, relay, outgoing, event.message)  # a retransmitted 2xx
            return
        if not isinstance(event, Deliver):
            call.relays.remove(relay)
            b.port.respond(relay.key, b.reply(relay.request, 408))
            return
        response = event.message
        if not isinstance(response, Response) or response.status < 200:
            return
        call.relays.remove(relay)
        status = response.status
        target = other(relay.side)
        dialog = call.dialog(target)
        if dialog is not None:
            dialog.receive_response(response)
        self._ack_2xx(call, relay, outgoing, response)
        body = response.body
        method = relay.request.method
        if 200 <= status < 300 and method in _OFFERS and body:
            call.parties[target].sdp = body
            try:
                body = b.media.answer(
                    call.media_id, self._tag(call, relay.side), self._tag(call, target), body
                )
            except MediaError:
                body = b""
        answer = b.reply(relay.request, status, to_tag=self._tag(call, relay.side, ours=True))
        if 200 <= status < 300 and method in _OFFERS:
            answer.headers.add("Contact", b.contact(call.dest(relay.side)[1]))
        if body:
            answer.headers.add("Content-Type", response.headers.get("content-type") or "application/sdp")
            answer.body = body
        b.port.respond(relay.key, answer)
        if status in (408, 481):
            b.hangup(call, f"{status} to in-dialog {method}")

    def _ack_2xx(self, call: Call, relay: Relay, outgoing: Request, response: Response) -> None:
        """The ACK for a 2xx to a re-INVITE we sent (§13.2.2.4)."""
        if outgoing.method != "INVITE" or not 200 <= response.status < 300:
            return
        target = other(relay.side)
        dialog = call.dialog(target)
        if dialog is None:
            return
        dest, transport = call.dest(target)
        ack = dialog.create_ack(outgoing.cseq.seq, via=self.b.via(transport))
        self.b.port.stateless(ack, dest, transport)

    @staticmethod
    def _tag(call: Call, side: Side, *, ours: bool = False) -> str:
        """The media party tag of `side` (its NG tag), or with `ours` the tag we use in
        that side's dialog."""
        party = call.parties[side]
        return party.local_tag if ours else party.media_tag
