//! One transcoding direction: RTP of one codec in, RTP of another codec
//! (and/or another ptime) out. The receive side goes through the core's
//! jitter buffer, which decodes, conceals loss and paces playout; the
//! worker's media tick pops one output ptime at a time, resamples when the
//! codecs' sample rates differ, and encodes into freshly numbered RTP.
//!
//! The outgoing stream is a new RTP stream (RFC 3550 §7.1: a translator
//! that changes the encoding is a new source): own SSRC, sequence numbers
//! and timestamps; the marker bit opens each talkspurt (RFC 3551 §4.1).

use super::dtmf_conv::{EventOut, ToneOverlay};
use crate::config::LegCodec;
use crate::error::{Error, Result};
use media_core::codec::{self, Encoder, Params};
use media_core::jitter::{JitterBuffer, JitterConfig};
use media_core::resample::Resampler;
use media_core::rtp::RtpView;
use media_core::PayloadType;
use std::time::{Duration, Instant};

/// Input silent this long, with nothing left in the jitter buffer, ends
/// the outgoing talkspurt: no concealment is sent into a pause (hold, DTX,
/// end of call); the next packet starts a new talkspurt.
const IDLE_AFTER: Duration = Duration::from_millis(60);
/// Input silent this long ends the talkspurt even with packets buffered
/// (they can only be far ahead of real time).
const IDLE_HARD: Duration = Duration::from_millis(1000);
/// Frames produced per tick at most; a worker that fell further behind
/// skips ahead instead of bursting.
const MAX_CATCH_UP: u32 = 4;

/// PCM rates opus can be run at (RFC 6716 §2: 8 to 48 kHz).
const OPUS_PCM_RATES: [u32; 5] = [8000, 12000, 16000, 24000, 48000];

fn is_opus(c: &LegCodec) -> bool {
    c.name.eq_ignore_ascii_case("opus")
}

/// Codec params for both sides. An opus side runs at the other side's PCM
/// rate when opus supports it (RFC 7587 §4.1: the RTP clock stays 48 kHz
/// whatever the PCM rate), so PCMU <-> opus needs no resampler and no
/// 48 kHz processing; nothing audible is lost, the other side being
/// narrower anyway.
fn pcm_rates(from: &LegCodec, to: &LegCodec) -> media_core::Result<(Params, Params)> {
    let plain = Params::new();
    let rate_of =
        |c: &LegCodec| codec::decoder(&c.name, c.clock_rate, c.channels, &plain).map(|d| d.sample_rate());
    let with_rate = |r: u32| Params::from([("sample_rate".to_string(), i64::from(r))]);
    Ok(match (is_opus(from), is_opus(to)) {
        (true, false) => {
            let r = rate_of(to)?;
            (
                if OPUS_PCM_RATES.contains(&r) {
                    with_rate(r)
                } else {
                    plain.clone()
                },
                plain,
            )
        }
        (false, true) => {
            let r = rate_of(from)?;
            (
                plain.clone(),
                if OPUS_PCM_RATES.contains(&r) {
                    with_rate(r)
                } else {
                    plain
                },
            )
        }
        _ => (plain.clone(), plain),
    })
}

pub(crate) struct Transcoder {
    jb: JitterBuffer,
    resampler: Option<Resampler>,
    encoder: Box<dyn Encoder>,
    /// Interleaved encoder samples per output packet.
    frame: usize,
    /// RTP clock units per output packet.
    ts_step: u32,
    ptime: Duration,
    out_pt: u8,
    ssrc: u32,
    seq: u16,
    ts: u32,
    pcm: Vec<i16>,
    resampled: Vec<i16>,
    fifo: Vec<i16>,
    packet: Vec<u8>,
    /// When the next output packet is due; `None` while idle.
    next_due: Option<Instant>,
    /// Start of the current talkspurt's timeline, for timestamp continuity.
    last_push: Option<Instant>,
    stopped_at: Option<Instant>,
    marker: bool,
    pub errors: u64,
    events: EventMap,
    event_packet: Vec<u8>,
    /// PCM rates of the decoder and encoder, output channels and ptime.
    dec_rate: u32,
    enc_rate: u32,
    channels: u8,
    ptime_ms: u32,
    /// RFC 4733 events in, no telephone-event out: keys become tones.
    tones: Option<Box<ToneOverlay>>,
    /// No telephone-event in, RFC 4733 out: in-band keys become events.
    inband: Option<Box<EventOut>>,
    /// RFC 3550 §6.4.1 sender info of the outgoing stream.
    pub sent: SenderCounts,
}

