//! Two-leg call recording on one real-time timeline.
//!
//! Each leg's decoded PCM is pushed with its position on the recording
//! timeline (in samples, at the recording's rate). The recorder drains the
//! timeline up to a caller-chosen position: every timeline sample is emitted
//! exactly once, and samples no one pushed come out as silence, so the
//! recording keeps real time across packet loss, hold or a silent leg.
//!
//! Memory is one ring of `max_lag_samples` per leg: a push may reach at most
//! that far beyond the drained position.

use super::saturate;
use crate::error::{Error, Result};

/// Largest lag window, in seconds of audio at the recording rate.
pub const MAX_LAG_SECONDS: usize = 60;
/// Largest span one [`RecordingMixer::drain`] call may cover, in seconds.
pub const MAX_DRAIN_SECONDS: u64 = 60;
/// Highest recording sample rate accepted.
const MAX_SAMPLE_RATE: u32 = 384_000;

/// Channel layout of the recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One channel: A + B with saturation.
    Mono,
    /// Two interleaved channels: left = A, right = B.
    Stereo,
}

impl Layout {
    pub fn channels(self) -> u16 {
        match self {
            Layout::Mono => 1,
            Layout::Stereo => 2,
        }
    }
}

/// One side of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    A,
    B,
}

impl Leg {
    fn index(self) -> usize {
        match self {
            Leg::A => 0,
            Leg::B => 1,
        }
    }
}

/// Counters for one leg, all in samples (per channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LegStats {
    /// Samples accepted into the timeline (late parts excluded).
    pub samples_written: u64,
    /// Accepted samples that replaced an earlier push at the same position.
    pub samples_overwritten: u64,
    /// Samples that arrived for positions already drained, dropped.
    pub late_samples_dropped: u64,
    /// Drained timeline samples for which the leg had pushed nothing.
    pub silence_samples_inserted: u64,
    /// Samples of pushes rejected for reaching beyond the lag window.
    pub samples_rejected: u64,
}

/// Ring of not-yet-drained samples for one leg. Slot of timeline position t
/// is `t % capacity`; every stored position lies in `[drained, drained + capacity)`,
/// so slots never collide. Drained slots are zeroed and marked absent.
#[derive(Debug, Clone)]
struct LegRing {
    pcm: Vec<i16>,
    present: Vec<bool>,
    stats: LegStats,
}

/// Mixes two call legs into a real-time recording (mono sum or stereo A/B).
#[derive(Debug, Clone)]
pub struct RecordingMixer {
    sample_rate: u32,
    layout: Layout,
    window: usize,
    drained: u64,
    legs: [LegRing; 2],
}

impl RecordingMixer {
    /// `max_lag_samples`: how far beyond the drained position a push may
    /// reach (the ring size per leg), 1 ..= [`MAX_LAG_SECONDS`] of audio.
    /// Pick it larger than the jitter buffer delay plus a few frames.
    pub fn new(sample_rate: u32, layout: Layout, max_lag_samples: usize) -> Result<Self> {
        if sample_rate == 0 || sample_rate > MAX_SAMPLE_RATE {
            return Err(Error::invalid(format!(
                "recording mixer: sample rate {sample_rate} not in 1..={MAX_SAMPLE_RATE}"
            )));
        }
        let max_window = sample_rate as usize * MAX_LAG_SECONDS;
        if max_lag_samples == 0 || max_lag_samples > max_window {
            return Err(Error::invalid(format!(
                "recording mixer: max lag {max_lag_samples} samples not in 1..={max_window}"
            )));
        }
        let ring = LegRing {
            pcm: vec![0; max_lag_samples],
            present: vec![false; max_lag_samples],
            stats: LegStats::default(),
        };
        Ok(RecordingMixer {
            sample_rate,
            layout,
            window: max_lag_samples,
            drained: 0,
            legs: [ring.clone(), ring],
        })
    }

    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    pub fn max_lag_samples(&self) -> usize {
        self.window
    }

    /// Timeline position up to which output has been drained (exclusive).
    pub fn position(&self) -> u64 {
        self.drained
    }

    pub fn stats(&self, leg: Leg) -> LegStats {
        self.legs[leg.index()].stats
    }

