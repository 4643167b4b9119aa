"""Which transaction a message belongs to (RFC 3261 §17.1.3, §17.2.3, §9.2), where a
response goes (§18.2.2, RFC 3581), and the two requests the transaction layer builds
from others: the ACK for a non-2xx final response (§17.1.1.3) and CANCEL (§9.1).
"""

from __future__ import annotations

from sys import intern
from typing import Final, NamedTuple

from .fields import Via
from .headers import Headers
from .ids import MAGIC_COOKIE
from .message import Request, Response
from .uri import host_key

Dest = tuple[str, int]
"""Where a message goes or came from: (host, port) as the transport layer gives it."""

UNRELIABLE_TRANSPORTS: Final = frozenset({"UDP"})
_COOKIE: Final = MAGIC_COOKIE.lower()
_DEFAULT_PORT: Final = 5060


class TransactionKey(NamedTuple):
    """Identifies a transaction.

    Client side (§17.1.3): the branch of the request's top Via and the method.
    Server side (§17.2.3): the branch (compared case-insensitively, §7.3.1), the top
    Via's sent-by and the method (INVITE for an ACK). A request from an RFC 2543
    element, whose branch lacks the magic cookie, gets `branch` made of the fields
    §17.2.3 compares instead: Request-URI, From tag, Call-ID, CSeq number, top Via.
    """

    server: bool
    branch: str
    sent_by: str
    method: str


def client_key(branch: str, method: str) -> TransactionKey:
    return TransactionKey(False, branch, "", method)


def response_key(response: Response) -> TransactionKey | None:
    """The client transaction a response matches (§17.1.3): branch and CSeq method."""
    branch = response.via[0].branch
    return None if not branch else TransactionKey(False, branch, "", response.cseq.method)


def is_rfc3261_branch(branch: str | None) -> bool:
    return branch is not None and branch[:7].lower() == _COOKIE


def server_key(request: Request, method: str | None = None) -> TransactionKey:
    """The server transaction `request` matches (§17.2.3). `method` overrides the
    request's own: an ACK matches its INVITE, a CANCEL is looked up against the INVITE
    it cancels (§9.2)."""
    if method is None:
        method = "INVITE" if request.method == "ACK" else request.method
    via = request.via[0]
    branch = via.branch
    if branch is not None and branch[:7].lower() == _COOKIE:
        host = via.host
        sent_by = intern(f"{host_key(host) if host[0] == '[' else host.lower()}:{via.port or ''}")
        return TransactionKey(True, branch.lower(), sent_by, method)
    # RFC 2543 (§17.2.3): Request-URI, From tag, Call-ID, CSeq number and the top Via;
    # the To tag is compared by the caller (it differs between INVITE and ACK).
    from_tag = request.from_.tag or ""
    compound = f"2543|{request.uri}|{from_tag}|{request.call_id}|{request.cseq.seq}|{via}"
    return TransactionKey(True, compound, "", method)


def response_destination(via: Via, source: Dest, transport: str) -> Dest:
    """Where the responses to a request go (§18.2.2, RFC 3581 §4).

    Reliable transports answer on the connection the request came in on (`source`).
    Over UDP: to `maddr` if present, else to the source address (what `received`
    would say) at the source port when the client asked for `rport`, at the sent-by
    port (default 5060) otherwise.
    """
    if transport not in UNRELIABLE_TRANSPORTS:
        return source
    maddr = via.maddr
    if maddr:
        return maddr, via.port or _DEFAULT_PORT
    if via.has_rport:
        return source
    return source[0], via.port or _DEFAULT_PORT


def build_ack(request: Request, response: Response) -> Request:
    """The ACK a client INVITE transaction sends for a 300-699 response (§17.1.1.3):
    Request-URI, Call-ID, From and CSeq number of the INVITE, To of the response, the
    INVITE's top Via only, and its Route header fields."""
    headers = request.headers
    fields = [
        ("via", "Via", str(request.via[0])),
        ("max-forwards", "Max-Forwards", "70"),
    ]
    fields += [("route", "Route", value) for value in headers.get_list("route")]
    fields += [
        ("from", "From", headers.get_list("from")[0]),
        ("to", "To", response.headers.get_list("to")[0]),
        ("call-id", "Call-ID", request.call_id),
        ("cseq", "CSeq", f"{request.cseq.seq} ACK"),
    ]
    return Request("ACK", request.uri, Headers.from_fields(fields))


def build_cancel(invite: Request) -> Request:
    """A CANCEL for `invite` (§9.1): same Request-URI, Call-ID, To, From, CSeq number
    and top Via (so the same branch) as the INVITE, its Route header fields, and
    method CANCEL. The caller sends it to where the INVITE went."""
    headers = invite.headers
    fields = [
        ("via", "Via", str(invite.via[0])),
        ("max-forwards", "Max-Forwards", "70"),
    ]
    fields += [("route", "Route", value) for value in headers.get_list("route")]
    fields += [
        ("from", "From", headers.get_list("from")[0]),
        ("to", "To", headers.get_list("to")[0]),
        ("call-id", "Call-ID", invite.call_id),
        ("cseq", "CSeq", f"{invite.cseq.seq} CANCEL"),
    ]
    return Request("CANCEL", invite.uri, Headers.from_fields(fields))
