"""CIDR sets, per-account source allowlists and source keys."""

from __future__ import annotations

import ipaddress
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpbx.security import AccountAllowlists, CidrSet, parse_ip, source_key


def test_cidr_membership_v4_and_v6() -> None:
    cidrs = CidrSet(["10.0.0.0/8", "192.0.2.7", "192.168.1.0/24", "2001:db8::/32", "::1/128"])
    assert cidrs.contains("10.255.0.1") and "192.0.2.7" in cidrs
    assert not cidrs.contains("192.0.2.8")
    assert cidrs.contains("192.168.1.200") and not cidrs.contains("192.168.2.1")
    assert cidrs.contains("2001:db8:ffff::1") and not cidrs.contains("2001:db9::1")
    assert cidrs.contains("::1") and cidrs.contains("[::1]")
    assert cidrs.contains("::ffff:10.1.2.3")  # IPv4-mapped
    assert cidrs.contains(ipaddress.ip_address("10.0.0.1"))
    assert not cidrs.contains("garbage") and not cidrs.contains("")
    assert len(cidrs) == 5 and cidrs


def test_host_bits_are_ignored_and_zero_prefix_matches_all() -> None:
    assert CidrSet(["10.1.2.3/8"]).contains("10.9.9.9")
    everything = CidrSet(["0.0.0.0/0", "::/0"])
    assert everything.contains("8.8.8.8") and everything.contains("2606:4700::1111")
    assert not CidrSet([])


def test_bad_networks_are_refused() -> None:
    for bad in ("10.0.0.0/33", "nonsense", "2001:db8::/129"):
        with pytest.raises(ValueError):
            CidrSet([bad])


@given(
    st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)), max_size=20), st.integers(0, 2**32 - 1)
)
def test_membership_agrees_with_ipaddress(nets: list[tuple[int, int]], probe: int) -> None:
    networks = [str(ipaddress.ip_network((addr, plen), strict=False)) for addr, plen in nets]
    addr = ipaddress.IPv4Address(probe)
    expected = any(addr in ipaddress.ip_network(n) for n in networks)
    assert CidrSet(networks).contains(str(addr)) == expected


def test_many_networks_stay_fast_and_right() -> None:
    rnd = random.Random(7)
    nets = [f"{rnd.randrange(1, 224)}.{rnd.randrange(256)}.{rnd.randrange(256)}.0/24" for _ in range(5000)]
    cidrs = CidrSet(nets)
    parsed = [ipaddress.ip_network(n) for n in nets]
    for _ in range(300):
        ip = ipaddress.IPv4Address(rnd.getrandbits(32))
        assert cidrs.contains(str(ip)) == any(ip in n for n in parsed)


def test_account_allowlists() -> None:
    acl = AccountAllowlists({"1001": ["192.0.2.0/24"], "1002": []})
    assert acl.permits("1001", "192.0.2.50")
    assert not acl.permits("1001", "198.51.100.1")
    assert acl.permits("1002", "198.51.100.1")  # empty list: no restriction
    assert acl.permits("9999", "198.51.100.1")  # no list at all
    acl.set("1002", ["2001:db8::/48"])
    assert acl.permits("1002", "2001:db8::5") and not acl.permits("1002", "2001:db9::5")
    acl.remove("1001")
    assert acl.permits("1001", "198.51.100.1")
    assert len(acl) == 1 and acl.get("1002") is not None


def test_source_keys() -> None:
    assert source_key("192.0.2.1") == "192.0.2.1"
    assert source_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert source_key("2001:db8:1:2:3:4:5:6", 48) == "2001:db8:1::/48"
    assert source_key("2001:db8::1", 128) == "2001:db8::1"
    assert source_key("[2001:db8::1]") == "2001:db8::/64"
    assert source_key("fe80::1%eth0") == "fe80::/64"
    assert source_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert source_key("junk") == "junk"
    assert parse_ip("junk") is None
