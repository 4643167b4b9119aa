//! Sender and receiver reports with their report blocks
//! (RFC 3550 §6.4.1 SR, §6.4.2 RR).

use std::time::Duration;

use super::ntp::{round_trip_time, NtpTimestamp};
use super::{begin_packet, finish_packet, Reader, PT_RR, PT_SR};
use crate::error::{Error, Result};
use crate::types::{RtpTimestamp, Ssrc};

/// Size of one report block (§6.4.1).
pub const REPORT_BLOCK_LEN: usize = 24;
/// Range of the 24-bit signed "cumulative number of packets lost" (§6.4.1).
pub const CUMULATIVE_LOST_MAX: i32 = 0x7F_FFFF;
pub const CUMULATIVE_LOST_MIN: i32 = -0x80_0000;

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportBlock {
    /// SSRC of the source this block reports on.
    pub ssrc: Ssrc,
    /// Fraction of packets lost since the previous report, in 1/256 units.
    pub fraction_lost: u8,
    /// Packets expected minus packets received since reception began; a
    /// 24-bit signed value on the wire (negative with duplicates).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (cycles << 16 | seq).
    pub highest_seq: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received from
    /// the source, 0 if none (compact NTP).
    pub lsr: u32,
    /// Delay since that SR, in 1/65536 s; 0 if none.
    pub dlsr: u32,
}

impl ReportBlock {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let ssrc = Ssrc(r.u32()?);
        let lost_word = r.u32()?;
        // Sign-extend the low 24 bits (two's complement on the wire).
        let cumulative_lost = ((lost_word << 8) as i32) >> 8;
        Ok(ReportBlock {
            ssrc,
            fraction_lost: (lost_word >> 24) as u8,
            cumulative_lost,
            highest_seq: r.u32()?,
            jitter: r.u32()?,
            lsr: r.u32()?,
            dlsr: r.u32()?,
        })
    }

    fn write(&self, out: &mut Vec<u8>) -> Result<()> {
        if !(CUMULATIVE_LOST_MIN..=CUMULATIVE_LOST_MAX).contains(&self.cumulative_lost) {
            return Err(Error::invalid(format!(
                "cumulative lost {} does not fit 24 signed bits",
                self.cumulative_lost
            )));
        }
        let lost_word = (u32::from(self.fraction_lost) << 24) | (self.cumulative_lost as u32 & 0xFF_FFFF);
        for w in [
            self.ssrc.0,
            lost_word,
            self.highest_seq,
            self.jitter,
            self.lsr,
            self.dlsr,
        ] {
            out.extend_from_slice(&w.to_be_bytes());
        }
        Ok(())
    }

    /// The fraction lost as a ratio in 0.0..1.0.
    pub fn fraction_lost_ratio(&self) -> f64 {
        f64::from(self.fraction_lost) / 256.0
    }

    /// Round-trip time to the reporter (§6.4.1), given the wall-clock
    /// arrival time of this report. `None` if no SR was reported on.
    pub fn round_trip_time(&self, arrival: NtpTimestamp) -> Option<Duration> {
        round_trip_time(arrival.compact(), self.lsr, self.dlsr)
    }
}

fn parse_blocks(r: &mut Reader<'_>, count: u8) -> Result<Vec<ReportBlock>> {
    let count = usize::from(count);
    // Check the whole list up front so the error names the full size.
    if r.remaining() < count * REPORT_BLOCK_LEN {
        r.bytes(count * REPORT_BLOCK_LEN)?;
    }
    (0..count).map(|_| ReportBlock::parse(r)).collect()
}

fn write_tail(reports: &[ReportBlock], extensions: &[u8], out: &mut Vec<u8>) -> Result<()> {
    for b in reports {
        b.write(out)?;
    }
    if !extensions.len().is_multiple_of(4) {
        return Err(Error::invalid(format!(
            "profile-specific extension of {} bytes is not a multiple of 4",
            extensions.len()
        )));
    }
    out.extend_from_slice(extensions);
    Ok(())
}

/// Sender report (RFC 3550 §6.4.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SenderReport {
    pub ssrc: Ssrc,
    /// Wall-clock time when this report was sent.
    pub ntp_timestamp: NtpTimestamp,
    /// The same instant in the RTP timestamp units of the sender's media.
    pub rtp_timestamp: RtpTimestamp,
    /// Sender's packet count since starting transmission.
    pub packet_count: u32,
    /// Sender's payload octet count since starting transmission.
    pub octet_count: u32,
    /// Up to 31 report blocks.
    pub reports: Vec<ReportBlock>,
    /// Profile-specific extension after the report blocks (§6.4.1), kept raw.
    pub extensions: Vec<u8>,
}

