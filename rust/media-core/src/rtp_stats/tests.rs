//! Scenario tests of RFC 3550 A.1/A.3/A.8 and of SSRC tracking.

use super::*;
use proptest::prelude::*;

const RATE: u32 = 8000;
/// 20 ms of 8 kHz audio.
const STEP: u32 = 160;

fn stats() -> SourceStats {
    SourceStats::new(Ssrc(0xABCD), RATE).unwrap()
}

/// Feeds `seq` with the timestamp and arrival of a perfectly paced stream
/// in which packet `index` was sent at `index * 20 ms`.
fn feed_at(s: &mut SourceStats, seq: u16, index: u32) -> SeqVerdict {
    let ts = RtpTimestamp(index.wrapping_mul(STEP));
    s.update(SeqNo(seq), ts, f64::from(index) * 0.02)
}

/// Feeds sequence numbers as if sequence number = packet index.
fn feed(s: &mut SourceStats, seqs: impl IntoIterator<Item = u16>) -> Vec<SeqVerdict> {
    seqs.into_iter().map(|q| feed_at(s, q, u32::from(q))).collect()
}

#[test]
fn probation_of_a_new_source() {
    use SeqVerdict::*;
    let mut s = stats();
    assert!(!s.is_valid());
    assert_eq!(feed(&mut s, [100]), [Probation]);
    assert_eq!(s.report_block(0, 0), None, "no report while on probation");
    // Out of sequence during probation: probation starts over.
    assert_eq!(feed(&mut s, [105]), [Probation]);
    assert_eq!(feed(&mut s, [106]), [Valid]);
    assert!(s.is_valid());
    // A.1: the statistics start at the packet that completes probation.
    assert_eq!((s.received(), s.expected(), s.lost()), (1, 1, 0));
    assert_eq!(feed(&mut s, [107, 108]), [Valid, Valid]);
    assert_eq!((s.received(), s.expected(), s.extended_max()), (3, 3, 108));
}

#[test]
fn probation_across_the_wrap() {
    // 65535 -> 0 is sequential (A.1's C text would miss it through int
    // promotion; the 16-bit successor is what it means).
    let mut s = stats();
    assert_eq!(feed_at(&mut s, 65535, 0), SeqVerdict::Probation);
    assert_eq!(feed_at(&mut s, 0, 1), SeqVerdict::Valid);
    assert_eq!(s.extended_max(), 0);
}

#[test]
fn sequence_wrap_counts_a_cycle() {
    let mut s = stats();
    let seqs: Vec<u16> = (65530..=65535).chain(0..=10).collect();
    for (i, &q) in seqs.iter().enumerate() {
        let v = feed_at(&mut s, q, i as u32);
        assert_eq!(v.is_counted(), i > 0, "packet {i}");
    }
    // Base is 65531 (second packet), highest is 65536 + 10.
    assert_eq!(s.extended_max(), 0x0001_000A);
    assert_eq!(s.expected(), 16);
    assert_eq!(s.received(), 16);
    let rb = s.report_block(0, 0).unwrap();
    assert_eq!(rb.highest_seq, 65_546);
    assert_eq!((rb.cumulative_lost, rb.fraction_lost), (0, 0));
}

#[test]
fn loss_burst_gives_exact_counts_per_interval() {
    let mut s = stats();
    feed(&mut s, 1000..=1009); // 1000 is probation; 1001..=1009 counted
    feed(&mut s, 1020..=1039); // 1010..=1019 lost
    assert_eq!(s.expected(), 39);
    assert_eq!(s.received(), 29);
    assert_eq!(s.lost(), 10);
    let rb = s.report_block(0, 0).unwrap();
    assert_eq!(rb.cumulative_lost, 10);
    assert_eq!(rb.fraction_lost, (10 * 256 / 39) as u8); // 65
    assert_eq!(rb.highest_seq, 1039);

    // A clean interval: fraction back to 0, cumulative unchanged.
    feed(&mut s, 1040..=1049);
    let rb = s.report_block(0, 0).unwrap();
    assert_eq!((rb.fraction_lost, rb.cumulative_lost), (0, 10));

    // Half of the next ten lost.
    feed(&mut s, (1051..=1059).step_by(2));
    let rb = s.report_block(0, 0).unwrap();
    assert_eq!((rb.fraction_lost, rb.cumulative_lost), (128, 15));

    // No packets at all in an interval: nothing expected, fraction 0.
    let rb = s.report_block(0, 0).unwrap();
    assert_eq!((rb.fraction_lost, rb.cumulative_lost), (0, 15));
}

