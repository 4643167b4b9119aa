"""The media seam of the B2BUA: anchor both SDPs of a call on the media engine.

The B2BUA speaks to media through `MediaControl` (offer / answer / delete), the three NG
commands a SIP proxy sends rtpengine. `NgMediaControl` implements it in-process by
driving `vpbx.ng.NgCommands` with the same NG dicts Kamailio's rtpengine module sends
over UDP, so a remote media node behind NG can later replace it without touching the
B2BUA. Every offer asks for the codecs in `transcode` (rtpengine's
``codec: {transcode: [...]}``): when the callee shares no codec with the caller, it can
pick one of those and the engine transcodes (RFC 3264 §6.1 stays intact on each side).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final, Protocol

from vpbx.ng import NgCommands
from vpbx.ng.bencode import Value

__all__ = ["DEFAULT_TRANSCODE", "MediaControl", "MediaError", "MediaUnavailableError", "NgMediaControl"]

DEFAULT_TRANSCODE: Final = ("PCMU", "PCMA")
_SOURCE: Final = ("b2bua", 0)  # the NG "proxy" this control plane is, for NG statistics
# How running out of capacity reads in an NG error-reason: our engine (PortsExhausted,
# TooManySessions), NgCommands (max_calls) and rtpengine (and vpbx.ng.fake) for ports.
_CAPACITY_REASONS: Final = (
    "no free ",
    "too many sessions",
    "Parallel session limit reached",
    "Ran out of ports",
)


class MediaError(Exception):
    """The media layer refused (bad SDP, no ports, ...): the call cannot be anchored."""


class MediaUnavailableError(MediaError):
    """The media layer is out of capacity (no free ports, session limit): the same call may
    work later, so callers get 503 (RFC 3261 §21.5.4), not 488 as for an unusable SDP."""


class MediaControl(Protocol):
    def offer(self, call_id: str, from_tag: str, sdp: bytes, *, transcode: Sequence[str] = ()) -> bytes:
        """`sdp` offered by party `from_tag`; returns it rewritten to the engine's address."""
        ...

    def answer(self, call_id: str, from_tag: str, to_tag: str, sdp: bytes) -> bytes:
        """`sdp` answered by `to_tag` to `from_tag`'s offer; returns it rewritten."""
        ...

    def delete(self, call_id: str) -> None:
        """Release the call's media (idempotent)."""
        ...


class NgMediaControl:
    """MediaControl over NG commands (in-process: `NgCommands(EngineBackend(engine))`)."""

    def __init__(
        self,
        commands: NgCommands,
        *,
        clock: Callable[[], float],
        transcode: Sequence[str] = DEFAULT_TRANSCODE,
    ) -> None:
        self.commands = commands
        self.clock = clock
        self.transcode = tuple(transcode)

    def _run(self, request: dict[bytes, Value]) -> bytes:
        reply = self.commands.handle(request, _SOURCE, self.clock())
        if reply.get("result") != "ok":
            reason = str(reply.get("error-reason", "media error"))
            raise (MediaUnavailableError if reason.startswith(_CAPACITY_REASONS) else MediaError)(reason)
        sdp = reply.get("sdp", b"")
        return sdp.encode() if isinstance(sdp, str) else bytes(sdp)

    def offer(self, call_id: str, from_tag: str, sdp: bytes, *, transcode: Sequence[str] = ()) -> bytes:
        codecs = list(transcode or self.transcode)
        request: dict[bytes, Value] = {
            b"command": b"offer",
            b"call-id": call_id.encode(),
            b"from-tag": from_tag.encode(),
            b"sdp": sdp,
            b"replace": [b"origin", b"session-connection"],
        }
        if codecs:
            request[b"codec"] = {b"transcode": [c.encode() for c in codecs]}
        return self._run(request)

    def answer(self, call_id: str, from_tag: str, to_tag: str, sdp: bytes) -> bytes:
        return self._run(
            {
                b"command": b"answer",
                b"call-id": call_id.encode(),
                b"from-tag": from_tag.encode(),
                b"to-tag": to_tag.encode(),
                b"sdp": sdp,
                b"replace": [b"origin", b"session-connection"],
            }
        )

    def delete(self, call_id: str) -> None:
        # "fast": the reply's statistics are not read here (the backend still reports each
        # finished leg's quality), so the engine is not queried for them: one round trip less
        request: dict[bytes, Value] = {
            b"command": b"delete",
            b"call-id": call_id.encode(),
            b"flags": [b"fast"],
        }
        self.commands.handle(request, _SOURCE, self.clock())
