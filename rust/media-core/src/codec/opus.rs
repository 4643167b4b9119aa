//! Opus through libopus (RFC 6716), RTP payload format RFC 7587: the RTP
//! clock is always 48 kHz and SDP always says `opus/48000/2`, whatever the
//! PCM rate and channel count actually used (RFC 7587 §4.1, §7).
//!
//! Encoder params: `sample_rate` (8000/12000/16000/24000/48000, default
//! 48000), `bitrate` (bit/s, default auto), `complexity` (0..=10, default 9),
//! `fec` (0/1), `packet_loss_perc` (0..=100, tunes FEC), `dtx` (0/1),
//! `bandwidth` (max audio bandwidth in Hz: 4000 narrow, 6000 medium, 8000
//! wide, 12000 super-wide, 20000 full). Decoder params: `sample_rate`.

use super::{check_params, param, CodecSpec, Decoder, Encoder, Params};
use crate::error::{Error, Result};
use audiopus_sys as ffi;
use std::ffi::CStr;
use std::os::raw::c_int;

/// RFC 6716 §3.4: no more than 1275 bytes per frame, at most 120 ms a packet.
const MAX_PACKET: usize = 1275 * 3 + 7;

fn opus_error(code: c_int) -> Error {
    // SAFETY: opus_strerror returns a pointer to a static C string.
    let text = unsafe { CStr::from_ptr(ffi::opus_strerror(code)) };
    Error::Codec {
        codec: "opus",
        detail: text.to_string_lossy().into_owned(),
    }
}

fn check_rate(rate: i64) -> Result<i32> {
    match rate {
        8000 | 12000 | 16000 | 24000 | 48000 => Ok(rate as i32),
        _ => Err(Error::invalid(format!(
            "opus: sample_rate={rate}; libopus takes 8000, 12000, 16000, 24000 or 48000"
        ))),
    }
}

pub struct OpusEncoder {
    st: *mut ffi::OpusEncoder,
    rate: u32,
    channels: u8,
    buf: Vec<u8>,
}

// SAFETY: the libopus state is plain memory owned by this value alone; it is
// never shared, so moving it between threads is sound.
unsafe impl Send for OpusEncoder {}

impl OpusEncoder {
    pub fn new(channels: u8, params: &Params) -> Result<Self> {
        const NAME: &str = "opus";
        check_params(
            NAME,
            params,
            &[
                "sample_rate",
                "bitrate",
                "complexity",
                "fec",
                "packet_loss_perc",
                "dtx",
                "bandwidth",
            ],
        )?;
        let rate = check_rate(param(NAME, params, "sample_rate", 48000, 8000..=48000)?)?;
        let mut err: c_int = 0;
        // SAFETY: valid arguments; libopus reports failure through `err`.
        let st = unsafe {
            ffi::opus_encoder_create(rate, c_int::from(channels), ffi::OPUS_APPLICATION_VOIP, &mut err)
        };
        if st.is_null() || err != ffi::OPUS_OK {
            return Err(opus_error(err));
        }
        let enc = OpusEncoder {
            st,
            rate: rate as u32,
            channels,
            buf: vec![0; MAX_PACKET],
        };
        if let Some(&b) = params.get("bitrate") {
            let b = param(NAME, params, "bitrate", b, 6000..=510000)?;
            enc.ctl(ffi::OPUS_SET_BITRATE_REQUEST, b as c_int)?;
        }
        enc.ctl(
            ffi::OPUS_SET_COMPLEXITY_REQUEST,
            param(NAME, params, "complexity", 9, 0..=10)? as c_int,
        )?;
        enc.ctl(
            ffi::OPUS_SET_INBAND_FEC_REQUEST,
            param(NAME, params, "fec", 0, 0..=1)? as c_int,
        )?;
        enc.ctl(
            ffi::OPUS_SET_PACKET_LOSS_PERC_REQUEST,
            param(NAME, params, "packet_loss_perc", 0, 0..=100)? as c_int,
        )?;
        enc.ctl(
            ffi::OPUS_SET_DTX_REQUEST,
            param(NAME, params, "dtx", 0, 0..=1)? as c_int,
        )?;
        if let Some(&bw) = params.get("bandwidth") {
            let v = match bw {
                4000 => ffi::OPUS_BANDWIDTH_NARROWBAND,
                6000 => ffi::OPUS_BANDWIDTH_MEDIUMBAND,
                8000 => ffi::OPUS_BANDWIDTH_WIDEBAND,
                12000 => ffi::OPUS_BANDWIDTH_SUPERWIDEBAND,
                20000 => ffi::OPUS_BANDWIDTH_FULLBAND,
                _ => {
                    return Err(Error::invalid(format!(
                        "opus: bandwidth={bw}; use 4000, 6000, 8000, 12000 or 20000 (Hz)"
                    )))
                }
            };
            enc.ctl(ffi::OPUS_SET_MAX_BANDWIDTH_REQUEST, v)?;
        }
        Ok(enc)
    }

