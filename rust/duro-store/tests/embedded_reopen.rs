//! What only the embedded store has: reopening. Data and run keys survive a
//! reopen, the index is rebuilt from the log, and summaries fold on from the
//! fold the index kept.

mod common;

use std::path::Path;

use common::step;
use duro_core::journal::{Event, StepKind};
use duro_store::conformance::started;
use duro_store::{EmbeddedOptions, EmbeddedStore, RunFilter, StartOutcome, Store, StoreError};

#[test]
fn data_survives_reopen_and_keys_continue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let key = {
        let store = EmbeddedStore::open(&path, EmbeddedOptions::default()).unwrap();
        let (outcome, receipt) = store.start_run(&started("a", "wf", 1), None).unwrap();
        store.wait_durable(receipt).unwrap();
        let key = outcome.run_key();
        store
            .wait_durable(store.append(key, 1, &step(0), None).unwrap())
            .unwrap();
        store.close().unwrap();
        key
    };
    let store = EmbeddedStore::open(&path, EmbeddedOptions::default()).unwrap();
    assert_eq!(store.events(key).unwrap().len(), 3);
    assert_eq!(store.summary("a").unwrap().unwrap().completed_step_count, 1);
    let (again, _) = store.start_run(&started("a", "wf", 9), None).unwrap();
    assert_eq!(again, StartOutcome::Existing { run_key: key });
    let (other, _) = store.start_run(&started("b", "wf", 9), None).unwrap();
    assert!(matches!(other, StartOutcome::Created { run_key } if run_key > key));
    // Appends continue at the recorded position after reopening.
    assert!(matches!(
        store.append(key, 1, &step(1), None),
        Err(StoreError::Conflict { actual: 3, .. })
    ));
    store
        .wait_durable(store.append(key, 3, &step(1), None).unwrap())
        .unwrap();
}

#[test]
fn the_index_is_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let store = EmbeddedStore::open(&path, EmbeddedOptions::default()).unwrap();
        for i in 0..50 {
            let (outcome, receipt) = store
                .start_run(&started(&format!("r{i}"), "wf", i), None)
                .unwrap();
            store.wait_durable(receipt).unwrap();
            store
                .wait_durable(store.append(outcome.run_key(), 1, &step(0), None).unwrap())
                .unwrap();
        }
        store.close().unwrap();
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(path.join(format!("index.sqlite3{suffix}")));
    }
    let store = EmbeddedStore::open(&path, EmbeddedOptions::default()).unwrap();
    let runs = store
        .list(&RunFilter {
            limit: 1000,
            ..RunFilter::default()
        })
        .unwrap();
    assert_eq!(runs.len(), 50);
    assert!(runs
        .iter()
        .all(|s| s.completed_step_count == 1 && s.event_count == 3));
}

/// A long run's next events after a reopen fold on from the summary fold the index kept
/// (`run_folds`), not from its whole journal: with the journal's rows gone from the index,
/// they still apply, and the summary equals one folded from every event. A kept fold that
/// does not match the run (wrong event count, bad checksum) is ignored for the journal.
#[test]
fn summaries_fold_on_from_the_kept_fold_after_a_reopen() {
    // A sleep with its timer (fold: open step, timer), a failed attempt with a retry time.
    let before = |store: &EmbeddedStore| -> u64 {
        let (outcome, receipt) = store.start_run(&started("long", "wf", 1), None).unwrap();
        store.wait_durable(receipt).unwrap();
        let key = outcome.run_key();
        let mut position = 1;
        for seq in 0..20 {
            store
                .wait_durable(store.append(key, position, &step(seq), None).unwrap())
                .unwrap();
            position += 2;
        }
        let sleep = [
            Event::StepStarted {
                seq: 20,
                kind: StepKind::Sleep,
                name: "nap".into(),
                attempt: 1,
                at_ms: 7,
            },
            Event::TimerSet {
                seq: 20,
                fire_at_ms: 9_000,
                at_ms: 7,
            },
        ];
        store
            .wait_durable(store.append(key, position, &sleep, None).unwrap())
            .unwrap();
        key
    };
    let after = [
        Event::TimerFired {
            seq: 20,
            at_ms: 9_000,
        },
        Event::StepStarted {
            seq: 21,
            kind: StepKind::Task,
            name: "s21".into(),
            attempt: 1,
            at_ms: 9_001,
        },
        Event::StepFailed {
            seq: 21,
            attempt: 1,
            error: duro_core::journal::ErrorInfo::new("E", "boom", true),
            retry_at_ms: Some(9_500),
            at_ms: 9_002,
        },
    ];
    let tamper = |path: &Path, sql: &str| {
        let conn = rusqlite::Connection::open(path.join("index.sqlite3")).unwrap();
        conn.execute_batch(sql).unwrap();
    };
    // Each case: what is done to the index between the two opens, and whether the
    // journal's rows stay (a refold needs them).
    let cases: [(&str, &str); 4] = [
        (
            "kept fold, journal rows removed",
            "DELETE FROM events WHERE position > 0 AND position < 41",
        ),
        ("no kept fold", "DELETE FROM run_folds"),
        (
            "kept fold of another event count",
            "UPDATE run_folds SET event_count = event_count - 1",
        ),
        (
            "kept fold with a bad checksum",
            "UPDATE run_folds SET crc = crc + 1",
        ),
    ];
    let mut summaries = Vec::new();
    for (what, sql) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let key = {
            let store = EmbeddedStore::open(&path, EmbeddedOptions::default()).unwrap();
            let key = before(&store);
            store.close().unwrap();
            key
        };
        tamper(&path, sql);
        let store = EmbeddedStore::open(&path, EmbeddedOptions::default()).unwrap();
        store
            .wait_durable(store.append(key, 43, &after, None).unwrap())
            .unwrap();
        let mut summary = store
            .summary("long")
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .unwrap();
        summary.fold = Default::default(); // compared through what it derives
        assert_eq!(summary.event_count, 46, "{what}");
        summaries.push((what, summary));
        store.close().unwrap();
    }
    let (_, expected) = &summaries[1];
    assert_eq!(
        expected.wake_at_ms,
        Some(9_500),
        "the retry time, from the fold"
    );
    assert_eq!(expected.current_step.as_deref(), Some("s21"));
    for (what, summary) in &summaries {
        assert_eq!(summary, expected, "{what}");
    }
}
