//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use duro_wal::fs::{Fs, SimFs};
use duro_wal::{
    DurableBatch, DurableSink, Lsn, NullSink, Record, Recovery, SyncMode, Wal, WalError,
    WalOptions, RECORD_OVERHEAD, SEGMENT_HEADER_SIZE,
};

pub fn dir() -> PathBuf {
    PathBuf::from("/log")
}

/// Small segments so tests rotate.
pub fn small_options() -> WalOptions {
    WalOptions {
        segment_size: 64 << 10,
        max_record_size: 16 << 10,
        preallocate: true,
        sync: SyncMode::Data,
    }
}

pub fn open_sim(fs: &SimFs, options: WalOptions) -> Result<(Wal, Recovery), WalError> {
    Wal::open(Arc::new(fs.clone()), &dir(), options, Arc::new(NullSink))
}

pub fn open_with_sink(
    fs: &SimFs,
    options: WalOptions,
    sink: Arc<RecordingSink>,
) -> Result<(Wal, Recovery), WalError> {
    Wal::open(Arc::new(fs.clone()) as Arc<dyn Fs>, &dir(), options, sink)
}

/// A deterministic payload for record number `n` (varying length, unique content).
pub fn payload(n: u64, max_len: usize) -> Vec<u8> {
    let mut state = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xABCD;
    let len = (state % (max_len as u64 + 1)) as usize;
    let mut out = Vec::with_capacity(len + 8);
    out.extend_from_slice(&n.to_le_bytes());
    for _ in 0..len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.push(state as u8);
    }
    out
}

/// What the sink heard.
#[derive(Default, Debug)]
pub struct SinkLog {
    pub batches: Vec<(Lsn, Lsn, usize)>,
    pub records: Vec<(Lsn, u8, Vec<u8>)>,
    pub tokens: Vec<u64>,
    pub failed: Vec<(Vec<u64>, String, Option<i32>)>,
    pub durable_after_failure: usize,
}

#[derive(Default)]
pub struct RecordingSink {
    pub log: Mutex<SinkLog>,
    pub keep_records: bool,
}

impl RecordingSink {
    pub fn new(keep_records: bool) -> Arc<RecordingSink> {
        Arc::new(RecordingSink {
            log: Mutex::new(SinkLog::default()),
            keep_records,
        })
    }

    /// Durable waiters wake before the sink hears of the batch: wait for the sink too.
    pub fn wait_for(&self, lsn: Lsn) {
        for _ in 0..10_000 {
            if self
                .log
                .lock()
                .unwrap()
                .batches
                .last()
                .is_some_and(|b| b.1 >= lsn)
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        panic!("the sink never heard of LSN {lsn}");
    }

    pub fn tokens(&self) -> Vec<u64> {
        self.log.lock().unwrap().tokens.clone()
    }
}

impl DurableSink for RecordingSink {
    fn durable(&self, batch: Arc<DurableBatch>) {
        let mut log = self.log.lock().unwrap();
        if !log.failed.is_empty() {
            log.durable_after_failure += 1;
        }
        log.batches
            .push((batch.first_lsn(), batch.last_lsn(), batch.records().count()));
        log.tokens.extend_from_slice(batch.tokens());
        if self.keep_records {
            for r in batch.records() {
                log.records.push((r.lsn, r.record_type, r.payload.to_vec()));
            }
        }
    }

    fn failed(&self, tokens: &[u64], error: &WalError) {
        let mut log = self.log.lock().unwrap();
        log.failed
            .push((tokens.to_vec(), error.to_string(), error.raw_os_error()));
    }
}

pub fn segment_path(n: u64) -> PathBuf {
    dir().join(duro_wal::segment_file_name(n))
}

pub fn segment_files(fs: &SimFs) -> Vec<PathBuf> {
    fs.files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect()
}

pub fn copy(fs: &SimFs) -> SimFs {
    // A crash image of a fully synced file system is an exact copy.
    fs.crash_image(duro_wal::fs::Damage::LoseUnsynced, 0)
}

pub fn recovered_payloads(recovery: &Recovery) -> Vec<(Lsn, Vec<u8>)> {
    recovery
        .records
        .iter()
        .map(|r| (r.lsn, r.payload.clone()))
        .collect()
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

#[path = "../../../../fuzz/common/report.rs"]
mod report;
#[allow(unused_imports)]
pub use report::report_campaign;

/// Writes `sizes.len()` records, each in its own sync group (waited one by one); returns the
/// file system, the payloads and each record's offset in segment 1.
pub fn one_group_per_record(
    sizes: &[usize],
    options: &WalOptions,
) -> (SimFs, Vec<Vec<u8>>, Vec<u64>) {
    let fs = SimFs::new();
    let (wal, _) = open_sim(&fs, options.clone()).unwrap();
    let mut payloads = Vec::new();
    let mut offsets = Vec::new();
    let mut offset = SEGMENT_HEADER_SIZE as u64;
    for (i, &size) in sizes.iter().enumerate() {
        let p: Vec<u8> = (0..size)
            .map(|b| (b as u8).wrapping_mul(31).wrapping_add(i as u8 + 1))
            .collect();
        wal.append_ticket(&[Record::new(1, &p)])
            .unwrap()
            .wait()
            .unwrap();
        offsets.push(offset);
        offset += (p.len() + RECORD_OVERHEAD) as u64;
        payloads.push(p);
    }
    wal.close().unwrap();
    (fs, payloads, offsets)
}
