//! Sender side of RFC 4733 (§2.5.1): turns one key press into the sequence
//! of telephone-event packets. Sans-IO: the caller asks for the next packet
//! once per packetization interval and puts it in an RTP packet with its own
//! sequence number (§2.5.1.6: every packet, retransmissions included, takes
//! the next sequence number).

use super::events::{event_for_digit, TelephoneEvent, MAX_VOLUME};
use crate::error::{Error, Result};
use crate::types::RtpTimestamp;

/// Largest duration one event report can carry (§2.3.5, §2.5.1.3).
const MAX_SEGMENT: u64 = 0xFFFF;
/// §2.5.1.4: the final packet of an event (and of each segment) is sent
/// a total of three times.
const FINAL_SENDS: u8 = 3;

/// RTP header fields of one packet produced by [`EventSender::next_packet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventPacketMeta {
    /// RTP marker bit: set on the first packet of the event only (§2.5.1.2).
    pub marker: bool,
    /// RTP timestamp: the start of the event, or of the current segment
    /// of a long event (§2.5.1.2, §2.5.1.3).
    pub timestamp: RtpTimestamp,
}

#[derive(Debug)]
struct Active {
    event: u8,
    volume: u8,
    start_ts: RtpTimestamp,
    /// Whole event length in timestamp units.
    total: u64,
    /// Packets produced so far (one per packetization interval).
    tick: u64,
    /// Index of the segment being reported (§2.5.1.3).
    segment: u64,
    /// Sends left of the previous segment's final packet.
    segment_repeats: u8,
    /// Sends left of the event's final packet, once it has been sent.
    end_repeats: Option<u8>,
    /// Duration field of the event's final packet.
    final_duration: u16,
}

/// Produces the packets of one event at a time (RFC 4733 §2.5.1).
///
/// Packet `i` reports the duration `min((i + 1) × ptime, total)`; one packet
/// is meant to be sent every ptime. The first packet has the marker bit; all
/// packets of a segment carry its start timestamp; the final packet has the
/// E bit and is sent three times; an event longer than 0xFFFF units is split
/// into segments whose final packets (duration 0xFFFF, no E bit) are also
/// sent three times.
#[derive(Debug)]
pub struct EventSender {
    clock_rate: u32,
    ptime_units: u64,
    active: Option<Active>,
}

impl EventSender {
    /// `clock_rate` of the telephone-event payload type (8000 in most SDP,
    /// or the audio codec's rate, §2.1) and the update interval `ptime_ms`.
    pub fn new(clock_rate: u32, ptime_ms: u32) -> Result<Self> {
        if !(1000..=192_000).contains(&clock_rate) {
            return Err(Error::invalid(format!("telephone-event clock rate {clock_rate}")));
        }
        let ptime_units = u64::from(clock_rate) * u64::from(ptime_ms) / 1000;
        // A segment must span several updates so its end can be repeated.
        if ptime_units == 0 || ptime_units * 4 > MAX_SEGMENT {
            return Err(Error::invalid(format!(
                "telephone-event ptime {ptime_ms} ms at {clock_rate} Hz"
            )));
        }
        Ok(EventSender {
            clock_rate,
            ptime_units,
            active: None,
        })
    }

    /// Starts sending the DTMF `digit` (see [`event_for_digit`]) for
    /// `duration_ms` at `volume` (-dBm0, 0..=63) from RTP time `start_ts`.
    pub fn start(&mut self, digit: char, duration_ms: u32, volume: u8, start_ts: RtpTimestamp) -> Result<()> {
        let event =
            event_for_digit(digit).ok_or_else(|| Error::invalid(format!("not a DTMF digit: {digit:?}")))?;
        self.start_event(event, duration_ms, volume, start_ts)
    }

