//! Network delay estimation for the jitter buffer.
//!
//! For every packet the estimator takes `d = arrival - media time` (both in
//! ms). Its absolute value is meaningless (sender and receiver clocks are
//! unrelated), but `d - min(d)` is the packet's *relative delay*: how much
//! later than the fastest recent packet it came.
//!
//! The buffer plays on a grid of pops (one every ptime), so what decides
//! whether a packet is in time is not when it arrived but the first pop
//! that can use it: a packet that arrives just after a pop waits almost a
//! ptime. Each packet is therefore measured at that pop
//! ([`DelayEstimator::settle`]): its *usable delay* is `pop time - media -
//! min(d)`, and with the buffering delay D of the module `jitter` the
//! packet is in time exactly when its usable delay is at most D, wherever
//! its first sample falls within a popped frame. The usable delays all lie
//! on one lattice (pop times modulo ptime), so a quantile of them is the
//! smallest D for that share of packets in time; no margin for the
//! frame/packet misalignment is needed on top. (A packet that arrives within
//! [`ARRIVAL_MARGIN_MS`] before its pop is counted as missing it: the
//! margin is in arrival time, where it matters, not in D.)
//!
//! * the minimum is taken over a sliding window ([`MIN_BLOCKS`] blocks of
//!   [`MIN_BLOCK_MS`] of arrival time), so a sender clock that runs slow (d
//!   creeping upward) does not inflate every later sample;
//! * usable delays go into a histogram of 1 ms bins whose weights decay
//!   with a time constant (`memory_ms` of media time), so old conditions are
//!   forgotten smoothly;
//! * a peak detector: a delay spike (a queue building up somewhere) delays
//!   *consecutive* packets, unlike random jitter, so [`PEAK_RUN`] packets in
//!   a row (in arrival order) with a delay well above the quantile make one
//!   spike. A spike that follows another within `peak_hold_ms` shows that
//!   spikes recur: from then on, as long as each spike follows the previous
//!   one within the hold time, and until the hold time has passed after the
//!   last one, the target is at least the spike height (the highest of the
//!   spikes of that series in the last two hold times). The packets of a
//!   spike beyond its first [`PEAK_RUN`] stay out of the histogram: a
//!   backlog released after an outage would otherwise drown it (and a
//!   single spike should not move the target).

/// Length of one block of the running minimum (ms of arrival time).
pub(super) const MIN_BLOCK_MS: f64 = 1000.0;
/// Number of blocks of the running minimum (the window is about 10 s).
pub(super) const MIN_BLOCKS: usize = 10;
/// A usable delay this far above the quantile (ms), plus one pop interval,
/// counts as a spike.
pub(super) const PEAK_MARGIN_MS: f64 = 20.0;
/// Consecutive packets above the threshold that make a spike.
pub(super) const PEAK_RUN: u32 = 3;
const PEAK_SLOTS: usize = 8;
/// A packet that arrives less than this (ms) before a pop counts as waiting
/// for the next pop: arrival and pop times that close are not told apart
/// reliably (the caller's timer jitters, the path changes slowly, and sender
/// clock drift moves all arrivals across the pops), and a packet that
/// misses its pop needs a whole pop interval more delay.
pub(super) const ARRIVAL_MARGIN_MS: f64 = 2.0;
/// Packets measured at the next pop at most; beyond, the oldest is
/// measured at once (a burst that large is a backlog anyway).
const PENDING: usize = 64;

#[derive(Clone, Copy, Default)]
struct Peak {
    at_ms: f64,
    height_ms: f64,
    /// Whether it followed the previous spike within the hold time.
    recurs: bool,
}

/// A packet whose usable delay is measured at the next pop.
#[derive(Clone, Copy, Default)]
struct Pending {
    arrival_ms: f64,
    /// Relative delay at arrival (against the minimum known then).
    rel_ms: f64,
    dur_ms: f64,
}

