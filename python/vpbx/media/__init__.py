"""The media core, through its PyO3 binding.

This module is a public contract: control-plane scripts and benchmarks use these
names. PCM is always a 1-D ``numpy.int16`` array (interleaved when stereo); RTP
payloads and packets are ``bytes``. Every call that does real work releases the
GIL. Malformed input raises :class:`MediaError` (a ``ValueError``) whose message
says what was wrong; a wrong argument type raises ``TypeError``.

Codecs are addressed by their SDP names: ``PCMU``, ``PCMA``, ``G722``, ``L16``,
``opus`` (see :func:`codec_names`). Note RFC 3551's quirk for G.722: its RTP
clock rate is 8000 while its PCM runs at 16000 Hz; ``Encoder.sample_rate`` tells
the PCM rate, ``Encoder.clock_rate`` the RTP one.

:class:`Engine` is the media engine itself (sockets, worker threads, relay and
transcoding sessions); the dicts it returns are typed in :mod:`vpbx.media.engine`
and its events reach asyncio through :mod:`vpbx.io.media_events`.
"""

from vpbx._native import (
    Decoder,
    DtmfDetector,
    DtmfEventReceiver,
    Encoder,
    Engine,
    JitterBuffer,
    MediaError,
    Mixer,
    RecordingMixer,
    Resampler,
    RtpPacket,
    WavWriter,
    codec_names,
    dtmf_tone,
    parse_telephone_event,
    repair_wav,
    telephone_event_packets,
)

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
    "codec_names",
    "dtmf_tone",
    "parse_telephone_event",
    "repair_wav",
    "telephone_event_packets",
]
