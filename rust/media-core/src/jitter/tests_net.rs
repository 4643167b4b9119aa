//! Jitter buffer under network trouble: delay spikes, clock drift, DTX,
//! source changes, timestamp jumps, floods, outages, FEC; plus a property
//! test over random packet sequences.

use super::tests::*;
use super::*;
use crate::types::PayloadType;
use proptest::prelude::*;
use std::sync::{Arc, Mutex};

/// Where `window` occurs in `reference`.
fn find_in(reference: &[i16], window: &[i16]) -> Option<usize> {
    reference.windows(window.len()).position(|w| w == window)
}

/// Asserts that the last `n` output samples are an unaltered stretch of
/// `reference`.
fn assert_tail_plays(out: &[i16], reference: &[i16], n: usize) {
    let tail = &out[out.len() - n..];
    let at = find_in(reference, &tail[..800]).expect("tail comes from the reference");
    assert_eq!(tail, &reference[at..at + n]);
}

fn jitter(sent: &mut [Sent], seed: u64, max_ms: f64) {
    let mut rng = Lcg(seed);
    for p in sent {
        p.arrival_ms += max_ms * rng.unit();
    }
}

#[test]
fn delay_spikes_raise_the_target_and_it_shrinks_back_after() {
    // 60 s with a 200 ms delay spike every 2 s, then 60 s of calm.
    let n = 6000;
    let payloads = sine_payloads(vec![160; n], 440.0);
    let mut sent = stream(&payloads, 0.0, 0, 0, SSRC);
    jitter(&mut sent, 3, 5.0);
    for (k, p) in sent.iter_mut().enumerate().take(3000) {
        let phase = k % 100;
        if (50..60).contains(&phase) {
            // Everything sent during 200 ms comes out at its end, in order.
            let release = 20.0 * (k - phase + 60) as f64;
            p.arrival_ms = release + 0.1 * phase as f64;
        }
    }
    let mut b = jb(JitterConfig::default());
    let (mut max_target, mut at30, mut at60) = (0.0f64, JitterStats::default(), JitterStats::default());
    run(&mut b, sent, 1.0, n - 10, |i, b| {
        let s = b.stats();
        if i < 3000 {
            max_target = max_target.max(s.target_delay_ms);
        }
        if i == 1500 {
            at30 = s.clone();
        }
        if i == 3000 {
            at60 = s;
        }
    });
    let end = b.stats();
    assert!(max_target >= 220.0, "target grew to the spikes: {max_target}");
    assert!(at30.concealed_samples > 0, "the first spikes hurt");
    // ... but even they lose nothing: with nothing buffered the buffer waits
    // for the delayed packets instead of dropping them.
    assert_eq!(end.late, 0);
    // Adapted: the second half of the spiky minute plays clean.
    assert!(at60.late - at30.late <= 2, "{} late", at60.late - at30.late);
    assert!(
        at60.concealed_samples - at30.concealed_samples <= 160,
        "{} concealed",
        at60.concealed_samples - at30.concealed_samples
    );
    assert!(at60.current_delay_ms >= 200.0);
    // A minute of calm later the delay is back down.
    assert!(end.target_delay_ms <= 35.0, "{end:?}");
    assert!(end.current_delay_ms <= end.target_delay_ms + 6.0, "{end:?}");
    assert!(end.accelerated_samples > 0);
    assert_eq!(end.lost, 0);
}

