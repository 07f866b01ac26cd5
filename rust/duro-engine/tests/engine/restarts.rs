//! Restarts: a reopened engine resumes without redoing finished steps, and a changed
//! definition blocks a recovered run without touching it.

use std::time::Duration;

use duro_core::summary::RunStatus;
use duro_core::workflow::StepDef;
use duro_engine::{LaneId, Wait, Work};

use crate::{defs, drive, embedded_engine, ok, task, wf};

#[test]
fn a_restarted_engine_resumes_without_redoing_finished_steps() {
    let dir = tempfile::tempdir().unwrap();
    let def = wf("long", (0..5).map(|i| task(&format!("s{i}"))).collect());
    let d = defs(&[&def]);
    let run = {
        let engine = embedded_engine(dir.path());
        engine.register(def.clone(), LaneId::Sync).unwrap();
        let started = engine.start("long", "1", "L", vec![], None).unwrap();
        engine.wait_durable(started.receipt).unwrap();
        // Run two steps, then "crash" in the third (take its work and never report).
        let mut done = 0;
        loop {
            match engine
                .next_work(LaneId::Sync, Duration::from_secs(5))
                .unwrap()
                .unwrap()
            {
                Work::Execute(w) if done < 2 => {
                    engine
                        .step_succeeded(w.handle, w.seq, w.attempt, b"1".to_vec())
                        .unwrap();
                    done += 1;
                }
                Work::Execute(_) => break,
                Work::Release { .. } => {}
            }
        }
        engine.close().unwrap();
        started.run_key
    };
    // Recovered, it runs s2 again (its start was durable before it ran, so
    // this is attempt 2), and dies in it again.
    {
        let engine = embedded_engine(dir.path());
        assert_eq!(
            engine.lookup("L").unwrap().unwrap().status,
            RunStatus::Running,
            "visible before its workflow is defined"
        );
        engine.register(def.clone(), LaneId::Sync).unwrap();
        match engine
            .next_work(LaneId::Sync, Duration::from_secs(5))
            .unwrap()
            .unwrap()
        {
            Work::Execute(w) => {
                assert_eq!((w.seq, w.attempt), (2, 2), "the interrupted attempt counts")
            }
            other => panic!("{other:?}"),
        }
        engine.close().unwrap();
    }
    let engine = embedded_engine(dir.path());
    engine.register(def.clone(), LaneId::Sync).unwrap();
    let mut executed = Vec::new();
    let Some(Wait::Finished(outcome)) = drive(&engine, &d, run, &mut |w, name| {
        executed.push((name.to_string(), w.attempt));
        ok(w, name)
    }) else {
        panic!()
    };
    assert_eq!(outcome.status, RunStatus::Completed);
    assert_eq!(
        executed[0],
        ("s2".to_string(), 3),
        "two interrupted attempts counted"
    );
    assert_eq!(executed.len(), 3, "s0 and s1 never run again: {executed:?}");
}

#[test]
fn a_changed_definition_blocks_the_run_without_touching_it() {
    let dir = tempfile::tempdir().unwrap();
    let original = wf(
        "order",
        vec![
            task("reserve"),
            StepDef::wait_event("go", None),
            task("ship"),
        ],
    );
    let run = {
        let engine = embedded_engine(dir.path());
        engine.register(original.clone(), LaneId::Sync).unwrap();
        let run = engine
            .start("order", "1", "o", vec![], None)
            .unwrap()
            .run_key;
        assert!(drive(&engine, &defs(&[&original]), run, &mut ok).is_none());
        engine.close().unwrap();
        run
    };
    let engine = embedded_engine(dir.path());
    let renamed = wf(
        "order",
        vec![
            task("reserve-v2"),
            StepDef::wait_event("go", None),
            task("ship"),
        ],
    );
    engine.register(renamed.clone(), LaneId::Sync).unwrap();
    engine.send_event(run, "go", b"1".to_vec()).unwrap();
    assert!(drive(&engine, &defs(&[&renamed]), run, &mut ok)
        .is_some_and(|w| matches!(w, Wait::Blocked(_))));
    let Wait::Blocked(reason) = engine.wait_finished(run, Some(Duration::ZERO)).unwrap() else {
        panic!()
    };
    assert!(
        reason.contains("\"reserve\"") && reason.contains("\"reserve-v2\""),
        "{reason}"
    );
    assert_eq!(
        engine.journal(run).unwrap().len(),
        2,
        "nothing was appended"
    );
    // The original definition back: the run continues.
    engine.register(original.clone(), LaneId::Sync).unwrap();
    let Some(Wait::Finished(outcome)) = drive(&engine, &defs(&[&original]), run, &mut ok) else {
        panic!()
    };
    assert_eq!(outcome.status, RunStatus::Completed);
}

#[test]
fn a_run_its_caller_cannot_run_is_blocked_unchanged_until_registered_again() {
    let dir = tempfile::tempdir().unwrap();
    let def = wf("codec", vec![task("a"), task("b")]);
    let engine = embedded_engine(dir.path());
    engine.register(def.clone(), LaneId::Sync).unwrap();
    let started = engine.start("codec", "1", "c", vec![], None).unwrap();
    engine.wait_durable(started.receipt).unwrap();
    let run = started.run_key;
    let Work::Execute(w) = engine
        .next_work(LaneId::Sync, Duration::from_secs(5))
        .unwrap()
        .unwrap()
    else {
        panic!("expected the first step")
    };
    let journal_before = engine.journal(run).unwrap().len();
    // A report for another attempt is ignored: the run is not blocked by it.
    engine.cannot_run(w.handle, w.seq, w.attempt + 1, "stale".into());
    assert!(engine.blocked_reason(run).is_none());
    engine.cannot_run(
        w.handle,
        w.seq,
        w.attempt,
        "its input cannot be decoded".into(),
    );
    let Wait::CannotRun(reason) = engine.wait_finished(run, Some(Duration::ZERO)).unwrap() else {
        panic!("expected CannotRun")
    };
    assert!(
        reason.contains("\"c\"") && reason.contains("its input cannot be decoded"),
        "{reason}"
    );
    assert_eq!(engine.blocked_reason(run).as_deref(), Some(reason.as_str()));
    // The caller is told to drop its context; no other work comes.
    match engine
        .next_work(LaneId::Sync, Duration::from_millis(50))
        .unwrap()
    {
        Some(Work::Release { handle }) => assert_eq!(handle, w.handle),
        other => panic!("expected the release, got {other:?}"),
    }
    assert!(engine
        .next_work(LaneId::Sync, Duration::from_millis(50))
        .unwrap()
        .is_none());
    assert_eq!(
        engine.journal(run).unwrap().len(),
        journal_before,
        "nothing was appended"
    );
    // Registered again (a fixed process would reopen the store): the run goes on.
    engine.register(def.clone(), LaneId::Sync).unwrap();
    let Some(Wait::Finished(outcome)) = drive(&engine, &defs(&[&def]), run, &mut ok) else {
        panic!()
    };
    assert_eq!(outcome.status, RunStatus::Completed);
    engine.close().unwrap();
}
