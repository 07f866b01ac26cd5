//! The log recovery target: arbitrary bytes → a directory of segment files in a `SimFs` →
//! `Wal::open`. Shared by `rust/duro-wal/tests/fuzz_recovery.rs` and the AFL target
//! `fuzz/src/bin/afl_wal_recovery.rs` (include `fuzzkit.rs` beside it as `super::fuzzkit`).
//!
//! Input format (every byte string is a valid input):
//!
//! ```text
//! flags:u8  (name:u8  len:u16le  bytes[len])*     a len past the end takes what is left
//! flags bit 0  open with preallocate = true (else false)
//! flags bit 1  fix checksums before planting: the segment header CRC, then each record
//!              header CRC and payload CRC, walking the frames from offset 32; lets the
//!              fuzzer reach past the CRCs into LSNs, epochs, lengths and segment numbers
//! flags bit 2  after a successful open: append a record, close, reopen, check it is there
//! flags bit 3  the same with ten 1000-byte records (rotates through a few segments)
//! name 0x00..=0x7f  segment `name` ({:020}.wal)
//! name 0x80..=0xbf  an unfinished segment ({:020}.wal.tmp) numbered name & 0x3f
//! name 0xc0..=0xf7  a file that is not a segment (see JUNK_NAMES)
//! name 0xf8..=0xff  segment u64::MAX - (0xff - name)
//! ```
//!
//! Properties checked besides "no panic": recovered LSNs are contiguous and `next_lsn`
//! follows them; a second open of what the first left returns the same records.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use duro_wal::fs::{Damage, Fault, SimFs};
use duro_wal::{NullSink, Record, Recovery, SyncMode, Wal, WalOptions};

use super::fuzzkit::{crc32c, mutate, Rng, INTERESTING};

pub const SEGMENT_HEADER_SIZE: usize = 32;
pub const RECORD_HEADER_SIZE: usize = 24;
pub const MAGIC: [u8; 8] = *b"DUROWAL\0";
pub const FLAG_SYNC_START: u8 = 1;

pub const FLAG_PREALLOCATE: u8 = 1;
pub const FLAG_FIX_CRCS: u8 = 2;
pub const FLAG_APPEND_AFTER: u8 = 4;
pub const FLAG_APPEND_MANY: u8 = 8;

pub const JUNK_NAMES: [&str; 8] = [
    "LOCK",
    "7.wal",
    "00000000000000000001.wal.bak",
    "99999999999999999999.wal",
    "0000000000000000000a.wal",
    "00000000000000000001.WAL",
    "000000000000000000001.wal",
    ".wal",
];

pub fn log_dir() -> PathBuf {
    PathBuf::from("/fuzz/log")
}

/// Segment size 4 KiB so small inputs span several segments.
pub fn options(flags: u8) -> WalOptions {
    WalOptions {
        segment_size: 4096,
        max_record_size: 1024,
        preallocate: flags & FLAG_PREALLOCATE != 0,
        sync: SyncMode::Data,
    }
}

pub fn file_name(code: u8) -> String {
    match code {
        0x00..=0x7f => format!("{:020}.wal", code),
        0x80..=0xbf => format!("{:020}.wal.tmp", code & 0x3f),
        0xc0..=0xf7 => JUNK_NAMES[(code - 0xc0) as usize % JUNK_NAMES.len()].to_string(),
        _ => format!("{:020}.wal", u64::MAX - (0xff - code) as u64),
    }
}

/// The segment number a name code stands for, if it names a segment.
pub fn segment_no_of(code: u8) -> Option<u64> {
    match code {
        0x00..=0x7f => Some(code as u64),
        0xf8..=0xff => Some(u64::MAX - (0xff - code) as u64),
        _ => None,
    }
}

pub fn code_of(name: &str) -> Option<u8> {
    let digits = name.strip_suffix(".wal")?;
    let n: u64 = digits.parse().ok()?;
    if n <= 0x7f {
        Some(n as u8)
    } else if n >= u64::MAX - 7 {
        Some((0xff - (u64::MAX - n)) as u8)
    } else {
        None
    }
}