    fn ctl(&self, request: c_int, value: c_int) -> Result<()> {
        // SAFETY: every request used here takes one opus_int32 argument.
        let r = unsafe { ffi::opus_encoder_ctl(self.st, request, value) };
        if r == ffi::OPUS_OK {
            Ok(())
        } else {
            Err(opus_error(r))
        }
    }
}

impl Drop for OpusEncoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_encoder_create, destroyed once.
        unsafe { ffi::opus_encoder_destroy(self.st) }
    }
}

/// Frame sizes libopus accepts: 2.5, 5, 10, 20, 40 or 60 ms.
fn valid_frame(rate: u32, samples: usize) -> bool {
    let r = rate as usize;
    [r / 400, r / 200, r / 100, r / 50, r / 25, r * 3 / 50].contains(&samples)
}

impl Encoder for OpusEncoder {
    fn name(&self) -> &'static str {
        "opus"
    }
    fn sample_rate(&self) -> u32 {
        self.rate
    }
    fn clock_rate(&self) -> u32 {
        48000
    }
    fn channels(&self) -> u8 {
        self.channels
    }
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<()> {
        let ch = usize::from(self.channels);
        let frame = pcm.len() / ch;
        if !pcm.len().is_multiple_of(ch) || !valid_frame(self.rate, frame) {
            return Err(Error::invalid(format!(
                "opus: {frame} samples at {} Hz is not a 2.5/5/10/20/40/60 ms frame",
                self.rate
            )));
        }
        // SAFETY: pcm holds frame*channels samples; buf is MAX_PACKET long.
        let n = unsafe {
            ffi::opus_encode(
                self.st,
                pcm.as_ptr(),
                frame as c_int,
                self.buf.as_mut_ptr(),
                MAX_PACKET as i32,
            )
        };
        if n < 0 {
            return Err(opus_error(n));
        }
        out.extend_from_slice(&self.buf[..n as usize]);
        Ok(())
    }
}

pub struct OpusDecoder {
    st: *mut ffi::OpusDecoder,
    rate: u32,
    channels: u8,
}

// SAFETY: as for OpusEncoder.
unsafe impl Send for OpusDecoder {}

impl OpusDecoder {
    pub fn new(channels: u8, params: &Params) -> Result<Self> {
        check_params("opus", params, &["sample_rate"])?;
        let rate = check_rate(param("opus", params, "sample_rate", 48000, 8000..=48000)?)?;
        let mut err: c_int = 0;
        // SAFETY: valid arguments; failure reported through `err`.
        let st = unsafe { ffi::opus_decoder_create(rate, c_int::from(channels), &mut err) };
        if st.is_null() || err != ffi::OPUS_OK {
            return Err(opus_error(err));
        }
        Ok(OpusDecoder {
            st,
            rate: rate as u32,
            channels,
        })
    }

    /// Runs opus_decode into the tail of `out` (`data` None = PLC).
    fn run(&mut self, data: Option<&[u8]>, max_samples: usize, fec: bool, out: &mut Vec<i16>) -> Result<()> {
        let ch = usize::from(self.channels);
        let start = out.len();
        out.resize(start + max_samples * ch, 0);
        let (ptr, len) = data.map_or((std::ptr::null(), 0), |d| (d.as_ptr(), d.len() as i32));
        // SAFETY: `out` has room for max_samples*channels samples past start.
        let n = unsafe {
            ffi::opus_decode(
                self.st,
                ptr,
                len,
                out.as_mut_ptr().add(start),
                max_samples as c_int,
                c_int::from(fec),
            )
        };
        if n < 0 {
            out.truncate(start);
            return Err(opus_error(n));
        }
        out.truncate(start + n as usize * ch);
        Ok(())
    }

    /// PLC/FEC need a multiple of 2.5 ms.
    fn round_frame(&self, samples: usize) -> usize {
        let q = self.rate as usize / 400;
        samples.div_ceil(q).max(1) * q
    }
}

