//! Latching (symmetric RTP, RFC 4961) and RTP-bleed protection: which
//! source address a leg's stream belongs to.

use crate::config::Latching;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Consecutive packets (RTP with continuous sequence numbers) an untrusted
/// source must send before a leg latches to it (RTP-bleed protection).
pub(crate) const BLEED_PACKETS: u8 = 3;

/// Addresses that cannot be reached from elsewhere on the Internet: RFC 1918
/// / RFC 6598 / RFC 4193 private, loopback, link-local, unspecified. An SDP
/// naming one while packets come from elsewhere is the NAT case.
fn unroutable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_unspecified()
                || (o[0] == 100 && (64..128).contains(&o[1]))
        }
        IpAddr::V6(a) => {
            let seg = a.segments()[0];
            a.is_loopback() || a.is_unspecified() || (seg & 0xfe00) == 0xfc00 || (seg & 0xffc0) == 0xfe80
        }
    }
}

/// RTP-bleed protection (the policy of this engine, close to rtpengine's):
/// a source may take an unlatched stream at once only if its IP is the one
/// the SDP names (`sdp`, or `also`: the RTP stream's latched IP for RTCP),
/// or if the SDP address is unroutable and the source's is not (a NAT in
/// between rewrote it). Any other source must first send [`BLEED_PACKETS`]
/// consecutive packets (with continuous RTP sequence numbers); until then
/// its packets are dropped as strangers. An attacker spraying a fresh port
/// before the real endpoint speaks therefore cannot steal the media.
fn trusted(src: SocketAddr, sdp: Option<SocketAddr>, also: Option<IpAddr>) -> bool {
    let ip = src.ip();
    also == Some(ip) || sdp.is_some_and(|s| s.ip() == ip || (unroutable(s.ip()) && !unroutable(ip)))
}

/// A source that is not (yet) trusted, and how many consecutive packets it
/// has sent.
#[derive(Copy, Clone, Debug)]
struct Candidate {
    addr: SocketAddr,
    seq: Option<u16>,
    count: u8,
}

/// What latching decided about one packet's source.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Learn {
    /// From the latched address (or accepted without latching).
    Accept,
    /// The stream latched to this (new) source.
    Latched,
    /// Not latched and not trusted: drop.
    Stranger,
}

/// Latching rules of one leg.
#[derive(Copy, Clone, Debug)]
pub(crate) struct LatchRules {
    pub strict: bool,
    pub mode: Latching,
    pub relatch_after: Duration,
}

/// One latched stream address and when it last sent.
#[derive(Copy, Clone, Debug, Default)]
pub(crate) struct Latch {
    pub addr: Option<SocketAddr>,
    seen: Option<Instant>,
    candidate: Option<Candidate>,
}

impl Latch {
    /// Symmetric RTP: a packet teaches the peer's address (which differs
    /// from the SDP one behind NAT; RFC 3581 spirit, RFC 4961), subject to
    /// [`trusted`]. A symmetric leg moves to a new source only after the
    /// current one has been silent for `relatch_after`, a handover leg at
    /// once, a strict leg never; an asymmetric leg never latches.
    pub fn learn(
        &mut self,
        src: SocketAddr,
        seq: Option<u16>,
        now: Instant,
        rules: &LatchRules,
        sdp: Option<SocketAddr>,
        also: Option<IpAddr>,
    ) -> Learn {
        if rules.mode == Latching::Asymmetric {
            // rtpengine's strict source on an asymmetric leg: only the SDP
            // address may send.
            return match (rules.strict, sdp) {
                (true, Some(a)) if a != src => Learn::Stranger,
                _ => Learn::Accept,
            };
        }
        match self.addr {
            Some(a) if a == src => {
                self.seen = Some(now);
                self.candidate = None;
                return Learn::Accept;
            }
            Some(_) if rules.strict => return Learn::Stranger,
            Some(_)
                if rules.mode == Latching::Symmetric
                    && self
                        .seen
                        .is_some_and(|s| now.saturating_duration_since(s) < rules.relatch_after) =>
            {
                return Learn::Accept;
            }
            _ => {}
        }
        if !trusted(src, sdp, also) && !self.count(src, seq) {
            // A latched leg keeps forwarding what it did before; an
            // unlatched one does not let a stranger through.
            return if self.addr.is_some() {
                Learn::Accept
            } else {
                Learn::Stranger
            };
        }
        self.addr = Some(src);
        self.seen = Some(now);
        self.candidate = None;
        Learn::Latched
    }

