"""Dialogs (RFC 3261 §12, §13.2.2.4, §15) with messages modelled after RFC 3665 §3.2
(session establishment through two proxies that Record-Route), and the identifiers of
ids.py."""

from __future__ import annotations

import pytest

from vpbx.sip import Request, Response, SipUri, parse_message
from vpbx.sip.dialog import (
    DIALOG_TABLE,
    Dialog,
    DialogError,
    DialogEvent,
    DialogId,
    DialogSet,
    DialogState,
    Role,
    next_hop,
)
from vpbx.sip.ids import IdGenerator, new_branch, new_call_id, new_tag, seed_ids

CALL_ID = "3848276298220188511@atlanta.example.com"
ALICE_TAG, BOB_TAG = "9fxced76sl", "314159"

# F1: Alice's INVITE as she sends it to her proxy ss1.atlanta.
F1 = f"""INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9
Max-Forwards: 70
From: Alice <sip:alice@atlanta.example.com>;tag={ALICE_TAG}
To: Bob <sip:bob@biloxi.example.com>
Call-ID: {CALL_ID}
CSeq: 1 INVITE
Contact: <sip:alice@client.atlanta.example.com;transport=tcp>
Content-Length: 0

"""

# F3: the same INVITE as Bob receives it, through ss1.atlanta and ss2.biloxi.
F3 = f"""INVITE sip:bob@client.biloxi.example.com SIP/2.0
Via: SIP/2.0/TCP ss2.biloxi.example.com:5060;branch=z9hG4bK721e4.1
Via: SIP/2.0/TCP ss1.atlanta.example.com:5060;branch=z9hG4bK2d4790.1;received=192.0.2.111
Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101
Max-Forwards: 68
Record-Route: <sip:ss2.biloxi.example.com;lr>, <sip:ss1.atlanta.example.com;lr>
From: Alice <sip:alice@atlanta.example.com>;tag={ALICE_TAG}
To: Bob <sip:bob@biloxi.example.com>
Call-ID: {CALL_ID}
CSeq: 1 INVITE
Contact: <sip:alice@client.atlanta.example.com;transport=tcp>
Content-Length: 0

"""


def response_at_alice(code: int, tag: str = BOB_TAG, record_route: str | None = None) -> Response:
    """F6/F9: Bob's 180 / 200 as Alice receives them."""
    rr = record_route or "<sip:ss2.biloxi.example.com;lr>, <sip:ss1.atlanta.example.com;lr>"
    reason = {180: "Ringing", 200: "OK", 486: "Busy Here", 481: "x", 408: "x"}.get(code, "x")
    return parse(
        f"""SIP/2.0 {code} {reason}
Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101
Record-Route: {rr}
From: Alice <sip:alice@atlanta.example.com>;tag={ALICE_TAG}
To: Bob <sip:bob@biloxi.example.com>;tag={tag}
Call-ID: {CALL_ID}
CSeq: 1 INVITE
Contact: <sip:bob@client.biloxi.example.com;transport=tcp>
Content-Length: 0

"""
    )  # type: ignore[return-value]


def bob_answer(code: int) -> Response:
    """The 180 / 200 Bob sends for F3 (his To tag and Contact)."""
    return parse(
        f"""SIP/2.0 {code} {"Ringing" if code == 180 else "OK"}
Via: SIP/2.0/TCP ss2.biloxi.example.com:5060;branch=z9hG4bK721e4.1
Record-Route: <sip:ss2.biloxi.example.com;lr>, <sip:ss1.atlanta.example.com;lr>
From: Alice <sip:alice@atlanta.example.com>;tag={ALICE_TAG}
To: Bob <sip:bob@biloxi.example.com>;tag={BOB_TAG}
Call-ID: {CALL_ID}
CSeq: 1 INVITE
Contact: <sip:bob@client.biloxi.example.com;transport=tcp>
Content-Length: 0

"""
    )  # type: ignore[return-value]


def parse(text: str) -> Request | Response:
    return parse_message(text.replace("\n", "\r\n").encode())


