//! A worker thread: one `mio::Poll` over the sockets of the sessions pinned
//! to it, a command channel woken by a `mio::Waker`, and its own clock for
//! media timeouts. Everything a packet touches belongs to this thread, so
//! the packet path takes no lock.

mod command;
mod dtmf_conv;
mod dtmf_in;
pub(crate) mod inject;
mod latch;
mod leg;
mod media_cmds;
mod recording;
mod relay;
mod rtcp;
mod slab;
mod transcode;

use crate::config::LegCodec;
use crate::error::{Error, Result};
use crate::events::{Event, EventQueue};
use crate::ports::Allocation;
use crate::stats::{SessionStats, WorkerCounters};
use crate::sys::Batch;
use crate::types::{LegId, SessionId};
use leg::{Leg, LegParts, LegPolicy};
use media_core::rtp_stats::Receiver as RtpReceiver;
use mio::{Events, Interest, Poll, Token};
pub use recording::{RecordingInfo, RecordingLayout, RecordingSpec};
use slab::Slab;
use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Legs one session may have at most.
pub const MAX_LEGS_PER_SESSION: usize = 16;
pub(crate) const WAKER: Token = Token(usize::MAX);
/// Period of the media tick that drives transcoding (pops and encodes).
const MEDIA_TICK: Duration = Duration::from_millis(10);

pub(crate) use command::{Command, LegChange, NewLeg};

/// Settings a worker needs, copied from the engine config.
#[derive(Copy, Clone, Debug)]
pub(crate) struct WorkerConfig {
    pub policy: LegPolicy,
    pub media_timeout: Duration,
    pub opus_complexity: u8,
}

impl WorkerConfig {
    pub fn new(max_pps: u32, relatch_after: Duration, media_timeout: Duration) -> Self {
        WorkerConfig {
            policy: LegPolicy {
                max_pps,
                relatch_after,
            },
            media_timeout,
            opus_complexity: 5,
        }
    }
    /// Housekeeping period: a quarter of the media timeout, within
    /// 10..=500 ms, so a timeout is reported at most 25% late.
    fn tick(&self) -> Duration {
        (self.media_timeout / 4).clamp(Duration::from_millis(10), Duration::from_millis(500))
    }
}

struct Session {
    call_id: String,
    created: Instant,
    /// (leg id, slab key) in creation order.
    legs: Vec<(LegId, usize)>,
    next_leg: u32,
    recording: Option<Box<recording::Recording>>,
}

pub(crate) struct Worker {
    poll: Poll,
    commands: Receiver<Command>,
    events: Arc<EventQueue>,
    counters: Arc<WorkerCounters>,
    config: WorkerConfig,
    sessions: HashMap<SessionId, Session>,
    legs: Slab<Leg>,
    batch: Box<Batch>,
    /// Sockets left unread after their fair share, revisited next round.
    backlog: Vec<Token>,
    backlog_next: Vec<Token>,
    epoch: Instant,
    /// Legs with a transcoder; the media tick runs while there are any.
    transcoding: usize,
    /// Sessions recording (paused ones included); they also need the tick.
    recordings: usize,
    /// Slab keys of legs that may be injecting (stale keys are dropped on
    /// the next tick); the media tick runs while there are any.
    injecting: Vec<usize>,
}

impl Worker {
    pub fn new(
        poll: Poll,
        commands: Receiver<Command>,
        events: Arc<EventQueue>,
        counters: Arc<WorkerCounters>,
        config: WorkerConfig,
    ) -> Self {
        Worker {
            poll,
            commands,
            events,
            counters,
            config,
            sessions: HashMap::new(),
            legs: Slab::new(),
            batch: Batch::new(),
            backlog: Vec::new(),
            backlog_next: Vec::new(),
            epoch: Instant::now(),
            transcoding: 0,
            recordings: 0,
            injecting: Vec::new(),
        }
    }

