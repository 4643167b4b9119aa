//! The packet store of the jitter buffer and the window of recently seen
//! sequence numbers.
//!
//! Positions are "media positions": the RTP timestamp unwrapped to 64 bits
//! and converted to samples (per channel) at the decoder's output rate, so
//! that a packet's extent is `pos .. pos + len` with `len` from
//! [`crate::codec::Decoder::samples_in`].

use crate::types::SeqNo;
use std::collections::VecDeque;

/// One buffered packet. The payload buffer is recycled through the store's
/// pool, so steady-state operation does not allocate.
pub(super) struct Slot {
    pub pos: i64,
    pub len: i64,
    pub seq: SeqNo,
    /// Stream generation (bumped on an SSRC change), so that loss counting
    /// never compares sequence numbers of two different sources.
    pub epoch: u32,
    pub payload: Vec<u8>,
}

impl Slot {
    pub fn end(&self) -> i64 {
        self.pos + self.len
    }
}

/// Packets sorted by media position, at most `capacity` of them.
pub(super) struct PacketStore {
    slots: VecDeque<Slot>,
    pool: Vec<Vec<u8>>,
    capacity: usize,
}

/// What [`PacketStore::insert`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Insert {
    Stored,
    /// A packet already covers this position (same timestamp, other seq).
    SamePosition,
    /// The store was full: the oldest packet (possibly the new one) was dropped.
    Overflow,
}

