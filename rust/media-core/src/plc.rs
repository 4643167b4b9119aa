//! Packet loss concealment for waveform codecs (G.711, G.722, L16).
//! PLACEHOLDER interface — real implementation in progress.

/// Waveform-repetition concealment state for one mono stream.
pub struct Plc {
    rate: u32,
}

impl Plc {
    pub fn new(rate: u32) -> Self {
        Plc { rate }
    }
    /// Feeds good decoded samples (may smooth them in place after a loss).
    pub fn good(&mut self, _pcm: &mut [i16]) {}
    /// Appends `samples` of concealment to `out`.
    pub fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        let _ = self.rate;
        out.extend(std::iter::repeat_n(0, samples));
    }
}
