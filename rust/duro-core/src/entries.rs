//! The journal as users see it: one entry per step position.

use crate::journal::{ErrorInfo, Seq, StepKind};
use crate::replay::{RunState, StepStatus};
use crate::time::Millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryStatus {
    Running,
    /// Failed an attempt; the next one is scheduled.
    Retrying,
    Sleeping,
    Waiting,
    Completed,
    Failed,
}

impl EntryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryStatus::Running => "running",
            EntryStatus::Retrying => "retrying",
            EntryStatus::Sleeping => "sleeping",
            EntryStatus::Waiting => "waiting",
            EntryStatus::Completed => "completed",
            EntryStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub seq: Seq,
    pub name: String,
    pub kind: StepKind,
    pub status: EntryStatus,
    pub attempt: u32,
    pub output: Option<Vec<u8>>,
    pub error: Option<ErrorInfo>,
    pub started_at_ms: Millis,
    pub completed_at_ms: Option<Millis>,
    pub retry_at_ms: Option<Millis>,
}

impl JournalEntry {
    pub fn duration_ms(&self) -> Option<Millis> {
        self.completed_at_ms
            .map(|end| end.saturating_sub(self.started_at_ms))
    }
}

/// One entry per recorded step, in seq order.
pub fn entries(state: &RunState) -> Vec<JournalEntry> {
    state
        .steps()
        .iter()
        .map(|step| {
            let status = match step.status {
                StepStatus::Completed => EntryStatus::Completed,
                StepStatus::Failed => EntryStatus::Failed,
                StepStatus::RetryWait(_) => EntryStatus::Retrying,
                StepStatus::Running => match step.kind {
                    StepKind::Sleep => EntryStatus::Sleeping,
                    StepKind::WaitEvent => EntryStatus::Waiting,
                    _ => EntryStatus::Running,
                },
            };
            JournalEntry {
                seq: step.seq,
                name: step.name.clone(),
                kind: step.kind,
                status,
                attempt: step.attempts,
                output: step.output.as_deref().cloned(),
                error: step.last_error.clone(),
                started_at_ms: step.first_started_at_ms,
                completed_at_ms: step.ended_at_ms,
                retry_at_ms: match step.status {
                    StepStatus::RetryWait(at) => Some(at),
                    _ => None,
                },
            }
        })
        .collect()
}
