//! Waits and timers: sleeps and event waits stay dormant until woken, a workflow timeout
//! fails a sleeping run, and every kind of durable timer is restored after a restart and
//! fires in time order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use duro_core::journal::{error_types, ErrorInfo};
use duro_core::summary::RunStatus;
use duro_core::workflow::{StepDef, WorkflowDef};
use duro_engine::{Clock, Engine, EngineConfig, ExecuteWork, LaneId, ManualClock, Wait};
use duro_store::{EmbeddedOptions, EmbeddedStore, Store};

use crate::{defs, drive, memory_engine, ok, policy, task, wf};

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
