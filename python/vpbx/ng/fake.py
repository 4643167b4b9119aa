"""An in-memory :class:`~vpbx.ng.backend.MediaBackend` for tests: allocates port pairs from a
range, remembers what it was told, and moves no packets. Tests can set the stats it reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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
)

__all__ = ["FakeBackend", "FakeCall", "FakeLeg"]


@dataclass
class FakeLeg:
    address: LegAddress
    interface: str
    remote: Endpoint | None = None
    latching: Latching = "symmetric"
    strict_source: bool = False
    codecs: LegCodecs | None = None


@dataclass
class FakeCall:
    legs: dict[tuple[str, int], FakeLeg] = field(default_factory=dict)
    connections: list[tuple[str, str, tuple[bool, ...]]] = field(default_factory=list)
    recording: str = "off"  # off, on, paused
    recording_options: RecordingOptions | None = None
    playing: dict[str, MediaSource] = field(default_factory=dict)
    dtmf: list[tuple[str, int, int, int, int]] = field(default_factory=list)


class FakeBackend:
    """``interfaces`` maps logical interface names to advertised addresses per family; the
    first is the default. Ports come in even/odd pairs from ``port_min``..``port_max``."""

    def __init__(
        self,
        interfaces: Mapping[str, Mapping[str, str]] | None = None,
        port_min: int = 30000,
        port_max: int = 30099,
    ) -> None:
        self.interfaces = dict(interfaces or {"default": {"IP4": "203.0.113.1", "IP6": "2001:db8::1"}})
        self._free = list(range(port_min + port_min % 2, port_max, 2))
        self.total_pairs = len(self._free)
        self.calls: dict[str, FakeCall] = {}
        self.log: list[tuple[str, tuple[Any, ...]]] = []
        self.stats: dict[str, CallStats] = {}
        self.media_duration_ms: int | None = 1500

    # -- helpers for tests ------------------------------------------------------------------

    @property
    def ports_in_use(self) -> int:
        return 2 * (self.total_pairs - len(self._free))

    def leg(self, call_id: str, party: str, media_index: int) -> FakeLeg:
        return self.calls[call_id].legs[(party, media_index)]

    def calls_to(self, method: str) -> list[tuple[Any, ...]]:
        return [args for name, args in self.log if name == method]

    def _call(self, call_id: str) -> FakeCall:
        call = self.calls.get(call_id)
        if call is None:
            raise BackendError("Unknown call-id")
        return call

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
        self.log.append(("allocate_leg", (call_id, party, media_index, interface, family, rtcp_mux)))
        name = interface if interface is not None else next(iter(self.interfaces))
        addrs = self.interfaces.get(name)
        if addrs is None:
            raise BackendError(f"Unknown interface '{name}'")
        fam = family or next(iter(addrs))
        address = addrs.get(fam)
        if address is None:
            raise BackendError(f"No address of family {fam} on interface '{name}'")
        call = self.calls.setdefault(call_id, FakeCall())
        existing = call.legs.get((party, media_index))
        if existing is not None:
            return existing.address
        if not self._free:
            raise BackendError("Ran out of ports")
        port = self._free.pop(0)
        leg = LegAddress(address, port, None if rtcp_mux else port + 1)
        call.legs[(party, media_index)] = FakeLeg(leg, name)
        return leg

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
        self.log.append(("set_remote", (call_id, party, media_index, endpoint, latching, strict_source)))
        leg = self._call(call_id).legs.get((party, media_index))
        if leg is None:
            raise BackendError("No such leg")
        leg.remote, leg.latching, leg.strict_source = endpoint, latching, strict_source

    def set_codecs(self, call_id: str, party: str, media_index: int, codecs: LegCodecs) -> None:
        self.log.append(("set_codecs", (call_id, party, media_index, codecs)))
        leg = self._call(call_id).legs.get((party, media_index))
        if leg is None:
            raise BackendError("No such leg")
        leg.codecs = codecs

    def connect(self, call_id: str, party_a: str, party_b: str, transcode: Sequence[bool]) -> None:
        self.log.append(("connect", (call_id, party_a, party_b, tuple(transcode))))
        self._call(call_id).connections.append((party_a, party_b, tuple(transcode)))

    def delete(self, call_id: str, party: str | None = None) -> CallStats:
        self.log.append(("delete", (call_id, party)))
        stats = self.query(call_id)
        call = self.calls.get(call_id)
        if call is None:
            return stats
        for key in [k for k in call.legs if party is None or k[0] == party]:
            self._free.append(call.legs.pop(key).address.rtp_port)
        if party is None or not call.legs:
            del self.calls[call_id]
            self.stats.pop(call_id, None)
        return stats

    def query(self, call_id: str) -> CallStats:
        given = self.stats.get(call_id)
        call = self.calls.get(call_id)
        legs: dict[tuple[str, int], LegStats] = {}
        if call is not None:
            legs = {k: LegStats() for k in call.legs}
        if given is not None:
            legs.update(given.legs)
        return CallStats(legs)

    def statistics(self) -> EngineStatistics:
        return EngineStatistics(
            sessions=len(self.calls),
            ports_used=self.ports_in_use,
            ports_free=2 * len(self._free),
            recordings_active=sum(1 for c in self.calls.values() if c.recording == "on"),
        )

    def start_recording(self, call_id: str, options: RecordingOptions) -> None:
        self.log.append(("start_recording", (call_id, options)))
        call = self._call(call_id)
        call.recording, call.recording_options = "on", options

    def stop_recording(self, call_id: str) -> None:
        self.log.append(("stop_recording", (call_id,)))
        self._call(call_id).recording = "off"

    def pause_recording(self, call_id: str) -> None:
        self.log.append(("pause_recording", (call_id,)))
        self._call(call_id).recording = "paused"

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
        self.log.append(("play_media", (call_id, party, source, repeat_times, repeat_duration_ms, start_pos)))
        self._call(call_id).playing[party] = source
        return self.media_duration_ms

    def stop_media(self, call_id: str, party: str) -> int | None:
        self.log.append(("stop_media", (call_id, party)))
        if self._call(call_id).playing.pop(party, None) is None:
            raise BackendError("Not currently playing media")
        return 0

    def play_dtmf(
        self, call_id: str, party: str, code: int, *, duration_ms: int, volume_db: int, pause_ms: int
    ) -> None:
        self.log.append(("play_dtmf", (call_id, party, code, duration_ms, volume_db, pause_ms)))
        self._call(call_id).dtmf.append((party, code, duration_ms, volume_db, pause_ms))
