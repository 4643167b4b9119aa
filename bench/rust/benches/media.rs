//! Nanoseconds per 20 ms frame for the media core's hot operations.
use audiopus_sys as ffi;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use media_core::codec::{self, Params};
use media_core::jitter::{JitterBuffer, JitterConfig};
use media_core::mixer::Mixer;
use media_core::resample::Resampler;
use media_core::rtp::{RtpPacket, RtpView};
use std::hint::black_box;

fn sine(rate: u32, n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / f64::from(rate)).sin()) as i16)
        .collect()
}

fn codecs(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec_20ms");
    g.throughput(Throughput::Elements(1));
    for (name, clock, pcm_rate, params) in [
        ("PCMU", 8000, 8000, vec![]),
        ("PCMA", 8000, 8000, vec![]),
        ("G722", 8000, 16000, vec![]),
        ("opus", 48000, 48000, vec![("complexity", 5)]),
        (
            "opus",
            48000,
            16000,
            vec![("sample_rate", 16000), ("complexity", 5)],
        ),
    ] {
        let mut p = Params::new();
        for (k, v) in &params {
            p.insert((*k).to_string(), *v);
        }
        let mut dp = Params::new();
        if let Some(sr) = p.get("sample_rate") {
            dp.insert("sample_rate".into(), *sr);
        }
        let label = format!("{name}@{pcm_rate}");
        let frame = sine(pcm_rate, pcm_rate as usize / 50);
        let mut enc = codec::encoder(name, clock, 1, &p).unwrap();
        let mut dec = codec::decoder(name, clock, 1, &dp).unwrap();
        // Decode a steady-state packet (the 50th frame of the tone), the same one
        // bench/binding_speed.py decodes, so the two measurements compare.
        let mut payload = Vec::with_capacity(4000);
        for _ in 0..50 {
            payload.clear();
            enc.encode(&frame, &mut payload).unwrap();
        }
        let packet = payload.clone();
        let mut out = Vec::with_capacity(frame.len() * 2);
        g.bench_function(format!("{label}/encode"), |b| {
            b.iter(|| {
                payload.clear();
                enc.encode(black_box(&frame), &mut payload).unwrap();
            })
        });
        g.bench_function(format!("{label}/decode"), |b| {
            b.iter(|| {
                out.clear();
                dec.decode(black_box(&packet), &mut out).unwrap();
            })
        });
        g.bench_function(format!("{label}/encode+decode"), |b| {
            b.iter(|| {
                payload.clear();
                out.clear();
                enc.encode(black_box(&frame), &mut payload).unwrap();
                dec.decode(&payload, &mut out).unwrap();
            })
        });
    }
    g.finish();
}

/// libopus called directly, to measure what our wrapper adds.
fn raw_opus(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec_20ms");
    for rate in [48000i32, 16000] {
        let frame = sine(rate as u32, rate as usize / 50);
        let mut err = 0;
        // SAFETY: plain libopus calls with valid buffers.
        unsafe {
            let enc = ffi::opus_encoder_create(rate, 1, ffi::OPUS_APPLICATION_VOIP, &mut err);
            ffi::opus_encoder_ctl(enc, ffi::OPUS_SET_COMPLEXITY_REQUEST, 5);
            ffi::opus_encoder_ctl(enc, ffi::OPUS_SET_INBAND_FEC_REQUEST, 0);
            ffi::opus_encoder_ctl(enc, ffi::OPUS_SET_PACKET_LOSS_PERC_REQUEST, 0);
            ffi::opus_encoder_ctl(enc, ffi::OPUS_SET_DTX_REQUEST, 0);
            let dec = ffi::opus_decoder_create(rate, 1, &mut err);
            let mut buf = vec![0u8; 4000];
            let mut pcm = vec![0i16; 5760];
            let mut n = 0;
            for _ in 0..50 {
                n = ffi::opus_encode(enc, frame.as_ptr(), frame.len() as i32, buf.as_mut_ptr(), 4000);
            }
            let packet = buf[..n as usize].to_vec();
            g.bench_function(format!("opus@{rate}/raw-libopus-encode"), |b| {
                b.iter(|| {
                    ffi::opus_encode(
                        enc,
                        black_box(frame.as_ptr()),
                        frame.len() as i32,
                        buf.as_mut_ptr(),
                        4000,
                    )
                })
            });
            g.bench_function(format!("opus@{rate}/raw-libopus-decode"), |b| {
                b.iter(|| ffi::opus_decode(dec, black_box(packet.as_ptr()), n, pcm.as_mut_ptr(), 5760, 0))
            });
            ffi::opus_encoder_destroy(enc);
            ffi::opus_decoder_destroy(dec);
        }
    }
    g.finish();
}

