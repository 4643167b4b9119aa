"""Typed stub of the PyO3 binding (checked against the module by mypy.stubtest)."""

import os
from typing import Self, TypeAlias, final

import numpy as np
import numpy.typing as npt

__version__: str
__all__ = [
    "Decoder",
    "DtmfDetector",
    "DtmfEventReceiver",
    "Encoder",
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