/// What a sender report says about the stream a transcoder sends
/// (RFC 3550 §6.4.1): packets and payload octets so far (wrapping), and
/// the RTP timestamp of one sampling instant to extrapolate from.
#[derive(Copy, Clone, Debug, Default)]
pub(crate) struct SenderCounts {
    pub packets: u32,
    pub octets: u32,
    /// (sampling instant, its RTP timestamp) of the last audio packet.
    anchor: Option<(Instant, u32)>,
    clock_rate: u32,
}

impl SenderCounts {
    fn count(&mut self, packet_len: usize) {
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(packet_len.saturating_sub(12) as u32);
    }

    /// The RTP timestamp corresponding to `now` (§6.4.1: "the same time as
    /// the NTP timestamp, but in the units of the RTP timestamp").
    pub fn rtp_timestamp_at(&self, now: Instant) -> Option<u32> {
        let (at, ts) = self.anchor?;
        let ahead = now.saturating_duration_since(at).as_micros() as u64;
        let behind = at.saturating_duration_since(now).as_micros() as u64;
        let units = |us: u64| (us * u64::from(self.clock_rate) / 1_000_000) as u32;
        Some(ts.wrapping_add(units(ahead)).wrapping_sub(units(behind)))
    }
}

/// RFC 4733 telephone-events across a transcoder: the payload type of each
/// side, each clocked like its side's codec (§2.1), and the timestamp
/// mapping of the event being carried.
#[derive(Copy, Clone, Debug, Default)]
struct EventMap {
    in_pt: Option<u8>,
    out_pt: Option<u8>,
    in_rate: u32,
    out_rate: u32,
    /// (input timestamp, output timestamp) the current events count from.
    base: Option<(u32, u32)>,
}

impl Transcoder {
    /// Decodes `from` and encodes `to` (with `to`'s ptime and payload type).
    pub fn new(from: &LegCodec, to: &LegCodec, ssrc: u32, opus_complexity: u8) -> Result<Self> {
        let bad =
            |e: media_core::Error| Error::Invalid(format!("transcoding {} -> {}: {e}", from.name, to.name));
        let (dec_params, mut enc_params) = pcm_rates(from, to).map_err(bad)?;
        if is_opus(to) {
            enc_params.insert("complexity".into(), i64::from(opus_complexity.min(10)));
        }
        if !(10..=120).contains(&to.ptime_ms) || !to.ptime_ms.is_multiple_of(10) {
            return Err(Error::Invalid(format!(
                "ptime {} ms: 10..=120 in steps of 10",
                to.ptime_ms
            )));
        }
        let decoder = codec::decoder(&from.name, from.clock_rate, from.channels, &dec_params).map_err(bad)?;
        let encoder = codec::encoder(&to.name, to.clock_rate, to.channels, &enc_params).map_err(bad)?;
        if decoder.channels() != encoder.channels() {
            return Err(Error::Invalid(format!(
                "transcoding {} -> {}: channel counts differ",
                from.name, to.name
            )));
        }
        let dec_rate = decoder.sample_rate();
        let cfg = JitterConfig {
            clock_rate: from.clock_rate,
            ptime_ms: to.ptime_ms,
            payload_type: Some(PayloadType(from.payload_type)),
            ..JitterConfig::default()
        };
        let jb = JitterBuffer::new(cfg, decoder).map_err(bad)?;
        let enc_rate = encoder.sample_rate();
        let resampler = if dec_rate == enc_rate {
            None
        } else {
            Some(Resampler::new(dec_rate, enc_rate, to.channels).map_err(bad)?)
        };
        let frame = (enc_rate * to.ptime_ms / 1000) as usize * usize::from(to.channels);
        // A frame the encoder refuses (e.g. 30 ms of opus, RFC 6716 §2.1.4)
        // is found now, not on every packet of the call.
        let mut encoder = encoder;
        encoder
            .encode(&vec![0; frame], &mut Vec::new())
            .map_err(|e| Error::Invalid(format!("{} with ptime {} ms: {e}", to.name, to.ptime_ms)))?;
        Ok(Transcoder {
            jb,
            resampler,
            encoder,
            frame,
            ts_step: to.clock_rate * to.ptime_ms / 1000,
            ptime: Duration::from_millis(u64::from(to.ptime_ms)),
            out_pt: to.payload_type & 0x7f,
            ssrc,
            seq: (ssrc >> 7) as u16,
            ts: ssrc.rotate_left(13),
            pcm: Vec::with_capacity(frame * 2),
            resampled: Vec::with_capacity(frame * 2),
            fifo: Vec::with_capacity(frame * 3),
            packet: Vec::with_capacity(1500),
            next_due: None,
            last_push: None,
            stopped_at: None,
            marker: true,
            errors: 0,
            events: EventMap {
                in_rate: from.clock_rate,
                out_rate: to.clock_rate,
                ..EventMap::default()
            },
            event_packet: Vec::with_capacity(64),
            dec_rate,
            enc_rate,
            channels: to.channels,
            ptime_ms: to.ptime_ms,
            tones: None,
            inband: None,
            sent: SenderCounts {
                clock_rate: to.clock_rate,
                ..SenderCounts::default()
            },
        })
    }

