"""The SIP front door's per-source limits, sans-IO: a token-bucket request rate limit,
failed-authentication counting with escalating temporary bans, and trusted networks
that are never limited or banned.

Trunk providers (`set_providers`, kept up to date by the trunk manager from the trunks'
hosts and inbound CIDRs) are exempt from rate limits and bans like trusted networks, and
only that: `is_trusted` (a source the B2BUA does not challenge) stays the configured list.

    guard = SourceGuard(GuardConfig(trusted=("203.0.113.0/24",)))
    if not guard.allow_request(src_ip, now):       # before parsing: drop silently
        return
    ...
    if result.is_failure: guard.record_auth_failure(src_ip, now, result.username)
    elif result.ok:       guard.record_auth_success(src_ip, now, result.username)

`now` is any monotonic clock in seconds (bans are local to one node). Memory is
bounded: rate buckets and failure records are LRUs of `max_sources` entries each, bans
a table of `max_bans`; a source with all three costs about 600 bytes (measured), so the
defaults cap the guard near 60 MB however many addresses a flood comes from. A flood of
new addresses pushes out idle entries, never a live ban: only other bans can.

Dropping a banned source's packets without an answer is what scanners find least
useful (RFC 3261 §26.1.5 on denial of service); the guard only decides.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from .netlist import CidrSet, source_key

_MAX_LEVEL: Final = 64  # escalation steps kept (the ban time is capped long before)


@dataclass(frozen=True, slots=True)
class GuardConfig:
    """Limits per source (an IPv4 address or an IPv6 /`ipv6_prefix`).

    rate, burst: sustained requests per second and the bucket size (a phone behind
        the same NAT as 50 others shares one bucket: size it for the office).
    max_failures within failure_window seconds: ban (fail2ban's maxretry/findtime).
    ban_time, ban_factor, max_ban_time: the first ban lasts ban_time, each further
        ban of the same source ban_factor times longer, up to max_ban_time; a source
        that stays unbanned for offense_memory seconds starts over.
    flood_drops: a source whose requests were refused this many times within
        failure_window is banned too (0: never ban for rate alone).
    trusted: CIDRs never banned (and not rate-limited unless limit_trusted), e.g.
        the trunk provider's signalling addresses or the office network.
    max_sources, max_bans: bounds of the tracking tables.
    """

    rate: float = 30.0
    burst: float = 120.0
    max_failures: int = 5
    failure_window: float = 60.0
    ban_time: float = 300.0
    ban_factor: float = 2.0
    max_ban_time: float = 86400.0
    offense_memory: float = 86400.0
    flood_drops: int = 1000
    trusted: tuple[str, ...] = ()
    limit_trusted: bool = False
    ipv6_prefix: int = 64
    max_sources: int = 100_000
    max_bans: int = 100_000

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        if self.max_failures < 1 or self.failure_window <= 0:
            raise ValueError("max_failures must be at least 1 and failure_window positive")
        if self.ban_time <= 0 or self.ban_factor < 1 or self.max_ban_time < self.ban_time:
            raise ValueError("ban_time > 0, ban_factor >= 1 and max_ban_time >= ban_time needed")
        if self.flood_drops < 0 or self.max_sources < 1 or self.max_bans < 1:
            raise ValueError("flood_drops >= 0, max_sources >= 1 and max_bans >= 1 needed")
        if not 0 <= self.ipv6_prefix <= 128:
            raise ValueError("ipv6_prefix must be 0..128")


@dataclass(frozen=True, slots=True)
class GuardStats:
    """Counters and gauges for /metrics (declared in the metrics module, not here)."""

    bans_active: int
    bans_total: int
    auth_failures_total: int
    requests_limited_total: int
    requests_banned_total: int
    tracked_sources: int
    sources_evicted_total: int


class _Bucket:
    __slots__ = ("drop_start", "drops", "stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp
        self.drops = 0
        self.drop_start = stamp


class _Record:
    """Failed-auth history of one source: recent failures (time, username tried; at most
    max_failures) and its ban escalation level."""

    __slots__ = ("fails", "last_ban", "level")

    def __init__(self) -> None:
        self.fails: list[tuple[float, str | None]] = []
        self.level = 0
        self.last_ban = 0.0


class SourceGuard:
    __slots__ = (
        "_bans",
        "_buckets",
        "_now",
        "_records",
        "auth_failures_total",
        "bans_total",
        "config",
        "providers",
        "requests_banned_total",
        "requests_limited_total",
        "sources_evicted_total",
        "trusted",
    )

    def __init__(self, config: GuardConfig | None = None) -> None:
        self.config = GuardConfig() if config is None else config
        self.trusted = CidrSet(self.config.trusted)
        self.providers = CidrSet()
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._bans: OrderedDict[str, float] = OrderedDict()  # key -> banned until
        self._now = 0.0
        self.auth_failures_total = 0
        self.bans_total = 0
        self.requests_limited_total = 0
        self.requests_banned_total = 0
        self.sources_evicted_total = 0

    # -- queries --------------------------------------------------------------------------

    def key(self, ip: str) -> str:
        """The identity `ip` is tracked under (see netlist.source_key)."""
        return source_key(ip, self.config.ipv6_prefix)

    def is_trusted(self, ip: str) -> bool:
        return bool(self.trusted) and self.trusted.contains(ip)

    def set_providers(self, networks: Iterable[str]) -> None:
        """The trunk providers' addresses/CIDRs (module doc); ValueError for a bad entry."""
        self.providers = CidrSet(networks)

    def is_exempt(self, ip: str) -> bool:
        """Never rate-limited (unless limit_trusted) nor banned: trusted or a provider."""
        return self.is_trusted(ip) or (bool(self.providers) and self.providers.contains(ip))

    def is_banned(self, ip: str, now: float) -> bool:
        return self.ban_remaining(ip, now) > 0

    def ban_remaining(self, ip: str, now: float) -> float:
        """Seconds left on the source's ban, 0 when not banned."""
        if self.is_exempt(ip):
            return 0.0
        until = self._bans.get(self.key(ip))
        return 0.0 if until is None else max(until - now, 0.0)

    # -- the per-request decision ---------------------------------------------------------

    def allow_request(self, ip: str, now: float) -> bool:
        """True: handle the request. False: drop it (banned, or over its rate)."""
        self._now = now
        if (self.trusted and self.trusted.contains(ip)) or (self.providers and self.providers.contains(ip)):
            return not self.config.limit_trusted or self._take(self.key(ip), now, may_ban=False)
        key = source_key(ip, self.config.ipv6_prefix)
        bans = self._bans
        if bans:
            until = bans.get(key)
            if until is not None:
                if now < until:
                    self.requests_banned_total += 1
                    return False
                del bans[key]
        return self._take(key, now, may_ban=True)

    def _take(self, key: str, now: float, *, may_ban: bool) -> bool:
        """Token bucket: `burst` tokens, refilled at `rate` per second, one per request."""
        cfg = self.config
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            buckets[key] = _Bucket(cfg.burst - 1.0, now)
            if len(buckets) > cfg.max_sources:
                buckets.popitem(last=False)
                self.sources_evicted_total += 1
            return True
        buckets.move_to_end(key)
        elapsed = now - bucket.stamp
        if elapsed > 0:  # a clock that steps back refills nothing
            bucket.tokens = min(cfg.burst, bucket.tokens + elapsed * cfg.rate)
            bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        self.requests_limited_total += 1
        if may_ban and cfg.flood_drops:
            if now - bucket.drop_start > cfg.failure_window:
                bucket.drops = 0
                bucket.drop_start = now
            bucket.drops += 1
            if bucket.drops >= cfg.flood_drops:
                bucket.drops = 0
                self._ban(key, now, None)
        return False

    # -- authentication outcomes ----------------------------------------------------------

    def record_auth_failure(self, ip: str, now: float, username: str | None = None) -> bool:
        """Count a failed authentication (AuthResult.is_failure) for `username` (the one
        the credentials named, if readable). True if this failure got the source banned.
        Trusted sources are counted but never banned."""
        self._now = now
        self.auth_failures_total += 1
        if self.is_exempt(ip):
            return False
        key = self.key(ip)
        record = self._record(key)
        cfg = self.config
        fails = [f for f in record.fails if now - f[0] < cfg.failure_window]
        fails.append((now, username))
        if len(fails) >= cfg.max_failures:
            record.fails = []
            self._ban(key, now, record)
            return True
        record.fails = fails
        return False

    def record_auth_success(self, ip: str, now: float, username: str | None = None) -> None:
        """A source that authenticates as `username` is forgiven its failures for that
        username (a phone that got its password right after a typo); its failures for
        other usernames stay: holding one account must not let a source reset the count
        while it guesses another's password. Without a username, every failure is
        forgiven. The ban escalation level stays."""
        self._now = now
        record = self._records.get(self.key(ip))
        if record is not None:
            record.fails = [] if username is None else [f for f in record.fails if f[1] != username]

    # -- bans -----------------------------------------------------------------------------

    def ban(self, ip: str, now: float, seconds: float | None = None) -> float:
        """Ban a source by hand (operator, API). Returns the ban's length; 0 for a
        trusted source, which is never banned."""
        if self.is_exempt(ip):
            return 0.0
        return self._ban(self.key(ip), now, None, seconds)

    def unban(self, ip: str) -> bool:
        """Lift a ban and forget the source's escalation level."""
        key = self.key(ip)
        self._records.pop(key, None)
        return self._bans.pop(key, None) is not None

    def _record(self, key: str) -> _Record:
        records = self._records
        record = records.get(key)
        if record is None:
            record = records[key] = _Record()
            if len(records) > self.config.max_sources:
                records.popitem(last=False)
                self.sources_evicted_total += 1
        else:
            records.move_to_end(key)
        return record

    def _ban(self, key: str, now: float, record: _Record | None, seconds: float | None = None) -> float:
        cfg = self.config
        if record is None:
            record = self._record(key)
        if record.level and now - record.last_ban > cfg.offense_memory:
            record.level = 0
        if seconds is None:
            seconds = min(cfg.ban_time * cfg.ban_factor**record.level, cfg.max_ban_time)
            record.level = min(record.level + 1, _MAX_LEVEL)
        record.last_ban = now
        bans = self._bans
        until = max(now + seconds, bans.pop(key, now))
        bans[key] = until
        self.bans_total += 1
        if len(bans) > cfg.max_bans:
            bans.popitem(last=False)  # the oldest ban: the first to expire, give or take
        return seconds

    # -- housekeeping and metrics ---------------------------------------------------------

    def sweep(self, now: float) -> int:
        """Drop what no longer matters: expired bans, buckets that refilled (a new one
        would be the same), failure records with nothing left to remember. O(tracked);
        call from a timer every few seconds. Returns how many entries went."""
        cfg = self.config
        gone = [k for k, until in self._bans.items() if until <= now]
        for k in gone:
            del self._bans[k]
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.stamp) * cfg.rate >= cfg.burst]
        for k in full:
            del self._buckets[k]
        idle = [
            k
            for k, r in self._records.items()
            if k not in self._bans
            and all(now - f[0] >= cfg.failure_window for f in r.fails)
            and (r.level == 0 or now - r.last_ban > cfg.offense_memory)
        ]
        for k in idle:
            del self._records[k]
        return len(gone) + len(full) + len(idle)

    def stats(self, now: float | None = None) -> GuardStats:
        """Counters for metrics. Active bans are counted at `now` (default: the latest
        time any call was given)."""
        at = self._now if now is None else now
        return GuardStats(
            bans_active=sum(1 for until in self._bans.values() if until > at),
            bans_total=self.bans_total,
            auth_failures_total=self.auth_failures_total,
            requests_limited_total=self.requests_limited_total,
            requests_banned_total=self.requests_banned_total,
            tracked_sources=len(self._buckets) + len(self._records),
            sources_evicted_total=self.sources_evicted_total,
        )
