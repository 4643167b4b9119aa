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

#[cfg(test)]
mod tests {
    use super::*;
    use media_core::codec::g711::linear_to_ulaw;
    use media_core::dtmf::{generate_dtmf, EventSender};

    fn packet(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn keys(d: &mut DtmfIn, packets: &[Vec<u8>]) -> Vec<KeyPress> {
        let mut out = Vec::new();
        for p in packets {
            d.on_rtp(p, |k| out.push(k));
        }
        out
    }

    #[test]
    fn rfc4733_keys_once_each_even_duplicated_and_per_stream() {
        let mut d = DtmfIn::new(Some(101), None, 8000).unwrap();
        let mut packets = Vec::new();
        let mut s = EventSender::new(8000, 20).unwrap();
        s.start('8', 100, 10, media_core::RtpTimestamp(800)).unwrap();
        let mut body = Vec::new();
        let mut seq = 0;
        while let Some(m) = {
            body.clear();
            s.next_packet(&mut body)
        } {
            let p = packet(101, m.marker, seq, m.timestamp.0, 1, &body);
            packets.push(p.clone());
            packets.push(p);
            seq += 1;
        }
        let got = keys(&mut d, &packets);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].digit, got[0].source), ('8', DtmfSource::Rfc4733));
        // The same packets from another SSRC are another press.
        let other: Vec<_> = packets
            .iter()
            .map(|p| {
                let mut p = p.clone();
                p[8..12].copy_from_slice(&2u32.to_be_bytes());
                p
            })
            .collect();
        assert_eq!(keys(&mut d, &other).len(), 1);
    }

    #[test]
    fn inband_tones_in_pcmu_are_detected_other_payload_types_ignored() {
        let pcmu = LegCodec::new("PCMU", 8000, 0);
        let mut d = DtmfIn::new(None, Some(&pcmu), 8000).unwrap();
        let mut pcm = generate_dtmf(8000, '6', 100, -10.0).unwrap();
        pcm.resize(pcm.len() + 800, 0);
        let frames: Vec<Vec<u8>> = pcm
            .chunks(160)
            .map(|c| c.iter().map(|&x| linear_to_ulaw(x)).collect())
            .collect();
        let as_pcma: Vec<_> = frames
            .iter()
            .enumerate()
            .map(|(i, f)| packet(8, false, i as u16, 160 * i as u32, 5, f))
            .collect();
        assert!(keys(&mut d, &as_pcma).is_empty(), "not the leg's payload type");
        let as_pcmu: Vec<_> = frames
            .iter()
            .enumerate()
            .map(|(i, f)| packet(0, false, 100 + i as u16, 160 * i as u32, 6, f))
            .collect();
        let got = keys(&mut d, &as_pcmu);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].digit, got[0].source), ('6', DtmfSource::Inband));
        assert!(got[0].duration_ms > 0);
    }
}
