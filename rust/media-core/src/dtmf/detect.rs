//! In-band DTMF detection: Goertzel filters on the eight ITU-T Q.23
//! frequencies over fixed blocks, with checks in the spirit of ITU-T Q.24
//! (minimum level, twist, one clear peak per group, the two tones carrying
//! nearly all the signal energy) and press/release timing over blocks.
//!
//! Block length is 102 samples at 8 kHz (12.75 ms), scaled with the sample
//! rate: the filters' bandwidth (fs/N ≈ 78 Hz) matches the 73-89 Hz spacing
//! of adjacent Q.23 frequencies, so a tone lands near a null of its
//! neighbours' filters while tones within Q.24's ±1.5 % still pass.
//! A key is reported when the same key is found in two consecutive blocks
//! (so tones from about 26-38 ms on, depending on alignment, are accepted;
//! Q.24 asks for acceptance from 40 ms) and released after two consecutive
//! blocks without it (so a drop-out shorter than a block does not repeat
//! the key, while the 40 ms pause Q.24 allows between keys is seen).

use super::tone::{dbm0_to_peak, COL_HZ, KEYPAD, ROW_HZ};
use crate::error::{Error, Result};

/// Block length at 8 kHz.
const BLOCK_8K: u64 = 102;
/// Lowest level of each tone accepted, in dBm0 (Q.24 operate ranges reach
/// -25..-30 dBm0 per frequency for most administrations).
const MIN_LEVEL_DBM0: f64 = -32.0;
/// Highest accepted excess of the high group over the low group (dB).
const MAX_HIGH_OVER_LOW_DB: f64 = 4.0;
/// Highest accepted excess of the low group over the high group (dB): the
/// line attenuates the high group more.
const MAX_LOW_OVER_HIGH_DB: f64 = 8.0;
/// Within each group the strongest frequency must exceed the others by this.
const MIN_PEAK_RATIO_DB: f64 = 8.0;
/// Share of the block's energy the two tones must carry (rejects speech,
/// music, noise and tones off the Q.23 frequencies).
const MIN_TONE_SHARE: f64 = 0.70;
/// Consecutive blocks needed to accept a key, and to release it.
const HIT_BLOCKS: u8 = 2;
const MISS_BLOCKS: u8 = 2;

fn db_to_power_ratio(db: f64) -> f64 {
    10f64.powf(db / 10.0)
}

/// Streaming in-band DTMF detector for one channel of 16-bit PCM.
#[derive(Clone, Debug)]
pub struct DtmfDetector {
    block_len: usize,
    /// Goertzel coefficients 2·cos(2πf/fs), rows then columns.
    coeff: [f64; 8],
    s1: [f64; 8],
    s2: [f64; 8],
    energy: f64,
    count: usize,
    /// Minimum mean-square power of each tone.
    min_power: f64,
    /// Key found in the previous block, if any.
    last_block: Option<char>,
    /// Key currently held down (already reported).
    held: Option<char>,
    hits: u8,
    misses: u8,
}

impl DtmfDetector {
    /// A detector for PCM at `sample_rate` Hz (8000 to 96000; typically
    /// 8000, 16000 or 48000).
    pub fn new(sample_rate: u32) -> Result<Self> {
        if !(8000..=96_000).contains(&sample_rate) {
            return Err(Error::invalid(format!("DTMF detector sample rate {sample_rate}")));
        }
        let block_len = ((BLOCK_8K * u64::from(sample_rate) + 4000) / 8000) as usize;
        let mut coeff = [0.0; 8];
        for (c, f) in coeff.iter_mut().zip(ROW_HZ.iter().chain(COL_HZ.iter())) {
            *c = 2.0 * (std::f64::consts::TAU * f / f64::from(sample_rate)).cos();
        }
        let min_peak = dbm0_to_peak(MIN_LEVEL_DBM0);
        Ok(DtmfDetector {
            block_len,
            coeff,
            s1: [0.0; 8],
            s2: [0.0; 8],
            energy: 0.0,
            count: 0,
            min_power: min_peak * min_peak / 2.0,
            last_block: None,
            held: None,
            hits: 0,
            misses: 0,
        })
    }

    /// Samples per analysis block.
    pub fn block_len(&self) -> usize {
        self.block_len
    }

    /// The key currently held down (reported when pressed, cleared once
    /// it is released), for callers that follow a key's whole length.
    pub fn held(&self) -> Option<char> {
        self.held
    }

    /// Forgets any partial block and held key.
    pub fn reset(&mut self) {
        self.clear_block();
        self.last_block = None;
        self.held = None;
        self.hits = 0;
        self.misses = 0;
    }

