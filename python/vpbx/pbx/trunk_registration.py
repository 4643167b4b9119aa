"""Outbound registration of one trunk to its provider (RFC 3261 §10.2), sans-IO.

    reg = TrunkRegistration(trunk, local=("192.0.2.10", 5060))
    request = reg.start(now)                 # REGISTER to send to (trunk.host, trunk.port)
    request = reg.on_response(response, now) # a response to our REGISTER: maybe the next one
    request = reg.on_failure("timeout", now) # Timer F or a transport error (§17.1.2.2, §17.1.4)
    request = reg.on_timer(now)              # at reg.next_deadline: refresh or retry
    request = reg.stop(now)                  # trunk removed/disabled: unregister (Expires: 0)

Every method returns the REGISTER to send, or None. The caller (vpbx.io.trunks) starts a
client transaction for it and feeds back what comes of it; only the answer to the latest
REGISTER counts (older CSeqs are ignored).

States: ``disabled`` (stopped), ``registering`` (a REGISTER out, nothing granted yet),
``registered`` (the registrar answered 2xx; refreshed at `refresh_ratio` of the granted
time), ``failing`` (the last attempt failed: `last_error` says why; retried after a backoff
of `backoff_min_s` doubling to `backoff_max_s`, or the server's Retry-After).

Protocol points:
- One Call-ID and From tag for the life of the machine, CSeq + 1 on every REGISTER
  (§10.2: "the same Call-ID for all registrations during a single boot cycle", §8.1.1.5).
- 401/407: vpbx.sip.DigestClient answers the challenge (§22.2, RFC 8760); a second fresh
  challenge means the credentials are wrong: failing "credentials rejected". Refreshes carry
  the cached credentials (nc + 1), so a registrar that accepts them needs no new round trip.
- 423 Interval Too Brief: asked again with the Min-Expires it names (§10.2.8).
- The time granted is our Contact's expires parameter in the 2xx, else its Expires header,
  else what we asked for (§10.2.4).
- Unregistering removes only our Contact: Expires: 0 (§10.2.2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal

from vpbx.sip.auth_client import DigestClient
from vpbx.sip.errors import SipParseError
from vpbx.sip.ids import new_branch, new_call_id, new_tag
from vpbx.sip.message import Request, Response
from vpbx.sip.uri import SipUri
from vpbx.store.trunks import TrunkSpec

__all__ = ["STATES", "State", "TrunkRegistration"]

State = Literal["disabled", "registering", "registered", "failing"]
STATES: Final[tuple[State, ...]] = ("disabled", "registering", "registered", "failing")
USER_AGENT: Final = "vpbx"
ALLOW: Final = "INVITE, ACK, CANCEL, BYE, OPTIONS"
MAX_MIN_EXPIRES_RETRIES: Final = 2
MIN_REFRESH_S: Final = 1.0


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class TrunkRegistration:
    """The registration state machine of one trunk (module doc)."""

    def __init__(
        self,
        trunk: TrunkSpec,
        *,
        local: tuple[str, int],
        backoff_min_s: float = 30.0,
        backoff_max_s: float = 300.0,
        refresh_ratio: float = 0.75,
        ids: Callable[[], str] = new_branch,
    ) -> None:
        self.trunk = trunk
        self.local = local
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.refresh_ratio = refresh_ratio
        self._branch = ids
        self.client = DigestClient(trunk.auth_username or trunk.username, trunk.secret)
        self.call_id = new_call_id(local[0])
        self.tag = new_tag()
        self.cseq = 0
        self.state: State = "disabled"
        self.last_error: str | None = None
        self.failures_total = 0  # attempts that ended in failure
        self.consecutive_failures = 0
        self.registered_until: float | None = None
        self.next_deadline: float | None = None
        self.expires = trunk.register_interval_s  # what we ask for
        self.stopping = False
        self._pending: int | None = None  # CSeq of the REGISTER whose answer we wait for
        self._min_expires_retries = 0

    # -- addresses --------------------------------------------------------------------------

    @property
    def domain(self) -> str:
        """The registrar's domain: from_domain, else host[:port] (§10.2: Request-URI)."""
        t = self.trunk
        if t.from_domain:
            return t.from_domain
        return _host(t.host) if t.port == 5060 else f"{_host(t.host)}:{t.port}"

    @property
    def aor(self) -> str:
        return f"sip:{self.trunk.username}@{self.domain}"

    @property
    def contact(self) -> str:
        host, port = self.local
        uri = f"sip:{self.trunk.username}@{_host(host)}:{port}"
        return uri + (f";transport={self.trunk.transport}" if self.trunk.transport != "udp" else "")

    @property
    def finished(self) -> bool:
        """Stopped, and the unregistration (if any) has been answered or has failed."""
        return self.stopping and self._pending is None

    # -- inputs -----------------------------------------------------------------------------

    def start(self, now: float) -> Request | None:
        """Begin registering (no-op unless disabled and not stopping)."""
        if self.stopping or self.state != "disabled":
            return None
        self.state = "registering"
        return self._register(now, self.expires)

    def stop(self, now: float) -> Request | None:
        """Unregister our contact when the registrar may hold it; then the machine is done."""
        if self.stopping:
            return None
        self.stopping = True
        self.next_deadline = None
        held = self.state in ("registered", "registering") or (
            self.registered_until is not None and self.registered_until > now
        )
        self.state = "disabled"
        if not held:
            self._pending = None
            return None
        return self._register(now, 0)

    def on_timer(self, now: float) -> Request | None:
        if self.next_deadline is None or now < self.next_deadline or self.stopping:
            return None
        self.next_deadline = None
        if self.state == "failing":
            self.client.reset()  # a retry starts afresh: no stale "rejected" memory
            self.state = "registering"
        return self._register(now, self.expires)

    def on_failure(self, reason: str, now: float) -> Request | None:
        """The REGISTER in flight got no answer (timeout) or could not be sent."""
        if self._pending is None:
            return None
        self._pending = None
        if not self.stopping:
            self._fail(reason, now, retry_after=None)
        return None

    def on_response(self, response: Response, now: float) -> Request | None:
        try:
            cseq, call_id = response.cseq, response.call_id
        except SipParseError:
            return None
        if self._pending is None or cseq.seq != self._pending or call_id != self.call_id:
            return None  # an answer to an older REGISTER, or not ours
        status = response.status
        if status < 200:
            return None
        self._pending = None
        expires = 0 if self.stopping else self.expires
        if status in (401, 407):
            if self.client.on_challenge(response):
                return self._register(now, expires)
            if not self.stopping:
                self._fail(f"credentials rejected ({status})", now, retry_after=None)
            return None
        if self.stopping:
            return None  # unregistered (or refused: the binding expires by itself)
        if status == 423:  # Interval Too Brief (§10.2.8)
            asked = _int(response.headers.get("min-expires"))
            if (
                asked is not None
                and asked > self.expires
                and self._min_expires_retries < MAX_MIN_EXPIRES_RETRIES
            ):
                self._min_expires_retries += 1
                self.expires = asked
                return self._register(now, self.expires)
        if 200 <= status < 300:
            self._registered(response, now)
            return None
        retry_after = _int((response.headers.get("retry-after") or "").split(";")[0].strip() or None)
        self._fail(f"{status} {response.reason}", now, retry_after=retry_after)
        return None

    # -- internals --------------------------------------------------------------------------

    def _registered(self, response: Response, now: float) -> None:
        granted = self._granted(response)
        if granted <= 0:
            self._fail("registrar granted no time (Expires 0)", now, retry_after=None)
            return
        self.state = "registered"
        self.last_error = None
        self.consecutive_failures = 0
        self._min_expires_retries = 0
        self.registered_until = now + granted
        self.next_deadline = now + max(granted * self.refresh_ratio, min(MIN_REFRESH_S, granted / 2))

    def _granted(self, response: Response) -> int:
        """Our Contact's expires, else Expires, else what we asked (§10.2.4)."""
        host, port = self.local
        try:
            contacts = response.contacts
            header = response.expires
        except SipParseError:
            return self.expires
        for address in contacts:
            uri = address.uri
            if (
                isinstance(uri, SipUri)
                and uri.host.strip("[]") == host.strip("[]")
                and (uri.port or 5060) == port
            ):
                try:
                    value = address.expires
                except SipParseError:
                    value = None
                if value is not None:
                    return value
        return header if header is not None else self.expires

    def _fail(self, reason: str, now: float, *, retry_after: int | None) -> None:
        self.state = "failing"
        self.last_error = reason
        self.failures_total += 1
        self.consecutive_failures += 1
        delay = min(self.backoff_min_s * 2 ** (self.consecutive_failures - 1), self.backoff_max_s)
        if retry_after is not None:
            delay = min(max(float(retry_after), 1.0), self.backoff_max_s)
        self.next_deadline = now + delay

    def _register(self, now: float, expires: int) -> Request:
        """The next REGISTER (§10.2), with credentials when a challenge is known."""
        del now
        self.cseq += 1
        self._pending = self.cseq
        host, port = self.local
        transport = self.trunk.transport.upper()
        uri = f"sip:{self.domain}" + (f";transport={self.trunk.transport}" if transport != "UDP" else "")
        request = Request(
            "REGISTER",
            uri,
            [
                ("Via", f"SIP/2.0/{transport} {_host(host)}:{port};branch={self._branch()};rport"),
                ("Max-Forwards", "70"),
                ("From", f"<{self.aor}>;tag={self.tag}"),
                ("To", f"<{self.aor}>"),
                ("Call-ID", self.call_id),
                ("CSeq", f"{self.cseq} REGISTER"),
                ("Contact", f"<{self.contact}>"),
                ("Expires", str(expires)),
                ("Allow", ALLOW),
                ("User-Agent", USER_AGENT),
            ],
        )
        if self.client.states:
            self.client.authorize(request)
        return request


def _int(text: str | None) -> int | None:
    if text is None or not text.strip().isdigit():
        return None
    return int(text.strip())
