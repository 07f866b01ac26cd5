//! What only the embedded store has: its formats. A newer index format is
//! refused; the log's records carry the event format version, newer event
//! formats and unknown record types are refused by name, and logs of the first
//! record layout still open.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::step;
use duro_core::journal::{encode_event, Event, EVENT_FORMAT_VERSION};
use duro_store::conformance::started;
use duro_store::{EmbeddedOptions, EmbeddedStore, Store, StoreError};
use duro_wal::WalOptions;

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
    // Read before the next open, which releases the segment of the old records (the
    // index holds them).
    let types: Vec<u8> = raw_log(dir.path(), &[])
        .iter()
        .map(|r| r.record_type)
        .collect();
    assert_eq!(
        types,
        [1, 1, 2],
        "old records stay as they are; new ones are versioned"
    );
    // An index from before `event_format_version`: the key is missing.
    let conn = rusqlite::Connection::open(dir.path().join("index.sqlite3")).unwrap();
    conn.execute("DELETE FROM meta WHERE key = 'event_format_version'", [])
        .unwrap();
    drop(conn);
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
    assert_eq!(store.events(1).unwrap().len(), 5);
    store.close().unwrap();
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
