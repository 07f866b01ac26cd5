//! The embedded store's targets, shared by `rust/duro-store/tests/fuzz_records.rs` and the
//! AFL targets (include `fuzzkit.rs`, `events.rs` and `wal_dir.rs` beside it).
//!
//! 1. [`store_target`]: log records with arbitrary payloads (and valid CRCs) →
//!    `EmbeddedStore::open`, which decodes each payload with the store's record codec
//!    (`record::decode`, private) and each event with the journal codec, then folds them into
//!    the SQLite index. Input format:
//!
//!    ```text
//!    flags:u8  (record_type:u8  len:u16le  payload[len])*
//!    flags bit 0  zero-fill the segment to its full size (a preallocated segment)
//!    ```
//!
//!    The records get LSNs 1, 2, … in segment 1, the first with SYNC_START. Besides "no
//!    panic": an index that opened can be read back (every listed run's journal, its
//!    summary), takes a new run and an append to an unfinished run.
//!
//! 2. [`IndexFixture`]: arbitrary `events.body` bytes (and odd values in `runs` columns) in
//!    the SQLite index of an open store, read through `events()`, `summary()`, `list()` and
//!    `claim_due()`. Input format:
//!
//!    ```text
//!    mode:u8  [column:u8  kind:u8 if mode bit 4]  body...
//!    mode bits 0-2  position of the event row to overwrite (position = event count adds one)
//!    mode bit 3     store a wrong row checksum (when the index has a crc column)
//!    mode bit 4     also overwrite runs.<column> (column % 18) with a value of `kind`
//!                   (0 NULL, 1 integer from the body, 2 text, 3 blob, 4 real)
//!    mode bit 5     store the body as TEXT (lossy UTF-8) instead of a BLOB
//!    mode bit 6     delete the row instead (a hole in the journal)
//!    ```
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use duro_core::journal::{ErrorInfo, Event, StepKind};
use duro_store::{EmbeddedOptions, EmbeddedStore, RunFilter, StartOutcome, Store};
use duro_wal::fs::SimFs;
use duro_wal::{SyncMode, WalOptions};
use rusqlite::types::Value;

use super::events::{encode, sample_events};
use super::fuzzkit::{
    crc32c, crc32c_append, huge_varint, mutate, put_varint, varint, Rng, INTERESTING,
};
use super::wal_dir::{
    encode_record, frame_offsets, segment_header, FLAG_SYNC_START, RECORD_HEADER_SIZE,
};

pub const RUN_EVENTS: u8 = 1;
pub const SEGMENT_SIZE: u64 = 64 << 10;
pub const FLAG_PREALLOCATED: u8 = 1;

// ---------------------------------------------------------------------------------------
// Scratch directories (the index is a real SQLite file; the log is in a SimFs).

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// A directory removed on drop, in /dev/shm when there is one (no disk syncs).
pub struct ScratchDir {
    pub path: PathBuf,
}

