//! Events from the workers to the control plane (DESIGN.md §3.2: Rust never
//! calls Python). Workers push into a bounded queue and make an eventfd
//! readable; the asyncio loop watches that descriptor and drains the queue
//! with `Engine::poll_events`.

use crate::playback::{DtmfSource, PlayEndReason};
use crate::sys::EventFd;
use crate::types::{LegId, SessionId};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Mutex;
use std::time::Duration;

/// Something the control plane should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// No packet (RTP or RTCP) arrived on the leg for `silent_for`; raised
    /// once per silence, again only after media resumed and stopped again.
    MediaTimeout {
        session: SessionId,
        leg: LegId,
        silent_for: Duration,
    },
    /// The leg now sends to `peer`, learnt from where the peer's packets
    /// come from (symmetric RTP, RFC 3581 spirit / RFC 4961); `rtcp` tells
    /// the RTCP stream of a non-muxed leg.
    Latched {
        session: SessionId,
        leg: LegId,
        peer: SocketAddr,
        rtcp: bool,
    },
    /// Media arrived again on a leg that had timed out.
    MediaResumed { session: SessionId, leg: LegId },
    /// A recording ended on an error (e.g. the disk is full): the WAV
    /// holds what was written before it; media keeps flowing.
    RecordingFailed { session: SessionId, reason: String },
    /// A prompt started with `Engine::play` ended (not raised when the
    /// session or leg is deleted).
    PlayEnded {
        session: SessionId,
        leg: LegId,
        play: u64,
        reason: PlayEndReason,
    },
    /// A key was pressed on a leg with DTMF detection on; reported once per
    /// press, when it is first seen (`duration_ms`: how long it had lasted
    /// by then).
    Dtmf {
        session: SessionId,
        leg: LegId,
        digit: char,
        duration_ms: u32,
        source: DtmfSource,
    },
    /// The queue was full: `count` events were dropped (first in the
    /// batch that follows the loss).
    EventsLost { count: u64 },
}

/// Bounded multi-producer queue plus its readiness descriptor.
#[derive(Debug)]
pub(crate) struct EventQueue {
    inner: Mutex<Inner>,
    capacity: usize,
    fd: EventFd,
}

#[derive(Debug)]
struct Inner {
    queue: VecDeque<Event>,
    lost: u64,
    lost_total: u64,
}

impl EventQueue {
    pub fn new(capacity: usize) -> std::io::Result<Self> {
        Ok(EventQueue {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                lost: 0,
                lost_total: 0,
            }),
            capacity,
            fd: EventFd::new()?,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues an event (or counts it lost when full) and signals the fd.
    pub fn push(&self, ev: Event) {
        {
            let mut g = self.lock();
            if g.queue.len() >= self.capacity {
                g.lost += 1;
                g.lost_total += 1;
            } else {
                g.queue.push_back(ev);
            }
        }
        self.fd.notify();
    }

    /// Takes everything queued. The descriptor is cleared *before* the
    /// queue is taken, so an event pushed meanwhile leaves it readable:
    /// no wake-up is ever lost (at worst one spurious, empty poll).
    pub fn drain(&self) -> Vec<Event> {
        self.fd.clear();
        let mut g = self.lock();
        let mut out = Vec::with_capacity(g.queue.len() + 1);
        if g.lost > 0 {
            out.push(Event::EventsLost { count: g.lost });
            g.lost = 0;
        }
        out.extend(g.queue.drain(..));
        out
    }

    pub fn lost_total(&self) -> u64 {
        self.lock().lost_total
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.raw()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_reports_loss_first() {
        let q = EventQueue::new(2).unwrap();
        for i in 0..5 {
            q.push(Event::MediaResumed {
                session: SessionId(i),
                leg: LegId(0),
            });
        }
        let got = q.drain();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], Event::EventsLost { count: 3 });
        assert_eq!(
            got[1],
            Event::MediaResumed {
                session: SessionId(0),
                leg: LegId(0)
            }
        );
        assert!(q.drain().is_empty());
        assert_eq!(q.lost_total(), 3);
    }
}
