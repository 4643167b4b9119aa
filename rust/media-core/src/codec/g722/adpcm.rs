//! The two ADPCM sub-band coders of ITU-T G.722 (SB-ADPCM), mode 1 (64 kbit/s).
//!
//! Written from the Recommendation: §3 (encoder principles), §4 (decoder
//! principles) and §6 (computational details, blocks 1L–5L and 1H–4H). All
//! arithmetic is 16-bit two's complement with saturation, as §6 specifies it,
//! so that the result is bit-exact: every `add`/`sub` below saturates, every
//! `mult` is `(a·b) >> 15` with saturation, shifts are arithmetic.
//!
//! The encoder contains a full copy of the decoder's state update (the
//! "embedded decoder"), which is why one [`Band`] type serves both sides.

/// Saturating 16-bit addition.
#[inline]
fn add(a: i16, b: i16) -> i16 {
    a.saturating_add(b)
}

/// Saturating 16-bit subtraction.
#[inline]
fn sub(a: i16, b: i16) -> i16 {
    a.saturating_sub(b)
}

/// Fractional multiply: `(a·b) >> 15`, saturated (only -1·-1 overflows).
#[inline]
fn mult(a: i16, b: i16) -> i16 {
    sat((i32::from(a) * i32::from(b)) >> 15)
}

#[inline]
pub(super) fn sat(x: i32) -> i16 {
    x.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

/// The sign bit as the Recommendation uses it: 0 for x ≥ 0, -1 for x < 0
/// (zero counts as positive).
#[inline]
fn sign(x: i16) -> i16 {
    x >> 15
}

/// LIMIT: clamp a reconstructed sub-band signal to 15 bits (-16384..=16383).
#[inline]
pub(super) fn limit(x: i16) -> i16 {
    x.clamp(-16384, 16383)
}

/// Magnitude used by the quantizers: `x` for x ≥ 0, `-(x+1)` for x < 0
/// (one's complement, so -32768 maps to 32767 without overflow).
#[inline]
fn magnitude(x: i16) -> i16 {
    if x < 0 {
        !x
    } else {
        x
    }
}

// ---------------------------------------------------------------------------
// Tables of the Recommendation.
// ---------------------------------------------------------------------------

/// Decision levels of the 60-level lower sub-band quantizer, in units of
/// DETL/4096 (Table 6/G.722, `Q6`). Index 0 is a placeholder.
const Q6: [i16; 30] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940, 1023, 1121,
    1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919,
];

/// 6-bit codes for a negative difference, by quantizer interval `mil` (ILN).
const ILN: [u8; 31] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8,
    7, 6, 5, 4,
];

/// 6-bit codes for a positive difference, by quantizer interval `mil` (ILP).
const ILP: [u8; 31] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39, 38, 37,
    36, 35, 34, 33, 32,
];

/// 4-bit inverse quantizer of the lower sub-band (`QM4`, used by the
/// predictor on both sides), indexed by the code's 4 most significant bits.
const QM4: [i16; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584, 1200, 0,
];

/// 6-bit inverse quantizer of the lower sub-band (`QM6`, decoder output in
/// mode 1), indexed by the full 6-bit code. Codes 0..=3 are never sent.
const QM6: [i16; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232, -9360,
    -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776, -2400, -2032, -1688,
    -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280, 11192, 10232, 9360, 8576, 7856,
    7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776, 2400, 2032, 1688, 1360, 1040, 728, 432, 136,
    -432, -136,
];

/// 4-bit code → magnitude class for the lower log-scale-factor update (RIL → IL4).
const RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];

/// Lower sub-band log scale factor multipliers (`WL`).
const WL: [i16; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];

/// Decision level of the 4-level upper sub-band quantizer, in DETH/4096.
const Q2: i16 = 564;

/// 2-bit codes for a negative / positive difference, by interval `mih`.
const IHN: [u8; 3] = [0, 1, 0];
const IHP: [u8; 3] = [0, 3, 2];

/// 2-bit inverse quantizer of the upper sub-band (`QM2`).
const QM2: [i16; 4] = [-7408, -1616, 7408, 1616];

/// 2-bit code → magnitude class for the upper log-scale-factor update.
const RH2: [usize; 4] = [2, 1, 2, 1];

/// Upper sub-band log scale factor multipliers (`WH`).
const WH: [i16; 3] = [0, -214, 798];

/// Antilog table for the scale factor computation (`ILB`): 2^(i/32)·2048.
const ILB: [i16; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834, 2896,
    2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];

