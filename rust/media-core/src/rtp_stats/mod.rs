//! Per-source RTP reception statistics, as RFC 3550 Appendix A specifies
//! them: sequence number validation (A.1), expected/lost packets and the
//! fraction lost per report interval (A.3), interarrival jitter (A.8).
//!
//! Sans-IO: the caller passes each packet's arrival time as `f64` seconds
//! from any fixed origin (a monotonic clock reading is ideal); only
//! differences between arrival times are used. [`Receiver`] adds tracking
//! of SSRC changes on one incoming stream.

mod receiver;
#[cfg(test)]
mod tests;

pub use receiver::{Receiver, ReceiverVerdict, DEFAULT_SWITCH_AFTER_SECS};

use crate::error::{Error, Result};
use crate::rtcp::{seconds_to_compact, NtpTimestamp, ReportBlock, CUMULATIVE_LOST_MAX, CUMULATIVE_LOST_MIN};
use crate::types::{RtpTimestamp, SeqNo, Ssrc};

/// A.1: a packet up to this far ahead of the highest sequence number is in
/// order (the gap counts as lost).
pub const MAX_DROPOUT: u16 = 3000;
/// A.1: a packet up to this far behind is late (reordered or duplicate).
pub const MAX_MISORDER: u16 = 100;
/// A.1: sequential packets needed before a new source is valid.
pub const MIN_SEQUENTIAL: u32 = 2;
/// A.1: the 16-bit sequence number space.
const RTP_SEQ_MOD: u32 = 1 << 16;

/// What [`SourceStats::update`] made of a packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SeqVerdict {
    /// In sequence, possibly after a gap (the gap counts as lost). Also the
    /// packet that completes probation.
    Valid,
    /// Late (up to [`MAX_MISORDER`] behind) and not seen before. Counted as
    /// received, so it is not lost (§6.4.1).
    Reordered,
    /// A copy of a packet already counted. A.1 counts it as received anyway
    /// (so cumulative loss can go negative, §6.4.1); see
    /// [`SourceStats::duplicates`].
    Duplicate,
    /// The source is not valid yet (A.1 probation); not counted.
    Probation,
    /// A very large jump, or a packet older than [`MAX_MISORDER`]; not
    /// counted. If the next packet follows it in sequence, the statistics
    /// resynchronise ([`SeqVerdict::Resync`]).
    BadJump,
    /// Second packet in sequence after a bad jump: A.1 assumes the sender
    /// restarted and begins the statistics again with this packet.
    Resync,
}

impl SeqVerdict {
    /// Whether A.1 counts the packet as received.
    pub fn is_counted(self) -> bool {
        !matches!(self, SeqVerdict::Probation | SeqVerdict::BadJump)
    }
}

/// A copy of the figures of one source at one instant.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct StatsSnapshot {
    pub ssrc: Ssrc,
    pub valid: bool,
    pub received: u32,
    pub expected: u32,
    pub lost: i32,
    pub extended_max: u32,
    pub jitter_ms: f64,
    pub duplicates: u64,
    pub reordered: u64,
    pub bad_jumps: u64,
    pub resyncs: u64,
}

/// Reception state of one synchronisation source (RFC 3550 A.1 `source`).
#[derive(Clone, Debug)]
pub struct SourceStats {
    ssrc: Ssrc,
    clock_rate: u32,
    started: bool,
    // A.1 fields.
    max_seq: u16,
    /// Shifted count of sequence number cycles (a multiple of 65536).
    cycles: u32,
    base_seq: u32,
    /// Last "bad" sequence number + 1; RTP_SEQ_MOD + 1 means none.
    bad_seq: u32,
    probation: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    // A.8: jitter estimate (timestamp units) and the previous packet's
    // arrival (timestamp units) and RTP timestamp.
    jitter: f64,
    last_transit: Option<(f64, RtpTimestamp)>,
    /// Bit k set: `max_seq - k` was received (k < 128). Tells duplicates
    /// from reordered packets within the MAX_MISORDER window.
    seen: u128,
    duplicates: u64,
    reordered: u64,
    bad_jumps: u64,
    resyncs: u64,
    /// Compact NTP time of the last SR from this source and its arrival.
    last_sr: Option<(u32, f64)>,
}

