//! Sample-rate conversion between the telephony rates (8, 16, 48 kHz and
//! any other pair rubato accepts), streaming: feed any number of samples,
//! get every output sample that is ready. Built on rubato's synchronous FFT
//! resampler with 10 ms chunks, so the added delay is 5 ms of output.

use crate::error::{Error, Result};
use rubato::{FftFixedInOut, Resampler as _};

pub struct Resampler {
    inner: Option<FftFixedInOut<f32>>, // None: equal rates, pass through
    in_rate: u32,
    out_rate: u32,
    channels: usize,
    chunk_in: usize,
    pending: Vec<i16>, // interleaved input not yet converted
    in_bufs: Vec<Vec<f32>>,
    out_bufs: Vec<Vec<f32>>,
}

impl Resampler {
    /// A resampler from `in_rate` to `out_rate` for interleaved PCM.
    pub fn new(in_rate: u32, out_rate: u32, channels: u8) -> Result<Self> {
        if in_rate == 0 || out_rate == 0 || !(1..=2).contains(&channels) {
            return Err(Error::invalid(format!(
                "resampler: rates must be > 0 and channels 1 or 2 (got {in_rate} -> {out_rate}, {channels} ch)"
            )));
        }
        let ch = usize::from(channels);
        let chunk_in = (in_rate as usize / 100).max(1);
        let inner = if in_rate == out_rate {
            None
        } else {
            Some(
                FftFixedInOut::new(in_rate as usize, out_rate as usize, chunk_in, ch)
                    .map_err(|e| Error::invalid(format!("resampler {in_rate} -> {out_rate}: {e}")))?,
            )
        };
        let (chunk_in, chunk_out) = match &inner {
            Some(r) => (r.input_frames_next(), r.output_frames_max()),
            None => (chunk_in, chunk_in),
        };
        Ok(Resampler {
            inner,
            in_rate,
            out_rate,
            channels: ch,
            chunk_in,
            pending: Vec::with_capacity(chunk_in * ch * 2),
            in_bufs: vec![vec![0.0; chunk_in]; ch],
            out_bufs: vec![vec![0.0; chunk_out]; ch],
        })
    }

    pub fn in_rate(&self) -> u32 {
        self.in_rate
    }
    pub fn out_rate(&self) -> u32 {
        self.out_rate
    }

    /// Output samples (per channel) by which the signal is delayed.
    pub fn delay(&self) -> usize {
        self.inner.as_ref().map_or(0, |r| r.output_delay())
    }

    /// Converts `pcm` (interleaved), appending all ready output to `out`.
    pub fn process(&mut self, pcm: &[i16], out: &mut Vec<i16>) -> Result<()> {
        let ch = self.channels;
        if !pcm.len().is_multiple_of(ch) {
            return Err(Error::invalid(format!(
                "resampler: {} samples is not a multiple of {ch} channels",
                pcm.len()
            )));
        }
        let Some(r) = self.inner.as_mut() else {
            out.extend_from_slice(pcm);
            return Ok(());
        };
        self.pending.extend_from_slice(pcm);
        let need = self.chunk_in * ch;
        let mut used = 0;
        while self.pending.len() - used >= need {
            let block = &self.pending[used..used + need];
            for (c, buf) in self.in_bufs.iter_mut().enumerate() {
                for (i, s) in buf.iter_mut().enumerate() {
                    *s = f32::from(block[i * ch + c]) / 32768.0;
                }
            }
            let (_, produced) = r
                .process_into_buffer(&self.in_bufs, &mut self.out_bufs, None)
                .map_err(|e| Error::invalid(format!("resampler: {e}")))?;
            out.reserve(produced * ch);
            for i in 0..produced {
                for buf in &self.out_bufs {
                    out.push((buf[i] * 32768.0).round().clamp(-32768.0, 32767.0) as i16);
                }
            }
            used += need;
        }
        self.pending.drain(..used);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, f: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| (10000.0 * (2.0 * std::f64::consts::PI * f * i as f64 / f64::from(rate)).sin()) as i16)
            .collect()
    }

    /// Frequency estimate by counting rising zero crossings.
    fn freq(x: &[i16], rate: u32) -> f64 {
        let ups = x.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count();
        ups as f64 * f64::from(rate) / x.len() as f64
    }

    #[test]
    fn rates_convert_and_keep_frequency() {
        for (a, b) in [
            (8000, 48000),
            (48000, 8000),
            (8000, 16000),
            (16000, 8000),
            (16000, 48000),
            (48000, 16000),
        ] {
            let mut r = Resampler::new(a, b, 1).unwrap();
            let x = sine(a, 1000.0, a as usize); // 1 s
            let mut y = Vec::new();
            for f in x.chunks(a as usize / 50) {
                r.process(f, &mut y).unwrap();
            }
            assert_eq!(y.len(), b as usize, "{a}->{b}");
            let f = freq(&y[b as usize / 10..], b);
            assert!((f - 1000.0).abs() < 15.0, "{a}->{b}: {f} Hz");
        }
    }

    #[test]
    fn odd_chunking_gives_same_output() {
        let x = sine(8000, 700.0, 4000);
        let mut r1 = Resampler::new(8000, 48000, 1).unwrap();
        let mut r2 = Resampler::new(8000, 48000, 1).unwrap();
        let (mut y1, mut y2) = (Vec::new(), Vec::new());
        r1.process(&x, &mut y1).unwrap();
        for c in x.chunks(37) {
            r2.process(c, &mut y2).unwrap();
        }
        assert_eq!(y1, y2);
    }

    #[test]
    fn bad_arguments() {
        assert!(Resampler::new(0, 8000, 1).is_err());
        assert!(Resampler::new(8000, 16000, 3).is_err());
        let mut r = Resampler::new(8000, 16000, 2).unwrap();
        assert!(r.process(&[1, 2, 3], &mut Vec::new()).is_err());
    }
}
