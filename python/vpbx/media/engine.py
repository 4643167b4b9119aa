"""Shapes of the dicts :class:`vpbx.media.Engine` returns.

At run time they are plain ``dict`` objects built by the binding; these
``TypedDict`` classes exist so that control-plane code (and mypy) knows their
keys. The keys are a stable contract; they are documented once, here.
Addresses are ``(host, port)`` tuples with a numeric host. Durations are
seconds (``_s``) or milliseconds (``_ms``) as floats.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, TypeAlias, TypedDict, cast

Address: TypeAlias = tuple[str, int]
"""``(host, port)``: a numeric IPv4/IPv6 address and a UDP port."""


class LegInfo(TypedDict):
    """What ``Engine.add_leg`` allocated: the addresses to put into SDP."""

    leg: int
    """The leg's id within its session."""
    rtp: Address
    """Advertised RTP address (the interface's public address)."""
    rtcp: Address | None
    """Advertised RTCP address (RTP port + 1); ``None`` with rtcp-mux."""


class DropCounts(TypedDict):
    """Datagrams received but not relayed, by reason."""

    garbage: int
    """Neither valid RTP nor RTCP."""
    stranger: int
    """From an address other than the latched peer on a strict-source leg."""
    flood: int
    """Over the leg's packet-rate limit (``max_pps_per_leg``)."""
    no_destination: int
    """The leg is not connected, or its partner has no address yet."""
    oversize: int
    """Longer than the receive buffer."""
    send_failed: int
    """The forwarding send failed (socket buffer full, unreachable...)."""


class LegStats(TypedDict):
    """One leg's figures. "in" counts datagrams accepted on the leg's ports,
    "out" datagrams sent from them (relayed or transcoded from the partner)."""

    leg: int
    label: str | None
    interface: str
    local_rtp: Address
    local_rtcp: Address | None
    remote_rtp: Address | None
    """The address ``set_remote`` gave (from SDP)."""
    peer: Address | None
    """Where RTP for this leg's endpoint goes now: latched, else ``remote_rtp``."""
    latched: bool
    """``peer`` was learnt from where the endpoint's packets come from."""
    packets_in: int
    bytes_in: int
    packets_out: int
    bytes_out: int
    rtcp_in: int
    rtcp_out: int
    """RTCP sent to the endpoint: relayed from the partner, or (transcoded
    legs) the engine's own SR/RR reports (RFC 3550 §6.4)."""
    lost: int
    """RFC 3550 A.3 cumulative loss of the current source (negative with duplicates)."""
    expected: int
    jitter_ms: float
    """RFC 3550 A.8 interarrival jitter."""
    duplicates: int
    reordered: int
    ssrc: int | None
    """SSRC of the current incoming source."""
    ssrc_changes: int
    rtt_ms: float | None
    """Round-trip time to the endpoint from its RTCP reports on the engine's
    own stream (transcoded legs only; ``None`` until one arrives)."""
    transcoding: bool
    playing: int | None
    """Id of the prompt being played into the leg (``Engine.play``), if any."""
    """Media from this leg is decoded and re-encoded for its partner."""
    last_packet_age_s: float | None
    """Time since the last accepted packet; ``None`` if none ever came."""
    dropped: DropCounts


class SessionStats(TypedDict):
    """One session's figures (``session_stats``, ``delete_session``)."""

    session: int
    call_id: str
    age_s: float
    legs: list[LegStats]


class WorkerStats(TypedDict):
    sessions: int
    legs: int
    packets_relayed: int
    cpu_time_s: float
    """CPU time the worker thread has used (user + system)."""


class InterfaceStats(TypedDict):
    name: str
    local: str | None
    """Address the sockets are bound to."""
    advertised: str | None
    """Address written into SDP."""
    ports_total: int
    ports_used: int
    ports_free: int
    ports_busy_skipped: int
    """Ports skipped so far because another process had them bound."""


