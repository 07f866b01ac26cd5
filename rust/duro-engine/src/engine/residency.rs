//! Which runs are in memory, beside the run table: loading a dormant run from
//! the store, evicting a run, finishing one (publishing its outcome), and
//! blocking one that cannot continue. These are the transitions in and out of
//! the table; deciding when to make them is elsewhere.

use std::sync::Arc;

use duro_core::error::CoreError;
use duro_core::journal::RunKey;
use duro_core::linear;
use duro_core::replay::{JournalFold, RunState};

use super::{lock, Inner};
use crate::error::EngineError;
use crate::lanes::{Handle, QueueItem};
use crate::outcome::RunOutcome;
use crate::table::{ActiveRun, Blocked, Phase, RunTable};

impl Inner {
    /// Removes a run from memory; returns its handle if the caller must release its context.
    pub(super) fn evict(&self, table: &mut RunTable, handle: Handle) -> Option<Handle> {
        let run = table.remove(handle)?;
        run.caller_loaded.then_some(handle)
    }

    /// Publishes the outcome of a run whose terminal event is durable, and evicts it.
    pub(super) fn finish(&self, table: &mut RunTable, handle: Handle) -> Option<Handle> {
        let run = table.get_mut(handle)?;
        if let Some(outcome) = RunOutcome::from_state(&run.state) {
            let key = outcome.run_key;
            let mut finished = lock(&self.finished);
            finished.cache.insert(Arc::new(outcome));
            if finished.watched.remove(&key) {
                finished.notices.push(key);
                self.notifier.signal();
            }
            drop(finished);
            self.finished_cv.notify_all();
        }
        self.evict(table, handle)
    }

    pub(super) fn block(&self, handle: Handle, error: CoreError) {
        self.block_if(handle, error, |_| true);
    }

    /// Blocks the run if `applies` holds for its phase (checked under the table lock).
    pub(super) fn block_if(
        &self,
        handle: Handle,
        error: CoreError,
        applies: impl FnOnce(&Phase) -> bool,
    ) {
        let mut table = lock(&self.table);
        let Some(run) = table.get_mut(handle) else {
            return;
        };
        if !applies(&run.phase) {
            return;
        }
        let non_determinism = match &error {
            CoreError::NonDeterminism(nd) => Some(nd.clone()),
            _ => None,
        };
        let blocked = Blocked {
            message: format!("run {:?}: {error}", run.state.run_id),
            non_determinism,
        };
        run.phase = Phase::Blocked(blocked.clone());
        let key = run.state.run_key;
        let release = run.caller_loaded.then_some(handle);
        run.caller_loaded = false;
        let lane = run.wf.lane;
        drop(table);
        let mut finished = lock(&self.finished);
        finished.blocked.insert(key, blocked);
        if finished.watched.remove(&key) {
            finished.notices.push(key);
            self.notifier.signal();
        }
        drop(finished);
        self.finished_cv.notify_all();
        if let Some(handle) = release {
            self.lanes[lane as usize].push_all([QueueItem::Release(handle)]);
        }
    }

    /// The run's state folded from its journal as the store reads it (the journal
    /// itself is never held in memory whole).
    pub(super) fn load_state(&self, run_key: RunKey) -> Result<RunState, EngineError> {
        let mut fold = JournalFold::new(run_key);
        self.store
            .visit_events(run_key, &mut |event| fold.push(event))?;
        Ok(fold.finish()?)
    }

    /// Brings a dormant run into memory (queued), or returns the handle it has.
    /// `None` when its workflow is not registered here.
    pub(super) fn ensure_loaded(
        &self,
        table: &mut RunTable,
        run_key: RunKey,
    ) -> Result<Option<Handle>, EngineError> {
        if let Some(handle) = table.handle_of(run_key) {
            return Ok(Some(handle));
        }
        let state = self.load_state(run_key)?;
        let Some(wf) = self.registered(&state.workflow, &state.version) else {
            return Ok(None);
        };
        let phase = match linear::check_against(&state, &wf.def) {
            Ok(()) => Phase::Queued,
            Err(nd) => Phase::Blocked(Blocked {
                message: format!("run {:?}: {nd}", state.run_id),
                non_determinism: Some(nd),
            }),
        };
        let blocked = match &phase {
            Phase::Blocked(b) => Some(b.clone()),
            _ => None,
        };
        let handle = table.insert(ActiveRun {
            state,
            wf,
            phase,
            caller_loaded: false,
            dirty: false,
            unacked: 0,
            pending: None,
            deadline_timer: false,
        });
        if let Some(blocked) = blocked {
            lock(&self.finished).blocked.insert(run_key, blocked);
            self.finished_cv.notify_all();
        }
        Ok(Some(handle))
    }
}
