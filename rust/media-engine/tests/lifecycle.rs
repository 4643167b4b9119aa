//! Session lifecycle over real sockets: ports come back, timeouts fire,
//! admission control refuses, bad calls get clear errors.

mod common;

use common::*;
use media_engine::{Engine, EngineConfig, Error, Event, InterfaceSpec, LegId, LegSpec, SessionId};
use std::net::{IpAddr, UdpSocket};
use std::os::fd::RawFd;
use std::time::Duration;

fn readable(fd: RawFd, wait: Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, wait.as_millis() as i32) == 1 }
}

fn all_bindable(min: u16, max: u16) -> bool {
    (min..=max).all(|p| UdpSocket::bind(("127.0.0.1", p)).is_ok())
}

#[test]
fn delete_frees_every_port_for_anyone_to_bind() {
    let (min, max) = (44000, 44019); // 10 RTP/RTCP pairs
    let e = engine(min, max - min + 1, |_| {});
    let mut sessions = Vec::new();
    let exhausted = loop {
        let s = e.create_session("fill").unwrap();
        sessions.push(s);
        let mut err = None;
        for _ in 0..2 {
            if let Err(x) = e.add_leg(s, &LegSpec::default()) {
                err = Some(x);
                break;
            }
        }
        if let Some(x) = err {
            break x;
        }
        assert!(sessions.len() <= 10, "the pool hands out more than its range");
    };
    assert!(matches!(exhausted, Error::PortsExhausted { .. }), "{exhausted}");
    assert!(exhausted.to_string().contains("44000..=44019"));
    let st = e.engine_stats();
    assert_eq!((st.ports_used, st.ports_free, st.legs), (20, 0, 10));
    assert!(!all_bindable(min, max));
    for s in sessions {
        e.delete_session(s).unwrap();
    }
    let st = e.engine_stats();
    assert_eq!(
        (st.ports_used, st.ports_free, st.sessions, st.legs),
        (0, 20, 0, 0)
    );
    assert!(all_bindable(min, max), "closed on return from delete_session");
    assert!(matches!(
        e.delete_session(SessionId(1)),
        Err(Error::UnknownSession(_))
    ));
}

#[test]
fn dropping_the_engine_closes_everything() {
    let (min, max) = (44100, 44109);
    let e = engine(min, 10, |_| {});
    let s = e.create_session("x").unwrap();
    for _ in 0..3 {
        e.add_leg(s, &LegSpec::default()).unwrap();
    }
    assert!(!all_bindable(min, max));
    drop(e);
    assert!(all_bindable(min, max));
}

