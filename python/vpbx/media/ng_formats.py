"""What the NG backend tells the engine about formats: the codec a leg is given, payload type
maps between the two sides, and safe recording file names. Pure functions, no engine."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from vpbx.ng.backend import LegCodecs
from vpbx.sdp import Codec

__all__ = ["EngineCodec", "main_codec", "pt_map", "recording_name", "same_stream_key", "telephone_event"]


@dataclass(frozen=True, slots=True)
class EngineCodec:
    """What ``Engine.set_leg_codec`` is told about one leg: ``name`` None relays as is."""

    name: str | None
    clock_rate: int
    channels: int = 1
    payload_type: int | None = None
    ptime_ms: int = 20
    telephone_event_pt: int | None = None


def same_stream_key(c: EngineCodec) -> tuple[str, int, int, int]:
    return ((c.name or "").lower(), c.clock_rate, c.channels, c.ptime_ms)


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def recording_name(call_id: str, now: float) -> str:
    """A file name for the call's recording: the call-id reduced to letters, digits, ``_`` and
    ``-`` (at most 40), a short hash of the full call-id (so reduced call-ids cannot collide)
    and the UTC time."""
    safe = _UNSAFE.sub("_", call_id).strip("_")[:40] or "call"
    digest = hashlib.sha256(call_id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return f"{safe}-{digest}-{stamp}.wav"


def main_codec(codecs: Sequence[Codec]) -> Codec | None:
    return next((c for c in codecs if not c.is_auxiliary), None)


def telephone_event(codecs: LegCodecs | None, clock_rate: int) -> int | None:
    """The leg's RFC 4733 payload type at its codec's clock rate (§2.1), if negotiated."""
    if codecs is None:
        return None
    for c in (*codecs.send, *codecs.receive):
        if c.name.lower() == "telephone-event" and c.clock_rate == clock_rate and c.pt is not None:
            return c.pt
    return None


def pt_map(src: LegCodecs | None, dst: LegCodecs | None) -> dict[int, int]:
    """Payload type rewrite for packets relayed from ``src``'s party to ``dst``'s: each format
    the source sends (its ``receive`` numbers) to the number the destination expects for the
    same format (its ``send`` numbers), where they differ."""
    if src is None or dst is None:
        return {}
    out: dict[int, int] = {}
    for c in src.receive:
        t = next((t for t in dst.send if t.matches(c)), None)
        if c.pt is not None and t is not None and t.pt is not None and t.pt != c.pt:
            out.setdefault(c.pt, t.pt)
    return out
