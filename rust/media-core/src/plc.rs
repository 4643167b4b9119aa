//! Packet loss concealment for waveform codecs (G.711, G.722, L16) by pitch
//! waveform repetition, after the method of ITU-T G.711 Appendix I, scaled
//! to any sample rate (all durations below are in milliseconds and converted
//! with the stream's rate):
//!
//! * a 48.75 ms history of the output is kept (3 × the longest pitch period
//!   plus a quarter period);
//! * on the first lost sample the pitch period is estimated by normalized
//!   cross-correlation of the last 20 ms against the history, over periods of
//!   5–15 ms (a coarse search on a decimated grid, then a fine one);
//! * the last pitch period is repeated; after 10 ms of loss the last 2
//!   periods, after 20 ms the last 3 (less buzzy on long losses). Every jump
//!   back in the pitch buffer is overlap-added over a quarter period;
//! * from 10 ms on the output is attenuated by 20 % per 10 ms, so it is
//!   silent after 60 ms;
//! * when good audio resumes, it is cross-faded from the continued synthetic
//!   signal over 4 ms, plus 4 ms per further 10 ms of loss (at most 10 ms).
//!
//! One deliberate difference from Appendix I: that method delays all output
//! by 3.75 ms so it can overlap-add into the tail of the last good frame.
//! Here good audio passes through with no delay and unchanged (outside the
//! cross-fade after a loss), so the start of a loss is joined instead by
//! adding the step between the last real sample and the repeated waveform,
//! decaying to zero over a quarter period.
//!
//! All buffers are allocated in [`Plc::new`]; no call allocates afterwards
//! (apart from growing the caller's output `Vec`).

/// Waveform-repetition concealment state for one mono stream.
pub struct Plc {
    rate: u32,
    /// Geometry in samples at `rate`.
    hist_len: usize,
    pitch_min: usize,
    pitch_max: usize,
    corr_len: usize,
    ms4: usize,
    ms10: usize,
    /// Ring buffer of the last `hist_len` output samples; `hist_pos` is the
    /// next slot to write (= the oldest sample).
    hist: Vec<i16>,
    hist_pos: usize,
    /// The history in time order, copied when a loss starts (pitch buffer).
    buf: Vec<f32>,
    /// Samples concealed so far in the current loss (0: not in a loss).
    lost: usize,
    pitch: usize,
    overlap: usize,
    /// Read position in `buf` of the next synthetic sample.
    read: usize,
    /// Step between the last real sample and the repeated waveform, faded
    /// out over the first `overlap` synthetic samples.
    entry_step: f32,
    /// Synthetic continuation cross-faded into the first good samples.
    fade: Vec<f32>,
    fade_len: usize,
    fade_pos: usize,
}

impl Plc {
    /// Concealment for a stream at `rate` Hz. Rates are clamped to
    /// 1000..=192000 for the buffer geometry, which bounds memory.
    pub fn new(rate: u32) -> Self {
        let r = u64::from(rate.clamp(1000, 192_000));
        // Duration in µs → samples (at least 1).
        let dur = |us: u64| ((r * us) / 1_000_000).max(1) as usize;
        let pitch_max = dur(15_000);
        let hist_len = 3 * pitch_max + pitch_max / 4;
        Plc {
            rate,
            hist_len,
            pitch_min: dur(5_000),
            pitch_max,
            corr_len: dur(20_000).min(hist_len - pitch_max),
            ms4: dur(4_000),
            ms10: dur(10_000),
            hist: vec![0; hist_len],
            hist_pos: 0,
            buf: vec![0.0; hist_len],
            lost: 0,
            pitch: pitch_max,
            overlap: 1,
            read: 0,
            entry_step: 0.0,
            fade: vec![0.0; dur(10_000)],
            fade_len: 0,
            fade_pos: 0,
        }
    }

    /// The sample rate this instance was created for.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// True while a loss is being concealed (between `conceal` and the next
    /// `good`).
    pub fn in_loss(&self) -> bool {
        self.lost > 0
    }

    /// Forgets all history (e.g. on a new SSRC).
    pub fn reset(&mut self) {
        self.hist.fill(0);
        self.hist_pos = 0;
        self.lost = 0;
        self.fade_len = 0;
        self.fade_pos = 0;
    }