/// Ten minutes of a sender whose clock is off by `ppm`, with 5 ms of jitter.
fn drift(ppm: f64) -> JitterStats {
    let n = 30_000;
    let payloads = sine_payloads(vec![160; n], 440.0);
    let mut sent = stream(&payloads, 0.0, 0, 0, SSRC);
    for p in &mut sent {
        p.arrival_ms /= 1.0 + ppm * 1e-6;
    }
    jitter(&mut sent, 11, 5.0);
    let mut b = jb(JitterConfig::default());
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    run(&mut b, sent, 0.5, n - 10, |i, b| {
        let s = b.stats();
        if i >= 500 {
            lo = lo.min(s.current_delay_ms - s.target_delay_ms);
            hi = hi.max(s.current_delay_ms - s.target_delay_ms);
            assert!(s.current_delay_ms < 45.0, "pop {i}: {s:?}");
        }
    });
    let s = b.stats();
    // The drift moves the arrivals across the pops: every 200 s the packets
    // that came just before a pop come just after it and wait one pop
    // interval longer (or, for a fast sender, the other way round). The
    // target steps by that much, and the delay follows.
    assert!(lo > -25.0 && hi < 25.0, "delay stays near the target: {lo}..{hi}");
    assert!(s.concealed_samples <= 3 * 160, "{s:?}");
    assert!(s.late <= 3, "{s:?}");
    assert_eq!(s.lost, 0);
    s
}

#[test]
fn fast_sender_clock_is_absorbed_by_compression() {
    let s = drift(100.0);
    // 600 s at +100 ppm is 60 ms (480 samples) too much audio.
    assert!(s.accelerated_samples >= 400, "{s:?}");
}

#[test]
fn slow_sender_clock_is_absorbed_by_expansion() {
    let s = drift(-100.0);
    assert!(s.expanded_samples >= 400, "{s:?}");
}

#[test]
fn dtx_pause_is_neither_loss_nor_extra_delay() {
    // 5 s of speech, 2 s of silence (timestamps jump by it, sequence numbers
    // do not), 5 s of speech.
    let payloads = sine_payloads(vec![160; 500], 440.0);
    let mut sent = stream(&payloads, 0.0, 0, 0, SSRC);
    for (k, p) in sent.iter_mut().enumerate().skip(250) {
        p.arrival_ms += 2000.0;
        p.bytes = rtp(k as u16, 160 * k as u32 + 16_000, SSRC, 0, &payloads[k]);
    }
    let mut b = jb(JitterConfig::default());
    let mut resumed = JitterStats::default();
    let out = run(&mut b, sent, 7.0, 590, |i, b| {
        if i == 400 {
            resumed = b.stats();
        }
    });
    let s = b.stats();
    assert_eq!((s.lost, s.late, s.timestamp_jumps), (0, 0, 0));
    assert!(s.silence_samples > 0, "the pause is played as silence");
    assert!(
        (resumed.current_delay_ms - resumed.target_delay_ms).abs() < 1.0,
        "{resumed:?}"
    );
    assert!((s.mean_delay_ms - s.target_delay_ms).abs() < 1.0, "{s:?}");
    // The second talk spurt plays unaltered (from its second packet on: a
    // concealment may smooth into the first).
    let second = decoded(&payloads[251..]);
    let start = find_start(&out, &second);
    assert!(assert_continues(&out, start, &second) > 30_000);
}

#[test]
fn ssrc_change_switches_to_the_new_source() {
    let a = sine_payloads(vec![160; 250], 440.0);
    let b_audio = sine_payloads(vec![160; 250], 1000.0);
    let mut sent = stream(&a, 0.0, 1000, 5555, SSRC);
    sent.extend(stream(&b_audio, 5000.0, 40_000, 123_456_789, 0xB));
    let mut b = jb(JitterConfig::default());
    let out = run(&mut b, sent, 9.0, 495, |_, _| {});
    let s = b.stats();
    assert_eq!(s.ssrc_changes, 1);
    assert_eq!((s.lost, s.late, s.discarded, s.timestamp_jumps), (0, 0, 0, 0));
    assert_eq!(s.played + s.buffered_packets, s.packets_received);
    assert_tail_plays(&out, &decoded(&b_audio), 16_000);
}

