//! Commands from the engine's control API to a worker.

use super::inject::Injection;
use super::recording::{RecordingInfo, RecordingSpec};
use crate::config::{Latching, LegCodec};
use crate::error::Result;
use crate::playback::LegDtmf;
use crate::ports::Allocation;
use crate::stats::SessionStats;
use crate::types::{LegId, SessionId};
use std::net::SocketAddr;
use std::sync::mpsc::SyncSender;

pub(crate) type Reply<T> = SyncSender<Result<T>>;

/// A leg as the engine hands it to the worker: sockets already bound.
pub(crate) struct NewLeg {
    pub alloc: Allocation,
    pub interface: String,
    pub local_rtp: SocketAddr,
    pub local_rtcp: Option<SocketAddr>,
    pub label: Option<String>,
    pub strict: bool,
    pub latching: Latching,
    pub clock_rate: u32,
    pub codec: Option<LegCodec>,
}

pub(crate) enum Command {
    CreateSession {
        id: SessionId,
        call_id: String,
        reply: Reply<()>,
    },
    AddLeg {
        session: SessionId,
        leg: Box<NewLeg>,
        reply: Reply<LegId>,
    },
    SetRemote {
        session: SessionId,
        leg: LegId,
        rtp: SocketAddr,
        rtcp: Option<SocketAddr>,
        reply: Reply<()>,
    },
    SetCodec {
        session: SessionId,
        leg: LegId,
        codec: Option<LegCodec>,
        clock_rate: u32,
        reply: Reply<()>,
    },
    Connect {
        session: SessionId,
        a: LegId,
        b: LegId,
        reply: Reply<()>,
    },
    Delete {
        session: SessionId,
        reply: Reply<SessionStats>,
    },
    Stats {
        session: SessionId,
        reply: Reply<SessionStats>,
    },
    StartRecording {
        session: SessionId,
        spec: Box<RecordingSpec>,
        reply: Reply<()>,
    },
    PauseRecording {
        session: SessionId,
        reply: Reply<()>,
    },
    StopRecording {
        session: SessionId,
        reply: Reply<RecordingInfo>,
    },
    /// The codec (and telephone-event PT) injected media is encoded with.
    InjectFormat {
        session: SessionId,
        leg: LegId,
        reply: Reply<(LegCodec, Option<u8>)>,
    },
    /// Starts a prompt or DTMF built for `format` (refused if the leg's
    /// format changed meanwhile).
    Inject {
        session: SessionId,
        leg: LegId,
        format: (LegCodec, Option<u8>),
        inject: Box<Injection>,
        reply: Reply<()>,
    },
    StopPlay {
        session: SessionId,
        leg: LegId,
        reply: Reply<Option<u64>>,
    },
    SetDtmf {
        session: SessionId,
        leg: LegId,
        dtmf: LegDtmf,
        reply: Reply<()>,
    },
    ChangeLeg {
        session: SessionId,
        leg: LegId,
        change: LegChange,
        reply: Reply<()>,
    },
    Shutdown,
}

/// Per-leg settings changed after the leg exists.
pub(crate) enum LegChange {
    Latching {
        strict: bool,
        latching: Latching,
    },
    /// RTP payload type rewrite on relay (`None`: none).
    PtMap(Option<Box<[u8; 128]>>),
}