/// A directory of log files, structured so mutations can target files and frames.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirInput {
    pub flags: u8,
    pub files: Vec<(u8, Vec<u8>)>,
}

impl DirInput {
    pub fn from_bytes(data: &[u8]) -> DirInput {
        let Some((&flags, mut rest)) = data.split_first() else {
            return DirInput::default();
        };
        let mut files = Vec::new();
        while let Some((&code, after)) = rest.split_first() {
            let (len, after) = match after {
                [a, b, tail @ ..] => (u16::from_le_bytes([*a, *b]) as usize, tail),
                _ => (after.len(), &[][..]),
            };
            let len = len.min(after.len());
            files.push((code, after[..len].to_vec()));
            rest = &after[len..];
        }
        DirInput { flags, files }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.flags];
        for (code, bytes) in &self.files {
            let bytes = &bytes[..bytes.len().min(u16::MAX as usize)];
            out.push(*code);
            out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            out.extend_from_slice(bytes);
        }
        out
    }

    /// A SimFs holding these files in [`log_dir`] (a later file of the same name wins).
    pub fn plant(&self) -> SimFs {
        let fs = SimFs::new();
        fs.set_tracing(false);
        let dir = log_dir();
        for (code, bytes) in &self.files {
            let mut bytes = bytes.clone();
            if self.flags & FLAG_FIX_CRCS != 0 && segment_no_of(*code).is_some() {
                fix_crcs(&mut bytes);
            }
            fs.put_file(&dir.join(file_name(*code)), &bytes);
        }
        fs
    }
}

// ---------------------------------------------------------------------------------------
// The format (rust/duro-wal/src/format.rs), rewritten here: `duro_wal::format` is private.

pub fn segment_header(epoch: u32, segment_no: u64) -> [u8; SEGMENT_HEADER_SIZE] {
    let mut bytes = [0u8; SEGMENT_HEADER_SIZE];
    bytes[0..8].copy_from_slice(&MAGIC);
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    bytes[12..16].copy_from_slice(&epoch.to_le_bytes());
    bytes[16..24].copy_from_slice(&segment_no.to_le_bytes());
    let crc = crc32c(&bytes[0..28]);
    bytes[28..32].copy_from_slice(&crc.to_le_bytes());
    bytes
}

