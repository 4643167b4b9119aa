//! L16: uncompressed 16-bit signed PCM in network byte order
//! (RFC 3551 §4.5.11), any of the common clock rates, mono or stereo.

use super::{check_params, CodecSpec, Decoder, Encoder, Params};
use crate::error::{Error, Result};
use crate::plc::Plc;

struct L16 {
    rate: u32,
    channels: u8,
}

impl Encoder for L16 {
    fn name(&self) -> &'static str {
        "L16"
    }
    fn sample_rate(&self) -> u32 {
        self.rate
    }
    fn clock_rate(&self) -> u32 {
        self.rate
    }
    fn channels(&self) -> u8 {
        self.channels
    }
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<()> {
        out.reserve(pcm.len() * 2);
        for s in pcm {
            out.extend_from_slice(&s.to_be_bytes());
        }
        Ok(())
    }
}

struct L16Decoder {
    rate: u32,
    channels: u8,
    plc: Plc,
}

impl Decoder for L16Decoder {
    fn name(&self) -> &'static str {
        "L16"
    }
    fn sample_rate(&self) -> u32 {
        self.rate
    }
    fn clock_rate(&self) -> u32 {
        self.rate
    }
    fn channels(&self) -> u8 {
        self.channels
    }
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<()> {
        let frame = 2 * usize::from(self.channels);
        if !payload.len().is_multiple_of(frame) {
            return Err(Error::malformed(
                "L16 payload",
                format!(
                    "{} bytes is not a whole number of {frame}-byte sample frames",
                    payload.len()
                ),
            ));
        }
        let start = out.len();
        out.extend(payload.chunks_exact(2).map(|b| i16::from_be_bytes([b[0], b[1]])));
        if self.channels == 1 {
            self.plc.good(&mut out[start..]);
        }
        Ok(())
    }
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<()> {
        if self.channels == 1 {
            self.plc.conceal(samples, out);
        } else {
            out.extend(std::iter::repeat_n(0, samples * usize::from(self.channels)));
        }
        Ok(())
    }
    fn samples_in(&self, payload: &[u8]) -> Result<usize> {
        Ok(payload.len() / (2 * usize::from(self.channels)))
    }
}

pub static L16: CodecSpec = CodecSpec {
    name: "L16",
    static_payload_type: None, // 10/11 are 44.1 kHz only; dynamic otherwise
    clock_rates: &[8000, 16000, 32000, 44100, 48000],
    max_channels: 2,
    encoder: |rate, channels, p: &Params| {
        check_params("L16", p, &[])?;
        Ok(Box::new(L16 { rate, channels }))
    },
    decoder: |rate, channels, p: &Params| {
        check_params("L16", p, &[])?;
        Ok(Box::new(L16Decoder {
            rate,
            channels,
            plc: Plc::new(rate),
        }))
    },
};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(pcm in proptest::collection::vec(any::<i16>(), 0..400)) {
            let mut e = (L16.encoder)(16000, 1, &Params::new()).unwrap();
            let mut d = (L16.decoder)(16000, 1, &Params::new()).unwrap();
            let mut bytes = Vec::new();
            e.encode(&pcm, &mut bytes).unwrap();
            let mut back = Vec::new();
            d.decode(&bytes, &mut back).unwrap();
            prop_assert_eq!(back, pcm);
        }
    }

    #[test]
    fn odd_payload_is_an_error() {
        let mut d = (L16.decoder)(8000, 2, &Params::new()).unwrap();
        let e = d.decode(&[0, 1, 2], &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("not a whole number"));
    }
}
