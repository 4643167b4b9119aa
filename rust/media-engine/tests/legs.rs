//! Per-leg behaviour over real sockets: RTCP terminated on transcoded legs
//! (the engine's own SR/RR, RFC 3550 §6.4), payload type rewrite on relay,
//! per-leg latching flags and RTP-bleed protection.

mod common;

use common::*;
use media_core::rtcp::{parse_compound, NtpTimestamp, ReceiverReport, ReportBlock, RtcpPacket, SenderReport};
use media_core::{RtpTimestamp, Ssrc};
use media_engine::{Latching, LegCodec, LegSpec};
use std::net::UdpSocket;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn pcm_packet(pt: u8, seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend(std::iter::repeat_n(0xd5u8, 160));
    p
}

fn socket_on(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind(format!("{ip}:0")).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    s
}

fn now_ntp() -> NtpTimestamp {
    NtpTimestamp::from_unix(SystemTime::now().duration_since(UNIX_EPOCH).unwrap())
}

/// A PCMU <-> PCMA call: each endpoint gets an SR from the engine about the
/// stream the engine sends it, with a block about what it sent; the other
/// side's RTCP is not forwarded; an RR back gives the leg an RTT.
#[test]
fn transcoded_legs_get_the_engines_own_reports() {
    let e = engine(47200, 20, |_| {});
    let s = e.create_session("rtcp").unwrap();
    let spec = |c: LegCodec| LegSpec {
        codec: Some(c),
        ..LegSpec::default()
    };
    let a = e.add_leg(s, &spec(LegCodec::new("PCMU", 8000, 0))).unwrap();
    let b = e.add_leg(s, &spec(LegCodec::new("PCMA", 8000, 8))).unwrap();
    let (pa, pa_rtcp, pb, pb_rtcp) = (peer(), peer(), peer(), peer());
    e.set_remote(s, a.leg, addr(&pa), Some(addr(&pa_rtcp))).unwrap();
    e.set_remote(s, b.leg, addr(&pb), Some(addr(&pb_rtcp))).unwrap();
    e.connect(s, a.leg, b.leg).unwrap();
    let (a_rtcp, b_rtcp) = (a.rtcp.unwrap(), b.rtcp.unwrap());
    // An SR from A (so the engine's block about A carries LSR) and one
    // from B, which must not reach A.
    let sr_from = |ssrc: u32| {
        RtcpPacket::SenderReport(SenderReport {
            ssrc: Ssrc(ssrc),
            ntp_timestamp: now_ntp(),
            rtp_timestamp: RtpTimestamp(1234),
            packet_count: 10,
            octet_count: 1600,
            ..SenderReport::default()
        })
    };
    let a_sr = sr_from(0xA1);
    let a_sr_ntp = match &a_sr {
        RtcpPacket::SenderReport(r) => r.ntp_timestamp,
        _ => unreachable!(),
    };
    let start = Instant::now();
    let mut report_at_a = None;
    let mut rtp_ssrc_at_a = None;
    let mut seq = 0u16;
    // Real-time media both ways until A has heard a report (first one
    // within 1.25..3.75 s, RFC 3550 §6.2 randomized).
    while report_at_a.is_none() && start.elapsed() < Duration::from_secs(8) {
        pa.send_to(&pcm_packet(0, seq, 0xA1), a.rtp).unwrap();
        pb.send_to(&pcm_packet(8, seq, 0xB2), b.rtp).unwrap();
        if seq == 5 {
            pa_rtcp.send_to(&a_sr.to_bytes().unwrap(), a_rtcp).unwrap();
            pb_rtcp
                .send_to(&sr_from(0xB2).to_bytes().unwrap(), b_rtcp)
                .unwrap();
        }
        seq = seq.wrapping_add(1);
        std::thread::sleep(Duration::from_millis(20));
        pa.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 1500];
        while let Ok(n) = pa.recv(&mut buf) {
            rtp_ssrc_at_a = Some(u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]));
            assert!(n > 12);
        }
        pa_rtcp.set_nonblocking(true).unwrap();
        if let Ok((n, from)) = pa_rtcp.recv_from(&mut buf) {
            assert_eq!(from, a_rtcp, "reports come from A's RTCP port");
            report_at_a = Some(parse_compound(&buf[..n]).unwrap());
        }
    }
    let report = report_at_a.expect("an RTCP report reached A within 8 s");
    let ours = rtp_ssrc_at_a.expect("A got transcoded RTP");
    let RtcpPacket::SenderReport(sr) = &report[0] else {
        panic!("expected an SR first, got {report:?}")
    };
    assert_eq!(sr.ssrc.0, ours, "the SR describes the stream A receives");
    assert!(sr.packet_count > 50, "{}", sr.packet_count);
    assert_eq!(sr.octet_count, sr.packet_count * 160, "PCMU 20 ms payloads");
    let block = sr.reports.first().expect("a block about A");
    assert_eq!(block.ssrc.0, 0xA1);
    assert!(
        u32::from(seq) - block.highest_seq <= 3,
        "{} vs {seq}",
        block.highest_seq
    );
    assert_eq!(block.cumulative_lost, 0);
    assert_eq!(block.lsr, a_sr_ntp.compact(), "LSR from A's SR");
    assert!(block.dlsr > 0);
    assert!(
        report
            .iter()
            .any(|p| matches!(p, RtcpPacket::SourceDescription(_))),
        "compound carries SDES CNAME (RFC 3550 §6.1)"
    );
    // A answers with an RR about the engine's stream: RTT from LSR/DLSR.
    let rr = RtcpPacket::ReceiverReport(ReceiverReport {
        ssrc: Ssrc(0xA1),
        reports: vec![ReportBlock {
            ssrc: sr.ssrc,
            lsr: sr.ntp_timestamp.compact(),
            dlsr: 0,
            ..ReportBlock::default()
        }],
        extensions: Vec::new(),
    });
    pa_rtcp.send_to(&rr.to_bytes().unwrap(), a_rtcp).unwrap();
    let rtt = wait_for(Duration::from_secs(2), || e.session_stats(s).unwrap().legs[0].rtt);
    assert!(rtt.is_some_and(|r| r < Duration::from_secs(1)), "{rtt:?}");
    // Nothing of B's RTCP was forwarded: every report A got is the engine's.
    let stats = e.session_stats(s).unwrap();
    assert_eq!(stats.legs[0].rtcp_out, 1);
    assert_eq!(e.engine_stats().rtcp_relayed, 0);
    assert!(e.engine_stats().rtcp_sent >= 1);
}

