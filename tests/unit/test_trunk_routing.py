"""Outbound trunk choice (longest prefix, international refusal, strip/prepend, caller ID)
and inbound matching (source network or host, DID from Request-URI or To)."""

from __future__ import annotations

import dataclasses

import pytest

from vpbx.pbx.trunk_routing import (
    OutboundRoute,
    RouteRefused,
    is_international,
    match_inbound,
    route_outbound,
)
from vpbx.sip import Request, parse_message
from vpbx.store.trunks import TrunkSpec

MOSCOW = TrunkSpec(
    name="moscow",
    host="sip.provider.example",
    username="7001",
    secret="pw",
    outbound_prefixes=("+7", "8"),
    inbound_cidrs=("192.0.2.0/28",),
)
SPB = TrunkSpec(
    name="spb", host="198.51.100.2", username="s", secret="pw", outbound_prefixes=("8812",), strip_digits=1
)
WORLD = TrunkSpec(
    name="world",
    host="203.0.113.9",
    port=5080,
    transport="tcp",
    username="acct",
    secret="pw",
    from_user="74950000000",
    from_domain="world.example",
    outbound_prefixes=("+", "00"),
    caller_id="+74950000000",
    allow_international=True,
)
CITY = TrunkSpec(name="city", host="198.51.100.1", username="c", secret="pw", outbound_prefixes=("+7495",))


def ok(result: OutboundRoute | RouteRefused) -> OutboundRoute:
    assert isinstance(result, OutboundRoute), result
    return result


def test_longest_prefix_wins_and_rules_rewrite_the_number() -> None:
    trunks = [CITY, MOSCOW, WORLD, dataclasses.replace(SPB, add_prefix="+7")]
    city = ok(route_outbound("+7 (495) 123-45-67", trunks, caller="1001"))
    assert (city.trunk.name, city.number) == ("city", "+74951234567")
    assert city.request_uri == "sip:+74951234567@198.51.100.1:5060"
    moscow = ok(route_outbound("+78121234567", trunks, caller="+74951112233"))
    assert (moscow.trunk.name, moscow.number) == ("moscow", "+78121234567")
    assert (moscow.from_user, moscow.from_domain) == ("7001", "sip.provider.example")
    assert moscow.caller_id == "+74951112233"  # no trunk caller ID: the caller's number
    national = ok(route_outbound("84951234567", trunks))
    assert (national.trunk.name, national.number) == ("moscow", "84951234567")
    spb = ok(route_outbound("8 812 123-45-67", trunks))
    assert (spb.trunk.name, spb.number) == ("spb", "+78121234567")  # strip "8", prepend "+7"
    world = ok(route_outbound("+14155550100", trunks, caller="1001"))
    assert world.trunk.name == "world" and world.number == "+14155550100"
    assert world.request_uri == "sip:+14155550100@203.0.113.9:5080;transport=tcp"
    assert (world.dest, world.transport) == (("203.0.113.9", 5080), "TCP")
    assert (world.from_user, world.from_domain, world.caller_id) == (
        "74950000000",
        "world.example",
        "+74950000000",
    )


def test_international_is_refused_unless_allowed() -> None:
    assert route_outbound("81014155550100", [MOSCOW]) == RouteRefused(
        403, "international calls are not allowed on trunk moscow"
    )
    no_intl = dataclasses.replace(WORLD, allow_international=False)
    refused = route_outbound("+14155550100", [no_intl])
    assert isinstance(refused, RouteRefused) and refused.code == 403
    refused = route_outbound("0014155550100", [no_intl])
    assert isinstance(refused, RouteRefused) and refused.code == 403
    assert is_international("+74951234567", MOSCOW) is False  # home country code
    assert is_international("+14155550100", MOSCOW) is True
    assert is_international("84951234567", MOSCOW) is False


@pytest.mark.parametrize(
    ("dialled", "trunks", "code"),
    [
        ("+14155550100", [MOSCOW, CITY], 404),  # no prefix matches
        ("hello", [MOSCOW], 484),
        ("", [MOSCOW], 484),
        ("+74951234567", [dataclasses.replace(CITY, enabled=False)], 404),
        ("8812", [dataclasses.replace(SPB, strip_digits=4)], 484),  # nothing left after strip
    ],
)
def test_refusals_carry_the_sip_code(dialled: str, trunks: list[TrunkSpec], code: int) -> None:
    refused = route_outbound(dialled, trunks)
    assert isinstance(refused, RouteRefused) and refused.code == code


def invite(uri: str, to: str) -> Request:
    text = (
        f"INVITE {uri} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.3:5060;branch=z9hG4bKabc\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:+79161234567@provider>;tag=1\r\n"
        f"To: <{to}>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def test_inbound_from_a_trunk_network_or_host_gets_its_did() -> None:
    trunks = [MOSCOW, WORLD]
    by_uri = match_inbound(invite("sip:+74951234567@pbx", "sip:whatever@pbx"), "192.0.2.3", trunks)
    assert by_uri is not None and (by_uri.trunk.name, by_uri.did) == ("moscow", "+74951234567")
    # the Request-URI carries the trunk's own username (its registration contact): DID from To
    by_to = match_inbound(invite("sip:7001@10.0.0.1", "sip:7-495-123-45-67@pbx"), "192.0.2.14", trunks)
    assert by_to is not None and by_to.did == "74951234567"
    by_host = match_inbound(invite("sip:74951234567@pbx", "sip:x@pbx"), "203.0.113.9", trunks)
    assert by_host is not None and by_host.trunk.name == "world"
    resolved = match_inbound(
        invite("sip:74951234567@pbx", "sip:x@pbx"), "192.0.2.200", trunks, {"moscow": ["192.0.2.200"]}
    )
    assert resolved is not None and resolved.trunk.name == "moscow"  # its host name's address
    tel = match_inbound(invite("tel:+74951234567", "sip:x@pbx"), "192.0.2.3", trunks)
    assert tel is not None and tel.did == "+74951234567"
    no_number = match_inbound(invite("sip:reception@pbx", "sip:office@pbx"), "192.0.2.3", trunks)
    assert no_number is not None and no_number.did is None


def test_inbound_from_elsewhere_is_not_a_trunk_call() -> None:
    trunks = [MOSCOW, dataclasses.replace(WORLD, enabled=False)]
    assert match_inbound(invite("sip:+74951234567@pbx", "sip:x@pbx"), "192.0.2.16", trunks) is None
    assert match_inbound(invite("sip:+74951234567@pbx", "sip:x@pbx"), "203.0.113.9", trunks) is None
    assert match_inbound(invite("sip:+74951234567@pbx", "sip:x@pbx"), "not-an-ip", trunks) is None
