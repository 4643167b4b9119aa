"""The metrics module: names, units, labels, and the engine figures read at scrape time."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from vpbx.media.engine import EngineStats
from vpbx.metrics import Metrics
from vpbx.ng.backend import LegStats, StreamStats


class Figures:
    """Stands in for the media node: canned engine stats."""

    def __init__(self) -> None:
        self.scrapes = 0

    def engine_stats(self) -> EngineStats:
        self.scrapes += 1
        return {
            "sessions": 2,
            "legs": 4,
            "ports_used": 8,
            "ports_free": 92,
            "packets_relayed": 1234,
            "bytes_relayed": 212_248,
            "rtcp_relayed": 10,
            "dropped": {
                "garbage": 1,
                "stranger": 2,
                "flood": 3,
                "no_destination": 4,
                "oversize": 5,
                "send_failed": 6,
            },
            "receive_errors": 0,
            "sessions_refused": 7,
            "events_lost": 0,
            "workers": [
                {"sessions": 1, "legs": 2, "packets_relayed": 600, "cpu_time_s": 0.5},
                {"sessions": 1, "legs": 2, "packets_relayed": 634, "cpu_time_s": 0.25},
            ],
            "interfaces": [
                {
                    "name": "pub",
                    "local": "10.0.0.5",
                    "advertised": "203.0.113.5",
                    "ports_total": 100,
                    "ports_used": 8,
                    "ports_free": 92,
                    "ports_busy_skipped": 0,
                }
            ],
        }

    def transcoded_streams(self) -> int:
        return 2

    def ng_calls(self) -> int:
        return 3


def scrape(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(m.exposition().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_engine_figures_are_read_at_scrape_time() -> None:
    m, f = Metrics(), Figures()
    m.add_engine(f)
    assert f.scrapes == 0
    got = scrape(m)
    assert f.scrapes == 1
    assert got[("vpbx_media_sessions", ())] == 2
    assert got[("vpbx_media_legs", ())] == 4
    assert got[("vpbx_media_transcoded_streams", ())] == 2
    assert got[("vpbx_ng_calls", ())] == 3
    assert got[("vpbx_media_ports_used", (("interface", "pub"),))] == 8
    assert got[("vpbx_media_ports_free", (("interface", "pub"),))] == 92
    assert got[("vpbx_media_packets_relayed_total", ())] == 1234
    assert got[("vpbx_media_bytes_relayed_total", ())] == 212_248
    assert got[("vpbx_media_dropped_packets_total", (("kind", "flood"),))] == 3
    assert got[("vpbx_media_sessions_refused_total", ())] == 7
    assert got[("vpbx_media_worker_cpu_seconds_total", (("worker", "1"),))] == 0.25
    assert ("vpbx_process_cpu_seconds_total", ()) in got


def test_ng_outcomes_by_command_and_result() -> None:
    m = Metrics()
    m.observe_ng("offer", "ok", 0.002)
    m.observe_ng("offer", "error", 0.001)
    m.observe_ng(None, "error", 0.0001)
    m.observe_ng(None, "retransmission", 0.0)
    m.observe_ng(None, "dropped", 0.0)
    got = scrape(m)
    assert got[("vpbx_ng_commands_total", (("command", "offer"), ("result", "ok")))] == 1
    assert got[("vpbx_ng_commands_total", (("command", "offer"), ("result", "error")))] == 1
    assert got[("vpbx_ng_commands_total", (("command", "invalid"), ("result", "error")))] == 1
    assert got[("vpbx_ng_request_duration_seconds_count", (("command", "offer"),))] == 2
    assert got[("vpbx_ng_retransmissions_total", ())] == 1
    assert got[("vpbx_ng_dropped_datagrams_total", ())] == 1


def test_call_quality_as_histograms_and_rtpengine_style_pairs() -> None:
    m = Metrics()
    m.observe_stream(LegStats(rtp=StreamStats(packets=50), mos=4.4, jitter_ms=2.0, packet_loss_pct=1.0))
    m.observe_stream(LegStats(rtp=StreamStats(packets=50), mos=3.0, jitter_ms=20.0, packet_loss_pct=10.0))
    m.observe_stream(LegStats())  # nothing measured: nothing observed
    got = scrape(m)
    assert got[("vpbx_mos_total", ())] == 7.4 and got[("vpbx_mos_samples_total", ())] == 2
    assert abs(got[("vpbx_jitter_seconds_total", ())] - 0.022) < 1e-12
    assert got[("vpbx_jitter_seconds_samples_total", ())] == 2
    assert abs(got[("vpbx_packet_loss_ratio_total", ())] - 0.11) < 1e-12
    assert got[("vpbx_call_mos_count", ())] == 2
    assert got[("vpbx_call_mos_bucket", (("le", "3.5"),))] == 1
    assert got[("vpbx_call_jitter_seconds_bucket", (("le", "0.005"),))] == 1
    assert got[("vpbx_call_packet_loss_ratio_bucket", (("le", "0.01"),))] == 1


def test_names_follow_the_rules() -> None:
    m = Metrics()
    m.add_engine(Figures())
    for family in text_string_to_metric_families(m.exposition().decode()):
        assert family.name.startswith("vpbx_"), family.name
        for s in family.samples:
            assert set(s.labels) <= {"command", "result", "kind", "interface", "worker", "le"}, s
            if family.type == "counter":
                assert s.name.endswith(("_total", "_created")), s.name
