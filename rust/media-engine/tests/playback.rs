//! Prompts and DTMF over real UDP: what the engine sends into a leg
//! (WAV playback, RFC 4733 events, in-band tones), what it hears from one
//! (key press events) and telephone-events across a transcoded call.

mod common;

use common::*;
use media_core::codec::{self, Params};
use media_core::dtmf::{DtmfDetector, EventSender, TelephoneEvent};
use media_core::rtp::RtpView;
use media_engine::{
    DtmfMode, DtmfOptions, DtmfSource, Engine, Event, LegCodec, LegDtmf, LegId, LegSpec, PlayEndReason,
    PlayOptions, Repeat, SessionId,
};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

fn pcmu() -> LegCodec {
    LegCodec::new("PCMU", 8000, 0)
}

/// A mono 16-bit WAV of a 1 kHz sine.
fn wav(name: &str, rate: u32, ms: u32) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vpbx-playback-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for i in 0..rate * ms / 1000 {
        let x = (f64::from(i) * 1000.0 * std::f64::consts::TAU / f64::from(rate)).sin() * 10000.0;
        w.write_sample(x as i16).unwrap();
    }
    w.finalize().unwrap();
    path
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

/// A session with legs A and B (codecs `ca`, `cb`) connected, each with a
/// peer socket standing in for its phone.
fn call(e: &Engine, ca: &LegCodec, cb: &LegCodec) -> (SessionId, [(LegId, UdpSocket, SocketAddr); 2]) {
    let s = e.create_session("playback").unwrap();
    let mut legs = Vec::new();
    for c in [ca, cb] {
        let info = e
            .add_leg(
                s,
                &LegSpec {
                    codec: Some(c.clone()),
                    clock_rate: c.clock_rate,
                    ..LegSpec::default()
                },
            )
            .unwrap();
        let p = peer();
        e.set_remote(s, info.leg, addr(&p), None).unwrap();
        legs.push((info.leg, p, info.rtp));
    }
    e.connect(s, legs[0].0, legs[1].0).unwrap();
    let [a, b]: [_; 2] = legs.try_into().ok().unwrap();
    (s, [a, b])
}

fn views(pkts: &[(Vec<u8>, SocketAddr)]) -> Vec<RtpView<'_>> {
    pkts.iter().map(|(p, _)| RtpView::parse(p).unwrap()).collect()
}

