//! The embedded store: a directory that one process opens.
//!
//! ```text
//! <dir>/            0700
//!   LOCK            0600  flock held while open (one process at a time)
//!   wal/            0700  log segments: the truth (see duro-wal)
//!   index.sqlite3   0600  the queryable index, applied from the log
//! ```
//!
//! Appends go to the log (one record per append, so an append is atomic)
//! and are acknowledged after the fdatasync that covers them. A background
//! indexer applies durable batches to SQLite; reads first wait until the
//! index has caught up with everything durable, so they see every
//! acknowledged append. Log segments are deleted only after the index
//! commit covering them was synced. On open, records the index does not
//! have yet are applied from the log, which also rebuilds the index after a
//! crash.
//!
//! Modes are enforced on open, not only at creation: an existing directory,
//! `wal/`, or a file of the store with other modes (made by hand, restored
//! from a backup, an older build) is set to 0700 / 0600; when that fails the
//! open is refused ([`StoreError::Io`] naming the path and the mode).

mod faults;
mod index;
mod indexer;
mod lock;
mod open;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use duro_core::journal::{Event, RunKey};
use duro_core::summary::RunSummary;
use duro_core::time::Millis;
use duro_wal::fs::{Fs, RealFs};
use duro_wal::{Record, Wal, WalOptions, WalStats};

use crate::api::{AckSink, Receipt, RunFilter, RunIdOrigin, StartOutcome, Store, Token};
use crate::error::StoreError;
use crate::record::{self, RUN_EVENTS};
use duro_wal::WalError;
use index::Reader;
use indexer::{Inbox, Progress, Relay};
use lock::DirLock;

pub use faults::{IndexCommitSite, IndexFault, IndexFaults};
pub use index::INDEX_FORMAT_VERSION;

/// Settings of an embedded store.
#[derive(Clone)]
pub struct EmbeddedOptions {
    pub wal: WalOptions,
    /// The file layer of the log (a fault-injecting one in tests).
    pub fs: Arc<dyn Fs>,
    /// How often applied log segments are released (after a synced index commit).
    pub release_every: Duration,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            wal: WalOptions::default(),
            fs: Arc::new(RealFs),
            release_every: Duration::from_secs(1),
        }
    }
}

/// Runs whose appends this process made, and run ids not yet in the index.
pub(crate) struct Registry {
    /// Run ids appended but not yet committed to the index (so a concurrent
    /// start of the same id finds them).
    pub(crate) pending_ids: HashMap<String, RunKey>,
    /// Next position of each run appended to since open, and whether it ended.
    pub(crate) positions: HashMap<RunKey, (u32, bool)>,
    next_key: RunKey,
    scratch: Vec<u8>,
    closed: bool,
}

pub struct EmbeddedStore {
    dir: PathBuf,
    /// The log's `max_record_size`: the largest append.
    max_append_bytes: u64,
    wal: Arc<RwLock<Option<Wal>>>,
    relay: Arc<Relay>,
    registry: Arc<Mutex<Registry>>,
    reader: Mutex<Reader>,
    progress: Arc<Progress>,
    inbox: Arc<Inbox>,
    indexer: Mutex<Option<JoinHandle<()>>>,
    /// Held until the store is closed (not until it is dropped: a closed store
    /// may outlive its close, and the directory is free from then on).
    lock: Mutex<Option<DirLock>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Statistics for benchmarks and diagnostics.
#[derive(Debug, Clone)]
pub struct EmbeddedStats {
    pub wal: WalStats,
    pub applied_lsn: u64,
}

impl EmbeddedStore {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn with_wal<T>(&self, f: impl FnOnce(&Wal) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let guard = self.wal.read().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(wal) => f(wal),
            None => Err(StoreError::Closed),
        }
    }

    /// The store stopped because the index failed to commit (see the indexer): an error
    /// saying to reopen. Reads refuse too: after a failed write or sync the index file's
    /// pages may no longer be what was written, so nothing is read from it until a reopen.
    fn check_index(&self) -> Result<(), StoreError> {
        if self.progress.failed() {
            if let Some(error) = self.progress.error() {
                return Err(error);
            }
        }
        Ok(())
    }

