//! DTMF in both of its forms on a PBX:
//!
//! - out-of-band, as RFC 4733 telephone-events: the payload ([`events`]),
//!   the packets of one key press ([`sender`]) and the key presses of a
//!   received packet stream ([`receiver`]);
//! - in-band, as ITU-T Q.23 dual tones in the audio: detection
//!   ([`detect`], Goertzel with Q.24-style checks) and generation ([`tone`],
//!   also usable for call-progress tones).
//!
//! Everything is sans-IO: packets, timestamps and samples in, packets,
//! keys and samples out.

pub mod detect;
pub mod events;
pub mod receiver;
pub mod sender;
pub mod tone;

pub use detect::DtmfDetector;
pub use events::{digit_for_event, event_for_digit, TelephoneEvent};
pub use receiver::{DtmfEvent, EventReceiver};
pub use sender::{EventPacketMeta, EventSender};
pub use tone::{generate_dtmf, generate_tones, ToneGenerator};
