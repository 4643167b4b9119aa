"""Sans-IO SIP: message parsing and serialization (RFC 3261), no sockets, no clock.

`parse_message(datagram)` gives a Request or Response or raises SipParseError;
`StreamFramer().feed(tcp_bytes)` cuts a stream into messages, keep-alive pings and
errors; `build_response(request, 486, to_tag=...)` answers; `to_bytes()` serializes.
"""

from .address import Address, parse_address
from .auth import AuthResult, DigestAuthenticator
from .auth_client import DigestClient
from .dialog import Dialog, DialogSet
from .digest import compute_ha1, compute_ha1s
from .errors import SipParseError
from .fields import Auth, ContentType, CSeq, Via, parse_auth, parse_via
from .framing import PING, PONG, FramerItem, KeepAlive, StreamFramer, is_keepalive
from .headers import COMPACT_FORMS, Headers
from .ids import new_branch, new_call_id, new_tag
from .message import Message, Request, Response, build_response
from .parser import SUPPORTED_URI_SCHEMES, parse_message
from .status import REASON_PHRASES, reason_phrase
from .timers import TimerConfig
from .transaction import TransactionLayer
from .transaction_actions import Deliver, Send, Terminated, Timeout, TransportError
from .uri import AbsoluteUri, SipUri, TelUri, Uri, parse_uri

__all__ = [
    "COMPACT_FORMS",
    "PING",
    "PONG",
    "REASON_PHRASES",
    "SUPPORTED_URI_SCHEMES",
    "AbsoluteUri",
    "Address",
    "Auth",
    "AuthResult",
    "CSeq",
    "ContentType",
    "Deliver",
    "Dialog",
    "DialogSet",
    "DigestAuthenticator",
    "DigestClient",
    "FramerItem",
    "Headers",
    "KeepAlive",
    "Message",
    "Request",
    "Response",
    "Send",
    "SipParseError",
    "SipUri",
    "StreamFramer",
    "TelUri",
    "Terminated",
    "Timeout",
    "TimerConfig",
    "TransactionLayer",
    "TransportError",
    "Uri",
    "Via",
    "build_response",
    "compute_ha1",
    "compute_ha1s",
    "is_keepalive",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_address",
    "parse_auth",
    "parse_message",
    "parse_uri",
    "parse_via",
    "reason_phrase",
]
