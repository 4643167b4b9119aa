//! Relay capacity benchmark: N calls through the engine's API, 20 ms G.711
//! packets (12-byte RTP header + 160 bytes) both ways at 50 packets/s per
//! direction from a generator on 127.0.0.1; reports loss and the engine
//! workers' CPU time per relayed packet (per-thread CPU clocks).
//!
//! ```text
//! cargo run --release -p vpbx-media-engine --bin vpbx-media-bench -- \
//!     --calls 100,500,1000,2000 --seconds 10
//! cargo run --release -p vpbx-media-engine --bin vpbx-media-bench -- \
//!     --calls 100,200 --seconds 10 --codec-b opus      # transcoding PCMU <-> opus
//! cargo run --release -p vpbx-media-engine --bin vpbx-media-bench -- \
//!     --calls 1000 --seconds 20 --record /tmp/rec   # + a stereo WAV per call
//! ```
//!
//! With `--record DIR` every call is also recorded (stereo WAV, leg A left,
//! leg B right) into DIR/bench-N.wav for the whole run; the recordings are
//! stopped before the sessions are deleted and their totals printed (files
//! are left for checking). Compare with a run without it for the CPU a
//! recording costs.
//!
//! With `--codec-b` other than PCMU, leg B speaks that codec and the engine
//! transcodes; "received" then also counts the few concealment frames the
//! engine sends after the input stops (loss % can go slightly negative).
//!
//! The generator sends from a few sockets per side with sendmmsg (phones
//! would each have their own socket; the engine's side is the same either
//! way: one socket per leg port). Every loop is bounded in count and time.
//!
//! Columns: `sent`/`received` by the generator over warm-up + measurement
//! (loss % from these, after a 300 ms drain); `relay pps` and `us/pkt` over
//! the measured window only (sum of the workers' thread CPU clocks divided
//! by packets relayed); `wrk cpu%` is that CPU as a share of one core;
//! `KiB/cl` is the process RSS growth per call (user memory, not kernel
//! socket buffers); `drops` are the engine's drop counters; `late ms` and
//! `skip %` tell whether the generator kept real time (a CPU-starved
//! generator skips 1 ms send slots instead of bursting them).

mod gen;

