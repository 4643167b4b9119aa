//! The worker half of playback and DTMF sending: a leg's own outgoing RTP
//! stream and what is being injected into it, paced at ptime on the media
//! tick.
//!
//! Each leg has one engine-originated stream ([`OutStream`]): its own SSRC
//! (RFC 3550 §8.1: chosen at random), sequence numbers and timestamps that
//! continue from one prompt or DTMF burst to the next, the timestamp
//! advancing by the real time in between (§5.1), and the marker bit on the
//! first packet of each (RFC 3551 §4.1; RFC 4733 §2.5.1.2 for events).
//! While something is injected, the partner's media towards the leg is
//! withheld, so the endpoint hears the announcement instead of the call.

use crate::config::LegCodec;
use media_core::codec::Encoder;
use media_core::dtmf::EventSender;
use media_core::RtpTimestamp;
use std::time::{Duration, Instant};

/// Packets produced per tick at most; a worker that fell further behind
/// skips ahead instead of bursting.
const MAX_CATCH_UP: u32 = 4;

/// A leg's engine-originated RTP stream.
#[derive(Debug)]
pub(crate) struct OutStream {
    pub ssrc: u32,
    seq: u16,
    ts: u32,
    last: Option<Instant>,
}

impl OutStream {
    pub fn new(seed: u32) -> Self {
        // A cheap scramble of the seed (time and ids) for SSRC, initial
        // sequence number and timestamp (RFC 3550 §5.1: random starts).
        let mix = |x: u32| {
            let x = (x ^ (x >> 16)).wrapping_mul(0x7feb_352d);
            let x = (x ^ (x >> 15)).wrapping_mul(0x846c_a68b);
            x ^ (x >> 16)
        };
        OutStream {
            ssrc: mix(seed),
            seq: mix(seed ^ 0x5555) as u16,
            ts: mix(seed ^ 0xaaaa_0000),
            last: None,
        }
    }

    /// The timestamp keeps counting sampling instants across the silence
    /// since the previous injection (RFC 3550 §5.1).
    fn resume(&mut self, now: Instant, clock_rate: u32) {
        if let Some(last) = self.last {
            let gap = now.saturating_duration_since(last).as_micros() as u64;
            self.ts = self
                .ts
                .wrapping_add((gap * u64::from(clock_rate) / 1_000_000) as u32);
        }
    }

    /// RFC 3550 §5.1 fixed header; the sequence number advances when the
    /// packet is sent.
    fn header(&self, out: &mut Vec<u8>, pt: u8, marker: bool, ts: u32) {
        out.clear();
        out.extend_from_slice(&[0x80, (pt & 0x7f) | if marker { 0x80 } else { 0 }]);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&ts.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
    }
}

pub(crate) enum Source {
    /// PCM at the encoder's rate (a prompt, or generated in-band DTMF).
    Audio {
        pcm: Vec<i16>,
        pos: usize,
        /// Rounds left after this one; `None`: forever.
        loops_left: Option<u32>,
        encoder: Box<dyn Encoder>,
        /// Play id for `PlayEnded`; `None` for in-band DTMF.
        play: Option<u64>,
    },
    /// RFC 4733 events, one digit after the other.
    Events {
        sender: EventSender,
        /// Digits still to send, the next one last.
        digits: Vec<char>,
        pt: u8,
        duration_ms: u32,
        volume: u8,
        pause_ticks: u32,
        /// Ticks of pause left before the next digit.
        wait: u32,
    },
}

/// Something being sent into a leg.
pub(crate) struct Injection {
    source: Source,
    /// Payload type of the audio codec.
    pt: u8,
    clock_rate: u32,
    ptime: Duration,
    /// RTP units and PCM samples per packet.
    ts_step: u32,
    frame: usize,
    next_due: Option<Instant>,
    first: bool,
    pub duration: Option<Duration>,
    packet: Vec<u8>,
}

/// How a tick left the injection.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    Running,
    /// Everything was sent; carries the play id of a prompt.
    Done(Option<u64>),
}

