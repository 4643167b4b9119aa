//! Crash-tolerant RIFF/WAVE writer for 16-bit PCM, and repair of WAV files
//! whose header sizes went stale because the writer died.
//!
//! Format: Microsoft/IBM "Multimedia Programming Interface and Data
//! Specifications 1.0" (1991), RIFF chunks and the WAVE form: a `RIFF` chunk
//! whose size counts everything after its 8-byte header, form type `WAVE`, a
//! `fmt ` chunk (WAVE_FORMAT_PCM = 1, 16 bytes) and a `data` chunk.
//!
//! Crash safety: sample bytes go to the underlying writer as they come; every
//! `header_interval` sample frames (and on `flush`/`finish`/drop) the whole
//! 44-byte header is rewritten in one write with the sizes of the data
//! written so far. A killed process therefore leaves a playable file holding
//! at least everything up to the last header update; [`repair`] recovers the
//! rest. After an I/O error the header is rewritten to match the data of all
//! successful `write` calls.

mod repair;
#[cfg(test)]
mod tests;

pub use repair::{repair, RepairReport};

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

/// Length of the canonical header: RIFF (12) + fmt chunk (8 + 16) + data chunk header (8).
pub const HEADER_LEN: usize = 44;
/// Largest `data` chunk: the RIFF size (36 + data) must fit in 32 bits.
pub const MAX_DATA_BYTES: u32 = u32::MAX - 36 - 1; // even, so always whole 16-bit samples
const WAVE_FORMAT_PCM: u16 = 1;
const BITS_PER_SAMPLE: u16 = 16;

/// The canonical 44-byte header for 16-bit PCM with `data_bytes` of samples.
fn header(sample_rate: u32, channels: u16, data_bytes: u32) -> [u8; HEADER_LEN] {
    let block_align = channels * (BITS_PER_SAMPLE / 8);
    let byte_rate = sample_rate.saturating_mul(block_align as u32); // checked in `new`
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36 + data_bytes).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&WAVE_FORMAT_PCM.to_le_bytes());
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&sample_rate.to_le_bytes());
    h[28..32].copy_from_slice(&byte_rate.to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&BITS_PER_SAMPLE.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_bytes.to_le_bytes());
    h
}

/// Streaming 16-bit PCM WAV writer (mono or stereo, any rate) that keeps the
/// file playable if the process dies mid-recording. See the module docs.
///
/// The WAV starts at the writer's position when [`WavWriter::new`] is called.
/// Writes go straight to `W`: with a plain [`File`] every sample is with the
/// OS as soon as `write` returns. Wrapping `W` in a `BufWriter` saves system
/// calls but a crash may then lose up to a buffer of audio.
#[derive(Debug)]
pub struct WavWriter<W: Write + Seek> {
    inner: Option<W>,
    base: u64,
    sample_rate: u32,
    channels: u16,
    /// Bytes of sample data from all successful `write` calls.
    data_bytes: u32,
    header_interval: u64,
    frames_since_header: u64,
    scratch: Vec<u8>,
    /// Set when an error left the stream position unknown; writes then fail.
    poisoned: bool,
}

impl WavWriter<File> {
    /// Creates (or truncates) the file at `path` and writes the header.
    pub fn create(path: impl AsRef<Path>, sample_rate: u32, channels: u16) -> Result<Self> {
        check_format(sample_rate, channels)?;
        WavWriter::new(File::create(path)?, sample_rate, channels)
    }
}

fn check_format(sample_rate: u32, channels: u16) -> Result<()> {
    if !(1..=2).contains(&channels) {
        return Err(Error::invalid(format!(
            "wav: {channels} channels, only 1 or 2 supported"
        )));
    }
    if sample_rate == 0 || sample_rate.checked_mul(channels as u32 * 2).is_none() {
        return Err(Error::invalid(format!(
            "wav: sample rate {sample_rate} out of range"
        )));
    }
    Ok(())
}

impl<W: Write + Seek> WavWriter<W> {
    /// Writes a header (sizes 0) at the current position of `w`. The header is
    /// refreshed every second of audio by default, see [`with_header_interval`](Self::with_header_interval).
    pub fn new(mut w: W, sample_rate: u32, channels: u16) -> Result<Self> {
        check_format(sample_rate, channels)?;
        let base = w.stream_position()?;
        w.write_all(&header(sample_rate, channels, 0))?;
        Ok(WavWriter {
            inner: Some(w),
            base,
            sample_rate,
            channels,
            data_bytes: 0,
            header_interval: sample_rate as u64,
            frames_since_header: 0,
            scratch: Vec::new(),
            poisoned: false,
        })
    }

