//! Tone generation: DTMF (ITU-T Q.23 frequencies) and call-progress tones,
//! as phase-continuous sums of sines in 16-bit linear PCM.
//!
//! Levels are in dBm0 per frequency component. 0 dBm0 is the level of the
//! G.711 digital milliwatt (ITU-T G.711 Tables 5/6), a sine whose peak is
//! about 22651 in 16-bit linear PCM (RMS about 16017).

use crate::error::{Error, Result};

/// Peak amplitude (16-bit linear) of a 0 dBm0 sine, from the µ-law digital
/// milliwatt sequence of ITU-T G.711 Table 5.
pub const DBM0_PEAK: f64 = 22_651.0;
/// ITU-T Q.23 low-group ("row") frequencies in Hz.
pub const ROW_HZ: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
/// ITU-T Q.23 high-group ("column") frequencies in Hz.
pub const COL_HZ: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// ITU-T Q.23 keypad: `KEYPAD[row][column]`.
pub const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
/// Most components a [`ToneGenerator`] mixes (enough for any Q.35 tone).
pub const MAX_COMPONENTS: usize = 4;

/// Peak amplitude of a sine at `level_dbm0`.
pub fn dbm0_to_peak(level_dbm0: f64) -> f64 {
    DBM0_PEAK * 10f64.powf(level_dbm0 / 20.0)
}

/// (row, column) indices of a DTMF key in [`KEYPAD`]; lower-case a..d accepted.
pub fn keypad_position(digit: char) -> Option<(usize, usize)> {
    let d = digit.to_ascii_uppercase();
    KEYPAD
        .iter()
        .enumerate()
        .find_map(|(r, row)| row.iter().position(|&c| c == d).map(|c| (r, c)))
}

/// The (low, high) frequency pair of a DTMF key (Q.23), `None` for others.
pub fn dtmf_frequencies(digit: char) -> Option<(f64, f64)> {
    keypad_position(digit).map(|(r, c)| (ROW_HZ[r], COL_HZ[c]))
}

/// Phase-continuous generator of a sum of up to four sines.
///
/// Phases are kept across calls (and across [`set_frequencies`](Self::set_frequencies)),
/// so a tone generated in pieces has no discontinuity at the joins.
#[derive(Clone, Debug)]
pub struct ToneGenerator {
    sample_rate: u32,
    /// (phase in cycles 0..1, increment in cycles per sample) per component.
    osc: [(f64, f64); MAX_COMPONENTS],
    count: usize,
    peak: f64,
}

impl ToneGenerator {
    /// A tone of `freqs` (1..=4 components, each 0 < f < sample_rate / 2),
    /// each at `level_dbm0` (at most +3 dBm0). Samples saturate rather
    /// than wrap if the components add up beyond 16 bits.
    pub fn new(sample_rate: u32, freqs: &[f64], level_dbm0: f64) -> Result<Self> {
        if !(8000..=192_000).contains(&sample_rate) {
            return Err(Error::invalid(format!("tone sample rate {sample_rate}")));
        }
        if !(level_dbm0.is_finite() && level_dbm0 <= 3.0) {
            return Err(Error::invalid(format!("tone level {level_dbm0} dBm0")));
        }
        let mut g = ToneGenerator {
            sample_rate,
            osc: [(0.0, 0.0); MAX_COMPONENTS],
            count: 0,
            peak: dbm0_to_peak(level_dbm0),
        };
        g.set_frequencies(freqs)?;
        Ok(g)
    }

    /// DTMF tone of `digit` with both frequencies at `level_dbm0`.
    pub fn dtmf(sample_rate: u32, digit: char, level_dbm0: f64) -> Result<Self> {
        let (lo, hi) =
            dtmf_frequencies(digit).ok_or_else(|| Error::invalid(format!("no DTMF tone for {digit:?}")))?;
        Self::new(sample_rate, &[lo, hi], level_dbm0)
    }

    /// Changes the frequencies, keeping the phases of the components.
    pub fn set_frequencies(&mut self, freqs: &[f64]) -> Result<()> {
        let nyquist = f64::from(self.sample_rate) / 2.0;
        if freqs.is_empty() || freqs.len() > MAX_COMPONENTS {
            return Err(Error::invalid(format!(
                "tone needs 1..=4 frequencies, got {}",
                freqs.len()
            )));
        }
        if let Some(f) = freqs
            .iter()
            .find(|f| !(f.is_finite() && **f > 0.0 && **f < nyquist))
        {
            return Err(Error::invalid(format!(
                "tone frequency {f} Hz at {} Hz",
                self.sample_rate
            )));
        }
        for (o, f) in self.osc.iter_mut().zip(freqs) {
            o.1 = f / f64::from(self.sample_rate);
        }
        self.count = freqs.len();
        Ok(())
    }