#[test]
fn a_stray_foreign_packet_changes_nothing() {
    let payloads = sine_payloads(vec![160; 200], 440.0);
    let reference = decoded(&payloads);
    let mut sent = stream(&payloads, 0.0, 0, 0, SSRC);
    sent.push(Sent {
        arrival_ms: 1001.0,
        bytes: rtp(7, 999_999, 0xBAD, 0, &payloads[0]),
    });
    let mut b = jb(JitterConfig::default());
    let out = run(&mut b, sent, 3.0, 190, |_, _| {});
    let start = find_start(&out, &reference);
    assert_continues(&out, start, &reference);
    let s = b.stats();
    assert_eq!((s.ssrc_changes, s.discarded, s.concealed_samples), (0, 1, 0));
}

#[test]
fn timestamp_jumps_are_bridged_seamlessly() {
    let payloads = sine_payloads(vec![160; 500], 440.0);
    let reference = decoded(&payloads);
    let mut sent = stream(&payloads, 0.0, 0, 0, SSRC);
    for (k, p) in sent.iter_mut().enumerate().skip(200) {
        let ts = if k < 350 {
            (160 * k as u32).wrapping_add(1_000_000)
        } else {
            (160 * k as u32).wrapping_sub(7_000_000)
        };
        p.bytes = rtp(k as u16, ts, SSRC, 0, &payloads[k]);
    }
    let mut b = jb(JitterConfig::default());
    let out = run(&mut b, sent, 4.0, 495, |_, _| {});
    let start = find_start(&out, &reference);
    assert_continues(&out, start, &reference);
    let s = b.stats();
    assert_eq!(s.timestamp_jumps, 2);
    assert_eq!((s.lost, s.late, s.concealed_samples), (0, 0, 0));
}

#[test]
fn far_future_floods_stay_bounded() {
    let payloads = sine_payloads(vec![160; 100], 440.0);
    let cfg = JitterConfig {
        max_packets: 64,
        ..Default::default()
    };
    let mut b = jb(cfg);
    let mut out = Vec::new();
    for p in stream(&payloads, 0.0, 0, 0, SSRC) {
        b.push(&p.bytes, p.arrival_ms).unwrap();
        b.pop(p.arrival_ms, &mut out).unwrap();
    }
    let mut rng = Lcg(99);
    for k in 0..20_000u32 {
        // Random timestamps, then ones that run far ahead consistently.
        let ts = if k < 10_000 {
            (rng.unit() * 4e9) as u32
        } else {
            0x8000_0000u32.wrapping_add(160 * k)
        };
        b.push(&rtp(100 + k as u16, ts, SSRC, 0, &payloads[0]), 2000.0)
            .unwrap();
        assert!(b.stats().buffered_packets <= 64);
    }
    let s = b.stats();
    assert!(s.discarded > 10_000, "{s:?}");
    let before = out.len();
    for i in 0..100 {
        assert!(b.pop(2000.0 + 20.0 * f64::from(i), &mut out).unwrap());
    }
    assert_eq!(out.len() - before, 100 * 160);
}

#[test]
fn backlog_after_an_outage_is_skipped() {
    // 3 s outage; then the backlog arrives at once, and the stream goes on.
    let payloads = sine_payloads(vec![160; 600], 440.0);
    let mut sent = stream(&payloads, 0.0, 0, 0, SSRC);
    for p in &mut sent[100..250] {
        p.arrival_ms = 5000.0;
    }
    let mut b = jb(JitterConfig::default());
    let mut after = JitterStats::default();
    run(&mut b, sent, 2.0, 590, |i, b| {
        if i == 300 {
            after = b.stats();
        }
    });
    let s = b.stats();
    assert!(after.discarded >= 100, "{after:?}");
    assert!(after.current_delay_ms <= after.target_delay_ms + 6.0, "{after:?}");
    assert!(
        s.target_delay_ms <= 35.0,
        "one outage is no reason to buffer more: {s:?}"
    );
    assert_eq!(s.lost, 0);
}

/// A fake codec: each payload byte is one sample (value × 100); concealment
/// is -1 and FEC recovery -2 per sample; a payload starting 0xEE fails.
pub(super) struct Mock(pub Arc<Mutex<Vec<String>>>);

