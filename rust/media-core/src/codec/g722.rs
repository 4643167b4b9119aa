//! G.722 — work in progress.
use super::CodecSpec;
use crate::error::Error;

pub static G722: CodecSpec = CodecSpec {
    name: "G722",
    static_payload_type: Some(9),
    clock_rates: &[8000],
    max_channels: 1,
    encoder: |_, _, _| Err(Error::invalid("G722 not yet implemented")),
    decoder: |_, _, _| Err(Error::invalid("G722 not yet implemented")),
};
