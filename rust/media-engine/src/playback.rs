//! Media the engine produces itself into a leg: prompts (WAV playback) and
//! DTMF (RFC 4733 events or in-band tones), plus the per-leg DTMF settings.
//!
//! This half runs in the calling (control) thread: it validates the
//! request, reads and converts the WAV, and builds the encoder, so a worker
//! never blocks on a disk or a resampler. The worker half
//! (`worker::inject`) paces the packets out on its media tick.
//!
//! Memory: a prompt is read whole into memory (after conversion to the
//! encoder's PCM rate), capped at [`MAX_PROMPT_SAMPLES`] samples (16 MiB;
//! about 17 minutes at 8 kHz, 5.8 minutes at 24 kHz). Longer files are
//! refused with a clear error; loop a shorter file for music on hold.

use crate::config::LegCodec;
use crate::error::{Error, Result};
use crate::worker::inject::{Injection, Source};
use media_core::codec::{self, Encoder, Params};
use media_core::dtmf::{event_for_digit, generate_dtmf, EventSender};
use media_core::resample::Resampler;
use std::path::Path;
use std::time::Duration;

/// Largest prompt, in PCM samples at the encoder's rate.
pub const MAX_PROMPT_SAMPLES: usize = 8 << 20;
/// Most digits one `send_dtmf` call takes.
pub const MAX_DTMF_DIGITS: usize = 64;

/// PCM rates opus can be run at (RFC 6716 §2: 8 to 48 kHz).
const OPUS_PCM_RATES: [u32; 5] = [8000, 12000, 16000, 24000, 48000];

/// How often a prompt is played.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Repeat {
    /// This many times in a row (at least 1).
    Times(u32),
    /// Until stopped (music on hold).
    Forever,
}

/// Options of [`crate::Engine::play`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PlayOptions {
    pub repeat: Repeat,
    /// Where in the file to start (the first round only).
    pub start_ms: u32,
}

impl Default for PlayOptions {
    fn default() -> Self {
        PlayOptions {
            repeat: Repeat::Times(1),
            start_ms: 0,
        }
    }
}

/// What [`crate::Engine::play`] started.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PlayInfo {
    /// Engine-wide id, echoed in the `PlayEnded` event.
    pub play: u64,
    /// How long it will play; `None` when it loops until stopped.
    pub duration: Option<Duration>,
}

/// How DTMF is sent.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DtmfMode {
    /// RFC 4733 telephone-events with the leg's negotiated payload type.
    Rfc4733,
    /// ITU-T Q.23 dual tones encoded with the leg's codec.
    Inband,
}

/// Options of [`crate::Engine::send_dtmf`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct DtmfOptions {
    /// Tone length of each digit (40..=5000 ms).
    pub duration_ms: u32,
    /// Silence between digits (0..=5000 ms).
    pub pause_ms: u32,
    /// Level in dBm0 (-63..=0): the RFC 4733 volume field is its negation
    /// (§2.3.4); in-band, each of the two frequencies is sent at it.
    pub volume_dbm0: i32,
    pub mode: DtmfMode,
}

impl Default for DtmfOptions {
    fn default() -> Self {
        DtmfOptions {
            duration_ms: 100,
            pause_ms: 50,
            volume_dbm0: -10,
            mode: DtmfMode::Rfc4733,
        }
    }
}

/// A leg's DTMF settings (from SDP: `a=rtpmap:<pt> telephone-event/<rate>`).
///
/// The telephone-event clock rate is taken to be the leg's codec clock
/// rate, as RFC 4733 §2.1 asks of senders (e.g. 8000 with PCMU, 48000 with
/// opus).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct LegDtmf {
    /// Payload type of RFC 4733 events on this leg; `None`: not negotiated.
    /// When exactly one of two connected legs (both with a codec) has it,
    /// the pair is transcoded and keys are converted to/from in-band tones.
    pub telephone_event_pt: Option<u8>,
    /// Report key presses received on the leg as `Event::Dtmf`: RFC 4733
    /// events (needs `telephone_event_pt`) and in-band tones (needs the
    /// leg's codec; its audio is then decoded for the detector).
    pub detect: bool,
}

/// Why a prompt stopped.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PlayEndReason {
    Finished,
    /// `stop_play`, or replaced by another play or DTMF on the leg.
    Stopped,
}

/// Where a received key press was found.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DtmfSource {
    Rfc4733,
    Inband,
}

/// An encoder for `codec` and the PCM rate it wants. Opus runs at the
/// prompt's rate when libopus supports it (RFC 7587 §4.1: the RTP clock
/// stays 48 kHz), which saves a resampler.
/// `opus_complexity` as for transcoding (`EngineConfig::opus_complexity`).
fn encoder_for(codec: &LegCodec, pcm_rate: Option<u32>, opus_complexity: u8) -> Result<Box<dyn Encoder>> {
    let mut params = Params::new();
    if codec.name.eq_ignore_ascii_case("opus") {
        if let Some(r) = pcm_rate.filter(|r| OPUS_PCM_RATES.contains(r)) {
            params.insert("sample_rate".into(), i64::from(r));
        }
        params.insert("complexity".into(), i64::from(opus_complexity.min(10)));
    }
    if codec.channels != 1 {
        return Err(Error::Invalid(format!(
            "{} with {} channels: playback is mono only",
            codec.name, codec.channels
        )));
    }
    codec::encoder(&codec.name, codec.clock_rate, codec.channels, &params)
        .map_err(|e| Error::Invalid(format!("encoding {} for playback: {e}", codec.name)))
}

