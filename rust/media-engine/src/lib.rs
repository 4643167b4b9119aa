//! vpbx media engine: the I/O side of the media plane (DESIGN.md §1).
//!
//! It owns sockets, threads and time; the packet and sample logic comes
//! from the sans-IO crate `media_core`. An [`Engine`] holds one UDP
//! [`PortPool`] per configured interface and a fixed set of worker threads,
//! each with its own epoll (`mio::Poll`). Sessions (one per call) are pinned
//! to a worker; their legs relay RTP/RTCP to each other without decoding
//! (payload type numbers rewritten in place where the sides differ,
//! [`Engine::set_leg_pt_map`]), with per-leg latching (symmetric,
//! asymmetric or media handover, optionally strict; RTP-bleed protected:
//! see [`Engine::set_leg_latching`]), flood limits and receive statistics
//! (RFC 3550 Appendix A). Legs whose codecs (or ptimes) differ are
//! transcoded through the core's jitter buffer and codecs on a 10 ms
//! per-worker media tick; RTCP ends at the engine there, which sends each
//! endpoint its own SR/RR (RFC 3550 §6.4) and learns the round-trip time. The engine also sends media of its own
//! into a leg ([`Engine::play`] for WAV prompts, [`Engine::send_dtmf`] for
//! RFC 4733 or in-band DTMF), reports key presses heard on a leg
//! ([`LegDtmf`], `Event::Dtmf`) and translates RFC 4733 payload types
//! between transcoded legs. When only one leg of a pair has a
//! telephone-event payload type, the pair is transcoded even with the same
//! codec, and keys are converted: RFC 4733 events become Q.23 tones in the
//! other leg's audio, in-band tones become RFC 4733 events (the tone's
//! audio replaced by the event packets while the key is held). Events reach the control plane
//! through [`Engine::event_fd`] + [`Engine::poll_events`]; Rust never calls
//! Python.
//!
//! ```no_run
//! use media_engine::{Engine, EngineConfig, LegSpec};
//! let engine = Engine::start(EngineConfig::default())?;
//! let s = engine.create_session("call-1@host")?;
//! let a = engine.add_leg(s, &LegSpec::default())?; // offer side: a.rtp goes into SDP
//! let b = engine.add_leg(s, &LegSpec::default())?;
//! engine.set_remote(s, a.leg, "192.0.2.10:4000".parse().unwrap(), None)?;
//! engine.set_remote(s, b.leg, "192.0.2.20:5000".parse().unwrap(), None)?;
//! engine.connect(s, a.leg, b.leg)?;
//! let final_stats = engine.delete_session(s)?;
//! # Ok::<(), media_engine::Error>(())
//! ```

mod config;
mod engine;
mod error;
mod events;
mod playback;
pub mod ports;
mod stats;
mod sys;
mod types;
mod worker;

pub use config::{EngineConfig, InterfaceSpec, Latching, LegCodec, LegSpec};
pub use engine::{Engine, LegInfo};
pub use error::{Error, Result};
pub use events::Event;
pub use playback::{
    DtmfMode, DtmfOptions, DtmfSource, LegDtmf, PlayEndReason, PlayInfo, PlayOptions, Repeat,
    MAX_DTMF_DIGITS, MAX_PROMPT_SAMPLES,
};
pub use ports::{PoolStats, PortPool};
pub use stats::{DropCounts, DropKind, EngineStats, InterfaceStats, LegStats, SessionStats, WorkerStats};
pub use types::{LegId, SessionId};
pub use worker::{RecordingInfo, RecordingLayout, RecordingSpec, MAX_LEGS_PER_SESSION};
