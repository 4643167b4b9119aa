//! Extended reports (RFC 3611): the XR packet (§2), the report block
//! framework (§3) and the VoIP Metrics block (§4.7). Other block types are
//! kept raw.

use super::{begin_packet, finish_packet, Reader, PT_XR};
use crate::error::{Error, Result};
use crate::types::Ssrc;

/// RFC 3611 §4.7: block type of the VoIP Metrics report block.
pub const BT_VOIP_METRICS: u8 = 7;
/// RFC 3611 §4.7: the VoIP Metrics block is 9 words, block length 8.
const VOIP_METRICS_WORDS: u16 = 8;
/// RFC 3611 §4.7: value of R factor, MOS and level fields meaning
/// "unavailable".
pub const XR_UNAVAILABLE: u8 = 127;

/// Extended report packet (RFC 3611 §2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtendedReport {
    /// SSRC of the packet's originator.
    pub ssrc: Ssrc,
    pub blocks: Vec<XrBlock>,
}

/// One XR report block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XrBlock {
    VoipMetrics(VoipMetrics),
    /// Any other block type, verbatim.
    Raw(RawXrBlock),
}

/// An XR block we do not interpret (RFC 3611 §3 framework).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawXrBlock {
    pub block_type: u8,
    pub type_specific: u8,
    /// Block contents after the 4-byte block header, a multiple of 4 bytes.
    pub data: Vec<u8>,
}

/// Packet loss concealment in use (RFC 3611 §4.7.6, RX config bits 0-1).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PlcMode {
    Unspecified = 0,
    Disabled = 1,
    Enhanced = 2,
    Standard = 3,
}

/// Jitter buffer adaptivity (RFC 3611 §4.7.6, RX config bits 2-3).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum JitterBufferMode {
    Unknown = 0,
    Reserved = 1,
    NonAdaptive = 2,
    Adaptive = 3,
}

/// VoIP Metrics report block (RFC 3611 §4.7). Units are those of the RFC:
/// rates and densities in 1/256, durations and delays in milliseconds,
/// levels in dB(m), R factors 0-100, MOS x10; 127 where defined means
/// unavailable ([`XR_UNAVAILABLE`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VoipMetrics {
    /// SSRC of the RTP stream this block describes.
    pub ssrc: Ssrc,
    /// §4.7.1 packet loss and discard metrics.
    pub loss_rate: u8,
    pub discard_rate: u8,
    /// §4.7.2 burst/gap metrics.
    pub burst_density: u8,
    pub gap_density: u8,
    pub burst_duration: u16,
    pub gap_duration: u16,
    /// §4.7.3 delay metrics.
    pub round_trip_delay: u16,
    pub end_system_delay: u16,
    /// §4.7.4 signal-related metrics: signed levels (dBm0 / dBm) and RERL.
    pub signal_level: i8,
    pub noise_level: i8,
    pub rerl: u8,
    /// §4.7.6 gap threshold.
    pub gmin: u8,
    /// §4.7.5 call quality metrics.
    pub r_factor: u8,
    pub ext_r_factor: u8,
    pub mos_lq: u8,
    pub mos_cq: u8,
    /// §4.7.6 receiver configuration byte: PLC (2 bits), JBA (2 bits),
    /// JB rate (4 bits), most significant first.
    pub rx_config: u8,
    /// §4.7.7 jitter buffer parameters (ms).
    pub jb_nominal: u16,
    pub jb_maximum: u16,
    pub jb_abs_max: u16,
}

impl VoipMetrics {
    /// Packs the §4.7.6 receiver configuration byte; `jb_rate` is 0..=15.
    pub fn rx_config_byte(plc: PlcMode, jba: JitterBufferMode, jb_rate: u8) -> Result<u8> {
        if jb_rate > 15 {
            return Err(Error::invalid(format!("XR JB rate {jb_rate} exceeds 15")));
        }
        Ok(((plc as u8) << 6) | ((jba as u8) << 4) | jb_rate)
    }

    pub fn plc(&self) -> PlcMode {
        match self.rx_config >> 6 {
            0 => PlcMode::Unspecified,
            1 => PlcMode::Disabled,
            2 => PlcMode::Enhanced,
            _ => PlcMode::Standard,
        }
    }

    pub fn jitter_buffer_mode(&self) -> JitterBufferMode {
        match (self.rx_config >> 4) & 3 {
            0 => JitterBufferMode::Unknown,
            1 => JitterBufferMode::Reserved,
            2 => JitterBufferMode::NonAdaptive,
            _ => JitterBufferMode::Adaptive,
        }
    }