impl Decoder for Mock {
    fn name(&self) -> &'static str {
        "mock"
    }
    fn has_fec(&self) -> bool {
        true // the buffer only asks codecs with FEC to recover
    }
    fn sample_rate(&self) -> u32 {
        8000
    }
    fn clock_rate(&self) -> u32 {
        8000
    }
    fn channels(&self) -> u8 {
        1
    }
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<()> {
        if payload.first() == Some(&0xEE) {
            return Err(Error::malformed("mock", "bad frame"));
        }
        out.extend(payload.iter().map(|&b| i16::from(b) * 100));
        Ok(())
    }
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<()> {
        self.0.lock().unwrap().push(format!("conceal {samples}"));
        out.extend(std::iter::repeat_n(-1, samples));
        Ok(())
    }
    fn recover(&mut self, next: &[u8], samples: usize, out: &mut Vec<i16>) -> Result<()> {
        self.0
            .lock()
            .unwrap()
            .push(format!("recover {} {samples}", next[0]));
        out.extend(std::iter::repeat_n(-2, samples));
        Ok(())
    }
    fn samples_in(&self, payload: &[u8]) -> Result<usize> {
        Ok(payload.len())
    }
}

#[test]
fn fec_recovers_the_frame_before_a_present_packet() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let cfg = JitterConfig {
        min_delay_ms: 60, // the next packet is there when the gap comes up
        ..Default::default()
    };
    let mut b = JitterBuffer::new(cfg, Box::new(Mock(log.clone()))).unwrap();
    let payloads: Vec<Vec<u8>> = (0..100u8)
        .map(|k| vec![if k == 40 { 0xEE } else { k + 1 }; 160])
        .collect();
    let mut sent = stream(&payloads, 0.0, 0, 0, SSRC);
    sent.retain(|p| ![10u8, 20, 21].contains(&p.bytes[3]));
    let out = run(&mut b, sent, 1.0, 90, |_, _| {});
    let log = log.lock().unwrap().clone();
    // Pops at 1 + 20 i with a 60 ms delay: each pop needs the first 1 ms (8
    // samples) of a frame, the next pop the rest. FEC is used only at that
    // second pop, the deadline of what is left of the missing frame (the
    // packet could still have come until then); it rebuilds the whole frame,
    // of which the last 152 samples are played.
    assert_eq!(
        log,
        [
            "conceal 8",
            "recover 12 160",
            // Two in a row: 20 is concealed, 21 recovered from 22.
            "conceal 8",
            "conceal 160",
            "recover 23 160",
            // The undecodable frame 40 is concealed too, not skipped.
            "conceal 160",
        ]
    );
    let s = b.stats();
    assert_eq!((s.lost, s.discarded, s.concealed_samples), (3, 1, 4 * 160));
    assert_eq!(out.iter().filter(|&&x| x == -2).count(), 2 * 152);
}