fn dsp(c: &mut Criterion) {
    let mut g = c.benchmark_group("dsp_20ms");
    for (a, b_rate) in [(8000u32, 48000u32), (48000, 8000), (8000, 16000), (16000, 8000)] {
        let mut r = Resampler::new(a, b_rate, 1).unwrap();
        let frame = sine(a, a as usize / 50);
        let mut out = Vec::with_capacity(2000);
        g.bench_function(format!("resample {a}->{b_rate}"), |b| {
            b.iter(|| {
                out.clear();
                r.process(black_box(&frame), &mut out).unwrap();
            })
        });
    }
    for n in [3usize, 10] {
        let mut m = Mixer::new(160);
        let frames: Vec<Vec<i16>> = (0..n).map(|_| sine(8000, 160)).collect();
        let inputs: Vec<Option<&[i16]>> = frames.iter().map(|f| Some(f.as_slice())).collect();
        let mut outs = vec![Vec::new(); n];
        g.bench_function(format!("mix {n} parties"), |b| {
            b.iter(|| m.mix(black_box(&inputs), &mut outs).unwrap())
        });
    }
    let pkt = {
        let mut v = vec![0x80, 0, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4];
        v.extend_from_slice(&[0xFF; 160]);
        v
    };
    // Jitter buffer: one push and one pop per 20 ms frame of a PCMU stream.
    let payload = {
        let mut enc = codec::encoder("PCMU", 8000, 1, &Params::new()).unwrap();
        let mut p = Vec::new();
        enc.encode(&sine(8000, 160), &mut p).unwrap();
        p
    };
    let cfg = JitterConfig {
        payload_type: Some(media_core::PayloadType(0)),
        ..JitterConfig::default()
    };
    let mut jb = JitterBuffer::new(cfg, codec::decoder("PCMU", 8000, 1, &Params::new()).unwrap()).unwrap();
    let mut i: u32 = 0;
    let mut pkt = RtpPacket {
        payload_type: media_core::PayloadType(0),
        ssrc: media_core::Ssrc(1),
        payload,
        ..RtpPacket::default()
    }
    .to_bytes()
    .unwrap();
    let mut out = Vec::with_capacity(200);
    g.bench_function("jitter push+pop PCMU", |b| {
        b.iter(|| {
            // Sequence number and timestamp patched in place (RFC 3550 §5.1 offsets).
            pkt[2..4].copy_from_slice(&(i as u16).to_be_bytes());
            pkt[4..8].copy_from_slice(&i.wrapping_mul(160).to_be_bytes());
            let t = f64::from(i) * 20.0;
            jb.push(&pkt, t).unwrap();
            out.clear();
            jb.pop(t + 1.0, &mut out).unwrap();
            i = i.wrapping_add(1);
        })
    });
    g.bench_function("rtp parse", |b| {
        b.iter(|| RtpView::parse(black_box(&pkt)).unwrap().payload().len())
    });
    g.finish();
}

criterion_group!(benches, codecs, raw_opus, dsp);
criterion_main!(benches);