    /// The 4-bit jitter buffer adjustment rate.
    pub fn jitter_buffer_rate(&self) -> u8 {
        self.rx_config & 0x0F
    }

    fn parse(data: &[u8]) -> Result<Self> {
        let mut r = Reader::new("RTCP XR VoIP metrics", data);
        Ok(VoipMetrics {
            ssrc: Ssrc(r.u32()?),
            loss_rate: r.u8()?,
            discard_rate: r.u8()?,
            burst_density: r.u8()?,
            gap_density: r.u8()?,
            burst_duration: r.u16()?,
            gap_duration: r.u16()?,
            round_trip_delay: r.u16()?,
            end_system_delay: r.u16()?,
            signal_level: r.u8()? as i8,
            noise_level: r.u8()? as i8,
            rerl: r.u8()?,
            gmin: r.u8()?,
            r_factor: r.u8()?,
            ext_r_factor: r.u8()?,
            mos_lq: r.u8()?,
            mos_cq: r.u8()?,
            rx_config: {
                let c = r.u8()?;
                r.u8()?; // reserved
                c
            },
            jb_nominal: r.u16()?,
            jb_maximum: r.u16()?,
            jb_abs_max: r.u16()?,
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[BT_VOIP_METRICS, 0]);
        out.extend_from_slice(&VOIP_METRICS_WORDS.to_be_bytes());
        out.extend_from_slice(&self.ssrc.0.to_be_bytes());
        out.extend_from_slice(&[
            self.loss_rate,
            self.discard_rate,
            self.burst_density,
            self.gap_density,
        ]);
        for v in [
            self.burst_duration,
            self.gap_duration,
            self.round_trip_delay,
            self.end_system_delay,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&[
            self.signal_level as u8,
            self.noise_level as u8,
            self.rerl,
            self.gmin,
            self.r_factor,
            self.ext_r_factor,
            self.mos_lq,
            self.mos_cq,
            self.rx_config,
            0, // reserved
        ]);
        for v in [self.jb_nominal, self.jb_maximum, self.jb_abs_max] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

impl ExtendedReport {
    pub(super) fn parse(body: &[u8]) -> Result<Self> {
        const W: &str = "RTCP XR";
        let mut r = Reader::new(W, body);
        let ssrc = Ssrc(r.u32()?);
        let mut blocks = Vec::new();
        while r.remaining() > 0 {
            // RFC 3611 §3: BT, type-specific, block length in 32-bit words
            // minus one, header included (i.e. the content's word count).
            let block_type = r.u8()?;
            let type_specific = r.u8()?;
            let words = r.u16()?;
            let data = r.bytes(usize::from(words) * 4)?;
            if block_type == BT_VOIP_METRICS {
                if words != VOIP_METRICS_WORDS {
                    return Err(Error::malformed(
                        W,
                        format!("VoIP metrics block length {words}, expected {VOIP_METRICS_WORDS}"),
                    ));
                }
                blocks.push(XrBlock::VoipMetrics(VoipMetrics::parse(data)?));
            } else {
                blocks.push(XrBlock::Raw(RawXrBlock {
                    block_type,
                    type_specific,
                    data: data.to_vec(),
                }));
            }
        }
        Ok(ExtendedReport { ssrc, blocks })
    }

    pub(super) fn write(&self, out: &mut Vec<u8>) -> Result<()> {
        // RFC 3611 §2: the 5 bits after P are reserved (zero).
        let start = begin_packet(out, 0, PT_XR)?;
        out.extend_from_slice(&self.ssrc.0.to_be_bytes());
        for block in &self.blocks {
            match block {
                XrBlock::VoipMetrics(m) => m.write(out),
                XrBlock::Raw(b) => {
                    let words = u16::try_from(b.data.len() / 4)
                        .ok()
                        .filter(|_| b.data.len().is_multiple_of(4))
                        .ok_or_else(|| {
                            Error::invalid(format!(
                                "XR block of {} bytes is not a multiple of 4 below 256 KiB",
                                b.data.len()
                            ))
                        })?;
                    out.extend_from_slice(&[b.block_type, b.type_specific]);
                    out.extend_from_slice(&words.to_be_bytes());
                    out.extend_from_slice(&b.data);
                }
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
    fn voip_metrics_from_bytes() {
        #[rustfmt::skip]
        let bytes = [
            0x80, 207, 0x00, 0x0C,              // XR, length 12 (52 bytes)
            0x00, 0x00, 0x00, 0x01,             // originator SSRC
            0x04, 0x00, 0x00, 0x01,             // raw block BT=4, 1 word
            0xCA, 0xFE, 0xBA, 0xBE,
            7, 0, 0x00, 0x08,                   // VoIP metrics, length 8
            0x00, 0x00, 0x00, 0x02,             // source SSRC
            13, 2, 64, 3,                       // loss, discard, burst dens., gap dens.
            0x00, 0x78, 0x05, 0xDC,             // burst 120 ms, gap 1500 ms
            0x00, 0x32, 0x00, 0x28,             // RTT 50 ms, end system 40 ms
            0xEC, 0xB5, 40, 16,                 // signal -20, noise -75, RERL, Gmin
            90, 127, 42, 41,                    // R, ext R (n/a), MOS-LQ 4.2, MOS-CQ 4.1
            0xF5, 0x00, 0x00, 0x3C,             // RX config (PLC std, JB adaptive, rate 5), JB nominal 60
            0x00, 0x78, 0x00, 0xF0,             // JB maximum 120, JB abs max 240
        ];
        let pkts = parse_compound(&bytes).unwrap();
        let RtcpPacket::ExtendedReport(xr) = &pkts[0] else {
            panic!("{pkts:?}")
        };
        assert_eq!(xr.ssrc, Ssrc(1));
        assert_eq!(
            xr.blocks[0],
            XrBlock::Raw(RawXrBlock {
                block_type: 4,
                type_specific: 0,
                data: vec![0xCA, 0xFE, 0xBA, 0xBE]
            })
        );
        let XrBlock::VoipMetrics(m) = xr.blocks[1] else {
            panic!("{xr:?}")
        };
        assert_eq!(m.ssrc, Ssrc(2));
        assert_eq!(
            (m.loss_rate, m.discard_rate, m.burst_density, m.gap_density),
            (13, 2, 64, 3)
        );
        assert_eq!((m.burst_duration, m.gap_duration), (120, 1500));
        assert_eq!((m.round_trip_delay, m.end_system_delay), (50, 40));
        assert_eq!(
            (m.signal_level, m.noise_level, m.rerl, m.gmin),
            (-20, -75, 40, 16)
        );
        assert_eq!(
            (m.r_factor, m.ext_r_factor, m.mos_lq, m.mos_cq),
            (90, XR_UNAVAILABLE, 42, 41)
        );
        assert_eq!(m.plc(), PlcMode::Standard);
        assert_eq!(m.jitter_buffer_mode(), JitterBufferMode::Adaptive);
        assert_eq!(m.jitter_buffer_rate(), 5);
        assert_eq!((m.jb_nominal, m.jb_maximum, m.jb_abs_max), (60, 120, 240));
        assert_eq!(pkts[0].to_bytes().unwrap(), bytes);
    }

    #[test]
    fn rx_config_packing() {
        let c = VoipMetrics::rx_config_byte(PlcMode::Enhanced, JitterBufferMode::NonAdaptive, 15).unwrap();
        assert_eq!(c, 0b1010_1111);
        let m = VoipMetrics {
            rx_config: c,
            ..VoipMetrics::default()
        };
        assert_eq!(m.plc(), PlcMode::Enhanced);
        assert_eq!(m.jitter_buffer_mode(), JitterBufferMode::NonAdaptive);
        assert!(VoipMetrics::rx_config_byte(PlcMode::Disabled, JitterBufferMode::Unknown, 16).is_err());
    }

    #[test]
    fn xr_errors() {
        // Block claims 2 words, 1 present.
        let e = parse_compound(&[0x80, 207, 0, 3, 0, 0, 0, 1, 9, 0, 0, 2, 1, 2, 3, 4]).unwrap_err();
        assert_eq!(e.to_string(), "RTCP XR: truncated: need 20 bytes, have 16");
        // VoIP metrics block with the wrong length.
        let e = parse_compound(&[0x80, 207, 0, 3, 0, 0, 0, 1, 7, 0, 0, 1, 1, 2, 3, 4]).unwrap_err();
        assert!(e.to_string().contains("VoIP metrics block length 1"), "{e}");
        let bad = ExtendedReport {
            ssrc: Ssrc(1),
            blocks: vec![XrBlock::Raw(RawXrBlock {
                block_type: 4,
                type_specific: 0,
                data: vec![1, 2],
            })],
        };
        assert!(RtcpPacket::from(bad).to_bytes().is_err());
    }
}