impl SenderReport {
    pub(super) fn parse(count: u8, body: &[u8]) -> Result<Self> {
        let mut r = Reader::new("RTCP SR", body);
        let ssrc = Ssrc(r.u32()?);
        let ntp_timestamp = NtpTimestamp(r.u64()?);
        let rtp_timestamp = RtpTimestamp(r.u32()?);
        let packet_count = r.u32()?;
        let octet_count = r.u32()?;
        let reports = parse_blocks(&mut r, count)?;
        Ok(SenderReport {
            ssrc,
            ntp_timestamp,
            rtp_timestamp,
            packet_count,
            octet_count,
            reports,
            extensions: r.rest().to_vec(),
        })
    }

    pub(super) fn write(&self, out: &mut Vec<u8>) -> Result<()> {
        let start = begin_packet(out, self.reports.len(), PT_SR)?;
        out.extend_from_slice(&self.ssrc.0.to_be_bytes());
        out.extend_from_slice(&self.ntp_timestamp.0.to_be_bytes());
        out.extend_from_slice(&self.rtp_timestamp.0.to_be_bytes());
        out.extend_from_slice(&self.packet_count.to_be_bytes());
        out.extend_from_slice(&self.octet_count.to_be_bytes());
        write_tail(&self.reports, &self.extensions, out)?;
        finish_packet(out, start)
    }
}

/// Receiver report (RFC 3550 §6.4.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReceiverReport {
    /// SSRC of the packet's sender (the reporter).
    pub ssrc: Ssrc,
    /// Up to 31 report blocks; an empty RR is valid (§6.4.2).
    pub reports: Vec<ReportBlock>,
    /// Profile-specific extension after the report blocks, kept raw.
    pub extensions: Vec<u8>,
}

impl ReceiverReport {
    pub(super) fn parse(count: u8, body: &[u8]) -> Result<Self> {
        let mut r = Reader::new("RTCP RR", body);
        let ssrc = Ssrc(r.u32()?);
        let reports = parse_blocks(&mut r, count)?;
        Ok(ReceiverReport {
            ssrc,
            reports,
            extensions: r.rest().to_vec(),
        })
    }

    pub(super) fn write(&self, out: &mut Vec<u8>) -> Result<()> {
        let start = begin_packet(out, self.reports.len(), PT_RR)?;
        out.extend_from_slice(&self.ssrc.0.to_be_bytes());
        write_tail(&self.reports, &self.extensions, out)?;
        finish_packet(out, start)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_compound, RtcpPacket};
    use super::*;

    /// A hand-assembled SR with one report block, checked field by field.
    #[test]
    fn sender_report_from_bytes() {
        #[rustfmt::skip]
        let bytes = [
            0x81, 200, 0x00, 0x0C,              // V=2 P=0 RC=1, SR, length 12 (52 bytes)
            0x11, 0x22, 0x33, 0x44,             // SSRC of sender
            0xE8, 0x00, 0x00, 0x01,             // NTP seconds
            0x80, 0x00, 0x00, 0x00,             // NTP fraction (.5)
            0x00, 0x01, 0xE2, 0x40,             // RTP timestamp 123456
            0x00, 0x00, 0x03, 0xE8,             // packet count 1000
            0x00, 0x02, 0x71, 0x00,             // octet count 160000
            0xAA, 0xBB, 0xCC, 0xDD,             // block: SSRC
            0x40, 0xFF, 0xFF, 0xFE,             // fraction 64/256, cumulative -2
            0x00, 0x01, 0x00, 0x05,             // extended highest seq: cycle 1, seq 5
            0x00, 0x00, 0x00, 0x50,             // jitter 80
            0x12, 0x34, 0x56, 0x78,             // LSR
            0x00, 0x01, 0x80, 0x00,             // DLSR 1.5 s
        ];
        let pkts = parse_compound(&bytes).unwrap();
        let RtcpPacket::SenderReport(sr) = &pkts[0] else {
            panic!("{pkts:?}")
        };
        assert_eq!(sr.ssrc, Ssrc(0x1122_3344));
        assert_eq!(sr.ntp_timestamp, NtpTimestamp::new(0xE800_0001, 0x8000_0000));
        assert_eq!(sr.rtp_timestamp, RtpTimestamp(123_456));
        assert_eq!((sr.packet_count, sr.octet_count), (1000, 160_000));
        assert!(sr.extensions.is_empty());
        let b = sr.reports[0];
        assert_eq!(b.ssrc, Ssrc(0xAABB_CCDD));
        assert_eq!(b.fraction_lost, 64);
        assert_eq!(b.fraction_lost_ratio(), 0.25);
        assert_eq!(b.cumulative_lost, -2);
        assert_eq!(b.highest_seq, 0x0001_0005);
        assert_eq!(b.jitter, 80);
        assert_eq!(b.lsr, 0x1234_5678);
        assert_eq!(b.dlsr, 0x0001_8000);
        assert_eq!(pkts[0].to_bytes().unwrap(), bytes);
    }

