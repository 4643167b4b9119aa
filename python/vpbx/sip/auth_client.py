"""Client-side SIP digest authentication, sans-IO (RFC 3261 §22.2-§22.3, RFC 7616 §3.4,
RFC 8760 §2.4): what a trunk registering upstream, or a test playing a phone, does.

    client = DigestClient("1001", "secret")
    response = send(request)
    while response.status in (401, 407) and client.on_challenge(response):
        request = next_attempt(request)          # same Call-ID, CSeq + 1 (§22.2)
        client.authorize(request)
        response = send(request)
    # client.error says why it gave up: "rejected", "too-many-stale", ...

Among the challenges of one realm, the strongest algorithm we support wins (SHA-512-256,
then SHA-256, then MD5), whatever order the server listed them in: RFC 8760 §2.4 lets
local policy override "topmost first", and ours is to refuse a downgrade.
A stale=true challenge means "your password was right, the nonce was old" (RFC 7616
§3.3): the client retries with the new nonce without asking anyone. A second non-stale
challenge right after answering a fresh one means the credentials are wrong: the client
gives up (error "rejected") instead of looping.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from .auth_nonce import Random
from .digest import ALGORITHMS, canonical_algorithm, compute_ha1, compute_response
from .errors import SipParseError
from .fields import parse_auth
from .grammar import quote
from .message import Request, Response

ClientError = Literal["not-a-challenge", "no-usable-challenge", "rejected", "too-many-stale"]

_QOP_PREFERENCE: Final = ("auth", "auth-int")


@dataclass(slots=True)
class RealmState:
    """What the client remembers per realm between requests (RFC 3261 §22.3: a UA
    caches credentials per realm and reuses them, counting nc up)."""

    realm: str
    proxy: bool
    algorithm: str
    nonce: str
    opaque: str | None
    qop: str | None
    nc: int = 0
    answered_fresh: bool = False  # last credentials used this nonce for the first time
    stales: int = 0  # stale=true challenges in a row


class DigestClient:
    """Answers 401/407 challenges with one username and password.

    Args:
        realm: only answer challenges of this realm (None: any realm, as trunks do).
        algorithms: the ones we are willing to use, most preferred first.
        max_stale: give up after this many stale=true challenges in a row.
        rng: randomness for cnonce values.
    """

    __slots__ = ("algorithms", "error", "max_stale", "password", "realm", "rng", "states", "username")

    def __init__(
        self,
        username: str,
        password: str,
        *,
        realm: str | None = None,
        algorithms: Sequence[str] = ALGORITHMS,
        max_stale: int = 3,
        rng: Random = os.urandom,
    ) -> None:
        for text in (username, password, realm or ""):
            if "\r" in text or "\n" in text:
                raise ValueError("credentials cannot contain CR or LF")
        known = [a for a in (canonical_algorithm(x) for x in algorithms) if a is not None and a in ALGORITHMS]
        if not known:
            raise ValueError(f"no supported algorithm in {algorithms!r}")
        self.username = username
        self.password = password
        self.realm = realm
        self.algorithms: tuple[str, ...] = tuple(dict.fromkeys(known))
        self.max_stale = max_stale
        self.rng = rng
        self.states: dict[str, RealmState] = {}
        self.error: ClientError | None = None

    def on_challenge(self, response: Response) -> bool:
        """Take in a 401 (WWW-Authenticate) or 407 (Proxy-Authenticate). True: send the
        request again with `authorize`; False: give up, `error` says why."""
        if response.status not in (401, 407):
            self.error = "not-a-challenge"
            return False
        proxy = response.status == 407
        chosen = self._choose(response.headers.get_all("proxy-authenticate" if proxy else "www-authenticate"))
        if not chosen:
            self.error = "no-usable-challenge"
            return False
        for realm, (algorithm, params) in chosen.items():
            stale = params.get("stale", "").lower() == "true"
            previous = self.states.get(realm)
            stales = 0
            if previous is not None:
                if not stale and previous.answered_fresh:
                    del self.states[realm]  # a later attempt starts afresh
                    self.error = "rejected"
                    return False
                stales = previous.stales + 1 if stale else 0
                if stales > self.max_stale:
                    del self.states[realm]
                    self.error = "too-many-stale"
                    return False
            self.states[realm] = RealmState(
                realm=realm,
                proxy=proxy,
                algorithm=algorithm,
                nonce=params["nonce"],
                opaque=params.get("opaque"),
                qop=_pick_qop(params.get("qop")),
                stales=stales,
            )
        self.error = None
        return True

    def authorize(self, request: Request) -> None:
        """Put credentials for every realm we know into `request`, replacing any
        Authorization / Proxy-Authorization it had (RFC 3261 §22.2, §22.3)."""
        request.headers.remove("Authorization")
        request.headers.remove("Proxy-Authorization")
        for state in self.states.values():
            name = "Proxy-Authorization" if state.proxy else "Authorization"
            request.headers.add(name, self.credentials(request, state))

    def credentials(self, request: Request, state: RealmState) -> str:
        """One credentials value for `request` (RFC 7616 §3.4), counting nc up."""
        state.nc += 1
        state.answered_fresh = state.nc == 1
        if state.nc > 1:
            state.stales = 0
        uri = str(request.uri)
        nc = f"{state.nc:08x}"
        cnonce = self.rng(12).hex() if state.qop is not None or state.algorithm.endswith("-sess") else ""
        digest = compute_response(
            compute_ha1(self.username, state.realm, self.password, state.algorithm),
            algorithm=state.algorithm,
            nonce=state.nonce,
            method=request.method,
            uri=uri,
            qop=state.qop,
            nc=nc,
            cnonce=cnonce,
            body=request.body,
        )
        parts = [
            f"Digest username={quote(self.username)}",
            f"realm={quote(state.realm)}",
            f"nonce={quote(state.nonce)}",
            f"uri={quote(uri)}",
            f"response={quote(digest)}",
            f"algorithm={state.algorithm}",
        ]
        if cnonce:
            parts.append(f"cnonce={quote(cnonce)}")
        if state.opaque is not None:
            parts.append(f"opaque={quote(state.opaque)}")
        if state.qop is not None:
            parts += (f"qop={state.qop}", f"nc={nc}")
        return ", ".join(parts)

    def reset(self) -> None:
        self.states.clear()
        self.error = None

    def _choose(self, values: list[str]) -> dict[str, tuple[str, dict[str, str]]]:
        """Per realm (in order of appearance), the usable challenge with our most
        preferred algorithm. Challenges we cannot use are ignored (RFC 8760 §2.4)."""
        best: dict[str, tuple[int, str, dict[str, str]]] = {}
        for value in values:
            try:
                auth = parse_auth(value)
            except SipParseError:
                continue
            p = auth.params
            realm, nonce = p.get("realm"), p.get("nonce")
            if (
                not auth.is_digest
                or realm is None
                or not nonce
                or (self.realm is not None and realm != self.realm)
            ):
                continue
            if "\r" in realm + nonce or "\n" in realm + nonce:
                continue
            algorithm = canonical_algorithm(p.get("algorithm"))
            if algorithm is None or algorithm not in self.algorithms:
                continue
            if "qop" in p and _pick_qop(p["qop"]) is None:
                continue
            rank = self.algorithms.index(algorithm)
            if realm not in best or rank < best[realm][0]:
                best[realm] = (rank, algorithm, p)
        return {realm: (alg, p) for realm, (_, alg, p) in best.items()}


def _pick_qop(offered: str | None) -> str | None:
    """qop-options is a quoted comma list (RFC 3261 §25.1); "auth" is preferred over
    "auth-int". None: no qop offered (RFC 2069 style) or none we know."""
    if offered is None:
        return None
    options = {o.strip(" \t").lower() for o in offered.split(",")}
    return next((q for q in _QOP_PREFERENCE if q in options), None)