impl ScratchDir {
    pub fn new(what: &str) -> ScratchDir {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        if n == 0 {
            sweep_stale(&base);
        }
        let path = base.join(format!("duro-fuzz-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a scratch directory");
        ScratchDir { path }
    }
}

/// Removes the scratch directories of processes that are gone (an AFL child that crashed
/// or exited without running destructors leaves its directories behind).
fn sweep_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("duro-fuzz-") else {
            continue;
        };
        // duro-fuzz-<what>-<pid>-<n>
        let mut parts = rest.rsplitn(3, '-');
        let (Some(_n), Some(pid)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

pub fn store_options(fs: Arc<SimFs>) -> EmbeddedOptions {
    EmbeddedOptions {
        wal: WalOptions {
            segment_size: SEGMENT_SIZE,
            max_record_size: 16 << 10,
            preallocate: false,
            sync: SyncMode::Data,
        },
        fs,
        release_every: Duration::from_secs(3600),
    }
}

fn started(run_id: &str) -> Event {
    Event::RunStarted {
        run_id: run_id.into(),
        workflow: "wf".into(),
        version: "1".into(),
        input: b"{}".to_vec(),
        deadline_ms: None,
        start_at_ms: None,
        step_count: 2,
        at_ms: 1,
    }
}

// ---------------------------------------------------------------------------------------
// The store's record framing (rust/duro-store/src/record.rs), rewritten: it is private.

/// `run_key:varint first_position:varint count:varint (len:varint event)*`.
pub fn encode_run_record(run_key: u64, first_position: u64, events: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, run_key);
    put_varint(&mut out, first_position);
    put_varint(&mut out, events.len() as u64);
    for event in events {
        put_varint(&mut out, event.len() as u64);
        out.extend_from_slice(event);
    }
    out
}

fn get_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The fields of a run record, if it parses (lenient: for mutating, not for judging).
pub fn parse_run_record(bytes: &[u8]) -> Option<(u64, u64, Vec<Vec<u8>>)> {
    let mut at = 0;
    let run_key = get_varint(bytes, &mut at)?;
    let first = get_varint(bytes, &mut at)?;
    let count = get_varint(bytes, &mut at)?;
    let mut events = Vec::new();
    for _ in 0..count.min(1000) {
        let len = get_varint(bytes, &mut at)? as usize;
        let end = at.checked_add(len).filter(|&e| e <= bytes.len())?;
        events.push(bytes[at..end].to_vec());
        at = end;
    }
    Some((run_key, first, events))
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogInput {
    pub flags: u8,
    pub records: Vec<(u8, Vec<u8>)>,
}

impl LogInput {
    pub fn from_bytes(data: &[u8]) -> LogInput {
        let Some((&flags, mut rest)) = data.split_first() else {
            return LogInput::default();
        };
        let mut records = Vec::new();
        while let Some((&record_type, after)) = rest.split_first() {
            let (len, after) = match after {
                [a, b, tail @ ..] => (u16::from_le_bytes([*a, *b]) as usize, tail),
                _ => (after.len(), &[][..]),
            };
            let len = len.min(after.len());
            records.push((record_type, after[..len].to_vec()));
            rest = &after[len..];
        }
        LogInput { flags, records }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.flags];
        for (record_type, payload) in &self.records {
            let payload = &payload[..payload.len().min(u16::MAX as usize)];
            out.push(*record_type);
            out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
            out.extend_from_slice(payload);
        }
        out
    }

    /// Segment 1 holding the records with valid checksums.
    pub fn segment_image(&self) -> Vec<u8> {
        const EPOCH: u32 = 0x5EED_0001;
        let mut image = segment_header(EPOCH, 1).to_vec();
        for (i, (record_type, payload)) in self.records.iter().enumerate() {
            let flags = if i == 0 { FLAG_SYNC_START } else { 0 };
            encode_record(
                &mut image,
                *record_type,
                flags,
                i as u64 + 1,
                EPOCH,
                payload,
            );
        }
        if self.flags & FLAG_PREALLOCATED != 0 && (image.len() as u64) < SEGMENT_SIZE {
            image.resize(SEGMENT_SIZE as usize, 0);
        }
        image
    }
}

// ---------------------------------------------------------------------------------------
// Target 1: log records → EmbeddedStore::open.

fn segment_path(dir: &Path) -> PathBuf {
    dir.join("wal").join("00000000000000000001.wal")
}

/// Opens a store on the records of `data` (see the module doc): `Err` for a broken property.
pub fn store_target(data: &[u8]) -> Result<(), String> {
    let input = LogInput::from_bytes(data);
    let dir = ScratchDir::new("store");
    let fs = Arc::new(SimFs::new());
    fs.set_tracing(false);
    fs.put_file(&segment_path(&dir.path), &input.segment_image());
    let store = match EmbeddedStore::open(&dir.path, store_options(fs)) {
        Ok(store) => store,
        Err(error) => {
            let _ = error.to_string();
            return Ok(());
        }
    };
    let result = exercise(&store);
    let closed = store.close().map_err(|e| format!("close failed: {e}"));
    result.and(closed)
}

/// Reads back everything an index built from the log holds, then writes to it.
fn exercise(store: &EmbeddedStore) -> Result<(), String> {
    let runs = store
        .list(&RunFilter {
            limit: 100_000,
            ..RunFilter::default()
        })
        .map_err(|e| format!("an index built from the log cannot be listed: {e}"))?;
    let mut unfinished = None;
    for summary in &runs {
        let events = store.events(summary.run_key).map_err(|e| {
            format!(
                "run #{} ({:?}) was indexed but its journal cannot be read: {e}",
                summary.run_key, summary.run_id
            )
        })?;
        if events.len() != summary.event_count as usize {
            return Err(format!(
                "run #{}: {} events but the summary counts {}",
                summary.run_key,
                events.len(),
                summary.event_count
            ));
        }
        if !matches!(events.first(), Some(Event::RunStarted { .. })) {
            return Err(format!(
                "run #{} does not start with run_started",
                summary.run_key
            ));
        }
        match store.summary(&summary.run_id) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(format!(
                    "run {:?} is listed but summary() does not find it",
                    summary.run_id
                ))
            }
            Err(e) => return Err(format!("summary({:?}) failed: {e}", summary.run_id)),
        }
        if !summary.status.is_terminal() && unfinished.is_none() {
            unfinished = Some(summary.clone());
        }
    }
    let _ = store
        .claim_due("fuzz", 0, 1000)
        .map_err(|e| format!("claim_due failed: {e}"))?;
    for key in [0, 1, 2, u64::MAX, i64::MAX as u64] {
        let _ = store.events(key);
        let _ = store.summary_by_key(key);
    }
    // The store keeps working: a new run, and an append to an unfinished one.
    let (outcome, receipt) = store
        .start_run(&started("fuzz-new-run"), None)
        .map_err(|e| format!("start_run after recovery failed: {e}"))?;
    store
        .wait_durable(receipt)
        .map_err(|e| format!("the new run did not become durable: {e}"))?;
    if let StartOutcome::Created { run_key } = outcome {
        if store
            .events(run_key)
            .map_err(|e| format!("the new run cannot be read: {e}"))?
            .len()
            != 1
        {
            return Err("the new run does not hold its start".into());
        }
    }
    if let Some(summary) = unfinished {
        let receipt = store
            .append(
                summary.run_key,
                summary.event_count,
                &[Event::Paused { at_ms: 2 }],
                None,
            )
            .map_err(|e| format!("append to unfinished run #{} failed: {e}", summary.run_key))?;
        store
            .wait_durable(receipt)
            .map_err(|e| format!("append did not become durable: {e}"))?;
    }
    Ok(())
}

