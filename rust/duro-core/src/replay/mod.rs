//! The replay machine: a run's events folded into its state ([`RunState`],
//! [`JournalFold`] for a journal read as a stream), and in `steps` the
//! step-level decisions the engine asks for.
//!
//! The same [`RunState::apply`] folds events read back from a store and
//! events the machine emits live (`emit` = apply + push to the caller's
//! outbox), so a run rebuilt from its journal is the run that wrote it.
//!
//! Steps are identified by call order (`seq`) and name: the machine serves a
//! linear builder (see [`crate::linear`]) and, later, code-first workflows,
//! whose code simply asks [`RunState::begin_step`] in the order it runs.

use std::sync::Arc;

use crate::error::CoreError;
use crate::journal::{ErrorInfo, Event, RunKey, Seq, StepKind};
use crate::time::Millis;

mod steps;

pub use steps::{idempotency_key, StepDecision};

/// The state of one step position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// An attempt started and has no recorded outcome (in flight, or the process died).
    Running,
    /// An attempt failed; the next one is due at the time given.
    RetryWait(Millis),
    Completed,
    /// Failed for good.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepState {
    pub seq: Seq,
    pub kind: StepKind,
    pub name: String,
    /// Attempts started (the current attempt number).
    pub attempts: u32,
    /// Attempts that recorded a failure.
    pub failures: u32,
    pub status: StepStatus,
    /// Shared: handing a loaded run's outputs to its caller (`LoadData`) and
    /// keeping them here costs a reference count each, not a copy.
    pub output: Option<Arc<Vec<u8>>>,
    pub last_error: Option<ErrorInfo>,
    /// A durable timer of this step (sleep end, or event-wait timeout), and whether it fired.
    pub timer_at_ms: Option<Millis>,
    pub timer_fired: bool,
    pub first_started_at_ms: Millis,
    pub ended_at_ms: Option<Millis>,
}

impl StepState {
    /// Attempts that started but never recorded an outcome: each one is a
    /// process that died (or an attempt still in flight).
    pub fn unfinished_attempts(&self) -> u32 {
        let finished = self.failures + u32::from(self.status == StepStatus::Completed);
        self.attempts.saturating_sub(finished)
    }

    pub fn is_done(&self) -> bool {
        matches!(self.status, StepStatus::Completed | StepStatus::Failed)
    }
}

/// An event sent to the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub name: String,
    pub payload: Vec<u8>,
    pub at_ms: Millis,
    /// The wait step that consumed it.
    pub consumed_by: Option<Seq>,
}

/// Why the run turned back to compensate (a failure, a timeout, a cancellation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnBack {
    pub reason: ErrorInfo,
    pub failed_seq: Option<Seq>,
    /// First seq of the compensation phase (steps recorded when it began).
    pub first_seq: Seq,
    pub at_ms: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Completed { output: Vec<u8> },
    Failed { error: ErrorInfo },
    Cancelled,
}

