"""RFC 4475 torture messages (../shared/testdata/rfc4475, see its README.md).

Every valid message parses to the values RFC 4475 §3.1.1 discusses; every invalid one
raises SipParseError with a status expected.json accepts, or is classified "drop" when
no answer can be formed (stray responses, no Via). Application-layer messages (§3.3)
parse, except where the answer is the parser's to give (400 for missing or repeated
fields, 416 for an unsupported Request-URI scheme).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vpbx.sip import Request, Response, SipParseError, SipUri, parse_message, parse_uri

# The repository is cloned beside shared/; VPBX_SHARED may point elsewhere.
SHARED = Path(os.environ.get("VPBX_SHARED") or Path(__file__).resolve().parents[2] / ".." / "shared")
VECTORS = SHARED / "testdata" / "rfc4475"

pytestmark = pytest.mark.skipif(
    not VECTORS.is_dir(), reason=f"RFC 4475 vectors absent: {VECTORS} (shared/ is not beside the repo)"
)

# What this parser does with each file: "request"/"response" = parsed, a number = the
# SipParseError status it raises (answerable), "drop" = SipParseError nobody answers.
OUTCOME: dict[str, str | int] = {
    "wsinv.dat": "request",
    "intmeth.dat": "request",
    "esc01.dat": "request",
    "escnull.dat": "request",
    "esc02.dat": "request",
    "lwsdisp.dat": "request",
    "longreq.dat": "request",
    "dblreq.dat": "request",
    "semiuri.dat": "request",
    "transports.dat": "request",
    "mpart01.dat": "request",
    "unreason.dat": "response",
    "noreason.dat": "response",
    "badinv01.dat": 400,
    "clerr.dat": 400,
    "ncl.dat": 400,
    "scalar02.dat": 400,
    "scalarlg.dat": "drop",
    "quotbal.dat": 400,
    "ltgtruri.dat": 400,
    "lwsruri.dat": 400,
    "lwsstart.dat": 400,
    "trws.dat": 400,
    "escruri.dat": 400,
    "baddate.dat": 400,
    "regbadct.dat": 400,
    "badaspec.dat": 400,
    "baddn.dat": 400,
    "badvers.dat": 505,
    "mismatch01.dat": 400,
    "mismatch02.dat": 400,
    "bigcode.dat": "drop",
    "badbranch.dat": "request",
    "insuf.dat": 400,
    "unkscm.dat": 416,
    "novelsc.dat": 416,
    "unksm2.dat": "request",
    "bext01.dat": "request",
    "invut.dat": "request",
    "regaut01.dat": "request",
    "multi01.dat": 400,
    "mcl01.dat": 400,
    "bcast.dat": "response",
    "zeromf.dat": "request",
    "cparam01.dat": "request",
    "cparam02.dat": "request",
    "regescrt.dat": "request",
    "sdp01.dat": "request",
    "inv2543.dat": "request",
    "test.dat": "drop",
}
PARSED = sorted(name for name, outcome in OUTCOME.items() if outcome in ("request", "response"))
REFUSED = sorted(name for name, outcome in OUTCOME.items() if outcome not in ("request", "response"))


def load(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def parse(name: str) -> Request | Response:
    return parse_message(load(name))


def req(name: str) -> Request:
    msg = parse(name)
    assert isinstance(msg, Request)
    return msg


def outcome(data: bytes) -> str | int:
    try:
        msg = parse_message(data)
    except SipParseError as err:
        return "drop" if err.drop else err.status
    return "request" if isinstance(msg, Request) else "response"


def test_every_file_is_classified() -> None:
    expected = json.loads((VECTORS / "expected.json").read_text())
    assert sorted(expected) == sorted(OUTCOME)
    assert sorted(p.name for p in VECTORS.glob("*.dat")) == sorted(OUTCOME)


@pytest.mark.parametrize("name", sorted(OUTCOME))
def test_outcome(name: str) -> None:
    assert outcome(load(name)) == OUTCOME[name]


@pytest.mark.parametrize("name", sorted(OUTCOME))
def test_outcome_is_one_expected_json_accepts(name: str) -> None:
    acceptable = json.loads((VECTORS / "expected.json").read_text())[name]["acceptable"]
    got = outcome(load(name))
    if got == "request":
        # Parsed: the application answers (valid, or 401/405/406/415/420/483/501 ...),
        # never the parser's 400/416/505.
        assert "valid" in acceptable or any(a not in ("400", "416", "505", "none") for a in acceptable)
    elif got in ("response", "drop"):
        assert "none" in acceptable  # a response is dropped or absorbed, never answered
    else:
        assert str(got) in acceptable


@pytest.mark.parametrize("name", PARSED)
def test_parsed_messages_round_trip(name: str) -> None:
    msg = parse(name)
    wire = msg.to_bytes()
    again = parse_message(wire)
    assert again == msg
    assert again.to_bytes() == wire
    assert b"\r\n\r\n" in wire and b"\n" not in wire.split(b"\r\n\r\n")[0].replace(b"\r\n", b"")


@pytest.mark.parametrize("name", [n for n in REFUSED if OUTCOME[n] != "drop"])
def test_refused_requests_can_be_answered(name: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse(name)
    err = info.value
    response = err.response(to_tag="t4475")
    assert response is not None and err.top_via is not None
    assert response.status == OUTCOME[name]
    wire = response.to_bytes()
    assert wire.startswith(f"SIP/2.0 {err.status} {err.reason}\r\n".encode())
    assert wire.endswith(b"Content-Length: 0\r\n\r\n")
    assert b"\r\nVia: " in wire and b"\r\nCSeq: " in wire


@pytest.mark.parametrize("name", [n for n in REFUSED if OUTCOME[n] == "drop"])
def test_dropped_messages_have_no_answer(name: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse(name)
    assert info.value.drop and info.value.response() is None


# -- RFC 4475 §3.1.1: the values of the valid messages --------------------------------------


def test_wsinv_short_tortuous_invite() -> None:
    m = req("wsinv.dat")
    assert m.method == "INVITE" and str(m.uri) == "sip:vivekg@chair-dnrc.example.com;unknownparam"
    assert str(m.to.uri) == "sip:vivekg@chair-dnrc.example.com" and m.to.tag == "1918181833n"
    assert m.to.display_name is None
    assert m.from_.display_name == 'J Rosenberg \\"'  # "J Rosenberg \\\"" unescaped
    assert str(m.from_.uri) == "sip:jdrosen@example.com" and m.from_.tag == "98asjd8"
    assert m.max_forwards == 68
    assert (m.cseq.seq, m.cseq.method) == (9, "INVITE")
    assert m.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert [(v.transport, v.host, v.port, v.branch) for v in m.via] == [
        ("UDP", "192.0.2.2", None, "390skdjuw"),
        ("TCP", "spindle.example.com", None, "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", None, "z9hG4bK30239"),
    ]
    assert m.headers.get("Subject") == ""
    assert m.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert m.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    (route,) = m.route
    assert isinstance(route.uri, SipUri) and route.uri.lr
    assert route.uri.params == {"lr": None, "unknownwith": "value", "unknown-no-value": None}
    (contact,) = m.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"} and contact.q == 0.33
    assert m.content_type is not None and m.content_type.mime == "application/sdp"
    assert len(m.body) == 150 and m.body.startswith(b"v=0\r\n")


def test_intmeth_wide_range_of_valid_characters() -> None:
    m = req("intmeth.dat")
    assert m.method == "!interesting-Method0123456789_*+`.%indeed'~" == m.cseq.method
    assert isinstance(m.uri, SipUri)
    assert m.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert m.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert m.uri.host == "example.com"
    assert m.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert (
        isinstance(m.to.uri, SipUri) and m.to.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    )
    assert m.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert m.from_.params["fromparam''~+*_!.-%"] == '"работающий"'
    assert m.from_.tag == "_token~1'+`*%!-."
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.max_forwards == 255 and m.cseq.seq == 139122385
    assert m.via[0].branch == "z9hG4bK-.!%66*_+`'~"
    assert m.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_esc01_valid_escapes() -> None:
    m = req("esc01.dat")
    assert isinstance(m.uri, SipUri)
    assert (m.uri.user, m.uri.host) == ("sips:user@example.com", "example.net")
    assert m.to.uri == parse_uri("sip:user@example.com")  # %75se%72
    assert isinstance(m.from_.uri, SipUri) and m.from_.uri.user == "I have spaces"
    (contact,) = m.contacts
    assert isinstance(contact.uri, SipUri) and contact.uri.user == "caller"
    assert contact.uri.params == {"lr": None, "name": "value%41"}  # %6C%72 and v%61lue%25%34%31
    assert contact.uri == parse_uri("sip:caller@host5.example.net;lr;name=value%2541")


def test_escnull_escaped_nulls() -> None:
    m = req("escnull.dat")
    assert isinstance(m.to.uri, SipUri) and m.to.uri.user == "null-\x00-null"
    assert [c.uri.user for c in m.contacts if isinstance(c.uri, SipUri)] == ["\x00", "\x00\x00"]
    assert str(m.contacts[1].uri) == "sip:%00%00@host5.example.com"


def test_esc02_percent_that_is_no_escape() -> None:
    m = req("esc02.dat")
    assert m.method == "RE%47IST%45R" == m.cseq.method  # an unknown method, not REGISTER
    assert m.to.display_name == "%Z%45" and m.from_.display_name == "%Z%45"
    assert m.via[0].branch == "z9hG4bK209%fzsnel234"
    # C%6Fntact is an extension header, not a Contact
    assert [str(c.uri) for c in m.contacts] == [
        "sip:alias1@host1.example.com",
        "sip:alias3@host3.example.com",
    ]
    assert m.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_lwsdisp_no_space_before_laquot() -> None:
    m = req("lwsdisp.dat")
    assert m.from_.display_name == "caller" and str(m.from_.uri) == "sip:caller@example.com"
    assert m.from_.tag == "323"


def test_longreq_long_values() -> None:
    m = req("longreq.dat")
    assert len(m.via) == 34  # Via, v, V, ViA, "V :", "Via  :" ... all one field
    assert [v.host for v in m.via[:3]] == ["sip33.example.com", "sip32.example.com", "sip31.example.com"]
    last = m.via[-1]
    assert last.host == "host.example.com" and last.received == "192.0.2.5"
    assert (
        last.branch is not None and last.branch.startswith("verylong") and last.branch.endswith("branchvalue")
    )
    assert m.to.display_name is not None and m.to.display_name.startswith("I have a user name of extreme")
    assert isinstance(m.to.uri, SipUri) and m.to.uri.port == 6000
    assert len(m.to.uri.params) == 3 and m.to.uri.params["unknownparam1"] is not None
    assert m.from_.tag is not None and m.from_.tag.startswith("129829829") and m.from_.tag.endswith("82424")
    assert len(m.from_.params) == 3
    assert m.call_id.startswith("longreq.onereally") and m.call_id.endswith("longcallid")
    assert m.cseq.seq == 3882340
    assert len(m.body) == 150


def test_dblreq_trailing_octets_ignored() -> None:
    m = req("dblreq.dat")
    assert m.method == "REGISTER" and m.body == b""  # the INVITE after Content-Length is dropped
    assert m.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"


def test_semiuri_semicolons_in_user_part() -> None:
    m = req("semiuri.dat")
    assert isinstance(m.uri, SipUri)
    assert (m.uri.user, m.uri.host, m.uri.params) == ("user;par=u@example.net", "example.com", {})
    assert m.headers.values("Accept") == [
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    ]


def test_transports_varied_and_unknown() -> None:
    m = req("transports.dat")
    assert [v.transport for v in m.via] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert m.via[0].host == "t1.example.com"
    assert m.call_id == "transports.kijh4akdnaqjkwendsasfdj"


def test_mpart01_multipart_body() -> None:
    m = req("mpart01.dat")
    assert m.content_type is not None and m.content_type.mime == "multipart/mixed"
    assert m.content_type.params == {"boundary": "7a9cbec02ceef655"}
    assert len(m.body) == 553 == m.content_length
    assert m.body.startswith(b"--7a9cbec02ceef655\r\nContent-Type: text/plain\r\n")
    assert m.body.endswith(b"--7a9cbec02ceef655--\r\n")
    assert m.via[0].has_rport and m.via[0].rport is None
    assert m.headers.get("Content-Transfer-Encoding") == "binary"
    assert (m.headers.get("Identity") or "").startswith("r5mwreLuyDRYBi")


def test_unreason_utf8_reason_phrase() -> None:
    m = parse("unreason.dat")
    assert isinstance(m, Response) and m.status == 200
    assert m.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"


def test_noreason_empty_reason_phrase() -> None:
    m = parse("noreason.dat")
    assert isinstance(m, Response) and (m.status, m.reason) == (100, "")


# -- §3.2 - §3.4: what the layers above need from the parsed values ------------------------


def test_application_layer_values() -> None:
    assert req("badbranch.dat").via[0].branch == "z9hG4bK"  # RFC 2543 matching above us
    unksm2 = req("unksm2.dat")
    assert (unksm2.to.uri.scheme, unksm2.from_.uri.scheme) == ("isbn", "http")
    assert str(unksm2.contacts[0].uri) == "name:John_Smith"
    bext = req("bext01.dat")
    assert bext.require == ("nothingSupportsThis", "nothingSupportsThisEither")
    assert bext.proxy_require == ("noProxiesSupportThis", "norDoAnyProxiesSupportThis")
    invut = req("invut.dat")
    assert invut.content_type is not None and invut.content_type.mime == "application/unknownformat"
    (auth,) = req("regaut01.dat").authorization
    assert (auth.scheme, auth.params, auth.is_digest) == (
        "NoOneKnowsThisScheme",
        {"opaque-data": "here"},
        False,
    )
    assert req("zeromf.dat").max_forwards == 0
    assert req("sdp01.dat").headers.values("Accept") == ["text/nobodyKnowsThis"]
    c1, c2 = req("cparam01.dat").contacts[0], req("cparam02.dat").contacts[0]
    assert (c1.params, c1.uri.params) == ({"unknownparam": None}, {})  # type: ignore[union-attr]
    assert (c2.params, c2.uri.params) == ({}, {"unknownparam": None})  # type: ignore[union-attr]
    (contact,) = req("regescrt.dat").contacts
    assert isinstance(contact.uri, SipUri) and contact.uri.headers == [("Route", "<sip:sip.example.com>")]
    inv = req("inv2543.dat")
    assert inv.max_forwards is None and inv.via[0].branch is None  # RFC 2543 peer
    assert inv.record_route[0].uri.params == {"maddr": "ss1.example.com"}  # type: ignore[union-attr]
    assert len(inv.body) == 105 and inv.body.endswith(b"m=audio 49217 RTP/AVP 0\r\n")  # no Content-Length
    bcast = parse("bcast.dat")
    assert isinstance(bcast, Response) and bcast.via[1].host == "255.255.255.255"


def test_error_details() -> None:
    cases = {
        "badinv01.dat": "malformed parameter",
        "clerr.dat": "Content-Length 9999",
        "ncl.dat": "Content-Length",
        "scalar02.dat": "CSeq",
        "quotbal.dat": "quoted",
        "escruri.dat": "headers in the Request-URI",
        "baddate.dat": "Date",
        "regbadct.dat": "enclosed in <>",
        "mismatch01.dat": "CSeq method",
        "insuf.dat": "missing",
        "multi01.dat": "given 2 times",
        "mcl01.dat": "Content-Length given twice",
    }
    for name, needle in cases.items():
        with pytest.raises(SipParseError) as info:
            parse(name)
        assert needle in info.value.detail, (name, info.value.detail)


def test_error_answers_go_to_the_top_via() -> None:
    with pytest.raises(SipParseError) as info:
        parse("badinv01.dat")
    assert info.value.top_via is not None and info.value.top_via.host == "192.0.2.15"
    with pytest.raises(SipParseError) as info:
        parse("badvers.dat")
    assert info.value.status == 505
    assert info.value.top_via is not None and info.value.top_via.host == "c.example.com"
    response = info.value.response(to_tag="v7")
    assert response is not None and response.reason == "Version Not Supported"
    assert response.headers.get("To") == "T. Watson <sip:t.watson@example.org>;tag=v7"
