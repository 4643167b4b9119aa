//! RTP fixed header, CSRC list, header extension and padding (RFC 3550 §5.1,
//! §5.3.1) with the RFC 8285 one-byte and two-byte extension element forms.
//!
//! [`RtpView`] reads a packet in place (no allocation: the relay path uses
//! it); [`RtpPacket`] is the owned form used to build packets.

use crate::error::{Error, Result};
use crate::types::{PayloadType, RtpTimestamp, SeqNo, Ssrc};

/// RFC 3550 §5.1: version field is 2.
pub const RTP_VERSION: u8 = 2;
/// Size of the fixed header (RFC 3550 §5.1).
pub const FIXED_HEADER_LEN: usize = 12;
/// RFC 8285 §4.2: one-byte header extension "defined by profile" value.
pub const ONE_BYTE_PROFILE: u16 = 0xBEDE;
/// RFC 8285 §4.3: two-byte header form, top 12 bits 0x100, low 4 bits app bits.
pub const TWO_BYTE_PROFILE_MASK: u16 = 0xFFF0;
pub const TWO_BYTE_PROFILE: u16 = 0x1000;

const WHAT: &str = "RTP";

/// A parsed RTP packet borrowed from the receive buffer.
#[derive(Clone, Copy, Debug)]
pub struct RtpView<'a> {
    data: &'a [u8],
    csrc_count: usize,
    ext: Option<(u16, usize, usize)>, // (profile, start, end) of extension data
    payload_start: usize,
    payload_end: usize,
}

impl<'a> RtpView<'a> {
    /// Validates the header per RFC 3550 §5.1/§5.3.1 and locates the payload.
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        if data.len() < FIXED_HEADER_LEN {
            return Err(Error::truncated(WHAT, FIXED_HEADER_LEN, data.len()));
        }
        let version = data[0] >> 6;
        if version != RTP_VERSION {
            return Err(Error::malformed(WHAT, format!("version {version}, expected 2")));
        }
        let csrc_count = usize::from(data[0] & 0x0F);
        let mut pos = FIXED_HEADER_LEN + 4 * csrc_count;
        if data.len() < pos {
            return Err(Error::truncated("RTP CSRC list", pos, data.len()));
        }
        let mut ext = None;
        if data[0] & 0x10 != 0 {
            // §5.3.1: 16-bit profile field, 16-bit length in 32-bit words.
            if data.len() < pos + 4 {
                return Err(Error::truncated("RTP header extension", pos + 4, data.len()));
            }
            let profile = u16::from_be_bytes([data[pos], data[pos + 1]]);
            let words = usize::from(u16::from_be_bytes([data[pos + 2], data[pos + 3]]));
            let start = pos + 4;
            let end = start + 4 * words;
            if data.len() < end {
                return Err(Error::truncated("RTP header extension", end, data.len()));
            }
            ext = Some((profile, start, end));
            pos = end;
        }
        let mut payload_end = data.len();
        if data[0] & 0x20 != 0 {
            // §5.1: the last octet of the padding counts the padding octets,
            // itself included.
            let pad = usize::from(data[data.len() - 1]);
            if pad == 0 {
                return Err(Error::malformed(WHAT, "padding bit set with zero padding length"));
            }
            if pad > data.len() - pos {
                return Err(Error::malformed(
                    WHAT,
                    format!(
                        "padding length {pad} exceeds the {} bytes after the header",
                        data.len() - pos
                    ),
                ));
            }
            payload_end -= pad;
        }
        Ok(RtpView {
            data,
            csrc_count,
            ext,
            payload_start: pos,
            payload_end,
        })
    }

    pub fn padding(&self) -> bool {
        self.data[0] & 0x20 != 0
    }
    pub fn padding_len(&self) -> usize {
        self.data.len() - self.payload_end
    }
    pub fn has_extension(&self) -> bool {
        self.ext.is_some()
    }
    pub fn marker(&self) -> bool {
        self.data[1] & 0x80 != 0
    }
    pub fn payload_type(&self) -> PayloadType {
        PayloadType(self.data[1] & 0x7F)
    }
    pub fn sequence(&self) -> SeqNo {
        SeqNo(u16::from_be_bytes([self.data[2], self.data[3]]))
    }
    pub fn timestamp(&self) -> RtpTimestamp {
        RtpTimestamp(u32::from_be_bytes([
            self.data[4],
            self.data[5],
            self.data[6],
            self.data[7],
        ]))
    }
    pub fn ssrc(&self) -> Ssrc {
        Ssrc(u32::from_be_bytes([
            self.data[8],
            self.data[9],
            self.data[10],
            self.data[11],
        ]))
    }
    pub fn csrc_count(&self) -> usize {
        self.csrc_count
    }
    pub fn csrc(&self, i: usize) -> Option<Ssrc> {
        (i < self.csrc_count).then(|| {
            let o = FIXED_HEADER_LEN + 4 * i;
            Ssrc(u32::from_be_bytes([
                self.data[o],
                self.data[o + 1],
                self.data[o + 2],
                self.data[o + 3],
            ]))
        })
    }
    /// Extension profile word and raw data (without the 4-byte ext header).
    pub fn extension(&self) -> Option<(u16, &'a [u8])> {
        self.ext.map(|(p, s, e)| (p, &self.data[s..e]))
    }
    pub fn header_len(&self) -> usize {
        self.payload_start
    }
    pub fn payload(&self) -> &'a [u8] {
        &self.data[self.payload_start..self.payload_end]
    }
    pub fn as_bytes(&self) -> &'a [u8] {
        self.data
    }
    pub fn to_owned_packet(&self) -> RtpPacket {
        RtpPacket {
            marker: self.marker(),
            payload_type: self.payload_type(),
            sequence: self.sequence(),
            timestamp: self.timestamp(),
            ssrc: self.ssrc(),
            csrc: (0..self.csrc_count).filter_map(|i| self.csrc(i)).collect(),
            extension: self.extension().map(|(profile, data)| HeaderExtension {
                profile,
                data: data.to_vec(),
            }),
            payload: self.payload().to_vec(),
            padding: self.padding_len() as u8,
        }
    }
}