pub(super) struct DelayEstimator {
    // Running minimum of arrival - media (ms).
    blocks: [f64; MIN_BLOCKS],
    n_blocks: usize,
    head: usize,
    block_start_ms: f64,
    // Histogram of usable delay, 1 ms bins; the last bin collects the rest.
    bins: Vec<f32>,
    total: f64,
    /// Current increment; grows as old weights decay (scaled lazily).
    inc: f64,
    memory_ms: f64,
    quantile: f64,
    /// Interval between pops (ms): the longest a packet waits for one.
    grid_ms: f64,
    pending: [Pending; PENDING],
    pending_head: usize,
    n_pending: usize,
    // Spike detector.
    peaks: [Peak; PEAK_SLOTS],
    n_peaks: usize,
    peak_hold_ms: f64,
    /// Length and height of the current run of packets above the threshold.
    run: u32,
    run_max_ms: f64,
    /// Samples (usable delay, duration) of the current run while it is too
    /// short to be a spike: they go into the histogram only if it ends so.
    held: [(f64, f64); PEAK_RUN as usize - 1],
}

impl DelayEstimator {
    pub fn new(max_delay_ms: u32, quantile: f64, memory_ms: u32, peak_hold_ms: u32, grid_ms: u32) -> Self {
        DelayEstimator {
            blocks: [0.0; MIN_BLOCKS],
            n_blocks: 0,
            head: 0,
            block_start_ms: 0.0,
            bins: vec![0.0; max_delay_ms as usize + 1],
            total: 0.0,
            inc: 1.0,
            memory_ms: f64::from(memory_ms.max(1)),
            quantile,
            grid_ms: f64::from(grid_ms),
            pending: [Pending::default(); PENDING],
            pending_head: 0,
            n_pending: 0,
            peaks: [Peak::default(); PEAK_SLOTS],
            n_peaks: 0,
            peak_hold_ms: f64::from(peak_hold_ms),
            run: 0,
            run_max_ms: 0.0,
            held: [(0.0, 0.0); PEAK_RUN as usize - 1],
        }
    }

    /// `min(arrival - media)` over the window; `None` before the first packet.
    pub fn min_offset(&self) -> Option<f64> {
        (self.n_blocks > 0).then(|| {
            self.blocks[..self.n_blocks]
                .iter()
                .copied()
                .fold(f64::INFINITY, f64::min)
        })
    }

    /// Relative delay a packet would have, without recording it.
    pub fn relative(&self, arrival_ms: f64, media_ms: f64) -> Option<f64> {
        self.min_offset().map(|m| arrival_ms - media_ms - m)
    }

    fn note_min(&mut self, arrival_ms: f64, media_ms: f64) {
        let d = arrival_ms - media_ms;
        if self.n_blocks == 0 {
            self.blocks[0] = d;
            self.n_blocks = 1;
            self.head = 0;
            self.block_start_ms = arrival_ms;
        } else if arrival_ms - self.block_start_ms >= MIN_BLOCK_MS {
            // Start a new block; the oldest is forgotten once the ring is full.
            self.head = (self.head + 1) % MIN_BLOCKS;
            self.n_blocks = (self.n_blocks + 1).min(MIN_BLOCKS);
            self.blocks[self.head] = d;
            self.block_start_ms = arrival_ms;
        } else {
            self.blocks[self.head] = self.blocks[self.head].min(d);
        }
    }

    /// Records one packet of `dur_ms` of media that is usable at once (its
    /// usable delay is its relative delay); returns that delay.
    #[cfg(test)]
    pub fn update(&mut self, arrival_ms: f64, media_ms: f64, dur_ms: f64) -> f64 {
        self.note_min(arrival_ms, media_ms);
        let rel = self.relative(arrival_ms, media_ms).unwrap_or(0.0).max(0.0);
        self.record(arrival_ms, rel, dur_ms);
        rel
    }

    /// Takes one packet of `dur_ms` of media: its relative delay now (the
    /// running minimum includes it), the wait for the pop that can play it
    /// at the next [`DelayEstimator::settle`].
    pub fn observe(&mut self, arrival_ms: f64, media_ms: f64, dur_ms: f64) {
        self.note_min(arrival_ms, media_ms);
        let rel_ms = self.relative(arrival_ms, media_ms).unwrap_or(0.0).max(0.0);
        if self.n_pending == PENDING {
            let p = self.pending[self.pending_head];
            self.pending_head = (self.pending_head + 1) % PENDING;
            self.n_pending -= 1;
            // Not settled in time: assume the longest wait.
            self.record(p.arrival_ms, p.rel_ms + self.grid_ms, p.dur_ms);
        }
        let i = (self.pending_head + self.n_pending) % PENDING;
        self.pending[i] = Pending {
            arrival_ms,
            rel_ms,
            dur_ms,
        };
        self.n_pending += 1;
    }

