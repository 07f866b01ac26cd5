//! The append side: validating a group of records, giving them LSNs, placing them in
//! segments and encoding them into the pending buffer for the writer.
//!
//! Invariants:
//! - LSNs and the placement of every record (segment, offset) are decided under the pending
//!   mutex, in append order, so LSNs are contiguous and a group is never interleaved with
//!   another. A group goes into one segment whenever it fits in an empty one; a record is
//!   never split across segments.

use std::sync::atomic::Ordering;

use crate::error::WalError;
use crate::format::{encode_record, record_size, SEGMENT_HEADER_SIZE};
use crate::segment::new_epoch;
use crate::{Lsn, Record};

use super::shared::{lock, Chunk, Pending, RunState, Shared};

impl Pending {
    /// Moves the write position to the start of the next segment and asks the preparer for
    /// the one after it (made once the writer has synced in this one: `Preparer::defer`).
    fn rotate(&mut self, shared: &Shared) {
        self.segment_no += 1;
        self.segment_epoch = self.next_segment_epoch;
        self.segment_offset = SEGMENT_HEADER_SIZE as u64;
        self.segment_capacity = shared.options.segment_size;
        self.next_segment_epoch = new_epoch(self.segment_no + 1);
        shared
            .preparer
            .defer(self.segment_no + 1, self.next_segment_epoch);
    }

    /// The chunk records at the current position go into.
    fn chunk(&mut self) -> &mut Chunk {
        let needs_new = self
            .chunks
            .last()
            .map_or(true, |chunk| chunk.segment_no != self.segment_no);
        if needs_new {
            self.chunks.push(Chunk {
                segment_no: self.segment_no,
                segment_offset: self.segment_offset,
                buf_start: self.buf.len(),
                buf_end: self.buf.len(),
                first_lsn: self.next_lsn,
                last_lsn: self.next_lsn,
                tokens_start: self.tokens.len(),
                tokens_end: self.tokens.len(),
            });
        }
        let last = self.chunks.len() - 1;
        &mut self.chunks[last]
    }
}

impl Shared {
    pub(super) fn append(
        &self,
        records: &[Record<'_>],
        token: Option<u64>,
    ) -> Result<Lsn, WalError> {
        if records.is_empty() {
            return Err(WalError::EmptyAppend);
        }
        let max = self.options.max_record_size;
        let mut total: u64 = 0;
        for record in records {
            if record.record_type == 0 {
                return Err(WalError::UnknownRecordType { record_type: 0 });
            }
            if record.payload.len() as u64 > u64::from(max) {
                return Err(WalError::RecordTooLarge {
                    size: record.payload.len() as u64,
                    max,
                });
            }
            total += record_size(record.payload.len()) as u64;
        }

        let wake_writer;
        let last_lsn;
        {
            let mut pending = lock(&self.pending);
            match &pending.state {
                RunState::Open => {}
                RunState::Closing => return Err(WalError::Closed),
                RunState::Failed(cause) => {
                    return Err(WalError::Poisoned {
                        cause: cause.clone(),
                    })
                }
            }
            let empty_segment = self.options.segment_size - SEGMENT_HEADER_SIZE as u64;
            if total <= empty_segment && pending.segment_offset + total > pending.segment_capacity {
                pending.rotate(self);
            }
            pending.buf.reserve(total as usize);
            for record in records {
                let size = record_size(record.payload.len()) as u64;
                if pending.segment_offset + size > pending.segment_capacity {
                    pending.rotate(self);
                }
                let lsn = pending.next_lsn;
                let epoch = pending.segment_epoch;
                pending.chunk();
                encode_record(
                    &mut pending.buf,
                    record.record_type,
                    0,
                    lsn,
                    epoch,
                    record.payload,
                );
                pending.next_lsn += 1;
                pending.segment_offset += size;
                let buf_end = pending.buf.len();
                let chunk = pending.chunk();
                chunk.buf_end = buf_end;
                chunk.last_lsn = lsn;
            }
            last_lsn = pending.next_lsn - 1;
            if let Some(token) = token {
                pending.tokens.push(token);
                let tokens_end = pending.tokens.len();
                pending.chunk().tokens_end = tokens_end;
            }
            wake_writer = pending.writer_idle;
            pending.writer_idle = false;
            self.has_work.store(true, Ordering::Release);
        }
        if wake_writer {
            self.work_cv.notify_one();
        }
        Ok(last_lsn)
    }
}