#[test]
fn opus_with_a_48k_clock_and_16k_output_plays_exactly_and_recovers() {
    let mut enc_params = crate::codec::Params::new();
    enc_params.insert("sample_rate".into(), 16000);
    enc_params.insert("fec".into(), 1);
    enc_params.insert("packet_loss_perc".into(), 20);
    let mut enc = crate::codec::encoder("opus", 48000, 1, &enc_params).unwrap();
    let mut dec_params = crate::codec::Params::new();
    dec_params.insert("sample_rate".into(), 16000);
    let decoder = || crate::codec::decoder("opus", 48000, 1, &dec_params).unwrap();
    let frames: Vec<Vec<u8>> = (0..300)
        .map(|k| {
            let pcm: Vec<i16> = (320 * k..320 * (k + 1))
                .map(|i| (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 16000.0).sin()) as i16)
                .collect();
            let mut out = Vec::new();
            enc.encode(&pcm, &mut out).unwrap();
            out
        })
        .collect();
    // RTP timestamps count at 48 kHz (RFC 7587 §4.1): 960 per 20 ms.
    let sent: Vec<Sent> = frames
        .iter()
        .enumerate()
        .map(|(k, f)| Sent {
            arrival_ms: 20.0 * k as f64,
            bytes: rtp(k as u16, 960 * k as u32, SSRC, 111, f),
        })
        .collect();
    let cfg = JitterConfig {
        clock_rate: 48000,
        ..Default::default()
    };
    let mut reference = Vec::new();
    let mut d = decoder();
    for f in &frames {
        d.decode(f, &mut reference).unwrap();
    }
    let mut b = JitterBuffer::new(cfg.clone(), decoder()).unwrap();
    assert_eq!(b.frame_samples(), 320);
    let out = run(&mut b, sent.clone(), 7.0, 290, |_, _| {});
    let start = find_start(&out, &reference[320..]) - 320;
    assert_continues(&out, start, &reference);
    assert_eq!(b.stats().concealed_samples, 0);
    // Losses: FEC rebuilds each lost frame from its successor.
    let lossy: Vec<Sent> = sent
        .into_iter()
        .filter(|p| ![100, 200].contains(&p.bytes[3]))
        .collect();
    let mut b = JitterBuffer::new(cfg, decoder()).unwrap();
    let out = run(&mut b, lossy, 7.0, 290, |_, _| {});
    assert_eq!(out.len(), 290 * 320);
    let s = b.stats();
    assert_eq!((s.lost, s.late, s.concealed_samples), (2, 0, 2 * 320));
}

#[derive(Clone, Debug)]
enum Op {
    Push {
        dseq: i16,
        dts: i32,
        other_ssrc: bool,
        event: bool,
        len: usize,
        dt: f64,
    },
    Raw(Vec<u8>),
    Pop,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            prop_oneof![-3i16..6, any::<i16>()],
            prop_oneof![9 => -2000i32..4000, 1 => any::<i32>()],
            prop::bool::weighted(0.05),
            prop::bool::weighted(0.05),
            0usize..400,
            -5.0f64..60.0,
        )
            .prop_map(|(dseq, dts, other_ssrc, event, len, dt)| Op::Push { dseq, dts, other_ssrc, event, len, dt }),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Op::Raw),
        4 => Just(Op::Pop),
    ]
}

proptest! {
    #[test]
    fn random_traffic_keeps_the_invariants(ops in prop::collection::vec(op(), 1..300)) {
        let cfg = JitterConfig { max_packets: 16, payload_type: Some(PayloadType::PCMU), ..Default::default() };
        let mut b = jb(cfg);
        let (mut seq, mut ts, mut t) = (0u16, 0u32, 0.0f64);
        let mut started = false;
        let mut out = Vec::new();
        for op in ops {
            match op {
                Op::Push { dseq, dts, other_ssrc, event, len, dt } => {
                    seq = seq.wrapping_add(dseq as u16);
                    ts = ts.wrapping_add(dts as u32);
                    t += dt;
                    let ssrc = if other_ssrc { 0xCAFE } else { SSRC };
                    let pkt = rtp(seq, ts, ssrc, if event { 101 } else { 0 }, &vec![0x55; len]);
                    b.push(&pkt, t).unwrap();
                    started = true;
                }
                Op::Raw(bytes) => {
                    let before = b.stats();
                    if b.push(&bytes, t).is_err() {
                        prop_assert_eq!(b.stats(), before);
                    }
                }
                Op::Pop => {
                    t += 20.0;
                    let n = out.len();
                    let played = b.pop(t, &mut out).unwrap();
                    prop_assert_eq!(out.len() - n, if played { 160 } else { 0 });
                    started |= played;
                }
            }
            let s = b.stats();
            prop_assert!(s.buffered_packets <= 16);
            prop_assert!(s.current_delay_ms.is_finite() && s.target_delay_ms <= 1000.0);
        }
        let _ = started;
    }
}
