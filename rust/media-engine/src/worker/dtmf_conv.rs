//! DTMF across a transcoder whose two sides disagree on telephone-event
//! (RFC 4733 on one side only):
//!
//! - [`ToneOverlay`]: the input side sends RFC 4733 events, the output side
//!   has no telephone-event. Each key (once, whatever its updates and three
//!   final packets, §2.5.2) becomes its ITU-T Q.23 tone pair at the event's
//!   volume (§2.3.4: -dBm0), written over the outgoing audio from the first
//!   packet of the event for the event's duration (so until about its end
//!   packet), encoded with the output codec in the outgoing stream.
//! - [`EventOut`]: the input side has no telephone-event, the output side
//!   has. Tones found in the decoded input audio (Goertzel detector) go out
//!   as RFC 4733 events: a first packet with the marker bit, an update each
//!   ptime while the key is held, the final packet three times (§2.5.1).
//!   While the events are sent they take the place of the audio packets, so
//!   the tone itself is muted towards that side (no double detection by the
//!   receiver; RFC 4733 lets a source either send audio alongside its
//!   events or block it while it reports them); only the 26-38 ms the
//!   detector needs before it accepts a key pass as audio.

use media_core::dtmf::{DtmfDetector, EventReceiver, EventSender, ToneGenerator};
use media_core::rtp::RtpView;
use media_core::RtpTimestamp;
use std::time::{Duration, Instant};

/// No event packet for this long ends the tone even without its final
/// packet (all three lost, or a sender that stopped mid-event).
const EVENT_LOST_AFTER: Duration = Duration::from_millis(500);
/// After the last event packet the outgoing stream keeps going this long
/// (with silence once the tone is over), so a sender that paused its
/// audio for the event finds the stream still running when it resumes.
const HOLD_AFTER_EVENT: Duration = Duration::from_millis(60);
/// A key is played at least this long (ITU-T Q.24 accepts keys from
/// 40 ms), even when only its final packets arrived.
const MIN_TONE_MS: u64 = 50;
/// Longest in-band key sent as one event; a longer one ends there.
const MAX_KEY_MS: u32 = 60_000;
/// Volume reported for in-band keys (-dBm0; the level is not measured).
const INBAND_VOLUME: u8 = 10;

/// RFC 4733 events of the input turned into tones in the output audio.
pub(crate) struct ToneOverlay {
    receiver: EventReceiver,
    /// Sample rate and channels of the output PCM.
    rate: u32,
    channels: usize,
    tone: Option<ToneGenerator>,
    /// Samples (per channel) of the current tone played so far.
    played: u64,
    /// Length of the tone once its final packet is known.
    length: Option<u64>,
    last_packet: Option<Instant>,
    mono: Vec<i16>,
}

impl ToneOverlay {
    /// Events clocked at `event_rate` (the input codec's clock, §2.1),
    /// tones at the encoder's `rate` with `channels` interleaved.
    pub fn new(event_rate: u32, rate: u32, channels: u8) -> Option<Self> {
        Some(ToneOverlay {
            receiver: EventReceiver::new(event_rate).ok()?,
            rate,
            channels: usize::from(channels.max(1)),
            tone: None,
            played: 0,
            length: None,
            last_packet: None,
            mono: Vec::with_capacity(2048),
        })
    }

    /// One received telephone-event packet.
    pub fn on_event(&mut self, packet: &[u8], now: Instant) {
        let Ok(v) = RtpView::parse(packet) else { return };
        let new = match self.receiver.feed(v.timestamp(), v.marker(), v.payload()) {
            Ok(new) => new,
            Err(_) => return,
        };
        self.last_packet = Some(now);
        if let Some(e) = new {
            // §2.3.4: volume is the power level in -dBm0 (0..=63); both
            // frequencies get it.
            self.tone = ToneGenerator::dtmf(self.rate, e.digit, -f64::from(e.volume)).ok();
            self.played = 0;
            self.length = None;
        }
        match self.receiver.current() {
            // Not a DTMF event (or none): no tone.
            None => self.tone = None,
            Some(e) if e.ended && self.tone.is_some() => {
                let ms = u64::from(e.duration_ms).max(MIN_TONE_MS);
                self.length = Some(ms * u64::from(self.rate) / 1000);
            }
            Some(_) => {}
        }
    }

    /// True while a tone is to be sent or event packets are still
    /// arriving: the transcoder keeps producing frames even if the input
    /// audio paused.
    pub fn busy(&mut self, now: Instant) -> bool {
        self.active(now)
            || self
                .last_packet
                .is_some_and(|t| now.saturating_duration_since(t) < HOLD_AFTER_EVENT)
    }

    /// True while a tone is to be sent.
    pub fn active(&mut self, now: Instant) -> bool {
        if self.tone.is_some()
            && self.length.is_none()
            && self
                .last_packet
                .is_none_or(|t| now.saturating_duration_since(t) >= EVENT_LOST_AFTER)
        {
            self.tone = None;
        }
        self.tone.is_some()
    }

    /// Writes the tone over one interleaved output frame, if one is playing.
    pub fn fill(&mut self, frame: &mut [i16]) {
        let Some(g) = self.tone.as_mut() else { return };
        let n = frame.len() / self.channels;
        if self.channels == 1 {
            g.fill(frame);
        } else {
            self.mono.clear();
            g.generate(n, &mut self.mono);
            for (chunk, &s) in frame.chunks_mut(self.channels).zip(&self.mono) {
                chunk.fill(s);
            }
        }
        self.played += n as u64;
        if self.length.is_some_and(|l| self.played >= l) {
            self.tone = None;
        }
    }
}

