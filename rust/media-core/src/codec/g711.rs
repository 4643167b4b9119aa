//! G.711 µ-law (PCMU) and A-law (PCMA), bit-exact with ITU-T G.711 as its
//! reference implementation in ITU-T G.191 expresses it: µ-law works on the
//! 14 most significant bits, A-law on the 13 most significant bits of 16-bit
//! linear PCM; negative inputs use one's complement magnitude.
//! RTP: static payload types 0 and 8, 8000 Hz (RFC 3551 §4.5.14).

use super::{check_params, CodecSpec, Decoder, Encoder, Params};
use crate::error::{Error, Result};
use crate::plc::Plc;

/// G.711 µ-law compression of one 16-bit sample (table lookup: the code
/// depends only on the 14 most significant bits).
#[inline]
pub fn linear_to_ulaw(x: i16) -> u8 {
    ULAW_ENCODE[(x as u16 >> 2) as usize]
}

/// G.711 µ-law compression, computed (builds the table).
const fn ulaw_compress(x: i16) -> u8 {
    // Magnitude on 14 bits plus the bias of 33 (G.711 Table 2a).
    let mag = if x < 0 { (!x) >> 2 } else { x >> 2 } as i32;
    let absno = if mag + 33 > 0x1FFF { 0x1FFF } else { mag + 33 } as u32;
    let segno = 33 - (absno >> 6).leading_zeros() as i32; // 1 + bit length of absno>>6
    let high = (8 - segno) as u8;
    let low = 0x0F - ((absno >> segno) & 0x0F) as u8;
    let code = (high << 4) | low;
    if x >= 0 {
        code | 0x80
    } else {
        code
    }
}

/// G.711 µ-law expansion to 16-bit linear (values ±4..±32124).
#[inline]
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_DECODE[code as usize]
}

const fn ulaw_expand(code: u8) -> i16 {
    let m = !code;
    let exponent = ((m >> 4) & 0x07) as i32;
    let mantissa = (m & 0x0F) as i32;
    let step = 4 << (exponent + 1);
    let v = (0x80 << exponent) + step * mantissa + step / 2 - 4 * 33;
    if code < 0x80 {
        -v as i16
    } else {
        v as i16
    }
}

/// G.711 A-law compression of one 16-bit sample (table lookup: the code
/// depends only on the 12 most significant bits).
#[inline]
pub fn linear_to_alaw(x: i16) -> u8 {
    ALAW_ENCODE[(x as u16 >> 4) as usize]
}

/// G.711 A-law compression, computed (even bits inverted, 0x55).
const fn alaw_compress(x: i16) -> u8 {
    let mut ix = if x < 0 { (!x) >> 4 } else { x >> 4 } as i32; // 12-bit magnitude
    if ix > 15 {
        // Segment = position of the leading one above bit 4.
        let iexp = 32 - (ix as u32 >> 4).leading_zeros() as i32; // 1..=7
        ix = ((ix >> (iexp - 1)) - 16) + (iexp << 4);
    }
    if x >= 0 {
        ix |= 0x80;
    }
    (ix ^ 0x55) as u8
}

/// G.711 A-law expansion to 16-bit linear (values ±8..±32256).
#[inline]
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_DECODE[code as usize]
}

const fn alaw_expand(code: u8) -> i16 {
    let ix = (code ^ 0x55) & 0x7F;
    let iexp = (ix >> 4) as i32;
    let mut mant = (ix & 0x0F) as i32;
    if iexp > 0 {
        mant += 16;
    }
    mant = (mant << 4) + 0x08;
    if iexp > 1 {
        mant <<= iexp - 1;
    }
    if code > 127 {
        mant as i16
    } else {
        -mant as i16
    }
}

const fn table(mu: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if mu {
            ulaw_expand(i as u8)
        } else {
            alaw_expand(i as u8)
        };
        i += 1;
    }
    t
}

/// Encoder tables indexed by the top 14 (µ-law) or 12 (A-law) bits of the
/// sample: for negative x, `!x >> k` depends only on `x >> k`, so one entry
/// per index is exact (checked against the computed form in the tests).
static ULAW_ENCODE: [u8; 1 << 14] = {
    let mut t = [0u8; 1 << 14];
    let mut i = 0;
    while i < 1 << 14 {
        t[i] = ulaw_compress(((i as u16) << 2) as i16);
        i += 1;
    }
    t
};
static ALAW_ENCODE: [u8; 1 << 12] = {
    let mut t = [0u8; 1 << 12];
    let mut i = 0;
    while i < 1 << 12 {
        t[i] = alaw_compress(((i as u16) << 4) as i16);
        i += 1;
    }
    t
};

static ULAW_DECODE: [i16; 256] = table(true);
static ALAW_DECODE: [i16; 256] = table(false);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Law {
    Mu,
    A,
}

/// Encodes a block of samples into `out` (one byte per sample).
pub fn encode_block(law: Law, pcm: &[i16], out: &mut Vec<u8>) {
    match law {
        Law::Mu => out.extend(pcm.iter().map(|&s| linear_to_ulaw(s))),
        Law::A => out.extend(pcm.iter().map(|&s| linear_to_alaw(s))),
    }
}

