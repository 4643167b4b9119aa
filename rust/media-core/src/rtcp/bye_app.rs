//! Goodbye (RFC 3550 §6.6) and application-defined (§6.7) packets.

use super::{begin_packet, finish_packet, Reader, PT_APP, PT_BYE};
use crate::error::{Error, Result};
use crate::types::Ssrc;

/// BYE packet (RFC 3550 §6.6).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bye {
    /// Up to 31 SSRC/CSRC identifiers leaving the session.
    pub sources: Vec<Ssrc>,
    /// Optional "reason for leaving" (UTF-8 per §6.6, kept as bytes; at
    /// most 255). `Some(empty)` encodes as a zero length octet.
    pub reason: Option<Vec<u8>>,
}

impl Bye {
    pub fn new(source: Ssrc) -> Self {
        Bye {
            sources: vec![source],
            reason: None,
        }
    }

    /// The reason as text, if present and valid UTF-8.
    pub fn reason_text(&self) -> Option<&str> {
        self.reason.as_deref().and_then(|r| std::str::from_utf8(r).ok())
    }

    pub(super) fn parse(count: u8, body: &[u8]) -> Result<Self> {
        let mut r = Reader::new("RTCP BYE", body);
        let sources = (0..count)
            .map(|_| r.u32().map(Ssrc))
            .collect::<Result<Vec<_>>>()?;
        // §6.6: an optional length octet and text follow the SSRC list,
        // padded with nulls to a 32-bit boundary.
        let reason = if r.remaining() > 0 {
            let len = usize::from(r.u8()?);
            Some(r.bytes(len)?.to_vec())
        } else {
            None
        };
        Ok(Bye { sources, reason })
    }

    pub(super) fn write(&self, out: &mut Vec<u8>) -> Result<()> {
        let start = begin_packet(out, self.sources.len(), PT_BYE)?;
        for s in &self.sources {
            out.extend_from_slice(&s.0.to_be_bytes());
        }
        if let Some(reason) = &self.reason {
            let len = u8::try_from(reason.len())
                .map_err(|_| Error::invalid(format!("BYE reason of {} bytes exceeds 255", reason.len())))?;
            out.push(len);
            out.extend_from_slice(reason);
            while !(out.len() - start).is_multiple_of(4) {
                out.push(0);
            }
        }
        finish_packet(out, start)
    }
}

/// APP packet (RFC 3550 §6.7); the application data is passed through raw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct App {
    /// 5-bit subtype (0..=31).
    pub subtype: u8,
    pub ssrc: Ssrc,
    /// Four ASCII characters naming the application.
    pub name: [u8; 4],
    /// Application-dependent data, a multiple of 4 bytes.
    pub data: Vec<u8>,
}

impl App {
    pub(super) fn parse(count: u8, body: &[u8]) -> Result<Self> {
        let mut r = Reader::new("RTCP APP", body);
        let ssrc = Ssrc(r.u32()?);
        let n = r.bytes(4)?;
        Ok(App {
            subtype: count,
            ssrc,
            name: [n[0], n[1], n[2], n[3]],
            data: r.rest().to_vec(),
        })
    }

    pub(super) fn write(&self, out: &mut Vec<u8>) -> Result<()> {
        if !self.data.len().is_multiple_of(4) {
            return Err(Error::invalid(format!(
                "APP data of {} bytes is not a multiple of 4",
                self.data.len()
            )));
        }
        let start = begin_packet(out, usize::from(self.subtype), PT_APP)?;
        out.extend_from_slice(&self.ssrc.0.to_be_bytes());
        out.extend_from_slice(&self.name);
        out.extend_from_slice(&self.data);
        finish_packet(out, start)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_compound, RtcpPacket};
    use super::*;

    #[test]
    fn bye_from_bytes() {
        #[rustfmt::skip]
        let bytes = [
            0x82, 203, 0x00, 0x04,              // SC=2, BYE, length 4 (20 bytes)
            0x00, 0x00, 0x01, 0x00,             // SSRC 256
            0x00, 0x00, 0x02, 0x00,             // CSRC 512
            5, b'h', b'u', b'n', b'g', b' ',    // reason "hung " ...
            0, 0,                               // ... padded to the boundary
        ];
        let pkts = parse_compound(&bytes).unwrap();
        let RtcpPacket::Bye(bye) = &pkts[0] else {
            panic!("{pkts:?}")
        };
        assert_eq!(bye.sources, [Ssrc(256), Ssrc(512)]);
        assert_eq!(bye.reason_text(), Some("hung "));
        assert_eq!(pkts[0].to_bytes().unwrap(), bytes);
    }

    #[test]
    fn bye_without_reason_and_with_empty_reason() {
        let plain = RtcpPacket::from(Bye::new(Ssrc(9)));
        let b = plain.to_bytes().unwrap();
        assert_eq!(b, [0x81, 203, 0, 1, 0, 0, 0, 9]);
        assert_eq!(parse_compound(&b).unwrap(), vec![plain]);
        let empty = RtcpPacket::from(Bye {
            sources: vec![],
            reason: Some(vec![]),
        });
        let b = empty.to_bytes().unwrap();
        assert_eq!(b, [0x80, 203, 0, 1, 0, 0, 0, 0]);
        assert_eq!(parse_compound(&b).unwrap(), vec![empty]);
    }

    #[test]
    fn bye_errors() {
        // Reason length 9 but only 3 bytes of text.
        let e = parse_compound(&[0x81, 203, 0, 2, 0, 0, 0, 1, 9, b'a', b'b', b'c']).unwrap_err();
        assert_eq!(e.to_string(), "RTCP BYE: truncated: need 18 bytes, have 12");
        // SC=3 with room for one source.
        assert!(parse_compound(&[0x83, 203, 0, 1, 0, 0, 0, 1]).is_err());
        let long = Bye {
            sources: vec![],
            reason: Some(vec![b'x'; 256]),
        };
        assert!(RtcpPacket::from(long).to_bytes().is_err());
    }

    #[test]
    fn app_from_bytes() {
        let bytes = [0x85, 204, 0, 3, 0, 0, 0, 7, b'V', b'P', b'B', b'X', 1, 2, 3, 4];
        let pkts = parse_compound(&bytes).unwrap();
        let RtcpPacket::App(app) = &pkts[0] else {
            panic!("{pkts:?}")
        };
        assert_eq!(app.subtype, 5);
        assert_eq!(app.ssrc, Ssrc(7));
        assert_eq!(&app.name, b"VPBX");
        assert_eq!(app.data, [1, 2, 3, 4]);
        assert_eq!(pkts[0].to_bytes().unwrap(), bytes);
        let e = parse_compound(&[0x80, 204, 0, 1, 0, 0, 0, 7]).unwrap_err();
        assert_eq!(e.to_string(), "RTCP APP: truncated: need 12 bytes, have 8");
        let bad = App {
            subtype: 32,
            ..App::default()
        };
        assert!(RtcpPacket::from(bad).to_bytes().is_err());
        let bad = App {
            data: vec![1],
            ..App::default()
        };
        assert!(RtcpPacket::from(bad).to_bytes().is_err());
    }
}
