//! Turning back and the compensation phase: once a run failed (or was
//! cancelled with compensation), the compensations of its completed tasks in
//! reverse order, then the on-failure handler, then the final outcome.

use crate::error::CoreError;
use crate::journal::{ErrorInfo, Event, Seq, StepKind};
use crate::limits::Limits;
use crate::replay::{RunState, StepStatus};
use crate::time::Millis;
use crate::workflow::WorkflowDef;

use super::steps::{close_open_step, drive_function_step};
use super::{Action, ON_FAILURE_NAME};

/// Forward tasks to compensate, in the order to run their compensations.
pub(super) fn compensation_plan(state: &RunState, def: &WorkflowDef) -> Vec<usize> {
    let forward_end = state
        .turned_back()
        .map_or(state.steps().len(), |t| t.first_seq as usize);
    let mut plan: Vec<usize> = state.steps()[..forward_end]
        .iter()
        .filter(|s| s.kind == StepKind::Task && s.status == StepStatus::Completed)
        .map(|s| s.seq as usize)
        .filter(|&i| def.steps.get(i).is_some_and(|d| d.compensate.is_some()))
        .collect();
    plan.reverse();
    plan
}

pub(super) fn runs_on_failure(state: &RunState, def: &WorkflowDef) -> bool {
    def.on_failure.is_some() && state.cancel_requested().is_none()
}

/// The run failed (a step gave up, or it timed out): compensate and run the
/// on-failure handler if there is anything to do, else fail it now.
pub(super) fn turn_back(
    state: &mut RunState,
    def: &WorkflowDef,
    reason: ErrorInfo,
    failed_seq: Option<Seq>,
    now_ms: Millis,
    out: &mut Vec<Event>,
) -> Result<(), CoreError> {
    close_open_step(state, &reason, now_ms, out)?;
    if !compensation_plan(state, def).is_empty() || runs_on_failure(state, def) {
        state.emit(
            Event::CompensationStarted {
                reason,
                failed_seq,
                at_ms: now_ms,
            },
            out,
        )
    } else {
        state.emit(
            Event::RunFailed {
                error: reason,
                at_ms: now_ms,
            },
            out,
        )
    }
}

/// Compensations, then the on-failure handler, then the final outcome.
/// `Ok(None)` means "state changed, decide again".
pub(super) fn compensation_phase(
    state: &mut RunState,
    def: &WorkflowDef,
    limits: &Limits,
    now_ms: Millis,
    out: &mut Vec<Event>,
) -> Result<Option<Action>, CoreError> {
    let first_seq = state.turned_back().map(|t| t.first_seq).unwrap_or_default();
    let mut seq = first_seq;
    for index in compensation_plan(state, def) {
        let done = state.step(seq).is_some_and(|s| s.is_done());
        if !done {
            let name = def.steps[index].name.clone();
            return drive_function_step(
                state,
                limits,
                seq,
                StepKind::Compensation,
                &name,
                Some(index),
                None,
                now_ms,
                out,
            );
        }
        seq += 1;
    }
    if runs_on_failure(state, def) {
        let done = state.step(seq).is_some_and(|s| s.is_done());
        if !done {
            return drive_function_step(
                state,
                limits,
                seq,
                StepKind::OnFailure,
                ON_FAILURE_NAME,
                None,
                None,
                now_ms,
                out,
            );
        }
    }
    if state.cancel_requested().is_some() {
        state.emit(Event::RunCancelled { at_ms: now_ms }, out)?;
    } else {
        let error = final_error(state);
        state.emit(
            Event::RunFailed {
                error,
                at_ms: now_ms,
            },
            out,
        )?;
    }
    Ok(Some(Action::Finished))
}

/// The run's error: the reason it turned back, plus every compensation or
/// handler that failed too (recorded, never swallowed).
fn final_error(state: &RunState) -> ErrorInfo {
    let Some(turn) = state.turned_back() else {
        return ErrorInfo::default();
    };
    let mut error = turn.reason.clone();
    for step in &state.steps()[turn.first_seq as usize..] {
        if step.status == StepStatus::Failed {
            let what = if step.kind == StepKind::OnFailure {
                "the on-failure handler".to_owned()
            } else {
                format!("compensation of {:?}", step.name)
            };
            let cause = step.last_error.as_ref().map_or(String::new(), |e| {
                format!("{}: {}", e.error_type, e.message)
            });
            error
                .message
                .push_str(&format!("; then {what} failed ({cause})"));
        }
    }
    error
}