impl Drop for OpusDecoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_decoder_create, destroyed once.
        unsafe { ffi::opus_decoder_destroy(self.st) }
    }
}

impl Decoder for OpusDecoder {
    fn name(&self) -> &'static str {
        "opus"
    }
    fn sample_rate(&self) -> u32 {
        self.rate
    }
    fn clock_rate(&self) -> u32 {
        48000
    }
    fn channels(&self) -> u8 {
        self.channels
    }
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<()> {
        if payload.is_empty() {
            return Err(Error::malformed("opus payload", "empty payload"));
        }
        // Size the output from the TOC (RFC 6716 §3.1) rather than the 120 ms
        // maximum: less to zero-fill and to copy on the hot path.
        let n = self.samples_in(payload)?;
        if n == 0 || n > self.rate as usize * 120 / 1000 {
            return Err(Error::malformed(
                "opus payload",
                format!("{n} samples per channel"),
            ));
        }
        self.run(Some(payload), n, false, out)
    }
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<()> {
        let start = out.len();
        let n = self.round_frame(samples);
        self.run(None, n, false, out)?;
        out.truncate(start + samples * usize::from(self.channels));
        Ok(())
    }
    fn recover(&mut self, next_payload: &[u8], samples: usize, out: &mut Vec<i16>) -> Result<()> {
        let start = out.len();
        let n = self.round_frame(samples);
        self.run(Some(next_payload), n, true, out)?;
        out.truncate(start + samples * usize::from(self.channels));
        Ok(())
    }
    fn has_fec(&self) -> bool {
        true
    }
    fn samples_in(&self, payload: &[u8]) -> Result<usize> {
        // SAFETY: pointer/length pair from a live slice.
        let n = unsafe {
            ffi::opus_packet_get_nb_samples(payload.as_ptr(), payload.len() as i32, self.rate as i32)
        };
        if n < 0 {
            return Err(opus_error(n));
        }
        Ok(n as usize)
    }
}

pub static OPUS: CodecSpec = CodecSpec {
    name: "opus",
    static_payload_type: None,
    clock_rates: &[48000],
    max_channels: 2,
    encoder: |_, ch, p| Ok(Box::new(OpusEncoder::new(ch, p)?)),
    decoder: |_, ch, p| Ok(Box::new(OpusDecoder::new(ch, p)?)),
};

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| (8000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin()) as i16)
            .collect()
    }

    #[test]
    fn round_trip_keeps_energy() {
        let mut p = Params::new();
        p.insert("sample_rate".into(), 16000);
        let mut e = OpusEncoder::new(1, &p).unwrap();
        let mut d = OpusDecoder::new(1, &p).unwrap();
        let pcm = sine(16000, 440.0, 320 * 50);
        let mut out = Vec::new();
        for f in pcm.chunks(320) {
            let mut pkt = Vec::new();
            e.encode(f, &mut pkt).unwrap();
            assert_eq!(d.samples_in(&pkt).unwrap(), 320);
            d.decode(&pkt, &mut out).unwrap();
        }
        assert_eq!(out.len(), pcm.len());
        let energy = |s: &[i16]| s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / s.len() as f64;
        let ratio = energy(&out[3200..]) / energy(&pcm[3200..]);
        assert!((0.5..2.0).contains(&ratio), "energy ratio {ratio}");
    }

    #[test]
    fn bad_frame_and_params_are_errors() {
        let mut e = OpusEncoder::new(1, &Params::new()).unwrap();
        assert!(e
            .encode(&[0; 100], &mut Vec::new())
            .unwrap_err()
            .to_string()
            .contains("not a 2.5"));
        let mut p = Params::new();
        p.insert("complexity".into(), 11);
        assert!(OpusEncoder::new(1, &p)
            .err()
            .unwrap()
            .to_string()
            .contains("complexity=11"));
        p.clear();
        p.insert("colour".into(), 1);
        assert!(OpusEncoder::new(1, &p)
            .err()
            .unwrap()
            .to_string()
            .contains("unknown parameter"));
        let mut d = OpusDecoder::new(1, &Params::new()).unwrap();
        assert!(d.decode(&[0xFF, 0xFF, 0xFF], &mut Vec::new()).is_err());
    }

    #[test]
    fn conceal_gives_requested_length() {
        let mut d = OpusDecoder::new(1, &Params::new()).unwrap();
        let mut out = Vec::new();
        d.conceal(960, &mut out).unwrap();
        assert_eq!(out.len(), 960);
    }
}
