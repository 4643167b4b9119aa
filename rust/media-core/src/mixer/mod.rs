//! Audio mixing on 16-bit linear PCM.
//!
//! * [`Mixer`]: the conference mixer. One frame per participant in, one
//!   "everyone but me" frame per participant out, plus the full mix (for
//!   recording the conference).
//! * [`RecordingMixer`]: two call legs placed on one recording timeline,
//!   drained in real time as mono (summed) or stereo (A left, B right).
//!
//! Both work in 32-bit accumulators and bring the result back into i16 range
//! either by saturation (hard clipping) or by a soft-knee limiter ([`Limiter`]).

mod recording;

pub use recording::{Layout, Leg, LegStats, RecordingMixer, MAX_DRAIN_SECONDS, MAX_LAG_SECONDS};

use crate::error::{Error, Result};

/// Most participants one [`Mixer::mix`] call accepts. Keeps the i32 sum far
/// from overflow (1024 × 32768 = 2^25) and the work per frame bounded.
pub const MAX_PARTICIPANTS: usize = 1024;

/// How a sum outside the i16 range is brought back into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Limiter {
    /// Saturate at -32768 / 32767. Transparent as long as nothing clips.
    #[default]
    Hard,
    /// Linear up to |x| = [`SOFT_KNEE`], then a smooth curve that approaches
    /// full scale asymptotically: loud overlapping talkers are compressed
    /// instead of being squared off (fewer audible clicks and harmonics).
    Soft,
}

/// Magnitude (0.75 of full scale) above which [`Limiter::Soft`] starts to compress.
pub const SOFT_KNEE: i32 = 24576;

/// Saturates a 32-bit sum to i16.
#[inline]
pub(crate) fn saturate(v: i32) -> i16 {
    v.clamp(i16::MIN as i32, i16::MAX as i32) as i16
}

/// Soft-knee limiter: identity for |v| <= SOFT_KNEE, above it
/// `knee + r·e / (e + r)` with `e = |v| - knee`, `r = 32767 - knee`. The curve
/// has slope 1 at the knee (no corner), is monotonic and never reaches ±32768.
#[inline]
fn soft_limit(v: i32) -> i16 {
    let mag = v.unsigned_abs() as i64;
    let knee = SOFT_KNEE as i64;
    if mag <= knee {
        return v as i16;
    }
    let r = i16::MAX as i64 - knee;
    let e = mag - knee;
    let y = (knee + r * e / (e + r)) as i16; // < 32767 for any finite e
    if v < 0 {
        -y
    } else {
        y
    }
}

/// Conference mixer for frames of a fixed length.
///
/// Per frame: every present input is added once into an i32 accumulator; each
/// participant's output is the accumulator minus their own input (so nobody
/// hears themselves), limited back to i16. Cost is O(N × frame) whatever N.
/// Buffers are allocated once; `mix` does not allocate once the output
/// vectors have reached frame capacity.
#[derive(Debug, Clone)]
pub struct Mixer {
    frame_samples: usize,
    limiter: Limiter,
    acc: Vec<i32>,
    full: Vec<i16>,
}

impl Mixer {
    /// A mixer for frames of `frame_samples` samples (e.g. 160 for 20 ms at 8 kHz).
    pub fn new(frame_samples: usize) -> Self {
        Mixer {
            frame_samples,
            limiter: Limiter::Hard,
            acc: vec![0; frame_samples],
            full: vec![0; frame_samples],
        }
    }

    /// Same mixer with another limiter.
    pub fn with_limiter(mut self, limiter: Limiter) -> Self {
        self.limiter = limiter;
        self
    }

    pub fn set_limiter(&mut self, limiter: Limiter) {
        self.limiter = limiter;
    }

    pub fn limiter(&self) -> Limiter {
        self.limiter
    }

