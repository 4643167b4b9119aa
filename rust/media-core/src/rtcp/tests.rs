//! Compound-packet tests and property tests over every packet type.

use super::*;
use crate::types::{RtpTimestamp, Ssrc};
use proptest::collection::vec;
use proptest::prelude::*;

fn ssrc() -> impl Strategy<Value = Ssrc> {
    any::<u32>().prop_map(Ssrc)
}

fn words(max_words: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<[u8; 4]>(), 0..=max_words).prop_map(|w| w.concat())
}

fn report_block() -> impl Strategy<Value = ReportBlock> {
    (
        ssrc(),
        any::<u8>(),
        CUMULATIVE_LOST_MIN..=CUMULATIVE_LOST_MAX,
        any::<[u32; 4]>(),
    )
        .prop_map(
            |(ssrc, fraction_lost, cumulative_lost, [highest_seq, jitter, lsr, dlsr])| ReportBlock {
                ssrc,
                fraction_lost,
                cumulative_lost,
                highest_seq,
                jitter,
                lsr,
                dlsr,
            },
        )
}

fn sender_report() -> impl Strategy<Value = SenderReport> {
    (ssrc(), any::<[u32; 5]>(), vec(report_block(), 0..=31), words(3)).prop_map(
        |(ssrc, [ntp_hi, ntp_lo, ts, packets, octets], reports, extensions)| SenderReport {
            ssrc,
            ntp_timestamp: NtpTimestamp::new(ntp_hi, ntp_lo),
            rtp_timestamp: RtpTimestamp(ts),
            packet_count: packets,
            octet_count: octets,
            reports,
            extensions,
        },
    )
}

fn receiver_report() -> impl Strategy<Value = ReceiverReport> {
    (ssrc(), vec(report_block(), 0..=31), words(3)).prop_map(|(ssrc, reports, extensions)| ReceiverReport {
        ssrc,
        reports,
        extensions,
    })
}

fn sdes_item() -> impl Strategy<Value = SdesItem> {
    let kind = prop_oneof![
        (1u8..=8).prop_map(SdesType::from_u8),
        (9u8..=255).prop_map(SdesType::Other)
    ];
    (kind, vec(any::<u8>(), 0..=40)).prop_map(|(kind, value)| SdesItem { kind, value })
}

fn sdes() -> impl Strategy<Value = SourceDescription> {
    let chunk = (ssrc(), vec(sdes_item(), 0..4)).prop_map(|(source, items)| SdesChunk { source, items });
    vec(chunk, 0..=6).prop_map(|chunks| SourceDescription { chunks })
}

fn bye() -> impl Strategy<Value = Bye> {
    (
        vec(ssrc(), 0..=31),
        proptest::option::of(vec(any::<u8>(), 0..=255)),
    )
        .prop_map(|(sources, reason)| Bye { sources, reason })
}

fn app() -> impl Strategy<Value = App> {
    (0u8..32, ssrc(), any::<[u8; 4]>(), words(4)).prop_map(|(subtype, ssrc, name, data)| App {
        subtype,
        ssrc,
        name,
        data,
    })
}

fn voip_metrics() -> impl Strategy<Value = VoipMetrics> {
    (ssrc(), any::<[u8; 13]>(), any::<[u16; 7]>(), any::<[i8; 2]>()).prop_map(|(ssrc, b, w, l)| VoipMetrics {
        ssrc,
        loss_rate: b[0],
        discard_rate: b[1],
        burst_density: b[2],
        gap_density: b[3],
        burst_duration: w[0],
        gap_duration: w[1],
        round_trip_delay: w[2],
        end_system_delay: w[3],
        signal_level: l[0],
        noise_level: l[1],
        rerl: b[4],
        gmin: b[5],
        r_factor: b[6],
        ext_r_factor: b[7],
        mos_lq: b[8],
        mos_cq: b[9],
        rx_config: b[10],
        jb_nominal: w[4],
        jb_maximum: w[5],
        jb_abs_max: w[6],
    })
}

fn xr() -> impl Strategy<Value = ExtendedReport> {
    let raw = (
        any::<u8>().prop_filter("not VoIP metrics", |t| *t != 7),
        any::<u8>(),
        words(5),
    )
        .prop_map(|(block_type, type_specific, data)| {
            XrBlock::Raw(RawXrBlock {
                block_type,
                type_specific,
                data,
            })
        });
    let block = prop_oneof![voip_metrics().prop_map(XrBlock::VoipMetrics), raw];
    (ssrc(), vec(block, 0..4)).prop_map(|(ssrc, blocks)| ExtendedReport { ssrc, blocks })
}

