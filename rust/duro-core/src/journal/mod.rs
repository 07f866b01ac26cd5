//! The journal: everything that happens to a run, as a sequence of events.
//!
//! A run's journal is append-only. Event 0 is always [`Event::RunStarted`];
//! every later event is appended at the next position (`n`), which stores use
//! as the expected position of an append (a networked store rejects an
//! append whose position was taken: fencing).
//!
//! Steps are identified by their call order (`seq`, 0-based) and name. Every
//! step position starts with [`Event::StepStarted`] (which records its kind
//! and name, so replay can check determinism) and ends with
//! [`Event::StepCompleted`] or a final [`Event::StepFailed`] (one whose
//! `retry_at_ms` is `None`).

mod codec;
pub(crate) mod wire;

pub use codec::{decode_event, encode_event, supports_event_format, EVENT_FORMAT_VERSION};

use crate::time::Millis;

/// The store's compact identifier of a run (the user's `run_id` is a string).
pub type RunKey = u64;
/// Position of a step in a run's call order, 0-based.
pub type Seq = u32;

/// What a step position is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepKind {
    /// A user function.
    Task,
    /// A durable timer (`.sleep(name, duration)`).
    Sleep,
    /// A durable wait for a named event (`.wait_for_event(name)`).
    WaitEvent,
    /// Undoing a completed task after a failure (saga compensation).
    Compensation,
    /// The workflow's on-failure handler.
    OnFailure,
}

impl StepKind {
    pub const ALL: [StepKind; 5] = [
        StepKind::Task,
        StepKind::Sleep,
        StepKind::WaitEvent,
        StepKind::Compensation,
        StepKind::OnFailure,
    ];

    pub fn code(self) -> u8 {
        match self {
            StepKind::Task => 0,
            StepKind::Sleep => 1,
            StepKind::WaitEvent => 2,
            StepKind::Compensation => 3,
            StepKind::OnFailure => 4,
        }
    }

    pub fn from_code(code: u8) -> Option<StepKind> {
        StepKind::ALL.get(code as usize).copied()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Task => "step",
            StepKind::Sleep => "sleep",
            StepKind::WaitEvent => "wait_for_event",
            StepKind::Compensation => "compensation",
            StepKind::OnFailure => "on_failure",
        }
    }

    /// Kinds that are part of the workflow's forward path (counted as "steps").
    pub fn is_forward(self) -> bool {
        matches!(self, StepKind::Task | StepKind::Sleep | StepKind::WaitEvent)
    }
}

impl std::fmt::Display for StepKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure as recorded in the journal: plain strings, never a type name
/// resolved from stored data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorInfo {
    /// The error's type as the user's language names it, e.g. `"ValueError"`.
    pub error_type: String,
    pub message: String,
    /// `false` when the error said it must not be retried.
    pub retryable: bool,
}

impl ErrorInfo {
    pub fn new(error_type: impl Into<String>, message: impl Into<String>, retryable: bool) -> Self {
        ErrorInfo {
            error_type: error_type.into(),
            message: message.into(),
            retryable,
        }
    }
}

/// Error types the engine itself records.
pub mod error_types {
    pub const STEP_TIMEOUT: &str = "StepTimeout";
    pub const WORKFLOW_TIMEOUT: &str = "WorkflowTimeout";
    pub const EVENT_TIMEOUT: &str = "EventTimeout";
    pub const CANCELLED: &str = "Cancelled";
    pub const RECOVERY_LIMIT: &str = "RecoveryLimitExceeded";
    pub const NON_DETERMINISM: &str = "NonDeterminismError";
}

/// One entry of a run's journal.
///
/// Output and payload bytes are opaque to the core (the Python layer's codec
/// produces them); an empty output means "no value".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    RunStarted {
        run_id: String,
        workflow: String,
        version: String,
        input: Vec<u8>,
        /// Absolute time after which the run fails with `WorkflowTimeout`.
        deadline_ms: Option<Millis>,
        /// Delayed start: no step runs before this time.
        start_at_ms: Option<Millis>,
        /// Number of forward steps in the definition (for progress display).
        step_count: u32,
        at_ms: Millis,
    },
    StepStarted {
        seq: Seq,
        kind: StepKind,
        name: String,
        attempt: u32,
        at_ms: Millis,
    },
    StepCompleted {
        seq: Seq,
        attempt: u32,
        output: Vec<u8>,
        at_ms: Millis,
    },
    /// An attempt failed. `retry_at_ms` is the next attempt's time, or `None`
    /// when the step gave up (the step's final outcome).
    StepFailed {
        seq: Seq,
        attempt: u32,
        error: ErrorInfo,
        retry_at_ms: Option<Millis>,
        at_ms: Millis,
    },
    /// A durable timer for the step at `seq` (a sleep, or an event wait's timeout).
    TimerSet {
        seq: Seq,
        fire_at_ms: Millis,
        at_ms: Millis,
    },
    TimerFired {
        seq: Seq,
        at_ms: Millis,
    },
    EventReceived {
        name: String,
        payload: Vec<u8>,
        at_ms: Millis,
    },
    Paused {
        at_ms: Millis,
    },
    Resumed {
        at_ms: Millis,
    },
    CancelRequested {
        compensate: bool,
        at_ms: Millis,
    },
    /// The run turned back: compensations (and the on-failure handler) follow.
    /// `failed_seq` is the step whose failure caused it, if any.
    CompensationStarted {
        reason: ErrorInfo,
        failed_seq: Option<Seq>,
        at_ms: Millis,
    },
    RunCompleted {
        output: Vec<u8>,
        at_ms: Millis,
    },
    RunFailed {
        error: ErrorInfo,
        at_ms: Millis,
    },
    RunCancelled {
        at_ms: Millis,
    },
}

impl Event {
    pub fn at_ms(&self) -> Millis {
        match self {
            Event::RunStarted { at_ms, .. }
            | Event::StepStarted { at_ms, .. }
            | Event::StepCompleted { at_ms, .. }
            | Event::StepFailed { at_ms, .. }
            | Event::TimerSet { at_ms, .. }
            | Event::TimerFired { at_ms, .. }
            | Event::EventReceived { at_ms, .. }
            | Event::Paused { at_ms }
            | Event::Resumed { at_ms }
            | Event::CancelRequested { at_ms, .. }
            | Event::CompensationStarted { at_ms, .. }
            | Event::RunCompleted { at_ms, .. }
            | Event::RunFailed { at_ms, .. }
            | Event::RunCancelled { at_ms } => *at_ms,
        }
    }

    /// True for the events that end a run.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Event::RunCompleted { .. } | Event::RunFailed { .. } | Event::RunCancelled { .. }
        )
    }

    /// A short name for logs and errors.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Event::RunStarted { .. } => "run_started",
            Event::StepStarted { .. } => "step_started",
            Event::StepCompleted { .. } => "step_completed",
            Event::StepFailed { .. } => "step_failed",
            Event::TimerSet { .. } => "timer_set",
            Event::TimerFired { .. } => "timer_fired",
            Event::EventReceived { .. } => "event_received",
            Event::Paused { .. } => "paused",
            Event::Resumed { .. } => "resumed",
            Event::CancelRequested { .. } => "cancel_requested",
            Event::CompensationStarted { .. } => "compensation_started",
            Event::RunCompleted { .. } => "run_completed",
            Event::RunFailed { .. } => "run_failed",
            Event::RunCancelled { .. } => "run_cancelled",
        }
    }
}
