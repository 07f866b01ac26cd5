//! Checks of what an append or a start writes: starts are idempotent (also
//! when racing), appends land at the positions they expect, ended runs refuse
//! more, payloads come back byte for byte, and appends over the size limit
//! are refused whole.

use std::collections::HashSet;
use std::sync::{Arc, Barrier};

use duro_core::journal::{Event, RunKey};

use super::fixtures::{start, started, step};
use crate::api::{RunFilter, RunIdOrigin, StartOutcome, Store, DEFAULT_MAX_APPEND_BYTES};
use crate::error::StoreError;
use crate::record::append_size;

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

/// Starts with generated ids (which a store need not look up) make runs like
/// any start, each its own; a caller's start of such an id finds its run, and
/// caller ids still find their runs after generated starts.
pub fn generated_ids_start_runs(store: &dyn Store) {
    let caller = start(store, "by-caller", "wf", 1);
    let mut keys = HashSet::from([caller]);
    for i in 0..8 {
        let id = format!("{i:032x}");
        let (outcome, receipt) = store
            .start_run_with(&started(&id, "wf", 2), None, RunIdOrigin::Generated)
            .unwrap();
        let StartOutcome::Created { run_key } = outcome else {
            panic!("a generated id found a run: {outcome:?}");
        };
        assert!(keys.insert(run_key), "run key {run_key} given twice");
        store.wait_durable(receipt).unwrap();
        let (again, _) = store
            .start_run_with(&started(&id, "wf", 3), None, RunIdOrigin::Caller)
            .unwrap();
        assert_eq!(again, StartOutcome::Existing { run_key });
        assert_eq!(store.events(run_key).unwrap().len(), 1);
        assert_eq!(store.summary(&id).unwrap().unwrap().run_key, run_key);
    }
    let (again, _) = store
        .start_run_with(&started("by-caller", "wf", 4), None, RunIdOrigin::Caller)
        .unwrap();
    assert_eq!(again, StartOutcome::Existing { run_key: caller });
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
    // The streamed journal is the same one, and an unknown run is an error there too.
    let mut visited = Vec::new();
    store.visit_events(key, &mut |e| visited.push(e)).unwrap();
    assert_eq!(visited, events);
    match store.visit_events(key + 1000, &mut |e| panic!("visited {e:?}")) {
        Err(StoreError::UnknownRun { run_key }) => assert_eq!(run_key, key + 1000),
        other => panic!("expected UnknownRun, got {other:?}"),
    }
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

/// A payload that fills an append to `size` bytes exactly (by [`append_size`]).
fn event_of_size(run_key: RunKey, position: u32, size: u64) -> Event {
    let make = |n: usize| Event::EventReceived {
        name: "big".into(),
        payload: vec![b'p'; n],
        at_ms: 2,
    };
    let mut n = size.saturating_sub(64) as usize;
    for _ in 0..16 {
        let got = append_size(run_key, position, std::slice::from_ref(&make(n)));
        if got == size {
            return make(n);
        }
        n = (n as i64 + size as i64 - got as i64) as usize;
    }
    panic!("no payload makes an append of exactly {size} bytes")
}

/// Every store applies the same limit, measured the same way, with the same typed error:
/// an append (or start) over [`DEFAULT_MAX_APPEND_BYTES`] by [`append_size`] is
/// [`StoreError::AppendTooLarge`] and writes nothing; one at the limit is kept whole.
pub fn appends_over_the_limit_are_refused(store: &dyn Store) {
    let max = store.max_append_bytes();
    assert_eq!(
        max, DEFAULT_MAX_APPEND_BYTES,
        "factories open stores with the default limit"
    );
    // A start over the limit.
    let mut big_start = started("too-big", "wf", 1);
    if let Event::RunStarted { input, .. } = &mut big_start {
        *input = vec![b'i'; max as usize];
    }
    match store.start_run(&big_start, None) {
        Err(StoreError::AppendTooLarge { size, max: m }) => {
            assert_eq!(m, max);
            assert!(size > max, "{size}");
        }
        other => panic!("a start over the limit must be AppendTooLarge, got {other:?}"),
    }
    assert_eq!(
        store.summary("too-big").unwrap(),
        None,
        "the refused start wrote nothing"
    );
    // An append of 5 MiB, one byte over, and exactly at the limit.
    let key = start(store, "limits", "wf", 1);
    let five = [Event::EventReceived {
        name: "five".into(),
        payload: vec![5; 5 << 20],
        at_ms: 2,
    }];
    match store.append(key, 1, &five, None) {
        Err(StoreError::AppendTooLarge { size, max: m }) => {
            assert_eq!((size, m), (append_size(key, 1, &five), max));
        }
        other => panic!("a 5 MiB append must be AppendTooLarge, got {other:?}"),
    }
    let over = [event_of_size(key, 1, max + 1)];
    match store.append(key, 1, &over, None) {
        Err(StoreError::AppendTooLarge { size, max: m }) => assert_eq!((size, m), (max + 1, max)),
        other => panic!("an append one byte over the limit must be AppendTooLarge, got {other:?}"),
    }
    assert_eq!(
        store.events(key).unwrap().len(),
        1,
        "refused appends wrote nothing"
    );
    let at_limit = [event_of_size(key, 1, max)];
    store
        .wait_durable(store.append(key, 1, &at_limit, None).unwrap())
        .unwrap();
    let events = store.events(key).unwrap();
    assert_eq!(events.len(), 2);
    assert!(
        events[1] == at_limit[0],
        "the append at the limit comes back whole"
    );
}