    pub fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    /// Mixes one frame. `inputs[i]` is participant i's frame, `None` when they
    /// are silent or absent (muted, lost packet, listen-only). `outputs[i]` is
    /// replaced by what participant i hears: the sum of everybody else. An
    /// absent participant hears the full mix.
    ///
    /// Errors (nothing is written): `outputs.len() != inputs.len()`, more than
    /// [`MAX_PARTICIPANTS`], or an input whose length is not `frame_samples`.
    pub fn mix(&mut self, inputs: &[Option<&[i16]>], outputs: &mut [Vec<i16>]) -> Result<()> {
        if inputs.len() > MAX_PARTICIPANTS {
            return Err(Error::invalid(format!(
                "mixer: {} participants, at most {MAX_PARTICIPANTS}",
                inputs.len()
            )));
        }
        if outputs.len() != inputs.len() {
            return Err(Error::invalid(format!(
                "mixer: {} inputs but {} outputs",
                inputs.len(),
                outputs.len()
            )));
        }
        for (i, frame) in inputs.iter().enumerate() {
            if let Some(f) = frame {
                if f.len() != self.frame_samples {
                    return Err(Error::invalid(format!(
                        "mixer: participant {i} frame has {} samples, expected {}",
                        f.len(),
                        self.frame_samples
                    )));
                }
            }
        }

        self.acc.fill(0);
        for f in inputs.iter().flatten() {
            for (a, &s) in self.acc.iter_mut().zip(f.iter()) {
                *a += s as i32;
            }
        }
        match self.limiter {
            Limiter::Hard => self.render(inputs, outputs, saturate),
            Limiter::Soft => self.render(inputs, outputs, soft_limit),
        }
        Ok(())
    }

    /// Limits the accumulator into `full` and every "all but me" output.
    /// Monomorphised per limiter so the inner loops carry no branch on it.
    fn render<L: Fn(i32) -> i16>(&mut self, inputs: &[Option<&[i16]>], outputs: &mut [Vec<i16>], limit: L) {
        for (d, &a) in self.full.iter_mut().zip(self.acc.iter()) {
            *d = limit(a);
        }
        for (frame, out) in inputs.iter().zip(outputs.iter_mut()) {
            out.clear();
            match frame {
                None => out.extend_from_slice(&self.full),
                Some(own) => out.extend(
                    self.acc
                        .iter()
                        .zip(own.iter())
                        .map(|(&a, &s)| limit(a - s as i32)),
                ),
            }
        }
    }

