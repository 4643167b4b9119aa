"""Typed stub of the PyO3 binding (checked against the module by mypy.stubtest)."""

import os
from collections.abc import Mapping, Sequence
from typing import Self, TypeAlias, final

import numpy as np
import numpy.typing as npt

from vpbx.media.engine import (
    Address,
    EngineEvent,
    EngineStats,
    LegInfo,
    PlayInfo,
    RecordingInfo,
    SessionStats,
)

__version__: str
__all__ = [
    "Decoder",
    "DtmfDetector",
    "DtmfEventReceiver",
    "Encoder",
    "Engine",
    "JitterBuffer",
    "MediaError",
    "Mixer",
    "RecordingMixer",
    "Resampler",
    "RtpPacket",
    "WavWriter",
    "__version__",
    "codec_names",
    "dtmf_tone",
    "parse_telephone_event",
    "repair_wav",
    "telephone_event_packets",
]

_Pcm: TypeAlias = npt.NDArray[np.int16]

class MediaError(ValueError): ...

def codec_names() -> list[str]: ...

@final
class Encoder:
    name: str
    sample_rate: int
    clock_rate: int
    channels: int
    def __new__(cls, name: str, clock_rate: int, channels: int = 1, **params: int) -> Encoder: ...
    def encode(self, pcm: _Pcm) -> bytes: ...

@final
class Decoder:
    name: str
    sample_rate: int
    clock_rate: int
    channels: int
    def __new__(cls, name: str, clock_rate: int, channels: int = 1, **params: int) -> Decoder: ...
    def decode(self, payload: bytes) -> _Pcm: ...
    def conceal(self, samples: int) -> _Pcm: ...
    def recover(self, next_payload: bytes, samples: int) -> _Pcm: ...
    def samples_in(self, payload: bytes) -> int: ...

@final
class Resampler:
    in_rate: int
    out_rate: int
    delay: int
    def __new__(cls, in_rate: int, out_rate: int, channels: int = 1) -> Resampler: ...
    def process(self, pcm: _Pcm) -> _Pcm: ...

@final
class RtpPacket:
    version: int
    marker: bool
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    csrc: list[int]
    payload: bytes
    padding_len: int
    padding: bool
    extension_profile: int | None
    extension_data: bytes
    def __new__(
        cls,
        payload_type: int = 0,
        sequence_number: int = 0,
        timestamp: int = 0,
        ssrc: int = 0,
        payload: bytes = ...,
        marker: bool = False,
        csrc: list[int] = ...,
        padding_len: int = 0,
    ) -> RtpPacket: ...
    @staticmethod
    def parse(data: bytes) -> RtpPacket: ...
    def serialize(self) -> bytes: ...
    def extensions(self) -> list[tuple[int, bytes]]: ...
    def set_extensions(self, elements: list[tuple[int, bytes]]) -> None: ...
    def __eq__(self, value: object, /) -> bool: ...

@final
class Mixer:
    frame_samples: int
    def __new__(cls, frame_samples: int, soft_limit: bool = False) -> Mixer: ...
    def mix(self, inputs: list[_Pcm | None]) -> list[_Pcm]: ...
    def full_mix(self) -> _Pcm: ...

@final
class RecordingMixer:
    sample_rate: int
    channels: int
    position: int
    def __new__(cls, sample_rate: int, stereo: bool = True, max_lag_ms: int = 2000) -> RecordingMixer: ...
    def push(self, leg_name: str, at_sample: int, pcm: _Pcm) -> None: ...
    def drain(self, up_to_sample: int) -> _Pcm: ...
    def stats(self, leg_name: str) -> dict[str, int]: ...

@final
class WavWriter:
    path: str
    frames_written: int
    def __new__(
        cls, path: str | os.PathLike[str], sample_rate: int, channels: int = 1, header_interval_ms: int = 1000
    ) -> WavWriter: ...
    def write(self, pcm: _Pcm) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, _t: object | None, _v: object | None, _tb: object | None) -> bool: ...

def repair_wav(path: str | os.PathLike[str]) -> dict[str, int]: ...

@final
class DtmfDetector:
    clock_rate: int
    def __new__(cls, clock_rate: int) -> DtmfDetector: ...
    def feed(self, pcm: _Pcm) -> list[str]: ...

@final
class DtmfEventReceiver:
    def __new__(cls, clock_rate: int = 8000) -> DtmfEventReceiver: ...
    def feed(self, timestamp: int, marker: bool, payload: bytes) -> str | None: ...
    def current(self) -> dict[str, str | int | bool] | None: ...

