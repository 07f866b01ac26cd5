//! The module-level functions of `duro._core`: checks and computations the
//! Python side shares with the core (durations, retry policies and their
//! delays, idempotency keys), so both sides agree by construction.

use duro_core::journal::StepKind;
use duro_core::time::parse_duration as core_parse_duration;
use pyo3::prelude::*;

use crate::defs::{retry_policy, RetryTuple};
use crate::errors::{core_to_py, InvalidArgument};

/// Validates a retry policy; returns the effective max delay in ms.
#[pyfunction]
pub(crate) fn validate_retry(policy: RetryTuple) -> PyResult<u64> {
    Ok(retry_policy(policy)?.max_delay_ms())
}

/// Parses "500ms", "30s", "1h30m", "2d" into milliseconds; errors name `field`.
#[pyfunction]
#[pyo3(signature = (text, field = "duration"))]
pub(crate) fn parse_duration(text: &str, field: &str) -> PyResult<u64> {
    // The core wants a static field name; the known fields cover every caller.
    let field: &'static str = match field {
        "timeout" => "timeout",
        "delay" => "delay",
        "initial_delay" => "initial_delay",
        "max_delay" => "max_delay",
        "sleep" => "sleep",
        _ => "duration",
    };
    core_parse_duration(field, text).map_err(|e| core_to_py(e.into()))
}

/// The idempotency key of a step of kind `kind` (a `StepKind` code) named
/// `name` in run `run_id`: stable across attempts and restarts.
#[pyfunction]
pub(crate) fn idempotency_key(run_id: &str, kind: u8, name: &str) -> PyResult<String> {
    let kind = StepKind::from_code(kind)
        .ok_or_else(|| InvalidArgument::new_err(format!("unknown step kind code {kind}")))?;
    Ok(duro_core::replay::idempotency_key(run_id, kind, name))
}

/// The delay before the attempt after `failed_attempt`, for a policy and a
/// run/step (deterministic jitter): lets Python show and test the schedule.
#[pyfunction]
pub(crate) fn retry_delay_ms(
    policy: RetryTuple,
    failed_attempt: u32,
    run_id: &str,
    seq: u32,
) -> PyResult<u64> {
    let policy = retry_policy(policy)?;
    Ok(policy.delay_ms(
        failed_attempt,
        duro_core::retry::jitter_seed(run_id, seq, failed_attempt),
    ))
}
