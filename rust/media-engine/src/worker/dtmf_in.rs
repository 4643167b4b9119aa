//! Key presses received on a leg (what IVR menus listen to): RFC 4733
//! events through the core's `EventReceiver` (each key once, whatever
//! the retransmissions, §2.5.2) and in-band Q.23 tones through its Goertzel
//! detector on the leg's decoded audio. Runs on the packet path only for
//! legs with detection enabled.

use crate::config::LegCodec;
use crate::error::{Error, Result};
use crate::playback::DtmfSource;
use media_core::codec::{self, Decoder, Params};
use media_core::dtmf::{DtmfDetector, EventReceiver};
use media_core::rtp::RtpView;

/// A key press found in a received packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyPress {
    pub digit: char,
    pub duration_ms: u32,
    pub source: DtmfSource,
}

struct Inband {
    pt: u8,
    decoder: Box<dyn Decoder>,
    detector: DtmfDetector,
    /// Detection needs this many ms of tone (reported as the duration).
    detect_ms: u32,
    pcm: Vec<i16>,
    keys: Vec<char>,
}

pub(crate) struct DtmfIn {
    event_pt: Option<u8>,
    events: EventReceiver,
    ssrc: Option<u32>,
    inband: Option<Inband>,
}

impl DtmfIn {
    /// Detection for a leg with telephone-event PT `event_pt` (clocked like
    /// the leg's codec, RFC 4733 §2.1) and, when known, its audio `codec`.
    pub fn new(event_pt: Option<u8>, codec: Option<&LegCodec>, clock_rate: u32) -> Result<Self> {
        let events = EventReceiver::new(clock_rate).map_err(|e| Error::Invalid(e.to_string()))?;
        let inband = match codec {
            None => None,
            Some(c) => {
                // Opus decodes straight to 8 kHz: all the detector needs.
                let mut params = Params::new();
                if c.name.eq_ignore_ascii_case("opus") {
                    params.insert("sample_rate".into(), 8000);
                }
                let bad = |e: media_core::Error| Error::Invalid(format!("DTMF detection on {}: {e}", c.name));
                let decoder = codec::decoder(&c.name, c.clock_rate, c.channels, &params).map_err(bad)?;
                if decoder.channels() != 1 {
                    return Err(Error::Invalid(format!(
                        "DTMF detection on {}: mono codecs only",
                        c.name
                    )));
                }
                let rate = decoder.sample_rate();
                let detector = DtmfDetector::new(rate).map_err(bad)?;
                let detect_ms = (2 * detector.block_len() as u64 * 1000 / u64::from(rate)) as u32;
                Some(Inband {
                    pt: c.payload_type & 0x7f,
                    decoder,
                    detector,
                    detect_ms,
                    pcm: Vec::with_capacity(2048),
                    keys: Vec::with_capacity(4),
                })
            }
        };
        Ok(DtmfIn {
            event_pt,
            events,
            ssrc: None,
            inband,
        })
    }

    /// Looks at one accepted RTP packet; reports the keys that start in it.
    pub fn on_rtp(&mut self, data: &[u8], mut found: impl FnMut(KeyPress)) {
        let Ok(v) = RtpView::parse(data) else { return };
        let ssrc = v.ssrc().0;
        if self.ssrc != Some(ssrc) {
            // A new stream (RFC 3550 §8.2) starts afresh.
            self.ssrc = Some(ssrc);
            self.events.reset();
            if let Some(i) = self.inband.as_mut() {
                i.detector.reset();
            }
        }
        let pt = v.payload_type().0;
        if Some(pt) == self.event_pt {
            if let Ok(Some(e)) = self.events.feed(v.timestamp(), v.marker(), v.payload()) {
                found(KeyPress {
                    digit: e.digit,
                    duration_ms: e.duration_ms,
                    source: DtmfSource::Rfc4733,
                });
            }
            return;
        }
        let Some(i) = self.inband.as_mut().filter(|i| i.pt == pt) else {
            return;
        };
        i.pcm.clear();
        if i.decoder.decode(v.payload(), &mut i.pcm).is_err() {
            return;
        }
        i.keys.clear();
        i.detector.feed_into(&i.pcm, &mut i.keys);
        for &digit in &i.keys {
            found(KeyPress {
                digit,
                duration_ms: i.detect_ms,
                source: DtmfSource::Inband,
            });
        }
    }
}
