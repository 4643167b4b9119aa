//! The load generator: paced RTP senders and polling receivers on
//! 127.0.0.1, plus the host figures the report needs. Every loop is
//! bounded in count and time.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const SLOTS: u64 = 20; // calls are spread over the 20 ms period, 1 ms apart
const BATCH: usize = 64;
const MAX_PACKET: usize = 1500;

/// A generator socket with a receive buffer big enough for bursts.
pub fn gen_socket() -> UdpSocket {
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

pub fn sockaddr_in(a: SocketAddr) -> libc::sockaddr_in {
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

/// What one side of every call sends: RTP of one codec, with payloads
/// encoded once and cycled (the engine never looks inside them unless it
/// transcodes, and then any valid frame will do).
pub struct Stream {
    pub payload_type: u8,
    /// RTP clock units per packet.
    pub ts_step: u32,
    pub payloads: Vec<Vec<u8>>,
}

impl Stream {
    /// 20 ms packets of `name` carrying a 440 Hz tone (one second's worth).
    pub fn encoded(name: &str, clock_rate: u32, payload_type: u8) -> Result<Stream, String> {
        use media_core::codec;
        let mut enc =
            codec::encoder(name, clock_rate, 1, &codec::Params::new()).map_err(|e| e.to_string())?;
        let rate = enc.sample_rate() as usize;
        let frame = rate / 50;
        let payloads = (0..50)
            .map(|i| {
                let pcm: Vec<i16> = (i * frame..(i + 1) * frame)
                    .map(|n| ((n as f64 * 440.0 * std::f64::consts::TAU / rate as f64).sin() * 8000.0) as i16)
                    .collect();
                let mut out = Vec::new();
                enc.encode(&pcm, &mut out).map(|_| out).map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Stream {
            payload_type,
            ts_step: clock_rate / 50,
            payloads,
        })
    }
}

/// Packets queued for one sendmmsg call.
struct SendBatch {
    bufs: Vec<[u8; MAX_PACKET]>,
    lens: Vec<usize>,
    addrs: Vec<libc::sockaddr_in>,
    len: usize,
}

impl SendBatch {
    fn new() -> Self {
        SendBatch {
            bufs: vec![[0; MAX_PACKET]; BATCH],
            lens: vec![0; BATCH],
            addrs: vec![sockaddr_in("127.0.0.1:9".parse().unwrap()); BATCH],
            len: 0,
        }
    }

    /// Queues an RTP packet for call `call`, direction `dir`, sequence `seq`.
    fn push(&mut self, dest: libc::sockaddr_in, call: usize, dir: u32, seq: u16, stream: &Stream) {
        let b = &mut self.bufs[self.len];
        let ssrc = (call as u32) * 2 + dir;
        let payload = &stream.payloads[usize::from(seq) % stream.payloads.len()];
        let n = (12 + payload.len()).min(MAX_PACKET);
        b[0] = 0x80;
        b[1] = stream.payload_type;
        b[2..4].copy_from_slice(&seq.to_be_bytes());
        b[4..8].copy_from_slice(&u32::from(seq).wrapping_mul(stream.ts_step).to_be_bytes());
        b[8..12].copy_from_slice(&ssrc.to_be_bytes());
        b[12..n].copy_from_slice(&payload[..n - 12]);
        self.lens[self.len] = n;
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
        // SAFETY: iovec and mmsghdr are plain old data; all-zero is valid.
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..n {
            iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: self.lens[i],
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
pub fn sender(
    socks: Vec<UdpSocket>,
    dests: Vec<libc::sockaddr_in>,
    dir: u32,
    stream: Stream,
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
            batches[g].push(dests[call], call, dir, seq, &stream);
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

/// Counts packets per (call, direction) on `socks` until `stop` (and the
/// sockets are empty) or `deadline`. A packet is told by the engine port it
/// came from (`port_map[port]` = index + 1; transcoded streams carry the
/// engine's own SSRCs). The sockets are polled (non-blocking recvmmsg,
/// 1 ms naps when all are empty) rather than waited on: a thread blocked in
/// recv would be woken by every packet the engine sends, and on loopback
/// that wake-up is charged to the engine's send call, which a NIC would not.
pub fn receiver(
    socks: Vec<UdpSocket>,
    port_map: Arc<Vec<u32>>,
    stop: Arc<AtomicBool>,
    deadline: Instant,
) -> Vec<u32> {
    let slots = port_map.iter().copied().max().unwrap_or(0) as usize + 1;
    let mut counts = vec![0u32; slots];
    let mut bufs = vec![[0u8; 256]; BATCH];
    // SAFETY: sockaddr_in, iovec and mmsghdr are plain old data; all-zero is valid.
    let mut addrs: Vec<libc::sockaddr_in> = (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
    let mut iovs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    let mut hdrs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
    for ((h, iov), a) in hdrs.iter_mut().zip(iovs.iter_mut()).zip(addrs.iter_mut()) {
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
        h.msg_hdr.msg_name = (a as *mut libc::sockaddr_in).cast();
    }
    while Instant::now() < deadline {
        let mut got = 0;
        for s in &socks {
            for _ in 0..64 {
                for h in hdrs.iter_mut() {
                    h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
                }
                // SAFETY: hdrs point at live iovecs, buffers and addresses.
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
                for a in addrs.iter().take(n as usize) {
                    let port = usize::from(u16::from_be(a.sin_port));
                    let idx = port_map.get(port).copied().unwrap_or(0) as usize;
                    if let Some(c) = counts.get_mut(idx) {
                        *c += 1;
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

pub fn rss_kib() -> u64 {
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
pub fn udp_rcvbuf_errors() -> u64 {
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