    /// Overwrites `out` with the next samples of the tone.
    pub fn fill(&mut self, out: &mut [i16]) {
        let osc = &mut self.osc[..self.count];
        for s in out.iter_mut() {
            let mut v = 0.0;
            for (phase, inc) in osc.iter_mut() {
                v += (std::f64::consts::TAU * *phase).sin();
                *phase += *inc;
                if *phase >= 1.0 {
                    *phase -= 1.0;
                }
            }
            // `as` saturates float-to-int conversions.
            *s = (v * self.peak).round() as i16;
        }
    }

    /// Appends the next `n` samples to `out`.
    pub fn generate(&mut self, n: usize, out: &mut Vec<i16>) {
        let start = out.len();
        out.resize(start + n, 0);
        self.fill(&mut out[start..]);
    }
}

fn samples_for(sample_rate: u32, duration_ms: u32) -> usize {
    usize::try_from(u64::from(sample_rate) * u64::from(duration_ms) / 1000).unwrap_or(usize::MAX)
}

/// `duration_ms` of the DTMF tone of `digit`, each frequency at `level_dbm0`
/// (ITU-T Q.23 recommends about -6 to -9 dBm0 per frequency at the set).
pub fn generate_dtmf(sample_rate: u32, digit: char, duration_ms: u32, level_dbm0: f64) -> Result<Vec<i16>> {
    let mut g = ToneGenerator::dtmf(sample_rate, digit, level_dbm0)?;
    let mut out = Vec::new();
    g.generate(samples_for(sample_rate, duration_ms), &mut out);
    Ok(out)
}

/// `duration_ms` of a steady tone of `freqs` (e.g. 425 Hz dial tone of
/// ITU-T E.180, or 350 + 440 Hz), each component at `level_dbm0`.
pub fn generate_tones(
    sample_rate: u32,
    freqs: &[f64],
    level_dbm0: f64,
    duration_ms: u32,
) -> Result<Vec<i16>> {
    let mut g = ToneGenerator::new(sample_rate, freqs, level_dbm0)?;
    let mut out = Vec::new();
    g.generate(samples_for(sample_rate, duration_ms), &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn level_matches_dbm0() {
        // One second of 1004 Hz at 0 dBm0 has the digital milliwatt's RMS.
        let x = generate_tones(8000, &[1004.0], 0.0, 1000).unwrap();
        assert_eq!(x.len(), 8000);
        assert!((rms(&x) - 16_017.0).abs() < 20.0, "rms {}", rms(&x));
        let y = generate_tones(8000, &[1004.0], -20.0, 1000).unwrap();
        assert!((rms(&y) - 1601.7).abs() < 5.0);
    }

    #[test]
    fn dtmf_pair_and_lengths() {
        assert_eq!(dtmf_frequencies('5'), Some((770.0, 1336.0)));
        assert_eq!(dtmf_frequencies('d'), Some((941.0, 1633.0)));
        assert_eq!(dtmf_frequencies('!'), None);
        let x = generate_dtmf(16000, '#', 50, -10.0).unwrap();
        assert_eq!(x.len(), 800);
        // Two equal tones: total power twice one tone's.
        let one = dbm0_to_peak(-10.0) / 2f64.sqrt();
        assert!((rms(&x) / (one * 2f64.sqrt()) - 1.0).abs() < 0.03);
        assert!(generate_dtmf(8000, 'x', 50, -10.0).is_err());
    }

    #[test]
    fn pieces_join_without_discontinuity() {
        let whole = generate_dtmf(8000, '1', 100, -6.0).unwrap();
        let mut g = ToneGenerator::dtmf(8000, '1', -6.0).unwrap();
        let mut parts = Vec::new();
        for n in [1, 7, 160, 33, 599] {
            g.generate(n, &mut parts);
        }
        assert_eq!(parts, whole);
    }

    #[test]
    fn saturates_instead_of_wrapping() {
        let x = generate_tones(8000, &[500.0, 500.5, 501.0, 501.5], 3.0, 20).unwrap();
        // The first positive half-cycle sums to ~4 × 32000: clipped, not wrapped.
        assert!(x[1..8].iter().all(|&s| s == i16::MAX), "{:?}", &x[..8]);
    }

    #[test]
    fn bad_arguments() {
        assert!(ToneGenerator::new(8000, &[], -10.0).is_err());
        assert!(ToneGenerator::new(8000, &[4000.0], -10.0).is_err());
        assert!(ToneGenerator::new(8000, &[f64::NAN], -10.0).is_err());
        assert!(ToneGenerator::new(8000, &[1.0; 5], -10.0).is_err());
        assert!(ToneGenerator::new(8000, &[440.0], 10.0).is_err());
        assert!(ToneGenerator::new(100, &[40.0], -10.0).is_err());
    }
}