def in_dialog_to_bob(method: str, cseq: int, contact: str | None = None) -> Request:
    """A request from Alice as Bob receives it."""
    contact_line = f"Contact: {contact}\n" if contact else ""
    return parse(
        f"""{method} sip:bob@client.biloxi.example.com;transport=tcp SIP/2.0
Via: SIP/2.0/TCP ss2.biloxi.example.com:5060;branch=z9hG4bK{method}{cseq}
Max-Forwards: 69
From: Alice <sip:alice@atlanta.example.com>;tag={ALICE_TAG}
To: Bob <sip:bob@biloxi.example.com>;tag={BOB_TAG}
Call-ID: {CALL_ID}
CSeq: {cseq} {method}
{contact_line}Content-Length: 0

"""
    )  # type: ignore[return-value]


def alice_dialog(code: int = 200) -> Dialog:
    return Dialog.uac(parse(F1), response_at_alice(code), transport="TCP")  # type: ignore[arg-type]


def bob_dialog(code: int = 200) -> Dialog:
    return Dialog.uas(parse(F3), bob_answer(code), transport="TCP")  # type: ignore[arg-type]


# -- creation (§12.1) -------------------------------------------------------------------------


def test_uac_dialog_from_2xx() -> None:
    d = alice_dialog()
    assert d.role is Role.UAC and d.state is DialogState.CONFIRMED
    assert d.id == DialogId(CALL_ID, ALICE_TAG, BOB_TAG)
    # §12.1.2: route set = Record-Route in reverse order; remote target = Contact.
    assert [str(r.uri) for r in d.route_set] == [
        "sip:ss1.atlanta.example.com;lr",
        "sip:ss2.biloxi.example.com;lr",
    ]
    assert str(d.remote_target) == "sip:bob@client.biloxi.example.com;transport=tcp"
    assert d.local_seq == 1 and d.remote_seq is None and d.invite_seq == 1
    assert str(d.local) == f'"Alice" <sip:alice@atlanta.example.com>;tag={ALICE_TAG}'
    assert str(d.remote) == f'"Bob" <sip:bob@biloxi.example.com>;tag={BOB_TAG}'
    assert not d.secure


def test_uac_early_dialog_confirmed_by_2xx_recomputes_the_route_set() -> None:
    d = Dialog.uac(parse(F1), response_at_alice(180, record_route="<sip:old.example.com;lr>"))  # type: ignore[arg-type]
    assert d.state is DialogState.EARLY and [str(r.uri) for r in d.route_set] == ["sip:old.example.com;lr"]
    assert d.receive_response(response_at_alice(180)) is DialogState.EARLY
    assert d.receive_response(response_at_alice(200)) is DialogState.CONFIRMED
    assert [str(r.uri.host) for r in d.route_set] == ["ss1.atlanta.example.com", "ss2.biloxi.example.com"]  # type: ignore[union-attr]


def test_uas_dialog_from_its_own_response() -> None:
    d = bob_dialog(180)
    assert d.role is Role.UAS and d.state is DialogState.EARLY
    assert d.id == DialogId(CALL_ID, BOB_TAG, ALICE_TAG)
    # §12.1.1: route set = Record-Route in order; remote target = the request's Contact.
    assert [str(r.uri.host) for r in d.route_set] == ["ss2.biloxi.example.com", "ss1.atlanta.example.com"]  # type: ignore[union-attr]
    assert str(d.remote_target) == "sip:alice@client.atlanta.example.com;transport=tcp"
    assert d.remote_seq == 1 and d.local_seq is None
    assert d.send_response(parse(F3), bob_answer(200)) is DialogState.CONFIRMED  # type: ignore[arg-type]


def test_sips_over_tls_sets_the_secure_flag() -> None:
    invite = parse(F1.replace("INVITE sip:bob", "INVITE sips:bob"))
    assert Dialog.uac(invite, response_at_alice(200), transport="TLS").secure  # type: ignore[arg-type]
    assert not Dialog.uac(invite, response_at_alice(200), transport="TCP").secure  # type: ignore[arg-type]


