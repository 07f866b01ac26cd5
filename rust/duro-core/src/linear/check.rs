//! Checking a run's journal, rebuilt from the store, against the current
//! definition of its workflow (non-determinism detection).

use crate::error::NonDeterminism;
use crate::journal::StepKind;
use crate::replay::RunState;
use crate::workflow::{StepDefKind, WorkflowDef};

use super::compensate::{compensation_plan, runs_on_failure};
use super::ON_FAILURE_NAME;

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
