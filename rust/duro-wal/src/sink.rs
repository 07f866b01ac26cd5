//! Where the writer reports what became durable (or that nothing more ever will).
//!
//! Threading rule: both methods run on the writer thread. While one runs, nothing else is
//! written or synced, so they must return quickly: hand the batch to another thread.
//! Calling back into the same `Wal` from them is allowed for `append`, `durable_lsn`,
//! `next_lsn` and `stats`, but never a blocking wait (`wait_durable`, `Ticket::wait`,
//! `close`): the thread that would wake it is the one blocked.

use std::sync::Arc;

use crate::error::WalError;
use crate::format::{decode_record_header, RECORD_HEADER_SIZE, RECORD_TRAILER_SIZE};
use crate::Lsn;

/// Receives durability notifications from the writer thread.
pub trait DurableSink: Send + Sync {
    /// Called on the writer thread after the fdatasync that covers `batch` returned OK, in
    /// LSN order, once per batch. Must be quick (hand off work).
    fn durable(&self, batch: Arc<DurableBatch>);
    /// Called once when the log fails (write/fsync error); `tokens` are every token that will
    /// now never be acknowledged.
    fn failed(&self, tokens: &[u64], error: &WalError);
}

/// A sink that ignores everything (tests and benchmarks).
#[derive(Debug, Clone, Copy, Default)]
pub struct NullSink;

impl DurableSink for NullSink {
    fn durable(&self, _batch: Arc<DurableBatch>) {}
    fn failed(&self, _tokens: &[u64], _error: &WalError) {}
}

/// The records one fdatasync made durable, with the tokens their appenders gave: a copy of
/// exactly the bytes written, in the log's record format.
#[derive(Debug)]
pub struct DurableBatch {
    pub(crate) data: Vec<u8>,
    pub(crate) first_lsn: Lsn,
    pub(crate) last_lsn: Lsn,
    pub(crate) tokens: Vec<u64>,
    pub(crate) segment_no: u64,
}

impl DurableBatch {
    pub fn first_lsn(&self) -> Lsn {
        self.first_lsn
    }

    pub fn last_lsn(&self) -> Lsn {
        self.last_lsn
    }

    /// Number of records in the batch.
    pub fn len(&self) -> usize {
        (self.last_lsn + 1 - self.first_lsn) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tokens of the appends whose last record is in this batch, in append order.
    pub fn tokens(&self) -> &[u64] {
        &self.tokens
    }

    /// The segment the batch was written to.
    pub fn segment_no(&self) -> u64 {
        self.segment_no
    }

    /// The records, in LSN order.
    pub fn records(&self) -> RecordIter<'_> {
        RecordIter { bytes: &self.data }
    }
}

/// One record of a [`DurableBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub lsn: Lsn,
    pub record_type: u8,
    pub payload: &'a [u8],
}

/// Iterator over the records of a [`DurableBatch`].
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    bytes: &'a [u8],
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = RecordView<'a>;

    fn next(&mut self) -> Option<RecordView<'a>> {
        // The bytes were encoded by this process; a failed decode can only mean the end.
        let header = decode_record_header(self.bytes)?;
        let payload_end = RECORD_HEADER_SIZE + header.payload_len as usize;
        let payload = self.bytes.get(RECORD_HEADER_SIZE..payload_end)?;
        self.bytes = self
            .bytes
            .get(payload_end + RECORD_TRAILER_SIZE..)
            .unwrap_or(&[]);
        Some(RecordView {
            lsn: header.lsn,
            record_type: header.record_type,
            payload,
        })
    }
}
