//! The conformance suite: behaviour every [`Store`] must have. Each check
//! takes a fresh, empty store; `run_all` runs them all. Stores call it from
//! their tests (`tests/conformance.rs`), the PostgreSQL store will too.

use std::collections::HashSet;
use std::sync::{Arc, Barrier};

use duro_core::journal::{ErrorInfo, Event, StepKind};
use duro_core::summary::RunStatus;

use crate::api::{RunFilter, StartOutcome, Store};
use crate::error::StoreError;

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

fn step(seq: u32, name: &str) -> [Event; 2] {
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

fn start(store: &dyn Store, run_id: &str, workflow: &str, at_ms: u64) -> u64 {
    let (outcome, receipt) = store
        .start_run(&started(run_id, workflow, at_ms), None)
        .expect("start");
    store.wait_durable(receipt).expect("durable");
    match outcome {
        StartOutcome::Created { run_key } => run_key,
        StartOutcome::Existing { .. } => panic!("{run_id} existed"),
    }
}

/// Starting the same id twice gives the same run and writes nothing.
pub fn start_is_idempotent(store: &dyn Store) {
    let key = start(store, "order-1", "wf", 1);
    let (again, _) = store.start_run(&started("order-1", "wf", 2), None).unwrap();
    assert_eq!(again, StartOutcome::Existing { run_key: key });
    assert_eq!(store.events(key).unwrap().len(), 1);
    assert_eq!(
        store.summary("order-1").unwrap().unwrap().created_at_ms,
        1,
        "the first start wins"
    );
}

/// 64 threads start one id at once: exactly one run.
pub fn concurrent_starts_make_one_run(store: Arc<dyn Store>) {
    let barrier = Arc::new(Barrier::new(64));
    let handles: Vec<_> = (0..64)
        .map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let (outcome, receipt) = store.start_run(&started("same", "wf", i), None).unwrap();
                store.wait_durable(receipt).unwrap();
                outcome
            })
        })
        .collect();
    let outcomes: Vec<StartOutcome> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let created = outcomes
        .iter()
        .filter(|o| matches!(o, StartOutcome::Created { .. }))
        .count();
    assert_eq!(created, 1, "exactly one start creates the run");
    let keys: HashSet<u64> = outcomes.iter().map(|o| o.run_key()).collect();
    assert_eq!(keys.len(), 1, "every caller gets the same run");
    let all = store
        .list(&RunFilter {
            limit: 1000,
            ..RunFilter::default()
        })
        .unwrap();
    assert_eq!(all.iter().filter(|s| s.run_id == "same").count(), 1);
}

