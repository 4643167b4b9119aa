"""RFC 5118 (SIP torture tests for IPv6), §4.1-§4.10, written from the RFC's text, plus
the IPv6 reference forms around them (port inside vs outside the brackets, IPv4-mapped,
scoped, the RFC 3261 ABNF bug that RFC 5954 fixed)."""

from __future__ import annotations

import pytest

from vpbx.sip import Request, SipParseError, SipUri, parse_message, parse_uri, parse_via


def msg(start: str, *headers: str, body: str = "") -> bytes:
    lines = [start, *headers, f"Content-Length: {len(body.encode())}", "", body]
    return "\r\n".join(lines).encode()


COMMON = (
    "To: sip:user@example.com",
    "From: sip:user@example.com;tag=81x2",
    "Call-ID: SSG9559905523997077@hlau_4100",
    "Max-Forwards: 70",
)


def parse_request(data: bytes) -> Request:
    m = parse_message(data)
    assert isinstance(m, Request)
    assert parse_message(m.to_bytes()) == m  # and every one round-trips
    return m


def test_4_1_valid_message_with_ipv6_reference() -> None:
    m = parse_request(
        msg(
            "REGISTER sip:[2001:db8::10] SIP/2.0",
            *COMMON,
            "Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111",
            'Contact: "Caller" <sip:caller@[2001:db8::1]>',
            "CSeq: 98176 REGISTER",
        )
    )
    assert isinstance(m.uri, SipUri) and (m.uri.host, m.uri.port) == ("[2001:db8::10]", None)
    assert (m.via[0].host, m.via[0].port) == ("[2001:db8::9:1]", None)
    assert isinstance(m.contacts[0].uri, SipUri) and m.contacts[0].uri.host == "[2001:db8::1]"


def test_4_2_invalid_message_with_ipv6_reference() -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(
            msg(
                "REGISTER sip:2001:db8::10 SIP/2.0",  # no brackets
                *COMMON,
                "Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111",
                'Contact: "Caller" <sip:caller@[2001:db8::1]>',
                "CSeq: 98176 REGISTER",
            )
        )
    assert info.value.status == 400 and not info.value.drop


def test_4_3_port_ambiguous_in_a_sip_uri() -> None:
    m = parse_request(
        msg(
            "REGISTER sip:[2001:db8::10:5070] SIP/2.0",
            *COMMON,
            "Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111",
            'Contact: "Caller" <sip:caller@[2001:db8::1]>',
            "CSeq: 98176 REGISTER",
        )
    )
    # The address is 2001:db8::10:5070; there is no port.
    assert isinstance(m.uri, SipUri) and (m.uri.host, m.uri.port) == ("[2001:db8::10:5070]", None)


def test_4_4_port_unambiguous_in_a_sip_uri() -> None:
    m = parse_request(
        msg(
            "REGISTER sip:[2001:db8::10]:5070 SIP/2.0",
            *COMMON,
            "Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111",
            'Contact: "Caller" <sip:caller@[2001:db8::1]>',
            "CSeq: 98176 REGISTER",
        )
    )
    assert isinstance(m.uri, SipUri) and (m.uri.host, m.uri.port) == ("[2001:db8::10]", 5070)


@pytest.mark.parametrize("received", ["2001:db8::9:255", "[2001:db8::9:255]"])
def test_4_5_ipv6_reference_delimiters_in_via(received: str) -> None:
    # RFC 3261's received takes a bare IPv6address; RFC 5118 asks to accept both forms.
    m = parse_request(
        msg(
            "BYE sip:[2001:db8::10] SIP/2.0",
            *COMMON,
            f"Via: SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111;received={received}",
            "CSeq: 2 BYE",
        )
    )
    via = m.via[0]
    assert (via.host, via.port, via.received, via.branch) == (
        "[2001:db8::9:1]",
        6050,
        received,
        "z9hG4bKas3-111",
    )


