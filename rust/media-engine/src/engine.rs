//! The engine's control API. Every call is synchronous and cheap: it
//! allocates ports (in the calling thread), then hands a command to the
//! worker that owns the session and waits for its answer. Sessions are
//! pinned to one worker for life, so all legs of a call share a thread and
//! the packet path never locks.

use crate::config::{EngineConfig, Latching, LegCodec, LegSpec};
use crate::error::{Error, Result};
use crate::events::{Event, EventQueue};
use crate::playback::{self, DtmfOptions, LegDtmf, PlayInfo, PlayOptions};
use crate::ports::PortPool;
use crate::stats::{EngineStats, InterfaceStats, SessionStats, WorkerCounters, WorkerStats};
use crate::sys::thread_cpu_time;
use crate::types::{LegId, SessionId};
use crate::worker::{Command, LegChange, NewLeg, RecordingInfo, RecordingSpec, Worker, WorkerConfig, WAKER};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::os::unix::thread::JoinHandleExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{self, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What `add_leg` created: the addresses to put into SDP.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LegInfo {
    pub leg: LegId,
    /// Advertised RTP address (the interface's public address).
    pub rtp: SocketAddr,
    /// Advertised RTCP address; `None` with rtcp-mux.
    pub rtcp: Option<SocketAddr>,
}

struct WorkerHandle {
    commands: Sender<Command>,
    waker: Arc<mio::Waker>,
    counters: Arc<WorkerCounters>,
    thread: Option<JoinHandle<()>>,
}

/// The media engine: port pools, worker threads and the event queue.
/// `Send + Sync`: share it (e.g. in an `Arc`) between control threads.
/// Dropping it stops the workers and frees every port.
pub struct Engine {
    config: EngineConfig,
    pools: Vec<PortPool>,
    workers: Vec<WorkerHandle>,
    /// Which worker owns each live session.
    directory: Mutex<HashMap<SessionId, usize>>,
    next_session: AtomicU64,
    /// Admitted sessions (reserved before the worker creates them).
    admitted: AtomicUsize,
    refused: AtomicU64,
    events: Arc<EventQueue>,
    next_play: AtomicU64,
}

impl Engine {
    /// Validates the config, creates the port pools and starts the workers.
    pub fn start(config: EngineConfig) -> Result<Engine> {
        config.validate()?;
        let pools = config
            .interfaces
            .iter()
            .map(|i| PortPool::new(i, config.port_min, config.port_max, config.socket_recv_buffer))
            .collect::<Result<Vec<_>>>()?;
        let events = Arc::new(
            EventQueue::new(config.event_queue_capacity).map_err(|e| Error::io("creating the eventfd", e))?,
        );
        let mut wcfg = WorkerConfig::new(config.max_pps_per_leg, config.relatch_after, config.media_timeout);
        wcfg.opus_complexity = config.opus_complexity;
        let mut engine = Engine {
            config,
            pools,
            workers: Vec::new(),
            directory: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            admitted: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            events,
            next_play: AtomicU64::new(1),
        };
        for index in 0..engine.config.worker_count() {
            // On error the workers started so far are stopped by Drop.
            let poll = mio::Poll::new().map_err(|e| Error::io("creating an epoll instance", e))?;
            let waker = Arc::new(
                mio::Waker::new(poll.registry(), WAKER).map_err(|e| Error::io("creating a waker", e))?,
            );
            let (tx, rx) = mpsc::channel();
            let counters = Arc::new(WorkerCounters::default());
            let worker = Worker::new(poll, rx, engine.events.clone(), counters.clone(), wcfg);
            let thread = std::thread::Builder::new()
                .name(format!("vpbx-media-{index}"))
                .spawn(move || worker.run())
                .map_err(|e| Error::io("spawning a media worker", e))?;
            engine.workers.push(WorkerHandle {
                commands: tx,
                waker,
                counters,
                thread: Some(thread),
            });
        }
        Ok(engine)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Sends a command to worker `w` and waits for its answer.
    fn call<T>(&self, w: usize, make: impl FnOnce(SyncSender<Result<T>>) -> Command) -> Result<T> {
        let h = self.workers.get(w).ok_or(Error::Stopped)?;
        let (tx, rx) = mpsc::sync_channel(1);
        h.commands.send(make(tx)).map_err(|_| Error::Stopped)?;
        h.waker
            .wake()
            .map_err(|e| Error::io("waking a media worker", e))?;
        match rx.recv_timeout(self.config.control_timeout) {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(Error::Timeout {
                worker: w,
                waited: self.config.control_timeout,
            }),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(Error::Stopped),
        }
    }

    fn worker_of(&self, session: SessionId) -> Result<usize> {
        let dir = self.directory.lock().unwrap_or_else(|p| p.into_inner());
        dir.get(&session).copied().ok_or(Error::UnknownSession(session))
    }

    /// Creates a session for a call on the least loaded worker. Refused
    /// with [`Error::TooManySessions`] once `max_sessions` exist.
    pub fn create_session(&self, call_id: &str) -> Result<SessionId> {
        let limit = self.config.max_sessions;
        if self
            .admitted
            .fetch_update(Relaxed, Relaxed, |n| (n < limit).then_some(n + 1))
            .is_err()
        {
            self.refused.fetch_add(1, Relaxed);
            return Err(Error::TooManySessions { limit });
        }
        let id = SessionId(self.next_session.fetch_add(1, Relaxed));
        let w = (0..self.workers.len())
            .min_by_key(|&i| self.workers[i].counters.sessions.load(Relaxed))
            .unwrap_or(0);
        // Registered first so a concurrent call on the id finds its worker.
        self.directory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, w);
        let call_id = call_id.to_string();
        match self.call(w, |reply| Command::CreateSession { id, call_id, reply }) {
            Ok(()) => Ok(id),
            Err(e) => {
                self.directory
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                self.admitted.fetch_sub(1, Relaxed);
                Err(e)
            }
        }
    }

    /// Allocates ports on the leg's interface and adds the leg to the
    /// session. Nothing is sent until `set_remote`/latching gives the leg
    /// an address and `connect` gives it a partner.
    pub fn add_leg(&self, session: SessionId, spec: &LegSpec) -> Result<LegInfo> {
        let w = self.worker_of(session)?;
        if spec.clock_rate == 0 {
            return Err(Error::Invalid("clock rate must be positive".into()));
        }
        let pool = match &spec.interface {
            None => &self.pools[0],
            Some(name) => self
                .pools
                .iter()
                .find(|p| &p.spec().name == name)
                .ok_or_else(|| Error::UnknownInterface(name.clone()))?,
        };
        if let Some(c) = &spec.codec {
            media_core::codec::find(&c.name, c.clock_rate, c.channels)
                .map_err(|e| Error::Invalid(e.to_string()))?;
        }
        let alloc = pool.allocate(spec.rtcp_mux)?;
        let ip = pool.spec().advertised;
        let port_of = |s: &std::net::UdpSocket| {
            s.local_addr()
                .map(|a| SocketAddr::new(ip, a.port()))
                .map_err(|e| Error::io("reading a bound socket's address", e))
        };
        let rtp = port_of(&alloc.rtp)?;
        let rtcp = alloc.rtcp.as_ref().map(port_of).transpose()?;
        let leg = Box::new(NewLeg {
            alloc,
            interface: pool.spec().name.clone(),
            local_rtp: rtp,
            local_rtcp: rtcp,
            label: spec.label.clone(),
            strict: spec.strict_source.unwrap_or(self.config.strict_source),
            latching: spec.latching,
            clock_rate: spec.clock_rate,
            codec: spec.codec.clone(),
        });
        // If the worker refuses (or is gone), the command and with it the
        // allocation are dropped, so the ports go back to the pool.
        let leg = self.call(w, |reply| Command::AddLeg { session, leg, reply })?;
        Ok(LegInfo { leg, rtp, rtcp })
    }

    /// Sets the leg's peer address from SDP (`c=`/`m=` and `a=rtcp`, RFC
    /// 3605). Resets latching: the next packets teach the real address.
    pub fn set_remote(
        &self,
        session: SessionId,
        leg: LegId,
        rtp: SocketAddr,
        rtcp: Option<SocketAddr>,
    ) -> Result<()> {
        let w = self.worker_of(session)?;
        self.call(w, |reply| Command::SetRemote {
            session,
            leg,
            rtp,
            rtcp,
            reply,
        })
    }

    /// Changes what the leg carries once SDP has settled it (an answer, a
    /// re-INVITE): `Some(codec)` is the format its endpoint sends and expects,
    /// so that two connected legs naming different ones are transcoded;
    /// `None` relays whatever arrives, `clock_rate` then only scaling jitter
    /// statistics (with a codec, its clock rate is used). A connected leg is
    /// reconnected at once (relay <-> transcoding follows); if that fails,
    /// the leg keeps its previous codec. Receive statistics restart when the
    /// clock rate changes.
    pub fn set_leg_codec(
        &self,
        session: SessionId,
        leg: LegId,
        codec: Option<LegCodec>,
        clock_rate: u32,
    ) -> Result<()> {
        let w = self.worker_of(session)?;
        let clock_rate = codec.as_ref().map_or(clock_rate, |c| c.clock_rate);
        if clock_rate == 0 {
            return Err(Error::Invalid("clock rate must be positive".into()));
        }
        if let Some(c) = &codec {
            media_core::codec::find(&c.name, c.clock_rate, c.channels)
                .map_err(|e| Error::Invalid(e.to_string()))?;
        }
        self.call(w, |reply| Command::SetCodec {
            session,
            leg,
            codec,
            clock_rate,
            reply,
        })
    }

    /// Forwards media between legs `a` and `b` of the session, both ways:
    /// as is, or transcoded when both legs name codecs (`LegSpec::codec`)
    /// that differ in format or ptime.
    pub fn connect(&self, session: SessionId, a: LegId, b: LegId) -> Result<()> {
        let w = self.worker_of(session)?;
        self.call(w, |reply| Command::Connect { session, a, b, reply })
    }

    /// Deletes the session; its ports are free (and closed) on return.
    /// Returns the final statistics.
    pub fn delete_session(&self, session: SessionId) -> Result<SessionStats> {
        let w = {
            let mut dir = self.directory.lock().unwrap_or_else(|p| p.into_inner());
            dir.remove(&session).ok_or(Error::UnknownSession(session))?
        };
        // The id is gone from the directory either way; the admission slot is
        // released even if the worker is stuck (it deletes once it runs).
        let r = self.call(w, |reply| Command::Delete { session, reply });
        self.admitted.fetch_sub(1, Relaxed);
        r
    }

    /// Starts recording the session into a WAV file (see [`RecordingSpec`]),
    /// or resumes a paused recording. Fails if the file cannot be created
    /// or a recorded leg has no codec to decode.
    pub fn start_recording(&self, session: SessionId, spec: RecordingSpec) -> Result<()> {
        let w = self.worker_of(session)?;
        let spec = Box::new(spec);
        self.call(w, |reply| Command::StartRecording { session, spec, reply })
    }

    /// Pauses the session's recording: the paused span is left out of the
    /// file. `start_recording` resumes.
    pub fn pause_recording(&self, session: SessionId) -> Result<()> {
        let w = self.worker_of(session)?;
        self.call(w, |reply| Command::PauseRecording { session, reply })
    }

    /// Ends the session's recording and finalizes the file.
    /// (`delete_session` stops a recording too.)
    pub fn stop_recording(&self, session: SessionId) -> Result<RecordingInfo> {
        let w = self.worker_of(session)?;
        self.call(w, |reply| Command::StopRecording { session, reply })
    }

    /// Plays a WAV prompt (mono 16-bit PCM, 8..=48 kHz) into the leg: read
    /// and converted here, in the calling thread, then sent from the leg's
    /// port at its codec's ptime (see `playback` for the codec used and
    /// the size cap). While it plays, the partner's media towards the leg
    /// is withheld (an announcement replaces the call's audio); anything
    /// the leg was being sent stops. Ends with `Event::PlayEnded`. A bad
    /// file or a leg without codec is an error and starts nothing.
    pub fn play(&self, session: SessionId, leg: LegId, path: &Path, opts: PlayOptions) -> Result<PlayInfo> {
        let w = self.worker_of(session)?;
        let format = self.call(w, |reply| Command::InjectFormat { session, leg, reply })?;
        let play = self.next_play.fetch_add(1, Relaxed);
        let inject = Box::new(playback::prompt(
            path,
            &format.0,
            &opts,
            play,
            self.config.opus_complexity,
        )?);
        let duration = inject.duration;
        self.call(w, |reply| Command::Inject {
            session,
            leg,
            format,
            inject,
            reply,
        })?;
        Ok(PlayInfo { play, duration })
    }

    /// Stops the prompt playing into the leg (raising `PlayEnded` with
    /// reason `Stopped`); returns its id, `None` if nothing was playing.
    pub fn stop_play(&self, session: SessionId, leg: LegId) -> Result<Option<u64>> {
        let w = self.worker_of(session)?;
        self.call(w, |reply| Command::StopPlay { session, leg, reply })
    }

    /// Sends DTMF `digits` to the leg's endpoint, as RFC 4733 events with
    /// the leg's telephone-event payload type (`set_leg_dtmf`) or as
    /// in-band tones in its codec; returns how long that takes. Like a
    /// prompt, it withholds the partner's media meanwhile and replaces what
    /// the leg was being sent.
    pub fn send_dtmf(
        &self,
        session: SessionId,
        leg: LegId,
        digits: &str,
        opts: DtmfOptions,
    ) -> Result<Duration> {
        let w = self.worker_of(session)?;
        let format = self.call(w, |reply| Command::InjectFormat { session, leg, reply })?;
        let inject = Box::new(playback::dtmf(
            digits,
            &format.0,
            format.1,
            &opts,
            self.config.opus_complexity,
        )?);
        let duration = inject.duration.unwrap_or_default();
        self.call(w, |reply| Command::Inject {
            session,
            leg,
            format,
            inject,
            reply,
        })?;
        Ok(duration)
    }

    /// Per-request latching flags for the leg (rtpengine's `strict source`,
    /// `symmetric`, `asymmetric`, `media handover`); `strict_source: None`
    /// takes the engine default. What was latched is forgotten.
    ///
    /// RTP-bleed protection (every mode that latches): a source takes an
    /// unlatched stream at once only if its IP is the SDP's (`set_remote`),
    /// or if the SDP address is private/unroutable and the source's is not
    /// (NAT); RTCP also from the IP the RTP stream latched to. Any other
    /// source must first send 3 consecutive packets with continuous RTP
    /// sequence numbers; until then its packets are dropped as `Stranger`.
    pub fn set_leg_latching(
        &self,
        session: SessionId,
        leg: LegId,
        strict_source: Option<bool>,
        latching: Latching,
    ) -> Result<()> {
        let w = self.worker_of(session)?;
        let strict = strict_source.unwrap_or(self.config.strict_source);
        let change = LegChange::Latching { strict, latching };
        self.call(w, |reply| Command::ChangeLeg {
            session,
            leg,
            change,
            reply,
        })
    }

    /// Rewrites RTP payload types on media received from the leg and
    /// relayed to its partner, `(in_pt, out_pt)` pairs: for the same codec
    /// negotiated under different numbers on the two sides (dynamic opus 111
    /// vs 96, telephone-event 101 vs 100). Done in place, no allocation; an
    /// empty map turns it off. Transcoded legs ignore it (the encoder
    /// writes the partner's payload type).
    pub fn set_leg_pt_map(&self, session: SessionId, leg: LegId, map: &[(u8, u8)]) -> Result<()> {
        let w = self.worker_of(session)?;
        let mut table = [0u8; 128];
        for (i, t) in table.iter_mut().enumerate() {
            *t = i as u8;
        }
        for &(from, to) in map {
            if from > 127 || to > 127 {
                return Err(Error::Invalid(format!(
                    "payload type map {from} -> {to}: payload types are 0..=127"
                )));
            }
            // With the marker bit these would read as RTCP (RFC 5761 §4).
            if (64..=95).contains(&to) {
                return Err(Error::Invalid(format!(
                    "payload type {to} collides with RTCP packet types (RFC 5761 §4)"
                )));
            }
            table[usize::from(from)] = to;
        }
        let change = LegChange::PtMap((!map.is_empty()).then(|| Box::new(table)));
        self.call(w, |reply| Command::ChangeLeg {
            session,
            leg,
            change,
            reply,
        })
    }

    /// Sets the leg's RFC 4733 payload type and key press detection (see
    /// [`LegDtmf`]). Between transcoded legs, events are translated from one
    /// leg's payload type to the other's.
    pub fn set_leg_dtmf(&self, session: SessionId, leg: LegId, dtmf: LegDtmf) -> Result<()> {
        let w = self.worker_of(session)?;
        if dtmf.telephone_event_pt.is_some_and(|p| p > 127) {
            return Err(Error::Invalid(
                "telephone-event payload type must be 0..=127".into(),
            ));
        }
        self.call(w, |reply| Command::SetDtmf {
            session,
            leg,
            dtmf,
            reply,
        })
    }

    pub fn session_stats(&self, session: SessionId) -> Result<SessionStats> {
        let w = self.worker_of(session)?;
        self.call(w, |reply| Command::Stats { session, reply })
    }

    /// Engine-wide counters; reads atomics only (no worker round trip).
    pub fn engine_stats(&self) -> EngineStats {
        let mut s = EngineStats {
            sessions_refused: self.refused.load(Relaxed),
            events_lost: self.events.lost_total(),
            ..EngineStats::default()
        };
        for h in &self.workers {
            h.counters.add_into(&mut s);
            let ws = WorkerStats {
                sessions: h.counters.sessions.load(Relaxed),
                legs: h.counters.legs.load(Relaxed),
                packets_relayed: h.counters.relayed.load(Relaxed),
                cpu_time: h
                    .thread
                    .as_ref()
                    .and_then(|t| thread_cpu_time(t.as_pthread_t()))
                    .unwrap_or_default(),
            };
            s.sessions += ws.sessions;
            s.legs += ws.legs;
            s.workers.push(ws);
        }
        for p in &self.pools {
            let ports = p.stats();
            s.ports_used += ports.used;
            s.ports_free += ports.free;
            s.interfaces.push(InterfaceStats {
                name: p.spec().name.clone(),
                ports,
            });
        }
        s
    }

    /// Descriptor that becomes readable when events are queued: give it to
    /// the asyncio loop (`loop.add_reader`) and call [`Engine::poll_events`]
    /// when it fires. Owned by the engine; do not close it.
    pub fn event_fd(&self) -> RawFd {
        self.events.raw_fd()
    }

    /// Takes all queued events (never blocks; may be empty).
    pub fn poll_events(&self) -> Vec<Event> {
        self.events.drain()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        for h in &self.workers {
            let _ = h.commands.send(Command::Shutdown);
            let _ = h.waker.wake();
        }
        for h in &mut self.workers {
            if let Some(t) = h.thread.take() {
                let _ = t.join();
            }
        }
    }
}
