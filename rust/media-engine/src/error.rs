//! The one table of media-engine errors. Every fallible engine call returns
//! [`enum@Error`]; its `Display` text is meant to be shown to an operator as is.

use crate::types::{LegId, SessionId};
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// The [`crate::EngineConfig`] (or an interface spec) is not usable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A caller-supplied argument is out of range or inconsistent.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// `LegSpec::interface` names no configured interface.
    #[error("unknown interface {0:?}")]
    UnknownInterface(String),
    /// Every port (or even/odd pair) of the interface's range is taken, by us
    /// or by other processes.
    #[error(
        "no free {kind} on interface {interface} in {min}..={max} \
         ({used} ports used by this engine, {busy} found busy elsewhere)"
    )]
    PortsExhausted {
        interface: String,
        kind: &'static str,
        min: u16,
        max: u16,
        used: usize,
        busy: usize,
    },
    /// Admission control: `max_sessions` sessions already exist.
    #[error("too many sessions: the limit of {limit} is reached, new calls are refused")]
    TooManySessions { limit: usize },
    /// A session holds the maximum number of legs.
    #[error("session {session} already has {limit} legs")]
    TooManyLegs { session: SessionId, limit: usize },
    #[error("unknown session {0}")]
    UnknownSession(SessionId),
    #[error("unknown leg {leg} in session {session}")]
    UnknownLeg { session: SessionId, leg: LegId },
    /// A system call failed; `context` says what the engine was doing.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The engine (or the worker owning the session) has stopped.
    #[error("media engine is stopped")]
    Stopped,
    /// A worker did not answer a control command in time.
    #[error("media worker {worker} did not answer within {waited:?}")]
    Timeout { worker: usize, waited: Duration },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