/// Payloads the store really writes: a workload with every event kind, read back from its
/// log as `(record_type, payload)` records, one `LogInput` per store.
pub fn record_seeds() -> Vec<LogInput> {
    let dir = ScratchDir::new("seeds");
    let fs = Arc::new(SimFs::new());
    fs.set_tracing(false);
    {
        let store = EmbeddedStore::open(&dir.path, store_options(fs.clone()))
            .expect("open a store for seeds");
        let error = ErrorInfo::new("ValueError", "bad", true);
        let key = |outcome: StartOutcome| outcome.run_key();
        let (a, r) = store.start_run(&started("a"), None).unwrap();
        store.wait_durable(r).unwrap();
        let a = key(a);
        let steps = vec![
            Event::StepStarted {
                seq: 0,
                kind: StepKind::Task,
                name: "charge".into(),
                attempt: 1,
                at_ms: 3,
            },
            Event::StepFailed {
                seq: 0,
                attempt: 1,
                error: error.clone(),
                retry_at_ms: Some(10),
                at_ms: 4,
            },
            Event::StepStarted {
                seq: 0,
                kind: StepKind::Task,
                name: "charge".into(),
                attempt: 2,
                at_ms: 10,
            },
            Event::StepCompleted {
                seq: 0,
                attempt: 2,
                output: b"{\"ok\":1}".to_vec(),
                at_ms: 11,
            },
            Event::StepStarted {
                seq: 1,
                kind: StepKind::Sleep,
                name: "nap".into(),
                attempt: 1,
                at_ms: 12,
            },
            Event::TimerSet {
                seq: 1,
                fire_at_ms: 100,
                at_ms: 12,
            },
        ];
        let r = store.append(a, 1, &steps, None).unwrap();
        store.wait_durable(r).unwrap();
        let more = vec![
            Event::TimerFired { seq: 1, at_ms: 100 },
            Event::StepCompleted {
                seq: 1,
                attempt: 1,
                output: vec![],
                at_ms: 100,
            },
            Event::StepStarted {
                seq: 2,
                kind: StepKind::WaitEvent,
                name: "approved".into(),
                attempt: 1,
                at_ms: 101,
            },
        ];
        let r = store.append(a, 7, &more, None).unwrap();
        store.wait_durable(r).unwrap();
        let singles = vec![
            Event::EventReceived {
                name: "approved".into(),
                payload: b"yes".to_vec(),
                at_ms: 102,
            },
            Event::StepCompleted {
                seq: 2,
                attempt: 1,
                output: b"yes".to_vec(),
                at_ms: 102,
            },
            Event::Paused { at_ms: 103 },
            Event::Resumed { at_ms: 104 },
            Event::CancelRequested {
                compensate: true,
                at_ms: 105,
            },
            Event::CompensationStarted {
                reason: error.clone(),
                failed_seq: Some(2),
                at_ms: 106,
            },
            Event::StepStarted {
                seq: 3,
                kind: StepKind::Compensation,
                name: "refund".into(),
                attempt: 1,
                at_ms: 107,
            },
            Event::StepCompleted {
                seq: 3,
                attempt: 1,
                output: vec![],
                at_ms: 108,
            },
            Event::StepStarted {
                seq: 4,
                kind: StepKind::OnFailure,
                name: "notify".into(),
                attempt: 1,
                at_ms: 109,
            },
            Event::StepFailed {
                seq: 4,
                attempt: 1,
                error: error.clone(),
                retry_at_ms: None,
                at_ms: 110,
            },
            Event::RunFailed { error, at_ms: 111 },
        ];
        for (i, event) in singles.into_iter().enumerate() {
            let r = store
                .append(a, 10 + i as u32, std::slice::from_ref(&event), None)
                .unwrap();
            store.wait_durable(r).unwrap();
        }
        let (b, r) = store.start_run(&started("b"), None).unwrap();
        store.wait_durable(r).unwrap();
        let r = store
            .append(
                key(b),
                1,
                &[Event::RunCompleted {
                    output: b"done".to_vec(),
                    at_ms: 5,
                }],
                None,
            )
            .unwrap();
        store.wait_durable(r).unwrap();
        let (c, r) = store.start_run(&started("c"), None).unwrap();
        store.wait_durable(r).unwrap();
        let r = store
            .append(key(c), 1, &[Event::RunCancelled { at_ms: 6 }], None)
            .unwrap();
        store.wait_durable(r).unwrap();
        let (d, r) = store.start_run(&started("d-still-running"), None).unwrap();
        store.wait_durable(r).unwrap();
        let r = store
            .append(
                key(d),
                1,
                &[Event::StepStarted {
                    seq: 0,
                    kind: StepKind::Task,
                    name: "s".into(),
                    attempt: 1,
                    at_ms: 7,
                }],
                None,
            )
            .unwrap();
        store.wait_durable(r).unwrap();
        store.close().unwrap();
    }
    let mut all = Vec::new();
    let mut segments: Vec<PathBuf> = fs
        .files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    for path in segments {
        let image = fs.read_file(&path).unwrap_or_default();
        for at in frame_offsets(&image) {
            let len = u32::from_le_bytes(image[at..at + 4].try_into().unwrap()) as usize;
            let payload = &image[at + RECORD_HEADER_SIZE..at + RECORD_HEADER_SIZE + len];
            all.push((image[at + 4], payload.to_vec()));
        }
    }
    let mut seeds = vec![
        LogInput {
            flags: 0,
            records: all.clone(),
        },
        LogInput {
            flags: FLAG_PREALLOCATED,
            records: all.clone(),
        },
    ];
    // Each run's records alone, and one record per input.
    for n in 1..=all.len().min(6) {
        seeds.push(LogInput {
            flags: 0,
            records: all[..n].to_vec(),
        });
    }
    // Hand-made: every sample event as the start of a run, and runs at extreme keys.
    let events = sample_events();
    let start = encode(&events[0]);
    for (i, event) in events.iter().enumerate() {
        let mut records = vec![
            (
                RUN_EVENTS,
                encode_run_record(1, 0, std::slice::from_ref(&start)),
            ),
            (RUN_EVENTS, encode_run_record(1, 1, &[encode(event)])),
        ];
        if i > 0 {
            // Another run starting with this event (a run id of its own, when it is a start).
            records.push((
                RUN_EVENTS,
                encode_run_record(i as u64 + 2, 0, &[encode(event)]),
            ));
        }
        seeds.push(LogInput { flags: 0, records });
    }
    for key in [0u64, i64::MAX as u64, (i64::MAX as u64) + 1] {
        seeds.push(LogInput {
            flags: 0,
            records: vec![(
                RUN_EVENTS,
                encode_run_record(key, 0, std::slice::from_ref(&start)),
            )],
        });
    }
    seeds
}