    /// Feeds samples (any chunk size; state carries over) and returns the
    /// keys whose press completed in them, each press reported once. The
    /// returned `Vec` only allocates when a key is found.
    pub fn feed(&mut self, pcm: &[i16]) -> Vec<char> {
        let mut out = Vec::new();
        self.feed_into(pcm, &mut out);
        out
    }

    /// Like [`feed`](Self::feed), appending keys to `out`.
    pub fn feed_into(&mut self, pcm: &[i16], out: &mut Vec<char>) {
        for &x in pcm {
            let x = f64::from(x);
            for k in 0..8 {
                let s0 = x + self.coeff[k] * self.s1[k] - self.s2[k];
                self.s2[k] = self.s1[k];
                self.s1[k] = s0;
            }
            self.energy += x * x;
            self.count += 1;
            if self.count == self.block_len {
                let key = self.classify();
                self.clear_block();
                if let Some(k) = self.track(key) {
                    out.push(k);
                }
            }
        }
    }

    fn clear_block(&mut self) {
        self.s1 = [0.0; 8];
        self.s2 = [0.0; 8];
        self.energy = 0.0;
        self.count = 0;
    }

    /// Mean-square power of each frequency over the block: a sine of peak A
    /// gives |X|² ≈ (A·N/2)², hence A²/2 = 2|X|²/N².
    fn powers(&self) -> [f64; 8] {
        let n2 = (self.block_len * self.block_len) as f64;
        let mut p = [0.0; 8];
        for (k, pk) in p.iter_mut().enumerate() {
            let (s1, s2) = (self.s1[k], self.s2[k]);
            *pk = 2.0 * (s1 * s1 + s2 * s2 - self.coeff[k] * s1 * s2) / n2;
        }
        p
    }

    /// The key present in the block just completed, if every check passes.
    fn classify(&self) -> Option<char> {
        let p = self.powers();
        let (rows, cols) = p.split_at(4);
        let (r, pr) = strongest(rows);
        let (c, pc) = strongest(cols);
        // Minimum level of each tone.
        if pr < self.min_power || pc < self.min_power {
            return None;
        }
        // Twist limits.
        if pc > pr * db_to_power_ratio(MAX_HIGH_OVER_LOW_DB)
            || pr > pc * db_to_power_ratio(MAX_LOW_OVER_HIGH_DB)
        {
            return None;
        }
        // One clear peak in each group.
        let peak = db_to_power_ratio(MIN_PEAK_RATIO_DB);
        let clear = |group: &[f64], best: usize, pbest: f64| {
            group
                .iter()
                .enumerate()
                .all(|(i, &q)| i == best || q * peak <= pbest)
        };
        if !clear(rows, r, pr) || !clear(cols, c, pc) {
            return None;
        }
        // The pair must carry nearly all the energy of the block.
        let mean_square = self.energy / self.block_len as f64;
        if pr + pc < MIN_TONE_SHARE * mean_square {
            return None;
        }
        Some(KEYPAD[r][c])
    }

    /// Press/release logic over consecutive block results.
    fn track(&mut self, key: Option<char>) -> Option<char> {
        let same_as_last = key.is_some() && key == self.last_block;
        self.last_block = key;
        self.hits = if same_as_last {
            self.hits.saturating_add(1)
        } else {
            1
        };
        if key.is_some() && key == self.held {
            self.misses = 0;
            return None;
        }
        // Not the held key (silence, another key or a rejected block).
        self.misses = self.misses.saturating_add(1);
        if self.held.is_some() && self.misses >= MISS_BLOCKS {
            self.held = None;
        }
        if key.is_some() && self.hits >= HIT_BLOCKS {
            // A key stable for HIT_BLOCKS blocks: a new press.
            self.held = key;
            self.misses = 0;
            return key;
        }
        None
    }
}

fn strongest(group: &[f64]) -> (usize, f64) {
    group.iter().copied().enumerate().fold(
        (0, f64::MIN),
        |best, (i, q)| if q > best.1 { (i, q) } else { best },
    )
}

#[cfg(test)]
mod tests {
    use super::super::tone::{generate_dtmf, generate_tones, ToneGenerator};
    use super::*;
    use crate::codec::g711::{alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear};

    const ALL: &str = "0123456789*#ABCD";

    fn silence(rate: u32, ms: u32) -> Vec<i16> {
        vec![0; (rate * ms / 1000) as usize]
    }

    /// `digits` as `on_ms` tones separated by `off_ms` of silence.
    fn sequence(rate: u32, digits: &str, on_ms: u32, off_ms: u32, level: f64) -> Vec<i16> {
        let mut x = silence(rate, off_ms);
        for d in digits.chars() {
            x.extend(generate_dtmf(rate, d, on_ms, level).unwrap());
            x.extend(silence(rate, off_ms));
        }
        x
    }