fn check_ptime(codec: &LegCodec) -> Result<()> {
    if !(10..=120).contains(&codec.ptime_ms) || !codec.ptime_ms.is_multiple_of(10) {
        return Err(Error::Invalid(format!(
            "ptime {} ms: 10..=120 in steps of 10",
            codec.ptime_ms
        )));
    }
    Ok(())
}

/// Reads a mono 16-bit PCM WAV at 8..=48 kHz: (samples, rate).
fn read_wav(path: &Path) -> Result<(Vec<i16>, u32)> {
    let bad = |detail: String| Error::Invalid(format!("prompt {}: {detail}", path.display()));
    let mut r = hound::WavReader::open(path).map_err(|e| bad(e.to_string()))?;
    let spec = r.spec();
    if spec.channels != 1 || spec.bits_per_sample != 16 || spec.sample_format != hound::SampleFormat::Int {
        return Err(bad(format!(
            "{} channel(s), {} bits: need mono 16-bit PCM",
            spec.channels, spec.bits_per_sample
        )));
    }
    if !(8000..=48000).contains(&spec.sample_rate) {
        return Err(bad(format!("{} Hz: need 8000..=48000", spec.sample_rate)));
    }
    let n = r.duration() as usize;
    // Bounded before reading: a resampled prompt grows by at most 6x.
    if n > MAX_PROMPT_SAMPLES {
        return Err(bad(format!(
            "{n} samples is longer than the {MAX_PROMPT_SAMPLES} a prompt may have"
        )));
    }
    if n == 0 {
        return Err(bad("no audio".into()));
    }
    let pcm = r
        .samples::<i16>()
        .collect::<std::result::Result<Vec<i16>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    Ok((pcm, spec.sample_rate))
}

