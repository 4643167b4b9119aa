use super::*;
use proptest::prelude::*;
use std::cell::RefCell;
use std::fs::OpenOptions;
use std::io::{self, Cursor};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A unique temporary path, removed on drop.
struct TempWav(PathBuf);

impl TempWav {
    fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        TempWav(std::env::temp_dir().join(format!("vpbx-wav-{}-{tag}-{n}.wav", std::process::id())))
    }
}

impl Drop for TempWav {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn samples(n: usize, seed: u32) -> Vec<i16> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as i16
        })
        .collect()
}

fn read_file(path: &Path) -> (hound::WavSpec, Vec<i16>) {
    let mut r = hound::WavReader::open(path).expect("hound opens the file");
    let s = r
        .samples::<i16>()
        .collect::<std::result::Result<Vec<_>, _>>()
        .unwrap();
    (r.spec(), s)
}

fn read_bytes(bytes: &[u8]) -> Vec<i16> {
    let mut r = hound::WavReader::new(Cursor::new(bytes)).expect("hound parses the bytes");
    r.samples::<i16>()
        .collect::<std::result::Result<Vec<_>, _>>()
        .unwrap()
}

/// Writes `pcm` in 20 ms frames at 8 kHz (per channel).
fn write_frames<W: Write + Seek>(w: &mut WavWriter<W>, pcm: &[i16]) {
    let frame = 160 * w.channels() as usize;
    for chunk in pcm.chunks(frame) {
        w.write(chunk).unwrap();
    }
}

#[test]
fn finished_file_has_exact_header_and_samples() {
    let t = TempWav::new("finish");
    let pcm = samples(2 * 10_400, 1); // 1.3 s stereo at 8 kHz
    let mut w = WavWriter::create(&t.0, 8000, 2).unwrap();
    write_frames(&mut w, &pcm);
    assert_eq!(w.frames_written(), 10_400);
    w.finish().unwrap();
    let (spec, got) = read_file(&t.0);
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 8000, 16)
    );
    assert_eq!(spec.sample_format, hound::SampleFormat::Int);
    assert_eq!(got, pcm);
    let bytes = std::fs::read(&t.0).unwrap();
    assert_eq!(bytes.len(), HEADER_LEN + pcm.len() * 2);
    assert_eq!(le(&bytes[4..8]) as usize, bytes.len() - 8);
    assert_eq!(le(&bytes[40..44]) as usize, pcm.len() * 2);
    assert_eq!(le(&bytes[28..32]), 8000 * 4); // byte rate
                                              // A finished file is left alone by repair.
    let r = repair(&t.0).unwrap();
    assert!(!r.changed);
    assert_eq!(r.frames, 10_400);
    assert_eq!(std::fs::read(&t.0).unwrap(), bytes);
}

fn le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[test]
fn killed_writer_leaves_a_playable_file_and_repair_recovers_the_rest() {
    let t = TempWav::new("crash");
    let pcm = samples(20_000, 2); // 2.5 s mono at 8 kHz
    let mut w = WavWriter::create(&t.0, 8000, 1).unwrap();
    write_frames(&mut w, &pcm);
    std::mem::forget(w); // the process "dies": no finish, no drop
    let (_, got) = read_file(&t.0);
    assert_eq!(got.len(), 16_000, "header last updated at 2 s");
    assert_eq!(got, pcm[..16_000]);

    let r = repair(&t.0).unwrap();
    assert_eq!(
        r,
        RepairReport {
            old_riff_size: 36 + 32_000,
            old_data_size: 32_000,
            new_riff_size: 36 + 40_000,
            new_data_size: 40_000,
            trimmed_bytes: 0,
            frames: 20_000,
            changed: true,
        }
    );
    assert_eq!(read_file(&t.0).1, pcm);
    assert!(!repair(&t.0).unwrap().changed, "second repair is a no-op");
}

#[test]
fn repair_trims_a_partial_trailing_frame() {
    let t = TempWav::new("partial");
    let pcm = samples(2 * 3000, 3);
    let mut w = WavWriter::create(&t.0, 16_000, 2)
        .unwrap()
        .with_header_interval(1000);
    write_frames(&mut w, &pcm);
    std::mem::forget(w);
    // Killed in the middle of a stereo frame: 3 of its 4 bytes made it.
    let mut f = OpenOptions::new().append(true).open(&t.0).unwrap();
    f.write_all(&[1, 2, 3]).unwrap();
    drop(f);
    let r = repair(&t.0).unwrap();
    assert!(r.changed);
    assert_eq!((r.trimmed_bytes, r.frames, r.new_data_size), (3, 3000, 12_000));
    assert_eq!(std::fs::metadata(&t.0).unwrap().len(), 44 + 12_000);
    let (spec, got) = read_file(&t.0);
    assert_eq!(spec.sample_rate, 16_000);
    assert_eq!(got, pcm);
}

