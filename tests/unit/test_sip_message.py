"""Messages: header names and forms, folding, lists, typed accessors, body framing on
datagrams, serialization and the responses built from a request (RFC 3261 §7, §8.2.6,
§18.3, §20)."""

from __future__ import annotations

import pytest

from vpbx.sip import (
    COMPACT_FORMS,
    Address,
    Headers,
    Request,
    Response,
    SipParseError,
    SipUri,
    Via,
    build_response,
    parse_auth,
    parse_message,
    parse_uri,
)

HEAD = [
    "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds",
    "Max-Forwards: 70",
    "To: Bob <sip:bob@biloxi.example.com>",
    'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774',
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
    "CSeq: 314159 INVITE",
    "Contact: <sip:alice@pc33.atlanta.example.com>",
]


def invite(*extra: str, head: list[str] | None = None, body: bytes = b"", length: int | None = None) -> bytes:
    lines = ["INVITE sip:bob@biloxi.example.com SIP/2.0", *(HEAD if head is None else head), *extra]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def parse_request(data: bytes) -> Request:
    m = parse_message(data)
    assert isinstance(m, Request)
    assert parse_message(m.to_bytes()) == m
    return m


def refused(data: bytes, status: int = 400) -> SipParseError:
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.status == status, info.value
    return info.value


# -- header names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("short", "full", "value"),
    [
        ("a", "Accept-Contact", "*;audio"),
        ("b", "Referred-By", "<sip:r@example.com>"),
        ("c", "Content-Type", "application/sdp"),
        ("d", "Request-Disposition", "proxy"),
        ("e", "Content-Encoding", "gzip"),
        ("j", "Reject-Contact", "*;video"),
        ("k", "Supported", "100rel"),
        ("n", "Identity-Info", "<https://example.com/cert>"),
        ("o", "Event", "refer"),
        ("r", "Refer-To", "<sip:c@example.com>"),
        ("s", "Subject", "lunch"),
        ("u", "Allow-Events", "talk"),
        ("x", "Session-Expires", "1800"),
        ("y", "Identity", "abc"),
    ],
)
def test_compact_forms(short: str, full: str, value: str) -> None:
    assert COMPACT_FORMS[short] == full.lower()
    m = parse_request(invite(f"{short.upper()}: {value}"))
    assert m.headers.get(full) == value == m.headers.get(short) == m.headers.get(full.upper())
    assert f"\r\n{full}: {value}\r\n".encode() in m.to_bytes()


def test_compact_forms_of_rfc3261_fields() -> None:
    head = [
        "v: SIP/2.0/UDP h.example.com;branch=z9hG4bK1",
        "t: <sip:bob@biloxi.example.com>",
        "f: <sip:alice@atlanta.example.com>;tag=9",
        "i: abc@h",
        "CSeq: 1 INVITE",
        "m: <sip:alice@h>",
    ]
    m = parse_request(invite("l: 3", head=head, body=b"abc"))
    assert (m.via[0].host, m.to.uri.scheme, m.from_.tag, m.call_id) == ("h.example.com", "sip", "9", "abc@h")
    assert m.body == b"abc"
    wire = m.to_bytes().decode()
    for name in ("Via", "To", "From", "Call-ID", "Contact"):
        assert f"\r\n{name}: " in wire
    assert wire.endswith("\r\nContent-Length: 3\r\n\r\nabc")


def test_names_are_case_insensitive_and_unknown_names_keep_their_spelling() -> None:
    m = parse_request(invite("x-CUSTOM-thing : value one", "CALL-INFO: <http://x>"))
    assert m.headers.get("X-Custom-Thing") == "value one"
    assert "x-custom-THING" in m.headers
    wire = m.to_bytes()
    assert b"\r\nx-CUSTOM-thing: value one\r\n" in wire and b"\r\nCall-Info: <http://x>\r\n" in wire


@pytest.mark.parametrize("line", ["Bad Name: x", "Bad\tName: x", ": x", "Name", "Näme: x", "X(y): z"])
def test_bad_header_lines(line: str) -> None:
    err = refused(invite(line))
    assert not err.drop  # the Via is fine: answer 400


# -- folding, whitespace, control characters --------------------------------------------------


