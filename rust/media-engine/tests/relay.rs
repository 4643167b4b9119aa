//! Relay behaviour over real UDP sockets on 127.0.0.1: what a caller and a
//! callee would notice (every packet arrives, from the right address, and
//! nothing else does).

mod common;

use common::*;
use media_engine::{Engine, Event, LegInfo, LegSpec, SessionId};
use std::net::UdpSocket;
use std::time::Duration;

/// A two-leg call: peers `pa`/`pb` told to the engine as the SDP addresses.
struct Call {
    s: SessionId,
    a: LegInfo,
    b: LegInfo,
    pa: UdpSocket,
    pb: UdpSocket,
}

fn call(e: &Engine, spec_a: &LegSpec, spec_b: &LegSpec) -> Call {
    let s = e.create_session("call@test").unwrap();
    let a = e.add_leg(s, spec_a).unwrap();
    let b = e.add_leg(s, spec_b).unwrap();
    let (pa, pb) = (peer(), peer());
    e.set_remote(s, a.leg, addr(&pa), None).unwrap();
    e.set_remote(s, b.leg, addr(&pb), None).unwrap();
    e.connect(s, a.leg, b.leg).unwrap();
    Call { s, a, b, pa, pb }
}

#[test]
fn same_codec_relay_keeps_every_packet_both_ways() {
    let e = engine(43000, 100, |_| {});
    let c = call(&e, &LegSpec::default(), &LegSpec::default());
    let n = 300u16;
    let a2b: Vec<_> = (0..n).map(|q| rtp(q, 0xA, 0x11, 160)).collect();
    let b2a: Vec<_> = (0..n).map(|q| rtp(1000 + q, 0xB, 0x22, 160)).collect();
    std::thread::scope(|t| {
        t.spawn(|| send_paced(&c.pa, c.a.rtp, &a2b));
        t.spawn(|| send_paced(&c.pb, c.b.rtp, &b2a));
    });
    let at_b = recv_up_to(&c.pb, n as usize);
    let at_a = recv_up_to(&c.pa, n as usize);
    // Every packet, byte for byte, in order, each from the *other* leg's
    // port (symmetric RTP: the peer sees one address per stream).
    assert_eq!(at_b.len(), n as usize);
    assert_eq!(at_a.len(), n as usize);
    assert!(at_b.iter().map(|(p, _)| p).eq(a2b.iter()));
    assert!(at_a.iter().map(|(p, _)| p).eq(b2a.iter()));
    assert!(at_b.iter().all(|(_, from)| *from == c.b.rtp));
    assert!(at_a.iter().all(|(_, from)| *from == c.a.rtp));
    assert!(quiet(&c.pb, Duration::from_millis(50)), "no duplicates");

    let st = e.session_stats(c.s).unwrap();
    let (la, lb) = (&st.legs[0], &st.legs[1]);
    let bytes = u64::from(n) * 172;
    assert_eq!(
        (la.packets_in, la.bytes_in, lb.packets_out, lb.bytes_out),
        (300, bytes, 300, bytes)
    );
    assert_eq!((lb.packets_in, la.packets_out), (300, 300));
    assert_eq!((la.lost, la.expected, la.ssrc), (0, 299, Some(0xA)));
    assert_eq!(lb.ssrc, Some(0xB));
    assert!(la.latched && la.peer == Some(addr(&c.pa)));
    assert!(la.last_packet_age.is_some_and(|a| a < Duration::from_secs(2)));
    assert_eq!(la.dropped.total() + lb.dropped.total(), 0);
    let es = e.engine_stats();
    assert_eq!(es.packets_relayed, 600);
    assert_eq!(es.bytes_relayed, 2 * bytes);
    let fin = e.delete_session(c.s).unwrap();
    assert_eq!(fin.legs[0].packets_in, 300);
}

