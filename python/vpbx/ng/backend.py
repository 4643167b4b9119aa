"""What the NG layer needs from a media engine: :class:`MediaBackend`.

The NG layer owns signalling state (calls, tags, SDP, offer/answer); the engine owns ports and
packets. The engine sees a call as a set of *parties* (one per SIP tag; the NG layer picks the
party ids and keeps them stable for the life of the call, even before a tag is known), each
with one *leg* per media section (m-line index as in that party's SDP).

Per call, the NG layer drives the engine like this:

1. ``allocate_leg`` for each party and m-line it anchors (our port pair for that leg);
2. ``set_remote`` with the address the party's SDP announced (latching may later override it);
3. after the answer, ``set_codecs`` for each leg and ``connect`` the two parties, saying per
   m-line whether the media can be relayed as it is or must be transcoded;
4. ``delete`` a party or the whole call, which frees its ports and returns the last stats.

Every method may raise :class:`BackendError`; its ``reason`` becomes the NG ``error-reason``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from vpbx.sdp import Codec

__all__ = [
    "BackendError",
    "CallStats",
    "Endpoint",
    "EngineStatistics",
    "Latching",
    "LegAddress",
    "LegCodecs",
    "LegStats",
    "MediaBackend",
    "MediaSource",
    "RecordingOptions",
    "StreamStats",
]


class BackendError(Exception):
    """The engine refused an operation (out of ports, unknown interface, no such call...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


#: How a leg learns its party's address (per request, from the NG flags).
Latching = Literal["symmetric", "asymmetric", "handover"]


@dataclass(frozen=True, slots=True)
class LegAddress:
    """Where a party must send: the advertised address of the interface and our ports.
    ``rtcp_port`` is None when the leg was allocated for rtcp-mux only (RFC 5761)."""

    address: str
    rtp_port: int
    rtcp_port: int | None


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a party says it receives (from its SDP): RTP address and port, and the RTCP port
    (RFC 3605 ``a=rtcp``, else RTP + 1); ``rtcp_mux`` when RTCP shares the RTP port
    (RFC 5761). A zero address (0.0.0.0, ::) means "do not send" (RFC 3264 §8.4)."""

    address: str
    port: int
    rtcp_port: int | None = None
    rtcp_mux: bool = False


@dataclass(frozen=True, slots=True)
class LegCodecs:
    """The payload formats of one leg, numbered as on that party's wire (RFC 3264 §5.1, §6.1).

    ``receive``: what the party may send to us (what our SDP to it accepts).
    ``send``: what we may send to it, preferred first (what its SDP accepts).
    ``ptime``: the packetization to send it in ms (None: as received).
    """

    receive: tuple[Codec, ...]
    send: tuple[Codec, ...]
    ptime: int | None = None


@dataclass(frozen=True, slots=True)
class RecordingOptions:
    """``start recording`` options: an output file (absolute path), or a directory and/or a
    file name pattern; metadata to store alongside (NG ``metadata``)."""

    file: str | None = None
    directory: str | None = None
    pattern: str | None = None
    metadata: str | None = None


@dataclass(frozen=True, slots=True)
class MediaSource:
    """Audio to play into a leg: a file on the media node or the bytes of one (a WAV)."""

    file: str | None = None
    blob: bytes | None = None


@dataclass(frozen=True, slots=True)
class StreamStats:
    """Counters of one packet stream (RTP or RTCP) received on one of our ports."""

    packets: int = 0
    bytes: int = 0
    errors: int = 0
    last_packet: float | None = None  # UNIX time of the last packet received
    endpoint: tuple[str, int] | None = None  # the peer's address as learned from its packets


@dataclass(frozen=True, slots=True)
class LegStats:
    rtp: StreamStats = field(default_factory=StreamStats)
    rtcp: StreamStats = field(default_factory=StreamStats)
    ssrc: int | None = None
    mos: float | None = None  # E-model estimate, 1.0 .. 4.5
    jitter_ms: float | None = None
    packet_loss_pct: float | None = None
    codec: str | None = None  # e.g. "PCMU/8000"
    transcoding: bool = False


@dataclass(frozen=True, slots=True)
class CallStats:
    """Per leg, keyed by (party, m-line index)."""

    legs: Mapping[tuple[str, int], LegStats] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EngineStatistics:
    sessions: int = 0
    transcoded_media: int = 0
    packet_rate: int = 0  # packets/s over the last interval
    byte_rate: int = 0
    error_rate: int = 0
    relayed_packets: int = 0  # totals since start
    relayed_bytes: int = 0
    relayed_errors: int = 0
    timeout_sessions: int = 0
    ports_used: int = 0
    ports_free: int = 0
    recordings_active: int = 0


class MediaBackend(Protocol):
    """The engine operations the NG layer uses. Party ids are opaque strings chosen by the
    caller; m-line indexes start at 0. All methods are synchronous and quick (no packet work
    on the caller's thread)."""

    def allocate_leg(
        self,
        call_id: str,
        party: str,
        media_index: int,
        *,
        interface: str | None = None,
        family: str | None = None,
        rtcp_mux: bool = False,
    ) -> LegAddress:
        """Reserve our ports for one leg on the named logical interface (None: the default one)
        and address family ("IP4"/"IP6", None: the interface's first). With ``rtcp_mux`` no RTCP
        port is reserved. Allocating an existing leg again returns the same address."""
        ...

    def set_remote(
        self,
        call_id: str,
        party: str,
        media_index: int,
        endpoint: Endpoint,
        *,
        latching: Latching = "symmetric",
        strict_source: bool = False,
    ) -> None:
        """Where to send this party's media. ``latching``: ``"symmetric"`` learns its real
        address from its first packets (symmetric RTP), ``"asymmetric"`` (NG ``asymmetric``
        flag) never does, ``"handover"`` (NG ``media handover``) moves to a new source at once.
        ``strict_source``: after learning, drop packets from any other source."""
        ...

    def set_codecs(self, call_id: str, party: str, media_index: int, codecs: LegCodecs) -> None:
        """The formats this leg carries in each direction."""
        ...

    def connect(self, call_id: str, party_a: str, party_b: str, transcode: Sequence[bool]) -> None:
        """Relay media between two parties' legs with the same m-line index, both ways.
        ``transcode[i]``: m-line ``i`` must be decoded and re-encoded (no common codec, a ptime
        change, or forced); otherwise packets are relayed with payload types renumbered."""
        ...

    def delete(self, call_id: str, party: str | None = None) -> CallStats:
        """Tear down one party's legs, or the whole call when ``party`` is None; frees the ports
        and returns the stats as they were. Unknown calls/parties are not an error."""
        ...

    def query(self, call_id: str) -> CallStats: ...

    def statistics(self) -> EngineStatistics: ...

    def start_recording(self, call_id: str, options: RecordingOptions) -> None:
        """Record the whole call (or resume a paused recording)."""
        ...

    def stop_recording(self, call_id: str) -> None:
        """Stop and close the recording."""
        ...

    def pause_recording(self, call_id: str) -> None:
        """Stop writing but keep the file open for a later ``start_recording``."""
        ...

    def play_media(
        self,
        call_id: str,
        party: str,
        source: MediaSource,
        *,
        repeat_times: int = 1,
        repeat_duration_ms: int | None = None,
        start_pos: int = 0,
    ) -> int | None:
        """Play audio to ``party``; returns its duration in ms if known."""
        ...

    def stop_media(self, call_id: str, party: str) -> int | None:
        """Stop playback to ``party``; returns the last frame position played, if known.
        Raises :class:`BackendError` ("Not currently playing media") when nothing plays."""
        ...

    def play_dtmf(
        self, call_id: str, party: str, code: int, *, duration_ms: int, volume_db: int, pause_ms: int
    ) -> None:
        """Inject DTMF event ``code`` (0-15: 0-9, *, #, A-D; RFC 4733 §3.2) into the media that
        ``party`` sends, as RFC 4733 events when the receiver negotiated telephone-event, else
        as in-band tones. ``volume_db`` is 0 or negative (dBm0)."""
        ...
