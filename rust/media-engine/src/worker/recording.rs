//! Call recording: each recorded leg's received RTP is decoded through its
//! own jitter buffer (a "tap", independent of relay or transcoding, so
//! reordering is undone and loss is concealed) and placed on one real-time
//! timeline by the core's `RecordingMixer`; the worker's 10 ms media tick
//! drains that timeline up to "now" into a crash-safe `WavWriter`. The file
//! therefore runs in wall-clock time whether a leg talks, is silent or
//! loses packets.
//!
//! Pause writes nothing (as rtpengine's pause does): the paused span is
//! left out of the file and the timeline continues where it stopped. A disk
//! error ends the recording (the WAV stays valid up to the last successful
//! write) and is reported as `Event::RecordingFailed`; media keeps flowing.

use super::leg::Leg;
use super::slab::Slab;
use super::Worker;
use crate::config::LegCodec;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::types::{LegId, SessionId};
use media_core::codec::{self, Params};
use media_core::jitter::{JitterBuffer, JitterConfig};
use media_core::mixer::{Layout, Leg as MixLeg, RecordingMixer};
use media_core::resample::Resampler;
use media_core::wav::WavWriter;
use media_core::PayloadType;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Timeline step: one jitter-buffer pop per leg per step.
const STEP: Duration = Duration::from_millis(10);
/// Steps run per tick at most; a worker further behind fills silence.
const MAX_CATCH_UP: u64 = 50;
/// Lag window of the mixer (how far a leg may run ahead of the drain).
const LAG: Duration = Duration::from_millis(500);
/// Rate at which opus legs are decoded for recording (RFC 7587 §4.1 lets
/// the decoder run at any rate; wideband is plenty for a recording).
const OPUS_RATE: i64 = 16_000;

/// Channel layout of a recording file.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RecordingLayout {
    /// One channel: the legs summed.
    Mono,
    /// Left = first leg, right = second leg.
    Stereo,
}

/// What to record and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingSpec {
    /// The WAV file to create (truncated if it exists).
    pub path: PathBuf,
    pub layout: RecordingLayout,
    /// One or two legs of the session; empty: its first two legs (or its
    /// only leg). A single leg (voicemail) is always recorded mono.
    pub legs: Vec<LegId>,
    /// Per recorded leg (same order), the format to decode it as when the
    /// leg has no codec of its own (a relayed leg); ignored otherwise.
    pub codecs: Vec<Option<LegCodec>>,
}

/// What a finished recording holds.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordingInfo {
    pub path: PathBuf,
    /// Audio written (excludes paused spans).
    pub duration: Duration,
    /// Sample frames written (samples per channel).
    pub frames: u64,
    /// Packets the legs' jitter buffers concealed (lost or too late).
    pub gaps_filled: u64,
    pub sample_rate: u32,
    pub channels: u16,
}

fn decoder_params(c: &LegCodec) -> Params {
    match c.name.eq_ignore_ascii_case("opus") {
        true => Params::from([("sample_rate".to_string(), OPUS_RATE)]),
        false => Params::new(),
    }
}

fn bad(c: &LegCodec) -> impl Fn(media_core::Error) -> Error + '_ {
    move |e| Error::Invalid(format!("recording {}: {e}", c.name))
}

/// The decoder's output rate for a leg's codec.
fn pcm_rate(c: &LegCodec) -> Result<u32> {
    let d = codec::decoder(&c.name, c.clock_rate, c.channels, &decoder_params(c)).map_err(bad(c))?;
    Ok(d.sample_rate())
}

/// One recorded leg's decode path, owned by the leg so the packet path can
/// feed it without touching the session.
pub(crate) struct Tap {
    jb: JitterBuffer,
    resampler: Option<Resampler>,
    channels: usize,
    pcm: Vec<i16>,
    mono: Vec<i16>,
    /// Concealed packets of jitter buffers replaced since the start.
    carried_lost: u64,
}

impl Tap {
    fn new(c: &LegCodec, rate: u32) -> Result<Tap> {
        let decoder =
            codec::decoder(&c.name, c.clock_rate, c.channels, &decoder_params(c)).map_err(bad(c))?;
        let dec_rate = decoder.sample_rate();
        let channels = usize::from(decoder.channels().max(1));
        let cfg = JitterConfig {
            clock_rate: c.clock_rate,
            ptime_ms: STEP.as_millis() as u32,
            payload_type: Some(PayloadType(c.payload_type)),
            ..JitterConfig::default()
        };
        let jb = JitterBuffer::new(cfg, decoder).map_err(bad(c))?;
        let resampler = match dec_rate == rate {
            true => None,
            false => Some(Resampler::new(dec_rate, rate, 1).map_err(bad(c))?),
        };
        let frame = (dec_rate as usize / 100) * channels;
        Ok(Tap {
            jb,
            resampler,
            channels,
            pcm: Vec::with_capacity(frame),
            mono: Vec::with_capacity(frame * 2),
            carried_lost: 0,
        })
    }

