//! Checks across a reopen: a store that survives one keeps every acknowledged
//! append byte for byte and goes on where it stopped; one that does not is
//! empty when reopened.

use std::sync::Arc;

use duro_core::journal::{encode_event, ErrorInfo, Event};
use duro_core::summary::RunSummary;

use super::durability::RecordingSink;
use super::fixtures::{start, started, step};
use super::StoreFactory;
use crate::api::{RunFilter, StartOutcome, Store};
use crate::error::StoreError;

/// What a run looks like from outside: its summary (without the fold's private state)
/// and each event's encoding.
fn snapshot(store: &dyn Store) -> Vec<(RunSummary, Vec<Vec<u8>>)> {
    let mut runs = store
        .list(&RunFilter {
            limit: 10_000,
            ..RunFilter::default()
        })
        .unwrap();
    runs.sort_by_key(|s| s.run_key);
    runs.into_iter()
        .map(|mut summary| {
            let events = store
                .events(summary.run_key)
                .unwrap()
                .iter()
                .map(|e| {
                    let mut out = Vec::new();
                    encode_event(e, &mut out);
                    out
                })
                .collect();
            summary.fold = Default::default();
            (summary, events)
        })
        .collect()
}

/// Acknowledged appends (by receipt or through the sink) are there after the store is
/// closed and opened again, byte for byte, and the reopened store goes on where it
/// stopped: positions, run ids, run keys, ended runs.
pub fn acknowledged_appends_survive_reopen(factory: &dyn StoreFactory, name: &str) {
    let (kept, ended, sink_acked) = {
        let store = factory.open(name);
        let sink = Arc::new(RecordingSink::default());
        store.set_ack_sink(sink.clone());
        // Acknowledged by receipt.
        let kept = start(&*store, "kept", "wf", 1);
        store
            .wait_durable(store.append(kept, 1, &step(0, "a"), None).unwrap())
            .unwrap();
        let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        let event = [Event::EventReceived {
            name: "bin".into(),
            payload: binary,
            at_ms: 13,
        }];
        store
            .wait_durable(store.append(kept, 3, &event, None).unwrap())
            .unwrap();
        // Acknowledged only through the sink (or durable on return): no wait on the receipt.
        let (outcome, receipt) = store
            .start_run(&started("by-token", "wf", 2), Some(1))
            .unwrap();
        let sink_acked = outcome.run_key();
        let mut tokens = Vec::new();
        if !receipt.durable {
            tokens.push(1);
        }
        let receipt = store.append(sink_acked, 1, &step(0, "t"), Some(2)).unwrap();
        if !receipt.durable {
            tokens.push(2);
        }
        sink.wait_for(&tokens);
        let ended = start(&*store, "ended", "wf", 3);
        let end = [Event::RunFailed {
            error: ErrorInfo::new("E", "no", false),
            at_ms: 30,
        }];
        store
            .wait_durable(store.append(ended, 1, &end, None).unwrap())
            .unwrap();
        store.close().unwrap();
        (kept, ended, sink_acked)
    };
    let before = {
        let store = factory.open(name);
        let before = snapshot(&*store);
        store.close().unwrap();
        before
    };
    assert_eq!(
        before.len(),
        3,
        "every acknowledged start is there after a reopen"
    );
    assert_eq!(
        before
            .iter()
            .map(|(s, e)| (s.run_key, e.len()))
            .collect::<Vec<_>>(),
        [(kept, 4), (sink_acked, 3), (ended, 2)]
    );
    // And again: a second reopen reads the same bytes (nothing was lost or rewritten by the first).
    let store = factory.open(name);
    assert_eq!(
        snapshot(&*store),
        before,
        "a second reopen sees exactly what the first did"
    );
    // It goes on where it stopped.
    assert_eq!(
        store.start_run(&started("kept", "wf", 9), None).unwrap().0,
        StartOutcome::Existing { run_key: kept }
    );
    match store.append(kept, 3, &step(1, "b"), None) {
        Err(StoreError::Conflict {
            expected: 3,
            actual: 4,
            ..
        }) => {}
        other => panic!("an append at a used position after reopen must conflict, got {other:?}"),
    }
    store
        .wait_durable(store.append(kept, 4, &step(1, "b"), None).unwrap())
        .unwrap();
    assert!(matches!(
        store.append(ended, 2, &[Event::Paused { at_ms: 40 }], None),
        Err(StoreError::RunEnded { .. })
    ));
    let new_key = start(&*store, "new", "wf", 50);
    assert!(
        ![kept, ended, sink_acked].contains(&new_key),
        "run keys are not reused after a reopen"
    );
    store.close().unwrap();
}

/// A store that keeps nothing across a restart (capability `survives_reopen = false`)
/// says so truthfully: reopened, it is empty.
pub fn reopened_store_is_empty(factory: &dyn StoreFactory, name: &str) {
    {
        let store = factory.open(name);
        start(&*store, "forgotten", "wf", 1);
        store.close().unwrap();
    }
    let store = factory.open(name);
    assert_eq!(store.summary("forgotten").unwrap(), None);
    assert_eq!(
        store.list(&RunFilter::default()).unwrap(),
        Vec::<RunSummary>::new()
    );
    assert_eq!(
        store.claim_due("any", u64::MAX, 100).unwrap(),
        Vec::<RunSummary>::new()
    );
}