def test_what_cannot_create_a_dialog() -> None:
    invite = parse(F1)
    with pytest.raises(DialogError):
        Dialog.uac(invite, response_at_alice(486))  # type: ignore[arg-type]
    tagless = parse(
        f"SIP/2.0 180 Ringing\nVia: SIP/2.0/TCP client.atlanta.example.com;branch=z9hG4bK74bf9\n"
        f"From: <sip:alice@atlanta.example.com>;tag={ALICE_TAG}\nTo: <sip:bob@biloxi.example.com>\n"
        f"Call-ID: {CALL_ID}\nCSeq: 1 INVITE\nContent-Length: 0\n\n"
    )
    with pytest.raises(DialogError):
        Dialog.uac(invite, tagless)  # type: ignore[arg-type]
    no_contact = parse(F3.replace("Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\n", ""))
    with pytest.raises(DialogError):
        Dialog.uas(no_contact, bob_answer(200))  # type: ignore[arg-type]


# -- requests inside the dialog (§12.2.1.1) -------------------------------------------------------


def test_bye_from_the_uac_loose_routing() -> None:
    d = alice_dialog()
    bye = d.create_request("BYE", via="SIP/2.0/TCP client.atlanta.example.com:5060")
    # Request-URI = remote target; Route = the route set (first has lr).
    assert str(bye.uri) == "sip:bob@client.biloxi.example.com;transport=tcp"
    assert [str(r) for r in bye.route] == [
        "<sip:ss1.atlanta.example.com;lr>",
        "<sip:ss2.biloxi.example.com;lr>",
    ]
    assert str(next_hop(bye)) == "sip:ss1.atlanta.example.com;lr"
    assert str(bye.cseq) == "2 BYE" and bye.call_id == CALL_ID
    assert bye.from_.tag == ALICE_TAG and bye.to.tag == BOB_TAG
    assert bye.via[0].branch is not None and bye.via[0].branch.startswith("z9hG4bK")
    assert bye.via[0].branch != "z9hG4bK74bf9"
    assert "contact" not in bye.headers  # BYE is no target refresh
    assert bye.max_forwards == 70
    assert d.state is DialogState.TERMINATED  # §15.1.1
    with pytest.raises(DialogError):
        d.create_request("INFO")
    assert parse_message(bye.to_bytes()) == bye  # what goes on the wire parses back the same


def test_bye_from_the_uas_starts_its_own_cseq() -> None:
    seed_ids(3)
    try:
        d = bob_dialog()
        bye = d.create_request("BYE")
    finally:
        seed_ids(None)
    assert str(bye.uri) == "sip:alice@client.atlanta.example.com;transport=tcp"
    assert [str(r.uri.host) for r in bye.route] == ["ss2.biloxi.example.com", "ss1.atlanta.example.com"]  # type: ignore[union-attr]
    assert bye.from_.tag == BOB_TAG and bye.to.tag == ALICE_TAG
    assert 0 < bye.cseq.seq < 2**31 and d.local_seq == bye.cseq.seq  # §12.2.1.1, §8.1.1.5
    assert "via" not in bye.headers  # no via given: the transport adds it


def test_strict_routing_fallback() -> None:
    d = alice_dialog()
    routes = "Route: <sip:p1.example.com;method=INVITE?Subject=x>, <sip:p2.example.com;lr>\n"
    d.route_set = parse(F1.replace("Max-Forwards", routes + "Max-Forwards")).route
    info = d.create_request("INFO")
    # §12.2.1.1: first route (no lr) becomes the Request-URI without method/headers;
    # the rest of the route set follows, and the remote target is the last Route.
    assert str(info.uri) == "sip:p1.example.com"
    assert [str(r.uri) for r in info.route] == [
        "sip:p2.example.com;lr",
        "sip:bob@client.biloxi.example.com;transport=tcp",
    ]
    assert str(next_hop(info)) == "sip:p2.example.com;lr"


def test_no_route_set_and_target_refresh_contact() -> None:
    d = alice_dialog()
    d.route_set = ()
    reinvite = d.create_request("INVITE", headers=[("Content-Type", "application/sdp")], body=b"v=0\r\n")
    assert str(reinvite.uri) == str(d.remote_target) and reinvite.route == ()
    assert [str(c.uri) for c in reinvite.contacts] == ["sip:alice@client.atlanta.example.com;transport=tcp"]
    assert reinvite.body == b"v=0\r\n" and reinvite.headers.get("content-type") == "application/sdp"
    assert d.invite_seq == 2 == reinvite.cseq.seq
    for method in ("UPDATE", "SUBSCRIBE", "NOTIFY"):
        assert d.create_request(method).contacts
    with pytest.raises(DialogError):
        d.create_request("ACK")
    with pytest.raises(DialogError):
        d.create_request("CANCEL")


