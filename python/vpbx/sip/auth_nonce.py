"""Stateless digest nonces and nonce-count replay protection (server side).

A nonce carries its own issue time and a MAC over it (RFC 7616 §3.3 suggests
"time-stamp H(time-stamp ":" ETag ":" secret-data)"), so any node of a cluster holding
the same secret can check a nonce it never issued, and nothing is stored per challenge:

    nonce = base64url( issued_ms (8 bytes, big-endian) | salt (9 random bytes)
                       | HMAC-SHA-256(secret, "vpbx-nonce-1" | issued_ms | salt | realm)[:16] )

44 characters, no padding. The salt makes every challenge's nonce unique, so that
nonce-counts of two clients never share a counter. The realm is inside the MAC: a nonce
of one tenant is worthless in another's realm.

Replay protection needs state: for each nonce that authenticated a request, the highest
nonce-count seen (RFC 7616 §3.4: the server "SHOULD" check the count "to detect
replays"). `NonceCounts` keeps it in a bounded LRU. Forgetting an entry must not open a
replay window, so the table remembers the newest issue time it ever evicted, and a
nonce at least that old that is not in the table is treated as stale: the client gets
stale=true and retries with a fresh nonce (RFC 7616 §3.3), which costs one round trip
and no security. Only successful authentications write here: an attacker without
credentials cannot evict anything.
"""

from __future__ import annotations

import base64
import hmac
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Final, Literal

_NONCE_RE: Final = re.compile(r"[A-Za-z0-9_-]{44}")
_LABEL: Final = b"vpbx-nonce-1"
_TS_LEN: Final = 8
_SALT_LEN: Final = 9
_MAC_LEN: Final = 16
_MAX_MS: Final = 2**64 - 1

NonceStatus = Literal["ok", "expired", "bad"]
CountStatus = Literal["ok", "replay", "forgotten"]

Random = Callable[[int], bytes]


class NonceCodec:
    """Issues and checks nonces for one realm.

    `secret` signs new nonces; `previous_secrets` are still accepted, so that a cluster
    can rotate its secret without failing the nonces already handed out. `now` is wall
    clock seconds (time.time()): nonces travel between nodes and outlive restarts.
    """

    __slots__ = ("_keys", "_realm", "max_skew", "rng", "ttl")

    def __init__(
        self,
        realm: str,
        secret: bytes,
        *,
        previous_secrets: Sequence[bytes] = (),
        ttl: float = 300.0,
        max_skew: float = 30.0,
        rng: Random = os.urandom,
    ) -> None:
        for key in (secret, *previous_secrets):
            if len(key) < 16:
                raise ValueError("a nonce secret needs at least 16 bytes")
        if ttl <= 0:
            raise ValueError("nonce ttl must be positive")
        self._keys = (bytes(secret), *map(bytes, previous_secrets))
        self._realm = realm.encode("utf-8", "surrogatepass")
        self.ttl = ttl
        self.max_skew = max_skew
        self.rng = rng

    def _mac(self, key: bytes, head: bytes) -> bytes:
        return hmac.digest(key, _LABEL + head + self._realm, "sha256")[:_MAC_LEN]

    def issue(self, now: float) -> str:
        ms = min(max(int(now * 1000), 0), _MAX_MS)
        salt = self.rng(_SALT_LEN)
        if len(salt) != _SALT_LEN:
            raise ValueError("rng returned the wrong number of bytes")
        head = ms.to_bytes(_TS_LEN, "big") + salt
        return base64.urlsafe_b64encode(head + self._mac(self._keys[0], head)).decode("ascii")

    def check(self, nonce: str, now: float) -> tuple[NonceStatus, int]:
        """("ok" | "expired" | "bad", key). The key (issue time and MAC bits packed in
        one int) identifies the nonce for NonceCounts; 0 when "bad".

        "bad" covers every nonce we did not issue: wrong length or alphabet, a MAC that
        does not verify under any key (compared in constant time), or an issue time
        further in the future than the allowed clock skew between nodes."""
        if _NONCE_RE.fullmatch(nonce) is None:
            return "bad", 0
        raw = base64.urlsafe_b64decode(nonce)
        head, mac = raw[: _TS_LEN + _SALT_LEN], raw[_TS_LEN + _SALT_LEN :]
        if not any(hmac.compare_digest(mac, self._mac(key, head)) for key in self._keys):
            return "bad", 0
        issued_ms = int.from_bytes(head[:_TS_LEN], "big")
        age = now - issued_ms / 1000
        if age < -self.max_skew:
            return "bad", 0
        key = (issued_ms << 64) | int.from_bytes(mac[:8], "big")
        return ("expired" if age > self.ttl else "ok"), key


def issued_ms_of(key: int) -> int:
    return key >> 64


class NonceCounts:
    """The highest nonce-count accepted per nonce, in an LRU of `capacity` entries.

    Size it for (peak new nonces per second) x (nonce ttl); an entry costs about 150
    bytes. Under-sizing is safe (see the module notes): it only causes extra
    stale=true round trips.
    """

    __slots__ = ("_floor_ms", "_seen", "capacity", "evicted")

    def __init__(self, capacity: int = 200_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._seen: OrderedDict[int, int] = OrderedDict()
        self._floor_ms = -1
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._seen)

    def advance(self, key: int, nc: int) -> CountStatus:
        """Accept `nc` for the nonce `key` if it is higher than any accepted before.
        "replay": nc repeated or lower (RFC 7616 §3.4); "forgotten": the nonce may have
        been evicted, so its history is unknown (answer stale=true)."""
        seen = self._seen
        last = seen.get(key)
        if last is None:
            if issued_ms_of(key) <= self._floor_ms:
                return "forgotten"
            seen[key] = nc
            if len(seen) > self.capacity:
                old, _ = seen.popitem(last=False)
                self._floor_ms = max(self._floor_ms, issued_ms_of(old))
                self.evicted += 1
            return "ok"
        if nc <= last:
            return "replay"
        seen[key] = nc
        seen.move_to_end(key)
        return "ok"

    def prune(self, oldest_ms: int) -> int:
        """Drop entries of nonces issued before `oldest_ms` (expired anyway); call it
        now and then from a timer. Returns how many went."""
        gone = [k for k in self._seen if issued_ms_of(k) < oldest_ms]
        for k in gone:
            del self._seen[k]
        return len(gone)
