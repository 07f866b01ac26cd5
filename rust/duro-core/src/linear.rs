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

use crate::error::{CoreError, NonDeterminism};
use crate::journal::{error_types, ErrorInfo, Event, Seq, StepKind};
use crate::limits::Limits;
use crate::replay::{RunState, StepDecision, StepStatus};
use crate::retry::{RetryDecision, RetryPolicy};
use crate::time::Millis;
use crate::workflow::{StepDefKind, WorkflowDef};

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

fn min_opt(a: Millis, b: Option<Millis>) -> Millis {
    b.map_or(a, |b| a.min(b))
}

fn first_open_forward(state: &RunState) -> usize {
    state
        .steps()
        .iter()
        .position(|s| s.status != StepStatus::Completed)
        .unwrap_or(state.steps().len())
}

/// Forward tasks to compensate, in the order to run their compensations.
fn compensation_plan(state: &RunState, def: &WorkflowDef) -> Vec<usize> {
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

fn runs_on_failure(state: &RunState, def: &WorkflowDef) -> bool {
    def.on_failure.is_some() && state.cancel_requested().is_none()
}

/// Checks a journal rebuilt from the store against the current definition:
/// every recorded step must be the step the definition has at that position.
/// Call it once after loading a run; live runs match by construction.
pub fn check_against(state: &RunState, def: &WorkflowDef) -> Result<(), NonDeterminism> {
    let forward_end = state
        .turned_back()
        .map_or(state.steps().len(), |t| t.first_seq as usize);
    for step in &state.steps()[..forward_end] {
        let expected = def.steps.get(step.seq as usize);
        let matches = expected.is_some_and(|d| {
            d.name == step.name
                && matches!(
                    (&d.kind, step.kind),
                    (StepDefKind::Task, StepKind::Task)
                        | (StepDefKind::Sleep { .. }, StepKind::Sleep)
                        | (StepDefKind::WaitEvent { .. }, StepKind::WaitEvent)
                )
        });
        if !matches {
            return Err(NonDeterminism {
                seq: step.seq,
                expected: step.name.clone(),
                expected_kind: step.kind,
                found: expected.map_or_else(
                    || "<no step at this position>".to_owned(),
                    |d| d.name.clone(),
                ),
                found_kind: expected.map_or(StepKind::Task, |d| match d.kind {
                    StepDefKind::Task => StepKind::Task,
                    StepDefKind::Sleep { .. } => StepKind::Sleep,
                    StepDefKind::WaitEvent { .. } => StepKind::WaitEvent,
                }),
            });
        }
    }
    if state.turned_back().is_some() {
        let mut planned: Vec<(StepKind, &str)> = compensation_plan(state, def)
            .into_iter()
            .map(|i| (StepKind::Compensation, def.steps[i].name.as_str()))
            .collect();
        if runs_on_failure(state, def) {
            planned.push((StepKind::OnFailure, ON_FAILURE_NAME));
        }
        for (k, step) in state.steps()[forward_end..].iter().enumerate() {
            let (kind, name) = planned
                .get(k)
                .copied()
                .unwrap_or((StepKind::Compensation, "<nothing planned>"));
            if step.kind != kind || step.name != name {
                return Err(NonDeterminism {
                    seq: step.seq,
                    expected: step.name.clone(),
                    expected_kind: step.kind,
                    found: name.to_owned(),
                    found_kind: kind,
                });
            }
        }
    }
    // The run recorded how many steps its definition had when it started: a
    // definition with steps added or removed at the end (same version) would
    // otherwise finish a run without steps it was started with, or with steps
    // it never had.
    let defined = def.forward_step_count();
    if state.step_count != defined {
        let seq = state.step_count.min(defined);
        let (expected, found) = if defined < state.step_count {
            (
                format!(
                    "<step {seq}: the run was started with {} steps>",
                    state.step_count
                ),
                format!("<no step: the definition now has {defined}>"),
            )
        } else {
            (
                format!(
                    "<the end: the run was started with {} steps>",
                    state.step_count
                ),
                def.steps
                    .get(seq as usize)
                    .map_or_else(String::new, |d| d.name.clone()),
            )
        };
        return Err(NonDeterminism {
            seq,
            expected,
            expected_kind: StepKind::Task,
            found,
            found_kind: StepKind::Task,
        });
    }
    Ok(())
}

/// Records the end of the open forward step (if any) when the run turns back
/// or is cancelled, so no step is left looking "running" forever.
fn close_open_step(
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
fn give_up(
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

/// The run failed (a step gave up, or it timed out): compensate and run the
/// on-failure handler if there is anything to do, else fail it now.
fn turn_back(
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
fn drive_function_step(
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

        // Forward phase.
        if let Some(start_at) = state.start_at_ms {
            if state.steps().is_empty() && start_at > now_ms {
                return Ok(Action::Wait {
                    reason: WaitReason::Delayed,
                    wake_at_ms: Some(start_at),
                });
            }
        }
        let current = first_open_forward(state);
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
            return Ok(Action::Finished);
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
                continue;
            }
        }
        if let Some(step) = state.step(current as Seq) {
            if step.status == StepStatus::Failed {
                let reason = step.last_error.clone().unwrap_or_default();
                turn_back(state, def, reason, Some(current as Seq), now_ms, out)?;
                continue;
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
            return Ok(Action::Finished);
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
                    return Ok(action);
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
                    return Ok(Action::Wait {
                        reason: WaitReason::Sleeping,
                        wake_at_ms: Some(min_opt(fire_at, deadline)),
                    });
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
                    continue;
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
                        return Ok(Action::Wait {
                            reason: WaitReason::Event,
                            wake_at_ms: wake,
                        });
                    }
                }
            }
        }
    }
}

/// Compensations, then the on-failure handler, then the final outcome.
/// `Ok(None)` means "state changed, decide again".
fn compensation_phase(
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

/// Outputs of completed forward steps, by name, in step order: what the
/// workflow's functions see as `prev`, and a completed run's value.
pub fn completed_outputs(state: &RunState) -> Vec<(&str, &[u8])> {
    let forward_end = state
        .turned_back()
        .map_or(state.steps().len(), |t| t.first_seq as usize);
    state.steps()[..forward_end]
        .iter()
        .filter(|s| s.status == StepStatus::Completed)
        .map(|s| (s.name.as_str(), s.output.as_deref().unwrap_or_default()))
        .collect()
}
