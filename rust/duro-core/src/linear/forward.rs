//! The forward phase of a builder workflow: its steps, sleeps and event waits
//! in definition order (seq = index in the definition), until the run
//! completes, turns back (a step gave up, or the deadline passed) or has to wait.

use crate::error::CoreError;
use crate::journal::{error_types, ErrorInfo, Event, Seq, StepKind};
use crate::limits::Limits;
use crate::replay::{RunState, StepStatus};
use crate::time::Millis;
use crate::workflow::{StepDefKind, WorkflowDef};

use super::compensate::turn_back;
use super::steps::{drive_function_step, give_up, min_opt};
use super::{Action, WaitReason};

/// The forward phase: the definition's steps in order, from the first one not
/// completed. `Ok(None)` means "state changed, decide again".
pub(super) fn forward_phase(
    state: &mut RunState,
    def: &WorkflowDef,
    limits: &Limits,
    now_ms: Millis,
    out: &mut Vec<Event>,
) -> Result<Option<Action>, CoreError> {
    if let Some(start_at) = state.start_at_ms {
        if state.steps().is_empty() && start_at > now_ms {
            return Ok(Some(Action::Wait {
                reason: WaitReason::Delayed,
                wake_at_ms: Some(start_at),
            }));
        }
    }
    let current = state.first_open_step();
    if current >= def.steps.len() {
        // Every step completed, the last one possibly just after the
        // deadline (its result was accepted before the timeout was recorded).
        state.emit(
            Event::RunCompleted {
                output: Vec::new(),
                at_ms: now_ms,
            },
            out,
        )?;
        return Ok(Some(Action::Finished));
    }
    if let Some(deadline) = state.deadline_ms {
        if now_ms >= deadline {
            let reason = ErrorInfo::new(
                error_types::WORKFLOW_TIMEOUT,
                format!(
                    "the workflow did not finish within its timeout of {} ms",
                    deadline.saturating_sub(state.created_at_ms)
                ),
                false,
            );
            let failed_seq = state.step(current as Seq).map(|s| s.seq);
            turn_back(state, def, reason, failed_seq, now_ms, out)?;
            return Ok(None);
        }
    }
    if let Some(step) = state.step(current as Seq) {
        if step.status == StepStatus::Failed {
            let reason = step.last_error.clone().unwrap_or_default();
            turn_back(state, def, reason, Some(current as Seq), now_ms, out)?;
            return Ok(None);
        }
    }
    let Some(step_def) = def.steps.get(current) else {
        state.emit(
            Event::RunCompleted {
                output: Vec::new(),
                at_ms: now_ms,
            },
            out,
        )?;
        return Ok(Some(Action::Finished));
    };
    let seq = current as Seq;
    let deadline = state.deadline_ms;
    match &step_def.kind {
        StepDefKind::Task => {
            let name = step_def.name.clone();
            if let Some(action) = drive_function_step(
                state,
                limits,
                seq,
                StepKind::Task,
                &name,
                Some(current),
                deadline,
                now_ms,
                out,
            )? {
                return Ok(Some(action));
            }
        }
        StepDefKind::Sleep { duration_ms } => {
            if state.step(seq).is_none() {
                state.begin_step(seq, StepKind::Sleep, &step_def.name, now_ms, out)?;
            }
            // Also when only the start was recorded: a torn group can lose the timer.
            if state.step(seq).is_some_and(|s| s.timer_at_ms.is_none()) {
                let fire_at_ms = now_ms.saturating_add(*duration_ms);
                state.emit(
                    Event::TimerSet {
                        seq,
                        fire_at_ms,
                        at_ms: now_ms,
                    },
                    out,
                )?;
            }
            let step = state.step(seq).expect("sleep step recorded above");
            let (fire_at, attempt) = (step.timer_at_ms.unwrap_or(now_ms), step.attempts);
            if fire_at > now_ms {
                return Ok(Some(Action::Wait {
                    reason: WaitReason::Sleeping,
                    wake_at_ms: Some(min_opt(fire_at, deadline)),
                }));
            }
            state.emit(Event::TimerFired { seq, at_ms: now_ms }, out)?;
            state.emit(
                Event::StepCompleted {
                    seq,
                    attempt,
                    output: Vec::new(),
                    at_ms: now_ms,
                },
                out,
            )?;
        }
        StepDefKind::WaitEvent { timeout_ms } => {
            if state.step(seq).is_none() {
                state.begin_step(seq, StepKind::WaitEvent, &step_def.name, now_ms, out)?;
            }
            if let Some(timeout) = timeout_ms {
                if state.step(seq).is_some_and(|s| s.timer_at_ms.is_none()) {
                    let fire_at_ms = now_ms.saturating_add(*timeout);
                    state.emit(
                        Event::TimerSet {
                            seq,
                            fire_at_ms,
                            at_ms: now_ms,
                        },
                        out,
                    )?;
                }
            }
            let attempt = state.step(seq).map_or(1, |s| s.attempts);
            if let Some(received) = state.pending_event(&step_def.name) {
                let output = received.payload.clone();
                state.emit(
                    Event::StepCompleted {
                        seq,
                        attempt,
                        output,
                        at_ms: now_ms,
                    },
                    out,
                )?;
                return Ok(None);
            }
            let timer_at = state.step(seq).and_then(|s| s.timer_at_ms);
            match timer_at {
                Some(at) if at <= now_ms => {
                    state.emit(Event::TimerFired { seq, at_ms: now_ms }, out)?;
                    let error = ErrorInfo::new(
                        error_types::EVENT_TIMEOUT,
                        format!(
                            "no event {:?} arrived before the wait's timeout",
                            step_def.name
                        ),
                        false,
                    );
                    give_up(state, seq, attempt, error, now_ms, out)?;
                }
                _ => {
                    let wake = match (timer_at, deadline) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    return Ok(Some(Action::Wait {
                        reason: WaitReason::Event,
                        wake_at_ms: wake,
                    }));
                }
            }
        }
    }
    Ok(None)
}