impl SourceStats {
    /// `clock_rate` is the RTP clock rate of the payload (e.g. 8000).
    pub fn new(ssrc: Ssrc, clock_rate: u32) -> Result<Self> {
        if clock_rate == 0 {
            return Err(Error::invalid("RTP clock rate must be positive"));
        }
        Ok(SourceStats::fresh(ssrc, clock_rate))
    }

    /// `new` without the check; `clock_rate` must be non-zero.
    fn fresh(ssrc: Ssrc, clock_rate: u32) -> Self {
        SourceStats {
            ssrc,
            clock_rate,
            started: false,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: RTP_SEQ_MOD + 1,
            probation: MIN_SEQUENTIAL,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            jitter: 0.0,
            last_transit: None,
            seen: 0,
            duplicates: 0,
            reordered: 0,
            bad_jumps: 0,
            resyncs: 0,
            last_sr: None,
        }
    }

    /// Accounts one RTP packet. `arrival_secs` is its arrival time in
    /// seconds (any fixed origin); a non-finite value skips the jitter
    /// update for that packet.
    pub fn update(&mut self, seq: SeqNo, ts: RtpTimestamp, arrival_secs: f64) -> SeqVerdict {
        let verdict = self.update_seq(seq.0);
        if verdict == SeqVerdict::Resync {
            self.last_transit = None;
        }
        if verdict.is_counted() {
            self.update_jitter(ts, arrival_secs);
        }
        verdict
    }

    /// A.1 `init_seq`.
    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// Moves the highest sequence number `udelta` forward.
    fn advance(&mut self, seq: u16, udelta: u16) {
        self.seen = if udelta >= 128 { 0 } else { self.seen << udelta } | 1;
        self.max_seq = seq;
    }

