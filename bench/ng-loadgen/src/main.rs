//! ng-loadgen: drives N concurrent calls through an NG media node (vpbx media-node or
//! rtpengine) and streams 20 ms PCMU both ways at 50 packets/s per direction per call.
//!
//! ng-loadgen --ng 127.0.0.1:2223 --calls 1000 --pid PID [--warmup 3] [--seconds 10]
//!            [--sockets 16] [--label name]
//!
//! Prints one JSON object on stdout: loss, the node's CPU time per relayed packet (from
//! /proc/PID/stat utime+stime over the measurement window), the generator's own CPU, and
//! the node's RSS growth per call.

mod bencode;
mod ng;
mod rtp;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn args() -> HashMap<String, String> {
    let v: Vec<String> = std::env::args().skip(1).collect();
    v.chunks(2)
        .map(|kv| (kv[0].trim_start_matches("--").to_string(), kv.get(1).cloned().unwrap_or_default()))
        .collect()
}

fn proc_cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    if f.len() < 13 {
        return f64::NAN;
    }
    (f[11] + f[12]) as f64 / hz
}

fn proc_rss_kib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn self_cpu_s() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn raise_nofile() {
    // SAFETY: plain rlimit syscalls.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
}

fn main() {
    let a = args();
    let get = |k: &str, d: &str| a.get(k).cloned().unwrap_or_else(|| d.to_string());
    let server = get("ng", "127.0.0.1:2223").parse().expect("--ng HOST:PORT");
    let calls: usize = get("calls", "100").parse().expect("--calls N");
    let pid: u32 = get("pid", "0").parse().expect("--pid PID");
    let warmup: f64 = get("warmup", "3").parse().expect("--warmup S");
    let seconds: f64 = get("seconds", "10").parse().expect("--seconds S");
    let nsock: usize = get("sockets", "16").parse().expect("--sockets P");
    let label = get("label", "node");
    raise_nofile();

    let a_socks = Arc::new(rtp::bind_sockets(nsock, 8 << 20).expect("bind A sockets"));
    let b_socks = Arc::new(rtp::bind_sockets(nsock, 8 << 20).expect("bind B sockets"));
    let rss_before = proc_rss_kib(pid);

    // Signalling: offer (A's SDP) then answer (B's SDP) per call.
    let mut ngc = ng::Ng::new(server).expect("NG socket");
    let run = std::process::id();
    let t0 = Instant::now();
    let mut media = Vec::with_capacity(calls);
    let mut ids = Vec::with_capacity(calls);
    for i in 0..calls {
        let k = i % nsock;
        let id = format!("lg{run}-{i}");
        let off = ngc
            .request(&ng::offer(&id, &ng::sdp(rtp::port_of(&a_socks[k]), i as u32)))
            .unwrap_or_else(|e| panic!("offer {i}: {e}"));
        let b_to = off.get("sdp").and_then(bencode::Value::as_str).and_then(ng::media_target);
        let ans = ngc
            .request(&ng::answer(&id, &ng::sdp(rtp::port_of(&b_socks[k]), i as u32)))
            .unwrap_or_else(|e| panic!("answer {i}: {e}"));
        let a_to = ans.get("sdp").and_then(bencode::Value::as_str).and_then(ng::media_target);
        let (Some(a_to), Some(b_to)) = (a_to.and_then(rtp::target), b_to.and_then(rtp::target)) else {
            panic!("call {i}: no IPv4 media address in the node's SDP");
        };
        media.push(rtp::CallMedia { socket: k, a_to, b_to });
        ids.push(id);
    }
    let setup_s = t0.elapsed().as_secs_f64();

    let stop_send = Arc::new(AtomicBool::new(false));
    let stop_recv = Arc::new(AtomicBool::new(false));
    let c = Arc::new(rtp::Counters::default());
    let rx = {
        let (a, b, s, c) = (a_socks.clone(), b_socks.clone(), stop_recv.clone(), c.clone());
        std::thread::spawn(move || rtp::receiver(a, b, s, c))
    };
    let tx = {
        let (a, b, s, c) = (a_socks.clone(), b_socks.clone(), stop_send.clone(), c.clone());
        std::thread::spawn(move || rtp::sender(a, b, media, s, c))
    };

    let sum = |x: &[std::sync::atomic::AtomicU64; 2]| x[0].load(Relaxed) + x[1].load(Relaxed);
    std::thread::sleep(Duration::from_secs_f64(warmup));
    let (cpu0, gen0, sent0, recv0, w0) = (proc_cpu_s(pid), self_cpu_s(), sum(&c.sent), sum(&c.received), Instant::now());
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let (cpu1, gen1, sent1, recv1, window) =
        (proc_cpu_s(pid), self_cpu_s(), sum(&c.sent), sum(&c.received), w0.elapsed().as_secs_f64());
    let rss_during = proc_rss_kib(pid);
    stop_send.store(true, Relaxed);
    tx.join().expect("sender");
    std::thread::sleep(Duration::from_millis(1000)); // drain what is in flight
    stop_recv.store(true, Relaxed);
    rx.join().expect("receiver");

    let mut delete_errors = 0;
    for id in &ids {
        if ngc.request(&ng::delete(id)).is_err() {
            delete_errors += 1;
        }
    }

    let sent = sum(&c.sent);
    let received = sum(&c.received);
    let relayed_window = recv1 - recv0;
    let node_cpu = cpu1 - cpu0;
    let out = format!(
        concat!(
            "{{\"label\":\"{}\",\"calls\":{},\"setup_s\":{:.3},\"window_s\":{:.3},",
            "\"target_pps\":{},\"sent_pps\":{:.0},\"relayed_pps\":{:.0},",
            "\"sent\":{},\"received\":{},\"loss_pct\":{:.5},\"other_datagrams\":{},",
            "\"node_cpu_s\":{:.3},\"node_cpu_pct\":{:.1},\"node_us_per_packet\":{:.3},",
            "\"gen_cpu_pct\":{:.1},\"late_ticks\":{},\"send_failed\":{},\"node_rss_kib_per_call\":{:.1},",
            "\"delete_errors\":{}}}"
        ),
        label,
        calls,
        setup_s,
        window,
        calls * 100,
        (sent1 - sent0) as f64 / window,
        relayed_window as f64 / window,
        sent,
        received,
        if sent > 0 { 100.0 * (sent.saturating_sub(received)) as f64 / sent as f64 } else { 0.0 },
        c.other.load(Relaxed),
        node_cpu,
        100.0 * node_cpu / window,
        if relayed_window > 0 { node_cpu * 1e6 / relayed_window as f64 } else { f64::NAN },
        100.0 * (gen1 - gen0) / window,
        c.late_ticks.load(Relaxed),
        c.send_failed.load(Relaxed),
        (rss_during - rss_before) / calls as f64,
        delete_errors,
    );
    println!("{out}");
}
