"""The NG layer's :class:`~vpbx.ng.backend.MediaBackend` over the in-process media engine.

:class:`EngineBackend` maps the NG layer's view of a call onto :class:`vpbx.media.Engine`:

- a call-id is one engine session, created with the call's first leg;
- a (party, m-line index) is one engine leg, allocated on the named interface;
- ``set_codecs`` is remembered and applied by ``connect``: per m-line, a relayed pair has no
  codec in the engine (packets go through untouched; the clock rate still scales jitter), a
  transcoded pair names each side's codec, so the engine decodes and re-encodes between them;
- ``delete``/``query`` turn the engine's per-leg figures into the NG stats dataclasses, with a
  MOS estimate from :mod:`vpbx.media.quality`.

- recording: one WAV per call (stereo, first party left) under ``recording_dir`` named
  ``<call-id made safe>-<UTC time>.wav`` (the call-id never becomes a path as is); a
  ``file`` option names the file itself. Started before the call is connected (``record
  call`` on an offer), it begins when the call connects. Relayed legs are decoded for the
  recording with their negotiated codec only while recording.

- play media / stop media: the WAV ``file`` is played by the engine into the party's first
  m-line leg (the party hears it instead of the other side), encoded with the leg's negotiated
  codec; a relayed leg is given its codec for this (its partner stays codec-less, so the pair
  keeps relaying). ``blob`` (file bytes in the request) is refused: write the file on the node.
- DTMF detection (``detect_dtmf``): legs that negotiated telephone-event report key presses as
  engine ``dtmf`` events (RFC 4733; in-band too on transcoded legs, which have a codec).
- DTMF conversion: when only one party of an m-line negotiated telephone-event, ``connect``
  gives both legs their codec even if the offer/answer relays, and the engine transcodes the
  pair (PCMU to PCMU included): RFC 4733 events from the one party become in-band tones towards
  the other, in-band tones from the other become RFC 4733 events (the tone muted) towards the
  one. A codec the engine cannot decode keeps the pair relayed, and such keys are lost.
- play DTMF: rtpengine's party is the one *generating* the key: the digit goes to the other
  party, as RFC 4733 events when that party negotiated telephone-event, else as in-band tones.
- latching per request: ``strict source``, ``asymmetric`` and ``media handover`` set the
  party's leg (``Engine.set_leg_latching``); without ``strict source`` the node default holds.
- payload types: a relayed pair whose sides number the same codec differently (dynamic opus
  111 vs 96, telephone-event 101 vs 100) has the numbers rewritten per packet by the engine
  (``Engine.set_leg_pt_map``), from each leg's receive numbers to the other's send numbers.

Known limit, of the engine: a party's legs stay allocated until its whole call is deleted.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from vpbx.media import Engine, MediaError, codec_names
from vpbx.media import engine as et
from vpbx.media.engine import dropped_total
from vpbx.media.ng_formats import (
    EngineCodec,
    main_codec,
    pt_map,
    recording_name,
    same_stream_key,
    telephone_event,
)
from vpbx.media.quality import mos
from vpbx.ng import errors
from vpbx.ng.backend import (
    BackendError,
    CallStats,
    Endpoint,
    EngineStatistics,
    Latching,
    LegAddress,
    LegCodecs,
    LegStats,
    MediaSource,
    RecordingOptions,
    StreamStats,
)

__all__ = ["EngineBackend", "EngineCodec", "recording_name"]

#: RFC 4733 §3.2 Table 3: event codes 0-15 as keys.
_DTMF_KEYS = "0123456789*#ABCD"

LegKey = tuple[str, int]  # (party, m-line index)


_AS_ADDED: Final = EngineCodec(None, 8000)  # what Engine.add_leg gives a leg without a codec


@dataclass(slots=True)
class _Leg:
    leg: int
    address: LegAddress
    codecs: LegCodecs | None = None
    # last codec given to the engine; a new leg relays as is at 8 kHz (Engine.add_leg's default)
    applied: EngineCodec | None = None
    remote: tuple[tuple[str, int], tuple[str, int] | None] | None = None  # last set_remote
    codec_label: str | None = None  # "PCMU/8000", for stats
    ptime_ms: int = 20
    transcoding: bool = False
    timed_out: bool = False
    latching: tuple[str, bool] = ("symmetric", False)  # as the engine has it
    pt_map: dict[int, int] = field(default_factory=dict)  # as the engine has it


@dataclass(slots=True)
class _Call:
    session: int
    legs: dict[LegKey, _Leg] = field(default_factory=dict)
    by_id: dict[int, LegKey] = field(default_factory=dict)
    connected: bool = False
    record: RecordingOptions | None = None  # asked for before the call connected
    recording: bool = False


def _family(address: str) -> str:
    return "IP6" if ipaddress.ip_address(address).version == 6 else "IP4"


class EngineBackend:
    """The NG backend over ``engine``. ``on_leg_finished`` receives the final stats of every
    leg that carried media when its call (or party) is deleted (for call-quality metrics).
    ``clock`` is UNIX time, ``monotonic`` a steady clock for rates."""

    def __init__(
        self,
        engine: Engine,
        *,
        on_leg_finished: Callable[[LegStats], object] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        recording_dir: str | os.PathLike[str] = "recordings",
        detect_dtmf: bool = False,
    ) -> None:
        self.engine = engine
        self.detect_dtmf = detect_dtmf
        self.recording_dir = Path(recording_dir)
        self.on_leg_finished = on_leg_finished
        self._clock = clock
        self._monotonic = monotonic
        self._calls: dict[str, _Call] = {}
        self._by_session: dict[int, str] = {}
        self._transcodable = {n.lower(): n for n in codec_names()}
        stats = engine.engine_stats()
        # (name, family of its advertised address) in configuration order
        self._interfaces = [(i["name"], _family(i["advertised"] or "0.0.0.0")) for i in stats["interfaces"]]
        self._last_rate: tuple[float, int, int, int] | None = None

    # -- lookups ----------------------------------------------------------------------------

    @staticmethod
    @contextmanager
    def _engine_errors() -> Iterator[None]:
        try:
            yield
        except MediaError as e:
            raise BackendError(str(e)) from None

    def _leg(self, call_id: str, party: str, media_index: int) -> tuple[_Call, _Leg]:
        call = self._calls.get(call_id)
        if call is None:
            raise BackendError(errors.UNKNOWN_CALL)
        leg = call.legs.get((party, media_index))
        if leg is None:
            raise BackendError(errors.NO_LEG.format(index=media_index, party=party))
        return call, leg

    def _interface(self, name: str | None, family: str | None) -> str:
        """The engine interface for a logical name and address family (rtpengine's
        ``direction``/``interface`` and ``address family``)."""
        if name is not None:
            match = [fam for n, fam in self._interfaces if n == name]
            if not match:
                raise BackendError(errors.UNKNOWN_INTERFACE.format(name=name))
            if family is not None and match[0] != family:
                raise BackendError(errors.NO_FAMILY_ON_INTERFACE.format(family=family, name=name))
            return name
        for n, fam in self._interfaces:
            if family is None or fam == family:
                return n
        raise BackendError(errors.NO_FAMILY.format(family=family))

    def session_call(self, session: int) -> str | None:
        """The call-id of an engine session (for events)."""
        return self._by_session.get(session)

    def leg_key(self, session: int, leg: int) -> LegKey | None:
        """(party, m-line index) of an engine leg (for events)."""
        call_id = self._by_session.get(session)
        call = self._calls.get(call_id) if call_id is not None else None
        return call.by_id.get(leg) if call is not None else None

    def transcoded_streams(self) -> int:
        """Legs whose media is decoded and re-encoded now (two per transcoded m-line)."""
        return sum(leg.transcoding for call in self._calls.values() for leg in call.legs.values())

    # -- media timeouts (from engine events) ---------------------------------------------------

    def note_timeout(self, session: int, leg: int) -> str | None:
        """Records a leg's media timeout; returns the call-id when every leg of a connected call
        is now silent (the call should go), else None."""
        call_id = self._by_session.get(session)
        call = self._calls.get(call_id) if call_id is not None else None
        if call is None:
            return None
        key = call.by_id.get(leg)
        if key is not None:
            call.legs[key].timed_out = True
        if call.connected and all(x.timed_out for x in call.legs.values()):
            return call_id
        return None

    def note_resumed(self, session: int, leg: int) -> None:
        call_id = self._by_session.get(session)
        call = self._calls.get(call_id) if call_id is not None else None
        key = call.by_id.get(leg) if call is not None else None
        if call is not None and key is not None:
            call.legs[key].timed_out = False

    # -- MediaBackend -------------------------------------------------------------------------

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
        name = self._interface(interface, family)
        call = self._calls.get(call_id)
        if call is not None and (party, media_index) in call.legs:
            return call.legs[(party, media_index)].address
        with self._engine_errors():
            if call is None:
                call = _Call(self.engine.create_session(call_id))
                self._calls[call_id] = call
                self._by_session[call.session] = call_id
            try:
                info = self.engine.add_leg(call.session, interface=name, rtcp_mux=rtcp_mux, label=party)
            except MediaError:
                if not call.legs:  # the session was made for this leg: give it back
                    self._forget(call_id)
                    self.engine.delete_session(call.session)
                raise
        rtp_host, rtp_port = info["rtp"]
        rtcp = info["rtcp"]
        address = LegAddress(rtp_host, rtp_port, rtcp[1] if rtcp is not None else None)
        call.legs[(party, media_index)] = _Leg(info["leg"], address, applied=_AS_ADDED)
        call.by_id[info["leg"]] = (party, media_index)
        return address

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
        call, leg = self._leg(call_id, party, media_index)
        if leg.latching != (latching, strict_source):
            with self._engine_errors():
                self.engine.set_leg_latching(
                    call.session, leg.leg, strict_source=True if strict_source else None, latching=latching
                )
            leg.latching = (latching, strict_source)
        try:
            zero = ipaddress.ip_address(endpoint.address).is_unspecified
        except ValueError:
            raise BackendError(errors.BAD_MEDIA_ADDRESS.format(address=endpoint.address)) from None
        if zero or endpoint.port == 0:
            return  # "do not send" (RFC 3264 §8.4): keep what latching learnt
        rtcp: tuple[str, int] | None
        if endpoint.rtcp_mux:
            rtcp = (endpoint.address, endpoint.port)
        else:
            rtcp_port = endpoint.rtcp_port or endpoint.port + 1
            rtcp = (endpoint.address, rtcp_port) if 0 < rtcp_port < 65536 else None
        remote = ((endpoint.address, endpoint.port), rtcp)
        if remote == leg.remote:
            return  # the answer confirming what the offer set: no engine round trip
        with self._engine_errors():
            self.engine.set_remote(call.session, leg.leg, remote[0], rtcp)
        leg.remote = remote

    def set_codecs(self, call_id: str, party: str, media_index: int, codecs: LegCodecs) -> None:
        _, leg = self._leg(call_id, party, media_index)
        leg.codecs = codecs

    def _engine_codec(self, leg: _Leg, transcode: bool) -> EngineCodec:
        codecs = leg.codecs
        main = (main_codec(codecs.send) or main_codec(codecs.receive)) if codecs is not None else None
        ptime = (codecs.ptime if codecs is not None else None) or 20
        clock = main.clock_rate if main is not None else 8000
        event_pt = telephone_event(codecs, clock)
        if not transcode:
            return EngineCodec(None, clock, telephone_event_pt=event_pt)
        if main is None:
            raise BackendError(errors.NO_LEG_CODEC)
        name = self._transcodable.get(main.name.lower())
        if name is None:
            raise BackendError(errors.NO_TRANSCODE_CODEC.format(codec=main.encoding))
        # RFC 7587 §7: opus is always "opus/48000/2" in SDP, whatever the stream's channels
        channels = 1 if name == "opus" else main.channels or 1
        return EngineCodec(name, main.clock_rate, channels, main.pt, ptime, event_pt)

    def _apply(self, session: int, leg: _Leg, codec: EngineCodec) -> None:
        if leg.applied == codec:
            return
        self.engine.set_leg_codec(
            session,
            leg.leg,
            codec.name,
            clock_rate=codec.clock_rate,
            channels=codec.channels,
            payload_type=codec.payload_type if codec.name is not None else None,
            ptime_ms=codec.ptime_ms,
            telephone_event_pt=codec.telephone_event_pt,
            # key presses are reported for legs that negotiated RFC 4733 events
            detect_dtmf=self.detect_dtmf and codec.telephone_event_pt is not None,
        )
        leg.applied = codec

    def connect(self, call_id: str, party_a: str, party_b: str, transcode: Sequence[bool]) -> None:
        call = self._calls.get(call_id)
        if call is None:
            raise BackendError(errors.UNKNOWN_CALL)
        for i, tc in enumerate(transcode):
            a, b = call.legs.get((party_a, i)), call.legs.get((party_b, i))
            if a is None or b is None:
                continue
            ca, cb = self._engine_codec(a, tc), self._engine_codec(b, tc)
            # the engine relays two legs of the same format and ptime even when asked to transcode,
            # unless only one of them has telephone-event: then it transcodes to convert keys
            convert_dtmf = (ca.telephone_event_pt is None) != (cb.telephone_event_pt is None)
            if convert_dtmf and not tc:
                try:
                    ca, cb = self._engine_codec(a, True), self._engine_codec(b, True)
                except BackendError:
                    convert_dtmf = False  # a codec the engine cannot decode: relayed, keys dropped
            transcoding = (tc and same_stream_key(ca) != same_stream_key(cb)) or convert_dtmf
            with self._engine_errors():
                self._apply(call.session, a, ca)
                self._apply(call.session, b, cb)
                for src, dst in ((a, b), (b, a)):
                    mapping = {} if transcoding else pt_map(src.codecs, dst.codecs)
                    if mapping != src.pt_map:
                        self.engine.set_leg_pt_map(call.session, src.leg, mapping)
                        src.pt_map = mapping
                self.engine.connect(call.session, a.leg, b.leg)
            for leg in (a, b):
                main = main_codec(leg.codecs.send) if leg.codecs is not None else None
                leg.codec_label = main.encoding if main is not None else None
                leg.ptime_ms = (leg.codecs.ptime if leg.codecs is not None else None) or 20
                leg.transcoding = transcoding
                leg.timed_out = False
        call.connected = True
        if call.record is not None and not call.recording:
            options, call.record = call.record, None
            self._record(call_id, call, options)

    def _forget(self, call_id: str) -> _Call | None:
        call = self._calls.pop(call_id, None)
        if call is not None:
            self._by_session.pop(call.session, None)
        return call

    def delete(self, call_id: str, party: str | None = None) -> CallStats:
        call = self._calls.get(call_id)
        if call is None:
            return CallStats()
        if party is None:
            self._forget(call_id)
            with self._engine_errors():
                final = self.engine.delete_session(call.session)
            stats = self._call_stats(call, final)
        else:
            # the engine frees ports per session: the party's legs go with the call
            stats = self.query(call_id)
            keys = [k for k in call.legs if k[0] == party]
            stats = CallStats({k: v for k, v in stats.legs.items() if k in keys})
            for k in keys:
                call.by_id.pop(call.legs.pop(k).leg, None)
        if self.on_leg_finished is not None:
            for leg_stats in stats.legs.values():
                if leg_stats.rtp.packets > 0:
                    self.on_leg_finished(leg_stats)
        return stats

    def query(self, call_id: str) -> CallStats:
        call = self._calls.get(call_id)
        if call is None:
            return CallStats()
        with self._engine_errors():
            return self._call_stats(call, self.engine.session_stats(call.session))

    def _call_stats(self, call: _Call, stats: et.SessionStats) -> CallStats:
        now = self._clock()
        out: dict[LegKey, LegStats] = {}
        for eleg in stats["legs"]:
            key = call.by_id.get(eleg["leg"])
            if key is not None:
                out[key] = self._leg_stats(call.legs[key], eleg, now)
        return CallStats(out)

    @staticmethod
    def _leg_stats(leg: _Leg, s: et.LegStats, now: float) -> LegStats:
        age = s["last_packet_age_s"]
        received = s["packets_in"] > 0
        expected = s["expected"]
        loss = 100.0 * max(s["lost"], 0) / expected if expected > 0 else 0.0
        return LegStats(
            rtp=StreamStats(
                packets=s["packets_in"],
                bytes=s["bytes_in"],
                errors=dropped_total(s["dropped"]),
                last_packet=now - age if age is not None else None,
                endpoint=s["peer"] if s["latched"] else None,
            ),
            rtcp=StreamStats(packets=s["rtcp_in"]),
            ssrc=s["ssrc"],
            mos=mos(loss_pct=loss, jitter_ms=s["jitter_ms"], codec=leg.codec_label, ptime_ms=leg.ptime_ms)
            if received
            else None,
            jitter_ms=s["jitter_ms"] if received else None,
            packet_loss_pct=loss if received else None,
            codec=leg.codec_label,
            transcoding=s["transcoding"],
        )

    def statistics(self) -> EngineStatistics:
        s = self.engine.engine_stats()
        errors = dropped_total(s["dropped"]) + s["receive_errors"]
        now = self._monotonic()
        rates = (0, 0, 0)
        if self._last_rate is not None and now > self._last_rate[0]:
            t, p, b, e = self._last_rate
            span = now - t
            rates = (
                round((s["packets_relayed"] - p) / span),
                round((s["bytes_relayed"] - b) / span),
                round((errors - e) / span),
            )
        self._last_rate = (now, s["packets_relayed"], s["bytes_relayed"], errors)
        return EngineStatistics(
            sessions=s["sessions"],
            transcoded_media=self.transcoded_streams() // 2,
            packet_rate=rates[0],
            byte_rate=rates[1],
            error_rate=rates[2],
            relayed_packets=s["packets_relayed"],
            relayed_bytes=s["bytes_relayed"],
            relayed_errors=errors,
            ports_used=s["ports_used"],
            ports_free=s["ports_free"],
            recordings_active=s["recordings_active"],
        )

    # -- recording ------------------------------------------------------------------------------

    def recording_path(self, call_id: str, options: RecordingOptions) -> Path:
        """Where the call's recording goes: ``options.file``, else a safe name (see
        :func:`recording_name`) in ``options.directory`` or the node's ``recording_dir``."""
        if options.file:
            return Path(options.file)
        directory = Path(options.directory) if options.directory else self.recording_dir
        return directory / recording_name(call_id, self._clock())

    def _record(self, call_id: str, call: _Call, options: RecordingOptions) -> None:
        legs = [leg for (_, index), leg in call.legs.items() if index == 0][:2]
        codecs: list[tuple[str, int, int, int] | None] = []
        for leg in legs:
            try:
                c = self._engine_codec(leg, True)
            except BackendError:
                codecs.append(None)
                continue
            assert c.name is not None and c.payload_type is not None
            codecs.append((c.name, c.clock_rate, c.channels, c.payload_type))
        path = self.recording_path(call_id, options)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BackendError(f"cannot create the recording directory {path.parent}: {e}") from None
        with self._engine_errors():
            self.engine.start_recording(
                call.session, path, stereo=True, legs=[leg.leg for leg in legs], codecs=codecs
            )
        call.recording = True

    def start_recording(self, call_id: str, options: RecordingOptions) -> None:
        call = self._calls.get(call_id)
        if call is None:
            raise BackendError(errors.UNKNOWN_CALL)
        if call.recording:  # running: nothing to do; paused: resume
            with self._engine_errors():
                self.engine.start_recording(call.session, self.recording_dir)
            return
        if not call.connected:
            call.record = options  # starts when the call connects
            return
        self._record(call_id, call, options)

    def stop_recording(self, call_id: str) -> None:
        call = self._calls.get(call_id)
        if call is None:
            raise BackendError(errors.UNKNOWN_CALL)
        call.record = None
        if call.recording:
            call.recording = False
            with self._engine_errors():
                self.engine.stop_recording(call.session)

    def pause_recording(self, call_id: str) -> None:
        call = self._calls.get(call_id)
        if call is None:
            raise BackendError(errors.UNKNOWN_CALL)
        if call.recording:
            with self._engine_errors():
                self.engine.pause_recording(call.session)

    def recording_failed(self, session: int) -> str | None:
        """Notes that the session's recording ended on an error; returns its call-id."""
        call_id = self._by_session.get(session)
        call = self._calls.get(call_id) if call_id is not None else None
        if call is not None:
            call.recording = False
        return call_id

    # -- prompts and DTMF ---------------------------------------------------------------------

    def _sending_leg(self, call_id: str, party: str) -> tuple[_Call, _Leg]:
        """The party's first m-line leg, with a codec the engine can encode prompts and DTMF
        in: a relayed leg is given its negotiated codec (its partner keeps none, so the pair
        still relays)."""
        call, leg = self._leg(call_id, party, 0)
        if leg.applied is None or leg.applied.name is None:
            with self._engine_errors():
                self._apply(call.session, leg, self._engine_codec(leg, transcode=True))
        return call, leg

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
        """Plays ``source.file`` to ``party``; returns its duration in ms (``None`` while it
        loops: ``repeat_duration_ms`` plays it until ``stop media``)."""
        if source.file is None:
            raise BackendError(errors.NO_MEDIA_BLOB)
        call, leg = self._sending_leg(call_id, party)
        with self._engine_errors():
            info = self.engine.play(
                call.session,
                leg.leg,
                source.file,
                loop=repeat_duration_ms is not None,
                repeat=max(1, repeat_times),
                start_ms=max(0, start_pos),
            )
        return info["duration_ms"]

    def stop_media(self, call_id: str, party: str) -> int | None:
        call, leg = self._leg(call_id, party, 0)
        with self._engine_errors():
            stopped = self.engine.stop_play(call.session, leg.leg)
        if stopped is None:
            raise BackendError(errors.NOT_PLAYING)
        return 0

    def play_dtmf(
        self, call_id: str, party: str, code: int, *, duration_ms: int, volume_db: int, pause_ms: int
    ) -> None:
        """Sends key ``code`` as if ``party`` had pressed it: into the other party's leg."""
        call = self._calls.get(call_id)
        if call is None:
            raise BackendError(errors.UNKNOWN_CALL)
        if not 0 <= code < len(_DTMF_KEYS):
            raise BackendError(errors.BAD_DTMF_CODE)
        others = sorted(p for p, i in call.legs if p != party and i == 0)
        if (party, 0) not in call.legs or not others:
            raise BackendError(errors.NO_LEG.format(index=0, party=party))
        _, leg = self._sending_leg(call_id, others[0])
        events = leg.applied is not None and leg.applied.telephone_event_pt is not None
        mode = "rfc4733" if events else "inband"
        with self._engine_errors():
            self.engine.send_dtmf(
                call.session,
                leg.leg,
                _DTMF_KEYS[code],
                duration_ms=duration_ms,
                pause_ms=pause_ms,
                volume_dbm0=max(-63, min(0, volume_db)),
                mode=mode,
            )
