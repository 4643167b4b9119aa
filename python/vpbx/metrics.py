"""Every Prometheus metric of vpbx, declared in this one module (DESIGN.md §3.6, §5).

Names start with ``vpbx_``, use base units (seconds, bytes, ratios) and end in ``_total`` for
counters. Labels never carry call-ids, tags or users: only small fixed sets (command, result,
drop kind, interface, worker index).

Two kinds of metrics:

- **Events** counted or observed by the control plane as they happen: NG commands and their
  duration, media timeouts, and call quality when a call (or party) is deleted.
- **Engine figures** read from the media engine at scrape time by :class:`EngineCollector`
  (one ``engine_stats()`` call per scrape; Python does nothing per packet).

Call quality comes twice: as histograms (``vpbx_call_mos``, ``vpbx_call_jitter_seconds``,
``vpbx_call_packet_loss_ratio``) and as rtpengine-style sum/count pairs so dashboards built on
``rate(rtpengine_mos_total[5m]) / rate(rtpengine_mos_samples_total[5m])`` carry over:

=================================  ===========================================================
rtpengine                          vpbx
=================================  ===========================================================
rtpengine_mos_total / _samples     vpbx_mos_total / vpbx_mos_samples_total (MOS 1..4.5)
rtpengine_jitter_total / _samples  vpbx_jitter_seconds_total / ..._samples_total (seconds, not ms)
rtpengine_packetloss_total / ...   vpbx_packet_loss_ratio_total / ..._samples_total (0..1, not %)
=================================  ===========================================================
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Protocol, cast

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from vpbx.media.engine import EngineStats
from vpbx.ng.backend import LegStats

if TYPE_CHECKING:
    from vpbx.directory.report import DirectoryStats
    from vpbx.io.cdr_writer import CdrWriterStats
    from vpbx.io.registration_writer import WriterStats
    from vpbx.pbx.calls.model import CallStats
    from vpbx.pbx.registrar import RegistrarStats
    from vpbx.security.guard import GuardStats

__all__ = [
    "NG_COMMAND_LABELS",
    "REGISTER_RESULTS",
    "CallFigures",
    "DirectoryCollector",
    "DirectoryFigures",
    "EngineCollector",
    "Metrics",
    "NodeFigures",
    "QualifyCollector",
    "QualifyFigures",
    "SipCollector",
    "SipFigures",
    "TrunkCollector",
    "TrunkFigures",
]

#: ``command`` label values besides the NG command names: no known command in the request.
NG_COMMAND_LABELS = ("invalid",)

_NG_DURATION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_MOS_BUCKETS = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 3.8, 4.0, 4.2, 4.3, 4.4, 4.5)
_JITTER_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5)
_SETUP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_LOSS_BUCKETS = (0.0, 0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0)


class NodeFigures(Protocol):
    """What :class:`EngineCollector` reads at scrape time."""

    def engine_stats(self) -> EngineStats: ...

    def transcoded_streams(self) -> int: ...

    def ng_calls(self) -> int: ...


class SipFigures(Protocol):
    """What :class:`SipCollector` reads at scrape time (``vpbx serve``)."""

    def registrar_stats(self) -> RegistrarStats: ...

    def guard_stats(self) -> GuardStats | None: ...

    def writer_stats(self) -> tuple[WriterStats, int] | None:
        """The registration writer's counters and its queue length (None: no database)."""
        ...

    def registrations(self) -> int: ...

    def accounts(self) -> int: ...

    def sip_requests(self) -> Mapping[str, int]:
        """SIP requests received, by method (a bounded set: known methods and "other")."""
        ...


class TrunkFigures(Protocol):
    """What :class:`TrunkCollector` reads at scrape time (vpbx.io.trunks.TrunkManager)."""

    def registered(self) -> Mapping[str, bool]:
        """Every configured trunk by name: registered with its provider now?"""
        ...

    def registration_failures(self) -> Mapping[str, int]:
        """Failed registration attempts by trunk name since the start."""
        ...


class QualifyFigures(Protocol):
    """What :class:`QualifyCollector` reads (vpbx.pbx.Qualifier): (reachable, unreachable) contacts."""

    def counts(self) -> tuple[int, int]: ...


class DirectoryFigures(Protocol):
    """What :class:`DirectoryCollector` reads at scrape time (vpbx.io.directory_sync.DirectorySyncLoop)."""

    def directory_stats(self) -> DirectoryStats: ...


