//! Receiver side of RFC 4733 (§2.5.2): turns the stream of received
//! telephone-event packets into key presses, each reported exactly once.
//!
//! Reporting policy: a digit is reported by [`EventReceiver::feed`] when its
//! event is first seen (whatever packet of it arrives first), which is what
//! IVR menus want for low latency. Later packets of the same event only
//! update its duration, volume and `ended` state, readable through
//! [`EventReceiver::current`]; they are never reported again.
//!
//! Events are told apart by RTP timestamp (§2.5.1.2: all packets of an event
//! carry its start time). A packet with a newer timestamp starts a new event
//! and so ends the previous one even if all its E-bit packets were lost;
//! packets older than the current event are late and ignored.

use super::events::{digit_for_event, TelephoneEvent};
use crate::error::{Error, Result};
use crate::types::RtpTimestamp;

/// Segment length of a long-duration event (§2.5.1.3, §2.5.2.3).
const MAX_SEGMENT: i32 = 0xFFFF;
/// How far back (in timestamp units) a packet is taken as late rather than
/// as a timestamp discontinuity of the stream (which starts a new event).
const LATE_WINDOW: i32 = 4 * MAX_SEGMENT;

/// A key press received as RFC 4733 events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtmfEvent {
    /// The key: '0'..'9', '*', '#', 'A'..'D', or '!' for flash.
    pub digit: char,
    /// RTP timestamp of the start of the event.
    pub timestamp: RtpTimestamp,
    /// Duration received so far (whole event when `ended`).
    pub duration_ms: u32,
    /// Volume as -dBm0 (0..=63) from the latest packet.
    pub volume: u8,
    /// An E-bit packet was received, or a later event replaced this one.
    pub ended: bool,
}

#[derive(Clone, Copy, Debug)]
struct Current {
    event: u8,
    start_ts: RtpTimestamp,
    /// Timestamp of the segment being received (§2.5.2.3).
    seg_ts: RtpTimestamp,
    /// Units covered by the completed segments before `seg_ts`.
    seg_base: u64,
    /// Largest duration seen for the current segment (updates may be reordered).
    seg_duration: u16,
    volume: u8,
    ended: bool,
}

/// Tracks received telephone-event packets of one RTP stream (one SSRC).
#[derive(Debug)]
pub struct EventReceiver {
    clock_rate: u32,
    current: Option<Current>,
}

impl EventReceiver {
    /// `clock_rate` of the negotiated telephone-event payload type.
    pub fn new(clock_rate: u32) -> Result<Self> {
        if clock_rate == 0 {
            return Err(Error::invalid("telephone-event clock rate 0"));
        }
        Ok(EventReceiver {
            clock_rate,
            current: None,
        })
    }

    /// Forgets the current event (e.g. on SSRC change).
    pub fn reset(&mut self) {
        self.current = None;
    }

    /// Feeds one received packet: its RTP timestamp, marker bit and payload.
    /// Returns the key press when this packet is the first one seen of a new
    /// DTMF event; `Ok(None)` for every other well-formed packet (including
    /// non-DTMF event codes, which are tracked but not reported). A payload
    /// shorter than 4 bytes is an error and changes nothing.
    pub fn feed(&mut self, ts: RtpTimestamp, marker: bool, payload: &[u8]) -> Result<Option<DtmfEvent>> {
        let ev = TelephoneEvent::parse(payload)?;
        if let Some(cur) = self.current.as_mut() {
            let d = ts.diff(cur.seg_ts);
            if d == 0 && ev.event == cur.event {
                // Update or retransmitted end of the current segment (§2.5.2).
                cur.seg_duration = cur.seg_duration.max(ev.duration);
                cur.volume = ev.volume;
                cur.ended |= ev.end;
                return Ok(None);
            }
            if d == MAX_SEGMENT && ev.event == cur.event && !marker && !cur.ended {
                // §2.5.2.3: next segment of a long event, starting where the
                // previous one (reported as 0xFFFF) ended.
                cur.seg_base += MAX_SEGMENT as u64;
                cur.seg_ts = ts;
                cur.seg_duration = ev.duration;
                cur.volume = ev.volume;
                cur.ended = ev.end;
                return Ok(None);
            }
            if (-LATE_WINDOW..0).contains(&d) {
                // Late or reordered packet of an earlier event or segment.
                return Ok(None);
            }
            // Anything else is a new event; a same-timestamp packet with a
            // different code comes from a sender reusing timestamps.
        }
        let cur = Current {
            event: ev.event,
            start_ts: ts,
            seg_ts: ts,
            seg_base: 0,
            seg_duration: ev.duration,
            volume: ev.volume,
            ended: ev.end,
        };
        self.current = Some(cur);
        Ok(self.describe(&cur))
    }

