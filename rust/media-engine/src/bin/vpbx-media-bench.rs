//! Relay capacity benchmark: N calls through the engine's API, 20 ms G.711
//! packets (12-byte RTP header + 160 bytes) both ways at 50 packets/s per
//! direction from a generator on 127.0.0.1; reports loss and the engine
//! workers' CPU time per relayed packet (per-thread CPU clocks).
//!
//! ```text
//! cargo run --release -p vpbx-media-engine --bin vpbx-media-bench -- \
//!     --calls 100,500,1000,2000 --seconds 10
//! ```
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

use media_engine::{Engine, EngineConfig, LegSpec, SessionId};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PACKET: usize = 172; // 20 ms of G.711 + RTP header
const SLOTS: u64 = 20; // calls are spread over the 20 ms period, 1 ms apart
const BATCH: usize = 64;

struct Args {
    calls: Vec<usize>,
    seconds: u64,
    warmup: u64,
    workers: usize,
    gen_sockets: usize,
    port_min: u16,
    port_max: u16,
    mux: bool,
    json: Option<String>,
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
        json: None,
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
            "--json" => a.json = Some(v()?),
            "-h" | "--help" => {
                return Err(
                    "usage: vpbx-media-bench [--calls 100,500] [--seconds 10] [--warmup 2] \
                     [--workers 0] [--gen-sockets 4] [--port-min 20000] [--port-max 39999] [--mux] \
                     [--json FILE]"
                        .into(),
                )
            }
            _ => return Err(format!("unknown option {k} (try --help)")),
        }
    }
    Ok(a)
}

/// A generator socket with a receive buffer big enough for bursts.
fn gen_socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind generator socket");
    let size: libc::c_int = 16 << 20;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: setsockopt with a valid int option value.
        let r = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            break;
        }
    }
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    s
}

