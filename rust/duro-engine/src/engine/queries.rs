//! Reading runs and waiting for them: summaries, journals, outcomes, and the
//! notices event loops watch for. None of this drives a run; it only reads the
//! store and what finished runs published, so it is kept out of the modules
//! that move runs on.

use std::os::unix::io::RawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use duro_core::entries::{entries, JournalEntry};
use duro_core::journal::RunKey;
use duro_core::summary::RunSummary;
use duro_store::RunFilter;

use super::{lock, Engine, Wait};
use crate::error::EngineError;
use crate::outcome::RunOutcome;

impl Engine {
    /// The run's summary, by id.
    pub fn lookup(&self, run_id: &str) -> Result<Option<RunSummary>, EngineError> {
        Ok(self.inner.store.summary(run_id)?)
    }

    pub fn summary(&self, run_key: RunKey) -> Result<Option<RunSummary>, EngineError> {
        Ok(self.inner.store.summary_by_key(run_key)?)
    }

    /// The run's journal as entries.
    pub fn journal(&self, run_key: RunKey) -> Result<Vec<JournalEntry>, EngineError> {
        Ok(entries(&self.inner.load_state(run_key)?))
    }

    pub fn list(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, EngineError> {
        Ok(self.inner.store.list(filter)?)
    }

    /// Why the run is blocked, if it is.
    pub fn blocked_reason(&self, run_key: RunKey) -> Option<String> {
        lock(&self.inner.finished)
            .blocked
            .get(&run_key)
            .map(|b| b.message.clone())
    }

    /// The outcome of a finished run, without waiting.
    pub fn outcome(&self, run_key: RunKey) -> Result<Option<Arc<RunOutcome>>, EngineError> {
        if let Some(outcome) = lock(&self.inner.finished).cache.get(run_key) {
            return Ok(Some(outcome));
        }
        let Some(summary) = self.inner.store.summary_by_key(run_key)? else {
            return Err(EngineError::UnknownRun(format!("#{run_key}")));
        };
        if !summary.status.is_terminal() {
            return Ok(None);
        }
        let state = self.inner.load_state(run_key)?;
        Ok(RunOutcome::from_state(&state).map(Arc::new))
    }

    /// Waits until the run ends (or is blocked), up to `timeout` (`None`: forever).
    pub fn wait_finished(
        &self,
        run_key: RunKey,
        timeout: Option<Duration>,
    ) -> Result<Wait, EngineError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        // A run in memory has not finished, or its outcome is in the cache already
        // (`finish` publishes it before the run leaves the table): the loop below
        // answers without reading the store, which would first make the index
        // catch up with every durable append (a forced index commit per call).
        let in_memory = lock(&self.inner.table).handle_of(run_key).is_some();
        if !in_memory {
            // Finished earlier (or in another process's lifetime): answer from the store.
            if let Some(outcome) = self.outcome(run_key)? {
                return Ok(Wait::Finished(outcome));
            }
        }
        let mut finished = lock(&self.inner.finished);
        loop {
            if let Some(outcome) = finished.cache.get(run_key) {
                return Ok(Wait::Finished(outcome));
            }
            if let Some(blocked) = finished.blocked.get(&run_key) {
                let message = blocked.message.clone();
                return Ok(match blocked.non_determinism {
                    Some(_) => Wait::Blocked(message),
                    None => Wait::CannotRun(message),
                });
            }
            if let Some(cause) = lock(&self.inner.fatal).clone() {
                return Err(EngineError::Fatal(cause));
            }
            if self.inner.closed.load(Ordering::Acquire) {
                return Err(EngineError::Closed);
            }
            // A store that stopped without telling the engine (see `Store::health`)
            // is noticed here, within one nap.
            self.inner.store.health()?;
            let nap = match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(Wait::TimedOut);
                    }
                    (deadline - now).min(Duration::from_millis(500))
                }
                None => Duration::from_millis(500),
            };
            finished = self
                .inner
                .finished_cv
                .wait_timeout(finished, nap)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Asks for a notice (see `take_finished_notices`) when the run ends or is blocked.
    pub fn watch(&self, run_key: RunKey) {
        let mut finished = lock(&self.inner.finished);
        if finished.cache.get(run_key).is_some() || finished.blocked.contains_key(&run_key) {
            finished.notices.push(run_key);
            drop(finished);
            self.inner.notifier.signal();
        } else {
            finished.watched.insert(run_key);
        }
    }

    /// Watched runs that ended since the last call.
    pub fn take_finished_notices(&self) -> Vec<RunKey> {
        std::mem::take(&mut lock(&self.inner.finished).notices)
    }

    /// A descriptor that becomes readable when the async lane has work or a
    /// watched run ended. Drain it with [`Engine::drain_notifier`] first, then take work.
    pub fn notify_fd(&self) -> RawFd {
        self.inner.notifier.fd()
    }

    pub fn drain_notifier(&self) {
        self.inner.notifier.drain();
    }
}