    /// Feeds one received RTP packet (validated by the caller).
    pub fn push(&mut self, packet: &[u8], now: Instant, epoch: Instant) {
        let ms = now.saturating_duration_since(epoch).as_secs_f64() * 1e3;
        let _ = self.jb.push(packet, ms);
    }

    /// Pops one step of mono PCM at the recording rate into `self.mono`;
    /// false before the first packet (nothing to place).
    fn pop(&mut self, at_ms: f64) -> bool {
        self.pcm.clear();
        self.mono.clear();
        if !matches!(self.jb.pop(at_ms, &mut self.pcm), Ok(true)) {
            return false;
        }
        if self.channels > 1 {
            let n = self.channels;
            let down = self.pcm.chunks_exact(n).map(|f| {
                let sum: i32 = f.iter().map(|&s| i32::from(s)).sum();
                (sum / n as i32) as i16
            });
            let mut tmp: Vec<i16> = down.collect();
            std::mem::swap(&mut self.pcm, &mut tmp);
        }
        match self.resampler.as_mut() {
            None => self.mono.extend_from_slice(&self.pcm),
            Some(r) => {
                if r.process(&self.pcm, &mut self.mono).is_err() {
                    return false;
                }
            }
        }
        true
    }

    fn lost(&self) -> u64 {
        self.carried_lost + self.jb.stats().lost + self.jb.stats().late
    }
}

/// A session's recording in progress.
pub(crate) struct Recording {
    path: PathBuf,
    /// (slab key, mixer side, next free timeline position of that leg).
    legs: Vec<(usize, MixLeg, u64)>,
    codecs: Vec<LegCodec>,
    rate: u32,
    mixer: RecordingMixer,
    writer: Option<WavWriter<File>>,
    /// Wall time of timeline position 0, moved forward by pauses.
    origin: Instant,
    paused_at: Option<Instant>,
    steps: u64,
    out: Vec<i16>,
    gaps: u64,
}

impl Recording {
    fn sample_at(&self, now: Instant) -> u64 {
        let d = now.saturating_duration_since(self.origin);
        (d.as_micros() * u128::from(self.rate) / 1_000_000) as u64
    }

    fn step_samples(&self) -> u64 {
        u64::from(self.rate) / 100
    }

    /// Advances the timeline to `now`, writing what it drained. An error
    /// is a failed write: the caller ends the recording.
    fn tick(&mut self, now: Instant, epoch: Instant, legs: &mut Slab<Leg>) -> Result<()> {
        if self.paused_at.is_some() {
            return Ok(());
        }
        let due = (now.saturating_duration_since(self.origin).as_micros() / STEP.as_micros()) as u64;
        if due > self.steps + MAX_CATCH_UP {
            // Far behind (a stalled worker): the gap becomes silence.
            self.steps = due - MAX_CATCH_UP;
        }
        let step = self.step_samples();
        while self.steps < due {
            let at = self.origin + STEP * self.steps as u32;
            let at_ms = at.saturating_duration_since(epoch).as_secs_f64() * 1e3;
            let start = self.steps * step;
            for (key, side, pos) in self.legs.iter_mut() {
                let Some(tap) = legs.get_mut(*key).and_then(|l| l.tap.as_mut()) else {
                    continue;
                };
                if tap.pop(at_ms) {
                    let p = (*pos).max(start).max(self.mixer.position());
                    if self.mixer.push(*side, p, &tap.mono).is_ok() {
                        *pos = p + tap.mono.len() as u64;
                    }
                }
            }
            self.steps += 1;
            self.drain(self.steps * step)?;
        }
        Ok(())
    }

    fn drain(&mut self, up_to: u64) -> Result<()> {
        self.out.clear();
        self.mixer
            .drain(up_to, &mut self.out)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        match self.writer.as_mut() {
            Some(w) if !self.out.is_empty() => w.write(&self.out).map_err(|e| match e {
                media_core::Error::Io(io) => Error::io("writing a recording", std::io::Error::other(io)),
                e => Error::Invalid(e.to_string()),
            }),
            _ => Ok(()),
        }
    }

