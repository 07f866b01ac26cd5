//! Errors of the core. Every message names the cause and what to do next.

use thiserror::Error;

use crate::journal::{Seq, StepKind};

/// A configuration value (retry policy, duration, workflow definition) is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {field}: {reason}")]
pub struct PolicyError {
    /// The name of the offending field, as the user wrote it (e.g. `max_attempts`).
    pub field: &'static str,
    pub reason: String,
}

/// Bytes that do not decode as a journal event.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("journal record ends early: needed {needed} more bytes at offset {offset}; the record is truncated or corrupt")]
    Truncated { offset: usize, needed: usize },
    #[error("unknown journal event type {tag} at offset {offset}; this journal was probably written by a newer duro, upgrade to read it")]
    UnknownEventType { tag: u8, offset: usize },
    #[error("invalid {what} at offset {offset} in a journal record; the record is corrupt")]
    Invalid { what: &'static str, offset: usize },
    #[error("journal record has {extra} unexpected trailing bytes; the record is corrupt")]
    TrailingBytes { extra: usize },
}

/// Replayed code asked for a different step than the journal recorded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "non-deterministic workflow: at step #{seq} the journal recorded {expected_kind} {expected:?} \
     but the code now asks for {found_kind} {found:?}; steps must keep their order and names while \
     runs are in flight (deploy a new workflow version instead, or cancel the affected runs)"
)]
pub struct NonDeterminism {
    pub seq: Seq,
    pub expected: String,
    pub expected_kind: StepKind,
    pub found: String,
    pub found_kind: StepKind,
}

/// Any error the core can return.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CoreError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    NonDeterminism(#[from] NonDeterminism),
    #[error("{what} is {size} bytes, over the limit of {limit} bytes; store large data elsewhere and pass a reference, or raise the limit")]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("invalid {what}: {reason}")]
    InvalidInput { what: &'static str, reason: String },
    #[error("run {run_id:?} is already {status}; {action} is not possible any more")]
    RunFinished {
        run_id: String,
        status: &'static str,
        action: &'static str,
    },
    #[error("journal of run {run_id:?} is inconsistent: {detail}; the store may be corrupt")]
    Inconsistent { run_id: String, detail: String },
    /// The caller handed a step could not run it for a reason of its own
    /// process (it cannot decode the run's input with its codec, say).
    #[error("this process cannot run it: {reason}")]
    CannotRun { reason: String },
    #[error("step #{seq} of run {run_id:?} is not in progress; its result was discarded ({why})")]
    StaleResult {
        run_id: String,
        seq: Seq,
        why: &'static str,
    },
}