class CallFigures(Protocol):
    """What :class:`CallCollector` reads at scrape time (the B2BUA of ``vpbx serve``)."""

    def call_stats(self) -> CallStats: ...

    def cdr_stats(self) -> tuple[CdrWriterStats, int]:
        """The CDR writer's counters and its queue length."""
        ...


#: ``result`` label values of ``vpbx_sip_register_results_total`` -> RegistrarStats field.
REGISTER_RESULTS: dict[str, str] = {
    "accepted": "accepted",
    "challenged": "challenges",
    "forbidden": "forbidden",
    "interval_too_brief": "too_brief",
    "out_of_order": "out_of_order",
    "bad_request": "bad_requests",
    "dropped": "dropped",
}


class Metrics:
    """The metrics of one process, in a dedicated registry (nothing global)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        ProcessCollector(namespace="vpbx", registry=r)

        # NG control protocol
        self.ng_commands = Counter(
            "vpbx_ng_commands",
            "NG requests executed, by command and result (ok or error).",
            ["command", "result"],
            registry=r,
        )
        self.ng_request_duration = Histogram(
            "vpbx_ng_request_duration_seconds",
            "Time to handle one NG request, from datagram in to reply out.",
            ["command"],
            buckets=_NG_DURATION_BUCKETS,
            registry=r,
        )
        self.ng_retransmissions = Counter(
            "vpbx_ng_retransmissions", "NG requests answered from the reply cache.", registry=r
        )
        self.ng_dropped = Counter(
            "vpbx_ng_dropped_datagrams", "NG datagrams without a cookie, so not answerable.", registry=r
        )

        # media events
        self.media_timeouts = Counter(
            "vpbx_media_timeouts", "Legs on which no RTP arrived for the media timeout.", registry=r
        )
        self.sessions_timed_out = Counter(
            "vpbx_media_sessions_timed_out", "Calls deleted because all their media stopped.", registry=r
        )
        self.offers_timed_out = Counter(
            "vpbx_media_offers_timed_out",
            "Calls deleted because an offer got no answer within offer_timeout_s.",
            registry=r,
        )
        self.dtmf_events = Counter(
            "vpbx_media_dtmf_events",
            "Key presses detected on media legs, by how they were sent (rfc4733, inband).",
            ["source"],
            registry=r,
        )
        self.play_ended = Counter(
            "vpbx_media_play_ended",
            "Prompts that stopped playing into a leg, by reason (finished, stopped).",
            ["reason"],
            registry=r,
        )

        # call quality, from deleted calls (or parties)
        self.call_mos = Histogram(
            "vpbx_call_mos",
            "MOS estimate (E-model, ITU-T G.107) per received stream of a finished call.",
            buckets=_MOS_BUCKETS,
            registry=r,
        )
        self.call_jitter = Histogram(
            "vpbx_call_jitter_seconds",
            "Interarrival jitter (RFC 3550 A.8) per received stream of a finished call.",
            buckets=_JITTER_BUCKETS,
            registry=r,
        )
        self.call_loss = Histogram(
            "vpbx_call_packet_loss_ratio",
            "Share of RTP packets lost per received stream of a finished call.",
            buckets=_LOSS_BUCKETS,
            registry=r,
        )
        self.mos_sum = Counter(
            "vpbx_mos", "Sum of the MOS of finished streams (rtpengine style).", registry=r
        )
        self.mos_samples = Counter("vpbx_mos_samples", "Finished streams in vpbx_mos_total.", registry=r)
        self.jitter_sum = Counter(
            "vpbx_jitter_seconds", "Sum of the jitter of finished streams (rtpengine style).", registry=r
        )
        self.jitter_samples = Counter(
            "vpbx_jitter_seconds_samples", "Finished streams in vpbx_jitter_seconds_total.", registry=r
        )
        self.loss_sum = Counter(
            "vpbx_packet_loss_ratio",
            "Sum of the loss ratios of finished streams (rtpengine style).",
            registry=r,
        )
        self.loss_samples = Counter(
            "vpbx_packet_loss_ratio_samples", "Finished streams in vpbx_packet_loss_ratio_total.", registry=r
        )

    def add_calls(self, figures: CallFigures) -> None:
        """Expose the B2BUA's figures (read at each scrape) and the call setup histogram."""
        self.registry.register(CallCollector(figures))
        self.call_setup = Histogram(
            "vpbx_call_setup_seconds",
            "Time from a call's INVITE to the first 180/183/200 relayed to the caller.",
            buckets=_SETUP_BUCKETS,
            registry=self.registry,
        )

    def observe_setup(self, seconds: float) -> None:
        self.call_setup.observe(seconds)

    def observe_ng(self, command: str | None, result: str, duration_s: float) -> None:
        """One NG datagram: ``result`` as :class:`vpbx.ng.NgOutcome` gives it."""
        if result == "retransmission":
            self.ng_retransmissions.inc()
            return
        if result == "dropped":
            self.ng_dropped.inc()
            return
        label = command if command is not None else NG_COMMAND_LABELS[0]
        self.ng_commands.labels(label, result).inc()
        self.ng_request_duration.labels(label).observe(duration_s)

    def observe_stream(self, stats: LegStats) -> None:
        """Call quality of one received stream whose call (or party) ended."""
        if stats.mos is not None:
            self.call_mos.observe(stats.mos)
            self.mos_sum.inc(stats.mos)
            self.mos_samples.inc()
        if stats.jitter_ms is not None:
            jitter = stats.jitter_ms / 1000.0
            self.call_jitter.observe(jitter)
            self.jitter_sum.inc(jitter)
            self.jitter_samples.inc()
        if stats.packet_loss_pct is not None:
            loss = min(max(stats.packet_loss_pct / 100.0, 0.0), 1.0)
            self.call_loss.observe(loss)
            self.loss_sum.inc(loss)
            self.loss_samples.inc()

    def add_sip(self, figures: SipFigures) -> None:
        """Expose the SIP service's figures (read at each scrape)."""
        self.registry.register(SipCollector(figures))

    def add_trunks(self, figures: TrunkFigures) -> None:
        """Expose the trunks' registration figures (read at each scrape)."""
        self.registry.register(TrunkCollector(figures))

    def add_qualify(self, figures: QualifyFigures) -> None:
        """Expose the OPTIONS qualify figures; `observe_contact_rtt` feeds the histogram."""
        self.registry.register(QualifyCollector(figures))
        self.contact_rtt = Histogram(
            "vpbx_contact_rtt_seconds",
            "Round trip of OPTIONS qualify probes to registered contacts.",
            buckets=_SETUP_BUCKETS,
            registry=self.registry,
        )

    def observe_contact_rtt(self, seconds: float) -> None:
        self.contact_rtt.observe(seconds)

    def add_directory(self, figures: DirectoryFigures) -> None:
        """Expose the directory sync's figures (read at each scrape)."""
        self.registry.register(DirectoryCollector(figures))

    def add_engine(self, figures: NodeFigures) -> None:
        """Expose the engine's figures (read at each scrape)."""
        self.registry.register(EngineCollector(figures))

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