impl Injection {
    pub fn new(source: Source, codec: &LegCodec, duration: Option<Duration>) -> Self {
        let frame = match &source {
            Source::Audio { encoder, .. } => (encoder.sample_rate() * codec.ptime_ms / 1000) as usize,
            Source::Events { .. } => 0,
        };
        Injection {
            source,
            pt: codec.payload_type & 0x7f,
            clock_rate: codec.clock_rate,
            ptime: Duration::from_millis(u64::from(codec.ptime_ms)),
            ts_step: codec.clock_rate * codec.ptime_ms / 1000,
            frame,
            next_due: None,
            first: true,
            duration,
            packet: Vec::with_capacity(1500),
        }
    }

    /// The play id, if this is a prompt.
    pub fn play(&self) -> Option<u64> {
        match &self.source {
            Source::Audio { play, .. } => *play,
            Source::Events { .. } => None,
        }
    }

    /// Sends the packets due at `now` through `send`.
    pub fn run(&mut self, out: &mut OutStream, now: Instant, mut send: impl FnMut(&[u8])) -> Progress {
        let mut due = match self.next_due {
            Some(d) => d,
            None => {
                out.resume(now, self.clock_rate);
                now
            }
        };
        let mut produced = 0;
        while due <= now {
            if produced == MAX_CATCH_UP {
                due = now + self.ptime;
                break;
            }
            produced += 1;
            due += self.ptime;
            let done = self.one_packet(out);
            out.ts = out.ts.wrapping_add(self.ts_step);
            out.last = Some(now);
            if let Some(p) = done {
                return Progress::Done(p);
            }
            if !self.packet.is_empty() {
                out.seq = out.seq.wrapping_add(1);
                send(&self.packet);
            }
        }
        self.next_due = Some(due);
        Progress::Running
    }