pub fn encode_record(
    buf: &mut Vec<u8>,
    record_type: u8,
    flags: u8,
    lsn: u64,
    epoch: u32,
    payload: &[u8],
) {
    let mut header = [0u8; RECORD_HEADER_SIZE];
    header[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[4] = record_type;
    header[5] = flags;
    header[8..16].copy_from_slice(&lsn.to_le_bytes());
    header[16..20].copy_from_slice(&epoch.to_le_bytes());
    let crc = crc32c(&header[0..20]);
    header[20..24].copy_from_slice(&crc.to_le_bytes());
    buf.extend_from_slice(&header);
    buf.extend_from_slice(payload);
    buf.extend_from_slice(&crc32c(payload).to_le_bytes());
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// Offsets of the record frames of a segment image, walking lengths from offset 32 until a
/// zero header or the end (checksums are not checked).
pub fn frame_offsets(image: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = SEGMENT_HEADER_SIZE;
    while at + RECORD_HEADER_SIZE <= image.len() {
        let header = &image[at..at + RECORD_HEADER_SIZE];
        if header.iter().all(|&b| b == 0) {
            break;
        }
        offsets.push(at);
        let len = read_u32(image, at) as usize;
        match at.checked_add(RECORD_HEADER_SIZE + len + 4) {
            Some(end) if end <= image.len() => at = end,
            _ => break,
        }
    }
    offsets
}

/// Makes the segment header CRC and every frame's CRCs valid, whatever the fields say.
pub fn fix_crcs(image: &mut [u8]) {
    if image.len() >= SEGMENT_HEADER_SIZE {
        let crc = crc32c(&image[0..28]);
        image[28..32].copy_from_slice(&crc.to_le_bytes());
    }
    for at in frame_offsets(image) {
        let crc = crc32c(&image[at..at + 20]);
        image[at + 20..at + 24].copy_from_slice(&crc.to_le_bytes());
        let len = read_u32(image, at) as usize;
        let payload = at + RECORD_HEADER_SIZE;
        if payload + len + 4 <= image.len() {
            let crc = crc32c(&image[payload..payload + len]);
            image[payload + len..payload + len + 4].copy_from_slice(&crc.to_le_bytes());
        }
    }
}

// ---------------------------------------------------------------------------------------
// The target.

fn check_recovery(recovery: &Recovery, when: &str) -> Result<(), String> {
    for pair in recovery.records.windows(2) {
        if pair[0].lsn.checked_add(1) != Some(pair[1].lsn) {
            return Err(format!(
                "{when}: recovered LSNs are not contiguous: {} then {}",
                pair[0].lsn, pair[1].lsn
            ));
        }
    }
    if let Some(last) = recovery.records.last() {
        if last.lsn.checked_add(1) != Some(recovery.next_lsn) {
            return Err(format!(
                "{when}: last recovered LSN {} but next_lsn {}",
                last.lsn, recovery.next_lsn
            ));
        }
    }
    if recovery.records.iter().any(|r| r.record_type == 0) {
        return Err(format!("{when}: recovered a record of type 0"));
    }
    Ok(())
}

fn open(fs: &SimFs, flags: u8) -> Result<(Wal, Recovery), duro_wal::WalError> {
    Wal::open(
        Arc::new(fs.clone()),
        &log_dir(),
        options(flags),
        Arc::new(NullSink),
    )
}

/// Plants `data` (see the module doc) and opens it: `Err` for a broken property, a panic
/// for a panic.
pub fn wal_target(data: &[u8]) -> Result<(), String> {
    let input = DirInput::from_bytes(data);
    let fs = input.plant();
    let first = match open(&fs, input.flags) {
        Ok((wal, recovery)) => {
            check_recovery(&recovery, "first open")?;
            wal.close()
                .map_err(|e| format!("close after the first open failed: {e}"))?;
            recovery
        }
        Err(error) => {
            // A typed error that names what it refused.
            let _ = error.to_string();
            return Ok(());
        }
    };
    let (wal, second) = open(&fs, input.flags).map_err(|e| {
        format!(
            "the first open recovered {} records, the second failed: {e}",
            first.records.len()
        )
    })?;
    check_recovery(&second, "second open")?;
    if second.records != first.records || second.next_lsn != first.next_lsn {
        return Err(format!(
            "recovery is not idempotent: {} records (next {}) then {} records (next {})",
            first.records.len(),
            first.next_lsn,
            second.records.len(),
            second.next_lsn
        ));
    }
    if input.flags & (FLAG_APPEND_AFTER | FLAG_APPEND_MANY) == 0 {
        return wal
            .close()
            .map_err(|e| format!("close after the second open failed: {e}"));
    }
    // Append after recovery: one small record, or enough big ones to fill a few segments
    // (rotation from whatever state recovery left: spare segments, odd sizes and numbers).
    let (count, size) = if input.flags & FLAG_APPEND_MANY != 0 {
        (10, 1000)
    } else {
        (1, 23)
    };
    let payloads: Vec<Vec<u8>> = (0..count).map(|i| vec![b'a' + i as u8; size]).collect();
    let mut lsn = 0;
    for payload in &payloads {
        lsn = wal
            .append(&[Record::new(7, payload)], None)
            .map_err(|e| format!("append after recovery failed: {e}"))?;
    }
    wal.wait_durable(lsn)
        .map_err(|e| format!("wait after recovery failed: {e}"))?;
    wal.close()
        .map_err(|e| format!("close after the append failed: {e}"))?;
    let (wal, third) =
        open(&fs, input.flags).map_err(|e| format!("reopen after an append failed: {e}"))?;
    check_recovery(&third, "third open")?;
    let tail: Vec<&[u8]> = third
        .records
        .iter()
        .rev()
        .take(count)
        .rev()
        .map(|r| r.payload.as_slice())
        .collect();
    let expected: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    if tail != expected || third.records.last().map(|r| r.lsn) != Some(lsn) {
        return Err(format!(
            "the {count} appended records (last LSN {lsn}) were not recovered; {} records, last LSN {:?}",
            third.records.len(),
            third.records.last().map(|r| r.lsn)
        ));
    }
    wal.close()
        .map_err(|e| format!("close after the third open failed: {e}"))
}

// ---------------------------------------------------------------------------------------
// Seeds: real logs written by `Wal`, in every shape recovery meets.

fn collect(fs: &SimFs, flags: u8) -> DirInput {
    let dir = log_dir();
    let mut files = Vec::new();
    for path in fs.files() {
        if path.parent() != Some(dir.as_path()) {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let code = match code_of(&name) {
            Some(code) => code,
            None if name.ends_with(".wal.tmp") => {
                0x80 | (name[..20].parse::<u64>().unwrap_or(0) & 0x3f) as u8
            }
            None => continue,
        };
        files.push((code, fs.read_file(&path).unwrap_or_default()));
    }
    files.sort_by_key(|(code, _)| *code);
    DirInput { flags, files }
}

fn payload(n: u64) -> Vec<u8> {
    let len = match n % 5 {
        0 => 0,
        1 => 1,
        2 => 17,
        3 => 200,
        _ => 700,
    };
    (0..len).map(|i| (n as usize * 31 + i) as u8).collect()
}

/// Appends `groups` sync groups of 1..=3 records; returns the last LSN.
fn workload(wal: &Wal, groups: u64) -> u64 {
    let mut last = 0;
    let mut n = 0;
    for g in 0..groups {
        let count = 1 + g % 3;
        let payloads: Vec<Vec<u8>> = (0..count).map(|i| payload(n + i)).collect();
        n += count;
        let records: Vec<Record<'_>> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| Record::new(1 + ((g as usize + i) % 5) as u8, p))
            .collect();
        last = wal.append(&records, None).expect("append");
        wal.wait_durable(last).expect("durable");
    }
    last
}

/// Real logs: fresh, several segments, released segments, torn tails of every damage kind.
pub fn seed_dirs() -> Vec<DirInput> {
    let mut seeds = Vec::new();
    for flags in [0u8, FLAG_PREALLOCATE] {
        for groups in [0u64, 1, 4, 12] {
            let fs = SimFs::new();
            fs.set_tracing(false);
            let (wal, _) = open(&fs, flags).expect("open a fresh log");
            let last = workload(&wal, groups);
            if groups == 12 {
                wal.release_through(last / 2).expect("release");
            }
            wal.close().expect("close");
            seeds.push(collect(&fs, flags));
            seeds.push(collect(&fs, flags | FLAG_FIX_CRCS | FLAG_APPEND_AFTER));
            seeds.push(collect(&fs, flags | FLAG_APPEND_MANY));
        }
        // Crashes in the middle of a workload, with each kind of damage to unsynced data.
        let total_ops = {
            let fs = SimFs::new();
            fs.set_tracing(false);
            let (wal, _) = open(&fs, flags).expect("open");
            workload(&wal, 8);
            wal.close().expect("close");
            fs.ops()
        };
        for (i, damage) in Damage::all().into_iter().enumerate() {
            let fs = SimFs::new();
            fs.set_tracing(false);
            let crash_at = 1 + (total_ops * (i as u64 + 2)) / 10;
            fs.inject(Fault::CrashAt { op: crash_at });
            if let Ok((wal, _)) = open(&fs, flags) {
                let records = [Record::new(1, b"x")];
                for _ in 0..40 {
                    match wal.append(&records, None) {
                        Ok(lsn) => {
                            if wal.wait_durable(lsn).is_err() {
                                break;
                            }
                        }
                        Err(_) => break,
                    }
                }
                drop(wal);
            }
            let image = fs.crash_image(damage, 7 + i as u64);
            image.set_tracing(false);
            seeds.push(collect(&image, flags));
        }
    }
    // Hand-made frames: one segment, records with every flag and type.
    let mut image = segment_header(0x5EED, 1).to_vec();
    for lsn in 1..=6u64 {
        let flags = if lsn % 3 == 1 { FLAG_SYNC_START } else { 0 };
        encode_record(
            &mut image,
            (lsn % 255) as u8 + 1,
            flags,
            lsn,
            0x5EED,
            &payload(lsn),
        );
    }
    seeds.push(DirInput {
        flags: FLAG_FIX_CRCS,
        files: vec![(1, image.clone())],
    });
    image.resize(4096, 0);
    seeds.push(DirInput {
        flags: FLAG_PREALLOCATE | FLAG_FIX_CRCS | FLAG_APPEND_AFTER,
        files: vec![(1, image)],
    });
    seeds.retain(|s| !s.files.is_empty() || s.flags == 0);
    seeds
}

/// Reads the v1 fixtures of `rust/duro-wal/tests/fixtures` (each a directory of segments).
pub fn fixture_dirs(root: &Path) -> Vec<DirInput> {
    let mut seeds = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return seeds;
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let mut files = Vec::new();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().to_string();
            if let (Some(code), Ok(bytes)) = (code_of(&name), std::fs::read(entry.path())) {
                files.push((code, bytes));
            }
        }
        files.sort_by_key(|(code, _)| *code);
        let preallocated = files.first().is_some_and(|(_, b)| b.len() == 4096);
        if !files.is_empty() {
            seeds.push(DirInput {
                flags: if preallocated { FLAG_PREALLOCATE } else { 0 },
                files,
            });
        }
    }
    seeds
}

// ---------------------------------------------------------------------------------------
// Structured mutations.

/// Sets a field of the frame at `at` (header bytes 0..20).
fn mutate_frame(rng: &mut Rng, image: &mut [u8], at: usize) {
    let value = *rng.pick(&INTERESTING);
    match rng.below(8) {
        0 => image[at..at + 4].copy_from_slice(&(value as u32).to_le_bytes()),
        1 => image[at + 4] = *rng.pick(&[0u8, 1, 2, 255]),
        2 => image[at + 5] = *rng.pick(&[0u8, 1, 2, 3, 0x80]),
        3 => image[at + 6] = 1,
        4 => {
            // LSN: far away, near the top, off by one.
            let lsn = u64::from_le_bytes(image[at + 8..at + 16].try_into().unwrap());
            let new = match rng.below(4) {
                0 => value,
                1 => lsn.wrapping_add(1),
                2 => lsn.wrapping_sub(1),
                _ => u64::MAX - rng.below(4) as u64,
            };
            image[at + 8..at + 16].copy_from_slice(&new.to_le_bytes());
        }
        5 => image[at + 16..at + 20].copy_from_slice(&(value as u32).to_le_bytes()),
        6 => {
            // Zero the whole frame header (the "end of records" marker).
            image[at..at + RECORD_HEADER_SIZE].fill(0);
        }
        _ => {
            let end = (at + RECORD_HEADER_SIZE + rng.below(64)).min(image.len());
            image[at..end].fill(rng.byte());
        }
    }
}

fn mutate_segment_header(rng: &mut Rng, image: &mut Vec<u8>, code: u8) {
    if image.len() < SEGMENT_HEADER_SIZE {
        image.resize(SEGMENT_HEADER_SIZE, 0);
    }
    match rng.below(6) {
        0 => image[8..12].copy_from_slice(&rng.pick(&[0u32, 1, 2, u32::MAX]).to_le_bytes()),
        1 => image[12..16].copy_from_slice(&(rng.number() as u32).to_le_bytes()),
        2 => {
            let no = if rng.chance(70) {
                segment_no_of(code).unwrap_or(1)
            } else {
                rng.number()
            };
            image[16..24].copy_from_slice(&no.to_le_bytes());
        }
        3 => image[24..28].copy_from_slice(&1u32.to_le_bytes()),
        4 => {
            let at = rng.below(8);
            image[at] ^= 1 << rng.below(8);
        }
        _ => image[28] ^= 1,
    }
}

fn fresh_code(rng: &mut Rng) -> u8 {
    match rng.below(10) {
        0 => 0x80 | rng.below(8) as u8,
        1 => 0xc0 + rng.below(JUNK_NAMES.len()) as u8,
        2 => 0xf8 + rng.below(8) as u8,
        _ => rng.below(12) as u8,
    }
}

/// One to four structure-aware mutations of a directory.
pub fn mutate_dir(rng: &mut Rng, input: &mut DirInput, seeds: &[DirInput]) {
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        if input.files.is_empty() {
            let image = segment_header(rng.next_u64() as u32 | 1, 1).to_vec();
            input.files.push((1, image));
        }
        let i = rng.below(input.files.len());
        match rng.below(20) {
            // Bytes of one file.
            0..=5 => {
                let others: Vec<Vec<u8>> = seeds
                    .iter()
                    .flat_map(|s| s.files.iter().map(|(_, b)| b.clone()))
                    .take(8)
                    .collect();
                mutate(rng, &mut input.files[i].1, &others, 16 << 10);
            }
            // A field of one frame, checksums fixed (usually).
            6..=9 => {
                let image = &mut input.files[i].1;
                let frames = frame_offsets(image);
                if !frames.is_empty() {
                    let at = *rng.pick(&frames);
                    mutate_frame(rng, image, at);
                }
                if rng.chance(80) {
                    input.flags |= FLAG_FIX_CRCS;
                }
            }
            10 => {
                let code = input.files[i].0;
                mutate_segment_header(rng, &mut input.files[i].1, code);
                if rng.chance(70) {
                    input.flags |= FLAG_FIX_CRCS;
                }
            }
            // Torn writes: cut, zero or garbage-fill a range.
            11 => {
                let len = input.files[i].1.len();
                let at = rng.below(len + 1);
                input.files[i].1.truncate(at);
            }
            12 => {
                let image = &mut input.files[i].1;
                let at = rng.below(image.len() + 1);
                let end = (at + 1 + rng.below(600)).min(image.len());
                let garbage = rng.chance(50);
                for b in &mut image[at..end] {
                    *b = if garbage { rng.byte() } else { 0 };
                }
            }
            // The directory: drop, copy, rename, swap, add.
            13 => {
                input.files.remove(i);
            }
            14 => {
                let copy = input.files[i].1.clone();
                input.files.push((fresh_code(rng), copy));
            }
            15 => {
                // Rename, and make the header agree with the new name.
                let code = fresh_code(rng);
                input.files[i].0 = code;
                if let Some(no) = segment_no_of(code) {
                    if input.files[i].1.len() >= SEGMENT_HEADER_SIZE {
                        input.files[i].1[16..24].copy_from_slice(&no.to_le_bytes());
                        input.flags |= FLAG_FIX_CRCS;
                    }
                }
            }
            16 => {
                let j = rng.below(input.files.len());
                let a = input.files[i].1.clone();
                input.files[i].1 = std::mem::replace(&mut input.files[j].1, a);
            }
            17 => {
                let len = *rng.pick(&[0usize, 1, 31, 32, 33, 4095, 4096]);
                let mut image = vec![0u8; len];
                if len >= SEGMENT_HEADER_SIZE && rng.chance(70) {
                    let code = fresh_code(rng);
                    image[..SEGMENT_HEADER_SIZE].copy_from_slice(&segment_header(
                        rng.next_u64() as u32,
                        segment_no_of(code).unwrap_or(0),
                    ));
                    input.files.push((code, image));
                } else {
                    input.files.push((fresh_code(rng), image));
                }
            }
            18 if !seeds.is_empty() => {
                // A file from another log (another epoch, other LSNs).
                let other = rng.pick(seeds);
                if !other.files.is_empty() {
                    let file = rng.pick(&other.files).clone();
                    if rng.chance(50) {
                        input.files[i] = file;
                    } else {
                        input.files.push(file);
                    }
                }
            }
            _ => input.flags ^= 1 << rng.below(4),
        }
    }
    input.files.truncate(12);
}