/// The raw header extension of RFC 3550 §5.3.1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderExtension {
    pub profile: u16,
    /// Extension data; its length must be a multiple of 4 to serialize.
    pub data: Vec<u8>,
}

/// One RFC 8285 extension element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtensionElement<'a> {
    pub id: u8,
    pub data: &'a [u8],
}

impl HeaderExtension {
    /// Builds an RFC 8285 extension block, choosing the one-byte form when
    /// every element fits it (id 1..=14, 1..=16 bytes), the two-byte form
    /// otherwise (id 1..=255, 0..=255 bytes). Pads with zeros to 32 bits.
    pub fn from_elements(elements: &[ExtensionElement<'_>]) -> Result<Self> {
        let one_byte = elements
            .iter()
            .all(|e| (1..=14).contains(&e.id) && (1..=16).contains(&e.data.len()));
        let mut data = Vec::new();
        for e in elements {
            if e.id == 0 {
                return Err(Error::invalid("RFC 8285 extension id 0 is reserved for padding"));
            }
            if one_byte {
                // §4.2: 4-bit ID, 4-bit (length - 1).
                data.push((e.id << 4) | (e.data.len() as u8 - 1));
            } else {
                if e.data.len() > 255 {
                    return Err(Error::invalid("RFC 8285 two-byte element longer than 255 bytes"));
                }
                data.push(e.id);
                data.push(e.data.len() as u8);
            }
            data.extend_from_slice(e.data);
        }
        while data.len() % 4 != 0 {
            data.push(0);
        }
        let profile = if one_byte {
            ONE_BYTE_PROFILE
        } else {
            TWO_BYTE_PROFILE
        };
        Ok(HeaderExtension { profile, data })
    }

    /// Parses the data as RFC 8285 elements (§4.2 one-byte or §4.3
    /// two-byte form, decided by the profile word).
    pub fn elements(&self) -> Result<Vec<ExtensionElement<'_>>> {
        parse_elements(self.profile, &self.data)
    }
}

