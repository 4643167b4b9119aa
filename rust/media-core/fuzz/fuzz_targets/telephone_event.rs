//! RFC 4733 payload parser and the event receiver fed arbitrary packets.
#![no_main]
use libfuzzer_sys::fuzz_target;
use media_core::dtmf::{EventReceiver, TelephoneEvent};
use media_core::RtpTimestamp;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = TelephoneEvent::parse(data) {
        let mut out = Vec::new();
        e.write_to(&mut out);
        let back = TelephoneEvent::parse(&out).expect("re-parse");
        assert_eq!((back.event, back.end, back.duration), (e.event, e.end, e.duration));
    }
    // Drive the receiver with packets cut from the input: 4-byte timestamp,
    // 1 marker byte, 4-byte payload per step.
    let mut rx = EventReceiver::new(8000).expect("receiver");
    for chunk in data.chunks(9) {
        if chunk.len() < 9 {
            break;
        }
        let ts = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let _ = rx.feed(RtpTimestamp(ts), chunk[4] & 1 == 1, &chunk[5..9]);
    }
});