/// Decodes a block of codes into `out`.
pub fn decode_block(law: Law, codes: &[u8], out: &mut Vec<i16>) {
    let t = match law {
        Law::Mu => &ULAW_DECODE,
        Law::A => &ALAW_DECODE,
    };
    out.extend(codes.iter().map(|&c| t[c as usize]));
}

struct G711Encoder {
    law: Law,
}

impl Encoder for G711Encoder {
    fn name(&self) -> &'static str {
        law_name(self.law)
    }
    fn sample_rate(&self) -> u32 {
        8000
    }
    fn clock_rate(&self) -> u32 {
        8000
    }
    fn channels(&self) -> u8 {
        1
    }
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<()> {
        encode_block(self.law, pcm, out);
        Ok(())
    }
}

struct G711Decoder {
    law: Law,
    plc: Plc,
}

impl Decoder for G711Decoder {
    fn name(&self) -> &'static str {
        law_name(self.law)
    }
    fn sample_rate(&self) -> u32 {
        8000
    }
    fn clock_rate(&self) -> u32 {
        8000
    }
    fn channels(&self) -> u8 {
        1
    }
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<()> {
        let start = out.len();
        decode_block(self.law, payload, out);
        self.plc.good(&mut out[start..]);
        Ok(())
    }
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<()> {
        self.plc.conceal(samples, out);
        Ok(())
    }
    fn samples_in(&self, payload: &[u8]) -> Result<usize> {
        Ok(payload.len())
    }
}

fn law_name(l: Law) -> &'static str {
    match l {
        Law::Mu => "PCMU",
        Law::A => "PCMA",
    }
}

fn make_encoder(law: Law, params: &Params) -> Result<Box<dyn Encoder>> {
    check_params(law_name(law), params, &[])?;
    Ok(Box::new(G711Encoder { law }))
}

fn make_decoder(law: Law, params: &Params) -> Result<Box<dyn Decoder>> {
    check_params(law_name(law), params, &[])?;
    Ok(Box::new(G711Decoder {
        law,
        plc: Plc::new(8000),
    }))
}

fn mono(channels: u8) -> Result<()> {
    if channels == 1 {
        Ok(())
    } else {
        Err(Error::invalid("G.711 is mono"))
    }
}

pub static PCMU: CodecSpec = CodecSpec {
    name: "PCMU",
    static_payload_type: Some(0),
    clock_rates: &[8000],
    max_channels: 1,
    encoder: |_, ch, p| mono(ch).and_then(|_| make_encoder(Law::Mu, p)),
    decoder: |_, ch, p| mono(ch).and_then(|_| make_decoder(Law::Mu, p)),
};

pub static PCMA: CodecSpec = CodecSpec {
    name: "PCMA",
    static_payload_type: Some(8),
    clock_rates: &[8000],
    max_channels: 1,
    encoder: |_, ch, p| mono(ch).and_then(|_| make_encoder(Law::A, p)),
    decoder: |_, ch, p| mono(ch).and_then(|_| make_decoder(Law::A, p)),
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Straight transcription of the G.191 loop form, kept as the oracle for
    /// the leading-zeros form above.
    fn ulaw_ref(x: i16) -> u8 {
        let x = x as i32;
        let mut absno = if x < 0 { ((!x) >> 2) + 33 } else { (x >> 2) + 33 };
        if absno > 0x1FFF {
            absno = 0x1FFF;
        }
        let mut i = absno >> 6;
        let mut segno = 1;
        while i != 0 {
            segno += 1;
            i >>= 1;
        }
        let high = 8 - segno;
        let low = 0x0F - ((absno >> segno) & 0x0F);
        let mut code = (high << 4) | low;
        if x >= 0 {
            code |= 0x80;
        }
        code as u8
    }

    fn alaw_ref(x: i16) -> u8 {
        let x = x as i32;
        let mut ix = if x < 0 { (!x) >> 4 } else { x >> 4 };
        if ix > 15 {
            let mut iexp = 1;
            while ix > 16 + 15 {
                ix >>= 1;
                iexp += 1;
            }
            ix -= 16;
            ix += iexp << 4;
        }
        if x >= 0 {
            ix |= 0x80;
        }
        (ix ^ 0x55) as u8
    }

    #[test]
    fn encoders_match_loop_form_for_every_input() {
        for x in i16::MIN..=i16::MAX {
            assert_eq!(linear_to_ulaw(x), ulaw_ref(x), "ulaw {x}");
            assert_eq!(linear_to_alaw(x), alaw_ref(x), "alaw {x}");
            assert_eq!(ulaw_compress(x), ulaw_ref(x), "ulaw computed {x}");
            assert_eq!(alaw_compress(x), alaw_ref(x), "alaw computed {x}");
        }
    }

    #[test]
    fn known_points() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(-1), 0x7F);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
    }

    #[test]
    fn codes_are_fixed_points() {
        for c in 0..=255u8 {
            // µ-law has two zeros (0x7F and 0xFF); both decode to 0-ish and re-encode consistently.
            let lin = ulaw_to_linear(c);
            assert_eq!(ulaw_to_linear(linear_to_ulaw(lin)), lin);
            assert_eq!(linear_to_alaw(alaw_to_linear(c)), c);
        }
    }
}
