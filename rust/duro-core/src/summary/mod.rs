//! The queryable summary of a run (status, times, current step, error,
//! next wake-up), folded incrementally from events alone so an index can
//! keep it without holding whole journals.

mod fold;

use crate::journal::{ErrorInfo, Event, RunKey, Seq, StepKind};
use crate::time::Millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    /// Created; no step has started yet (or a delayed start is not due).
    Pending,
    Running,
    /// In a durable sleep.
    Sleeping,
    /// Waiting for an event.
    Waiting,
    Paused,
    Completed,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub const ALL: [RunStatus; 8] = [
        RunStatus::Pending,
        RunStatus::Running,
        RunStatus::Sleeping,
        RunStatus::Waiting,
        RunStatus::Paused,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Sleeping => "sleeping",
            RunStatus::Waiting => "waiting",
            RunStatus::Paused => "paused",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything `meta()` and `runs()` show about a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub run_key: RunKey,
    pub run_id: String,
    pub workflow: String,
    pub version: String,
    pub status: RunStatus,
    pub created_at_ms: Millis,
    pub started_at_ms: Option<Millis>,
    pub updated_at_ms: Millis,
    pub completed_at_ms: Option<Millis>,
    pub current_step: Option<String>,
    pub step_count: u32,
    pub completed_step_count: u32,
    /// The run's error when it failed; while it runs, the last step error.
    pub error: Option<ErrorInfo>,
    /// When the run next needs attention: a past time (when it became
    /// runnable) if it can run now, else its timer, retry, delayed start or
    /// deadline; `None` if only an input can wake it (paused, waiting for an
    /// event without timeout), or it ended.
    pub wake_at_ms: Option<Millis>,
    pub event_count: u32,
    pub fold: SummaryFold,
}

/// The little state the summary fold needs beyond what it shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SummaryFold {
    start_at_ms: Option<Millis>,
    deadline_ms: Option<Millis>,
    /// The step whose attempt or wait is open: (seq, kind).
    open: Option<(Seq, StepKind)>,
    /// Name of the open step (for a wait: the event it waits for).
    open_name: Option<String>,
    /// An input arrived that the run must react to now (an event for its
    /// open wait, or a cancellation).
    input_pending: bool,
    timer: Option<(Seq, Millis)>,
    retry_at_ms: Option<Millis>,
    paused: bool,
    turned_back: bool,
    outcome: Option<RunStatus>,
}

impl RunSummary {
    /// The summary of a run right after its `RunStarted` event; `None` for any other event.
    pub fn start(run_key: RunKey, first: &Event) -> Option<RunSummary> {
        let Event::RunStarted {
            run_id,
            workflow,
            version,
            deadline_ms,
            start_at_ms,
            step_count,
            at_ms,
            ..
        } = first
        else {
            return None;
        };
        let mut summary = RunSummary {
            run_key,
            run_id: run_id.clone(),
            workflow: workflow.clone(),
            version: version.clone(),
            status: RunStatus::Pending,
            created_at_ms: *at_ms,
            started_at_ms: None,
            updated_at_ms: *at_ms,
            completed_at_ms: None,
            current_step: None,
            step_count: *step_count,
            completed_step_count: 0,
            error: None,
            wake_at_ms: None,
            event_count: 1,
            fold: SummaryFold {
                start_at_ms: *start_at_ms,
                deadline_ms: *deadline_ms,
                ..SummaryFold::default()
            },
        };
        summary.derive();
        Some(summary)
    }