impl Outcome {
    pub fn status_str(&self) -> &'static str {
        match self {
            Outcome::Completed { .. } => "completed",
            Outcome::Failed { .. } => "failed",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// The fold of one run's journal.
#[derive(Debug, Clone, PartialEq)]
pub struct RunState {
    pub run_key: RunKey,
    pub run_id: String,
    pub workflow: String,
    pub version: String,
    pub input: Vec<u8>,
    pub deadline_ms: Option<Millis>,
    pub start_at_ms: Option<Millis>,
    pub step_count: u32,
    pub created_at_ms: Millis,
    event_count: u32,
    steps: Vec<StepState>,
    /// How many steps from the first are completed: the first open step, kept as
    /// steps complete (a completion is final) so deciding a step is O(1), not a
    /// scan of every step before it (quadratic over a long run and its replay).
    completed_prefix: usize,
    inbox: Vec<Received>,
    paused: bool,
    cancel: Option<bool>,
    turned_back: Option<TurnBack>,
    outcome: Option<Outcome>,
    last_event_at_ms: Millis,
}

/// Most step slots [`JournalFold`] reserves before the first step.
const MAX_STEPS_RESERVED: u32 = 1 << 16;

/// [`RunState::replay_owned`] for a journal handed over one event at a time, as a
/// store reads it (`Store::visit_events`): loading a run from the store takes this
/// path, so a long journal is never held as a list next to the state folded from it.
/// The first error is kept and the events after it are ignored.
#[derive(Debug)]
pub struct JournalFold {
    run_key: RunKey,
    state: Option<RunState>,
    error: Option<CoreError>,
}

impl JournalFold {
    pub fn new(run_key: RunKey) -> JournalFold {
        JournalFold {
            run_key,
            state: None,
            error: None,
        }
    }

    /// Folds the next event in journal order.
    pub fn push(&mut self, event: Event) {
        if self.error.is_some() {
            return;
        }
        let folded = match &mut self.state {
            None => RunState::new(self.run_key, &event).map(|mut state| {
                // Sized for the definition's steps up front: a long run's step
                // list would otherwise be copied on every doubling. Capped, as the
                // count comes from the journal; untouched capacity costs no memory.
                state
                    .steps
                    .reserve(state.step_count.min(MAX_STEPS_RESERVED) as usize);
                self.state = Some(state);
            }),
            Some(state) => state.apply_owned(event),
        };
        if let Err(error) = folded {
            self.error = Some(error);
        }
    }

    /// The state folded from every event pushed, or the first error.
    pub fn finish(self) -> Result<RunState, CoreError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        self.state.ok_or_else(|| CoreError::Inconsistent {
            run_id: format!("#{}", self.run_key),
            detail: "the journal is empty".into(),
        })
    }
}

impl RunState {
    /// Starts the fold with the run's first event, which must be `RunStarted`.
    pub fn new(run_key: RunKey, first: &Event) -> Result<RunState, CoreError> {
        match first {
            Event::RunStarted {
                run_id,
                workflow,
                version,
                input,
                deadline_ms,
                start_at_ms,
                step_count,
                at_ms,
            } => Ok(RunState {
                run_key,
                run_id: run_id.clone(),
                workflow: workflow.clone(),
                version: version.clone(),
                input: input.clone(),
                deadline_ms: *deadline_ms,
                start_at_ms: *start_at_ms,
                step_count: *step_count,
                created_at_ms: *at_ms,
                event_count: 1,
                steps: Vec::new(),
                completed_prefix: 0,
                inbox: Vec::new(),
                paused: false,
                cancel: None,
                turned_back: None,
                outcome: None,
                last_event_at_ms: *at_ms,
            }),
            other => Err(CoreError::Inconsistent {
                run_id: format!("#{run_key}"),
                detail: format!("the first event is {}, not run_started", other.kind_name()),
            }),
        }
    }

    /// Rebuilds a run from its whole journal.
    pub fn replay<'a>(
        run_key: RunKey,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> Result<RunState, CoreError> {
        let mut events = events.into_iter();
        let first = events.next().ok_or_else(|| CoreError::Inconsistent {
            run_id: format!("#{run_key}"),
            detail: "the journal is empty".into(),
        })?;
        let mut state = RunState::new(run_key, first)?;
        for event in events {
            state.apply(event)?;
        }
        Ok(state)
    }

    /// [`replay`](Self::replay) of a journal the caller no longer needs: step outputs
    /// and names are moved into the state instead of copied. For a long journal it
    /// saves an allocation and a copy per event.
    pub fn replay_owned(run_key: RunKey, events: Vec<Event>) -> Result<RunState, CoreError> {
        let mut fold = JournalFold::new(run_key);
        events.into_iter().for_each(|event| fold.push(event));
        fold.finish()
    }

