//! Statistics handed to the control plane: per leg, per session, per engine.
//! Counters only grow; gauges (sessions, legs, ports) are current values.

use crate::ports::PoolStats;
use crate::types::{LegId, SessionId};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// Why a received datagram was not relayed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DropKind {
    /// Neither valid RTP (RFC 3550 §5.1) nor RTCP (§6.4.1).
    Garbage,
    /// From an address other than the latched peer on a strict leg, or
    /// from an untrusted source before the leg latched (RTP-bleed
    /// protection).
    Stranger,
    /// Over the leg's packet-rate limit.
    Flood,
    /// The leg is not connected, or its partner has no address to send to.
    NoDestination,
    /// Longer than the receive buffer.
    Oversize,
    /// The forwarding send failed (socket buffer full, unreachable, ...).
    SendFailed,
}

impl DropKind {
    pub const ALL: [DropKind; 6] = [
        DropKind::Garbage,
        DropKind::Stranger,
        DropKind::Flood,
        DropKind::NoDestination,
        DropKind::Oversize,
        DropKind::SendFailed,
    ];
    /// Stable lower-case name (metrics label value).
    pub fn name(self) -> &'static str {
        match self {
            DropKind::Garbage => "garbage",
            DropKind::Stranger => "stranger",
            DropKind::Flood => "flood",
            DropKind::NoDestination => "no_destination",
            DropKind::Oversize => "oversize",
            DropKind::SendFailed => "send_failed",
        }
    }
}

/// Dropped datagrams by [`DropKind`].
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct DropCounts {
    pub garbage: u64,
    pub stranger: u64,
    pub flood: u64,
    pub no_destination: u64,
    pub oversize: u64,
    pub send_failed: u64,
}

impl DropCounts {
    pub fn get(&self, kind: DropKind) -> u64 {
        match kind {
            DropKind::Garbage => self.garbage,
            DropKind::Stranger => self.stranger,
            DropKind::Flood => self.flood,
            DropKind::NoDestination => self.no_destination,
            DropKind::Oversize => self.oversize,
            DropKind::SendFailed => self.send_failed,
        }
    }
    pub(crate) fn add(&mut self, kind: DropKind, n: u64) {
        let c = match kind {
            DropKind::Garbage => &mut self.garbage,
            DropKind::Stranger => &mut self.stranger,
            DropKind::Flood => &mut self.flood,
            DropKind::NoDestination => &mut self.no_destination,
            DropKind::Oversize => &mut self.oversize,
            DropKind::SendFailed => &mut self.send_failed,
        };
        *c += n;
    }
    pub fn total(&self) -> u64 {
        DropKind::ALL.iter().map(|&k| self.get(k)).sum()
    }
}

/// One leg's figures. "in" counts datagrams accepted on the leg's ports,
/// "out" datagrams sent from them (relayed from the connected leg).
#[derive(Clone, Debug, PartialEq)]
pub struct LegStats {
    pub leg: LegId,
    pub label: Option<String>,
    pub interface: String,
    /// Advertised RTP (and RTCP) address of the leg.
    pub local_rtp: SocketAddr,
    pub local_rtcp: Option<SocketAddr>,
    /// Address given by `set_remote` (from SDP).
    pub remote_rtp: Option<SocketAddr>,
    /// Where RTP for this peer goes now: the latched address, else the SDP one.
    pub peer: Option<SocketAddr>,
    /// Whether `peer` was learnt from received packets.
    pub latched: bool,
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub rtcp_in: u64,
    pub rtcp_out: u64,
    /// RFC 3550 A.3 cumulative loss of the current source (may be negative
    /// with duplicates, §6.4.1).
    pub lost: i64,
    pub expected: u64,
    /// RFC 3550 A.8 interarrival jitter in milliseconds.
    pub jitter_ms: f64,
    pub duplicates: u64,
    pub reordered: u64,
    /// SSRC of the current incoming source.
    pub ssrc: Option<u32>,
    pub ssrc_changes: u64,
    /// Round-trip time to the endpoint from its RTCP reports on the
    /// engine's own stream (transcoded legs, RFC 3550 §6.4.1).
    pub rtt: Option<Duration>,
    /// Media from this leg is decoded and re-encoded for its peer.
    pub transcoding: bool,
    /// Id of the prompt being played into the leg, if any.
    pub playing: Option<u64>,
    /// Time since the last accepted packet; `None` if none ever came.
    pub last_packet_age: Option<Duration>,
    pub dropped: DropCounts,
}

