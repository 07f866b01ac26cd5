//! State shared by the `Wal` handle, the appenders and the writer thread:
//! the pending records, the durability watermark and its waits, fail-stop.
//!
//! Invariants:
//! - The first write or sync error poisons the log: pending work is failed, the sink hears
//!   `failed` once with every unacknowledged token, and `durable_lsn` never moves again.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::error::WalError;
use crate::fs::Fs;
use crate::options::WalOptions;
use crate::recovery::SegmentMeta;
use crate::segment::Preparer;
use crate::sink::DurableSink;
use crate::Lsn;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RunState {
    Open,
    Closing,
    Failed(String),
}

/// Pending records of one segment, waiting for the writer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Chunk {
    pub(super) segment_no: u64,
    pub(super) segment_offset: u64,
    pub(super) buf_start: usize,
    pub(super) buf_end: usize,
    pub(super) first_lsn: Lsn,
    pub(super) last_lsn: Lsn,
    pub(super) tokens_start: usize,
    pub(super) tokens_end: usize,
}

pub(super) struct Pending {
    pub(super) buf: Vec<u8>,
    pub(super) chunks: Vec<Chunk>,
    pub(super) tokens: Vec<u64>,
    pub(super) next_lsn: Lsn,
    pub(super) segment_no: u64,
    pub(super) segment_epoch: u32,
    pub(super) segment_offset: u64,
    pub(super) segment_capacity: u64,
    /// Epoch of segment `segment_no + 1`, chosen when it was requested from the preparer.
    pub(super) next_segment_epoch: u32,
    pub(super) state: RunState,
    pub(super) writer_idle: bool,
}

#[derive(Default)]
pub(super) struct Status {
    pub(super) failed: Option<String>,
    pub(super) writer_exited: bool,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) records: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) batches: AtomicU64,
    pub(super) max_batch_records: AtomicU64,
    pub(super) segments_created: Arc<AtomicU64>,
    pub(super) segments_removed: AtomicU64,
}

pub(super) struct Shared {
    pub(super) fs: Arc<dyn Fs>,
    pub(super) dir: PathBuf,
    pub(super) options: WalOptions,
    pub(super) sink: Arc<dyn DurableSink>,
    pub(super) pending: Mutex<Pending>,
    pub(super) work_cv: Condvar,
    /// Set by appenders, cleared by the writer when it takes the pending records
    /// (lets the writer spin without taking the lock).
    pub(super) has_work: AtomicBool,
    /// The last LSN the writer has taken into the batch it is writing (see `sync_round`).
    pub(super) taken_lsn: AtomicU64,
    pub(super) durable_lsn: AtomicU64,
    pub(super) failed: AtomicBool,
    pub(super) status: Mutex<Status>,
    pub(super) status_cv: Condvar,
    pub(super) preparer: Arc<Preparer>,
    pub(super) segments: Mutex<Vec<SegmentMeta>>,
    pub(super) counters: Counters,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state behind these mutexes stays consistent at every unlock, and a panic while one
    // is held is a bug this crate does not have; never turn it into a second panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub(super) fn wait_durable(&self, lsn: Lsn) -> Result<(), WalError> {
        if self.durable_lsn.load(Ordering::Acquire) >= lsn {
            return Ok(());
        }
        let next_lsn = lock(&self.pending).next_lsn;
        if lsn >= next_lsn {
            return Err(WalError::NotAppended { lsn, next_lsn });
        }
        let mut status = lock(&self.status);
        loop {
            // Records synced before a failure stay durable; anything later never will be.
            if self.durable_lsn.load(Ordering::Acquire) >= lsn {
                return Ok(());
            }
            if let Some(cause) = &status.failed {
                return Err(WalError::Poisoned {
                    cause: cause.clone(),
                });
            }
            if status.writer_exited {
                return Err(WalError::Closed);
            }
            status = self
                .status_cv
                .wait(status)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    pub(super) fn publish_durable(&self, lsn: Lsn) {
        self.durable_lsn.store(lsn, Ordering::Release);
        // Taking the lock orders the store before any waiter's check-then-wait.
        drop(lock(&self.status));
        self.status_cv.notify_all();
    }

    /// Fail-stop: poison the log, fail every waiter, tell the sink which tokens will never
    /// be acknowledged. `unacknowledged` are the tokens the writer had taken but not synced.
    pub(super) fn fail(&self, error: &WalError, mut unacknowledged: Vec<u64>) {
        let cause = error.to_string();
        {
            let mut pending = lock(&self.pending);
            if matches!(pending.state, RunState::Failed(_)) {
                return;
            }
            pending.state = RunState::Failed(cause.clone());
            unacknowledged.append(&mut pending.tokens);
            pending.chunks.clear();
            pending.buf.clear();
        }
        self.failed.store(true, Ordering::Release);
        // The sink first, so that whoever a failed ticket wakes finds the sink told.
        self.sink.failed(&unacknowledged, error);
        {
            let mut status = lock(&self.status);
            status.failed = Some(cause);
        }
        self.status_cv.notify_all();
    }
}
