//! What the checks build their runs from: a `RunStarted` event (public: the
//! store's own tests start runs with it too), a step's events, and a started,
//! durable run.

use duro_core::journal::{Event, StepKind};

use crate::api::{StartOutcome, Store};

/// A `RunStarted` event for `run_id`.
pub fn started(run_id: &str, workflow: &str, at_ms: u64) -> Event {
    Event::RunStarted {
        run_id: run_id.into(),
        workflow: workflow.into(),
        version: "1".into(),
        input: br#"{"n":1}"#.to_vec(),
        deadline_ms: None,
        start_at_ms: None,
        step_count: 2,
        at_ms,
    }
}

pub(super) fn step(seq: u32, name: &str) -> [Event; 2] {
    [
        Event::StepStarted {
            seq,
            kind: StepKind::Task,
            name: name.into(),
            attempt: 1,
            at_ms: 10 + seq as u64,
        },
        Event::StepCompleted {
            seq,
            attempt: 1,
            output: format!("{{\"out\":{seq}}}").into_bytes(),
            at_ms: 11 + seq as u64,
        },
    ]
}

pub(super) fn start(store: &dyn Store, run_id: &str, workflow: &str, at_ms: u64) -> u64 {
    let (outcome, receipt) = store
        .start_run(&started(run_id, workflow, at_ms), None)
        .expect("start");
    store.wait_durable(receipt).expect("durable");
    match outcome {
        StartOutcome::Created { run_key } => run_key,
        StartOutcome::Existing { .. } => panic!("{run_id} existed"),
    }
}