#[test]
fn loss_and_jitter_reported_per_leg() {
    let e = engine(43100, 100, |_| {});
    let c = call(&e, &LegSpec::default(), &LegSpec::default());
    // Seq 0..100 with every 10th missing: 10 lost (RFC 3550 A.3). A.1
    // counts from the packet that ends probation (seq 1): 99 expected.
    let pkts: Vec<_> = (0..100u16)
        .filter(|q| q % 10 != 5)
        .map(|q| rtp(q, 7, 1, 160))
        .collect();
    send_paced(&c.pa, c.a.rtp, &pkts);
    assert_eq!(recv_up_to(&c.pb, 90).len(), 90);
    let st = e.session_stats(c.s).unwrap();
    assert_eq!((st.legs[0].lost, st.legs[0].expected), (10, 99));
    // Sent in bursts, far faster than 20 ms apart: jitter is large.
    assert!(st.legs[0].jitter_ms > 1.0, "{}", st.legs[0].jitter_ms);
}

#[test]
fn rtcp_goes_port_to_port_and_is_demuxed_on_mux() {
    let e = engine(43200, 100, |_| {});
    let s = e.create_session("rtcp").unwrap();
    let a = e.add_leg(s, &LegSpec::default()).unwrap();
    let mux = LegSpec {
        rtcp_mux: true,
        ..LegSpec::default()
    };
    let b = e.add_leg(s, &mux).unwrap();
    assert_eq!(
        a.rtcp.map(|r| r.port()),
        Some(a.rtp.port() + 1),
        "RFC 3550 §11 pair"
    );
    assert_eq!(a.rtp.port() % 2, 0);
    assert_eq!(b.rtcp, None);
    let (pa, pa_rtcp, pb) = (peer(), peer(), peer());
    e.set_remote(s, a.leg, addr(&pa), Some(addr(&pa_rtcp))).unwrap();
    e.set_remote(s, b.leg, addr(&pb), None).unwrap();
    e.connect(s, a.leg, b.leg).unwrap();

    // a's RTCP port -> b's (muxed) RTP port -> pb.
    pa_rtcp.send_to(&rtcp_rr(0xA), a.rtcp.unwrap()).unwrap();
    let got = recv_up_to(&pb, 1);
    assert_eq!(got, vec![(rtcp_rr(0xA), b.rtp)]);
    // RTCP and RTP arriving on b's single port are told apart (RFC 5761 §4).
    pb.send_to(&rtcp_rr(0xB), b.rtp).unwrap();
    pb.send_to(&rtp(1, 0xB, 3, 160), b.rtp).unwrap();
    assert_eq!(recv_up_to(&pa_rtcp, 1), vec![(rtcp_rr(0xB), a.rtcp.unwrap())]);
    assert_eq!(recv_up_to(&pa, 1), vec![(rtp(1, 0xB, 3, 160), a.rtp)]);
    let st = e.session_stats(s).unwrap();
    assert_eq!((st.legs[0].rtcp_in, st.legs[1].rtcp_out), (1, 1));
    assert_eq!((st.legs[1].rtcp_in, st.legs[0].rtcp_out), (1, 1));
    assert_eq!(st.legs[1].packets_in, 1);
    assert_eq!(e.engine_stats().rtcp_relayed, 2);
}

#[test]
fn latches_to_the_port_packets_really_come_from() {
    let e = engine(43300, 100, |_| {});
    let c = call(&e, &LegSpec::default(), &LegSpec::default());
    // The SDP said `c.pa`, but the phone (behind NAT) sends from `natted`.
    let natted = peer();
    natted.send_to(&rtp(1, 5, 9, 160), c.a.rtp).unwrap();
    assert_eq!(recv_up_to(&c.pb, 1).len(), 1);
    let ev = wait_event(&e, Duration::from_secs(2), |ev| {
        matches!(ev, Event::Latched { .. })
    });
    assert_eq!(
        ev,
        Some(Event::Latched {
            session: c.s,
            leg: c.a.leg,
            peer: addr(&natted),
            rtcp: false
        })
    );
    // Media for the phone now goes where it really is, not to the SDP address.
    c.pb.send_to(&rtp(1, 6, 9, 160), c.b.rtp).unwrap();
    assert_eq!(recv_up_to(&natted, 1).len(), 1);
    assert!(quiet(&c.pa, Duration::from_millis(50)));
    let st = e.session_stats(c.s).unwrap();
    assert_eq!(st.legs[0].peer, Some(addr(&natted)));
    assert_eq!(st.legs[0].remote_rtp, Some(addr(&c.pa)));
    // A new SDP (re-INVITE) resets the latch: the next source is learnt again.
    e.set_remote(c.s, c.a.leg, addr(&c.pa), None).unwrap();
    c.pa.send_to(&rtp(2, 5, 9, 160), c.a.rtp).unwrap();
    assert_eq!(recv_up_to(&c.pb, 1).len(), 1);
    c.pb.send_to(&rtp(2, 6, 9, 160), c.b.rtp).unwrap();
    assert_eq!(recv_up_to(&c.pa, 1).len(), 1);
}

