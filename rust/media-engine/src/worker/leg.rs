//! One leg's state on its worker: sockets, addresses, latching, rate limit,
//! receive statistics and the per-datagram accept/drop decision.

use super::dtmf_in::DtmfIn;
use super::inject::{Injection, OutStream};
use super::latch::{Latch, LatchRules, Learn};
use super::transcode::Transcoder;
use crate::config::Latching;
use crate::config::LegCodec;
use crate::playback::LegDtmf;
use crate::ports::PortGuard;
use crate::stats::{DropCounts, DropKind, LegStats};
use crate::sys::Datagram;
use crate::types::{LegId, SessionId};
use media_core::rtcp::RawPacket;
use media_core::rtp::RtpView;
use media_core::rtp_stats::Receiver;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// What to do with one received datagram.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Rtp,
    Rtcp,
    /// Accepted and used here (fed to a transcoder), not forwarded as is.
    Consumed,
    Drop(DropKind),
}

/// Side effects of accepting a datagram that the control plane hears of.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Notice {
    /// Newly latched peer address, and whether it is the RTCP stream's.
    pub latched: Option<(SocketAddr, bool)>,
    /// RTP came back after a media timeout was reported.
    pub resumed: bool,
}

/// Per-leg limits and timers, copied from the engine config.
#[derive(Copy, Clone, Debug)]
pub(crate) struct LegPolicy {
    pub max_pps: u32,
    pub relatch_after: Duration,
}

/// Token bucket: `rate` packets per second, bursts up to one second's worth.
#[derive(Debug)]
struct RateLimiter {
    rate: u32,
    tokens: u32,
    last: Instant,
}

impl RateLimiter {
    fn new(rate: u32, now: Instant) -> Self {
        RateLimiter {
            rate,
            tokens: rate,
            last: now,
        }
    }

    fn allow(&mut self, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        if self.tokens == 0 {
            let elapsed = now.saturating_duration_since(self.last).as_nanos();
            let add = elapsed * u128::from(self.rate) / 1_000_000_000;
            if add == 0 {
                return false;
            }
            self.tokens = add.min(u128::from(self.rate)) as u32;
            // Keep the fraction of a token already earned.
            let used = add * 1_000_000_000 / u128::from(self.rate);
            self.last = if add >= u128::from(self.rate) {
                now
            } else {
                self.last + Duration::from_nanos(used as u64)
            };
        }
        self.tokens -= 1;
        true
    }
}

pub(crate) struct Leg {
    pub session: SessionId,
    pub id: LegId,
    pub label: Option<String>,
    pub interface: String,
    pub rtp: mio::net::UdpSocket,
    pub rtcp: Option<mio::net::UdpSocket>,
    pub local_rtp: SocketAddr,
    pub local_rtcp: Option<SocketAddr>,
    remote_rtp: Option<SocketAddr>,
    remote_rtcp: Option<SocketAddr>,
    latch_rtp: Latch,
    latch_rtcp: Latch,
    /// Slab key of the connected leg.
    pub peer: Option<usize>,
    pub codec: Option<LegCodec>,
    /// RTP clock rate `receiver` runs at.
    pub clock_rate: u32,
    /// Set when this leg's media must be transcoded for its peer.
    pub transcode: Option<Box<Transcoder>>,
    /// Decoder feeding the session's recording while this leg is recorded.
    pub tap: Option<Box<super::recording::Tap>>,
    /// DTMF settings (telephone-event PT, detection).
    pub dtmf: LegDtmf,
    /// Key press detection, while `dtmf.detect` is on.
    pub dtmf_in: Option<Box<DtmfIn>>,
    /// Prompt or DTMF being sent into the leg; the partner's media towards
    /// the leg is withheld meanwhile.
    pub inject: Option<Box<Injection>>,
    /// The engine's own RTP stream towards the leg's endpoint.
    pub out: OutStream,
    strict: bool,
    latching: Latching,
    /// RTP payload type rewrite towards the peer (same codec, different
    /// numbers on each side): index is the PT received, value the PT sent.
    pub pt_map: Option<Box<[u8; 128]>>,
    /// When the engine's next RTCP report to this leg's endpoint is due
    /// (transcoded legs, where the engine is the RTP source: RFC 3550 §6.4).
    pub next_report: Option<Instant>,
    /// Round-trip time from the endpoint's last report on our stream.
    pub rtt: Option<Duration>,
    limiter: RateLimiter,
    receiver: Receiver,
    /// Start of the current silence: last RTP, or creation / set_remote.
    silent_since: Instant,
    last_rtp: Option<Instant>,
    timed_out: bool,
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub rtcp_in: u64,
    pub rtcp_out: u64,
    pub dropped: DropCounts,
    /// Declared last: dropped after the sockets, so a freed port is closed.
    _ports: PortGuard,
}