/// Seeds at the edges that real stores never write (run keys near u64::MAX, a record without
/// events, two runs with one run id): fuzzed, not required to open cleanly.
pub fn edge_seeds() -> Vec<LogInput> {
    let start = encode(&sample_events()[0]);
    vec![
        LogInput {
            flags: 0,
            records: vec![(
                RUN_EVENTS,
                encode_run_record(u64::MAX, 0, std::slice::from_ref(&start)),
            )],
        },
        LogInput {
            flags: 0,
            records: vec![(
                RUN_EVENTS,
                encode_run_record(u64::MAX - 1, 0, std::slice::from_ref(&start)),
            )],
        },
        LogInput {
            flags: 0,
            records: vec![(RUN_EVENTS, encode_run_record(1, 0, &[]))],
        },
        LogInput {
            flags: 0,
            records: vec![
                (
                    RUN_EVENTS,
                    encode_run_record(2, 0, std::slice::from_ref(&start)),
                ),
                (
                    RUN_EVENTS,
                    encode_run_record(1, 0, std::slice::from_ref(&start)),
                ),
            ],
        },
    ]
}

// ---------------------------------------------------------------------------------------
// Structured mutations of a log.

pub fn mutate_log(
    rng: &mut Rng,
    input: &mut LogInput,
    seeds: &[LogInput],
    event_seeds: &[Vec<u8>],
) {
    let rounds = 1 + rng.below(3);
    for _ in 0..rounds {
        if input.records.is_empty() {
            input.records.push((
                RUN_EVENTS,
                encode_run_record(1, 0, &[rng.pick(event_seeds).clone()]),
            ));
        }
        let i = rng.below(input.records.len());
        match rng.below(14) {
            // Bytes of one payload.
            0..=4 => {
                let others: Vec<Vec<u8>> = input.records.iter().map(|(_, p)| p.clone()).collect();
                mutate(rng, &mut input.records[i].1, &others, 4096);
            }
            // A field of the run record, re-encoded.
            5..=8 => {
                let Some((mut key, mut first, mut events)) = parse_run_record(&input.records[i].1)
                else {
                    continue;
                };
                let mut raw_count = None;
                match rng.below(7) {
                    0 => key = *rng.pick(&INTERESTING),
                    1 => first = *rng.pick(&INTERESTING),
                    2 => first = first.wrapping_add(rng.below(3) as u64).wrapping_sub(1),
                    3 => raw_count = Some(rng.number()),
                    4 if !events.is_empty() => {
                        let e = rng.below(events.len());
                        mutate(rng, &mut events[e], event_seeds, 1024);
                    }
                    5 => {
                        let e = rng.below(events.len() + 1);
                        events.insert(e, rng.pick(event_seeds).clone());
                    }
                    _ if !events.is_empty() => {
                        let e = rng.below(events.len());
                        events.remove(e);
                    }
                    _ => {}
                }
                let mut payload = encode_run_record(key, first, &events);
                if let Some(count) = raw_count {
                    let mut at = 0;
                    get_varint(&payload, &mut at);
                    get_varint(&payload, &mut at);
                    let start = at;
                    get_varint(&payload, &mut at);
                    let v = if rng.chance(50) {
                        varint(count)
                    } else {
                        huge_varint(rng)
                    };
                    payload.splice(start..at, v);
                }
                input.records[i].1 = payload;
            }
            9 => input.records[i].0 = *rng.pick(&[0u8, 1, 2, 255]),
            10 => {
                input.records.remove(i);
            }
            11 => {
                let copy = input.records[i].clone();
                let at = rng.below(input.records.len() + 1);
                input.records.insert(at, copy);
            }
            12 => {
                let j = rng.below(input.records.len());
                input.records.swap(i, j);
            }
            _ if !seeds.is_empty() => {
                let other = rng.pick(seeds);
                if !other.records.is_empty() {
                    let record = rng.pick(&other.records).clone();
                    input
                        .records
                        .insert(rng.below(input.records.len() + 1), record);
                }
            }
            _ => input.flags ^= FLAG_PREALLOCATED,
        }
    }
    input.records.truncate(64);
}