    /// Counts an untrusted source's consecutive packets; true once it has
    /// sent [`BLEED_PACKETS`] of them.
    fn count(&mut self, src: SocketAddr, seq: Option<u16>) -> bool {
        let next = match self.candidate {
            Some(c) if c.addr == src && (seq.is_none() || c.seq.map(|s| s.wrapping_add(1)) == seq) => {
                c.count.saturating_add(1)
            }
            _ => 1,
        };
        self.candidate = Some(Candidate {
            addr: src,
            seq,
            count: next,
        });
        next >= BLEED_PACKETS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(strict: bool, mode: Latching) -> LatchRules {
        LatchRules {
            strict,
            mode,
            relatch_after: Duration::from_millis(500),
        }
    }

    #[test]
    fn latch_moves_only_after_silence_unless_strict() {
        let t0 = Instant::now();
        let a: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let b: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let sdp = Some(a);
        let sym = rules(false, Latching::Symmetric);
        let mut l = Latch::default();
        assert_eq!(l.learn(a, Some(1), t0, &sym, sdp, None), Learn::Latched);
        assert_eq!(l.learn(a, Some(2), t0, &sym, sdp, None), Learn::Accept);
        let soon = t0 + Duration::from_millis(100);
        assert_eq!(
            l.learn(b, Some(9), soon, &sym, sdp, None),
            Learn::Accept,
            "a still active"
        );
        assert_eq!(l.addr, Some(a));
        let later = t0 + Duration::from_millis(600);
        assert_eq!(
            l.learn(b, Some(9), later, &sym, sdp, None),
            Learn::Latched,
            "a silent long enough"
        );
        let mut s = Latch::default();
        let strict = rules(true, Latching::Symmetric);
        assert_eq!(s.learn(a, Some(1), t0, &strict, sdp, None), Learn::Latched);
        let much_later = t0 + Duration::from_secs(10);
        assert_eq!(
            s.learn(b, Some(1), much_later, &strict, sdp, None),
            Learn::Stranger
        );
        assert_eq!(s.addr, Some(a));
        let mut h = Latch::default();
        let handover = rules(false, Latching::Handover);
        assert_eq!(h.learn(a, Some(1), t0, &handover, sdp, None), Learn::Latched);
        assert_eq!(
            h.learn(b, Some(7), t0, &handover, sdp, None),
            Learn::Latched,
            "handover at once"
        );
        let mut n = Latch::default();
        let asym = rules(false, Latching::Asymmetric);
        assert_eq!(n.learn(b, Some(1), t0, &asym, sdp, None), Learn::Accept);
        assert_eq!(n.addr, None, "asymmetric never latches");
        let strict_asym = rules(true, Latching::Asymmetric);
        assert_eq!(n.learn(b, Some(1), t0, &strict_asym, sdp, None), Learn::Stranger);
        assert_eq!(n.learn(a, Some(1), t0, &strict_asym, sdp, None), Learn::Accept);
    }

    #[test]
    fn bleed_protection_needs_trust_or_continuous_packets() {
        let t0 = Instant::now();
        let sdp: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let attacker: SocketAddr = "198.51.100.9:1234".parse().unwrap();
        let sym = rules(false, Latching::Symmetric);
        let mut l = Latch::default();
        // Random sequence numbers never build up trust.
        for seq in [100u16, 7, 5000, 9, 42] {
            assert_eq!(
                l.learn(attacker, Some(seq), t0, &sym, Some(sdp), None),
                Learn::Stranger
            );
        }
        // The real endpoint (same IP as the SDP, any port) latches at once.
        let real: SocketAddr = "192.0.2.1:4002".parse().unwrap();
        assert_eq!(l.learn(real, Some(1), t0, &sym, Some(sdp), None), Learn::Latched);
        // A continuous stream from an unknown source latches on its third packet.
        let mut m = Latch::default();
        assert_eq!(
            m.learn(attacker, Some(10), t0, &sym, Some(sdp), None),
            Learn::Stranger
        );
        assert_eq!(
            m.learn(attacker, Some(11), t0, &sym, Some(sdp), None),
            Learn::Stranger
        );
        assert_eq!(
            m.learn(attacker, Some(12), t0, &sym, Some(sdp), None),
            Learn::Latched
        );
        // NAT: the SDP names a private address, packets come from a public one.
        let private: SocketAddr = "10.1.2.3:4000".parse().unwrap();
        let mut n = Latch::default();
        assert_eq!(
            n.learn(attacker, Some(1), t0, &sym, Some(private), None),
            Learn::Latched
        );
        // Two private networks: not trusted at once.
        let lan: SocketAddr = "192.168.1.20:4000".parse().unwrap();
        let mut p = Latch::default();
        assert_eq!(
            p.learn(lan, Some(1), t0, &sym, Some(private), None),
            Learn::Stranger
        );
        // RTCP from the RTP stream's IP is trusted.
        let mut r = Latch::default();
        assert_eq!(
            r.learn(attacker, None, t0, &sym, Some(sdp), Some(attacker.ip())),
            Learn::Latched
        );
        assert!(unroutable("100.64.0.1".parse().unwrap()));
        assert!(unroutable("fd00::1".parse().unwrap()));
        assert!(unroutable("fe80::1".parse().unwrap()));
        assert!(!unroutable("2001:db8::1".parse().unwrap()));
        assert!(!unroutable("203.0.113.5".parse().unwrap()));
    }
}