#[test]
fn a_wav_prompt_plays_as_paced_rtp_and_replaces_the_partner() {
    let e = engine(47000, 20, |_| {});
    let (s, [(a, pa, _), (_, pb, b_rtp)]) = call(&e, &pcmu(), &pcmu());
    // 16 kHz file: resampled to PCMU's 8 kHz.
    let path = wav("tone16k.wav", 16000, 500);
    let info = e.play(s, a, &path, PlayOptions::default()).unwrap();
    assert_eq!(info.duration, Some(Duration::from_millis(500)));
    // The partner talks meanwhile: it must not reach A during the prompt.
    for i in 0..10u16 {
        pb.send_to(&rtp(i, 0xbbbb, 1, 160), b_rtp).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let got = recv_up_to(&pa, 60);
    let v = views(&got);
    assert!(
        v.iter().all(|p| p.ssrc() == v[0].ssrc()),
        "only the prompt's stream"
    );
    // 500 ms at 20 ms: 25 packets (±1 ptime).
    assert!((24..=26).contains(&v.len()), "{} packets", v.len());
    assert!(v[0].marker() && v.iter().skip(1).all(|p| !p.marker()));
    for w in v.windows(2) {
        assert_eq!(w[1].sequence().diff(w[0].sequence()), 1);
        assert_eq!(w[1].timestamp().diff(w[0].timestamp()), 160);
        assert_eq!(w[1].payload_type().0, 0);
    }
    let mut dec = codec::decoder("PCMU", 8000, 1, &Params::new()).unwrap();
    let mut pcm = Vec::new();
    for p in &v {
        dec.decode(p.payload(), &mut pcm).unwrap();
    }
    assert!(tone_share(&pcm[400..pcm.len() - 400], 1000.0, 8000) > 0.9);
    let ended = wait_event(&e, Duration::from_secs(2), |ev| {
        matches!(ev, Event::PlayEnded { .. })
    });
    assert_eq!(
        ended,
        Some(Event::PlayEnded {
            session: s,
            leg: a,
            play: info.play,
            reason: PlayEndReason::Finished
        })
    );
    // After the prompt, the partner's media flows again.
    pb.send_to(&rtp(100, 0xbbbb, 1, 160), b_rtp).unwrap();
    let after = recv_up_to(&pa, 1);
    assert_eq!(views(&after)[0].ssrc().0, 0xbbbb);
}

#[test]
fn loops_until_stopped_and_bad_files_start_nothing() {
    let e = engine(47020, 20, |_| {});
    let (s, [(a, pa, _), _]) = call(&e, &pcmu(), &pcmu());
    let missing = e.play(
        s,
        a,
        std::path::Path::new("/nonexistent/prompt.wav"),
        PlayOptions::default(),
    );
    assert!(missing
        .unwrap_err()
        .to_string()
        .contains("/nonexistent/prompt.wav"));
    assert!(quiet(&pa, Duration::from_millis(100)), "nothing was started");
    let path = wav("short.wav", 8000, 100);
    let opts = PlayOptions {
        repeat: Repeat::Forever,
        start_ms: 0,
    };
    let info = e.play(s, a, &path, opts).unwrap();
    assert_eq!(info.duration, None);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(e.stop_play(s, a).unwrap(), Some(info.play));
    let got = recv_up_to(&pa, 100);
    // 400 ms of a 100 ms file: it looped (about 20 packets).
    assert!((17..=23).contains(&got.len()), "{}", got.len());
    let ended = wait_event(&e, Duration::from_secs(1), |ev| {
        matches!(ev, Event::PlayEnded { .. })
    });
    assert!(matches!(
        ended,
        Some(Event::PlayEnded {
            reason: PlayEndReason::Stopped,
            ..
        })
    ));
    assert!(quiet(&pa, Duration::from_millis(100)));
    assert_eq!(e.stop_play(s, a).unwrap(), None);
}

#[test]
fn rfc4733_digits_go_out_with_three_end_packets() {
    let e = engine(47040, 20, |_| {});
    let (s, [(a, pa, _), _]) = call(&e, &pcmu(), &pcmu());
    let o = DtmfOptions::default();
    assert!(e.send_dtmf(s, a, "1", o).is_err(), "no telephone-event PT yet");
    let dtmf = LegDtmf {
        telephone_event_pt: Some(101),
        detect: false,
    };
    e.set_leg_dtmf(s, a, dtmf).unwrap();
    let took = e.send_dtmf(s, a, "1#", o).unwrap();
    assert_eq!(took, Duration::from_millis(250));
    let got = recv_up_to(&pa, 40);
    let v = views(&got);
    assert!(v.iter().all(|p| p.payload_type().0 == 101));
    let evs: Vec<_> = v
        .iter()
        .map(|p| (p.marker(), TelephoneEvent::parse(p.payload()).unwrap()))
        .collect();
    for (code, digit) in [(1u8, '1'), (11, '#')] {
        let of: Vec<_> = evs.iter().filter(|(_, ev)| ev.event == code).collect();
        assert!(!of.is_empty(), "{digit} was sent");
        assert!(of[0].0, "marker on the first packet of {digit}");
        assert_eq!(of.iter().filter(|(_, ev)| ev.end).count(), 3, "{digit}");
        assert_eq!(of.last().unwrap().1.duration, 800, "100 ms at 8 kHz");
        assert_eq!(of[0].1.volume, 10);
    }
}

#[test]
fn inband_digits_are_heard_by_a_detector() {
    let e = engine(47060, 20, |_| {});
    let (s, [(a, pa, _), _]) = call(&e, &pcmu(), &pcmu());
    let o = DtmfOptions {
        mode: DtmfMode::Inband,
        ..DtmfOptions::default()
    };
    e.send_dtmf(s, a, "159#", o).unwrap();
    let got = recv_up_to(&pa, 60);
    let mut dec = codec::decoder("PCMU", 8000, 1, &Params::new()).unwrap();
    let mut pcm = Vec::new();
    for p in views(&got) {
        assert_eq!(p.payload_type().0, 0);
        dec.decode(p.payload(), &mut pcm).unwrap();
    }
    let mut det = DtmfDetector::new(8000).unwrap();
    assert_eq!(det.feed(&pcm), vec!['1', '5', '9', '#']);
}

/// The packets of one RFC 4733 key press, each sent twice.
fn send_key(from: &UdpSocket, to: SocketAddr, digit: char, pt: u8, seq0: u16, ts: u32) -> u16 {
    let mut sender = EventSender::new(8000, 20).unwrap();
    sender
        .start(digit, 100, 10, media_core::RtpTimestamp(ts))
        .unwrap();
    let mut seq = seq0;
    let mut payload = Vec::new();
    while let Some(meta) = {
        payload.clear();
        sender.next_packet(&mut payload)
    } {
        let mut p = vec![0x80, pt | if meta.marker { 0x80 } else { 0 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&meta.timestamp.0.to_be_bytes());
        p.extend_from_slice(&0x4242_u32.to_be_bytes());
        p.extend_from_slice(&payload);
        from.send_to(&p, to).unwrap();
        from.send_to(&p, to).unwrap();
        seq = seq.wrapping_add(1);
        std::thread::sleep(Duration::from_millis(5));
    }
    seq
}

#[test]
fn received_key_presses_become_events_once_each() {
    let e = engine(47080, 20, |_| {});
    let (s, [(a, pa, a_rtp), _]) = call(&e, &pcmu(), &pcmu());
    let dtmf = LegDtmf {
        telephone_event_pt: Some(101),
        detect: true,
    };
    e.set_leg_dtmf(s, a, dtmf).unwrap();
    let seq = send_key(&pa, a_rtp, '4', 101, 10, 1600);
    send_key(&pa, a_rtp, '*', 101, seq, 4800);
    // Then an in-band 7: PCMU audio carrying the tone.
    let tone = media_core::dtmf::generate_dtmf(8000, '7', 120, -10.0).unwrap();
    for (i, chunk) in tone.chunks(160).chain([[0i16; 160].as_slice(); 3]).enumerate() {
        let mut p = vec![0x80, 0];
        p.extend_from_slice(&(100 + i as u16).to_be_bytes());
        p.extend_from_slice(&(8000 + 160 * i as u32).to_be_bytes());
        p.extend_from_slice(&0x4242_u32.to_be_bytes());
        p.extend(chunk.iter().map(|&x| media_core::codec::g711::linear_to_ulaw(x)));
        pa.send_to(&p, a_rtp).unwrap();
    }
    let mut keys = Vec::new();
    let _ = wait_for(Duration::from_secs(2), || {
        for ev in e.poll_events() {
            if let Event::Dtmf {
                session,
                leg,
                digit,
                source,
                ..
            } = ev
            {
                assert_eq!((session, leg), (s, a));
                keys.push((digit, source));
            }
        }
        (keys.len() >= 3).then_some(())
    });
    std::thread::sleep(Duration::from_millis(100));
    for ev in e.poll_events() {
        if let Event::Dtmf { digit, source, .. } = ev {
            keys.push((digit, source));
        }
    }
    assert_eq!(
        keys,
        vec![
            ('4', DtmfSource::Rfc4733),
            ('*', DtmfSource::Rfc4733),
            ('7', DtmfSource::Inband)
        ]
    );
}

#[test]
fn telephone_events_cross_a_pcmu_opus_call_with_translated_payload_types() {
    let e = engine(47100, 20, |_| {});
    let opus = LegCodec::new("opus", 48000, 111);
    let (s, [(a, pa, a_rtp), (b, pb, _)]) = call(&e, &pcmu(), &opus);
    let at = |pt| LegDtmf {
        telephone_event_pt: Some(pt),
        detect: false,
    };
    e.set_leg_dtmf(s, a, at(101)).unwrap();
    e.set_leg_dtmf(s, b, at(96)).unwrap();
    send_key(&pa, a_rtp, '9', 101, 1, 16000);
    let got = recv_up_to(&pb, 40);
    let ev: Vec<_> = views(&got)
        .into_iter()
        .filter(|v| v.payload_type().0 != 111)
        .collect();
    assert!(!ev.is_empty(), "events arrive");
    assert!(ev.iter().all(|v| v.payload_type().0 == 96), "PT 101 became 96");
    let parsed: Vec<_> = ev
        .iter()
        .map(|v| TelephoneEvent::parse(v.payload()).unwrap())
        .collect();
    assert!(parsed.iter().all(|p| p.event == 9));
    // 100 ms at opus's 48 kHz clock.
    assert_eq!(parsed.iter().map(|p| p.duration).max(), Some(4800));
    assert!(ev.iter().all(|v| v.timestamp() == ev[0].timestamp()));
    assert!(ev[0].marker());
}

#[test]
fn a_prompt_into_a_transcoded_opus_leg_replaces_the_transcoded_audio() {
    let e = engine(47120, 20, |_| {});
    let opus = LegCodec::new("opus", 48000, 111);
    let (s, [(_, pa, a_rtp), (b, pb, _)]) = call(&e, &pcmu(), &opus);
    let info = e
        .play(s, b, &wav("tone8k.wav", 8000, 600), PlayOptions::default())
        .unwrap();
    // A talks PCMU meanwhile (and stops well before the prompt ends, so
    // its transcoded audio is over too): none of it may reach B.
    for i in 0..15u16 {
        pa.send_to(&rtp(i, 0xaaaa, 3, 160), a_rtp).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let got = recv_up_to(&pb, 60);
    let v = views(&got);
    assert!((29..=31).contains(&v.len()), "{} packets", v.len());
    assert!(v
        .iter()
        .all(|p| p.payload_type().0 == 111 && p.ssrc() == v[0].ssrc()));
    for w in v.windows(2) {
        assert_eq!(
            w[1].timestamp().diff(w[0].timestamp()),
            960,
            "20 ms at opus's 48 kHz clock"
        );
    }
    let mut dec = codec::decoder("opus", 48000, 1, &Params::new()).unwrap();
    let mut pcm = Vec::new();
    for p in &v {
        dec.decode(p.payload(), &mut pcm).unwrap();
    }
    assert!(tone_share(&pcm[4800..pcm.len() - 4800], 1000.0, 48000) > 0.8);
    assert!(wait_event(&e, Duration::from_secs(2), |ev| matches!(
        ev,
        Event::PlayEnded { play, .. } if *play == info.play
    ))
    .is_some());
}
