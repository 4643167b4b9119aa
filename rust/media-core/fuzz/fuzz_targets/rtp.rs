//! RTP parser: any bytes either parse (and then re-serialize to a packet
//! that parses to the same value) or give an error; never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use media_core::rtp::{parse_elements, RtpPacket, RtpView};

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = RtpView::parse(data) {
        if let Some((profile, ext)) = v.extension() {
            let _ = parse_elements(profile, ext);
        }
        let owned = v.to_owned_packet();
        let bytes = owned.to_bytes().expect("a parsed packet serializes");
        assert_eq!(RtpPacket::parse(&bytes).expect("re-parse"), owned);
    }
});
