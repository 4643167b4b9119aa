//! Network delay estimation for the jitter buffer.
//!
//! For every packet the estimator takes `d = arrival - media time` (both in
//! ms). Its absolute value is meaningless (sender and receiver clocks are
//! unrelated), but `d - min(d)` is the packet's *relative delay*: how much
//! later than the fastest recent packet it came. A packet is played in time
//! when its relative delay does not exceed the buffering delay, so the
//! target is a high quantile of the relative delay distribution:
//!
//! * the minimum is taken over a sliding window ([`MIN_BLOCKS`] blocks of
//!   [`MIN_BLOCK_MS`] of arrival time), so a sender clock that runs slow (d
//!   creeping upward) does not inflate every later sample;
//! * relative delays go into a histogram of 1 ms bins whose weights decay
//!   with a time constant (`memory_ms` of media time), so old conditions are
//!   forgotten smoothly;
//! * a peak detector: a delay spike (a queue building up somewhere) delays
//!   *consecutive* packets, unlike random jitter, so [`PEAK_RUN`] packets in
//!   a row (in arrival order) with a relative delay well above the quantile
//!   make one spike. Two spikes within `peak_hold_ms` raise the target to
//!   the spike height at once, until fewer than two are that recent. The
//!   packets of a spike beyond its first [`PEAK_RUN`] stay out of the
//!   histogram: a backlog released after an outage would otherwise drown it
//!   (and a single spike should not move the target).

/// Length of one block of the running minimum (ms of arrival time).
pub(super) const MIN_BLOCK_MS: f64 = 1000.0;
/// Number of blocks of the running minimum (the window is about 10 s).
pub(super) const MIN_BLOCKS: usize = 10;
/// A relative delay this far above the quantile (ms) counts as a spike.
pub(super) const PEAK_MARGIN_MS: f64 = 20.0;
/// Consecutive packets above the threshold that make a spike.
pub(super) const PEAK_RUN: u32 = 3;
const PEAK_SLOTS: usize = 8;

#[derive(Clone, Copy, Default)]
struct Peak {
    at_ms: f64,
    height_ms: f64,
}

pub(super) struct DelayEstimator {
    // Running minimum of arrival - media (ms).
    blocks: [f64; MIN_BLOCKS],
    n_blocks: usize,
    head: usize,
    block_start_ms: f64,
    // Histogram of relative delay, 1 ms bins; the last bin collects the rest.
    bins: Vec<f32>,
    total: f64,
    /// Current increment; grows as old weights decay (scaled lazily).
    inc: f64,
    memory_ms: f64,
    quantile: f64,
    // Spike detector.
    peaks: [Peak; PEAK_SLOTS],
    n_peaks: usize,
    peak_hold_ms: f64,
    /// Length and height of the current run of packets above the threshold.
    run: u32,
    run_max_ms: f64,
}

impl DelayEstimator {
    pub fn new(max_delay_ms: u32, quantile: f64, memory_ms: u32, peak_hold_ms: u32) -> Self {
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
            peaks: [Peak::default(); PEAK_SLOTS],
            n_peaks: 0,
            peak_hold_ms: f64::from(peak_hold_ms),
            run: 0,
            run_max_ms: 0.0,
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

    /// Records one packet of `dur_ms` of media; returns its relative delay.
    pub fn update(&mut self, arrival_ms: f64, media_ms: f64, dur_ms: f64) -> f64 {
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
        let rel = (d - self.min_offset().unwrap_or(d)).max(0.0);
        if !self.note_peak(arrival_ms, rel) {
            self.add_sample(rel, dur_ms);
        }
        rel
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

    /// Tracks runs of high delays; true if this packet belongs to a spike.
    fn note_peak(&mut self, arrival_ms: f64, rel_ms: f64) -> bool {
        let above =
            self.total > 0.0 && rel_ms > PEAK_MARGIN_MS && rel_ms > self.quantile_ms() + PEAK_MARGIN_MS;
        if !above {
            self.run = 0;
            return false;
        }
        self.run += 1;
        self.run_max_ms = if self.run == 1 {
            rel_ms
        } else {
            self.run_max_ms.max(rel_ms)
        };
        if self.run < PEAK_RUN {
            return false;
        }
        if self.run > PEAK_RUN && self.n_peaks > 0 {
            // The same spike goes on.
            let last = &mut self.peaks[self.n_peaks - 1];
            last.height_ms = self.run_max_ms;
            last.at_ms = arrival_ms;
            return true;
        }
        if self.n_peaks == PEAK_SLOTS {
            self.peaks.copy_within(1.., 0);
            self.n_peaks -= 1;
        }
        self.peaks[self.n_peaks] = Peak {
            at_ms: arrival_ms,
            height_ms: self.run_max_ms,
        };
        self.n_peaks += 1;
        true
    }

    /// The configured quantile of the relative delay histogram (ms, upper
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

    /// Height of the recurring spikes seen within the hold time before
    /// `now_ms`, or 0 when fewer than two spikes are that recent.
    pub fn peak_ms(&self, now_ms: f64) -> f64 {
        let recent = self.peaks[..self.n_peaks]
            .iter()
            .filter(|p| now_ms - p.at_ms <= self.peak_hold_ms);
        let (n, h) = recent.fold((0, 0.0f64), |(n, h), p| (n + 1, h.max(p.height_ms)));
        if n >= 2 {
            h
        } else {
            0.0
        }
    }

    /// Relative delay the buffer must absorb: max(quantile, recurring spikes).
    pub fn jitter_ms(&self, now_ms: f64) -> f64 {
        self.quantile_ms().max(self.peak_ms(now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est() -> DelayEstimator {
        DelayEstimator::new(1000, 0.95, 10_000, 10_000)
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
}
