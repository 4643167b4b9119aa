//! Jitter buffer tests on a fake clock: PCMU streams of a 440 Hz sine.

use super::*;
use crate::codec::{self, g711, Params};
use crate::rtp::RtpPacket;
use crate::types::PayloadType;

pub(super) const SSRC: u32 = 0x5EED_0001;

pub(super) fn pcmu() -> Box<dyn Decoder> {
    codec::decoder("PCMU", 8000, 1, &Params::new()).unwrap()
}

pub(super) fn jb(cfg: JitterConfig) -> JitterBuffer {
    JitterBuffer::new(cfg, pcmu()).unwrap()
}

/// µ-law payloads of consecutive frames of a continuous sine.
pub(super) fn sine_payloads(sizes: impl IntoIterator<Item = usize>, freq: f64) -> Vec<Vec<u8>> {
    let mut i = 0usize;
    sizes
        .into_iter()
        .map(|n| {
            let pcm: Vec<i16> = (i..i + n)
                .map(|k| (8000.0 * (2.0 * std::f64::consts::PI * freq * k as f64 / 8000.0).sin()) as i16)
                .collect();
            i += n;
            let mut p = Vec::new();
            g711::encode_block(g711::Law::Mu, &pcm, &mut p);
            p
        })
        .collect()
}

pub(super) fn decoded(payloads: &[Vec<u8>]) -> Vec<i16> {
    let mut out = Vec::new();
    for p in payloads {
        g711::decode_block(g711::Law::Mu, p, &mut out);
    }
    out
}

pub(super) fn rtp(seq: u16, ts: u32, ssrc: u32, pt: u8, payload: &[u8]) -> Vec<u8> {
    RtpPacket {
        payload_type: PayloadType(pt),
        sequence: SeqNo(seq),
        timestamp: RtpTimestamp(ts),
        ssrc: Ssrc(ssrc),
        payload: payload.to_vec(),
        ..Default::default()
    }
    .to_bytes()
    .unwrap()
}

/// A seeded linear congruential generator (Knuth's MMIX constants).
pub(super) struct Lcg(pub u64);

impl Lcg {
    pub fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One packet of a simulated stream.
#[derive(Clone)]
pub(super) struct Sent {
    pub arrival_ms: f64,
    pub bytes: Vec<u8>,
}

/// A 20 ms stream: packet k has seq `seq0 + k`, timestamp `ts0 + 160 k`,
/// and is sent at `t0 + 20 k` ms.
pub(super) fn stream(payloads: &[Vec<u8>], t0: f64, seq0: u16, ts0: u32, ssrc: u32) -> Vec<Sent> {
    let mut ts = ts0;
    let mut t = t0;
    payloads
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let s = Sent {
                arrival_ms: t,
                bytes: rtp(seq0.wrapping_add(k as u16), ts, ssrc, 0, p),
            };
            ts = ts.wrapping_add(p.len() as u32);
            t += p.len() as f64 / 8.0;
            s
        })
        .collect()
}

/// Runs pops every 20 ms from `first_pop`, pushing each packet just before
/// the first pop at or after its arrival. `probe(i, jb)` runs after pop i.
pub(super) fn run(
    jb: &mut JitterBuffer,
    mut sent: Vec<Sent>,
    first_pop: f64,
    pops: usize,
    mut probe: impl FnMut(usize, &JitterBuffer),
) -> Vec<i16> {
    sent.sort_by(|a, b| a.arrival_ms.total_cmp(&b.arrival_ms));
    let mut next = 0;
    let mut out = Vec::new();
    for i in 0..pops {
        let now = first_pop + 20.0 * i as f64;
        while next < sent.len() && sent[next].arrival_ms <= now {
            jb.push(&sent[next].bytes, sent[next].arrival_ms).unwrap();
            next += 1;
        }
        let before = out.len();
        if jb.pop(now, &mut out).unwrap() {
            assert_eq!(
                out.len() - before,
                jb.frame_samples(),
                "pop {i} must append one ptime"
            );
        } else {
            assert_eq!(out.len(), before);
        }
        probe(i, jb);
    }
    out
}

/// Where `reference` starts in `out` (the start-up delay in samples).
pub(super) fn find_start(out: &[i16], reference: &[i16]) -> usize {
    (0..out.len().saturating_sub(1600))
        .find(|&o| out[o..o + 1600] == reference[..1600])
        .expect("reference found in output")
}

/// Asserts that `out` continues exactly as `reference` from `start` on
/// (as far as both go); returns how many samples matched.
pub(super) fn assert_continues(out: &[i16], start: usize, reference: &[i16]) -> usize {
    let n = (out.len() - start).min(reference.len());
    if let Some(i) = (0..n).find(|&i| out[start + i] != reference[i]) {
        panic!("output departs from the reference at sample {i} of {n}");
    }
    n
}

