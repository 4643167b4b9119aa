"""The NG control protocol of the media node (rtpengine's protocol: bencode or JSON over UDP),
sans-IO and independent of the engine behind it.

- :mod:`vpbx.ng.bencode`: :func:`decode`/:func:`encode`, :func:`decode_document` (bencode or
  JSON by the first byte), :class:`NgDecodeError`.
- :mod:`vpbx.ng.message`: ``<cookie> <dict>`` framing, :class:`ReplyCache` for retransmissions.
- :mod:`vpbx.ng.backend`: :class:`MediaBackend`, the engine operations the NG layer drives.
- :mod:`vpbx.ng.options`: request dictionaries (and flags, ``rtpp-flags``) to :class:`Options`.
- :mod:`vpbx.ng.commands`: :class:`NgCommands`, the command dispatcher.
- :mod:`vpbx.ng.server`: :class:`NgServer`, ``handle_datagram(data, source, now)``.
- :mod:`vpbx.ng.fake`: :class:`FakeBackend`, an engine stand-in for tests.
"""

from vpbx.ng.backend import (
    BackendError,
    CallStats,
    Endpoint,
    EngineStatistics,
    LegAddress,
    LegCodecs,
    LegStats,
    MediaBackend,
    MediaSource,
    RecordingOptions,
    StreamStats,
)
from vpbx.ng.bencode import Format, NgDecodeError, decode, decode_document, encode, encode_document
from vpbx.ng.commands import NgCommands
from vpbx.ng.message import NgFramingError, ReplyCache
from vpbx.ng.options import Options, parse_options
from vpbx.ng.server import NgOutcome, NgServer

__all__ = [
    "BackendError",
    "CallStats",
    "Endpoint",
    "EngineStatistics",
    "Format",
    "LegAddress",
    "LegCodecs",
    "LegStats",
    "MediaBackend",
    "MediaSource",
    "NgCommands",
    "NgDecodeError",
    "NgFramingError",
    "NgOutcome",
    "NgServer",
    "Options",
    "RecordingOptions",
    "ReplyCache",
    "StreamStats",
    "decode",
    "decode_document",
    "encode",
    "encode_document",
    "parse_options",
]
