//! Engine configuration: interfaces, port range, workers, limits and timers.
//! Key names follow rtpengine's where one exists (`interface`, `port-min`,
//! `port-max`, `timeout`, `num-threads`, `max-sessions`), so that operators
//! recognise them in the TOML file and on the command line.

use crate::error::{Error, Result};
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

/// One network interface media is bound to: a local address to bind and the
/// address written into SDP (they differ behind NAT / in clouds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceSpec {
    /// Logical name, used by `LegSpec::interface` (rtpengine's `direction=`).
    pub name: String,
    /// Address the sockets are bound to.
    pub local: IpAddr,
    /// Address advertised to peers (the public address of a 1:1 NAT).
    pub advertised: IpAddr,
}

impl InterfaceSpec {
    /// An interface that advertises the address it binds.
    pub fn new(name: &str, local: IpAddr) -> Self {
        InterfaceSpec {
            name: name.to_string(),
            local,
            advertised: local,
        }
    }
}

impl FromStr for InterfaceSpec {
    type Err = Error;

    /// Parses rtpengine's `interface=` syntax: `[NAME/]LOCAL[!ADVERTISED]`,
    /// e.g. `pub/10.0.0.5!203.0.113.7`. Without a name the interface is
    /// called `default`.
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        let (name, rest) = match s.split_once('/') {
            Some((n, r)) => (n, r),
            None => ("default", s),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(Error::Config(format!("interface {s:?}: bad name {name:?}")));
        }
        let (local, advertised) = match rest.split_once('!') {
            Some((l, a)) => (l, Some(a)),
            None => (rest, None),
        };
        let parse = |what: &str, v: &str| {
            v.parse::<IpAddr>().map_err(|_| {
                Error::Config(format!(
                    "interface {s:?}: {what} address {v:?} is not an IP address"
                ))
            })
        };
        let local = parse("local", local)?;
        let advertised = match advertised {
            Some(a) => parse("advertised", a)?,
            None => local,
        };
        if advertised.is_unspecified() {
            return Err(Error::Config(format!(
                "interface {s:?}: the advertised address cannot be unspecified; give LOCAL!PUBLIC"
            )));
        }
        Ok(InterfaceSpec {
            name: name.to_string(),
            local,
            advertised,
        })
    }
}

/// Everything [`crate::Engine::start`] needs. `Default` is a loopback-only
/// engine suitable for tests and a single-host setup.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Interfaces in order; the first is used when a leg names none.
    pub interfaces: Vec<InterfaceSpec>,
    /// Lowest UDP port the pool hands out (rtpengine `port-min`).
    pub port_min: u16,
    /// Highest UDP port the pool hands out (rtpengine `port-max`).
    pub port_max: u16,
    /// Worker threads; 0 means one per available core (rtpengine `num-threads`).
    pub workers: usize,
    /// Admission control: `create_session` is refused beyond this many.
    pub max_sessions: usize,
    /// Flood protection: packets accepted per second on one leg (RTP and
    /// RTCP together, bursts up to one second's worth); 0 disables it.
    pub max_pps_per_leg: u32,
    /// No packet on a leg for this long raises `Event::MediaTimeout`
    /// (rtpengine `timeout`).
    pub media_timeout: Duration,
    /// Default of `LegSpec::strict_source`: once latched, drop packets that
    /// come from any other address (rtpengine's `strict source` flag).
    pub strict_source: bool,
    /// Non-strict legs re-latch to a new source address only after the
    /// latched one has been silent this long (handover after a NAT rebinding
    /// or a roaming phone, without letting a stray packet steal the stream).
    pub relatch_after: Duration,
    /// Undelivered events kept at most; older events are kept, newer ones
    /// counted as lost (reported by `Event::EventsLost`).
    pub event_queue_capacity: usize,
    /// How long a control call waits for the worker's answer.
    pub control_timeout: Duration,
    /// Kernel receive buffer per media socket in bytes; 0 keeps the default.
    pub socket_recv_buffer: usize,
    /// Opus encoder complexity (0..=10) for transcoded streams: the main
    /// cost of PCMU <-> opus calls (rtpengine: `opus-complexity`). Default 5,
    /// the highest that meets 250 PCMU <-> opus calls per core with a margin
    /// here (about 280-300; 6: 236-252, 10: about 200), at PESQ-NB 0.3 below
    /// complexity 10 at libopus's default bitrate (bench/transcode_capacity.py).
    pub opus_complexity: u8,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            interfaces: vec![InterfaceSpec::new("default", IpAddr::from([127, 0, 0, 1]))],
            port_min: 30000,
            port_max: 40000,
            workers: 0,
            max_sessions: 10_000,
            max_pps_per_leg: 1000,
            media_timeout: Duration::from_secs(60),
            strict_source: false,
            relatch_after: Duration::from_secs(1),
            event_queue_capacity: 65_536,
            control_timeout: Duration::from_secs(5),
            socket_recv_buffer: 0,
            opus_complexity: 5,
        }
    }
}

impl EngineConfig {
    /// Checks the values that would make the engine unusable.
    pub fn validate(&self) -> Result<()> {
        if self.interfaces.is_empty() {
            return Err(Error::Config("at least one interface is needed".into()));
        }
        for (i, a) in self.interfaces.iter().enumerate() {
            if self.interfaces[..i].iter().any(|b| b.name == a.name) {
                return Err(Error::Config(format!("interface name {:?} given twice", a.name)));
            }
        }
        if self.port_min == 0 || self.port_min > self.port_max {
            return Err(Error::Config(format!(
                "port range {}..={} is empty or starts at 0",
                self.port_min, self.port_max
            )));
        }
        if self.max_sessions == 0 {
            return Err(Error::Config("max_sessions must be at least 1".into()));
        }
        if self.media_timeout.is_zero() {
            return Err(Error::Config("media_timeout must be positive".into()));
        }
        if self.event_queue_capacity == 0 {
            return Err(Error::Config("event_queue_capacity must be at least 1".into()));
        }
        if self.opus_complexity > 10 {
            return Err(Error::Config(format!(
                "opus_complexity {} is not in 0..=10",
                self.opus_complexity
            )));
        }
        if self.control_timeout.is_zero() {
            return Err(Error::Config("control_timeout must be positive".into()));
        }
        Ok(())
    }