#[test]
fn nothing_before_the_first_packet() {
    let mut b = jb(JitterConfig::default());
    let mut out = Vec::new();
    assert!(!b.pop(0.0, &mut out).unwrap());
    assert!(out.is_empty());
    assert_eq!(b.stats(), JitterStats::default());
}

#[test]
fn in_order_stream_plays_bit_exact() {
    let payloads = sine_payloads(vec![160; 500], 440.0);
    let reference = decoded(&payloads);
    let mut b = jb(JitterConfig::default());
    let out = run(
        &mut b,
        stream(&payloads, 53.0, 100, 1000, SSRC),
        60.0,
        480,
        |_, _| {},
    );
    let start = find_start(&out, &reference);
    // Every packet waits 7 ms for the next pop (rounded up to the 1 ms bin of
    // the delay histogram: 8), plus the guard: a 13 ms target. The start-up
    // delay is that minus the 7 ms the first packet already waited.
    assert_eq!(start, 6 * 8);
    assert!(out[..start].iter().all(|&s| s == 0));
    assert_continues(&out, start, &reference);
    let s = b.stats();
    assert_eq!((s.concealed_samples, s.silence_samples), (0, 0));
    assert_eq!((s.accelerated_samples, s.expanded_samples), (0, 0));
    assert_eq!(
        (s.lost, s.late, s.discarded, s.duplicates, s.reordered),
        (0, 0, 0, 0, 0)
    );
    assert_eq!(s.target_delay_ms, 13.0);
    assert!((s.current_delay_ms - 13.0).abs() < 0.2, "{}", s.current_delay_ms);
    assert!((s.mean_delay_ms - 13.0).abs() < 0.2);
    assert_eq!(s.packets_received, s.played + s.buffered_packets);
}

#[test]
fn variable_frame_sizes_carry_over_between_pops() {
    // 10, 20 and 30 ms packets, each sent once it is complete.
    let sizes: Vec<usize> = (0..300).map(|k| [80, 160, 240][k % 3]).collect();
    let payloads = sine_payloads(sizes, 440.0);
    let reference = decoded(&payloads);
    let mut sent = Vec::new();
    let (mut ts, mut media) = (0u32, 0.0);
    for (k, p) in payloads.iter().enumerate() {
        media += p.len() as f64 / 8.0;
        sent.push(Sent {
            arrival_ms: 1000.0 + media,
            bytes: rtp(k as u16, ts, SSRC, 0, p),
        });
        ts += p.len() as u32;
    }
    let cfg = JitterConfig {
        min_delay_ms: 60,
        ..Default::default()
    };
    let mut b = jb(cfg);
    let out = run(&mut b, sent, 1003.0, 280, |_, _| {});
    let start = find_start(&out, &reference);
    assert_continues(&out, start, &reference);
    let s = b.stats();
    assert_eq!(
        s.concealed_samples + s.accelerated_samples + s.expanded_samples,
        0
    );
    assert_eq!(s.target_delay_ms, 60.0);
}

#[test]
fn duplicates_are_counted_and_played_once() {
    let payloads = sine_payloads(vec![160; 400], 440.0);
    let reference = decoded(&payloads);
    let mut sent = stream(&payloads, 0.0, 65500, 0, SSRC); // wraps the seq space
    let mut dups = 0;
    for k in 0..400 {
        if k % 7 == 0 && k < 395 {
            sent.push(Sent {
                arrival_ms: sent[k].arrival_ms + 5.0,
                ..sent[k].clone()
            });
            dups += 1;
        }
        if k % 50 == 10 {
            // Long after its playout: still a duplicate, not a late packet.
            sent.push(Sent {
                arrival_ms: sent[k].arrival_ms + 500.0,
                ..sent[k].clone()
            });
            dups += 1;
        }
    }
    let mut b = jb(JitterConfig::default());
    let out = run(&mut b, sent, 2.0, 400, |_, _| {});
    let start = find_start(&out, &reference);
    assert_continues(&out, start, &reference);
    let s = b.stats();
    assert_eq!(s.duplicates, dups);
    assert_eq!((s.late, s.lost, s.concealed_samples), (0, 0, 0));
    assert_eq!(s.played + s.buffered_packets, 400);
}

