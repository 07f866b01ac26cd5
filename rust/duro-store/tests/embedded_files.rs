//! What only the embedded store has: its files and the lock. One process at a
//! time, private file modes (also of an existing store), and applied log
//! segments released.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::step;
use duro_core::journal::Event;
use duro_store::conformance::started;
use duro_store::{EmbeddedOptions, EmbeddedStore, RunFilter, Store, StoreError};
use duro_wal::WalOptions;

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

/// With small segments, applied segments are deleted (the directory shrinks) and nothing
/// acknowledged is lost, also after a reopen: those a closed store left behind at the
/// next open, before any append, and those a running store fills at its next release.
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
    // 40 runs of 4 steps with 3 KB outputs: about 8 segments of 64 KiB.
    let fill = |store: &EmbeddedStore, prefix: &str, keys: &mut Vec<u64>| {
        for r in 0..40 {
            let (outcome, receipt) = store
                .start_run(&started(&format!("{prefix}-{r}"), "wf", 1), None)
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
    };
    // First, no release (an hour between releases), so the log grows to many segments.
    let mut keys = Vec::new();
    let mut expected: Vec<Vec<Event>> = {
        let store = EmbeddedStore::open(dir.path(), options(std::time::Duration::from_secs(3_600)))
            .unwrap();
        fill(&store, "seg", &mut keys);
        let stats = store.stats().unwrap();
        assert_eq!(stats.wal.segments_removed, 0);
        assert!(stats.wal.segments_created >= 5, "{stats:?}");
        let all = keys.iter().map(|k| store.events(*k).unwrap()).collect();
        store.close().unwrap();
        all
    };
    let before = wal_files();
    assert!(before >= 5, "{before} segment files");
    // The next open deletes what the index already holds, without waiting for an append or
    // a release interval (still an hour).
    {
        let store = EmbeddedStore::open(dir.path(), options(std::time::Duration::from_secs(3_600)))
            .unwrap();
        let removed = store.stats().unwrap().wal.segments_removed;
        let after = wal_files();
        assert!(
            removed > 0 && after < before,
            "{before} segment files before the open, {after} after removing {removed}"
        );
        for (key, events) in keys.iter().zip(&expected) {
            assert_eq!(&store.events(*key).unwrap(), events);
        }
        store.close().unwrap();
    }
    // Then a running store releasing every 10 ms deletes the segments it fills.
    {
        let store =
            EmbeddedStore::open(dir.path(), options(std::time::Duration::from_millis(10))).unwrap();
        let first_new = keys.len();
        fill(&store, "more", &mut keys);
        // Wait for the indexer's release (a minute is a guard against hanging, not a bound).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while store.stats().unwrap().wal.segments_removed == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "no segment was removed in a minute"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        expected.extend(keys[first_new..].iter().map(|k| store.events(*k).unwrap()));
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
        80
    );
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