#[test]
fn reordering_is_not_loss() {
    use SeqVerdict::*;
    let mut s = stats();
    feed(&mut s, 1..=5);
    assert_eq!(feed(&mut s, [7, 6, 8]), [Valid, Reordered, Valid]);
    assert_eq!(s.lost(), 0);
    assert_eq!(s.reordered(), 1);
    // A packet 99 behind is still late; one 101 behind is a bad jump.
    feed(&mut s, 9..=200);
    feed(&mut s, (202..=300).step_by(2));
    assert_eq!(feed(&mut s, [201]), [Reordered]);
    assert_eq!(feed(&mut s, [199]), [BadJump]);
    assert_eq!(s.reordered(), 2);
    // Odd 201..=299 were skipped; 201 came late.
    assert_eq!(s.lost(), 49);
}

#[test]
fn duplicates_are_counted_and_make_loss_negative() {
    use SeqVerdict::*;
    let mut s = stats();
    feed(&mut s, 1..=10);
    assert_eq!(feed(&mut s, [10, 7, 7]), [Duplicate, Duplicate, Duplicate]);
    assert_eq!(s.duplicates(), 3);
    assert_eq!(s.reordered(), 0);
    // §6.4.1: duplicates count as received, so loss goes negative.
    assert_eq!(s.received(), 12);
    assert_eq!(s.lost(), -3);
    let rb = s.report_block(0, 0).unwrap();
    assert_eq!((rb.cumulative_lost, rb.fraction_lost), (-3, 0));
    // A reordered packet and then its duplicate.
    feed(&mut s, [12]);
    assert_eq!(feed(&mut s, [11, 11]), [Reordered, Duplicate]);
}

#[test]
fn big_jump_resyncs_after_two_sequential_packets() {
    use SeqVerdict::*;
    let mut s = stats();
    feed(&mut s, 100..=110);
    // A single stray packet far ahead is dropped; the stream goes on.
    assert_eq!(feed(&mut s, [30_000]), [BadJump]);
    assert_eq!(feed(&mut s, [111]), [Valid]);
    assert_eq!((s.received(), s.lost()), (11, 0));
    // The sender restarts at 20000: the first packet is dropped, the
    // second (20001 == bad_seq) restarts the statistics.
    assert_eq!(feed(&mut s, [20_000, 20_001, 20_002]), [BadJump, Resync, Valid]);
    assert_eq!((s.received(), s.expected(), s.lost()), (2, 2, 0));
    assert_eq!(s.extended_max(), 20_002);
    assert_eq!((s.bad_jumps(), s.resyncs()), (2, 1));
}

#[test]
fn dropout_limit() {
    let mut s = stats();
    feed(&mut s, [0, 1]);
    // 2999 ahead: in order, the gap is lost.
    assert_eq!(feed(&mut s, [3000]), [SeqVerdict::Valid]);
    assert_eq!(s.lost(), 2998);
    // 3000 ahead: a bad jump.
    assert_eq!(feed(&mut s, [6000]), [SeqVerdict::BadJump]);
}

