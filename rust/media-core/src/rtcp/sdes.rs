//! Source description packets (RFC 3550 §6.5).

use super::{begin_packet, finish_packet, Reader, PT_SDES};
use crate::error::{Error, Result};
use crate::types::Ssrc;

/// SDES item types (RFC 3550 §6.5, §12.2).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum SdesType {
    /// §6.5.1 canonical end-point identifier, e.g. `user@host`.
    Cname,
    /// §6.5.2 user name.
    Name,
    /// §6.5.3
    Email,
    /// §6.5.4
    Phone,
    /// §6.5.5 geographic location.
    Loc,
    /// §6.5.6 application or tool name.
    Tool,
    /// §6.5.7 notice/status.
    Note,
    /// §6.5.8 private extension: prefix length, prefix, value.
    Priv,
    /// Any other (unassigned) item type 9..=255. Type 0 is END and cannot
    /// be an item.
    Other(u8),
}

impl SdesType {
    pub fn from_u8(t: u8) -> Self {
        match t {
            1 => SdesType::Cname,
            2 => SdesType::Name,
            3 => SdesType::Email,
            4 => SdesType::Phone,
            5 => SdesType::Loc,
            6 => SdesType::Tool,
            7 => SdesType::Note,
            8 => SdesType::Priv,
            t => SdesType::Other(t),
        }
    }

    pub fn to_u8(self) -> u8 {
        match self {
            SdesType::Cname => 1,
            SdesType::Name => 2,
            SdesType::Email => 3,
            SdesType::Phone => 4,
            SdesType::Loc => 5,
            SdesType::Tool => 6,
            SdesType::Note => 7,
            SdesType::Priv => 8,
            SdesType::Other(t) => t,
        }
    }
}

/// One SDES item. The value is kept as bytes: RFC 3550 §6.5 says UTF-8,
/// but a peer's bad encoding must not make the whole packet unreadable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdesItem {
    pub kind: SdesType,
    /// At most 255 bytes.
    pub value: Vec<u8>,
}

impl SdesItem {
    pub fn new(kind: SdesType, value: impl Into<Vec<u8>>) -> Self {
        SdesItem {
            kind,
            value: value.into(),
        }
    }

    pub fn cname(value: &str) -> Self {
        SdesItem::new(SdesType::Cname, value)
    }

    /// A PRIV item (§6.5.8): prefix length octet, prefix, value.
    pub fn private(prefix: &[u8], value: &[u8]) -> Result<Self> {
        if prefix.len() + value.len() + 1 > 255 {
            return Err(Error::invalid("SDES PRIV prefix and value exceed 254 bytes"));
        }
        let mut v = Vec::with_capacity(1 + prefix.len() + value.len());
        v.push(prefix.len() as u8);
        v.extend_from_slice(prefix);
        v.extend_from_slice(value);
        Ok(SdesItem::new(SdesType::Priv, v))
    }

    /// Prefix and value of a well-formed PRIV item.
    pub fn private_parts(&self) -> Option<(&[u8], &[u8])> {
        if self.kind != SdesType::Priv {
            return None;
        }
        let (&n, rest) = self.value.split_first()?;
        let n = usize::from(n);
        (n <= rest.len()).then(|| rest.split_at(n))
    }

    /// The value as text, if it is valid UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }
}

/// The items describing one SSRC/CSRC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdesChunk {
    pub source: Ssrc,
    pub items: Vec<SdesItem>,
}

impl SdesChunk {
    /// The first CNAME item's text.
    pub fn cname(&self) -> Option<&str> {
        self.items
            .iter()
            .find(|i| i.kind == SdesType::Cname)
            .and_then(SdesItem::text)
    }
}

/// Source description packet (RFC 3550 §6.5).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceDescription {
    /// Up to 31 chunks.
    pub chunks: Vec<SdesChunk>,
}

impl SourceDescription {
    /// A single-chunk SDES carrying just a CNAME, as every compound packet
    /// needs (§6.1).
    pub fn with_cname(source: Ssrc, cname: &str) -> Self {
        SourceDescription {
            chunks: vec![SdesChunk {
                source,
                items: vec![SdesItem::cname(cname)],
            }],
        }
    }

    /// The CNAME of `source`, if present.
    pub fn cname_of(&self, source: Ssrc) -> Option<&str> {
        self.chunks
            .iter()
            .find(|c| c.source == source)
            .and_then(SdesChunk::cname)
    }