def test_ack_for_2xx_is_built_end_to_end_with_the_invite_cseq() -> None:
    d = alice_dialog()
    ack = d.create_ack(via="SIP/2.0/TCP client.atlanta.example.com:5060")
    # §13.2.2.4: like a request in the dialog, but CSeq number of the INVITE, method ACK.
    assert ack.method == "ACK" and str(ack.cseq) == "1 ACK"
    assert str(ack.uri) == "sip:bob@client.biloxi.example.com;transport=tcp"
    assert [str(r.uri.host) for r in ack.route] == ["ss1.atlanta.example.com", "ss2.biloxi.example.com"]  # type: ignore[union-attr]
    assert ack.via[0].branch != "z9hG4bK74bf9"  # its own branch, not the INVITE's
    assert d.last_ack is ack and d.local_seq == 1  # an ACK does not take a CSeq number
    d.create_request("INVITE")
    assert str(d.create_ack().cseq) == "2 ACK"
    assert str(d.create_ack(1).cseq) == "1 ACK"
    fresh = Dialog.uac(
        parse(F1.replace("1 INVITE", "1 SUBSCRIBE").replace("INVITE sip", "SUBSCRIBE sip")),
        response_at_alice(200),
    )  # type: ignore[arg-type]
    with pytest.raises(DialogError):
        fresh.create_ack()


# -- requests received (§12.2.2) ----------------------------------------------------------------


def test_cseq_checks() -> None:
    d = bob_dialog()
    assert d.receive_request(in_dialog_to_bob("INFO", 5)) is None and d.remote_seq == 5
    assert d.receive_request(in_dialog_to_bob("INFO", 4)) == 500  # lower: out of order
    assert d.remote_seq == 5
    assert d.receive_request(in_dialog_to_bob("INFO", 5)) is None  # not lower
    assert d.receive_request(in_dialog_to_bob("ACK", 1)) is None  # ACK keeps its INVITE's number
    assert d.receive_request(in_dialog_to_bob("CANCEL", 1)) is None
    assert d.remote_seq == 5


def test_target_refresh_on_reinvite_and_update() -> None:
    d = bob_dialog()
    d.receive_request(in_dialog_to_bob("INVITE", 2, "<sip:alice@198.51.100.20:5070>"))
    assert str(d.remote_target) == "sip:alice@198.51.100.20:5070"
    d.receive_request(in_dialog_to_bob("UPDATE", 3, "<sip:alice@198.51.100.21>"))
    assert str(d.remote_target) == "sip:alice@198.51.100.21"
    d.receive_request(in_dialog_to_bob("OPTIONS", 4, "<sip:alice@198.51.100.99>"))
    assert str(d.remote_target) == "sip:alice@198.51.100.21"  # not a target refresh request
    d.receive_request(in_dialog_to_bob("INVITE", 5))  # no Contact: target kept
    assert str(d.remote_target) == "sip:alice@198.51.100.21"


def test_uac_target_refresh_from_2xx_to_reinvite() -> None:
    d = alice_dialog()
    d.create_request("INVITE")
    ok = response_at_alice(200)
    ok.headers.set("CSeq", "2 INVITE")
    ok.headers.set("Contact", "<sip:bob@203.0.113.50>")
    assert d.receive_response(ok) is DialogState.CONFIRMED
    assert str(d.remote_target) == "sip:bob@203.0.113.50"


def test_bye_received_ends_the_dialog() -> None:
    d = bob_dialog()
    assert d.receive_request(in_dialog_to_bob("BYE", 2)) is None
    assert d.state is DialogState.TERMINATED


def test_481_and_408_end_the_dialog_but_other_failures_do_not() -> None:
    for code, state in (
        (486, DialogState.CONFIRMED),
        (404, DialogState.CONFIRMED),
        (481, DialogState.TERMINATED),
        (408, DialogState.TERMINATED),
    ):
        d = alice_dialog()
        d.create_request("INVITE" if code == 486 else "INFO")
        failed = response_at_alice(code)
        failed.headers.set("CSeq", f"2 {'INVITE' if code == 486 else 'INFO'}")
        assert d.receive_response(failed) is state, code


