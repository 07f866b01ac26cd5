//! Corruption in the index is detected (typed error naming the file and
//! row) or repaired from the log; it is never returned as data.

use std::collections::BTreeMap;
use std::path::Path;

use duro_core::journal::{Event, StepKind};
use duro_store::conformance::started;
use duro_store::{EmbeddedOptions, EmbeddedStore, RunFilter, Store, StoreError};
use duro_wal::WalOptions;

/// Small log segments: the campaign copies the store once per damaged page.
fn options() -> EmbeddedOptions {
    let wal = WalOptions {
        segment_size: 256 * 1024,
        max_record_size: 64 * 1024,
        ..WalOptions::default()
    };
    EmbeddedOptions {
        wal,
        ..EmbeddedOptions::default()
    }
}

fn step(seq: u32) -> Vec<Event> {
    vec![
        Event::StepStarted {
            seq,
            kind: StepKind::Task,
            name: format!("step-{seq}"),
            attempt: 1,
            at_ms: 5,
        },
        Event::StepCompleted {
            seq,
            attempt: 1,
            output: format!("{{\"out\":{seq}}}").into_bytes(),
            at_ms: 6,
        },
    ]
}

/// A closed store with `runs` runs of three steps each.
fn populate(dir: &Path, runs: usize) {
    let store = EmbeddedStore::open(dir, options()).unwrap();
    for r in 0..runs {
        let (outcome, receipt) = store
            .start_run(&started(&format!("run-{r}"), "wf", r as u64), None)
            .unwrap();
        store.wait_durable(receipt).unwrap();
        for seq in 0..3 {
            store
                .wait_durable(
                    store
                        .append(outcome.run_key(), 1 + 2 * seq, &step(seq), None)
                        .unwrap(),
                )
                .unwrap();
        }
    }
    store.close().unwrap();
}

/// Everything a reader can see, or the first error.
fn read_all(store: &EmbeddedStore) -> Result<BTreeMap<String, (String, Vec<Event>)>, StoreError> {
    let mut seen = BTreeMap::new();
    for summary in store.list(&RunFilter {
        limit: 10_000,
        ..RunFilter::default()
    })? {
        let events = store.events(summary.run_key)?;
        let again = store
            .summary(&summary.run_id)?
            .ok_or(StoreError::UnknownRun {
                run_key: summary.run_key,
            })?;
        seen.insert(
            summary.run_id.clone(),
            (again.status.as_str().to_owned(), events),
        );
    }
    Ok(seen)
}

fn tamper(dir: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(dir.join("index.sqlite3")).unwrap();
    conn.execute_batch(sql).unwrap();
}

#[test]
fn a_changed_event_row_is_reported_with_file_and_row() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 3);
    tamper(dir.path(), "UPDATE events SET body = CAST(replace(CAST(body AS TEXT), 'out', 'OUT') AS BLOB) WHERE run_key = 2 AND position = 2;");
    let store = EmbeddedStore::open(dir.path(), options()).unwrap();
    let error = store.events(2).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, StoreError::IndexCorrupt { .. }),
        "{message}"
    );
    assert!(
        message.contains("index.sqlite3") && message.contains("run #2 position 2"),
        "{message}"
    );
    assert!(store.events(1).is_ok(), "other runs stay readable");
}

#[test]
fn a_changed_run_row_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 3);
    tamper(
        dir.path(),
        "UPDATE runs SET status = 'completed' WHERE run_id = 'run-1';",
    );
    let store = EmbeddedStore::open(dir.path(), options()).unwrap();
    for result in [
        store.summary("run-1").map(|_| ()),
        store.list(&RunFilter::default()).map(|_| ()),
    ] {
        let error = result.unwrap_err();
        assert!(
            matches!(error, StoreError::IndexCorrupt { .. }) && error.to_string().contains("run-1"),
            "{error}"
        );
    }
}

#[test]
fn missing_event_rows_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 2);
    tamper(
        dir.path(),
        "DELETE FROM events WHERE run_key = 1 AND position = 6;",
    );
    let store = EmbeddedStore::open(dir.path(), options()).unwrap();
    assert!(matches!(
        store.events(1),
        Err(StoreError::IndexCorrupt { .. })
    ));
    tamper(
        dir.path(),
        "DELETE FROM events WHERE run_key = 2 AND position = 3;",
    );
    assert!(
        matches!(store.events(2), Err(StoreError::IndexCorrupt { .. })),
        "a gap is corruption too"
    );
}

#[test]
fn an_unreadable_index_is_rebuilt_from_a_complete_log() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 4);
    let expected = read_all(&EmbeddedStore::open(dir.path(), options()).unwrap()).unwrap();
    // Everything into the main file (SQLite would otherwise serve pages from its own WAL).
    tamper(dir.path(), "PRAGMA wal_checkpoint(TRUNCATE);");
    std::fs::write(dir.path().join("index.sqlite3"), vec![0x5a; 8192]).unwrap();
    let store = EmbeddedStore::open(dir.path(), options()).unwrap();
    assert_eq!(read_all(&store).unwrap(), expected);
    assert!(std::fs::read_dir(dir.path()).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("corrupt")));
}

/// Overwrites each page of the index in turn (garbage, zeros, one flipped
/// bit) and reads everything back: every outcome must be an error, a repair,
/// or exactly the original data.
#[test]
fn page_corruption_campaign_never_returns_wrong_data() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 150);
    let pristine = read_all(&EmbeddedStore::open(dir.path(), options()).unwrap()).unwrap();
    // Checkpoint the SQLite WAL into the main file so pages hold the data.
    tamper(dir.path(), "PRAGMA wal_checkpoint(TRUNCATE);");
    let original = std::fs::read(dir.path().join("index.sqlite3")).unwrap();
    let page = 4096;
    let (mut tried, mut detected, mut harmless) = (0, 0, 0);
    let mut wrong: Vec<String> = Vec::new();
    for offset in (0..original.len()).step_by(page) {
        for mode in 0..3 {
            let mut damaged = original.clone();
            let end = (offset + page).min(damaged.len());
            match mode {
                0 => damaged[offset..end]
                    .iter_mut()
                    .enumerate()
                    .for_each(|(i, b)| *b = (i as u8).wrapping_mul(151) ^ 0xa5),
                1 => damaged[offset..end].fill(0),
                _ => damaged[offset + (offset * 7 + 100) % (end - offset)] ^= 0x10,
            }
            let case = tempfile::tempdir().unwrap();
            copy_dir(dir.path(), case.path());
            std::fs::write(case.path().join("index.sqlite3"), &damaged).unwrap();
            let _ = std::fs::remove_file(case.path().join("index.sqlite3-wal"));
            tried += 1;
            let outcome =
                EmbeddedStore::open(case.path(), options()).and_then(|store| read_all(&store));
            match outcome {
                Err(_) => detected += 1,
                Ok(seen) if seen == pristine => harmless += 1,
                Ok(seen) => wrong.push(format!(
                    "page at offset {offset} (mode {mode}) was corrupted and {} runs read back different data",
                    seen.iter().filter(|(k, v)| pristine.get(*k) != Some(*v)).count()
                        + pristine.keys().filter(|k| !seen.contains_key(*k)).count()
                )),
            }
        }
    }
    report_campaign(&format!(
        "corruption    store [index pages]: {tried} damaged pages (garbage, zeros, one bit flip), {detected} detected, \
         {harmless} harmless or repaired from the log, {} silently wrong; violations {}",
        wrong.len(),
        wrong.len()
    ));
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[path = "../../../fuzz/common/report.rs"]
mod report;
use report::report_campaign;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