/// RFC 5761 §4: on a multiplexed port, a second octet of 192..=223 (marker
/// bit + payload type 64..=95) is RTCP (packet types 192..=223).
pub(crate) fn looks_like_rtcp(data: &[u8]) -> bool {
    data.get(1).is_some_and(|b| (192..=223).contains(b))
}

/// A seed for the leg's SSRC and initial sequence number and timestamp
/// (RFC 3550 §5.1, §8.1: random), from the process's random hash keys.
fn random_seed(session: SessionId, leg: LegId) -> u32 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one((session.0, leg.0)) as u32
}

/// Everything needed to build a leg.
pub(crate) struct LegParts {
    pub session: SessionId,
    pub id: LegId,
    pub label: Option<String>,
    pub interface: String,
    pub rtp: mio::net::UdpSocket,
    pub rtcp: Option<mio::net::UdpSocket>,
    pub local_rtp: SocketAddr,
    pub local_rtcp: Option<SocketAddr>,
    pub strict: bool,
    pub latching: Latching,
    pub receiver: Receiver,
    pub clock_rate: u32,
    pub codec: Option<LegCodec>,
    pub ports: PortGuard,
}

impl Leg {
    pub fn new(p: LegParts, policy: &LegPolicy, now: Instant) -> Self {
        Leg {
            session: p.session,
            id: p.id,
            label: p.label,
            interface: p.interface,
            rtp: p.rtp,
            rtcp: p.rtcp,
            local_rtp: p.local_rtp,
            local_rtcp: p.local_rtcp,
            remote_rtp: None,
            remote_rtcp: None,
            latch_rtp: Latch::default(),
            latch_rtcp: Latch::default(),
            peer: None,
            codec: p.codec,
            clock_rate: p.clock_rate,
            transcode: None,
            tap: None,
            dtmf: LegDtmf::default(),
            dtmf_in: None,
            inject: None,
            out: OutStream::new(random_seed(p.session, p.id)),
            strict: p.strict,
            latching: p.latching,
            pt_map: None,
            next_report: None,
            rtt: None,
            limiter: RateLimiter::new(policy.max_pps, now),
            receiver: p.receiver,
            silent_since: now,
            last_rtp: None,
            timed_out: false,
            packets_in: 0,
            bytes_in: 0,
            packets_out: 0,
            bytes_out: 0,
            rtcp_in: 0,
            rtcp_out: 0,
            dropped: DropCounts::default(),
            _ports: p.ports,
        }
    }

    /// New addresses from SDP (offer/answer or re-INVITE): forget what was
    /// latched, so the next packets teach the address again.
    pub fn set_remote(&mut self, rtp: SocketAddr, rtcp: Option<SocketAddr>, now: Instant) {
        self.remote_rtp = Some(rtp);
        self.remote_rtcp = rtcp;
        self.latch_rtp = Latch::default();
        self.latch_rtcp = Latch::default();
        if self.timed_out || self.last_rtp.is_none() {
            self.silent_since = now;
        }
    }

    /// Per-request latching flags (strict source, symmetric / asymmetric /
    /// media handover); what was latched is forgotten.
    pub fn set_latching(&mut self, strict: bool, latching: Latching) {
        self.strict = strict;
        self.latching = latching;
        self.latch_rtp = Latch::default();
        self.latch_rtcp = Latch::default();
    }