def test_dialog_table_rows_cite_the_rfc() -> None:
    assert all("§" in row.ref for row in DIALOG_TABLE.values())
    d = alice_dialog(180)
    assert d.fire(DialogEvent.FAILURE) is DialogState.TERMINATED
    assert d.fire(DialogEvent.SUCCESS) is DialogState.TERMINATED  # nothing leaves Terminated


# -- DialogSet -------------------------------------------------------------------------------------


def test_dialog_set_lookup_from_both_sides() -> None:
    dialogs = DialogSet()
    bob = dialogs.add(bob_dialog())
    assert dialogs.for_request(in_dialog_to_bob("BYE", 2)) is bob
    assert bob.id in dialogs and len(dialogs) == 1 and list(dialogs) == [bob]
    with pytest.raises(DialogError):
        dialogs.add(bob_dialog())
    alice_side = DialogSet()
    alice = alice_side.add(alice_dialog())
    assert alice_side.for_response(response_at_alice(200)) is alice
    assert dialogs.remove(bob.id) is bob and dialogs.get(bob.id) is None


def test_forked_invite_early_dialogs_then_failure_ends_them() -> None:
    dialogs = DialogSet()
    invite = parse(F1)
    assert isinstance(invite, Request)
    one = dialogs.uac_response(invite, response_at_alice(180, tag="fork1"))
    two = dialogs.uac_response(invite, response_at_alice(180, tag="fork2"))
    assert one is not None and two is not None and one is not two
    assert len(dialogs.forks(CALL_ID, ALICE_TAG)) == 2
    assert dialogs.uac_response(invite, response_at_alice(180, tag="fork1")) is one
    busy = response_at_alice(486, tag="fork3")
    assert dialogs.uac_response(invite, busy) is None
    assert one.state is two.state is DialogState.TERMINATED and len(dialogs) == 0  # §12.3


def test_forked_invite_one_fork_answers() -> None:
    dialogs = DialogSet()
    invite = parse(F1)
    assert isinstance(invite, Request)
    early = dialogs.uac_response(invite, response_at_alice(180, tag="fork1"))
    answered = dialogs.uac_response(invite, response_at_alice(200, tag="fork2"))
    assert early is not None and answered is not None
    assert early.state is DialogState.EARLY and answered.state is DialogState.CONFIRMED
    assert dialogs.uac_response(invite, response_at_alice(200, tag="fork1")) is early
    assert early.state is DialogState.CONFIRMED
    trying = response_at_alice(100)
    trying.headers.set("To", "Bob <sip:bob@biloxi.example.com>")
    assert dialogs.uac_response(invite, trying) is None


def test_dialog_set_drops_dialogs_a_481_ends() -> None:
    dialogs = DialogSet()
    alice = dialogs.add(alice_dialog())
    info = alice.create_request("INFO")
    gone = response_at_alice(481)
    gone.headers.set("CSeq", str(info.cseq))
    assert dialogs.uac_response(info, gone) is alice and len(dialogs) == 0


# -- identifiers --------------------------------------------------------------------------------


def test_ids_are_well_formed_unique_and_seedable() -> None:
    branches = {new_branch() for _ in range(1000)}
    assert len(branches) == 1000 and all(b.startswith("z9hG4bK") for b in branches)
    assert len({new_tag() for _ in range(1000)}) == 1000
    assert new_call_id("pbx.example.com").endswith("@pbx.example.com") and "@" not in new_call_id()
    a, b = IdGenerator(42), IdGenerator(42)
    assert [a.branch(), a.tag(), a.call_id(), a.cseq()] == [b.branch(), b.tag(), b.call_id(), b.cseq()]
    seed_ids(9)
    first = new_branch()
    seed_ids(9)
    assert new_branch() == first
    seed_ids(None)
    assert 0 < IdGenerator().cseq() < 2**31


def test_request_uri_type_is_kept() -> None:
    d = alice_dialog()
    assert isinstance(d.create_request("OPTIONS").uri, SipUri)
