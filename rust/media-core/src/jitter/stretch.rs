//! Time-scale modification of one decoded frame, used by the jitter buffer
//! to shrink or grow its delay without gaps.
//!
//! Three methods, chosen per frame:
//! * **silent frames** (low energy): a segment of up to half the frame is
//!   cut out or repeated with a cross-fade; nobody hears it;
//! * **periodic frames** (voiced speech, tones): exactly one period `L`
//!   (lag of maximal normalized autocorrelation, 2.5..15 ms) is removed or
//!   repeated: the segment `x[0..L]` is cross-faded into `x[L..2L]`. Since
//!   both segments are alike, the waveform stays continuous and the pitch
//!   is untouched;
//! * **other frames**, and all non-silent frames when the caller only wants
//!   a small correction: a few samples (1% of the frame) are removed or
//!   added by linear-interpolation resampling of the whole frame — a pitch
//!   change far below audibility, plenty to follow sender clock drift.
//!
//! All functions work on interleaved PCM with `ch` channels; lengths are in
//! samples per channel.

/// Frames with an RMS below this are treated as silence.
pub(super) const SILENCE_RMS: f64 = 100.0;
/// Minimum normalized correlation for a period to be cut or repeated.
pub(super) const MIN_CORRELATION: f64 = 0.7;
/// Shortest and longest period searched (ms): 400 Hz down to 67 Hz.
const MIN_LAG_MS: u32 = 2;
const MAX_LAG_MS: u32 = 15;

/// How a frame was changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Method {
    Silence,
    Period,
    Resample,
}

/// Limits for one operation, in samples per channel.
pub(super) struct Limits {
    /// Most samples the caller wants removed (or inserted).
    pub want: usize,
    /// Most samples a period cut may remove (the shrink-rate budget).
    pub period_budget: usize,
    /// Whether whole periods may be cut or repeated; without, non-silent
    /// frames only get the tiny resampling step.
    pub allow_period: bool,
}

fn mono_at(x: &[i16], ch: usize, i: usize) -> f64 {
    x[i * ch..(i + 1) * ch].iter().map(|&s| f64::from(s)).sum::<f64>()
}

fn rms(x: &[i16]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / x.len() as f64).sqrt()
}

/// The lag in `lo..=hi` whose segments `x[0..L]` and `x[L..2L]` correlate
/// best, with that normalized correlation.
fn best_lag(x: &[i16], ch: usize, lo: usize, hi: usize) -> Option<(usize, f64)> {
    let mut best: Option<(usize, f64)> = None;
    for lag in lo..=hi {
        let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
        for i in 0..lag {
            let a = mono_at(x, ch, i);
            let b = mono_at(x, ch, i + lag);
            ab += a * b;
            aa += a * a;
            bb += b * b;
        }
        if aa <= 0.0 || bb <= 0.0 {
            continue;
        }
        let c = ab / (aa * bb).sqrt();
        // Prefer the shorter lag unless a longer one is clearly better
        // (multiples of the period correlate about as well).
        if best.is_none_or(|(_, bc)| c > bc + 0.01) {
            best = Some((lag, c));
        }
    }
    best
}

/// Appends `x` with `x[0..lag]` cross-faded into `x[lag..2lag]` (removes `lag`).
fn cut(x: &[i16], ch: usize, lag: usize, out: &mut Vec<i16>) {
    for i in 0..lag {
        let w = (i + 1) as f64 / (lag + 1) as f64;
        for c in 0..ch {
            let a = f64::from(x[i * ch + c]);
            let b = f64::from(x[(i + lag) * ch + c]);
            out.push((a * (1.0 - w) + b * w).round() as i16);
        }
    }
    out.extend_from_slice(&x[2 * lag * ch..]);
}

/// Appends `x` with `x[0..lag]` played twice: after the first time, a
/// cross-fade from `x[lag..2lag]` into `x[0..lag]` leads back to the start
/// of the period (inserts `lag`).
fn repeat(x: &[i16], ch: usize, lag: usize, out: &mut Vec<i16>) {
    out.extend_from_slice(&x[..lag * ch]);
    for i in 0..lag {
        let w = (i + 1) as f64 / (lag + 1) as f64;
        for c in 0..ch {
            let a = f64::from(x[(i + lag) * ch + c]);
            let b = f64::from(x[i * ch + c]);
            out.push((a * (1.0 - w) + b * w).round() as i16);
        }
    }
    out.extend_from_slice(&x[lag * ch..]);
}

/// Appends `x` resampled by linear interpolation to `m` samples per channel.
fn resample(x: &[i16], ch: usize, m: usize, out: &mut Vec<i16>) {
    let n = x.len() / ch;
    if n < 2 || m < 2 {
        out.extend_from_slice(x);
        return;
    }
    let step = (n - 1) as f64 / (m - 1) as f64;
    for j in 0..m {
        let t = j as f64 * step;
        let i = (t as usize).min(n - 2);
        let f = t - i as f64;
        for c in 0..ch {
            let a = f64::from(x[i * ch + c]);
            let b = f64::from(x[(i + 1) * ch + c]);
            out.push((a + (b - a) * f).round() as i16);
        }
    }
}

/// Shortens (`shrink`) or lengthens the frame `x`, appending the result to
/// `out`. Returns how many samples per channel were removed or inserted and
/// how; `None` (frame copied unchanged) when no method applies.
pub(super) fn stretch(
    x: &[i16],
    ch: usize,
    rate: u32,
    shrink: bool,
    lim: Limits,
    out: &mut Vec<i16>,
) -> Option<(usize, Method)> {
    let n = x.len() / ch.max(1);
    let result = plan(x, ch, rate, shrink, &lim, n);
    match result {
        Some((k, Method::Silence | Method::Period)) if shrink => cut(x, ch, k, out),
        Some((k, Method::Silence | Method::Period)) => repeat(x, ch, k, out),
        Some((k, Method::Resample)) => resample(x, ch, if shrink { n - k } else { n + k }, out),
        None => out.extend_from_slice(x),
    }
    result
}