impl PacketStore {
    pub fn new(capacity: usize) -> Self {
        PacketStore {
            slots: VecDeque::with_capacity(capacity),
            pool: Vec::with_capacity(capacity),
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn front(&self) -> Option<&Slot> {
        self.slots.front()
    }

    /// End position of the latest buffered packet.
    pub fn max_end(&self) -> Option<i64> {
        self.slots.iter().map(Slot::end).max()
    }

    /// Copies `payload` into a (recycled) slot at its sorted place.
    pub fn insert(&mut self, pos: i64, len: i64, seq: SeqNo, epoch: u32, payload: &[u8]) -> Insert {
        let at = self.slots.partition_point(|s| s.pos < pos);
        if self.slots.get(at).is_some_and(|s| s.pos == pos) {
            return Insert::SamePosition;
        }
        let mut result = Insert::Stored;
        let mut at = at;
        if self.slots.len() >= self.capacity {
            if at == 0 {
                // The newcomer is the oldest: it is the one to go.
                return Insert::Overflow;
            }
            self.drop_front();
            at -= 1;
            result = Insert::Overflow;
        }
        let mut buf = self.pool.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(payload);
        self.slots.insert(
            at,
            Slot {
                pos,
                len,
                seq,
                epoch,
                payload: buf,
            },
        );
        result
    }

    /// Removes the earliest packet, handing it to the caller; give the slot
    /// back with [`PacketStore::recycle`].
    pub fn pop_front(&mut self) -> Option<Slot> {
        self.slots.pop_front()
    }

    pub fn recycle(&mut self, slot: Slot) {
        if self.pool.len() < self.capacity {
            self.pool.push(slot.payload);
        }
    }

    pub fn drop_front(&mut self) {
        if let Some(s) = self.slots.pop_front() {
            self.recycle(s);
        }
    }
}

/// Number of sequence numbers remembered behind the highest one.
pub(super) const SEQ_WINDOW: u16 = 1024;
const WORDS: usize = SEQ_WINDOW as usize / 64;

/// Which of the last [`SEQ_WINDOW`] sequence numbers have been received
/// (RFC 3550 §5.1: the sequence number lets a receiver detect loss and
/// restore packet order; it wraps modulo 2^16).
pub(super) struct SeqWindow {
    highest: Option<SeqNo>,
    bits: [u64; WORDS],
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum SeqStatus {
    /// Not seen before; `reordered` when older than the highest seen.
    New {
        reordered: bool,
    },
    Duplicate,
    /// Too far behind the window to know.
    Unknown,
}

impl SeqWindow {
    pub fn new() -> Self {
        SeqWindow {
            highest: None,
            bits: [0; WORDS],
        }
    }

    pub fn reset(&mut self) {
        *self = SeqWindow::new();
    }

    #[cfg(test)]
    pub fn highest(&self) -> Option<SeqNo> {
        self.highest
    }

    fn bit(seq: SeqNo) -> (usize, u64) {
        let i = usize::from(seq.0 % SEQ_WINDOW);
        (i / 64, 1u64 << (i % 64))
    }

    /// Classifies `seq` without recording it.
    pub fn status(&self, seq: SeqNo) -> SeqStatus {
        let Some(h) = self.highest else {
            return SeqStatus::New { reordered: false };
        };
        let d = seq.diff(h);
        if d > 0 {
            return SeqStatus::New { reordered: false };
        }
        if i32::from(d) <= -i32::from(SEQ_WINDOW) {
            return SeqStatus::Unknown;
        }
        if self.received(seq) {
            SeqStatus::Duplicate
        } else {
            SeqStatus::New { reordered: true }
        }
    }

    /// Whether `seq` (within the window) has been recorded.
    pub fn received(&self, seq: SeqNo) -> bool {
        match self.highest {
            Some(h) if seq.diff(h) <= 0 && i32::from(seq.diff(h)) > -i32::from(SEQ_WINDOW) => {
                let (w, m) = Self::bit(seq);
                self.bits[w] & m != 0
            }
            _ => false,
        }
    }

    /// Records `seq`, sliding the window forward when it is the newest.
    pub fn mark(&mut self, seq: SeqNo) {
        match self.highest {
            None => {
                self.highest = Some(seq);
            }
            Some(h) => {
                let d = seq.diff(h);
                if d > 0 {
                    if d as u16 >= SEQ_WINDOW {
                        self.bits = [0; WORDS];
                    } else {
                        let mut s = h;
                        for _ in 0..d {
                            s = s.next();
                            let (w, m) = Self::bit(s);
                            self.bits[w] &= !m;
                        }
                    }
                    self.highest = Some(seq);
                } else if i32::from(d) <= -i32::from(SEQ_WINDOW) {
                    return;
                }
            }
        }
        let (w, m) = Self::bit(seq);
        self.bits[w] |= m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_keeps_order_and_bounds() {
        let mut s = PacketStore::new(3);
        assert_eq!(s.insert(320, 160, SeqNo(3), 0, b"c"), Insert::Stored);
        assert_eq!(s.insert(0, 160, SeqNo(1), 0, b"a"), Insert::Stored);
        assert_eq!(s.insert(160, 160, SeqNo(2), 0, b"b"), Insert::Stored);
        assert_eq!(s.insert(160, 160, SeqNo(9), 0, b"x"), Insert::SamePosition);
        // Full: the oldest goes, also when the newcomer itself is the oldest.
        assert_eq!(s.insert(-160, 160, SeqNo(0), 0, b"z"), Insert::Overflow);
        assert_eq!(s.front().map(|f| f.pos), Some(0));
        assert_eq!(s.insert(480, 160, SeqNo(4), 0, b"d"), Insert::Overflow);
        assert_eq!(s.len(), 3);
        let order: Vec<i64> = std::iter::from_fn(|| s.pop_front().map(|x| x.pos)).collect();
        assert_eq!(order, vec![160, 320, 480]);
    }

    #[test]
    fn store_recycles_payload_buffers() {
        let mut s = PacketStore::new(2);
        s.insert(0, 1, SeqNo(0), 0, &[7; 100]);
        let slot = s.pop_front().unwrap();
        let ptr = slot.payload.as_ptr();
        s.recycle(slot);
        s.insert(1, 1, SeqNo(1), 0, &[8; 50]);
        let slot = s.pop_front().unwrap();
        assert_eq!(slot.payload.as_ptr(), ptr);
        assert_eq!(slot.payload, vec![8; 50]);
    }

    #[test]
    fn window_detects_duplicates_and_reordering_across_wrap() {
        let mut w = SeqWindow::new();
        for s in [65533u16, 65535, 0, 1] {
            assert!(matches!(w.status(SeqNo(s)), SeqStatus::New { .. }));
            w.mark(SeqNo(s));
        }
        assert_eq!(w.status(SeqNo(65534)), SeqStatus::New { reordered: true });
        assert_eq!(w.status(SeqNo(0)), SeqStatus::Duplicate);
        assert_eq!(w.status(SeqNo(2)), SeqStatus::New { reordered: false });
        assert!(w.received(SeqNo(65533)) && !w.received(SeqNo(65534)));
        // Far behind the window: cannot tell.
        assert_eq!(w.status(SeqNo(1u16.wrapping_sub(2000))), SeqStatus::Unknown);
    }

    #[test]
    fn window_slide_forgets_old_bits() {
        let mut w = SeqWindow::new();
        w.mark(SeqNo(5));
        w.mark(SeqNo(5 + SEQ_WINDOW - 1));
        assert!(w.received(SeqNo(5)));
        w.mark(SeqNo(5 + SEQ_WINDOW));
        // Seq 5 slid out; its bit (shared with 5 + SEQ_WINDOW) now means the new one.
        assert!(!w.received(SeqNo(5)));
        assert!(w.received(SeqNo(5 + SEQ_WINDOW)));
        w.mark(SeqNo(20000));
        assert!(!w.received(SeqNo(5 + SEQ_WINDOW)));
        assert_eq!(w.highest(), Some(SeqNo(20000)));
    }
}
