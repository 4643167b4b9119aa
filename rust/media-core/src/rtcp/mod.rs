//! RTCP packets (RFC 3550 §6) and compound packets (§6.1), plus RTCP XR
//! (RFC 3611) with the VoIP Metrics block.
//!
//! [`iter_compound`] walks a compound packet without allocating and yields a
//! [`RawPacket`] per individual packet (header validated, padding removed);
//! [`RtcpPacket`] is the owned, typed form used to inspect and to build
//! packets. [`parse_compound`] does both; [`parse_compound_strict`] adds the
//! compound-packet validity checks of RFC 3550 Appendix A.2.
//!
//! Building never adds padding (§6.4.1 padding exists for encryption block
//! alignment, which SRTP does not need); parsing accepts and strips it.

mod bye_app;
mod ntp;
mod report;
mod sdes;
#[cfg(test)]
mod tests;
mod xr;

pub use bye_app::{App, Bye};
pub use ntp::{
    compact_to_duration, round_trip_time, seconds_to_compact, NtpTimestamp, COMPACT_UNITS_PER_SEC,
    NTP_UNIX_OFFSET_SECS,
};
pub use report::{ReceiverReport, ReportBlock, SenderReport, CUMULATIVE_LOST_MAX, CUMULATIVE_LOST_MIN};
pub use sdes::{SdesChunk, SdesItem, SdesType, SourceDescription};
pub use xr::{
    ExtendedReport, JitterBufferMode, PlcMode, RawXrBlock, VoipMetrics, XrBlock, BT_VOIP_METRICS,
    XR_UNAVAILABLE,
};

use crate::error::{Error, Result};

/// RFC 3550 §6.4.1: the version field is 2, as in RTP.
pub const RTCP_VERSION: u8 = 2;
/// Size of the common header: V/P/count, PT, length (RFC 3550 §6.4.1).
pub const HEADER_LEN: usize = 4;
/// The 5-bit count field (RC/SC/subtype) limits lists to 31 entries.
pub const MAX_COUNT: usize = 31;

/// Packet types (RFC 3550 §12.1; XR: RFC 3611 §2).
pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_SDES: u8 = 202;
pub const PT_BYE: u8 = 203;
pub const PT_APP: u8 = 204;
/// RFC 4585 transport-layer / payload-specific feedback: kept as [`RtcpPacket::Unknown`].
pub const PT_RTPFB: u8 = 205;
pub const PT_PSFB: u8 = 206;
pub const PT_XR: u8 = 207;

/// One individual packet located inside a compound packet: the common header
/// is checked (§6.4.1 version, length, padding) and the padding removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawPacket<'a> {
    padding: bool,
    count: u8,
    pt: u8,
    body: &'a [u8],
    bytes: &'a [u8],
}

impl<'a> RawPacket<'a> {
    /// Reads the packet at the front of `data`; returns it and its size
    /// (length field + 1 words, §6.4.1).
    pub fn parse(data: &'a [u8]) -> Result<(RawPacket<'a>, usize)> {
        if data.len() < HEADER_LEN {
            return Err(Error::truncated("RTCP header", HEADER_LEN, data.len()));
        }
        let version = data[0] >> 6;
        if version != RTCP_VERSION {
            return Err(Error::malformed("RTCP", format!("version {version}, expected 2")));
        }
        // §6.4.1 length: the packet length in 32-bit words minus one,
        // including the header and any padding.
        let words = usize::from(u16::from_be_bytes([data[2], data[3]]));
        let total = (words + 1) * 4;
        if data.len() < total {
            return Err(Error::truncated("RTCP packet", total, data.len()));
        }
        let padding = data[0] & 0x20 != 0;
        let mut body = &data[HEADER_LEN..total];
        if padding {
            // §6.4.1: the last padding octet counts the padding octets,
            // itself included; it is a multiple of four.
            let pad = usize::from(data[total - 1]);
            if pad == 0 || !pad.is_multiple_of(4) {
                return Err(Error::malformed(
                    "RTCP",
                    format!("padding length {pad} is not a non-zero multiple of 4"),
                ));
            }
            if pad > body.len() {
                return Err(Error::malformed(
                    "RTCP",
                    format!("padding length {pad} exceeds the {}-byte body", body.len()),
                ));
            }
            body = &body[..body.len() - pad];
        }
        let raw = RawPacket {
            padding,
            count: data[0] & 0x1F,
            pt: data[1],
            body,
            bytes: &data[..total],
        };
        Ok((raw, total))
    }