    /// State of the latest DTMF event (duration so far, whether it ended);
    /// `None` before the first one or when the latest event is not DTMF.
    pub fn current(&self) -> Option<DtmfEvent> {
        self.current.as_ref().and_then(|c| self.describe(c))
    }

    fn describe(&self, c: &Current) -> Option<DtmfEvent> {
        let units = c.seg_base + u64::from(c.seg_duration);
        Some(DtmfEvent {
            digit: digit_for_event(c.event)?,
            timestamp: c.start_ts,
            duration_ms: u32::try_from(units * 1000 / u64::from(self.clock_rate)).unwrap_or(u32::MAX),
            volume: c.volume,
            ended: c.ended,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::sender::EventSender;
    use super::*;
    use proptest::prelude::*;

    type Packet = (RtpTimestamp, bool, Vec<u8>);

    /// Packets of each digit of `digits` (100 ms tone, 100 ms apart) at 8 kHz.
    fn stream(digits: &str, ms: u32) -> Vec<Vec<Packet>> {
        let mut s = EventSender::new(8000, 20).unwrap();
        let mut ts = RtpTimestamp(12345);
        let mut out = Vec::new();
        for d in digits.chars() {
            s.start(d, ms, 10, ts).unwrap();
            let mut pk = Vec::new();
            let mut buf = Vec::new();
            while let Some(m) = s.next_packet(&mut buf) {
                pk.push((m.timestamp, m.marker, std::mem::take(&mut buf)));
            }
            out.push(pk);
            ts = ts.wrapping_add(8 * (ms + 100));
        }
        out
    }

    fn run(r: &mut EventReceiver, packets: impl IntoIterator<Item = Packet>) -> String {
        let mut got = String::new();
        for (ts, m, p) in packets {
            if let Some(ev) = r.feed(ts, m, &p).unwrap() {
                got.push(ev.digit);
            }
        }
        got
    }

    #[test]
    fn each_digit_once_with_durations() {
        let mut r = EventReceiver::new(8000).unwrap();
        for (digit, pk) in "123#".chars().zip(stream("123#", 100)) {
            let first = r.feed(pk[0].0, pk[0].1, &pk[0].2).unwrap().unwrap();
            assert_eq!(
                (first.digit, first.duration_ms, first.ended, first.volume),
                (digit, 20, false, 10)
            );
            assert_eq!(run(&mut r, pk[1..].iter().cloned()), "");
            let cur = r.current().unwrap();
            assert_eq!((cur.digit, cur.duration_ms, cur.ended), (digit, 100, true));
        }
    }

    #[test]
    fn duplicates_do_not_repeat_digits() {
        let mut r = EventReceiver::new(8000).unwrap();
        let pk = stream("123#", 100)
            .into_iter()
            .flatten()
            .flat_map(|p| [p.clone(), p]);
        assert_eq!(run(&mut r, pk), "123#");
    }

    #[test]
    fn lost_first_packets_still_report() {
        let mut r = EventReceiver::new(8000).unwrap();
        let pk = stream("123#", 100)
            .into_iter()
            .flat_map(|e| e.into_iter().skip(1));
        assert_eq!(run(&mut r, pk), "123#");
        // Only the end packets of a digit survive: still reported, once, as ended.
        let mut r = EventReceiver::new(8000).unwrap();
        let ends = stream("11", 100)
            .into_iter()
            .flat_map(|e| e.into_iter().filter(|p| p.2[1] & 0x80 != 0));
        assert_eq!(run(&mut r, ends), "11");
        assert!(r.current().unwrap().ended);
    }

    #[test]
    fn lost_end_packets_next_event_ends_previous() {
        let mut r = EventReceiver::new(8000).unwrap();
        // Repeated digit "11" too: only the timestamp separates the presses.
        let pk = stream("1123#", 100)
            .into_iter()
            .flat_map(|e| e.into_iter().filter(|p| p.2[1] & 0x80 == 0));
        assert_eq!(run(&mut r, pk), "1123#");
        let last = r.current().unwrap();
        assert_eq!((last.digit, last.ended, last.duration_ms), ('#', false, 80));
    }

    #[test]
    fn reordered_and_late_packets() {
        let mut r = EventReceiver::new(8000).unwrap();
        let events = stream("12", 100);
        let mut first = events[0].clone();
        first.swap(1, 3); // updates out of order
        first.swap(0, 2); // marker packet arrives third
        assert_eq!(run(&mut r, first[..6].iter().cloned()), "1");
        assert_eq!(r.current().unwrap().duration_ms, 100);
        // A stale update arriving after the end does not shorten the event.
        assert_eq!(run(&mut r, [events[0][1].clone()]), "");
        assert_eq!(r.current().unwrap().duration_ms, 100);
        // Digit 2 starts; a late retransmission of digit 1's end arrives after.
        assert_eq!(run(&mut r, events[1][..2].iter().cloned()), "2");
        assert_eq!(run(&mut r, [first[6].clone()]), "");
        assert_eq!(r.current().unwrap().digit, '2');
    }

    #[test]
    fn long_event_segments_are_one_press() {
        let mut r = EventReceiver::new(8000).unwrap();
        let pk = stream("5", 20_000).remove(0);
        assert!(
            pk.iter()
                .map(|p| p.0)
                .collect::<std::collections::HashSet<_>>()
                .len()
                == 3
        );
        assert_eq!(run(&mut r, pk), "5");
        let cur = r.current().unwrap();
        assert_eq!(
            (cur.duration_ms, cur.ended, cur.timestamp),
            (20_000, true, RtpTimestamp(12345))
        );
    }

    #[test]
    fn non_dtmf_events_and_garbage() {
        let mut r = EventReceiver::new(8000).unwrap();
        // RFC 4734 event 32 (ANS tone): tracked, not reported.
        assert_eq!(r.feed(RtpTimestamp(0), true, &[32, 10, 0, 160]).unwrap(), None);
        assert_eq!(r.current(), None);
        assert!(r.feed(RtpTimestamp(800), true, &[1, 10, 0]).is_err());
        let ev = r
            .feed(RtpTimestamp(800), true, &[1, 10, 0, 160])
            .unwrap()
            .unwrap();
        assert_eq!(ev.digit, '1');
        assert!(EventReceiver::new(0).is_err());
    }

    #[test]
    fn timestamp_discontinuity_starts_new_event() {
        let mut r = EventReceiver::new(8000).unwrap();
        assert!(r
            .feed(RtpTimestamp(10_000_000), true, &[1, 10, 0, 160])
            .unwrap()
            .is_some());
        // Far in the past: a stream restart, not a late packet.
        assert!(r.feed(RtpTimestamp(5), true, &[2, 10, 0, 160]).unwrap().is_some());
    }

    proptest! {
        #[test]
        fn random_input_never_panics(
            pk in proptest::collection::vec(
                (any::<u32>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..10)), 0..50)
        ) {
            let mut r = EventReceiver::new(8000).unwrap();
            for (ts, m, p) in pk {
                match r.feed(RtpTimestamp(ts), m, &p) {
                    Ok(Some(ev)) => prop_assert!(ev.volume <= 63),
                    Ok(None) => {}
                    Err(_) => prop_assert!(p.len() < 4),
                }
            }
        }
    }
}