    /// Like [`start`](Self::start) with a raw event code (e.g. RFC 4734 tones).
    pub fn start_event(
        &mut self,
        event: u8,
        duration_ms: u32,
        volume: u8,
        start_ts: RtpTimestamp,
    ) -> Result<()> {
        if self.active.is_some() {
            return Err(Error::invalid("telephone-event: an event is still being sent"));
        }
        if volume > MAX_VOLUME {
            return Err(Error::invalid(format!(
                "telephone-event volume {volume} out of range 0..=63"
            )));
        }
        let total = u64::from(self.clock_rate) * u64::from(duration_ms) / 1000;
        if total == 0 {
            return Err(Error::invalid(format!(
                "telephone-event duration {duration_ms} ms"
            )));
        }
        self.active = Some(Active {
            event,
            volume,
            start_ts,
            total,
            tick: 0,
            segment: 0,
            segment_repeats: 0,
            end_repeats: None,
            final_duration: 0,
        });
        Ok(())
    }

    /// True while packets of an event remain to be sent.
    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    /// Abandons the current event without sending its end (the receiver
    /// ends it when the next event's timestamp arrives, §2.5.2).
    pub fn cancel(&mut self) {
        self.active = None;
    }

    /// Ends the current event at the duration reported so far (for a key
    /// whose length was not known when it started, e.g. one detected
    /// in-band): the next packet is the final one, sent three times
    /// (§2.5.1.4). Does nothing when idle or already ending.
    pub fn finish(&mut self) {
        if let Some(a) = self.active.as_mut().filter(|a| a.end_repeats.is_none()) {
            // At least one update into the current segment, so the final
            // packet never reports a zero duration.
            let floor = (a.segment * MAX_SEGMENT + 1).max(self.ptime_units);
            a.total = a.total.min((a.tick * self.ptime_units).max(floor));
        }
    }