#[test]
fn random_loss_is_counted_and_concealed_in_real_time() {
    let payloads = sine_payloads(vec![160; 1500], 440.0);
    let mut rng = Lcg(42);
    let mut sent = stream(&payloads, 0.0, 1, 0, SSRC);
    let mut dropped = Vec::new();
    sent.retain(|p| {
        // The first packets always arrive, so that counting starts at seq 1.
        let keep = p.bytes[3] < 5 && p.bytes[2] == 0 || rng.unit() >= 0.05;
        if !keep {
            dropped.push(u16::from_be_bytes([p.bytes[2], p.bytes[3]]));
        }
        keep
    });
    let pops = 1450;
    let mut b = jb(JitterConfig::default());
    let out = run(&mut b, sent, 10.0, pops, |_, _| {});
    assert_eq!(out.len(), pops * 160, "exactly real time");
    let s = b.stats();
    // Packets not yet due are neither played nor lost.
    let last_played = s.played + s.lost;
    let expect = dropped.iter().filter(|&&q| u64::from(q) <= last_played).count() as u64;
    assert!(expect > 50, "{expect}");
    assert_eq!(s.lost, expect);
    assert_eq!(s.concealed_samples + s.silence_samples, 160 * s.lost);
    assert_eq!((s.late, s.accelerated_samples, s.expanded_samples), (0, 0, 0));
}

#[test]
fn reordered_neighbours_are_played_in_order() {
    let payloads = sine_payloads(vec![160; 1000], 440.0);
    let mut rng = Lcg(7);
    let mut sent = stream(&payloads, 0.0, 0, 0, SSRC);
    let mut swaps = 0;
    for (k, p) in sent.iter_mut().enumerate() {
        p.arrival_ms += 10.0 * rng.unit(); // 10 ms of jitter
        if k % 10 == 3 {
            // Overtaken by its successor.
            p.arrival_ms += 35.0;
            swaps += 1;
        }
    }
    let mut b = jb(JitterConfig::default());
    let mut late_after_warmup = 0;
    run(&mut b, sent, 5.0, 1010, |i, b| {
        if i == 100 {
            late_after_warmup = b.stats().late;
        }
    });
    let s = b.stats();
    assert_eq!(s.reordered, swaps);
    assert_eq!(s.lost, 0);
    assert!(late_after_warmup <= 2, "only while learning: {late_after_warmup}");
    assert_eq!(s.late, late_after_warmup, "none once adapted");
    assert!(
        s.target_delay_ms >= 50.0 && s.target_delay_ms <= 75.0,
        "{}",
        s.target_delay_ms
    );
    assert_eq!(s.played + s.late + s.buffered_packets, s.packets_received);
}

#[test]
fn config_is_validated() {
    let bad = [
        JitterConfig {
            clock_rate: 16000,
            ..Default::default()
        },
        JitterConfig {
            ptime_ms: 0,
            ..Default::default()
        },
        JitterConfig {
            min_delay_ms: 300,
            max_delay_ms: 200,
            ..Default::default()
        },
        JitterConfig {
            max_packets: 0,
            ..Default::default()
        },
        JitterConfig {
            quantile: 1.0,
            ..Default::default()
        },
        JitterConfig {
            shrink_rate: f64::NAN,
            ..Default::default()
        },
        JitterConfig {
            payload_type: Some(PayloadType(200)),
            ..Default::default()
        },
    ];
    for cfg in bad {
        assert!(matches!(
            JitterBuffer::new(cfg, pcmu()),
            Err(Error::InvalidArgument(_))
        ));
    }
    // 44.1 kHz L16 with 10 ms frames is fine; 1 ms is not a whole number of samples.
    let l16 = |p| {
        let cfg = JitterConfig {
            clock_rate: 44100,
            ptime_ms: p,
            ..Default::default()
        };
        JitterBuffer::new(cfg, codec::decoder("L16", 44100, 2, &Params::new()).unwrap())
    };
    assert_eq!(l16(10).unwrap().frame_samples(), 882);
    assert!(l16(1).is_err());
}

#[test]
fn garbage_is_rejected_without_side_effects() {
    let payloads = sine_payloads(vec![160; 10], 440.0);
    let mut b = jb(JitterConfig::default());
    for p in stream(&payloads[..5], 0.0, 0, 0, SSRC) {
        b.push(&p.bytes, p.arrival_ms).unwrap();
    }
    let before = b.stats();
    let mut v1 = rtp(5, 800, SSRC, 0, &payloads[5]);
    v1[0] = 0x40; // version 1
    let mut pad = rtp(5, 800, SSRC, 0, &payloads[5]);
    pad[0] |= 0x20;
    *pad.last_mut().unwrap() = 255; // padding longer than the packet
    for junk in [&[][..], &[0x80, 0, 0][..], &v1[..], &pad[..], &[0xFF; 40][..]] {
        assert!(b.push(junk, 100.0).is_err());
    }
    assert!(b.push(&rtp(5, 800, SSRC, 0, &payloads[5]), f64::NAN).is_err());
    assert_eq!(b.stats(), before);
    let mut out = Vec::new();
    assert!(b.pop(f64::INFINITY, &mut out).is_err());
    assert!(out.is_empty());
    // The buffer still works.
    assert!(b.pop(100.0, &mut out).unwrap());
    assert_eq!(out.len(), 160);
}

