"""Typed header values: Via, addresses (From/To/Contact), numbers and their limits, Date,
Content-Type and option lists (RFC 3261 §20, §25.1)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vpbx.sip import (
    Request,
    SipParseError,
    parse_address,
    parse_message,
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


# -- typed values -------------------------------------------------------------------------------


def test_via_parameters() -> None:
    m = parse_request(
        invite(
            head=[
                "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport;received=198.51.100.7",
                "Via: SIP/2.0/TCP proxy.example.com:5070;branch=z9hG4bK2;rport=6000;ttl=16;maddr=224.2.0.1",
                'Via: sip/2.0/udp lower.example.com;branch=z9hG4bK3;X-Ext="quoted, with comma"',
                *HEAD[1:],
            ]
        )
    )
    a, b, c = m.via
    assert (a.host, a.port, a.branch, a.has_rport, a.rport, a.received) == (
        "192.0.2.1",
        5060,
        "z9hG4bK1",
        True,
        None,
        "198.51.100.7",
    )
    assert (b.transport, b.has_rport, b.rport, b.ttl, b.maddr) == ("TCP", True, 6000, 16, "224.2.0.1")
    assert (c.transport, c.params["x-ext"]) == ("UDP", '"quoted, with comma"')
    assert str(a) == "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport;received=198.51.100.7"


@pytest.mark.parametrize(
    "via",
    [
        "SIP/2.0/UDP",
        "SIP/2.0 UDP host",
        "SIP/2.0/UDP host;branch",
        'SIP/2.0/UDP host;branch="z9hG4bK1"',
        "SIP/2.0/UDP host;ttl=256",
        "SIP/2.0/UDP host;rport=0x1",
        "SIP/2.0/UDP host;received=example.com",
        "SIP/2.0/UDP host;received=300.1.1.1",
        "SIP/2.0/UDP host;maddr=bad_host",
        "SIP/3.0/UDP host",
        "HTTP/2.0/UDP host",
        "SIP/2.0/UDP host:70000",
        "SIP/2.0/UDP host;branch=a;branch=b",
        "SIP/2.0/UDP host;;",
        "SIP/2.0/UDP host,",
    ],
)
def test_bad_via(via: str) -> None:
    refused(invite(head=[f"Via: {via}", *HEAD[1:]]))


def test_addresses() -> None:
    for text, display, uri, params in [
        ('"A \\"B\\" \\\\ C" <sip:a@b>;tag=x', 'A "B" \\ C', "sip:a@b", {"tag": "x"}),
        ("Bob Smith <sip:b@c;lr>;tag=1;x", "Bob Smith", "sip:b@c;lr", {"tag": "1", "x": None}),
        ("<sip:a@b;user=phone>", None, "sip:a@b;user=phone", {}),
        ("sip:a@b;tag=3", None, "sip:a@b", {"tag": "3"}),
        ("tel:+123;tag=4", None, "tel:+123", {"tag": "4"}),
        ('"" <sip:a@b>', "", "sip:a@b", {}),
        ('"Юникод 名前" <sip:a@b>', "Юникод 名前", "sip:a@b", {}),
        ("<sip:a@b> ; expires = 60 ; q = 0.5", None, "sip:a@b", {"expires": "60", "q": "0.5"}),
    ]:
        a = parse_address(text)
        assert (a.display_name, str(a.uri), a.params) == (display, uri, params), text
        assert parse_address(str(a)) == a


@pytest.mark.parametrize(
    "text",
    [
        "",
        '"unterminated <sip:a@b>',
        '"x" sip:a@b',
        "Bell, Alexander <sip:a@b>",
        "<sip:a@b",
        "< sip:a@b>",
        "<sip:a@b>;",
        "<sip:a@b>;tag=1;tag=2",
        "<sip:a@b> junk",
        "sip:a@b?x=y",
        "sip:a@b,c",
        "a@b",
    ],
)
def test_bad_addresses(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_address(text)


def test_contacts() -> None:
    m = parse_request(
        invite(
            head=[
                *HEAD[:-1],
                'Contact: "A" <sip:a@h1>;expires=60;q=0.7, <sip:a@h2>;q=1',
                "m: sip:a@h3;expires=0",
            ]
        )
    )
    assert [(str(c.uri), c.expires, c.q) for c in m.contacts] == [
        ("sip:a@h1", 60, 0.7),
        ("sip:a@h2", None, 1.0),
        ("sip:a@h3", 0, None),
    ]
    assert not m.contact_star
    star = parse_request(invite("Expires: 0", head=[*HEAD[:-1], "Contact:  * "]))
    assert star.contact_star and star.contacts == () and star.expires == 0
    huge = parse_request(invite(head=[*HEAD[:-1], "Contact: <sip:a@h>;expires=99999999999999999999"]))
    assert huge.contacts[0].expires == 2**32 - 1
    for bad in (
        "*, <sip:a@h>",
        "<sip:a@h>;q=1.5",
        "<sip:a@h>;q=0.1234",
        "<sip:a@h>;expires=-1",
        "<sip:a@h>,,",
    ):
        refused(invite(head=[*HEAD[:-1], f"Contact: {bad}"]))


def test_numbers_and_limits() -> None:
    assert parse_request(invite(head=[*HEAD[:5], "CSeq: 2147483647 INVITE"])).cseq.seq == 2**31 - 1
    refused(invite(head=[*HEAD[:5], "CSeq: 2147483648 INVITE"]))
    refused(invite(head=[*HEAD[:5], "CSeq: -1 INVITE"]))
    refused(invite(head=[*HEAD[:5], "CSeq: 1"]))
    refused(invite(head=[*HEAD[:5], "CSeq: \u0661 INVITE"]))  # Arabic-Indic digit one
    assert parse_request(invite(head=[HEAD[0], "Max-Forwards: 255", *HEAD[2:]])).max_forwards == 255
    refused(invite(head=[HEAD[0], "Max-Forwards: 256", *HEAD[2:]]))
    refused(invite(head=[HEAD[0], "Max-Forwards: 1" + "0" * 5000, *HEAD[2:]]))
    assert parse_request(invite("Expires: 4294967296")).expires == 2**32 - 1
    with pytest.raises(SipParseError):
        parse_request(invite("Expires: soon")).expires  # noqa: B018


def test_date_content_type_and_lists() -> None:
    m = parse_request(
        invite(
            "Date: Sat, 13 Nov 2010 23:29:00 GMT",
            'Content-Type: multipart/mixed ; boundary="b 1";charset=utf-8',
            "Require: 100rel",
            "Proxy-Require: foo",
            "Unsupported: bar",
            "Supported:",
        )
    )
    assert m.date == datetime(2010, 11, 13, 23, 29, 0, tzinfo=UTC)
    assert m.content_type is not None and m.content_type.mime == "multipart/mixed"
    assert m.content_type.params == {"boundary": '"b 1"', "charset": "utf-8"}
    assert (m.require, m.proxy_require, m.unsupported, m.supported) == (("100rel",), ("foo",), ("bar",), ())
    refused(invite("Date: Sat, 31 Feb 2010 23:29:00 GMT"))
    refused(invite("Date: 13 Nov 2010 23:29:00 GMT"))
    with pytest.raises(SipParseError):
        parse_request(invite("Content-Type: sdp")).content_type  # noqa: B018
    with pytest.raises(SipParseError):
        parse_request(invite("Require: a b")).require  # noqa: B018