    /// Feeds in awkward chunk sizes to exercise the streaming state.
    fn detect(rate: u32, x: &[i16]) -> String {
        let mut det = DtmfDetector::new(rate).unwrap();
        let mut got = String::new();
        for chunk in x.chunks(37) {
            got.extend(det.feed(chunk));
        }
        got
    }

    /// Seeded white noise (LCG, uniform) with the given RMS.
    fn noise(n: usize, rms: f64, seed: u32) -> Vec<i16> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let u = f64::from(state >> 8) / f64::from(1u32 << 24) * 2.0 - 1.0; // -1..1, RMS 1/sqrt(3)
                (u * rms * 3f64.sqrt()).round() as i16
            })
            .collect()
    }

    fn dbm0_rms(level: f64) -> f64 {
        dbm0_to_peak(level) / 2f64.sqrt()
    }

    #[test]
    fn every_key_once_at_each_rate() {
        for rate in [8000, 16000, 48000] {
            for d in ALL.chars() {
                let x = sequence(rate, &d.to_string(), 100, 100, -10.0);
                assert_eq!(detect(rate, &x), d.to_string(), "key {d} at {rate} Hz");
            }
        }
    }

    #[test]
    fn fast_sequence_in_order() {
        for rate in [8000, 16000, 48000] {
            let x = sequence(rate, "0123456789*#", 50, 50, -10.0);
            assert_eq!(detect(rate, &x), "0123456789*#", "{rate} Hz");
        }
    }

    #[test]
    fn long_press_is_one_key_and_repeats_are_separate() {
        let x = sequence(8000, "5", 2000, 100, -10.0);
        assert_eq!(detect(8000, &x), "5");
        let x = sequence(8000, "5555", 60, 60, -10.0);
        assert_eq!(detect(8000, &x), "5555");
    }

    #[test]
    fn short_dropout_does_not_repeat_key() {
        let mut x = generate_dtmf(8000, '7', 200, -10.0).unwrap();
        x[800..880].fill(0); // 10 ms gap in the middle
        x.extend(silence(8000, 100));
        assert_eq!(detect(8000, &x), "7");
    }

    #[test]
    fn noise_and_single_tones_give_nothing() {
        for (level, seed) in [(-10.0, 1), (-20.0, 2), (-35.0, 3)] {
            let x = noise(8000 * 3, dbm0_rms(level), seed);
            assert_eq!(detect(8000, &x), "", "noise at {level} dBm0");
        }
        for f in [1000.0, 697.0, 1336.0, 425.0] {
            for level in [0.0, -10.0, -25.0] {
                let x = generate_tones(8000, &[f], level, 2000).unwrap();
                assert_eq!(detect(8000, &x), "", "{f} Hz at {level} dBm0");
            }
        }
        // Dial/ringback-style pairs off the DTMF grid.
        for pair in [[350.0, 440.0], [440.0, 480.0], [480.0, 620.0]] {
            let x = generate_tones(8000, &pair, -10.0, 2000).unwrap();
            assert_eq!(detect(8000, &x), "", "{pair:?}");
        }
    }

    #[test]
    fn tones_in_moderate_noise_detected() {
        let mut x = sequence(8000, "159#", 80, 80, -10.0);
        let n = noise(x.len(), dbm0_rms(-30.0), 9);
        for (s, n) in x.iter_mut().zip(n) {
            *s = s.saturating_add(n);
        }
        assert_eq!(detect(8000, &x), "159#");
    }

    #[test]
    fn survives_g711() {
        let x = sequence(8000, ALL, 60, 60, -10.0);
        let mu: Vec<i16> = x.iter().map(|&s| ulaw_to_linear(linear_to_ulaw(s))).collect();
        assert_eq!(detect(8000, &mu), ALL);
        let a: Vec<i16> = x.iter().map(|&s| alaw_to_linear(linear_to_alaw(s))).collect();
        assert_eq!(detect(8000, &a), ALL);
        // Weak tones suffer more from companding noise.
        let weak = sequence(8000, ALL, 60, 60, -25.0);
        let mu: Vec<i16> = weak.iter().map(|&s| ulaw_to_linear(linear_to_ulaw(s))).collect();
        assert_eq!(detect(8000, &mu), ALL);
    }

    /// Key '6' (770 + 1477 Hz) with the high tone `twist_db` above the low one.
    fn twisted(twist_db: f64) -> Vec<i16> {
        let mut lo = ToneGenerator::new(8000, &[770.0], -10.0 - twist_db / 2.0).unwrap();
        let mut hi = ToneGenerator::new(8000, &[1477.0], -10.0 + twist_db / 2.0).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        lo.generate(800, &mut a);
        hi.generate(800, &mut b);
        let mut x: Vec<i16> = a.iter().zip(&b).map(|(p, q)| p.saturating_add(*q)).collect();
        x.extend(silence(8000, 100));
        x
    }

    #[test]
    fn twist_limits() {
        assert_eq!(detect(8000, &twisted(3.0)), "6");
        assert_eq!(detect(8000, &twisted(-6.0)), "6");
        assert_eq!(detect(8000, &twisted(20.0)), "");
        assert_eq!(detect(8000, &twisted(-20.0)), "");
        assert_eq!(detect(8000, &twisted(-10.0)), "");
    }

    #[test]
    fn level_and_duration_limits() {
        assert_eq!(detect(8000, &sequence(8000, "3", 100, 100, -28.0)), "3");
        assert_eq!(detect(8000, &sequence(8000, "3", 100, 100, -40.0)), "");
        // 40 ms tones must be accepted at any alignment, 10 ms ones never.
        for offset in 0..12 {
            let mut x = silence(8000, offset);
            x.extend(sequence(8000, "8", 40, 60, -10.0));
            assert_eq!(detect(8000, &x), "8", "40 ms, offset {offset} ms");
            let mut x = silence(8000, offset);
            x.extend(sequence(8000, "8", 10, 60, -10.0));
            assert_eq!(detect(8000, &x), "", "10 ms, offset {offset} ms");
        }
    }

    #[test]
    fn frequency_tolerance() {
        // Q.24: accept tones within 1.5 % of nominal, reject 3.5 % off.
        for (dev, want) in [(0.015, "1"), (-0.015, "1"), (0.035, ""), (-0.035, "")] {
            for (lo, hi, key) in [(697.0, 1209.0, '1'), (941.0, 1633.0, 'D'), (770.0, 1477.0, '6')] {
                let mut x = generate_tones(8000, &[lo * (1.0 + dev), hi * (1.0 + dev)], -10.0, 100).unwrap();
                x.extend(silence(8000, 100));
                let want = want.replace('1', &key.to_string());
                assert_eq!(detect(8000, &x), want, "{lo}/{hi} Hz off by {dev}");
            }
        }
    }

    /// Key '1' (697 + 1209 Hz) at -10 dBm0 plus a third tone.
    fn key_with_extra(f: f64, level: f64) -> Vec<i16> {
        let mut x = generate_dtmf(8000, '1', 200, -10.0).unwrap();
        let extra = generate_tones(8000, &[f], level, 200).unwrap();
        for (s, e) in x.iter_mut().zip(extra) {
            *s = s.saturating_add(e);
        }
        x.extend(silence(8000, 100));
        x
    }

    #[test]
    fn second_frequency_in_a_group_rejected() {
        // 770 Hz is in the low group with 697 Hz: which row is it?
        assert_eq!(detect(8000, &key_with_extra(770.0, -30.0)), "1");
        assert_eq!(detect(8000, &key_with_extra(770.0, -16.0)), "");
    }

    #[test]
    fn loud_off_grid_component_rejected() {
        // A key drowned in another sound (here a 1 kHz tone as loud as
        // each DTMF tone) is not a clean key press.
        assert_eq!(detect(8000, &key_with_extra(1000.0, -30.0)), "1");
        assert_eq!(detect(8000, &key_with_extra(1000.0, -10.0)), "");
    }

    #[test]
    fn speech_like_harmonics_rejected() {
        // A 150 Hz "voiced" signal rich in harmonics (several on/near the grid).
        let freqs = [750.0, 900.0, 1200.0, 1350.0];
        let x = generate_tones(8000, &freqs, -12.0, 2000).unwrap();
        assert_eq!(detect(8000, &x), "");
    }

    #[test]
    fn bad_rates_rejected_and_block_lengths() {
        assert!(DtmfDetector::new(4000).is_err());
        assert!(DtmfDetector::new(200_000).is_err());
        assert_eq!(DtmfDetector::new(8000).unwrap().block_len(), 102);
        assert_eq!(DtmfDetector::new(16000).unwrap().block_len(), 204);
        assert_eq!(DtmfDetector::new(48000).unwrap().block_len(), 612);
    }

    #[test]
    fn reset_forgets_held_key() {
        let x = generate_dtmf(8000, '2', 300, -10.0).unwrap();
        let mut det = DtmfDetector::new(8000).unwrap();
        assert_eq!(det.feed(&x[..1200]), ['2']);
        det.reset();
        assert_eq!(det.feed(&x[1200..]), ['2']);
    }
}
