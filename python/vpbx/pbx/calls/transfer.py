"""Blind transfer in a B2BUA call (RFC 3515 REFER; RFC 3420 sipfrag; RFC 5589 §6 flow).

Either party may transfer the other: its REFER (in its dialog with us) is answered 202,
the transferor hears NOTIFYs with the progress as message/sipfrag (100 Trying at once,
then the final status, which also terminates the implicit subscription, RFC 3515 §2.4.5).
We dial the Refer-To target through the dialplan like any call (all contacts of an
extension in parallel), offering the transferee's last SDP through the media engine; the
first 2xx replaces the transferor in the call: the engine connects the transferee to the
new party (the transferee's own ports do not change, so it needs no re-INVITE), the
transferor gets NOTIFY 200 and a BYE. Failure or no answer within the ring time leaves
the call as it was, with a NOTIFY naming the failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from vpbx.sip.address import parse_address
from vpbx.sip.dialog import Dialog, DialogError
from vpbx.sip.errors import SipParseError
from vpbx.sip.ids import new_call_id, new_tag
from vpbx.sip.message import Request, Response
from vpbx.sip.status import reason_phrase
from vpbx.sip.transaction_actions import Deliver, Timeout, TransportError
from vpbx.sip.transaction_match import TransactionKey
from vpbx.sip.uri import SipUri

from .challenge import answer_challenge
from .media import MediaError
from .model import Call, CallPhase, Leg, Party, Side, Transfer, best_status, ignore
from .routing import Refused

if TYPE_CHECKING:
    from .b2bua import B2bua

__all__ = ["Transfers"]

SIPFRAG: Final = "message/sipfrag;version=2.0"
COMPLETED_ELSEWHERE: Final = 'SIP;cause=200;text="Call completed elsewhere"'  # RFC 3326


def _other(side: Side) -> Side:
    return "b" if side == "a" else "a"


class Transfers:
    """The transfer half of the B2BUA (it shares the B2BUA's tables)."""

    def __init__(self, b2bua: B2bua) -> None:
        self.b = b2bua

    def on_refer(self, call: Call, side: Side, request: Request, key: TransactionKey) -> None:
        b = self.b
        party = call.parties.get(side)
        if call.phase is not CallPhase.ANSWERED or party is None:
            b.port.respond(key, b.reply(request, 481))
            return
        if call.transfer is not None:
            b.port.respond(key, b.reply(request, 491))  # one transfer at a time
            return
        refer_to = request.headers.get("refer-to")
        try:
            uri = parse_address(refer_to).uri if refer_to is not None else None
        except SipParseError:
            uri = None
        user = uri.user if isinstance(uri, SipUri) else None
        if not user:
            b.port.respond(key, b.reply(request, 400))  # RFC 3515 §2.4.1: exactly one Refer-To
            return
        b.port.respond(key, b.reply(request, 202))  # §2.4.2
        self.notify(call, side, 100, final=False)
        now = b.clock()
        route = b.dialplan.route(user)
        # Only an extension's side may send a call out over a trunk (no toll fraud by a
        # provider or trusted peer REFERring us to a paid number).
        by_extension = call.caller is not None if side == "a" else call.route.kind == "extension"
        if isinstance(route, Refused) or (route is not None and route.kind == "trunk" and not by_extension):
            self.notify(call, side, route.status if isinstance(route, Refused) else 403, final=True)
            return
        targets = [] if route is None else b.targets(route, now)
        if route is None or not targets:
            self.notify(call, side, 404 if route is None else 480, final=True)
            return
        transferee = call.parties[_other(side)]
        try:
            offer = b.media.offer(call.media_id, transferee.media_tag, transferee.sdp)
        except MediaError:
            self.notify(call, side, 488, final=True)
            return
        transfer = Transfer(side, user, call_id=new_call_id(b.config.host), tag=new_tag())
        transfer.deadline = now + b.config.no_answer_s
        call.transfer = transfer
        # The new party sees the transferee as the caller.
        identity = call.from_user if _other(side) == "a" else call.route.target
        for target in targets:
            b.fork(
                call,
                target,
                offer,
                None,
                legs=transfer.legs,
                dialog_ids=(transfer.call_id, transfer.tag),
                parties=(identity, user),
                on_event=self._on_leg,
            )
        if not transfer.legs:
            call.transfer = None
            self.notify(call, side, 503, final=True)

    def notify(self, call: Call, side: Side, status: int, *, final: bool) -> None:
        """NOTIFY the transferor of the transfer's progress (RFC 3515 §2.4.4, §2.4.5)."""
        b = self.b
        party = call.parties.get(side)
        if party is None:
            return
        state = "terminated;reason=noresource" if final else "active;expires=60"
        headers = [("Event", "refer"), ("Subscription-State", state), ("Content-Type", SIPFRAG)]
        body = f"SIP/2.0 {status} {reason_phrase(status)}\r\n".encode()
        try:
            request = party.dialog.create_request(
                "NOTIFY", via=b.via(party.transport), headers=headers, body=body
            )
        except DialogError:
            return
        b.port.request(request, party.dest, party.transport, ignore)

    def give_up(self, call: Call, status: int) -> None:
        """Nobody answered in time: cancel what rings, tell the transferor."""
        transfer = call.transfer
        if transfer is None:
            return
        call.transfer = None
        for leg in transfer.legs:
            self.b.cancel_leg(leg)
        self.notify(call, transfer.side, status, final=True)

    # -- the new party's legs ----------------------------------------------------------------

    def _on_leg(self, call: Call, leg: Leg, event: Deliver | Timeout | TransportError) -> None:
        transfer = call.transfer
        if isinstance(event, Deliver):
            response = event.message
            if not isinstance(response, Response) or response.status < 200:
                return
            if response.status < 300:
                try:
                    self._answered(call, leg, response)
                except (SipParseError, DialogError):
                    return
                return
            failed = answer_challenge(self.b.port, leg, response) if response.status in (401, 407) else None
            if response.status in (401, 407) and failed is None:
                return  # sent again with credentials (a trunk's provider, §22.2)
            status = failed or response.status
        else:
            status = 408
        if leg.final:
            return
        leg.final, leg.status = True, status
        if transfer is None or leg not in transfer.legs or any(not x.final for x in transfer.legs):
            return
        call.transfer = None
        # nothing else to undo: the call goes on as before
        self.notify(call, transfer.side, best_status([x.status for x in transfer.legs]), final=True)

    def _answered(self, call: Call, leg: Leg, response: Response) -> None:
        b = self.b
        dialog = (
            leg.dialog
            if leg.dialog is not None
            else Dialog.uac(leg.request, response, transport=leg.transport)
        )
        leg.dialog = dialog
        ack = dialog.last_ack or dialog.create_ack(via=b.via(leg.transport))
        b.port.stateless(ack, leg.dest, leg.transport)  # §13.2.2.4, also for retransmitted 2xx
        transfer = call.transfer
        if transfer is None or leg not in transfer.legs or leg.final or call.phase is not CallPhase.ANSWERED:
            if not leg.final:  # too late (another fork won, the transfer or call ended)
                leg.final = True
                b.bye(dialog, leg.dest, leg.transport)
            return
        leg.final, leg.status = True, response.status
        side = transfer.side
        transferee = call.parties[_other(side)]
        try:
            b.media.answer(call.media_id, transferee.media_tag, dialog.remote_tag, response.body)
        except MediaError:
            b.bye(dialog, leg.dest, leg.transport)
            self.give_up(call, 488)
            return
        for other in transfer.legs:
            if other is not leg:
                b.cancel_leg(other, reason=COMPLETED_ELSEWHERE)
        call.transfer = None
        self.notify(call, side, 200, final=True)
        old = call.parties[side]
        b.bye(old.dialog, old.dest, old.transport)  # RFC 5589 §6.1 has the transferor do it too
        b.by_dialog.pop((old.dialog.call_id, old.local_tag), None)
        b.retire(old.dialog.call_id, old.local_tag)
        call.parties[side] = Party(
            dialog, leg.dest, leg.transport, dialog.remote_tag, transfer.tag, response.body
        )
        b.by_dialog[transfer.call_id, transfer.tag] = call
        call.transferred_to = transfer.target
