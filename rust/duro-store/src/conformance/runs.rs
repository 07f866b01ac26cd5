//! Checks of what readers see of runs: the summary follows the events, and
//! listing filters by status, workflow and creation time, newest first.

use duro_core::journal::{ErrorInfo, Event, StepKind};
use duro_core::summary::RunStatus;

use super::fixtures::{start, step};
use crate::api::{RunFilter, Store};

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
    // Every unfinished run here is runnable (due since its start), so every store hands them out.
    let due: Vec<String> = store
        .claim_due("me", u64::MAX, 100)
        .unwrap()
        .into_iter()
        .map(|s| s.run_id)
        .collect();
    assert_eq!(due.len(), 4, "unfinished runs are claimable: {due:?}");
    assert!(!due.contains(&"l0".to_string()));
}