    #[test]
    fn receiver_report_from_bytes_with_extension() {
        #[rustfmt::skip]
        let bytes = [
            0x81, 201, 0x00, 0x08,              // RC=1, RR, length 8 (36 bytes)
            0x00, 0x00, 0x00, 0x07,             // reporter SSRC
            0x00, 0x00, 0x00, 0x09,             // block SSRC
            0xFF, 0x7F, 0xFF, 0xFF,             // fraction 255, cumulative +8388607
            0xFF, 0xFF, 0xFF, 0xFF,             // highest seq
            0x00, 0x00, 0x00, 0x00,             // jitter
            0x00, 0x00, 0x00, 0x00,             // LSR
            0x00, 0x00, 0x00, 0x00,             // DLSR
            0xDE, 0xAD, 0xBE, 0xEF,             // profile-specific extension
        ];
        let pkts = parse_compound(&bytes).unwrap();
        let RtcpPacket::ReceiverReport(rr) = &pkts[0] else {
            panic!("{pkts:?}")
        };
        assert_eq!(rr.ssrc, Ssrc(7));
        assert_eq!(rr.reports.len(), 1);
        assert_eq!(rr.reports[0].ssrc, Ssrc(9));
        assert_eq!(rr.reports[0].fraction_lost, 255);
        assert_eq!(rr.reports[0].cumulative_lost, CUMULATIVE_LOST_MAX);
        assert_eq!(rr.reports[0].highest_seq, u32::MAX);
        assert_eq!(rr.reports[0].round_trip_time(NtpTimestamp::new(9, 0)), None);
        assert_eq!(rr.extensions, [0xDE, 0xAD, 0xBE, 0xEF]);
        assert_eq!(pkts[0].to_bytes().unwrap(), bytes);
    }

    #[test]
    fn report_count_must_match_body() {
        // RC=2 but room for one block only.
        let mut rr = RtcpPacket::from(ReceiverReport {
            ssrc: Ssrc(1),
            reports: vec![ReportBlock::default()],
            extensions: vec![],
        })
        .to_bytes()
        .unwrap();
        rr[0] = 0x82;
        let e = parse_compound(&rr).unwrap_err();
        assert_eq!(e.to_string(), "RTCP RR: truncated: need 56 bytes, have 32");
        // An SR whose sender info is cut short.
        let e = parse_compound(&[0x80, 200, 0, 1, 0, 0, 0, 1]).unwrap_err();
        assert_eq!(e.to_string(), "RTCP SR: truncated: need 16 bytes, have 8");
    }

    #[test]
    fn write_rejects_out_of_range_fields() {
        let block = |cumulative_lost| ReportBlock {
            cumulative_lost,
            ..ReportBlock::default()
        };
        let rr = |reports: Vec<ReportBlock>| {
            RtcpPacket::from(ReceiverReport {
                ssrc: Ssrc(1),
                reports,
                extensions: vec![],
            })
        };
        let mut out = vec![0xAB];
        assert!(rr(vec![block(CUMULATIVE_LOST_MIN)]).write_to(&mut out).is_ok());
        out.truncate(1);
        let e = rr(vec![block(CUMULATIVE_LOST_MAX + 1)])
            .write_to(&mut out)
            .unwrap_err();
        assert!(e.to_string().contains("24 signed bits"), "{e}");
        assert_eq!(out, [0xAB], "a failed write leaves the buffer untouched");
        let e = rr(vec![block(0); 32]).to_bytes().unwrap_err();
        assert!(e.to_string().contains("32 entries"), "{e}");
        let bad_ext = RtcpPacket::from(SenderReport {
            extensions: vec![1, 2, 3],
            ..SenderReport::default()
        });
        assert!(bad_ext.to_bytes().is_err());
    }
}