/// Same codec under different payload type numbers: rewritten in place on
/// relay, marker bit kept, other payload types untouched.
#[test]
fn relay_rewrites_payload_types() {
    let e = engine(47220, 20, |_| {});
    let s = e.create_session("pt").unwrap();
    let a = e.add_leg(s, &LegSpec::default()).unwrap();
    let b = e.add_leg(s, &LegSpec::default()).unwrap();
    let (pa, pb) = (peer(), peer());
    e.set_remote(s, a.leg, addr(&pa), None).unwrap();
    e.set_remote(s, b.leg, addr(&pb), None).unwrap();
    e.connect(s, a.leg, b.leg).unwrap();
    e.set_leg_pt_map(s, a.leg, &[(111, 96), (101, 100)]).unwrap();
    let sent = [
        pcm_packet(111 | 0x80, 1, 7),
        pcm_packet(101, 2, 7),
        pcm_packet(0, 3, 7),
    ];
    for p in &sent {
        pa.send_to(p, a.rtp).unwrap();
    }
    let got = recv_up_to(&pb, 3);
    let pts: Vec<u8> = got.iter().map(|(p, _)| p[1]).collect();
    assert_eq!(pts, vec![96 | 0x80, 100, 0]);
    for ((g, _), s) in got.iter().zip(&sent) {
        assert_eq!(g[2..], s[2..], "only the payload type changes");
    }
    // B -> A is not mapped (the map is per receiving leg).
    pb.send_to(&pcm_packet(96, 1, 9), b.rtp).unwrap();
    assert_eq!(recv_up_to(&pa, 1)[0].0[1], 96);
    // An empty map turns it off; RTCP-colliding output types are refused.
    e.set_leg_pt_map(s, a.leg, &[]).unwrap();
    pa.send_to(&pcm_packet(111, 4, 7), a.rtp).unwrap();
    assert_eq!(recv_up_to(&pb, 1)[0].0[1], 111);
    assert!(e.set_leg_pt_map(s, a.leg, &[(0, 72)]).is_err());
}