    /// The engine's receive statistics for RTCP reports it sends itself.
    pub fn receiver_mut(&mut self) -> &mut Receiver {
        &mut self.receiver
    }

    /// Receive statistics at a new RTP clock rate (a new codec): they
    /// restart, since jitter in the old clock's units means nothing now.
    pub fn set_receiver(&mut self, receiver: Receiver, clock_rate: u32) {
        self.receiver = receiver;
        self.clock_rate = clock_rate;
    }

    /// Where RTP for this leg's peer goes: latched address, else SDP's.
    pub fn rtp_dest(&self) -> Option<SocketAddr> {
        self.latch_rtp.addr.or(self.remote_rtp)
    }

    /// Socket and destination for RTCP to this leg's peer. With rtcp-mux
    /// RTCP shares the RTP port (RFC 5761); otherwise the latched RTCP
    /// source, the SDP `a=rtcp` address, or RTP port + 1 (RFC 3550 §11).
    pub fn rtcp_route(&self) -> (RawFd, Option<SocketAddr>) {
        match &self.rtcp {
            None => (self.rtp.as_raw_fd(), self.rtp_dest()),
            Some(s) => {
                let dest = self.latch_rtcp.addr.or(self.remote_rtcp).or_else(|| {
                    self.rtp_dest()
                        .and_then(|a| a.port().checked_add(1).map(|p| SocketAddr::new(a.ip(), p)))
                });
                (s.as_raw_fd(), dest)
            }
        }
    }

    /// Decides about one datagram that arrived at `now` on the RTP port
    /// (`on_rtcp_port` false) or the RTCP port. Accepted packets update
    /// latching and statistics; nothing here allocates.
    pub fn accept(
        &mut self,
        on_rtcp_port: bool,
        d: &Datagram<'_>,
        now: Instant,
        arrival_secs: f64,
        policy: &LegPolicy,
    ) -> (Verdict, Notice) {
        let mut notice = Notice::default();
        let Some(src) = d.from else {
            return (Verdict::Drop(DropKind::Garbage), notice);
        };
        if d.truncated {
            return (Verdict::Drop(DropKind::Oversize), notice);
        }
        let rtcp = on_rtcp_port || looks_like_rtcp(d.data);
        let own_rtcp_stream = rtcp && self.rtcp.is_some();
        let latch = if own_rtcp_stream {
            &self.latch_rtcp
        } else {
            &self.latch_rtp
        };
        if self.strict && latch.addr.is_some_and(|a| a != src) {
            return (Verdict::Drop(DropKind::Stranger), notice);
        }
        // The rate limit applies to what a leg accepts (below): a stranger's
        // flood before latching cannot use up the real endpoint's budget.
        // Version 2 (RFC 3550 §5.1, §6.4.1) checked here first: it rejects
        // most garbage (STUN, random bytes) before the parsers, whose error
        // values allocate.
        if d.data.len() < 4 || d.data[0] >> 6 != 2 {
            return (Verdict::Drop(DropKind::Garbage), notice);
        }
        let rules = LatchRules {
            strict: self.strict,
            mode: self.latching,
            relatch_after: policy.relatch_after,
        };
        if rtcp {
            // RFC 3550 §6.4.1 common header (version, length) and an RTCP
            // packet type (RFC 5761 §4 range).
            let ok = RawPacket::parse(d.data).is_ok_and(|(p, _)| (192..=223).contains(&p.packet_type()));
            if !ok {
                return (Verdict::Drop(DropKind::Garbage), notice);
            }
            if own_rtcp_stream {
                let rtp_ip = self.latch_rtp.addr.map(|a| a.ip());
                let sdp = self.remote_rtcp.or(self.remote_rtp);
                match self.latch_rtcp.learn(src, None, now, &rules, sdp, rtp_ip) {
                    Learn::Latched => notice.latched = Some((src, true)),
                    Learn::Stranger => return (Verdict::Drop(DropKind::Stranger), notice),
                    Learn::Accept => {}
                }
            }
            if !self.limiter.allow(now) {
                return (Verdict::Drop(DropKind::Flood), notice);
            }
            self.rtcp_in += 1;
            self.bytes_in += d.data.len() as u64;
            return (Verdict::Rtcp, notice);
        }
        let Ok(view) = RtpView::parse(d.data) else {
            return (Verdict::Drop(DropKind::Garbage), notice);
        };
        match self
            .latch_rtp
            .learn(src, Some(view.sequence().0), now, &rules, self.remote_rtp, None)
        {
            Learn::Latched => notice.latched = Some((src, false)),
            Learn::Stranger => return (Verdict::Drop(DropKind::Stranger), notice),
            Learn::Accept => {}
        }
        if !self.limiter.allow(now) {
            return (Verdict::Drop(DropKind::Flood), notice);
        }
        // RFC 3550 A.1/A.8 statistics, across SSRC changes (§8.2).
        self.receiver
            .on_rtp(view.ssrc(), view.sequence(), view.timestamp(), arrival_secs);
        self.packets_in += 1;
        self.bytes_in += d.data.len() as u64;
        self.last_rtp = Some(now);
        self.silent_since = now;
        if self.timed_out {
            self.timed_out = false;
            notice.resumed = true;
        }
        (Verdict::Rtp, notice)
    }

