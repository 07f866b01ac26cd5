//! The store contract.

use std::sync::Arc;

use duro_core::journal::{Event, RunKey};
use duro_core::summary::{RunStatus, RunSummary};
use duro_core::time::Millis;

use crate::error::StoreError;

/// An opaque number the caller attaches to an append; the store hands it
/// back through [`AckSink::durable`] once the append is durable.
pub type Token = u64;

/// The largest append (its run-events record, see [`append_size`](crate::append_size)) a
/// store accepts unless configured otherwise: 4 MiB, the embedded log's default
/// `max_record_size`. Every store measures and refuses the same way
/// ([`StoreError::AppendTooLarge`]).
pub const DEFAULT_MAX_APPEND_BYTES: u64 = 4 << 20;

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

/// Where a run id came from, which decides whether a start must look it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunIdOrigin {
    /// Chosen by the caller: a start with an id that a run holds finds that run.
    #[default]
    Caller,
    /// 128 random bits drawn for this one start. No run can hold it, so a store
    /// may skip looking it up (for the embedded store, a read of its index,
    /// which is most of the cost of a start).
    Generated,
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
/// - nothing is appended after a run's terminal event;
/// - an append (or a start) larger than [`Store::max_append_bytes`], measured by
///   [`append_size`](crate::append_size), is refused with [`StoreError::AppendTooLarge`]
///   and writes nothing.
///
/// Every token-carrying write that returns `Ok` with `durable: false` is acknowledged
/// exactly once, through [`AckSink::durable`] or [`AckSink::failed`]; one whose receipt
/// says `durable: true` is never sent to the sink; a start that found an existing run
/// wrote nothing, and its token is never acknowledged (wait on its receipt instead).
pub trait Store: Send + Sync {
    /// Installs the sink that receives acknowledgements of token-carrying appends.
    fn set_ack_sink(&self, sink: Arc<dyn AckSink>);

    /// Creates a run from its `RunStarted` event unless a run with that id
    /// exists. `token` is acknowledged like an append's when the run is created;
    /// when it existed nothing was written and `token` is never acknowledged.
    fn start_run(
        &self,
        started: &Event,
        token: Option<Token>,
    ) -> Result<(StartOutcome, Receipt), StoreError>;

    /// [`start_run`](Store::start_run) for a run id of the given origin. The
    /// caller promises that no run holds a [`RunIdOrigin::Generated`] id (it is
    /// fresh random bits, started once), so a store may skip looking it up.
    fn start_run_with(
        &self,
        started: &Event,
        token: Option<Token>,
        origin: RunIdOrigin,
    ) -> Result<(StartOutcome, Receipt), StoreError> {
        let _ = origin;
        self.start_run(started, token)
    }

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

    /// The durable position to wait for so that `position` is durable, the same for
    /// positions that become durable together (one sync), so that their waiters can share
    /// one wake-up; 0 if `position` is durable already. A hint: after it is reached,
    /// check `durable_position` again. By default every position is its own round.
    fn sync_round(&self, position: u64) -> u64 {
        if self.durable_position() >= position {
            0
        } else {
            position
        }
    }

    /// The run's summary, by the user's run id.
    fn summary(&self, run_id: &str) -> Result<Option<RunSummary>, StoreError>;

    /// The run's summary, by key.
    fn summary_by_key(&self, run_key: RunKey) -> Result<Option<RunSummary>, StoreError>;

    /// The run's whole journal, in position order.
    fn events(&self, run_key: RunKey) -> Result<Vec<Event>, StoreError>;

    /// The run's whole journal handed to `visit` one event at a time, in position
    /// order, without keeping it: loading a long run folds each event as it is read
    /// instead of first holding the journal as a list (megabytes for a long run).
    /// The checks of [`events`](Self::events) still apply, so an error can come after
    /// some events were visited: the caller then drops what it folded.
    fn visit_events(
        &self,
        run_key: RunKey,
        visit: &mut dyn FnMut(Event),
    ) -> Result<(), StoreError> {
        self.events(run_key)?.into_iter().for_each(visit);
        Ok(())
    }

    /// Runs matching `filter`, newest first.
    fn list(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StoreError>;

    /// Unfinished runs this caller should now drive (resume, or schedule by
    /// their `wake_at_ms`).
    ///
    /// Every store: only unfinished runs, each once, in run-key order, at most
    /// `limit` of them (0: none); every unfinished run that is due at `now_ms`
    /// (its `wake_at_ms` is at or before `now_ms`) and not held by another owner
    /// is among them when `limit` allows.
    ///
    /// The single-process stores (embedded: one process owns the directory, by
    /// its `LOCK`; in-memory) have no leases. They ignore `owner`, and hand out
    /// every unfinished run whatever `now_ms`: also runs that wake later (the
    /// caller schedules them by `wake_at_ms`), and paused or waiting runs that
    /// have no `wake_at_ms`. They hand the same runs to every call and every
    /// owner: nothing is held. The engine relies on this: it calls `claim_due`
    /// once, when it opens, with `limit = usize::MAX`.
    ///
    /// A store shared by several processes (PostgreSQL, later) must add, and the
    /// conformance suite checks when its factory declares
    /// [`Capabilities::lease_ms`](crate::conformance::Capabilities):
    /// - a lease: a returned run is held by `owner` until `now_ms + lease`;
    ///   while held, `claim_due` of another owner does not return it; a call
    ///   at or after expiry does. Holders renew their leases (a method to add,
    ///   e.g. `renew(owner, run_keys, now_ms)`).
    /// - a fencing epoch: every claim bumps the run's epoch and hands it to the
    ///   owner; appends carry it (a parameter to add to `append`, beside
    ///   `expected_position`), and an append with a stale epoch is refused with
    ///   [`StoreError::Conflict`] and writes nothing. `expected_position` alone
    ///   is not enough: a worker whose lease was taken over still holds the
    ///   right position until the new owner appends.
    /// - due-ness: it returns only runs due at `now_ms`, so sleeping runs are
    ///   not leased for their whole sleep; the engine then has to call
    ///   `claim_due` periodically (and on a notification), not only at open.
    fn claim_due(
        &self,
        owner: &str,
        now_ms: Millis,
        limit: usize,
    ) -> Result<Vec<RunSummary>, StoreError>;

    /// The largest append this store accepts, in bytes of [`append_size`](crate::append_size)
    /// ([`DEFAULT_MAX_APPEND_BYTES`] unless configured otherwise).
    fn max_append_bytes(&self) -> u64;

    /// Makes everything appended so far durable and stops background work.
    fn close(&self) -> Result<(), StoreError>;

    /// A short description for logs and `meta()` (e.g. "embedded at ./.duro").
    fn describe(&self) -> String;

    /// The error every later call gets once the store has stopped for a failure
    /// it did not report through the [`AckSink`] (the embedded store's index
    /// commit, say). No I/O: callers that answer from memory instead of reading
    /// the store check this, so that they fail as a read would.
    fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// The in-memory store's default limit is the embedded store's default, so both refuse
    /// the same appends out of the box.
    #[test]
    fn the_default_limit_is_the_logs() {
        assert_eq!(
            super::DEFAULT_MAX_APPEND_BYTES,
            u64::from(duro_wal::WalOptions::default().max_record_size)
        );
    }
}