#[test]
fn cumulative_loss_clamps_to_24_bits() {
    let mut s = stats();
    feed(&mut s, [0, 1]);
    // 3000 cycles of 2999-packet gaps: about 9 million lost.
    let mut seq: u16 = 1;
    for i in 0..3100u32 {
        seq = seq.wrapping_add(2999);
        feed_at(&mut s, seq, i + 2);
    }
    assert!(i64::from(s.expected()) - i64::from(s.received()) > i64::from(CUMULATIVE_LOST_MAX));
    assert_eq!(s.lost(), CUMULATIVE_LOST_MAX);
    assert_eq!(s.report_block(0, 0).unwrap().cumulative_lost, CUMULATIVE_LOST_MAX);
}

#[test]
fn jitter_of_alternating_offsets_converges_to_twice_the_offset() {
    // Arrivals alternate 0.5 ms early / late around a 20 ms pace, so every
    // transit difference D is 1 ms (8 units at 8 kHz); A.8 then gives
    // J_n = 8 * (1 - (15/16)^n) after n differences.
    let mut s = stats();
    let d = 0.0005;
    for i in 0..=300u32 {
        let off = if i % 2 == 0 { -d } else { d };
        s.update(
            SeqNo(i as u16),
            RtpTimestamp(i * STEP),
            10.0 + f64::from(i) * 0.02 + off,
        );
        if i == 16 || i == 300 {
            // Probation leaves packet 0 out: i packets counted, i-1 differences.
            let expect = 8.0 * (1.0 - (15.0f64 / 16.0).powi(i as i32 - 1));
            assert!(
                (s.jitter - expect).abs() < 1e-6,
                "i={i}: {} vs {expect}",
                s.jitter
            );
        }
    }
    assert_eq!(s.jitter(), 7, "truncated to units, just below 8");
    assert!((s.jitter_ms() - 1.0).abs() < 1e-6);
}

#[test]
fn constant_delay_has_no_jitter_even_across_timestamp_wrap() {
    let mut s = stats();
    for i in 0..100u32 {
        let ts = RtpTimestamp(u32::MAX - 50 * STEP).wrapping_add(i * STEP);
        s.update(SeqNo(i as u16), ts, 5.0 + f64::from(i) * 0.02);
    }
    assert!(s.jitter < 1e-6, "{}", s.jitter);
    // A NaN arrival is ignored rather than poisoning the estimate.
    s.update(SeqNo(100), RtpTimestamp(0), f64::NAN);
    assert!(s.jitter_ms().is_finite());
}

#[test]
fn lsr_dlsr_from_noted_sender_report() {
    let mut s = stats();
    assert_eq!(s.lsr_dlsr(3.0), (0, 0));
    feed(&mut s, [1, 2]);
    let ntp = NtpTimestamp::new(0xE000_1234, 0x8000_0000);
    s.note_sender_report(ntp, 10.0);
    let rb = s.report_block_at(11.5).unwrap();
    assert_eq!(rb.lsr, 0x1234_8000);
    assert_eq!(rb.dlsr, 0x0001_8000);
    assert_eq!(rb.ssrc, Ssrc(0xABCD));
}

#[test]
fn zero_clock_rate_is_refused() {
    assert!(SourceStats::new(Ssrc(1), 0).is_err());
    assert!(Receiver::new(0).is_err());
    assert!(Receiver::new(8000).unwrap().with_switch_after(f64::NAN).is_err());
}

fn rx(r: &mut Receiver, ssrc: u32, seq: u16, t: f64) -> ReceiverVerdict {
    r.on_rtp(Ssrc(ssrc), SeqNo(seq), RtpTimestamp(u32::from(seq) * STEP), t)
}