/// Upper bounds of the log scale factors (§6, LOGSCL and LOGSCH).
const NBL_MAX: i16 = 18432;
const NBH_MAX: i16 = 22528;

// ---------------------------------------------------------------------------
// Quantizers and scale factor adaptation (blocks 1L–3L, 5L, 1H–3H).
// ---------------------------------------------------------------------------

/// QUANTL (block 1L): 6-bit quantization of the lower difference signal.
pub(super) fn quantl(el: i16, detl: i16) -> u8 {
    let wd = magnitude(el);
    // First interval whose upper decision level exceeds |EL|; 30 if none.
    let mil = (1..30).find(|&i| wd < mult(Q6[i] << 3, detl)).unwrap_or(30);
    if el < 0 {
        ILN[mil]
    } else {
        ILP[mil]
    }
}

/// INVQAL (block 2L): 4-bit inverse quantizer, feeding the predictor.
pub(super) fn invqal(il: u8, detl: i16) -> i16 {
    mult(detl, QM4[usize::from((il >> 2) & 0x0F)])
}

/// INVQBL (block 5L) in mode 1: 6-bit inverse quantizer for the output.
pub(super) fn invqbl6(il: u8, detl: i16) -> i16 {
    mult(detl, QM6[usize::from(il & 0x3F)])
}

/// LOGSCL (block 3L): log scale factor update with leakage 127/128.
pub(super) fn logscl(il: u8, nbl: i16) -> i16 {
    let wd = mult(nbl, 32512);
    add(wd, WL[RL42[usize::from((il >> 2) & 0x0F)]]).clamp(0, NBL_MAX)
}

/// SCALEL (block 3L): DETL = ILB[frac] · 2^(int − 8) · 4 from NBL.
pub(super) fn scalel(nbl: i16) -> i16 {
    scale(nbl, 8)
}

/// QUANTH (block 1H): 2-bit quantization of the upper difference signal.
pub(super) fn quanth(eh: i16, deth: i16) -> u8 {
    let mih = if magnitude(eh) >= mult(Q2 << 3, deth) {
        2
    } else {
        1
    };
    if eh < 0 {
        IHN[mih]
    } else {
        IHP[mih]
    }
}

/// INVQAH (block 2H): 2-bit inverse quantizer.
pub(super) fn invqah(ih: u8, deth: i16) -> i16 {
    mult(deth, QM2[usize::from(ih & 3)])
}

/// LOGSCH (block 3H).
pub(super) fn logsch(ih: u8, nbh: i16) -> i16 {
    let wd = mult(nbh, 32512);
    add(wd, WH[RH2[usize::from(ih & 3)]]).clamp(0, NBH_MAX)
}

/// SCALEH (block 3H): as SCALEL with a shift of 10 instead of 8.
pub(super) fn scaleh(nbh: i16) -> i16 {
    scale(nbh, 10)
}

/// Common antilog of SCALEL/SCALEH: `nb` is a log2 value in 1/2048 units
/// (bits 6..=10 index ILB, bits 11.. are the integer part).
fn scale(nb: i16, base_shift: i32) -> i16 {
    let frac = usize::from(((nb >> 6) & 31) as u8);
    let shift = base_shift - i32::from(nb >> 11);
    let wd = i32::from(ILB[frac]);
    let wd = if shift >= 0 { wd >> shift } else { wd << -shift };
    sat(wd << 2)
}

// ---------------------------------------------------------------------------
// The sub-band state and the adaptive predictor (block 4L / 4H).
// ---------------------------------------------------------------------------

/// State of one sub-band ADPCM coder. Identical in encoder and decoder for
/// the same bitstream (the encoder embeds the decoder).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Band {
    /// Signal estimate S (SL/SH) = SP + SZ.
    s: i16,
    /// Pole section output SP and zero section output SZ.
    sp: i16,
    sz: i16,
    /// Reconstructed signal R: r[1] = R(k), r[2] = R(k−1) after FILTEP.
    r: [i16; 3],
    /// Partially reconstructed signal P: p[0] = P(k), p[1], p[2] delayed.
    p: [i16; 3],
    /// Pole coefficients A1 = a[1], A2 = a[2] (a[0] unused).
    a: [i16; 3],
    /// Zero coefficients B1..B6 = b[1..=6] (b[0] unused).
    b: [i16; 7],
    /// Quantized difference signal: d[0] = D(k), d[1..=6] delayed.
    d: [i16; 7],
    /// Log scale factor NB and scale factor DET.
    nb: i16,
    det: i16,
}

