//! Newtypes for the integers of RTP (DESIGN.md §3.4), so that a sequence
//! number can never be passed where a timestamp is expected.

/// Synchronisation source identifier (RFC 3550 §5.1).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ssrc(pub u32);

/// 16-bit RTP sequence number; arithmetic wraps (RFC 3550 §5.1).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SeqNo(pub u16);

impl SeqNo {
    /// Signed distance `self - earlier`, interpreting the 16-bit space
    /// circularly: the result lies in -32768..=32767.
    pub fn diff(self, earlier: SeqNo) -> i16 {
        self.0.wrapping_sub(earlier.0) as i16
    }
    pub fn next(self) -> SeqNo {
        SeqNo(self.0.wrapping_add(1))
    }
}

/// 7-bit RTP payload type (RFC 3550 §5.1, RFC 3551 §6).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PayloadType(pub u8);

impl PayloadType {
    pub const PCMU: PayloadType = PayloadType(0);
    pub const PCMA: PayloadType = PayloadType(8);
    pub const G722: PayloadType = PayloadType(9);
}

/// 32-bit RTP media timestamp in clock-rate units; arithmetic wraps.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RtpTimestamp(pub u32);

impl RtpTimestamp {
    /// Signed distance `self - earlier` over the circular 32-bit space.
    pub fn diff(self, earlier: RtpTimestamp) -> i32 {
        self.0.wrapping_sub(earlier.0) as i32
    }
    pub fn wrapping_add(self, units: u32) -> RtpTimestamp {
        RtpTimestamp(self.0.wrapping_add(units))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_diff_wraps() {
        assert_eq!(SeqNo(2).diff(SeqNo(65534)), 4);
        assert_eq!(SeqNo(65534).diff(SeqNo(2)), -4);
        assert_eq!(SeqNo(65535).next(), SeqNo(0));
    }

    #[test]
    fn ts_diff_wraps() {
        assert_eq!(RtpTimestamp(80).diff(RtpTimestamp(u32::MAX - 79)), 160);
        assert_eq!(RtpTimestamp(5).wrapping_add(u32::MAX), RtpTimestamp(4));
    }
}
