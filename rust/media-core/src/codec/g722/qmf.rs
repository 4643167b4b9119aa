//! The 24-tap quadrature mirror filters of ITU-T G.722 (§3.1 transmit QMF,
//! §4.4 receive QMF, computational details in §5).
//!
//! Coefficients h(0..=23) are those of Table 2/G.722 scaled by 2^13 (they sum
//! to 8192). With 16-bit PCM at the input the sub-band signals are
//! `(xA ± xB) >> 14`, limited to 15 bits, and the decoder's output is
//! `Σ >> 11`, saturated to 16 bits, exactly as the Recommendation's
//! fixed-point description computes them.

use super::adpcm::{limit, sat};

/// h(i), i = 0..=23 (symmetric: h(i) = h(23 − i)).
const H: [i32; 24] = [
    3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876, 3876, 951, -805, -210, 362, 32, -156, 12, 53,
    -11, -11, 3,
];

/// Transmit (analysis) QMF: splits 16 kHz PCM into two 8 kHz sub-bands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Analysis {
    /// x[i] = xin(j − i): x[0] is the newest input sample.
    x: [i16; 24],
}

impl Analysis {
    pub fn new() -> Self {
        Analysis { x: [0; 24] }
    }

    /// Takes one pair of input samples (`first` is the earlier one) and
    /// returns (xL, xH).
    ///
    /// xA = Σ h(2i)·xin(j − 2i), xB = Σ h(2i+1)·xin(j − 2i − 1),
    /// xL = xA + xB, xH = xA − xB (§3.1).
    pub fn split(&mut self, first: i16, second: i16) -> (i16, i16) {
        self.x.copy_within(0..22, 2);
        self.x[0] = second;
        self.x[1] = first;
        let (mut xa, mut xb) = (0i32, 0i32);
        for i in 0..12 {
            xa += H[2 * i] * i32::from(self.x[2 * i]);
            xb += H[2 * i + 1] * i32::from(self.x[2 * i + 1]);
        }
        (limit(sat((xa + xb) >> 14)), limit(sat((xa - xb) >> 14)))
    }
}

/// Receive (synthesis) QMF: merges two 8 kHz sub-bands into 16 kHz PCM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Synthesis {
    /// Interleaved xd(k − i) at [2i] and xs(k − i) at [2i+1].
    x: [i16; 24],
}

impl Synthesis {
    pub fn new() -> Self {
        Synthesis { x: [0; 24] }
    }

    /// Takes the reconstructed sub-band samples (rL, rH) and returns the two
    /// output samples in time order (§4.4):
    /// xd = rL − rH, xs = rL + rH,
    /// xout(j) = 2 Σ h(2i)·xd(k − i), xout(j+1) = 2 Σ h(2i+1)·xs(k − i).
    pub fn merge(&mut self, rl: i16, rh: i16) -> [i16; 2] {
        self.x.copy_within(0..22, 2);
        self.x[0] = rl.saturating_sub(rh);
        self.x[1] = rl.saturating_add(rh);
        let (mut even, mut odd) = (0i32, 0i32);
        for i in 0..12 {
            even += H[2 * i] * i32::from(self.x[2 * i]);
            odd += H[2 * i + 1] * i32::from(self.x[2 * i + 1]);
        }
        [sat(even >> 11), sat(odd >> 11)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coefficients_are_symmetric_and_sum_to_unity() {
        for i in 0..24 {
            assert_eq!(H[i], H[23 - i]);
        }
        assert_eq!(H.iter().sum::<i32>(), 8192);
        assert_eq!(H.iter().step_by(2).sum::<i32>(), 4096);
    }

    #[test]
    fn dc_goes_to_the_lower_band_at_half_scale() {
        let mut a = Analysis::new();
        let mut last = (0, 0);
        for _ in 0..30 {
            last = a.split(10_000, 10_000);
        }
        assert_eq!(last, (5000, 0));
    }

    #[test]
    fn analysis_then_synthesis_is_near_transparent() {
        // Without ADPCM in between the QMF pair reconstructs the signal with
        // a pure delay of 22 samples (two 24-tap filters, decimated by 2).
        let mut a = Analysis::new();
        let mut s = Synthesis::new();
        let input: Vec<i16> = (0..2000)
            .map(|n| (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / 16000.0).sin()) as i16)
            .collect();
        let mut out = Vec::new();
        for p in input.chunks_exact(2) {
            let (xl, xh) = a.split(p[0], p[1]);
            out.extend_from_slice(&s.merge(xl, xh));
        }
        let delay = 22;
        let err = (200..1900)
            .map(|n| (i32::from(out[n + delay]) - i32::from(input[n])).abs())
            .max()
            .unwrap();
        assert!(err < 40, "max error {err}");
    }
}
