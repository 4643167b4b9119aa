//! One incoming RTP stream whose SSRC may change over a call: after a
//! re-INVITE, a transfer or a restart of the far end (RFC 3550 §8.2 lets a
//! source pick a new SSRC). One source is current at a time; a packet with
//! another SSRC takes over only once the current source has gone silent or
//! has sent an RTCP BYE (§6.6). Interleaved foreign packets are counted and
//! otherwise ignored, so a stray stream cannot reset the statistics.

use super::{SeqVerdict, SourceStats};
use crate::error::{Error, Result};
use crate::rtcp::{NtpTimestamp, ReportBlock};
use crate::types::{RtpTimestamp, SeqNo, Ssrc};

/// Default silence after which another SSRC may take over: 10 packet
/// times at 20 ms.
pub const DEFAULT_SWITCH_AFTER_SECS: f64 = 0.2;

/// What [`Receiver::on_rtp`] made of a packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReceiverVerdict {
    /// A packet of the current source.
    Packet(SeqVerdict),
    /// The packet started a new current source (`previous` is the SSRC it
    /// replaced, `None` for the first source of the stream).
    NewSource {
        previous: Option<Ssrc>,
        verdict: SeqVerdict,
    },
    /// Another SSRC while the current source is active: ignored.
    Foreign,
}

/// Receive statistics of one stream across SSRC changes.
#[derive(Clone, Debug)]
pub struct Receiver {
    clock_rate: u32,
    switch_after: f64,
    current: Option<SourceStats>,
    /// The source that ended last (by BYE or replacement), for final figures.
    previous: Option<SourceStats>,
    /// SSRC of the latest source, kept after a BYE to tell a real change.
    last_ssrc: Option<Ssrc>,
    last_arrival: f64,
    ssrc_changes: u64,
    foreign_packets: u64,
    byes: u64,
}

impl Receiver {
    pub fn new(clock_rate: u32) -> Result<Self> {
        // Validates the clock rate once, so later sources cannot fail.
        SourceStats::new(Ssrc(0), clock_rate)?;
        Ok(Receiver {
            clock_rate,
            switch_after: DEFAULT_SWITCH_AFTER_SECS,
            current: None,
            previous: None,
            last_ssrc: None,
            last_arrival: 0.0,
            ssrc_changes: 0,
            foreign_packets: 0,
            byes: 0,
        })
    }

    /// Sets how long (seconds) the current source must be silent before
    /// another SSRC may replace it.
    pub fn with_switch_after(mut self, secs: f64) -> Result<Self> {
        if !(secs.is_finite() && secs >= 0.0) {
            return Err(Error::invalid(format!("switch-after time {secs} s")));
        }
        self.switch_after = secs;
        Ok(self)
    }

    /// Accounts one RTP packet (`arrival_secs` as in [`SourceStats::update`]).
    pub fn on_rtp(&mut self, ssrc: Ssrc, seq: SeqNo, ts: RtpTimestamp, arrival_secs: f64) -> ReceiverVerdict {
        if let Some(cur) = self.current.as_mut() {
            if cur.ssrc() == ssrc {
                self.last_arrival = arrival_secs;
                return ReceiverVerdict::Packet(cur.update(seq, ts, arrival_secs));
            }
            // A NaN arrival compares false: treated as not silent.
            let silent = arrival_secs - self.last_arrival >= self.switch_after;
            if !silent {
                self.foreign_packets += 1;
                return ReceiverVerdict::Foreign;
            }
        }
        let previous = self.last_ssrc;
        if previous.is_some_and(|p| p != ssrc) {
            self.ssrc_changes += 1;
        }
        if let Some(old) = self.current.take() {
            self.previous = Some(old);
        }
        let mut stats = SourceStats::fresh(ssrc, self.clock_rate);
        let verdict = stats.update(seq, ts, arrival_secs);
        self.current = Some(stats);
        self.last_ssrc = Some(ssrc);
        self.last_arrival = arrival_secs;
        ReceiverVerdict::NewSource { previous, verdict }
    }

    /// An RTCP BYE listing `ssrc` (§6.6). Ends the current source if it is
    /// that SSRC (returns true); the next packet of any SSRC then starts a
    /// new source immediately.
    pub fn on_bye(&mut self, ssrc: Ssrc) -> bool {
        if self.current.as_ref().is_some_and(|c| c.ssrc() == ssrc) {
            self.previous = self.current.take();
            self.byes += 1;
            true
        } else {
            false
        }
    }

    /// An RTCP SR from `ssrc` that arrived at `arrival_secs`: remembered
    /// for the LSR/DLSR of our next report if it is the current source.
    pub fn on_sender_report(&mut self, ssrc: Ssrc, ntp: NtpTimestamp, arrival_secs: f64) {
        if let Some(cur) = self.current.as_mut().filter(|c| c.ssrc() == ssrc) {
            cur.note_sender_report(ntp, arrival_secs);
        }
    }

    /// Report block for the current source at `now_secs`, closing its
    /// report interval; `None` with no valid current source.
    pub fn report_block(&mut self, now_secs: f64) -> Option<ReportBlock> {
        self.current.as_mut()?.report_block_at(now_secs)
    }

    pub fn source(&self) -> Option<&SourceStats> {
        self.current.as_ref()
    }
    /// The source that most recently ended (BYE or replaced).
    pub fn previous_source(&self) -> Option<&SourceStats> {
        self.previous.as_ref()
    }
    /// Times a source with a different SSRC replaced the previous one.
    pub fn ssrc_changes(&self) -> u64 {
        self.ssrc_changes
    }
    /// Packets of other SSRCs ignored while a source was active.
    pub fn foreign_packets(&self) -> u64 {
        self.foreign_packets
    }
    /// BYEs that ended the current source.
    pub fn byes(&self) -> u64 {
        self.byes
    }
}