#[test]
fn repair_fixes_zero_sizes_and_rejects_non_wav() {
    let t = TempWav::new("zero");
    let pcm = samples(500, 4);
    let mut bytes = header(8000, 1, 0).to_vec();
    bytes[4..8].copy_from_slice(&0u32.to_le_bytes()); // even the RIFF size is 0
    bytes.extend(pcm.iter().flat_map(|s| s.to_le_bytes()));
    std::fs::write(&t.0, &bytes).unwrap();
    let r = repair(&t.0).unwrap();
    assert_eq!((r.old_riff_size, r.old_data_size, r.new_data_size), (0, 0, 1000));
    assert_eq!(read_file(&t.0).1, pcm);

    std::fs::write(&t.0, b"RIFX\0\0\0\0WAVEfmt ").unwrap();
    assert!(matches!(repair(&t.0), Err(Error::Malformed { .. })));
    std::fs::write(&t.0, b"RIFF").unwrap();
    assert!(matches!(repair(&t.0), Err(Error::Truncated { .. })));
    let mut no_fmt = b"RIFF\0\0\0\0WAVEdata\0\0\0\0".to_vec();
    no_fmt.extend([0; 8]);
    std::fs::write(&t.0, &no_fmt).unwrap();
    assert!(matches!(repair(&t.0), Err(Error::Malformed { .. })));
    let missing = TempWav::new("missing");
    assert!(matches!(repair(&missing.0), Err(Error::Io(_))));
}

#[test]
fn header_interval_zero_keeps_the_header_exact_after_every_write() {
    let pcm = samples(1000, 5);
    let buf = Shared::new(u64::MAX);
    let mut w = WavWriter::new(buf.clone(), 8000, 1)
        .unwrap()
        .with_header_interval(0);
    write_frames(&mut w, &pcm);
    std::mem::forget(w);
    assert_eq!(read_bytes(&buf.bytes()), pcm);
}

#[test]
fn starts_at_the_current_position_of_the_stream() {
    let mut c = Cursor::new(b"prefix".to_vec());
    c.seek(SeekFrom::End(0)).unwrap();
    let pcm = samples(300, 6);
    let mut w = WavWriter::new(c, 8000, 1).unwrap().with_header_interval(100);
    w.write(&pcm).unwrap();
    let bytes = w.finish().unwrap().into_inner();
    assert_eq!(&bytes[..6], b"prefix");
    assert_eq!(read_bytes(&bytes[6..]), pcm);
}

/// An in-memory "disk" shared with the test, that refuses to grow past
/// `limit` bytes (overwriting existing bytes still works, as on a full disk);
/// with `broken`, every write and seek fails.
#[derive(Clone)]
struct Shared(Rc<RefCell<Disk>>);

/// Contents, size limit, broken.
type Disk = (Cursor<Vec<u8>>, u64, bool);

impl Shared {
    fn new(limit: u64) -> Self {
        Shared(Rc::new(RefCell::new((Cursor::new(Vec::new()), limit, false))))
    }
    fn bytes(&self) -> Vec<u8> {
        self.0.borrow().0.get_ref().clone()
    }
    fn set_limit(&self, limit: u64) {
        self.0.borrow_mut().1 = limit;
    }
    fn break_device(&self) {
        self.0.borrow_mut().2 = true;
    }
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (c, limit, broken) = &mut *self.0.borrow_mut();
        if *broken {
            return Err(io::Error::other("device gone"));
        }
        let room = limit.saturating_sub(c.position()) as usize;
        if room == 0 && !buf.is_empty() {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
        }
        c.write(&buf[..buf.len().min(room)])
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Shared {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let (c, _, broken) = &mut *self.0.borrow_mut();
        if *broken {
            return Err(io::Error::other("device gone"));
        }
        c.seek(pos)
    }
}

