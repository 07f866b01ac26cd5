//! Checks of `claim_due`: a fixture of unfinished runs of every kind (due
//! now, sleeping, retrying, paused, delayed) and an ended one; what a claim
//! returns, that a single-process store holds nothing, and that a leasing
//! store hands a run to one owner at a time.

use duro_core::journal::{ErrorInfo, Event, RunKey, StepKind};
use duro_core::summary::RunSummary;

use super::fixtures::{start, started};
use super::Capabilities;
use crate::api::Store;

/// Unfinished runs of every kind, for the claim checks: (run key, wake_at_ms) in key order,
/// plus the key of an ended run.
fn claim_fixture(store: &dyn Store) -> (Vec<(RunKey, Option<u64>)>, RunKey) {
    let append = |key: RunKey, at: u32, events: &[Event]| {
        store
            .wait_durable(store.append(key, at, events, None).unwrap())
            .unwrap();
    };
    let now_runnable = start(store, "runnable", "wf", 10);
    let sleeping = start(store, "sleeping", "wf", 11);
    append(
        sleeping,
        1,
        &[
            Event::StepStarted {
                seq: 0,
                kind: StepKind::Sleep,
                name: "nap".into(),
                attempt: 1,
                at_ms: 20,
            },
            Event::TimerSet {
                seq: 0,
                fire_at_ms: 5_000,
                at_ms: 20,
            },
        ],
    );
    let retrying = start(store, "retrying", "wf", 12);
    append(
        retrying,
        1,
        &[
            Event::StepStarted {
                seq: 0,
                kind: StepKind::Task,
                name: "a".into(),
                attempt: 1,
                at_ms: 20,
            },
            Event::StepFailed {
                seq: 0,
                attempt: 1,
                error: ErrorInfo::new("E", "again", true),
                retry_at_ms: Some(3_000),
                at_ms: 21,
            },
        ],
    );
    let paused = start(store, "paused", "wf", 13);
    append(paused, 1, &[Event::Paused { at_ms: 22 }]);
    let ended = start(store, "ended", "wf", 14);
    append(
        ended,
        1,
        &[Event::RunCompleted {
            output: vec![],
            at_ms: 23,
        }],
    );
    let mut delayed_start = started("delayed", "wf", 15);
    if let Event::RunStarted { start_at_ms, .. } = &mut delayed_start {
        *start_at_ms = Some(4_000);
    }
    let (outcome, receipt) = store.start_run(&delayed_start, None).unwrap();
    store.wait_durable(receipt).unwrap();
    let delayed = outcome.run_key();
    let mut unfinished = Vec::new();
    for key in [now_runnable, sleeping, retrying, paused, delayed] {
        let summary = store.summary_by_key(key).unwrap().unwrap();
        unfinished.push((key, summary.wake_at_ms));
    }
    let wakes: Vec<Option<u64>> = unfinished.iter().map(|(_, w)| *w).collect();
    assert_eq!(
        wakes,
        [Some(10), Some(5_000), Some(3_000), None, Some(4_000)],
        "the fixture's wake times"
    );
    unfinished.sort_by_key(|(k, _)| *k);
    (unfinished, ended)
}

fn claimed(store: &dyn Store, owner: &str, now_ms: u64, limit: usize) -> Vec<RunKey> {
    let runs = store.claim_due(owner, now_ms, limit).unwrap();
    let keys: Vec<RunKey> = runs.iter().map(|s| s.run_key).collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "claim_due({owner}, {now_ms}, {limit}): not in key order or twice: {keys:?}"
    );
    assert!(
        keys.len() <= limit,
        "claim_due({owner}, {now_ms}, {limit}) returned {} runs",
        keys.len()
    );
    assert!(
        runs.iter().all(|s| !s.status.is_terminal()),
        "claim_due returned an ended run"
    );
    keys
}

