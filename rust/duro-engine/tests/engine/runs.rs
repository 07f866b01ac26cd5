//! Starting and running: idempotent starts, runs to completion, acknowledgements counted
//! back to zero, retries that wait for their timer, payloads over the limit.

use std::sync::Arc;

use duro_core::journal::ErrorInfo;
use duro_core::summary::RunStatus;
use duro_engine::{ExecuteWork, LaneId, ManualClock, Wait};

use crate::{defs, drive, embedded_engine, memory_engine, ok, task, wf};

#[test]
fn runs_to_completion_and_starts_are_idempotent() {
    let engine = memory_engine(Arc::new(ManualClock::new(1_000)));
    let def = wf("order", vec![task("reserve"), task("charge"), task("ship")]);
    engine.register(def.clone(), LaneId::Sync).unwrap();
    let started = engine
        .start("order", "1", "o-1", b"{}".to_vec(), None)
        .unwrap();
    assert!(started.created);
    let again = engine
        .start("order", "1", "o-1", b"{}".to_vec(), None)
        .unwrap();
    assert_eq!((again.run_key, again.created), (started.run_key, false));
    let Some(Wait::Finished(outcome)) = drive(&engine, &defs(&[&def]), started.run_key, &mut ok)
    else {
        panic!()
    };
    assert_eq!(outcome.status, RunStatus::Completed);
    let names: Vec<_> = outcome.outputs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["reserve", "charge", "ship"]);
    assert_eq!(engine.journal(started.run_key).unwrap().len(), 3);
    assert!(matches!(
        engine.start("nope", "1", "x", vec![], None),
        Err(duro_engine::EngineError::UnknownWorkflow { .. })
    ));
}

/// Idle workers spin only while an acknowledgement is on its way (`Engine::acks_pending`):
/// the count must come back to zero, or every idle wait would spin.
#[test]
fn pending_acknowledgements_are_counted_back_to_zero() {
    let dir = tempfile::tempdir().unwrap();
    let engine = embedded_engine(dir.path());
    let def = wf("order", vec![task("reserve"), task("charge"), task("ship")]);
    engine.register(def.clone(), LaneId::Sync).unwrap();
    let mut keys = Vec::new();
    for i in 0..20 {
        let id = format!("o-{i}");
        let started = engine
            .start("order", "1", &id, b"{}".to_vec(), None)
            .unwrap();
        // A second start of the same id appends nothing and must not count.
        let again = engine
            .start("order", "1", &id, b"{}".to_vec(), None)
            .unwrap();
        assert!(!again.created);
        keys.push(started.run_key);
    }
    for key in keys {
        let Some(Wait::Finished(outcome)) = drive(&engine, &defs(&[&def]), key, &mut ok) else {
            panic!("run {key} did not finish")
        };
        assert_eq!(outcome.status, RunStatus::Completed);
    }
    assert_eq!(engine.acks_pending(), 0);
}

#[test]
fn a_retry_waits_for_its_timer_and_keeps_its_attempt_count() {
    let clock = Arc::new(ManualClock::new(0));
    let engine = memory_engine(clock.clone());
    let def = wf("flaky", vec![task("call")]);
    engine.register(def.clone(), LaneId::Sync).unwrap();
    let run = engine
        .start("flaky", "1", "f", vec![], None)
        .unwrap()
        .run_key;
    let mut calls = 0;
    let mut handler = |work: &ExecuteWork, _: &str| {
        calls += 1;
        if work.attempt < 3 {
            Err(ErrorInfo::new("Timeout", "try again", true))
        } else {
            Ok(b"1".to_vec())
        }
    };
    assert!(
        drive(&engine, &defs(&[&def]), run, &mut handler).is_none(),
        "waits for the retry timer"
    );
    assert_eq!(engine.summary(run).unwrap().unwrap().wake_at_ms, Some(100));
    clock.set(100);
    engine.fire_due_timers();
    assert!(
        drive(&engine, &defs(&[&def]), run, &mut handler).is_none(),
        "second failure: waits 200 ms"
    );
    clock.set(300);
    engine.fire_due_timers();
    let Some(Wait::Finished(outcome)) = drive(&engine, &defs(&[&def]), run, &mut handler) else {
        panic!()
    };
    assert_eq!((outcome.status, calls), (RunStatus::Completed, 3));
}

#[test]
fn oversized_payloads_are_refused_with_a_typed_error() {
    let engine = memory_engine(Arc::new(ManualClock::new(0)));
    engine
        .register(wf("w", vec![task("a")]), LaneId::Sync)
        .unwrap();
    let limit = engine.limits().max_payload_bytes;
    assert!(engine
        .start("w", "1", "ok", vec![b'x'; limit], None)
        .is_ok());
    let err = engine
        .start("w", "1", "big", vec![b'x'; limit + 1], None)
        .unwrap_err();
    assert!(err.to_string().contains("over the limit"), "{err}");
    assert!(engine.start("w", "1", "", vec![], None).is_err());
}
