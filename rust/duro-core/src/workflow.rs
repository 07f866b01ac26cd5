//! Definitions of builder workflows: a fixed list of steps, validated once.
//!
//! The definition holds names, kinds and policies only; the functions stay
//! with the caller (Python), which refers to them by step index.

use std::collections::HashSet;

use crate::error::CoreError;
use crate::limits::Limits;
use crate::retry::RetryPolicy;
use crate::time::Millis;

#[derive(Debug, Clone, PartialEq)]
pub enum StepDefKind {
    /// Calls the user's function at this index.
    Task,
    /// A durable timer.
    Sleep { duration_ms: Millis },
    /// A durable wait for the event named like the step; its payload is the step's output.
    WaitEvent { timeout_ms: Option<Millis> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepDef {
    pub name: String,
    pub kind: StepDefKind,
    pub retry: RetryPolicy,
    /// The compensation's retry policy, when the step has a compensation.
    pub compensate: Option<RetryPolicy>,
}

impl StepDef {
    pub fn task(name: impl Into<String>, retry: RetryPolicy) -> StepDef {
        StepDef {
            name: name.into(),
            kind: StepDefKind::Task,
            retry,
            compensate: None,
        }
    }
    pub fn sleep(name: impl Into<String>, duration_ms: Millis) -> StepDef {
        StepDef {
            name: name.into(),
            kind: StepDefKind::Sleep { duration_ms },
            retry: RetryPolicy::no_retry(),
            compensate: None,
        }
    }
    pub fn wait_event(name: impl Into<String>, timeout_ms: Option<Millis>) -> StepDef {
        StepDef {
            name: name.into(),
            kind: StepDefKind::WaitEvent { timeout_ms },
            retry: RetryPolicy::no_retry(),
            compensate: None,
        }
    }
    pub fn with_compensation(mut self, retry: RetryPolicy) -> StepDef {
        self.compensate = Some(retry);
        self
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowDef {
    pub name: String,
    pub version: String,
    pub steps: Vec<StepDef>,
    /// The on-failure handler's retry policy, when the workflow has one.
    pub on_failure: Option<RetryPolicy>,
    /// Workflow timeout, measured from the run's creation.
    pub timeout_ms: Option<Millis>,
}

impl WorkflowDef {
    /// Checks names (non-empty, unique, within limits) and kinds.
    pub fn validate(&self, limits: &Limits) -> Result<(), CoreError> {
        limits.check_name("workflow name", &self.name)?;
        limits.check_name("workflow version", &self.version)?;
        let mut seen = HashSet::new();
        for step in &self.steps {
            limits.check_name("step name", &step.name)?;
            if !seen.insert(step.name.as_str()) {
                return Err(CoreError::InvalidInput {
                    what: "step name",
                    reason: format!(
                        "{:?} is used twice in workflow {:?}; step names must be unique (outputs are keyed by name)",
                        step.name, self.name
                    ),
                });
            }
            if step.compensate.is_some() && step.kind != StepDefKind::Task {
                return Err(CoreError::InvalidInput {
                    what: "compensate",
                    reason: format!("step {:?} is a sleep or event wait; only steps that run a function can be compensated", step.name),
                });
            }
        }
        Ok(())
    }

    pub fn forward_step_count(&self) -> u32 {
        self.steps.len() as u32
    }
}
