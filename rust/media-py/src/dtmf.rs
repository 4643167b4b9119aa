//! DTMF: in-band detector and tone generator, RFC 4733 event helpers.

use crate::conv::{array, err, samples};
use media_core::dtmf::{self, EventReceiver, EventSender, TelephoneEvent};
use media_core::RtpTimestamp;
use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::sync::Mutex;

/// In-band DTMF detector (Goertzel with ITU-T Q.24-style checks).
#[pyclass(module = "vpbx._native")]
pub struct DtmfDetector {
    inner: Mutex<dtmf::DtmfDetector>,
    #[pyo3(get)]
    clock_rate: u32,
}

#[pymethods]
impl DtmfDetector {
    #[new]
    fn new(clock_rate: u32) -> PyResult<Self> {
        Ok(DtmfDetector {
            inner: Mutex::new(dtmf::DtmfDetector::new(clock_rate).map_err(err)?),
            clock_rate,
        })
    }

    /// Feeds PCM; returns the keys whose press began in it, each once.
    fn feed(&self, py: Python<'_>, pcm: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
        let a = crate::conv::pcm(pcm, "pcm")?;
        let s = samples(&a);
        let mut guard = self.inner.lock().expect("detector lock");
        let d = &mut *guard;
        let keys = py.detach(|| d.feed(&s));
        Ok(keys.into_iter().map(String::from).collect())
    }
}

fn one_char(digit: &str) -> PyResult<char> {
    let mut it = digit.chars();
    match (it.next(), it.next()) {
        (Some(c), None) => Ok(c),
        _ => Err(crate::conv::MediaError::new_err(format!(
            "digit must be one character, got {digit:?}"
        ))),
    }
}

/// A DTMF key as int16 PCM: two sines at `level_dbm0` each.
#[pyfunction]
#[pyo3(signature = (clock_rate, digit, duration_ms, level_dbm0 = -10.0))]
pub fn dtmf_tone<'py>(
    py: Python<'py>,
    clock_rate: u32,
    digit: &str,
    duration_ms: u32,
    level_dbm0: f64,
) -> PyResult<Bound<'py, PyArray1<i16>>> {
    let c = one_char(digit)?;
    let pcm = dtmf::generate_dtmf(clock_rate, c, duration_ms, level_dbm0).map_err(err)?;
    Ok(array(py, pcm))
}

/// RFC 4733 packets of one key press: (marker, timestamp, payload) per
/// packet, one per `ptime_ms`, the final (E bit) packet sent three times.
#[pyfunction]
#[pyo3(signature = (digit, duration_ms, clock_rate = 8000, ptime_ms = 20, volume = 10, timestamp = 0))]
pub fn telephone_event_packets<'py>(
    py: Python<'py>,
    digit: &str,
    duration_ms: u32,
    clock_rate: u32,
    ptime_ms: u32,
    volume: u8,
    timestamp: u32,
) -> PyResult<Vec<(bool, u32, Bound<'py, PyBytes>)>> {
    let c = one_char(digit)?;
    let mut s = EventSender::new(clock_rate, ptime_ms).map_err(err)?;
    s.start(c, duration_ms, volume, RtpTimestamp(timestamp))
        .map_err(err)?;
    let mut out = Vec::new();
    let mut buf = Vec::with_capacity(4);
    while let Some(meta) = s.next_packet(&mut buf) {
        out.push((meta.marker, meta.timestamp.0, PyBytes::new(py, &buf)));
        buf.clear();
    }
    Ok(out)
}

/// Decodes one RFC 4733 payload (§2.3) to a dict.
#[pyfunction]
pub fn parse_telephone_event<'py>(py: Python<'py>, payload: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let e = TelephoneEvent::parse(payload).map_err(err)?;
    let d = PyDict::new(py);
    d.set_item("event", e.event)?;
    d.set_item("digit", e.digit().map(String::from))?;
    d.set_item("end", e.end)?;
    d.set_item("volume", e.volume)?;
    d.set_item("duration", e.duration)?;
    Ok(d)
}

/// Turns a received telephone-event packet stream into key presses, each
/// reported once (when its first packet arrives), whatever is lost or repeated.
#[pyclass(module = "vpbx._native")]
pub struct DtmfEventReceiver {
    inner: Mutex<EventReceiver>,
}

#[pymethods]
impl DtmfEventReceiver {
    #[new]
    #[pyo3(signature = (clock_rate = 8000))]
    fn new(clock_rate: u32) -> PyResult<Self> {
        Ok(DtmfEventReceiver {
            inner: Mutex::new(EventReceiver::new(clock_rate).map_err(err)?),
        })
    }

    /// Returns the digit of a newly started key press, or None.
    fn feed(&self, timestamp: u32, marker: bool, payload: &[u8]) -> PyResult<Option<String>> {
        let ev = self
            .inner
            .lock()
            .expect("receiver lock")
            .feed(RtpTimestamp(timestamp), marker, payload)
            .map_err(err)?;
        Ok(ev.map(|e| e.digit.to_string()))
    }

    /// The press in progress or last seen: digit, duration_ms, volume, ended.
    fn current<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(e) = self.inner.lock().expect("receiver lock").current() else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        d.set_item("digit", e.digit.to_string())?;
        d.set_item("duration_ms", e.duration_ms)?;
        d.set_item("volume", e.volume)?;
        d.set_item("ended", e.ended)?;
        Ok(Some(d))
    }
}