    /// Builds the next packet into `self.packet` (left empty for a pause);
    /// `Some(play)` when the injection has nothing more to send.
    fn one_packet(&mut self, out: &mut OutStream) -> Option<Option<u64>> {
        self.packet.clear();
        match &mut self.source {
            Source::Audio {
                pcm,
                pos,
                loops_left,
                encoder,
                play,
            } => {
                if *pos >= pcm.len() {
                    match loops_left {
                        Some(0) => return Some(*play),
                        Some(n) => *n -= 1,
                        None => {}
                    }
                    *pos = 0;
                }
                let end = (*pos + self.frame).min(pcm.len());
                let marker = std::mem::take(&mut self.first);
                out.header(&mut self.packet, self.pt, marker, out.ts);
                let r = if end - *pos == self.frame {
                    encoder.encode(&pcm[*pos..end], &mut self.packet)
                } else {
                    // The last partial frame, padded with silence.
                    let mut last = pcm[*pos..end].to_vec();
                    last.resize(self.frame, 0);
                    encoder.encode(&last, &mut self.packet)
                };
                *pos = end;
                if r.is_err() {
                    self.packet.clear();
                }
                None
            }
            Source::Events {
                sender,
                digits,
                pt,
                duration_ms,
                volume,
                pause_ticks,
                wait,
            } => {
                if !sender.is_active() {
                    if *wait > 0 {
                        *wait -= 1;
                        return None;
                    }
                    let digit = digits.pop()?;
                    // Validated when the request was made.
                    if sender
                        .start(digit, *duration_ms, *volume, RtpTimestamp(out.ts))
                        .is_err()
                    {
                        return None;
                    }
                }
                // Header first with the event's fields patched in after:
                // the payload is appended in place (no per-packet buffer).
                out.header(&mut self.packet, *pt, false, 0);
                match sender.next_packet(&mut self.packet) {
                    Some(meta) => {
                        if let Some(b) = self.packet.get_mut(1) {
                            *b |= if meta.marker { 0x80 } else { 0 };
                        }
                        if let Some(ts) = self.packet.get_mut(4..8) {
                            ts.copy_from_slice(&meta.timestamp.0.to_be_bytes());
                        }
                    }
                    None => {
                        // The event ended with its last retransmission
                        // (§2.5.1.4); this tick is the pause's first.
                        self.packet.clear();
                        *wait = pause_ticks.saturating_sub(1);
                        if digits.is_empty() {
                            return Some(None);
                        }
                    }
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playback::{self, DtmfOptions};
    use media_core::dtmf::TelephoneEvent;
    use media_core::rtp::RtpView;

    fn run_all(inj: &mut Injection, out: &mut OutStream, ms: u64) -> (Vec<Vec<u8>>, Progress) {
        let t0 = Instant::now();
        let mut pkts = Vec::new();
        let mut p = Progress::Running;
        for i in 0..ms / 10 {
            p = inj.run(out, t0 + Duration::from_millis(i * 10), |b| pkts.push(b.to_vec()));
            if p != Progress::Running {
                break;
            }
        }
        (pkts, p)
    }

    #[test]
    fn rfc4733_digits_with_three_end_packets_and_one_stream() {
        let pcmu = LegCodec::new("PCMU", 8000, 0);
        let o = DtmfOptions::default();
        let mut inj = playback::dtmf("12", &pcmu, Some(101), &o, 9).unwrap();
        let mut out = OutStream::new(7);
        let (pkts, p) = run_all(&mut inj, &mut out, 2000);
        assert_eq!(p, Progress::Done(None));
        let views: Vec<_> = pkts.iter().map(|b| RtpView::parse(b).unwrap()).collect();
        for w in views.windows(2) {
            assert_eq!(w[1].sequence().diff(w[0].sequence()), 1);
            assert_eq!(w[0].ssrc(), w[1].ssrc());
        }
        let evs: Vec<_> = views
            .iter()
            .map(|v| {
                (
                    v.marker(),
                    v.timestamp(),
                    TelephoneEvent::parse(v.payload()).unwrap(),
                )
            })
            .collect();
        for digit in [1u8, 2] {
            let of: Vec<_> = evs.iter().filter(|e| e.2.event == digit).collect();
            assert!(
                of[0].0 && of.iter().skip(1).all(|e| !e.0),
                "marker on the first only"
            );
            assert_eq!(of.iter().filter(|e| e.2.end).count(), 3);
            assert_eq!(of.last().unwrap().2.duration, 800);
            assert!(of.iter().all(|e| e.1 == of[0].1 && e.2.volume == 10));
        }
    }

    #[test]
    fn successive_prompts_continue_one_stream_with_a_marker_each() {
        let pcmu = LegCodec::new("PCMU", 8000, 0);
        let prompt = |n: usize| {
            let enc = media_core::codec::encoder("PCMU", 8000, 1, &Default::default()).unwrap();
            let source = Source::Audio {
                pcm: vec![1000; n],
                pos: 0,
                loops_left: Some(0),
                encoder: enc,
                play: Some(7),
            };
            Injection::new(source, &pcmu, None)
        };
        let mut out = OutStream::new(42);
        let t0 = Instant::now();
        let mut first = prompt(800); // 100 ms: 5 packets
        let mut pkts = Vec::new();
        let mut done = None;
        for i in 0..20u64 {
            match first.run(&mut out, t0 + Duration::from_millis(10 * i), |b| {
                pkts.push(b.to_vec())
            }) {
                Progress::Running => {}
                p => {
                    done = Some(p);
                    break;
                }
            }
        }
        assert_eq!(done, Some(Progress::Done(Some(7))));
        assert_eq!(pkts.len(), 5, "the last partial frame is padded, nothing more");
        // One second later a second prompt: same SSRC, next sequence number,
        // timestamp advanced by the pause (RFC 3550 5.1), marker again.
        let mut second = prompt(160);
        let later = t0 + Duration::from_millis(1200);
        second.run(&mut out, later, |b| pkts.push(b.to_vec()));
        let v: Vec<_> = pkts.iter().map(|b| RtpView::parse(b).unwrap()).collect();
        assert!(v[0].marker() && !v[1].marker() && v[5].marker());
        for w in v.windows(2) {
            assert_eq!(w[1].sequence().diff(w[0].sequence()), 1);
            assert_eq!(w[1].ssrc(), w[0].ssrc());
        }
        let gap = v[5].timestamp().diff(v[4].timestamp());
        assert!((8000..=9600).contains(&gap), "{gap} units for ~1.1 s");
    }
}