class EngineCollector(Collector):
    """Media-engine counters and gauges, read from ``engine_stats()`` at scrape time."""

    def __init__(self, figures: NodeFigures) -> None:
        self.figures = figures

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: its families are only known by collecting

    def collect(self) -> Iterator[Metric]:
        f = self.figures
        s = f.engine_stats()

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, value=value)

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, value=value)

        yield gauge("vpbx_media_sessions", "Media sessions (calls) in the engine.", s["sessions"])
        yield gauge("vpbx_media_legs", "Media legs (one per party and m-line) in the engine.", s["legs"])
        yield gauge(
            "vpbx_media_transcoded_streams",
            "Legs whose media is decoded and re-encoded (two per transcoded m-line).",
            f.transcoded_streams(),
        )
        yield gauge(
            "vpbx_media_recordings_active",
            "Calls being recorded (paused ones included).",
            s.get("recordings_active", 0),
        )
        yield counter(
            "vpbx_media_recordings_failed",
            "Recordings ended by an error (disk full, write failure).",
            s.get("recordings_failed", 0),
        )
        yield gauge("vpbx_ng_calls", "Calls known to the NG control layer.", f.ng_calls())
        used = GaugeMetricFamily("vpbx_media_ports_used", "UDP ports in use.", labels=["interface"])
        free = GaugeMetricFamily(
            "vpbx_media_ports_free", "UDP ports free in the range.", labels=["interface"]
        )
        busy = CounterMetricFamily(
            "vpbx_media_ports_busy_skipped",
            "Ports skipped because another process had them bound.",
            labels=["interface"],
        )
        for i in s["interfaces"]:
            used.add_metric([i["name"]], i["ports_used"])
            free.add_metric([i["name"]], i["ports_free"])
            busy.add_metric([i["name"]], i["ports_busy_skipped"])
        yield used
        yield free
        yield busy
        yield counter(
            "vpbx_media_packets_relayed",
            "RTP and RTCP packets sent on (relayed or transcoded).",
            s["packets_relayed"],
        )
        yield counter("vpbx_media_bytes_relayed", "Bytes of the packets sent on.", s["bytes_relayed"])
        yield counter("vpbx_media_rtcp_packets_relayed", "RTCP packets relayed.", s["rtcp_relayed"])
        drops = CounterMetricFamily(
            "vpbx_media_dropped_packets", "Datagrams received but not relayed, by reason.", labels=["kind"]
        )
        for kind, n in cast("Mapping[str, int]", s["dropped"]).items():
            drops.add_metric([kind], n)
        yield drops
        yield counter("vpbx_media_receive_errors", "Failed socket reads.", s["receive_errors"])
        yield counter(
            "vpbx_media_sessions_refused",
            "Sessions refused by admission control (max_sessions).",
            s["sessions_refused"],
        )
        yield counter(
            "vpbx_media_events_lost", "Engine events lost because the event queue was full.", s["events_lost"]
        )
        cpu = CounterMetricFamily(
            "vpbx_media_worker_cpu_seconds", "CPU time of each media worker thread.", labels=["worker"]
        )
        relayed = CounterMetricFamily(
            "vpbx_media_worker_packets_relayed", "Packets sent on by each media worker.", labels=["worker"]
        )
        for n, w in enumerate(s["workers"]):
            cpu.add_metric([str(n)], w["cpu_time_s"])
            relayed.add_metric([str(n)], w["packets_relayed"])
        yield cpu
        yield relayed


