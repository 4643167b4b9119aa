//! JitterBuffer class over media_core::jitter.

use crate::conv::{array, err};
use media_core::codec::{self, Params};
use media_core::jitter::{self, JitterConfig};
use media_core::PayloadType;
use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::Mutex;

/// Adaptive jitter buffer with decoding and concealment for one RTP stream.
/// `push` every packet with its arrival time; `pop` every `ptime_ms` by your
/// clock to get exactly one ptime of PCM (None until the first packet).
#[pyclass(module = "vpbx._native")]
pub struct JitterBuffer {
    inner: Mutex<jitter::JitterBuffer>,
    #[pyo3(get)]
    clock_rate: u32,
    #[pyo3(get)]
    ptime_ms: u32,
    #[pyo3(get)]
    sample_rate: u32,
    #[pyo3(get)]
    codec: &'static str,
}

#[pymethods]
impl JitterBuffer {
    #[new]
    #[pyo3(signature = (
        clock_rate, ptime_ms = 20, codec = "PCMU", channels = 1, payload_type = None,
        sample_rate = None, min_delay_ms = None, max_delay_ms = None, max_packets = None,
        quantile = None, history_ms = None, peak_hold_ms = None, shrink_rate = None,
        max_conceal_ms = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        clock_rate: u32,
        ptime_ms: u32,
        codec: &str,
        channels: u8,
        payload_type: Option<u8>,
        sample_rate: Option<i64>,
        min_delay_ms: Option<u32>,
        max_delay_ms: Option<u32>,
        max_packets: Option<usize>,
        quantile: Option<f64>,
        history_ms: Option<u32>,
        peak_hold_ms: Option<u32>,
        shrink_rate: Option<f64>,
        max_conceal_ms: Option<u32>,
    ) -> PyResult<Self> {
        let mut p = Params::new();
        if let Some(sr) = sample_rate {
            p.insert("sample_rate".into(), sr);
        }
        let dec = codec::decoder(codec, clock_rate, channels, &p).map_err(err)?;
        let d = JitterConfig::default();
        let cfg = JitterConfig {
            clock_rate,
            ptime_ms,
            payload_type: payload_type.map(PayloadType),
            min_delay_ms: min_delay_ms.unwrap_or(d.min_delay_ms),
            max_delay_ms: max_delay_ms.unwrap_or(d.max_delay_ms),
            max_packets: max_packets.unwrap_or(d.max_packets),
            quantile: quantile.unwrap_or(d.quantile),
            history_ms: history_ms.unwrap_or(d.history_ms),
            peak_hold_ms: peak_hold_ms.unwrap_or(d.peak_hold_ms),
            shrink_rate: shrink_rate.unwrap_or(d.shrink_rate),
            max_conceal_ms: max_conceal_ms.unwrap_or(d.max_conceal_ms),
        };
        let (name, rate) = (dec.name(), dec.sample_rate());
        let jb = jitter::JitterBuffer::new(cfg, dec).map_err(err)?;
        Ok(JitterBuffer {
            inner: Mutex::new(jb),
            clock_rate,
            ptime_ms,
            sample_rate: rate,
            codec: name,
        })
    }

    /// Adds one RTP packet that arrived at `arrival_ms` (your clock). A
    /// malformed packet raises MediaError and changes nothing.
    fn push(&self, py: Python<'_>, packet: &[u8], arrival_ms: f64) -> PyResult<()> {
        let mut guard = self.inner.lock().expect("jitter lock");
        let jb = &mut *guard;
        py.detach(|| jb.push(packet, arrival_ms)).map_err(err)
    }

    /// One ptime of decoded PCM (concealed where packets are missing), or
    /// None before the first packet.
    fn pop<'py>(&self, py: Python<'py>, now_ms: f64) -> PyResult<Option<Bound<'py, PyArray1<i16>>>> {
        let mut out = Vec::with_capacity(self.sample_rate as usize * self.ptime_ms as usize / 1000 * 2);
        let mut guard = self.inner.lock().expect("jitter lock");
        let jb = &mut *guard;
        let produced = py.detach(|| jb.pop(now_ms, &mut out)).map_err(err)?;
        Ok(produced.then(|| array(py, out)))
    }

    /// Delays (ms) and counters: see the module documentation.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.lock().expect("jitter lock").stats();
        let d = PyDict::new(py);
        d.set_item("current_delay_ms", s.current_delay_ms)?;
        d.set_item("target_delay_ms", s.target_delay_ms)?;
        d.set_item("mean_delay_ms", s.mean_delay_ms)?;
        d.set_item("packets_received", s.packets_received)?;
        d.set_item("played", s.played)?;
        d.set_item("late", s.late)?;
        d.set_item("lost", s.lost)?;
        d.set_item("discarded", s.discarded)?;
        d.set_item("duplicates", s.duplicates)?;
        d.set_item("reordered", s.reordered)?;
        d.set_item("concealed_samples", s.concealed_samples)?;
        d.set_item("silence_samples", s.silence_samples)?;
        d.set_item("accelerated_samples", s.accelerated_samples)?;
        d.set_item("expanded_samples", s.expanded_samples)?;
        d.set_item("buffered_packets", s.buffered_packets)?;
        d.set_item("ssrc_changes", s.ssrc_changes)?;
        d.set_item("timestamp_jumps", s.timestamp_jumps)?;
        Ok(d)
    }
}
