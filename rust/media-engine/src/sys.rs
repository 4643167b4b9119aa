//! The engine's only `unsafe` code: batched datagram I/O with
//! recvmmsg(2)/sendmmsg(2), the event descriptor (eventfd(2)) and per-thread
//! CPU clocks. Everything here is Linux-specific.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Datagrams received per recvmmsg call at most.
pub const BATCH: usize = 32;
/// Receive buffer per datagram. Larger datagrams are truncated by the
/// kernel (MSG_TRUNC) and dropped as oversize: audio RTP is far smaller.
pub const MAX_PACKET: usize = 2048;

/// A socket address in the kernel's form, converted once per destination.
#[derive(Clone, Copy)]
pub struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl RawAddr {
    pub fn new(addr: SocketAddr) -> Self {
        // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
        let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
        let len = match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
                size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: as above, for sockaddr_in6.
                unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
                size_of::<libc::sockaddr_in6>()
            }
        };
        RawAddr {
            storage,
            len: len as libc::socklen_t,
        }
    }
}

/// Reads a socket address the kernel wrote; `None` for other families.
fn from_storage(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(storage.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Fixed receive buffers plus the kernel headers that point into them.
/// Allocated once per worker; the packet path never allocates.
pub struct Batch {
    bufs: [[u8; MAX_PACKET]; BATCH],
    addrs: [libc::sockaddr_storage; BATCH],
    iovs: [libc::iovec; BATCH],
    hdrs: [libc::mmsghdr; BATCH],
    send_iovs: [libc::iovec; BATCH],
    send_hdrs: [libc::mmsghdr; BATCH],
    received: usize,
}

// SAFETY: the raw pointers inside only ever point into the same heap block,
// which moves between threads as a whole.
unsafe impl Send for Batch {}

/// One received datagram.
pub struct Datagram<'a> {
    pub data: &'a [u8],
    pub from: Option<SocketAddr>,
    /// The datagram was longer than [`MAX_PACKET`] and got cut.
    pub truncated: bool,
}

impl Batch {
    /// Boxed so the self-pointers set up here stay valid.
    pub fn new() -> Box<Batch> {
        let layout = std::alloc::Layout::new::<Batch>();
        // SAFETY: every field is plain old data (byte arrays, C structs with
        // integer/pointer fields, a usize) for which all-zero is valid; the
        // block is allocated on the heap directly (no 70 KiB stack temporary)
        // with Batch's layout, as Box::from_raw requires.
        let mut b: Box<Batch> = unsafe {
            let p = std::alloc::alloc_zeroed(layout).cast::<Batch>();
            if p.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            Box::from_raw(p)
        };
        for i in 0..BATCH {
            b.iovs[i] = libc::iovec {
                iov_base: b.bufs[i].as_mut_ptr().cast(),
                iov_len: MAX_PACKET,
            };
            let iov = &mut b.iovs[i] as *mut libc::iovec;
            let name = &mut b.addrs[i] as *mut libc::sockaddr_storage;
            let h = &mut b.hdrs[i].msg_hdr;
            h.msg_name = name.cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = iov;
            h.msg_iovlen = 1;
        }
        b
    }

    /// Receives up to [`BATCH`] datagrams without blocking. `Ok(0)` never
    /// happens for UDP; an empty socket gives `WouldBlock`.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        // The kernel shrinks msg_namelen to the address it wrote: restore it
        // for the entries the previous call used.
        for h in &mut self.hdrs[..self.received] {
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_flags = 0;
        }
        self.received = 0;
        // SAFETY: hdrs holds BATCH valid headers pointing into self, which
        // is borrowed mutably for the duration of the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.received = (n as usize).min(BATCH);
        Ok(self.received)
    }

    /// Datagram `i` of the last [`Batch::recv`] (`i` < its result).
    pub fn get(&self, i: usize) -> Option<Datagram<'_>> {
        if i >= self.received {
            return None;
        }
        let h = &self.hdrs[i];
        let len = (h.msg_len as usize).min(MAX_PACKET);
        Some(Datagram {
            data: &self.bufs[i][..len],
            from: from_storage(&self.addrs[i], h.msg_hdr.msg_namelen),
            truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
        })
    }

    /// Sends datagrams `which` (indices into the last receive) from `fd` to
    /// `dest` with sendmmsg, retrying a partial send once. Returns how many
    /// went out and the error that stopped the rest, if any.
    pub fn send(&mut self, fd: RawFd, which: &[u8], dest: &RawAddr) -> (usize, Option<io::Error>) {
        let k = which.len().min(BATCH);
        if k == 1 {
            // The common case at voice rates: plain sendto skips the
            // mmsghdr copy-in (measured ~8% less engine CPU per packet).
            let i = usize::from(which[0]).min(BATCH - 1);
            let len = (self.hdrs[i].msg_len as usize).min(MAX_PACKET);
            // SAFETY: the buffer and address are valid for the call.
            let n = unsafe {
                libc::sendto(
                    fd,
                    self.bufs[i].as_ptr().cast(),
                    len,
                    libc::MSG_DONTWAIT,
                    &dest.storage as *const _ as *const libc::sockaddr,
                    dest.len,
                )
            };
            return if n < 0 {
                (0, Some(io::Error::last_os_error()))
            } else {
                (1, None)
            };
        }
        for (slot, &idx) in which[..k].iter().enumerate() {
            let i = usize::from(idx).min(BATCH - 1);
            let len = (self.hdrs[i].msg_len as usize).min(MAX_PACKET);
            self.send_iovs[slot] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: len,
            };
            let iov = &mut self.send_iovs[slot] as *mut libc::iovec;
            let h = &mut self.send_hdrs[slot];
            h.msg_hdr.msg_name = &dest.storage as *const _ as *mut libc::c_void;
            h.msg_hdr.msg_namelen = dest.len;
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h.msg_len = 0;
        }
        let mut sent = 0;
        for _attempt in 0..2 {
            if sent == k {
                break;
            }
            // SAFETY: send_hdrs[sent..k] were set up above and point into
            // self.bufs and `dest`, both alive for the call.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    self.send_hdrs[sent..k].as_mut_ptr(),
                    (k - sent) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                return (sent, Some(io::Error::last_os_error()));
            }
            sent += n as usize;
        }
        if sent < k {
            return (sent, Some(io::Error::from(io::ErrorKind::WouldBlock)));
        }
        (sent, None)
    }

    /// Rewrites the payload type of RTP datagram `i` in place (RFC 3550
    /// §5.1: low 7 bits of the second octet; the marker bit is kept).
    pub fn rewrite_pt(&mut self, i: usize, map: &[u8; 128]) {
        if i < self.received && self.hdrs[i].msg_len >= 2 {
            let b = &mut self.bufs[i][1];
            *b = (*b & 0x80) | (map[usize::from(*b & 0x7f)] & 0x7f);
        }
    }

    /// Bytes of datagram `i` of the last receive (0 if out of range).
    pub fn len_of(&self, i: usize) -> usize {
        if i < self.received {
            (self.hdrs[i].msg_len as usize).min(MAX_PACKET)
        } else {
            0
        }
    }
}

