//! Adaptive jitter buffer with decoding, loss concealment and time
//! stretching.
//!
//! The caller pushes RTP packets with their arrival time and pops exactly one
//! `ptime` of PCM per call, both on its own clock (sans-IO: the buffer never
//! reads a clock). Design:
//!
//! * **Timeline.** Every packet gets a *media position*: its RTP timestamp
//!   (RFC 3550 §5.1) unwrapped to 64 bits and converted to samples at the
//!   decoder's output rate. Playout keeps `next_pos`, the media position
//!   that follows the PCM already queued for output.
//! * **Delay.** The buffering delay of the next media sample is
//!   `D = now + queued - media(next_pos) - min(arrival - media)`: how long
//!   after a packet on the fastest recent path it will be heard. A packet is
//!   in time when it is there at the pop that needs its first sample, i.e.
//!   when its *usable delay* (the time of the first pop at or after its
//!   arrival, `- media - min`) is at most D; where that sample falls within
//!   the popped frame does not matter.
//! * **Target.** `T = max(quantile, recurring spikes) + GUARD_MS` over the
//!   usable delays (module `delay`), clamped to `min_delay_ms ..=
//!   max_delay_ms`. Usable delays include the wait for the next pop, so no
//!   margin for the frame/packet misalignment is added. D follows T by time
//!   stretching (module `stretch`): shrink when `D > T + GUARD_MS`, grow
//!   when `D < T - GUARD_MS`, so D stays at or above the quantile. Small
//!   corrections (clock drift) edit only silent frames or resample a frame
//!   by 1%; from 15 ms off, whole pitch periods are cut or repeated. Cutting
//!   voiced audio is limited to `shrink_rate` of the played time; growing is
//!   not limited.
//! * **Gaps.** A gap before the next buffered packet is filled by
//!   concealment and is crossed at once up to where D equals T if D is above
//!   it. Concealment covers only what the current pop needs, so a missing
//!   packet that comes before the rest of its span is due still plays that
//!   rest. Opus in-band FEC (RFC 6716 §2.1.7) rebuilds the frame just before
//!   a buffered packet, but only whole: it is used at that frame's deadline,
//!   when the pop needs all that is left of it. The missing packets count as
//!   lost, or as late if they come afterwards.
//! * **Underrun.** With nothing buffered the buffer *holds*: it conceals
//!   without advancing the timeline. A delay spike thus stretches the delay
//!   instead of losing the delayed packets; after a DTX pause (timestamps
//!   jump ahead by the pause, sequence numbers stay consecutive) or a loss,
//!   the gap rule puts D back on the target: no loss counted, no delay kept.
//! * **Sources.** A new SSRC takes over after two consecutive sequence
//!   numbers (the probation of RFC 3550 Appendix A.1); a timestamp that
//!   disagrees with both the sequence number and the arrival time by more
//!   than `max_delay_ms + 1 s` is a timestamp jump. Both re-anchor the
//!   timeline so that the new packets continue where the old ones left off.
//! * **Bounds.** At most `max_packets` packets (the oldest goes on
//!   overflow); packets far ahead of real time are refused; a delay beyond
//!   `max_delay_ms` (a backlog after an outage) is skipped.

mod buffer;
mod config;
mod delay;
mod playout;
mod replay;
mod stretch;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_net;
#[cfg(test)]
mod tests_timing;

use crate::codec::Decoder;
use crate::error::{Error, Result};
use crate::rtp::RtpView;
use crate::types::{RtpTimestamp, SeqNo, Ssrc};
use buffer::{Insert, PacketStore, SeqStatus, SeqWindow, SEQ_WINDOW};
pub use config::{JitterConfig, JitterStats};
use delay::DelayEstimator;
pub use replay::replay;

/// Half-width of the band around the target where no stretching happens,
/// and the margin included in the target so that the band stays above the
/// quantile (ms).
pub const GUARD_MS: f64 = 5.0;

/// Times (ms) beyond ±this are refused (about 300 years), which keeps all
/// timeline arithmetic far from overflow.
pub const MAX_TIME_MS: f64 = 1e13;

/// Longest packet accepted (s of audio), for the same reason.
const MAX_PACKET_S: i64 = 10;

/// The second packet of a new SSRC must follow the first within this (ms).
const PROBATION_MS: f64 = 1000.0;

fn valid_time(ms: f64) -> bool {
    ms.abs() <= MAX_TIME_MS // false for NaN
}

/// Reference point of the timestamp unwrapping.
#[derive(Clone, Copy)]
struct Anchor {
    ts: RtpTimestamp,
    pos: i64,
}