use gen::{gen_socket, receiver, rss_kib, sender, sockaddr_in, udp_rcvbuf_errors, Stream};
use media_engine::{Engine, EngineConfig, LegCodec, LegSpec, RecordingLayout, RecordingSpec, SessionId};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    calls: Vec<usize>,
    seconds: u64,
    warmup: u64,
    workers: usize,
    gen_sockets: usize,
    port_min: u16,
    port_max: u16,
    mux: bool,
    /// Codec of leg B; leg A is PCMU. Anything but PCMU transcodes.
    codec_b: String,
    opus_complexity: u8,
    json: Option<String>,
    record: Option<std::path::PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        calls: vec![100, 500, 1000, 2000],
        seconds: 10,
        warmup: 2,
        workers: 0,
        gen_sockets: 4,
        port_min: 20000,
        port_max: 39999,
        mux: false,
        codec_b: "PCMU".into(),
        opus_complexity: 5,
        json: None,
        record: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or(format!("{k} needs a value"));
        let num = |s: String| s.parse::<u64>().map_err(|e| format!("{k}: {e}"));
        match k.as_str() {
            "--calls" => {
                a.calls = v()?
                    .split(',')
                    .map(|c| c.trim().parse().map_err(|e| format!("--calls: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--seconds" => a.seconds = num(v()?)?.clamp(1, 600),
            "--warmup" => a.warmup = num(v()?)?.min(60),
            "--workers" => a.workers = num(v()?)? as usize,
            "--gen-sockets" => a.gen_sockets = (num(v()?)? as usize).clamp(1, 64),
            "--port-min" => a.port_min = num(v()?)? as u16,
            "--port-max" => a.port_max = num(v()?)? as u16,
            "--mux" => a.mux = true,
            "--codec-b" => a.codec_b = v()?,
            "--opus-complexity" => a.opus_complexity = num(v()?)?.min(10) as u8,
            "--json" => a.json = Some(v()?),
            "--record" => a.record = Some(v()?.into()),
            "-h" | "--help" => {
                return Err(
                    "usage: vpbx-media-bench [--calls 100,500] [--seconds 10] [--warmup 2] \
                     [--workers 0] [--gen-sockets 4] [--port-min 20000] [--port-max 39999] [--mux] \
                     [--codec-b PCMU|PCMA|G722|opus] [--opus-complexity 5] [--json FILE] [--record DIR]"
                        .into(),
                )
            }
            _ => return Err(format!("unknown option {k} (try --help)")),
        }
    }
    Ok(a)
}

struct Row {
    calls: usize,
    workers: usize,
    sent: u64,
    received: u64,
    relayed_pps: f64,
    cpu_us_per_packet: f64,
    worker_cpu_pct: f64,
    rss_kib_per_call: f64,
    drops: u64,
    host_rcvbuf_errors: u64,
    gen_late_ms: f64,
    /// Share of 1 ms send slots the generator had to skip (CPU-starved).
    gen_skipped_pct: f64,
    /// Datagrams the engine received (relayed or dropped) over the run.
    engine_in: u64,
    engine_out: u64,
    /// With `--record`: files, audio seconds and bytes written, packets concealed.
    recordings: usize,
    recorded_s: f64,
    recorded_bytes: u64,
    recorded_gaps: u64,
}

fn raise_fd_limit() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/set the process's own limit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// RTP clock rate and payload type the bench uses for leg B's codec.
fn codec_b_format(name: &str) -> Result<(u32, u8), String> {
    match name.to_ascii_uppercase().as_str() {
        "PCMU" => Ok((8000, 0)),
        "PCMA" => Ok((8000, 8)),
        "G722" => Ok((8000, 9)),
        "OPUS" => Ok((48000, 111)),
        _ => Err(format!("--codec-b {name}: PCMU, PCMA, G722 or opus")),
    }
}

fn run(a: &Args, calls: usize) -> Result<Row, String> {
    let engine = Engine::start(EngineConfig {
        port_min: a.port_min,
        port_max: a.port_max,
        workers: a.workers,
        max_sessions: calls.max(1),
        opus_complexity: a.opus_complexity,
        ..EngineConfig::default()
    })
    .map_err(|e| e.to_string())?;
    let k = a.gen_sockets;
    let (ga, gb): (Vec<_>, Vec<_>) = (0..k).map(|_| (gen_socket(), gen_socket())).unzip();
    let rss0 = rss_kib();
    let (rate_b, pt_b) = codec_b_format(&a.codec_b)?;
    let transcode = !a.codec_b.eq_ignore_ascii_case("PCMU");
    let leg = |codec: Option<LegCodec>| LegSpec {
        rtcp_mux: a.mux,
        codec,
        ..LegSpec::default()
    };
    let (spec_a, spec_b) = if transcode {
        (
            leg(Some(LegCodec::new("PCMU", 8000, 0))),
            leg(Some(LegCodec::new(&a.codec_b, rate_b, pt_b))),
        )
    } else {
        (leg(None), leg(None))
    };
    let stream_a = Stream::encoded("PCMU", 8000, 0)?;
    let stream_b = Stream::encoded(&a.codec_b, rate_b, pt_b)?;
    let mut sessions: Vec<SessionId> = Vec::with_capacity(calls);
    let mut port_map = vec![0u32; 65536];
    let (mut to_a, mut to_b) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
    for i in 0..calls {
        let s = engine
            .create_session(&format!("bench-{i}"))
            .map_err(|e| e.to_string())?;
        sessions.push(s);
        let la = engine.add_leg(s, &spec_a).map_err(|e| e.to_string())?;
        let lb = engine.add_leg(s, &spec_b).map_err(|e| e.to_string())?;
        let set = |l: &media_engine::LegInfo, g: &UdpSocket| {
            engine.set_remote(s, l.leg, g.local_addr().unwrap(), None)
        };
        set(&la, &ga[i % k]).map_err(|e| e.to_string())?;
        set(&lb, &gb[i % k]).map_err(|e| e.to_string())?;
        engine.connect(s, la.leg, lb.leg).map_err(|e| e.to_string())?;
        if let Some(dir) = &a.record {
            let spec = RecordingSpec {
                path: dir.join(format!("bench-{i}.wav")),
                layout: RecordingLayout::Stereo,
                legs: Vec::new(),
                codecs: vec![
                    Some(LegCodec::new("PCMU", 8000, 0)),
                    Some(LegCodec::new(&a.codec_b, rate_b, pt_b)),
                ],
            };
            engine.start_recording(s, spec).map_err(|e| e.to_string())?;
        }
        to_a.push(sockaddr_in(la.rtp));
        to_b.push(sockaddr_in(lb.rtp));
        port_map[usize::from(la.rtp.port())] = (2 * i + 1) as u32;
        port_map[usize::from(lb.rtp.port())] = (2 * i + 2) as u32;
    }
    let port_map = Arc::new(port_map);
    let rss_per_call = (rss_kib().saturating_sub(rss0)) as f64 / calls.max(1) as f64;

    let total = Duration::from_secs(a.warmup + a.seconds);
    let ticks = total.as_millis() as u64;
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now() + Duration::from_millis(50);
    let deadline = start + total + Duration::from_secs(3);
    let clone_all = |v: &[UdpSocket]| v.iter().map(|s| s.try_clone().unwrap()).collect::<Vec<_>>();
    let receivers: Vec<_> = [clone_all(&ga), clone_all(&gb)]
        .into_iter()
        .map(|socks| {
            let (stop, port_map) = (stop.clone(), port_map.clone());
            std::thread::spawn(move || receiver(socks, port_map, stop, deadline))
        })
        .collect();
    let (sa, sb) = (clone_all(&ga), clone_all(&gb));
    let send_a = std::thread::spawn(move || sender(sa, to_a, 0, stream_a, start, ticks));
    let send_b = std::thread::spawn(move || sender(sb, to_b, 1, stream_b, start, ticks));

    std::thread::sleep((start + Duration::from_secs(a.warmup)).saturating_duration_since(Instant::now()));
    let snap = |e: &Engine| {
        let s = e.engine_stats();
        (
            s.packets_relayed,
            s.workers.iter().map(|w| w.cpu_time).sum::<Duration>(),
            Instant::now(),
        )
    };
    let (p0, c0, t0) = snap(&engine);
    let r0 = udp_rcvbuf_errors();
    std::thread::sleep((start + total).saturating_duration_since(Instant::now()));
    let (p1, c1, t1) = snap(&engine);
    let r1 = udp_rcvbuf_errors();
    let (sent_a, skip_a, late_a) = send_a.join().map_err(|_| "sender A panicked")?;
    let (sent_b, skip_b, late_b) = send_b.join().map_err(|_| "sender B panicked")?;
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Relaxed);
    let mut received = 0u64;
    for r in receivers {
        received += r
            .join()
            .map_err(|_| "receiver panicked")?
            .iter()
            .map(|&c| u64::from(c))
            .sum::<u64>();
    }
    let st = engine.engine_stats();
    let workers = st.workers.len();
    let engine_in = st.packets_relayed + st.dropped.total();
    let (mut recordings, mut recorded_s, mut recorded_bytes, mut recorded_gaps) = (0, 0.0, 0, 0);
    if a.record.is_some() {
        for &s in &sessions {
            let info = engine.stop_recording(s).map_err(|e| e.to_string())?;
            recordings += 1;
            recorded_s += info.duration.as_secs_f64();
            recorded_gaps += info.gaps_filled;
            recorded_bytes += std::fs::metadata(&info.path).map_or(0, |m| m.len());
        }
    }
    for s in sessions {
        engine.delete_session(s).map_err(|e| e.to_string())?;
    }
    let after = engine.engine_stats();
    if after.ports_used != 0 {
        return Err(format!(
            "{} ports still used after deleting every session",
            after.ports_used
        ));
    }
    let relayed = p1.saturating_sub(p0);
    let cpu = c1.saturating_sub(c0);
    let window = t1.duration_since(t0).as_secs_f64();
    Ok(Row {
        calls,
        workers,
        sent: sent_a + sent_b,
        received,
        relayed_pps: relayed as f64 / window,
        cpu_us_per_packet: if relayed > 0 {
            cpu.as_secs_f64() * 1e6 / relayed as f64
        } else {
            0.0
        },
        worker_cpu_pct: cpu.as_secs_f64() / window * 100.0,
        rss_kib_per_call: rss_per_call,
        drops: st.dropped.total() + st.receive_errors,
        host_rcvbuf_errors: r1.saturating_sub(r0),
        gen_late_ms: late_a.max(late_b).as_secs_f64() * 1e3,
        gen_skipped_pct: 100.0 * (skip_a + skip_b) as f64 / (2 * ticks).max(1) as f64,
        engine_in,
        engine_out: st.packets_relayed,
        recordings,
        recorded_s,
        recorded_bytes,
        recorded_gaps,
    })
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    raise_fd_limit();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "vpbx-media-bench: {} s measured after {} s warm-up, {} cores, {} generator sockets/side, {}, PCMU <-> {}{}",
        a.seconds,
        a.warmup,
        cores,
        a.gen_sockets,
        if a.mux { "rtcp-mux" } else { "RTP/RTCP port pairs" },
        a.codec_b,
        if a.codec_b.eq_ignore_ascii_case("PCMU") { " (relay)" } else { " (transcoding)" }
    );
    println!(
        "{:>6} {:>4} {:>10} {:>10} {:>9} {:>10} {:>8} {:>8} {:>8} {:>7} {:>7} {:>8} {:>7}",
        "calls",
        "wrk",
        "sent",
        "received",
        "loss %",
        "relay pps",
        "us/pkt",
        "wrk cpu%",
        "calls/cr",
        "KiB/cl",
        "drops",
        "late ms",
        "skip %"
    );
    let mut rows = Vec::new();
    for &calls in &a.calls {
        match run(&a, calls) {
            Ok(r) => {
                let loss = 100.0 * (1.0 - r.received as f64 / r.sent.max(1) as f64);
                println!(
                    "{:>6} {:>4} {:>10} {:>10} {:>9.4} {:>10.0} {:>8.2} {:>8.1} {:>8.0} {:>7.2} {:>7} {:>8.1} {:>7.2}",
                    r.calls,
                    r.workers,
                    r.sent,
                    r.received,
                    loss,
                    r.relayed_pps,
                    r.cpu_us_per_packet,
                    r.worker_cpu_pct,
                    r.calls as f64 / (r.worker_cpu_pct / 100.0).max(1e-9),
                    r.rss_kib_per_call,
                    r.drops,
                    r.gen_late_ms,
                    r.gen_skipped_pct
                );
                if r.received < r.sent {
                    println!(
                        "       (lost on the way in: {}, inside the engine: {}, on the way out: {})",
                        r.sent.saturating_sub(r.engine_in),
                        r.engine_in.saturating_sub(r.engine_out),
                        r.engine_out.saturating_sub(r.received)
                    );
                }
                if r.recordings > 0 {
                    println!(
                        "       (recorded {} calls: {:.1} s of audio each on average, {} bytes, {} packets concealed)",
                        r.recordings,
                        r.recorded_s / r.recordings as f64,
                        r.recorded_bytes,
                        r.recorded_gaps
                    );
                }
                if r.host_rcvbuf_errors > 0 {
                    println!(
                        "       (host UDP RcvbufErrors during the window: {})",
                        r.host_rcvbuf_errors
                    );
                }
                rows.push((r, loss));
            }
            Err(e) => {
                eprintln!("{calls} calls: {e}");
                std::process::exit(1);
            }
        }
    }
    if let Some(path) = &a.json {
        let items: Vec<String> = rows
            .iter()
            .map(|(r, loss)| {
                format!(
                    "{{\"calls\":{},\"workers\":{},\"sent\":{},\"received\":{},\"loss_pct\":{:.6},\
                     \"relayed_pps\":{:.1},\"cpu_us_per_packet\":{:.4},\"worker_cpu_pct\":{:.2},\"calls_per_core\":{:.0},\
                     \"rss_kib_per_call\":{:.3},\"engine_drops\":{},\"host_rcvbuf_errors\":{},\
                     \"generator_late_ms\":{:.2},\"generator_skipped_pct\":{:.3},\"recordings\":{},\
                     \"recorded_s\":{:.3},\"recorded_bytes\":{},\"recorded_gaps\":{}}}",
                    r.calls,
                    r.workers,
                    r.sent,
                    r.received,
                    loss,
                    r.relayed_pps,
                    r.cpu_us_per_packet,
                    r.worker_cpu_pct,
                    r.calls as f64 / (r.worker_cpu_pct / 100.0).max(1e-9),
                    r.rss_kib_per_call,
                    r.drops,
                    r.host_rcvbuf_errors,
                    r.gen_late_ms,
                    r.gen_skipped_pct,
                    r.recordings,
                    r.recorded_s,
                    r.recorded_bytes,
                    r.recorded_gaps
                )
            })
            .collect();
        let doc = format!(
            "{{\"bench\":\"vpbx-media-bench\",\"codec_b\":\"{}\",\"seconds\":{},\"warmup\":{},\"cores\":{},\"rows\":[{}]}}\n",
            a.codec_b,
            a.seconds,
            a.warmup,
            cores,
            items.join(",")
        );
        if let Err(e) = std::fs::write(path, doc) {
            eprintln!("writing {path}: {e}");
            std::process::exit(1);
        }
    }
}