def dtmf_tone(clock_rate: int, digit: str, duration_ms: int, level_dbm0: float = ...) -> _Pcm: ...
def telephone_event_packets(
    digit: str,
    duration_ms: int,
    clock_rate: int = 8000,
    ptime_ms: int = 20,
    volume: int = 10,
    timestamp: int = 0,
) -> list[tuple[bool, int, bytes]]: ...
def parse_telephone_event(payload: bytes) -> dict[str, int | str | bool | None]: ...

@final
class JitterBuffer:
    clock_rate: int
    ptime_ms: int
    sample_rate: int
    codec: str
    def __new__(
        cls,
        clock_rate: int,
        ptime_ms: int = 20,
        codec: str = "PCMU",
        channels: int = 1,
        payload_type: int | None = None,
        sample_rate: int | None = None,
        min_delay_ms: int | None = None,
        max_delay_ms: int | None = None,
        max_packets: int | None = None,
        quantile: float | None = None,
        history_ms: int | None = None,
        peak_hold_ms: int | None = None,
        shrink_rate: float | None = None,
        max_conceal_ms: int | None = None,
    ) -> JitterBuffer: ...
    def push(self, packet: bytes, arrival_ms: float) -> None: ...
    def pop(self, now_ms: float) -> _Pcm | None: ...
    def stats(self) -> dict[str, float]: ...

