//! What only the embedded store has: files, reopening, crashes, the lock.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use duro_core::journal::{encode_event, Event, StepKind, EVENT_FORMAT_VERSION};
use duro_store::conformance::started;
use duro_store::{
    AckSink, EmbeddedOptions, EmbeddedStore, RunFilter, StartOutcome, Store, StoreError, Token,
};
use duro_wal::fs::{Damage, Fault, SimFs};
use duro_wal::WalOptions;

fn step(seq: u32) -> Vec<Event> {
    vec![
        Event::StepStarted {
            seq,
            kind: StepKind::Task,
            name: format!("s{seq}"),
            attempt: 1,
            at_ms: 5,
        },
        Event::StepCompleted {
            seq,
            attempt: 1,
            output: format!("{seq}").into_bytes(),
            at_ms: 6,
        },
    ]
}

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

#[test]
fn one_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
    let second = EmbeddedStore::open(dir.path(), EmbeddedOptions::default());
    match second {
        Err(e @ StoreError::LockedHere { .. }) => {
            assert!(e.to_string().contains("this process"), "{e}")
        }
        Err(other) => panic!("expected LockedHere, got {other}"),
        Ok(_) => panic!("a second open must fail"),
    };
    first.close().unwrap();
    let reopened = EmbeddedStore::open(dir.path(), EmbeddedOptions::default())
        .expect("close releases the lock");
    drop(first);
    drop(reopened);
    // Another process holding it is named by pid.
    let mut child = std::process::Command::new("flock")
        .args([
            "-x",
            dir.path().join("LOCK").to_str().unwrap(),
            "sleep",
            "5",
        ])
        .spawn()
        .expect("flock(1) from util-linux");
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::write(dir.path().join("LOCK"), child.id().to_string()).unwrap();
    let error = EmbeddedStore::open(dir.path(), EmbeddedOptions::default())
        .err()
        .expect("locked by the child");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(matches!(error, StoreError::Locked { .. }), "{error}");
    assert!(
        error.to_string().contains(&child.id().to_string()),
        "{error}"
    );
}

#[test]
fn files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("private");
    let store = EmbeddedStore::open(&path, EmbeddedOptions::default()).unwrap();
    store
        .wait_durable(store.start_run(&started("p", "wf", 1), None).unwrap().1)
        .unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o700);
    assert_eq!(mode(&path.join("wal")), 0o700);
    for entry in std::fs::read_dir(&path)
        .unwrap()
        .chain(std::fs::read_dir(path.join("wal")).unwrap())
    {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            assert_eq!(mode(&entry.path()), 0o600, "{}", entry.path().display());
        }
    }
}

#[test]
fn a_newer_index_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    EmbeddedStore::open(dir.path(), EmbeddedOptions::default())
        .unwrap()
        .close()
        .unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("index.sqlite3")).unwrap();
    conn.execute(
        "UPDATE meta SET value = 99 WHERE key = 'format_version'",
        [],
    )
    .unwrap();
    drop(conn);
    match EmbeddedStore::open(dir.path(), EmbeddedOptions::default()) {
        Err(StoreError::NewerFormat { found: 99, .. }) => {}
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("opened a newer index"),
    }
}

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

// ---------------------------------------------------------------------------------------
// Formats: the event format version in the log, unknown record types, old records.