/// The newest accepted packet, against which timestamp jumps are judged.
#[derive(Clone, Copy)]
struct Newest {
    seq: SeqNo,
    pos: i64,
    len: i64,
}

/// A packet from an unknown SSRC, waiting for its successor (probation).
struct Candidate {
    valid: bool,
    ssrc: Ssrc,
    seq: SeqNo,
    arrival_ms: f64,
    bytes: Vec<u8>,
}

/// Adaptive jitter buffer for one RTP stream; see the module docs.
pub struct JitterBuffer {
    cfg: JitterConfig,
    dec: Box<dyn Decoder>,
    /// Decoder output rate (samples per second per channel).
    rate: u32,
    ch: usize,
    /// Samples per channel per pop.
    frame: usize,
    store: PacketStore,
    seqs: SeqWindow,
    est: DelayEstimator,
    ssrc: Option<Ssrc>,
    epoch: u32,
    cand: Candidate,
    anchor: Option<Anchor>,
    newest: Option<Newest>,
    play: playout::Playout,
    stats: JitterStats,
    /// Whether the decoder has in-band FEC (see [`codec_has_fec`]).
    fec: bool,
}

/// Codecs whose [`Decoder::recover`] does more than conceal (Opus, RFC 6716 §2.1.7).
fn codec_has_fec(decoder: &dyn Decoder) -> bool {
    decoder.has_fec()
}

impl JitterBuffer {
    pub fn new(cfg: JitterConfig, decoder: Box<dyn Decoder>) -> Result<Self> {
        if cfg.clock_rate == 0 || cfg.clock_rate != decoder.clock_rate() {
            return Err(Error::invalid(format!(
                "jitter buffer: clock_rate {} does not match the {} decoder's {}",
                cfg.clock_rate,
                decoder.name(),
                decoder.clock_rate()
            )));
        }
        let rate = decoder.sample_rate();
        let ch = usize::from(decoder.channels());
        if rate == 0 || ch == 0 {
            return Err(Error::invalid("jitter buffer: decoder reports no samples"));
        }
        if !(1..=1000).contains(&cfg.ptime_ms) || (u64::from(rate) * u64::from(cfg.ptime_ms)) % 1000 != 0 {
            return Err(Error::invalid(format!(
                "jitter buffer: ptime_ms {} must be 1..=1000 and a whole number of samples at {rate} Hz",
                cfg.ptime_ms
            )));
        }
        if cfg.max_delay_ms > 10_000 || cfg.min_delay_ms > cfg.max_delay_ms {
            return Err(Error::invalid(format!(
                "jitter buffer: need min_delay_ms ({}) <= max_delay_ms ({}) <= 10000",
                cfg.min_delay_ms, cfg.max_delay_ms
            )));
        }
        if !(1..=65_536).contains(&cfg.max_packets) {
            return Err(Error::invalid("jitter buffer: max_packets must be 1..=65536"));
        }
        if !(cfg.quantile > 0.0 && cfg.quantile < 1.0) {
            return Err(Error::invalid("jitter buffer: quantile must be in (0, 1)"));
        }
        if !(0.0..=0.5).contains(&cfg.shrink_rate) {
            return Err(Error::invalid("jitter buffer: shrink_rate must be in [0, 0.5]"));
        }
        if cfg.history_ms == 0 || cfg.max_conceal_ms > 60_000 || cfg.peak_hold_ms > 600_000 {
            return Err(Error::invalid(
                "jitter buffer: need history_ms > 0, max_conceal_ms <= 60000, peak_hold_ms <= 600000",
            ));
        }
        if cfg.payload_type.is_some_and(|p| p.0 > 127) {
            return Err(Error::invalid("jitter buffer: payload type above 127"));
        }
        let frame = (rate as usize) * cfg.ptime_ms as usize / 1000;
        Ok(JitterBuffer {
            store: PacketStore::new(cfg.max_packets),
            seqs: SeqWindow::new(),
            est: DelayEstimator::new(
                cfg.max_delay_ms,
                cfg.quantile,
                cfg.history_ms,
                cfg.peak_hold_ms,
                cfg.ptime_ms,
            ),
            ssrc: None,
            epoch: 0,
            cand: Candidate {
                valid: false,
                ssrc: Ssrc(0),
                seq: SeqNo(0),
                arrival_ms: 0.0,
                bytes: Vec::new(),
            },
            anchor: None,
            newest: None,
            play: playout::Playout::new(frame * ch),
            stats: JitterStats::default(),
            fec: codec_has_fec(decoder.as_ref()),
            cfg,
            dec: decoder,
            rate,
            ch,
            frame,
        })
    }