    /// Folds one more event (the run's next, in order).
    pub fn apply(&mut self, event: &Event) {
        let f = &mut self.fold;
        match event {
            Event::RunStarted { .. } => {}
            Event::StepStarted {
                seq,
                kind,
                name,
                at_ms,
                ..
            } => {
                self.started_at_ms.get_or_insert(*at_ms);
                self.current_step = Some(name.clone());
                f.open = Some((*seq, *kind));
                f.open_name = Some(name.clone());
                f.retry_at_ms = None;
                f.input_pending = false;
            }
            Event::StepCompleted { seq, .. } => {
                f.input_pending = false;
                if let Some((open_seq, kind)) = f.open {
                    if open_seq == *seq {
                        if kind.is_forward() {
                            self.completed_step_count += 1;
                        }
                        f.open = None;
                    }
                }
                if f.timer.is_some_and(|(s, _)| s == *seq) {
                    f.timer = None;
                }
                if !f.turned_back {
                    self.error = None;
                }
            }
            Event::StepFailed {
                seq,
                error,
                retry_at_ms,
                ..
            } => {
                self.error = Some(error.clone());
                f.retry_at_ms = *retry_at_ms;
                if retry_at_ms.is_none() && f.open.is_some_and(|(s, _)| s == *seq) {
                    f.open = None;
                }
                if f.timer.is_some_and(|(s, _)| s == *seq) {
                    f.timer = None;
                }
            }
            Event::TimerSet {
                seq, fire_at_ms, ..
            } => f.timer = Some((*seq, *fire_at_ms)),
            Event::TimerFired { .. } => f.timer = None,
            Event::EventReceived { name, .. } => {
                if matches!(f.open, Some((_, StepKind::WaitEvent)))
                    && f.open_name.as_deref() == Some(name.as_str())
                {
                    f.input_pending = true;
                }
            }
            Event::Paused { .. } => f.paused = true,
            Event::Resumed { .. } => f.paused = false,
            Event::CancelRequested { .. } => f.input_pending = true,
            Event::CompensationStarted { reason, .. } => {
                f.turned_back = true;
                self.error = Some(reason.clone());
            }
            Event::RunCompleted { at_ms, .. } => {
                f.outcome = Some(RunStatus::Completed);
                self.completed_at_ms = Some(*at_ms);
                self.error = None;
            }
            Event::RunFailed { error, at_ms } => {
                f.outcome = Some(RunStatus::Failed);
                self.completed_at_ms = Some(*at_ms);
                self.error = Some(error.clone());
            }
            Event::RunCancelled { at_ms } => {
                f.outcome = Some(RunStatus::Cancelled);
                self.completed_at_ms = Some(*at_ms);
            }
        }
        self.event_count += 1;
        self.updated_at_ms = self.updated_at_ms.max(event.at_ms());
        self.derive();
    }