    /// Rewrite the header every `frames` sample frames (samples per channel);
    /// 0 rewrites it after every `write`.
    pub fn with_header_interval(mut self, frames: u64) -> Self {
        self.header_interval = frames;
        self
    }

    pub fn set_header_interval(&mut self, frames: u64) {
        self.header_interval = frames;
    }

    pub fn header_interval(&self) -> u64 {
        self.header_interval
    }

    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Sample frames (samples per channel) successfully written.
    pub fn frames_written(&self) -> u64 {
        self.data_bytes as u64 / (self.channels as u64 * 2)
    }

    /// Appends interleaved samples (`pcm.len()` a multiple of the channel count).
    ///
    /// All or nothing: on an I/O error (`Error::Io`, e.g. disk full) none of
    /// this call's samples count, the header is rewritten to cover exactly
    /// the earlier calls, and the call may be retried. A write that would push
    /// the data past the 4 GiB RIFF limit is refused (`InvalidArgument`).
    pub fn write(&mut self, pcm: &[i16]) -> Result<()> {
        let channels = self.channels as usize;
        if pcm.len() / channels * channels != pcm.len() {
            return Err(Error::invalid(format!(
                "wav: {} samples is not a whole number of {}-channel frames",
                pcm.len(),
                self.channels
            )));
        }
        let bytes = u32::try_from(pcm.len() * 2)
            .ok()
            .and_then(|b| self.data_bytes.checked_add(b))
            .filter(|&total| total <= MAX_DATA_BYTES);
        let Some(new_total) = bytes else {
            return Err(Error::invalid("wav: data would exceed the 4 GiB RIFF size limit"));
        };
        self.ready()?;
        self.scratch.clear();
        self.scratch.extend(pcm.iter().flat_map(|s| s.to_le_bytes()));
        let w = self.inner.as_mut().ok_or_else(finished)?;
        if let Err(e) = w.write_all(&self.scratch) {
            self.resync();
            return Err(e.into());
        }
        self.data_bytes = new_total;
        self.frames_since_header += (pcm.len() / self.channels as usize) as u64;
        if self.frames_since_header >= self.header_interval {
            self.update_header()?;
        }
        Ok(())
    }

    /// Rewrites the header with the current sizes and flushes `W`.
    pub fn flush(&mut self) -> Result<()> {
        self.ready()?;
        self.update_header()?;
        let w = self.inner.as_mut().ok_or_else(finished)?;
        w.flush().map_err(|e| {
            self.poisoned = true;
            e.into()
        })
    }

    /// Writes the final sizes, flushes and hands back the underlying writer.
    pub fn finish(mut self) -> Result<W> {
        self.flush()?;
        self.inner.take().ok_or_else(finished)
    }

    fn ready(&self) -> Result<()> {
        if self.poisoned {
            return Err(Error::Io(
                "wav: an earlier i/o error left the stream position unknown".into(),
            ));
        }
        Ok(())
    }

    /// One write of the whole header at the WAV's start, then back to the end
    /// of the data. On error, tries [`resync`](Self::resync).
    fn update_header(&mut self) -> Result<()> {
        match self.write_header_and_return() {
            Ok(()) => {
                self.frames_since_header = 0;
                Ok(())
            }
            Err(e) => {
                self.resync();
                Err(e.into())
            }
        }
    }

    fn write_header_and_return(&mut self) -> std::io::Result<()> {
        let h = header(self.sample_rate, self.channels, self.data_bytes);
        let end = self.base + HEADER_LEN as u64 + self.data_bytes as u64;
        let Some(w) = self.inner.as_mut() else {
            return Ok(());
        };
        w.seek(SeekFrom::Start(self.base))?;
        w.write_all(&h)?;
        w.seek(SeekFrom::Start(end))?;
        Ok(())
    }

    /// After an error: make the header describe exactly the successful writes
    /// and put the position back at their end, so a retry continues cleanly.
    /// If even that fails, the position is unknown: poison the writer.
    fn resync(&mut self) {
        if self.write_header_and_return().is_err() {
            self.poisoned = true;
        } else {
            self.frames_since_header = 0;
        }
    }
}

fn finished() -> Error {
    Error::invalid("wav: writer already finished")
}

impl<W: Write + Seek> Drop for WavWriter<W> {
    /// Best effort: leave exact sizes behind if the writer is dropped
    /// without [`finish`](WavWriter::finish) (e.g. while unwinding).
    fn drop(&mut self) {
        if self.inner.is_some() && !self.poisoned {
            let _ = self.flush();
        }
    }
}
