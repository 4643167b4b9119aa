//! RFC 4733 telephone-event payload (§2.3) and the DTMF event codes (§3.2).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     event     |E|R| volume    |          duration             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use crate::error::{Error, Result};

/// Size of one event block (RFC 4733 §2.3).
pub const EVENT_BLOCK_LEN: usize = 4;
/// Largest volume value: the field holds 0..=63, meaning 0..-63 dBm0 (§2.3.3).
pub const MAX_VOLUME: u8 = 63;
/// Event code of hook flash (RFC 4733 §3.2, Table 3).
pub const EVENT_FLASH: u8 = 16;
/// Character this crate uses for hook flash in the digit API.
pub const FLASH_CHAR: char = '!';

const WHAT: &str = "telephone-event";

/// One RFC 4733 event block (§2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (§2.3.1); 0..=16 are the DTMF events of §3.2.
    pub event: u8,
    /// E bit: this packet carries the end of the event (§2.3.2).
    pub end: bool,
    /// Power level of the tone as -dBm0, 0..=63 (§2.3.3).
    pub volume: u8,
    /// Duration so far, in RTP timestamp units (§2.3.5).
    pub duration: u16,
}

impl TelephoneEvent {
    /// Builds an event, rejecting a volume above 63 (§2.3.3: a 6-bit field).
    pub fn new(event: u8, end: bool, volume: u8, duration: u16) -> Result<Self> {
        if volume > MAX_VOLUME {
            return Err(Error::invalid(format!(
                "telephone-event volume {volume} out of range 0..=63"
            )));
        }
        Ok(TelephoneEvent {
            event,
            end,
            volume,
            duration,
        })
    }

    /// Parses the first event block of a payload. Trailing bytes (further
    /// blocks, e.g. §2.5.1.5 multiple events or RFC 2198 leftovers) are
    /// ignored. The R bit is ignored as §2.3.4 requires of receivers.
    pub fn parse(data: &[u8]) -> Result<Self> {
        let block: &[u8; EVENT_BLOCK_LEN] = data
            .get(..EVENT_BLOCK_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| Error::truncated(WHAT, EVENT_BLOCK_LEN, data.len()))?;
        Ok(TelephoneEvent {
            event: block[0],
            end: block[1] & 0x80 != 0,
            volume: block[1] & 0x3F,
            duration: u16::from_be_bytes([block[2], block[3]]),
        })
    }

    /// Appends the 4-byte block. R is written as zero (§2.3.4); a volume
    /// above 63 (only possible by setting the public field directly) is
    /// clamped to 63 so the E and R bits are never corrupted.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut b1 = self.volume.min(MAX_VOLUME);
        if self.end {
            b1 |= 0x80;
        }
        let d = self.duration.to_be_bytes();
        out.extend_from_slice(&[self.event, b1, d[0], d[1]]);
    }

    /// The DTMF character of this event, if it is one of §3.2's.
    pub fn digit(&self) -> Option<char> {
        digit_for_event(self.event)
    }
}

/// RFC 4733 §3.2 Table 3: '0'..'9' → 0..9, '*' → 10, '#' → 11,
/// 'A'..'D' → 12..15 (lower case accepted), flash ('!') → 16.
pub fn event_for_digit(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        'a'..='d' => Some(digit as u8 - b'a' + 12),
        FLASH_CHAR => Some(EVENT_FLASH),
        _ => None,
    }
}

/// Inverse of [`event_for_digit`] (upper-case letters); `None` for event
/// codes that are not DTMF (e.g. the fax/modem tones of RFC 4734).
pub fn digit_for_event(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        EVENT_FLASH => Some(FLASH_CHAR),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hand_checked_bytes() {
        // '#' (11), end, volume 10 (-10 dBm0), 800 units (100 ms at 8 kHz).
        let ev = TelephoneEvent::new(11, true, 10, 800).unwrap();
        let mut out = Vec::new();
        ev.write_to(&mut out);
        assert_eq!(out, [0x0B, 0x8A, 0x03, 0x20]);
        assert_eq!(TelephoneEvent::parse(&out).unwrap(), ev);
    }

    #[test]
    fn r_bit_ignored_and_trailing_bytes_ignored() {
        // R bit set (0x40), volume 63, then a second block that must not matter.
        let ev = TelephoneEvent::parse(&[5, 0x40 | 0x3F, 0xFF, 0xFF, 9, 9, 9, 9, 9]).unwrap();
        assert_eq!(ev, TelephoneEvent::new(5, false, 63, 0xFFFF).unwrap());
        // Written back, R is zero.
        let mut out = Vec::new();
        ev.write_to(&mut out);
        assert_eq!(out, [5, 0x3F, 0xFF, 0xFF]);
    }

    #[test]
    fn short_payloads_are_truncated_errors() {
        let buf = [0u8; 3];
        for n in 0..=3 {
            let err = TelephoneEvent::parse(&buf[..n]).unwrap_err();
            assert_eq!(err, Error::truncated("telephone-event", 4, n));
        }
    }

    #[test]
    fn volume_out_of_range_rejected_and_clamped_on_write() {
        assert!(TelephoneEvent::new(1, false, 64, 0).is_err());
        let ev = TelephoneEvent {
            event: 1,
            end: false,
            volume: 200,
            duration: 0,
        };
        let mut out = Vec::new();
        ev.write_to(&mut out);
        assert_eq!(out[1], 63, "E and R bits must stay clear");
    }

    #[test]
    fn digit_table_matches_rfc4733_3_2() {
        let digits = "0123456789*#ABCD!";
        for (code, d) in digits.chars().enumerate() {
            assert_eq!(event_for_digit(d), Some(code as u8));
            assert_eq!(digit_for_event(code as u8), Some(d));
        }
        assert_eq!(event_for_digit('b'), Some(13));
        assert_eq!(event_for_digit('E'), None);
        assert_eq!(event_for_digit(' '), None);
        assert_eq!(digit_for_event(17), None);
        assert_eq!(digit_for_event(255), None);
    }

    proptest! {
        #[test]
        fn round_trip(event in any::<u8>(), end in any::<bool>(), volume in 0u8..=63, duration in any::<u16>()) {
            let ev = TelephoneEvent::new(event, end, volume, duration).unwrap();
            let mut out = Vec::new();
            ev.write_to(&mut out);
            prop_assert_eq!(out.len(), EVENT_BLOCK_LEN);
            prop_assert_eq!(TelephoneEvent::parse(&out).unwrap(), ev);
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..16)) {
            match TelephoneEvent::parse(&data) {
                Ok(ev) => {
                    prop_assert!(data.len() >= 4);
                    prop_assert!(ev.volume <= MAX_VOLUME);
                }
                Err(e) => {
                    prop_assert!(data.len() < 4);
                    let is_truncated = matches!(e, Error::Truncated { .. });
                    prop_assert!(is_truncated);
                }
            }
        }

        #[test]
        fn digit_mapping_inverse(code in any::<u8>()) {
            if let Some(d) = digit_for_event(code) {
                prop_assert_eq!(event_for_digit(d), Some(code));
            }
        }
    }
}
