"""Reply bodies with statistics: ``query`` and ``delete`` (NG protocol document, "query Message")
and ``statistics`` ("statistics Message"), in the shapes rtpengine gives them so that existing
tools read them unchanged. Times are whole UNIX seconds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vpbx.ng.backend import CallStats, EngineStatistics, LegStats, StreamStats
from vpbx.ng.state import Call, Party

__all__ = ["CONTROL_COUNTERS", "call_stats", "statistics"]

Reply = dict[str, Any]

#: Command -> counter name in "controlstatistics" (rtpengine's names where it has them).
CONTROL_COUNTERS: dict[str, str] = {
    "ping": "ping",
    "offer": "offer",
    "answer": "answer",
    "delete": "delete",
    "query": "query",
    "list": "list",
    "start recording": "startrec",
    "stop recording": "stoprec",
    "pause recording": "pauserec",
    "play media": "playmedia",
    "stop media": "stopmedia",
    "play DTMF": "playdtmf",
    "statistics": "statistics",
}


def _family(address: str) -> str:
    return "IPv6" if ":" in address else "IPv4"


def _endpoint(address: str, port: int) -> Reply:
    return {"family": _family(address), "address": address, "port": port}


def _counters(s: StreamStats) -> Reply:
    return {"packets": s.packets, "bytes": s.bytes, "errors": s.errors}


def _add(total: Reply, s: StreamStats) -> None:
    for k, v in _counters(s).items():
        total[k] += v


def _stream(
    kind: str,
    local: tuple[str, int] | None,
    advertised: tuple[str, int] | None,
    s: StreamStats,
    extra_flags: Sequence[str] = (),
) -> Reply:
    out: Reply = {}
    if local is not None:
        out["local port"] = local[1]
        out["local address"] = local[0]
        out["family"] = _family(local[0])
    learned = s.endpoint or advertised
    out["endpoint"] = _endpoint(*learned) if learned is not None else {}
    out["advertised endpoint"] = _endpoint(*advertised) if advertised is not None else {}
    out["last packet"] = int(s.last_packet) if s.last_packet is not None else 0
    flags = [kind]
    if advertised is not None:
        flags.append("filled")
    if s.endpoint is not None:
        flags.append("confirmed")
    out["flags"] = flags + list(extra_flags)
    out["stats"] = _counters(s)
    return out


def _media(party: Party, i: int, stats: LegStats, totals: Mapping[str, Reply]) -> Reply:
    sdp = party.sdp_in or party.sdp_out
    m = sdp.media[i] if sdp is not None and i < len(sdp.media) else None
    leg = party.legs.get(i)
    advertised: tuple[str, int] | None = None
    advertised_rtcp: tuple[str, int] | None = None
    if party.sdp_in is not None and m is not None and not m.rejected:
        conn = party.sdp_in.media_connection(i)
        if conn is not None:
            rtcp = m.rtcp
            advertised = (conn.address, m.port)
            advertised_rtcp = (conn.address, rtcp.port if rtcp is not None else m.port + 1)
    mux = m is not None and m.rtcp_mux
    out: Reply = {"index": i + 1, "type": m.media if m is not None else "audio"}
    if m is not None:
        out["protocol"] = m.proto
    if stats.codec:
        out["codec"] = stats.codec
    streams = [
        _stream("RTP", (leg.address, leg.rtp_port) if leg else None, advertised, stats.rtp),
        _stream(
            "RTCP",
            (leg.address, leg.rtcp_port if leg.rtcp_port is not None and not mux else leg.rtp_port)
            if leg
            else None,
            advertised if mux else advertised_rtcp,
            stats.rtcp,
        ),
    ]
    _add(totals["RTP"], stats.rtp)
    _add(totals["RTCP"], stats.rtcp)
    out["streams"] = streams
    flags = ["initialized"] if leg is not None else []
    if mux:
        flags.append("rtcp-mux")
    if stats.transcoding:
        flags.append("transcoding")
    out["flags"] = flags
    if stats.mos is not None:
        # rtpengine reports MOS times ten as an integer, per SSRC
        avg: Reply = {"MOS": round(stats.mos * 10), "samples": 1}
        if stats.jitter_ms is not None:
            avg["jitter"] = round(stats.jitter_ms)
        if stats.packet_loss_pct is not None:
            avg["packet loss"] = round(stats.packet_loss_pct)
        out["ingress SSRCs"] = [{"SSRC": stats.ssrc or 0, "average MOS": avg}]
    return out


def _party(party: Party, stats: CallStats, totals: Mapping[str, Reply]) -> Reply:
    out: Reply = {"tag": party.tag}
    if party.via_branch:
        out["via-branch"] = party.via_branch
    if party.aliases:
        out["tag-aliases"] = sorted(party.aliases)
    if party.label is not None:
        out["label"] = party.label
    out["created"] = int(party.created)
    if party.peer is not None and party.peer.tag:
        out["in dialogue with"] = party.peer.tag
    sdp = party.sdp_in or party.sdp_out
    indexes = sorted(set(party.legs) | set(range(len(sdp.media) if sdp is not None else 0)))
    out["medias"] = [_media(party, i, stats.legs.get((party.pid, i), LegStats()), totals) for i in indexes]
    return out


def _key(party: Party) -> str:
    return party.tag or f"<untagged {party.pid}>"


def call_stats(call: Call, stats: CallStats, only: Sequence[Party] | None = None) -> Reply:
    """The ``query`` reply (also added to ``delete`` replies) for ``only`` these parties, or all."""
    totals: dict[str, Reply] = {
        "RTP": {"packets": 0, "bytes": 0, "errors": 0},
        "RTCP": {"packets": 0, "bytes": 0, "errors": 0},
    }
    out: Reply = {"created": int(call.created), "last signal": int(call.last_signal)}
    if call.metadata is not None:
        out["metadata"] = call.metadata
    out["tags"] = {_key(p): _party(p, stats, totals) for p in (only if only is not None else call.parties)}
    out["totals"] = totals
    out["recording"] = {"call recording": int(call.recording)}
    return out


def statistics(
    *,
    calls: int,
    engine: EngineStatistics,
    uptime: float,
    managed: int,
    deleted: int,
    forced: int = 0,
    per_proxy: Mapping[str, Mapping[str, int]],
    totals: Mapping[str, int],
) -> Reply:
    """The ``statistics`` reply: rtpengine's sections and key names (the subset we can fill)."""

    def counters(c: Mapping[str, int], prefix: str) -> Reply:
        out = {f"{prefix}{name}count": c.get(name, 0) for name in CONTROL_COUNTERS.values()}
        out[f"{prefix}errorcount"] = c.get("error", 0)
        return out

    return {
        "currentstatistics": {
            "sessionsown": calls,
            "sessionsforeign": 0,
            "sessionstotal": calls,
            "transcodedmedia": engine.transcoded_media,
            "packetrate": engine.packet_rate,
            "byterate": engine.byte_rate,
            "errorrate": engine.error_rate,
        },
        "totalstatistics": {
            "uptime": str(int(uptime)),
            "managedsessions": managed,
            "rejectedsessions": 0,
            "timeoutsessions": engine.timeout_sessions,
            "regularterminatedsessions": deleted,
            "forcedterminatedsessions": forced,
            "relayedpackets": engine.relayed_packets,
            "relayedbytes": engine.relayed_bytes,
            "relayedpacketerrors": engine.relayed_errors,
        },
        "controlstatistics": {
            "proxies": [{"proxy": proxy, **counters(c, "")} for proxy, c in per_proxy.items()],
            **counters(totals, "total"),
        },
        "engine": {
            "portsused": engine.ports_used,
            "portsfree": engine.ports_free,
            "recordingsactive": engine.recordings_active,
        },
    }
