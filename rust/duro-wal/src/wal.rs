//! The log: appends, the group-commit writer thread, durability waits, release.
//!
//! Invariants:
//! - LSNs and the placement of every record (segment, offset) are decided under the pending
//!   mutex, in append order, so LSNs are contiguous and a group is never interleaved with
//!   another. A group goes into one segment whenever it fits in an empty one; a record is
//!   never split across segments.
//! - The writer writes one chunk (the pending records of one segment) at a time, fdatasyncs
//!   it, and only then publishes `durable_lsn`, wakes waiters and calls the sink. So a
//!   segment is fully synced before its successor is written, and at most one sync group
//!   (the one being written) can be torn by a crash.
//! - The first write or sync error poisons the log: pending work is failed, the sink hears
//!   `failed` once with every unacknowledged token, and `durable_lsn` never moves again.
//! - A segment is deleted by `release_through` only when every record in it is released and
//!   a later segment holds a synced record, so after any crash the log still knows where its
//!   LSNs continue.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};

use crate::error::WalError;
use crate::format::{encode_record, record_size, set_sync_start, SEGMENT_HEADER_SIZE};
use crate::fs::Fs;
use crate::options::{SyncMode, WalOptions};
use crate::recovery::{recover, Recovery, SegmentMeta};
use crate::segment::{create_segment, new_epoch, segment_path, OpenSegment, Preparer};
use crate::sink::{DurableBatch, DurableSink};
use crate::{Lsn, Record};

/// Counters of a log since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Records written and synced.
    pub records: u64,
    /// Bytes of records written (frames included).
    pub bytes: u64,
    /// Batches written; with `SyncMode::Data` each is one fdatasync.
    pub batches: u64,
    /// The most records one batch held.
    pub max_batch_records: u64,
    pub segments_created: u64,
    pub segments_removed: u64,
    pub durable_lsn: Lsn,
    pub next_lsn: Lsn,
}