/// Appends land at consecutive positions; a wrong expected position is a conflict that writes nothing.
pub fn appends_are_positioned(store: &dyn Store) {
    let key = start(store, "r", "wf", 1);
    let receipt = store.append(key, 1, &step(0, "a"), None).unwrap();
    store.wait_durable(receipt).unwrap();
    match store.append(key, 1, &step(1, "b"), None) {
        Err(StoreError::Conflict {
            expected: 1,
            actual: 3,
            ..
        }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    let receipt = store.append(key, 3, &step(1, "b"), None).unwrap();
    store.wait_durable(receipt).unwrap();
    let events = store.events(key).unwrap();
    assert_eq!(events.len(), 5);
    assert_eq!(events[1..3], step(0, "a"));
    assert_eq!(events[3..5], step(1, "b"));
}

/// The summary follows the events.
pub fn summaries_follow_events(store: &dyn Store) {
    let key = start(store, "s", "wf", 5);
    let summary = store.summary("s").unwrap().unwrap();
    assert_eq!(
        (summary.status, summary.run_key, summary.step_count),
        (RunStatus::Pending, key, 2)
    );
    let mut events = step(0, "a").to_vec();
    events.push(Event::StepStarted {
        seq: 1,
        kind: StepKind::Task,
        name: "b".into(),
        attempt: 1,
        at_ms: 20,
    });
    events.push(Event::StepFailed {
        seq: 1,
        attempt: 1,
        error: ErrorInfo::new("ValueError", "bad", true),
        retry_at_ms: Some(1_000),
        at_ms: 21,
    });
    store
        .wait_durable(store.append(key, 1, &events, None).unwrap())
        .unwrap();
    let summary = store.summary_by_key(key).unwrap().unwrap();
    assert_eq!(summary.status, RunStatus::Running);
    assert_eq!(summary.completed_step_count, 1);
    assert_eq!(summary.current_step.as_deref(), Some("b"));
    assert_eq!(summary.wake_at_ms, Some(1_000));
    assert_eq!(
        summary.error.as_ref().map(|e| e.error_type.as_str()),
        Some("ValueError")
    );
    let end = [Event::RunFailed {
        error: ErrorInfo::new("ValueError", "bad", false),
        at_ms: 30,
    }];
    store
        .wait_durable(store.append(key, 5, &end, None).unwrap())
        .unwrap();
    let summary = store.summary("s").unwrap().unwrap();
    assert_eq!(
        (summary.status, summary.completed_at_ms, summary.wake_at_ms),
        (RunStatus::Failed, Some(30), None)
    );
}

/// Nothing is appended after the terminal event.
pub fn ended_runs_refuse_appends(store: &dyn Store) {
    let key = start(store, "done", "wf", 1);
    store
        .wait_durable(
            store
                .append(key, 1, &[Event::RunCancelled { at_ms: 2 }], None)
                .unwrap(),
        )
        .unwrap();
    assert!(matches!(
        store.append(key, 2, &[Event::Paused { at_ms: 3 }], None),
        Err(StoreError::RunEnded { .. })
    ));
    assert!(matches!(
        store.append(999_999, 0, &[Event::Paused { at_ms: 3 }], None),
        Err(StoreError::UnknownRun { .. })
    ));
}

/// Filters by status, workflow and time; newest first; limited.
pub fn listing_filters(store: &dyn Store) {
    for i in 0..6u64 {
        let key = start(
            store,
            &format!("l{i}"),
            if i % 2 == 0 { "even" } else { "odd" },
            100 + i,
        );
        if i < 2 {
            store
                .wait_durable(
                    store
                        .append(key, 1, &[Event::RunCancelled { at_ms: 200 }], None)
                        .unwrap(),
                )
                .unwrap();
        }
    }
    let ids = |filter: RunFilter| -> Vec<String> {
        store
            .list(&filter)
            .unwrap()
            .into_iter()
            .map(|s| s.run_id)
            .collect()
    };
    assert_eq!(
        ids(RunFilter {
            workflow: Some("even".into()),
            ..RunFilter::default()
        }),
        ["l4", "l2", "l0"]
    );
    assert_eq!(
        ids(RunFilter {
            statuses: vec![RunStatus::Cancelled],
            ..RunFilter::default()
        }),
        ["l1", "l0"]
    );
    assert_eq!(
        ids(RunFilter {
            limit: 2,
            ..RunFilter::default()
        }),
        ["l5", "l4"]
    );
    assert_eq!(
        ids(RunFilter {
            created_after_ms: Some(103),
            created_before_ms: Some(105),
            ..RunFilter::default()
        }),
        ["l4", "l3"]
    );
    let due: Vec<String> = store
        .claim_due("me", 0, 100)
        .unwrap()
        .into_iter()
        .map(|s| s.run_id)
        .collect();
    assert_eq!(due.len(), 4, "unfinished runs are claimable: {due:?}");
    assert!(!due.contains(&"l0".to_string()));
}

/// Payload bytes come back exactly, whatever they hold.
pub fn payloads_round_trip(store: &dyn Store) {
    let key = start(store, "bytes", "wf", 1);
    let payload: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let events = [Event::EventReceived {
        name: "ünïcødé \"q\"".into(),
        payload: payload.clone(),
        at_ms: 2,
    }];
    store
        .wait_durable(store.append(key, 1, &events, None).unwrap())
        .unwrap();
    assert_eq!(store.events(key).unwrap()[1], events[0]);
}

/// Runs every check, each on a fresh store from `make`.
pub fn run_all(make: &dyn Fn() -> Arc<dyn Store>) {
    start_is_idempotent(&*make());
    concurrent_starts_make_one_run(make());
    appends_are_positioned(&*make());
    summaries_follow_events(&*make());
    ended_runs_refuse_appends(&*make());
    listing_filters(&*make());
    payloads_round_trip(&*make());
}