    /// The worker count after resolving 0 to the number of cores.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// The audio codec a leg's endpoint negotiated (from its SDP `a=rtpmap`,
/// RFC 4566 §6, and `a=ptime`). When the two connected legs differ in codec
/// or ptime, the engine transcodes between them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegCodec {
    /// SDP encoding name (`PCMU`, `PCMA`, `G722`, `L16`, `opus`).
    pub name: String,
    /// RTP clock rate (G.722: 8000, RFC 3551 §4.5.2; opus: 48000).
    pub clock_rate: u32,
    pub channels: u8,
    /// Payload type the endpoint uses for it (static or dynamic).
    pub payload_type: u8,
    /// Packetization time the endpoint sends and expects (ms).
    pub ptime_ms: u32,
}

impl LegCodec {
    /// Mono codec at 20 ms.
    pub fn new(name: &str, clock_rate: u32, payload_type: u8) -> Self {
        LegCodec {
            name: name.to_string(),
            clock_rate,
            channels: 1,
            payload_type,
            ptime_ms: 20,
        }
    }
    pub fn with_ptime(mut self, ms: u32) -> Self {
        self.ptime_ms = ms;
        self
    }
    /// Same audio format (name, rate, channels) and packetization.
    pub fn same_stream(&self, o: &LegCodec) -> bool {
        self.name.eq_ignore_ascii_case(&o.name)
            && self.clock_rate == o.clock_rate
            && self.channels == o.channels
            && self.ptime_ms == o.ptime_ms
    }
}

/// How a leg learns where its endpoint really is (rtpengine's `symmetric`,
/// `asymmetric` and `media handover` flags).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Latching {
    /// Symmetric RTP (RFC 4961): latch to the source of the endpoint's
    /// packets; move to a new source only after the latched one has been
    /// silent for `EngineConfig::relatch_after`.
    #[default]
    Symmetric,
    /// Never latch: media always goes to the SDP address.
    Asymmetric,
    /// Like `Symmetric`, but a new (trusted) source takes over at once,
    /// however recently the old one sent.
    Handover,
}

impl FromStr for Latching {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "symmetric" => Ok(Latching::Symmetric),
            "asymmetric" => Ok(Latching::Asymmetric),
            "handover" | "media handover" | "media-handover" => Ok(Latching::Handover),
            _ => Err(Error::Invalid(format!(
                "latching {s:?}: expected symmetric, asymmetric or handover"
            ))),
        }
    }
}

/// How to create a leg (one endpoint's media stream) in a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegSpec {
    /// Interface name; `None` uses the first configured interface.
    pub interface: Option<String>,
    /// One port for RTP and RTCP (RFC 5761) instead of an even/odd pair.
    pub rtcp_mux: bool,
    /// Free text echoed in stats (rtpengine's `label`).
    pub label: Option<String>,
    /// Overrides `EngineConfig::strict_source` for this leg.
    pub strict_source: Option<bool>,
    /// How the leg latches to its endpoint's address.
    pub latching: Latching,
    /// RTP clock rate of the stream, for jitter in milliseconds (RFC 3550 A.8).
    pub clock_rate: u32,
    /// Negotiated codec; needed only for transcoding (both connected legs
    /// must name one). `None` relays whatever arrives.
    pub codec: Option<LegCodec>,
}

impl Default for LegSpec {
    fn default() -> Self {
        LegSpec {
            interface: None,
            rtcp_mux: false,
            label: None,
            strict_source: None,
            latching: Latching::Symmetric,
            clock_rate: 8000,
            codec: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_syntax_as_rtpengine() {
        let i: InterfaceSpec = "pub/10.0.0.5!203.0.113.7".parse().unwrap();
        assert_eq!(i.name, "pub");
        assert_eq!(i.local, IpAddr::from([10, 0, 0, 5]));
        assert_eq!(i.advertised, IpAddr::from([203, 0, 113, 7]));
        let i: InterfaceSpec = "127.0.0.1".parse().unwrap();
        assert_eq!((i.name.as_str(), i.advertised), ("default", i.local));
        let i: InterfaceSpec = "v6/::1".parse().unwrap();
        assert!(i.local.is_ipv6());
        for bad in [
            "",
            "x/",
            "a b/1.2.3.4",
            "1.2.3.4!",
            "0.0.0.0",
            "n/1.2.3.4!nope",
            "/1.2.3.4",
        ] {
            assert!(bad.parse::<InterfaceSpec>().is_err(), "{bad:?} accepted");
        }
        let i: InterfaceSpec = "0.0.0.0!198.51.100.1".parse().unwrap();
        assert!(i.local.is_unspecified());
    }

    #[test]
    fn validation_names_the_problem() {
        let mut c = EngineConfig::default();
        assert!(c.validate().is_ok());
        c.port_min = 5000;
        c.port_max = 4999;
        assert!(c.validate().unwrap_err().to_string().contains("port range"));
        let mut c = EngineConfig::default();
        c.interfaces
            .push(InterfaceSpec::new("default", IpAddr::from([127, 0, 0, 2])));
        assert!(c.validate().unwrap_err().to_string().contains("twice"));
        let c = EngineConfig {
            max_sessions: 0,
            ..EngineConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
