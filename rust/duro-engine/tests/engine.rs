//! The engine driven by a simulated caller, over the in-memory and embedded stores.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use duro_core::journal::{error_types, ErrorInfo, StepKind};
use duro_core::retry::RetryPolicy;
use duro_core::summary::RunStatus;
use duro_core::workflow::{StepDef, WorkflowDef};
use duro_engine::{
    Clock, Engine, EngineConfig, ExecuteWork, LaneId, ManualClock, SystemClock, Wait, Work,
};
use duro_store::{EmbeddedOptions, EmbeddedStore, MemoryStore, Store};

fn policy(max_attempts: u32, delay_ms: u64) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(max_attempts)
        .initial_delay_ms(delay_ms)
        .jitter(0.0)
        .build()
        .unwrap()
}

fn wf(name: &str, steps: Vec<StepDef>) -> WorkflowDef {
    WorkflowDef {
        name: name.into(),
        version: "1".into(),
        steps,
        on_failure: None,
        timeout_ms: None,
    }
}

fn task(name: &str) -> StepDef {
    StepDef::task(name, policy(3, 100))
}

fn memory_engine(clock: Arc<ManualClock>) -> Engine {
    Engine::open(Arc::new(MemoryStore::new()), EngineConfig::default(), clock).unwrap()
}

fn embedded_engine(dir: &Path) -> Engine {
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(dir, EmbeddedOptions::default()).unwrap());
    Engine::open(store, EngineConfig::default(), Arc::new(SystemClock)).unwrap()
}

type Handler<'a> = dyn FnMut(&ExecuteWork, &str) -> Result<Vec<u8>, ErrorInfo> + 'a;

/// Plays the caller: runs every work of `lane` until `run_key` ends or nothing is left to do.
/// The handler gets the work and the name of what it runs.
fn drive(
    engine: &Engine,
    defs: &HashMap<String, WorkflowDef>,
    run_key: u64,
    handler: &mut Handler<'_>,
) -> Option<Wait> {
    let mut names: HashMap<u64, String> = HashMap::new();
    for _ in 0..10_000 {
        match engine
            .next_work(LaneId::Sync, Duration::from_millis(20))
            .unwrap()
        {
            Some(Work::Execute(work)) => {
                if let Some(load) = &work.load {
                    names.insert(work.handle, load.workflow.clone());
                }
                let def = &defs[&names[&work.handle]];
                let name = match work.kind {
                    StepKind::OnFailure => "on_failure".to_string(),
                    _ => def.steps[work.step_index.unwrap()].name.clone(),
                };
                match handler(&work, &name) {
                    Ok(output) => engine
                        .step_succeeded(work.handle, work.seq, work.attempt, output)
                        .unwrap(),
                    Err(error) => engine
                        .step_failed(work.handle, work.seq, work.attempt, error)
                        .unwrap(),
                }
            }
            Some(Work::Release { handle }) => {
                names.remove(&handle);
            }
            None => match engine.wait_finished(run_key, Some(Duration::ZERO)).unwrap() {
                Wait::TimedOut => return None,
                done => return Some(done),
            },
        }
    }
    panic!("run never settled")
}

fn ok(work: &ExecuteWork, name: &str) -> Result<Vec<u8>, ErrorInfo> {
    Ok(format!("\"{name}#{}\"", work.attempt).into_bytes())
}

