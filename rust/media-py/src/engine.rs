//! `Engine`: the in-process media engine (crate `media_engine`), the control
//! plane's way in. Conversion only: Python values in, one engine call out
//! (with the GIL released while a worker answers), plain dicts back. Nothing
//! here runs per packet; events reach asyncio through `event_fd()` +
//! `poll_events()` (DESIGN.md §3.2). The dict keys are a contract, listed in
//! `python/vpbx/_native.pyi` and typed in `vpbx.media.engine`.

use crate::conv::MediaError;
use crate::engine_args::{
    err, int_in, leg_codec, leg_dtmf, leg_id, parse_addr, seconds, session_id, DecodeAs,
};
use crate::engine_dicts::{addr, engine_stats_dict, event_dict, session_stats_dict};
use media_engine as me;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

/// The media engine in this process: UDP port pools, worker threads that
/// relay (and transcode) RTP/RTCP, stats and events. `close()` (or leaving
/// a `with` block, or garbage collection) stops the workers and frees every
/// port.
#[pyclass(module = "vpbx._native")]
pub struct Engine {
    /// `None` once closed. Calls clone the `Arc` and release the lock (and
    /// the GIL) while a worker answers, so threads never wait on each other.
    inner: Mutex<Option<Arc<me::Engine>>>,
}