impl Band {
    /// Reset state (§6 RESET): everything zero except DETL = 32, DETH = 8.
    pub(super) fn new_low() -> Self {
        Band::with_det(32)
    }
    pub(super) fn new_high() -> Self {
        Band::with_det(8)
    }
    fn with_det(det: i16) -> Self {
        Band {
            s: 0,
            sp: 0,
            sz: 0,
            r: [0; 3],
            p: [0; 3],
            a: [0; 3],
            b: [0; 7],
            d: [0; 7],
            nb: 0,
            det,
        }
    }

    /// Block 1L (SUBTRA, QUANTL): the 6-bit code for lower sub-band sample
    /// `xl`, without changing the state.
    pub(super) fn quantize_low(&self, xl: i16) -> u8 {
        quantl(sub(xl, self.s), self.det)
    }

    /// Encodes one lower sub-band sample, returning the 6-bit code.
    pub(super) fn encode_low(&mut self, xl: i16) -> u8 {
        let il = self.quantize_low(xl);
        self.update_low(il);
        il
    }

    /// Lower sub-band decoder, mode 1: returns RL = LIMIT(SL + DL) where DL
    /// uses the 6-bit inverse quantizer (INVQBL), then adapts as the encoder.
    pub(super) fn decode_low(&mut self, il: u8) -> i16 {
        let dl = invqbl6(il, self.det);
        let rl = limit(add(self.s, dl));
        self.update_low(il);
        rl
    }

    /// Blocks 2L, 3L, 4L: the embedded decoder shared by encoder and decoder.
    fn update_low(&mut self, il: u8) {
        let dlt = invqal(il, self.det);
        self.nb = logscl(il, self.nb);
        self.det = scalel(self.nb);
        self.predict(dlt);
    }

    /// Block 1H (SUBTRA, QUANTH): the 2-bit code for upper sub-band sample
    /// `xh`, without changing the state.
    pub(super) fn quantize_high(&self, xh: i16) -> u8 {
        quanth(sub(xh, self.s), self.det)
    }

    /// Encodes one upper sub-band sample, returning the 2-bit code.
    pub(super) fn encode_high(&mut self, xh: i16) -> u8 {
        let ih = self.quantize_high(xh);
        self.update_high(ih);
        ih
    }

    /// Upper sub-band decoder: RH = LIMIT(SH + DH), then adapts.
    pub(super) fn decode_high(&mut self, ih: u8) -> i16 {
        let dh = invqah(ih, self.det);
        let rh = limit(add(self.s, dh));
        self.update_high(ih);
        rh
    }

    fn update_high(&mut self, ih: u8) {
        let dh = invqah(ih, self.det);
        self.nb = logsch(ih, self.nb);
        self.det = scaleh(self.nb);
        self.predict(dh);
    }

    /// Block 4 (§3.6, §6 block 4L/4H): adaptive pole-zero predictor, given
    /// the quantized difference `dq` (DLT or DH). Leaves the next estimate in `s`.
    fn predict(&mut self, dq: i16) {
        self.d[0] = dq;
        self.p[0] = add(dq, self.sz); // PARREC
        self.r[0] = add(self.s, dq); // RECONS
        self.upzero();
        self.uppol2();
        self.uppol1();
        self.filtez();
        self.filtep();
        self.s = add(self.sp, self.sz); // PREDIC
    }

    /// UPZERO + DELAYA: sign-sign update of B1..B6 with leakage 255/256,
    /// then shift the difference-signal delay line.
    fn upzero(&mut self) {
        let wd1: i16 = if self.d[0] == 0 { 0 } else { 128 };
        let sg0 = sign(self.d[0]);
        for i in (1..=6).rev() {
            let wd2 = if sign(self.d[i]) == sg0 { wd1 } else { -wd1 };
            let wd3 = mult(self.b[i], 32640);
            self.b[i] = add(wd2, wd3);
            self.d[i] = self.d[i - 1];
        }
    }

    /// UPPOL2: second pole coefficient, limited to ±0.75 (±12288).
    fn uppol2(&mut self) {
        let sg0 = sign(self.p[0]);
        let wd1 = sat(i32::from(self.a[1]) << 2);
        let wd2 = if sg0 == sign(self.p[1]) {
            wd1.saturating_neg()
        } else {
            wd1
        };
        let wd2 = wd2 >> 7;
        let wd3: i16 = if sg0 == sign(self.p[2]) { 128 } else { -128 };
        let wd4 = add(wd2, wd3);
        let wd5 = mult(self.a[2], 32512);
        self.a[2] = add(wd4, wd5).clamp(-12288, 12288);
    }

