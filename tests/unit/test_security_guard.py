"""SourceGuard: token-bucket rate per source, bans after failed authentications (with
escalation and expiry), trusted networks, flood bans, bounded memory, stats."""

from __future__ import annotations

import tracemalloc

import pytest

from vpbx.security import GuardConfig, GuardStats, SourceGuard
from vpbx.sip import Request
from vpbx.sip.auth import DigestAuthenticator
from vpbx.sip.auth_client import DigestClient
from vpbx.sip.digest import compute_ha1s

T0 = 1000.0


def guard(**kw: object) -> SourceGuard:
    return SourceGuard(GuardConfig(**kw))  # type: ignore[arg-type]


def fail(g: SourceGuard, ip: str, times: int, now: float = T0, step: float = 1.0) -> list[bool]:
    return [g.record_auth_failure(ip, now + i * step) for i in range(times)]


# -- failed authentication and bans ----------------------------------------------------------


def test_ban_after_max_failures_within_the_window() -> None:
    g = guard(max_failures=5, failure_window=60, ban_time=300)
    assert fail(g, "192.0.2.1", 5) == [False, False, False, False, True]
    assert g.is_banned("192.0.2.1", T0 + 5)
    assert not g.allow_request("192.0.2.1", T0 + 5)
    assert g.ban_remaining("192.0.2.1", T0 + 4) == pytest.approx(300)
    assert not g.is_banned("192.0.2.2", T0 + 5)  # only that source
    assert g.allow_request("192.0.2.2", T0 + 5)


def test_unban_after_ban_time() -> None:
    g = guard(max_failures=3, ban_time=120)
    fail(g, "192.0.2.1", 3)
    banned_at = T0 + 2
    assert g.is_banned("192.0.2.1", banned_at + 119.9)
    assert not g.is_banned("192.0.2.1", banned_at + 120)
    assert g.allow_request("192.0.2.1", banned_at + 120)


def test_failures_spread_wider_than_the_window_do_not_ban() -> None:
    g = guard(max_failures=5, failure_window=60)
    assert not any(fail(g, "192.0.2.1", 50, step=15.1))  # 4 per 60 s at most
    assert not g.is_banned("192.0.2.1", T0 + 1000)


def test_success_resets_the_failure_count() -> None:
    g = guard(max_failures=3)
    fail(g, "192.0.2.1", 2)
    g.record_auth_success("192.0.2.1", T0 + 3)
    assert fail(g, "192.0.2.1", 2, now=T0 + 4) == [False, False]
    assert fail(g, "192.0.2.1", 1, now=T0 + 10) == [True]


def test_success_forgives_only_the_same_usernames_failures() -> None:
    """Logging in to one's own account must not reset the count of guesses at another."""
    g = guard(max_failures=3)
    ip = "192.0.2.1"
    assert not g.record_auth_failure(ip, T0, "202") and not g.record_auth_failure(ip, T0 + 1, "202")
    g.record_auth_success(ip, T0 + 2, "201")  # the attacker's own account
    assert g.record_auth_failure(ip, T0 + 3, "202")  # the third guess bans
    # a phone that mistyped its own password is forgiven when it gets it right
    phone = "192.0.2.2"
    g.record_auth_failure(phone, T0, "201")
    g.record_auth_failure(phone, T0 + 1, "201")
    g.record_auth_success(phone, T0 + 2, "201")
    assert not g.record_auth_failure(phone, T0 + 3, "201") and not g.is_banned(phone, T0 + 3)


def test_bans_escalate_and_are_capped_and_forgotten() -> None:
    g = guard(max_failures=1, ban_time=100, ban_factor=3, max_ban_time=1000, offense_memory=5000)
    lengths = []
    now = T0
    for _ in range(5):
        g.record_auth_failure("192.0.2.9", now)
        lengths.append(round(g.ban_remaining("192.0.2.9", now)))
        now += lengths[-1] + 1
    assert lengths == [100, 300, 900, 1000, 1000]
    # quiet for longer than offense_memory: back to the first step
    now += 6000
    g.record_auth_failure("192.0.2.9", now)
    assert g.ban_remaining("192.0.2.9", now) == pytest.approx(100)