/// In-band tones of the input sent as RFC 4733 events on the output.
pub(crate) struct EventOut {
    detector: DtmfDetector,
    sender: EventSender,
    /// Output telephone-event payload type.
    pt: u8,
    keys: Vec<char>,
    /// The key being sent, and a newer one waiting for it to end.
    sending: Option<char>,
    next: Option<char>,
}

impl EventOut {
    /// Detection on mono PCM at `pcm_rate`; events with payload type `pt`
    /// clocked at `event_rate` (the output codec's clock, §2.1), one packet
    /// per `ptime_ms`.
    pub fn new(pcm_rate: u32, pt: u8, event_rate: u32, ptime_ms: u32) -> Option<Self> {
        Some(EventOut {
            detector: DtmfDetector::new(pcm_rate).ok()?,
            sender: EventSender::new(event_rate, ptime_ms).ok()?,
            pt: pt & 0x7f,
            keys: Vec::with_capacity(4),
            sending: None,
            next: None,
        })
    }

    /// Decoded input audio.
    pub fn on_pcm(&mut self, pcm: &[i16]) {
        self.keys.clear();
        self.detector.feed_into(pcm, &mut self.keys);
        if let Some(&k) = self.keys.last() {
            self.next = Some(k);
        }
    }

    /// True while events are being (or are to be) sent.
    pub fn active(&self) -> bool {
        self.sender.is_active() || self.next.is_some()
    }

    /// Builds the event packet that takes the place of the audio packet
    /// with sequence number `seq` and timestamp `ts` into `out`; false
    /// (and `out` untouched) when no event is being sent.
    pub fn packet(&mut self, seq: u16, ts: u32, ssrc: u32, out: &mut Vec<u8>) -> bool {
        if self.sender.is_active() && (self.next.is_some() || self.detector.held() != self.sending) {
            // Released, or another key pressed: the final packets follow.
            self.sender.finish();
        }
        if !self.sender.is_active() {
            self.sending = None;
            let Some(k) = self.next.take() else { return false };
            // §2.5.1.2: the event's timestamp is its start, here the
            // sampling instant of the packet it replaces.
            if self
                .sender
                .start(k, MAX_KEY_MS, INBAND_VOLUME, RtpTimestamp(ts))
                .is_err()
            {
                return false;
            }
            self.sending = Some(k);
        }
        // RFC 3550 §5.1 header, the event's fields patched in after.
        out.clear();
        out.extend_from_slice(&[0x80, self.pt]);
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&ssrc.to_be_bytes());
        let Some(meta) = self.sender.next_packet(out) else {
            out.clear();
            return false;
        };
        if meta.marker {
            out[1] |= 0x80;
        }
        out[4..8].copy_from_slice(&meta.timestamp.0.to_be_bytes());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media_core::dtmf::{generate_dtmf, TelephoneEvent};

    #[test]
    fn inband_key_becomes_one_event_with_three_ends() {
        let mut e = EventOut::new(8000, 101, 8000, 20).unwrap();
        let mut pcm = vec![0i16; 800];
        pcm.extend(generate_dtmf(8000, '9', 200, -10.0).unwrap());
        pcm.resize(pcm.len() + 1600, 0);
        let mut out = Vec::new();
        let mut sent = Vec::new();
        for (i, frame) in pcm.chunks(160).enumerate() {
            e.on_pcm(frame);
            if e.packet(i as u16, 160 * i as u32, 9, &mut out) {
                sent.push(out.clone());
            }
        }
        let views: Vec<_> = sent.iter().map(|p| RtpView::parse(p).unwrap()).collect();
        let evs: Vec<_> = views
            .iter()
            .map(|v| TelephoneEvent::parse(v.payload()).unwrap())
            .collect();
        assert!(views[0].marker() && views.iter().skip(1).all(|v| !v.marker()));
        assert!(views
            .iter()
            .all(|v| v.payload_type().0 == 101 && v.timestamp() == views[0].timestamp()));
        assert!(evs.iter().all(|ev| ev.event == 9));
        assert_eq!(evs.iter().filter(|ev| ev.end).count(), 3);
        let d = evs.last().unwrap().duration;
        assert!((1200..=2000).contains(&d), "{d} units for a 200 ms key");
    }

    #[test]
    fn events_become_a_tone_for_their_duration_once() {
        let mut t = ToneOverlay::new(8000, 8000, 1).unwrap();
        let now = Instant::now();
        let packet = |marker: bool, end: bool, duration: u16| {
            let mut p = vec![
                0x80,
                101 | if marker { 0x80 } else { 0 },
                0,
                0,
                0,
                0,
                3,
                232,
                0,
                0,
                0,
                1,
            ];
            TelephoneEvent::new(5, end, 10, duration)
                .unwrap()
                .write_to(&mut p);
            p
        };
        let mut frames = 0;
        let mut frame = [0i16; 160];
        t.on_event(&packet(true, false, 160), now);
        assert!(t.active(now));
        for d in [320, 480, 640, 800, 800, 800] {
            if t.active(now) {
                t.fill(&mut frame);
                frames += 1;
            }
            t.on_event(&packet(false, d == 800, d), now);
        }
        while t.active(now) {
            t.fill(&mut frame);
            frames += 1;
            assert!(frames < 100);
        }
        assert_eq!(frames, 5, "100 ms of tone in 20 ms frames");
        // A retransmitted end packet does not restart the key.
        t.on_event(&packet(false, true, 800), now);
        assert!(!t.active(now));
    }
}
