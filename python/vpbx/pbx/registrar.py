"""The registrar of RFC 3261 §10.3, sans-IO: a REGISTER and `now` in, a response out.

    registrar = Registrar("pbx.example.com", DigestAuthenticator(realm, secret),
                          lookup_ha1, MemoryLocationStore(), guard)
    response = registrar.handle(request, source, now)   # None: drop (banned source)

`now` is Unix time in seconds (bindings and the Date header are absolute times).

This is a single-domain PBX: any host in the Request-URI and To is ours (unless
`domains` names them), and an AOR is the user part of the To URI, the extension. An
account may change only its own AOR (§10.3 step 6, authorization). The steps below
carry the numbers of §10.3; steps 1-3 (domain, Require) come first, then digest
authentication (§22), which every unknown user fails exactly like a wrong password
(the authenticator gives both the same challenge: no extension enumeration). A right
password from a source outside the account's allowlist is answered the same way too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Final

from vpbx.security import AccountAllowlists, SourceGuard, judge
from vpbx.sip.address import Address
from vpbx.sip.auth import DigestAuthenticator
from vpbx.sip.errors import SipParseError
from vpbx.sip.ids import new_tag
from vpbx.sip.message import Request, Response, build_response
from vpbx.sip.transaction_match import Dest
from vpbx.sip.uri import SipUri, host_key, parse_uri

from .location import Binding, LocationStore

CredentialLookup = Callable[[str, str], str | None]
"""lookup_ha1(username, base_algorithm) -> the stored HA1 (hex) or None; see
vpbx.sip.auth.LookupHa1. Must take the same time whether the user exists or not."""

SUPPORTED_EXTENSIONS: Final[frozenset[str]] = frozenset()  # option tags a REGISTER may Require (§10.3 step 2)


@dataclass(slots=True)
class RegistrarStats:
    """Counters for /metrics (declared in the metrics module, not here)."""

    requests: int = 0
    challenges: int = 0
    auth_failures: int = 0
    dropped: int = 0
    forbidden: int = 0
    too_brief: int = 0
    out_of_order: int = 0
    bad_requests: int = 0
    source_refused: int = 0  # right password, source outside the account's allowlist
    accepted: int = 0
    bindings_added: int = 0
    bindings_removed: int = 0


class _RefusedError(Exception):
    """A step of §10.3 refuses the request with this response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class Registrar:
    """REGISTER handling for one realm. See the module docstring.

    Args:
        realm: the digest realm (and, for logs, the PBX domain).
        authenticator: challenges and verification (its realm should equal `realm`).
        lookup_ha1: the credential store.
        location: where bindings are kept.
        guard: failed-auth counting and bans (None: no front-door protection).
        allowlists: per-account source CIDRs (None: every account from anywhere).
        min_expires, max_expires, default_expires: seconds (§10.3 step 7; §10.2.1.1).
        max_bindings: contacts per AOR; more get 403 (a phone that leaks contacts).
        domains: hosts accepted in the Request-URI (None: any, single-domain PBX).
    """

    __slots__ = (
        "allowlists",
        "authenticator",
        "default_expires",
        "domains",
        "guard",
        "location",
        "lookup_ha1",
        "max_bindings",
        "max_expires",
        "min_expires",
        "realm",
        "stats",
    )

    def __init__(
        self,
        realm: str,
        authenticator: DigestAuthenticator,
        lookup_ha1: CredentialLookup,
        location: LocationStore,
        guard: SourceGuard | None = None,
        *,
        allowlists: AccountAllowlists | None = None,
        min_expires: int = 60,
        max_expires: int = 3600,
        default_expires: int = 3600,
        max_bindings: int = 10,
        domains: frozenset[str] | None = None,
    ) -> None:
        if not 0 < min_expires <= default_expires <= max_expires:
            raise ValueError("need 0 < min_expires <= default_expires <= max_expires")
        if max_bindings < 1:
            raise ValueError("max_bindings must be at least 1")
        self.realm = realm
        self.authenticator = authenticator
        self.lookup_ha1 = lookup_ha1
        self.location = location
        self.guard = guard
        self.allowlists = allowlists
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = default_expires
        self.max_bindings = max_bindings
        self.domains = None if domains is None else frozenset(host_key(d) for d in domains)
        self.stats = RegistrarStats()

    @staticmethod
    def aor_key(uri: SipUri) -> str:
        """The AOR a To URI names: its user part (the extension)."""
        return uri.user or ""

    # -- the request ----------------------------------------------------------------------

    def handle(self, request: Request, source: Dest, now: float, transport: str = "UDP") -> Response | None:
        """Answer a REGISTER (RFC 3261 §10.3). None: send nothing (the source is banned,
        or this failure got it banned). Never raises for any content of the request."""
        self.stats.requests += 1
        ip = source[0]
        guard = self.guard
        if guard is not None and guard.is_banned(ip, now):
            self.stats.dropped += 1
            return None
        try:
            return self._handle(request, source, now, transport)
        except _RefusedError as refused:
            return refused.response
        except SipParseError as err:  # a header read lazily (Contact, Expires ...) is broken
            self.stats.bad_requests += 1
            return self._reply(request, err.status, err.reason)

    def _handle(self, request: Request, source: Dest, now: float, transport: str) -> Response | None:
        if request.method != "REGISTER":
            raise ValueError(f"not a REGISTER: {request.method}")
        # Step 1: the Request-URI names a domain we are responsible for.
        ruri = request.uri
        if not isinstance(ruri, SipUri) or (
            self.domains is not None and host_key(ruri.host) not in self.domains
        ):
            raise _RefusedError(self._reply(request, 404, "Domain Not Served"))
        # Step 2: Require (§8.2.2.3): we understand no extension of REGISTER.
        unsupported = [tag for tag in request.require if tag not in SUPPORTED_EXTENSIONS]
        if unsupported:
            response = self._reply(request, 420)
            response.headers.add("Unsupported", ", ".join(unsupported))
            raise _RefusedError(response)
        # Step 3 is for proxies that are not the registrar. Step 4: authentication (§22),
        # which includes the account's source allowlist.
        username = self._authenticate(request, source, now)
        if username is None:
            return None
        # Step 5: the AOR from To; step 6: the account may change only its own AOR.
        to_uri = request.to.uri
        if not isinstance(to_uri, SipUri) or to_uri.user is None:
            raise _RefusedError(self._reply(request, 404, "Not Found"))
        if to_uri.user != username:
            self.stats.forbidden += 1
            raise _RefusedError(self._reply(request, 403, "Forbidden"))
        aor = self.aor_key(to_uri)
        current = self.location.bindings(aor, now)
        updated = self._apply(request, aor, current, source=source, transport=transport, now=now)
        if updated is not None:
            self.location.replace(aor, updated)
            added = sum(1 for b in updated if not any(c.uri == b.uri for c in current))
            self.stats.bindings_added += added
            self.stats.bindings_removed += len(current) - (len(updated) - added)
            current = updated
        self.stats.accepted += 1
        return self._ok(request, current, now)

    def _authenticate(self, request: Request, source: Dest, now: float) -> str | None:
        """The authenticated username; raises _RefusedError with a challenge, or returns None
        when the failure got the source banned."""
        result = self.authenticator.verify(request, self.lookup_ha1, now)
        verdict = judge(result, source[0], now, guard=self.guard, allowlists=self.allowlists)
        if verdict.username is not None:
            return verdict.username
        if verdict.outside:  # answered exactly like a wrong password
            self.stats.source_refused += 1
        if verdict.failed:
            self.stats.auth_failures += 1
            if verdict.banned:
                self.stats.dropped += 1
                return None
        self.stats.challenges += 1
        raise _RefusedError(self.authenticator.challenge(request, now, stale=result.stale))

    # -- step 6 and 7: the bindings -------------------------------------------------------

    def _apply(
        self, request: Request, aor: str, current: list[Binding], *, source: Dest, transport: str, now: float
    ) -> list[Binding] | None:
        """The AOR's bindings after this request; None when the request changes nothing
        (a query without Contact). Raises _RefusedError for a request that must fail: then
        nothing changes (the updates are all-or-nothing, §10.3 step 7)."""
        call_id = request.call_id
        cseq = request.cseq.seq
        header_expires = request.expires
        if request.contact_star:
            # Step 6: "*" only with Expires: 0 (and, by the grammar, alone).
            if header_expires != 0:
                self.stats.bad_requests += 1
                raise _RefusedError(self._reply(request, 400, "Invalid Wildcard Contact"))
            for b in current:
                if b.call_id == call_id and cseq <= b.cseq:
                    self._out_of_order(request)
            return []
        contacts = request.contacts
        if not contacts:
            return None  # a query (§10.2.3)
        # Step 7, first pass: every expiry, and 423 before anything changes.
        wanted: list[tuple[Address, SipUri | None, str, int]] = []
        for address in contacts:
            expires = address.expires
            if expires is None:
                expires = header_expires if header_expires is not None else self.default_expires
            if 0 < expires < self.min_expires:
                self.stats.too_brief += 1
                response = self._reply(request, 423)
                response.headers.add("Min-Expires", str(self.min_expires))
                raise _RefusedError(response)
            uri = address.uri
            wanted.append((address, uri if isinstance(uri, SipUri) else None, str(uri), expires))
        result = list(current)
        user_agent = request.headers.get("user-agent")
        for address, sip_uri, text, expires in wanted:
            index = _find(result, sip_uri, text)
            if index is not None:
                old = result[index]
                fresh = not any(old is c for c in current)  # set earlier in this request
                if not fresh and old.call_id == call_id and cseq <= old.cseq:
                    self._out_of_order(request)
            if expires == 0:
                if index is not None:
                    del result[index]
                continue
            params = {k: v for k, v in address.params.items() if k != "expires"}
            contact = str(Address(address.uri, address.display_name, params))
            binding = Binding(
                aor=aor,
                uri=text,
                contact=contact,
                expires_at=now + min(expires, self.max_expires),
                call_id=call_id,
                cseq=cseq,
                source=source,
                transport=transport,
                q=address.q,
                user_agent=user_agent,
                registered_at=now if index is None else result[index].registered_at,
            )
            if index is None:
                result.append(binding)
            else:
                result[index] = binding
        if len(result) > self.max_bindings and len(result) > len(current):
            self.stats.forbidden += 1
            raise _RefusedError(self._reply(request, 403, "Too Many Contacts"))
        return result

    def _out_of_order(self, request: Request) -> None:
        """§10.3 step 7: same Call-ID, CSeq not higher: "the update MUST be aborted and
        the request fails" (a delayed or replayed REGISTER). Nothing changes."""
        self.stats.out_of_order += 1
        raise _RefusedError(self._reply(request, 500, "Out Of Order Registration"))

    # -- step 8: the answer ---------------------------------------------------------------

    def _ok(self, request: Request, bindings: list[Binding], now: float) -> Response:
        """200 with every current binding and its remaining time, and a Date (§10.3 step 8)."""
        response = self._reply(request, 200)
        headers = response.headers
        for b in bindings:
            headers.add("Contact", f"{b.contact};expires={b.remaining(now)}")
        headers.add("Date", formatdate(now, usegmt=True))
        return response

    def _reply(self, request: Request, status: int, reason: str | None = None) -> Response:
        return build_response(request, status, reason, to_tag=new_tag())


def _find(bindings: list[Binding], uri: SipUri | None, text: str) -> int | None:
    """The index of the binding whose contact URI equals `uri` (RFC 3261 §19.1.4)."""
    for i, b in enumerate(bindings):
        if b.uri == text:
            return i
    if uri is None:
        return None
    for i, b in enumerate(bindings):
        try:
            other = parse_uri(b.uri)
        except SipParseError:
            continue
        if other == uri:
            return i
    return None
