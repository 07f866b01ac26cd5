//! Driving and closing single steps, shared by the forward and the
//! compensation phases: run (or wait to retry) a function step, give up on an
//! attempt, close the step left open when the run turns back or is cancelled.

use crate::error::CoreError;
use crate::journal::{error_types, ErrorInfo, Event, Seq, StepKind};
use crate::limits::Limits;
use crate::replay::{RunState, StepDecision, StepStatus};
use crate::time::Millis;

use super::{Action, Execute, WaitReason};

pub(super) fn min_opt(a: Millis, b: Option<Millis>) -> Millis {
    b.map_or(a, |b| a.min(b))
}

/// Records the end of the open forward step (if any) when the run turns back
/// or is cancelled, so no step is left looking "running" forever.
pub(super) fn close_open_step(
    state: &mut RunState,
    reason: &ErrorInfo,
    now_ms: Millis,
    out: &mut Vec<Event>,
) -> Result<(), CoreError> {
    let forward_end = state
        .turned_back()
        .map_or(state.steps().len(), |t| t.first_seq as usize);
    let open = state.steps()[..forward_end]
        .iter()
        .find(|s| !s.is_done())
        .map(|s| (s.seq, s.attempts));
    if let Some((seq, attempt)) = open {
        let error = ErrorInfo {
            retryable: false,
            ..reason.clone()
        };
        give_up(state, seq, attempt, error, now_ms, out)?;
    }
    Ok(())
}

/// Records that attempt `attempt` of the step at `seq` failed with no retry to follow.
pub(super) fn give_up(
    state: &mut RunState,
    seq: Seq,
    attempt: u32,
    error: ErrorInfo,
    now_ms: Millis,
    out: &mut Vec<Event>,
) -> Result<(), CoreError> {
    let failed = Event::StepFailed {
        seq,
        attempt,
        error,
        retry_at_ms: None,
        at_ms: now_ms,
    };
    state.emit(failed, out)
}

fn recovery_limit_error(name: &str, attempts: u32) -> ErrorInfo {
    ErrorInfo::new(
        error_types::RECOVERY_LIMIT,
        format!(
            "step {name:?} started {attempts} times without finishing (the process died during each attempt); \
             the run was stopped so a crashing step cannot loop forever; fix the cause, then start a new run"
        ),
        false,
    )
}

/// Runs (or waits for) the step at `seq` of kind Task/Compensation/OnFailure.
pub(super) fn drive_function_step(
    state: &mut RunState,
    limits: &Limits,
    seq: Seq,
    kind: StepKind,
    name: &str,
    step_index: Option<usize>,
    wake_cap: Option<Millis>,
    now_ms: Millis,
    out: &mut Vec<Event>,
) -> Result<Option<Action>, CoreError> {
    if let Some(step) = state.step(seq) {
        if step.status == StepStatus::Running
            && step.unfinished_attempts() >= limits.max_recovery_attempts
        {
            let (attempt, error) = (step.attempts, recovery_limit_error(name, step.attempts));
            give_up(state, seq, attempt, error, now_ms, out)?;
            return Ok(None);
        }
    }
    match state.begin_step(seq, kind, name, now_ms, out)? {
        StepDecision::Run { attempt } => Ok(Some(Action::Execute(Execute {
            seq,
            kind,
            step_index,
            attempt,
        }))),
        StepDecision::RetryAt(at) => Ok(Some(Action::Wait {
            reason: WaitReason::RetryBackoff,
            wake_at_ms: Some(min_opt(at, wake_cap)),
        })),
        // Already ended: the caller's loop moves on.
        StepDecision::Replay { .. } | StepDecision::ReplayFailed { .. } => Ok(None),
    }
}
