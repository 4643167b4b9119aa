//! Encoder, Decoder and Resampler classes.

use crate::conv::{array, err, samples};
use media_core::codec;
use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::sync::Mutex;

/// SDP names of every codec in the registry.
#[pyfunction]
pub fn codec_names() -> Vec<&'static str> {
    codec::REGISTRY.iter().map(|c| c.name).collect()
}

#[pyclass(module = "vpbx._native")]
pub struct Encoder {
    inner: Mutex<(Box<dyn codec::Encoder>, Vec<u8>)>,
    #[pyo3(get)]
    name: &'static str,
    #[pyo3(get)]
    sample_rate: u32,
    #[pyo3(get)]
    clock_rate: u32,
    #[pyo3(get)]
    channels: u8,
}

#[pymethods]
impl Encoder {
    #[new]
    #[pyo3(signature = (name, clock_rate, channels = 1, **params))]
    fn new(name: &str, clock_rate: u32, channels: u8, params: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let p = crate::conv::params(params)?;
        let e = codec::encoder(name, clock_rate, channels, &p).map_err(err)?;
        Ok(Encoder {
            name: e.name(),
            sample_rate: e.sample_rate(),
            clock_rate: e.clock_rate(),
            channels: e.channels(),
            inner: Mutex::new((e, Vec::with_capacity(4096))),
        })
    }

    /// Encodes one frame of int16 PCM at `sample_rate` to one RTP payload.
    fn encode<'py>(&self, py: Python<'py>, pcm: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
        let a = crate::conv::pcm(pcm, "pcm")?;
        let s = samples(&a);
        let mut guard = self.inner.lock().expect("encoder lock");
        let (enc, out) = &mut *guard;
        let enc: &mut dyn codec::Encoder = &mut **enc;
        out.clear();
        py.detach(|| enc.encode(&s, out)).map_err(err)?;
        Ok(PyBytes::new(py, out))
    }

    fn __repr__(&self) -> String {
        format!(
            "Encoder({:?}, {}, channels={})",
            self.name, self.clock_rate, self.channels
        )
    }
}

#[pyclass(module = "vpbx._native")]
pub struct Decoder {
    inner: Mutex<(Box<dyn codec::Decoder>, Vec<i16>)>,
    #[pyo3(get)]
    name: &'static str,
    #[pyo3(get)]
    sample_rate: u32,
    #[pyo3(get)]
    clock_rate: u32,
    #[pyo3(get)]
    channels: u8,
}

#[pymethods]
impl Decoder {
    #[new]
    #[pyo3(signature = (name, clock_rate, channels = 1, **params))]
    fn new(name: &str, clock_rate: u32, channels: u8, params: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let p = crate::conv::params(params)?;
        let d = codec::decoder(name, clock_rate, channels, &p).map_err(err)?;
        Ok(Decoder {
            name: d.name(),
            sample_rate: d.sample_rate(),
            clock_rate: d.clock_rate(),
            channels: d.channels(),
            inner: Mutex::new((d, Vec::with_capacity(5760))),
        })
    }

    /// Decodes one RTP payload to int16 PCM at `sample_rate`.
    fn decode<'py>(&self, py: Python<'py>, payload: &[u8]) -> PyResult<Bound<'py, PyArray1<i16>>> {
        // Decode into a reused buffer, then one copy into the numpy array:
        // cheaper than a fresh allocation per call.
        let mut guard = self.inner.lock().expect("decoder lock");
        let (dec, out) = &mut *guard;
        let dec: &mut dyn codec::Decoder = &mut **dec;
        out.clear();
        py.detach(|| dec.decode(payload, out)).map_err(err)?;
        Ok(PyArray1::from_slice(py, out))
    }

    /// `samples` (per channel) of loss concealment.
    fn conceal<'py>(&self, py: Python<'py>, samples: usize) -> PyResult<Bound<'py, PyArray1<i16>>> {
        check_len(samples, self.sample_rate)?;
        let mut out = Vec::with_capacity(samples * usize::from(self.channels));
        let mut guard = self.inner.lock().expect("decoder lock");
        let dec: &mut dyn codec::Decoder = &mut *guard.0;
        py.detach(|| dec.conceal(samples, &mut out)).map_err(err)?;
        Ok(array(py, out))
    }

    /// Rebuilds a lost frame from the FEC data of the packet after it (Opus);
    /// conceals for codecs without FEC.
    fn recover<'py>(
        &self,
        py: Python<'py>,
        next_payload: &[u8],
        samples: usize,
    ) -> PyResult<Bound<'py, PyArray1<i16>>> {
        check_len(samples, self.sample_rate)?;
        let mut out = Vec::with_capacity(samples * usize::from(self.channels));
        let mut guard = self.inner.lock().expect("decoder lock");
        let dec: &mut dyn codec::Decoder = &mut *guard.0;
        py.detach(|| dec.recover(next_payload, samples, &mut out))
            .map_err(err)?;
        Ok(array(py, out))
    }

    /// Duration of a payload in samples per channel.
    fn samples_in(&self, payload: &[u8]) -> PyResult<usize> {
        self.inner
            .lock()
            .expect("decoder lock")
            .0
            .samples_in(payload)
            .map_err(err)
    }

    fn __repr__(&self) -> String {
        format!(
            "Decoder({:?}, {}, channels={})",
            self.name, self.clock_rate, self.channels
        )
    }
}

/// At most 10 s of concealment per call keeps a typo from allocating gigabytes.
fn check_len(samples: usize, rate: u32) -> PyResult<()> {
    if samples > rate as usize * 10 {
        return Err(crate::conv::MediaError::new_err(format!(
            "samples={samples} is more than 10 s at {rate} Hz"
        )));
    }
    Ok(())
}

#[pyclass(module = "vpbx._native")]
pub struct Resampler {
    inner: Mutex<media_core::resample::Resampler>,
    #[pyo3(get)]
    in_rate: u32,
    #[pyo3(get)]
    out_rate: u32,
}

#[pymethods]
impl Resampler {
    #[new]
    #[pyo3(signature = (in_rate, out_rate, channels = 1))]
    fn new(in_rate: u32, out_rate: u32, channels: u8) -> PyResult<Self> {
        let r = media_core::resample::Resampler::new(in_rate, out_rate, channels).map_err(err)?;
        Ok(Resampler {
            inner: Mutex::new(r),
            in_rate,
            out_rate,
        })
    }

    /// Converts a block of PCM; returns every output sample that is ready.
    fn process<'py>(&self, py: Python<'py>, pcm: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray1<i16>>> {
        let a = crate::conv::pcm(pcm, "pcm")?;
        let s = samples(&a);
        let mut out = Vec::with_capacity(s.len() * 6 + 64);
        let mut guard = self.inner.lock().expect("resampler lock");
        let r = &mut *guard;
        py.detach(|| r.process(&s, &mut out)).map_err(err)?;
        Ok(array(py, out))
    }

    /// Output samples per channel by which the signal is delayed.
    #[getter]
    fn delay(&self) -> usize {
        self.inner.lock().expect("resampler lock").delay()
    }
}