    pub fn config(&self) -> &JitterConfig {
        &self.cfg
    }

    /// Interleaved samples each `pop` appends.
    pub fn frame_samples(&self) -> usize {
        self.frame * self.ch
    }

    pub fn stats(&self) -> JitterStats {
        let mut s = self.stats.clone();
        s.buffered_packets = self.store.len() as u64;
        s
    }

    fn ms(&self, samples: i64) -> f64 {
        samples as f64 * 1000.0 / f64::from(self.rate)
    }

    /// Whole samples in `ms` (rounded down, tolerating float noise).
    fn samples(&self, ms: f64) -> i64 {
        (ms * f64::from(self.rate) / 1000.0 + 1e-6).floor() as i64
    }

    /// Beyond this disagreement (ms) a timestamp is a jump, not jitter.
    fn resync_ms(&self) -> f64 {
        f64::from(self.cfg.max_delay_ms) + 1000.0
    }

    /// Takes one RTP packet that arrived at `arrival_ms`. Malformed packets
    /// (RFC 3550 §5.1 header, or a payload the decoder cannot size) are
    /// rejected with an error and change nothing.
    pub fn push(&mut self, packet: &[u8], arrival_ms: f64) -> Result<()> {
        if !valid_time(arrival_ms) {
            return Err(Error::invalid(format!(
                "jitter buffer: arrival time {arrival_ms} ms"
            )));
        }
        let v = RtpView::parse(packet)?;
        let ours = self.cfg.payload_type.is_none_or(|p| p == v.payload_type());
        let len = if ours {
            self.dec.samples_in(v.payload())?
        } else {
            0
        };
        let len = i64::try_from(len)
            .ok()
            .filter(|&n| n <= MAX_PACKET_S * i64::from(self.rate))
            .ok_or_else(|| Error::malformed("RTP payload", format!("{len} samples in one packet")))?;
        // Nothing fails from here on.
        self.stats.packets_received += 1;
        match self.ssrc {
            None => self.ssrc = Some(v.ssrc()),
            Some(s) if s == v.ssrc() => {}
            Some(_) => {
                self.probation(&v, arrival_ms);
                return Ok(());
            }
        }
        self.accept(&v, ours, len, arrival_ms);
        Ok(())
    }

    /// RFC 3550 Appendix A.1: a source is valid after two packets with
    /// consecutive sequence numbers. The first is kept and replayed.
    fn probation(&mut self, v: &RtpView<'_>, arrival_ms: f64) {
        let c = &self.cand;
        let confirms = c.valid
            && c.ssrc == v.ssrc()
            && v.sequence().diff(c.seq) == 1
            && (0.0..=PROBATION_MS).contains(&(arrival_ms - c.arrival_ms));
        if !confirms {
            // Counted as discarded unless a successor confirms it.
            self.stats.discarded += 1;
            self.cand.valid = true;
            self.cand.ssrc = v.ssrc();
            self.cand.seq = v.sequence();
            self.cand.arrival_ms = arrival_ms;
            self.cand.bytes.clear();
            self.cand.bytes.extend_from_slice(v.as_bytes());
            return;
        }
        self.stats.ssrc_changes += 1;
        self.stats.discarded = self.stats.discarded.saturating_sub(1);
        self.ssrc = Some(v.ssrc());
        self.epoch = self.epoch.wrapping_add(1);
        self.seqs.reset();
        self.anchor = None;
        self.newest = None;
        self.cand.valid = false;
        let bytes = std::mem::take(&mut self.cand.bytes);
        if let Ok(first) = RtpView::parse(&bytes) {
            self.accept_sized(&first, self.cand.arrival_ms);
        }
        self.cand.bytes = bytes;
        self.accept_sized(v, arrival_ms);
    }

    fn accept_sized(&mut self, v: &RtpView<'_>, arrival_ms: f64) {
        let ours = self.cfg.payload_type.is_none_or(|p| p == v.payload_type());
        let max = MAX_PACKET_S * i64::from(self.rate);
        let len = if ours {
            self.dec
                .samples_in(v.payload())
                .ok()
                .and_then(|n| i64::try_from(n).ok())
                .filter(|&n| n <= max)
        } else {
            Some(0)
        };
        match len {
            Some(len) => self.accept(v, ours, len, arrival_ms),
            None => self.stats.discarded += 1,
        }
    }