impl Engine {
    fn lock(&self) -> MutexGuard<'_, Option<Arc<me::Engine>>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn engine(&self) -> PyResult<Arc<me::Engine>> {
        self.lock()
            .as_ref()
            .cloned()
            .ok_or_else(|| MediaError::new_err("the media engine is closed"))
    }
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (
        interfaces = vec!["127.0.0.1".to_string()], port_min = 30000, port_max = 40000, workers = 0,
        max_sessions = None, media_timeout_s = None, strict_source = false, max_pps_per_leg = None,
        relatch_after_s = None, opus_complexity = None, event_queue_capacity = None,
        control_timeout_s = None, socket_recv_buffer = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        interfaces: Vec<String>,
        port_min: i64,
        port_max: i64,
        workers: i64,
        max_sessions: Option<i64>,
        media_timeout_s: Option<f64>,
        strict_source: bool,
        max_pps_per_leg: Option<i64>,
        relatch_after_s: Option<f64>,
        opus_complexity: Option<i64>,
        event_queue_capacity: Option<i64>,
        control_timeout_s: Option<f64>,
        socket_recv_buffer: Option<i64>,
    ) -> PyResult<Self> {
        let d = me::EngineConfig::default();
        let interfaces = interfaces
            .iter()
            .map(|s| s.parse::<me::InterfaceSpec>())
            .collect::<me::Result<Vec<_>>>()
            .map_err(err)?;
        let big = i64::from(u32::MAX);
        let config = me::EngineConfig {
            interfaces,
            port_min: int_in("port_min", port_min, 1, 65535)?,
            port_max: int_in("port_max", port_max, 1, 65535)?,
            workers: int_in("workers", workers, 0, 1024)?,
            max_sessions: max_sessions.map_or(Ok(d.max_sessions), |v| int_in("max_sessions", v, 1, big))?,
            max_pps_per_leg: max_pps_per_leg
                .map_or(Ok(d.max_pps_per_leg), |v| int_in("max_pps_per_leg", v, 0, big))?,
            media_timeout: media_timeout_s
                .map_or(Ok(d.media_timeout), |v| seconds("media_timeout_s", v, true))?,
            strict_source,
            relatch_after: relatch_after_s
                .map_or(Ok(d.relatch_after), |v| seconds("relatch_after_s", v, false))?,
            event_queue_capacity: event_queue_capacity.map_or(Ok(d.event_queue_capacity), |v| {
                int_in("event_queue_capacity", v, 1, big)
            })?,
            control_timeout: control_timeout_s
                .map_or(Ok(d.control_timeout), |v| seconds("control_timeout_s", v, true))?,
            socket_recv_buffer: socket_recv_buffer.map_or(Ok(d.socket_recv_buffer), |v| {
                int_in("socket_recv_buffer", v, 0, big)
            })?,
            opus_complexity: opus_complexity
                .map_or(Ok(d.opus_complexity), |v| int_in("opus_complexity", v, 0, 10))?,
        };
        let engine = py.detach(|| me::Engine::start(config)).map_err(err)?;
        Ok(Engine {
            inner: Mutex::new(Some(Arc::new(engine))),
        })
    }

    /// Creates the media session of a call; returns its id.
    fn create_session(&self, py: Python<'_>, call_id: &str) -> PyResult<u64> {
        let e = self.engine()?;
        py.detach(|| e.create_session(call_id)).map(|s| s.0).map_err(err)
    }

    /// Allocates ports for one endpoint's stream; returns the addresses for SDP.
    #[pyo3(signature = (
        session, *, interface = None, rtcp_mux = false, label = None, strict_source = None,
        codec = None, clock_rate = None, channels = 1, payload_type = None, ptime_ms = 20,
        latching = "symmetric",
    ))]
    #[allow(clippy::too_many_arguments)]
    fn add_leg<'py>(
        &self,
        py: Python<'py>,
        session: i64,
        interface: Option<String>,
        rtcp_mux: bool,
        label: Option<String>,
        strict_source: Option<bool>,
        codec: Option<&str>,
        clock_rate: Option<i64>,
        channels: i64,
        payload_type: Option<i64>,
        ptime_ms: i64,
        latching: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let sid = session_id(session)?;
        let latching: me::Latching = latching.parse().map_err(err)?;
        let clock_rate = clock_rate
            .map(|r| int_in::<u32>("clock_rate", r, 1, 1_000_000))
            .transpose()?;
        let codec = match codec {
            Some(name) => Some(leg_codec(name, clock_rate, channels, payload_type, ptime_ms)?),
            None if payload_type.is_some() => {
                return Err(MediaError::new_err(
                    "payload_type needs codec: without one the leg relays whatever arrives",
                ))
            }
            None => None,
        };
        let spec = me::LegSpec {
            interface,
            rtcp_mux,
            label,
            strict_source,
            latching,
            clock_rate: codec
                .as_ref()
                .map(|c| c.clock_rate)
                .or(clock_rate)
                .unwrap_or(8000),
            codec,
        };
        let e = self.engine()?;
        let info = py.detach(|| e.add_leg(sid, &spec)).map_err(err)?;
        let d = PyDict::new(py);
        d.set_item("leg", info.leg.0)?;
        d.set_item("rtp", addr(info.rtp))?;
        d.set_item("rtcp", info.rtcp.map(addr))?;
        Ok(d)
    }

    /// Sets where the leg's endpoint receives (from its SDP); resets latching.
    #[pyo3(signature = (session, leg, rtp, rtcp = None))]
    fn set_remote(
        &self,
        py: Python<'_>,
        session: i64,
        leg: i64,
        rtp: &Bound<'_, PyAny>,
        rtcp: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let (sid, lid) = (session_id(session)?, leg_id(session, leg)?);
        let rtp = parse_addr("rtp", rtp)?;
        let rtcp = rtcp.map(|r| parse_addr("rtcp", r)).transpose()?;
        let e = self.engine()?;
        py.detach(|| e.set_remote(sid, lid, rtp, rtcp)).map_err(err)
    }

    /// Sets the leg's negotiated codec after `add_leg` (or `None`: relay
    /// whatever arrives); a connected pair is reconnected at once.
    #[pyo3(signature = (
        session, leg, codec = None, *, clock_rate = None, channels = 1, payload_type = None, ptime_ms = 20,
        telephone_event_pt = None, detect_dtmf = false,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn set_leg_codec(
        &self,
        py: Python<'_>,
        session: i64,
        leg: i64,
        codec: Option<&str>,
        clock_rate: Option<i64>,
        channels: i64,
        payload_type: Option<i64>,
        ptime_ms: i64,
        telephone_event_pt: Option<i64>,
        detect_dtmf: bool,
    ) -> PyResult<()> {
        let (sid, lid) = (session_id(session)?, leg_id(session, leg)?);
        let dtmf = leg_dtmf(telephone_event_pt, detect_dtmf)?;
        let clock_rate = clock_rate
            .map(|r| int_in::<u32>("clock_rate", r, 1, 1_000_000))
            .transpose()?;
        let codec = match codec {
            Some(name) => Some(leg_codec(name, clock_rate, channels, payload_type, ptime_ms)?),
            None if payload_type.is_some() => {
                return Err(MediaError::new_err(
                    "payload_type needs codec: without one the leg relays whatever arrives",
                ))
            }
            None => None,
        };
        let rate = codec
            .as_ref()
            .map(|c| c.clock_rate)
            .or(clock_rate)
            .unwrap_or(8000);
        let e = self.engine()?;
        py.detach(|| {
            e.set_leg_codec(sid, lid, codec, rate)?;
            e.set_leg_dtmf(sid, lid, dtmf)
        })
        .map_err(err)
    }

    /// Per-request latching flags: strict source (`None`: engine default)
    /// and "symmetric" / "asymmetric" / "handover".
    #[pyo3(signature = (session, leg, *, strict_source = None, latching = "symmetric"))]
    fn set_leg_latching(
        &self,
        py: Python<'_>,
        session: i64,
        leg: i64,
        strict_source: Option<bool>,
        latching: &str,
    ) -> PyResult<()> {
        let (sid, lid) = (session_id(session)?, leg_id(session, leg)?);
        let latching: me::Latching = latching.parse().map_err(err)?;
        let e = self.engine()?;
        py.detach(|| e.set_leg_latching(sid, lid, strict_source, latching))
            .map_err(err)
    }

    /// Payload type rewrite `{in_pt: out_pt}` on media relayed from the leg.
    fn set_leg_pt_map(
        &self,
        py: Python<'_>,
        session: i64,
        leg: i64,
        pt_map: HashMap<i64, i64>,
    ) -> PyResult<()> {
        let (sid, lid) = (session_id(session)?, leg_id(session, leg)?);
        let mut pairs = Vec::with_capacity(pt_map.len());
        for (from, to) in pt_map {
            pairs.push((
                int_in::<u8>("payload type", from, 0, 127)?,
                int_in::<u8>("payload type", to, 0, 127)?,
            ));
        }
        pairs.sort_unstable();
        let e = self.engine()?;
        py.detach(|| e.set_leg_pt_map(sid, lid, &pairs)).map_err(err)
    }

    /// Sets the leg's RFC 4733 payload type and key press detection alone.
    #[pyo3(signature = (session, leg, *, telephone_event_pt = None, detect = false))]
    fn set_leg_dtmf(
        &self,
        py: Python<'_>,
        session: i64,
        leg: i64,
        telephone_event_pt: Option<i64>,
        detect: bool,
    ) -> PyResult<()> {
        let (sid, lid) = (session_id(session)?, leg_id(session, leg)?);
        let dtmf = leg_dtmf(telephone_event_pt, detect)?;
        let e = self.engine()?;
        py.detach(|| e.set_leg_dtmf(sid, lid, dtmf)).map_err(err)
    }

    /// Plays a WAV prompt into the leg; returns `{"play", "duration_ms"}`.
    #[pyo3(signature = (session, leg, path, *, r#loop = false, repeat = 1, start_ms = 0))]
    #[allow(clippy::too_many_arguments)]
    fn play<'py>(
        &self,
        py: Python<'py>,
        session: i64,
        leg: i64,
        path: PathBuf,
        r#loop: bool,
        repeat: i64,
        start_ms: i64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (sid, lid) = (session_id(session)?, leg_id(session, leg)?);
        let opts = me::PlayOptions {
            repeat: match r#loop {
                true => me::Repeat::Forever,
                false => me::Repeat::Times(int_in("repeat", repeat, 1, 1_000_000)?),
            },
            start_ms: int_in("start_ms", start_ms, 0, i64::from(u32::MAX))?,
        };
        let e = self.engine()?;
        let info = py.detach(|| e.play(sid, lid, &path, opts)).map_err(err)?;
        let d = PyDict::new(py);
        d.set_item("play", info.play)?;
        d.set_item("duration_ms", info.duration.map(|t| t.as_millis() as u64))?;
        Ok(d)
    }

    /// Stops the prompt playing into the leg; its id, or None.
    fn stop_play(&self, py: Python<'_>, session: i64, leg: i64) -> PyResult<Option<u64>> {
        let (sid, lid) = (session_id(session)?, leg_id(session, leg)?);
        let e = self.engine()?;
        py.detach(|| e.stop_play(sid, lid)).map_err(err)
    }

    /// Sends DTMF into the leg; returns how long it takes (ms).
    #[pyo3(
        signature = (session, leg, digits, *, duration_ms = 100, pause_ms = 50, volume_dbm0 = -10, mode = "rfc4733"),
        text_signature = "(self, /, session, leg, digits, *, duration_ms=100, pause_ms=50, volume_dbm0=-10, mode='rfc4733')"
    )]
    #[allow(clippy::too_many_arguments)]
    fn send_dtmf(
        &self,
        py: Python<'_>,
        session: i64,
        leg: i64,
        digits: &str,
        duration_ms: i64,
        pause_ms: i64,
        volume_dbm0: i64,
        mode: &str,
    ) -> PyResult<u64> {
        let (sid, lid) = (session_id(session)?, leg_id(session, leg)?);
        let opts = me::DtmfOptions {
            duration_ms: int_in("duration_ms", duration_ms, 40, 5000)?,
            pause_ms: int_in("pause_ms", pause_ms, 0, 5000)?,
            volume_dbm0: int_in("volume_dbm0", volume_dbm0, -63, 0)?,
            mode: match mode {
                "rfc4733" => me::DtmfMode::Rfc4733,
                "inband" => me::DtmfMode::Inband,
                _ => {
                    return Err(MediaError::new_err(format!(
                        "mode must be 'rfc4733' or 'inband', got {mode:?}"
                    )))
                }
            },
        };
        let e = self.engine()?;
        let took = py.detach(|| e.send_dtmf(sid, lid, digits, opts)).map_err(err)?;
        Ok(took.as_millis() as u64)
    }

    /// Relays media between legs `a` and `b` both ways (transcoding if needed).
    fn connect(&self, py: Python<'_>, session: i64, a: i64, b: i64) -> PyResult<()> {
        let (sid, a, b) = (session_id(session)?, leg_id(session, a)?, leg_id(session, b)?);
        let e = self.engine()?;
        py.detach(|| e.connect(sid, a, b)).map_err(err)
    }

    /// Deletes the session (its ports are free on return); returns final stats.
    fn delete_session<'py>(&self, py: Python<'py>, session: i64) -> PyResult<Bound<'py, PyDict>> {
        let sid = session_id(session)?;
        let e = self.engine()?;
        let s = py.detach(|| e.delete_session(sid)).map_err(err)?;
        session_stats_dict(py, &s)
    }

    /// Starts recording the session into the WAV file at `path` (stereo:
    /// first leg left, second right; mono: summed), or resumes a paused
    /// recording. `legs`: one or two leg ids (one = that leg alone, mono);
    /// default the session's first two legs. `codecs`: per recorded leg,
    /// `(name, clock_rate, channels, payload_type)` to decode a relayed leg
    /// (one without a codec) as.
    #[pyo3(signature = (session, path, *, stereo = true, legs = None, codecs = None))]
    fn start_recording(
        &self,
        py: Python<'_>,
        session: i64,
        path: std::path::PathBuf,
        stereo: bool,
        legs: Option<Vec<i64>>,
        codecs: Option<Vec<Option<DecodeAs>>>,
    ) -> PyResult<()> {
        let sid = session_id(session)?;
        let legs = legs
            .unwrap_or_default()
            .into_iter()
            .map(|l| leg_id(session, l))
            .collect::<PyResult<Vec<_>>>()?;
        let spec = me::RecordingSpec {
            path,
            layout: if stereo {
                me::RecordingLayout::Stereo
            } else {
                me::RecordingLayout::Mono
            },
            legs,
            codecs: codecs
                .unwrap_or_default()
                .into_iter()
                .map(|c| {
                    c.map(|(name, rate, channels, pt)| leg_codec(&name, Some(rate), channels, Some(pt), 20))
                        .transpose()
                })
                .collect::<PyResult<Vec<_>>>()?,
        };
        let e = self.engine()?;
        py.detach(|| e.start_recording(sid, spec)).map_err(err)
    }

    /// Pauses the session's recording (the paused span is left out of the
    /// file); `start_recording` resumes it.
    fn pause_recording(&self, py: Python<'_>, session: i64) -> PyResult<()> {
        let sid = session_id(session)?;
        let e = self.engine()?;
        py.detach(|| e.pause_recording(sid)).map_err(err)
    }

    /// Ends the session's recording; returns path, duration_s, frames,
    /// gaps_filled, sample_rate and channels.
    fn stop_recording<'py>(&self, py: Python<'py>, session: i64) -> PyResult<Bound<'py, PyDict>> {
        let sid = session_id(session)?;
        let e = self.engine()?;
        let r = py.detach(|| e.stop_recording(sid)).map_err(err)?;
        let d = PyDict::new(py);
        d.set_item("path", r.path.to_string_lossy())?;
        d.set_item("duration_s", r.duration.as_secs_f64())?;
        d.set_item("frames", r.frames)?;
        d.set_item("gaps_filled", r.gaps_filled)?;
        d.set_item("sample_rate", r.sample_rate)?;
        d.set_item("channels", r.channels)?;
        Ok(d)
    }

    /// The session's figures, per leg.
    fn session_stats<'py>(&self, py: Python<'py>, session: i64) -> PyResult<Bound<'py, PyDict>> {
        let sid = session_id(session)?;
        let e = self.engine()?;
        let s = py.detach(|| e.session_stats(sid)).map_err(err)?;
        session_stats_dict(py, &s)
    }

    /// Engine-wide counters and gauges (no worker round trip).
    fn engine_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let e = self.engine()?;
        let s = py.detach(|| e.engine_stats());
        engine_stats_dict(py, &s, e.config())
    }

    /// Descriptor that is readable while events are queued (for
    /// `loop.add_reader`); owned by the engine: do not close it.
    fn event_fd(&self) -> PyResult<i32> {
        Ok(self.engine()?.event_fd())
    }

    /// Takes every queued event (never blocks; may be empty).
    fn poll_events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let events = self.engine()?.poll_events();
        let out = PyList::empty(py);
        for ev in &events {
            out.append(event_dict(py, ev)?)?;
        }
        Ok(out)
    }

    /// Stops the workers and frees every port (idempotent). Should another
    /// thread be inside a call right now, the engine stops as that call returns.
    fn close(&self, py: Python<'_>) {
        let taken = self.lock().take();
        if let Some(e) = taken {
            py.detach(move || drop(e));
        }
    }

    #[getter]
    fn closed(&self) -> bool {
        self.lock().is_none()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _t: Option<Bound<'_, PyAny>>,
        _v: Option<Bound<'_, PyAny>>,
        _tb: Option<Bound<'_, PyAny>>,
    ) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        match &*self.lock() {
            None => "Engine(closed)".to_string(),
            Some(e) => {
                let c = e.config();
                let ifs: Vec<String> = c
                    .interfaces
                    .iter()
                    .map(|i| match i.local == i.advertised {
                        true => format!("'{}/{}'", i.name, i.local),
                        false => format!("'{}/{}!{}'", i.name, i.local, i.advertised),
                    })
                    .collect();
                format!(
                    "Engine(interfaces=[{}], port_min={}, port_max={}, workers={})",
                    ifs.join(", "),
                    c.port_min,
                    c.port_max,
                    c.worker_count()
                )
            }
        }
    }
}
