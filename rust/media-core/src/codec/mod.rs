//! Codecs, addressed by their SDP encoding names (RFC 4566 §6 `a=rtpmap`).
//!
//! Every codec lives in one file that exports a [`CodecSpec`]; adding a codec
//! means adding that file and one line to [`REGISTRY`].

pub mod g711;
pub mod g722;
pub mod l16;
pub mod opus;

use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// Codec options (`**params` in Python): name → integer value. Booleans are
/// 0/1. Each codec validates its own keys and rejects the ones it does not know.
pub type Params = BTreeMap<String, i64>;

/// Encodes one frame of interleaved 16-bit PCM at [`Encoder::sample_rate`].
pub trait Encoder: Send {
    fn name(&self) -> &'static str;
    /// PCM sample rate the encoder consumes (G.722: 16000).
    fn sample_rate(&self) -> u32;
    /// RTP clock rate advertised in SDP (G.722: 8000, RFC 3551 §4.5.2).
    fn clock_rate(&self) -> u32;
    fn channels(&self) -> u8;
    /// Encodes `pcm` (one frame) and appends the payload to `out`.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<()>;
}

/// Decodes payloads to interleaved 16-bit PCM at [`Decoder::sample_rate`].
pub trait Decoder: Send {
    fn name(&self) -> &'static str;
    fn sample_rate(&self) -> u32;
    fn clock_rate(&self) -> u32;
    fn channels(&self) -> u8;
    /// Decodes one payload, appending samples to `out`.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<()>;
    /// Appends `samples` (per channel) of loss concealment to `out`.
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<()>;
    /// Recovers a lost frame of `samples` from the in-band FEC of the packet
    /// that followed it (Opus, RFC 6716 §2.1.7); codecs without FEC conceal.
    fn recover(&mut self, _next_payload: &[u8], samples: usize, out: &mut Vec<i16>) -> Result<()> {
        self.conceal(samples, out)
    }
    /// Whether [`Decoder::recover`] rebuilds audio from in-band FEC rather
    /// than concealing (jitter buffers then wait for the next packet).
    fn has_fec(&self) -> bool {
        false
    }
    /// Duration of a payload in samples per channel, at `sample_rate`.
    fn samples_in(&self, payload: &[u8]) -> Result<usize>;
}

/// One entry of the registry.
pub struct CodecSpec {
    /// SDP encoding name as registered with IANA (matching is case-insensitive).
    pub name: &'static str,
    /// Static RTP payload type from RFC 3551 §6, if any.
    pub static_payload_type: Option<u8>,
    /// RTP clock rates this implementation accepts.
    pub clock_rates: &'static [u32],
    pub max_channels: u8,
    pub encoder: fn(clock_rate: u32, channels: u8, params: &Params) -> Result<Box<dyn Encoder>>,
    pub decoder: fn(clock_rate: u32, channels: u8, params: &Params) -> Result<Box<dyn Decoder>>,
}

/// All codecs vpbx can encode and decode. `telephone-event` is not here: it
/// carries events, not audio (see [`crate::dtmf`]).
pub static REGISTRY: &[&CodecSpec] = &[&g711::PCMU, &g711::PCMA, &g722::G722, &l16::L16, &opus::OPUS];

/// Looks up a codec by SDP name, rate and channel count.
pub fn find(name: &str, clock_rate: u32, channels: u8) -> Result<&'static CodecSpec> {
    REGISTRY
        .iter()
        .copied()
        .find(|c| {
            c.name.eq_ignore_ascii_case(name)
                && c.clock_rates.contains(&clock_rate)
                && (1..=c.max_channels).contains(&channels)
        })
        .ok_or_else(|| Error::UnsupportedCodec {
            name: name.to_string(),
            clock_rate,
            channels,
        })
}

pub fn encoder(name: &str, clock_rate: u32, channels: u8, params: &Params) -> Result<Box<dyn Encoder>> {
    (find(name, clock_rate, channels)?.encoder)(clock_rate, channels, params)
}

pub fn decoder(name: &str, clock_rate: u32, channels: u8, params: &Params) -> Result<Box<dyn Decoder>> {
    (find(name, clock_rate, channels)?.decoder)(clock_rate, channels, params)
}

/// Rejects any key of `params` not in `known`, naming the codec.
pub fn check_params(codec: &'static str, params: &Params, known: &[&str]) -> Result<()> {
    for k in params.keys() {
        if !known.contains(&k.as_str()) {
            return Err(Error::invalid(format!(
                "{codec}: unknown parameter {k:?} (known: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
    }
    Ok(())
}

/// Reads an integer parameter with bounds, or its default.
pub fn param(
    codec: &'static str,
    params: &Params,
    key: &str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64> {
    let v = params.get(key).copied().unwrap_or(default);
    if !range.contains(&v) {
        return Err(Error::invalid(format!(
            "{codec}: {key}={v} out of range {}..={}",
            range.start(),
            range.end()
        )));
    }
    Ok(v)
}
