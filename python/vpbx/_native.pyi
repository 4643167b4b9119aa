"""Typed stub of the PyO3 binding (checked against the module by mypy.stubtest)."""

import numpy as np
import numpy.typing as npt

__version__: str

Pcm = npt.NDArray[np.int16]

class MediaError(ValueError): ...

def codec_names() -> list[str]: ...

class Encoder:
    name: str
    sample_rate: int
    clock_rate: int
    channels: int
    def __new__(cls, name: str, clock_rate: int, channels: int = 1, **params: int) -> Encoder: ...
    def encode(self, pcm: Pcm) -> bytes: ...

class Decoder:
    name: str
    sample_rate: int
    clock_rate: int
    channels: int
    def __new__(cls, name: str, clock_rate: int, channels: int = 1, **params: int) -> Decoder: ...
    def decode(self, payload: bytes) -> Pcm: ...
    def conceal(self, samples: int) -> Pcm: ...
    def recover(self, next_payload: bytes, samples: int) -> Pcm: ...
    def samples_in(self, payload: bytes) -> int: ...

class Resampler:
    in_rate: int
    out_rate: int
    delay: int
    def __new__(cls, in_rate: int, out_rate: int, channels: int = 1) -> Resampler: ...
    def process(self, pcm: Pcm) -> Pcm: ...

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
    def __eq__(self, other: object) -> bool: ...