    /// Number of events folded so far: the position of the next append.
    pub fn event_count(&self) -> u32 {
        self.event_count
    }
    pub fn steps(&self) -> &[StepState] {
        &self.steps
    }
    /// The index of the first step not completed (`steps().len()` if every step is).
    pub fn first_open_step(&self) -> usize {
        self.completed_prefix
    }
    pub fn step(&self, seq: Seq) -> Option<&StepState> {
        self.steps.get(seq as usize)
    }
    pub fn inbox(&self) -> &[Received] {
        &self.inbox
    }
    pub fn is_paused(&self) -> bool {
        self.paused
    }
    /// `Some(compensate)` once a cancellation was requested.
    pub fn cancel_requested(&self) -> Option<bool> {
        self.cancel
    }
    pub fn turned_back(&self) -> Option<&TurnBack> {
        self.turned_back.as_ref()
    }
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }
    pub fn is_finished(&self) -> bool {
        self.outcome.is_some()
    }
    pub fn last_event_at_ms(&self) -> Millis {
        self.last_event_at_ms
    }

    /// The first unconsumed event named `name`, if any.
    pub fn pending_event(&self, name: &str) -> Option<&Received> {
        self.inbox
            .iter()
            .find(|r| r.consumed_by.is_none() && r.name == name)
    }

    fn inconsistent(&self, detail: String) -> CoreError {
        CoreError::Inconsistent {
            run_id: self.run_id.clone(),
            detail,
        }
    }

    fn step_mut(&mut self, seq: Seq, event: &'static str) -> Result<&mut StepState, CoreError> {
        if (seq as usize) < self.steps.len() {
            Ok(&mut self.steps[seq as usize])
        } else {
            Err(self.inconsistent(format!("{event} for step #{seq}, which never started")))
        }
    }

    /// [`apply`](Self::apply), moving the step's output or name out of `event` where
    /// the fold would copy it. The checks are `apply`'s own: it folds the event with an
    /// empty output or name (which allocates nothing), then the real one is moved in.
    pub fn apply_owned(&mut self, event: Event) -> Result<(), CoreError> {
        match event {
            Event::StepCompleted {
                seq,
                attempt,
                output,
                at_ms,
            } => {
                self.apply(&Event::StepCompleted {
                    seq,
                    attempt,
                    output: Vec::new(),
                    at_ms,
                })?;
                // `apply` succeeded, so the step exists and was just completed.
                self.steps[seq as usize].output = Some(Arc::new(output));
                Ok(())
            }
            Event::StepStarted {
                seq,
                kind,
                name,
                attempt,
                at_ms,
            } if seq as usize == self.steps.len() => {
                // A new step: `apply` would clone the name into it.
                self.apply(&Event::StepStarted {
                    seq,
                    kind,
                    name: String::new(),
                    attempt,
                    at_ms,
                })?;
                self.steps[seq as usize].name = name;
                Ok(())
            }
            other => self.apply(&other),
        }
    }