class SipCollector(Collector):
    """Registrar, guard and registration-store figures, read from the service at scrape time."""

    def __init__(self, figures: SipFigures) -> None:
        self.figures = figures

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        f = self.figures
        reg = f.registrar_stats()
        yield GaugeMetricFamily(
            "vpbx_registrations",
            "Contacts registered (bindings in the location service).",
            value=f.registrations(),
        )
        yield GaugeMetricFamily("vpbx_sip_accounts", "SIP accounts that may register.", value=f.accounts())
        results = CounterMetricFamily(
            "vpbx_sip_register_results", "REGISTER requests answered, by result.", labels=["result"]
        )
        for label, name in REGISTER_RESULTS.items():
            results.add_metric([label], getattr(reg, name))
        yield results
        yield CounterMetricFamily(
            "vpbx_sip_auth_failures",
            "Digest authentications that failed (wrong password or unknown user).",
            value=reg.auth_failures,
        )
        requests = CounterMetricFamily(
            "vpbx_sip_requests", "SIP requests received, by method.", labels=["method"]
        )
        for method, n in sorted(f.sip_requests().items()):
            requests.add_metric([method], n)
        yield requests
        guard = f.guard_stats()
        if guard is not None:
            yield CounterMetricFamily(
                "vpbx_sip_bans", "Temporary bans of source addresses.", value=guard.bans_total
            )
            yield GaugeMetricFamily(
                "vpbx_sip_bans_active", "Source addresses banned now.", value=guard.bans_active
            )
            yield CounterMetricFamily(
                "vpbx_sip_requests_limited",
                "Requests dropped by the per-source rate limit.",
                value=guard.requests_limited_total,
            )
            yield CounterMetricFamily(
                "vpbx_sip_requests_banned",
                "Requests dropped because their source is banned.",
                value=guard.requests_banned_total,
            )
        writer = f.writer_stats()
        if writer is not None:
            stats, pending = writer
            yield CounterMetricFamily(
                "vpbx_registration_writes",
                "Registration changes written to the database.",
                value=stats.written,
            )
            yield CounterMetricFamily(
                "vpbx_registration_write_failures",
                "Registration write transactions that failed (retried).",
                value=stats.failures,
            )
            yield GaugeMetricFamily(
                "vpbx_registration_writes_pending",
                "Registration changes waiting to be written.",
                value=pending,
            )