    /// Feeds one received RTP packet (already validated by the caller).
    pub fn push(&mut self, packet: &[u8], now: Instant, epoch: Instant) {
        let ms = now.saturating_duration_since(epoch).as_secs_f64() * 1e3;
        if self.jb.push(packet, ms).is_err() {
            self.errors += 1;
            return;
        }
        self.wake(now);
    }

    /// Input arrived at `now`: the outgoing stream runs (again).
    fn wake(&mut self, now: Instant) {
        self.last_push = Some(now);
        if self.next_due.is_none() {
            // RFC 3550 §5.1: the timestamp keeps counting sampling time
            // across the pause, so receivers see its true length.
            if let Some(stopped) = self.stopped_at.take() {
                let paused = now.saturating_duration_since(stopped).as_micros() as u64;
                let units = paused * u64::from(self.ts_step) / self.ptime.as_micros().max(1) as u64;
                self.ts = self.ts.wrapping_add(units as u32);
            }
            self.next_due = Some(now);
            self.marker = true;
        }
    }

    /// Telephone-event payload types of the input and output sides. When
    /// only one side has telephone-event, keys are converted between RFC
    /// 4733 events and in-band tones (see `dtmf_conv`).
    pub fn set_event_types(&mut self, input: Option<u8>, output: Option<u8>) {
        self.events.in_pt = input.map(|p| p & 0x7f);
        self.events.out_pt = output.map(|p| p & 0x7f);
        self.events.base = None;
        self.tones = match (input, output) {
            (Some(_), None) => {
                ToneOverlay::new(self.events.in_rate, self.enc_rate, self.channels).map(Box::new)
            }
            _ => None,
        };
        self.inband = match (input, output) {
            // The detector takes mono PCM.
            (None, Some(pt)) if self.channels == 1 => {
                EventOut::new(self.dec_rate, pt, self.events.out_rate, self.ptime_ms).map(Box::new)
            }
            _ => None,
        };
    }

    /// True while converted DTMF is being sent: frames are produced even
    /// with no audio to decode.
    fn dtmf_busy(&mut self, now: Instant) -> bool {
        self.tones.as_mut().is_some_and(|t| t.busy(now)) || self.inband.as_ref().is_some_and(|e| e.active())
    }