    pub fn padding(&self) -> bool {
        self.padding
    }
    /// The 5-bit field after P: report/source count, APP subtype, or FMT.
    pub fn count(&self) -> u8 {
        self.count
    }
    pub fn packet_type(&self) -> u8 {
        self.pt
    }
    /// The bytes after the 4-byte header, without padding; always a
    /// multiple of 4 long.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
    /// The whole individual packet, header and padding included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// Iterator over the individual packets of a compound packet (§6.1).
/// After the first error it yields nothing more.
#[derive(Clone, Debug)]
pub struct CompoundIter<'a> {
    data: &'a [u8],
    pos: usize,
    failed: bool,
}

/// Walks a compound packet (RFC 3550 §6.1) without allocating.
pub fn iter_compound(data: &[u8]) -> CompoundIter<'_> {
    CompoundIter {
        data,
        pos: 0,
        failed: false,
    }
}

impl<'a> Iterator for CompoundIter<'a> {
    type Item = Result<RawPacket<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = self.data.get(self.pos..).filter(|r| !r.is_empty())?;
        match RawPacket::parse(rest) {
            Ok((raw, size)) => {
                self.pos += size;
                Some(Ok(raw))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// An owned RTCP packet of any type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RtcpPacket {
    SenderReport(SenderReport),
    ReceiverReport(ReceiverReport),
    SourceDescription(SourceDescription),
    Bye(Bye),
    App(App),
    ExtendedReport(ExtendedReport),
    /// Any other packet type (e.g. RFC 4585 feedback), kept verbatim:
    /// `count` is the 5-bit header field, `data` the body without padding
    /// (a multiple of 4 bytes to serialize).
    Unknown {
        pt: u8,
        count: u8,
        data: Vec<u8>,
    },
}

impl RtcpPacket {
    /// Decodes the body of a located packet according to its type.
    pub fn parse(raw: &RawPacket<'_>) -> Result<Self> {
        let (count, body) = (raw.count, raw.body);
        Ok(match raw.pt {
            PT_SR => RtcpPacket::SenderReport(SenderReport::parse(count, body)?),
            PT_RR => RtcpPacket::ReceiverReport(ReceiverReport::parse(count, body)?),
            PT_SDES => RtcpPacket::SourceDescription(SourceDescription::parse(count, body)?),
            PT_BYE => RtcpPacket::Bye(Bye::parse(count, body)?),
            PT_APP => RtcpPacket::App(App::parse(count, body)?),
            PT_XR => RtcpPacket::ExtendedReport(ExtendedReport::parse(body)?),
            pt => RtcpPacket::Unknown {
                pt,
                count,
                data: body.to_vec(),
            },
        })
    }

    pub fn packet_type(&self) -> u8 {
        match self {
            RtcpPacket::SenderReport(_) => PT_SR,
            RtcpPacket::ReceiverReport(_) => PT_RR,
            RtcpPacket::SourceDescription(_) => PT_SDES,
            RtcpPacket::Bye(_) => PT_BYE,
            RtcpPacket::App(_) => PT_APP,
            RtcpPacket::ExtendedReport(_) => PT_XR,
            RtcpPacket::Unknown { pt, .. } => *pt,
        }
    }

    /// Appends the wire form (without padding) to `out`. On error `out` is
    /// left as it was.
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        let r = match self {
            RtcpPacket::SenderReport(p) => p.write(out),
            RtcpPacket::ReceiverReport(p) => p.write(out),
            RtcpPacket::SourceDescription(p) => p.write(out),
            RtcpPacket::Bye(p) => p.write(out),
            RtcpPacket::App(p) => p.write(out),
            RtcpPacket::ExtendedReport(p) => p.write(out),
            RtcpPacket::Unknown { pt, count, data } => write_unknown(*pt, *count, data, out),
        };
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.write_to(&mut v)?;
        Ok(v)
    }
}

fn write_unknown(pt: u8, count: u8, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let start = begin_packet(out, usize::from(count), pt)?;
    if !data.len().is_multiple_of(4) {
        return Err(Error::invalid(format!(
            "RTCP packet type {pt}: body of {} bytes is not a multiple of 4",
            data.len()
        )));
    }
    out.extend_from_slice(data);
    finish_packet(out, start)
}

macro_rules! into_packet {
    ($($t:ident),*) => {$(
        impl From<$t> for RtcpPacket {
            fn from(p: $t) -> Self {
                RtcpPacket::$t(p)
            }
        }
    )*};
}
into_packet!(
    SenderReport,
    ReceiverReport,
    SourceDescription,
    Bye,
    App,
    ExtendedReport
);

/// Parses every packet of a compound packet (RFC 3550 §6.1), checking each
/// one's version, length and padding. Does not insist on the §6.1 ordering
/// rules (so reduced-size RTCP, RFC 5506, is accepted); see
/// [`parse_compound_strict`].
pub fn parse_compound(data: &[u8]) -> Result<Vec<RtcpPacket>> {
    if data.is_empty() {
        return Err(Error::truncated("RTCP header", HEADER_LEN, 0));
    }
    iter_compound(data)
        .map(|raw| raw.and_then(|r| RtcpPacket::parse(&r)))
        .collect()
}

/// [`parse_compound`] after [`validate_compound`].
pub fn parse_compound_strict(data: &[u8]) -> Result<Vec<RtcpPacket>> {
    validate_compound(data)?;
    parse_compound(data)
}

/// The validity checks for compound packets of RFC 3550 Appendix A.2:
/// version 2 everywhere; the first packet is an SR or RR without padding;
/// the length fields add up to the size received. Also §6.4.1: padding only
/// on the last packet.
pub fn validate_compound(data: &[u8]) -> Result<()> {
    const W: &str = "RTCP compound";
    let mut n = 0usize;
    let mut padded_earlier = false;
    for raw in iter_compound(data) {
        let raw = raw?;
        if n == 0 {
            if raw.pt != PT_SR && raw.pt != PT_RR {
                return Err(Error::malformed(
                    W,
                    format!("first packet has type {}, expected SR (200) or RR (201)", raw.pt),
                ));
            }
            if raw.padding {
                return Err(Error::malformed(W, "padding bit set on the first packet"));
            }
        }
        if padded_earlier {
            return Err(Error::malformed(W, "padding on a packet that is not the last"));
        }
        padded_earlier = raw.padding;
        n += 1;
    }
    if n == 0 {
        return Err(Error::truncated("RTCP header", HEADER_LEN, 0));
    }
    Ok(())
}

/// Serializes packets back to back into one compound packet. The caller
/// chooses the order; RFC 3550 §6.1 wants an SR or RR first and an SDES with
/// CNAME in every compound packet.
pub fn build_compound(packets: &[RtcpPacket]) -> Result<Vec<u8>> {
    if packets.is_empty() {
        return Err(Error::invalid("a compound RTCP packet needs at least one packet"));
    }
    let mut out = Vec::new();
    for p in packets {
        p.write_to(&mut out)?;
    }
    Ok(out)
}

/// Writes a common header with a zero length field; returns its offset for
/// [`finish_packet`]. `count` must fit the 5-bit field (RFC 3550 §6.4.1).
pub(crate) fn begin_packet(out: &mut Vec<u8>, count: usize, pt: u8) -> Result<usize> {
    if count > MAX_COUNT {
        return Err(Error::invalid(format!(
            "RTCP packet type {pt}: {count} entries, the 5-bit count allows {MAX_COUNT}"
        )));
    }
    let start = out.len();
    out.extend_from_slice(&[(RTCP_VERSION << 6) | count as u8, pt, 0, 0]);
    Ok(start)
}

/// Fills in the length field (§6.4.1: 32-bit words minus one) of the packet
/// that starts at `start`.
pub(crate) fn finish_packet(out: &mut [u8], start: usize) -> Result<()> {
    let len = out.len() - start;
    if !len.is_multiple_of(4) {
        return Err(Error::invalid(format!(
            "RTCP packet of {len} bytes is not 32-bit aligned"
        )));
    }
    let words = u16::try_from(len / 4 - 1)
        .map_err(|_| Error::invalid(format!("RTCP packet of {len} bytes exceeds the 16-bit length")))?;
    out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
    Ok(())
}

/// Bounds-checked big-endian reader over a packet body. Offsets in errors
/// count from the start of the packet (header included).
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(what: &'static str, body: &'a [u8]) -> Self {
        Reader {
            data: body,
            pos: 0,
            what,
        }
    }
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.saturating_add(n);
        match self.data.get(self.pos..end) {
            Some(b) => {
                self.pos = end;
                Ok(b)
            }
            None => Err(Error::truncated(
                self.what,
                HEADER_LEN + end,
                HEADER_LEN + self.data.len(),
            )),
        }
    }
    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn u64(&mut self) -> Result<u64> {
        let b = self.bytes(8)?;
        Ok(u64::from_be_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let r = self.data.get(self.pos..).unwrap_or(&[]);
        self.pos = self.data.len();
        r
    }
    pub(crate) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }
}