def test_trusted_networks_are_never_banned_nor_limited() -> None:
    g = guard(max_failures=2, rate=1, burst=1, trusted=("203.0.113.0/24", "2001:db8:1::/48"))
    for ip in ("203.0.113.77", "2001:db8:1:2::5"):
        assert not any(fail(g, ip, 100))
        assert not g.is_banned(ip, T0 + 100)
        assert all(g.allow_request(ip, T0 + 100) for _ in range(1000))
        assert g.ban(ip, T0) == 0.0
    assert g.stats().auth_failures_total == 200  # still counted for metrics
    assert fail(g, "203.0.114.1", 2)[-1]  # just outside


def test_trusted_sources_can_still_be_rate_limited() -> None:
    g = guard(rate=1, burst=2, trusted=("203.0.113.0/24",), limit_trusted=True)
    assert [g.allow_request("203.0.113.1", T0) for _ in range(4)] == [True, True, False, False]


def test_manual_ban_and_unban() -> None:
    g = guard()
    assert g.ban("192.0.2.5", T0, 60) == 60
    assert not g.allow_request("192.0.2.5", T0 + 30)
    assert g.unban("192.0.2.5")
    assert g.allow_request("192.0.2.5", T0 + 31)
    assert not g.unban("192.0.2.5")


def test_ipv6_sources_are_tracked_per_64() -> None:
    g = guard(max_failures=3)
    fail(g, "2001:db8:aa:bb::1", 1)
    fail(g, "2001:db8:aa:bb::2", 1, now=T0 + 1)
    assert fail(g, "2001:db8:aa:bb:ffff::9", 1, now=T0 + 2) == [True]
    assert g.is_banned("2001:db8:aa:bb:1234::1", T0 + 3)
    assert not g.is_banned("2001:db8:aa:bc::1", T0 + 3)
    assert g.key("::ffff:192.0.2.1") == "192.0.2.1"  # IPv4-mapped counts as IPv4


# -- rate limit ------------------------------------------------------------------------------


def test_burst_then_steady_state_rate() -> None:
    g = guard(rate=10, burst=20, flood_drops=0)
    ip = "198.51.100.1"
    assert sum(g.allow_request(ip, T0) for _ in range(100)) == 20  # the burst
    # offered 100 requests/s for 60 s: 10/s get through
    allowed = sum(g.allow_request(ip, T0 + i / 100) for i in range(1, 6001))
    assert allowed == pytest.approx(600, abs=2)
    # a source that keeps to its rate is never refused
    g2 = guard(rate=10, burst=20)
    assert all(g2.allow_request(ip, T0 + i * 0.1) for i in range(10_000))


def test_time_going_backwards_refills_nothing() -> None:
    g = guard(rate=10, burst=2)
    assert g.allow_request("198.51.100.1", T0)
    assert g.allow_request("198.51.100.1", T0)
    assert not g.allow_request("198.51.100.1", T0 - 100)


def test_flood_gets_banned() -> None:
    g = guard(rate=10, burst=10, flood_drops=50, failure_window=60, ban_time=30)
    results = [g.allow_request("198.51.100.66", T0 + i / 1000) for i in range(200)]
    assert results.count(True) <= 11
    assert g.is_banned("198.51.100.66", T0 + 1)
    stats = g.stats(T0 + 1)
    assert stats.bans_total == 1 and stats.requests_limited_total == 50
    assert stats.requests_banned_total == 200 - results.count(True) - 50
    assert not g.is_banned("198.51.100.66", T0 + 31)


def test_flood_ban_can_be_disabled() -> None:
    g = guard(rate=1, burst=1, flood_drops=0)
    for i in range(10_000):
        g.allow_request("198.51.100.66", T0 + i / 1000)
    assert not g.is_banned("198.51.100.66", T0 + 10)


# -- memory and stats ------------------------------------------------------------------------


def test_memory_is_bounded_under_100k_sources() -> None:
    g = guard(max_sources=2_000, max_bans=1_000, max_failures=1, rate=1, burst=1)

    def hit(i: int) -> None:
        ip = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        g.allow_request(ip, T0 + i / 1000)
        g.record_auth_failure(ip, T0 + i / 1000)

    tracemalloc.start()
    try:
        for i in range(5_000):  # the tables fill up at 2,000 sources
            hit(i)
        full, _ = tracemalloc.get_traced_memory()
        for i in range(5_000, 10_000):
            hit(i)
        later, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert full < 2_000 * 700, full  # bucket + failure record + ban: ~600 bytes a source
    assert later - full < 32 * 1024, later - full  # no growth once full
    for i in range(10_000, 100_000):
        hit(i)
    stats = g.stats()
    assert stats.tracked_sources <= 4_000
    assert stats.bans_active <= 1_000 and stats.bans_total == 100_000
    assert stats.sources_evicted_total == 2 * 98_000
    assert g.is_banned("10.1.134.159", T0 + 100.0)  # the newest bans survived the churn