/// Opens the store's log directly (the store must be closed) and appends raw records.
/// Returns the records that were in the log before.
fn raw_log(store_dir: &Path, append: &[(u8, Vec<u8>)]) -> Vec<duro_wal::RecoveredRecord> {
    let fs: Arc<dyn duro_wal::fs::Fs> = Arc::new(duro_wal::fs::RealFs);
    let (wal, recovery) = duro_wal::Wal::open(
        fs,
        &store_dir.join("wal"),
        WalOptions::default(),
        Arc::new(duro_wal::NullSink),
    )
    .unwrap();
    for (record_type, payload) in append {
        let lsn = wal
            .append(&[duro_wal::Record::new(*record_type, payload)], None)
            .unwrap();
        wal.wait_durable(lsn).unwrap();
    }
    wal.close().unwrap();
    recovery.records
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A run-events record payload: the first layout (type 1) without `format`, type 2 with it.
fn run_record(format: Option<u64>, run_key: u64, first_position: u64, events: &[Event]) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(format) = format {
        varint(&mut out, format);
    }
    varint(&mut out, run_key);
    varint(&mut out, first_position);
    varint(&mut out, events.len() as u64);
    for event in events {
        let mut body = Vec::new();
        encode_event(event, &mut body);
        varint(&mut out, body.len() as u64);
        out.extend_from_slice(&body);
    }
    out
}

/// A store with one run ("r", key 1, one event), closed.
fn store_with_one_run(path: &Path) {
    let store = EmbeddedStore::open(path, EmbeddedOptions::default()).unwrap();
    let (outcome, receipt) = store.start_run(&started("r", "wf", 1), None).unwrap();
    store.wait_durable(receipt).unwrap();
    assert_eq!(outcome.run_key(), 1);
    store.close().unwrap();
}

#[test]
fn log_records_carry_the_event_format_version() {
    let dir = tempfile::tempdir().unwrap();
    store_with_one_run(dir.path());
    let records = raw_log(dir.path(), &[]);
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].record_type, 2,
        "run events, the versioned layout"
    );
    assert_eq!(
        records[0].payload,
        run_record(
            Some(EVENT_FORMAT_VERSION as u64),
            1,
            0,
            &[started("r", "wf", 1)]
        ),
        "the record starts with the event format version"
    );
}

#[test]
fn a_log_of_a_newer_event_format_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    store_with_one_run(dir.path());
    let newer = EVENT_FORMAT_VERSION as u64 + 1;
    raw_log(
        dir.path(),
        &[(
            2,
            run_record(Some(newer), 1, 1, &[Event::Paused { at_ms: 2 }]),
        )],
    );
    match EmbeddedStore::open(dir.path(), EmbeddedOptions::default()) {
        Err(error @ StoreError::NewerFormat { .. }) => {
            let StoreError::NewerFormat {
                what,
                path,
                found,
                supported,
            } = &error
            else {
                unreachable!()
            };
            assert_eq!((*found as u64, *supported), (newer, EVENT_FORMAT_VERSION));
            assert_eq!(*what, "journal events in the log");
            assert_eq!(path, &dir.path().join("wal"));
            let message = error.to_string();
            assert!(message.contains(&format!("format {newer}")), "{message}");
            assert!(
                message.contains(&format!("reads up to {EVENT_FORMAT_VERSION}")),
                "{message}"
            );
            assert!(message.contains("upgrade duro"), "{message}");
        }
        Err(other) => panic!("expected NewerFormat, got {other}"),
        Ok(_) => panic!("opened a log of a newer event format"),
    }
}

#[test]
fn an_index_of_a_newer_event_format_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    store_with_one_run(dir.path());
    let conn = rusqlite::Connection::open(dir.path().join("index.sqlite3")).unwrap();
    let stamped: i64 = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'event_format_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        stamped, EVENT_FORMAT_VERSION as i64,
        "the index records the event format it holds"
    );
    conn.execute(
        "UPDATE meta SET value = 7 WHERE key = 'event_format_version'",
        [],
    )
    .unwrap();
    drop(conn);
    match EmbeddedStore::open(dir.path(), EmbeddedOptions::default()) {
        Err(StoreError::NewerFormat {
            what,
            found: 7,
            supported,
            ..
        }) => {
            assert_eq!(supported, EVENT_FORMAT_VERSION);
            assert!(what.contains("run index"), "{what}");
        }
        Err(other) => panic!("expected NewerFormat, got {other}"),
        Ok(_) => panic!("opened an index of a newer event format"),
    }
}