impl WalStats {
    /// Average records per batch (per sync).
    pub fn average_batch_records(&self) -> f64 {
        if self.batches == 0 {
            0.0
        } else {
            self.records as f64 / self.batches as f64
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RunState {
    Open,
    Closing,
    Failed(String),
}

/// Pending records of one segment, waiting for the writer.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    segment_no: u64,
    segment_offset: u64,
    buf_start: usize,
    buf_end: usize,
    first_lsn: Lsn,
    last_lsn: Lsn,
    tokens_start: usize,
    tokens_end: usize,
}

struct Pending {
    buf: Vec<u8>,
    chunks: Vec<Chunk>,
    tokens: Vec<u64>,
    next_lsn: Lsn,
    segment_no: u64,
    segment_epoch: u32,
    segment_offset: u64,
    segment_capacity: u64,
    /// Epoch of segment `segment_no + 1`, chosen when it was requested from the preparer.
    next_segment_epoch: u32,
    state: RunState,
    writer_idle: bool,
}

#[derive(Default)]
struct Status {
    failed: Option<String>,
    writer_exited: bool,
}

#[derive(Default)]
struct Counters {
    records: AtomicU64,
    bytes: AtomicU64,
    batches: AtomicU64,
    max_batch_records: AtomicU64,
    segments_created: Arc<AtomicU64>,
    segments_removed: AtomicU64,
}

struct Shared {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    options: WalOptions,
    sink: Arc<dyn DurableSink>,
    pending: Mutex<Pending>,
    work_cv: Condvar,
    /// Set by appenders, cleared by the writer when it takes the pending records
    /// (lets the writer spin without taking the lock).
    has_work: AtomicBool,
    /// The last LSN the writer has taken into the batch it is writing (see `sync_round`).
    taken_lsn: AtomicU64,
    durable_lsn: AtomicU64,
    failed: AtomicBool,
    status: Mutex<Status>,
    status_cv: Condvar,
    preparer: Arc<Preparer>,
    segments: Mutex<Vec<SegmentMeta>>,
    counters: Counters,
}

/// A durable, segmented write-ahead log. `Send + Sync`; share it with `Arc`.
pub struct Wal {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<Result<(), WalError>>>,
    preparer_thread: Option<JoinHandle<()>>,
}

/// Waits for the records of one `append_ticket` to become durable.
#[must_use = "a ticket does nothing unless waited on"]
pub struct Ticket {
    shared: Arc<Shared>,
    lsn: Lsn,
}

impl Ticket {
    /// LSN of the last record of the append.
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// Blocks until the records are durable (returns the last LSN) or the log failed.
    pub fn wait(&self) -> Result<Lsn, WalError> {
        self.shared.wait_durable(self.lsn)?;
        Ok(self.lsn)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state behind these mutexes stays consistent at every unlock, and a panic while one
    // is held is a bug this crate does not have; never turn it into a second panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Wal {
    /// Opens (creating if missing) the log in `dir`, recovers it, starts the writer thread.
    pub fn open(
        fs: Arc<dyn Fs>,
        dir: &Path,
        options: WalOptions,
        sink: Arc<dyn DurableSink>,
    ) -> Result<(Wal, Recovery), WalError> {
        options.validate()?;
        let recovered = recover(&*fs, dir, &options)?;
        let mut recovery = recovered.recovery;
        let preparer = Preparer::new();
        let created = Arc::new(AtomicU64::new(0));
        let (current, write_offset, capacity, segments) = match recovered.current {
            Some(current) => (
                current.segment,
                current.write_offset,
                current.capacity,
                recovered.segments,
            ),
            None => {
                let segment = create_segment(&*fs, dir, 1, new_epoch(1), &options)?;
                created.fetch_add(1, Ordering::Relaxed);
                recovery.segments = 1;
                let meta = vec![SegmentMeta {
                    segment_no: 1,
                    lsns: None,
                }];
                (
                    segment,
                    SEGMENT_HEADER_SIZE as u64,
                    options.segment_size,
                    meta,
                )
            }
        };
        let next_segment_epoch = match recovered.spare {
            Some(spare) => {
                let epoch = spare.epoch;
                preparer.put_ready(spare);
                epoch
            }
            None => {
                let epoch = new_epoch(current.segment_no + 1);
                preparer.request(current.segment_no + 1, epoch);
                epoch
            }
        };
        let durable_lsn = recovery.next_lsn - 1;
        let shared = Arc::new(Shared {
            fs: Arc::clone(&fs),
            dir: dir.to_path_buf(),
            options: options.clone(),
            sink,
            pending: Mutex::new(Pending {
                buf: Vec::with_capacity(64 << 10),
                chunks: Vec::new(),
                tokens: Vec::new(),
                next_lsn: recovery.next_lsn,
                segment_no: current.segment_no,
                segment_epoch: current.epoch,
                segment_offset: write_offset,
                segment_capacity: capacity,
                next_segment_epoch,
                state: RunState::Open,
                writer_idle: false,
            }),
            work_cv: Condvar::new(),
            has_work: AtomicBool::new(false),
            taken_lsn: AtomicU64::new(durable_lsn),
            durable_lsn: AtomicU64::new(durable_lsn),
            failed: AtomicBool::new(false),
            status: Mutex::new(Status::default()),
            status_cv: Condvar::new(),
            preparer: Arc::clone(&preparer),
            segments: Mutex::new(segments),
            counters: Counters {
                segments_created: Arc::clone(&created),
                ..Counters::default()
            },
        });
        let preparer_thread = preparer
            .start(fs, dir.to_path_buf(), options, created)
            .map_err(|e| WalError::io("spawn segment preparer thread", dir, e))?;
        let writer_shared = Arc::clone(&shared);
        let writer = thread::Builder::new()
            .name("duro-wal-writer".into())
            .spawn(move || writer_main(writer_shared, current));
        let writer = match writer {
            Ok(handle) => handle,
            Err(e) => {
                preparer.stop();
                let _ = preparer_thread.join();
                return Err(WalError::io("spawn writer thread", dir, e));
            }
        };
        Ok((
            Wal {
                shared,
                writer: Some(writer),
                preparer_thread: Some(preparer_thread),
            },
            recovery,
        ))
    }

    /// Enqueues `records` as one group: contiguous LSNs, in one segment if they fit in one.
    /// Does not block on I/O. Returns the LSN of the last record. `token`, if given, is
    /// delivered to the sink once these records are durable.
    pub fn append(&self, records: &[Record<'_>], token: Option<u64>) -> Result<Lsn, WalError> {
        self.shared.append(records, token)
    }

    /// Like `append`, returning a ticket to wait on.
    pub fn append_ticket(&self, records: &[Record<'_>]) -> Result<Ticket, WalError> {
        let lsn = self.shared.append(records, None)?;
        Ok(Ticket {
            shared: Arc::clone(&self.shared),
            lsn,
        })
    }

    /// Blocks until every record up to `lsn` is durable, or the log failed.
    pub fn wait_durable(&self, lsn: Lsn) -> Result<(), WalError> {
        self.shared.wait_durable(lsn)
    }

    /// The highest LSN known durable (0 if none).
    pub fn durable_lsn(&self) -> Lsn {
        self.shared.durable_lsn.load(Ordering::Acquire)
    }

    /// The durable LSN to wait for so that `lsn` is durable, shared by every record of one
    /// batch: 0 if `lsn` is durable already; the batch's last LSN if the writer is writing
    /// the batch that holds it; else the first LSN after that batch (the next batch takes
    /// every record appended before it starts, `lsn` included). Waiters that wait for the
    /// same value can share one wake-up. A hint: the batch may be written in pieces (a new
    /// segment), so re-check `durable_lsn` after waiting.
    pub fn sync_round(&self, lsn: Lsn) -> Lsn {
        if self.shared.durable_lsn.load(Ordering::Acquire) >= lsn {
            return 0;
        }
        let taken = self.shared.taken_lsn.load(Ordering::Acquire);
        if lsn <= taken {
            taken
        } else {
            taken + 1
        }
    }

    /// The LSN the next appended record will get.
    pub fn next_lsn(&self) -> Lsn {
        lock(&self.shared.pending).next_lsn
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The caller has stored every record `<= lsn` elsewhere, durably: delete the segments
    /// whose records are all `<= lsn` (never the segment being written, nor the one holding
    /// the last durable record). Unlinks, then fsyncs the directory.
    pub fn release_through(&self, lsn: Lsn) -> Result<(), WalError> {
        self.shared.release_through(lsn)
    }

    pub fn stats(&self) -> WalStats {
        let c = &self.shared.counters;
        WalStats {
            records: c.records.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            max_batch_records: c.max_batch_records.load(Ordering::Relaxed),
            segments_created: c.segments_created.load(Ordering::Relaxed),
            segments_removed: c.segments_removed.load(Ordering::Relaxed),
            durable_lsn: self.durable_lsn(),
            next_lsn: self.next_lsn(),
        }
    }

    /// True once a write or sync failed; every later append fails with `Poisoned`.
    pub fn is_poisoned(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }

    /// Writes and syncs what is queued, stops the writer. Fails with `Poisoned` if the log
    /// failed earlier (or while flushing).
    pub fn close(mut self) -> Result<(), WalError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), WalError> {
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        {
            let mut pending = lock(&self.shared.pending);
            if pending.state == RunState::Open {
                pending.state = RunState::Closing;
            }
        }
        self.shared.work_cv.notify_all();
        let writer_result = writer.join();
        self.shared.preparer.stop();
        if let Some(preparer) = self.preparer_thread.take() {
            let _ = preparer.join();
        }
        if let Some(cause) = &lock(&self.shared.status).failed {
            return Err(WalError::Poisoned {
                cause: cause.clone(),
            });
        }
        match writer_result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(WalError::Poisoned {
                cause: e.to_string(),
            }),
            Err(_) => Err(WalError::Poisoned {
                cause: "the writer thread panicked".into(),
            }),
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.shared.dir)
            .field("durable_lsn", &self.durable_lsn())
            .finish()
    }
}

impl Pending {
    /// Moves the write position to the start of the next segment and asks the preparer for
    /// the one after it.
    fn rotate(&mut self, shared: &Shared) {
        self.segment_no += 1;
        self.segment_epoch = self.next_segment_epoch;
        self.segment_offset = SEGMENT_HEADER_SIZE as u64;
        self.segment_capacity = shared.options.segment_size;
        self.next_segment_epoch = new_epoch(self.segment_no + 1);
        shared
            .preparer
            .request(self.segment_no + 1, self.next_segment_epoch);
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
    fn append(&self, records: &[Record<'_>], token: Option<u64>) -> Result<Lsn, WalError> {
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

    fn wait_durable(&self, lsn: Lsn) -> Result<(), WalError> {
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

    fn publish_durable(&self, lsn: Lsn) {
        self.durable_lsn.store(lsn, Ordering::Release);
        // Taking the lock orders the store before any waiter's check-then-wait.
        drop(lock(&self.status));
        self.status_cv.notify_all();
    }

    /// Fail-stop: poison the log, fail every waiter, tell the sink which tokens will never
    /// be acknowledged. `unacknowledged` are the tokens the writer had taken but not synced.
    fn fail(&self, error: &WalError, mut unacknowledged: Vec<u64>) {
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

    fn release_through(&self, lsn: Lsn) -> Result<(), WalError> {
        let lsn = lsn.min(self.durable_lsn.load(Ordering::Acquire));
        let doomed: Vec<u64> = {
            let mut segments = lock(&self.segments);
            // The segment holding the last synced record must stay: it tells the next open
            // where LSNs continue even if everything after it is torn.
            let Some(anchor) = segments
                .iter()
                .rev()
                .find(|s| s.lsns.is_some())
                .map(|s| s.segment_no)
            else {
                return Ok(());
            };
            let count = segments
                .iter()
                .take_while(|s| {
                    s.segment_no < anchor && s.lsns.is_some_and(|(_, last)| last <= lsn)
                })
                .count();
            segments.drain(..count).map(|s| s.segment_no).collect()
        };
        if doomed.is_empty() {
            return Ok(());
        }
        // Oldest first, each unlink made durable before the next: a file system may persist
        // unlinks out of order, and a crash must leave a suffix of the log, never a hole.
        for &segment_no in &doomed {
            let path = segment_path(&self.dir, segment_no);
            self.fs
                .remove_file(&path)
                .map_err(|e| WalError::io("remove released segment", &path, e))?;
            self.fs
                .sync_dir(&self.dir)
                .map_err(|e| WalError::io("fsync log directory", &self.dir, e))?;
            self.counters
                .segments_removed
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn note_durable_in_segment(&self, segment_no: u64, first: Lsn, last: Lsn) {
        let mut segments = lock(&self.segments);
        match segments
            .iter_mut()
            .rev()
            .find(|s| s.segment_no == segment_no)
        {
            Some(meta) => {
                meta.lsns = Some((meta.lsns.map_or(first, |(f, _)| f), last));
            }
            None => segments.push(SegmentMeta {
                segment_no,
                lsns: Some((first, last)),
            }),
        }
    }
}

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

fn writer_main(shared: Arc<Shared>, mut current: OpenSegment) -> Result<(), WalError> {
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

        let single = chunks.len() == 1;
        let buf_capacity = buf.capacity();
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

            // The batch owns the written buffer when it is the only chunk (the usual case).
            let batch = if single {
                DurableBatch {
                    data: std::mem::take(&mut buf),
                    start: chunk.buf_start,
                    end: chunk.buf_end,
                    first_lsn: chunk.first_lsn,
                    last_lsn: chunk.last_lsn,
                    tokens: std::mem::take(&mut tokens),
                    segment_no: chunk.segment_no,
                }
            } else {
                DurableBatch {
                    data: buf[chunk.buf_start..chunk.buf_end].to_vec(),
                    start: 0,
                    end: chunk.buf_end - chunk.buf_start,
                    first_lsn: chunk.first_lsn,
                    last_lsn: chunk.last_lsn,
                    tokens: tokens[chunk.tokens_start..chunk.tokens_end].to_vec(),
                    segment_no: chunk.segment_no,
                }
            };
            let batch = Arc::new(batch);
            shared.sink.durable(Arc::clone(&batch));
            if single {
                // Reuse the buffers unless the sink kept the batch.
                if let Ok(batch) = Arc::try_unwrap(batch) {
                    buf = batch.data;
                    tokens = batch.tokens;
                }
            }
        }
        buf.clear();
        if buf.capacity() == 0 {
            buf.reserve(buf_capacity);
        }
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
