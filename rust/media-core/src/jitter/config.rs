//! Settings and statistics of the jitter buffer.

use crate::error::{Error, Result};
use crate::types::PayloadType;

/// Jitter buffer settings. Every field has a default ([`Default`]).
#[derive(Clone, Debug, PartialEq)]
pub struct JitterConfig {
    /// RTP clock rate; must equal the decoder's `clock_rate()`. Default 8000.
    pub clock_rate: u32,
    /// Duration of PCM returned by each `pop` (ms). Default 20.
    pub ptime_ms: u32,
    /// Lower bound of the target delay (ms). Default 0 (the target is never
    /// below 5 anyway).
    pub min_delay_ms: u32,
    /// Upper bound of the target delay (ms); a buffering delay beyond it
    /// (plus one ptime) makes the buffer skip ahead. Default 1000.
    pub max_delay_ms: u32,
    /// Most packets held; on overflow the oldest is discarded. Default 256.
    pub max_packets: usize,
    /// Fraction of packets that should arrive in time (quantile of the
    /// usable delay the target covers), in (0, 1). Default 0.99.
    pub quantile: f64,
    /// Payload type to decode; packets of other types (e.g. RFC 4733
    /// telephone-event) are counted as discarded. `None` decodes all. Default None.
    pub payload_type: Option<PayloadType>,
    /// Time constant (ms of media) with which old delay measurements are
    /// forgotten. Default 10000.
    pub history_ms: u32,
    /// How long recurring delay spikes keep the target at their height (ms):
    /// a spike within this time after the previous one shows they recur, and
    /// the target stays up until this time has passed after the last spike.
    /// Default 10000.
    pub peak_hold_ms: u32,
    /// Most of the played voiced audio that may be cut to shrink the delay,
    /// as a fraction in [0, 0.5]. Default 0.1.
    pub shrink_rate: f64,
    /// Longest stretch of decoder concealment (ms) before plain silence.
    /// Default 100.
    pub max_conceal_ms: u32,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            clock_rate: 8000,
            ptime_ms: 20,
            min_delay_ms: 0,
            max_delay_ms: 1000,
            max_packets: 256,
            quantile: 0.99,
            payload_type: None,
            history_ms: 10_000,
            peak_hold_ms: 10_000,
            shrink_rate: 0.1,
            max_conceal_ms: 100,
        }
    }
}

impl JitterConfig {
    /// Names accepted by [`JitterConfig::set`] (the Python `**params`).
    pub const KEYS: &'static [&'static str] = &[
        "clock_rate",
        "ptime_ms",
        "min_delay_ms",
        "max_delay_ms",
        "max_packets",
        "quantile",
        "payload_type",
        "history_ms",
        "peak_hold_ms",
        "shrink_rate",
        "max_conceal_ms",
    ];

    /// Sets one field by name. Integer fields need a whole non-negative
    /// value; `payload_type` -1 means `None`. Ranges are checked by
    /// [`JitterBuffer::new`](super::JitterBuffer::new).
    pub fn set(&mut self, key: &str, value: f64) -> Result<()> {
        let int = |max: f64| -> Result<u64> {
            if value.fract() == 0.0 && (0.0..=max).contains(&value) {
                Ok(value as u64)
            } else {
                Err(Error::invalid(format!(
                    "jitter buffer: {key}={value} must be a whole number 0..={max}"
                )))
            }
        };
        let u32_max = f64::from(u32::MAX);
        match key {
            "clock_rate" => self.clock_rate = int(u32_max)? as u32,
            "ptime_ms" => self.ptime_ms = int(u32_max)? as u32,
            "min_delay_ms" => self.min_delay_ms = int(u32_max)? as u32,
            "max_delay_ms" => self.max_delay_ms = int(u32_max)? as u32,
            "max_packets" => self.max_packets = int(u32_max)? as usize,
            "history_ms" => self.history_ms = int(u32_max)? as u32,
            "peak_hold_ms" => self.peak_hold_ms = int(u32_max)? as u32,
            "max_conceal_ms" => self.max_conceal_ms = int(u32_max)? as u32,
            "quantile" => self.quantile = value,
            "shrink_rate" => self.shrink_rate = value,
            "payload_type" if value == -1.0 => self.payload_type = None,
            "payload_type" => self.payload_type = Some(PayloadType(int(127.0)? as u8)),
            _ => {
                return Err(Error::invalid(format!(
                    "jitter buffer: unknown parameter {key:?} (known: {})",
                    Self::KEYS.join(", ")
                )))
            }
        }
        Ok(())
    }
}

/// Counters and gauges of a [`JitterBuffer`](super::JitterBuffer). Sample counts are per channel.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JitterStats {
    /// Buffering delay D at the last pop (ms; see the module docs).
    pub current_delay_ms: f64,
    /// Target delay at the last pop (ms).
    pub target_delay_ms: f64,
    /// Mean of D over the pops that had media to play (ms): the mean
    /// buffering delay a listener experiences.
    pub mean_delay_ms: f64,
    /// Valid RTP packets pushed (including duplicates and discarded ones).
    pub packets_received: u64,
    /// Packets decoded and played.
    pub played: u64,
    /// Packets that arrived after their playout time (dropped).
    pub late: u64,
    /// Packets never received whose turn to play has passed.
    pub lost: u64,
    /// Packets dropped for overflow, foreign payload type, implausible
    /// timestamp, decode failure, an SSRC that did not pass probation, or
    /// excessive delay.
    pub discarded: u64,
    pub duplicates: u64,
    /// Packets that arrived after a packet with a higher sequence number.
    pub reordered: u64,
    /// Samples produced by the decoder's concealment (or FEC recovery).
    pub concealed_samples: u64,
    /// Samples of plain silence after `max_conceal_ms` of concealment.
    pub silence_samples: u64,
    /// Samples removed by time compression.
    pub accelerated_samples: u64,
    /// Samples inserted by time expansion.
    pub expanded_samples: u64,
    pub buffered_packets: u64,
    pub ssrc_changes: u64,
    pub timestamp_jumps: u64,
}