/// An attacker spraying the fresh port before the real endpoint speaks
/// does not take the media: the real endpoint (SDP's IP) latches, and the
/// other side's media goes to it.
#[test]
fn rtp_bleed_attacker_first_does_not_steal_the_media() {
    let e = engine(47240, 20, |c| c.max_pps_per_leg = 100);
    let s = e.create_session("bleed").unwrap();
    let a = e.add_leg(s, &LegSpec::default()).unwrap();
    let b = e.add_leg(s, &LegSpec::default()).unwrap();
    let real = peer(); // 127.0.0.1, sends from a port other than its SDP one
    let sdp_port = peer();
    let attacker = socket_on("127.0.0.2");
    let pb = peer();
    e.set_remote(s, a.leg, addr(&sdp_port), None).unwrap();
    e.set_remote(s, b.leg, addr(&pb), None).unwrap();
    e.connect(s, a.leg, b.leg).unwrap();
    // A scanner's packets: sequence numbers all over the place, more than
    // the leg's rate limit (100/s here) allows: they must not use it up.
    let scan: Vec<Vec<u8>> = (0..300u32)
        .map(|i| pcm_packet(0, (i * 7919 % 65521) as u16, 0xBAD))
        .collect();
    send_paced(&attacker, a.rtp, &scan);
    assert!(
        quiet(&pb, Duration::from_millis(200)),
        "strangers are not relayed"
    );
    real.send_to(&pcm_packet(0, 1, 0x600D), a.rtp).unwrap();
    assert_eq!(recv_up_to(&pb, 1).len(), 1, "the real endpoint's media flows");
    pb.send_to(&pcm_packet(0, 1, 0xB), b.rtp).unwrap();
    assert_eq!(
        recv_up_to(&real, 1).len(),
        1,
        "B's media goes to the real endpoint"
    );
    assert!(quiet(&attacker, Duration::from_millis(200)));
    let legs = e.session_stats(s).unwrap().legs;
    assert_eq!(legs[0].dropped.stranger, 300);
    assert_eq!(legs[0].dropped.flood, 0);
    assert_eq!(legs[0].peer, Some(addr(&real)));
}

/// Per-leg flags: asymmetric never latches; handover moves at once; a
/// strict leg set per request drops the second source.
#[test]
fn latching_flags_apply_per_leg() {
    let e = engine(47260, 20, |_| {});
    let s = e.create_session("flags").unwrap();
    let asym = LegSpec {
        latching: Latching::Asymmetric,
        ..LegSpec::default()
    };
    let a = e.add_leg(s, &asym).unwrap();
    let b = e.add_leg(s, &LegSpec::default()).unwrap();
    let (sdp_a, from_a, pb) = (peer(), peer(), peer());
    e.set_remote(s, a.leg, addr(&sdp_a), None).unwrap();
    e.set_remote(s, b.leg, addr(&pb), None).unwrap();
    e.connect(s, a.leg, b.leg).unwrap();
    from_a.send_to(&pcm_packet(0, 1, 1), a.rtp).unwrap();
    assert_eq!(recv_up_to(&pb, 1).len(), 1);
    pb.send_to(&pcm_packet(0, 1, 2), b.rtp).unwrap();
    assert_eq!(recv_up_to(&sdp_a, 1).len(), 1, "asymmetric: to the SDP address");
    assert!(quiet(&from_a, Duration::from_millis(100)));
    // Media handover: a second source takes over while the first is active.
    e.set_leg_latching(s, a.leg, Some(false), Latching::Handover)
        .unwrap();
    let second = peer();
    from_a.send_to(&pcm_packet(0, 2, 1), a.rtp).unwrap();
    assert_eq!(recv_up_to(&pb, 1).len(), 1);
    second.send_to(&pcm_packet(0, 3, 1), a.rtp).unwrap();
    assert_eq!(recv_up_to(&pb, 1).len(), 1);
    pb.send_to(&pcm_packet(0, 2, 2), b.rtp).unwrap();
    assert_eq!(recv_up_to(&second, 1).len(), 1, "handover: the newest source");
    // Strict symmetric: once latched, the other source is dropped.
    e.set_leg_latching(s, a.leg, Some(true), Latching::Symmetric)
        .unwrap();
    from_a.send_to(&pcm_packet(0, 4, 1), a.rtp).unwrap();
    assert_eq!(recv_up_to(&pb, 1).len(), 1);
    second.send_to(&pcm_packet(0, 5, 1), a.rtp).unwrap();
    assert!(quiet(&pb, Duration::from_millis(200)));
    assert!(e.session_stats(s).unwrap().legs[0].dropped.stranger >= 1);
}