/// `claim_due` never returns ended runs, returns each run once in key order, at most
/// `limit`, and always includes the runs due at `now_ms`. A single-process store returns
/// every unfinished run whatever `now_ms` (the caller schedules by `wake_at_ms`); a
/// leasing store only those due at `now_ms`.
pub fn claim_due_respects_now_and_limit(store: &dyn Store, capabilities: &Capabilities) {
    let (unfinished, ended) = claim_fixture(store);
    let due_at = |now: u64| -> Vec<RunKey> {
        unfinished
            .iter()
            .filter(|(_, w)| w.is_some_and(|w| w <= now))
            .map(|(k, _)| *k)
            .collect()
    };
    let all: Vec<RunKey> = unfinished.iter().map(|(k, _)| *k).collect();
    match capabilities.lease_ms {
        None => {
            for now in [0, 10, 2_999, 3_000, 4_000, 5_000, u64::MAX] {
                let got = claimed(store, "owner", now, 100);
                assert_eq!(
                    got, all,
                    "a single-process store hands out every unfinished run at now = {now}"
                );
                assert!(due_at(now).iter().all(|k| got.contains(k)));
                assert!(!got.contains(&ended));
            }
            assert_eq!(
                claimed(store, "owner", 0, 2),
                all[..2],
                "limit 2: the first two by run key"
            );
            assert_eq!(claimed(store, "owner", u64::MAX, 1), all[..1]);
            assert_eq!(
                claimed(store, "owner", 0, 0),
                Vec::<RunKey>::new(),
                "limit 0: none"
            );
            assert_eq!(
                claimed(store, "owner", 0, usize::MAX),
                all,
                "the engine's call: no limit"
            );
        }
        Some(_) => {
            // Each call by a new owner, so that no run is held by an earlier call.
            assert_eq!(
                claimed(store, "o1", 0, 100),
                Vec::<RunKey>::new(),
                "nothing is due at 0"
            );
            assert_eq!(
                claimed(store, "o2", 3_000, 0),
                Vec::<RunKey>::new(),
                "limit 0: none"
            );
            assert_eq!(
                claimed(store, "o3", 3_000, 1),
                due_at(3_000)[..1],
                "limit 1: the first due run"
            );
            let rest: Vec<RunKey> = due_at(3_000)[1..].to_vec();
            assert_eq!(
                claimed(store, "o4", 3_000, 100),
                rest,
                "runs due at 3000, but the one o3 holds"
            );
        }
    }
}

/// A single-process store holds nothing: every owner gets every unfinished run on every
/// call (see `Store::claim_due`); claiming changes no run.
pub fn unleased_claims_hold_nothing(store: &dyn Store) {
    let (unfinished, _) = claim_fixture(store);
    let all: Vec<RunKey> = unfinished.iter().map(|(k, _)| *k).collect();
    let before: Vec<RunSummary> = all
        .iter()
        .map(|k| store.summary_by_key(*k).unwrap().unwrap())
        .collect();
    assert_eq!(claimed(store, "worker-1", 100, 100), all);
    assert_eq!(
        claimed(store, "worker-2", 100, 100),
        all,
        "nothing is held for worker-1"
    );
    assert_eq!(claimed(store, "worker-1", 100, 100), all, "claims repeat");
    let after: Vec<RunSummary> = all
        .iter()
        .map(|k| store.summary_by_key(*k).unwrap().unwrap())
        .collect();
    assert_eq!(before, after, "claiming wrote nothing");
}

/// A leasing store does not hand a run to another owner while its lease holds, and does
/// once it expired.
pub fn leased_runs_are_not_handed_out_twice(store: &dyn Store, lease_ms: u64) {
    let (unfinished, _) = claim_fixture(store);
    let due_at = |now: u64| -> Vec<RunKey> {
        unfinished
            .iter()
            .filter(|(_, w)| w.is_some_and(|w| w <= now))
            .map(|(k, _)| *k)
            .collect()
    };
    let now = 5_000;
    let first = claimed(store, "worker-1", now, 100);
    assert_eq!(first, due_at(now), "worker-1 gets every due run");
    assert_eq!(
        claimed(store, "worker-2", now, 100),
        Vec::<RunKey>::new(),
        "all are held by worker-1"
    );
    assert_eq!(
        claimed(store, "worker-2", now + lease_ms - 1, 100),
        Vec::<RunKey>::new(),
        "still held one ms before the lease ends"
    );
    let after = claimed(store, "worker-2", now + lease_ms, 100);
    assert_eq!(
        after,
        due_at(now + lease_ms),
        "an expired lease frees the run"
    );
}
