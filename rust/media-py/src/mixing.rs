//! Mixer, RecordingMixer, WavWriter classes and repair_wav.

use crate::conv::{array, err, samples, MediaError};
use media_core::mixer::{Layout, Leg, Limiter, RecordingMixer as CoreRec};
use media_core::wav;
use numpy::PyArray1;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::fs::File;
use std::sync::Mutex;

/// N-party conference mixer: each participant hears everyone but themself.
#[pyclass(module = "vpbx._native")]
pub struct Mixer {
    inner: Mutex<(media_core::mixer::Mixer, Vec<Vec<i16>>)>,
    #[pyo3(get)]
    frame_samples: usize,
}

#[pymethods]
impl Mixer {
    #[new]
    #[pyo3(signature = (frame_samples, soft_limit = false))]
    fn new(frame_samples: usize, soft_limit: bool) -> Self {
        let lim = if soft_limit { Limiter::Soft } else { Limiter::Hard };
        Mixer {
            inner: Mutex::new((
                media_core::mixer::Mixer::new(frame_samples).with_limiter(lim),
                Vec::new(),
            )),
            frame_samples,
        }
    }

    /// One frame per participant (None = silent) → one output per participant.
    fn mix<'py>(
        &self,
        py: Python<'py>,
        inputs: Vec<Option<Bound<'py, PyAny>>>,
    ) -> PyResult<Vec<Bound<'py, PyArray1<i16>>>> {
        let arrays = inputs
            .iter()
            .map(|o| o.as_ref().map(|a| crate::conv::pcm(a, "mixer input")).transpose())
            .collect::<PyResult<Vec<_>>>()?;
        let owned: Vec<Option<std::borrow::Cow<'_, [i16]>>> =
            arrays.iter().map(|a| a.as_ref().map(samples)).collect();
        let slices: Vec<Option<&[i16]>> = owned.iter().map(|o| o.as_deref()).collect();
        let mut guard = self.inner.lock().expect("mixer lock");
        let (mixer, outs) = &mut *guard;
        outs.resize_with(slices.len(), Vec::new);
        py.detach(|| mixer.mix(&slices, &mut outs[..])).map_err(err)?;
        Ok(outs.iter().map(|o| PyArray1::from_slice(py, o)).collect())
    }

    /// The sum of every participant of the last `mix` (for recording).
    fn full_mix<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i16>> {
        PyArray1::from_slice(py, self.inner.lock().expect("mixer lock").0.full_mix())
    }
}

fn leg(name: &str) -> PyResult<Leg> {
    match name {
        "a" | "A" => Ok(Leg::A),
        "b" | "B" => Ok(Leg::B),
        _ => Err(PyValueError::new_err(format!(
            "leg must be 'a' or 'b', got {name:?}"
        ))),
    }
}

/// Two call legs onto one real-time recording timeline: mono (sum) or stereo
/// (leg A left, leg B right); silence wherever a leg sent nothing.
#[pyclass(module = "vpbx._native")]
pub struct RecordingMixer {
    inner: Mutex<CoreRec>,
    #[pyo3(get)]
    sample_rate: u32,
    #[pyo3(get)]
    channels: u16,
}

#[pymethods]
impl RecordingMixer {
    #[new]
    #[pyo3(signature = (sample_rate, stereo = true, max_lag_ms = 2000))]
    fn new(sample_rate: u32, stereo: bool, max_lag_ms: u32) -> PyResult<Self> {
        let layout = if stereo { Layout::Stereo } else { Layout::Mono };
        let lag = (u64::from(sample_rate) * u64::from(max_lag_ms) / 1000) as usize;
        let m = CoreRec::new(sample_rate, layout, lag).map_err(err)?;
        Ok(RecordingMixer {
            inner: Mutex::new(m),
            sample_rate,
            channels: layout.channels(),
        })
    }

    /// Places `pcm` of leg 'a' or 'b' at sample position `at_sample`.
    fn push(&self, py: Python<'_>, leg_name: &str, at_sample: u64, pcm: &Bound<'_, PyAny>) -> PyResult<()> {
        let l = leg(leg_name)?;
        let a = crate::conv::pcm(pcm, "pcm")?;
        let s = samples(&a);
        let mut guard = self.inner.lock().expect("recording lock");
        let m = &mut *guard;
        py.detach(|| m.push(l, at_sample, &s)).map_err(err)
    }