/// Whole-buffer conversion; the resampler's delay is trimmed so the
/// prompt starts at its first sample and keeps its length.
fn convert(pcm: Vec<i16>, from: u32, to: u32) -> Result<Vec<i16>> {
    if from == to {
        return Ok(pcm);
    }
    let mut r = Resampler::new(from, to, 1).map_err(|e| Error::Invalid(e.to_string()))?;
    let want = (pcm.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    if want > MAX_PROMPT_SAMPLES {
        return Err(Error::Invalid(format!(
            "prompt of {want} samples at {to} Hz is longer than the {MAX_PROMPT_SAMPLES} allowed"
        )));
    }
    let mut out = Vec::with_capacity(want + r.delay() + 1024);
    r.process(&pcm, &mut out)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    // Flush with silence: delay plus one 10 ms chunk.
    let tail = vec![0i16; (r.delay() as u64 * u64::from(from) / u64::from(to)) as usize + from as usize / 50];
    r.process(&tail, &mut out)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let delay = r.delay().min(out.len());
    out.drain(..delay);
    out.truncate(want);
    Ok(out)
}

/// Reads `path` and prepares it for a leg that sends `codec`.
pub(crate) fn prompt(
    path: &Path,
    codec: &LegCodec,
    opts: &PlayOptions,
    play: u64,
    opus_complexity: u8,
) -> Result<Injection> {
    check_ptime(codec)?;
    if opts.repeat == Repeat::Times(0) {
        return Err(Error::Invalid("repeat count must be at least 1".into()));
    }
    let (pcm, rate) = read_wav(path)?;
    let encoder = encoder_for(codec, Some(rate), opus_complexity)?;
    let enc_rate = encoder.sample_rate();
    let pcm = convert(pcm, rate, enc_rate)?;
    let start = (u64::from(opts.start_ms) * u64::from(enc_rate) / 1000) as usize;
    if start >= pcm.len() {
        return Err(Error::Invalid(format!(
            "start {} ms is beyond the prompt's end ({} ms)",
            opts.start_ms,
            pcm.len() as u64 * 1000 / u64::from(enc_rate)
        )));
    }
    let (loops, duration) = match opts.repeat {
        Repeat::Forever => (None, None),
        Repeat::Times(n) => {
            let samples = (pcm.len() - start) as u64 + u64::from(n - 1) * pcm.len() as u64;
            (
                Some(n - 1),
                Some(Duration::from_millis(samples * 1000 / u64::from(enc_rate))),
            )
        }
    };
    let source = Source::Audio {
        pcm,
        pos: start,
        loops_left: loops,
        encoder,
        play: Some(play),
    };
    Ok(Injection::new(source, codec, duration))
}

fn check_dtmf(digits: &str, o: &DtmfOptions) -> Result<()> {
    if digits.is_empty() || digits.chars().count() > MAX_DTMF_DIGITS {
        return Err(Error::Invalid(format!("DTMF: 1..={MAX_DTMF_DIGITS} digits")));
    }
    if let Some(c) = digits.chars().find(|&c| event_for_digit(c).is_none()) {
        return Err(Error::Invalid(format!(
            "DTMF: {c:?} is not a key (0-9, *, #, A-D, ! for flash)"
        )));
    }
    if !(40..=5000).contains(&o.duration_ms) || o.pause_ms > 5000 {
        return Err(Error::Invalid(format!(
            "DTMF: duration {} ms (40..=5000), pause {} ms (0..=5000)",
            o.duration_ms, o.pause_ms
        )));
    }
    if !(-63..=0).contains(&o.volume_dbm0) {
        return Err(Error::Invalid(format!(
            "DTMF: volume {} dBm0 (-63..=0)",
            o.volume_dbm0
        )));
    }
    Ok(())
}

/// The DTMF a leg that sends `codec` (and `event_pt` for RFC 4733) gets.
pub(crate) fn dtmf(
    digits: &str,
    codec: &LegCodec,
    event_pt: Option<u8>,
    o: &DtmfOptions,
    opus_complexity: u8,
) -> Result<Injection> {
    check_dtmf(digits, o)?;
    check_ptime(codec)?;
    let n = digits.chars().count() as u64;
    let total = Duration::from_millis(n * u64::from(o.duration_ms) + (n - 1) * u64::from(o.pause_ms));
    let source = match o.mode {
        DtmfMode::Rfc4733 => {
            let pt = event_pt.ok_or_else(|| {
                Error::Invalid("RFC 4733 DTMF: the leg has no telephone-event payload type".into())
            })?;
            let sender = EventSender::new(codec.clock_rate, codec.ptime_ms)
                .map_err(|e| Error::Invalid(format!("RFC 4733 DTMF: {e}")))?;
            Source::Events {
                sender,
                digits: digits.chars().rev().collect(),
                pt: pt & 0x7f,
                duration_ms: o.duration_ms,
                volume: o.volume_dbm0.unsigned_abs() as u8,
                pause_ticks: o.pause_ms.div_ceil(codec.ptime_ms),
                wait: 0,
            }
        }
        DtmfMode::Inband => {
            let encoder = encoder_for(codec, Some(8000), opus_complexity)?;
            let rate = encoder.sample_rate();
            let gap = (u64::from(o.pause_ms) * u64::from(rate) / 1000) as usize;
            let mut pcm = Vec::new();
            for (i, d) in digits.chars().enumerate() {
                if i > 0 {
                    pcm.resize(pcm.len() + gap, 0);
                }
                let tone = generate_dtmf(rate, d, o.duration_ms, f64::from(o.volume_dbm0))
                    .map_err(|e| Error::Invalid(format!("in-band DTMF: {e}")))?;
                pcm.extend_from_slice(&tone);
            }
            Source::Audio {
                pcm,
                pos: 0,
                loops_left: Some(0),
                encoder,
                play: None,
            }
        }
    };
    Ok(Injection::new(source, codec, Some(total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_keeps_length_and_start() {
        let x: Vec<i16> = (0..8000).map(|i| if i < 800 { 0 } else { 8000 }).collect();
        let y = convert(x, 8000, 48000).unwrap();
        assert_eq!(y.len(), 48000);
        // The step at 100 ms is still near 100 ms (4800 samples).
        let edge = y.iter().position(|&s| s > 4000).unwrap();
        assert!((4700..=4900).contains(&edge), "{edge}");
    }

    #[test]
    fn bad_dtmf_requests_are_refused() {
        let o = DtmfOptions::default();
        assert!(check_dtmf("12#", &o).is_ok());
        assert!(check_dtmf("", &o).is_err());
        assert!(check_dtmf("1x", &o).is_err());
        assert!(check_dtmf("1", &DtmfOptions { duration_ms: 10, ..o }).is_err());
        assert!(check_dtmf("1", &DtmfOptions { volume_dbm0: 3, ..o }).is_err());
        let pcmu = LegCodec::new("PCMU", 8000, 0);
        let e = dtmf("1", &pcmu, None, &o, 9).err().unwrap();
        assert!(e.to_string().contains("telephone-event"), "{e}");
    }

    #[test]
    fn bad_files_are_refused_clearly() {
        let pcmu = LegCodec::new("PCMU", 8000, 0);
        let o = PlayOptions::default();
        let e = prompt(Path::new("/nonexistent/x.wav"), &pcmu, &o, 1, 9)
            .err()
            .unwrap();
        assert!(e.to_string().contains("/nonexistent/x.wav"), "{e}");
        let dir = std::env::temp_dir().join(format!("vpbx-prompt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let garbage = dir.join("garbage.wav");
        std::fs::write(&garbage, b"RIFF not really").unwrap();
        assert!(prompt(&garbage, &pcmu, &o, 1, 9).is_err());
        let stereo = dir.join("stereo.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&stereo, spec).unwrap();
        for _ in 0..160 {
            w.write_sample(0i16).unwrap();
        }
        w.finalize().unwrap();
        let e = prompt(&stereo, &pcmu, &o, 1, 9).err().unwrap();
        assert!(e.to_string().contains("mono"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