    fn info(&self, frames: u64) -> RecordingInfo {
        let channels = self.mixer.layout().channels();
        RecordingInfo {
            path: self.path.clone(),
            duration: Duration::from_micros(frames * 1_000_000 / u64::from(self.rate.max(1))),
            frames,
            gaps_filled: self.gaps,
            sample_rate: self.rate,
            channels,
        }
    }
}

/// Installs (or removes, with `None`) a tap on every recorded leg.
fn set_taps(rec: &Recording, legs: &mut Slab<Leg>, on: bool) -> Result<()> {
    for ((key, _, _), c) in rec.legs.iter().zip(&rec.codecs) {
        if let Some(l) = legs.get_mut(*key) {
            let carried = l.tap.as_ref().map_or(0, |t| t.lost());
            l.tap = match on {
                true => {
                    let mut t = Box::new(Tap::new(c, rec.rate)?);
                    t.carried_lost = carried;
                    Some(t)
                }
                false => None,
            };
        }
    }
    Ok(())
}

impl Worker {
    /// Starts recording the session, or resumes a paused recording (the
    /// spec is then ignored). Starting a running recording changes nothing.
    pub(super) fn start_recording(&mut self, session: SessionId, spec: RecordingSpec) -> Result<()> {
        let s = self
            .sessions
            .get(&session)
            .ok_or(Error::UnknownSession(session))?;
        if let Some(rec) = s.recording.as_deref() {
            let Some(paused) = rec.paused_at else {
                return Ok(());
            };
            set_taps(rec, &mut self.legs, true)?;
            let now = Instant::now();
            if let Some(rec) = self.sessions.get_mut(&session).and_then(|s| s.recording.as_mut()) {
                rec.origin += now.saturating_duration_since(paused);
                rec.paused_at = None;
            }
            return Ok(());
        }
        let ids: Vec<LegId> = match spec.legs.len() {
            0 => s.legs.iter().take(2).map(|&(id, _)| id).collect(),
            1 | 2 => spec.legs.clone(),
            n => {
                return Err(Error::Invalid(format!(
                    "a recording has one or two legs, not {n}"
                )))
            }
        };
        if ids.is_empty() {
            return Err(Error::Invalid("the session has no legs to record".into()));
        }
        let mut legs = Vec::new();
        let mut codecs = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            let key = self.leg_key(session, id)?;
            let fallback = spec.codecs.get(i).cloned().flatten();
            let codec = self
                .legs
                .get(key)
                .and_then(|l| l.codec.clone())
                .or(fallback)
                .ok_or_else(|| {
                    Error::Invalid(format!("leg {id} has no codec: a recording needs to decode it"))
                })?;
            legs.push((key, if i == 0 { MixLeg::A } else { MixLeg::B }, 0));
            codecs.push(codec);
        }
        let mut rate = 0;
        for c in &codecs {
            rate = rate.max(pcm_rate(c)?);
        }
        let layout = match (spec.layout, legs.len()) {
            (RecordingLayout::Stereo, 2) => Layout::Stereo,
            _ => Layout::Mono,
        };
        let lag = (rate as usize) * LAG.as_millis() as usize / 1000;
        let mixer = RecordingMixer::new(rate, layout, lag).map_err(|e| Error::Invalid(e.to_string()))?;
        let writer = WavWriter::create(&spec.path, rate, layout.channels()).map_err(|e| match e {
            media_core::Error::Io(io) => Error::io(
                format!("creating the recording {}", spec.path.display()),
                std::io::Error::other(io),
            ),
            e => Error::Invalid(e.to_string()),
        })?;
        let rec = Recording {
            path: spec.path,
            legs,
            codecs,
            rate,
            mixer,
            writer: Some(writer),
            origin: Instant::now(),
            paused_at: None,
            steps: 0,
            out: Vec::with_capacity(rate as usize / 50 * 2),
            gaps: 0,
        };
        set_taps(&rec, &mut self.legs, true)?;
        if let Some(s) = self.sessions.get_mut(&session) {
            s.recording = Some(Box::new(rec));
        }
        self.recordings += 1;
        self.counters.recordings.store(self.recordings, Relaxed);
        Ok(())
    }

    /// Pauses: nothing is written until the recording is started again.
    pub(super) fn pause_recording(&mut self, session: SessionId) -> Result<()> {
        let now = Instant::now();
        let epoch = self.epoch;
        let s = self
            .sessions
            .get_mut(&session)
            .ok_or(Error::UnknownSession(session))?;
        let rec = s
            .recording
            .as_deref_mut()
            .ok_or_else(|| Error::Invalid(format!("session {session} is not recording")))?;
        if rec.paused_at.is_some() {
            return Ok(());
        }
        let r = rec.tick(now, epoch, &mut self.legs);
        rec.paused_at = Some(now);
        // Park the tap counters in the recording before the taps go.
        rec.gaps += rec
            .legs
            .iter()
            .filter_map(|(k, _, _)| self.legs.get(*k).and_then(|l| l.tap.as_ref()).map(|t| t.lost()))
            .sum::<u64>();
        let _ = set_taps(rec, &mut self.legs, false);
        match r {
            Ok(()) => Ok(()),
            Err(e) => {
                self.fail_recording(session, e.to_string());
                Err(e)
            }
        }
    }

    /// Ends the recording: drains up to now, finalizes the WAV header.
    pub(super) fn stop_recording(&mut self, session: SessionId) -> Result<RecordingInfo> {
        let now = Instant::now();
        let epoch = self.epoch;
        let s = self
            .sessions
            .get_mut(&session)
            .ok_or(Error::UnknownSession(session))?;
        let mut rec = s
            .recording
            .take()
            .ok_or_else(|| Error::Invalid(format!("session {session} is not recording")))?;
        self.recordings -= 1;
        self.counters.recordings.store(self.recordings, Relaxed);
        let mut r = rec.tick(now, epoch, &mut self.legs);
        if r.is_ok() && rec.paused_at.is_none() {
            let end = rec.sample_at(now);
            r = rec.drain(end);
        }
        if rec.paused_at.is_none() {
            rec.gaps += rec
                .legs
                .iter()
                .filter_map(|(k, _, _)| self.legs.get(*k).and_then(|l| l.tap.as_ref()).map(|t| t.lost()))
                .sum::<u64>();
        }
        let _ = set_taps(&rec, &mut self.legs, false);
        let frames = rec.writer.as_ref().map_or(0, |w| w.frames_written());
        if let Some(w) = rec.writer.take() {
            if let Err(e) = w.finish() {
                r = r.and(Err(Error::Invalid(format!("finishing the recording: {e}"))));
            }
        }
        if let Err(e) = r {
            self.counters.recordings_failed.fetch_add(1, Relaxed);
            return Err(e);
        }
        Ok(rec.info(frames))
    }

    /// Ends a recording after an error: the WAV keeps what was written.
    fn fail_recording(&mut self, session: SessionId, reason: String) {
        let Some(rec) = self.sessions.get_mut(&session).and_then(|s| s.recording.take()) else {
            return;
        };
        let _ = set_taps(&rec, &mut self.legs, false);
        let bytes = rec
            .writer
            .as_ref()
            .map(|w| w.frames_written() * u64::from(w.channels()) * 2);
        let path = rec.path.clone();
        drop(rec); // WavWriter's Drop rewrites the header for the data written.
                   // A write cut short by the error may have left part of a frame past
                   // the data chunk; trim it (best effort) so the file is canonical.
        if let Some(bytes) = bytes {
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(media_core::wav::HEADER_LEN as u64 + bytes));
        }
        self.recordings -= 1;
        self.counters.recordings.store(self.recordings, Relaxed);
        self.counters.recordings_failed.fetch_add(1, Relaxed);
        self.events.push(Event::RecordingFailed { session, reason });
    }

    /// Runs every recording's timeline up to `now` (the 10 ms media tick).
    pub(super) fn recording_tick(&mut self, now: Instant) {
        let epoch = self.epoch;
        let mut failed = Vec::new();
        for (id, s) in self.sessions.iter_mut() {
            if let Some(rec) = s.recording.as_deref_mut() {
                if let Err(e) = rec.tick(now, epoch, &mut self.legs) {
                    failed.push((*id, e.to_string()));
                }
            }
        }
        for (id, reason) in failed {
            self.fail_recording(id, reason);
        }
    }

    /// After a leg's codec changed: its tap decodes the new codec.
    pub(super) fn retap(&mut self, session: SessionId, key: usize) {
        let codec = self.legs.get(key).and_then(|l| l.codec.clone());
        let Some(rec) = self
            .sessions
            .get_mut(&session)
            .and_then(|s| s.recording.as_deref_mut())
        else {
            return;
        };
        let Some(i) = rec.legs.iter().position(|(k, _, _)| *k == key) else {
            return;
        };
        // A leg back to plain relay keeps being decoded as before.
        let Some(c) = codec else { return };
        if let Some(slot) = rec.codecs.get_mut(i) {
            *slot = c.clone();
        }
        if let Some(l) = self.legs.get_mut(key) {
            if l.tap.is_some() {
                l.tap = Tap::new(&c, rec.rate).ok().map(Box::new);
            }
        }
    }
}