    /// Waits until the index holds everything durable now.
    fn catch_up(&self) -> Result<(), StoreError> {
        self.check_index()?;
        let target = self.with_wal(|wal| Ok(wal.durable_lsn()))?;
        if self.progress.applied() >= target {
            return Ok(());
        }
        self.inbox.flush();
        self.progress.wait_applied(target)
    }

    pub fn stats(&self) -> Result<EmbeddedStats, StoreError> {
        let wal = self.with_wal(|wal| Ok(wal.stats()))?;
        Ok(EmbeddedStats {
            wal,
            applied_lsn: self.progress.applied(),
        })
    }

    fn append_record(
        &self,
        registry: &mut Registry,
        run_key: RunKey,
        first_position: u32,
        events: &[Event],
        token: Option<Token>,
    ) -> Result<Receipt, StoreError> {
        let mut scratch = std::mem::take(&mut registry.scratch);
        scratch.clear();
        record::encode(run_key, first_position, events, &mut scratch);
        let size = scratch.len() as u64;
        let result = if size > self.max_append_bytes {
            Err(StoreError::AppendTooLarge {
                size,
                max: self.max_append_bytes,
            })
        } else {
            self.with_wal(
                |wal| match wal.append(&[Record::new(RUN_EVENTS, &scratch)], token) {
                    Ok(lsn) => Ok(lsn),
                    Err(WalError::RecordTooLarge { size, max }) => {
                        Err(StoreError::AppendTooLarge {
                            size,
                            max: u64::from(max),
                        })
                    }
                    Err(error) => Err(error.into()),
                },
            )
        };
        // A big record's buffer is not kept (it would stay allocated for the store's life).
        if scratch.capacity() <= 64 << 10 {
            registry.scratch = scratch;
        }
        Ok(Receipt {
            position: result?,
            durable: false,
        })
    }

    fn shutdown(&self) -> Result<(), StoreError> {
        lock(&self.registry).closed = true;
        let wal = self.wal.write().unwrap_or_else(|p| p.into_inner()).take();
        let wal_result = match wal {
            Some(wal) => wal.close().map_err(StoreError::from),
            None => Ok(()),
        };
        if let Some(handle) = lock(&self.indexer).take() {
            self.inbox.stop();
            let _ = handle.join();
        }
        lock(&self.lock).take();
        wal_result?;
        self.progress.error().map_or(Ok(()), Err)
    }
}

impl Store for EmbeddedStore {
    fn set_ack_sink(&self, sink: Arc<dyn AckSink>) {
        self.relay.set_ack_sink(sink);
    }

    fn start_run(
        &self,
        started: &Event,
        token: Option<Token>,
    ) -> Result<(StartOutcome, Receipt), StoreError> {
        self.start_run_with(started, token, RunIdOrigin::Caller)
    }

    fn start_run_with(
        &self,
        started: &Event,
        token: Option<Token>,
        origin: RunIdOrigin,
    ) -> Result<(StartOutcome, Receipt), StoreError> {
        let Event::RunStarted { run_id, .. } = started else {
            return Err(StoreError::BadRecord {
                lsn: 0,
                detail: "start_run needs a run_started event".into(),
            });
        };
        let mut registry = lock(&self.registry);
        if registry.closed {
            return Err(StoreError::Closed);
        }
        self.check_index()?;
        // Runs not yet in the index are in `pending_ids`; a generated id skips the
        // index (its read competes with the indexer and is most of a start's cost).
        let existing = match registry.pending_ids.get(run_id) {
            Some(&key) => Some(key),
            None if origin == RunIdOrigin::Generated => None,
            None => lock(&self.reader).run_key_of(run_id)?,
        };
        if let Some(run_key) = existing {
            let position = self.with_wal(|wal| Ok(wal.next_lsn().saturating_sub(1)))?;
            return Ok((
                StartOutcome::Existing { run_key },
                Receipt {
                    position,
                    durable: false,
                },
            ));
        }
        let run_key = registry.next_key;
        let next_key = run_key.checked_add(1).ok_or(StoreError::Failed {
            cause:
                "every run key is used (the log holds a run key of u64::MAX); the store is corrupt"
                    .into(),
        })?;
        let receipt = self.append_record(
            &mut registry,
            run_key,
            0,
            std::slice::from_ref(started),
            token,
        )?;
        registry.next_key = next_key;
        registry.pending_ids.insert(run_id.clone(), run_key);
        registry.positions.insert(run_key, (1, false));
        Ok((StartOutcome::Created { run_key }, receipt))
    }