    /// A.1 `update_seq`, with duplicate/reorder classification added.
    fn update_seq(&mut self, seq: u16) -> SeqVerdict {
        if !self.started {
            // A.1: a new source starts on probation.
            self.started = true;
            self.init_seq(seq);
            self.max_seq = seq.wrapping_sub(1);
            self.probation = MIN_SEQUENTIAL;
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            // A.1 writes `seq == s->max_seq + 1`, which int promotion makes
            // false across 65535 -> 0; the 16-bit successor is meant.
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.advance(seq, 1);
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return SeqVerdict::Valid;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
                self.seen = 1;
            }
            return SeqVerdict::Probation;
        }
        let verdict = if udelta < MAX_DROPOUT {
            // In order, with permissible gap.
            if udelta == 0 {
                self.duplicates += 1;
                SeqVerdict::Duplicate
            } else {
                if seq < self.max_seq {
                    // Sequence number wrapped: count another 64K cycle.
                    self.cycles = self.cycles.wrapping_add(RTP_SEQ_MOD);
                }
                self.advance(seq, udelta);
                SeqVerdict::Valid
            }
        } else if u32::from(udelta) <= RTP_SEQ_MOD - u32::from(MAX_MISORDER) {
            // The sequence number made a very large jump.
            if u32::from(seq) == self.bad_seq {
                // Two sequential packets: assume the other side restarted
                // without telling us; re-sync as if this were the first.
                self.init_seq(seq);
                self.seen = 1;
                self.resyncs += 1;
                SeqVerdict::Resync
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                self.bad_jumps += 1;
                return SeqVerdict::BadJump;
            }
        } else {
            // Duplicate or reordered packet, 1..MAX_MISORDER behind.
            let k = self.max_seq.wrapping_sub(seq);
            let bit = 1u128 << k; // k < MAX_MISORDER < 128
            if self.seen & bit != 0 {
                self.duplicates += 1;
                SeqVerdict::Duplicate
            } else {
                self.seen |= bit;
                self.reordered += 1;
                SeqVerdict::Reordered
            }
        };
        self.received = self.received.wrapping_add(1);
        verdict
    }

    /// A.8: J += (|D| - J) / 16, with D the difference of relative transit
    /// times of this packet and the previous one in arrival order (§6.4.1).
    fn update_jitter(&mut self, ts: RtpTimestamp, arrival_secs: f64) {
        if !arrival_secs.is_finite() {
            return;
        }
        let arrival = arrival_secs * f64::from(self.clock_rate);
        if let Some((prev_arrival, prev_ts)) = self.last_transit {
            // (Rj - Ri) - (Sj - Si); the timestamp difference wraps.
            let d = (arrival - prev_arrival) - f64::from(ts.diff(prev_ts));
            self.jitter += (d.abs() - self.jitter) / 16.0;
        }
        self.last_transit = Some((arrival, ts));
    }

    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }
    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }
    /// The source has passed probation (A.1).
    pub fn is_valid(&self) -> bool {
        self.started && self.probation == 0
    }
    /// Packets counted as received (A.1: late and duplicate ones included).
    pub fn received(&self) -> u32 {
        self.received
    }
    /// A.3 extended highest sequence number: cycles plus `max_seq`.
    pub fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }
    /// A.3 expected packets: extended max - base + 1 (0 before the source
    /// is valid).
    pub fn expected(&self) -> u32 {
        if !self.is_valid() {
            return 0;
        }
        self.extended_max().wrapping_sub(self.base_seq).wrapping_add(1)
    }
    /// A.3 cumulative packets lost, clamped to the 24-bit signed range of
    /// the report block; negative when duplicates outnumber losses.
    pub fn lost(&self) -> i32 {
        let lost = i64::from(self.expected()) - i64::from(self.received);
        lost.clamp(i64::from(CUMULATIVE_LOST_MIN), i64::from(CUMULATIVE_LOST_MAX)) as i32
    }
    /// A.8 interarrival jitter in timestamp units, as the report block
    /// carries it.
    pub fn jitter(&self) -> u32 {
        self.jitter as u32
    }
    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter * 1000.0 / f64::from(self.clock_rate)
    }
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
    pub fn reordered(&self) -> u64 {
        self.reordered
    }
    /// Packets dropped as very large jumps (or too late).
    pub fn bad_jumps(&self) -> u64 {
        self.bad_jumps
    }
    /// Times the statistics restarted after a jump (A.1 re-sync).
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            ssrc: self.ssrc,
            valid: self.is_valid(),
            received: self.received,
            expected: self.expected(),
            lost: self.lost(),
            extended_max: self.extended_max(),
            jitter_ms: self.jitter_ms(),
            duplicates: self.duplicates,
            reordered: self.reordered,
            bad_jumps: self.bad_jumps,
            resyncs: self.resyncs,
        }
    }

    /// Records an SR from this source (its NTP timestamp and our arrival
    /// time in the same seconds as [`SourceStats::update`]) for LSR/DLSR.
    pub fn note_sender_report(&mut self, ntp: NtpTimestamp, arrival_secs: f64) {
        self.last_sr = Some((ntp.compact(), arrival_secs));
    }

    /// LSR and DLSR for a report sent at `now_secs` (§6.4.1; zeros if no
    /// SR has been received).
    pub fn lsr_dlsr(&self, now_secs: f64) -> (u32, u32) {
        match self.last_sr {
            Some((lsr, at)) => (lsr, seconds_to_compact(now_secs - at)),
            None => (0, 0),
        }
    }

    /// The report block for this source, closing the report interval
    /// (A.3: fraction lost since the previous call). `None` while the
    /// source is on probation.
    pub fn report_block(&mut self, lsr: u32, dlsr: u32) -> Option<ReportBlock> {
        if !self.is_valid() {
            return None;
        }
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            // At most 256 (everything lost); the 8-bit field tops out at 255.
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        Some(ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: self.lost(),
            highest_seq: self.extended_max(),
            jitter: self.jitter(),
            lsr,
            dlsr,
        })
    }

    /// [`SourceStats::report_block`] with LSR/DLSR from the last noted SR.
    pub fn report_block_at(&mut self, now_secs: f64) -> Option<ReportBlock> {
        let (lsr, dlsr) = self.lsr_dlsr(now_secs);
        self.report_block(lsr, dlsr)
    }
}