class EngineStats(TypedDict):
    """Engine-wide figures (``engine_stats``). Counters only grow; ``sessions``,
    ``legs`` and ``ports_*`` are current values."""

    sessions: int
    legs: int
    ports_used: int
    ports_free: int
    packets_relayed: int
    """RTP and RTCP datagrams sent on."""
    bytes_relayed: int
    rtcp_relayed: int
    rtcp_sent: int
    """RTCP reports the engine sent itself (to endpoints of transcoded legs)."""
    dropped: DropCounts
    receive_errors: int
    sessions_refused: int
    """Sessions refused by admission control (``max_sessions``)."""
    events_lost: int
    recordings_active: int
    """Recordings in progress (paused ones included)."""
    recordings_failed: int
    """Recordings ended by an error (disk full, write failure)."""
    workers: list[WorkerStats]
    interfaces: list[InterfaceStats]


class MediaTimeoutEvent(TypedDict):
    """No packet arrived on the leg for ``media_timeout_s``; raised once per
    silence, again only after ``media_resumed`` and a new silence."""

    type: Literal["media_timeout"]
    session: int
    leg: int
    silent_for_s: float


class LatchedEvent(TypedDict):
    """The leg now sends to ``peer``, learnt from where its endpoint's packets
    come from (symmetric RTP); ``rtcp`` tells the RTCP stream of a non-muxed leg."""

    type: Literal["latched"]
    session: int
    leg: int
    peer: Address
    rtcp: bool


class MediaResumedEvent(TypedDict):
    """Media arrived again on a leg that had timed out."""

    type: Literal["media_resumed"]
    session: int
    leg: int


class EventsLostEvent(TypedDict):
    """The event queue was full and ``count`` events were dropped; comes first
    in the batch after the loss."""

    type: Literal["events_lost"]
    session: None
    leg: None
    count: int


class RecordingFailedEvent(TypedDict):
    """The session's recording ended on an error (e.g. disk full); the WAV
    holds what was written before it, and media keeps flowing."""

    type: Literal["recording_failed"]
    session: int
    leg: None
    reason: str


class PlayEndedEvent(TypedDict):
    """A prompt started with ``Engine.play`` ended: ``finished``, or
    ``stopped`` (``stop_play``, or replaced by another prompt or DTMF on the
    leg). Not raised when the session is deleted."""

    type: Literal["play_ended"]
    session: int
    leg: int
    play: int
    reason: Literal["finished", "stopped"]


class DtmfEvent(TypedDict):
    """A key was pressed on a leg with DTMF detection on, reported once per
    press as soon as it is seen: ``duration_ms`` is how long it had lasted by
    then (RFC 4733: the first packet's duration; in-band: the detector's
    minimum)."""

    type: Literal["dtmf"]
    session: int
    leg: int
    digit: str
    """``0``-``9``, ``*``, ``#``, ``A``-``D``, or ``!`` for flash."""
    duration_ms: int
    source: Literal["rfc4733", "inband"]


class PlayInfo(TypedDict):
    """What ``Engine.play`` started."""

    play: int
    """Engine-wide id, echoed in ``play_ended``."""
    duration_ms: int | None
    """How long it plays; ``None`` when it loops until stopped."""


class RecordingInfo(TypedDict):
    """What ``stop_recording`` reports about the finished WAV file."""

    path: str
    duration_s: float
    """Audio written (paused spans are left out)."""
    frames: int
    """Sample frames (samples per channel)."""
    gaps_filled: int
    """Packets lost or too late, concealed in the recording."""
    sample_rate: int
    channels: int


def dropped_total(dropped: DropCounts) -> int:
    """All datagrams dropped, whatever the reason."""
    return sum(cast("Mapping[str, int]", dropped).values())


EngineEvent: TypeAlias = (
    MediaTimeoutEvent
    | LatchedEvent
    | MediaResumedEvent
    | RecordingFailedEvent
    | EventsLostEvent
    | PlayEndedEvent
    | DtmfEvent
)
"""One item of ``Engine.poll_events()``; narrow it on ``event["type"]``."""

__all__ = [
    "Address",
    "DropCounts",
    "DtmfEvent",
    "EngineEvent",
    "EngineStats",
    "EventsLostEvent",
    "InterfaceStats",
    "LatchedEvent",
    "LegInfo",
    "LegStats",
    "MediaResumedEvent",
    "MediaTimeoutEvent",
    "PlayEndedEvent",
    "PlayInfo",
    "RecordingFailedEvent",
    "RecordingInfo",
    "SessionStats",
    "WorkerStats",
    "dropped_total",
]