    /// Media position of `ts` on the current timeline.
    fn position(&self, ts: RtpTimestamp) -> Option<i64> {
        let a = self.anchor?;
        let diff = i64::from(ts.diff(a.ts));
        Some(a.pos + (diff * i64::from(self.rate)).div_euclid(i64::from(self.cfg.clock_rate)))
    }

    /// Puts `ts` on the timeline where a packet arriving now with the
    /// smallest recent delay belongs — or at `cont` (a timestamp jump within
    /// one source: the media continues) unless that is more than
    /// `max_delay_ms` earlier (a pause came with the jump) — but never before
    /// what is buffered or already played.
    fn reanchor(&mut self, ts: RtpTimestamp, arrival_ms: f64, cont: Option<i64>) -> i64 {
        let min = self.est.min_offset().unwrap_or(0.0);
        let by_arrival = self.samples(arrival_ms - min);
        let mut pos = match cont {
            Some(p) if self.ms(by_arrival - p) <= f64::from(self.cfg.max_delay_ms) => p,
            _ => by_arrival,
        };
        if let Some(end) = self.store.max_end() {
            pos = pos.max(end);
        }
        if self.play.started {
            pos = pos.max(self.play.next_pos);
        }
        self.anchor = Some(Anchor { ts, pos });
        pos
    }

    fn accept(&mut self, v: &RtpView<'_>, ours: bool, len: i64, arrival_ms: f64) {
        let seq = v.sequence();
        match self.seqs.status(seq) {
            SeqStatus::Duplicate => {
                self.stats.duplicates += 1;
                return;
            }
            SeqStatus::New { reordered: true } => self.stats.reordered += 1,
            _ => {}
        }
        if !ours || len <= 0 {
            self.seqs.mark(seq);
            self.stats.discarded += 1;
            return;
        }
        let mut pos = match self.position(v.timestamp()) {
            Some(p) => p,
            None => self.reanchor(v.timestamp(), arrival_ms, None),
        };
        let dseq = self.newest.map_or(1, |n| i64::from(seq.diff(n.seq)));
        // A restart far outside the window of recent sequence numbers counts
        // as newer too (RFC 3550 A.1 treats large jumps as a possible restart).
        let newer = dseq > 0 || dseq <= -i64::from(SEQ_WINDOW);
        let limit = self.resync_ms();
        if let (Some(rel), Some(n)) = (self.est.relative(arrival_ms, self.ms(pos)), self.newest) {
            let expected = n.pos + dseq * n.len;
            let disagrees = self.ms(pos - expected).abs() > limit || dseq.abs() > 3000;
            if rel.abs() > limit && newer && disagrees {
                // The timestamp disagrees with both the arrival time and the
                // sequence number: the sender's timestamps jumped.
                self.stats.timestamp_jumps += 1;
                let restart = dseq.abs() >= i64::from(SEQ_WINDOW);
                if restart {
                    self.seqs.reset();
                    self.play.last_played = None;
                }
                let cont = (!restart).then_some(expected);
                pos = self.reanchor(v.timestamp(), arrival_ms, cont);
            }
        }
        if self
            .est
            .relative(arrival_ms, self.ms(pos))
            .is_some_and(|rel| rel < -limit)
        {
            // Far ahead of real time: a sender running ahead of its clock
            // (or flooding); refuse rather than fill the buffer with it.
            self.seqs.mark(seq);
            self.stats.discarded += 1;
            return;
        }
        self.est.observe(arrival_ms, self.ms(pos), self.ms(len));
        self.seqs.mark(seq);
        if newer {
            self.newest = Some(Newest { seq, pos, len });
            if let Some(a) = self.anchor.as_mut() {
                if v.timestamp().diff(a.ts).unsigned_abs() > 1 << 30 {
                    // Move the reference along with the stream so that
                    // unwrapping never spans half the 32-bit space.
                    *a = Anchor {
                        ts: v.timestamp(),
                        pos,
                    };
                }
            }
        }
        if self.play.started && pos + len <= self.play.next_pos {
            self.stats.late += 1;
            // Counted lost when playout passed its gap; it came after all.
            if let (Some((ls, le)), Some(first)) = (self.play.last_played, self.play.first_played) {
                let back = i32::from(seq.diff(ls));
                if le == self.epoch && back < 0 && back > -i32::from(SEQ_WINDOW) && seq.diff(first) > 0 {
                    self.stats.lost = self.stats.lost.saturating_sub(1);
                }
            }
            return;
        }
        match self.store.insert(pos, len, seq, self.epoch, v.payload()) {
            Insert::Stored => {}
            Insert::SamePosition => self.stats.duplicates += 1,
            Insert::Overflow => self.stats.discarded += 1,
        }
    }
}
