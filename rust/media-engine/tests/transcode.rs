//! Transcoding between legs with different codecs or ptimes, over real
//! sockets: a tone sent in one codec arrives in the other with its
//! frequency intact, at the other leg's payload type and ptime.

mod common;

use common::*;
use media_core::codec::{self, Params};
use media_core::rtp::RtpView;
use media_engine::{Engine, LegCodec, LegId, LegSpec};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// `ms` of a `freq` Hz tone at `rate`, starting at sample `start`.
fn tone(freq: f64, rate: u32, start: usize, n: usize) -> Vec<i16> {
    (start..start + n)
        .map(|i| ((i as f64 * freq * 2.0 * std::f64::consts::PI / f64::from(rate)).sin() * 8000.0) as i16)
        .collect()
}

/// Share of the signal's energy at `freq` (Goertzel), 0..=1.
fn tone_share(pcm: &[i16], freq: f64, rate: u32) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
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

/// Sends `ms` of a tone as `c` packets at real-time pace from `from` to `to`.
fn send_tone(from: &UdpSocket, to: SocketAddr, c: &LegCodec, freq: f64, ms: u64) {
    let mut enc = codec::encoder(&c.name, c.clock_rate, c.channels, &Params::new()).unwrap();
    let rate = enc.sample_rate();
    let frame = (rate * c.ptime_ms / 1000) as usize;
    let start = Instant::now();
    for i in 0..(ms / u64::from(c.ptime_ms)) {
        let mut p = vec![0x80, c.payload_type];
        p.extend_from_slice(&(i as u16).to_be_bytes());
        p.extend_from_slice(&((i as u32) * c.clock_rate * c.ptime_ms / 1000).to_be_bytes());
        p.extend_from_slice(&0x5eed_u32.to_be_bytes());
        enc.encode(&tone(freq, rate, i as usize * frame, frame), &mut p)
            .unwrap();
        from.send_to(&p, to).unwrap();
        let due = start + Duration::from_millis((i + 1) * u64::from(c.ptime_ms));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
}

/// Receives what arrives as `c` and decodes it; checks PT and ptime.
fn receive_decoded(s: &UdpSocket, c: &LegCodec, max: usize) -> (usize, Vec<i16>) {
    let mut dec = codec::decoder(&c.name, c.clock_rate, c.channels, &Params::new()).unwrap();
    let mut pcm = Vec::new();
    let got = recv_up_to(s, max);
    for (p, _) in &got {
        let v = RtpView::parse(p).unwrap();
        assert_eq!(v.payload_type().0, c.payload_type);
        let before = pcm.len();
        dec.decode(v.payload(), &mut pcm).unwrap();
        let ms = (pcm.len() - before) as u32 * 1000 / dec.sample_rate();
        assert_eq!(ms, c.ptime_ms, "each packet holds the leg's ptime");
    }
    (got.len(), pcm)
}

fn transcoded_call(
    e: &Engine,
    ca: &LegCodec,
    cb: &LegCodec,
) -> (UdpSocket, SocketAddr, UdpSocket, SocketAddr) {
    let s = e.create_session("transcode").unwrap();
    let spec = |c: &LegCodec| LegSpec {
        codec: Some(c.clone()),
        ..LegSpec::default()
    };
    let a = e.add_leg(s, &spec(ca)).unwrap();
    let b = e.add_leg(s, &spec(cb)).unwrap();
    let (pa, pb) = (peer(), peer());
    e.set_remote(s, a.leg, addr(&pa), None).unwrap();
    e.set_remote(s, b.leg, addr(&pb), None).unwrap();
    e.connect(s, a.leg, b.leg).unwrap();
    let st = e.session_stats(s).unwrap();
    assert!(st.legs.iter().all(|l| l.transcoding));
    (pa, a.rtp, pb, b.rtp)
}

/// A 1 s tone each way at once; each side hears its tone in its codec.
fn both_ways(port_min: u16, ca: LegCodec, cb: LegCodec) {
    let e = engine(port_min, 20, |_| {});
    let (pa, a, pb, b) = transcoded_call(&e, &ca, &cb);
    std::thread::scope(|t| {
        t.spawn(|| send_tone(&pa, a, &ca, 1000.0, 1000));
        t.spawn(|| send_tone(&pb, b, &cb, 440.0, 1000));
    });
    for (sock, c, freq) in [(&pb, &cb, 1000.0), (&pa, &ca, 440.0)] {
        let max = 1000 / c.ptime_ms as usize + 10;
        let (n, pcm) = receive_decoded(sock, c, max);
        // All but the jitter buffer's start-up delay (< 150 ms) arrives.
        // Concealment after the input ends stops within IDLE_AFTER (60 ms).
        let ms = n * c.ptime_ms as usize;
        assert!((850..=1100).contains(&ms), "{} got {n} packets", c.name);
        let rate = codec::decoder(&c.name, c.clock_rate, c.channels, &Params::new())
            .unwrap()
            .sample_rate();
        // Skip the first 100 ms (codec and resampler start-up).
        let steady = &pcm[(rate as usize / 10).min(pcm.len())..];
        let share = tone_share(steady, freq, rate);
        assert!(
            share > 0.8,
            "{} Hz holds {share:.2} of the energy at {}",
            freq,
            c.name
        );
        assert!(tone_share(steady, freq * 1.5, rate) < 0.05);
    }
}

#[test]
fn pcmu_to_pcma_keeps_the_tone() {
    both_ways(
        45000,
        LegCodec::new("PCMU", 8000, 0),
        LegCodec::new("PCMA", 8000, 8),
    );
}

#[test]
fn pcmu_to_g722_resamples_and_keeps_the_tone() {
    both_ways(
        45100,
        LegCodec::new("PCMU", 8000, 0),
        LegCodec::new("G722", 8000, 9),
    );
}

#[test]
fn pcmu_to_opus_with_dynamic_payload_type() {
    both_ways(
        45200,
        LegCodec::new("PCMU", 8000, 0),
        LegCodec::new("opus", 48000, 111),
    );
}

#[test]
fn same_codec_other_ptime_is_repacketized() {
    both_ways(
        45300,
        LegCodec::new("PCMU", 8000, 0).with_ptime(20),
        LegCodec::new("PCMU", 8000, 0).with_ptime(40),
    );
}

#[test]
fn same_codec_and_ptime_is_relayed_untouched() {
    let e = engine(45400, 20, |_| {});
    let c = LegCodec::new("PCMA", 8000, 8);
    let s = e.create_session("plain").unwrap();
    let spec = LegSpec {
        codec: Some(c),
        ..LegSpec::default()
    };
    let a = e.add_leg(s, &spec).unwrap();
    let b = e.add_leg(s, &spec).unwrap();
    let (pa, pb) = (peer(), peer());
    e.set_remote(s, a.leg, addr(&pa), None).unwrap();
    e.set_remote(s, b.leg, addr(&pb), None).unwrap();
    e.connect(s, a.leg, b.leg).unwrap();
    assert!(e.session_stats(s).unwrap().legs.iter().all(|l| !l.transcoding));
    let p = rtp(1, 9, 9, 160);
    pa.send_to(&p, a.rtp).unwrap();
    assert_eq!(recv_up_to(&pb, 1)[0].0, p);
    // Unknown codecs are refused when the leg is created, not mid-call.
    let bad = LegSpec {
        codec: Some(LegCodec::new("GSM", 8000, 3)),
        ..LegSpec::default()
    };
    assert!(e.add_leg(s, &bad).is_err());
    assert_eq!(e.engine_stats().ports_used, 4);
}

#[test]
fn codecs_learnt_after_the_legs_exist_switch_relay_and_transcoding() {
    // The NG flow: ports first (offer), codecs once the answer settles them.
    let e = engine(45500, 20, |_| {});
    let s = e.create_session("late codecs").unwrap();
    let a = e.add_leg(s, &LegSpec::default()).unwrap();
    let b = e.add_leg(s, &LegSpec::default()).unwrap();
    let (pa, pb) = (peer(), peer());
    e.set_remote(s, a.leg, addr(&pa), None).unwrap();
    e.set_remote(s, b.leg, addr(&pb), None).unwrap();
    e.connect(s, a.leg, b.leg).unwrap();
    let transcoding = |e: &Engine| {
        e.session_stats(s)
            .unwrap()
            .legs
            .iter()
            .map(|l| l.transcoding)
            .collect::<Vec<_>>()
    };
    assert_eq!(transcoding(&e), [false, false]);

    // Both legs name a codec, and they differ: the connected pair transcodes.
    let (ca, cb) = (LegCodec::new("PCMU", 8000, 0), LegCodec::new("PCMA", 8000, 8));
    e.set_leg_codec(s, a.leg, Some(ca.clone()), 8000).unwrap();
    assert_eq!(transcoding(&e), [false, false], "one side alone changes nothing");
    e.set_leg_codec(s, b.leg, Some(cb.clone()), 8000).unwrap();
    assert_eq!(transcoding(&e), [true, true]);
    send_tone(&pa, a.rtp, &ca, 1000.0, 400);
    let (n, pcm) = receive_decoded(&pb, &cb, 40);
    assert!(n >= 10, "only {n} PCMA packets");
    assert!(tone_share(&pcm[800.min(pcm.len())..], 1000.0, 8000) > 0.8);

    // A change the engine cannot do is refused and leaves the call as it was.
    let opus30 = LegCodec::new("opus", 48000, 111).with_ptime(30);
    assert!(e.set_leg_codec(s, b.leg, Some(opus30), 48000).is_err());
    assert!(e
        .set_leg_codec(s, b.leg, Some(LegCodec::new("GSM", 8000, 3)), 8000)
        .is_err());
    assert!(e.set_leg_codec(s, LegId(9), None, 8000).is_err());
    assert!(e.set_leg_codec(s, a.leg, None, 0).is_err());
    assert_eq!(transcoding(&e), [true, true]);

    // Back to "whatever arrives": relayed untouched again.
    e.set_leg_codec(s, a.leg, None, 8000).unwrap();
    assert_eq!(transcoding(&e), [false, false]);
    std::thread::sleep(Duration::from_millis(100));
    while !recv_up_to(&pb, 1).is_empty() {}
    let p = rtp(7, 3, 3, 160);
    pa.send_to(&p, a.rtp).unwrap();
    assert_eq!(recv_up_to(&pb, 1)[0].0, p);
}