/// RFC 8285 §4.2/§4.3 element parsing over raw extension data.
pub fn parse_elements(profile: u16, data: &[u8]) -> Result<Vec<ExtensionElement<'_>>> {
    const W: &str = "RTP header extension (RFC 8285)";
    let two_byte = if profile == ONE_BYTE_PROFILE {
        false
    } else if profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE {
        true
    } else {
        return Err(Error::malformed(
            W,
            format!("profile 0x{profile:04X} is not RFC 8285"),
        ));
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        if b == 0 {
            i += 1; // padding byte
            continue;
        }
        let (id, len, hdr) = if two_byte {
            if i + 1 >= data.len() {
                return Err(Error::truncated(W, i + 2, data.len()));
            }
            (b, usize::from(data[i + 1]), 2)
        } else {
            let id = b >> 4;
            if id == 15 {
                break; // §4.2: ID 15 ends processing of the block
            }
            (id, usize::from(b & 0x0F) + 1, 1)
        };
        let start = i + hdr;
        if start + len > data.len() {
            return Err(Error::truncated(W, start + len, data.len()));
        }
        out.push(ExtensionElement {
            id,
            data: &data[start..start + len],
        });
        i = start + len;
    }
    Ok(out)
}

/// An owned RTP packet, for building and re-serializing.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RtpPacket {
    pub marker: bool,
    pub payload_type: PayloadType,
    pub sequence: SeqNo,
    pub timestamp: RtpTimestamp,
    pub ssrc: Ssrc,
    pub csrc: Vec<Ssrc>,
    pub extension: Option<HeaderExtension>,
    pub payload: Vec<u8>,
    /// Number of padding octets to append (0 = no padding bit).
    pub padding: u8,
}

impl RtpPacket {
    pub fn parse(data: &[u8]) -> Result<Self> {
        Ok(RtpView::parse(data)?.to_owned_packet())
    }

