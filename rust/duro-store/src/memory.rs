//! The in-memory store: the same semantics as the embedded store, nothing on
//! disk. Every append is durable on return (there is nothing to sync), so
//! receipts say `durable` and no token is sent to the sink.
//!
//! It keeps nothing across a restart of the process: a new `MemoryStore` is
//! empty (the conformance suite checks the reopen-specific promises only for
//! stores whose factory says they keep data, and checks this one comes back
//! empty). Appends are limited like the embedded store's: by
//! [`append_size`](crate::append_size), to [`DEFAULT_MAX_APPEND_BYTES`] unless
//! built with [`MemoryStore::with_max_append_bytes`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use duro_core::journal::{Event, RunKey};
use duro_core::summary::RunSummary;
use duro_core::time::Millis;

use crate::api::{
    AckSink, Receipt, RunFilter, StartOutcome, Store, Token, DEFAULT_MAX_APPEND_BYTES,
};
use crate::error::StoreError;
use crate::record::append_size;

#[derive(Default)]
struct Inner {
    ids: HashMap<String, RunKey>,
    runs: HashMap<RunKey, (Vec<Event>, RunSummary)>,
    next_key: RunKey,
    appends: u64,
    closed: bool,
}

pub struct MemoryStore {
    inner: Mutex<Inner>,
    max_append_bytes: u64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::with_max_append_bytes(DEFAULT_MAX_APPEND_BYTES)
    }

    /// A store that refuses appends over `max` bytes (as the embedded store with
    /// `WalOptions::max_record_size = max` does).
    pub fn with_max_append_bytes(max: u64) -> MemoryStore {
        MemoryStore {
            inner: Mutex::new(Inner {
                next_key: 1,
                ..Inner::default()
            }),
            max_append_bytes: max,
        }
    }

    fn check_size(
        &self,
        run_key: RunKey,
        first_position: u32,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let size = append_size(run_key, first_position, events);
        if size > self.max_append_bytes {
            return Err(StoreError::AppendTooLarge {
                size,
                max: self.max_append_bytes,
            });
        }
        Ok(())
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        let guard = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if guard.closed {
            return Err(StoreError::Closed);
        }
        Ok(guard)
    }
}

impl Store for MemoryStore {
    fn set_ack_sink(&self, _sink: Arc<dyn AckSink>) {}

    fn start_run(
        &self,
        started: &Event,
        _token: Option<Token>,
    ) -> Result<(StartOutcome, Receipt), StoreError> {
        let mut inner = self.lock()?;
        let Event::RunStarted { run_id, .. } = started else {
            return Err(StoreError::BadRecord {
                lsn: 0,
                detail: "start_run needs a run_started event".into(),
            });
        };
        inner.appends += 1;
        let receipt = Receipt {
            position: inner.appends,
            durable: true,
        };
        if let Some(&run_key) = inner.ids.get(run_id) {
            return Ok((StartOutcome::Existing { run_key }, receipt));
        }
        let run_key = inner.next_key;
        self.check_size(run_key, 0, std::slice::from_ref(started))?;
        inner.next_key += 1;
        let summary = RunSummary::start(run_key, started).expect("checked to be run_started above");
        inner.ids.insert(run_id.clone(), run_key);
        inner.runs.insert(run_key, (vec![started.clone()], summary));
        Ok((StartOutcome::Created { run_key }, receipt))
    }

    fn append(
        &self,
        run_key: RunKey,
        expected_position: u32,
        events: &[Event],
        _token: Option<Token>,
    ) -> Result<Receipt, StoreError> {
        let mut inner = self.lock()?;
        inner.appends += 1;
        let position = inner.appends;
        let (journal, summary) = inner
            .runs
            .get_mut(&run_key)
            .ok_or(StoreError::UnknownRun { run_key })?;
        if summary.status.is_terminal() {
            return Err(StoreError::RunEnded {
                run_key,
                status: summary.status.as_str(),
            });
        }
        if journal.len() as u32 != expected_position {
            return Err(StoreError::Conflict {
                run_key,
                expected: expected_position,
                actual: journal.len() as u32,
            });
        }
        self.check_size(run_key, expected_position, events)?;
        for event in events {
            summary.apply(event);
            journal.push(event.clone());
        }
        Ok(Receipt {
            position,
            durable: true,
        })
    }

    fn wait_durable(&self, _receipt: Receipt) -> Result<(), StoreError> {
        Ok(())
    }

    fn durable_position(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).appends
    }

    fn summary(&self, run_id: &str) -> Result<Option<RunSummary>, StoreError> {
        let inner = self.lock()?;
        Ok(inner
            .ids
            .get(run_id)
            .and_then(|key| inner.runs.get(key))
            .map(|(_, s)| s.clone()))
    }

    fn summary_by_key(&self, run_key: RunKey) -> Result<Option<RunSummary>, StoreError> {
        Ok(self.lock()?.runs.get(&run_key).map(|(_, s)| s.clone()))
    }

    fn events(&self, run_key: RunKey) -> Result<Vec<Event>, StoreError> {
        let inner = self.lock()?;
        inner
            .runs
            .get(&run_key)
            .map(|(e, _)| e.clone())
            .ok_or(StoreError::UnknownRun { run_key })
    }

    fn list(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
        let inner = self.lock()?;
        let mut found: Vec<RunSummary> = inner
            .runs
            .values()
            .map(|(_, s)| s)
            .filter(|s| filter.matches(s))
            .cloned()
            .collect();
        found.sort_by(|a, b| {
            b.created_at_ms
                .cmp(&a.created_at_ms)
                .then(b.run_key.cmp(&a.run_key))
        });
        found.truncate(filter.effective_limit());
        Ok(found)
    }

    fn claim_due(
        &self,
        _owner: &str,
        _now_ms: Millis,
        limit: usize,
    ) -> Result<Vec<RunSummary>, StoreError> {
        let inner = self.lock()?;
        let mut due: Vec<RunSummary> = inner
            .runs
            .values()
            .map(|(_, s)| s)
            .filter(|s| !s.status.is_terminal())
            .cloned()
            .collect();
        due.sort_by_key(|s| s.run_key);
        due.truncate(limit);
        Ok(due)
    }

    fn max_append_bytes(&self) -> u64 {
        self.max_append_bytes
    }

    fn close(&self) -> Result<(), StoreError> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        Ok(())
    }

    fn describe(&self) -> String {
        "in-memory store (nothing is kept when the process exits)".into()
    }
}