#[test]
fn media_timeout_event_makes_the_event_fd_readable() {
    let e = engine(44200, 20, |c| c.media_timeout = Duration::from_millis(200));
    let s = e.create_session("quiet").unwrap();
    let a = e.add_leg(s, &LegSpec::default()).unwrap();
    let b = e.add_leg(s, &LegSpec::default()).unwrap();
    let (pa, pb) = (peer(), peer());
    e.set_remote(s, a.leg, addr(&pa), None).unwrap();
    e.set_remote(s, b.leg, addr(&pb), None).unwrap();
    e.connect(s, a.leg, b.leg).unwrap();
    // a talks for a while (every 20 ms over 300 ms: no timeout); b never does.
    for q in 0..15 {
        pa.send_to(&rtp(q, 1, 1, 160), a.rtp).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(readable(e.event_fd(), Duration::from_secs(2)));
    let mut got: Vec<Event> = Vec::new();
    wait_for(Duration::from_secs(2), || {
        got.extend(e.poll_events());
        got.iter()
            .any(|ev| matches!(ev, Event::MediaTimeout { leg, .. } if *leg == a.leg))
            .then_some(())
    })
    .expect("a times out after it stops");
    let timeouts: Vec<_> = got
        .iter()
        .filter_map(|ev| match ev {
            Event::MediaTimeout {
                session,
                leg,
                silent_for,
            } => Some((*session, *leg, *silent_for)),
            _ => None,
        })
        .collect();
    assert_eq!(timeouts.len(), 2, "{got:?}");
    assert_eq!(timeouts[0].1, b.leg, "the silent leg first");
    for (sess, _, silent) in &timeouts {
        assert_eq!(*sess, s);
        assert!(
            *silent >= Duration::from_millis(200) && *silent < Duration::from_secs(1),
            "{silent:?}"
        );
    }
    // Drained: the descriptor is quiet again, and a timeout is reported once.
    assert!(!readable(e.event_fd(), Duration::from_millis(300)));
    assert!(e.poll_events().is_empty());
    // Media again: resumed, then a second timeout later.
    pa.send_to(&rtp(20, 1, 1, 160), a.rtp).unwrap();
    let ev = wait_event(&e, Duration::from_secs(2), |ev| {
        matches!(ev, Event::MediaResumed { .. })
    });
    assert_eq!(
        ev,
        Some(Event::MediaResumed {
            session: s,
            leg: a.leg
        })
    );
    let ev = wait_event(&e, Duration::from_secs(2), |ev| {
        matches!(ev, Event::MediaTimeout { .. })
    });
    assert!(matches!(ev, Some(Event::MediaTimeout { leg, .. }) if leg == a.leg));
}

#[test]
fn admission_control_refuses_beyond_max_sessions() {
    let e = engine(44300, 20, |c| c.max_sessions = 3);
    let ids: Vec<_> = (0..3)
        .map(|i| e.create_session(&format!("c{i}")).unwrap())
        .collect();
    let err = e.create_session("one too many").unwrap_err();
    assert!(matches!(err, Error::TooManySessions { limit: 3 }));
    assert!(err.to_string().contains("limit of 3"), "{err}");
    e.delete_session(ids[0]).unwrap();
    e.create_session("fits again").unwrap();
    let st = e.engine_stats();
    assert_eq!((st.sessions, st.sessions_refused), (3, 1));
}

#[test]
fn bad_requests_get_clear_errors_and_leak_nothing() {
    let e = engine(44400, 20, |_| {});
    let s = e.create_session("x").unwrap();
    let a = e.add_leg(s, &LegSpec::default()).unwrap();
    let r = e.add_leg(
        s,
        &LegSpec {
            interface: Some("nope".into()),
            ..LegSpec::default()
        },
    );
    assert!(matches!(r, Err(Error::UnknownInterface(ref n)) if n == "nope"));
    let r = e.add_leg(
        s,
        &LegSpec {
            clock_rate: 0,
            ..LegSpec::default()
        },
    );
    assert!(matches!(r, Err(Error::Invalid(_))));
    assert!(matches!(e.connect(s, a.leg, a.leg), Err(Error::Invalid(_))));
    assert!(matches!(
        e.connect(s, a.leg, LegId(9)),
        Err(Error::UnknownLeg { .. })
    ));
    let far = "127.0.0.1:9".parse().unwrap();
    assert!(matches!(
        e.set_remote(SessionId(999), a.leg, far, None),
        Err(Error::UnknownSession(_))
    ));
    assert!(matches!(
        e.add_leg(SessionId(999), &LegSpec::default()),
        Err(Error::UnknownSession(_))
    ));
    assert_eq!(
        e.engine_stats().ports_used,
        2,
        "failed add_leg calls hold no port"
    );
    for _ in 1..media_engine::MAX_LEGS_PER_SESSION {
        e.add_leg(
            s,
            &LegSpec {
                rtcp_mux: true,
                ..LegSpec::default()
            },
        )
        .unwrap();
    }
    let r = e.add_leg(
        s,
        &LegSpec {
            rtcp_mux: true,
            ..LegSpec::default()
        },
    );
    assert!(matches!(r, Err(Error::TooManyLegs { .. })));
    assert_eq!(
        e.engine_stats().ports_used,
        2 + 15,
        "the refused leg's port went back"
    );
    assert!(Engine::start(EngineConfig {
        port_min: 10,
        port_max: 5,
        ..EngineConfig::default()
    })
    .is_err());
}

#[test]
fn legs_bind_their_interface_and_advertise_its_public_address() {
    let public: IpAddr = "203.0.113.5".parse().unwrap();
    let e = engine(44500, 20, |c| {
        c.interfaces = vec![
            InterfaceSpec::new("priv", "127.0.0.1".parse().unwrap()),
            "pub/127.0.0.2!203.0.113.5".parse().unwrap(),
        ]
    });
    let s = e.create_session("nat").unwrap();
    let a = e.add_leg(s, &LegSpec::default()).unwrap();
    let b = e
        .add_leg(
            s,
            &LegSpec {
                interface: Some("pub".into()),
                ..LegSpec::default()
            },
        )
        .unwrap();
    assert_eq!(a.rtp.ip(), IpAddr::from([127, 0, 0, 1]));
    assert_eq!(b.rtp.ip(), public);
    assert_eq!(b.rtcp.unwrap().ip(), public);
    // The socket itself listens on the local address.
    let pb = peer();
    e.set_remote(s, b.leg, addr(&pb), None).unwrap();
    let pa = peer();
    e.set_remote(s, a.leg, addr(&pa), None).unwrap();
    e.connect(s, a.leg, b.leg).unwrap();
    let local_b = std::net::SocketAddr::new("127.0.0.2".parse().unwrap(), b.rtp.port());
    pb.send_to(&rtp(1, 1, 1, 160), local_b).unwrap();
    assert_eq!(recv_up_to(&pa, 1).len(), 1);
    pa.send_to(&rtp(1, 2, 1, 160), a.rtp).unwrap();
    assert_eq!(recv_up_to(&pb, 1)[0].1, local_b);
    let st = e.engine_stats();
    let names: Vec<_> = st
        .interfaces
        .iter()
        .map(|i| (i.name.as_str(), i.ports.used))
        .collect();
    assert_eq!(names, vec![("priv", 2), ("pub", 2)]);
    assert_eq!(e.session_stats(s).unwrap().legs[1].interface, "pub");
}