    fn append(
        &self,
        run_key: RunKey,
        expected_position: u32,
        events: &[Event],
        token: Option<Token>,
    ) -> Result<Receipt, StoreError> {
        let mut registry = lock(&self.registry);
        if registry.closed {
            return Err(StoreError::Closed);
        }
        self.check_index()?;
        let (next, ended) = match registry.positions.get(&run_key) {
            Some(&entry) => entry,
            None => {
                // Not appended to since open: everything about it is in the index.
                let summary = lock(&self.reader)
                    .summary_by_key(run_key)?
                    .ok_or(StoreError::UnknownRun { run_key })?;
                (summary.event_count, summary.status.is_terminal())
            }
        };
        if ended {
            return Err(StoreError::RunEnded {
                run_key,
                status: "ended",
            });
        }
        if next != expected_position {
            return Err(StoreError::Conflict {
                run_key,
                expected: expected_position,
                actual: next,
            });
        }
        let receipt =
            self.append_record(&mut registry, run_key, expected_position, events, token)?;
        let ends = events.iter().any(Event::is_terminal);
        registry
            .positions
            .insert(run_key, (next + events.len() as u32, ends));
        Ok(receipt)
    }

    fn wait_durable(&self, receipt: Receipt) -> Result<(), StoreError> {
        if receipt.durable {
            return Ok(());
        }
        // Waiting holds the read lock, so close() waits for it; the writer is
        // still running then and will finish the wait.
        let guard = self.wal.read().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(wal) => Ok(wal.wait_durable(receipt.position)?),
            None => Err(StoreError::Closed),
        }
    }

    fn durable_position(&self) -> u64 {
        self.with_wal(|wal| Ok(wal.durable_lsn())).unwrap_or(0)
    }

    fn sync_round(&self, position: u64) -> u64 {
        // Closed: the position itself (waiters then hear that the store closed).
        self.with_wal(|wal| Ok(wal.sync_round(position)))
            .unwrap_or(position)
    }

    fn summary(&self, run_id: &str) -> Result<Option<RunSummary>, StoreError> {
        self.catch_up()?;
        lock(&self.reader).summary_by_id(run_id)
    }

    fn health(&self) -> Result<(), StoreError> {
        self.check_index()
    }

    fn summary_by_key(&self, run_key: RunKey) -> Result<Option<RunSummary>, StoreError> {
        self.catch_up()?;
        lock(&self.reader).summary_by_key(run_key)
    }

    fn events(&self, run_key: RunKey) -> Result<Vec<Event>, StoreError> {
        let mut events = Vec::new();
        self.visit_events(run_key, &mut |e| events.push(e))?;
        Ok(events)
    }

    fn visit_events(
        &self,
        run_key: RunKey,
        visit: &mut dyn FnMut(Event),
    ) -> Result<(), StoreError> {
        self.catch_up()?;
        if lock(&self.reader).visit_events(run_key, visit)? == 0 {
            return Err(StoreError::UnknownRun { run_key });
        }
        Ok(())
    }

    fn list(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
        self.catch_up()?;
        lock(&self.reader).list(filter)
    }

    fn claim_due(
        &self,
        _owner: &str,
        _now_ms: Millis,
        limit: usize,
    ) -> Result<Vec<RunSummary>, StoreError> {
        // One process owns the directory (the LOCK), so every unfinished run is ours.
        self.catch_up()?;
        lock(&self.reader).unfinished(limit)
    }

    fn max_append_bytes(&self) -> u64 {
        self.max_append_bytes
    }

    fn close(&self) -> Result<(), StoreError> {
        self.shutdown()
    }

    fn describe(&self) -> String {
        format!("embedded store at {}", self.dir.display())
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
