//! Helpers shared by the integration tests: engines on private port
//! ranges, peer sockets on 127.0.0.1 and hand-built RTP/RTCP packets.
#![allow(dead_code)]

use media_engine::{Engine, EngineConfig, Event};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// An engine on `port_min..=port_min + span - 1` with 2 workers; `tweak`
/// adjusts the rest. Each test uses its own range so tests can run in parallel.
pub fn engine(port_min: u16, span: u16, tweak: impl FnOnce(&mut EngineConfig)) -> Engine {
    let mut c = EngineConfig {
        port_min,
        port_max: port_min + span - 1,
        workers: 2,
        socket_recv_buffer: 1 << 20,
        ..EngineConfig::default()
    };
    tweak(&mut c);
    Engine::start(c).expect("engine starts")
}

/// A UDP socket on 127.0.0.1 standing in for a phone.
/// Its receive buffer holds a whole test's traffic, so tests can send
/// everything before reading.
pub fn peer() -> UdpSocket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    s.set_recv_buffer_size(4 << 20).unwrap();
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let s: UdpSocket = s.into();
    s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    s
}

pub fn addr(s: &UdpSocket) -> SocketAddr {
    s.local_addr().unwrap()
}

/// An RTP packet (RFC 3550 §5.1): PCMU, given seq/ssrc, `len` payload bytes
/// that encode `tag` and `seq` so the receiver can check what arrived.
pub fn rtp(seq: u16, ssrc: u32, tag: u8, len: usize) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..len).map(|i| tag ^ (seq as u8) ^ (i as u8)));
    p
}

/// A minimal RTCP receiver report with no blocks (RFC 3550 §6.4.2).
pub fn rtcp_rr(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 201, 0, 1];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p
}

/// Receives datagrams until `want` arrived or the socket stays quiet for
/// its read timeout; returns them with their source addresses.
pub fn recv_up_to(s: &UdpSocket, want: usize) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < want {
        match s.recv_from(&mut buf) {
            Ok((n, from)) => out.push((buf[..n].to_vec(), from)),
            Err(_) => break,
        }
    }
    out
}

/// Nothing arrives within `wait`.
pub fn quiet(s: &UdpSocket, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 4096];
    let r = s.recv_from(&mut buf).is_err();
    s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    r
}

/// Polls `f` every 5 ms until it returns Some or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Drains events until one matches `pred` (bounded by `limit`).
pub fn wait_event(e: &Engine, limit: Duration, pred: impl Fn(&Event) -> bool) -> Option<Event> {
    wait_for(limit, || e.poll_events().into_iter().find(|ev| pred(ev)))
}

/// Sends `packets` to `to`, pausing briefly every 16 so no socket buffer
/// on the way overflows.
pub fn send_paced(from: &UdpSocket, to: SocketAddr, packets: &[Vec<u8>]) {
    for (i, p) in packets.iter().enumerate() {
        from.send_to(p, to).unwrap();
        if i % 16 == 15 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
