//! The driver of builder workflows: steps, sleeps and event waits in a fixed
//! order, then (on failure or cancellation) saga compensation in reverse
//! order and the on-failure handler.
//!
//! [`next_action`] is the only place that decides what a run does next. It
//! folds its decisions into the [`RunState`] and queues the events that
//! record them in `out`; the caller makes those durable before acting on the
//! returned [`Action`]. Called on a state rebuilt from the journal it
//! continues exactly where the run stopped.
//!
//! Layout of seqs: forward steps take seq 0..n in definition order (a run
//! records a prefix of them); when the run turns back, compensations take
//! the next seqs in reverse order of the steps they undo, then the
//! on-failure handler.

mod check;
mod compensate;
mod forward;
mod steps;

use crate::error::CoreError;
use crate::journal::{error_types, ErrorInfo, Event, Seq, StepKind};
use crate::limits::Limits;
use crate::replay::{RunState, StepState, StepStatus};
use crate::retry::{RetryDecision, RetryPolicy};
use crate::time::Millis;
use crate::workflow::WorkflowDef;

use compensate::{compensation_phase, compensation_plan};
use forward::forward_phase;
use steps::close_open_step;

pub use check::check_against;

/// Name recorded for the on-failure handler's step.
pub const ON_FAILURE_NAME: &str = "on_failure";

/// What the caller should do next with a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Call user code, then report with [`step_succeeded`] or [`step_failed`].
    Execute(Execute),
    /// Nothing to do until `wake_at_ms`, or until an input arrives (an event,
    /// resume, cancel). `None` means only an input can wake it.
    Wait {
        reason: WaitReason,
        wake_at_ms: Option<Millis>,
    },
    /// The run has ended; see [`RunState::outcome`].
    Finished,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execute {
    pub seq: Seq,
    pub kind: StepKind,
    /// Index into the definition's steps: the step to run, or to compensate.
    /// `None` for the on-failure handler.
    pub step_index: Option<usize>,
    pub attempt: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// A delayed start that is not due yet.
    Delayed,
    /// A durable sleep.
    Sleeping,
    /// A failed attempt waits for its retry.
    RetryBackoff,
    /// Waiting for an event.
    Event,
    /// Paused by the user.
    Paused,
}

/// Decides what the run does next. See the module docs.
pub fn next_action(
    state: &mut RunState,
    def: &WorkflowDef,
    limits: &Limits,
    now_ms: Millis,
    out: &mut Vec<Event>,
) -> Result<Action, CoreError> {
    loop {
        if state.is_finished() {
            return Ok(Action::Finished);
        }
        if let Some(compensate) = state.cancel_requested() {
            let cancelled = ErrorInfo::new(error_types::CANCELLED, "the run was cancelled", false);
            if state.turned_back().is_none() {
                close_open_step(state, &cancelled, now_ms, out)?;
                if compensate && !compensation_plan(state, def).is_empty() {
                    state.emit(
                        Event::CompensationStarted {
                            reason: cancelled,
                            failed_seq: None,
                            at_ms: now_ms,
                        },
                        out,
                    )?;
                    continue;
                }
                state.emit(Event::RunCancelled { at_ms: now_ms }, out)?;
                return Ok(Action::Finished);
            }
            if !compensate {
                state.emit(Event::RunCancelled { at_ms: now_ms }, out)?;
                return Ok(Action::Finished);
            }
        }
        // A pause holds the run at a step boundary; a cancellation that asked
        // for compensation is not held by it (the user wants the run undone).
        if state.is_paused() && state.cancel_requested().is_none() {
            return Ok(Action::Wait {
                reason: WaitReason::Paused,
                wake_at_ms: None,
            });
        }
        if state.turned_back().is_some() {
            match compensation_phase(state, def, limits, now_ms, out)? {
                Some(action) => return Ok(action),
                None => continue,
            }
        }

        match forward_phase(state, def, limits, now_ms, out)? {
            Some(action) => return Ok(action),
            None => continue,
        }
    }
}

/// The attempt reported by `Execute` returned `output`.
pub fn step_succeeded(
    state: &mut RunState,
    seq: Seq,
    attempt: u32,
    output: Vec<u8>,
    now_ms: Millis,
    out: &mut Vec<Event>,
) -> Result<(), CoreError> {
    state.complete_step(seq, attempt, output, now_ms, out)
}

/// The attempt reported by `Execute` failed; the policy of that step (or of
/// its compensation, or of the handler) decides whether to retry.
pub fn step_failed(
    state: &mut RunState,
    def: &WorkflowDef,
    seq: Seq,
    attempt: u32,
    mut error: ErrorInfo,
    limits: &Limits,
    now_ms: Millis,
    out: &mut Vec<Event>,
) -> Result<RetryDecision, CoreError> {
    limits.clip_message(&mut error.message);
    let policy = policy_for(state, def, seq)
        .cloned()
        .unwrap_or_else(RetryPolicy::no_retry);
    state.fail_step(seq, attempt, error, &policy, now_ms, out)
}

fn policy_for<'d>(state: &RunState, def: &'d WorkflowDef, seq: Seq) -> Option<&'d RetryPolicy> {
    let step = state.step(seq)?;
    match step.kind {
        StepKind::Task => def.steps.get(seq as usize).map(|d| &d.retry),
        StepKind::Compensation => def
            .steps
            .iter()
            .find(|d| d.name == step.name)
            .and_then(|d| d.compensate.as_ref()),
        StepKind::OnFailure => def.on_failure.as_ref(),
        StepKind::Sleep | StepKind::WaitEvent => None,
    }
}

/// Completed forward steps, in step order: their outputs are what the
/// workflow's functions see as `prev`, and a completed run's value.
pub fn completed_steps(state: &RunState) -> impl Iterator<Item = &StepState> {
    let forward_end = state
        .turned_back()
        .map_or(state.steps().len(), |t| t.first_seq as usize);
    state.steps()[..forward_end]
        .iter()
        .filter(|s| s.status == StepStatus::Completed)
}

/// Outputs of [`completed_steps`], by name. An iterator, so a caller that
/// copies them makes no list of references first.
pub fn completed_outputs(state: &RunState) -> impl Iterator<Item = (&str, &[u8])> {
    completed_steps(state).map(|s| {
        (
            s.name.as_str(),
            s.output.as_deref().map_or(&[][..], Vec::as_slice),
        )
    })
}
