//! Python arguments of `Engine` methods turned into engine values, with
//! errors that name the argument.

use crate::conv::MediaError;
use media_core::codec::REGISTRY;
use media_engine as me;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub(crate) fn err(e: me::Error) -> PyErr {
    MediaError::new_err(e.to_string())
}

/// `v` as `T` if it lies in `lo..=hi`, else a MediaError naming `name`.
pub(crate) fn int_in<T: TryFrom<i64>>(name: &str, v: i64, lo: i64, hi: i64) -> PyResult<T> {
    match T::try_from(v) {
        Ok(t) if (lo..=hi).contains(&v) => Ok(t),
        _ => Err(MediaError::new_err(format!(
            "{name} must be in {lo}..={hi}, got {v}"
        ))),
    }
}

/// Seconds (a float) as a Duration; `positive` also refuses 0.
pub(crate) fn seconds(name: &str, v: f64, positive: bool) -> PyResult<Duration> {
    match Duration::try_from_secs_f64(v) {
        Ok(d) if !(positive && d.is_zero()) => Ok(d),
        _ => Err(MediaError::new_err(format!(
            "{name} must be a finite number of seconds {}, got {v}",
            if positive { "> 0" } else { ">= 0" }
        ))),
    }
}

pub(crate) fn session_id(session: i64) -> PyResult<me::SessionId> {
    u64::try_from(session)
        .map(me::SessionId)
        .map_err(|_| MediaError::new_err(format!("unknown session {session}")))
}

pub(crate) fn leg_id(session: i64, leg: i64) -> PyResult<me::LegId> {
    u32::try_from(leg)
        .map(me::LegId)
        .map_err(|_| MediaError::new_err(format!("unknown leg {leg} in session #{session}")))
}

/// `(host, port)` with a numeric host (no name resolution here).
pub(crate) fn parse_addr(what: &str, obj: &Bound<'_, PyAny>) -> PyResult<SocketAddr> {
    let shape = || -> PyResult<PyErr> {
        Ok(PyTypeError::new_err(format!(
            "{what} must be a (host, port) tuple such as ('192.0.2.10', 4000), got {}",
            obj.repr()?
        )))
    };
    let Ok(t) = obj.cast::<PyTuple>() else {
        return Err(shape()?);
    };
    if t.len() != 2 {
        return Err(shape()?);
    }
    let (Ok(host), Ok(port)) = (
        t.get_item(0)?.extract::<String>(),
        t.get_item(1)?.extract::<i64>(),
    ) else {
        return Err(shape()?);
    };
    let ip: IpAddr = host.parse().map_err(|_| {
        MediaError::new_err(format!(
            "{what} host {host:?} is not an IP address (names are not resolved here)"
        ))
    })?;
    let port = int_in::<u16>(&format!("{what} port"), port, 1, 65535)?;
    Ok(SocketAddr::new(ip, port))
}

pub(crate) fn leg_dtmf(telephone_event_pt: Option<i64>, detect: bool) -> PyResult<me::LegDtmf> {
    Ok(me::LegDtmf {
        telephone_event_pt: telephone_event_pt
            .map(|p| int_in("telephone_event_pt", p, 0, 127))
            .transpose()?,
        detect,
    })
}

/// `(name, clock_rate, channels, payload_type)`: how to decode a relayed leg.
pub(crate) type DecodeAs = (String, u32, i64, i64);

/// The codec a leg negotiated, with defaults from the codec registry: its
/// only clock rate and its static payload type (RFC 3551 §6).
pub(crate) fn leg_codec(
    name: &str,
    clock_rate: Option<u32>,
    channels: i64,
    payload_type: Option<i64>,
    ptime_ms: i64,
) -> PyResult<me::LegCodec> {
    let spec = REGISTRY
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            let known: Vec<_> = REGISTRY.iter().map(|c| c.name).collect();
            MediaError::new_err(format!("unknown codec {name:?}; known: {}", known.join(", ")))
        })?;
    let clock_rate = match (clock_rate, spec.clock_rates) {
        (Some(r), _) => r,
        (None, [only]) => *only,
        (None, rates) => {
            return Err(MediaError::new_err(format!(
                "{} needs clock_rate (one of {rates:?})",
                spec.name
            )))
        }
    };
    let payload_type = match (payload_type, spec.static_payload_type) {
        (Some(pt), _) => int_in("payload_type", pt, 0, 127)?,
        (None, Some(pt)) => pt,
        (None, None) => {
            return Err(MediaError::new_err(format!(
                "{} has no static payload type: give payload_type (the SDP's dynamic one, 96..=127)",
                spec.name
            )))
        }
    };
    Ok(me::LegCodec {
        name: spec.name.to_string(),
        clock_rate,
        channels: int_in("channels", channels, 1, 255)?,
        payload_type,
        ptime_ms: int_in("ptime_ms", ptime_ms, 1, 1000)?,
    })
}
