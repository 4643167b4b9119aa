"""SIP, SIPS and TEL URIs: components, escapes, comparison (RFC 3261 §19.1.4, RFC 3966 §4)
and serialization."""

from __future__ import annotations

import pytest

from vpbx.sip import AbsoluteUri, SipParseError, SipUri, TelUri, parse_uri


def sip(text: str) -> SipUri:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    return uri


def test_components() -> None:
    u = sip(
        "sips:alice:secret@atlanta.example.com:5061;transport=tcp;lr;maddr=239.255.255.1?subject=x&priority=urgent"
    )
    assert (u.scheme, u.secure, u.user, u.password) == ("sips", True, "alice", "secret")
    assert (u.host, u.port) == ("atlanta.example.com", 5061)
    assert u.params == {"transport": "tcp", "lr": None, "maddr": "239.255.255.1"}
    assert (u.transport, u.lr, u.maddr, u.user_param) == ("tcp", True, "239.255.255.1", None)
    assert (u.method, u.ttl) == (None, None)
    assert (sip("sip:h;method=REGISTER;ttl=15").method, sip("sip:h;ttl=15").ttl) == ("REGISTER", 15)
    assert u.headers == [("subject", "x"), ("priority", "urgent")]
    assert str(u) == (
        "sips:alice:secret@atlanta.example.com:5061;transport=tcp;lr;maddr=239.255.255.1"
        "?subject=x&priority=urgent"
    )


def test_telephone_subscriber_in_user_part() -> None:
    u = sip("sip:+1-212-555-1212:1234@gateway.com;user=phone")
    assert (u.user, u.password, u.user_param) == ("+1-212-555-1212", "1234", "phone")


def test_escapes_are_decoded_and_written_back_only_where_needed() -> None:
    u = sip("sip:%61lice%20x%3a%40@h.example.com;%6C%72;n%61me=v%61lue%25%34%31?h%26=a%3D")
    assert u.user == "alice x:@"
    assert u.params == {"lr": None, "name": "value%41"}
    assert u.headers == [("h&", "a=")]
    assert str(u) == "sip:alice%20x%3A%40@h.example.com;lr;name=value%2541?h%26=a%3D"
    assert parse_uri(str(u)) == u
    odd = sip("sip:%ff%00@h")  # not UTF-8: kept byte for byte
    assert str(odd) == "sip:%FF%00@h"


def test_scheme_is_case_insensitive() -> None:
    u = sip("SIP:Alice@Example.COM")
    assert (u.scheme, u.user, u.host) == ("sip", "Alice", "Example.COM")


@pytest.mark.parametrize(
    ("a", "b"),
    [  # RFC 3261 §19.1.4: equivalent URIs
        ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
        ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
        (
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
        ),
        (
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
        ),
    ],
)
def test_equivalent_uris(a: str, b: str) -> None:
    assert parse_uri(a) == parse_uri(b)
    assert parse_uri(b) == parse_uri(a)


@pytest.mark.parametrize(
    ("a", "b"),
    [  # RFC 3261 §19.1.4: URIs that are not equivalent
        ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
        ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
        ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
        ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
        ("sip:alice:a@atlanta.com", "sip:alice:b@atlanta.com"),
        ("sip:alice@atlanta.com;user=phone", "sip:alice@atlanta.com"),
        ("sip:alice@atlanta.com;lr", "sip:alice@atlanta.com;lr=on"),
    ],
)
def test_different_uris(a: str, b: str) -> None:
    assert parse_uri(a) != parse_uri(b)


def test_tel_uri() -> None:
    t = parse_uri("tel:+1-201-555-0123;ext=1234")
    assert isinstance(t, TelUri) and t.is_global and t.digits == "+12015550123"
    assert t.params == {"ext": "1234"}
    assert t == parse_uri("TEL:+1.201.555.0123;EXT=1234")
    assert t != parse_uri("tel:+1-201-555-0123")
    local = parse_uri("tel:7042;phone-context=example.com")
    assert (
        isinstance(local, TelUri) and not local.is_global and local.params["phone-context"] == "example.com"
    )
    assert str(local) == "tel:7042;phone-context=example.com"
    for bad in ("tel:", "tel:+", "tel:+-", "tel:12 34", "tel:+1;=x", "tel:+1;a=1;a=2", "tel:--"):
        with pytest.raises(SipParseError):
            parse_uri(bad)


def test_other_schemes_stay_opaque() -> None:
    u = parse_uri("http://www.example.com/a?b=c")
    assert isinstance(u, AbsoluteUri) and (u.scheme, u.opaque) == ("http", "//www.example.com/a?b=c")
    assert str(u) == "http://www.example.com/a?b=c"
    assert parse_uri("urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6") == parse_uri(
        "URN:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sip",
        ":x",
        "<sip:a@b>",
        "sip:",
        "sip:@host",
        "sip:a b@host",
        "sip:alice@",
        "sip:alice@host:port",
        "sip:alice@host:99999",
        "sip:alice@-host.com",
        "sip:alice@host-.com",
        "sip:alice@host..com",
        "sip:alice@1.2.3",
        "sip:alice@256.1.1.1",
        "sip:alice@ho_st",
        "sip:alice@host;",
        "sip:alice@host;;lr",
        "sip:alice@host;a=",
        "sip:alice@host;lr;lr",
        "sip:alice@host?",
        "sip:alice@host?a",
        "sip:alice@host?=b",
        "sip:al%4ice@host",
        "sip:al%ice@host",
        "sip:alice:pa:ss@host",
        "sip:alice@host;a=b c",
        "sip:alicé@host",
        "1abc:x",
        "http:",
        "http:a b",
    ],
)
def test_malformed_uris(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_uri(text)


def test_hosts() -> None:
    for host in ("example.com", "example.com.", "a.b-c.example", "x1", "192.0.2.1", "EXAMPLE.COM", "a"):
        assert sip(f"sip:{host}").host == host


def test_constructed_uris_serialize_escaped() -> None:
    u = SipUri(
        "example.com",
        user="a b@c",
        params={"transport": "tcp", "x": "a;b"},
        headers=[("Subject", "hi there")],
    )
    assert str(u) == "sip:a%20b%40c@example.com;transport=tcp;x=a%3Bb?Subject=hi%20there"
    assert parse_uri(str(u)) == u
    assert str(SipUri("[2001:db8::1]", port=5060, secure=True)) == "sips:[2001:db8::1]:5060"