    /// True for the input side's telephone-event payload type.
    /// SSRC of the stream this transcoder sends.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    pub fn is_event(&self, pt: u8) -> bool {
        self.events.in_pt == Some(pt)
    }

    /// RFC 4733 event packets are not audio: instead of being decoded they
    /// are passed on at once in the outgoing stream (its SSRC and sequence
    /// numbers), with the output side's payload type and the timestamp and
    /// duration rescaled to its clock. `None` when the output side
    /// negotiated no telephone-event: the key is then played as tones in
    /// the outgoing audio instead (see `dtmf_conv`).
    pub fn translate_event(&mut self, packet: &[u8], now: Instant) -> Option<&[u8]> {
        let Some(out_pt) = self.events.out_pt else {
            if let Some(t) = self.tones.as_mut() {
                // The event packets are the sender's stream as much as its
                // audio (RFC 4733 §2.5.1: same SSRC and clock).
                t.on_event(packet, now);
                self.wake(now);
            }
            return None;
        };
        let v = RtpView::parse(packet).ok()?;
        let payload = v.payload();
        if payload.len() < 4 {
            return None;
        }
        let m = &mut self.events;
        let scale = |units: u64| units * u64::from(m.out_rate) / u64::from(m.in_rate.max(1));
        let in_ts = v.timestamp().0;
        // Events within a minute of the base keep one mapping, so every
        // packet of an event (and the segments of a long one, §2.5.1.3)
        // carries consistent timestamps; anything else starts a new base
        // at the outgoing stream's current time.
        let window = u64::from(m.in_rate) * 60;
        let out_ts = match m.base {
            Some((bi, bo)) if u64::from(in_ts.wrapping_sub(bi)) < window => {
                bo.wrapping_add(scale(u64::from(in_ts.wrapping_sub(bi))) as u32)
            }
            _ => {
                m.base = Some((in_ts, self.ts));
                self.ts
            }
        };
        let duration = u16::from_be_bytes([payload[2], payload[3]]);
        let duration = scale(u64::from(duration)).min(0xFFFF) as u16;
        let p = &mut self.event_packet;
        p.clear();
        p.extend_from_slice(&[0x80, out_pt | if v.marker() { 0x80 } else { 0 }]);
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&out_ts.to_be_bytes());
        p.extend_from_slice(&self.ssrc.to_be_bytes());
        p.extend_from_slice(&payload[..2]);
        p.extend_from_slice(&duration.to_be_bytes());
        // Several events may be stacked in one packet (§2.5.1.5); only the
        // first is rescaled, the rest are dropped.
        self.seq = self.seq.wrapping_add(1);
        self.sent.count(self.event_packet.len());
        Some(&self.event_packet)
    }

    #[cfg(test)]
    pub fn active(&self) -> bool {
        self.next_due.is_some()
    }

    /// Produces the packets due at `now`, handing each to `send`.
    pub fn run(&mut self, now: Instant, epoch: Instant, mut send: impl FnMut(&[u8])) {
        let Some(mut due) = self.next_due else { return };
        let quiet = self
            .last_push
            .map_or(IDLE_HARD, |t| now.saturating_duration_since(t));
        let idle = quiet >= IDLE_HARD || (quiet >= IDLE_AFTER && self.jb.stats().buffered_packets == 0);
        if idle && !self.dtmf_busy(now) {
            self.next_due = None;
            self.stopped_at = Some(now);
            return;
        }
        let mut produced = 0;
        while due <= now {
            if produced == MAX_CATCH_UP {
                due = now + self.ptime;
                break;
            }
            produced += 1;
            due += self.ptime;
            if let Err(()) = self.frame_out(due - self.ptime, epoch) {
                self.errors += 1;
                continue;
            }
            if self.fifo.len() < self.frame && self.dtmf_busy(now) {
                // No audio (the sender paused for its events): a frame
                // of silence to carry the tone or the event.
                self.fifo.resize(self.frame, 0);
            }
            while self.fifo.len() >= self.frame {
                let ts = self.ts;
                if self.encode_packet().is_err() {
                    self.errors += 1;
                    break;
                }
                self.sent.anchor = Some((due - self.ptime, ts));
                self.sent.count(self.packet.len());
                send(&self.packet);
            }
        }
        self.next_due = Some(due);
    }

    /// Pops one ptime of PCM and queues it (resampled) for the encoder.
    fn frame_out(&mut self, at: Instant, epoch: Instant) -> std::result::Result<(), ()> {
        let ms = at.saturating_duration_since(epoch).as_secs_f64() * 1e3;
        self.pcm.clear();
        if !self.jb.pop(ms, &mut self.pcm).map_err(|_| ())? {
            return Ok(());
        }
        if let Some(e) = self.inband.as_mut() {
            e.on_pcm(&self.pcm);
        }
        match self.resampler.as_mut() {
            None => self.fifo.extend_from_slice(&self.pcm),
            Some(r) => {
                self.resampled.clear();
                r.process(&self.pcm, &mut self.resampled).map_err(|_| ())?;
                self.fifo.extend_from_slice(&self.resampled);
            }
        }
        Ok(())
    }

    /// Encodes one frame from the FIFO into `self.packet` (RFC 3550 §5.1 header).
    fn encode_packet(&mut self) -> Result<()> {
        if let Some(e) = self.inband.as_mut() {
            // An in-band key's RFC 4733 packet replaces this frame's audio;
            // the audio timeline goes on under it.
            if e.packet(self.seq, self.ts, self.ssrc, &mut self.packet) {
                self.fifo.drain(..self.frame);
                self.seq = self.seq.wrapping_add(1);
                self.ts = self.ts.wrapping_add(self.ts_step);
                return Ok(());
            }
        }
        if let Some(t) = self.tones.as_mut() {
            t.fill(&mut self.fifo[..self.frame]);
        }
        self.packet.clear();
        self.packet
            .extend_from_slice(&[0x80, self.out_pt | if self.marker { 0x80 } else { 0 }]);
        self.packet.extend_from_slice(&self.seq.to_be_bytes());
        self.packet.extend_from_slice(&self.ts.to_be_bytes());
        self.packet.extend_from_slice(&self.ssrc.to_be_bytes());
        let r = self.encoder.encode(&self.fifo[..self.frame], &mut self.packet);
        self.fifo.drain(..self.frame);
        r.map_err(|e| Error::Invalid(e.to_string()))?;
        self.marker = false;
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(self.ts_step);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcmu_packet(seq: u16, pcm: &[i16]) -> Vec<u8> {
        let mut p = vec![0x80, 0];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(&7u32.to_be_bytes());
        p.extend(pcm.iter().map(|&s| media_core::codec::g711::linear_to_ulaw(s)));
        p
    }

    #[test]
    fn pcmu_20ms_to_pcma_40ms_on_a_fake_clock() {
        let from = LegCodec::new("PCMU", 8000, 0);
        let to = LegCodec::new("PCMA", 8000, 8).with_ptime(40);
        let mut t = Transcoder::new(&from, &to, 0x1234_5678, 9).unwrap();
        let epoch = Instant::now();
        let mut out: Vec<Vec<u8>> = Vec::new();
        for i in 0..50u16 {
            let now = epoch + Duration::from_millis(20 * u64::from(i));
            let pcm: Vec<i16> = (0..160)
                .map(|n| (((n + i as usize * 160) as f64 * 0.3).sin() * 8000.0) as i16)
                .collect();
            t.push(&pcmu_packet(i, &pcm), now, epoch);
            t.run(now, epoch, |p| out.push(p.to_vec()));
        }
        // 1 s in, minus the jitter buffer's start-up delay: ~22-25 packets of 40 ms.
        assert!((20..=25).contains(&out.len()), "{}", out.len());
        let views: Vec<_> = out.iter().map(|p| RtpView::parse(p).unwrap()).collect();
        assert!(views
            .iter()
            .all(|v| v.payload_type() == PayloadType::PCMA && v.payload().len() == 320));
        assert!(views[0].marker() && !views[1].marker());
        for w in views.windows(2) {
            assert_eq!(w[1].sequence().diff(w[0].sequence()), 1);
            assert_eq!(w[1].timestamp().diff(w[0].timestamp()), 320);
        }
        assert_eq!(t.errors, 0);
        // Silence on the input ends the talkspurt.
        let later = epoch + Duration::from_secs(2);
        t.run(later, epoch, |_| {
            panic!("nothing is produced after the input stopped")
        });
        assert!(!t.active());
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        let pcmu = LegCodec::new("PCMU", 8000, 0);
        assert!(Transcoder::new(&pcmu, &LegCodec::new("GSM", 8000, 3), 1, 9).is_err());
        assert!(Transcoder::new(&pcmu, &LegCodec::new("PCMA", 8000, 8).with_ptime(25), 1, 9).is_err());
        let e = Transcoder::new(&pcmu, &LegCodec::new("opus", 48000, 111).with_ptime(30), 1, 9).err();
        assert!(e.is_some_and(|e| e.to_string().contains("ptime 30")));
        assert!(Transcoder::new(&pcmu, &LegCodec::new("opus", 48000, 111).with_ptime(60), 1, 9).is_ok());
    }
}