SDP6 = (
    "v=0\r\no=assistant 971731711378798081 0 IN IP6 2001:db8::20\r\ns=Live video feed\r\n"
    "c=IN IP6 2001:db8::20\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def test_4_6_ipv6_addresses_in_sdp_body() -> None:
    m = parse_request(
        msg(
            "INVITE sip:user@[2001:db8::10] SIP/2.0",
            *COMMON,
            "Via: SIP/2.0/UDP [2001:db8::20];branch=z9hG4bKas3-111",
            "Contact: <sip:caller@[2001:db8::20]>",
            "CSeq: 8612 INVITE",
            "Content-Type: application/sdp",
            body=SDP6,
        )
    )
    assert m.body == SDP6.encode() and m.content_length == len(SDP6)


def test_4_7_multiple_ip_addresses_in_sip_headers() -> None:
    m = parse_request(
        msg(
            "BYE sip:user@host.example.net SIP/2.0",
            "Via: SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111",
            "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKjhja8781hjuaij65144",
            "Via: SIP/2.0/TCP [2001:db8::9:255];branch=z9hG4bK451jj;received=192.0.2.200",
            "Call-ID: 997077@lau_4100",
            "Max-Forwards: 70",
            "CSeq: 89187 BYE",
            "To: sip:user@example.net;tag=9817--94",
            "From: sip:user@example.com;tag=81x2",
        )
    )
    assert [(v.transport, v.host, v.port) for v in m.via] == [
        ("UDP", "[2001:db8::9:1]", 6050),
        ("UDP", "192.0.2.1", None),
        ("TCP", "[2001:db8::9:255]", None),
    ]
    assert m.via[2].received == "192.0.2.200"


def test_4_8_multiple_ip_addresses_in_sdp() -> None:
    sdp = (
        "v=0\r\no=bob 280744730 28977631 IN IP4 host.example.com\r\ns=\r\nt=0 0\r\n"
        "m=audio 22334 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\nm=video 6024 RTP/AVP 107\r\n"
        "c=IN IP6 2001:db8::1\r\na=rtpmap:107 H263-1998/90000\r\n"
    )
    m = parse_request(
        msg(
            "INVITE sip:user@[2001:db8::10] SIP/2.0",
            *COMMON,
            "Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111",
            "Contact: <sip:caller@[2001:db8::9:1]>",
            "CSeq: 8912 INVITE",
            "Content-Type: application/sdp",
            body=sdp,
        )
    )
    assert m.body.count(b"c=IN IP") == 2


def test_4_9_ipv4_mapped_ipv6_addresses() -> None:
    m = parse_request(
        msg(
            "INVITE sip:user@example.com SIP/2.0",
            *COMMON,
            "Via: SIP/2.0/UDP [::ffff:192.0.2.10]:19823;branch=z9hG4bKbh19",
            "Contact: <sip:caller@[::ffff:192.0.2.10]:19823>",
            "CSeq: 8912 INVITE",
            "Content-Type: application/sdp",
            body="v=0\r\no=assistant 971731711378798081 0 IN IP6 ::ffff:192.0.2.10\r\n"
            "s=-\r\nc=IN IP6 ::ffff:192.0.2.10\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n",
        )
    )
    assert (m.via[0].host, m.via[0].port) == ("[::ffff:192.0.2.10]", 19823)
    uri = m.contacts[0].uri
    assert isinstance(uri, SipUri) and (uri.host, uri.port) == ("[::ffff:192.0.2.10]", 19823)


def test_4_10_ipv6_reference_bug_in_rfc3261_abnf() -> None:
    # RFC 3261's ABNF rejects "::" followed by an IPv4 address and accepts ":::" before
    # one; RFC 5954 fixed it. The two-colon form is valid, the three-colon form is not.
    valid = msg(
        "OPTIONS sip:user@[2001:db8::192.0.2.1] SIP/2.0",
        *COMMON,
        "Via: SIP/2.0/UDP [2001:db8::192.0.2.2];branch=z9hG4bKas3-111",
        "CSeq: 1 OPTIONS",
    )
    m = parse_request(valid)
    assert isinstance(m.uri, SipUri) and m.uri.host == "[2001:db8::192.0.2.1]"
    assert m.via[0].host == "[2001:db8::192.0.2.2]"
    with pytest.raises(SipParseError):
        parse_message(valid.replace(b"[2001:db8::192.0.2.1]", b"[2001:db8:::192.0.2.1]"))
    with pytest.raises(SipParseError):
        parse_message(valid.replace(b"[2001:db8::192.0.2.2]", b"[2001:db8:::192.0.2.2]"))


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:[2001:db8::10]", "[2001:db8::10]", None),
        ("sip:[2001:db8::10:5070]", "[2001:db8::10:5070]", None),
        ("sip:[2001:db8::10]:5070", "[2001:db8::10]", 5070),
        ("sip:user@[2001:db8::10]:5070;transport=tcp", "[2001:db8::10]", 5070),
        ("sips:[::1]", "[::1]", None),
        ("sip:[::]", "[::]", None),
        ("sip:[::ffff:192.0.2.1]:5060", "[::ffff:192.0.2.1]", 5060),
        ("sip:[2001:db8:0:0:0:0:0:10]", "[2001:db8:0:0:0:0:0:10]", None),
        ("sip:[fe80::1%25eth0]", "[fe80::1%25eth0]", None),  # RFC 6874 zone
        ("sip:[FE80::A]:1", "[FE80::A]", 1),
    ],
)
def test_ipv6_references(text: str, host: str, port: int | None) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri) and (uri.host, uri.port) == (host, port)
    assert str(uri) == text
    assert parse_uri(str(uri)) == uri