#[test]
fn strict_source_drops_strangers_and_lax_legs_keep_their_latch() {
    let e = engine(43400, 100, |_| {});
    let strict = LegSpec {
        strict_source: Some(true),
        ..LegSpec::default()
    };
    let c = call(&e, &strict, &LegSpec::default());
    c.pa.send_to(&rtp(1, 1, 1, 160), c.a.rtp).unwrap();
    assert_eq!(recv_up_to(&c.pb, 1).len(), 1);
    let stranger = peer();
    for q in 0..10 {
        stranger.send_to(&rtp(q, 99, 2, 160), c.a.rtp).unwrap();
    }
    assert!(
        quiet(&c.pb, Duration::from_millis(100)),
        "strangers are not relayed"
    );
    let st = e.session_stats(c.s).unwrap();
    assert_eq!((st.legs[0].dropped.stranger, st.legs[0].packets_in), (10, 1));
    assert_eq!(e.engine_stats().dropped.stranger, 10);

    // Without strict mode the stranger's packets pass, but the stream keeps
    // going to the latched peer while it is active.
    c.pb.send_to(&rtp(1, 2, 1, 160), c.b.rtp).unwrap();
    assert_eq!(recv_up_to(&c.pa, 1).len(), 1);
    stranger.send_to(&rtp(50, 99, 2, 160), c.b.rtp).unwrap();
    assert_eq!(recv_up_to(&c.pa, 1).len(), 1);
    c.pa.send_to(&rtp(2, 1, 1, 160), c.a.rtp).unwrap();
    assert_eq!(recv_up_to(&c.pb, 1).len(), 1, "b still sends to pb");
    assert!(quiet(&stranger, Duration::from_millis(50)));
}

#[test]
fn garbage_is_counted_not_relayed_and_never_latches() {
    let e = engine(43500, 100, |_| {});
    let c = call(&e, &LegSpec::default(), &LegSpec::default());
    let stranger = peer();
    let mut junk: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x80],
        vec![0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0], // 11 bytes: short RTP header
        vec![0x00; 40],                           // version 0 (STUN-like)
        vec![0x8f; 12],                           // 15 CSRCs announced, none present
        vec![0x80, 200, 0xff, 0xff, 0, 0, 0, 0],  // RTCP SR claiming 256 KiB
        vec![0xa0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 99], // padding longer than packet
    ];
    // Random bytes behind a version-1 first octet.
    junk.extend((1..=20u8).map(|i| {
        std::iter::once(0x40)
            .chain((0..63u8).map(|j| i.wrapping_mul(31) ^ j.wrapping_mul(7)))
            .collect()
    }));
    for j in &junk {
        stranger.send_to(j, c.a.rtp).unwrap();
    }
    assert!(quiet(&c.pb, Duration::from_millis(100)));
    let st = e.session_stats(c.s).unwrap();
    assert_eq!(st.legs[0].dropped.garbage, junk.len() as u64);
    assert!(!st.legs[0].latched, "garbage does not teach an address");
    assert_eq!(st.legs[0].packets_in, 0);
    // The leg still works.
    c.pa.send_to(&rtp(1, 1, 1, 160), c.a.rtp).unwrap();
    assert_eq!(recv_up_to(&c.pb, 1).len(), 1);
}

