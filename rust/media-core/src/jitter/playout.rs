//! The playout half of the jitter buffer: [`JitterBuffer::pop`].

use super::buffer::SEQ_WINDOW;
use super::stretch::{self, Limits, Method};
use super::{JitterBuffer, GUARD_MS};
use crate::error::{Error, Result};
use crate::types::SeqNo;

/// Longest period a voiced cut may remove (ms); caps the shrink budget.
const MAX_CUT_MS: f64 = 15.0;
/// Below this distance from the target (ms) the delay is only corrected in
/// silence or by sample-level steps (clock drift); beyond it whole pitch
/// periods may be cut or repeated.
const PERIOD_EDIT_MS: f64 = 3.0 * GUARD_MS;

/// A stretch wished for this pop: shrink or grow, by how many samples, and
/// whether whole periods may be edited.
#[derive(Clone, Copy, Debug)]
struct Action {
    shrink: bool,
    want: usize,
    allow_period: bool,
}

/// Playout state: the timeline cursor and the PCM queued for output.
pub(super) struct Playout {
    pub started: bool,
    /// Media position that follows the queued PCM.
    pub next_pos: i64,
    /// Sequence number and epoch of the last decoded packet.
    pub last_played: Option<(SeqNo, u32)>,
    /// First sequence number decoded in the current epoch.
    pub first_played: Option<SeqNo>,
    pcm: Vec<i16>,
    read: usize,
    scratch: Vec<i16>,
    decoded_any: bool,
    /// Samples per channel concealed since the last decoded packet.
    conceal_run: i64,
    /// Whether this pop found nothing to play and waited.
    held: bool,
    /// Samples per channel that voiced cuts may still remove.
    shrink_budget: f64,
    action: Option<Action>,
    delay_sum: f64,
    delay_n: u64,
}

impl Playout {
    pub fn new(frame_samples: usize) -> Self {
        Playout {
            started: false,
            next_pos: 0,
            last_played: None,
            first_played: None,
            pcm: Vec::with_capacity(4 * frame_samples),
            read: 0,
            scratch: Vec::with_capacity(2 * frame_samples),
            decoded_any: false,
            conceal_run: 0,
            held: false,
            shrink_budget: 0.0,
            action: None,
            delay_sum: 0.0,
            delay_n: 0,
        }
    }

    fn queued(&self) -> usize {
        self.pcm.len() - self.read
    }
}

impl JitterBuffer {
    /// Appends exactly one ptime of interleaved PCM to `out` and returns
    /// `true`; before the first packet it appends nothing and returns
    /// `false`. Call it every `ptime_ms` on the same clock as `push`.
    pub fn pop(&mut self, now_ms: f64, out: &mut Vec<i16>) -> Result<bool> {
        if !super::valid_time(now_ms) {
            return Err(Error::invalid(format!("jitter buffer: time {now_ms} ms")));
        }
        self.est.settle(now_ms);
        if !self.play.started {
            let Some(first) = self.store.front().map(|f| f.pos) else {
                return Ok(false);
            };
            let target = self.target_ms(now_ms);
            self.play.next_pos = self.desired_next(now_ms, target).min(first);
            self.play.started = true;
        }
        let target = self.target_ms(now_ms);
        let mut delay = self.delay_ms(now_ms);
        if delay > f64::from(self.cfg.max_delay_ms + self.cfg.ptime_ms) && !self.store.is_empty() {
            self.skip_ahead(now_ms, target);
            delay = self.delay_ms(now_ms);
        }
        let cap = self.samples(MAX_CUT_MS) as f64;
        self.play.shrink_budget =
            (self.play.shrink_budget + self.frame as f64 * self.cfg.shrink_rate).min(cap);
        let excess = delay - target;
        self.play.action = (excess.abs() > GUARD_MS).then(|| Action {
            shrink: excess > 0.0,
            want: self.samples(excess.abs()) as usize,
            allow_period: excess.abs() > PERIOD_EDIT_MS,
        });
        let need = self.frame * self.ch;
        self.play.held = false;
        while self.play.queued() < need {
            self.produce(now_ms, target, need - self.play.queued());
        }
        let p = &mut self.play;
        out.extend_from_slice(&p.pcm[p.read..p.read + need]);
        p.read += need;
        if p.read == p.pcm.len() {
            p.pcm.clear();
            p.read = 0;
        } else if p.read >= 8 * need {
            p.pcm.drain(..p.read);
            p.read = 0;
        }
        self.stats.current_delay_ms = delay;
        self.stats.target_delay_ms = target;
        if p.decoded_any && !p.held {
            // While waiting in a pause D grows without meaning: count only
            // pops that had media to play.
            p.delay_sum += delay;
            p.delay_n += 1;
            self.stats.mean_delay_ms = p.delay_sum / p.delay_n as f64;
        }
        Ok(true)
    }

