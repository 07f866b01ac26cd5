//! What only the embedded store has: crashes and failed syncs. Crashes at many
//! points of a workload on a SimFs lose only unacknowledged appends; a failed
//! fsync stops acknowledgements and the next open recovers.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::step;
use duro_core::journal::Event;
use duro_store::conformance::started;
use duro_store::{AckSink, EmbeddedOptions, EmbeddedStore, RunFilter, Store, StoreError, Token};
use duro_wal::fs::{Damage, Fault, SimFs};
use duro_wal::WalOptions;

#[derive(Default)]
struct Acks {
    durable: Mutex<Vec<Token>>,
    failed: Mutex<Vec<Token>>,
}

impl AckSink for Acks {
    fn durable(&self, tokens: &[Token]) {
        self.durable.lock().unwrap().extend_from_slice(tokens);
    }
    fn failed(&self, tokens: &[Token], _error: &StoreError) {
        self.failed.lock().unwrap().extend_from_slice(tokens);
    }
}

fn sim_options(fs: Arc<SimFs>) -> EmbeddedOptions {
    EmbeddedOptions {
        wal: WalOptions {
            segment_size: 64 * 1024,
            max_record_size: 16 * 1024,
            ..WalOptions::default()
        },
        fs,
        release_every: std::time::Duration::from_millis(20),
    }
}

/// Appends a start and steps per run with tokens; returns (token -> (run id, events so far)).
fn workload(store: &EmbeddedStore, runs: usize, steps: u32) -> HashMap<Token, (String, usize)> {
    let mut expected = HashMap::new();
    let mut token = 0;
    let mut keys = Vec::new();
    for r in 0..runs {
        token += 1;
        let id = format!("run-{r}");
        match store.start_run(&started(&id, "wf", 1), Some(token)) {
            Ok((outcome, _)) => {
                expected.insert(token, (id.clone(), 1));
                keys.push((outcome.run_key(), id));
            }
            Err(_) => return expected,
        }
    }
    for seq in 0..steps {
        let mut last = None;
        for (key, id) in &keys {
            token += 1;
            // Big outputs, so the workload rotates log segments too.
            let mut events = step(seq);
            if let Event::StepCompleted { output, .. } = &mut events[1] {
                *output = vec![b'x'; 1_500];
            }
            match store.append(*key, 1 + 2 * seq, &events, Some(token)) {
                Ok(receipt) => {
                    expected.insert(token, (id.clone(), 3 + 2 * seq as usize));
                    last = Some(receipt);
                }
                Err(_) => return expected,
            }
        }
        // One sync group per round, so crashes land between many of them.
        if let Some(receipt) = last {
            if store.wait_durable(receipt).is_err() {
                return expected;
            }
        }
    }
    expected
}

/// Crash at many points of a workload under every damage mode: every
/// acknowledged append is there after recovery, and nothing else is.
#[test]
fn crashes_lose_only_unacknowledged_appends() {
    let mut tried = 0;
    let total_ops = {
        let fs = Arc::new(SimFs::new());
        let tmp = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(tmp.path(), sim_options(fs.clone())).unwrap();
        let expected = workload(&store, 8, 6);
        assert_eq!(
            expected.len(),
            8 + 8 * 6,
            "the workload runs to the end without faults"
        );
        store.close().unwrap();
        println!("workload: {:?}", fs.counts());
        fs.ops()
    };
    for crash_at in (1..total_ops).step_by((total_ops / 200).max(1) as usize) {
        for (i, damage) in Damage::all().into_iter().enumerate() {
            let fs = Arc::new(SimFs::new());
            fs.inject(Fault::CrashAt { op: crash_at });
            let acks = Arc::new(Acks::default());
            let tmp = tempfile::tempdir().unwrap();
            let expected = match EmbeddedStore::open(tmp.path(), sim_options(fs.clone())) {
                Ok(store) => {
                    store.set_ack_sink(acks.clone());
                    let expected = workload(&store, 8, 6);
                    drop(store);
                    expected
                }
                Err(_) => HashMap::new(),
            };
            // The index (real SQLite files) only ever holds durable records,
            // so it stays; the log is what the crash damaged.
            let image = Arc::new(fs.crash_image(damage, crash_at * 31 + i as u64));
            let store = EmbeddedStore::open(tmp.path(), sim_options(image)).unwrap_or_else(|error| {
                panic!("no recovery after a crash at op {crash_at} of {total_ops} with {damage:?} (seed {}): {error}", crash_at * 31 + i as u64)
            });
            let acked = acks.durable.lock().unwrap().clone();
            for token in acked {
                let (id, events) = &expected[&token];
                let summary = store
                    .summary(id)
                    .unwrap()
                    .unwrap_or_else(|| panic!("acknowledged run {id} lost"));
                assert!(
                    summary.event_count as usize >= *events,
                    "acknowledged events of {id} lost"
                );
            }
            for summary in store
                .list(&RunFilter {
                    limit: 1000,
                    ..RunFilter::default()
                })
                .unwrap()
            {
                let events = store.events(summary.run_key).unwrap();
                assert_eq!(
                    events[0],
                    started(&summary.run_id, "wf", 1),
                    "no phantom runs"
                );
                assert_eq!((events.len() - 1) % 2, 0, "appends are atomic");
            }
            tried += 1;
        }
    }
    println!("embedded store: {tried} crash points x damage modes recovered");
    assert!(
        tried >= 7 * (total_ops as usize - 1).min(199),
        "{tried} of {total_ops} ops"
    );
}

/// After a failed fsync nothing more is acknowledged, callers get a clear
/// error, and the next open recovers.
#[test]
fn a_failed_sync_stops_acknowledgements() {
    let fs = Arc::new(SimFs::new());
    let tmp = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(tmp.path(), sim_options(fs.clone())).unwrap();
    let acks = Arc::new(Acks::default());
    store.set_ack_sink(acks.clone());
    let (outcome, receipt) = store.start_run(&started("x", "wf", 1), Some(1)).unwrap();
    store.wait_durable(receipt).unwrap();
    fs.inject(Fault::FailSyncsFrom {
        op: fs.ops() + 1,
        errno: libc::EIO,
    });
    let receipt = store
        .append(outcome.run_key(), 1, &step(0), Some(2))
        .unwrap();
    let error = store.wait_durable(receipt).unwrap_err();
    assert!(error.to_string().contains("reopen"), "{error}");
    let later = store.append(outcome.run_key(), 3, &step(1), Some(3));
    assert!(
        later.is_err(),
        "the store refuses writes after a failed sync"
    );
    assert_eq!(*acks.durable.lock().unwrap(), vec![1]);
    drop(store);
    fs.clear_faults();
    let image = Arc::new(fs.crash_image(Damage::LoseUnsynced, 1));
    let store = EmbeddedStore::open(tmp.path(), sim_options(image)).unwrap();
    assert!(store.summary("x").unwrap().is_some());
}