    /// Measures the packets observed since the last call at the pop at
    /// `now_ms`, the first that can play them: usable delay = relative
    /// delay + wait for this pop. The wait counts at most one pop interval:
    /// pops that come later than that (an irregular caller) are not held
    /// against the network.
    pub fn settle(&mut self, now_ms: f64) {
        while self.n_pending > 0 {
            let p = self.pending[self.pending_head];
            self.pending_head = (self.pending_head + 1) % PENDING;
            self.n_pending -= 1;
            let mut wait = (now_ms - p.arrival_ms).clamp(0.0, self.grid_ms);
            if wait < ARRIVAL_MARGIN_MS.min(0.5 * self.grid_ms) {
                // Just in time for this pop: a little later and it would
                // have waited for the next one.
                wait += self.grid_ms;
            }
            self.record(p.arrival_ms, p.rel_ms + wait, p.dur_ms);
        }
    }

    /// Records the usable delay `rel_ms` of a packet that arrived at `at_ms`.
    fn record(&mut self, at_ms: f64, rel_ms: f64, dur_ms: f64) {
        // Usable delays step by whole pop intervals: a step up is no spike.
        // Once a spike is recognized, it lasts while the delays stay above
        // the quantile (the backlog drains).
        let q = self.quantile_ms();
        let margin = PEAK_MARGIN_MS + self.grid_ms;
        let above = if self.run >= PEAK_RUN {
            rel_ms > q
        } else {
            self.total > 0.0 && rel_ms > margin && rel_ms > q + margin
        };
        if !above {
            if self.run < PEAK_RUN {
                // A run too short for a spike was jitter after all.
                for i in 0..self.run as usize {
                    let (r, d) = self.held[i];
                    self.add_sample(r, d);
                }
            }
            self.run = 0;
            self.add_sample(rel_ms, dur_ms);
            return;
        }
        self.run = self.run.saturating_add(1);
        self.run_max_ms = if self.run == 1 {
            rel_ms
        } else {
            self.run_max_ms.max(rel_ms)
        };
        if let Some(h) = self.held.get_mut(self.run as usize - 1) {
            *h = (rel_ms, dur_ms);
        } else {
            self.note_peak(at_ms);
        }
    }

    fn add_sample(&mut self, rel_ms: f64, dur_ms: f64) {
        // Exponential forgetting per media time: every earlier weight is
        // multiplied by exp(-dur/memory). Instead of touching every bin the
        // increment grows by the inverse factor; rescale before it overflows.
        self.inc *= (dur_ms.max(0.0) / self.memory_ms).exp();
        if self.inc > 1e6 {
            let k = 1.0 / self.inc;
            for b in &mut self.bins {
                *b = (f64::from(*b) * k) as f32;
            }
            self.total *= k;
            self.inc = 1.0;
        }
        let last = self.bins.len() - 1;
        let i = (rel_ms.max(0.0) as usize).min(last);
        self.bins[i] = (f64::from(self.bins[i]) + self.inc) as f32;
        self.total += self.inc;
    }

    /// A run of [`PEAK_RUN`] or more packets above the threshold: a spike
    /// starts or goes on.
    fn note_peak(&mut self, at_ms: f64) {
        if self.run > PEAK_RUN && self.n_peaks > 0 {
            // The same spike goes on.
            let last = &mut self.peaks[self.n_peaks - 1];
            last.height_ms = self.run_max_ms;
            last.at_ms = at_ms;
            return;
        }
        let recurs = self.n_peaks > 0 && at_ms - self.peaks[self.n_peaks - 1].at_ms <= self.peak_hold_ms;
        if self.n_peaks == PEAK_SLOTS {
            self.peaks.copy_within(1.., 0);
            self.n_peaks -= 1;
        }
        self.peaks[self.n_peaks] = Peak {
            at_ms,
            height_ms: self.run_max_ms,
            recurs,
        };
        self.n_peaks += 1;
    }

