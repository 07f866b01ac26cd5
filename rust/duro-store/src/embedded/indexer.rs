//! The indexer thread: applies durable log batches to the SQLite index,
//! publishes how far it got, and releases log segments the index covers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use duro_wal::{DurableBatch, DurableSink, Wal, WalError};

use super::faults::IndexCommitSite;
use super::index::Index;
use super::{lock, Registry};
use crate::api::AckSink;
use crate::error::StoreError;

/// How long the indexer lets batches gather before applying them (unless a
/// reader is waiting, or `GATHER_RECORDS` wait): one SQLite transaction per
/// many log batches keeps the indexer off the CPU that runs the workflows.
/// Each transaction rewrites the summary row of every run it touches, so its
/// cost grows with the number of transactions, not only with the records: with
/// 1000 runs of 10 steps in flight on 2 vCPUs, 5 ms cost the indexer 44–80 ms
/// of CPU per 10,000 steps and 50 ms 16–21 ms. Readers never wait for the
/// window (they flush); what it holds back is at most `GATHER_RECORDS`
/// records of index work and the release of log segments it covers.
const GATHER: Duration = Duration::from_millis(50);
/// The window also ends once no batch came for this long: when the work
/// pauses (the last run blocks, or the process is about to be killed), the
/// index catches up at once instead of leaving a reopen up to `GATHER` of
/// log records to apply.
const QUIET: Duration = Duration::from_millis(5);
/// Apply at once when this many records are queued.
const GATHER_RECORDS: usize = 8_192;

#[derive(Default)]
struct InboxState {
    batches: Vec<Arc<DurableBatch>>,
    records: usize,
    flush: bool,
    stop: bool,
    /// The indexer sleeps with nothing to do: the next batch must wake it.
    idle: bool,
    /// When the last batch came (see `QUIET`).
    last_push: Option<Instant>,
}

/// Durable batches waiting for the indexer. The writer thread only wakes the
/// indexer when it sleeps idle (or enough records wait): waking it for every
/// fsync would cost a context switch per step on a small machine.
#[derive(Default)]
pub(crate) struct Inbox {
    state: Mutex<InboxState>,
    cv: Condvar,
}

impl Inbox {
    fn push(&self, batch: Arc<DurableBatch>) {
        let mut state = lock(&self.state);
        state.records += batch.len();
        state.batches.push(batch);
        state.last_push = Some(Instant::now());
        let wake = state.idle || state.records >= GATHER_RECORDS;
        drop(state);
        if wake {
            self.cv.notify_one();
        }
    }

    /// A reader waits for the index: apply what is queued now.
    pub(crate) fn flush(&self) {
        lock(&self.state).flush = true;
        self.cv.notify_one();
    }

    pub(crate) fn stop(&self) {
        lock(&self.state).stop = true;
        self.cv.notify_one();
    }