@final
class Engine:
    """The media engine in this process: UDP port pools, worker threads that
    relay (and transcode) RTP/RTCP, stats and events.

    ``interfaces`` use rtpengine's syntax ``[NAME/]LOCAL[!ADVERTISED]``, e.g.
    ``"pub/10.0.0.5!203.0.113.5"``; a bare address is the interface
    ``default``. The first one serves legs that name none. ``workers=0`` means
    one per core. ``None`` keeps the engine's default: ``max_sessions`` 10000,
    ``media_timeout_s`` 60, ``max_pps_per_leg`` 1000 (0 disables the limit),
    ``relatch_after_s`` 1, ``opus_complexity`` 5 (0..10),
    ``event_queue_capacity`` 65536, ``control_timeout_s`` 5,
    ``socket_recv_buffer`` 0 (kernel default; bytes).

    Ids are ints: sessions unique per engine, legs unique per session. Every
    call that waits on a worker releases the GIL. Errors raise
    :class:`MediaError` with the engine's message (unknown session/leg,
    ports exhausted, too many sessions, closed engine, bad values); a wrong
    argument type raises ``TypeError``. ``close()`` (also ``with`` and garbage
    collection) stops the workers and frees every port. The dicts returned
    are typed (with every key documented) in :mod:`vpbx.media.engine`.
    """

    closed: bool
    def __new__(
        cls,
        interfaces: Sequence[str] = ...,
        port_min: int = 30000,
        port_max: int = 40000,
        workers: int = 0,
        max_sessions: int | None = None,
        media_timeout_s: float | None = None,
        strict_source: bool = False,
        max_pps_per_leg: int | None = None,
        relatch_after_s: float | None = None,
        opus_complexity: int | None = None,
        event_queue_capacity: int | None = None,
        control_timeout_s: float | None = None,
        socket_recv_buffer: int | None = None,
    ) -> Engine: ...
    def create_session(self, call_id: str) -> int:
        """Creates the media session of a call (refused beyond ``max_sessions``)."""
    def add_leg(
        self,
        session: int,
        *,
        interface: str | None = None,
        rtcp_mux: bool = False,
        label: str | None = None,
        strict_source: bool | None = None,
        codec: str | None = None,
        clock_rate: int | None = None,
        channels: int = 1,
        payload_type: int | None = None,
        ptime_ms: int = 20,
        latching: str = "symmetric",
    ) -> LegInfo:
        """Allocates ports for one endpoint's stream on ``interface`` (by name).

        Returns ``{"leg": int, "rtp": (host, port), "rtcp": (host, port) | None}``
        (``rtcp`` is ``None`` with ``rtcp_mux``). ``codec`` (SDP name) with
        ``clock_rate`` (default: the codec's only rate), ``channels``,
        ``payload_type`` (default: the static one; required for dynamic
        codecs) and ``ptime_ms`` is the leg's negotiated format: two connected
        legs that both name one and differ are transcoded. Without ``codec``
        the leg relays whatever arrives; ``clock_rate`` (default 8000) then
        only scales jitter statistics. ``latching``: ``"symmetric"`` (latch to
        the endpoint's source; move after ``relatch_after_s`` of silence),
        ``"asymmetric"`` (never latch: send to the SDP address) or
        ``"handover"`` (a new trusted source takes over at once). Before
        latching, a source whose IP differs from the SDP's (and is not the
        NAT case: SDP private, source public) must send 3 packets in sequence
        first; until then its packets are dropped as ``stranger``
        (RTP-bleed protection)."""
    def set_leg_latching(
        self, session: int, leg: int, *, strict_source: bool | None = None, latching: str = "symmetric"
    ) -> None:
        """Per-request latching flags for an existing leg (rtpengine's ``strict
        source``, ``symmetric``/``asymmetric``, ``media handover``);
        ``strict_source=None`` takes the engine default. Forgets what was
        latched."""
    def set_leg_pt_map(self, session: int, leg: int, pt_map: Mapping[int, int]) -> None:
        """Rewrites RTP payload types ``{in_pt: out_pt}`` on media received from
        the leg and relayed to its partner (same codec under different numbers
        on the two sides); done in place per packet. ``{}`` turns it off.
        Output types 64..=95 are refused (they would read as RTCP, RFC 5761)."""
    def set_remote(self, session: int, leg: int, rtp: Address, rtcp: Address | None = None) -> None:
        """Where the leg's endpoint receives, from its SDP (``rtp``/``rtcp`` are
        ``(host, port)`` with a numeric host). Resets latching: the endpoint's
        next packets teach its real address (symmetric RTP)."""
    def set_leg_codec(
        self,
        session: int,
        leg: int,
        codec: str | None = None,
        *,
        clock_rate: int | None = None,
        channels: int = 1,
        payload_type: int | None = None,
        ptime_ms: int = 20,
        telephone_event_pt: int | None = None,
        detect_dtmf: bool = False,
    ) -> None:
        """Sets the leg's negotiated format once SDP has settled it (the
        answer, a re-INVITE); the arguments mean what they mean for
        :meth:`add_leg`. ``codec=None`` relays whatever arrives
        (``clock_rate``, default 8000, then only scales jitter statistics).
        A connected leg is reconnected at once, so relay or transcoding
        follows; if the engine cannot transcode the pair, :class:`MediaError`
        is raised and the leg keeps its previous codec. Receive statistics
        restart when the clock rate changes. ``telephone_event_pt``: the
        leg's RFC 4733 payload type (clocked like its codec); between
        transcoded legs events are passed on with the payload type (and
        clock) translated. ``detect_dtmf``: report key presses on the leg as
        ``dtmf`` events (RFC 4733, and in-band tones when it has a codec).
        Both are set on every call (see :meth:`set_leg_dtmf`)."""
    def set_leg_dtmf(
        self, session: int, leg: int, *, telephone_event_pt: int | None = None, detect: bool = False
    ) -> None:
        """Sets only the leg's RFC 4733 payload type and key press detection."""
    def play(
        self,
        session: int,
        leg: int,
        path: str | os.PathLike[str],
        *,
        loop: bool = False,
        repeat: int = 1,
        start_ms: int = 0,
    ) -> PlayInfo:
        """Plays a WAV prompt (mono 16-bit PCM, 8-48 kHz; loaded whole, at
        most 8 Mi samples after conversion) into the leg, encoded with its
        codec (a relayed leg without one: its partner's) at its ptime, from
        the engine's own RTP stream for the leg (own SSRC; marker bit on the
        first packet). While it plays the partner's media towards the leg is
        withheld; what the leg was sent before (prompt, DTMF) stops.
        ``loop`` plays until :meth:`stop_play`, else ``repeat`` times;
        ``start_ms`` skips into the file. Ends with a ``play_ended`` event.
        A bad file or a leg without codec raises :class:`MediaError` and
        starts nothing."""
    def stop_play(self, session: int, leg: int) -> int | None:
        """Stops the prompt playing into the leg (``play_ended`` with reason
        ``stopped``); its id, or ``None`` if none was playing."""
    def send_dtmf(
        self,
        session: int,
        leg: int,
        digits: str,
        *,
        duration_ms: int = 100,
        pause_ms: int = 50,
        volume_dbm0: int = -10,
        mode: str = "rfc4733",
    ) -> int:
        """Sends DTMF ``digits`` (``0-9*#A-D``, ``!`` flash; up to 64) into the
        leg as ``rfc4733`` events with its telephone-event payload type (end
        packet sent 3 times) or ``inband`` tones in its codec; returns how
        long that takes (ms). Withholds the partner's media meanwhile, like
        :meth:`play`."""
    def connect(self, session: int, a: int, b: int) -> None:
        """Relays media between legs ``a`` and ``b``, both ways."""
    def delete_session(self, session: int) -> SessionStats:
        """Deletes the session; its ports are free on return. Returns its final
        stats (same keys as :meth:`session_stats`)."""
    def start_recording(
        self,
        session: int,
        path: str | os.PathLike[str],
        *,
        stereo: bool = True,
        legs: Sequence[int] | None = None,
        codecs: Sequence[tuple[str, int, int, int] | None] | None = None,
    ) -> None:
        """Starts recording the session into the WAV file at ``path`` (created
        or truncated; 16-bit PCM at the legs' decoded rate, 8 kHz for G.711):
        ``stereo`` puts the first leg left and the second right, else they are
        summed. ``legs``: one or two leg ids (one leg alone, e.g. voicemail,
        is always mono); default the session's first two legs. The file runs
        in real time (loss and silence become silence or concealment) and is
        playable even if the process dies. On a paused recording it resumes
        (the other arguments are then ignored); on a running one it does
        nothing. :class:`MediaError` if the file cannot be created or a leg
        has no codec. ``codecs``: per recorded leg, ``(name, clock_rate,
        channels, payload_type)`` to decode a relayed leg (one set up without
        a codec) as; ignored for legs with a codec."""
    def pause_recording(self, session: int) -> None:
        """Pauses the session's recording: the paused span is left out of the
        file; :meth:`start_recording` resumes."""
    def stop_recording(self, session: int) -> RecordingInfo:
        """Ends the recording and finalizes the file (``delete_session`` does
        too): ``path, duration_s, frames, gaps_filled, sample_rate,
        channels``. A disk error while recording ends it early with a
        ``recording_failed`` event."""
    def session_stats(self, session: int) -> SessionStats:
        """``{"session", "call_id", "age_s", "legs": [...]}``; each leg has
        ``leg, label, interface, local_rtp, local_rtcp, remote_rtp, peer,
        latched, packets_in, bytes_in, packets_out, bytes_out, rtcp_in,
        rtcp_out, lost, expected, jitter_ms, duplicates, reordered, ssrc,
        ssrc_changes, rtt_ms, transcoding, playing, last_packet_age_s`` and ``dropped`` (by
        reason: ``garbage, stranger, flood, no_destination, oversize,
        send_failed``)."""
    def engine_stats(self) -> EngineStats:
        """``sessions, legs, ports_used, ports_free, packets_relayed,
        bytes_relayed, rtcp_relayed, rtcp_sent, dropped, receive_errors,
        sessions_refused, events_lost, recordings_active, recordings_failed``,
        ``workers`` (each ``sessions, legs, packets_relayed, cpu_time_s``) and
        ``interfaces`` (each ``name, local, advertised, ports_total, ports_used,
        ports_free, ports_busy_skipped``)."""
    def event_fd(self) -> int:
        """Descriptor readable while events are queued: ``loop.add_reader`` it
        and call :meth:`poll_events` when it fires (see
        :mod:`vpbx.io.media_events`). Owned by the engine: never close it."""
    def poll_events(self) -> list[EngineEvent]:
        """Takes every queued event; never blocks. Each is a dict with
        ``type``, ``session`` and ``leg``, plus: ``media_timeout``:
        ``silent_for_s``; ``latched``: ``peer`` (host, port), ``rtcp`` (bool);
        ``media_resumed``: nothing more; ``recording_failed`` (``leg`` is
        ``None``): ``reason``; ``events_lost`` (``session`` and
        ``leg`` are ``None``): ``count``; ``play_ended``: ``play``,
        ``reason``; ``dtmf``: ``digit``, ``duration_ms``, ``source``."""
    def close(self) -> None:
        """Stops the workers and frees every port (idempotent); later calls raise
        :class:`MediaError`. Should another thread be inside a call right now,
        the engine stops as that call returns."""
    def __enter__(self) -> Self: ...
    def __exit__(self, _t: object | None, _v: object | None, _tb: object | None) -> bool: ...
