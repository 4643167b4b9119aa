//! Plain dicts of the engine's stats and events for Python; the keys are
//! a contract, listed in `python/vpbx/_native.pyi` and typed in
//! `vpbx.media.engine`.

use media_engine as me;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::net::SocketAddr;

pub(crate) fn addr(a: SocketAddr) -> (String, u16) {
    (a.ip().to_string(), a.port())
}

pub(crate) fn drops_dict<'py>(py: Python<'py>, d: &me::DropCounts) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    for k in me::DropKind::ALL {
        out.set_item(k.name(), d.get(k))?;
    }
    Ok(out)
}

pub(crate) fn leg_stats_dict<'py>(py: Python<'py>, l: &me::LegStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("leg", l.leg.0)?;
    d.set_item("label", l.label.as_deref())?;
    d.set_item("interface", &l.interface)?;
    d.set_item("local_rtp", addr(l.local_rtp))?;
    d.set_item("local_rtcp", l.local_rtcp.map(addr))?;
    d.set_item("remote_rtp", l.remote_rtp.map(addr))?;
    d.set_item("peer", l.peer.map(addr))?;
    d.set_item("latched", l.latched)?;
    d.set_item("packets_in", l.packets_in)?;
    d.set_item("bytes_in", l.bytes_in)?;
    d.set_item("packets_out", l.packets_out)?;
    d.set_item("bytes_out", l.bytes_out)?;
    d.set_item("rtcp_in", l.rtcp_in)?;
    d.set_item("rtcp_out", l.rtcp_out)?;
    d.set_item("lost", l.lost)?;
    d.set_item("expected", l.expected)?;
    d.set_item("jitter_ms", l.jitter_ms)?;
    d.set_item("duplicates", l.duplicates)?;
    d.set_item("reordered", l.reordered)?;
    d.set_item("ssrc", l.ssrc)?;
    d.set_item("ssrc_changes", l.ssrc_changes)?;
    d.set_item("rtt_ms", l.rtt.map(|r| r.as_secs_f64() * 1e3))?;
    d.set_item("transcoding", l.transcoding)?;
    d.set_item("playing", l.playing)?;
    d.set_item("last_packet_age_s", l.last_packet_age.map(|a| a.as_secs_f64()))?;
    d.set_item("dropped", drops_dict(py, &l.dropped)?)?;
    Ok(d)
}

pub(crate) fn session_stats_dict<'py>(py: Python<'py>, s: &me::SessionStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("session", s.session.0)?;
    d.set_item("call_id", &s.call_id)?;
    d.set_item("age_s", s.age.as_secs_f64())?;
    let legs = PyList::empty(py);
    for l in &s.legs {
        legs.append(leg_stats_dict(py, l)?)?;
    }
    d.set_item("legs", legs)?;
    Ok(d)
}

pub(crate) fn engine_stats_dict<'py>(
    py: Python<'py>,
    s: &me::EngineStats,
    config: &me::EngineConfig,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("sessions", s.sessions)?;
    d.set_item("legs", s.legs)?;
    d.set_item("ports_used", s.ports_used)?;
    d.set_item("ports_free", s.ports_free)?;
    d.set_item("packets_relayed", s.packets_relayed)?;
    d.set_item("bytes_relayed", s.bytes_relayed)?;
    d.set_item("rtcp_relayed", s.rtcp_relayed)?;
    d.set_item("rtcp_sent", s.rtcp_sent)?;
    d.set_item("dropped", drops_dict(py, &s.dropped)?)?;
    d.set_item("receive_errors", s.receive_errors)?;
    d.set_item("sessions_refused", s.sessions_refused)?;
    d.set_item("events_lost", s.events_lost)?;
    d.set_item("recordings_active", s.recordings_active)?;
    d.set_item("recordings_failed", s.recordings_failed)?;
    let workers = PyList::empty(py);
    for w in &s.workers {
        let wd = PyDict::new(py);
        wd.set_item("sessions", w.sessions)?;
        wd.set_item("legs", w.legs)?;
        wd.set_item("packets_relayed", w.packets_relayed)?;
        wd.set_item("cpu_time_s", w.cpu_time.as_secs_f64())?;
        workers.append(wd)?;
    }
    d.set_item("workers", workers)?;
    let interfaces = PyList::empty(py);
    for i in &s.interfaces {
        let spec = config.interfaces.iter().find(|c| c.name == i.name);
        let id = PyDict::new(py);
        id.set_item("name", &i.name)?;
        id.set_item("local", spec.map(|c| c.local.to_string()))?;
        id.set_item("advertised", spec.map(|c| c.advertised.to_string()))?;
        id.set_item("ports_total", i.ports.total)?;
        id.set_item("ports_used", i.ports.used)?;
        id.set_item("ports_free", i.ports.free)?;
        id.set_item("ports_busy_skipped", i.ports.busy_skipped)?;
        interfaces.append(id)?;
    }
    d.set_item("interfaces", interfaces)?;
    Ok(d)
}

pub(crate) fn event_dict<'py>(py: Python<'py>, ev: &me::Event) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    match ev {
        me::Event::MediaTimeout {
            session,
            leg,
            silent_for,
        } => {
            d.set_item("type", "media_timeout")?;
            d.set_item("session", session.0)?;
            d.set_item("leg", leg.0)?;
            d.set_item("silent_for_s", silent_for.as_secs_f64())?;
        }
        me::Event::Latched {
            session,
            leg,
            peer,
            rtcp,
        } => {
            d.set_item("type", "latched")?;
            d.set_item("session", session.0)?;
            d.set_item("leg", leg.0)?;
            d.set_item("peer", addr(*peer))?;
            d.set_item("rtcp", *rtcp)?;
        }
        me::Event::MediaResumed { session, leg } => {
            d.set_item("type", "media_resumed")?;
            d.set_item("session", session.0)?;
            d.set_item("leg", leg.0)?;
        }
        me::Event::RecordingFailed { session, reason } => {
            d.set_item("type", "recording_failed")?;
            d.set_item("session", session.0)?;
            d.set_item("leg", py.None())?;
            d.set_item("reason", reason)?;
        }
        me::Event::PlayEnded {
            session,
            leg,
            play,
            reason,
        } => {
            d.set_item("type", "play_ended")?;
            d.set_item("session", session.0)?;
            d.set_item("leg", leg.0)?;
            d.set_item("play", *play)?;
            d.set_item(
                "reason",
                match reason {
                    me::PlayEndReason::Finished => "finished",
                    me::PlayEndReason::Stopped => "stopped",
                },
            )?;
        }
        me::Event::Dtmf {
            session,
            leg,
            digit,
            duration_ms,
            source,
        } => {
            d.set_item("type", "dtmf")?;
            d.set_item("session", session.0)?;
            d.set_item("leg", leg.0)?;
            d.set_item("digit", digit.to_string())?;
            d.set_item("duration_ms", *duration_ms)?;
            d.set_item(
                "source",
                match source {
                    me::DtmfSource::Rfc4733 => "rfc4733",
                    me::DtmfSource::Inband => "inband",
                },
            )?;
        }
        me::Event::EventsLost { count } => {
            d.set_item("type", "events_lost")?;
            d.set_item("session", py.None())?;
            d.set_item("leg", py.None())?;
            d.set_item("count", *count)?;
        }
    }
    Ok(d)
}
