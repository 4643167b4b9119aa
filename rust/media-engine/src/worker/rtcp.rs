//! RTCP on transcoded legs (RFC 3550 §6.4). Between transcoded legs the
//! engine is the RTP source towards each endpoint (its own SSRC, sequence
//! numbers and timestamps), so the other endpoint's reports would describe
//! a stream this endpoint never sees: RTCP ends at the engine. In their
//! place the engine sends each endpoint its own compound report: an SR
//! (§6.4.1) with the sender info of the stream it sends there and a report
//! block about what it receives from that endpoint (or an RR, §6.4.2,
//! before it has sent anything), followed by an SDES CNAME (§6.1, §6.5.1).
//! Reports go out about every 5 s, randomized over 0.5..1.5 of the interval
//! (§6.2, §6.3.1; the first after half the interval, §6.2), from the leg's
//! RTCP port to the endpoint's RTCP address (or the RTP port with rtcp-mux,
//! RFC 5761). The endpoint's SRs give LSR/DLSR for our blocks; its report
//! blocks about our stream give the round-trip time (§6.4.1).
//!
//! Relayed (same-codec) legs keep forwarding RTCP end to end.

use super::leg::Leg;
use super::Worker;
use crate::sys::{send_one, RawAddr};
use media_core::rtcp::{
    build_compound, iter_compound, round_trip_time, NtpTimestamp, ReceiverReport, RtcpPacket, SenderReport,
    SourceDescription,
};
use media_core::{RtpTimestamp, Ssrc};
use std::hash::BuildHasher;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Mean interval between the engine's reports to one endpoint (RFC 3550
/// §6.2 recommends 5 s as the minimum).
pub(crate) const REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// CNAME of the engine's streams (§6.5.1: unique per source host).
const CNAME: &str = "vpbx-media-engine";

/// `mean` scaled by a random factor in 0.5..1.5 (RFC 3550 §6.3.1), so
/// that reports of many calls set up together do not stay in step.
fn randomized(mean: Duration, salt: usize) -> Duration {
    let r = std::collections::hash_map::RandomState::new().hash_one(salt) as u32;
    mean.mul_f64(0.5 + f64::from(r) / f64::from(u32::MAX))
}

fn wall_clock() -> NtpTimestamp {
    NtpTimestamp::from_unix(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default())
}

impl Leg {
    /// Takes in an RTCP compound packet that ends here (the leg is
    /// transcoded): an SR from the endpoint is noted for LSR/DLSR, a report
    /// block about `ours` (the SSRC of the stream the engine sends to the
    /// endpoint) gives the round-trip time. Runs at RTCP rate (a packet
    /// every few seconds), so parsing may allocate.
    pub fn on_terminated_rtcp(&mut self, data: &[u8], arrival_secs: f64, ours: Option<u32>) {
        let now_ntp = wall_clock();
        for raw in iter_compound(data) {
            let Ok(raw) = raw else { break };
            let blocks = match RtcpPacket::parse(&raw) {
                Ok(RtcpPacket::SenderReport(sr)) => {
                    self.receiver_mut()
                        .on_sender_report(sr.ssrc, sr.ntp_timestamp, arrival_secs);
                    sr.reports
                }
                Ok(RtcpPacket::ReceiverReport(rr)) => rr.reports,
                _ => continue,
            };
            for b in blocks.iter().filter(|b| Some(b.ssrc.0) == ours) {
                if let Some(rtt) = round_trip_time(now_ntp.compact(), b.lsr, b.dlsr) {
                    self.rtt = Some(rtt);
                }
            }
        }
    }
}

impl Worker {
    /// Sends the reports that are due to endpoints of transcoded legs.
    pub(super) fn send_reports(&mut self, now: Instant) {
        if self.transcoding == 0 {
            return;
        }
        let arrival = now.saturating_duration_since(self.epoch).as_secs_f64();
        let mut ntp = None;
        for key in 0..self.legs.entries.len() {
            let Some(leg) = self.legs.get(key) else { continue };
            let (Some(peer), true) = (leg.peer, leg.transcode.is_some()) else {
                continue;
            };
            match leg.next_report {
                Some(due) if due <= now => {}
                Some(_) => continue,
                None => {
                    // §6.2: the first report after half the interval.
                    let first = now + randomized(REPORT_INTERVAL / 2, key);
                    if let Some(l) = self.legs.get_mut(key) {
                        l.next_report = Some(first);
                    }
                    continue;
                }
            }
            // The stream the engine sends to this leg's endpoint comes out
            // of the partner's transcoder.
            let Some((ssrc, sent)) = self
                .legs
                .get(peer)
                .and_then(|p| p.transcode.as_ref())
                .map(|t| (t.ssrc(), t.sent))
            else {
                continue;
            };
            let ntp = *ntp.get_or_insert_with(wall_clock);
            let Some(leg) = self.legs.get_mut(key) else {
                continue;
            };
            leg.next_report = Some(now + randomized(REPORT_INTERVAL, key ^ arrival.to_bits() as usize));
            let reports: Vec<_> = leg.receiver_mut().report_block(arrival).into_iter().collect();
            let report = match sent.rtp_timestamp_at(now) {
                Some(ts) if sent.packets > 0 => RtcpPacket::SenderReport(SenderReport {
                    ssrc: Ssrc(ssrc),
                    ntp_timestamp: ntp,
                    rtp_timestamp: RtpTimestamp(ts),
                    packet_count: sent.packets,
                    octet_count: sent.octets,
                    reports,
                    extensions: Vec::new(),
                }),
                _ => RtcpPacket::ReceiverReport(ReceiverReport {
                    ssrc: Ssrc(ssrc),
                    reports,
                    extensions: Vec::new(),
                }),
            };
            let sdes = RtcpPacket::SourceDescription(SourceDescription::with_cname(Ssrc(ssrc), CNAME));
            let Ok(packet) = build_compound(&[report, sdes]) else {
                continue;
            };
            let (fd, dest) = leg.rtcp_route();
            let Some(dest) = dest else { continue };
            if send_one(fd, &packet, &RawAddr::new(dest)).is_ok() {
                leg.rtcp_out += 1;
                leg.bytes_out += packet.len() as u64;
                self.counters.rtcp_sent.fetch_add(1, Relaxed);
            } else {
                leg.dropped.add(crate::stats::DropKind::SendFailed, 1);
                self.counters.count_drop(crate::stats::DropKind::SendFailed, 1);
            }
        }
    }
}
