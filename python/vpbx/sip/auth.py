"""Server-side SIP digest authentication, sans-IO (RFC 3261 §22, RFC 7616 as RFC 8760
applies it to SIP).

    auth = DigestAuthenticator("pbx.example.com", secret)
    result = auth.verify(request, lookup_ha1, now)      # lookup_ha1(username, "SHA-256")
    if not result.ok:
        send(auth.challenge(request, now, stale=result.stale))

Challenges carry one WWW-Authenticate (or Proxy-Authenticate) field per algorithm, the
most preferred first (RFC 8760 §2.3: SHA-256, then MD5 for older phones), qop="auth",
a stateless nonce (auth_nonce.py) and an opaque value.

No user enumeration: a challenge depends on nothing but the clock, the configuration
and randomness, never on who asks; and `verify` takes the same steps for every
username: everything that does not need the user is checked first, then an unknown
user is verified against a dummy HA1 with the same hash work, and stale=true is only
ever earned by a correct digest (RFC 7616 §3.3), which no one can produce for an unknown
user. Keep the answer to a failure the same whatever `reason` says (only `stale`
may differ), and keep `lookup_ha1`'s time independent of whether the user exists.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import unquote_to_bytes

from .auth_nonce import NonceCodec, NonceCounts, Random
from .digest import (
    ALGORITHMS,
    base_algorithm,
    canonical_algorithm,
    compute_response,
    encode,
    hex_length,
    is_session,
)
from .errors import SipParseError
from .fields import Auth, parse_auth
from .grammar import quote
from .message import Request, Response, build_response
from .uri import parse_uri

Reason = Literal[
    "ok",
    "missing",  # no credentials for this realm (first request of every exchange)
    "malformed",  # credentials that do not follow the grammar or lack a parameter
    "bad-realm",  # Digest credentials, but for other realms only
    "bad-algorithm",  # an algorithm we did not offer
    "bad-qop",  # a qop we did not offer, or none when qop is required
    "bad-nonce",  # a nonce we never issued (tampered, other realm, other secret)
    "bad-opaque",  # opaque not returned unchanged
    "bad-uri",  # digest-uri is not the Request-URI (RFC 7616 §3.4.6 suggests answering 400)
    "unknown-user",  # no HA1 for this username (verified against a dummy HA1)
    "bad-response",  # wrong password
    "stale",  # correct digest, expired (or forgotten) nonce: challenge with stale=true
    "replay",  # nonce-count not above the highest accepted for this nonce
]

LookupHa1 = Callable[[str, str], str | None]
"""lookup_ha1(username, base_algorithm) -> the stored HA1 in hex, or None.
`base_algorithm` is "MD5", "SHA-256" or "SHA-512-256" (never a -sess name)."""

_NC_RE: Final = re.compile(r"[0-9A-Fa-f]{8}")
_HEX_RE: Final = re.compile(r"[0-9A-Fa-f]+")
_EXT_VALUE_RE: Final = re.compile(r"(?i:utf-8)'[A-Za-z0-9\-]*'(.*)", re.DOTALL)
_MAX_PARAM: Final = 1024  # longest credentials parameter we look at
_FAILURES: Final = frozenset(
    {"malformed", "bad-algorithm", "bad-qop", "bad-nonce", "bad-opaque", "bad-uri", "unknown-user"}
    | {"bad-response", "replay"}
)


@dataclass(frozen=True, slots=True)
class AuthResult:
    """What `verify` found. `username` is set as soon as the credentials were readable
    (also on failure, for logs); `algorithm` is the one the client used."""

    ok: bool
    reason: Reason
    username: str | None = None
    algorithm: str | None = None

    @property
    def stale(self) -> bool:
        """Challenge again with stale=true: the client knows the password."""
        return self.reason == "stale"

    @property
    def is_failure(self) -> bool:
        """A failed attempt to authenticate, for failed-auth counters and bans.
        "missing" (the normal first request) and "stale" (correct password) are not;
        neither is "bad-realm" (credentials meant for another server)."""
        return self.reason in _FAILURES


_MISSING: Final = AuthResult(False, "missing")


@dataclass(frozen=True, slots=True)
class _Credentials:
    username: str
    algorithm: str
    nonce: str
    uri: str
    response: str
    qop: str | None
    nc: str
    cnonce: str


class DigestAuthenticator:
    """Digest challenges and verification for one realm.

    Args:
        realm: the protection space (RFC 3261 §22.1: usually the SIP domain).
        secret: at least 16 random bytes, the same on every node of a cluster.
        algorithms: offered in this order of preference (RFC 8760 §2.3), one challenge
            header per algorithm. "-sess" variants may be listed too.
        qops: offered qop values ("auth", optionally "auth-int").
        allow_no_qop: accept RFC 2069 credentials without qop (RFC 3261 §22.4 allows
            it for old clients); they carry no nonce-count, so replay protection is
            only the nonce lifetime. Off by default.
        nonce_ttl: seconds a nonce stays valid; then a correct digest gets stale=true.
        previous_secrets: still accepted for nonces issued before a secret rotation.
        counts: the nonce-count table (share one between authenticators of a node).
        rng: randomness for nonces and To tags (os.urandom unless testing).
    """

    __slots__ = (
        "_dummy",
        "_nonce_ttl",
        "algorithms",
        "allow_no_qop",
        "codec",
        "counts",
        "opaque",
        "qops",
        "realm",
        "rng",
    )

    def __init__(
        self,
        realm: str,
        secret: bytes,
        *,
        algorithms: Sequence[str] = ("SHA-256", "MD5"),
        qops: Sequence[str] = ("auth",),
        allow_no_qop: bool = False,
        nonce_ttl: float = 300.0,
        max_clock_skew: float = 30.0,
        previous_secrets: Sequence[bytes] = (),
        opaque: str | None = None,
        counts: NonceCounts | None = None,
        rng: Random = os.urandom,
    ) -> None:
        if not realm or "\r" in realm or "\n" in realm:
            raise ValueError(f"bad realm {realm!r}")
        chosen: list[str] = []
        for name in algorithms:
            canon = canonical_algorithm(name)
            if canon is None or canon not in ALGORITHMS:
                raise ValueError(f"unsupported digest algorithm {name!r}")
            if canon not in chosen:
                chosen.append(canon)
        if not chosen:
            raise ValueError("at least one algorithm is needed")
        if not set(qops) <= {"auth", "auth-int"} or (not qops and not allow_no_qop):
            raise ValueError(f"bad qop list {qops!r}")
        self.realm = realm
        self.algorithms: tuple[str, ...] = tuple(chosen)
        self.qops: tuple[str, ...] = tuple(qops)
        self.allow_no_qop = allow_no_qop
        self.codec = NonceCodec(
            realm, secret, previous_secrets=previous_secrets, ttl=nonce_ttl, max_skew=max_clock_skew, rng=rng
        )
        self._nonce_ttl = nonce_ttl
        self.counts = NonceCounts() if counts is None else counts
        self.rng = rng
        # opaque: returned unchanged by the client (RFC 7616 §3.3); ours carries no
        # state, it only lets us notice clients that mix up servers.
        self.opaque = (
            hashlib.sha256(b"vpbx-opaque:" + encode(realm)).hexdigest()[:32] if opaque is None else opaque
        )
        # The HA1 an unknown user is checked against: secret-derived, so not guessable.
        self._dummy = {
            base: hmac.new(secret, b"vpbx-dummy-ha1:" + base.encode(), hashlib.sha256).hexdigest()[
                : hex_length(base)
            ]
            for base in {base_algorithm(a) for a in ALGORITHMS}
        }

    # -- challenges -----------------------------------------------------------------------

    def challenge_values(self, now: float, stale: bool = False) -> list[str]:
        """The header values of one challenge: one per algorithm, in preference order,
        sharing one fresh nonce (RFC 8760 §2.3; RFC 3261 §22.1 for the parameters)."""
        nonce = self.codec.issue(now)
        tail = f'qop="{",".join(self.qops)}"' if self.qops else ""
        if stale:
            tail = f"{tail}, stale=true" if tail else "stale=true"
        head = f"Digest realm={quote(self.realm)}, nonce={quote(nonce)}, opaque={quote(self.opaque)}"
        return [f"{head}, algorithm={alg}" + (f", {tail}" if tail else "") for alg in self.algorithms]

    def challenge(
        self,
        request: Request,
        now: float,
        stale: bool = False,
        *,
        proxy: bool = False,
        to_tag: str | None = None,
    ) -> Response:
        """401 with WWW-Authenticate (a registrar or UAS), or 407 with
        Proxy-Authenticate (`proxy`), to `request` (RFC 3261 §22.1, §22.3). The To tag
        is random unless given (§8.2.6.2)."""
        tag = self.rng(8).hex() if to_tag is None else to_tag
        response = build_response(request, 407 if proxy else 401, to_tag=tag)
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        for value in self.challenge_values(now, stale):
            response.headers.add(name, value)
        return response

    # -- verification ---------------------------------------------------------------------

    def verify(
        self, request: Request, lookup_ha1: LookupHa1, now: float, *, proxy: bool = False
    ) -> AuthResult:
        """Check the request's Authorization (or Proxy-Authorization, `proxy`) for this
        realm (RFC 3261 §22.4, RFC 7616 §3.4-§3.4.6, RFC 8760 §2.5). Never raises for any
        content of the request; see `Reason` for the outcomes."""
        found = self._credentials(request, proxy)
        if isinstance(found, AuthResult):
            return found
        creds = found
        user, algorithm = creds.username, creds.algorithm

        nonce_status, nonce_key = self.codec.check(creds.nonce, now)
        if nonce_status == "bad":
            return AuthResult(False, "bad-nonce", user, algorithm)
        if not self._uri_matches(creds.uri, request):
            return AuthResult(False, "bad-uri", user, algorithm)

        # From here on, the same work for every username.
        base = base_algorithm(algorithm)
        stored = lookup_ha1(user, base)
        dummy = self._dummy[base]
        # A stored value that is no HA1 of this algorithm counts as no user at all. The
        # dummy goes through the same checks as a stored HA1: the same steps either way.
        candidate = dummy if stored is None else stored
        well_formed = len(candidate) == hex_length(base) and _HEX_RE.fullmatch(candidate) is not None
        known = stored is not None and well_formed
        ha1 = candidate.lower() if well_formed else dummy
        expected = compute_response(
            ha1,
            algorithm=algorithm,
            nonce=creds.nonce,
            method=request.method,
            uri=creds.uri,
            qop=creds.qop,
            nc=creds.nc,
            cnonce=creds.cnonce,
            body=request.body,
        )
        matches = hmac.compare_digest(expected.encode("ascii"), creds.response.lower().encode("ascii"))
        if not known:
            return AuthResult(False, "unknown-user", user, algorithm)
        if not matches:
            return AuthResult(False, "bad-response", user, algorithm)
        if nonce_status == "expired":
            return AuthResult(False, "stale", user, algorithm)  # RFC 7616 §3.3
        if creds.qop is not None:
            counted = self.counts.advance(nonce_key, int(creds.nc, 16))
            if counted == "replay":
                return AuthResult(False, "replay", user, algorithm)
            if counted == "forgotten":
                return AuthResult(False, "stale", user, algorithm)
        return AuthResult(True, "ok", user, algorithm)

    def prune(self, now: float) -> int:
        """Forget nonce-counts of expired nonces (call from a timer, e.g. every minute)."""
        return self.counts.prune(int((now - self._nonce_ttl) * 1000))

    # -- helpers --------------------------------------------------------------------------

    def _credentials(self, request: Request, proxy: bool) -> _Credentials | AuthResult:
        """The Digest credentials for our realm (RFC 3261 §22.3: a request may carry
        credentials for several realms), checked against the grammar and what we
        offered. Everything here is independent of whether the user exists."""
        values = request.headers.get_list("proxy-authorization" if proxy else "authorization")
        if not values:
            return _MISSING
        chosen: Auth | None = None
        malformed = foreign = False
        for value in values:
            try:
                auth = parse_auth(value)
            except SipParseError:
                malformed = True
                continue
            if not auth.is_digest:
                continue
            if "realm" not in auth.params:
                malformed = True
                continue
            if auth.params["realm"] != self.realm:
                foreign = True
                continue
            chosen = auth
            break
        if chosen is None:
            if malformed:
                return AuthResult(False, "malformed")
            return AuthResult(False, "bad-realm" if foreign else "missing")
        return self._check_params(chosen.params)

    def _check_params(self, p: dict[str, str]) -> _Credentials | AuthResult:
        if any(len(v) > _MAX_PARAM for v in p.values()):
            return AuthResult(False, "malformed")
        username = _username(p)
        if username is None:
            return AuthResult(False, "malformed")
        raw_algorithm = p.get("algorithm")
        algorithm = canonical_algorithm(raw_algorithm)
        if algorithm is None or algorithm not in self.algorithms:
            return AuthResult(False, "bad-algorithm", username, raw_algorithm)
        nonce, uri, response = p.get("nonce"), p.get("uri"), p.get("response")
        if nonce is None or uri is None or response is None:
            return AuthResult(False, "malformed", username, algorithm)
        if len(response) != hex_length(algorithm) or _HEX_RE.fullmatch(response) is None:
            return AuthResult(False, "malformed", username, algorithm)
        qop = p.get("qop")
        nc, cnonce = p.get("nc", ""), p.get("cnonce", "")
        if qop is None:
            if not self.allow_no_qop or "nc" in p or "cnonce" in p:
                return AuthResult(False, "bad-qop", username, algorithm)
        elif qop.lower() not in self.qops:
            return AuthResult(False, "bad-qop", username, algorithm)
        elif _NC_RE.fullmatch(nc) is None or not cnonce:
            return AuthResult(False, "malformed", username, algorithm)  # RFC 7616 §3.4
        if is_session(algorithm) and not cnonce:
            return AuthResult(False, "malformed", username, algorithm)
        opaque = p.get("opaque")
        if opaque is not None and not hmac.compare_digest(encode(opaque), encode(self.opaque)):
            return AuthResult(False, "bad-opaque", username, algorithm)
        if p.get("userhash", "false").lower() != "false":
            # RFC 7616 §3.4.4: we never offer userhash, so a client must not use it.
            return AuthResult(False, "malformed", username, algorithm)
        return _Credentials(username, algorithm, nonce, uri, response, qop, nc, cnonce)

    @staticmethod
    def _uri_matches(digest_uri: str, request: Request) -> bool:
        """digest-uri must name the Request-URI (RFC 3261 §22.4 and RFC 7616 §3.4.6:
        a proxy must not let credentials for one target authorize another). Compared
        as text first, then with the URI equality of RFC 3261 §19.1.4."""
        if digest_uri == str(request.uri):
            return True
        try:
            return parse_uri(digest_uri) == request.uri
        except SipParseError:
            return False


def _username(p: dict[str, str]) -> str | None:
    """username, or username* in RFC 8187 (ext-value) form (RFC 7616 §3.4.4); never both."""
    plain, extended = p.get("username"), p.get("username*")
    if plain is not None:
        return None if extended is not None else plain
    if extended is None:
        return None
    m = _EXT_VALUE_RE.fullmatch(extended)
    if m is None:
        return None
    try:
        return unquote_to_bytes(m.group(1)).decode("utf-8")
    except UnicodeDecodeError:
        return None