#[test]
fn other_payload_types_are_not_decoded() {
    // telephone-event (PT 101) shares the sequence space with the audio.
    let payloads = sine_payloads(vec![160; 300], 440.0);
    let reference = decoded(&payloads);
    let mut sent = Vec::new();
    let mut seq = 0u16;
    for (k, p) in payloads.iter().enumerate() {
        sent.push(Sent {
            arrival_ms: 20.0 * k as f64,
            bytes: rtp(seq, 160 * k as u32, SSRC, 0, p),
        });
        seq += 1;
        if k % 20 == 5 {
            sent.push(Sent {
                arrival_ms: 20.0 * k as f64 + 1.0,
                bytes: rtp(seq, 160 * k as u32, SSRC, 101, &[1, 0x8A, 0, 160]),
            });
            seq += 1;
        }
    }
    let cfg = JitterConfig {
        payload_type: Some(PayloadType::PCMU),
        ..Default::default()
    };
    let mut b = jb(cfg);
    let out = run(&mut b, sent, 3.0, 290, |_, _| {});
    let start = find_start(&out, &reference);
    assert_continues(&out, start, &reference);
    let s = b.stats();
    assert_eq!(s.discarded, 15);
    assert_eq!((s.lost, s.concealed_samples), (0, 0));
}

#[test]
fn overflow_discards_the_oldest() {
    let payloads = sine_payloads(vec![160; 50], 440.0);
    let cfg = JitterConfig {
        max_packets: 10,
        ..Default::default()
    };
    let mut b = jb(cfg);
    // A burst: all 50 arrive at once.
    for p in stream(&payloads, 0.0, 0, 0, SSRC) {
        b.push(&p.bytes, 0.0).unwrap();
    }
    let s = b.stats();
    assert_eq!((s.buffered_packets, s.discarded), (10, 40));
    // What survived is the newest audio: seq 40..=49 play without a loss.
    let mut out = Vec::new();
    for i in 0..20 {
        assert!(b.pop(f64::from(i) * 20.0, &mut out).unwrap());
    }
    let s = b.stats();
    assert_eq!((s.played, s.lost, s.buffered_packets), (10, 0, 0));
}

#[test]
fn a_packet_late_for_its_start_still_plays_its_rest() {
    let payloads = sine_payloads(vec![160; 100], 440.0);
    let mut sent = stream(&payloads, 0.0, 0, 0, SSRC);
    // Target 60 ms and pops at 5 + 20 i: the pop at 1045 ms needs the first
    // 5 ms of packet 50, which comes at 1055 ms, before the next pop.
    sent[50].arrival_ms += 55.0;
    let cfg = JitterConfig {
        min_delay_ms: 60,
        ..Default::default()
    };
    let mut b = jb(cfg);
    run(&mut b, sent, 5.0, 95, |_, _| {});
    let s = b.stats();
    assert_eq!((s.late, s.lost), (0, 0));
    assert_eq!(s.played + s.buffered_packets, s.packets_received);
    assert_eq!(s.concealed_samples, 40, "{s:?}");
}

#[test]
fn config_takes_python_style_params() {
    let mut cfg = JitterConfig::default();
    cfg.set("max_delay_ms", 400.0).unwrap();
    cfg.set("quantile", 0.98).unwrap();
    cfg.set("payload_type", 8.0).unwrap();
    assert_eq!(
        (cfg.max_delay_ms, cfg.quantile, cfg.payload_type),
        (400, 0.98, Some(PayloadType::PCMA))
    );
    cfg.set("payload_type", -1.0).unwrap();
    assert_eq!(cfg.payload_type, None);
    for (k, v) in [
        ("max_delay_ms", 2.5),
        ("ptime_ms", -20.0),
        ("payload_type", 128.0),
        ("bogus", 1.0),
    ] {
        assert!(matches!(cfg.set(k, v), Err(Error::InvalidArgument(_))), "{k}={v}");
    }
    for k in JitterConfig::KEYS {
        let mut c = JitterConfig::default();
        assert!(c.set(k, 1.0).is_ok(), "{k}");
    }
}