/// Logs written before records carried the version (record type 1) still open, and the
/// store appends to them in the new layout; an index without `event_format_version`
/// (written before it existed) is stamped on open.
#[test]
fn logs_of_the_first_record_layout_still_open() {
    let dir = tempfile::tempdir().unwrap();
    let events = step(0);
    raw_log(
        dir.path(),
        &[
            (1, run_record(None, 1, 0, &[started("old", "wf", 1)])),
            (1, run_record(None, 1, 1, &events)),
        ],
    );
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
    let mut expected = vec![started("old", "wf", 1)];
    expected.extend(events);
    assert_eq!(store.events(1).unwrap(), expected);
    store
        .wait_durable(store.append(1, 3, &step(1), None).unwrap())
        .unwrap();
    store.close().unwrap();
    // An index from before `event_format_version`: the key is missing.
    let conn = rusqlite::Connection::open(dir.path().join("index.sqlite3")).unwrap();
    conn.execute("DELETE FROM meta WHERE key = 'event_format_version'", [])
        .unwrap();
    drop(conn);
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
    assert_eq!(store.events(1).unwrap().len(), 5);
    store.close().unwrap();
    let types: Vec<u8> = raw_log(dir.path(), &[])
        .iter()
        .map(|r| r.record_type)
        .collect();
    assert_eq!(
        types,
        [1, 1, 2],
        "old records stay as they are; new ones are versioned"
    );
}

#[test]
fn a_log_with_an_unknown_record_type_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    store_with_one_run(dir.path());
    raw_log(dir.path(), &[(9, b"from a newer duro".to_vec())]);
    match EmbeddedStore::open(dir.path(), EmbeddedOptions::default()) {
        Err(error @ StoreError::UnknownRecordType { .. }) => {
            let StoreError::UnknownRecordType {
                lsn,
                record_type,
                known,
            } = &error
            else {
                unreachable!()
            };
            assert_eq!((*lsn, *record_type, *known), (2, 9, &[1u8, 2][..]));
            let message = error.to_string();
            assert!(
                message.contains("LSN 2") && message.contains("record type 9"),
                "{message}"
            );
            assert!(message.contains("newer duro"), "{message}");
        }
        Err(other) => panic!("expected UnknownRecordType, got {other}"),
        Ok(_) => panic!("opened a log with an unknown record type"),
    }
}

// ---------------------------------------------------------------------------------------
// Modes of an existing store; log segments released.

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn an_existing_store_is_made_private_on_open() {
    let dir = tempfile::tempdir().unwrap();
    // A directory the user made, open to everyone.
    let path = dir.path().join("made-by-hand");
    std::fs::create_dir(&path).unwrap();
    set_mode(&path, 0o755);
    EmbeddedStore::open(&path, EmbeddedOptions::default())
        .unwrap()
        .close()
        .unwrap();
    assert_eq!(
        mode(&path),
        0o700,
        "an existing, empty directory is tightened"
    );
    // A store whose modes were loosened (a restore from backup, a chmod -R).
    let store = EmbeddedStore::open(&path, EmbeddedOptions::default()).unwrap();
    store
        .wait_durable(store.start_run(&started("p", "wf", 1), None).unwrap().1)
        .unwrap();
    store.close().unwrap();
    let mut files = vec![path.join("LOCK"), path.join("index.sqlite3")];
    for entry in std::fs::read_dir(path.join("wal")).unwrap() {
        files.push(entry.unwrap().path());
    }
    assert!(files.len() >= 3, "{files:?}");
    set_mode(&path, 0o755);
    set_mode(&path.join("wal"), 0o777);
    for file in &files {
        set_mode(file, 0o644);
    }
    let store = EmbeddedStore::open(&path, EmbeddedOptions::default()).unwrap();
    assert_eq!(mode(&path), 0o700);
    assert_eq!(mode(&path.join("wal")), 0o700);
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    assert!(
        store.summary("p").unwrap().is_some(),
        "and the data is all there"
    );
    store.close().unwrap();
}