def test_folding_is_unfolded() -> None:
    m = parse_request(
        invite(
            "Subject: I know you're there,\r\n pick up the phone\r\n\t and talk to me!",
            "Warning:\r\n 399 h x",
        )
    )
    assert m.headers.get("Subject") == "I know you're there, pick up the phone and talk to me!"
    assert m.headers.get("Warning") == "399 h x"


def test_fold_cannot_start_the_header_section() -> None:
    refused(b"INVITE sip:a@b SIP/2.0\r\n Via: x\r\n\r\n")


def test_bare_cr_or_lf_is_refused() -> None:
    refused(invite("Subject: a\nb"))
    refused(invite("Subject: a\rb"))


def test_control_characters_only_as_quoted_pairs() -> None:
    m = parse_request(invite('X-Q: "a\\\x00b\\\x07"'))
    assert m.headers.get("X-Q") == '"a\\\x00b\\\x07"'
    refused(invite("X-Q: a\x00b"))
    refused(invite('X-Q: "a\x07"'))


def test_header_section_must_be_utf8() -> None:
    refused(invite("Subject: caf\xe9").replace(b"caf\xc3\xa9", b"caf\xe9"))


# -- lists and repeated fields ----------------------------------------------------------------


def test_repeated_and_comma_separated_fields() -> None:
    m = parse_request(
        invite(
            "Supported: timer, 100rel",
            "Allow: INVITE, ACK,CANCEL",
            "Supported: replaces",
            "Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>",
            "Route: <sip:p3.example.com;lr>",
            'Record-Route: <sip:rr.example.com;lr>;x="a,b"',
        )
    )
    assert m.supported == ("timer", "100rel", "replaces")
    assert m.allow == ("INVITE", "ACK", "CANCEL")
    assert m.headers.get_all("Supported") == ["timer, 100rel", "replaces"]
    assert m.headers.values("supported") == ["timer", "100rel", "replaces"]
    assert [a.uri.host for a in m.route] == ["p1.example.com", "p2.example.com", "p3.example.com"]  # type: ignore[union-attr]
    assert m.record_route[0].params["x"] == '"a,b"'
    assert m.headers.values("Record-Route") == ['<sip:rr.example.com;lr>;x="a,b"']


def test_authorization_is_never_split() -> None:
    value = (
        'Digest username="bob", realm="biloxi.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
        'uri="sip:bob@biloxi.com;x=a,b", qop=auth, nc=00000001, cnonce="0a4f113b", '
        'response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41", '
        'algorithm=SHA-256, x="q\\"t"'
    )
    m = parse_request(invite(f"Authorization: {value}", f"Proxy-Authorization: {value}"))
    assert m.headers.values("Authorization") == [value]
    (auth,) = m.authorization
    assert auth.is_digest and auth.scheme == "Digest"
    assert auth.params["uri"] == "sip:bob@biloxi.com;x=a,b"
    assert (auth.params["qop"], auth.params["nc"], auth.params["algorithm"]) == (
        "auth",
        "00000001",
        "SHA-256",
    )
    assert auth.params["x"] == 'q"t'
    assert m.proxy_authorization == m.authorization
    assert parse_auth(str(auth)) == auth


def test_challenges() -> None:
    resp = parse_message(
        b"SIP/2.0 407 Proxy Authentication Required\r\n"
        b"Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\n"
        b"Call-ID: c\r\nCSeq: 1 INVITE\r\n"
        b'Proxy-Authenticate: Digest realm="atlanta.com", domain="sip:ss1.carrier.com", '
        b'qop="auth,auth-int", nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=FALSE, '
        b"algorithm=MD5\r\n"
        b'WWW-Authenticate: Digest realm="a", nonce="n1", algorithm=SHA-256\r\n'
        b'WWW-Authenticate: Digest realm="a", nonce="n2", algorithm=MD5\r\n\r\n'
    )
    assert isinstance(resp, Response)
    (challenge,) = resp.proxy_authenticate
    assert challenge.params["qop"] == "auth,auth-int" and challenge.params["opaque"] == ""
    assert challenge.params["stale"] == "FALSE"
    assert [c.params["algorithm"] for c in resp.www_authenticate] == ["SHA-256", "MD5"]


