//! The log: appends, the group-commit writer thread, durability waits, release.
//!
//! This module holds the [`Wal`] handle and its public methods; the work behind them is
//! split by job, and each submodule states at its top the invariants it keeps:
//! - `append`: LSNs and the placement of records in segments, under the pending mutex.
//! - `writer`: the writer thread: write a chunk, sync it, only then publish it.
//! - `shared`: the state appenders and the writer share, durability waits, fail-stop.
//! - `release`: the table of segments and the deletion of released ones.

mod append;
mod release;
mod shared;
mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};

use crate::error::WalError;
use crate::format::SEGMENT_HEADER_SIZE;
use crate::fs::Fs;
use crate::options::WalOptions;
use crate::recovery::{recover, Recovery, SegmentMeta};
use crate::segment::{create_segment, new_epoch, Preparer};
use crate::sink::DurableSink;
use crate::{Lsn, Record};

use shared::{lock, Counters, Pending, RunState, Shared, Status};
use writer::writer_main;

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

impl Wal {
    /// Opens (creating if missing) the log in `dir`, recovers it, starts the writer thread.
    pub fn open(
        fs: Arc<dyn Fs>,
        dir: &Path,
        options: WalOptions,
        sink: Arc<dyn DurableSink>,
    ) -> Result<(Wal, Recovery), WalError> {
        Wal::open_from(fs, dir, options, sink, 1)
    }

    /// [`Wal::open`] for a caller that already stored the records before `keep_from`:
    /// recovery checks them as it checks every record (the log's validity and the
    /// repair of its tail do not change) but does not copy them into
    /// [`Recovery::records`], which saves copying and allocating what may be megabytes
    /// of records. [`Recovery::first_lsn`] still says where the log starts.
    pub fn open_from(
        fs: Arc<dyn Fs>,
        dir: &Path,
        options: WalOptions,
        sink: Arc<dyn DurableSink>,
        keep_from: Lsn,
    ) -> Result<(Wal, Recovery), WalError> {
        options.validate()?;
        let recovered = recover(&*fs, dir, &options, keep_from)?;
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
                // Made after the first sync (see `Preparer::defer`), not during it.
                preparer.defer(current.segment_no + 1, epoch);
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
