//! Fixes the RIFF and `data` sizes of a WAV file left behind by a writer that
//! died before its last header update.
//!
//! RIFF (Multimedia Programming Interface and Data Specifications 1.0):
//! chunks are `id(4) size(4, LE) body(size)` plus a pad byte when `size` is
//! odd; the RIFF chunk's size counts everything after its 8-byte header.

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Chunks scanned before `data` at most (fmt, fact, LIST, ... in practice).
const MAX_CHUNKS: usize = 64;

/// What [`repair`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairReport {
    /// RIFF chunk size found in the file.
    pub old_riff_size: u32,
    /// `data` chunk size found in the file.
    pub old_data_size: u32,
    /// RIFF chunk size now in the file.
    pub new_riff_size: u32,
    /// `data` chunk size now in the file (a whole number of sample frames).
    pub new_data_size: u32,
    /// Bytes cut from the end of the file (a partial trailing sample frame).
    pub trimmed_bytes: u64,
    /// Sample frames (samples per channel) in the repaired `data` chunk.
    pub frames: u64,
    /// Whether the file was modified at all.
    pub changed: bool,
}

/// Repairs a WAV file in place: if its sizes disagree with the file length,
/// the `data` chunk is taken to run to the end of the file, cut down to whole
/// sample frames (the file is truncated to match) and both sizes rewritten.
/// A file whose sizes are already consistent is left untouched
/// (`changed == false`), including one with chunks after `data`.
///
/// Errors: `Error::Io` for file errors; `Truncated`/`Malformed` when the file
/// is not RIFF/WAVE or lacks a `fmt ` chunk before `data`.
pub fn repair(path: impl AsRef<Path>) -> Result<RepairReport> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let file_len = f.metadata()?.len();
    let layout = scan(&mut f, file_len)?;
    let data_off = layout.data_offset;

    let old_end = data_off + layout.data_size as u64 + (layout.data_size & 1) as u64;
    if layout.riff_size as u64 + 8 == file_len && old_end <= file_len {
        return Ok(RepairReport {
            old_riff_size: layout.riff_size,
            old_data_size: layout.data_size,
            new_riff_size: layout.riff_size,
            new_data_size: layout.data_size,
            trimmed_bytes: 0,
            frames: layout.data_size as u64 / layout.block_align as u64,
            changed: false,
        });
    }

    // RIFF size = (data_off - 8) + data + pad must fit in 32 bits.
    let max_data = (u32::MAX as u64 - 1).saturating_sub(data_off - 8);
    let avail = (file_len - data_off).min(max_data);
    let align = layout.block_align as u64;
    let new_data = avail - avail % align;
    let pad = new_data & 1;
    let new_len = data_off + new_data + pad;
    let new_riff = new_len - 8;
    let (Ok(new_data32), Ok(new_riff32)) = (u32::try_from(new_data), u32::try_from(new_riff)) else {
        return Err(Error::malformed("wav", "data too large for RIFF sizes"));
    };

    if pad == 1 {
        // Odd-sized chunks are followed by a zero pad byte (RIFF spec).
        f.seek(SeekFrom::Start(data_off + new_data))?;
        f.write_all(&[0])?;
    }
    if new_len != file_len {
        f.set_len(new_len)?;
    }
    f.seek(SeekFrom::Start(data_off - 4))?;
    f.write_all(&new_data32.to_le_bytes())?;
    f.seek(SeekFrom::Start(4))?;
    f.write_all(&new_riff32.to_le_bytes())?;
    f.sync_all()?;

    Ok(RepairReport {
        old_riff_size: layout.riff_size,
        old_data_size: layout.data_size,
        new_riff_size: new_riff32,
        new_data_size: new_data32,
        trimmed_bytes: file_len.saturating_sub(new_len),
        frames: new_data / align,
        changed: true,
    })
}

struct Layout {
    riff_size: u32,
    block_align: u16,
    /// Offset of the first sample byte (just after the `data` chunk header).
    data_offset: u64,
    data_size: u32,
}

fn read_exact(f: &mut File, buf: &mut [u8], what: &'static str, at: u64, file_len: u64) -> Result<()> {
    if at + buf.len() as u64 > file_len {
        return Err(Error::truncated(
            what,
            buf.len(),
            file_len.saturating_sub(at) as usize,
        ));
    }
    f.seek(SeekFrom::Start(at))?;
    f.read_exact(buf)?;
    Ok(())
}

fn le32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b.get(..4).unwrap_or(&[0; 4]));
    u32::from_le_bytes(a)
}

/// Walks the chunks up to the `data` chunk header.
fn scan(f: &mut File, file_len: u64) -> Result<Layout> {
    let mut riff = [0u8; 12];
    read_exact(f, &mut riff, "wav RIFF header", 0, file_len)?;
    if &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
        return Err(Error::malformed("wav", "not a RIFF/WAVE file"));
    }
    let riff_size = le32(&riff[4..8]);
    let mut block_align = None;
    let mut pos = 12u64;
    for _ in 0..MAX_CHUNKS {
        let mut ch = [0u8; 8];
        read_exact(f, &mut ch, "wav chunk header", pos, file_len)?;
        let size = le32(&ch[4..8]);
        let body = pos + 8;
        match &ch[0..4] {
            b"fmt " => {
                // fmt body: format(2) channels(2) rate(4) byte rate(4) block align(2) bits(2)
                let mut fmt = [0u8; 16];
                if size < 16 {
                    return Err(Error::malformed(
                        "wav fmt",
                        format!("chunk of {size} bytes, need 16"),
                    ));
                }
                read_exact(f, &mut fmt, "wav fmt chunk", body, file_len)?;
                let align = u16::from_le_bytes([fmt[12], fmt[13]]);
                if align == 0 {
                    return Err(Error::malformed("wav fmt", "block align 0"));
                }
                block_align = Some(align);
            }
            b"data" => {
                let Some(block_align) = block_align else {
                    return Err(Error::malformed("wav", "data chunk before fmt chunk"));
                };
                return Ok(Layout {
                    riff_size,
                    block_align,
                    data_offset: body,
                    data_size: size,
                });
            }
            _ => {}
        }
        pos = body + size as u64 + (size & 1) as u64;
    }
    Err(Error::malformed(
        "wav",
        format!("no data chunk in the first {MAX_CHUNKS} chunks"),
    ))
}
