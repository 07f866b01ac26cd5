//! Store errors: each says what happened, where, and what to do next.

use std::path::PathBuf;

use duro_core::error::CoreError;
use duro_core::journal::RunKey;
use duro_wal::WalError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error("the run index at {path} failed during {op}: {source}")]
    Index {
        op: &'static str,
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "the run index at {path} is corrupt ({detail}); the write-ahead log is intact but older entries may have been \
         compacted into the index: restore the directory from a backup, or move the index away to rebuild it from the log"
    )]
    IndexCorrupt { path: PathBuf, detail: String },
    #[error(
        "the store at {path} is open in another process (pid {holder}); an embedded store serves one process at a \
         time: stop the other process, or use a PostgreSQL store for several workers"
    )]
    Locked { path: PathBuf, holder: String },
    #[error(
        "the log at {path} ends before LSN {log_next} but the run index already holds records up to LSN {applied}: \
         log segments were lost or replaced; refusing to open (new records would be skipped). Restore the directory \
         from a backup"
    )]
    LogBehindIndex {
        path: PathBuf,
        log_next: u64,
        applied: u64,
    },
    #[error(
        "the log in {path} starts at LSN {first_lsn}, but the run index holds records only up to LSN {applied}: \
         the records in between are in neither (log segments were deleted, or the index file was removed or \
         replaced); restore the store directory from a backup"
    )]
    LogGap {
        path: PathBuf,
        first_lsn: u64,
        applied: u64,
    },
    #[error("the store at {path} is already open in this process; close the other engine first, or share it")]
    LockedHere { path: PathBuf },
    #[error("cannot {op} {path}: {source}; check that the directory exists and this user may read and write it")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} at {path} was written by a newer duro (format {found}, this build reads up to {supported}); upgrade duro to open it")]
    NewerFormat {
        what: &'static str,
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("append to run #{run_key} expected position {expected} but the run is at {actual}; another writer appended first (the run is owned elsewhere)")]
    Conflict {
        run_key: RunKey,
        expected: u32,
        actual: u32,
    },
    #[error("run #{run_key} does not exist in this store")]
    UnknownRun { run_key: RunKey },
    #[error("run #{run_key} already ended ({status}); nothing can be appended to it")]
    RunEnded {
        run_key: RunKey,
        status: &'static str,
    },
    #[error(
        "the log record at LSN {lsn} is not a valid run record ({detail}); the log may be corrupt"
    )]
    BadRecord { lsn: u64, detail: String },
    #[error(
        "the log record at LSN {lsn} has record type {record_type}, which this build does not know (it reads types \
         {known:?}); the log was written by a newer duro (upgrade duro to open it) or is corrupt"
    )]
    UnknownRecordType {
        lsn: u64,
        record_type: u8,
        known: &'static [u8],
    },
    #[error(
        "an append of {size} bytes (its events, encoded) is over this store's limit of {max} bytes per append; \
         store large data elsewhere and pass a reference, or raise the limit"
    )]
    AppendTooLarge { size: u64, max: u64 },
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("the store stopped accepting writes: {cause}; reopen it to recover (nothing after that point was acknowledged)")]
    Failed { cause: String },
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    /// A copy for handing the same failure to many waiters (io errors are not `Clone`).
    pub fn shared(&self) -> StoreError {
        StoreError::Failed {
            cause: self.to_string(),
        }
    }
}
