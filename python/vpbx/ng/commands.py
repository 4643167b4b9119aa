"""The NG command dispatcher: a request dictionary in, a reply dictionary out.

Commands and their replies follow the NG protocol document ("Messages description"): ``ping``,
``offer``, ``answer``, ``delete``, ``query``, ``list``, ``statistics``, ``start recording``,
``stop recording``, ``pause recording``, ``play media``, ``stop media`` and ``play DTMF``.
A reply is ``{"result": "ok", ...}`` (with ``warning`` for non-fatal problems) or
``{"result": "error", "error-reason": ...}`` and nothing else. :meth:`NgCommands.handle` never
raises: a bug shows up as an ``Internal error`` reply and a log record.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from vpbx.ng import errors
from vpbx.ng.backend import BackendError, MediaBackend, MediaSource, RecordingOptions
from vpbx.ng.bencode import Value
from vpbx.ng.errors import NgError
from vpbx.ng.offer_answer import do_answer, do_offer, set_recording
from vpbx.ng.options import Options, norm, parse_options
from vpbx.ng.query import CONTROL_COUNTERS, call_stats, statistics
from vpbx.ng.state import Call, Party
from vpbx.sdp import serialize

__all__ = ["COMMANDS", "Handled", "NgCommands", "Reply"]

log = logging.getLogger(__name__)

Reply = dict[str, Any]
Source = tuple[str, int]

#: Canonical command names, looked up in :func:`~vpbx.ng.options.norm` spelling.
COMMANDS = tuple(CONTROL_COUNTERS)
_BY_NORM = {norm(c): c for c in COMMANDS}

MAX_PROXIES = 256  # control clients tracked one by one in "statistics"


def _ok(opts: Options, **fields: Any) -> Reply:
    reply: Reply = {"result": "ok", **fields}
    if opts.warnings:
        reply["warning"] = "; ".join(opts.warnings)
    return reply


def error_reply(reason: str) -> Reply:
    return {"result": "error", "error-reason": reason}


@dataclass(frozen=True, slots=True)
class Handled:
    """One executed request: the canonical command name (None when the request named none we
    know) and the reply."""

    command: str | None
    reply: Reply


class NgCommands:
    """Calls known to this NG server and the commands that act on them."""

    def __init__(self, backend: MediaBackend, *, max_calls: int = 100_000) -> None:
        self.backend = backend
        self.max_calls = max_calls
        self.calls: dict[str, Call] = {}
        self.started: float | None = None
        self.managed = 0
        self.deleted = 0
        self.timed_out = 0  # calls removed because their media stopped
        self.forced = 0  # calls removed by the node (shutdown)
        self.offers_timed_out = 0  # calls removed because their offer got no answer
        self.per_proxy: dict[str, Counter[str]] = {}
        self.totals: Counter[str] = Counter()
        self._handlers: dict[str, Callable[[Options, float], Reply]] = {
            "ping": self._ping,
            "offer": self._offer,
            "answer": self._answer,
            "delete": self._delete,
            "query": self._query,
            "list": self._list,
            "statistics": self._statistics,
            "start recording": self._start_recording,
            "stop recording": self._stop_recording,
            "pause recording": self._pause_recording,
            "play media": self._play_media,
            "stop media": self._stop_media,
            "play DTMF": self._play_dtmf,
        }

    # -- entry point ------------------------------------------------------------------------

    def handle(self, request: dict[bytes, Value], source: Source, now: float) -> Reply:
        """Execute one request; ``now`` is UNIX time in seconds."""
        return self.handle_request(request, source, now).reply

    def handle_request(self, request: dict[bytes, Value], source: Source, now: float) -> Handled:
        """Like :meth:`handle`, also telling which command ran."""
        if self.started is None:
            self.started = now
        command: list[str] = []
        try:
            reply = self._dispatch(request, source, now, command)
        except NgError as e:
            reply = error_reply(e.reason)
        except BackendError as e:
            reply = error_reply(e.reason)
        except Exception:  # never let a bug take the server down; answer and log it
            log.exception("NG request failed")
            reply = error_reply(errors.INTERNAL)
        if reply.get("result") == "error":
            self._count(source, "error")
        return Handled(command[0] if command else None, reply)

    def remove_call(self, call_id: str, reason: Literal["timeout", "offer timeout", "forced"]) -> bool:
        """Remove a call on the node's own account: its media timed out, its offer was never
        answered, or the node is stopping. Returns whether the call existed."""
        call = self.calls.pop(call_id, None)
        if call is None:
            return False
        self.backend.delete(call_id)
        if reason == "timeout":
            self.timed_out += 1
        elif reason == "offer timeout":
            self.offers_timed_out += 1
        else:
            self.forced += 1
        return True

    def expire_offers(self, now: float, timeout_s: float) -> list[str]:
        """Removes the calls that were offered but never answered, whose last signal is more
        than ``timeout_s`` old (a proxy that lost the answer or the delete would otherwise keep
        their ports forever); returns their call-ids. Answered calls are left to the media
        timeout."""
        stale = [
            cid
            for cid, call in self.calls.items()
            if not call.answered and now - call.last_signal > timeout_s
        ]
        for cid in stale:
            self.remove_call(cid, "offer timeout")
        return stale

    def _count(self, source: Source, counter: str) -> None:
        self.totals[counter] += 1
        proxy = self.per_proxy.get(source[0])
        if proxy is None and len(self.per_proxy) < MAX_PROXIES:
            proxy = self.per_proxy[source[0]] = Counter()
        if proxy is not None:
            proxy[counter] += 1

    def _dispatch(self, request: dict[bytes, Value], source: Source, now: float, name: list[str]) -> Reply:
        opts = parse_options(request)
        if opts.command is None:
            raise NgError(errors.NO_COMMAND)
        command = _BY_NORM.get(norm(opts.command))
        if command is None:
            raise NgError(errors.UNKNOWN_COMMAND)
        name.append(command)
        self._count(source, CONTROL_COUNTERS[command])
        return self._handlers[command](opts, now)

    # -- helpers ----------------------------------------------------------------------------

    def _call(self, opts: Options, unknown: str = errors.UNKNOWN_CALL) -> Call:
        if not opts.call_id:
            raise NgError(errors.NO_CALL_ID)
        call = self.calls.get(opts.call_id)
        if call is None:
            raise NgError(unknown)
        return call

    def _drop_call(self, call: Call) -> None:
        self.backend.delete(call.call_id)
        self.calls.pop(call.call_id, None)
        self.deleted += 1
        for party in call.parties:  # offerer <-> answerer: freed now, not by a (slow) GC pass
            party.peer = None

    def _select(self, call: Call, opts: Options) -> list[Party]:
        # participant selection of the media commands (section "block DTMF"): label, from-tag
        # or all parties
        if opts.label is not None:
            party = call.by_label(opts.label)
            if party is None:
                raise NgError(errors.NO_LABEL)
            return [party]
        if opts.from_tag:
            party = call.by_tag(opts.from_tag)
            if party is None:
                raise NgError(errors.NO_FROM_TAG_PARTY)
            return [party]
        if opts.all_flag or opts.all in ("all", "offer-answer", "flows"):
            return list(call.parties)
        raise NgError(errors.NO_PARTY)

    # -- commands ---------------------------------------------------------------------------

    def _ping(self, opts: Options, now: float) -> Reply:
        return {"result": "pong"}

    def _offer_answer_checks(self, opts: Options, answer: bool) -> None:
        if opts.sdp is None:
            raise NgError(errors.NO_SDP)
        if not opts.call_id:
            raise NgError(errors.NO_CALL_ID)
        if not opts.from_tag:
            raise NgError(errors.NO_FROM_TAG)
        if answer and not opts.to_tag:
            raise NgError(errors.NO_TO_TAG)

    def _offer(self, opts: Options, now: float) -> Reply:
        self._offer_answer_checks(opts, answer=False)
        assert opts.call_id is not None
        call = self.calls.get(opts.call_id)
        new = call is None
        if call is None:
            if len(self.calls) >= self.max_calls:
                raise NgError("Parallel session limit reached")
            call = Call(opts.call_id, now, now)
        if opts.metadata is not None:
            call.metadata = opts.metadata
        if new:
            self.calls[call.call_id] = call
        try:
            sdp = do_offer(call, opts, self.backend, now)
        except Exception:
            if new:  # give back whatever the failed first offer took
                self.calls.pop(call.call_id, None)
                with contextlib.suppress(BackendError):
                    self.backend.delete(call.call_id)
            raise
        if new:
            self.managed += 1
        self._record_flag(call, opts)
        call.last_signal = now
        body = serialize(sdp)
        call.note_text(sdp, body)
        return _ok(opts, sdp=body)

    def _record_flag(self, call: Call, opts: Options) -> None:
        # "record call" rides on offer/answer: if recording fails the media still flows, so the
        # offer/answer succeeds with a warning (the explicit "start recording" reports an error)
        try:
            set_recording(call, opts, self.backend)
        except BackendError as e:
            opts.warn(e.reason)

    def _answer(self, opts: Options, now: float) -> Reply:
        self._offer_answer_checks(opts, answer=True)
        call = self._call(opts)
        if opts.metadata is not None:
            call.metadata = opts.metadata
        sdp = do_answer(call, opts, self.backend, now)
        call.answered = True
        self._record_flag(call, opts)
        call.last_signal = now
        body = serialize(sdp)
        call.note_text(sdp, body)
        call.compact()  # answered: the SDPs stay as text until a re-INVITE parses them again
        return _ok(opts, sdp=body)

    def _delete(self, opts: Options, now: float) -> Reply:
        # section "delete Message": the whole call without a from-tag, else one party (by
        # to-tag, from-tag or via-branch); the call goes when no dialogue is left in it.
        if not opts.call_id:
            raise NgError(errors.NO_CALL_ID)
        call = self.calls.get(opts.call_id)
        party = None if call is None or not opts.from_tag else self._delete_target(call, opts)
        if call is None or (opts.from_tag and party is None):
            if opts.fatal:
                raise NgError(errors.DELETE_NOT_FOUND)
            opts.warn(errors.DELETE_NOT_FOUND)
            return _ok(opts)
        stats: Reply = {} if opts.fast else call_stats(call, self.backend.query(call.call_id))
        if party is not None:
            self.backend.delete(call.call_id, party.pid)
            call.remove(party)
        if party is None or not call.has_dialogue():
            self._drop_call(call)
        call.last_signal = now
        return _ok(opts, **stats)

    @staticmethod
    def _delete_target(call: Call, opts: Options) -> Party | None:
        party = None
        if not opts.to_tag and opts.via_branch:
            party = call.by_branch(opts.via_branch)
        if party is None:
            party = call.by_tag(opts.to_tag or opts.from_tag)
        if party is None and opts.via_branch:
            party = call.by_branch(opts.via_branch)
        if party is None and opts.to_tag and len(call.parties) == 2:
            # last resort: an unanswered offer deleted with a To-tag we never saw
            offerer = call.by_tag(opts.from_tag)
            if offerer is not None and offerer.peer is not None and not offerer.peer.tag:
                party = offerer
        return party

    def _query(self, opts: Options, now: float) -> Reply:
        call = self._call(opts)
        only: list[Party] | None = None
        tag = opts.to_tag or opts.from_tag
        if tag:
            party = call.by_tag(tag)
            only = [] if party is None else [party] + ([party.peer] if party.peer is not None else [])
        return _ok(opts, **call_stats(call, self.backend.query(call.call_id), only))

    def _list(self, opts: Options, now: float) -> Reply:
        limit = 32 if opts.limit is None else opts.limit
        if limit < 0:
            raise NgError(errors.BAD_LIMIT)
        return _ok(opts, calls=list(self.calls)[:limit])

    def _statistics(self, opts: Options, now: float) -> Reply:
        engine = self.backend.statistics()
        stats = statistics(
            calls=len(self.calls),
            engine=replace(engine, timeout_sessions=engine.timeout_sessions + self.timed_out),
            uptime=now - (self.started or now),
            managed=self.managed,
            deleted=self.deleted,
            forced=self.forced,
            per_proxy=self.per_proxy,
            totals=self.totals,
        )
        return _ok(opts, statistics=stats)

    def _recording_call(self, opts: Options) -> Call:
        call = self._call(opts)
        if opts.metadata is not None:
            call.metadata = opts.metadata
        return call

    def _start_recording(self, opts: Options, now: float) -> Reply:
        call = self._recording_call(opts)
        self.backend.start_recording(
            call.call_id,
            RecordingOptions(opts.recording_file, opts.recording_dir, opts.recording_pattern, call.metadata),
        )
        call.recording = True
        return _ok(opts)

    def _stop_recording(self, opts: Options, now: float) -> Reply:
        if opts.pause or opts.pause_flag:  # section "pause recording": the alternative spelling
            return self._pause_recording(opts, now)
        call = self._recording_call(opts)
        self.backend.stop_recording(call.call_id)
        call.recording = False
        return _ok(opts)

    def _pause_recording(self, opts: Options, now: float) -> Reply:
        call = self._recording_call(opts)
        self.backend.pause_recording(call.call_id)
        call.recording = False
        return _ok(opts)

    def _play_media(self, opts: Options, now: float) -> Reply:
        call = self._call(opts, errors.UNKNOWN_CALL_MEDIA)
        parties = self._select(call, opts)
        if opts.file is None and opts.blob is None:
            raise NgError(errors.NO_MEDIA_FILE)
        source = MediaSource(opts.file, opts.blob)
        duration = None
        for i, party in enumerate(parties):
            d = self.backend.play_media(
                call.call_id,
                party.pid,
                source,
                repeat_times=max(1, opts.repeat_times or 1),
                repeat_duration_ms=opts.repeat_duration,
                start_pos=max(0, opts.start_pos or 0),
            )
            if i == 0:
                duration = d
        return _ok(opts) if duration is None else _ok(opts, duration=duration)

    def _stop_media(self, opts: Options, now: float) -> Reply:
        call = self._call(opts, errors.UNKNOWN_CALL_MEDIA)
        pos = None
        for party in self._select(call, opts):
            p = self.backend.stop_media(call.call_id, party.pid)
            pos = p if pos is None else pos
        return _ok(opts, **{"last-frame-pos": pos or 0})

    def _play_dtmf(self, opts: Options, now: float) -> Reply:
        # section "play DTMF": code 0-15 or one of 0-9*#A-D; duration 100-5000 ms (default
        # 250), pause 100-5000 ms (default 100), volume in dB below full scale (default -8)
        call = self._call(opts, errors.UNKNOWN_CALL_MEDIA)
        parties = self._select(call, opts)
        if not opts.code_given:
            raise NgError(errors.NO_DTMF_CODE)
        if opts.code is None or not 0 <= opts.code <= 15:
            raise NgError(errors.BAD_DTMF_CODE)
        duration = min(5000, max(100, opts.duration or 250))
        pause = min(5000, max(100, opts.pause_ms or 100))
        volume = -abs(opts.volume if opts.volume is not None else 8)
        for party in parties:
            self.backend.play_dtmf(
                call.call_id, party.pid, opts.code, duration_ms=duration, volume_db=volume, pause_ms=pause
            )
        return _ok(opts)
