//! UDP port pool of one interface.
//!
//! RFC 3550 §11: RTP uses an even port and RTCP the next higher (odd) port.
//! With RTCP multiplexing (RFC 5761 §4) one port carries both, and any port
//! of the range will do. The pool hands out ports from `port_min..=port_max`
//! with a rotating cursor, so a port just freed is reused as late as
//! possible (stale packets of the old call then have long stopped).
//!
//! Allocation binds the sockets itself: a port another process holds fails
//! to bind with `EADDRINUSE` and is skipped (counted as busy), so the pool
//! never needs to know the rest of the machine. An [`Allocation`] owns its
//! sockets and a [`PortGuard`]; dropping the guard returns the ports, so no
//! error path can leak one.

use crate::config::InterfaceSpec;
use crate::error::{Error, Result};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, MutexGuard};

/// Counts of one pool, for stats and metrics.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Ports in the range.
    pub total: usize,
    /// Ports held by this engine's legs.
    pub used: usize,
    /// `total - used` (ports other processes hold are found at allocation).
    pub free: usize,
    /// Ports skipped so far because another process had them bound.
    pub busy_skipped: u64,
}

/// The ports of one interface (cheap to clone: shared state).
#[derive(Clone, Debug)]
pub struct PortPool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    spec: InterfaceSpec,
    min: u16,
    max: u16,
    recv_buffer: usize,
    state: Mutex<PoolState>,
}

#[derive(Debug)]
struct PoolState {
    /// `used[p - min]`: port `p` is held by a leg of this engine.
    used: Vec<bool>,
    used_count: usize,
    /// Offset (from `min`) where the next search starts.
    cursor: usize,
    busy_skipped: u64,
}

/// Sockets bound on freshly allocated ports. Drop order matters: the
/// sockets are declared before the guard, so they are closed before the
/// ports are marked free again.
#[derive(Debug)]
pub struct Allocation {
    pub rtp: UdpSocket,
    /// `None` with rtcp-mux.
    pub rtcp: Option<UdpSocket>,
    pub guard: PortGuard,
}

/// Returns the ports of an [`Allocation`] to the pool when dropped. Keep it
/// next to (declared after) the sockets it covers.
#[derive(Debug)]
pub struct PortGuard {
    inner: Arc<PoolInner>,
    first: u16,
    count: u8,
}

impl Drop for PortGuard {
    fn drop(&mut self) {
        let mut st = self.inner.lock();
        for port in self.first..self.first.saturating_add(u16::from(self.count)) {
            if let Some(slot) = self.inner.index(port).and_then(|i| st.used.get_mut(i)) {
                if *slot {
                    *slot = false;
                    st.used_count -= 1;
                }
            }
        }
    }
}

impl PortGuard {
    /// The ports covered, lowest first.
    pub fn ports(&self) -> impl Iterator<Item = u16> {
        self.first..self.first.saturating_add(u16::from(self.count))
    }
}

impl PoolInner {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // A panic while holding the lock cannot leave the bitmap half
        // updated (every update is a single store plus count), so poisoning
        // is ignored rather than taking the whole media plane down.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn index(&self, port: u16) -> Option<usize> {
        (self.min..=self.max)
            .contains(&port)
            .then(|| usize::from(port - self.min))
    }
}

impl PortPool {
    /// A pool over `min..=max` on `spec.local`. `recv_buffer` (bytes, 0 for
    /// the system default) is applied to every socket.
    pub fn new(spec: &InterfaceSpec, min: u16, max: u16, recv_buffer: usize) -> Result<Self> {
        if min == 0 || min > max {
            return Err(Error::Config(format!(
                "port range {min}..={max} is empty or starts at 0"
            )));
        }
        let total = usize::from(max - min) + 1;
        Ok(PortPool {
            inner: Arc::new(PoolInner {
                spec: spec.clone(),
                min,
                max,
                recv_buffer,
                state: Mutex::new(PoolState {
                    used: vec![false; total],
                    used_count: 0,
                    cursor: 0,
                    busy_skipped: 0,
                }),
            }),
        })
    }

    pub fn spec(&self) -> &InterfaceSpec {
        &self.inner.spec
    }

    pub fn stats(&self) -> PoolStats {
        let st = self.inner.lock();
        PoolStats {
            total: st.used.len(),
            used: st.used_count,
            free: st.used.len() - st.used_count,
            busy_skipped: st.busy_skipped,
        }
    }

