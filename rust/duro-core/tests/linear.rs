//! Behaviour of builder workflows, driven through the sans-IO driver.

mod sim;

use duro_core::error::CoreError;
use duro_core::journal::{error_types, Event, StepKind};
use duro_core::linear::{self, Action, WaitReason};
use duro_core::replay::{Outcome, RunState};
use duro_core::workflow::StepDef;
use sim::*;

fn world(task_fail_pct: u64) -> World {
    World {
        seed: 1,
        task_fail_pct,
        inputs: vec![],
    }
}

fn events(sim: &Sim) -> Vec<Event> {
    sim.groups.iter().flatten().cloned().collect()
}

#[test]
fn happy_path_records_every_step_once() {
    let mut s = Sim::new(
        def(vec![task("reserve"), task("charge"), task("ship")]),
        world(0),
    );
    let end = s.run(&[]);
    assert_eq!(end.outcome, Some(Outcome::Completed { output: vec![] }));
    let names: Vec<_> = end.outputs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["reserve", "charge", "ship"]);
    assert_eq!(s.executions, 3);
    // RunStarted, then per step: StepStarted + StepCompleted, then RunCompleted.
    assert_eq!(events(&s).len(), 1 + 3 * 2 + 1);
}

#[test]
fn retries_follow_the_policy_then_compensate_in_reverse_and_run_on_failure() {
    let mut d = def(vec![
        task("reserve").with_compensation(policy(2, 10)),
        task("charge").with_compensation(policy(2, 10)),
        task("ship"),
    ]);
    d.on_failure = Some(policy(1, 0));
    // Find a seed where ship fails for good but the others succeed.
    let seed = (0..10_000)
        .find(|&seed| {
            let w = World {
                seed,
                task_fail_pct: 50,
                inputs: vec![],
            };
            let ok = |k, i| (0..3).all(|f| w.call(k, Some(i), f).is_ok());
            w.call(StepKind::Task, Some(0), 0).is_ok()
                && w.call(StepKind::Task, Some(1), 0).is_ok()
                && (0..3).all(|f| {
                    w.call(StepKind::Task, Some(2), f)
                        .is_err_and(|e| e.retryable)
                })
                && ok(StepKind::Compensation, 0)
                && ok(StepKind::Compensation, 1)
                && w.call(StepKind::OnFailure, None, 0).is_ok()
        })
        .unwrap();
    let mut s = Sim::new(
        d,
        World {
            seed,
            task_fail_pct: 50,
            inputs: vec![],
        },
    );
    let end = s.run(&[]);
    assert!(matches!(end.outcome, Some(Outcome::Failed { .. })));
    assert_eq!(
        end.compensated,
        ["charge", "reserve"],
        "compensations run in reverse order"
    );
    let kinds: Vec<_> = end
        .steps
        .iter()
        .map(|(_, k, n, _)| (*k, n.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (StepKind::Task, "reserve"),
            (StepKind::Task, "charge"),
            (StepKind::Task, "ship"),
            (StepKind::Compensation, "charge"),
            (StepKind::Compensation, "reserve"),
            (StepKind::OnFailure, "on_failure"),
        ]
    );
    let ship = s.state.step(2).unwrap();
    assert_eq!(
        (ship.attempts, ship.failures),
        (3, 3),
        "max_attempts = 3, no attempt after the last"
    );
    // Backoff: 100 ms, then 200 ms, and no wait after the third failure.
    let retry_times: Vec<_> = events(&s)
        .iter()
        .filter_map(|e| match e {
            Event::StepFailed {
                seq: 2,
                retry_at_ms,
                at_ms,
                ..
            } => Some((*at_ms, *retry_at_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(retry_times, [(0, Some(100)), (100, Some(300)), (300, None)]);
}

#[test]
fn a_failing_compensation_is_recorded_and_named_in_the_run_error() {
    let d = def(vec![task("a").with_compensation(policy(1, 0)), task("b")]);
    let seed = (0..10_000)
        .find(|&seed| {
            let w = World {
                seed,
                task_fail_pct: 50,
                inputs: vec![],
            };
            w.call(StepKind::Task, Some(0), 0).is_ok()
                && w.call(StepKind::Task, Some(1), 0)
                    .is_err_and(|e| !e.retryable)
                && w.call(StepKind::Compensation, Some(0), 0).is_err()
        })
        .unwrap();
    let mut s = Sim::new(
        d,
        World {
            seed,
            task_fail_pct: 50,
            inputs: vec![],
        },
    );
    let end = s.run(&[]);
    let Some(Outcome::Failed { error }) = end.outcome else {
        panic!("{:?}", end.outcome)
    };
    assert!(
        error.message.contains("then compensation of \"a\" failed"),
        "{}",
        error.message
    );
}

#[test]
fn sleep_is_a_durable_timer() {
    let mut s = Sim::new(
        def(vec![task("a"), StepDef::sleep("nap", 5_000), task("b")]),
        world(0),
    );
    let end = s.run(&[]);
    assert!(matches!(end.outcome, Some(Outcome::Completed { .. })));
    assert_eq!(s.now, 5_000);
    // A crash during the sleep keeps the original wake-up time.
    let mut s = Sim::new(def(vec![StepDef::sleep("nap", 5_000), task("b")]), world(0));
    let mut out = Vec::new();
    let action = linear::next_action(&mut s.state, &s.def, &s.limits, 0, &mut out).unwrap();
    assert_eq!(
        action,
        Action::Wait {
            reason: WaitReason::Sleeping,
            wake_at_ms: Some(5_000)
        }
    );
    let mut journal = events(&s);
    journal.append(&mut out);
    let mut recovered = RunState::replay(1, &journal).unwrap();
    let action = linear::next_action(&mut recovered, &s.def, &s.limits, 3_000, &mut out).unwrap();
    assert_eq!(
        action,
        Action::Wait {
            reason: WaitReason::Sleeping,
            wake_at_ms: Some(5_000)
        }
    );
    assert!(out.is_empty(), "waiting again records nothing");
}

#[test]
fn event_wait_delivers_payload_or_times_out() {
    let wf = def(vec![
        StepDef::wait_event("approved", Some(10_000)),
        task("ship"),
    ]);
    let inputs = vec![(
        4_000,
        Input::Event {
            name: "approved".into(),
            payload: b"{\"by\":\"ann\"}".to_vec(),
        },
    )];
    let mut s = Sim::new(
        wf.clone(),
        World {
            seed: 1,
            task_fail_pct: 0,
            inputs,
        },
    );
    let end = s.run(&[]);
    assert!(matches!(end.outcome, Some(Outcome::Completed { .. })));
    assert_eq!(
        end.outputs[0],
        ("approved".into(), b"{\"by\":\"ann\"}".to_vec())
    );

    // An event sent before the wait starts is kept for it.
    let inputs = vec![(
        0,
        Input::Event {
            name: "approved".into(),
            payload: b"1".to_vec(),
        },
    )];
    let mut s = Sim::new(
        wf.clone(),
        World {
            seed: 1,
            task_fail_pct: 0,
            inputs,
        },
    );
    assert!(matches!(
        s.run(&[]).outcome,
        Some(Outcome::Completed { .. })
    ));

    let mut s = Sim::new(wf, world(0));
    let end = s.run(&[]);
    let Some(Outcome::Failed { error }) = end.outcome else {
        panic!()
    };
    assert_eq!(error.error_type, error_types::EVENT_TIMEOUT);
    assert_eq!(s.now, 10_000);
}

#[test]
fn workflow_timeout_fails_the_run_and_closes_the_open_step() {
    let mut wf = def(vec![
        task("a").with_compensation(policy(1, 0)),
        StepDef::sleep("long", 60_000),
        task("b"),
    ]);
    wf.timeout_ms = Some(10_000);
    let mut s = Sim::new(wf, world(0));
    let end = s.run(&[]);
    let Some(Outcome::Failed { error }) = end.outcome else {
        panic!()
    };
    assert_eq!(error.error_type, error_types::WORKFLOW_TIMEOUT);
    assert_eq!(s.now, 10_000, "woken by the deadline, not the sleep");
    assert_eq!(end.compensated, ["a"]);
    assert_eq!(
        s.state
            .step(1)
            .unwrap()
            .last_error
            .as_ref()
            .unwrap()
            .error_type,
        error_types::WORKFLOW_TIMEOUT
    );
}

#[test]
fn pause_holds_the_run_until_resume() {
    let wf = def(vec![task("a"), StepDef::sleep("nap", 1_000), task("b")]);
    let inputs = vec![(500, Input::Pause), (20_000, Input::Resume)];
    let mut s = Sim::new(
        wf,
        World {
            seed: 1,
            task_fail_pct: 0,
            inputs,
        },
    );
    let end = s.run(&[]);
    assert!(matches!(end.outcome, Some(Outcome::Completed { .. })));
    assert_eq!(
        s.now, 20_000,
        "the sleep ended while paused; the run continued on resume"
    );
}

#[test]
fn cancel_with_and_without_compensation() {
    let wf = def(vec![
        task("a").with_compensation(policy(1, 0)),
        StepDef::wait_event("go", None),
        task("b"),
    ]);
    for compensate in [false, true] {
        let inputs = vec![(1_000, Input::Cancel { compensate })];
        let mut s = Sim::new(
            wf.clone(),
            World {
                seed: 7,
                task_fail_pct: 0,
                inputs,
            },
        );
        let end = s.run(&[]);
        assert_eq!(end.outcome, Some(Outcome::Cancelled));
        let expected: &[&str] = if compensate { &["a"] } else { &[] };
        assert_eq!(end.compensated, expected);
    }
}

#[test]
fn cancel_with_compensation_is_not_held_by_a_pause() {
    let wf = def(vec![
        task("a").with_compensation(policy(1, 0)),
        StepDef::wait_event("go", None),
        task("b"),
    ]);
    let inputs = vec![
        (500, Input::Pause),
        (1_000, Input::Cancel { compensate: true }),
    ];
    let mut s = Sim::new(
        wf,
        World {
            seed: 7,
            task_fail_pct: 0,
            inputs,
        },
    );
    let end = s.run(&[]);
    assert!(
        !end.stuck,
        "a paused run cancelled with compensation must not stay paused"
    );
    assert_eq!(end.outcome, Some(Outcome::Cancelled));
    assert_eq!(end.compensated, ["a"]);
}

#[test]
fn the_last_step_completing_after_the_deadline_completes_the_run() {
    // The result was accepted (recorded) before the timeout was: nothing is left to time out.
    let mut wf = def(vec![task("a")]);
    wf.timeout_ms = Some(10);
    let mut s = Sim::new(wf, world(0));
    let mut out = Vec::new();
    let Action::Execute(exec) =
        linear::next_action(&mut s.state, &s.def, &s.limits, 0, &mut out).unwrap()
    else {
        panic!()
    };
    linear::step_succeeded(
        &mut s.state,
        exec.seq,
        exec.attempt,
        b"1".to_vec(),
        50,
        &mut out,
    )
    .unwrap();
    assert_eq!(
        linear::next_action(&mut s.state, &s.def, &s.limits, 50, &mut out).unwrap(),
        Action::Finished
    );
    assert!(matches!(s.state.outcome(), Some(Outcome::Completed { .. })));
}

#[test]
fn delayed_start_waits() {
    let mut s = Sim::with_start(def(vec![task("a")]), world(0), Some(7_000));
    let mut out = Vec::new();
    assert_eq!(
        linear::next_action(&mut s.state, &s.def, &s.limits, 0, &mut out).unwrap(),
        Action::Wait {
            reason: WaitReason::Delayed,
            wake_at_ms: Some(7_000)
        }
    );
    assert!(matches!(
        s.run(&[]).outcome,
        Some(Outcome::Completed { .. })
    ));
    assert_eq!(s.now, 7_000);
}

#[test]
fn a_step_that_keeps_crashing_the_process_stops_at_the_recovery_limit() {
    let mut s = Sim::new(def(vec![task("poison")]), world(0));
    s.limits.max_recovery_attempts = 3;
    let mut out = Vec::new();
    for attempt in 1..=3 {
        let action = linear::next_action(&mut s.state, &s.def, &s.limits, 0, &mut out).unwrap();
        assert!(
            matches!(action, Action::Execute(ref e) if e.attempt == attempt),
            "{action:?}"
        );
        s.groups.push(std::mem::take(&mut out));
        s.crash(false); // the process dies inside the step
    }
    assert_eq!(
        linear::next_action(&mut s.state, &s.def, &s.limits, 0, &mut out).unwrap(),
        Action::Finished
    );
    let Some(Outcome::Failed { error }) = s.state.outcome() else {
        panic!()
    };
    assert_eq!(error.error_type, error_types::RECOVERY_LIMIT);
}

#[test]
fn changed_definitions_are_reported_not_mixed() {
    let original = def(vec![task("reserve"), task("charge"), task("ship")]);
    let mut s = Sim::new(original, world(0));
    s.run(&[]);
    let journal = events(&s);
    let state = RunState::replay(1, &journal[..5]).unwrap(); // reserve and charge recorded
    let check = |steps: Vec<StepDef>| linear::check_against(&state, &def(steps));
    assert!(check(vec![task("reserve"), task("charge"), task("ship")]).is_ok());
    let renamed = check(vec![task("reserve"), task("bill"), task("ship")]).unwrap_err();
    assert_eq!(
        (
            renamed.seq,
            renamed.expected.as_str(),
            renamed.found.as_str()
        ),
        (1, "charge", "bill")
    );
    let reordered = check(vec![task("charge"), task("reserve"), task("ship")]).unwrap_err();
    assert_eq!(
        (reordered.expected.as_str(), reordered.found.as_str()),
        ("reserve", "charge")
    );
    let removed = check(vec![task("reserve")]).unwrap_err();
    assert_eq!(removed.seq, 1);
    assert!(removed.to_string().contains("non-deterministic"));
    let kind_changed = check(vec![task("reserve"), StepDef::sleep("charge", 1)]).unwrap_err();
    assert_eq!(kind_changed.found_kind, StepKind::Sleep);
    // Steps not reached yet count too: the run was started with three.
    let trailing_removed = check(vec![task("reserve"), task("charge")]).unwrap_err();
    assert_eq!(trailing_removed.seq, 2);
    assert!(
        trailing_removed.expected.contains("started with 3 steps"),
        "{trailing_removed}"
    );
    let trailing_added = check(vec![
        task("reserve"),
        task("charge"),
        task("ship"),
        task("audit"),
    ])
    .unwrap_err();
    assert_eq!(
        (trailing_added.seq, trailing_added.found.as_str()),
        (3, "audit")
    );
}

#[test]
fn stale_results_are_refused() {
    let mut s = Sim::new(def(vec![task("a")]), world(0));
    let mut out = Vec::new();
    let Action::Execute(exec) =
        linear::next_action(&mut s.state, &s.def, &s.limits, 0, &mut out).unwrap()
    else {
        panic!()
    };
    linear::step_succeeded(
        &mut s.state,
        exec.seq,
        exec.attempt,
        b"1".to_vec(),
        1,
        &mut out,
    )
    .unwrap();
    let again = linear::step_succeeded(
        &mut s.state,
        exec.seq,
        exec.attempt,
        b"2".to_vec(),
        2,
        &mut out,
    );
    assert!(matches!(again, Err(CoreError::StaleResult { .. })));
}
