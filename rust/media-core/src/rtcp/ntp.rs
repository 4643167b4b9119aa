//! NTP timestamps as RTCP uses them (RFC 3550 §4) and the round-trip time
//! computation from a report block's LSR/DLSR (RFC 3550 §6.4.1).
//!
//! Nothing here reads a clock: callers pass wall-clock or arrival times in.

use std::time::Duration;

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01):
/// 70 years of which 17 are leap years (RFC 868 / RFC 5905 figure).
pub const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// Units of the 32-bit "compact" NTP format per second (16.16 fixed point),
/// used by the LSR and DLSR fields (RFC 3550 §6.4.1).
pub const COMPACT_UNITS_PER_SEC: f64 = 65_536.0;

/// A 64-bit NTP timestamp (RFC 3550 §4): 32 bits of seconds since
/// 1900-01-01 00:00 UTC (modulo 2^32), 32 bits of binary fraction.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NtpTimestamp(pub u64);

impl NtpTimestamp {
    pub fn new(seconds: u32, fraction: u32) -> Self {
        NtpTimestamp((u64::from(seconds) << 32) | u64::from(fraction))
    }

    /// Converts a time since the Unix epoch (as a caller's wall clock would
    /// give it). Seconds wrap modulo 2^32 (NTP era rollover in 2036).
    pub fn from_unix(since_epoch: Duration) -> Self {
        let secs = since_epoch.as_secs().wrapping_add(NTP_UNIX_OFFSET_SECS) as u32;
        // nanos < 1e9, so nanos * 2^32 < 2^62: no overflow.
        let frac = ((u64::from(since_epoch.subsec_nanos()) << 32) / 1_000_000_000) as u32;
        NtpTimestamp::new(secs, frac)
    }

    /// Time since the Unix epoch, assuming NTP era 0 (until 2036-02-07).
    /// Timestamps before 1970 give `None`.
    pub fn to_unix(self) -> Option<Duration> {
        let secs = u64::from(self.seconds()).checked_sub(NTP_UNIX_OFFSET_SECS)?;
        let nanos = (u64::from(self.fraction()) * 1_000_000_000) >> 32;
        Some(Duration::new(secs, nanos as u32))
    }

    pub fn seconds(self) -> u32 {
        (self.0 >> 32) as u32
    }

    pub fn fraction(self) -> u32 {
        self.0 as u32
    }

    /// The middle 32 bits (low 16 bits of seconds, high 16 bits of the
    /// fraction): the "compact" form carried in LSR (RFC 3550 §4, §6.4.1).
    pub fn compact(self) -> u32 {
        (self.0 >> 16) as u32
    }

    /// Seconds as a float (since 1900 within the current era).
    pub fn as_secs_f64(self) -> f64 {
        f64::from(self.seconds()) + f64::from(self.fraction()) / 4_294_967_296.0
    }
}

/// A delay in seconds converted to compact NTP units (1/65536 s), as the
/// DLSR field wants it. Negative or non-finite delays give 0; delays beyond
/// the 32-bit range saturate.
pub fn seconds_to_compact(seconds: f64) -> u32 {
    if seconds.is_nan() || seconds <= 0.0 {
        return 0;
    }
    // `as` saturates at u32::MAX for large values (and +inf).
    (seconds * COMPACT_UNITS_PER_SEC) as u32
}

/// Compact NTP units (1/65536 s) to a duration.
pub fn compact_to_duration(units: u32) -> Duration {
    let secs = u64::from(units >> 16);
    let nanos = (u64::from(units & 0xFFFF) * 1_000_000_000) >> 16;
    Duration::new(secs, nanos as u32)
}

