//! Controlling a run and failing it: pause, resume, cancel with compensation, and a failure
//! that compensates in reverse then runs on_failure.

use std::sync::Arc;

use duro_core::journal::{ErrorInfo, StepKind};
use duro_core::summary::RunStatus;
use duro_core::workflow::StepDef;
use duro_engine::{LaneId, ManualClock, Wait};

use crate::{defs, drive, memory_engine, ok, policy, task, wf};

#[test]
fn pause_resume_and_cancel_with_compensation() {
    let engine = memory_engine(Arc::new(ManualClock::new(0)));
    let def = wf(
        "saga",
        vec![
            task("a").with_compensation(policy(1, 0)),
            StepDef::wait_event("go", None),
            task("b"),
        ],
    );
    engine.register(def.clone(), LaneId::Sync).unwrap();
    let d = defs(&[&def]);
    let run = engine
        .start("saga", "1", "s", vec![], None)
        .unwrap()
        .run_key;
    assert!(drive(&engine, &d, run, &mut ok).is_none());
    engine.pause(run).unwrap();
    engine.send_event(run, "go", b"1".to_vec()).unwrap();
    assert!(
        drive(&engine, &d, run, &mut ok).is_none(),
        "paused: the event waits"
    );
    assert_eq!(
        engine.summary(run).unwrap().unwrap().status,
        RunStatus::Paused
    );
    engine.resume(run).unwrap();
    let Some(Wait::Finished(outcome)) = drive(&engine, &d, run, &mut ok) else {
        panic!()
    };
    assert_eq!(outcome.status, RunStatus::Completed);

    let run = engine
        .start("saga", "1", "s2", vec![], None)
        .unwrap()
        .run_key;
    assert!(drive(&engine, &d, run, &mut ok).is_none());
    engine.cancel(run, true).unwrap();
    let mut compensated = Vec::new();
    let Some(Wait::Finished(outcome)) = drive(&engine, &d, run, &mut |w, name| {
        if w.kind == StepKind::Compensation {
            compensated.push(name.to_string());
        }
        ok(w, name)
    }) else {
        panic!()
    };
    assert_eq!(
        (outcome.status, compensated),
        (RunStatus::Cancelled, vec!["a".to_string()])
    );
}

#[test]
fn failure_compensates_in_reverse_then_runs_on_failure() {
    let engine = memory_engine(Arc::new(ManualClock::new(0)));
    let mut def = wf(
        "order",
        vec![
            task("reserve").with_compensation(policy(1, 0)),
            task("charge").with_compensation(policy(1, 0)),
            StepDef::task("ship", policy(1, 0)),
        ],
    );
    def.on_failure = Some(policy(1, 0));
    engine.register(def.clone(), LaneId::Sync).unwrap();
    let run = engine
        .start("order", "1", "o", vec![], None)
        .unwrap()
        .run_key;
    let mut seen = Vec::new();
    let Some(Wait::Finished(outcome)) = drive(&engine, &defs(&[&def]), run, &mut |w, name| {
        seen.push(format!("{:?}:{name}", w.kind));
        if w.kind == StepKind::OnFailure {
            let failure = w.failure.as_ref().unwrap();
            assert_eq!(failure.failed_step.as_deref(), Some("ship"));
            assert_eq!(failure.completed_steps, ["reserve", "charge"]);
        }
        if name == "ship" && w.kind == StepKind::Task {
            Err(ErrorInfo::new("CarrierDown", "no trucks", true))
        } else {
            ok(w, name)
        }
    }) else {
        panic!()
    };
    assert_eq!(
        seen,
        [
            "Task:reserve",
            "Task:charge",
            "Task:ship",
            "Compensation:charge",
            "Compensation:reserve",
            "OnFailure:on_failure"
        ]
    );
    assert_eq!(outcome.status, RunStatus::Failed);
    assert_eq!(outcome.failed_step.as_deref(), Some("ship"));
    assert_eq!(outcome.error.as_ref().unwrap().error_type, "CarrierDown");
}