// ---------------------------------------------------------------------------------------
// Target 2: arbitrary rows in the SQLite index.

const RUN_COLUMNS: [&str; 18] = [
    "run_key",
    "run_id",
    "workflow",
    "version",
    "status",
    "created_at",
    "started_at",
    "updated_at",
    "completed_at",
    "current_step",
    "step_count",
    "completed_step_count",
    "error_type",
    "error_message",
    "error_retryable",
    "wake_at",
    "event_count",
    "crc",
];

/// An open store holding one run of several events, and a second connection to its index
/// to overwrite rows with.
pub struct IndexFixture {
    _dir: ScratchDir,
    pub store: EmbeddedStore,
    conn: rusqlite::Connection,
    run_key: u64,
    run_id: String,
    /// (position, body, crc) of every event row as the store wrote it.
    rows: Vec<(i64, Vec<u8>, Option<i64>)>,
    /// The run's row, every column of `RUN_COLUMNS` that exists.
    run_row: Vec<(String, Value)>,
    events_have_crc: bool,
}

fn columns(conn: &rusqlite::Connection, table: &str) -> Vec<String> {
    let mut stmt = conn
        .prepare(&format!("PRAGMA table_info({table})"))
        .unwrap();
    let names = stmt.query_map([], |r| r.get::<_, String>(1)).unwrap();
    names.map(|n| n.unwrap()).collect()
}

