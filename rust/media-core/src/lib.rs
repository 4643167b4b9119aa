//! vpbx media core: the packet and sample logic of the media plane.
//!
//! Sans-IO by rule (see DESIGN.md §3): nothing in this crate opens a socket,
//! spawns a thread or reads a clock. Time is always an argument.

pub mod codec;
pub mod dtmf;
pub mod error;
pub mod jitter;
pub mod mixer;
pub mod plc;
pub mod resample;
pub mod rtcp;
pub mod rtp;
pub mod rtp_stats;
pub mod types;
pub mod wav;

pub use error::{Error, Result};
pub use types::{PayloadType, RtpTimestamp, SeqNo, Ssrc};