def test_bad_digest_is_refused_unknown_schemes_are_kept() -> None:
    m = parse_request(invite('Authorization: Digest username="a" realm="b"'))
    with pytest.raises(SipParseError) as info:
        m.authorization  # noqa: B018
    assert not info.value.drop and info.value.response() is not None  # lazily found: still answerable
    basic = parse_request(invite("Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")).authorization[0]
    assert (basic.scheme, basic.params, basic.raw) == ("Basic", {}, "QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
    assert str(basic) == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="


def test_single_valued_fields_must_not_repeat() -> None:
    for field in (
        "To: <sip:x@y>",
        "From: <sip:x@y>;tag=2",
        "Call-ID: other",
        "CSeq: 2 INVITE",
        "Max-Forwards: 1",
    ):
        refused(invite(field))


# -- start lines -------------------------------------------------------------------------------


def test_versions() -> None:
    assert parse_request(invite().replace(b" SIP/2.0\r\n", b" sip/2.0\r\n", 1)).method == "INVITE"
    refused(invite().replace(b" SIP/2.0\r\n", b" SIP/2.1\r\n", 1), 505)
    refused(invite().replace(b" SIP/2.0\r\n", b" SIP/20\r\n", 1), 400)
    refused(invite().replace(b" SIP/2.0\r\n", b" HTTP/1.1\r\n", 1), 400)


def test_request_line_shapes() -> None:
    for start in (
        b"INVITE sip:a@b",
        b"INVITE  sip:a@b SIP/2.0",
        b"INV ITE sip:a@b SIP/2.0",
        b"INVITE sip:a@b SIP/2.0 ",
    ):
        err = refused(invite().replace(b"INVITE sip:bob@biloxi.example.com SIP/2.0", start, 1))
        assert not err.drop
    err = refused(invite().replace(b"sip:bob@biloxi.example.com SIP", b"mailto:bob@x SIP", 1), 416)
    assert err.response() is not None and err.response().status == 416  # type: ignore[union-attr]
    assert (
        parse_request(invite().replace(b"sip:bob@biloxi.example.com SIP", b"tel:+1234 SIP", 1)).uri.scheme
        == "tel"
    )


def test_responses() -> None:
    base = (
        b"\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\n"
        b"Call-ID: c\r\nCSeq: 7 BYE\r\n\r\n"
    )
    r = parse_message(b"SIP/2.0 487 Request Terminated" + base)
    assert isinstance(r, Response) and (r.status, r.reason, r.cseq.method) == (
        487,
        "Request Terminated",
        "BYE",
    )
    assert parse_message(r.to_bytes()) == r
    assert parse_message(b"SIP/2.0 180" + base).reason == ""  # type: ignore[union-attr]
    for start in (
        b"SIP/2.0 099 Low",
        b"SIP/2.0 700 High",
        b"SIP/2.0 20 Short",
        b"SIP/2.0 2000 Long",
        b"SIP/3.0 200 OK",
    ):
        with pytest.raises(SipParseError) as info:
            parse_message(start + base)
        assert info.value.drop and info.value.response() is None


# -- mandatory fields and who can be answered ------------------------------------------------------


def test_missing_fields() -> None:
    for i, name in enumerate(["Via", "Max-Forwards", "To", "From", "Call-ID", "CSeq"]):
        head = HEAD[:i] + HEAD[i + 1 :]
        if name == "Max-Forwards":
            assert parse_request(invite(head=head)).max_forwards is None  # RFC 2543 peers omit it
            continue
        err = refused(invite(head=head))
        assert name in err.detail
        assert err.drop == (name == "Via")


def test_error_response_from_a_broken_request() -> None:
    err = refused(
        invite(
            head=[
                HEAD[0],
                "Via: SIP/2.0/TCP second.example.com;branch=z9hG4bK2",
                *HEAD[1:3],
                "From: broken <",
                *HEAD[4:],
            ]
        )
    )
    response = err.response(to_tag="e1")
    assert response is not None
    assert [v.host for v in response.via] == ["pc33.atlanta.example.com", "second.example.com"]
    assert response.headers.get("From") == "broken <"  # copied as received
    assert response.to.tag == "e1" and response.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert err.top_via == Via("UDP", "pc33.atlanta.example.com", None, {"branch": "z9hG4bK776asdhds"})
    assert response.to_bytes().startswith(b"SIP/2.0 400 Bad Request\r\nVia: SIP/2.0/UDP pc33")


def test_a_broken_ack_is_never_answered() -> None:
    ack = invite().replace(b"INVITE sip:", b"ACK sip:", 1).replace(b"314159 INVITE", b"314159 ACK")
    assert parse_request(ack).method == "ACK"
    err = refused(ack.replace(b"Max-Forwards: 70", b"Max-Forwards: 700"))
    assert err.drop and err.response() is None  # §17: no response to an ACK
    lazy = parse_request(ack.replace(b"Max-Forwards: 70", b"Route: <sip:x"))
    with pytest.raises(SipParseError) as info:
        lazy.route  # noqa: B018
    assert info.value.drop


def test_tags_are_tokens() -> None:
    refused(invite(head=[*HEAD[:3], 'From: <sip:a@b>;tag="quoted"', *HEAD[4:]]))
    refused(invite(head=[*HEAD[:2], "To: <sip:a@b>;tag", *HEAD[3:]]))


# -- body framing on datagrams (§18.3) --------------------------------------------------------


def test_datagram_body_framing() -> None:
    assert parse_request(invite(body=b"abcdef", length=3)).body == b"abc"  # extra octets discarded
    assert parse_request(invite(body=b"abcdef")).body == b"abcdef"  # no Content-Length: the rest
    assert parse_request(invite(body=b"", length=0)).body == b""
    refused(invite(body=b"ab", length=3))  # short: 400
    refused(invite(body=b"ab", length=-1))
    refused(invite("Content-Length: 2", body=b"ab", length=2))  # twice, even when equal
    refused(invite(body=b"ab", length=None).replace(b"\r\n\r\n", b"\r\nContent-Length: 2 2\r\n\r\n", 1))
    refused(invite(body=b"ab").replace(b"\r\n\r\n", "\r\nl: \uff12\r\n\r\n".encode(), 1))  # fullwidth digit


def test_stream_mode_requires_exact_content_length() -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(invite(), stream=True)
    assert "Content-Length missing" in info.value.detail and not info.value.drop
    assert parse_message(invite(body=b"xy", length=2), stream=True).body == b"xy"
    with pytest.raises(SipParseError):
        parse_message(invite(body=b"xyz", length=2), stream=True)


def test_leading_crlf_and_empty_datagrams() -> None:
    assert parse_request(b"\r\n\r\n" + invite()).method == "INVITE"
    for data in (b"", b"\r\n", b"\r\n\r\n", b"garbage", b"INVITE sip:a@b SIP/2.0\r\n"):
        with pytest.raises(SipParseError) as info:
            parse_message(data)
        assert info.value.drop


# -- building and serializing -------------------------------------------------------------------


def test_build_response_copies_per_8_2_6() -> None:
    req = parse_request(
        invite(
            "Timestamp: 54",
            "Record-Route: <sip:rr@x;lr>",
            head=[HEAD[0], "Via: SIP/2.0/UDP second;branch=z9hG4bK2", *HEAD[1:]],
        )
    )
    ringing = build_response(req, 180, to_tag="as83kd")
    assert (ringing.status, ringing.reason) == (180, "Ringing")
    assert [v.host for v in ringing.via] == ["pc33.atlanta.example.com", "second"]
    assert ringing.from_ == req.from_ and ringing.call_id == req.call_id and ringing.cseq == req.cseq
    assert ringing.to.tag == "as83kd" and ringing.to.uri == req.to.uri
    assert (
        "Contact" not in ringing.headers
        and "Timestamp" not in ringing.headers
        and "Record-Route" not in ringing.headers
    )
    trying = build_response(req, 100, to_tag="never")
    assert trying.to.tag is None and trying.headers.get("Timestamp") == "54"  # §8.2.6.1
    custom = build_response(req, 486, "Busy Here Now")
    assert custom.reason == "Busy Here Now" and custom.to.tag is None
    tagged = parse_request(invite(head=[*HEAD[:2], "To: <sip:bob@b>;tag=old", *HEAD[3:]]))
    assert build_response(tagged, 200, to_tag="new").to.tag == "old"  # in-dialog: keep the tag
    assert parse_message(ringing.to_bytes()) == ringing
    assert ringing.to_bytes().endswith(b"\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(ValueError, match="token"):
        build_response(req, 200, to_tag="bad tag")


def test_messages_built_from_scratch() -> None:
    req = Request(
        "OPTIONS",
        "sip:carol@chicago.example.com",
        [
            (
                "Via",
                str(Via("TCP", "pc33.example.com", 5060, {"branch": "z9hG4bKhjhs8ass877", "rport": None})),
            ),
            ("Max-Forwards", "70"),
            ("To", str(Address(parse_uri("sip:carol@chicago.example.com")))),
            (
                "From",
                str(Address(SipUri("atlanta.example.com", user="alice"), 'Alice "A"', {"tag": "1928301774"})),
            ),
            ("Call-ID", "a84b4c76e66710"),
            ("CSeq", "63104 OPTIONS"),
            ("Accept", "application/sdp"),
        ],
        body=b"hello",
    )
    wire = req.to_bytes()
    assert wire.startswith(b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\n")
    assert b'\r\nFrom: "Alice \\"A\\"" <sip:alice@atlanta.example.com>;tag=1928301774\r\n' in wire
    assert wire.endswith(b"\r\nContent-Length: 5\r\n\r\nhello")
    again = parse_message(wire)
    assert again == req and isinstance(again, Request) and again.from_.display_name == 'Alice "A"'
    assert again.via[0].has_rport and again.content_length == 5


def test_header_editing_and_typed_cache() -> None:
    req = parse_request(invite())
    assert len(req.via) == 1
    req.headers.add("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1", first=True)
    assert [v.host for v in req.via] == ["proxy.example.com", "pc33.atlanta.example.com"]
    assert req.headers.pop_first("Via") == "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1"
    req.headers.set("Via", "SIP/2.0/UDP a;branch=z9hG4bKa, SIP/2.0/UDP b;branch=z9hG4bKb")
    assert req.headers.pop_first("v") == "SIP/2.0/UDP a;branch=z9hG4bKa"
    assert [v.host for v in req.via] == ["b"]
    req.headers.set("Max-Forwards", "69")
    assert req.max_forwards == 69
    assert req.headers.remove("Contact") == 1 and req.contacts == ()
    assert req.headers.remove("Contact") == 0
    assert req.headers.pop_first("Route") is None
    for name, value in (("Bad Name", "x"), ("Subject", "a\r\nVia: injected"), ("Content-Length", "5")):
        with pytest.raises(ValueError):
            req.headers.add(name, value)
    copy = req.headers.copy()
    copy.add("Subject", "x")
    assert "Subject" not in req.headers and len(copy) == len(req.headers) + 1
    assert Headers([("v", "SIP/2.0/UDP h")]).get("Via") == "SIP/2.0/UDP h"


def test_response_and_request_constructors_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        Response(99)
    with pytest.raises(ValueError):
        Response(200, "OK\r\nVia: x")
    with pytest.raises(ValueError):
        Request("BAD METHOD", "sip:a@b")
    assert Response(603).reason == "Decline" and Response(499).reason == "Request Failure"


def test_a_compacted_message_reads_and_serializes_as_before_and_still_changes() -> None:
    raw = (
        b"INVITE sip:bob@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKk1\r\n"
        b"Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=f1\r\nTo: <sip:bob@example.com>\r\n"
        b"Call-ID: c1@h\r\nCSeq: 1 INVITE\r\nX-Odd: a,\tb\r\nContact: <sip:a@10.0.0.1>\r\n"
        b"Content-Length: 3\r\n\r\nabc"
    )
    message = parse_message(raw)
    assert isinstance(message, Request)
    wire = message.to_bytes()
    message.compact()
    assert message.to_bytes() == wire
    assert message.from_.tag == "f1" and message.via[0].branch == "z9hG4bKk1"
    assert message.headers.get("x-odd") == "a,\tb" and len(message.headers) == 8
    message.compact()
    message.headers.add("Subject", "hi")
    message.compact()
    assert (
        message.headers.get("subject") == "hi"
        and message.to_bytes().count(b"\r\n") == wire.count(b"\r\n") + 1
    )