    /// The configured quantile of the usable delay histogram (ms, upper
    /// bin edge); 0 with no data.
    pub fn quantile_ms(&self) -> f64 {
        if self.total <= 0.0 {
            return 0.0;
        }
        let want = self.quantile * self.total;
        let mut acc = 0.0;
        for (i, &b) in self.bins.iter().enumerate() {
            acc += f64::from(b);
            if acc >= want {
                return if i == 0 { 0.0 } else { (i + 1) as f64 };
            }
        }
        (self.bins.len()) as f64
    }

    /// Height of the recurring spikes (see the module docs) at `now_ms`;
    /// 0 when the last spike was a single one or is older than the hold time.
    pub fn peak_ms(&self, now_ms: f64) -> f64 {
        let peaks = &self.peaks[..self.n_peaks];
        let Some(last) = peaks.last() else {
            return 0.0;
        };
        if !last.recurs || now_ms - last.at_ms > self.peak_hold_ms {
            return 0.0;
        }
        // The series: back from the last spike while each followed the one
        // before within the hold time (and that one is still remembered).
        let mut h = 0.0f64;
        for p in peaks.iter().rev() {
            if now_ms - p.at_ms > 2.0 * self.peak_hold_ms {
                break;
            }
            h = h.max(p.height_ms);
            if !p.recurs {
                break;
            }
        }
        h
    }

