//! The one table of media-core errors. Every fallible call in the crate
//! returns [`enum@Error`]; the Python binding maps each variant to an exception
//! whose message is the `Display` text below.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The buffer ended before a field the format requires.
    #[error("{what}: truncated: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    /// A field holds a value the format forbids.
    #[error("{what}: {detail}")]
    Malformed { what: &'static str, detail: String },
    /// An SDP codec name (or rate/channel combination) we do not implement.
    #[error("unsupported codec {name}/{clock_rate}/{channels}")]
    UnsupportedCodec {
        name: String,
        clock_rate: u32,
        channels: u8,
    },
    /// A caller-supplied argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A codec library reported a failure.
    #[error("codec {codec}: {detail}")]
    Codec { codec: &'static str, detail: String },
    /// File I/O failed (WAV writing/recovery).
    #[error("i/o: {0}")]
    Io(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn truncated(what: &'static str, need: usize, have: usize) -> Self {
        Error::Truncated { what, need, have }
    }
    pub fn malformed(what: &'static str, detail: impl Into<String>) -> Self {
        Error::Malformed {
            what,
            detail: detail.into(),
        }
    }
    pub fn invalid(detail: impl Into<String>) -> Self {
        Error::InvalidArgument(detail.into())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}