    /// Everything from the last drained position up to `up_to_sample`
    /// (interleaved when stereo).
    fn drain<'py>(&self, py: Python<'py>, up_to_sample: u64) -> PyResult<Bound<'py, PyArray1<i16>>> {
        let mut out = Vec::new();
        let mut guard = self.inner.lock().expect("recording lock");
        let m = &mut *guard;
        py.detach(|| m.drain(up_to_sample, &mut out)).map_err(err)?;
        Ok(array(py, out))
    }

    #[getter]
    fn position(&self) -> u64 {
        self.inner.lock().expect("recording lock").position()
    }

    /// Per-leg counters in samples.
    fn stats<'py>(&self, py: Python<'py>, leg_name: &str) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.lock().expect("recording lock").stats(leg(leg_name)?);
        let d = PyDict::new(py);
        d.set_item("samples_written", s.samples_written)?;
        d.set_item("samples_overwritten", s.samples_overwritten)?;
        d.set_item("late_samples_dropped", s.late_samples_dropped)?;
        d.set_item("silence_samples_inserted", s.silence_samples_inserted)?;
        d.set_item("samples_rejected", s.samples_rejected)?;
        Ok(d)
    }
}

/// 16-bit PCM WAV file whose header is rewritten every `header_interval_ms`
/// of audio, so a crash leaves a playable file (see `repair_wav`).
#[pyclass(module = "vpbx._native")]
pub struct WavWriter {
    inner: Mutex<Option<wav::WavWriter<File>>>,
    #[pyo3(get)]
    path: String,
}

impl WavWriter {
    fn with<T>(&self, f: impl FnOnce(&mut wav::WavWriter<File>) -> media_core::Result<T>) -> PyResult<T> {
        let mut g = self.inner.lock().expect("wav lock");
        let w = g
            .as_mut()
            .ok_or_else(|| MediaError::new_err(format!("{}: writer is closed", self.path)))?;
        f(w).map_err(err)
    }
}

#[pymethods]
impl WavWriter {
    #[new]
    #[pyo3(signature = (path, sample_rate, channels = 1, header_interval_ms = 1000))]
    fn new(
        path: std::path::PathBuf,
        sample_rate: u32,
        channels: u16,
        header_interval_ms: u32,
    ) -> PyResult<Self> {
        let frames = u64::from(sample_rate) * u64::from(header_interval_ms) / 1000;
        let w = wav::WavWriter::create(&path, sample_rate, channels)
            .map_err(|e| MediaError::new_err(format!("{}: {e}", path.display())))?
            .with_header_interval(frames);
        Ok(WavWriter {
            inner: Mutex::new(Some(w)),
            path: path.display().to_string(),
        })
    }

    /// Appends interleaved samples. On a failed write (e.g. a full disk) the
    /// file stays a valid WAV of everything written before.
    fn write(&self, py: Python<'_>, pcm: &Bound<'_, PyAny>) -> PyResult<()> {
        let a = crate::conv::pcm(pcm, "pcm")?;
        let s = samples(&a);
        let mut g = self.inner.lock().expect("wav lock");
        let w = g
            .as_mut()
            .ok_or_else(|| MediaError::new_err(format!("{}: writer is closed", self.path)))?;
        py.detach(|| w.write(&s))
            .map_err(|e| MediaError::new_err(format!("{}: {e}", self.path)))
    }

    /// Rewrites the header to cover everything written so far.
    fn flush(&self) -> PyResult<()> {
        self.with(|w| w.flush())
    }

    #[getter]
    fn frames_written(&self) -> PyResult<u64> {
        self.with(|w| Ok(w.frames_written()))
    }

    /// Writes the final header and closes the file (idempotent).
    fn close(&self) -> PyResult<()> {
        match self.inner.lock().expect("wav lock").take() {
            Some(w) => w.finish().map(|_| ()).map_err(err),
            None => Ok(()),
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        _t: Option<Bound<'_, PyAny>>,
        _v: Option<Bound<'_, PyAny>>,
        _tb: Option<Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.close()?;
        Ok(false)
    }
}

/// Fixes the sizes in the header of a WAV whose writer died; returns a report.
#[pyfunction]
pub fn repair_wav<'py>(py: Python<'py>, path: std::path::PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let r = py
        .detach(|| wav::repair(&path))
        .map_err(|e| MediaError::new_err(format!("{}: {e}", path.display())))?;
    let d = PyDict::new(py);
    d.set_item("changed", r.changed)?;
    d.set_item("frames", r.frames)?;
    d.set_item("old_data_size", r.old_data_size)?;
    d.set_item("new_data_size", r.new_data_size)?;
    d.set_item("old_riff_size", r.old_riff_size)?;
    d.set_item("new_riff_size", r.new_riff_size)?;
    d.set_item("trimmed_bytes", r.trimmed_bytes)?;
    Ok(d)
}