    /// Usable delay the buffer must absorb: max(quantile, recurring spikes).
    pub fn jitter_ms(&self, now_ms: f64) -> f64 {
        self.quantile_ms().max(self.peak_ms(now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est() -> DelayEstimator {
        DelayEstimator::new(1000, 0.95, 10_000, 10_000, 20)
    }

    #[test]
    fn steady_stream_has_zero_jitter() {
        let mut e = est();
        for k in 0..500 {
            let t = 1000.0 + 20.0 * k as f64;
            let r = e.update(t + 37.0, t, 20.0);
            assert!(r.abs() < 1e-9);
        }
        assert_eq!(e.quantile_ms(), 0.0);
        assert_eq!(e.min_offset(), Some(37.0));
    }

    #[test]
    fn quantile_follows_the_distribution() {
        let mut e = est();
        // Relative delays 0..=99 ms, uniformly: the 95% quantile is ~95 ms.
        for k in 0..2000 {
            let media = 20.0 * k as f64;
            let r = (k * 37 % 100) as f64;
            e.update(media + r, media, 20.0);
        }
        let q = e.quantile_ms();
        assert!((93.0..=97.0).contains(&q), "q={q}");
    }

    #[test]
    fn old_jitter_is_forgotten() {
        let mut e = est();
        for k in 0..1000 {
            let media = 20.0 * k as f64;
            e.update(media + (k % 10) as f64 * 10.0, media, 20.0);
        }
        assert!(e.quantile_ms() >= 70.0, "q={}", e.quantile_ms());
        // 60 s of calm (3 time constants of 10 s twice over).
        for k in 1000..4000 {
            let media = 20.0 * k as f64;
            e.update(media, media, 20.0);
        }
        assert!(e.quantile_ms() <= 1.0, "q={}", e.quantile_ms());
    }

    #[test]
    fn slow_sender_clock_does_not_inflate_jitter() {
        // Sender 200 ppm slow: d rises 0.2 ms per second for 10 minutes.
        let mut e = est();
        for k in 0..30_000 {
            let media = 20.0 * k as f64;
            let arrival = media * (1.0 + 200e-6);
            e.update(arrival, media, 20.0);
        }
        // Windowed minimum lags by about the window length times the drift.
        assert!(e.quantile_ms() <= 3.0, "q={}", e.quantile_ms());
    }

    #[test]
    fn a_backlog_after_an_outage_stays_out_of_the_histogram() {
        let mut e = est();
        for k in 0..500 {
            let t = 20.0 * k as f64;
            e.update(t, t, 20.0);
        }
        // 3 s without packets, then the backlog of 150 packets at once.
        for k in 500..650 {
            e.update(13_000.0, 20.0 * k as f64, 20.0);
        }
        for k in 650..700 {
            let t = 20.0 * k as f64;
            e.update(t, t, 20.0);
        }
        assert_eq!(e.quantile_ms(), 0.0);
        assert_eq!(e.peak_ms(14_000.0), 0.0, "one spike is no pattern");
    }

    #[test]
    fn recurring_spikes_raise_the_target_and_expire() {
        let mut e = est();
        let mut t = 0.0;
        for k in 0..1500 {
            t = 20.0 * k as f64;
            // A 200 ms spike every 2 s: what was sent during 200 ms arrives
            // at once at its end.
            let phase = k % 100;
            let arrival = if (50..60).contains(&phase) {
                20.0 * (k - phase + 60) as f64
            } else {
                t
            };
            e.update(arrival, t, 20.0);
            if k == 158 {
                assert!(e.peak_ms(t) >= 199.0, "two spikes seen");
            }
        }
        assert!(e.jitter_ms(t) >= 199.0);
        assert!(e.quantile_ms() < 50.0, "bursts hardly weigh in the quantile");
        assert_eq!(e.peak_ms(t + 10_001.0), 0.0, "expired after the hold time");
    }

    #[test]
    fn random_late_packets_are_not_spikes() {
        // Isolated packets 100 ms late, 2% of them: jitter, not a spike.
        let mut e = est();
        for k in 0..3000 {
            let t = 20.0 * k as f64;
            let r = if k % 50 == 7 { 100.0 } else { 0.0 };
            e.update(t + r, t, 20.0);
        }
        assert_eq!(e.peak_ms(60_000.0), 0.0);
        assert_eq!(e.jitter_ms(60_000.0), e.quantile_ms());
    }

    #[test]
    fn spikes_recurring_within_the_hold_keep_the_target() {
        // Hold 5 s; a 200 ms stall every 4 s (5 of them, the last released
        // at 18.2 s), then calm.
        let mut e = DelayEstimator::new(1000, 0.99, 10_000, 5000, 20);
        let (mut first, mut last) = (None, None);
        for k in 0..2500u32 {
            let t = 20.0 * f64::from(k);
            let phase = k % 200;
            let spiky = k < 1000 && (100..110).contains(&phase);
            let arrival = if spiky {
                20.0 * f64::from(k - phase + 110)
            } else {
                t
            };
            e.update(arrival, t, 20.0);
            let p = e.peak_ms(t);
            if p > 0.0 {
                assert!((199.0..=201.0).contains(&p), "k={k}: {p}");
                first.get_or_insert(k);
                last = Some(k);
            } else if first.is_some() {
                assert!(last.is_some_and(|l| l >= 1160), "k={k}: dropped between spikes");
            }
        }
        // From the third packet of the second spike until the hold time after
        // the last: not only while two spikes are within the hold time.
        assert_eq!((first, last), (Some(302), Some(1160)));
        assert_eq!(e.quantile_ms(), 0.0, "spike packets stay out of the histogram");
    }

    #[test]
    fn a_packet_is_measured_at_the_pop_that_can_play_it() {
        let mut e = est();
        // Packets every 20 ms arriving 7 ms before the pops: they wait 7 ms.
        for k in 0..100 {
            let t = 20.0 * f64::from(k);
            e.observe(t + 13.0, t, 20.0);
            e.settle(t + 20.0);
        }
        assert_eq!(e.quantile_ms(), 8.0, "the 7 ms bin, upper edge");
        // Arriving 1 ms before the pops: as good as missing them.
        let mut e = est();
        for k in 0..100 {
            let t = 20.0 * f64::from(k);
            e.observe(t + 19.0, t, 20.0);
            e.settle(t + 20.0);
        }
        assert_eq!(e.quantile_ms(), 22.0);
        // A late pop does not count against the network: at most one pop
        // interval of waiting.
        let mut e = est();
        e.observe(0.0, 0.0, 20.0);
        e.settle(500.0);
        assert_eq!(e.quantile_ms(), 21.0);
    }
}