    /// Target buffering delay (ms), see the module docs.
    fn target_ms(&self, now_ms: f64) -> f64 {
        let t = self.est.jitter_ms(now_ms) + GUARD_MS;
        t.clamp(f64::from(self.cfg.min_delay_ms), f64::from(self.cfg.max_delay_ms))
    }

    /// Buffering delay D of the next media sample (ms).
    fn delay_ms(&self, now_ms: f64) -> f64 {
        let queued = (self.play.queued() / self.ch) as i64;
        now_ms + self.ms(queued) - self.ms(self.play.next_pos) - self.est.min_offset().unwrap_or(0.0)
    }

    /// The `next_pos` for which D would equal `target_ms`.
    fn desired_next(&self, now_ms: f64, target_ms: f64) -> i64 {
        let queued = (self.play.queued() / self.ch) as i64;
        let media = now_ms + self.ms(queued) - self.est.min_offset().unwrap_or(0.0) - target_ms;
        self.samples(media)
    }

    /// Far too much delay (e.g. a long outage followed by the backlog):
    /// drop what is queued and buffered up to the target position.
    fn skip_ahead(&mut self, now_ms: f64, target_ms: f64) {
        self.play.pcm.clear();
        self.play.read = 0;
        let to = self.desired_next(now_ms, target_ms);
        while self.store.front().is_some_and(|f| f.end() <= to) {
            self.store.drop_front();
            self.stats.discarded += 1;
        }
        self.play.next_pos = self.play.next_pos.max(to);
    }

    /// Whether packets are missing between the last played one and `seq`.
    fn missing_before(&self, seq: SeqNo, epoch: u32) -> bool {
        self.play
            .last_played
            .is_some_and(|(ls, le)| le == epoch && seq.diff(ls) > 1)
    }

    /// Queues at least one more sample (or consumes a packet).
    fn produce(&mut self, now_ms: f64, target_ms: f64, need: usize) {
        let need_ch = need.div_ceil(self.ch) as i64;
        while self.store.front().is_some_and(|f| f.end() <= self.play.next_pos) {
            self.store.drop_front();
            self.stats.discarded += 1;
        }
        let Some((pos, len, seq, epoch)) = self.store.front().map(|f| (f.pos, f.len, f.seq, f.epoch)) else {
            // Nothing buffered: conceal without advancing the timeline. A
            // late burst then plays in full (the delay grows by the wait);
            // after a pause or a loss the gap rule below re-places it.
            self.play.held = true;
            self.conceal(need_ch, false);
            return;
        };
        if pos > self.play.next_pos {
            // A gap is concealment or silence whatever we do, so move through
            // it to wherever the delay equals the target (never backwards,
            // never past the next packet).
            let to = self.desired_next(now_ms, target_ms);
            if to > self.play.next_pos {
                self.play.next_pos = to.min(pos);
                // The delay was just corrected; a stretch planned from the
                // old delay would overshoot.
                self.play.action = None;
            }
        }
        let gap = pos - self.play.next_pos;
        if gap > 0 {
            // In-band FEC (RFC 6716 §2.1.7) rebuilds the frame just before
            // this packet, and only as a whole. Use it at that frame's
            // deadline: when this pop needs all that is left of it. Until
            // then conceal just what this pop needs, as for codecs without
            // FEC, so that the missing packet (perhaps only overtaken by its
            // successor) can still fill the rest of its span.
            let fec = self.fec && self.missing_before(seq, epoch) && self.play.decoded_any;
            if fec && gap <= len && gap <= need_ch {
                self.recover_front(gap);
            } else {
                self.conceal(gap.min(need_ch), true);
            }
            return;
        }
        self.decode_front();
    }