    /// Feeds good decoded samples. Right after a loss the first few ms are
    /// cross-faded in place from the synthetic signal; otherwise `pcm` is
    /// left unchanged.
    pub fn good(&mut self, pcm: &mut [i16]) {
        if self.lost > 0 {
            self.start_fade();
        }
        for s in pcm.iter_mut() {
            if self.fade_pos >= self.fade_len {
                break;
            }
            let w = (self.fade_pos + 1) as f32 / (self.fade_len + 1) as f32;
            *s = to_i16((1.0 - w) * self.fade[self.fade_pos] + w * f32::from(*s));
            self.fade_pos += 1;
        }
        self.push_history(pcm);
    }

    /// Appends `samples` of concealment to `out`.
    pub fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        if samples == 0 {
            return;
        }
        if self.lost == 0 {
            self.start_loss();
        }
        out.reserve(samples);
        for _ in 0..samples {
            let s = to_i16(self.next_synthetic());
            out.push(s);
            // The synthetic signal becomes history too, so a loss that
            // follows a short burst of good audio still has a pitch buffer.
            self.push_sample(s);
        }
    }
}

impl Plc {
    fn push_sample(&mut self, s: i16) {
        self.hist[self.hist_pos] = s;
        self.hist_pos += 1;
        if self.hist_pos == self.hist_len {
            self.hist_pos = 0;
        }
    }

    fn push_history(&mut self, pcm: &[i16]) {
        // Ring write in at most two copies (the decode hot path).
        let src = &pcm[pcm.len().saturating_sub(self.hist_len)..];
        let first = (self.hist_len - self.hist_pos).min(src.len());
        self.hist[self.hist_pos..self.hist_pos + first].copy_from_slice(&src[..first]);
        let rest = &src[first..];
        self.hist[..rest.len()].copy_from_slice(rest);
        self.hist_pos = (self.hist_pos + src.len()) % self.hist_len;
    }

    /// First lost sample: linearize the history, find the pitch, set up the
    /// repetition.
    fn start_loss(&mut self) {
        self.fade_len = 0;
        self.fade_pos = 0;
        let (newer, older) = self.hist.split_at(self.hist_pos);
        for (d, &s) in self.buf.iter_mut().zip(older.iter().chain(newer)) {
            *d = f32::from(s);
        }
        self.pitch = self.estimate_pitch();
        self.overlap = (self.pitch / 4).max(1);
        let end = self.hist_len;
        self.read = end - self.pitch;
        // Step between the last real sample and the sample before the one
        // that will be repeated next; decays over the first quarter period.
        self.entry_step = self.buf[end - 1] - self.buf[end - self.pitch - 1];
    }

    /// Pitch period maximizing the normalized cross-correlation between the
    /// last `corr_len` samples and the same span `lag` samples earlier.
    fn estimate_pitch(&self) -> usize {
        let step = (self.pitch_min / 20).max(1);
        let coarse = self.best_lag((self.pitch_min..=self.pitch_max).step_by(step), step);
        let lo = coarse.saturating_sub(step - 1).max(self.pitch_min);
        let hi = (coarse + step - 1).min(self.pitch_max);
        self.best_lag(lo..=hi, 1)
    }

    fn best_lag(&self, lags: impl Iterator<Item = usize>, stride: usize) -> usize {
        let end = self.hist_len;
        let template = &self.buf[end - self.corr_len..];
        let mut best = (f32::NEG_INFINITY, self.pitch_max);
        for lag in lags {
            let past = &self.buf[end - self.corr_len - lag..end - lag];
            let (mut corr, mut energy) = (0.0f32, 0.0f32);
            for (t, p) in template.iter().zip(past).step_by(stride) {
                corr += t * p;
                energy += p * p;
            }
            let score = if energy > 0.0 { corr / energy.sqrt() } else { 0.0 };
            if score > best.0 {
                best = (score, lag);
            }
        }
        best.1
    }

    /// Number of pitch periods repeated at the current point of the loss.
    fn periods(&self) -> usize {
        (1 + self.lost / self.ms10).min(3)
    }

    /// Next synthetic sample (with attenuation); advances the loss clock.
    fn next_synthetic(&mut self) -> f32 {
        let lost = self.lost;
        self.lost = self.lost.saturating_add(1);
        // 100 % for the first 10 ms, then −20 % per 10 ms: silent at 60 ms.
        let gain = if lost < self.ms10 {
            1.0
        } else {
            1.0 - 0.2 * (lost - self.ms10) as f32 / self.ms10 as f32
        };
        if gain <= 0.0 {
            return 0.0;
        }
        let end = self.hist_len;
        let span = self.periods() * self.pitch;
        let ov = self.overlap;
        let mut v = self.buf[self.read];
        if self.read >= end - ov {
            // Approaching the end of the buffer: overlap-add into the
            // samples one span earlier, where the read position jumps to.
            let w = (self.read - (end - ov) + 1) as f32 / (ov + 1) as f32;
            v = (1.0 - w) * v + w * self.buf[self.read - span];
        }
        if lost < ov {
            v += self.entry_step * (1.0 - (lost + 1) as f32 / (ov + 1) as f32);
        }
        self.read += 1;
        if self.read == end {
            self.read = end - span;
        }
        v * gain
    }

