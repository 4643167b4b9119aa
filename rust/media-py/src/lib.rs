//! `vpbx._native`: the PyO3 export table of the media core and the media
//! engine. No media logic lives here: only argument conversion, error
//! mapping and GIL release.

mod codec;
mod conv;
mod dtmf;
mod engine;
mod engine_args;
mod engine_dicts;
mod jitter;
mod mixing;
mod rtp;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("MediaError", m.py().get_type::<conv::MediaError>())?;
    m.add_class::<codec::Encoder>()?;
    m.add_class::<codec::Decoder>()?;
    m.add_class::<codec::Resampler>()?;
    m.add_function(wrap_pyfunction!(codec::codec_names, m)?)?;
    m.add_class::<rtp::RtpPacket>()?;
    m.add_class::<jitter::JitterBuffer>()?;
    m.add_class::<dtmf::DtmfDetector>()?;
    m.add_class::<dtmf::DtmfEventReceiver>()?;
    m.add_function(wrap_pyfunction!(dtmf::dtmf_tone, m)?)?;
    m.add_function(wrap_pyfunction!(dtmf::telephone_event_packets, m)?)?;
    m.add_function(wrap_pyfunction!(dtmf::parse_telephone_event, m)?)?;
    m.add_class::<mixing::Mixer>()?;
    m.add_class::<mixing::RecordingMixer>()?;
    m.add_class::<mixing::WavWriter>()?;
    m.add_function(wrap_pyfunction!(mixing::repair_wav, m)?)?;
    m.add_class::<engine::Engine>()?;
    Ok(())
}