    /// Places `pcm` on `leg` at timeline positions `at_sample ..`.
    ///
    /// The part before [`position`](Self::position) is late: dropped and
    /// counted. A later push on the same positions overwrites. A push that
    /// would end beyond `position + max_lag_samples` is rejected whole
    /// (error, nothing stored, counted) to keep memory bounded.
    pub fn push(&mut self, leg: Leg, at_sample: u64, pcm: &[i16]) -> Result<()> {
        let window = self.window;
        let limit = self.drained.saturating_add(window as u64);
        let ring = &mut self.legs[leg.index()];
        let end = at_sample.checked_add(pcm.len() as u64).filter(|&e| e <= limit);
        if end.is_none() {
            ring.stats.samples_rejected += pcm.len() as u64;
            return Err(Error::invalid(format!(
                "recording mixer: push of {} samples at {at_sample} reaches beyond {limit} \
                 (drained {} + max lag {window})",
                pcm.len(),
                self.drained
            )));
        }
        // Both bounds below are < pcm.len() resp. <= window, checked above.
        let late = self.drained.saturating_sub(at_sample).min(pcm.len() as u64) as usize;
        ring.stats.late_samples_dropped += late as u64;
        let fresh = pcm.get(late..).unwrap_or(&[]);
        let start = at_sample.max(self.drained);
        let slot = (start % window as u64) as usize;
        let first = fresh.len().min(window - slot);
        let (head, tail) = fresh.split_at(first);
        ring.store(slot, head);
        ring.store(0, tail);
        ring.stats.samples_written += fresh.len() as u64;
        Ok(())
    }

    /// Appends the timeline from [`position`](Self::position) up to
    /// `up_to_sample` (exclusive) to `out` and advances the position:
    /// `(up_to_sample - position) × channels` samples, interleaved L=A, R=B
    /// for stereo, saturated A+B for mono; unpushed samples are silence.
    /// `up_to_sample <= position` appends nothing. A span over
    /// [`MAX_DRAIN_SECONDS`] is an error (nothing drained): drain in pieces.
    pub fn drain(&mut self, up_to_sample: u64, out: &mut Vec<i16>) -> Result<()> {
        if up_to_sample <= self.drained {
            return Ok(());
        }
        let span = up_to_sample - self.drained;
        let max_span = self.sample_rate as u64 * MAX_DRAIN_SECONDS;
        if span > max_span {
            return Err(Error::invalid(format!(
                "recording mixer: drain of {span} samples exceeds {max_span} ({MAX_DRAIN_SECONDS} s)"
            )));
        }
        out.reserve(span as usize * self.layout.channels() as usize);
        let mut pos = self.drained;
        while pos < up_to_sample {
            let slot = (pos % self.window as u64) as usize;
            let n = (self.window - slot).min((up_to_sample - pos) as usize);
            let [a, b] = &mut self.legs;
            let (sa, sb) = (a.take(slot, n), b.take(slot, n));
            match self.layout {
                Layout::Mono => {
                    out.extend(
                        sa.iter()
                            .zip(sb.iter())
                            .map(|(&x, &y)| saturate(x as i32 + y as i32)),
                    );
                }
                Layout::Stereo => {
                    for (&x, &y) in sa.iter().zip(sb.iter()) {
                        out.push(x);
                        out.push(y);
                    }
                }
            }
            a.clear(slot, n);
            b.clear(slot, n);
            pos += n as u64;
        }
        self.drained = up_to_sample;
        Ok(())
    }
}

impl LegRing {
    /// Copies `pcm` into slots `slot ..`, counting overwrites. Caller keeps
    /// `slot + pcm.len() <= capacity`.
    fn store(&mut self, slot: usize, pcm: &[i16]) {
        let end = slot + pcm.len();
        if let (Some(dst), Some(present)) = (self.pcm.get_mut(slot..end), self.present.get_mut(slot..end)) {
            dst.copy_from_slice(pcm);
            self.stats.samples_overwritten += present.iter().filter(|&&p| p).count() as u64;
            present.fill(true);
        }
    }

    /// Slots `slot .. slot + n` for output (absent ones hold zero), counting
    /// the absent ones as inserted silence.
    fn take(&mut self, slot: usize, n: usize) -> &[i16] {
        let present = self.present.get(slot..slot + n).unwrap_or(&[]);
        self.stats.silence_samples_inserted += present.iter().filter(|&&p| !p).count() as u64;
        self.pcm.get(slot..slot + n).unwrap_or(&[])
    }