def test_ipv6_flood_from_one_64_is_one_source() -> None:
    g = guard(max_sources=100)
    for i in range(10_000):
        g.allow_request(f"2001:db8::{i:x}", T0 + i)
    assert g.stats().tracked_sources == 1


def test_sweep_forgets_idle_state() -> None:
    g = guard(max_failures=2, ban_time=10, offense_memory=100, failure_window=60)
    g.allow_request("192.0.2.1", T0)
    fail(g, "192.0.2.2", 2)
    fail(g, "192.0.2.3", 1)
    assert g.stats().tracked_sources == 3  # one bucket, two failure records
    assert g.sweep(T0 + 5) == 1  # the full bucket of 192.0.2.1
    assert g.sweep(T0 + 500) == 3  # the ban, both failure records
    assert g.stats(T0 + 500) == GuardStats(0, 1, 3, 0, 0, 0, 0)


def test_stats_count_active_bans_at_a_time() -> None:
    g = guard(max_failures=1, ban_time=10)
    g.record_auth_failure("192.0.2.1", T0)
    g.record_auth_failure("192.0.2.2", T0 + 5)
    assert g.stats(T0 + 6).bans_active == 2
    assert g.stats(T0 + 12).bans_active == 1
    assert g.stats().bans_active == 2  # at the last time seen (T0 + 5)


def test_text_that_is_no_address_does_not_crash() -> None:
    g = guard(trusted=("10.0.0.0/8",), max_failures=1)
    for junk in ("", "not-an-ip", "999.1.1.1", "[::1", "fe80::1%eth0", "::ffff:10.0.0.1"):
        assert isinstance(g.allow_request(junk, T0), bool)
        g.record_auth_failure(junk, T0)
    assert not g.is_banned("::ffff:10.0.0.1", T0)  # trusted through the IPv4 mapping


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate": 0},
        {"burst": 0.5},
        {"max_failures": 0},
        {"ban_factor": 0.5},
        {"max_ban_time": 1, "ban_time": 10},
        {"ipv6_prefix": 129},
        {"max_sources": 0},
    ],
)
def test_bad_config_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        GuardConfig(**kwargs)  # type: ignore[arg-type]


def test_bad_trusted_network_is_refused() -> None:
    with pytest.raises(ValueError):
        guard(trusted=("10.0.0.0/33",))


# -- with digest authentication --------------------------------------------------------------


def test_password_guessing_is_banned_while_a_phone_keeps_working() -> None:
    """What svcrack meets: each wrong guess is a failure; after five the source is
    dropped, while a phone at another address registers on."""
    realm = "pbx.example.com"
    ha1s = {"1001": compute_ha1s("1001", realm, "right")}
    auth = DigestAuthenticator(realm, b"g" * 32)
    g = guard(max_failures=5, ban_time=600)

    def attempt(ip: str, password: str, now: float) -> str:
        if not g.allow_request(ip, now):
            return "dropped"
        request = Request(
            "REGISTER",
            f"sip:{realm}",
            [("Via", f"SIP/2.0/UDP {ip};branch=z9hG4bK-{now}"), ("From", "<sip:1001@pbx.example.com>;tag=1")],
        )
        request.headers.add("To", "<sip:1001@pbx.example.com>")
        request.headers.add("Call-ID", f"{now}@{ip}")
        request.headers.add("CSeq", "1 REGISTER")
        client = DigestClient("1001", password)
        assert g.allow_request(ip, now)
        client.on_challenge(auth.challenge(request, now))
        client.authorize(request)
        result = auth.verify(request, lambda u, a: ha1s.get(u, {}).get(a), now)
        if result.is_failure:
            g.record_auth_failure(ip, now)
        elif result.ok:
            g.record_auth_success(ip, now)
        return result.reason

    attacker, phone = "198.51.100.66", "192.0.2.10"
    outcomes = [attempt(attacker, f"guess{i}", T0 + i) for i in range(20)]
    assert outcomes[:5] == ["bad-response"] * 5
    assert set(outcomes[5:]) == {"dropped"}
    assert all(attempt(phone, "right", T0 + i) == "ok" for i in range(20))
    assert g.stats().auth_failures_total == 5 and g.stats().bans_active == 1