    /// Folds one event into the state. Fails (never panics) on a journal that
    /// could not have been written by the machine.
    pub fn apply(&mut self, event: &Event) -> Result<(), CoreError> {
        if let Some(outcome) = &self.outcome {
            return Err(self.inconsistent(format!(
                "{} after the run already {}",
                event.kind_name(),
                outcome.status_str()
            )));
        }
        match event {
            Event::RunStarted { .. } => {
                return Err(self.inconsistent("a second run_started event".into()));
            }
            Event::StepStarted {
                seq,
                kind,
                name,
                attempt,
                at_ms,
            } => {
                let index = *seq as usize;
                if index == self.steps.len() {
                    self.steps.push(StepState {
                        seq: *seq,
                        kind: *kind,
                        name: name.clone(),
                        attempts: *attempt,
                        failures: 0,
                        status: StepStatus::Running,
                        output: None,
                        last_error: None,
                        timer_at_ms: None,
                        timer_fired: false,
                        first_started_at_ms: *at_ms,
                        ended_at_ms: None,
                    });
                } else if index < self.steps.len() {
                    let step = &mut self.steps[index];
                    if step.kind != *kind || step.name != *name {
                        let detail = format!(
                            "step #{seq} started as {} {:?} and again as {kind} {name:?}",
                            step.kind, step.name
                        );
                        return Err(self.inconsistent(detail));
                    }
                    if step.is_done() {
                        return Err(
                            self.inconsistent(format!("step #{seq} started again after it ended"))
                        );
                    }
                    step.attempts = (*attempt).max(step.attempts);
                    step.status = StepStatus::Running;
                } else {
                    return Err(self.inconsistent(format!(
                        "step #{seq} started but only {} steps exist",
                        self.steps.len()
                    )));
                }
            }
            Event::StepCompleted {
                seq, at_ms, output, ..
            } => {
                let step = self.step_mut(*seq, "step_completed")?;
                if step.is_done() {
                    return Err(self.inconsistent(format!("step #{seq} completed twice")));
                }
                step.status = StepStatus::Completed;
                step.output = Some(Arc::new(output.clone()));
                step.ended_at_ms = Some(*at_ms);
                let wait_event = step.kind == StepKind::WaitEvent;
                while self
                    .steps
                    .get(self.completed_prefix)
                    .is_some_and(|s| s.status == StepStatus::Completed)
                {
                    self.completed_prefix += 1;
                }
                let step = &self.steps[*seq as usize];
                if wait_event {
                    let name = step.name.clone();
                    let received = self
                        .inbox
                        .iter_mut()
                        .find(|r| r.consumed_by.is_none() && r.name == name)
                        .ok_or_else(|| CoreError::Inconsistent {
                            run_id: self.run_id.clone(),
                            detail: format!(
                                "wait #{seq} for {name:?} completed without a received event"
                            ),
                        })?;
                    received.consumed_by = Some(*seq);
                }
            }
            Event::StepFailed {
                seq,
                error,
                retry_at_ms,
                at_ms,
                ..
            } => {
                let step = self.step_mut(*seq, "step_failed")?;
                if step.is_done() {
                    return Err(self.inconsistent(format!("step #{seq} failed after it ended")));
                }
                step.failures += 1;
                step.last_error = Some(error.clone());
                match retry_at_ms {
                    Some(at) => step.status = StepStatus::RetryWait(*at),
                    None => {
                        step.status = StepStatus::Failed;
                        step.ended_at_ms = Some(*at_ms);
                    }
                }
            }
            Event::TimerSet {
                seq, fire_at_ms, ..
            } => {
                let step = self.step_mut(*seq, "timer_set")?;
                step.timer_at_ms = Some(*fire_at_ms);
                step.timer_fired = false;
            }
            Event::TimerFired { seq, .. } => {
                let step = self.step_mut(*seq, "timer_fired")?;
                if step.timer_at_ms.is_none() {
                    return Err(
                        self.inconsistent(format!("timer of step #{seq} fired but was never set"))
                    );
                }
                step.timer_fired = true;
            }
            Event::EventReceived {
                name,
                payload,
                at_ms,
            } => {
                self.inbox.push(Received {
                    name: name.clone(),
                    payload: payload.clone(),
                    at_ms: *at_ms,
                    consumed_by: None,
                });
            }
            Event::Paused { .. } => self.paused = true,
            Event::Resumed { .. } => self.paused = false,
            Event::CancelRequested { compensate, .. } => {
                // A second request can only widen it: compensate once asked.
                self.cancel = Some(self.cancel.unwrap_or(false) || *compensate);
            }
            Event::CompensationStarted {
                reason,
                failed_seq,
                at_ms,
            } => {
                if self.turned_back.is_some() {
                    return Err(self.inconsistent("compensation started twice".into()));
                }
                self.turned_back = Some(TurnBack {
                    reason: reason.clone(),
                    failed_seq: *failed_seq,
                    first_seq: self.steps.len() as Seq,
                    at_ms: *at_ms,
                });
            }
            Event::RunCompleted { output, .. } => {
                self.outcome = Some(Outcome::Completed {
                    output: output.clone(),
                })
            }
            Event::RunFailed { error, .. } => {
                self.outcome = Some(Outcome::Failed {
                    error: error.clone(),
                })
            }
            Event::RunCancelled { .. } => self.outcome = Some(Outcome::Cancelled),
        }
        self.event_count += 1;
        self.last_event_at_ms = self.last_event_at_ms.max(event.at_ms());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