    /// Waits up to `idle_for` for a batch, lets batches gather for `GATHER`
    /// (less if a reader flushes, enough records wait, or none came for
    /// `QUIET`), and takes them all. Returns the batches and whether to stop.
    fn take(&self, idle_for: Duration) -> (Vec<Arc<DurableBatch>>, bool) {
        let mut state = lock(&self.state);
        if state.batches.is_empty() && !state.stop {
            state.idle = true;
            state = self
                .cv
                .wait_timeout(state, idle_for)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            state.idle = false;
        }
        let until = Instant::now() + GATHER;
        while !state.batches.is_empty()
            && !state.flush
            && !state.stop
            && state.records < GATHER_RECORDS
        {
            let now = Instant::now();
            let quiet_until = state.last_push.map_or(now, |at| at + QUIET);
            if now >= until || now >= quiet_until {
                break;
            }
            state = self
                .cv
                .wait_timeout(state, until.min(quiet_until) - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        // A reader's request stays until something is applied: its batch may not be here yet.
        if !state.batches.is_empty() {
            state.flush = false;
        }
        state.records = 0;
        (std::mem::take(&mut state.batches), state.stop)
    }
}

/// Receives the log's durability notifications on the writer thread: queues
/// the batch for the index first, then tells the engine (acknowledgements).
/// That order matters: a reader may hold the engine's locks while it waits
/// for the index to catch up, so the index must never wait for the engine.
pub(crate) struct Relay {
    ack: Mutex<Option<Arc<dyn AckSink>>>,
    inbox: Arc<Inbox>,
}

impl Relay {
    pub(crate) fn new(inbox: Arc<Inbox>) -> Relay {
        Relay {
            ack: Mutex::new(None),
            inbox,
        }
    }

    pub(crate) fn set_ack_sink(&self, sink: Arc<dyn AckSink>) {
        *lock(&self.ack) = Some(sink);
    }
}

impl DurableSink for Relay {
    fn durable(&self, batch: Arc<DurableBatch>) {
        self.inbox.push(batch.clone());
        let ack = lock(&self.ack).clone();
        if let Some(ack) = ack {
            if !batch.tokens().is_empty() {
                ack.durable(batch.tokens());
            }
        }
    }

    fn failed(&self, tokens: &[u64], error: &WalError) {
        let ack = lock(&self.ack).clone();
        if let Some(ack) = ack {
            ack.failed(
                tokens,
                &StoreError::Failed {
                    cause: error.to_string(),
                },
            );
        }
    }
}

struct ProgressState {
    applied_lsn: u64,
    error: Option<String>,
    stopped: bool,
}

/// How far the index got, for readers that must see every durable append.
pub(crate) struct Progress {
    state: Mutex<ProgressState>,
    cv: Condvar,
    /// `state.error` is set: checked on every append without taking the lock.
    failed: AtomicBool,
}

impl Progress {
    pub(crate) fn new(applied_lsn: u64) -> Progress {
        Progress {
            state: Mutex::new(ProgressState {
                applied_lsn,
                error: None,
                stopped: false,
            }),
            cv: Condvar::new(),
            failed: AtomicBool::new(false),
        }
    }

    /// The index failed: the store is stopped until reopened.
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    pub(crate) fn applied(&self) -> u64 {
        lock(&self.state).applied_lsn
    }

    pub(crate) fn error(&self) -> Option<StoreError> {
        lock(&self.state)
            .error
            .clone()
            .map(|cause| StoreError::Failed { cause })
    }

    fn set_applied(&self, lsn: u64) {
        lock(&self.state).applied_lsn = lsn;
        self.cv.notify_all();
    }

    fn set_error(&self, error: String) {
        lock(&self.state).error.get_or_insert(error);
        self.failed.store(true, Ordering::Release);
        self.cv.notify_all();
    }

    fn set_stopped(&self) {
        lock(&self.state).stopped = true;
        self.cv.notify_all();
    }

    /// Blocks until the index applied everything up to `lsn`.
    pub(crate) fn wait_applied(&self, lsn: u64) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        loop {
            if state.applied_lsn >= lsn {
                return Ok(());
            }
            if let Some(cause) = &state.error {
                return Err(StoreError::Failed {
                    cause: format!("the index stopped applying the log: {cause}"),
                });
            }
            if state.stopped {
                return Err(StoreError::Closed);
            }
            state = self.cv.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Why the store stopped, for every later caller.
fn stopped(error: &StoreError) -> String {
    format!(
        "the run index could not be updated ({error}); the log keeps every record the index may lack, \
         and the next open applies them again"
    )
}

/// The indexer stops at the first failed index commit (a batch, or the synced commit
/// before a release), and the store with it: every later append and read gets
/// [`StoreError::Failed`] saying to reopen. It does not retry, because:
///
/// - A failed write or fsync may have dropped the index file's dirty pages from the page
///   cache (PostgreSQL 2018, RELIABILITY rule 5). A later sync on the same files can then
///   succeed without the earlier commits being on disk; releasing log segments after
///   it would delete records the index does not hold. Only a reopen, which reads the
///   index back from disk, knows what it durably holds.
/// - The log is the truth: nothing past the last synced index commit was released, so
///   the next open applies every record the index lacks (or rebuilds it). Appends made
///   before the failure were acknowledged after their log sync alone and are not lost.
/// - Readers see no answer from an index that may differ from what it committed.
pub(crate) fn spawn(
    mut index: Index,
    inbox: Arc<Inbox>,
    progress: Arc<Progress>,
    registry: Arc<Mutex<Registry>>,
    wal: Arc<RwLock<Option<Wal>>>,
    release_every: Duration,
) -> Result<JoinHandle<()>, StoreError> {
    std::thread::Builder::new()
        .name("duro-indexer".into())
        .spawn(move || {
            let mut released_through = index.applied_lsn();
            let mut last_release = Instant::now();
            let mut failed = false;
            loop {
                let (batches, stop) = inbox.take(release_every);
                if !batches.is_empty() && !failed {
                    let records = batches
                        .iter()
                        .flat_map(|b| b.records().map(|r| (r.lsn, r.record_type, r.payload)));
                    match index.apply(IndexCommitSite::Batch, records) {
                        Ok(applied) => {
                            {
                                let mut registry = lock(&registry);
                                for id in &applied.created_ids {
                                    registry.pending_ids.remove(id);
                                }
                                for key in &applied.finished {
                                    registry.positions.remove(key);
                                }
                            }
                            progress.set_applied(applied.last_lsn);
                        }
                        Err(error) => {
                            failed = true;
                            progress.set_error(stopped(&error));
                        }
                    }
                }
                let due = stop || last_release.elapsed() >= release_every;
                if due && !failed && index.applied_lsn() > released_through {
                    // Rule 7: the index is synced before the segments it covers are deleted.
                    let result = index
                        .commit_durably(IndexCommitSite::Release)
                        .and_then(|()| {
                            let guard = wal.read().unwrap_or_else(|p| p.into_inner());
                            match guard.as_ref() {
                                Some(wal) => wal
                                    .release_through(index.applied_lsn())
                                    .map_err(StoreError::from),
                                None => Ok(()),
                            }
                        });
                    match result {
                        Ok(()) => released_through = index.applied_lsn(),
                        Err(error) => {
                            failed = true;
                            progress.set_error(stopped(&error));
                        }
                    }
                    last_release = Instant::now();
                }
                if stop {
                    progress.set_stopped();
                    return;
                }
            }
        })
        .map_err(|source| StoreError::Io {
            op: "start the indexer thread",
            path: "duro-indexer".into(),
            source,
        })
}
