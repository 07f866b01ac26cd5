//! duro-wal: a generic, segmented, append-only write-ahead log.
//!
//! Records are `(record_type: u8, payload: bytes)`; the log knows nothing about what they
//! mean. Appends from any thread are encoded into one pending buffer (so LSNs are
//! contiguous); one writer thread writes whatever is pending, fdatasyncs it (group commit),
//! and only then reports it durable: through [`Ticket::wait`], [`Wal::wait_durable`] and the
//! [`DurableSink`].
//!
//! Invariants:
//! - Nothing is acknowledged before the fdatasync that covers it returned OK.
//! - After a failed write or fsync nothing is ever acknowledged again (fail-stop); the next
//!   open recovers from what reached the disk.
//! - Recovery returns a contiguous prefix of what was appended, containing everything that
//!   was acknowledged, byte-identical; it refuses to open (`Corrupt`) rather than discard
//!   data that had been synced.
//!
//! The on-disk format is documented in `format.rs` next to the encoders.
//!
//! # Using it from a store
//!
//! - `DurableSink::durable` and `failed` run on the writer thread; nothing is written while
//!   they run. Hand the batch off (it is an `Arc`, keep it as long as you like) and return.
//!   Never block on the log from them (`wait_durable`, `Ticket::wait`, `close`).
//! - Waiters are woken before the sink is called for the same batch.
//! - A group of records gets contiguous LSNs and is written in one segment when it fits, but
//!   it is not crash-atomic: a torn tail can keep a prefix of an unacknowledged group. Put
//!   what must be all-or-nothing in one record, or ignore a trailing partial group.
//! - `Recovery::records` holds every record still in the log, including records released
//!   earlier whose segment was still needed: skip LSNs you have already stored.
//! - Call `release_through` only after your own state covering those LSNs is durable. The
//!   segment holding the last durable record is always kept, so LSNs continue after a crash
//!   even when everything was released.
//! - After `WalError::Poisoned`, drop the `Wal` and open it again: recovery returns what
//!   reached the disk, and any record not acknowledged may or may not be in it.
//! - Damage to the last sync group of the log is indistinguishable from a torn write and is
//!   truncated (reported in `Recovery::truncated`); damage anywhere before it is `Corrupt`.
//! - One process per directory: the log takes no lock on it.

mod error;
mod format;
pub mod fs;
mod image;
mod options;
mod recovery;
mod rng;
mod segment;
mod sink;
mod wal;
mod zeros;

pub use error::WalError;
pub use format::{segment_file_name, FORMAT_VERSION, RECORD_OVERHEAD, SEGMENT_HEADER_SIZE};
pub use options::{SyncMode, WalOptions, MAX_SEGMENT_SIZE};
pub use recovery::{RecoveredRecord, Recovery, TornTail};
pub use sink::{DurableBatch, DurableSink, NullSink, RecordIter, RecordView};
pub use wal::{Ticket, Wal, WalStats};

/// Log sequence number: contiguous; the first record of a fresh log is 1.
pub type Lsn = u64;

/// One record to append. `record_type` 0 is reserved and rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub record_type: u8,
    pub payload: &'a [u8],
}

impl<'a> Record<'a> {
    pub fn new(record_type: u8, payload: &'a [u8]) -> Record<'a> {
        Record {
            record_type,
            payload,
        }
    }
}