#[test]
fn receiver_switches_ssrc_only_after_silence() {
    use ReceiverVerdict::*;
    let mut r = Receiver::new(RATE).unwrap();
    assert_eq!(
        rx(&mut r, 1, 10, 0.0),
        NewSource {
            previous: None,
            verdict: SeqVerdict::Probation
        }
    );
    assert_eq!(rx(&mut r, 1, 11, 0.02), Packet(SeqVerdict::Valid));
    // Interleaved foreign SSRC while source 1 is active.
    assert_eq!(rx(&mut r, 2, 500, 0.03), Foreign);
    assert_eq!(rx(&mut r, 1, 12, 0.04), Packet(SeqVerdict::Valid));
    assert_eq!(r.foreign_packets(), 1);
    assert_eq!(r.ssrc_changes(), 0);
    // Source 1 goes silent; after the switch time source 2 takes over.
    assert_eq!(
        rx(&mut r, 2, 501, 0.04 + DEFAULT_SWITCH_AFTER_SECS - 0.01),
        Foreign
    );
    assert_eq!(
        rx(&mut r, 2, 502, 0.04 + DEFAULT_SWITCH_AFTER_SECS + 0.001),
        NewSource {
            previous: Some(Ssrc(1)),
            verdict: SeqVerdict::Probation
        }
    );
    assert_eq!(r.ssrc_changes(), 1);
    assert_eq!(r.source().unwrap().ssrc(), Ssrc(2));
    assert_eq!(r.previous_source().unwrap().received(), 2);
    // Source 1 coming back now is foreign.
    assert_eq!(rx(&mut r, 1, 13, 0.26), Foreign);
}

#[test]
fn receiver_bye_ends_the_source_at_once() {
    use ReceiverVerdict::*;
    let mut r = Receiver::new(RATE).unwrap().with_switch_after(5.0).unwrap();
    rx(&mut r, 1, 1, 0.0);
    rx(&mut r, 1, 2, 0.02);
    assert!(!r.on_bye(Ssrc(9)));
    assert!(r.on_bye(Ssrc(1)));
    assert!(r.source().is_none());
    assert_eq!(r.report_block(0.1), None);
    assert!(matches!(
        rx(&mut r, 3, 40, 0.05),
        NewSource {
            previous: Some(Ssrc(1)),
            ..
        }
    ));
    assert_eq!((r.ssrc_changes(), r.byes()), (1, 1));
    // The same SSRC restarting after its BYE is a new source, not a change.
    assert!(r.on_bye(Ssrc(3)));
    assert!(matches!(rx(&mut r, 3, 41, 0.07), NewSource { .. }));
    assert_eq!(r.ssrc_changes(), 1);
}

#[test]
fn receiver_reports_with_sender_report_timing() {
    let mut r = Receiver::new(RATE).unwrap();
    for q in 0..50u16 {
        rx(&mut r, 7, q, f64::from(q) * 0.02);
    }
    r.on_sender_report(Ssrc(8), NtpTimestamp::new(1, 0), 0.5); // not current: ignored
    r.on_sender_report(Ssrc(7), NtpTimestamp::new(0x0002_0003, 0x4000_0000), 0.5);
    let rb = r.report_block(1.0).unwrap();
    assert_eq!(rb.ssrc, Ssrc(7));
    assert_eq!(rb.lsr, 0x0003_4000);
    assert_eq!(rb.dlsr, 0x0000_8000);
    assert_eq!(rb.highest_seq, 49);
    assert_eq!(rb.cumulative_lost, 0);
}

proptest! {
    /// Any sequence of packets keeps the counters consistent and never panics.
    #[test]
    fn arbitrary_sequences_are_consistent(
        start in any::<u16>(),
        steps in proptest::collection::vec(-150i32..4000, 1..300),
        arrivals in proptest::collection::vec(-1.0f64..1.0, 300),
    ) {
        let mut s = stats();
        let mut seq = start;
        let mut counted = 0u32;
        for (i, step) in steps.iter().enumerate() {
            seq = seq.wrapping_add(*step as u16);
            let v = s.update(SeqNo(seq), RtpTimestamp(i as u32 * STEP), i as f64 * 0.02 + arrivals[i]);
            if v == SeqVerdict::Resync {
                counted = 0;
            }
            if v.is_counted() {
                counted += 1;
            }
            prop_assert_eq!(s.received(), counted);
            prop_assert!(s.jitter_ms().is_finite() && s.jitter_ms() >= 0.0);
            if let Some(rb) = s.clone().report_block(0, 0) {
                prop_assert_eq!(rb.cumulative_lost, s.lost());
            }
        }
    }
}
