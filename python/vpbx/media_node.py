"""``vpbx media-node``: the media engine behind rtpengine's NG control protocol, as a service.

:class:`MediaNode` assembles the parts (no event loop here; the loop, sockets and signals are
in :mod:`vpbx.io.media_node`, whose ``run(settings)`` is what the command runs):

- the engine (:class:`vpbx.media.Engine`) configured from :class:`~vpbx.settings.MediaNodeSettings`;
- :class:`~vpbx.media.ng_backend.EngineBackend` and the sans-IO :class:`~vpbx.ng.NgServer`;
- :class:`~vpbx.metrics.Metrics`, fed by NG outcomes, engine events and finished calls, and
  reading the engine's figures at scrape time;
- one JSON log line per NG command, and one per media event worth an operator's attention.

A media timeout (no RTP on a leg for ``media_timeout_s``) is logged and counted; when every
leg of an answered call has timed out, the call is deleted (rtpengine's ``timeout``). A call
offered but not answered within ``offer_timeout_s`` is deleted by :meth:`MediaNode.housekeeping`
(run about once a second by the I/O side), so a lost answer or delete does not keep its ports.
Key presses heard on a leg (``dtmf``) and prompts that stop (``play_ended``) are logged and
counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from vpbx import __version__
from vpbx.logs import get_logger
from vpbx.media import Engine
from vpbx.media.engine import EngineEvent, EngineStats, dropped_total
from vpbx.media.ng_backend import EngineBackend
from vpbx.metrics import Metrics
from vpbx.ng import BackendError, NgOutcome, NgServer
from vpbx.settings import MediaNodeSettings

__all__ = ["MediaNode"]

log = get_logger("vpbx.media_node")


class MediaNode:
    """One media node: engine, NG server, metrics. ``close()`` deletes every call (freeing
    its ports) and stops the engine."""

    def __init__(
        self, settings: MediaNodeSettings, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._monotonic = monotonic
        self.started = monotonic()
        self.engine = Engine(
            interfaces=settings.interfaces,
            port_min=settings.port_min,
            port_max=settings.port_max,
            workers=settings.workers,
            max_sessions=settings.max_sessions,
            media_timeout_s=settings.media_timeout_s,
            strict_source=settings.strict_source,
            opus_complexity=settings.opus_complexity,
        )
        self.metrics = Metrics()
        self.backend = EngineBackend(
            self.engine,
            on_leg_finished=self.metrics.observe_stream,
            recording_dir=settings.recording_dir,
            detect_dtmf=settings.detect_dtmf,
        )
        self.ng = NgServer(self.backend, max_calls=settings.max_sessions)
        self.metrics.add_engine(self)

    # -- figures read at scrape time (vpbx.metrics.NodeFigures) ----------------------------

    def engine_stats(self) -> EngineStats:
        return self.engine.engine_stats()

    def transcoded_streams(self) -> int:
        return self.backend.transcoded_streams()

    def ng_calls(self) -> int:
        return len(self.ng.commands.calls)

    # -- NG requests --------------------------------------------------------------------------

    def on_ng(self, outcome: NgOutcome, source: tuple[str, int], duration_s: float) -> None:
        """Metrics and the log line of one NG datagram (called by the transport)."""
        self.metrics.observe_ng(outcome.command, outcome.result, duration_s)
        if outcome.result == "retransmission":
            log.debug("ng_retransmission", source=f"{source[0]}:{source[1]}")
            return
        fields: dict[str, Any] = {
            "command": outcome.command,
            "result": outcome.result,
            "call_id": outcome.call_id,
            "from_tag": outcome.from_tag,
            "source": f"{source[0]}:{source[1]}",
            "duration_ms": round(duration_s * 1000, 3),
        }
        if outcome.reason is not None:
            fields["reason"] = outcome.reason
        if outcome.result == "dropped":
            log.warning("ng_dropped", **fields)
        elif outcome.command == "ping":
            log.debug("ng_command", **fields)
        else:
            log.info("ng_command", **fields)

    # -- housekeeping ---------------------------------------------------------------------------

    def housekeeping(self, now: float) -> list[str]:
        """Deletes the calls whose offer went unanswered for ``offer_timeout_s`` (``now`` is
        UNIX time, as for NG requests); returns their call-ids."""
        expired = self.ng.commands.expire_offers(now, self.settings.offer_timeout_s)
        for call_id in expired:
            self.metrics.offers_timed_out.inc()
            log.warning("offer_timed_out", call_id=call_id, offer_timeout_s=self.settings.offer_timeout_s)
        return expired

    # -- engine events ------------------------------------------------------------------------

    def on_event(self, event: EngineEvent) -> None:
        """One engine event (called by the event watcher on the loop's thread)."""
        if event["type"] == "events_lost":
            log.warning("media_events_lost", count=event["count"])
            return
        if event["type"] == "recording_failed":
            failed = self.backend.recording_failed(event["session"])
            log.error("recording_failed", call_id=failed, reason=event["reason"])
            return
        session, leg = event["session"], event["leg"]
        call_id = self.backend.session_call(session)
        key = self.backend.leg_key(session, leg)
        where: dict[str, Any] = {
            "call_id": call_id,
            "tag": self._tag(call_id, key[0]) if call_id is not None and key is not None else None,
            "media_index": key[1] if key is not None else None,
        }
        if event["type"] == "media_timeout":
            self.metrics.media_timeouts.inc()
            log.warning("media_timeout", silent_for_s=round(event["silent_for_s"], 3), **where)
            expired = self.backend.note_timeout(session, leg)
            if expired is not None and self.ng.commands.remove_call(expired, "timeout"):
                self.metrics.sessions_timed_out.inc()
                log.warning("call_timed_out", call_id=expired)
        elif event["type"] == "media_resumed":
            self.backend.note_resumed(session, leg)
            log.info("media_resumed", **where)
        elif event["type"] == "dtmf":
            self.metrics.dtmf_events.labels(event["source"]).inc()
            log.info(
                "dtmf",
                digit=event["digit"],
                duration_ms=event["duration_ms"],
                source=event["source"],
                **where,
            )
        elif event["type"] == "play_ended":
            self.metrics.play_ended.labels(event["reason"]).inc()
            log.info("play_ended", play=event["play"], reason=event["reason"], **where)
        elif event["type"] == "latched":
            peer = event["peer"]
            log.debug("latched", peer=f"{peer[0]}:{peer[1]}", rtcp=event["rtcp"], **where)

    def _tag(self, call_id: str, pid: str) -> str:
        """The SIP tag of a party (its engine id until the tag is known)."""
        call = self.ng.commands.calls.get(call_id)
        party = next((p for p in call.parties if p.pid == pid), None) if call is not None else None
        return party.tag if party is not None and party.tag else pid

    # -- health and shutdown --------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        if self.engine.closed:
            return {"status": "stopping", "version": __version__}
        s = self.engine.engine_stats()
        return {
            "status": "ok",
            "version": __version__,
            "uptime_s": round(self._monotonic() - self.started, 3),
            "ng_calls": self.ng_calls(),
            "sessions": s["sessions"],
            "legs": s["legs"],
            "transcoded_streams": self.transcoded_streams(),
            "ports_used": s["ports_used"],
            "ports_free": s["ports_free"],
            "packets_relayed": s["packets_relayed"],
            "bytes_relayed": s["bytes_relayed"],
            "dropped_packets": dropped_total(s["dropped"]),
            "workers": len(s["workers"]),
            "interfaces": [
                {
                    "name": i["name"],
                    "advertised": i["advertised"],
                    "ports_used": i["ports_used"],
                    "ports_free": i["ports_free"],
                }
                for i in s["interfaces"]
            ],
        }

    def close(self) -> int:
        """Deletes every call (their ports are free on return) and stops the engine; returns
        how many calls were deleted. Idempotent."""
        if self.engine.closed:
            return 0
        deleted = 0
        for call_id in list(self.ng.commands.calls):
            try:
                deleted += self.ng.commands.remove_call(call_id, "forced")
            except BackendError as e:  # the engine closes below and frees the ports anyway
                log.error("call_delete_failed", call_id=call_id, reason=e.reason)
        self.engine.close()
        return deleted
