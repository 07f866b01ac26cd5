//! Workflow definitions as Python passes them (tuples of plain values) turned
//! into the core's `WorkflowDef`: for `Core.register`, and for the definitions
//! `Core()` registers while it opens the store.

use duro_core::retry::RetryPolicy;
use duro_core::workflow::{StepDef, StepDefKind, WorkflowDef};
use duro_engine::LaneId;
use pyo3::prelude::*;

use crate::errors::{core_to_py, InvalidArgument};

/// A retry policy as Python passes it:
/// `(max_attempts, initial_delay_ms, multiplier, max_delay_ms | None, jitter, [non-retryable types])`.
pub type RetryTuple = (u32, u64, f64, Option<u64>, f64, Vec<String>);

pub fn retry_policy(t: RetryTuple) -> PyResult<RetryPolicy> {
    let (max_attempts, initial_delay_ms, multiplier, max_delay_ms, jitter, non_retryable) = t;
    let mut builder = RetryPolicy::builder()
        .max_attempts(max_attempts)
        .initial_delay_ms(initial_delay_ms)
        .multiplier(multiplier)
        .jitter(jitter)
        .non_retryable(non_retryable);
    if let Some(max) = max_delay_ms {
        builder = builder.max_delay_ms(max);
    }
    builder.build().map_err(|e| core_to_py(e.into()))
}

/// A step as Python passes it: `(name, kind, duration_ms, timeout_ms, retry,
/// compensate_retry)` with kind 0 = function, 1 = sleep, 2 = wait for event.
pub type StepTuple = (
    String,
    u8,
    Option<u64>,
    Option<u64>,
    Option<RetryTuple>,
    Option<RetryTuple>,
);

/// A workflow as Python passes it (`Workflow._native_spec`):
/// `(name, version, lane, [step], on_failure_retry, timeout_ms)`, lane 1 = asyncio.
pub type WorkflowTuple = (
    String,
    String,
    u8,
    Vec<StepTuple>,
    Option<RetryTuple>,
    Option<u64>,
);

pub fn workflow_def(spec: WorkflowTuple) -> PyResult<(WorkflowDef, LaneId)> {
    let (name, version, lane, steps, on_failure_retry, timeout_ms) = spec;
    let mut defs = Vec::with_capacity(steps.len());
    for (step_name, kind, duration_ms, step_timeout_ms, retry, compensate) in steps {
        let kind = match kind {
            0 => StepDefKind::Task,
            1 => StepDefKind::Sleep {
                duration_ms: duration_ms.unwrap_or(0),
            },
            2 => StepDefKind::WaitEvent {
                timeout_ms: step_timeout_ms,
            },
            other => {
                return Err(InvalidArgument::new_err(format!(
                    "unknown step kind {other}"
                )))
            }
        };
        defs.push(StepDef {
            name: step_name,
            kind,
            retry: retry
                .map(retry_policy)
                .transpose()?
                .unwrap_or_else(RetryPolicy::no_retry),
            compensate: compensate.map(retry_policy).transpose()?,
        });
    }
    let def = WorkflowDef {
        name,
        version,
        steps: defs,
        on_failure: on_failure_retry.map(retry_policy).transpose()?,
        timeout_ms,
    };
    let lane = if lane == 1 {
        LaneId::Async
    } else {
        LaneId::Sync
    };
    Ok((def, lane))
}