    /// Appends `k` samples per channel of concealment (or silence) and, if
    /// `advance`, moves the timeline past them.
    fn conceal(&mut self, k: i64, advance: bool) {
        let k = k.max(1);
        let n = k as usize * self.ch;
        let start = self.play.pcm.len();
        let max_run = self.samples(f64::from(self.cfg.max_conceal_ms));
        if !self.play.decoded_any {
            // Before the first packet: the start-up delay, not a loss.
            self.play.pcm.resize(start + n, 0);
        } else if self.play.conceal_run < max_run {
            if self.dec.conceal(k as usize, &mut self.play.pcm).is_err() {
                self.play.pcm.truncate(start);
            }
            self.play.pcm.resize(start + n, 0);
            self.play.conceal_run += k;
            self.stats.concealed_samples += k as u64;
        } else {
            self.play.pcm.resize(start + n, 0);
            self.stats.silence_samples += k as u64;
        }
        if advance {
            self.play.next_pos += k;
        }
    }

    /// Recovers the `gap` samples before the first buffered packet from it:
    /// the whole frame before the packet (as long as the packet) is rebuilt
    /// and its last `gap` samples are queued (the rest was concealed).
    fn recover_front(&mut self, gap: i64) {
        let Some(front) = self.store.front() else {
            return;
        };
        let frame = front.len.max(gap) as usize;
        let keep = gap as usize * self.ch;
        let scratch = &mut self.play.scratch;
        scratch.clear();
        if self.dec.recover(&front.payload, frame, scratch).is_err() {
            scratch.clear();
        }
        scratch.resize(frame * self.ch, 0);
        let tail = scratch.len() - keep;
        self.play.pcm.extend_from_slice(&scratch[tail..]);
        self.play.conceal_run += gap;
        self.stats.concealed_samples += gap as u64;
        self.play.next_pos += gap;
    }

    /// Decodes the first buffered packet (which starts at or before
    /// `next_pos`) and queues its samples from `next_pos` on.
    fn decode_front(&mut self) {
        let Some(slot) = self.store.pop_front() else {
            return;
        };
        let skip = (self.play.next_pos - slot.pos).max(0);
        let keep = slot.len - skip;
        self.play.scratch.clear();
        let decoded = self.dec.decode(&slot.payload, &mut self.play.scratch).is_ok();
        if self.play.last_played.is_none_or(|(_, e)| e != slot.epoch) {
            self.play.first_played = Some(slot.seq);
        } else {
            self.count_missing(slot.seq);
        }
        self.play.last_played = Some((slot.seq, slot.epoch));
        if !decoded {
            self.stats.discarded += 1;
            self.store.recycle(slot);
            self.conceal(keep, true);
            return;
        }
        let full = slot.len as usize * self.ch;
        self.play.scratch.resize(full, 0);
        self.play.scratch.drain(..skip as usize * self.ch);
        self.stats.played += 1;
        self.play.decoded_any = true;
        self.play.conceal_run = 0;
        self.play.next_pos = slot.end();
        self.store.recycle(slot);
        self.queue_decoded();
    }

    /// Counts the sequence numbers between the last played packet and `seq`
    /// that never arrived.
    fn count_missing(&mut self, seq: SeqNo) {
        let Some((ls, _)) = self.play.last_played else {
            return;
        };
        let d = i32::from(seq.diff(ls));
        if d > 1 && d < i32::from(SEQ_WINDOW) {
            let mut s = ls;
            for _ in 1..d {
                s = s.next();
                if !self.seqs.received(s) {
                    self.stats.lost += 1;
                }
            }
        }
    }

    /// Moves the scratch frame to the output queue, time-stretched if this
    /// pop asked for it.
    fn queue_decoded(&mut self) {
        let p = &mut self.play;
        let Some(action) = p.action.take() else {
            p.pcm.extend_from_slice(&p.scratch);
            return;
        };
        let shrink = action.shrink;
        let lim = Limits {
            want: action.want,
            period_budget: p.shrink_budget.max(0.0) as usize,
            allow_period: action.allow_period,
        };
        match stretch::stretch(&p.scratch, self.ch, self.rate, shrink, lim, &mut p.pcm) {
            Some((k, method)) if shrink => {
                self.stats.accelerated_samples += k as u64;
                if method == Method::Period {
                    p.shrink_budget -= k as f64;
                }
            }
            Some((k, _)) => self.stats.expanded_samples += k as u64,
            None => {}
        }
    }
}