    fn derive(&mut self) {
        let f = &self.fold;
        if let Some(outcome) = f.outcome {
            self.status = outcome;
            self.wake_at_ms = None;
            return;
        }
        let mut wake: Option<Millis> = None;
        let mut consider = |at: Option<Millis>| {
            if let Some(at) = at {
                wake = Some(wake.map_or(at, |w: Millis| w.min(at)));
            }
        };
        self.status = if f.paused {
            RunStatus::Paused
        } else if self.started_at_ms.is_none() {
            consider(f.start_at_ms);
            RunStatus::Pending
        } else {
            match f.open {
                Some((_, StepKind::Sleep)) => RunStatus::Sleeping,
                Some((_, StepKind::WaitEvent)) => RunStatus::Waiting,
                _ => RunStatus::Running,
            }
        };
        if f.input_pending {
            // Paused or not, waiting or not: an event for its wait or a cancellation must be handled now.
            consider(Some(self.updated_at_ms));
        }
        if !f.paused {
            let waits_for_time = f.timer.is_some()
                || f.retry_at_ms.is_some()
                || (self.started_at_ms.is_none() && f.start_at_ms.is_some());
            let waits_for_input = matches!(f.open, Some((_, StepKind::WaitEvent)));
            if !waits_for_time && !waits_for_input {
                // Runnable now (between steps, or an attempt was in progress).
                consider(Some(self.updated_at_ms));
            }
            consider(f.timer.map(|(_, at)| at));
            consider(f.retry_at_ms);
            if !f.turned_back {
                consider(f.deadline_ms);
            }
        }
        self.wake_at_ms = wake;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(deadline_ms: Option<Millis>) -> Event {
        Event::RunStarted {
            run_id: "r".into(),
            workflow: "w".into(),
            version: "1".into(),
            input: vec![],
            deadline_ms,
            start_at_ms: None,
            step_count: 3,
            at_ms: 100,
        }
    }

    #[test]
    fn statuses_follow_the_run() {
        let mut s = RunSummary::start(7, &started(Some(10_000))).unwrap();
        assert_eq!(
            (s.status, s.wake_at_ms),
            (RunStatus::Pending, Some(100)),
            "runnable at once"
        );
        s.apply(&Event::StepStarted {
            seq: 0,
            kind: StepKind::Task,
            name: "a".into(),
            attempt: 1,
            at_ms: 110,
        });
        assert_eq!(
            (s.status, s.wake_at_ms),
            (RunStatus::Running, Some(110)),
            "a crash here resumes at once"
        );
        s.apply(&Event::StepFailed {
            seq: 0,
            attempt: 1,
            error: ErrorInfo::new("E", "x", true),
            retry_at_ms: Some(500),
            at_ms: 120,
        });
        assert_eq!((s.status, s.wake_at_ms), (RunStatus::Running, Some(500)));
        s.apply(&Event::StepStarted {
            seq: 0,
            kind: StepKind::Task,
            name: "a".into(),
            attempt: 2,
            at_ms: 500,
        });
        s.apply(&Event::StepCompleted {
            seq: 0,
            attempt: 2,
            output: vec![],
            at_ms: 510,
        });
        assert_eq!((s.completed_step_count, s.error.clone()), (1, None));
        s.apply(&Event::StepStarted {
            seq: 1,
            kind: StepKind::Sleep,
            name: "nap".into(),
            attempt: 1,
            at_ms: 520,
        });
        s.apply(&Event::TimerSet {
            seq: 1,
            fire_at_ms: 5_000,
            at_ms: 520,
        });
        assert_eq!((s.status, s.wake_at_ms), (RunStatus::Sleeping, Some(5_000)));
        s.apply(&Event::Paused { at_ms: 600 });
        assert_eq!((s.status, s.wake_at_ms), (RunStatus::Paused, None));
        s.apply(&Event::Resumed { at_ms: 700 });
        assert_eq!(s.status, RunStatus::Sleeping);
        s.apply(&Event::TimerFired {
            seq: 1,
            at_ms: 5_000,
        });
        s.apply(&Event::StepCompleted {
            seq: 1,
            attempt: 1,
            output: vec![],
            at_ms: 5_000,
        });
        s.apply(&Event::StepStarted {
            seq: 2,
            kind: StepKind::WaitEvent,
            name: "ok".into(),
            attempt: 1,
            at_ms: 5_001,
        });
        assert_eq!((s.status, s.wake_at_ms), (RunStatus::Waiting, Some(10_000)));
        s.apply(&Event::EventReceived {
            name: "other".into(),
            payload: vec![],
            at_ms: 5_002,
        });
        assert_eq!(
            s.wake_at_ms,
            Some(10_000),
            "an event nobody waits for wakes nothing"
        );
        s.apply(&Event::EventReceived {
            name: "ok".into(),
            payload: vec![],
            at_ms: 5_003,
        });
        assert_eq!(
            s.wake_at_ms,
            Some(5_003),
            "the awaited event makes it runnable at once"
        );
        s.apply(&Event::CancelRequested {
            compensate: false,
            at_ms: 5_500,
        });
        assert_eq!(
            s.wake_at_ms,
            Some(5_500),
            "a cancellation is handled at once"
        );
        s.apply(&Event::RunCancelled { at_ms: 6_000 });
        assert_eq!(
            (s.status, s.wake_at_ms, s.completed_at_ms),
            (RunStatus::Cancelled, None, Some(6_000))
        );
        assert_eq!(s.event_count, 16);
        assert_eq!(s.current_step.as_deref(), Some("ok"));
    }
}