    /// First good sample after a loss: render the synthetic continuation to
    /// cross-fade from (App. I: 4 ms, +4 ms per further 10 ms, ≤ 10 ms).
    fn start_fade(&mut self) {
        let extra = (self.lost - 1) / self.ms10;
        let len = self
            .ms4
            .saturating_mul(1 + extra)
            .min(self.ms10)
            .min(self.fade.len());
        for k in 0..len {
            self.fade[k] = self.next_synthetic();
        }
        self.fade_len = len;
        self.fade_pos = 0;
        self.lost = 0;
    }
}

fn to_i16(v: f32) -> i16 {
    v.round().clamp(-32768.0, 32767.0) as i16
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::f64::consts::PI;

    fn sine(rate: u32, freq: f64, amp: f64, n0: usize, len: usize) -> Vec<i16> {
        (n0..n0 + len)
            .map(|n| (amp * (2.0 * PI * freq * n as f64 / f64::from(rate)).sin()).round() as i16)
            .collect()
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
    }

    /// Power of `x` at `freq` (Goertzel), normalized so a full-length sine
    /// of amplitude A gives about A²/4·len².
    fn goertzel(x: &[i16], rate: u32, freq: f64) -> f64 {
        let w = 2.0 * PI * freq / f64::from(rate);
        let c = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for &v in x {
            let s0 = f64::from(v) + c * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        s1 * s1 + s2 * s2 - c * s1 * s2
    }

    fn max_step(x: &[i16]) -> i32 {
        x.windows(2)
            .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
            .max()
            .unwrap_or(0)
    }

    /// Plays `good_ms` of a sine in 20 ms frames, then `lost_ms` of loss,
    /// then `after_ms` of the sine again (at its true phase). Returns the
    /// whole output and the sample index where the loss starts.
    fn run(rate: u32, freq: f64, good_ms: usize, lost_ms: usize, after_ms: usize) -> (Vec<i16>, usize) {
        let per_ms = rate as usize / 1000;
        let frame = 20 * per_ms;
        let mut plc = Plc::new(rate);
        let mut out = Vec::new();
        let mut n = 0;
        while n < good_ms * per_ms {
            let mut f = sine(rate, freq, 8000.0, n, frame);
            plc.good(&mut f);
            out.extend_from_slice(&f);
            n += frame;
        }
        let loss_at = n;
        plc.conceal(lost_ms * per_ms, &mut out);
        n += lost_ms * per_ms;
        let end = n + after_ms * per_ms;
        while n < end {
            let mut f = sine(rate, freq, 8000.0, n, frame);
            plc.good(&mut f);
            out.extend_from_slice(&f);
            n += frame;
        }
        (out, loss_at)
    }

    #[test]
    fn no_loss_means_no_change() {
        let mut plc = Plc::new(8000);
        for k in 0..20 {
            let orig = sine(8000, 440.0, 12000.0, k * 160, 160);
            let mut f = orig.clone();
            plc.good(&mut f);
            assert_eq!(f, orig);
        }
    }

    #[test]
    fn conceals_a_sine_at_its_own_frequency() {
        for rate in [8000, 16000, 48000] {
            let per_ms = rate as usize / 1000;
            let (out, at) = run(rate, 200.0, 200, 20, 0);
            let hidden = &out[at..at + 20 * per_ms];
            assert_eq!(hidden.len(), 20 * per_ms);
            // Energy is there, and it is at 200 Hz, not at neighbours.
            assert!(
                rms(&hidden[..10 * per_ms]) > 0.6 * 8000.0 / 2f64.sqrt(),
                "rate {rate}"
            );
            let on = goertzel(hidden, rate, 200.0);
            for off in [100.0, 150.0, 250.0, 300.0, 400.0] {
                assert!(on > 20.0 * goertzel(hidden, rate, off), "rate {rate}: {off} Hz");
            }
            // The first 10 ms follow the true waveform closely.
            let truth = sine(rate, 200.0, 8000.0, at, 10 * per_ms);
            let err: Vec<i16> = hidden.iter().zip(&truth).map(|(a, b)| a - b).collect();
            assert!(rms(&err) < 0.05 * rms(&truth), "rate {rate}: err {}", rms(&err));
        }
    }

    #[test]
    fn long_loss_decays_to_silence_by_60_ms() {
        for rate in [8000, 16000, 48000] {
            let per_ms = rate as usize / 1000;
            let (out, at) = run(rate, 200.0, 200, 100, 0);
            let ten = |k: usize| rms(&out[at + k * 10 * per_ms..at + (k + 1) * 10 * per_ms]);
            assert!(ten(0) > 5000.0, "rate {rate}: {}", ten(0));
            for k in 1..6 {
                assert!(ten(k) < ten(k - 1), "rate {rate}: not decaying at {k}0 ms");
            }
            assert!(ten(5) < 0.2 * ten(0));
            assert!(out[at + 60 * per_ms..].iter().all(|&s| s == 0), "rate {rate}");
        }
    }

    #[test]
    fn joins_are_smooth() {
        // Neither entering nor leaving the loss produces a step larger than
        // the sine's own largest sample-to-sample change.
        for rate in [8000, 16000, 48000] {
            for lost_ms in [10, 20, 40, 80] {
                // 230 Hz: the period is not a whole number of samples and
                // the loss ends at a non-zero phase.
                let (out, _) = run(rate, 230.0, 200, lost_ms, 100);
                let normal = max_step(&sine(rate, 230.0, 8000.0, 0, rate as usize / 100));
                let worst = max_step(&out);
                assert!(
                    worst <= normal + normal / 20,
                    "rate {rate}, {lost_ms} ms loss: step {worst} > {normal}"
                );
            }
        }
    }

    #[test]
    fn resumed_audio_is_untouched_after_the_cross_fade() {
        let (out, at) = run(8000, 200.0, 200, 20, 60);
        let resume = at + 160;
        // App. I length for a 20 ms loss: 8 ms = 64 samples.
        let truth = sine(8000, 200.0, 8000.0, resume, 480);
        assert_eq!(&out[resume + 64..resume + 480], &truth[64..]);
        assert_ne!(&out[resume..resume + 64], &truth[..64]);
    }

    #[test]
    fn voice_like_pitch_is_found() {
        // Harmonic-rich signal with a 7.3 ms period at 16 kHz.
        let rate = 16000;
        let period = 117.0;
        let mut plc = Plc::new(rate);
        let mut f: Vec<i16> = (0..3200)
            .map(|n| {
                let ph = 2.0 * PI * n as f64 / period;
                (4000.0 * ph.sin() + 2500.0 * (2.0 * ph).sin() + 1500.0 * (3.0 * ph + 1.0).sin()) as i16
            })
            .collect();
        plc.good(&mut f);
        plc.conceal(1, &mut Vec::new());
        assert!((plc.pitch as f64 - period).abs() <= 1.0, "pitch {}", plc.pitch);
    }

    #[test]
    fn loss_at_stream_start_is_silence() {
        let mut plc = Plc::new(16000);
        let mut out = vec![7];
        plc.conceal(500, &mut out);
        assert_eq!(out.len(), 501);
        assert!(out[1..].iter().all(|&s| s == 0));
        plc.conceal(0, &mut out);
        assert_eq!(out.len(), 501);
    }

    #[test]
    fn reset_forgets_the_history() {
        let mut plc = Plc::new(8000);
        let mut f = sine(8000, 300.0, 8000.0, 0, 800);
        plc.good(&mut f);
        assert!(!plc.in_loss());
        let mut out = Vec::new();
        plc.conceal(80, &mut out);
        assert!(plc.in_loss() && rms(&out) > 1000.0);
        plc.reset();
        assert!(!plc.in_loss());
        out.clear();
        plc.conceal(80, &mut out);
        assert!(out.iter().all(|&s| s == 0));
    }

    proptest! {
        #[test]
        fn any_call_sequence_is_safe(
            rate in prop_oneof![Just(8000u32), Just(16000), Just(44100), Just(48000), 0u32..400_000],
            ops in proptest::collection::vec((any::<bool>(), 0usize..1500, any::<i16>()), 0..30),
        ) {
            let mut plc = Plc::new(rate);
            let mut out = Vec::new();
            for (lose, n, v) in ops {
                let before = out.len();
                if lose {
                    plc.conceal(n, &mut out);
                } else {
                    let mut f: Vec<i16> = (0..n).map(|k| v.wrapping_mul(k as i16)).collect();
                    plc.good(&mut f);
                    out.extend_from_slice(&f);
                }
                prop_assert_eq!(out.len(), before + n);
            }
        }
    }
}