    /// Binds an RTP/RTCP pair (RTP even, RTCP = RTP + 1, RFC 3550 §11) or,
    /// with `rtcp_mux`, a single port (RFC 5761). Visits every candidate at
    /// most once; skips ports in use here or by other processes.
    pub fn allocate(&self, rtcp_mux: bool) -> Result<Allocation> {
        let inner = &self.inner;
        let mut st = inner.lock();
        let total = st.used.len();
        let mut busy = 0usize;
        for step in 0..total {
            let off = (st.cursor + step) % total;
            let port = inner.min + off as u16; // off < total <= 65535 - min + 1
            let got = if rtcp_mux {
                if st.used[off] {
                    continue;
                }
                self.bind(port).map(|s| (s, None))
            } else {
                // The pair needs an even RTP port with its odd partner in range.
                if !port.is_multiple_of(2) || port == inner.max || st.used[off] || st.used[off + 1] {
                    continue;
                }
                self.bind(port)
                    .and_then(|rtp| Ok((rtp, Some(self.bind(port + 1)?))))
            };
            match got {
                Ok((rtp, rtcp)) => {
                    let count: u8 = if rtcp.is_some() { 2 } else { 1 };
                    for i in 0..usize::from(count) {
                        st.used[off + i] = true;
                    }
                    st.used_count += usize::from(count);
                    st.cursor = (off + usize::from(count)) % total;
                    st.busy_skipped += busy as u64;
                    return Ok(Allocation {
                        rtp,
                        rtcp,
                        guard: PortGuard {
                            inner: inner.clone(),
                            first: port,
                            count,
                        },
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => busy += 1,
                Err(e) => {
                    st.busy_skipped += busy as u64;
                    return Err(Error::io(
                        format!(
                            "binding UDP port {port} on {} ({})",
                            inner.spec.local, inner.spec.name
                        ),
                        e,
                    ));
                }
            }
        }
        st.busy_skipped += busy as u64;
        Err(Error::PortsExhausted {
            interface: inner.spec.name.clone(),
            kind: if rtcp_mux { "port" } else { "even/odd port pair" },
            min: inner.min,
            max: inner.max,
            used: st.used_count,
            busy,
        })
    }

    /// One non-blocking UDP socket on `port`. No SO_REUSEADDR: a port bound
    /// elsewhere must fail here, not be shared.
    fn bind(&self, port: u16) -> io::Result<UdpSocket> {
        let ip: IpAddr = self.inner.spec.local;
        let addr = SocketAddr::new(ip, port);
        let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if ip.is_ipv6() {
            sock.set_only_v6(true)?;
        }
        if self.inner.recv_buffer > 0 {
            sock.set_recv_buffer_size(self.inner.recv_buffer)?;
        }
        sock.set_nonblocking(true)?;
        sock.bind(&addr.into())?;
        Ok(sock.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(min: u16, max: u16) -> PortPool {
        PortPool::new(
            &InterfaceSpec::new("t", IpAddr::from([127, 0, 0, 1])),
            min,
            max,
            0,
        )
        .unwrap()
    }

    #[test]
    fn pairs_are_even_odd_and_freed_on_drop() {
        let p = pool(41001, 41010); // even ports 41002..=41010, last has no partner
        let mut held = Vec::new();
        while let Ok(a) = p.allocate(false) {
            let rtp = a.rtp.local_addr().unwrap().port();
            let rtcp = a.rtcp.as_ref().unwrap().local_addr().unwrap().port();
            assert_eq!(rtp % 2, 0);
            assert_eq!(rtcp, rtp + 1);
            held.push(a);
            assert!(held.len() <= 5);
        }
        assert_eq!(held.len(), 4, "41002, 41004, 41006, 41008");
        assert_eq!(p.stats().used, 8);
        let err = p.allocate(false).unwrap_err().to_string();
        assert!(err.contains("41001..=41010"), "{err}");
        held.clear();
        assert_eq!(
            p.stats(),
            PoolStats {
                total: 10,
                used: 0,
                free: 10,
                busy_skipped: 0
            }
        );
        // Freed ports can be bound by anyone once the pool lets them go.
        for port in 41001..=41010 {
            UdpSocket::bind(("127.0.0.1", port)).unwrap();
        }
    }

    #[test]
    fn mux_uses_single_ports_and_rotates() {
        let p = pool(41021, 41024);
        let a = p.allocate(true).unwrap();
        assert!(a.rtcp.is_none());
        let first = a.rtp.local_addr().unwrap().port();
        drop(a);
        let b = p.allocate(true).unwrap();
        assert_ne!(
            b.rtp.local_addr().unwrap().port(),
            first,
            "a freed port is not reused at once"
        );
        let all: Vec<_> = (0..3).map_while(|_| p.allocate(true).ok()).collect();
        assert_eq!(all.len(), 3);
        assert_eq!(p.stats().free, 0);
    }

    #[test]
    fn ports_bound_elsewhere_are_skipped_and_counted() {
        let p = pool(41031, 41036);
        let _other = UdpSocket::bind(("127.0.0.1", 41033)).unwrap();
        let a = p.allocate(false).unwrap(); // 41032/41033 busy -> 41034/41035
        assert_eq!(a.rtp.local_addr().unwrap().port(), 41034);
        assert_eq!(p.stats().busy_skipped, 1);
        let e = p.allocate(false).unwrap_err();
        assert!(matches!(e, Error::PortsExhausted { busy: 1, used: 2, .. }), "{e}");
        assert_eq!(p.stats().used, 2);
    }

    #[test]
    fn bind_errors_other_than_busy_are_reported_not_looped() {
        // An address not on this host cannot be bound (EADDRNOTAVAIL).
        let spec = InterfaceSpec::new("far", IpAddr::from([192, 0, 2, 1]));
        let p = PortPool::new(&spec, 41041, 41050, 0).unwrap();
        let e = p.allocate(false).unwrap_err().to_string();
        assert!(e.contains("192.0.2.1"), "{e}");
        assert_eq!(p.stats().used, 0);
    }
}