/// CRC32C of an event row as the index computes it (when its table has a crc column).
pub fn event_row_crc(run_key: u64, position: u32, body: &[u8]) -> u32 {
    let crc = crc32c(&run_key.to_le_bytes());
    let crc = crc32c_append(crc, &position.to_le_bytes());
    crc32c_append(crc, body)
}

impl IndexFixture {
    #[allow(clippy::new_without_default)]
    pub fn new() -> IndexFixture {
        let dir = ScratchDir::new("index");
        let fs = Arc::new(SimFs::new());
        fs.set_tracing(false);
        let store = EmbeddedStore::open(&dir.path, store_options(fs)).expect("open a store");
        let run_id = "fuzz-index-run".to_string();
        let (outcome, receipt) = store.start_run(&started(&run_id), None).expect("start");
        store.wait_durable(receipt).expect("durable");
        let run_key = outcome.run_key();
        let events = vec![
            Event::StepStarted {
                seq: 0,
                kind: StepKind::Task,
                name: "a".into(),
                attempt: 1,
                at_ms: 2,
            },
            Event::StepFailed {
                seq: 0,
                attempt: 1,
                error: ErrorInfo::new("E", "m", true),
                retry_at_ms: Some(3),
                at_ms: 2,
            },
            Event::StepStarted {
                seq: 0,
                kind: StepKind::Task,
                name: "a".into(),
                attempt: 2,
                at_ms: 3,
            },
            Event::StepCompleted {
                seq: 0,
                attempt: 2,
                output: b"out".to_vec(),
                at_ms: 4,
            },
            Event::StepStarted {
                seq: 1,
                kind: StepKind::Sleep,
                name: "nap".into(),
                attempt: 1,
                at_ms: 5,
            },
            Event::TimerSet {
                seq: 1,
                fire_at_ms: 60,
                at_ms: 5,
            },
        ];
        let receipt = store.append(run_key, 1, &events, None).expect("append");
        store.wait_durable(receipt).expect("durable");
        assert_eq!(store.events(run_key).expect("read back").len(), 7);
        let conn =
            rusqlite::Connection::open(dir.path.join("index.sqlite3")).expect("open the index");
        conn.busy_timeout(Duration::from_secs(30)).unwrap();
        conn.pragma_update(None, "synchronous", "OFF").unwrap();
        let events_have_crc = columns(&conn, "events").iter().any(|c| c == "crc");
        let run_columns = columns(&conn, "runs");
        let rows = {
            let sql = if events_have_crc {
                "SELECT position, body, crc FROM events WHERE run_key = ?1 ORDER BY position"
            } else {
                "SELECT position, body, NULL FROM events WHERE run_key = ?1 ORDER BY position"
            };
            let mut stmt = conn.prepare(sql).unwrap();
            let rows = stmt
                .query_map([run_key as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap();
            rows.map(|r| r.unwrap()).collect::<Vec<_>>()
        };
        let run_row = RUN_COLUMNS
            .iter()
            .filter(|c| run_columns.iter().any(|have| have == *c))
            .map(|c| {
                let value: Value = conn
                    .query_row(
                        &format!("SELECT {c} FROM runs WHERE run_key = ?1"),
                        [run_key as i64],
                        |r| r.get(0),
                    )
                    .unwrap();
                (c.to_string(), value)
            })
            .collect();
        IndexFixture {
            _dir: dir,
            store,
            conn,
            run_key,
            run_id,
            rows,
            run_row,
            events_have_crc,
        }
    }

    fn put_event(&self, position: i64, body: Value, crc: Option<i64>) -> rusqlite::Result<()> {
        if self.events_have_crc {
            self.conn.execute(
                "INSERT OR REPLACE INTO events(run_key, position, body, crc) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![self.run_key as i64, position, body, crc.unwrap_or(0)],
            )?;
        } else {
            self.conn.execute(
                "INSERT OR REPLACE INTO events(run_key, position, body) VALUES (?1, ?2, ?3)",
                rusqlite::params![self.run_key as i64, position, body],
            )?;
        }
        Ok(())
    }

    fn set_run_column(&self, column: &str, value: &Value) -> rusqlite::Result<()> {
        // run_key is the row's identity: change it by copying the other columns is not
        // needed; overwrite in place (a row under another key is a missing run).
        self.conn.execute(
            &format!("UPDATE runs SET {column} = ?1 WHERE run_key = ?2"),
            rusqlite::params![value, self.run_key as i64],
        )?;
        Ok(())
    }

    /// Overwrites rows as `data` says, reads through the store, restores the rows.
    pub fn run(&self, data: &[u8]) -> Result<(), String> {
        let (&mode, rest) = data.split_first().unwrap_or((&0, &[]));
        let (run_change, body) = if mode & 0x10 != 0 && rest.len() >= 2 {
            (Some((rest[0], rest[1])), &rest[2..])
        } else {
            (None, rest)
        };
        let position = (mode & 7) as i64 % (self.rows.len() as i64 + 1);
        let body_value = if mode & 0x20 != 0 {
            Value::Text(String::from_utf8_lossy(body).into_owned())
        } else {
            Value::Blob(body.to_vec())
        };
        let crc = event_row_crc(self.run_key, position as u32, body) as i64;
        let crc = if mode & 0x08 != 0 { crc ^ 1 } else { crc };
        let sql_err = |e: rusqlite::Error| format!("the fixture's own SQL failed: {e}");
        if mode & 0x40 != 0 {
            self.conn
                .execute(
                    "DELETE FROM events WHERE run_key = ?1 AND position = ?2",
                    rusqlite::params![self.run_key as i64, position],
                )
                .map_err(sql_err)?;
        } else {
            self.put_event(position, body_value, Some(crc))
                .map_err(sql_err)?;
        }
        let mut changed_column = None;
        if let Some((column, kind)) = run_change {
            let (name, _) = &self.run_row[column as usize % self.run_row.len()];
            let mut eight = [0u8; 8];
            let n = body.len().min(8);
            eight[..n].copy_from_slice(&body[..n]);
            let value = match kind % 5 {
                0 => Value::Null,
                1 => Value::Integer(i64::from_le_bytes(eight)),
                2 => Value::Text(String::from_utf8_lossy(body).into_owned()),
                3 => Value::Blob(body.to_vec()),
                _ => Value::Real(f64::from_le_bytes(eight)),
            };
            // NOT NULL and UNIQUE constraints may refuse it: then the row stays as it was.
            if name != "run_key" && self.set_run_column(name, &value).is_ok() {
                changed_column = Some(name.clone());
            }
        }

        // Every read returns, with a value or a typed error.
        let _ = self.store.events(self.run_key).map(|e| e.len());
        let _ = self.store.summary(&self.run_id);
        let _ = self.store.summary_by_key(self.run_key);
        let _ = self.store.list(&RunFilter::default());
        let _ = self.store.claim_due("fuzz", 0, 10);
        if let Err(e) = self.store.events(self.run_key) {
            let _ = e.to_string();
        }

        // Restore.
        if let Some(name) = changed_column {
            let (_, value) = self.run_row.iter().find(|(c, _)| *c == name).unwrap();
            self.set_run_column(&name, value).map_err(sql_err)?;
        }
        match self.rows.get(position as usize) {
            Some((pos, body, crc)) => self
                .put_event(*pos, Value::Blob(body.clone()), *crc)
                .map_err(sql_err)?,
            None => {
                self.conn
                    .execute(
                        "DELETE FROM events WHERE run_key = ?1 AND position = ?2",
                        rusqlite::params![self.run_key as i64, position],
                    )
                    .map_err(sql_err)?;
            }
        }
        Ok(())
    }

    /// The run reads back whole (after every input's rows were restored).
    pub fn check_intact(&self) -> Result<(), String> {
        let events = self
            .store
            .events(self.run_key)
            .map_err(|e| format!("the restored run does not read: {e}"))?;
        if events.len() != self.rows.len() {
            return Err(format!(
                "{} events after restoring {}",
                events.len(),
                self.rows.len()
            ));
        }
        self.store
            .summary(&self.run_id)
            .map_err(|e| e.to_string())?
            .ok_or("summary lost")?;
        Ok(())
    }

    /// Seeds for the body: every event kind's encoding, each at several positions and modes.
    pub fn seeds(&self) -> Vec<Vec<u8>> {
        let mut seeds = Vec::new();
        for (i, event) in sample_events().iter().enumerate() {
            let mode = (i % 8) as u8;
            seeds.push([vec![mode], encode(event)].concat());
        }
        for (pos, body, _) in &self.rows {
            seeds.push([vec![*pos as u8], body.clone()].concat());
            seeds.push([vec![*pos as u8 | 0x10, 4, 2], body.clone()].concat());
            seeds.push([vec![*pos as u8 | 0x10, 10, 1], body.clone()].concat());
        }
        seeds
    }
}

impl Drop for IndexFixture {
    fn drop(&mut self) {
        let _ = self.store.close();
    }
}