@pytest.mark.parametrize(
    "text",
    [
        "sip:2001:db8::10",  # unbracketed
        "sip:[2001:db8::10",  # unterminated
        "sip:[2001:db8::10]5070",  # junk after ]
        "sip:[2001:db8::10]:",  # empty port
        "sip:[2001:db8::10]:65536",
        "sip:[2001:db8:::10]",
        "sip:[2001:db8::10::1]",  # two ::
        "sip:[1:2:3:4:5:6:7:8:9]",
        "sip:[12345::1]",
        "sip:[::ffff:192.0.2.256]",
        "sip:[]",
        "sip:[fe80::1%]",
        "sip:[g::1]",
    ],
)
def test_bad_ipv6_references(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_uri(text)


def test_ipv6_hosts_compare_by_value() -> None:
    assert parse_uri("sip:[2001:db8::10]") == parse_uri("sip:[2001:DB8:0:0:0:0:0:10]")
    assert parse_uri("sip:[2001:db8::10]") != parse_uri("sip:[2001:db8::10]:5060")
    assert parse_uri("sip:[2001:db8::10]") != parse_uri("sip:[2001:db8::11]")


def test_via_sent_by_ipv6() -> None:
    via = parse_via("SIP/2.0/TLS [2001:db8::9:1]:5061;branch=z9hG4bK1;received=[2001:db8::2];rport=5062")
    assert via.sent_by == ("[2001:db8::9:1]", 5061)
    assert (via.transport, via.received, via.rport) == ("TLS", "[2001:db8::2]", 5062)
    assert str(via) == "SIP/2.0/TLS [2001:db8::9:1]:5061;branch=z9hG4bK1;received=[2001:db8::2];rport=5062"
    for bad in (
        "SIP/2.0/UDP 2001:db8::9:1;branch=z9hG4bK1",
        "SIP/2.0/UDP [2001:db8::9:1;branch=z9hG4bK1",
        "SIP/2.0/UDP h;received=2001:db8:::1",
    ):
        with pytest.raises(SipParseError):
            parse_via(bad)