    /// UPPOL1: first pole coefficient, limited to ±(15360 − A2); then the
    /// partially reconstructed signal is delayed (DELAYL).
    fn uppol1(&mut self) {
        let wd1: i16 = if sign(self.p[0]) == sign(self.p[1]) {
            192
        } else {
            -192
        };
        let wd2 = mult(self.a[1], 32640);
        let apl1 = add(wd1, wd2);
        let wd3 = sub(15360, self.a[2]);
        self.a[1] = if apl1 > wd3 {
            wd3
        } else if add(apl1, wd3) < 0 {
            wd3.saturating_neg()
        } else {
            apl1
        };
        self.p[2] = self.p[1];
        self.p[1] = self.p[0];
    }

    /// FILTEZ: six-zero section over the delayed difference signal.
    fn filtez(&mut self) {
        let mut sz: i16 = 0;
        for i in (1..=6).rev() {
            let wd = add(self.d[i], self.d[i]);
            sz = add(sz, mult(wd, self.b[i]));
        }
        self.sz = sz;
    }

    /// FILTEP: two-pole section over the reconstructed signal (after DELAYL).
    fn filtep(&mut self) {
        self.r[2] = self.r[1];
        self.r[1] = self.r[0];
        let wd1 = mult(self.a[1], add(self.r[1], self.r[1]));
        let wd2 = mult(self.a[2], add(self.r[2], self.r[2]));
        self.sp = add(wd1, wd2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_factor_range_matches_reset_and_limits() {
        // Reset values of §6: DETL = 32 at NBL = 0, DETH = 8 at NBH = 0.
        assert_eq!(scalel(0), 32);
        assert_eq!(scaleh(0), 8);
        // Upper limits: both reach 2^12·4 = 16384.
        assert_eq!(scalel(NBL_MAX), 16384);
        assert_eq!(scaleh(NBH_MAX), 16384);
        // Monotonic in between.
        let mut prev = 0;
        for nb in (0..=NBL_MAX).step_by(7) {
            let d = scalel(nb);
            assert!(d >= prev, "scalel not monotonic at {nb}");
            prev = d;
        }
    }

    #[test]
    fn quantizer_codes_cover_the_60_levels() {
        // With the largest step size every interval of Q6 is reachable, and
        // each code maps back (QM6) to a level inside its own interval.
        let det = 16384;
        let mut seen = std::collections::BTreeSet::new();
        for el in (i16::MIN..=i16::MAX).step_by(3) {
            let il = quantl(el, det);
            assert!(il >= 4, "code {il} is reserved");
            seen.insert(il);
            let back = invqbl6(il, det);
            assert_eq!(back.signum(), if el < 0 { -1 } else { 1 }, "sign of {el}");
        }
        assert_eq!(seen.len(), 60);
    }

    #[test]
    fn reconstruction_levels_lie_between_decision_levels() {
        // QM6 is in units of DET/32768, Q6 in DET/4096: level/8 must fall in
        // the interval [Q6[m], Q6[m+1]) it reconstructs.
        for mil in 1..30 {
            let lvl = QM6[usize::from(ILP[mil])] / 8;
            assert!(lvl >= Q6[mil - 1] && lvl < Q6[mil], "mil {mil}: {lvl}");
            assert_eq!(QM6[usize::from(ILN[mil])], -QM6[usize::from(ILP[mil])]);
        }
    }

    #[test]
    fn upper_quantizer_is_symmetric() {
        assert_eq!(quanth(0, 8), 3);
        assert_eq!(quanth(-1, 8), 1);
        assert_eq!(quanth(10_000, 8), 2);
        assert_eq!(quanth(-10_000, 8), 0);
        assert_eq!(invqah(2, 16384), -invqah(0, 16384));
    }

    #[test]
    fn predictor_coefficients_stay_in_their_stability_bounds() {
        let mut b = Band::new_low();
        let mut seed = 1u32;
        for k in 0..20_000 {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let x = if k % 2000 < 1000 {
                (seed >> 16) as i16
            } else {
                12000
            };
            b.encode_low(limit(x));
            assert!(b.a[2].abs() <= 12288);
            assert!(b.a[1].abs() <= 15360 - b.a[2]);
        }
    }
}