fn plan(x: &[i16], ch: usize, rate: u32, shrink: bool, lim: &Limits, n: usize) -> Option<(usize, Method)> {
    if ch == 0 || lim.want == 0 || n < 8 || x.len() != n * ch {
        return None;
    }
    if rms(x) < SILENCE_RMS {
        let k = lim.want.min(n / 2);
        return (k > 0).then_some((k, Method::Silence));
    }
    let per_ms = (rate / 1000).max(1) as usize;
    let lo = (MIN_LAG_MS as usize * per_ms + per_ms / 2).max(2); // 2.5 ms
    let hi = (MAX_LAG_MS as usize * per_ms).min(n / 2);
    // A period cut may overshoot the wish a little: never by more than a
    // third of the period, so repeated corrections converge.
    let cap = if shrink {
        lim.want.min(lim.period_budget)
    } else {
        lim.want
    };
    let hi = hi.min(cap + cap / 2);
    if lim.allow_period && lo <= hi {
        if let Some((lag, c)) = best_lag(x, ch, lo, hi) {
            if c >= MIN_CORRELATION {
                return Some((lag, Method::Period));
            }
        }
    }
    let k = lim.want.min((n / 100).max(1));
    Some((k, Method::Resample))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, n: usize, amp: f64) -> Vec<i16> {
        (0..n)
            .map(|i| (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / 8000.0).sin()) as i16)
            .collect()
    }

    fn max_step(x: &[i16]) -> i32 {
        x.windows(2)
            .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
            .max()
            .unwrap_or(0)
    }

    fn lim(want: usize) -> Limits {
        Limits {
            want,
            period_budget: want,
            allow_period: true,
        }
    }

    #[test]
    fn period_cut_on_a_tone_stays_smooth() {
        let x = sine(440.0, 160, 8000.0);
        let mut out = Vec::new();
        let (k, m) = stretch(&x, 1, 8000, true, lim(40), &mut out).unwrap();
        assert_eq!(m, Method::Period);
        // Two periods of 440 Hz at 8 kHz are 36.4 samples.
        assert_eq!(k, 36);
        assert_eq!(out.len(), 160 - 36);
        // The waveform stays a clean tone: no step larger than the tone's own.
        assert!(
            max_step(&out) <= max_step(&x) + 60,
            "{} vs {}",
            max_step(&out),
            max_step(&x)
        );
    }

    #[test]
    fn period_repeat_on_a_tone_stays_smooth() {
        let x = sine(200.0, 160, 8000.0);
        let mut out = Vec::new();
        let (k, m) = stretch(&x, 1, 8000, false, lim(60), &mut out).unwrap();
        assert_eq!(m, Method::Period);
        assert_eq!(k, 40); // one period of 200 Hz
        assert_eq!(out.len(), 200);
        assert!(max_step(&out) <= max_step(&x) + 60);
    }

    #[test]
    fn silence_is_cut_generously() {
        let x = vec![3i16; 160];
        let mut out = Vec::new();
        assert_eq!(
            stretch(&x, 1, 8000, true, lim(500), &mut out),
            Some((80, Method::Silence))
        );
        assert_eq!(out.len(), 80);
    }

    #[test]
    fn noise_gets_a_tiny_resample() {
        let mut s = 12345u32;
        let x: Vec<i16> = (0..160)
            .map(|_| {
                s = s.wrapping_mul(1103515245).wrapping_add(12345);
                ((s >> 16) as i16) / 4
            })
            .collect();
        let mut out = Vec::new();
        let (k, m) = stretch(&x, 1, 8000, true, lim(30), &mut out).unwrap();
        assert_eq!((k, m), (1, Method::Resample));
        assert_eq!(out.len(), 159);
        assert_eq!(out[0], x[0]);
        assert_eq!(out[158], x[159]);
    }

    #[test]
    fn stereo_keeps_channels_apart() {
        let l = sine(440.0, 160, 8000.0);
        let x: Vec<i16> = l.iter().flat_map(|&s| [s, -s]).collect();
        let mut out = Vec::new();
        let (k, _) = stretch(&x, 2, 8000, true, lim(40), &mut out).unwrap();
        assert_eq!(out.len(), 2 * (160 - k));
        assert!(out
            .chunks(2)
            .all(|p| (i32::from(p[0]) + i32::from(p[1])).abs() <= 1));
    }

    #[test]
    fn budget_and_small_wishes_are_respected() {
        let x = sine(440.0, 160, 8000.0);
        let mut out = Vec::new();
        // No period fits a 5-sample wish: fall back to resampling.
        assert_eq!(
            stretch(&x, 1, 8000, true, lim(5), &mut out),
            Some((1, Method::Resample))
        );
        out.clear();
        let l = Limits {
            want: 40,
            period_budget: 0,
            allow_period: true,
        };
        assert_eq!(
            stretch(&x, 1, 8000, true, l, &mut out).map(|r| r.1),
            Some(Method::Resample)
        );
        out.clear();
        let l = Limits {
            want: 40,
            period_budget: 40,
            allow_period: false,
        };
        assert_eq!(
            stretch(&x, 1, 8000, false, l, &mut out).map(|r| r.1),
            Some(Method::Resample)
        );
        out.clear();
        assert_eq!(stretch(&x, 1, 8000, true, lim(0), &mut out), None);
        assert_eq!(out, x);
    }
}