fn any_packet() -> impl Strategy<Value = RtcpPacket> {
    let known = [PT_SR, PT_RR, PT_SDES, PT_BYE, PT_APP, PT_XR];
    let unknown = (
        any::<u8>().prop_filter("unknown type", move |t| !known.contains(t)),
        0u8..32,
        words(6),
    )
        .prop_map(|(pt, count, data)| RtcpPacket::Unknown { pt, count, data });
    prop_oneof![
        sender_report().prop_map(RtcpPacket::from),
        receiver_report().prop_map(RtcpPacket::from),
        sdes().prop_map(RtcpPacket::from),
        bye().prop_map(RtcpPacket::from),
        app().prop_map(RtcpPacket::from),
        xr().prop_map(RtcpPacket::from),
        unknown,
    ]
}

/// Appends `pad` bytes of padding to the single packet in `bytes`.
fn pad_packet(mut bytes: Vec<u8>, pad: u8) -> Vec<u8> {
    bytes[0] |= 0x20;
    bytes.extend(std::iter::repeat_n(0, usize::from(pad) - 1));
    bytes.push(pad);
    let words = (bytes.len() / 4 - 1) as u16;
    bytes[2..4].copy_from_slice(&words.to_be_bytes());
    bytes
}

fn rr(ssrc: u32) -> RtcpPacket {
    ReceiverReport {
        ssrc: Ssrc(ssrc),
        reports: vec![],
        extensions: vec![],
    }
    .into()
}

#[test]
fn typical_compound_round_trip_and_strict_check() {
    let packets = vec![
        RtcpPacket::from(SenderReport {
            ssrc: Ssrc(0x1234),
            ntp_timestamp: NtpTimestamp::new(0xE000_0000, 1),
            rtp_timestamp: RtpTimestamp(8000),
            packet_count: 50,
            octet_count: 8000,
            reports: vec![ReportBlock {
                ssrc: Ssrc(0x5678),
                fraction_lost: 3,
                cumulative_lost: 7,
                highest_seq: 70_000,
                jitter: 12,
                lsr: 0,
                dlsr: 0,
            }],
            extensions: vec![],
        }),
        SourceDescription::with_cname(Ssrc(0x1234), "pbx@10.0.0.1").into(),
        Bye::new(Ssrc(0x1234)).into(),
    ];
    let bytes = build_compound(&packets).unwrap();
    assert_eq!(bytes.len(), 52 + 24 + 8);
    validate_compound(&bytes).unwrap();
    assert_eq!(parse_compound_strict(&bytes).unwrap(), packets);
    let types: Vec<u8> = iter_compound(&bytes).map(|r| r.unwrap().packet_type()).collect();
    assert_eq!(types, [PT_SR, PT_SDES, PT_BYE]);
}

#[test]
fn padding_is_stripped_and_checked() {
    let last = pad_packet(RtcpPacket::from(Bye::new(Ssrc(5))).to_bytes().unwrap(), 8);
    let mut compound = rr(1).to_bytes().unwrap();
    compound.extend_from_slice(&last);
    let parsed = parse_compound_strict(&compound).unwrap();
    assert_eq!(parsed[1], RtcpPacket::from(Bye::new(Ssrc(5))));
    let raw = iter_compound(&compound).nth(1).unwrap().unwrap();
    assert!(raw.padding());
    assert_eq!(raw.body(), &[0, 0, 0, 5]);
    assert_eq!(raw.as_bytes().len(), 16);

    // Padding on the first packet: fine for the lenient parser, not for A.2.
    let mut first_padded = pad_packet(rr(1).to_bytes().unwrap(), 4);
    first_padded.extend_from_slice(&RtcpPacket::from(Bye::new(Ssrc(1))).to_bytes().unwrap());
    assert_eq!(parse_compound(&first_padded).unwrap().len(), 2);
    let e = parse_compound_strict(&first_padded).unwrap_err();
    assert_eq!(
        e.to_string(),
        "RTCP compound: padding bit set on the first packet"
    );
    // Padding on a middle packet.
    let mut middle = rr(1).to_bytes().unwrap();
    middle.extend_from_slice(&pad_packet(
        RtcpPacket::from(Bye::new(Ssrc(1))).to_bytes().unwrap(),
        4,
    ));
    middle.extend_from_slice(&RtcpPacket::from(Bye::new(Ssrc(2))).to_bytes().unwrap());
    assert!(parse_compound(&middle).is_ok());
    assert!(validate_compound(&middle)
        .unwrap_err()
        .to_string()
        .contains("not the last"));

    // Bad padding counts.
    for (pad_byte, msg) in [
        (0u8, "padding length 0"),
        (3, "padding length 3"),
        (12, "exceeds"),
    ] {
        let mut b = pad_packet(RtcpPacket::from(Bye::new(Ssrc(1))).to_bytes().unwrap(), 4);
        *b.last_mut().unwrap() = pad_byte;
        let e = parse_compound(&b).unwrap_err();
        assert!(e.to_string().contains(msg), "{pad_byte}: {e}");
    }
}