    /// Marks slots `slot .. slot + n` drained: zero and absent.
    fn clear(&mut self, slot: usize, n: usize) {
        if let Some(s) = self.pcm.get_mut(slot..slot + n) {
            s.fill(0);
        }
        if let Some(s) = self.present.get_mut(slot..slot + n) {
            s.fill(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RATE: u32 = 8000;
    const FRAME: usize = 160;

    fn tone(freq: f64, start: usize, n: usize, amp: f64) -> Vec<i16> {
        (start..start + n)
            .map(|i| (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / RATE as f64).sin()) as i16)
            .collect()
    }

    /// Power at `freq` by the Goertzel recurrence, normalised by length².
    fn goertzel(x: &[i16], freq: f64) -> f64 {
        let w = 2.0 * std::f64::consts::PI * freq / RATE as f64;
        let c = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &v in x {
            let s0 = v as f64 + c * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        (s1 * s1 + s2 * s2 - c * s1 * s2) / (x.len() as f64).powi(2)
    }

    fn channel(inter: &[i16], ch: usize) -> Vec<i16> {
        inter.iter().skip(ch).step_by(2).copied().collect()
    }

    /// Records `frames` 20 ms frames of 300 Hz on A and 1 kHz on B, skipping
    /// A's frames for which `skip_a(frame)`; drains every 3 frames.
    fn record_tones(frames: usize, skip_a: impl Fn(usize) -> bool) -> (RecordingMixer, Vec<i16>) {
        let mut r = RecordingMixer::new(RATE, Layout::Stereo, 4 * FRAME).unwrap();
        let mut out = Vec::new();
        for f in 0..frames {
            let at = (f * FRAME) as u64;
            if !skip_a(f) {
                r.push(Leg::A, at, &tone(300.0, f * FRAME, FRAME, 8000.0))
                    .unwrap();
            }
            r.push(Leg::B, at, &tone(1000.0, f * FRAME, FRAME, 8000.0))
                .unwrap();
            if f % 3 == 2 {
                r.drain(at + FRAME as u64, &mut out).unwrap();
            }
        }
        r.drain((frames * FRAME) as u64, &mut out).unwrap();
        (r, out)
    }

    #[test]
    fn stereo_keeps_each_leg_in_its_channel() {
        let (r, out) = record_tones(50, |_| false);
        assert_eq!(out.len(), 50 * FRAME * 2);
        let (left, right) = (channel(&out, 0), channel(&out, 1));
        let (l300, l1k) = (goertzel(&left, 300.0), goertzel(&left, 1000.0));
        let (r300, r1k) = (goertzel(&right, 300.0), goertzel(&right, 1000.0));
        assert!(l300 > 1e6 && l300 > 1e4 * l1k, "left: 300 Hz {l300}, 1 kHz {l1k}");
        assert!(r1k > 1e6 && r1k > 1e4 * r300, "right: 300 Hz {r300}, 1 kHz {r1k}");
        assert_eq!(left, tone(300.0, 0, 50 * FRAME, 8000.0));
        for leg in [Leg::A, Leg::B] {
            let s = r.stats(leg);
            assert_eq!(s.samples_written, 50 * FRAME as u64);
            assert_eq!(s.silence_samples_inserted, 0);
        }
    }

    #[test]
    fn missing_frames_become_silence_and_time_is_kept() {
        let frames = 200;
        let lost = |f: usize| f % 20 == 7; // 5 %
        let (r, out) = record_tones(frames, lost);
        assert_eq!(out.len(), frames * FRAME * 2, "drained length must be real time");
        let left = channel(&out, 0);
        let right = channel(&out, 1);
        for f in 0..frames {
            let seg = &left[f * FRAME..(f + 1) * FRAME];
            if lost(f) {
                assert!(seg.iter().all(|&s| s == 0), "frame {f} should be silent");
            } else {
                assert_eq!(seg, tone(300.0, f * FRAME, FRAME, 8000.0).as_slice(), "frame {f}");
            }
        }
        assert_eq!(right, tone(1000.0, 0, frames * FRAME, 8000.0));
        let a = r.stats(Leg::A);
        assert_eq!(a.silence_samples_inserted, (frames / 20 * FRAME) as u64);
        assert_eq!(a.samples_written, ((frames - frames / 20) * FRAME) as u64);
        assert_eq!(r.stats(Leg::B).silence_samples_inserted, 0);
    }

    #[test]
    fn late_pushes_are_trimmed() {
        let mut r = RecordingMixer::new(RATE, Layout::Mono, 1000).unwrap();
        let mut out = Vec::new();
        r.drain(100, &mut out).unwrap();
        let pcm: Vec<i16> = (1..=40).collect();
        r.push(Leg::A, 80, &pcm).unwrap(); // 80..100 late, 100..120 kept
        r.push(Leg::B, 10, &pcm).unwrap(); // entirely late
        out.clear();
        r.drain(130, &mut out).unwrap();
        let want: Vec<i16> = (21..=40).chain(std::iter::repeat_n(0, 10)).collect();
        assert_eq!(out, want);
        let a = r.stats(Leg::A);
        assert_eq!((a.late_samples_dropped, a.samples_written), (20, 20));
        let b = r.stats(Leg::B);
        assert_eq!((b.late_samples_dropped, b.samples_written), (40, 0));
        assert_eq!(b.silence_samples_inserted, 130);
    }

    #[test]
    fn mono_sum_saturates() {
        let mut r = RecordingMixer::new(RATE, Layout::Mono, 100).unwrap();
        r.push(Leg::A, 0, &[30000, -30000, 1000, i16::MIN]).unwrap();
        r.push(Leg::B, 0, &[30000, -30000, -3000, i16::MIN]).unwrap();
        let mut out = Vec::new();
        r.drain(5, &mut out).unwrap();
        assert_eq!(out, vec![i16::MAX, i16::MIN, -2000, i16::MIN, 0]);
    }

    #[test]
    fn pushes_beyond_the_window_are_rejected_whole() {
        let mut r = RecordingMixer::new(RATE, Layout::Stereo, 320).unwrap();
        let pcm = [7i16; 160];
        r.push(Leg::A, 160, &pcm).unwrap(); // ends exactly at the window edge
        let e = r.push(Leg::A, 161, &pcm).unwrap_err();
        assert!(e.to_string().contains("beyond 320"), "{e}");
        assert!(r.push(Leg::B, u64::MAX - 10, &pcm).is_err()); // no overflow
        assert_eq!(r.stats(Leg::A).samples_rejected, 160);
        assert_eq!(r.stats(Leg::B).samples_rejected, 160);
        let mut out = Vec::new();
        r.drain(320, &mut out).unwrap();
        assert!(out[..320].iter().all(|&s| s == 0));
        assert!(channel(&out[320..], 0).iter().all(|&s| s == 7));
        // After draining, the window has moved on.
        r.push(Leg::A, 600, &pcm[..40]).unwrap();
    }

    #[test]
    fn overlapping_pushes_overwrite_and_ring_wraps() {
        let mut r = RecordingMixer::new(RATE, Layout::Stereo, 8).unwrap();
        let mut out = Vec::new();
        r.drain(5, &mut out).unwrap(); // ring now wraps at slot 5
        r.push(Leg::A, 5, &[1, 2, 3, 4, 5, 6]).unwrap();
        r.push(Leg::A, 7, &[30, 40]).unwrap();
        out.clear();
        r.drain(13, &mut out).unwrap();
        assert_eq!(channel(&out, 0), vec![1, 2, 30, 40, 5, 6, 0, 0]);
        assert_eq!(channel(&out, 1), vec![0; 8]);
        let a = r.stats(Leg::A);
        assert_eq!((a.samples_written, a.samples_overwritten), (8, 2));
        assert_eq!(a.silence_samples_inserted, 5 + 2);
    }

    #[test]
    fn drains_longer_than_the_window_backwards_and_too_long() {
        let mut r = RecordingMixer::new(RATE, Layout::Mono, 10).unwrap();
        r.push(Leg::A, 0, &[1; 10]).unwrap();
        let mut out = Vec::new();
        r.drain(25, &mut out).unwrap();
        assert_eq!(out.len(), 25);
        assert_eq!(out.iter().filter(|&&s| s == 1).count(), 10);
        r.drain(20, &mut out).unwrap(); // backwards: nothing
        assert_eq!((out.len(), r.position()), (25, 25));
        assert!(r
            .drain(25 + RATE as u64 * MAX_DRAIN_SECONDS + 1, &mut out)
            .is_err());
        assert_eq!((out.len(), r.position()), (25, 25));
    }

    #[test]
    fn bad_construction() {
        assert!(RecordingMixer::new(0, Layout::Mono, 10).is_err());
        assert!(RecordingMixer::new(RATE, Layout::Mono, 0).is_err());
        assert!(RecordingMixer::new(RATE, Layout::Mono, RATE as usize * MAX_LAG_SECONDS + 1).is_err());
    }

    proptest! {
        #[test]
        fn output_is_always_real_time(
            ops in proptest::collection::vec(
                (any::<bool>(), 0u64..3000, proptest::collection::vec(any::<i16>(), 0..300)), 0..60),
            stereo in any::<bool>(),
        ) {
            let layout = if stereo { Layout::Stereo } else { Layout::Mono };
            let mut r = RecordingMixer::new(RATE, layout, 500).unwrap();
            let mut out = Vec::new();
            for (is_drain, pos, pcm) in ops {
                if is_drain {
                    r.drain(pos, &mut out).unwrap();
                } else {
                    let leg = if pcm.len() % 2 == 0 { Leg::A } else { Leg::B };
                    let _ = r.push(leg, pos, &pcm);
                }
                prop_assert_eq!(out.len() as u64, r.position() * layout.channels() as u64);
            }
            for leg in [Leg::A, Leg::B] {
                let s = r.stats(leg);
                prop_assert!(s.silence_samples_inserted <= r.position());
                prop_assert!(s.samples_written - s.samples_overwritten + s.silence_samples_inserted
                    >= r.position());
            }
        }
    }
}