    pub(super) fn parse(count: u8, body: &[u8]) -> Result<Self> {
        const W: &str = "RTCP SDES";
        let mut r = Reader::new(W, body);
        let mut chunks = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            // §6.5: each chunk starts on a 32-bit boundary with the SSRC/CSRC.
            let source = Ssrc(r.u32()?);
            let mut items = Vec::new();
            loop {
                let t = r.u8()?;
                if t == 0 {
                    // END item: no length octet; null octets pad the chunk
                    // to the next 32-bit boundary.
                    let pad = (4 - r.pos() % 4) % 4;
                    r.bytes(pad)?;
                    break;
                }
                let len = usize::from(r.u8()?);
                items.push(SdesItem::new(SdesType::from_u8(t), r.bytes(len)?));
            }
            chunks.push(SdesChunk { source, items });
        }
        if r.remaining() != 0 {
            return Err(Error::malformed(
                W,
                format!("{} bytes follow the last of {count} chunks", r.remaining()),
            ));
        }
        Ok(SourceDescription { chunks })
    }

    pub(super) fn write(&self, out: &mut Vec<u8>) -> Result<()> {
        let start = begin_packet(out, self.chunks.len(), PT_SDES)?;
        for chunk in &self.chunks {
            out.extend_from_slice(&chunk.source.0.to_be_bytes());
            for item in &chunk.items {
                let t = item.kind.to_u8();
                if t == 0 {
                    return Err(Error::invalid("SDES item type 0 is the END marker"));
                }
                let len = u8::try_from(item.value.len()).map_err(|_| {
                    Error::invalid(format!("SDES item of {} bytes exceeds 255", item.value.len()))
                })?;
                out.push(t);
                out.push(len);
                out.extend_from_slice(&item.value);
            }
            // END plus null octets up to the next 32-bit boundary (§6.5).
            out.push(0);
            while !(out.len() - start).is_multiple_of(4) {
                out.push(0);
            }
        }
        finish_packet(out, start)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_compound, RtcpPacket};
    use super::*;

    #[test]
    fn sdes_from_bytes() {
        #[rustfmt::skip]
        let bytes = [
            0x82, 202, 0x00, 0x07,              // SC=2, SDES, length 7 (32 bytes)
            0x00, 0x00, 0x00, 0x01,             // chunk 1: SSRC 1
            1, 5, b'a', b'@', b'b', b'.', b'c', // CNAME "a@b.c"
            2, 3, b'J', b'o', b'e',             // NAME "Joe"
            0, 0, 0, 0,                         // END + 3 null octets to the boundary
            0x00, 0x00, 0x00, 0x02,             // chunk 2: SSRC 2, no items
            0, 0, 0, 0,                         // END + pad
        ];
        let pkts = parse_compound(&bytes).unwrap();
        let RtcpPacket::SourceDescription(sdes) = &pkts[0] else {
            panic!("{pkts:?}")
        };
        assert_eq!(sdes.chunks.len(), 2);
        assert_eq!(sdes.chunks[0].source, Ssrc(1));
        assert_eq!(sdes.chunks[0].items[0], SdesItem::cname("a@b.c"));
        assert_eq!(sdes.chunks[0].items[1].kind, SdesType::Name);
        assert_eq!(sdes.chunks[0].items[1].text(), Some("Joe"));
        assert_eq!(sdes.cname_of(Ssrc(1)), Some("a@b.c"));
        assert_eq!(
            sdes.chunks[1],
            SdesChunk {
                source: Ssrc(2),
                items: vec![]
            }
        );
        assert_eq!(sdes.cname_of(Ssrc(2)), None);
        assert_eq!(pkts[0].to_bytes().unwrap(), bytes);
    }

    #[test]
    fn chunk_that_ends_exactly_on_a_boundary_gets_a_full_null_word() {
        // SSRC + CNAME of 2 bytes = 8 bytes; END needs a whole new word.
        let p = RtcpPacket::from(SourceDescription {
            chunks: vec![SdesChunk {
                source: Ssrc(3),
                items: vec![SdesItem::cname("xy")],
            }],
        });
        let b = p.to_bytes().unwrap();
        assert_eq!(b.len(), 4 + 8 + 4);
        assert_eq!(&b[12..], &[0, 0, 0, 0]);
        assert_eq!(parse_compound(&b).unwrap(), vec![p]);
    }

    #[test]
    fn priv_items() {
        let item = SdesItem::private(b"vpbx", b"call-7").unwrap();
        assert_eq!(item.value[0], 4);
        assert_eq!(item.private_parts(), Some((&b"vpbx"[..], &b"call-7"[..])));
        assert_eq!(SdesItem::new(SdesType::Priv, vec![9, 1]).private_parts(), None);
        assert_eq!(SdesItem::cname("x").private_parts(), None);
        assert!(SdesItem::private(&[0; 200], &[0; 55]).is_err());
    }

    #[test]
    fn bad_sdes_is_reported() {
        // Item length runs past the packet.
        let e = parse_compound(&[0x81, 202, 0, 2, 0, 0, 0, 1, 1, 9, b'a', 0]).unwrap_err();
        assert_eq!(e.to_string(), "RTCP SDES: truncated: need 19 bytes, have 12");
        // No END item before the packet ends.
        let e = parse_compound(&[0x81, 202, 0, 2, 0, 0, 0, 1, 1, 2, b'a', b'b']).unwrap_err();
        assert!(matches!(e, Error::Truncated { .. }), "{e}");
        // SC=1 but a second chunk follows.
        let e =
            parse_compound(&[0x81, 202, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0]).unwrap_err();
        assert!(
            e.to_string().contains("8 bytes follow the last of 1 chunks"),
            "{e}"
        );
        // Writing refuses over-long items and the END type.
        let long = SourceDescription {
            chunks: vec![SdesChunk {
                source: Ssrc(1),
                items: vec![SdesItem::new(SdesType::Note, vec![b'x'; 256])],
            }],
        };
        assert!(RtcpPacket::from(long).to_bytes().is_err());
        let end = SourceDescription {
            chunks: vec![SdesChunk {
                source: Ssrc(1),
                items: vec![SdesItem::new(SdesType::Other(0), vec![])],
            }],
        };
        assert!(RtcpPacket::from(end).to_bytes().is_err());
    }
}