class TrunkCollector(Collector):
    """Trunk registration state. Trunk names are configuration (a handful, chosen by the
    operator), not users or calls, so they are fine as a label."""

    def __init__(self, figures: TrunkFigures) -> None:
        self.figures = figures

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        registered = GaugeMetricFamily(
            "vpbx_trunk_registered",
            "1 when the trunk is registered with its provider, else 0.",
            labels=["trunk"],
        )
        for name, up in sorted(self.figures.registered().items()):
            registered.add_metric([name], 1.0 if up else 0.0)
        yield registered
        failures = CounterMetricFamily(
            "vpbx_trunk_registration_failures",
            "Registration attempts that failed (rejected, refused, timed out), by trunk.",
            labels=["trunk"],
        )
        for name, n in sorted(self.figures.registration_failures().items()):
            failures.add_metric([name], n)
        yield failures


class QualifyCollector(Collector):
    """Registered contacts by OPTIONS qualify state (those not probed yet are in neither)."""

    def __init__(self, figures: QualifyFigures) -> None:
        self.figures = figures

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        up, down = self.figures.counts()
        yield GaugeMetricFamily("vpbx_contacts_reachable", "Contacts that answered OPTIONS.", value=up)
        yield GaugeMetricFamily("vpbx_contacts_unreachable", "Contacts that stopped answering.", value=down)


class DirectoryCollector(Collector):
    """Directory sync figures (issue 5): last success, duration, entries, changes, failures."""

    def __init__(self, figures: DirectoryFigures) -> None:
        self.figures = figures

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        s = self.figures.directory_stats()
        if s.last_success is not None:
            yield GaugeMetricFamily(
                "vpbx_directory_last_success_timestamp_seconds",
                "When the last successful (not dry) directory sync finished, epoch seconds.",
                value=s.last_success,
            )
        if s.last_duration_s is not None:
            yield GaugeMetricFamily(
                "vpbx_directory_sync_duration_seconds",
                "How long the last directory sync run took.",
                value=s.last_duration_s,
            )
        yield GaugeMetricFamily(
            "vpbx_directory_entries_seen", "Users the last successful run read.", value=s.entries_seen
        )
        changes = CounterMetricFamily(
            "vpbx_directory_changes", "Changes applied by directory syncs, by kind.", labels=["kind"]
        )
        for kind, n in s.changes.items():
            changes.add_metric([kind], n)
        yield changes
        failures = CounterMetricFamily(
            "vpbx_directory_sync_failures",
            "Directory sync runs that failed or aborted with nothing changed, by reason.",
            labels=["reason"],
        )
        for reason, n in s.failures.items():
            failures.add_metric([reason], n)
        yield failures


class CallCollector(Collector):
    """Calls through the B2BUA and their CDRs, read at scrape time."""

    def __init__(self, figures: CallFigures) -> None:
        self.figures = figures

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        f = self.figures
        calls = f.call_stats()
        yield GaugeMetricFamily("vpbx_calls_active", "Calls in setup or answered now.", value=calls.active)
        totals = CounterMetricFamily(
            "vpbx_calls",
            "Calls ended, by direction (internal, inbound, outbound) and result (answered, busy, "
            "no-answer, cancelled, rejected, failed).",
            labels=["direction", "result"],
        )
        for (direction, result), n in sorted(calls.totals.items()):
            totals.add_metric([direction, result], n)
        yield totals
        yield CounterMetricFamily(
            "vpbx_calls_limited", "Calls refused by a per-number or per-account limit.", value=calls.limited
        )
        yield CounterMetricFamily(
            "vpbx_call_auth_challenges", "INVITEs answered 407 (challenge).", value=calls.challenges
        )
        yield GaugeMetricFamily(
            "vpbx_sip_input_lag_seconds",
            "How long the last probe datagram waited to be read by the SIP listener (socket queue and loop).",
            value=calls.input_lag_s,
        )
        yield CounterMetricFamily(
            "vpbx_calls_shed",
            "New INVITEs answered 503 + Retry-After because the node was overloaded.",
            value=calls.shed,
        )
        stats, pending = f.cdr_stats()
        yield CounterMetricFamily("vpbx_cdrs_written", "CDRs written to the database.", value=stats.written)
        yield CounterMetricFamily(
            "vpbx_cdr_write_failures", "CDR write transactions that failed (retried).", value=stats.failures
        )
        yield CounterMetricFamily(
            "vpbx_cdrs_dropped", "CDRs lost because the queue overflowed.", value=stats.dropped
        )
        yield GaugeMetricFamily("vpbx_cdrs_pending", "CDRs waiting to be written.", value=pending)