#[test]
fn appendix_a2_checks() {
    let sdes = RtcpPacket::from(SourceDescription::with_cname(Ssrc(1), "x"));
    let bytes = build_compound(&[sdes.clone(), rr(1)]).unwrap();
    assert!(parse_compound(&bytes).is_ok(), "order is not checked leniently");
    let e = parse_compound_strict(&bytes).unwrap_err();
    assert!(e.to_string().contains("first packet has type 202"), "{e}");

    // Version 1 on the second packet.
    let mut bytes = build_compound(&[rr(1), sdes]).unwrap();
    bytes[8] = (bytes[8] & 0x3F) | 0x40;
    let e = parse_compound(&bytes).unwrap_err();
    assert_eq!(e.to_string(), "RTCP: version 1, expected 2");
    assert!(validate_compound(&bytes).is_err());

    // Length fields that do not add up to the datagram size.
    let mut bytes = rr(1).to_bytes().unwrap();
    bytes.extend_from_slice(&[0x80, 0]);
    let e = parse_compound_strict(&bytes).unwrap_err();
    assert_eq!(e.to_string(), "RTCP header: truncated: need 4 bytes, have 2");
    let mut bytes = rr(1).to_bytes().unwrap();
    bytes[3] = 5;
    let e = parse_compound(&bytes).unwrap_err();
    assert_eq!(e.to_string(), "RTCP packet: truncated: need 24 bytes, have 8");

    assert!(parse_compound(&[]).is_err());
    assert!(validate_compound(&[]).is_err());
    assert!(build_compound(&[]).is_err());
}

#[test]
fn iterator_stops_after_an_error() {
    let mut bytes = rr(1).to_bytes().unwrap();
    bytes.extend_from_slice(&[0x00, 0, 0, 0]); // version 0
    bytes.extend_from_slice(&rr(2).to_bytes().unwrap());
    let items: Vec<_> = iter_compound(&bytes).collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok() && items[1].is_err());
}

#[test]
fn unknown_types_pass_through() {
    // An RFC 4585 generic NACK (PT 205, FMT 1) is carried as Unknown.
    let nack = [
        0x81, PT_RTPFB, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0x01, 0x00, 0x00, 0x03,
    ];
    let p = parse_compound(&nack).unwrap();
    assert_eq!(
        p,
        [RtcpPacket::Unknown {
            pt: PT_RTPFB,
            count: 1,
            data: nack[4..].to_vec()
        }]
    );
    assert_eq!(p[0].packet_type(), PT_RTPFB);
    assert_eq!(p[0].to_bytes().unwrap(), nack);
    let odd = RtcpPacket::Unknown {
        pt: PT_PSFB,
        count: 1,
        data: vec![1, 2, 3],
    };
    assert!(odd.to_bytes().is_err());
}

#[test]
fn oversized_packet_is_refused() {
    let huge = RtcpPacket::from(App {
        data: vec![0; 4 * 65_535],
        ..App::default()
    });
    let e = huge.to_bytes().unwrap_err();
    assert!(e.to_string().contains("16-bit length"), "{e}");
}

proptest! {
    #[test]
    fn every_packet_type_round_trips(p in any_packet()) {
        let bytes = p.to_bytes().unwrap();
        prop_assert_eq!(bytes.len() % 4, 0);
        let parsed = parse_compound(&bytes).unwrap();
        prop_assert_eq!(parsed, vec![p]);
    }

    #[test]
    fn compound_round_trips(first in prop_oneof![
            sender_report().prop_map(RtcpPacket::from),
            receiver_report().prop_map(RtcpPacket::from),
        ],
        rest in vec(any_packet(), 0..6)) {
        let mut packets = vec![first];
        packets.extend(rest);
        let bytes = build_compound(&packets).unwrap();
        prop_assert_eq!(iter_compound(&bytes).count(), packets.len());
        prop_assert_eq!(parse_compound_strict(&bytes).unwrap(), packets);
    }

    #[test]
    fn garbage_never_panics(data in vec(any::<u8>(), 0..300)) {
        let _ = parse_compound(&data);
        let _ = parse_compound_strict(&data);
    }

    #[test]
    fn corrupted_packets_never_panic(
        packets in vec(any_packet(), 1..4),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = build_compound(&packets).unwrap();
        for (at, v) in edits {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        // Keep the version bits valid half the time so the type parsers run.
        if cut.index(2) == 0 {
            bytes[0] = (bytes[0] & 0x3F) | 0x80;
        }
        let _ = parse_compound(&bytes);
        let n = cut.index(bytes.len() + 1);
        let _ = parse_compound(&bytes[..n]);
    }

    #[test]
    fn truncation_is_an_error(p in any_packet(), cut in any::<prop::sample::Index>()) {
        let bytes = p.to_bytes().unwrap();
        let n = cut.index(bytes.len());
        prop_assert!(parse_compound(&bytes[..n]).is_err());
    }
}