#[test]
fn floods_are_cut_at_the_leg_rate_and_counted() {
    let e = engine(43600, 100, |c| c.max_pps_per_leg = 100);
    let c = call(&e, &LegSpec::default(), &LegSpec::default());
    let flood: Vec<_> = (0..400u16).map(|q| rtp(q, 3, 3, 160)).collect();
    send_paced(&c.pa, c.a.rtp, &flood);
    let got = recv_up_to(&c.pb, 400).len() as u64;
    // One second's burst (100) plus what refills while sending (~tens of ms).
    assert!((100..=150).contains(&got), "relayed {got}");
    let st = e.session_stats(c.s).unwrap();
    assert_eq!(st.legs[0].dropped.flood, 400 - got);
    assert_eq!(e.engine_stats().dropped.flood, 400 - got);
    // The other direction is not affected.
    c.pb.send_to(&rtp(1, 4, 4, 160), c.b.rtp).unwrap();
    assert_eq!(recv_up_to(&c.pa, 1).len(), 1);
}

#[test]
fn unconnected_or_addressless_legs_count_no_destination() {
    let e = engine(43700, 100, |_| {});
    let s = e.create_session("half").unwrap();
    let a = e.add_leg(s, &LegSpec::default()).unwrap();
    let b = e.add_leg(s, &LegSpec::default()).unwrap();
    let pa = peer();
    e.set_remote(s, a.leg, addr(&pa), None).unwrap();
    pa.send_to(&rtp(1, 1, 1, 160), a.rtp).unwrap(); // not connected yet
    e.connect(s, a.leg, b.leg).unwrap();
    pa.send_to(&rtp(2, 1, 1, 160), a.rtp).unwrap(); // b has no address yet
    let n = wait_for(Duration::from_secs(2), || {
        let d = e.session_stats(s).unwrap().legs[0].dropped.no_destination;
        (d == 2).then_some(d)
    });
    assert_eq!(n, Some(2));
    // Once b latches (early media from the callee), a's media flows to it.
    // With no SDP address to trust, b latches on the third packet in
    // sequence (RTP-bleed protection); the first two are strangers.
    let pb = peer();
    for seq in 1..=3 {
        pb.send_to(&rtp(seq, 2, 2, 160), b.rtp).unwrap();
    }
    assert_eq!(recv_up_to(&pa, 3).len(), 1, "a has its SDP address");
    assert_eq!(e.session_stats(s).unwrap().legs[1].dropped.stranger, 2);
    pa.send_to(&rtp(3, 1, 1, 160), a.rtp).unwrap();
    assert_eq!(recv_up_to(&pb, 1).len(), 1);
}

#[test]
fn many_sessions_spread_over_workers() {
    let e = engine(43800, 400, |c| c.workers = 3);
    let calls: Vec<Call> = (0..60)
        .map(|_| call(&e, &LegSpec::default(), &LegSpec::default()))
        .collect();
    let per = e
        .engine_stats()
        .workers
        .iter()
        .map(|w| w.sessions)
        .collect::<Vec<_>>();
    assert_eq!(per, vec![20, 20, 20], "least-loaded placement");
    for c in &calls {
        for q in 0..5 {
            c.pa.send_to(&rtp(q, 1, 1, 160), c.a.rtp).unwrap();
            c.pb.send_to(&rtp(q, 2, 2, 160), c.b.rtp).unwrap();
        }
    }
    for c in &calls {
        assert_eq!(recv_up_to(&c.pb, 5).len(), 5);
        assert_eq!(recv_up_to(&c.pa, 5).len(), 5);
    }
    let es = e.engine_stats();
    assert_eq!((es.sessions, es.legs, es.packets_relayed), (60, 120, 600));
    assert!(es.workers.iter().all(|w| w.packets_relayed == 200));
    assert_eq!(es.ports_used, 240);
    for c in calls {
        e.delete_session(c.s).unwrap();
    }
    assert_eq!(e.engine_stats().ports_used, 0);
}
