//! RTCP compound parser: any bytes parse or fail cleanly; what parses
//! re-serializes to something that parses to the same packets.
#![no_main]
use libfuzzer_sys::fuzz_target;
use media_core::rtcp::{build_compound, iter_compound, parse_compound, validate_compound};

fuzz_target!(|data: &[u8]| {
    let _ = validate_compound(data);
    for raw in iter_compound(data) {
        if raw.is_err() {
            break;
        }
    }
    if let Ok(packets) = parse_compound(data) {
        let bytes = build_compound(&packets).expect("parsed packets serialize");
        assert_eq!(parse_compound(&bytes).expect("re-parse"), packets);
    }
});
