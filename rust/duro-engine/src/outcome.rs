//! How a run ended, kept for callers waiting on results.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use duro_core::journal::{ErrorInfo, RunKey, StepKind};
use duro_core::linear::completed_outputs;
use duro_core::replay::{Outcome as CoreOutcome, RunState, StepStatus};
use duro_core::summary::RunStatus;
use duro_core::time::Millis;

/// A finished run as `result()` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    pub run_key: RunKey,
    pub run_id: String,
    pub status: RunStatus,
    /// Outputs of completed forward steps, by name, in step order.
    pub outputs: Vec<(String, Vec<u8>)>,
    /// The run's output when the workflow produced one (code-first); empty for builders.
    pub output: Vec<u8>,
    pub error: Option<ErrorInfo>,
    /// The forward step whose failure ended the run.
    pub failed_step: Option<String>,
    /// Attempts the failed step made.
    pub failed_attempt: u32,
    /// Compensations (and the on-failure handler) that failed for good: (name, error).
    pub compensation_errors: Vec<(String, ErrorInfo)>,
    pub completed_at_ms: Millis,
}

impl RunOutcome {
    /// The outcome of a finished run; `None` if it has not finished.
    pub fn from_state(state: &RunState) -> Option<RunOutcome> {
        let outcome = state.outcome()?;
        let (status, error, output) = match outcome {
            CoreOutcome::Completed { output } => (RunStatus::Completed, None, output.clone()),
            CoreOutcome::Failed { error } => (RunStatus::Failed, Some(error.clone()), Vec::new()),
            CoreOutcome::Cancelled => (RunStatus::Cancelled, None, Vec::new()),
        };
        let failed = state
            .turned_back()
            .and_then(|t| t.failed_seq)
            .and_then(|seq| state.step(seq));
        let failed = failed.or_else(|| {
            // A run that failed with nothing to compensate never turned back: its last step failed.
            if status == RunStatus::Failed {
                state
                    .steps()
                    .iter()
                    .rev()
                    .find(|s| s.status == StepStatus::Failed && s.kind.is_forward())
            } else {
                None
            }
        });
        let first_back = state
            .turned_back()
            .map_or(state.steps().len(), |t| t.first_seq as usize);
        let compensation_errors = state.steps()[first_back..]
            .iter()
            .filter(|s| {
                s.status == StepStatus::Failed
                    && matches!(s.kind, StepKind::Compensation | StepKind::OnFailure)
            })
            .map(|s| (s.name.clone(), s.last_error.clone().unwrap_or_default()))
            .collect();
        Some(RunOutcome {
            run_key: state.run_key,
            run_id: state.run_id.clone(),
            status,
            outputs: completed_outputs(state)
                .map(|(n, o)| (n.to_owned(), o.to_vec()))
                .collect(),
            output,
            error,
            failed_step: failed.map(|s| s.name.clone()),
            failed_attempt: failed.map_or(0, |s| s.attempts),
            compensation_errors,
            completed_at_ms: state.last_event_at_ms(),
        })
    }
}

/// Recently finished runs, bounded, so waiting callers need no store read.
pub struct FinishedCache {
    map: HashMap<RunKey, Arc<RunOutcome>>,
    order: VecDeque<RunKey>,
    capacity: usize,
}

impl FinishedCache {
    pub fn new(capacity: usize) -> FinishedCache {
        FinishedCache {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    pub fn insert(&mut self, outcome: Arc<RunOutcome>) {
        if self.map.insert(outcome.run_key, outcome.clone()).is_none() {
            self.order.push_back(outcome.run_key);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    pub fn get(&self, key: RunKey) -> Option<Arc<RunOutcome>> {
        self.map.get(&key).cloned()
    }
}
