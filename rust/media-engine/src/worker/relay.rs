//! The packet path: read a batch from one socket, decide per datagram, and
//! send the accepted ones on from the connected leg's socket with one
//! sendmmsg per stream. Same codec on both sides: payloads are forwarded
//! untouched (no decoding, no copying, no allocation).

use super::leg::Verdict;
use super::Worker;
use crate::events::Event;
use crate::stats::DropKind;
use crate::sys::{RawAddr, BATCH};
use mio::Token;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

/// Batches read from one socket per readiness before others get a turn.
const MAX_ROUNDS: usize = 8;

/// Where the connected leg sends from and to.
struct Route {
    key: usize,
    /// The connected leg is being sent a prompt or DTMF: media towards it
    /// is withheld.
    muted: bool,
    rtp: (RawFd, Option<SocketAddr>),
    rtcp: (RawFd, Option<SocketAddr>),
    /// SSRC of the stream the engine itself sends to this side's endpoint
    /// (the partner's transcoder), for RTCP that ends here.
    sender_ssrc: Option<u32>,
}

impl Worker {
    /// Drains one readable socket (edge-triggered readiness). Returns true
    /// if it still holds data after its fair share of batches.
    pub(super) fn on_readable(&mut self, token: Token) -> bool {
        let key = token.0 / 2;
        let on_rtcp_port = token.0 % 2 == 1;
        for _ in 0..MAX_ROUNDS {
            let Some(leg) = self.legs.get(key) else {
                return false;
            };
            let fd = match (&leg.rtcp, on_rtcp_port) {
                (_, false) => leg.rtp.as_raw_fd(),
                (Some(s), true) => s.as_raw_fd(),
                (None, true) => return false,
            };
            let route = leg.peer.and_then(|p| {
                self.legs.get(p).map(|pl| Route {
                    key: p,
                    muted: pl.inject.is_some(),
                    rtp: (pl.rtp.as_raw_fd(), pl.rtp_dest()),
                    rtcp: pl.rtcp_route(),
                    sender_ssrc: pl.transcode.as_ref().map(|t| t.ssrc()),
                })
            });
            let n = match self.batch.recv(fd) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.counters.receive_errors.fetch_add(1, Relaxed);
                    return false;
                }
            };
            self.relay_batch(key, on_rtcp_port, n, route.as_ref());
            // Fewer than asked means recvmmsg met an empty queue: the socket
            // is drained and the next datagram raises a new edge.
            if n < BATCH {
                return false;
            }
        }
        true
    }

    fn relay_batch(&mut self, key: usize, on_rtcp_port: bool, n: usize, route: Option<&Route>) {
        let now = Instant::now();
        let arrival = now.saturating_duration_since(self.epoch).as_secs_f64();
        let policy = self.config.policy;
        let mut rtp_out = [0u8; BATCH];
        let mut rtcp_out = [0u8; BATCH];
        let (mut nr, mut nc) = (0, 0);
        let (mut events_out, mut events_bytes) = (0u64, 0u64);
        let Some(leg) = self.legs.get_mut(key) else {
            return;
        };
        for i in 0..n.min(BATCH) {
            let Some(d) = self.batch.get(i) else { break };
            let (mut verdict, notice) = leg.accept(on_rtcp_port, &d, now, arrival, &policy);
            if let (Verdict::Rtp, Some(tap)) = (verdict, leg.tap.as_mut()) {
                tap.push(d.data, now, self.epoch);
            }
            if let (Verdict::Rtp, Some(det)) = (verdict, leg.dtmf_in.as_mut()) {
                det.on_rtp(d.data, |k| {
                    self.events.push(Event::Dtmf {
                        session: leg.session,
                        leg: leg.id,
                        digit: k.digit,
                        duration_ms: k.duration_ms,
                        source: k.source,
                    })
                });
            }
            let muted = route.is_some_and(|r| r.muted);
            if let Some(t) = leg.transcode.as_mut() {
                // Decoded and re-encoded on the media tick; RTCP ends here
                // (its SSRCs and counts describe the other encoding).
                // RFC 4733 events skip the codecs: translated and sent on.
                let pt = d.data.get(1).map_or(0, |b| b & 0x7f);
                if verdict == Verdict::Rtp && t.is_event(pt) {
                    if let (Some(pkt), Some((fd, Some(dest))), false) =
                        (t.translate_event(d.data, now), route.map(|r| r.rtp), muted)
                    {
                        if crate::sys::send_one(fd, pkt, &RawAddr::new(dest)).is_ok() {
                            events_out += 1;
                            events_bytes += pkt.len() as u64;
                        }
                    }
                } else if verdict == Verdict::Rtp {
                    t.push(d.data, now, self.epoch);
                } else if verdict == Verdict::Rtcp {
                    // The engine is the RTP source towards this endpoint:
                    // its RTCP ends here (see worker::rtcp).
                    let ours = route.and_then(|r| r.sender_ssrc);
                    leg.on_terminated_rtcp(d.data, arrival, ours);
                }
                if matches!(verdict, Verdict::Rtp | Verdict::Rtcp) {
                    verdict = Verdict::Consumed;
                }
            }
            if muted && verdict == Verdict::Rtp {
                verdict = Verdict::Consumed;
            }
            let dest = match verdict {
                Verdict::Rtp => route.and_then(|r| r.rtp.1),
                Verdict::Rtcp => route.and_then(|r| r.rtcp.1),
                Verdict::Drop(_) | Verdict::Consumed => None,
            };
            match (verdict, dest) {
                (Verdict::Rtp, Some(_)) => {
                    if let Some(map) = leg.pt_map.as_deref() {
                        self.batch.rewrite_pt(i, map);
                    }
                    rtp_out[nr] = i as u8;
                    nr += 1;
                }
                (Verdict::Rtcp, Some(_)) => {
                    rtcp_out[nc] = i as u8;
                    nc += 1;
                }
                (Verdict::Consumed, _) => {}
                (Verdict::Drop(kind), _) => {
                    leg.dropped.add(kind, 1);
                    self.counters.count_drop(kind, 1);
                }
                (_, None) => {
                    leg.dropped.add(DropKind::NoDestination, 1);
                    self.counters.count_drop(DropKind::NoDestination, 1);
                }
            }
            if let Some((peer, rtcp)) = notice.latched {
                self.events.push(Event::Latched {
                    session: leg.session,
                    leg: leg.id,
                    peer,
                    rtcp,
                });
            }
            if notice.resumed {
                self.events.push(Event::MediaResumed {
                    session: leg.session,
                    leg: leg.id,
                });
            }
        }
        let Some(route) = route else { return };
        if events_out > 0 {
            if let Some(p) = self.legs.get_mut(route.key) {
                p.packets_out += events_out;
                p.bytes_out += events_bytes;
            }
            self.counters.relayed.fetch_add(events_out, Relaxed);
            self.counters.relayed_bytes.fetch_add(events_bytes, Relaxed);
        }
        let mut failed = 0u64;
        for (which, (fd, dest), is_rtcp) in [
            (&rtp_out[..nr], route.rtp, false),
            (&rtcp_out[..nc], route.rtcp, true),
        ] {
            let Some(dest) = dest.filter(|_| !which.is_empty()) else {
                continue;
            };
            let (sent, _err) = self.batch.send(fd, which, &RawAddr::new(dest));
            let bytes: u64 = which[..sent]
                .iter()
                .map(|&i| self.batch.len_of(usize::from(i)) as u64)
                .sum();
            failed += (which.len() - sent) as u64;
            if let Some(p) = self.legs.get_mut(route.key) {
                if is_rtcp {
                    p.rtcp_out += sent as u64;
                } else {
                    p.packets_out += sent as u64;
                }
                p.bytes_out += bytes;
            }
            self.counters.relayed.fetch_add(sent as u64, Relaxed);
            self.counters.relayed_bytes.fetch_add(bytes, Relaxed);
            if is_rtcp {
                self.counters.rtcp_relayed.fetch_add(sent as u64, Relaxed);
            }
        }
        if failed > 0 {
            if let Some(leg) = self.legs.get_mut(key) {
                leg.dropped.add(DropKind::SendFailed, failed);
            }
            self.counters.count_drop(DropKind::SendFailed, failed);
        }
    }
}