/// Round-trip time from a report block about our own stream
/// (RFC 3550 §6.4.1): `A - LSR - DLSR`, with `A` the compact NTP arrival time
/// of the report (caller's wall clock). All three are compact NTP values;
/// the subtraction is modulo 2^32 so it survives the 16-bit seconds wrap.
///
/// Returns `None` when LSR is zero (the peer has not received an SR from us
/// yet, §6.4.1) or when the result would be negative (clock trouble or a
/// bogus block), which §6.4.1 leaves to the implementation to discard.
pub fn round_trip_time(arrival_compact: u32, lsr: u32, dlsr: u32) -> Option<Duration> {
    if lsr == 0 {
        return None;
    }
    let since_sr = arrival_compact.wrapping_sub(lsr);
    // A huge `since_sr` means the arrival is before LSR (negative).
    if since_sr > u32::MAX / 2 || dlsr > since_sr {
        return None;
    }
    Some(compact_to_duration(since_sr - dlsr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc3550_rtt_example() {
        // The worked example of RFC 3550 §6.4.1 (Figure 2): A = 46864.500 s,
        // LSR = 46853.125 s, DLSR = 5.250 s, delay = 6.125 s.
        let a = 0xB710_8000;
        let lsr = 0xB705_2000;
        let dlsr = 0x0005_4000;
        assert_eq!(round_trip_time(a, lsr, dlsr), Some(Duration::from_millis(6125)));
    }

    #[test]
    fn rtt_edge_cases() {
        assert_eq!(round_trip_time(0x1000_0000, 0, 0), None, "LSR 0 = no SR yet");
        assert_eq!(round_trip_time(0x0001_0000, 0x0001_0000, 0x10), None, "negative");
        assert_eq!(
            round_trip_time(0x0000_8000, 0x0001_0000, 0),
            None,
            "arrival before LSR"
        );
        // Wraps across the 16-bit seconds boundary: LSR at 65535.5 s, A at 1.0 s
        // (next wrap), DLSR 0.25 s -> 1.25 s.
        assert_eq!(
            round_trip_time(0x0001_0000, 0xFFFF_8000, 0x0000_4000),
            Some(Duration::from_millis(1250))
        );
    }

    #[test]
    fn unix_conversion_and_compact() {
        let t = NtpTimestamp::from_unix(Duration::new(1_700_000_000, 500_000_000));
        assert_eq!(u64::from(t.seconds()), 1_700_000_000 + NTP_UNIX_OFFSET_SECS);
        assert_eq!(t.fraction(), 0x8000_0000);
        assert_eq!(t.compact(), ((t.seconds() & 0xFFFF) << 16) | 0x8000);
        assert_eq!(t.to_unix(), Some(Duration::new(1_700_000_000, 500_000_000)));
        assert_eq!(NtpTimestamp::new(5, 0).to_unix(), None);
        assert!((NtpTimestamp::new(3, 0x4000_0000).as_secs_f64() - 3.25).abs() < 1e-12);
    }

    #[test]
    fn compact_conversions() {
        assert_eq!(seconds_to_compact(5.25), 0x0005_4000);
        assert_eq!(seconds_to_compact(-1.0), 0);
        assert_eq!(seconds_to_compact(f64::NAN), 0);
        assert_eq!(seconds_to_compact(1e12), u32::MAX);
        assert_eq!(compact_to_duration(0x0005_4000), Duration::from_millis(5250));
    }

    proptest! {
        #[test]
        fn unix_round_trip_within_a_nanosecond(secs in 0u64..2_000_000_000, nanos in 0u32..1_000_000_000) {
            let d = Duration::new(secs, nanos);
            let back = NtpTimestamp::from_unix(d).to_unix().unwrap();
            let err = back.abs_diff(d);
            prop_assert!(err <= Duration::from_nanos(1), "{:?} vs {:?}", back, d);
        }

        #[test]
        fn rtt_recovers_the_delay(lsr in 1u32.., rtt in 0u32..0x1000_0000, dlsr in 0u32..0x1000_0000) {
            let a = lsr.wrapping_add(rtt).wrapping_add(dlsr);
            prop_assert_eq!(round_trip_time(a, lsr, dlsr), Some(compact_to_duration(rtt)));
        }
    }
}