/// Sends one datagram without blocking.
pub fn send_one(fd: RawFd, data: &[u8], dest: &RawAddr) -> io::Result<usize> {
    // SAFETY: data and dest are valid for the duration of the call.
    let n = unsafe {
        libc::sendto(
            fd,
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_DONTWAIT,
            &dest.storage as *const _ as *const libc::sockaddr,
            dest.len,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// A non-blocking eventfd(2): readable while its counter is non-zero.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        Ok(EventFd {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Makes the descriptor readable. A full counter (2^64 - 2 unread
    /// notifications) already is readable, so EAGAIN is ignored.
    pub fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Resets the counter: the descriptor stops being readable.
    pub fn clear(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64; EAGAIN means already clear.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// CPU time (user + system) consumed so far by the thread `thread`.
pub fn thread_cpu_time(thread: libc::pthread_t) -> Option<Duration> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: `thread` is a live thread (its JoinHandle is held by the caller).
    if unsafe { libc::pthread_getcpuclockid(thread, &mut clock) } != 0 {
        return None;
    }
    // SAFETY: writes into a valid timespec.
    let mut ts: libc::timespec = unsafe { zeroed() };
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn batch_receives_and_forwards_with_source_addresses() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        sink.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut b = Batch::new();
        assert_eq!(
            b.recv(rx.as_raw_fd()).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        for i in 0..3u8 {
            tx.send_to(&[i; 100], rx.local_addr().unwrap()).unwrap();
        }
        tx.send_to(&[9; MAX_PACKET + 10], rx.local_addr().unwrap())
            .unwrap();
        let n = b.recv(rx.as_raw_fd()).unwrap();
        assert_eq!(n, 4);
        let d = b.get(1).unwrap();
        assert_eq!(
            (d.data, d.from, d.truncated),
            (&[1u8; 100][..], Some(tx.local_addr().unwrap()), false)
        );
        assert!(b.get(3).unwrap().truncated);
        assert!(b.get(4).is_none());
        let dest = RawAddr::new(sink.local_addr().unwrap());
        assert_eq!(b.send(rx.as_raw_fd(), &[0, 2], &dest).0, 2);
        let mut buf = [0u8; 200];
        assert_eq!(sink.recv_from(&mut buf).unwrap(), (100, rx.local_addr().unwrap()));
        assert_eq!(buf[0], 0);
        assert_eq!(sink.recv(&mut buf).unwrap(), 100);
        assert_eq!(buf[0], 2);
    }

    #[test]
    fn raw_addr_round_trips() {
        for a in ["10.1.2.3:4000", "[2001:db8::1]:5004"] {
            let a: SocketAddr = a.parse().unwrap();
            let r = RawAddr::new(a);
            assert_eq!(from_storage(&r.storage, r.len), Some(a));
        }
    }

    #[test]
    fn eventfd_readable_until_cleared() {
        let e = EventFd::new().unwrap();
        let readable = |e: &EventFd| {
            let mut p = libc::pollfd {
                fd: e.raw(),
                events: libc::POLLIN,
                revents: 0,
            };
            unsafe { libc::poll(&mut p, 1, 0) == 1 }
        };
        assert!(!readable(&e));
        e.notify();
        e.notify();
        assert!(readable(&e));
        e.clear();
        assert!(!readable(&e));
    }
}