/// One session's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionStats {
    pub session: SessionId,
    pub call_id: String,
    pub age: Duration,
    pub legs: Vec<LegStats>,
}

/// One worker thread's figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkerStats {
    pub sessions: usize,
    pub legs: usize,
    pub packets_relayed: u64,
    /// CPU time the thread has used (user + system).
    pub cpu_time: Duration,
}

/// One interface's port pool.
#[derive(Clone, Debug, PartialEq)]
pub struct InterfaceStats {
    pub name: String,
    pub ports: PoolStats,
}

/// Whole-engine figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EngineStats {
    pub sessions: usize,
    pub legs: usize,
    pub ports_used: usize,
    pub ports_free: usize,
    /// RTP and RTCP datagrams sent on (relayed).
    pub packets_relayed: u64,
    pub bytes_relayed: u64,
    pub rtcp_relayed: u64,
    /// RTCP reports the engine sent itself (to endpoints of transcoded legs).
    pub rtcp_sent: u64,
    pub dropped: DropCounts,
    /// recvmmsg failures other than "nothing to read".
    pub receive_errors: u64,
    /// Sessions refused by admission control.
    pub sessions_refused: u64,
    pub events_lost: u64,
    /// Recordings in progress (paused ones included).
    pub recordings_active: usize,
    /// Recordings ended by an error (disk full, write failure).
    pub recordings_failed: u64,
    pub workers: Vec<WorkerStats>,
    pub interfaces: Vec<InterfaceStats>,
}

/// Counters a worker publishes; read by `engine_stats` from any thread.
#[derive(Debug, Default)]
pub(crate) struct WorkerCounters {
    pub sessions: AtomicUsize,
    pub legs: AtomicUsize,
    pub relayed: AtomicU64,
    pub relayed_bytes: AtomicU64,
    pub rtcp_relayed: AtomicU64,
    pub rtcp_sent: AtomicU64,
    pub receive_errors: AtomicU64,
    pub recordings: AtomicUsize,
    pub recordings_failed: AtomicU64,
    drops: [AtomicU64; DropKind::ALL.len()],
}

impl WorkerCounters {
    pub fn count_drop(&self, kind: DropKind, n: u64) {
        self.drops[kind as usize].fetch_add(n, Relaxed);
    }
    pub fn add_into(&self, s: &mut EngineStats) {
        s.packets_relayed += self.relayed.load(Relaxed);
        s.bytes_relayed += self.relayed_bytes.load(Relaxed);
        s.rtcp_relayed += self.rtcp_relayed.load(Relaxed);
        s.rtcp_sent += self.rtcp_sent.load(Relaxed);
        s.receive_errors += self.receive_errors.load(Relaxed);
        s.recordings_active += self.recordings.load(Relaxed);
        s.recordings_failed += self.recordings_failed.load(Relaxed);
        for k in DropKind::ALL {
            s.dropped.add(k, self.drops[k as usize].load(Relaxed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_counts_by_kind() {
        let w = WorkerCounters::default();
        w.count_drop(DropKind::Flood, 3);
        w.count_drop(DropKind::Garbage, 1);
        let mut s = EngineStats::default();
        w.add_into(&mut s);
        assert_eq!((s.dropped.flood, s.dropped.garbage, s.dropped.total()), (3, 1, 4));
        let names: Vec<_> = DropKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), 6);
        assert!(names.contains(&"no_destination"));
    }
}