#[test]
fn disk_full_is_an_io_error_and_the_file_stays_valid() {
    let pcm = samples(4000, 7);
    // Room for the header and 1000.5 frames: the 7th 160-sample write fails midway.
    let disk = Shared::new(44 + 2001);
    let mut w = WavWriter::new(disk.clone(), 8000, 1).unwrap();
    let mut ok = 0;
    let err = loop {
        match w.write(&pcm[ok..ok + 160]) {
            Ok(()) => ok += 160,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(err, Error::Io(ref m) if m.contains("disk full")),
        "{err:?}"
    );
    assert_eq!((ok, w.frames_written()), (960, 960));
    // Had the process died right now, the header covers exactly the good writes.
    assert_eq!(read_bytes(&disk.bytes()), pcm[..960]);
    assert!(w.write(&pcm[960..1120]).is_err(), "still full");

    // Space is freed: the same write is retried and the file continues cleanly.
    disk.set_limit(u64::MAX);
    w.write(&pcm[960..1120]).unwrap();
    w.write(&pcm[1120..4000]).unwrap();
    w.finish().unwrap();
    let bytes = disk.bytes();
    assert_eq!(bytes.len(), 44 + 8000);
    assert_eq!(read_bytes(&bytes), pcm);
}

#[test]
fn broken_device_errors_without_panicking() {
    let pcm = samples(1600, 8);
    let disk = Shared::new(u64::MAX);
    let mut w = WavWriter::new(disk.clone(), 8000, 1)
        .unwrap()
        .with_header_interval(320);
    w.write(&pcm[..320]).unwrap(); // header updated here
    w.write(&pcm[320..480]).unwrap();
    disk.break_device();
    assert!(matches!(w.write(&pcm[480..640]), Err(Error::Io(_))));
    assert!(matches!(w.write(&pcm[480..640]), Err(Error::Io(_))), "poisoned");
    assert!(matches!(w.flush(), Err(Error::Io(_))));
    drop(w); // must not panic
    assert_eq!(read_bytes(&disk.bytes()), pcm[..320], "last good header stands");
    assert!(WavWriter::new(disk, 8000, 1).is_err());
}

#[test]
fn bad_arguments() {
    let c = || Cursor::new(Vec::new());
    assert!(matches!(
        WavWriter::new(c(), 8000, 0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(WavWriter::new(c(), 8000, 3).is_err());
    assert!(WavWriter::new(c(), 0, 1).is_err());
    assert!(WavWriter::new(c(), u32::MAX, 2).is_err());
    let mut w = WavWriter::new(c(), 48_000, 2).unwrap();
    assert!(matches!(w.write(&[1, 2, 3]), Err(Error::InvalidArgument(_))));
    w.write(&[]).unwrap();
    w.data_bytes = MAX_DATA_BYTES - 2; // pretend we are at the 4 GiB limit
    assert!(w.write(&[1, 2]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever prefix of a written file survives a crash, repair recovers
    /// exactly its whole sample frames.
    #[test]
    fn repair_recovers_every_whole_frame(
        stereo in any::<bool>(),
        rate in 1u32..200_000,
        frames in 0usize..2000,
        cut_frac in 0.0f64..=1.0,
        seed in any::<u32>(),
    ) {
        let ch = if stereo { 2 } else { 1 };
        let pcm = samples(frames * ch as usize, seed);
        let disk = Shared::new(u64::MAX);
        let mut w = WavWriter::new(disk.clone(), rate, ch).unwrap().with_header_interval(500);
        for chunk in pcm.chunks(123 * ch as usize) {
            w.write(chunk).unwrap();
        }
        std::mem::forget(w);
        let bytes = disk.bytes();
        let cut = HEADER_LEN + ((bytes.len() - HEADER_LEN) as f64 * cut_frac) as usize;
        let t = TempWav::new("prop");
        std::fs::write(&t.0, &bytes[..cut]).unwrap();
        let r = repair(&t.0).unwrap();
        let whole = (cut - HEADER_LEN) / (2 * ch as usize);
        prop_assert_eq!(r.frames, whole as u64);
        let (spec, got) = read_file(&t.0);
        prop_assert_eq!((spec.sample_rate, spec.channels), (rate, ch));
        prop_assert_eq!(&got[..], &pcm[..whole * ch as usize]);
    }

    #[test]
    fn repair_never_panics_on_garbage(mut data in proptest::collection::vec(any::<u8>(), 0..120), riff in any::<bool>()) {
        if riff && data.len() >= 12 {
            data[..4].copy_from_slice(b"RIFF");
            data[8..12].copy_from_slice(b"WAVE");
        }
        let t = TempWav::new("garbage");
        std::fs::write(&t.0, &data).unwrap();
        let _ = repair(&t.0);
    }
}