    /// Serialized length in bytes.
    pub fn len(&self) -> usize {
        FIXED_HEADER_LEN
            + 4 * self.csrc.len()
            + self.extension.as_ref().map_or(0, |e| 4 + e.data.len())
            + self.payload.len()
            + usize::from(self.padding)
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Appends the wire form to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<()> {
        if self.csrc.len() > 15 {
            return Err(Error::invalid(format!(
                "{} CSRCs; RTP allows at most 15",
                self.csrc.len()
            )));
        }
        if self.payload_type.0 > 127 {
            return Err(Error::invalid(format!(
                "payload type {} exceeds 127",
                self.payload_type.0
            )));
        }
        out.reserve(self.len());
        let mut b0 = (RTP_VERSION << 6) | self.csrc.len() as u8;
        if self.padding > 0 {
            b0 |= 0x20;
        }
        if self.extension.is_some() {
            b0 |= 0x10;
        }
        out.push(b0);
        out.push((u8::from(self.marker) << 7) | self.payload_type.0);
        out.extend_from_slice(&self.sequence.0.to_be_bytes());
        out.extend_from_slice(&self.timestamp.0.to_be_bytes());
        out.extend_from_slice(&self.ssrc.0.to_be_bytes());
        for c in &self.csrc {
            out.extend_from_slice(&c.0.to_be_bytes());
        }
        if let Some(ext) = &self.extension {
            if ext.data.len() % 4 != 0 || ext.data.len() / 4 > usize::from(u16::MAX) {
                return Err(Error::invalid(
                    "header extension length must be a multiple of 4 bytes",
                ));
            }
            out.extend_from_slice(&ext.profile.to_be_bytes());
            out.extend_from_slice(&((ext.data.len() / 4) as u16).to_be_bytes());
            out.extend_from_slice(&ext.data);
        }
        out.extend_from_slice(&self.payload);
        if self.padding > 0 {
            out.extend(std::iter::repeat_n(0u8, usize::from(self.padding) - 1));
            out.push(self.padding);
        }
        Ok(())
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut v = Vec::with_capacity(self.len());
        self.write_to(&mut v)?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> RtpPacket {
        RtpPacket {
            marker: true,
            payload_type: PayloadType(96),
            sequence: SeqNo(65535),
            timestamp: RtpTimestamp(0xDEADBEEF),
            ssrc: Ssrc(0x01020304),
            csrc: vec![Ssrc(7), Ssrc(8)],
            extension: Some(
                HeaderExtension::from_elements(&[ExtensionElement { id: 1, data: &[0xAA] }]).unwrap(),
            ),
            payload: vec![1, 2, 3],
            padding: 4,
        }
    }

    #[test]
    fn round_trip_all_fields() {
        let p = sample();
        let bytes = p.to_bytes().unwrap();
        assert_eq!(bytes.len(), p.len());
        let v = RtpView::parse(&bytes).unwrap();
        assert!(v.marker() && v.padding() && v.has_extension());
        assert_eq!(v.payload(), &[1, 2, 3]);
        assert_eq!(v.csrc(1), Some(Ssrc(8)));
        assert_eq!(RtpPacket::parse(&bytes).unwrap(), p);
    }

    #[test]
    fn one_byte_elements() {
        let ext = HeaderExtension::from_elements(&[
            ExtensionElement { id: 1, data: &[1] },
            ExtensionElement {
                id: 14,
                data: &[2; 16],
            },
        ])
        .unwrap();
        assert_eq!(ext.profile, ONE_BYTE_PROFILE);
        let el = ext.elements().unwrap();
        assert_eq!(el.len(), 2);
        assert_eq!(el[1].id, 14);
        assert_eq!(el[1].data.len(), 16);
    }

    #[test]
    fn two_byte_elements_for_long_or_empty_data() {
        let long = [9u8; 40];
        let ext = HeaderExtension::from_elements(&[
            ExtensionElement { id: 200, data: &long },
            ExtensionElement { id: 3, data: &[] },
        ])
        .unwrap();
        assert_eq!(ext.profile, TWO_BYTE_PROFILE);
        let el = ext.elements().unwrap();
        assert_eq!(el[0], ExtensionElement { id: 200, data: &long });
        assert_eq!(el[1], ExtensionElement { id: 3, data: &[] });
    }

    #[test]
    fn errors_are_clear() {
        let e = RtpView::parse(&[0x80, 0, 0]).unwrap_err();
        assert_eq!(e.to_string(), "RTP: truncated: need 12 bytes, have 3");
        let mut v1 = vec![0x40; 12];
        v1[0] = 0x40;
        assert!(RtpView::parse(&v1).unwrap_err().to_string().contains("version 1"));
        // CSRC count 3 but no CSRCs.
        let mut c = vec![0u8; 12];
        c[0] = 0x83;
        assert!(matches!(RtpView::parse(&c), Err(Error::Truncated { .. })));
        // Padding longer than the packet.
        let mut p = vec![0u8; 14];
        p[0] = 0xA0;
        p[13] = 9;
        assert!(RtpView::parse(&p)
            .unwrap_err()
            .to_string()
            .contains("padding length 9"));
    }

    proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = RtpView::parse(&data).map(|v| {
                let _ = v.extension().map(|(p, d)| parse_elements(p, d));
                v.to_owned_packet()
            });
        }

        #[test]
        fn owned_round_trip(
            marker in any::<bool>(), pt in 0u8..128, seq in any::<u16>(), ts in any::<u32>(),
            ssrc in any::<u32>(), csrc in proptest::collection::vec(any::<u32>(), 0..16),
            ext in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8).prop_map(|w| {
                let mut d = w; while d.len() % 4 != 0 { d.push(0) } d
            })),
            payload in proptest::collection::vec(any::<u8>(), 0..300), padding in 0u8..=255,
        ) {
            let p = RtpPacket {
                marker, payload_type: PayloadType(pt), sequence: SeqNo(seq), timestamp: RtpTimestamp(ts),
                ssrc: Ssrc(ssrc), csrc: csrc.into_iter().map(Ssrc).collect(),
                extension: ext.map(|data| HeaderExtension { profile: 0x1234, data }), payload, padding,
            };
            let b = p.to_bytes().unwrap();
            prop_assert_eq!(RtpPacket::parse(&b).unwrap(), p);
        }
    }
}