    /// Appends the payload of the next packet to `out` and returns its RTP
    /// header fields, or `None` when the event is over.
    pub fn next_packet(&mut self, out: &mut Vec<u8>) -> Option<EventPacketMeta> {
        let a = self.active.as_mut()?;
        let marker = a.tick == 0;
        let start_ts = a.start_ts;
        // Segment timestamps advance by 0xFFFF, wrapping in 32 bits.
        let seg_ts = |seg: u64| start_ts.wrapping_add((seg * MAX_SEGMENT) as u32);
        let (timestamp, end, duration) = if let Some(left) = a.end_repeats {
            // §2.5.1.4: retransmission of the final packet.
            if left == 0 {
                self.active = None;
                return None;
            }
            a.end_repeats = Some(left - 1);
            (seg_ts(a.segment), true, a.final_duration)
        } else if a.segment_repeats > 0 {
            // §2.5.1.4 applied to the final packet of the previous segment.
            a.segment_repeats -= 1;
            (seg_ts(a.segment - 1), false, MAX_SEGMENT as u16)
        } else {
            let now = ((a.tick + 1) * self.ptime_units).min(a.total);
            let in_segment = now - a.segment * MAX_SEGMENT;
            if in_segment > MAX_SEGMENT || (in_segment == MAX_SEGMENT && now < a.total) {
                // §2.5.1.3: report the maximum duration without the E bit,
                // then continue in a new segment starting where this one ends.
                let ts = seg_ts(a.segment);
                a.segment += 1;
                a.segment_repeats = FINAL_SENDS - 1;
                (ts, false, MAX_SEGMENT as u16)
            } else {
                let end = now == a.total;
                let duration = in_segment as u16; // <= MAX_SEGMENT by the branch above
                if end {
                    a.end_repeats = Some(FINAL_SENDS - 1);
                    a.final_duration = duration;
                }
                (seg_ts(a.segment), end, duration)
            }
        };
        a.tick += 1;
        TelephoneEvent {
            event: a.event,
            end,
            volume: a.volume,
            duration,
        }
        .write_to(out);
        Some(EventPacketMeta { marker, timestamp })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Runs the sender to completion: (meta, parsed payload) per packet.
    fn drain(s: &mut EventSender) -> Vec<(EventPacketMeta, TelephoneEvent)> {
        let mut v = Vec::new();
        let mut buf = Vec::new();
        while let Some(meta) = s.next_packet(&mut buf) {
            assert_eq!(buf.len(), 4);
            v.push((meta, TelephoneEvent::parse(&buf).unwrap()));
            buf.clear();
            assert!(v.len() < 100_000, "sender never ends");
        }
        v
    }

    #[test]
    fn finish_ends_a_long_event_at_what_was_reported() {
        let mut s = EventSender::new(8000, 20).unwrap();
        s.start('9', 60_000, 10, RtpTimestamp(0)).unwrap();
        let mut buf = Vec::new();
        for _ in 0..5 {
            s.next_packet(&mut buf).unwrap();
        }
        s.finish();
        let p = drain(&mut s);
        let durations: Vec<u16> = p.iter().map(|(_, e)| e.duration).collect();
        assert_eq!(durations, [800, 800, 800]);
        assert!(p.iter().all(|(m, e)| e.end && !m.marker));
        // Finished before its first packet: one update's worth, still once.
        s.start('1', 60_000, 10, RtpTimestamp(0)).unwrap();
        s.finish();
        let p = drain(&mut s);
        assert_eq!(p.len(), 3);
        assert!(p[0].0.marker && p.iter().all(|(_, e)| e.end && e.duration == 160));
    }

    #[test]
    fn hundred_ms_digit_at_20ms_ptime() {
        let mut s = EventSender::new(8000, 20).unwrap();
        s.start('5', 100, 10, RtpTimestamp(1000)).unwrap();
        let p = drain(&mut s);
        let durations: Vec<u16> = p.iter().map(|(_, e)| e.duration).collect();
        assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800]);
        let ends: Vec<bool> = p.iter().map(|(_, e)| e.end).collect();
        assert_eq!(ends, [false, false, false, false, true, true, true]);
        let markers: Vec<bool> = p.iter().map(|(m, _)| m.marker).collect();
        assert_eq!(markers, [true, false, false, false, false, false, false]);
        assert!(p
            .iter()
            .all(|(m, e)| m.timestamp == RtpTimestamp(1000) && e.event == 5 && e.volume == 10));
        assert!(!s.is_active());
        // Restartable once done.
        s.start('#', 40, 10, RtpTimestamp(5000)).unwrap();
        assert_eq!(drain(&mut s).len(), 2 + 2);
    }

    #[test]
    fn duration_not_multiple_of_ptime_and_shorter_than_ptime() {
        let mut s = EventSender::new(8000, 20).unwrap();
        s.start('1', 90, 0, RtpTimestamp(0)).unwrap();
        let d: Vec<(u16, bool)> = drain(&mut s).iter().map(|(_, e)| (e.duration, e.end)).collect();
        assert_eq!(
            d,
            [
                (160, false),
                (320, false),
                (480, false),
                (640, false),
                (720, true),
                (720, true),
                (720, true)
            ]
        );
        s.start('1', 10, 0, RtpTimestamp(0)).unwrap();
        let p = drain(&mut s);
        assert_eq!(p.len(), 3);
        assert!(p[0].0.marker && p.iter().all(|(_, e)| e.end && e.duration == 80));
    }

    #[test]
    fn long_event_is_segmented() {
        // 20 s at 8 kHz = 160000 units = 65535 + 65535 + 28930; start near wrap.
        let start = RtpTimestamp(u32::MAX - 100);
        let mut s = EventSender::new(8000, 20).unwrap();
        s.start('0', 20_000, 5, start).unwrap();
        let p = drain(&mut s);
        let seg1 = start.wrapping_add(65535);
        let seg2 = start.wrapping_add(2 * 65535);
        // Final packet of each segment: 0xFFFF without E, three times.
        for ts in [start, seg1] {
            let fin: Vec<_> = p
                .iter()
                .filter(|(m, e)| m.timestamp == ts && e.duration == 0xFFFF)
                .collect();
            assert_eq!(fin.len(), 3, "segment {ts:?}");
            assert!(fin.iter().all(|(_, e)| !e.end));
        }
        let last: Vec<_> = p.iter().filter(|(_, e)| e.end).collect();
        assert_eq!(last.len(), 3);
        assert!(last
            .iter()
            .all(|(m, e)| m.timestamp == seg2 && e.duration == 28930));
        assert_eq!(p.iter().filter(|(m, _)| m.marker).count(), 1);
        assert!(p[0].0.marker);
        // Only the three segment timestamps, in order, durations growing within each.
        let mut prev: Option<(RtpTimestamp, u16)> = None;
        for (m, e) in &p {
            assert!([start, seg1, seg2].contains(&m.timestamp));
            if let Some((pts, pd)) = prev {
                if pts == m.timestamp {
                    assert!(e.duration >= pd);
                } else {
                    assert_eq!(m.timestamp.diff(pts), 65535);
                }
            }
            prev = Some((m.timestamp, e.duration));
        }
    }

    #[test]
    fn segment_boundaries_exact() {
        // 255-unit updates reach 65535 exactly on an update (tick 257).
        let mut s = EventSender::new(12_750, 20).unwrap();
        s.start('1', 10_000, 0, RtpTimestamp(0)).unwrap();
        let p = drain(&mut s);
        let max: Vec<_> = p.iter().filter(|(_, e)| e.duration == 0xFFFF).collect();
        assert_eq!(max.len(), 3);
        assert!(max.iter().all(|(m, e)| m.timestamp == RtpTimestamp(0) && !e.end));
        let fin: Vec<_> = p.iter().filter(|(_, e)| e.end).collect();
        assert_eq!(fin.len(), 3);
        assert!(fin
            .iter()
            .all(|(m, e)| m.timestamp == RtpTimestamp(65535) && e.duration == 61_965)); // 127500 - 65535
                                                                                        // An event of exactly 0xFFFF units is one segment ending with E.
        let mut s = EventSender::new(65_535, 20).unwrap();
        s.start('1', 1000, 0, RtpTimestamp(0)).unwrap();
        let p = drain(&mut s);
        assert!(p.iter().all(|(m, _)| m.timestamp == RtpTimestamp(0)));
        let fin: Vec<_> = p.iter().filter(|(_, e)| e.end).collect();
        assert_eq!(fin.len(), 3);
        assert!(fin.iter().all(|(_, e)| e.duration == 0xFFFF));
    }

    #[test]
    fn bad_arguments_rejected() {
        assert!(EventSender::new(8000, 0).is_err());
        assert!(EventSender::new(0, 20).is_err());
        assert!(EventSender::new(8000, 3000).is_err());
        let mut s = EventSender::new(8000, 20).unwrap();
        assert!(s.start('x', 100, 10, RtpTimestamp(0)).is_err());
        assert!(s.start('1', 100, 64, RtpTimestamp(0)).is_err());
        assert!(s.start('1', 0, 10, RtpTimestamp(0)).is_err());
        assert!(!s.is_active());
        s.start('1', 100, 10, RtpTimestamp(0)).unwrap();
        assert!(s.start('2', 100, 10, RtpTimestamp(0)).is_err());
        s.cancel();
        assert!(s.next_packet(&mut Vec::new()).is_none());
    }

    proptest! {
        #[test]
        fn packets_account_for_the_whole_duration(
            clock in prop::sample::select(vec![8000u32, 16000, 48000]),
            ptime in prop::sample::select(vec![10u32, 20, 30, 60]),
            ms in 1u32..4000,
        ) {
            let mut s = EventSender::new(clock, ptime).unwrap();
            s.start('9', ms, 20, RtpTimestamp(7)).unwrap();
            let p = drain(&mut s);
            let total = u64::from(clock) * u64::from(ms) / 1000;
            // Sum over segments of the largest duration reported = total.
            let mut sum = 0u64;
            let mut cur: Option<(RtpTimestamp, u16)> = None;
            for (m, e) in &p {
                match cur {
                    Some((ts, d)) if ts == m.timestamp => cur = Some((ts, d.max(e.duration))),
                    Some((_, d)) => { sum += u64::from(d); cur = Some((m.timestamp, e.duration)); }
                    None => cur = Some((m.timestamp, e.duration)),
                }
            }
            sum += u64::from(cur.unwrap().1);
            prop_assert_eq!(sum, total);
            prop_assert!(p.iter().rev().take(3).all(|(_, e)| e.end));
            prop_assert_eq!(p.iter().filter(|(_, e)| e.end).count(), 3);
            prop_assert_eq!(p.iter().filter(|(m, _)| m.marker).count(), 1);
        }
    }
}