fn defs(list: &[&WorkflowDef]) -> HashMap<String, WorkflowDef> {
    list.iter()
        .map(|d| (d.name.clone(), (*d).clone()))
        .collect()
}

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
fn sleeps_and_event_waits_are_dormant_until_woken() {
    let clock = Arc::new(ManualClock::new(0));
    let engine = memory_engine(clock.clone());
    let def = wf(
        "wait",
        vec![
            StepDef::sleep("nap", 3_600_000),
            StepDef::wait_event("approved", None),
            task("ship"),
        ],
    );
    engine.register(def.clone(), LaneId::Sync).unwrap();
    let run = engine
        .start("wait", "1", "w", vec![], None)
        .unwrap()
        .run_key;
    let d = defs(&[&def]);
    assert!(drive(&engine, &d, run, &mut ok).is_none());
    assert_eq!(
        engine.summary(run).unwrap().unwrap().status,
        RunStatus::Sleeping
    );
    assert_eq!(engine.stats().0, 0, "a sleeping run holds no memory");
    clock.advance(3_600_000);
    engine.fire_due_timers();
    assert!(drive(&engine, &d, run, &mut ok).is_none());
    assert_eq!(
        engine.summary(run).unwrap().unwrap().status,
        RunStatus::Waiting
    );
    engine
        .send_event(run, "approved", br#"{"by":"ann"}"#.to_vec())
        .unwrap();
    let Some(Wait::Finished(outcome)) = drive(&engine, &d, run, &mut ok) else {
        panic!()
    };
    assert_eq!(
        outcome.outputs[1],
        ("approved".into(), br#"{"by":"ann"}"#.to_vec())
    );
    assert!(matches!(
        engine.send_event(run, "approved", vec![]),
        Err(duro_engine::EngineError::RunEnded { .. })
    ));
}

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
fn workflow_timeout_fails_a_sleeping_run() {
    let clock = Arc::new(ManualClock::new(0));
    let engine = memory_engine(clock.clone());
    let mut def = wf("slow", vec![StepDef::sleep("nap", 60_000)]);
    def.timeout_ms = Some(10_000);
    engine.register(def.clone(), LaneId::Sync).unwrap();
    let run = engine
        .start("slow", "1", "s", vec![], None)
        .unwrap()
        .run_key;
    assert!(drive(&engine, &defs(&[&def]), run, &mut ok).is_none());
    clock.set(10_000);
    engine.fire_due_timers();
    let Some(Wait::Finished(outcome)) = drive(&engine, &defs(&[&def]), run, &mut ok) else {
        panic!()
    };
    assert_eq!(
        outcome.error.as_ref().unwrap().error_type,
        error_types::WORKFLOW_TIMEOUT
    );
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

#[test]
fn timers_are_restored_after_a_restart_and_fire_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let open = || {
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap());
        Engine::open(store, EngineConfig::default(), clock.clone()).unwrap()
    };
    let naps = [("late", 900u64), ("early", 300), ("middle", 600)];
    let defs: Vec<WorkflowDef> = naps
        .iter()
        .map(|(n, ms)| wf(n, vec![StepDef::sleep("nap", *ms), task("after")]))
        .collect();
    let by_name: HashMap<String, WorkflowDef> =
        defs.iter().map(|d| (d.name.clone(), d.clone())).collect();
    let keys: Vec<u64> = {
        let engine = open();
        let keys: Vec<u64> = defs
            .iter()
            .map(|def| {
                engine.register(def.clone(), LaneId::Sync).unwrap();
                let started = engine
                    .start(&def.name, "1", &format!("{}-run", def.name), vec![], None)
                    .unwrap();
                engine.wait_durable(started.receipt).unwrap();
                started.run_key
            })
            .collect();
        for key in &keys {
            assert!(drive(&engine, &by_name, *key, &mut ok).is_none(), "asleep");
        }
        engine.close().unwrap();
        keys
    };
    let engine = open();
    for def in &defs {
        engine.register(def.clone(), LaneId::Sync).unwrap();
    }
    let finished = |engine: &Engine| -> Vec<&str> {
        keys.iter()
            .zip(naps.iter())
            .filter(|(key, _)| {
                matches!(
                    engine.wait_finished(**key, Some(Duration::ZERO)).unwrap(),
                    Wait::Finished(_)
                )
            })
            .map(|(_, (name, _))| *name)
            .collect()
    };
    let settle = |engine: &Engine| {
        engine.fire_due_timers();
        for key in &keys {
            drive(engine, &by_name, *key, &mut ok);
        }
    };
    settle(&engine);
    assert_eq!(finished(&engine), Vec::<&str>::new(), "nothing is due yet");
    for (at, expect) in [
        (299, vec![]),
        (300, vec!["early"]),
        (599, vec!["early"]),
        (600, vec!["early", "middle"]),
        (900, vec!["late", "early", "middle"]),
    ] {
        clock.set(1_000_000 + at);
        settle(&engine);
        assert_eq!(finished(&engine), expect, "at +{at} ms");
    }
}

/// Every kind of durable timer, restored after a restart: a retry wait (the next attempt
/// keeps its count), a delayed start, an event wait's timeout and a sleep, each set
/// before the engine closed, fire after it reopened in time order and not before.
#[test]
fn retry_waits_delayed_starts_and_event_timeouts_are_restored_after_a_restart() {
    const T0: u64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let open = || {
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap());
        Engine::open(store, EngineConfig::default(), clock.clone()).unwrap()
    };
    let all = [
        wf("nap", vec![StepDef::sleep("nap", 200), task("after")]),
        // Fails once, then waits 400 ms for its retry (policy(3, 400): no jitter).
        wf(
            "retry",
            vec![StepDef::task("flaky", policy(3, 400)), task("after")],
        ),
        // Started with a delay of 700 ms.
        wf("delayed", vec![task("go")]),
        // Waits at most 1 s for an event that never comes.
        wf(
            "event",
            vec![StepDef::wait_event("approved", Some(1_000)), task("after")],
        ),
    ];
    let names: [&'static str; 4] = ["nap", "retry", "delayed", "event"];
    assert!(all.iter().zip(names).all(|(def, name)| def.name == name));
    let by_name = defs(&all.iter().collect::<Vec<_>>());
    // What ran: (run key, step, attempt, ms after T0).
    let mut ran: Vec<(u64, String, u32, u64)> = Vec::new();
    let mut handler = |work: &ExecuteWork, name: &str| -> Result<Vec<u8>, ErrorInfo> {
        ran.push((
            work.run_key,
            name.to_string(),
            work.attempt,
            clock.now_ms() - T0,
        ));
        if name == "flaky" && work.attempt == 1 {
            Err(ErrorInfo::new("Timeout", "try again", true))
        } else {
            ok(work, name)
        }
    };
    let keys: Vec<u64> = {
        let engine = open();
        let mut keys = Vec::new();
        for def in &all {
            engine.register(def.clone(), LaneId::Sync).unwrap();
            let delay = (def.name == "delayed").then_some(700);
            let started = engine
                .start(&def.name, "1", &format!("{}-run", def.name), vec![], delay)
                .unwrap();
            engine.wait_durable(started.receipt).unwrap();
            keys.push(started.run_key);
        }
        for (key, name) in keys.iter().zip(&names) {
            assert!(
                drive(&engine, &by_name, *key, &mut handler).is_none(),
                "{name} waits for its timer"
            );
        }
        let wakes: Vec<Option<u64>> = keys
            .iter()
            .map(|key| engine.summary(*key).unwrap().unwrap().wake_at_ms)
            .collect();
        let expected = [T0 + 200, T0 + 400, T0 + 700, T0 + 1_000].map(Some);
        assert_eq!(wakes, expected, "each run's timer is recorded");
        engine.close().unwrap();
        keys
    };
    let name_of = |key: u64| names[keys.iter().position(|k| *k == key).unwrap()];

    let engine = open();
    for def in &all {
        engine.register(def.clone(), LaneId::Sync).unwrap();
    }
    let mut finished_order: Vec<&str> = Vec::new();
    let mut settle = |finished_order: &mut Vec<&str>| {
        engine.fire_due_timers();
        for key in &keys {
            drive(&engine, &by_name, *key, &mut handler);
        }
        for (key, name) in keys.iter().zip(&names) {
            if !finished_order.contains(name)
                && matches!(
                    engine.wait_finished(*key, Some(Duration::ZERO)).unwrap(),
                    Wait::Finished(_)
                )
            {
                finished_order.push(name);
            }
        }
    };
    settle(&mut finished_order);
    assert!(finished_order.is_empty(), "nothing is due at reopen");
    for (at, expect) in [
        (199, vec![]),
        (200, vec!["nap"]),
        (399, vec!["nap"]),
        (400, vec!["nap", "retry"]),
        (699, vec!["nap", "retry"]),
        (700, vec!["nap", "retry", "delayed"]),
        (999, vec!["nap", "retry", "delayed"]),
        (1_000, vec!["nap", "retry", "delayed", "event"]),
    ] {
        clock.set(T0 + at);
        settle(&mut finished_order);
        assert_eq!(finished_order, expect, "at +{at} ms");
    }
    drop(settle);
    let ran: Vec<(&str, &str, u32, u64)> = ran
        .iter()
        .map(|(key, step, attempt, at)| (name_of(*key), step.as_str(), *attempt, *at))
        .collect();
    assert_eq!(
        ran,
        [
            ("retry", "flaky", 1, 0),
            ("nap", "after", 1, 200),
            ("retry", "flaky", 2, 400),
            ("retry", "after", 1, 400),
            ("delayed", "go", 1, 700),
        ],
        "before the restart only the flaky step ran (and failed); after it, each step ran once, \
         on time, in time order, and the retry was attempt 2: its count survived the restart"
    );
    let Wait::Finished(outcome) = engine.wait_finished(keys[3], Some(Duration::ZERO)).unwrap()
    else {
        panic!("the event wait ended")
    };
    assert_eq!(outcome.status, RunStatus::Failed);
    assert_eq!(
        outcome.error.as_ref().map(|e| e.error_type.as_str()),
        Some(error_types::EVENT_TIMEOUT)
    );
    assert_eq!(outcome.failed_step.as_deref(), Some("approved"));
    assert_eq!(outcome.completed_at_ms, T0 + 1_000);
}