    /// The full mix (everybody) of the last [`Mixer::mix`] call, e.g. for
    /// recording the conference. Silence before the first call.
    pub fn full_mix(&self) -> &[i16] {
        &self.full
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn outs(n: usize) -> Vec<Vec<i16>> {
        vec![Vec::new(); n]
    }

    #[test]
    fn three_participants_hear_the_other_two() {
        let a = [100i16, -200, 300, 0];
        let b = [10i16, 20, -30, 7];
        let c = [1i16, 2, 3, -4];
        let mut m = Mixer::new(4);
        let mut o = outs(3);
        m.mix(&[Some(&a), Some(&b), Some(&c)], &mut o).unwrap();
        assert_eq!(o[0], vec![11, 22, -27, 3]);
        assert_eq!(o[1], vec![101, -198, 303, -4]);
        assert_eq!(o[2], vec![110, -180, 270, 7]);
        assert_eq!(m.full_mix(), &[111, -178, 273, 3]);
    }

    #[test]
    fn saturates_at_both_ends_instead_of_wrapping() {
        let hi = [i16::MAX; 3];
        let lo = [i16::MIN; 3];
        let mut m = Mixer::new(3);
        let mut o = outs(4);
        // Listener 3 (absent) hears hi + hi: would wrap to -2 without saturation.
        m.mix(&[Some(&hi), Some(&hi), Some(&lo), None], &mut o).unwrap();
        assert_eq!(o[0], vec![-1; 3]); // 32767 - 32768
        assert_eq!(o[2], vec![i16::MAX; 3]); // 65534 clipped
        assert_eq!(m.full_mix(), &[32766; 3]);
        m.mix(&[Some(&lo), Some(&lo), None, None], &mut o).unwrap();
        assert_eq!(o[3], vec![i16::MIN; 3]); // -65536 clipped, not 0
        assert_eq!(o[0], vec![i16::MIN; 3]);
    }

    #[test]
    fn absent_and_no_participants() {
        let a = [5i16; 2];
        let mut m = Mixer::new(2);
        let mut o = outs(3);
        m.mix(&[None, Some(&a), None], &mut o).unwrap();
        assert_eq!(o, vec![vec![5, 5], vec![0, 0], vec![5, 5]]);
        m.mix(&[None, None, None], &mut o).unwrap();
        assert_eq!(o, vec![vec![0, 0]; 3]);
        let mut none: Vec<Vec<i16>> = Vec::new();
        m.mix(&[], &mut none).unwrap();
        assert_eq!(m.full_mix(), &[0, 0]);
        // A lone speaker hears silence, not themselves.
        let mut one = outs(1);
        m.mix(&[Some(&a)], &mut one).unwrap();
        assert_eq!(one[0], vec![0, 0]);
    }

    #[test]
    fn wrong_lengths_are_errors_and_touch_nothing() {
        let mut m = Mixer::new(160);
        let good = [1i16; 160];
        let short = [1i16; 80];
        let mut o = vec![vec![9i16]; 2];
        let e = m.mix(&[Some(&good), Some(&short)], &mut o).unwrap_err();
        assert!(
            e.to_string()
                .contains("participant 1 frame has 80 samples, expected 160"),
            "{e}"
        );
        assert_eq!(o, vec![vec![9i16]; 2]);
        let e = m.mix(&[Some(&good)], &mut o).unwrap_err();
        assert!(e.to_string().contains("1 inputs but 2 outputs"), "{e}");
        let many = vec![None; MAX_PARTICIPANTS + 1];
        let mut mo = outs(MAX_PARTICIPANTS + 1);
        assert!(m.mix(&many, &mut mo).is_err());
    }

    #[test]
    fn sixty_four_participants() {
        let frames: Vec<Vec<i16>> = (0..64).map(|i| vec![i as i16 * 10; 8]).collect();
        let inputs: Vec<Option<&[i16]>> = frames.iter().map(|f| Some(f.as_slice())).collect();
        let mut m = Mixer::new(8);
        let mut o = outs(64);
        m.mix(&inputs, &mut o).unwrap();
        let total: i32 = (0..64).map(|i| i * 10).sum();
        for (i, out) in o.iter().enumerate() {
            assert_eq!(out, &vec![(total - i as i32 * 10) as i16; 8]);
        }
    }

    #[test]
    fn soft_limiter_compresses_instead_of_clipping() {
        // Identity below the knee.
        for v in [-SOFT_KNEE, -1000, 0, 1000, SOFT_KNEE] {
            assert_eq!(soft_limit(v) as i32, v);
        }
        // Monotonic, symmetric, strictly inside full scale above it.
        let mut prev = soft_limit(SOFT_KNEE);
        for v in (SOFT_KNEE + 1..=32768 * 64).step_by(97) {
            let y = soft_limit(v);
            assert!(y >= prev && y < i16::MAX, "v={v} y={y} prev={prev}");
            assert_eq!(soft_limit(-v), -y);
            prev = y;
        }
        // Two loud talkers: 20000 + 20000 is not flattened to 32767.
        let a = [20000i16, 10000];
        let mut m = Mixer::new(2).with_limiter(Limiter::Soft);
        let mut o = outs(3);
        m.mix(&[Some(&a), Some(&a), None], &mut o).unwrap();
        assert!(o[2][0] > SOFT_KNEE as i16 && o[2][0] < i16::MAX, "{}", o[2][0]);
        assert_eq!(o[2][1], 20000); // below the knee: untouched
        assert_eq!(o[0], vec![20000, 10000]);
    }

    proptest! {
        #[test]
        fn every_output_is_the_saturated_sum_of_the_others(
            frames in proptest::collection::vec(
                proptest::option::of(proptest::collection::vec(any::<i16>(), 6)), 0..10),
        ) {
            let inputs: Vec<Option<&[i16]>> = frames.iter().map(|f| f.as_deref()).collect();
            let mut m = Mixer::new(6);
            let mut o = outs(inputs.len());
            m.mix(&inputs, &mut o).unwrap();
            for i in 0..6 {
                let total: i32 = frames.iter().flatten().map(|f| f[i] as i32).sum();
                prop_assert_eq!(m.full_mix()[i], saturate(total));
                for (p, f) in frames.iter().enumerate() {
                    let own = f.as_ref().map_or(0, |f| f[i] as i32);
                    prop_assert_eq!(o[p][i], saturate(total - own));
                }
            }
        }
    }
}
