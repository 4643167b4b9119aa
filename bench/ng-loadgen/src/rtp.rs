//! The media side: P sockets per side, 20 ms PCMU (12-byte RTP header + 160 bytes) from
//! every call in both directions, batched with sendmmsg; a receiver on epoll + recvmmsg
//! counting what the node relayed back to us.

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const PACKET: usize = 172;
const SLICES: u32 = 10; // calls are spread over 10 sub-ticks of 2 ms
const BATCH: usize = 64;

#[derive(Default)]
pub struct Counters {
    pub sent: [AtomicU64; 2],
    pub received: [AtomicU64; 2],
    /// Datagrams that are not our RTP or arrived on the wrong side (e.g. RTCP from the node).
    pub other: AtomicU64,
    pub late_ticks: AtomicU64,
    /// Packets sendmmsg refused (EAGAIN: our socket buffer full); not counted as sent.
    pub send_failed: AtomicU64,
}

/// One call's media: which socket each side sends from and where it sends to.
#[derive(Clone, Copy)]
pub struct CallMedia {
    pub socket: usize,
    pub a_to: SocketAddrV4, // where A sends (the port the answer's SDP names)
    pub b_to: SocketAddrV4, // where B sends (the port the offer's SDP names)
}

pub fn bind_sockets(n: usize, buf_bytes: i32) -> std::io::Result<Vec<UdpSocket>> {
    (0..n)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0")?;
            s.set_nonblocking(true)?;
            for (force, plain) in [(libc::SO_RCVBUFFORCE, libc::SO_RCVBUF), (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF)] {
                let v = buf_bytes;
                let p = &v as *const i32 as *const libc::c_void;
                let len = std::mem::size_of::<i32>() as libc::socklen_t;
                // SAFETY: valid fd, pointer to an i32 of the given length.
                unsafe {
                    if libc::setsockopt(s.as_raw_fd(), libc::SOL_SOCKET, force, p, len) != 0 {
                        libc::setsockopt(s.as_raw_fd(), libc::SOL_SOCKET, plain, p, len);
                    }
                }
            }
            Ok(s)
        })
        .collect()
}

pub fn port_of(s: &UdpSocket) -> u16 {
    s.local_addr().map(|a| a.port()).unwrap_or(0)
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*a.ip()).to_be() },
        sin_zero: [0; 8],
    }
}

struct Stream {
    ssrc: u32,
    dest: libc::sockaddr_in,
}

/// Sends until `stop`: every 20 ms one packet per call per direction.
pub fn sender(
    a: Arc<Vec<UdpSocket>>,
    b: Arc<Vec<UdpSocket>>,
    calls: Vec<CallMedia>,
    stop: Arc<AtomicBool>,
    c: Arc<Counters>,
) {
    // groups[slice][socket][dir] -> streams
    let p = a.len();
    let mut groups: Vec<Vec<[Vec<Stream>; 2]>> =
        (0..SLICES).map(|_| (0..p).map(|_| [Vec::new(), Vec::new()]).collect()).collect();
    for (i, m) in calls.iter().enumerate() {
        let g = &mut groups[i % SLICES as usize][m.socket];
        g[0].push(Stream { ssrc: (i as u32) << 1, dest: sockaddr(m.a_to) });
        g[1].push(Stream { ssrc: ((i as u32) << 1) | 1, dest: sockaddr(m.b_to) });
    }
    let mut bufs = vec![[0xffu8; PACKET]; BATCH];
    for buf in bufs.iter_mut() {
        buf[0] = 0x80; // V=2
        buf[1] = 0; // PT 0 (PCMU)
    }
    let start = Instant::now();
    let slice = Duration::from_millis(20) / SLICES;
    let mut tick: u64 = 0;
    while !stop.load(Relaxed) {
        let s = (tick % SLICES as u64) as usize;
        let round = tick / SLICES as u64; // packet number of each stream
        let seq = (round as u16).to_be_bytes();
        let ts = ((round as u32).wrapping_mul(160)).to_be_bytes();
        for (sock_i, dirs) in groups[s].iter().enumerate() {
            for (dir, streams) in dirs.iter().enumerate() {
                let fd = if dir == 0 { a[sock_i].as_raw_fd() } else { b[sock_i].as_raw_fd() };
                for chunk in streams.chunks(BATCH) {
                    let mut iov: Vec<libc::iovec> = Vec::with_capacity(chunk.len());
                    let mut hdrs: Vec<libc::mmsghdr> = Vec::with_capacity(chunk.len());
                    for (k, st) in chunk.iter().enumerate() {
                        let buf = &mut bufs[k];
                        buf[2..4].copy_from_slice(&seq);
                        buf[4..8].copy_from_slice(&ts);
                        buf[8..12].copy_from_slice(&st.ssrc.to_be_bytes());
                        iov.push(libc::iovec { iov_base: buf.as_mut_ptr() as *mut _, iov_len: PACKET });
                    }
                    for (k, st) in chunk.iter().enumerate() {
                        // SAFETY: zeroed msghdr is valid; pointers outlive the syscall below.
                        let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                        h.msg_hdr.msg_name = &st.dest as *const _ as *mut _;
                        h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
                        h.msg_hdr.msg_iov = &mut iov[k];
                        h.msg_hdr.msg_iovlen = 1;
                        hdrs.push(h);
                    }
                    let mut done = 0;
                    while done < hdrs.len() {
                        // SAFETY: hdrs[done..] are valid mmsghdrs.
                        let n = unsafe {
                            libc::sendmmsg(fd, hdrs.as_mut_ptr().add(done), (hdrs.len() - done) as u32, 0)
                        };
                        if n <= 0 {
                            break; // EAGAIN: the socket buffer is full; count as not sent
                        }
                        done += n as usize;
                    }
                    c.sent[dir].fetch_add(done as u64, Relaxed);
                    c.send_failed.fetch_add((hdrs.len() - done) as u64, Relaxed);
                }
            }
        }
        tick += 1;
        let next = start + slice * tick as u32;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > slice {
            c.late_ticks.fetch_add(1, Relaxed);
        }
    }
}