    /// The thread body: returns on `Command::Shutdown` or when the engine
    /// is gone, after closing every socket (which frees the ports).
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let tick = self.config.tick();
        let mut next_tick = Instant::now() + tick;
        let mut next_media = Instant::now() + MEDIA_TICK;
        loop {
            let ticking = self.transcoding > 0 || self.recordings > 0 || !self.injecting.is_empty();
            let wake = if ticking {
                next_tick.min(next_media)
            } else {
                next_tick
            };
            let timeout = if self.backlog.is_empty() {
                wake.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    self.counters.receive_errors.fetch_add(1, Relaxed);
                    std::thread::sleep(Duration::from_millis(1));
                }
                continue;
            }
            std::mem::swap(&mut self.backlog, &mut self.backlog_next);
            for i in 0..self.backlog_next.len() {
                let token = self.backlog_next[i];
                if self.on_readable(token) {
                    self.backlog.push(token);
                }
            }
            self.backlog_next.clear();
            for ev in events.iter() {
                if ev.token() != WAKER && self.on_readable(ev.token()) {
                    self.backlog.push(ev.token());
                }
            }
            loop {
                match self.commands.try_recv() {
                    Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => return self.close_all(),
                    Ok(cmd) => self.handle(cmd),
                    Err(TryRecvError::Empty) => break,
                }
            }
            let now = Instant::now();
            if ticking && now >= next_media {
                self.media_tick(now);
                self.inject_tick(now);
                self.recording_tick(now);
                next_media = (next_media + MEDIA_TICK).max(now);
            }
            if now >= next_tick {
                self.housekeeping(now);
                next_tick = now + tick;
            }
        }
    }

    fn close_all(&mut self) {
        let ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        for id in ids {
            let _ = self.delete(id);
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        self.send_reports(now);
        let timeout = self.config.media_timeout;
        for leg in self.legs.iter_mut() {
            if let Some(silent_for) = leg.check_timeout(now, timeout) {
                self.events.push(Event::MediaTimeout {
                    session: leg.session,
                    leg: leg.id,
                    silent_for,
                });
            }
        }
    }

    fn handle(&mut self, cmd: Command) {
        // A dropped reply receiver (caller timed out) is not an error here.
        match cmd {
            Command::CreateSession { id, call_id, reply } => {
                self.sessions.insert(
                    id,
                    Session {
                        call_id,
                        created: Instant::now(),
                        legs: Vec::new(),
                        next_leg: 0,
                        recording: None,
                    },
                );
                self.counters.sessions.store(self.sessions.len(), Relaxed);
                let _ = reply.send(Ok(()));
            }
            Command::AddLeg { session, leg, reply } => {
                let _ = reply.send(self.add_leg(session, *leg));
            }
            Command::SetRemote {
                session,
                leg,
                rtp,
                rtcp,
                reply,
            } => {
                let r = self.leg_key(session, leg).map(|k| {
                    if let Some(l) = self.legs.get_mut(k) {
                        l.set_remote(rtp, rtcp, Instant::now());
                    }
                });
                let _ = reply.send(r);
            }
            Command::SetCodec {
                session,
                leg,
                codec,
                clock_rate,
                reply,
            } => {
                let _ = reply.send(self.set_codec(session, leg, codec, clock_rate));
            }
            Command::Connect { session, a, b, reply } => {
                let _ = reply.send(self.connect(session, a, b));
            }
            Command::Delete { session, reply } => {
                let _ = reply.send(self.delete(session));
            }
            Command::Stats { session, reply } => {
                let _ = reply.send(self.session_stats(session));
            }
            Command::StartRecording { session, spec, reply } => {
                let _ = reply.send(self.start_recording(session, *spec));
            }
            Command::PauseRecording { session, reply } => {
                let _ = reply.send(self.pause_recording(session));
            }
            Command::StopRecording { session, reply } => {
                let _ = reply.send(self.stop_recording(session));
            }
            Command::InjectFormat { session, leg, reply } => {
                let _ = reply.send(self.inject_format(session, leg));
            }
            Command::Inject {
                session,
                leg,
                format,
                inject,
                reply,
            } => {
                let _ = reply.send(self.inject(session, leg, &format, inject));
            }
            Command::StopPlay { session, leg, reply } => {
                let _ = reply.send(self.stop_play(session, leg));
            }
            Command::SetDtmf {
                session,
                leg,
                dtmf,
                reply,
            } => {
                let _ = reply.send(self.set_dtmf(session, leg, dtmf));
            }
            Command::ChangeLeg {
                session,
                leg,
                change,
                reply,
            } => {
                let _ = reply.send(self.change_leg(session, leg, change));
            }
            Command::Shutdown => {}
        }
    }

    fn leg_key(&self, session: SessionId, leg: LegId) -> Result<usize> {
        let s = self
            .sessions
            .get(&session)
            .ok_or(Error::UnknownSession(session))?;
        s.legs
            .iter()
            .find(|(id, _)| *id == leg)
            .map(|&(_, k)| k)
            .ok_or(Error::UnknownLeg { session, leg })
    }

    /// Registers the leg's sockets. On any error the `NewLeg` (and with it
    /// the sockets and the port guard) is dropped: the ports go back.
    fn add_leg(&mut self, session: SessionId, new: NewLeg) -> Result<LegId> {
        let s = self
            .sessions
            .get(&session)
            .ok_or(Error::UnknownSession(session))?;
        if s.legs.len() >= MAX_LEGS_PER_SESSION {
            return Err(Error::TooManyLegs {
                session,
                limit: MAX_LEGS_PER_SESSION,
            });
        }
        let receiver = RtpReceiver::new(new.clock_rate)
            .map_err(|e| Error::Invalid(format!("clock rate {}: {e}", new.clock_rate)))?;
        let id = LegId(s.next_leg);
        let Allocation { rtp, rtcp, guard } = new.alloc;
        let parts = LegParts {
            session,
            id,
            label: new.label,
            interface: new.interface,
            rtp: mio::net::UdpSocket::from_std(rtp),
            rtcp: rtcp.map(mio::net::UdpSocket::from_std),
            local_rtp: new.local_rtp,
            local_rtcp: new.local_rtcp,
            strict: new.strict,
            latching: new.latching,
            receiver,
            clock_rate: new.clock_rate,
            codec: new.codec,
            ports: guard,
        };
        let key = self
            .legs
            .insert(Leg::new(parts, &self.config.policy, Instant::now()));
        if let Err(e) = self.register(key) {
            self.remove_leg(key);
            return Err(e);
        }
        if let Some(s) = self.sessions.get_mut(&session) {
            s.next_leg += 1;
            s.legs.push((id, key));
        }
        self.counters.legs.fetch_add(1, Relaxed);
        Ok(id)
    }

    fn register(&mut self, key: usize) -> Result<()> {
        let registry = self.poll.registry();
        let leg = self.legs.get_mut(key).ok_or(Error::Stopped)?;
        registry
            .register(&mut leg.rtp, Token(key * 2), Interest::READABLE)
            .map_err(|e| Error::io("registering an RTP socket with epoll", e))?;
        if let Some(rtcp) = leg.rtcp.as_mut() {
            registry
                .register(rtcp, Token(key * 2 + 1), Interest::READABLE)
                .map_err(|e| Error::io("registering an RTCP socket with epoll", e))?;
        }
        Ok(())
    }

    /// Unlinks, deregisters and drops a leg (closing its sockets, then
    /// freeing its ports).
    fn remove_leg(&mut self, key: usize) -> Option<Leg> {
        self.unlink(key);
        let mut leg = self.legs.remove(key)?;
        let registry = self.poll.registry();
        let _ = registry.deregister(&mut leg.rtp);
        if let Some(rtcp) = leg.rtcp.as_mut() {
            let _ = registry.deregister(rtcp);
        }
        Some(leg)
    }

    /// Bidirectional forwarding between two legs of one session; each
    /// leaves any earlier partner. When both legs name codecs that differ
    /// (or only their ptime does), or only one of them has telephone-event,
    /// media is transcoded both ways.
    fn connect(&mut self, session: SessionId, a: LegId, b: LegId) -> Result<()> {
        let ka = self.leg_key(session, a)?;
        let kb = self.leg_key(session, b)?;
        if ka == kb {
            return Err(Error::Invalid(format!("cannot connect leg {a} to itself")));
        }
        let codec = |k: usize| self.legs.get(k).and_then(|l| l.codec.clone());
        let event_pt = |k: usize| self.legs.get(k).and_then(|l| l.dtmf.telephone_event_pt);
        let (ea, eb) = (event_pt(ka), event_pt(kb));
        // Telephone-event on one side only: even the same codec is
        // transcoded, so keys are converted between RFC 4733 events and
        // in-band tones (worker::dtmf_conv).
        let convert_dtmf = ea.is_some() != eb.is_some();
        let transcoders = match (codec(ka), codec(kb)) {
            (Some(ca), Some(cb)) if !ca.same_stream(&cb) || convert_dtmf => {
                let opus = self.config.opus_complexity;
                let seed = self.epoch.elapsed().subsec_nanos() ^ (session.0 as u32).wrapping_mul(0x9e37_79b1);
                Some((
                    transcode::Transcoder::new(&ca, &cb, seed ^ a.0.wrapping_mul(0x85eb_ca6b), opus)?,
                    transcode::Transcoder::new(&cb, &ca, seed ^ b.0.wrapping_mul(0xc2b2_ae35) ^ 1, opus)?,
                ))
            }
            _ => None,
        };
        self.unlink(ka);
        self.unlink(kb);
        let (ta, tb) = match transcoders {
            Some((x, y)) => (Some(Box::new(x)), Some(Box::new(y))),
            None => (None, None),
        };
        for (k, other, mut t, (ein, eout)) in [(ka, kb, ta, (ea, eb)), (kb, ka, tb, (eb, ea))] {
            if let Some(t) = t.as_mut() {
                t.set_event_types(ein, eout);
            }
            if let Some(l) = self.legs.get_mut(k) {
                l.peer = Some(other);
                if t.is_some() {
                    self.transcoding += 1;
                }
                l.transcode = t;
            }
        }
        Ok(())
    }

    /// Sets the leg's codec and, if it is connected, reconnects the pair so
    /// that relay or transcoding follows; on failure the old codec stays.
    fn set_codec(
        &mut self,
        session: SessionId,
        leg: LegId,
        codec: Option<LegCodec>,
        clock_rate: u32,
    ) -> Result<()> {
        let key = self.leg_key(session, leg)?;
        let l = self.legs.get(key).ok_or(Error::UnknownLeg { session, leg })?;
        let receiver = match l.clock_rate == clock_rate {
            true => None,
            false => Some(
                RtpReceiver::new(clock_rate)
                    .map_err(|e| Error::Invalid(format!("clock rate {clock_rate}: {e}")))?,
            ),
        };
        let partner = l.peer.and_then(|p| self.legs.get(p)).map(|p| p.id);
        let previous = self
            .legs
            .get_mut(key)
            .map(|l| std::mem::replace(&mut l.codec, codec));
        if let Some(other) = partner {
            if let Err(e) = self.connect(session, leg, other) {
                if let (Some(l), Some(old)) = (self.legs.get_mut(key), previous) {
                    l.codec = old;
                }
                return Err(e);
            }
        }
        if let (Some(l), Some(r)) = (self.legs.get_mut(key), receiver) {
            l.set_receiver(r, clock_rate);
        }
        if let Err(e) = self.refresh_dtmf_in(key) {
            // The codec is in place; only detection could not follow.
            if let Some(l) = self.legs.get_mut(key) {
                l.dtmf_in = None;
            }
            self.retap(session, key);
            return Err(e);
        }
        self.retap(session, key);
        Ok(())
    }

    /// Disconnects a leg from its partner (both sides), dropping transcoders.
    fn unlink(&mut self, key: usize) {
        let Some(peer) = self.legs.get_mut(key).and_then(|l| l.peer.take()) else {
            return;
        };
        for k in [key, peer] {
            if let Some(l) = self.legs.get_mut(k) {
                if l.transcode.take().is_some() {
                    self.transcoding -= 1;
                }
                if k == peer && l.peer == Some(key) {
                    l.peer = None;
                }
            }
        }
    }

    /// Runs every transcoder: the packets due now go out from the peer
    /// leg's RTP socket to its peer.
    fn media_tick(&mut self, now: Instant) {
        let epoch = self.epoch;
        for key in 0..self.legs.entries.len() {
            let Some(leg) = self.legs.get(key) else { continue };
            let (Some(peer), true) = (leg.peer, leg.transcode.is_some()) else {
                continue;
            };
            let Some((fd, dest, muted)) = self
                .legs
                .get(peer)
                .map(|p| (p.rtp.as_raw_fd(), p.rtp_dest(), p.inject.is_some()))
            else {
                continue;
            };
            // While a prompt plays into the peer, the transcoder keeps
            // running (its buffers drain) but its output is withheld.
            let dest = dest.filter(|_| !muted);
            let dest = dest.map(crate::sys::RawAddr::new);
            let (mut sent, mut bytes, mut failed) = (0u64, 0u64, 0u64);
            if let Some(t) = self.legs.get_mut(key).and_then(|l| l.transcode.as_mut()) {
                t.run(now, epoch, |pkt| {
                    match dest.as_ref().map(|d| crate::sys::send_one(fd, pkt, d)) {
                        Some(Ok(_)) => {
                            sent += 1;
                            bytes += pkt.len() as u64;
                        }
                        None if muted => {}
                        _ => failed += 1,
                    }
                });
            }
            if let Some(p) = self.legs.get_mut(peer) {
                p.packets_out += sent;
                p.bytes_out += bytes;
            }
            if failed > 0 {
                if let Some(l) = self.legs.get_mut(key) {
                    l.dropped.add(crate::stats::DropKind::SendFailed, failed);
                }
                self.counters
                    .count_drop(crate::stats::DropKind::SendFailed, failed);
            }
            self.counters.relayed.fetch_add(sent, Relaxed);
            self.counters.relayed_bytes.fetch_add(bytes, Relaxed);
        }
    }

    fn session_stats(&self, session: SessionId) -> Result<SessionStats> {
        let s = self
            .sessions
            .get(&session)
            .ok_or(Error::UnknownSession(session))?;
        let now = Instant::now();
        Ok(SessionStats {
            session,
            call_id: s.call_id.clone(),
            age: now.saturating_duration_since(s.created),
            legs: s
                .legs
                .iter()
                .filter_map(|&(_, k)| self.legs.get(k).map(|l| l.stats(now)))
                .collect(),
        })
    }

    /// Removes the session; its ports are free when this returns.
    fn delete(&mut self, session: SessionId) -> Result<SessionStats> {
        let stats = self.session_stats(session)?;
        if self.sessions.get(&session).is_some_and(|s| s.recording.is_some()) {
            let _ = self.stop_recording(session);
        }
        if let Some(s) = self.sessions.remove(&session) {
            for (_, k) in s.legs {
                if self.remove_leg(k).is_some() {
                    self.counters.legs.fetch_sub(1, Relaxed);
                }
            }
        }
        self.counters.sessions.store(self.sessions.len(), Relaxed);
        Ok(stats)
    }
}