/// With small segments and a short release interval, applied segments are deleted (the
/// directory shrinks) and nothing acknowledged is lost, also after a reopen.
#[test]
fn applied_log_segments_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let wal_files = || std::fs::read_dir(dir.path().join("wal")).unwrap().count();
    let options = |release_every: std::time::Duration| EmbeddedOptions {
        wal: WalOptions {
            segment_size: 64 * 1024,
            max_record_size: 16 * 1024,
            ..WalOptions::default()
        },
        release_every,
        ..EmbeddedOptions::default()
    };
    // First, no release (an hour between releases), so the log grows to many segments.
    let mut keys = Vec::new();
    {
        let store = EmbeddedStore::open(dir.path(), options(std::time::Duration::from_secs(3_600)))
            .unwrap();
        for r in 0..40 {
            let (outcome, receipt) = store
                .start_run(&started(&format!("seg-{r}"), "wf", 1), None)
                .unwrap();
            store.wait_durable(receipt).unwrap();
            let key = outcome.run_key();
            for seq in 0..4u32 {
                let mut events = step(seq);
                if let Event::StepCompleted { output, .. } = &mut events[1] {
                    *output = vec![b'0' + seq as u8; 3_000];
                }
                store
                    .wait_durable(store.append(key, 1 + 2 * seq, &events, None).unwrap())
                    .unwrap();
            }
            keys.push(key);
        }
        let stats = store.stats().unwrap();
        assert_eq!(stats.wal.segments_removed, 0);
        assert!(stats.wal.segments_created >= 5, "{stats:?}");
        store.close().unwrap();
    }
    let before = wal_files();
    assert!(before >= 5, "{before} segment files");
    let expected: Vec<Vec<Event>> = {
        let store = EmbeddedStore::open(dir.path(), options(std::time::Duration::from_secs(3_600)))
            .unwrap();
        let all = keys.iter().map(|k| store.events(*k).unwrap()).collect();
        store.close().unwrap();
        all
    };
    // Then release every 10 ms: one more append moves the index past what was released.
    {
        let store =
            EmbeddedStore::open(dir.path(), options(std::time::Duration::from_millis(10))).unwrap();
        store
            .wait_durable(
                store
                    .start_run(&started("trigger", "wf", 2), None)
                    .unwrap()
                    .1,
            )
            .unwrap();
        // Wait for the indexer's release (a minute is a guard against hanging, not a bound).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while store.stats().unwrap().wal.segments_removed == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "no segment was removed in a minute"
            );
            store.summary("trigger").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let removed = store.stats().unwrap().wal.segments_removed;
        assert!(removed > 0);
        let after = wal_files();
        assert!(
            after < before,
            "{before} segment files before, {after} after removing {removed}"
        );
        store.close().unwrap();
    }
    // Everything is still there after a reopen, read from the index (the log no longer has it).
    let store =
        EmbeddedStore::open(dir.path(), options(std::time::Duration::from_secs(3_600))).unwrap();
    for (key, events) in keys.iter().zip(&expected) {
        assert_eq!(&store.events(*key).unwrap(), events);
    }
    assert_eq!(
        store
            .list(&RunFilter {
                limit: 1_000,
                ..RunFilter::default()
            })
            .unwrap()
            .len(),
        41
    );
    assert!(store.summary("trigger").unwrap().is_some());
    store.close().unwrap();
    drop(store);

    // The index is now the only copy of the released records: a store whose index file
    // was removed must refuse to open, naming the gap, not open without those runs.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("index.sqlite3{suffix}")));
    }
    match EmbeddedStore::open(dir.path(), options(std::time::Duration::from_secs(3_600))) {
        Err(StoreError::LogGap {
            first_lsn, applied, ..
        }) => {
            assert!(first_lsn > 1 && applied == 0, "{first_lsn} {applied}")
        }
        Err(other) => panic!("expected LogGap, got {other}"),
        Ok(_) => panic!("a store whose index lost released records opened"),
    }
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
