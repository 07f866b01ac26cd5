//! The step-level decisions the engine asks of a run's state: begin a step
//! (replay its recorded result, run an attempt, or wait for a retry), complete
//! it, fail it. Each emits the events it decides, folded by the same `apply`
//! that replays a journal.

use crate::error::{CoreError, NonDeterminism};
use crate::journal::{ErrorInfo, Event, Seq, StepKind};
use crate::retry::{jitter_seed, RetryDecision, RetryPolicy};
use crate::time::Millis;

use super::{RunState, StepState, StepStatus};

/// What the engine should do with a step it is about to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepDecision {
    /// The step completed before: use the recorded output, don't run it.
    Replay { output: Vec<u8> },
    /// The step failed for good before: raise the recorded error, don't run it.
    ReplayFailed { error: ErrorInfo },
    /// Run attempt `attempt` (a `StepStarted` was emitted).
    Run { attempt: u32 },
    /// The previous attempt failed; the next one is due at this time.
    RetryAt(Millis),
}

impl RunState {
    /// Applies `event` and queues it in `out` for the caller to make durable.
    pub fn emit(&mut self, event: Event, out: &mut Vec<Event>) -> Result<(), CoreError> {
        self.apply(&event)?;
        out.push(event);
        Ok(())
    }

    /// "Begin step (seq, name)": replay the recorded result, run an attempt,
    /// or wait for a retry; a different name or kind at a recorded position
    /// is a non-determinism error.
    pub fn begin_step(
        &mut self,
        seq: Seq,
        kind: StepKind,
        name: &str,
        now_ms: Millis,
        out: &mut Vec<Event>,
    ) -> Result<StepDecision, CoreError> {
        let index = seq as usize;
        if index > self.steps.len() {
            return Err(CoreError::InvalidInput {
                what: "step seq",
                reason: format!(
                    "step #{seq} asked for, but the next step is #{}",
                    self.steps.len()
                ),
            });
        }
        if index == self.steps.len() {
            self.emit(
                Event::StepStarted {
                    seq,
                    kind,
                    name: name.to_owned(),
                    attempt: 1,
                    at_ms: now_ms,
                },
                out,
            )?;
            return Ok(StepDecision::Run { attempt: 1 });
        }
        let step = &self.steps[index];
        if step.kind != kind || step.name != name {
            return Err(NonDeterminism {
                seq,
                expected: step.name.clone(),
                expected_kind: step.kind,
                found: name.to_owned(),
                found_kind: kind,
            }
            .into());
        }
        match step.status {
            StepStatus::Completed => Ok(StepDecision::Replay {
                output: step.output.as_deref().cloned().unwrap_or_default(),
            }),
            StepStatus::Failed => Ok(StepDecision::ReplayFailed {
                error: step.last_error.clone().unwrap_or_default(),
            }),
            StepStatus::RetryWait(at) if at > now_ms => Ok(StepDecision::RetryAt(at)),
            StepStatus::RetryWait(_) | StepStatus::Running => {
                let attempt = step.attempts + 1;
                self.emit(
                    Event::StepStarted {
                        seq,
                        kind,
                        name: name.to_owned(),
                        attempt,
                        at_ms: now_ms,
                    },
                    out,
                )?;
                Ok(StepDecision::Run { attempt })
            }
        }
    }

    fn running_attempt(&self, seq: Seq, attempt: u32) -> Result<&StepState, CoreError> {
        let step = self
            .steps
            .get(seq as usize)
            .ok_or_else(|| CoreError::StaleResult {
                run_id: self.run_id.clone(),
                seq,
                why: "no such step",
            })?;
        if step.status != StepStatus::Running || step.attempts != attempt {
            return Err(CoreError::StaleResult {
                run_id: self.run_id.clone(),
                seq,
                why: "a newer attempt started, or the step already has an outcome",
            });
        }
        Ok(step)
    }

    /// The running attempt returned `output`.
    pub fn complete_step(
        &mut self,
        seq: Seq,
        attempt: u32,
        output: Vec<u8>,
        now_ms: Millis,
        out: &mut Vec<Event>,
    ) -> Result<(), CoreError> {
        self.running_attempt(seq, attempt)?;
        self.emit(
            Event::StepCompleted {
                seq,
                attempt,
                output,
                at_ms: now_ms,
            },
            out,
        )
    }

    /// The running attempt failed with `error`: retry at a time chosen by
    /// `policy` (recorded, so replay agrees) or give up.
    pub fn fail_step(
        &mut self,
        seq: Seq,
        attempt: u32,
        error: ErrorInfo,
        policy: &RetryPolicy,
        now_ms: Millis,
        out: &mut Vec<Event>,
    ) -> Result<RetryDecision, CoreError> {
        let step = self.running_attempt(seq, attempt)?;
        let decision = policy.decide(
            &error,
            step.failures + 1,
            now_ms,
            jitter_seed(&self.run_id, seq, attempt),
        );
        let retry_at_ms = match decision {
            RetryDecision::RetryAt(at) => Some(at),
            RetryDecision::GiveUp(_) => None,
        };
        self.emit(
            Event::StepFailed {
                seq,
                attempt,
                error,
                retry_at_ms,
                at_ms: now_ms,
            },
            out,
        )?;
        Ok(decision)
    }
}

/// The idempotency key of a step: stable across attempts and restarts.
pub fn idempotency_key(run_id: &str, kind: StepKind, name: &str) -> String {
    match kind {
        StepKind::Compensation => format!("{run_id}:compensate:{name}"),
        StepKind::OnFailure => format!("{run_id}:on_failure"),
        _ => format!("{run_id}:{name}"),
    }
}
