"""Dialogs (RFC 3261 §12, §13.2.2.4, §15), sans-IO.

A dialog is created by a UAC from a 1xx-with-To-tag (early) or 2xx response to its
INVITE (`Dialog.uac`, §12.1.2), and by a UAS when it sends one (`Dialog.uas`,
§12.1.1). It then builds the requests sent inside it (`create_request`, §12.2.1.1;
`create_ack` for a 2xx, §13.2.2.4), checks the requests it receives
(`receive_request`, §12.2.2) and follows the responses (`receive_response`,
§12.2.1.2). Its lifetime is the table DIALOG_TABLE. `DialogSet` keeps the dialogs of
one element by dialog ID.

Messages are read through their typed accessors: a Contact or Record-Route that does
not parse raises SipParseError (answer 400); what cannot make a dialog raises
DialogError.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, NamedTuple

from .address import Address
from .grammar import Params
from .headers import Headers
from .ids import new_branch, new_cseq
from .message import Request, Response
from .uri import SipUri, Uri

__all__ = [
    "DIALOG_TABLE",
    "TARGET_REFRESH_METHODS",
    "Dialog",
    "DialogError",
    "DialogEvent",
    "DialogId",
    "DialogSet",
    "DialogState",
    "Role",
    "next_hop",
]

# Requests that may change the remote target: re-INVITE (§12.2), UPDATE (RFC 3311 §5),
# SUBSCRIBE and NOTIFY (RFC 6665 §4.1.2.1, §4.2.1.2).
TARGET_REFRESH_METHODS: Final = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY"})
MAX_FORWARDS: Final = "70"  # §8.1.1.6


class DialogError(ValueError):
    """A message that cannot create or belong to this dialog."""


class Role(StrEnum):
    UAC = "UAC"
    UAS = "UAS"


class DialogState(StrEnum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class DialogEvent(StrEnum):
    PROVISIONAL = "1xx to the INVITE"
    SUCCESS = "2xx to the INVITE"
    FAILURE = "300-699 to the INVITE that created the dialog"
    BYE = "BYE sent or received"
    GONE = "481 or 408 to a request inside the dialog"


@dataclass(frozen=True, slots=True)
class DialogRow:
    next: DialogState
    ref: str


# (state, event) -> next state. Pairs not listed change nothing (a 300-699 to a
# re-INVITE leaves the dialog as it was, §14.1).
DIALOG_TABLE: Final[dict[tuple[DialogState, DialogEvent], DialogRow]] = {
    (DialogState.EARLY, DialogEvent.PROVISIONAL): DialogRow(DialogState.EARLY, "§12.1"),
    (DialogState.EARLY, DialogEvent.SUCCESS): DialogRow(
        DialogState.CONFIRMED, "§12.1, §13.2.2.4: route set and target from the 2xx"
    ),
    (DialogState.EARLY, DialogEvent.FAILURE): DialogRow(DialogState.TERMINATED, "§12.3"),
    (DialogState.EARLY, DialogEvent.BYE): DialogRow(DialogState.TERMINATED, "§15: the caller may BYE early"),
    (DialogState.EARLY, DialogEvent.GONE): DialogRow(DialogState.TERMINATED, "§12.2.1.2"),
    (DialogState.CONFIRMED, DialogEvent.SUCCESS): DialogRow(DialogState.CONFIRMED, "§13.2.2.4"),
    (DialogState.CONFIRMED, DialogEvent.BYE): DialogRow(DialogState.TERMINATED, "§15.1.1, §15.1.2"),
    (DialogState.CONFIRMED, DialogEvent.GONE): DialogRow(DialogState.TERMINATED, "§12.2.1.2"),
}


class DialogId(NamedTuple):
    """Call-ID, local tag, remote tag (§12). The remote tag is "" for an RFC 2543 peer."""

    call_id: str
    local_tag: str
    remote_tag: str


def _party(address: Address, tag: str | None) -> Address:
    params: Params = {k: v for k, v in address.params.items() if k != "tag"}
    if tag:
        params["tag"] = tag
    return Address(address.uri, address.display_name, params)


class Dialog:
    """The state of one dialog (§12): ID, sequence numbers, URIs, route set, target."""

    __slots__ = (
        "call_id",
        "invite_seq",
        "last_ack",
        "local",
        "local_contact",
        "local_seq",
        "remote",
        "remote_seq",
        "remote_target",
        "role",
        "route_set",
        "secure",
        "state",
    )

    def __init__(
        self,
        role: Role,
        state: DialogState,
        call_id: str,
        *,
        local: Address,
        remote: Address,
        remote_target: Uri,
        route_set: tuple[Address, ...] = (),
        local_seq: int | None = None,
        remote_seq: int | None = None,
        local_contact: Address | None = None,
        secure: bool = False,
    ) -> None:
        self.role = role
        self.state = state
        self.call_id = call_id
        self.local = local  # From of the requests we send, with the local tag
        self.remote = remote  # their To, with the remote tag (if any)
        self.remote_target = remote_target
        self.route_set = route_set
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.local_contact = local_contact
        self.secure = secure
        self.invite_seq: int | None = None  # CSeq of the last INVITE we sent (for its ACK)
        self.last_ack: Request | None = None

    # -- creation ---------------------------------------------------------------------------

    @classmethod
    def uac(cls, request: Request, response: Response, *, transport: str = "UDP") -> Dialog:
        """The UAC's dialog from a 101-199 (with To tag: early) or 2xx (confirmed)
        response to `request` (§12.1.2): route set from Record-Route reversed, remote
        target from Contact, local CSeq from the request."""
        if not 101 <= response.status <= 299:
            raise DialogError(f"a {response.status} response creates no dialog (§12.1)")
        remote_tag = response.to.tag or ""
        if response.status < 200 and not remote_tag:
            raise DialogError("a provisional response without To tag creates no dialog (§12.1)")
        contacts = response.contacts
        dialog = cls(
            Role.UAC,
            DialogState.EARLY if response.status < 200 else DialogState.CONFIRMED,
            request.call_id,
            local=_party(request.from_, request.from_.tag),
            remote=_party(response.to, remote_tag),
            remote_target=contacts[0].uri if contacts else request.uri,
            route_set=tuple(reversed(response.record_route)),
            local_seq=request.cseq.seq,
            local_contact=request.contacts[0] if request.contacts else None,
            secure=_secure(request.uri, transport),
        )
        if request.method == "INVITE":
            dialog.invite_seq = request.cseq.seq
        return dialog

    @classmethod
    def uas(cls, request: Request, response: Response, *, transport: str = "UDP") -> Dialog:
        """The UAS's dialog when it sends `response` (1xx with To tag: early; 2xx:
        confirmed) to `request` (§12.1.1): route set from the request's Record-Route in
        order, remote target from its Contact, remote CSeq from it, local CSeq empty."""
        if not 101 <= response.status <= 299 or not response.to.tag:
            raise DialogError("only a 101-299 response with a To tag creates a dialog (§12.1.1)")
        contacts = request.contacts
        if not contacts:
            raise DialogError(f"{request.method} without Contact cannot create a dialog (§8.1.1.8)")
        return cls(
            Role.UAS,
            DialogState.EARLY if response.status < 200 else DialogState.CONFIRMED,
            request.call_id,
            local=_party(response.to, response.to.tag),
            remote=_party(request.from_, request.from_.tag),
            remote_target=contacts[0].uri,
            route_set=request.record_route,
            remote_seq=request.cseq.seq,
            local_contact=response.contacts[0] if response.contacts else None,
            secure=_secure(request.uri, transport),
        )

    # -- identity ---------------------------------------------------------------------------

    @property
    def id(self) -> DialogId:
        return DialogId(self.call_id, self.local.tag or "", self.remote.tag or "")

    @property
    def local_tag(self) -> str:
        return self.local.tag or ""

    @property
    def remote_tag(self) -> str:
        return self.remote.tag or ""

    def __repr__(self) -> str:
        return f"<Dialog {self.role} {self.state} {self.call_id} {self.local_tag}/{self.remote_tag}>"

    def fire(self, event: DialogEvent) -> DialogState:
        """Apply `event` by DIALOG_TABLE; returns the (possibly unchanged) state."""
        row = DIALOG_TABLE.get((self.state, event))
        if row is not None:
            self.state = row.next
        return self.state

    # -- requests we send ---------------------------------------------------------------

    def create_request(
        self,
        method: str,
        *,
        via: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Request:
        """A request inside the dialog (§12.2.1.1): To/From/Call-ID of the dialog, the
        next local CSeq, Request-URI and Route from the remote target and the route
        set (loose routing, or the strict-routing rewrite when the first route lacks
        `lr`), Contact on target refresh requests. `via` ("SIP/2.0/UDP host:port") adds
        the top Via with a new branch. A BYE terminates the dialog (§15.1.1)."""
        if method in ("ACK", "CANCEL"):
            raise DialogError(f"{method} is not built this way: create_ack / build_cancel")
        if self.state is DialogState.TERMINATED:
            raise DialogError("the dialog has ended")
        self.local_seq = (self.local_seq if self.local_seq is not None else new_cseq() - 1) + 1
        if method == "INVITE":
            self.invite_seq = self.local_seq
        request = self._request(method, self.local_seq, via, headers, body)
        if method == "BYE":
            self.fire(DialogEvent.BYE)
        return request

    def create_ack(
        self,
        cseq: int | None = None,
        *,
        via: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Request:
        """The ACK for a 2xx to INVITE, built by the UA core end to end (§13.2.2.4):
        like any request in the dialog, but with the CSeq number of the INVITE it
        acknowledges (the last INVITE sent, unless `cseq` says which) and method ACK.
        Kept as `last_ack`: every retransmission of the 2xx gets it again."""
        seq = self.invite_seq if cseq is None else cseq
        if seq is None:
            raise DialogError("no INVITE to acknowledge")
        self.last_ack = self._request("ACK", seq, via, headers, body)
        return self.last_ack

    def _request(
        self, method: str, seq: int, via: str | None, extra: Iterable[tuple[str, str]], body: bytes
    ) -> Request:
        uri, routes = self._route()
        fields: list[tuple[str, str, str]] = []
        if via is not None:
            fields.append(("via", "Via", f"{via};branch={new_branch()}"))
        fields.append(("max-forwards", "Max-Forwards", MAX_FORWARDS))
        fields += [("route", "Route", str(route)) for route in routes]
        fields += [
            ("to", "To", str(self.remote)),
            ("from", "From", str(self.local)),
            ("call-id", "Call-ID", self.call_id),
            ("cseq", "CSeq", f"{seq} {method}"),
        ]
        if method in TARGET_REFRESH_METHODS and self.local_contact is not None:
            fields.append(("contact", "Contact", str(self.local_contact)))
        headers = Headers.from_fields(fields)
        for name, value in extra:
            headers.add(name, value)
        return Request(method, uri, headers, body)

    def _route(self) -> tuple[Uri, tuple[Address, ...]]:
        """Request-URI and Route header fields (§12.2.1.1)."""
        route_set = self.route_set
        if not route_set:
            return self.remote_target, ()
        first = route_set[0].uri
        if isinstance(first, SipUri) and not first.lr:
            # Strict router (RFC 2543): it goes in the Request-URI, without the
            # parameters a Request-URI cannot carry (§19.1.1 Table 1: method, headers);
            # the remote target becomes the last Route.
            params = {k: v for k, v in first.params.items() if k != "method"}
            request_uri = dataclasses.replace(first, params=params, headers=[])
            return request_uri, (*route_set[1:], Address(self.remote_target))
        return self.remote_target, route_set

    # -- requests we receive ------------------------------------------------------------

    def receive_request(self, request: Request) -> int | None:
        """Check a request that matched this dialog (§12.2.2). Returns the status to
        reject it with, or None when the UAS may process it: CSeq lower than the
        remote CSeq is out of order (500). ACK and CANCEL carry the number of the
        request they belong to and are not checked. A target refresh request with a
        Contact replaces the remote target; BYE terminates the dialog (§15.1.2)."""
        method = request.method
        if method in ("ACK", "CANCEL"):
            return None
        seq = request.cseq.seq
        if self.remote_seq is not None and seq < self.remote_seq:
            return 500  # §12.2.2
        self.remote_seq = seq
        if method in TARGET_REFRESH_METHODS and request.contacts:
            self.remote_target = request.contacts[0].uri  # §12.2.2
        if method == "BYE":
            self.fire(DialogEvent.BYE)
        return None

    def send_response(self, request: Request, response: Response) -> DialogState:
        """A UAS response to the INVITE that created this (early) dialog: 2xx confirms
        it, 300-699 ends it (§12.1.1, §12.3)."""
        if request.method == "INVITE" and self.state is DialogState.EARLY:
            if 200 <= response.status < 300:
                self.fire(DialogEvent.SUCCESS)
            elif response.status >= 300:
                self.fire(DialogEvent.FAILURE)
        return self.state

    # -- responses we receive -----------------------------------------------------------

    def receive_response(self, response: Response) -> DialogState:
        """A response to a request this UA sent in the dialog (§12.2.1.2, §13.2.2.4).

        A 2xx to the INVITE that created an early dialog confirms it and the route set
        is recomputed from it; a 2xx to a target refresh request replaces the remote
        target with its Contact; 481 or 408 ends the dialog; a 300-699 to the INVITE
        of an early dialog ends it."""
        status, method = response.status, response.cseq.method
        early_invite = self.state is DialogState.EARLY and method == "INVITE"
        if 200 <= status < 300:
            if early_invite:
                if self.role is Role.UAC:
                    self.route_set = tuple(reversed(response.record_route))
                self.fire(DialogEvent.SUCCESS)
            if method in TARGET_REFRESH_METHODS and response.contacts:
                self.remote_target = response.contacts[0].uri
        elif status < 200:
            self.fire(DialogEvent.PROVISIONAL)
        elif early_invite and response.cseq.seq == self.invite_seq:
            self.fire(DialogEvent.FAILURE)
        elif status in (481, 408):
            self.fire(DialogEvent.GONE)
        return self.state


def _secure(uri: Uri, transport: str) -> bool:
    """§12.1.1/§12.1.2: a SIPS Request-URI over TLS."""
    return isinstance(uri, SipUri) and uri.secure and transport.upper() == "TLS"


def next_hop(request: Request) -> Uri:
    """Where a request goes first (§8.1.2): its first Route, else its Request-URI. The
    address and transport come from RFC 3263 resolution, which is not done here."""
    routes = request.route
    return routes[0].uri if routes else request.uri


class DialogSet:
    """The dialogs of one element, by dialog ID. Also finds the dialogs one INVITE
    created when it forked (same Call-ID and local tag)."""

    __slots__ = ("_dialogs",)

    def __init__(self) -> None:
        self._dialogs: dict[DialogId, Dialog] = {}

    def __len__(self) -> int:
        return len(self._dialogs)

    def __iter__(self) -> Iterator[Dialog]:
        return iter(list(self._dialogs.values()))

    def __contains__(self, dialog_id: object) -> bool:
        return dialog_id in self._dialogs

    def add(self, dialog: Dialog) -> Dialog:
        if dialog.id in self._dialogs:
            raise DialogError(f"dialog {dialog.id} exists")
        self._dialogs[dialog.id] = dialog
        return dialog

    def get(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.get(dialog_id)

    def remove(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.pop(dialog_id, None)

    def for_request(self, request: Request) -> Dialog | None:
        """The dialog a received request belongs to (§12.2.2): our tag is its To tag."""
        return self._dialogs.get(DialogId(request.call_id, request.to.tag or "", request.from_.tag or ""))

    def for_response(self, response: Response) -> Dialog | None:
        """The dialog a received response belongs to: our tag is its From tag."""
        return self._dialogs.get(DialogId(response.call_id, response.from_.tag or "", response.to.tag or ""))

    def forks(self, call_id: str, local_tag: str) -> list[Dialog]:
        return [d for d in self._dialogs.values() if d.call_id == call_id and d.local_tag == local_tag]

    def uac_response(self, request: Request, response: Response, *, transport: str = "UDP") -> Dialog | None:
        """Follow a response to `request`, a dialog-creating INVITE this UAC sent or a
        request inside a dialog (§12.1.2, §12.2.1.2, §13.2.2.4).

        Creates the dialog for a 1xx-with-tag or 2xx from a new remote tag (each fork
        of the INVITE gets its own), updates an existing one, and on a 300-699 to the
        INVITE ends all its early dialogs. Returns the dialog concerned, if any;
        terminated dialogs are removed."""
        dialog = self.for_response(response)
        status = response.status
        if dialog is None and request.method == "INVITE" and 101 <= status <= 299 and response.to.tag:
            dialog = self.add(Dialog.uac(request, response, transport=transport))
        elif dialog is not None:
            dialog.receive_response(response)
        ended = [dialog] if dialog is not None else []
        if status >= 300 and request.method == "INVITE":
            for other in self.forks(response.call_id, response.from_.tag or ""):
                if other.state is DialogState.EARLY and other.invite_seq == response.cseq.seq:
                    other.fire(DialogEvent.FAILURE)
                    ended.append(other)
        for d in ended:
            if d.state is DialogState.TERMINATED and self._dialogs.get(d.id) is d:
                del self._dialogs[d.id]
        return dialog

    def prune(self) -> int:
        """Remove terminated dialogs; returns how many."""
        ended = [key for key, d in self._dialogs.items() if d.state is DialogState.TERMINATED]
        for key in ended:
            del self._dialogs[key]
        return len(ended)
