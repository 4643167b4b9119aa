//! DTMF converted between RFC 4733 events and in-band tones over real UDP,
//! when only one leg of a call negotiated telephone-event: A's events are
//! heard as tones by B, B's tones reach A as events.

mod common;

use common::*;
use media_core::codec::{self, Params};
use media_core::dtmf::{generate_dtmf, DtmfDetector, EventSender, TelephoneEvent};
use media_core::rtp::RtpView;
use media_engine::{Engine, LegCodec, LegDtmf, LegId, LegSpec, SessionId};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const TE: u8 = 101;

/// A call A-B; A negotiated telephone-event `TE`, B none.
fn call(e: &Engine, ca: &LegCodec, cb: &LegCodec) -> (SessionId, [(LegId, UdpSocket, SocketAddr); 2]) {
    let s = e.create_session("dtmf-conv").unwrap();
    let mut legs = Vec::new();
    for c in [ca, cb] {
        let spec = LegSpec {
            codec: Some(c.clone()),
            clock_rate: c.clock_rate,
            ..LegSpec::default()
        };
        let info = e.add_leg(s, &spec).unwrap();
        let p = peer();
        e.set_remote(s, info.leg, addr(&p), None).unwrap();
        legs.push((info.leg, p, info.rtp));
    }
    e.connect(s, legs[0].0, legs[1].0).unwrap();
    let dtmf = LegDtmf {
        telephone_event_pt: Some(TE),
        detect: false,
    };
    e.set_leg_dtmf(s, legs[0].0, dtmf).unwrap();
    let [a, b]: [_; 2] = legs.try_into().ok().unwrap();
    (s, [a, b])
}