fn sockaddr_in(a: SocketAddr) -> libc::sockaddr_in {
    let SocketAddr::V4(a) = a else {
        panic!("the bench runs on IPv4 loopback")
    };
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

/// Packets queued for one sendmmsg call.
struct SendBatch {
    bufs: Vec<[u8; PACKET]>,
    addrs: Vec<libc::sockaddr_in>,
    len: usize,
}

impl SendBatch {
    fn new() -> Self {
        SendBatch {
            bufs: vec![[0xff; PACKET]; BATCH],
            addrs: vec![sockaddr_in("127.0.0.1:9".parse().unwrap()); BATCH],
            len: 0,
        }
    }

    /// Queues an RTP packet for call `call`, direction `dir`, sequence `seq`.
    fn push(&mut self, dest: libc::sockaddr_in, call: usize, dir: u32, seq: u16) {
        let b = &mut self.bufs[self.len];
        let ssrc = (call as u32) * 2 + dir;
        b[0] = 0x80;
        b[1] = 0; // PCMU
        b[2..4].copy_from_slice(&seq.to_be_bytes());
        b[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        b[8..12].copy_from_slice(&ssrc.to_be_bytes());
        self.addrs[self.len] = dest;
        self.len += 1;
    }

    /// Sends what is queued; returns how many went out.
    fn flush(&mut self, fd: i32) -> u64 {
        let n = self.len;
        self.len = 0;
        if n == 0 {
            return 0;
        }
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..n {
            iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: PACKET,
            };
            hdrs[i].msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_in).cast();
            hdrs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        let mut sent = 0;
        for _ in 0..4 {
            // SAFETY: hdrs[sent..n] point into live buffers of self and iovs.
            let r = unsafe { libc::sendmmsg(fd, hdrs[sent..n].as_mut_ptr(), (n - sent) as u32, 0) };
            if r <= 0 {
                break;
            }
            sent += r as usize;
            if sent == n {
                break;
            }
        }
        sent as u64
    }
}

/// Sends one direction of every call: call `i` in 1 ms slot `i % 20`, at
/// real-time pace. A generator that falls more than one packet time behind
/// (starved of CPU) skips the missed slots instead of bursting them, so the
/// offered load never exceeds real time; skipped slots are counted.
/// Returns (packets sent, slots skipped, worst lateness behind schedule).
fn sender(
    socks: Vec<UdpSocket>,
    dests: Vec<libc::sockaddr_in>,
    dir: u32,
    start: Instant,
    ticks: u64,
) -> (u64, u64, Duration) {
    let k = socks.len();
    let mut batches: Vec<SendBatch> = (0..k).map(|_| SendBatch::new()).collect();
    let (mut sent, mut skipped, mut worst) = (0u64, 0u64, Duration::ZERO);
    let mut tick = 0;
    while tick < ticks {
        let due = start + Duration::from_millis(tick);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else {
            let late = now - due;
            worst = worst.max(late);
            if late > Duration::from_millis(SLOTS) {
                let behind = (late.as_millis() as u64).min(ticks - tick);
                skipped += behind;
                tick += behind;
                continue;
            }
        }
        let seq = (tick / SLOTS) as u16;
        for call in ((tick % SLOTS) as usize..dests.len()).step_by(SLOTS as usize) {
            let g = call % k;
            batches[g].push(dests[call], call, dir, seq);
            if batches[g].len == BATCH {
                sent += batches[g].flush(socks[g].as_raw_fd());
            }
        }
        for (b, s) in batches.iter_mut().zip(&socks) {
            sent += b.flush(s.as_raw_fd());
        }
        tick += 1;
    }
    (sent, skipped, worst)
}

/// Counts packets per (call, direction) by SSRC on `socks` until `stop`
/// (and the sockets are empty) or `deadline`. The sockets are polled
/// (non-blocking recvmmsg, 1 ms naps when all are empty) rather than waited
/// on: a thread blocked in recv would be woken by every packet the engine
/// sends, and on loopback that wake-up is charged to the engine's send
/// call, which a NIC would not do.
fn receiver(socks: Vec<UdpSocket>, calls: usize, stop: Arc<AtomicBool>, deadline: Instant) -> Vec<u32> {
    let mut counts = vec![0u32; calls * 2];
    let mut bufs = vec![[0u8; 256]; BATCH];
    let mut iovs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: mmsghdr is plain old data; all-zero is valid.
    let mut hdrs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (h, iov) in hdrs.iter_mut().zip(iovs.iter_mut()) {
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
    }
    while Instant::now() < deadline {
        let mut got = 0;
        for s in &socks {
            for _ in 0..64 {
                // SAFETY: hdrs point at live iovecs over live buffers.
                let n = unsafe {
                    libc::recvmmsg(
                        s.as_raw_fd(),
                        hdrs.as_mut_ptr(),
                        BATCH as u32,
                        libc::MSG_DONTWAIT,
                        std::ptr::null_mut(),
                    )
                };
                if n <= 0 {
                    break;
                }
                for (h, b) in hdrs.iter().zip(&bufs).take(n as usize) {
                    if h.msg_len >= 12 {
                        let ssrc = u32::from_be_bytes([b[8], b[9], b[10], b[11]]) as usize;
                        if let Some(c) = counts.get_mut(ssrc) {
                            *c += 1;
                        }
                    }
                }
                got += n as usize;
                if (n as usize) < BATCH {
                    break;
                }
            }
        }
        if got == 0 {
            if stop.load(Relaxed) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    counts
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// UDP receive-buffer overflows on the whole host (/proc/net/snmp).
fn udp_rcvbuf_errors() -> u64 {
    let s = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut lines = s.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(h), Some(v)) = (lines.next(), lines.next()) else {
        return 0;
    };
    h.split_whitespace()
        .zip(v.split_whitespace())
        .find(|(k, _)| *k == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
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

fn run(a: &Args, calls: usize) -> Result<Row, String> {
    let engine = Engine::start(EngineConfig {
        port_min: a.port_min,
        port_max: a.port_max,
        workers: a.workers,
        max_sessions: calls.max(1),
        ..EngineConfig::default()
    })
    .map_err(|e| e.to_string())?;
    let k = a.gen_sockets;
    let (ga, gb): (Vec<_>, Vec<_>) = (0..k).map(|_| (gen_socket(), gen_socket())).unzip();
    let rss0 = rss_kib();
    let spec = LegSpec {
        rtcp_mux: a.mux,
        ..LegSpec::default()
    };
    let mut sessions: Vec<SessionId> = Vec::with_capacity(calls);
    let (mut to_a, mut to_b) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
    for i in 0..calls {
        let s = engine
            .create_session(&format!("bench-{i}"))
            .map_err(|e| e.to_string())?;
        sessions.push(s);
        let la = engine.add_leg(s, &spec).map_err(|e| e.to_string())?;
        let lb = engine.add_leg(s, &spec).map_err(|e| e.to_string())?;
        let set = |l: &media_engine::LegInfo, g: &UdpSocket| {
            engine.set_remote(s, l.leg, g.local_addr().unwrap(), None)
        };
        set(&la, &ga[i % k]).map_err(|e| e.to_string())?;
        set(&lb, &gb[i % k]).map_err(|e| e.to_string())?;
        engine.connect(s, la.leg, lb.leg).map_err(|e| e.to_string())?;
        to_a.push(sockaddr_in(la.rtp));
        to_b.push(sockaddr_in(lb.rtp));
    }
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
            let stop = stop.clone();
            std::thread::spawn(move || receiver(socks, calls, stop, deadline))
        })
        .collect();
    let (sa, sb) = (clone_all(&ga), clone_all(&gb));
    let send_a = std::thread::spawn(move || sender(sa, to_a, 0, start, ticks));
    let send_b = std::thread::spawn(move || sender(sb, to_b, 1, start, ticks));

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
        "vpbx-media-bench: {} s measured after {} s warm-up, {} cores, {} generator sockets/side, {}",
        a.seconds,
        a.warmup,
        cores,
        a.gen_sockets,
        if a.mux { "rtcp-mux" } else { "RTP/RTCP port pairs" }
    );
    println!(
        "{:>6} {:>4} {:>10} {:>10} {:>9} {:>10} {:>8} {:>8} {:>7} {:>7} {:>8} {:>7}",
        "calls",
        "wrk",
        "sent",
        "received",
        "loss %",
        "relay pps",
        "us/pkt",
        "wrk cpu%",
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
                    "{:>6} {:>4} {:>10} {:>10} {:>9.4} {:>10.0} {:>8.2} {:>8.1} {:>7.2} {:>7} {:>8.1} {:>7.2}",
                    r.calls,
                    r.workers,
                    r.sent,
                    r.received,
                    loss,
                    r.relayed_pps,
                    r.cpu_us_per_packet,
                    r.worker_cpu_pct,
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
                     \"relayed_pps\":{:.1},\"cpu_us_per_packet\":{:.4},\"worker_cpu_pct\":{:.2},\
                     \"rss_kib_per_call\":{:.3},\"engine_drops\":{},\"host_rcvbuf_errors\":{},\
                     \"generator_late_ms\":{:.2},\"generator_skipped_pct\":{:.3}}}",
                    r.calls,
                    r.workers,
                    r.sent,
                    r.received,
                    loss,
                    r.relayed_pps,
                    r.cpu_us_per_packet,
                    r.worker_cpu_pct,
                    r.rss_kib_per_call,
                    r.drops,
                    r.host_rcvbuf_errors,
                    r.gen_late_ms,
                    r.gen_skipped_pct
                )
            })
            .collect();
        let doc = format!(
            "{{\"bench\":\"vpbx-media-bench\",\"seconds\":{},\"warmup\":{},\"cores\":{},\"rows\":[{}]}}\n",
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