    /// Reports a media timeout once per silence of at least `timeout`.
    pub fn check_timeout(&mut self, now: Instant, timeout: Duration) -> Option<Duration> {
        let silent = now.saturating_duration_since(self.silent_since);
        if self.timed_out || silent < timeout {
            return None;
        }
        self.timed_out = true;
        Some(silent)
    }

    pub fn stats(&self, now: Instant) -> LegStats {
        let src = self.receiver.source();
        LegStats {
            leg: self.id,
            label: self.label.clone(),
            interface: self.interface.clone(),
            local_rtp: self.local_rtp,
            local_rtcp: self.local_rtcp,
            remote_rtp: self.remote_rtp,
            peer: self.rtp_dest(),
            latched: self.latch_rtp.addr.is_some(),
            packets_in: self.packets_in,
            bytes_in: self.bytes_in,
            packets_out: self.packets_out,
            bytes_out: self.bytes_out,
            rtcp_in: self.rtcp_in,
            rtcp_out: self.rtcp_out,
            lost: src.map_or(0, |s| i64::from(s.lost())),
            expected: src.map_or(0, |s| u64::from(s.expected())),
            jitter_ms: src.map_or(0.0, |s| s.jitter_ms()),
            duplicates: src.map_or(0, |s| s.duplicates()),
            reordered: src.map_or(0, |s| s.reordered()),
            ssrc: src.map(|s| s.ssrc().0),
            ssrc_changes: self.receiver.ssrc_changes(),
            rtt: self.rtt,
            transcoding: self.transcode.is_some(),
            playing: self.inject.as_ref().and_then(|i| i.play()),
            last_packet_age: self.last_rtp.map(|t| now.saturating_duration_since(t)),
            dropped: self.dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_allows_rate_per_second() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(50, t0);
        let burst = (0..200).filter(|_| r.allow(t0)).count();
        assert_eq!(burst, 50, "one second's worth of burst");
        // Over the next second (1 ms steps) about 50 more get through.
        let later = (1..=1000)
            .filter(|ms| r.allow(t0 + Duration::from_millis(*ms)))
            .count();
        assert!((49..=51).contains(&later), "{later}");
        let mut off = RateLimiter::new(0, t0);
        assert!((0..10_000).all(|_| off.allow(t0)));
    }

    #[test]
    fn rtcp_demux_range() {
        assert!(looks_like_rtcp(&[0x80, 200]));
        assert!(looks_like_rtcp(&[0x80, 223]));
        assert!(!looks_like_rtcp(&[0x80, 0])); // PCMU
        assert!(!looks_like_rtcp(&[0x80, 0x80 | 101])); // telephone-event with marker
        assert!(!looks_like_rtcp(&[0x80]));
    }
}
