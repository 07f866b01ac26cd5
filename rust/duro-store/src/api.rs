//! The store contract.

use std::sync::Arc;

use duro_core::journal::{Event, RunKey};
use duro_core::summary::{RunStatus, RunSummary};
use duro_core::time::Millis;

use crate::error::StoreError;

/// An opaque number the caller attaches to an append; the store hands it
/// back through [`AckSink::durable`] once the append is durable.
pub type Token = u64;

/// Receives acknowledgements. Called from the store's own threads; must be
/// quick and must not call back into the store.
pub trait AckSink: Send + Sync {
    /// These appends are durable (fdatasync returned, or the transaction committed).
    fn durable(&self, tokens: &[Token]);
    /// These appends will never be acknowledged: the store failed.
    fn failed(&self, tokens: &[Token], error: &StoreError);
}

/// Where an append stands. `wait_durable` blocks until it is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// A store-defined, monotonically increasing position (the log sequence
    /// number for the embedded store).
    pub position: u64,
    /// True when the append was durable on return (no acknowledgement will follow through the sink).
    pub durable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    /// A new run was appended.
    Created { run_key: RunKey },
    /// A run with this id exists already; nothing was written.
    Existing { run_key: RunKey },
}

impl StartOutcome {
    pub fn run_key(self) -> RunKey {
        match self {
            StartOutcome::Created { run_key } | StartOutcome::Existing { run_key } => run_key,
        }
    }
}

/// Which runs to list. Newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Any of these statuses (empty: all).
    pub statuses: Vec<RunStatus>,
    pub workflow: Option<String>,
    pub created_after_ms: Option<Millis>,
    pub created_before_ms: Option<Millis>,
    /// At most this many (0: the store's default of 100).
    pub limit: usize,
}

impl RunFilter {
    pub fn effective_limit(&self) -> usize {
        if self.limit == 0 {
            100
        } else {
            self.limit
        }
    }

    pub fn matches(&self, summary: &RunSummary) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&summary.status))
            && self
                .workflow
                .as_ref()
                .is_none_or(|w| *w == summary.workflow)
            && self
                .created_after_ms
                .is_none_or(|t| summary.created_at_ms >= t)
            && self
                .created_before_ms
                .is_none_or(|t| summary.created_at_ms < t)
    }
}

/// A place that keeps runs: their journals (the truth) and summaries (for queries).
///
/// Invariants every implementation keeps (checked by [`crate::conformance`]):
/// - a run id names at most one run, also when many threads start it at once;
/// - a run's events get positions 0, 1, 2, … with no gaps; an append whose
///   expected position is not the run's next position is rejected
///   ([`StoreError::Conflict`]) and writes nothing;
/// - an append is acknowledged (sink or receipt) only once durable, and every
///   acknowledged event is returned by `events` afterwards, byte-identical,
///   also after the store is reopened;
/// - nothing is appended after a run's terminal event.
pub trait Store: Send + Sync {
    /// Installs the sink that receives acknowledgements of token-carrying appends.
    fn set_ack_sink(&self, sink: Arc<dyn AckSink>);

    /// Creates a run from its `RunStarted` event unless a run with that id
    /// exists. `token` is acknowledged like an append's.
    fn start_run(
        &self,
        started: &Event,
        token: Option<Token>,
    ) -> Result<(StartOutcome, Receipt), StoreError>;

    /// Appends `events` to run `run_key`, whose next position must be `expected_position`.
    fn append(
        &self,
        run_key: RunKey,
        expected_position: u32,
        events: &[Event],
        token: Option<Token>,
    ) -> Result<Receipt, StoreError>;

    /// Blocks until the append behind `receipt` is durable.
    fn wait_durable(&self, receipt: Receipt) -> Result<(), StoreError>;

    /// Every receipt with a position at or below this is durable.
    fn durable_position(&self) -> u64;

    /// The run's summary, by the user's run id.
    fn summary(&self, run_id: &str) -> Result<Option<RunSummary>, StoreError>;

    /// The run's summary, by key.
    fn summary_by_key(&self, run_key: RunKey) -> Result<Option<RunSummary>, StoreError>;

    /// The run's whole journal, in position order.
    fn events(&self, run_key: RunKey) -> Result<Vec<Event>, StoreError>;

    /// Runs matching `filter`, newest first.
    fn list(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StoreError>;

    /// Unfinished runs this caller should now drive (resume, or schedule by
    /// their `wake_at_ms`). A single-process store hands out every unfinished
    /// run; a shared store hands out those whose lease is free or expired and
    /// leases them to `owner`.
    fn claim_due(
        &self,
        owner: &str,
        now_ms: Millis,
        limit: usize,
    ) -> Result<Vec<RunSummary>, StoreError>;

    /// Makes everything appended so far durable and stops background work.
    fn close(&self) -> Result<(), StoreError>;

    /// A short description for logs and `meta()` (e.g. "embedded at ./.duro").
    fn describe(&self) -> String;
}