fn rtp(pt: u8, marker: bool, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&0x0a0a_u32.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Quiet background noise (not silence: a real line), `n` samples.
fn noise(n: usize, seed: usize) -> Vec<i16> {
    (0..n)
        .map(|i| (((i + seed) * 7919 % 61) as i16 - 30) * 3)
        .collect()
}

/// A (PCMU, telephone-event) sends 1 s of audio with an RFC 4733 "5" of
/// 100 ms from 200 ms on (updates, three final packets, every packet sent
/// twice); with `pause_audio` it sends no audio while the key is held, as
/// some phones do. Returns what B receives.
fn key_five_from_a(cb: &LegCodec, base: u16, pause_audio: bool) -> Vec<(Vec<u8>, SocketAddr)> {
    let e = engine(base, 20, |_| {});
    let (_s, [(_, pa, a_rtp), (_, pb, _)]) = call(&e, &LegCodec::new("PCMU", 8000, 0), cb);
    let mut enc = codec::encoder("PCMU", 8000, 1, &Params::new()).unwrap();
    let mut events = EventSender::new(8000, 20).unwrap();
    let start = Instant::now();
    let mut seq = 1000u16;
    let mut body = Vec::new();
    for i in 0..50u32 {
        let ts = 8000 + 160 * i;
        if i == 10 {
            events.start('5', 100, 12, media_core::RtpTimestamp(ts)).unwrap();
        }
        let in_event = events.is_active();
        body.clear();
        if let Some(m) = events.next_packet(&mut body) {
            let p = rtp(TE, m.marker, seq, m.timestamp.0, &body);
            pa.send_to(&p, a_rtp).unwrap();
            pa.send_to(&p, a_rtp).unwrap();
            seq = seq.wrapping_add(1);
        }
        if !(pause_audio && in_event) {
            body.clear();
            enc.encode(&noise(160, i as usize * 160), &mut body).unwrap();
            pa.send_to(&rtp(0, false, seq, ts, &body), a_rtp).unwrap();
            seq = seq.wrapping_add(1);
        }
        let due = start + Duration::from_millis(20 * u64::from(i + 1));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    recv_up_to(&pb, 200)
}

/// B's stream is one continuous stream of `cb` audio in which a detector
/// finds exactly one "5".
fn check_five(got: &[(Vec<u8>, SocketAddr)], cb: &LegCodec) {
    let views: Vec<_> = got.iter().map(|(p, _)| RtpView::parse(p).unwrap()).collect();
    assert!(views.len() >= 40, "{} packets", views.len());
    assert!(
        views.iter().all(|v| v.payload_type().0 == cb.payload_type),
        "audio only"
    );
    let step = cb.clock_rate * cb.ptime_ms / 1000;
    for w in views.windows(2) {
        assert_eq!(w[1].sequence().diff(w[0].sequence()), 1, "seq continuous");
        assert_eq!(
            w[1].timestamp().diff(w[0].timestamp()),
            step as i32,
            "ts continuous"
        );
        assert_eq!(w[1].ssrc(), w[0].ssrc());
    }
    let mut dec = codec::decoder(&cb.name, cb.clock_rate, cb.channels, &Params::new()).unwrap();
    let mut pcm = Vec::new();
    for v in &views {
        dec.decode(v.payload(), &mut pcm).unwrap();
    }
    let rate = dec.sample_rate();
    let mut det = DtmfDetector::new(rate).unwrap();
    assert_eq!(det.feed(&pcm), vec!['5']);
    // The tone lasts about the event's 100 ms (20 ms frames: 4-7 of them
    // with the key's 770 + 1336 Hz carrying the signal).
    let frame = (rate / 50) as usize;
    let toned = pcm
        .chunks_exact(frame)
        .filter(|f| tone_share(f, 770.0, rate) + tone_share(f, 1336.0, rate) > 0.8)
        .count();
    assert!((4..=7).contains(&toned), "{toned} frames of tone");
}

/// Share of the signal's energy at `freq` (Goertzel), 0..=1.
fn tone_share(pcm: &[i16], freq: f64, rate: u32) -> f64 {
    let w = std::f64::consts::TAU * freq / f64::from(rate);
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in pcm {
        let s = f64::from(x) + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    let energy: f64 = pcm.iter().map(|&x| f64::from(x).powi(2)).sum();
    (2.0 * power / pcm.len() as f64 / energy.max(1.0)).min(1.0)
}

#[test]
fn rfc4733_key_becomes_a_tone_on_a_same_codec_call_without_telephone_event() {
    let pcmu = LegCodec::new("PCMU", 8000, 0);
    check_five(&key_five_from_a(&pcmu, 47400, false), &pcmu);
}

#[test]
fn rfc4733_key_becomes_a_tone_in_pcma_even_with_the_audio_paused() {
    let pcma = LegCodec::new("PCMA", 8000, 8);
    check_five(&key_five_from_a(&pcma, 47420, true), &pcma);
}

#[test]
fn rfc4733_key_becomes_a_tone_in_opus() {
    let opus = LegCodec::new("opus", 48000, 111);
    check_five(&key_five_from_a(&opus, 47460, false), &opus);
}

#[test]
fn inband_keys_become_rfc4733_events_once_each_with_the_tone_muted() {
    inband_keys_to_a(&LegCodec::new("PCMU", 8000, 0), 47440);
}

#[test]
fn inband_keys_become_rfc4733_events_at_opus_clock() {
    inband_keys_to_a(&LegCodec::new("opus", 48000, 111), 47480);
}

/// B (PCMU, no telephone-event) plays "9" and "#" in-band; A (codec `ca`,
/// telephone-event clocked like it) gets each as one RFC 4733 event.
fn inband_keys_to_a(ca: &LegCodec, base: u16) {
    let e = engine(base, 20, |_| {});
    let pcmu = LegCodec::new("PCMU", 8000, 0);
    let (_s, [(_, pa, _), (_, pb, b_rtp)]) = call(&e, ca, &pcmu);
    // B: noise, "9" for 120 ms, noise, "#" for 120 ms, noise.
    let mut pcm = noise(1600, 0);
    pcm.extend(generate_dtmf(8000, '9', 120, -10.0).unwrap());
    pcm.extend(noise(1200, 1));
    pcm.extend(generate_dtmf(8000, '#', 120, -10.0).unwrap());
    pcm.extend(noise(2400, 2));
    let mut enc = codec::encoder("PCMU", 8000, 1, &Params::new()).unwrap();
    let start = Instant::now();
    let mut body = Vec::new();
    for (i, frame) in pcm.chunks_exact(160).enumerate() {
        body.clear();
        enc.encode(frame, &mut body).unwrap();
        pb.send_to(&rtp(0, i == 0, 500 + i as u16, 160 * i as u32, &body), b_rtp)
            .unwrap();
        let due = start + Duration::from_millis(20 * (i as u64 + 1));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    let got = recv_up_to(&pa, 200);
    let views: Vec<_> = got.iter().map(|(p, _)| RtpView::parse(p).unwrap()).collect();
    for w in views.windows(2) {
        assert_eq!(
            w[1].sequence().diff(w[0].sequence()),
            1,
            "one stream, events included"
        );
    }
    let events: Vec<_> = views.iter().filter(|v| v.payload_type().0 == TE).collect();
    let mut keys = Vec::new();
    for v in &events {
        let ev = TelephoneEvent::parse(v.payload()).unwrap();
        if v.marker() {
            keys.push((ev.digit().unwrap(), v.timestamp(), Vec::new()));
        }
        let k = keys.last_mut().expect("an event starts with the marker bit");
        assert_eq!(v.timestamp(), k.1, "every packet carries the start timestamp");
        assert_eq!(ev.digit(), Some(k.0));
        k.2.push(ev);
    }
    let digits: String = keys.iter().map(|k| k.0).collect();
    assert_eq!(digits, "9#");
    for (digit, _, evs) in &keys {
        let ends: Vec<_> = evs.iter().filter(|e| e.end).collect();
        assert_eq!(ends.len(), 3, "{digit}: three final packets");
        assert!(evs.last().unwrap().end);
        let ms = u32::from(ends[0].duration) * 1000 / ca.clock_rate;
        assert!((60..=200).contains(&ms), "{digit}: {ms} ms for a 120 ms key");
    }
    // The audio towards A carries no key of its own.
    let mut dec = codec::decoder(&ca.name, ca.clock_rate, ca.channels, &Params::new()).unwrap();
    let mut audio = Vec::new();
    for v in views.iter().filter(|v| v.payload_type().0 == ca.payload_type) {
        dec.decode(v.payload(), &mut audio).unwrap();
    }
    let rate = dec.sample_rate();
    assert!(audio.len() > rate as usize / 2);
    assert_eq!(DtmfDetector::new(rate).unwrap().feed(&audio), Vec::<char>::new());
}
