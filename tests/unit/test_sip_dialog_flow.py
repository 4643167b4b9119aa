"""A whole call between two sans-IO UAs, transactions and dialogs together, over a fake
wire and a fake clock (after RFC 3665 §3.1: INVITE, 180, 200, ACK, BYE, 200), with a
lost ACK to show the end-to-end 2xx/ACK retransmission (§13.2.2.4, §13.3.1.4)."""

from __future__ import annotations

from vpbx.sip import Headers, Request, Response, build_response, parse_message
from vpbx.sip.dialog import Dialog, DialogSet, DialogState
from vpbx.sip.ids import new_branch, new_call_id, new_tag, seed_ids
from vpbx.sip.transaction import Action, Deliver, Send, TransactionKey, TransactionLayer

ALICE = ("192.0.2.101", 5060)
BOB = ("192.0.2.4", 5060)
ALICE_VIA = "SIP/2.0/UDP client.atlanta.example.com:5060"
BOB_VIA = "SIP/2.0/UDP client.biloxi.example.com:5060"


def wire(actions: list[Action], to: TransactionLayer, source: tuple[str, int], now: float) -> list[Action]:
    """Carry every Send to the other side (as bytes, parsed again); keep the rest."""
    out: list[Action] = []
    for action in actions:
        if isinstance(action, Send):
            out += to.receive(parse_message(action.data), source, action.transport, now)
        else:
            out.append(action)
    return out


def delivered(actions: list[Action]) -> list[Deliver]:
    return [a for a in actions if isinstance(a, Deliver)]


def test_basic_call_with_a_lost_ack() -> None:
    seed_ids(3665)
    try:
        _call()
    finally:
        seed_ids(None)


def _call() -> None:
    a_layer, b_layer = TransactionLayer(), TransactionLayer()
    a_dialogs, b_dialogs = DialogSet(), DialogSet()

    # Alice: INVITE (§8.1.1)
    invite = Request(
        "INVITE",
        "sip:bob@biloxi.example.com",
        Headers(
            [
                ("Via", f"{ALICE_VIA};branch={new_branch()}"),
                ("Max-Forwards", "70"),
                ("To", "Bob <sip:bob@biloxi.example.com>"),
                ("From", f"Alice <sip:alice@atlanta.example.com>;tag={new_tag()}"),
                ("Call-ID", new_call_id("atlanta.example.com")),
                ("CSeq", "1 INVITE"),
                ("Contact", "<sip:alice@client.atlanta.example.com>"),
            ]
        ),
    )
    a_key, out = a_layer.send_request(invite, BOB, "UDP", 0.0)
    (at_bob,) = delivered(wire(out, b_layer, ALICE, 0.01))
    b_key = at_bob.key
    assert b_key is not None and isinstance(at_bob.message, Request)
    b_invite = at_bob.message

    # Bob: 180 with a tag creates his early dialog (§12.1.1); Alice's too (§12.1.2).
    bob_tag = new_tag()
    ringing = build_response(b_invite, 180, to_tag=bob_tag)
    ringing.headers.add("Contact", "<sip:bob@client.biloxi.example.com>")
    b_dialog = b_dialogs.add(Dialog.uas(b_invite, ringing))
    (at_alice,) = delivered(wire(b_layer.respond(b_key, ringing, 0.1), a_layer, BOB, 0.11))
    assert at_alice.key == a_key and isinstance(at_alice.message, Response)
    a_dialog = a_dialogs.uac_response(invite, at_alice.message)
    assert a_dialog is not None and a_dialog.state is DialogState.EARLY
    assert a_dialog.id == (b_dialog.call_id, b_dialog.remote_tag, b_dialog.local_tag)

    # Bob answers; the 2xx is retransmitted by his UA core until the ACK (§13.3.1.4).
    ok = build_response(b_invite, 200, to_tag=bob_tag)
    ok.headers.add("Contact", "<sip:bob@client.biloxi.example.com>")
    assert b_dialog.send_response(b_invite, ok) is DialogState.CONFIRMED
    (at_alice,) = delivered(wire(b_layer.respond(b_key, ok, 2.0), a_layer, BOB, 2.01))
    assert isinstance(at_alice.message, Response)
    assert a_dialogs.uac_response(invite, at_alice.message) is a_dialog
    assert a_dialog.state is DialogState.CONFIRMED

    # Alice's ACK (§13.2.2.4) is lost on the way.
    ack = a_dialog.create_ack(via=ALICE_VIA)
    a_layer.send_stateless(ack, BOB, "UDP")

    # Bob's UA core retransmits the 200 at T1; it matches Alice's Accepted transaction,
    # which passes it up (RFC 6026 §7.2); her core sends the same ACK again.
    again = wire(b_layer.on_timer(2.5), a_layer, BOB, 2.51)
    (retransmitted,) = delivered(again)
    assert retransmitted.key == a_key and isinstance(retransmitted.message, Response)
    assert retransmitted.message.status == 200 and a_dialog.last_ack is not None
    acked = wire(a_layer.send_stateless(a_dialog.last_ack, BOB, "UDP"), b_layer, ALICE, 2.6)
    (ack_at_bob,) = delivered(acked)
    assert ack_at_bob.key is None and ack_at_bob.related == b_key  # end to end, not the transaction's
    assert isinstance(ack_at_bob.message, Request)
    assert b_dialogs.for_request(ack_at_bob.message) is b_dialog
    assert b_dialog.receive_request(ack_at_bob.message) is None
    assert not [a for a in b_layer.on_timer(5.0) if isinstance(a, Send)]  # retransmissions stopped

    # Bob hangs up (§15.1.1); Alice answers 200 (§15.1.2).
    bye = b_dialog.create_request("BYE", via=BOB_VIA)
    assert b_dialog.state is DialogState.TERMINATED
    _bye_key, out = b_layer.send_request(bye, ALICE, "UDP", 10.0)
    (bye_at_alice,) = delivered(wire(out, a_layer, BOB, 10.01))
    assert isinstance(bye_at_alice.message, Request) and bye_at_alice.key is not None
    assert a_dialogs.for_request(bye_at_alice.message) is a_dialog
    assert a_dialog.receive_request(bye_at_alice.message) is None
    assert a_dialog.state is DialogState.TERMINATED
    bye_ok = build_response(bye_at_alice.message, 200)
    (done,) = delivered(wire(a_layer.respond(bye_at_alice.key, bye_ok, 10.1), b_layer, ALICE, 10.11))
    assert isinstance(done.message, Response) and done.message.status == 200
    assert str(done.message.cseq) == str(bye.cseq)

    # Later, every transaction on both sides has ended by itself.
    for layer in (a_layer, b_layer):
        ends: list[TransactionKey] = []
        while (deadline := layer.next_deadline()) is not None:
            ends += [a.key for a in layer.on_timer(deadline) if not isinstance(a, Send | Deliver)]
        assert len(layer) == 0, ends
