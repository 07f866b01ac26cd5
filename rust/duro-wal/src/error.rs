//! The one error type of the crate. Every message names the cause and the next step.

use std::io;
use std::path::PathBuf;

use crate::Lsn;

/// Everything that can go wrong in the log. Nothing the disk or a caller can cause panics;
/// it ends up here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    #[error("write-ahead log I/O error: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "the write-ahead log is corrupt at {file} offset {offset}{lsn_text}: {detail}; \
         refusing to open it. Data that was acknowledged as durable may be damaged, so nothing \
         is discarded automatically: salvaging the valid prefix (truncating the log at this \
         offset) needs an explicit decision by an operator. Keep a copy of the directory first",
        lsn_text = lsn.map(|lsn| format!(" (expected LSN {lsn})")).unwrap_or_default()
    )]
    Corrupt {
        file: PathBuf,
        offset: u64,
        lsn: Option<Lsn>,
        detail: String,
    },

    #[error(
        "{file} was written in log format version {found}, but this build reads versions up to \
         {supported}; open it with a newer duro (the log was not modified)"
    )]
    NewerFormat {
        file: PathBuf,
        found: u32,
        supported: u32,
    },

    #[error("record type {record_type} is reserved; record types are 1..=255")]
    UnknownRecordType { record_type: u8 },

    #[error(
        "record payload of {size} bytes exceeds the limit of {max} bytes (WalOptions::max_record_size); \
         split it or raise the limit"
    )]
    RecordTooLarge { size: u64, max: u32 },

    #[error(
        "the log failed to sync earlier ({cause}); reopen to recover; nothing after that point \
         was acknowledged"
    )]
    Poisoned { cause: String },

    #[error("append needs at least one record")]
    EmptyAppend,

    #[error(
        "LSN {lsn} has not been appended yet (the next LSN is {next_lsn}); wait only for LSNs \
         that append returned"
    )]
    NotAppended { lsn: Lsn, next_lsn: Lsn },

    #[error("the write-ahead log is closed")]
    Closed,

    #[error("invalid WalOptions::{field}: {reason}")]
    InvalidOptions { field: &'static str, reason: String },
}

impl WalError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> WalError {
        WalError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The raw OS error number behind an `Io` error, if any (EIO, ENOSPC, ...).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            WalError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}
