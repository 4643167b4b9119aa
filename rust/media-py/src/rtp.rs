//! RtpPacket class over media_core::rtp.

use crate::conv::err;
use media_core::rtp::{self, ExtensionElement, HeaderExtension};
use media_core::{PayloadType, RtpTimestamp, SeqNo, Ssrc};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// An RTP packet (RFC 3550 §5.1). Fields are plain attributes; `parse`
/// validates, `serialize` builds the wire form.
#[pyclass(module = "vpbx._native", eq)]
#[derive(Clone, PartialEq)]
pub struct RtpPacket {
    #[pyo3(get)]
    version: u8,
    #[pyo3(get, set)]
    marker: bool,
    #[pyo3(get, set)]
    payload_type: u8,
    #[pyo3(get, set)]
    sequence_number: u16,
    #[pyo3(get, set)]
    timestamp: u32,
    #[pyo3(get, set)]
    ssrc: u32,
    #[pyo3(get, set)]
    csrc: Vec<u32>,
    #[pyo3(get, set)]
    payload: Vec<u8>,
    /// Padding octets appended on serialize (0 = none).
    #[pyo3(get, set)]
    padding_len: u8,
    /// Header extension profile word (0xBEDE = RFC 8285 one-byte), or None.
    #[pyo3(get, set)]
    extension_profile: Option<u16>,
    #[pyo3(get, set)]
    extension_data: Vec<u8>,
}

#[pymethods]
impl RtpPacket {
    #[new]
    #[pyo3(signature = (payload_type=0, sequence_number=0, timestamp=0, ssrc=0, payload=Vec::new(), marker=false, csrc=Vec::new(), padding_len=0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        payload_type: u8,
        sequence_number: u16,
        timestamp: u32,
        ssrc: u32,
        payload: Vec<u8>,
        marker: bool,
        csrc: Vec<u32>,
        padding_len: u8,
    ) -> PyResult<Self> {
        if payload_type > 127 {
            return Err(PyValueError::new_err(format!(
                "payload_type {payload_type} exceeds 127"
            )));
        }
        if csrc.len() > 15 {
            return Err(PyValueError::new_err(format!(
                "{} CSRCs; RTP allows at most 15",
                csrc.len()
            )));
        }
        Ok(RtpPacket {
            version: 2,
            marker,
            payload_type,
            sequence_number,
            timestamp,
            ssrc,
            csrc,
            payload,
            padding_len,
            extension_profile: None,
            extension_data: Vec::new(),
        })
    }

    /// Parses and validates a packet; raises MediaError with the reason.
    #[staticmethod]
    fn parse(data: &[u8]) -> PyResult<Self> {
        let p = rtp::RtpPacket::parse(data).map_err(err)?;
        Ok(RtpPacket {
            version: 2,
            marker: p.marker,
            payload_type: p.payload_type.0,
            sequence_number: p.sequence.0,
            timestamp: p.timestamp.0,
            ssrc: p.ssrc.0,
            csrc: p.csrc.iter().map(|c| c.0).collect(),
            padding_len: p.padding,
            extension_profile: p.extension.as_ref().map(|e| e.profile),
            extension_data: p.extension.map(|e| e.data).unwrap_or_default(),
            payload: p.payload,
        })
    }

    #[getter]
    fn padding(&self) -> bool {
        self.padding_len > 0
    }

    /// RFC 8285 header extension elements as (id, data) pairs.
    fn extensions(&self) -> PyResult<Vec<(u8, Vec<u8>)>> {
        match self.extension_profile {
            None => Ok(Vec::new()),
            Some(p) => Ok(rtp::parse_elements(p, &self.extension_data)
                .map_err(err)?
                .iter()
                .map(|e| (e.id, e.data.to_vec()))
                .collect()),
        }
    }

    /// Replaces the header extension with RFC 8285 elements.
    fn set_extensions(&mut self, elements: Vec<(u8, Vec<u8>)>) -> PyResult<()> {
        let els: Vec<ExtensionElement<'_>> = elements
            .iter()
            .map(|(id, d)| ExtensionElement { id: *id, data: d })
            .collect();
        let ext = HeaderExtension::from_elements(&els).map_err(err)?;
        self.extension_profile = Some(ext.profile);
        self.extension_data = ext.data;
        Ok(())
    }

    fn serialize<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let p = rtp::RtpPacket {
            marker: self.marker,
            payload_type: PayloadType(self.payload_type),
            sequence: SeqNo(self.sequence_number),
            timestamp: RtpTimestamp(self.timestamp),
            ssrc: Ssrc(self.ssrc),
            csrc: self.csrc.iter().map(|&c| Ssrc(c)).collect(),
            extension: self.extension_profile.map(|profile| HeaderExtension {
                profile,
                data: self.extension_data.clone(),
            }),
            payload: self.payload.clone(),
            padding: self.padding_len,
        };
        Ok(PyBytes::new(py, &p.to_bytes().map_err(err)?))
    }

    fn __repr__(&self) -> String {
        format!(
            "RtpPacket(payload_type={}, sequence_number={}, timestamp={}, ssrc=0x{:08x}, marker={}, payload=<{} bytes>)",
            self.payload_type,
            self.sequence_number,
            self.timestamp,
            self.ssrc,
            if self.marker { "True" } else { "False" },
            self.payload.len()
        )
    }
}
