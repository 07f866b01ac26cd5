//! The group-commit writer thread: takes whatever is pending, writes it chunk by chunk,
//! syncs, and only then reports it durable (to waiters, then to the sink).
//!
//! Invariants:
//! - The writer writes one chunk (the pending records of one segment) at a time, fdatasyncs
//!   it, and only then publishes `durable_lsn`, wakes waiters and calls the sink. So a
//!   segment is fully synced before its successor is written, and at most one sync group
//!   (the one being written) can be torn by a crash.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;

use crate::error::WalError;
use crate::format::set_sync_start;
use crate::options::SyncMode;
use crate::recovery::SegmentMeta;
use crate::segment::OpenSegment;
use crate::sink::DurableBatch;

use super::shared::{lock, Chunk, RunState, Shared};

/// Marks the writer gone on every exit path, and fails the log if it exits by panicking.
struct WriterExit<'a> {
    shared: &'a Shared,
}

impl Drop for WriterExit<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            let error = WalError::Poisoned {
                cause: "the writer thread panicked".into(),
            };
            self.shared.fail(&error, Vec::new());
        }
        lock(&self.shared.status).writer_exited = true;
        self.shared.status_cv.notify_all();
    }
}

/// How long the writer spins for new records before it sleeps.
const WRITER_SPIN: std::time::Duration = std::time::Duration::from_micros(50);

pub(super) fn writer_main(shared: Arc<Shared>, mut current: OpenSegment) -> Result<(), WalError> {
    let _exit = WriterExit { shared: &shared };
    let mut spare_buf: Vec<u8> = Vec::with_capacity(64 << 10);
    let mut spare_chunks: Vec<Chunk> = Vec::new();
    let mut spare_tokens: Vec<u64> = Vec::new();
    loop {
        let mut buf = std::mem::take(&mut spare_buf);
        let mut chunks = std::mem::take(&mut spare_chunks);
        let mut tokens = std::mem::take(&mut spare_tokens);
        {
            let mut pending = lock(&shared.pending);
            loop {
                if matches!(pending.state, RunState::Failed(_)) {
                    return Ok(());
                }
                if !pending.chunks.is_empty() {
                    break;
                }
                if pending.state == RunState::Closing {
                    drop(pending);
                    return finish(&shared, &current);
                }
                // Spin a moment before sleeping: a sequential caller's next record usually
                // arrives within microseconds of its acknowledgement, and waking a sleeping
                // thread costs tens of microseconds on a VM. Appenders only notify an idle
                // writer, so spinning (not idle) needs no notification.
                drop(pending);
                let spin_until = std::time::Instant::now() + WRITER_SPIN;
                while !shared.has_work.load(Ordering::Acquire)
                    && std::time::Instant::now() < spin_until
                {
                    std::hint::spin_loop();
                }
                pending = lock(&shared.pending);
                if !pending.chunks.is_empty() || pending.state != RunState::Open {
                    continue;
                }
                pending.writer_idle = true;
                pending = shared
                    .work_cv
                    .wait(pending)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            pending.writer_idle = false;
            shared.has_work.store(false, Ordering::Release);
            shared
                .taken_lsn
                .store(pending.next_lsn - 1, Ordering::Release);
            std::mem::swap(&mut pending.buf, &mut buf);
            std::mem::swap(&mut pending.chunks, &mut chunks);
            std::mem::swap(&mut pending.tokens, &mut tokens);
        }

        for chunk in chunks.iter() {
            if let Err(error) = write_chunk(&shared, &mut current, &mut buf, chunk) {
                let unacknowledged = tokens[chunk.tokens_start..].to_vec();
                shared.fail(&error, unacknowledged);
                return Err(error);
            }
            // Counters and the segment table first, so a woken waiter sees them current.
            shared.note_durable_in_segment(chunk.segment_no, chunk.first_lsn, chunk.last_lsn);
            let records = chunk.last_lsn + 1 - chunk.first_lsn;
            let counters = &shared.counters;
            counters.records.fetch_add(records, Ordering::Relaxed);
            counters
                .bytes
                .fetch_add((chunk.buf_end - chunk.buf_start) as u64, Ordering::Relaxed);
            counters.batches.fetch_add(1, Ordering::Relaxed);
            counters
                .max_batch_records
                .fetch_max(records, Ordering::Relaxed);
            shared.publish_durable(chunk.last_lsn);
            // The next spare is made after this sync, not during it (`Preparer::defer`).
            shared.preparer.release_deferred();

            // The batch gets a copy of exactly its bytes, and the writer keeps its buffer:
            // the sink (the store's indexer) may hold batches for tens of milliseconds,
            // and a batch that owned the buffer would pin its whole capacity (64 KiB or
            // more for a few hundred bytes of records) until then.
            let batch = Arc::new(DurableBatch {
                data: buf[chunk.buf_start..chunk.buf_end].to_vec(),
                first_lsn: chunk.first_lsn,
                last_lsn: chunk.last_lsn,
                tokens: tokens[chunk.tokens_start..chunk.tokens_end].to_vec(),
                segment_no: chunk.segment_no,
            });
            shared.sink.durable(batch);
        }
        buf.clear();
        tokens.clear();
        chunks.clear();
        spare_buf = buf;
        spare_chunks = chunks;
        spare_tokens = tokens;
    }
}

/// Writes one chunk at its offset and syncs it; rotates to the chunk's segment first.
fn write_chunk(
    shared: &Shared,
    current: &mut OpenSegment,
    buf: &mut [u8],
    chunk: &Chunk,
) -> Result<(), WalError> {
    if chunk.segment_no != current.segment_no {
        // The previous segment was synced with its last chunk: it is complete.
        *current = shared.preparer.take(chunk.segment_no)?;
        lock(&shared.segments).push(SegmentMeta {
            segment_no: chunk.segment_no,
            lsns: None,
        });
    }
    let bytes = &mut buf[chunk.buf_start..chunk.buf_end];
    set_sync_start(bytes);
    current
        .file
        .write_all_at(bytes, chunk.segment_offset)
        .map_err(|e| WalError::io("write", &current.path, e))?;
    if shared.options.sync == SyncMode::Data {
        current
            .file
            .sync_data()
            .map_err(|e| WalError::io("fdatasync", &current.path, e))?;
    }
    Ok(())
}

/// Clean exit on close. With `SyncMode::None` this is the one sync the log ever does.
fn finish(shared: &Shared, current: &OpenSegment) -> Result<(), WalError> {
    if shared.options.sync == SyncMode::None {
        if let Err(e) = current.file.sync_data() {
            let error = WalError::io("fdatasync", &current.path, e);
            shared.fail(&error, Vec::new());
            return Err(error);
        }
    }
    Ok(())
}