/// Receives on all sockets until `stop`; A-side sockets should only get B->A (dir 1) packets.
pub fn receiver(a: Arc<Vec<UdpSocket>>, b: Arc<Vec<UdpSocket>>, stop: Arc<AtomicBool>, c: Arc<Counters>) {
    // SAFETY: plain epoll syscalls on fds we own for the whole loop.
    let ep = unsafe { libc::epoll_create1(0) };
    let socks: Vec<(i32, usize)> = a
        .iter()
        .map(|s| (s.as_raw_fd(), 1usize))
        .chain(b.iter().map(|s| (s.as_raw_fd(), 0usize)))
        .collect();
    for (k, (fd, _)) in socks.iter().enumerate() {
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: k as u64 };
        unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, *fd, &mut ev) };
    }
    let mut bufs = vec![[0u8; 2048]; BATCH];
    let mut iov: Vec<libc::iovec> =
        bufs.iter_mut().map(|b| libc::iovec { iov_base: b.as_mut_ptr() as *mut _, iov_len: 2048 }).collect();
    let mut hdrs: Vec<libc::mmsghdr> = (0..BATCH)
        .map(|k| {
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = &mut iov[k];
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 64];
    while !stop.load(Relaxed) {
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 100) };
        for e in events.iter().take(n.max(0) as usize) {
            let (fd, want_dir) = socks[e.u64 as usize];
            loop {
                let got = unsafe {
                    libc::recvmmsg(fd, hdrs.as_mut_ptr(), BATCH as u32, libc::MSG_DONTWAIT, std::ptr::null_mut())
                };
                if got <= 0 {
                    break;
                }
                let (mut ok, mut bad) = (0u64, 0u64);
                for (k, h) in hdrs.iter().take(got as usize).enumerate() {
                    let buf = &bufs[k];
                    if h.msg_len as usize == PACKET && buf[1] & 0x7f == 0 {
                        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
                        if (ssrc & 1) as usize == want_dir {
                            ok += 1;
                        } else {
                            bad += 1;
                        }
                    } else {
                        bad += 1;
                    }
                }
                c.received[want_dir].fetch_add(ok, Relaxed);
                c.other.fetch_add(bad, Relaxed);
                if (got as usize) < BATCH {
                    break;
                }
            }
        }
    }
    unsafe { libc::close(ep) };
}

pub fn target(addr: SocketAddr) -> Option<SocketAddrV4> {
    match addr {
        SocketAddr::V4(a) => Some(a),
        SocketAddr::V6(_) => None,
    }
}
