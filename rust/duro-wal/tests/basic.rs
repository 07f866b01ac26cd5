//! Appending, group commit, rotation, release, options and errors.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::thread;

use common::*;
use duro_wal::fs::{OpKind, RealFs, SimFs};
use duro_wal::{
    segment_file_name, NullSink, Record, SyncMode, Wal, WalError, WalOptions, FORMAT_VERSION,
};

#[test]
fn round_trip_and_lsns_continue_after_reopen() {
    let fs = SimFs::new();
    let (wal, recovery) = open_sim(&fs, small_options()).unwrap();
    assert!(recovery.records.is_empty());
    assert_eq!(recovery.next_lsn, 1);
    assert_eq!(wal.next_lsn(), 1);
    let mut expected = Vec::new();
    for n in 1..=50u64 {
        let p = payload(n, 300);
        let ticket = wal
            .append_ticket(&[Record::new((n % 255 + 1) as u8, &p)])
            .unwrap();
        assert_eq!(ticket.lsn(), n);
        assert_eq!(ticket.wait().unwrap(), n);
        expected.push((n, p));
    }
    // A group of three gets three contiguous LSNs and one returned LSN (the last).
    let group: Vec<Vec<u8>> = (51..=53).map(|n| payload(n, 100)).collect();
    let records: Vec<Record> = group.iter().map(|p| Record::new(9, p)).collect();
    let last = wal.append(&records, None).unwrap();
    assert_eq!(last, 53);
    wal.wait_durable(53).unwrap();
    expected.extend((51..=53).zip(group));
    assert_eq!(wal.durable_lsn(), 53);
    wal.close().unwrap();

    let (wal, recovery) = open_sim(&fs, small_options()).unwrap();
    assert_eq!(recovered_payloads(&recovery), expected);
    assert_eq!(recovery.records[0].record_type, 2);
    assert_eq!(recovery.truncated, None);
    assert_eq!(recovery.next_lsn, 54);
    assert_eq!(wal.append(&[Record::new(1, b"more")], None).unwrap(), 54);
    wal.close().unwrap();
    let (_wal, recovery) = open_sim(&fs, small_options()).unwrap();
    assert_eq!(recovery.records.last().unwrap().payload, b"more");
}

#[test]
fn contiguous_lsns_from_many_threads() {
    let fs = SimFs::new();
    fs.set_tracing(false);
    let sink = RecordingSink::new(true);
    let (wal, _) = open_with_sink(&fs, small_options(), sink.clone()).unwrap();
    let wal = Arc::new(wal);
    let threads = 8;
    let per_thread = 200u64;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let wal = Arc::clone(&wal);
            thread::spawn(move || {
                let mut lsns = Vec::new();
                for i in 0..per_thread {
                    let id = t * 1_000_000 + i;
                    let p = payload(id, 64);
                    let group = [Record::new(1, &p), Record::new(2, &p)];
                    let lsn = wal.append(&group, Some(id)).unwrap();
                    lsns.push((lsn, id));
                }
                lsns
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().unwrap());
    }
    let total = threads * per_thread * 2;
    wal.wait_durable(total).unwrap();
    sink.wait_for(total);
    // Every group got two adjacent LSNs, and together they cover 1..=total exactly once.
    let mut seen = BTreeSet::new();
    for &(last, _) in &all {
        assert!(seen.insert(last - 1) && seen.insert(last));
    }
    assert_eq!(seen, (1..=total).collect());
    let log = sink.log.lock().unwrap();
    let lsns: Vec<u64> = log.records.iter().map(|r| r.0).collect();
    assert_eq!(lsns, (1..=total).collect::<Vec<_>>(), "sink saw LSN order");
    // Both records of a group carry the same payload (never interleaved with another group).
    for pair in log.records.chunks(2) {
        assert_eq!(pair[0].2, pair[1].2);
        assert_eq!((pair[0].1, pair[1].1), (1, 2));
    }
    let mut tokens = log.tokens.clone();
    tokens.sort_unstable();
    let mut expected: Vec<u64> = all.iter().map(|&(_, id)| id).collect();
    expected.sort_unstable();
    assert_eq!(tokens, expected, "every token delivered exactly once");
}

#[test]
fn group_commit_batches_concurrent_appenders() {
    let fs = SimFs::new();
    fs.set_tracing(false);
    let (wal, _) = open_sim(&fs, small_options()).unwrap();
    let wal = Arc::new(wal);
    let syncs_before = fs.counts().syncs;
    let threads = 16u64;
    let per_thread = 50u64;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let wal = Arc::clone(&wal);
            thread::spawn(move || {
                for i in 0..per_thread {
                    let p = payload(t * 1000 + i, 40);
                    wal.append_ticket(&[Record::new(1, &p)])
                        .unwrap()
                        .wait()
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let records = threads * per_thread;
    let stats = wal.stats();
    let syncs = fs.counts().syncs - syncs_before;
    println!(
        "group commit: {records} records, {} batches, {syncs} fdatasyncs (preparer included), \
         max batch {}",
        stats.batches, stats.max_batch_records
    );
    assert_eq!(stats.records, records);
    assert!(
        stats.batches < records,
        "{} batches for {records} records: no batching",
        stats.batches
    );
    assert!(stats.max_batch_records > 1);
    // Syncs on the log equal batches; the preparer syncs each segment it creates (one may
    // be in progress).
    assert!(syncs <= stats.batches + stats.segments_created + 1);
}

/// Batching without depending on thread timing: the sink holds the writer inside its first
/// callback while 16 threads append 10 records each; everything they appended must go out
/// in exactly one more batch, with one write and one fdatasync.
#[test]
fn everything_pending_goes_into_one_batch() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    struct GateSink {
        open: AtomicBool,
        batches: Mutex<Vec<usize>>,
    }
    impl duro_wal::DurableSink for GateSink {
        fn durable(&self, batch: Arc<duro_wal::DurableBatch>) {
            self.batches.lock().unwrap().push(batch.len());
            while !self.open.load(Ordering::Acquire) {
                thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        fn failed(&self, _: &[u64], _: &WalError) {}
    }

    let fs = SimFs::new();
    let sink = Arc::new(GateSink {
        open: AtomicBool::new(false),
        batches: Mutex::new(Vec::new()),
    });
    let (wal, _) = Wal::open(Arc::new(fs.clone()), &dir(), small_options(), sink.clone()).unwrap();
    let wal = Arc::new(wal);
    wal.append_ticket(&[Record::new(1, b"first")])
        .unwrap()
        .wait()
        .unwrap();
    // The writer is now parked in the sink. Wait for the preparer to finish segment 2 so
    // that every sync counted below is the log's.
    while fs.read_file(&segment_path(2)).is_none() {
        thread::sleep(std::time::Duration::from_millis(1));
    }
    let counts_before = fs.counts();
    let handles: Vec<_> = (0..16u64)
        .map(|t| {
            let wal = Arc::clone(&wal);
            thread::spawn(move || {
                for i in 0..10u64 {
                    wal.append(&[Record::new(1, &payload(t * 100 + i, 30))], Some(t))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(wal.next_lsn(), 162);
    sink.open.store(true, Ordering::Release);
    wal.wait_durable(161).unwrap();
    let counts = fs.counts();
    assert_eq!(
        counts.syncs - counts_before.syncs,
        1,
        "one fdatasync for 160 records"
    );
    assert_eq!(
        counts.writes - counts_before.writes,
        1,
        "one write for 160 records"
    );
    let stats = wal.stats();
    assert_eq!(
        (stats.records, stats.batches, stats.max_batch_records),
        (161, 2, 160)
    );
    drop(wal);
    assert_eq!(*sink.batches.lock().unwrap(), vec![1, 160]);
}

#[test]
fn rotation_and_release_through() {
    let fs = SimFs::new();
    let options = WalOptions {
        segment_size: 8 << 10,
        max_record_size: 2 << 10,
        ..small_options()
    };
    let sink = RecordingSink::new(false);
    let (wal, _) = open_with_sink(&fs, options.clone(), sink.clone()).unwrap();
    let mut expected = Vec::new();
    let mut last = 0;
    for n in 1..=200u64 {
        let p = payload(n, 400);
        last = wal.append(&[Record::new(3, &p)], None).unwrap();
        expected.push((n, p));
        if n % 7 == 0 {
            wal.wait_durable(last).unwrap();
        }
    }
    wal.wait_durable(last).unwrap();
    let segments = segment_files(&fs);
    assert!(segments.len() >= 4, "rotated: {segments:?}");
    // Each batch lives in one segment: records never straddle.
    for (first, last, count) in &sink.log.lock().unwrap().batches {
        assert_eq!(*count as u64, last - first + 1);
    }
    // Records appended as a group that fits in a segment stay together.
    let big: Vec<Vec<u8>> = (0..3).map(|n| vec![n as u8 + 1; 1500]).collect();
    let group: Vec<Record> = big.iter().map(|p| Record::new(4, p)).collect();
    last = wal.append(&group, None).unwrap();
    wal.wait_durable(last).unwrap();
    sink.wait_for(last);
    let batches = sink.log.lock().unwrap().batches.clone();
    assert!(
        batches.iter().any(|&(f, l, _)| f == last - 2 && l >= last),
        "{last} {:?}",
        &batches[batches.len().saturating_sub(5)..]
    );
    for (i, p) in big.iter().enumerate() {
        expected.push((last - 2 + i as u64, p.clone()));
    }

    // Release the first half: whole segments at the start go, the rest stays.
    let stats_before = wal.stats();
    let before = segment_files(&fs).len() as u64;
    wal.release_through(100).unwrap();
    let stats_after = wal.stats();
    let removed = stats_after.segments_removed - stats_before.segments_removed;
    assert!(removed >= 1, "nothing removed");
    let remaining = segment_files(&fs);
    assert_eq!(remaining.len() as u64, before - removed);
    assert!(fs.trace().iter().any(|e| e.kind == OpKind::SyncDir));
    wal.close().unwrap();

    let (_wal, recovery) = open_sim(&fs, options.clone()).unwrap();
    let first = recovery.records[0].lsn;
    assert!(first > 1 && first <= 101, "first remaining LSN {first}");
    let tail: Vec<_> = expected
        .iter()
        .filter(|(lsn, _)| *lsn >= first)
        .cloned()
        .collect();
    assert_eq!(recovered_payloads(&recovery), tail);
    // Releasing everything never deletes the segment holding the last durable record.
    drop(_wal);
    let (wal, _) = open_sim(&fs, options).unwrap();
    wal.release_through(u64::MAX).unwrap();
    let left = segment_files(&fs);
    assert!(!left.is_empty());
    wal.close().unwrap();
    let (wal, recovery) = open_sim(&fs, small_options()).unwrap();
    assert_eq!(
        recovery.next_lsn,
        last + 1,
        "LSNs continue after releasing everything"
    );
    assert_eq!(wal.next_lsn(), last + 1);
}

#[test]
fn oversize_group_spans_segments_without_splitting_records() {
    let fs = SimFs::new();
    let options = WalOptions {
        segment_size: 4 << 10,
        max_record_size: 1 << 10,
        ..small_options()
    };
    let (wal, _) = open_sim(&fs, options.clone()).unwrap();
    let payloads: Vec<Vec<u8>> = (0..20u8).map(|n| vec![n; 900]).collect();
    let group: Vec<Record> = payloads.iter().map(|p| Record::new(1, p)).collect();
    let last = wal.append(&group, Some(7)).unwrap();
    assert_eq!(last, 20);
    wal.wait_durable(last).unwrap();
    wal.close().unwrap();
    let (_wal, recovery) = open_sim(&fs, options).unwrap();
    let got: Vec<Vec<u8>> = recovery.records.iter().map(|r| r.payload.clone()).collect();
    assert_eq!(got, payloads);
    let total: usize = payloads.iter().map(|p| p.len() + 28).sum();
    assert!(
        recovery.segments > 2,
        "{total} {:?} {:?}",
        recovery.segments,
        fs.files()
    );
}

#[test]
fn newer_format_is_refused() {
    let fs = SimFs::new();
    let (wal, _) = open_sim(&fs, small_options()).unwrap();
    wal.append_ticket(&[Record::new(1, b"x")])
        .unwrap()
        .wait()
        .unwrap();
    wal.close().unwrap();
    let path = segment_path(1);
    // Version 2 in the header (its CRC is not even checked first).
    fs.overwrite(&path, 8, &2u32.to_le_bytes());
    match open_sim(&fs, small_options()) {
        Err(WalError::NewerFormat {
            file,
            found,
            supported,
        }) => {
            assert_eq!(file, path);
            assert_eq!(found, 2);
            assert_eq!(supported, FORMAT_VERSION);
        }
        other => panic!("expected NewerFormat, got {other:?}"),
    }
}

#[test]
fn record_limits_and_types() {
    let fs = SimFs::new();
    let options = small_options();
    let max = options.max_record_size as usize;
    let (wal, _) = open_sim(&fs, options).unwrap();
    let at_limit = vec![1u8; max];
    let over = vec![1u8; max + 1];
    assert!(wal
        .append(&[Record::new(1, &at_limit[..max - 1])], None)
        .is_ok());
    assert!(wal.append(&[Record::new(1, &at_limit)], None).is_ok());
    match wal.append(&[Record::new(1, b"ok"), Record::new(1, &over)], None) {
        Err(WalError::RecordTooLarge { size, max: limit }) => {
            assert_eq!(size, max as u64 + 1);
            assert_eq!(limit as usize, max);
        }
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    // A rejected group appends nothing.
    assert_eq!(wal.next_lsn(), 3);
    assert!(matches!(
        wal.append(&[Record::new(0, b"x")], None),
        Err(WalError::UnknownRecordType { record_type: 0 })
    ));
    assert!(matches!(wal.append(&[], None), Err(WalError::EmptyAppend)));
    assert!(matches!(
        wal.wait_durable(99),
        Err(WalError::NotAppended {
            lsn: 99,
            next_lsn: 3
        })
    ));
    wal.wait_durable(2).unwrap();
}

#[test]
fn invalid_options_are_named() {
    let fs = SimFs::new();
    let options = WalOptions {
        segment_size: 1024,
        max_record_size: 4096,
        ..WalOptions::default()
    };
    match open_sim(&fs, options) {
        Err(e @ WalError::InvalidOptions { field, .. }) => {
            assert_eq!(field, "segment_size");
            assert!(e.to_string().contains("segment_size"), "{e}");
        }
        other => panic!("expected InvalidOptions, got {other:?}"),
    }
    assert!(fs.files().is_empty(), "nothing created for invalid options");
}

#[test]
fn error_messages_say_what_to_do() {
    let corrupt = WalError::Corrupt {
        file: "/log/00000000000000000001.wal".into(),
        offset: 123,
        lsn: Some(7),
        detail: "bad".into(),
    };
    let text = corrupt.to_string();
    for needle in [
        "corrupt",
        "00000000000000000001.wal",
        "offset 123",
        "refusing to open",
        "explicit decision",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from {text}");
    }
    let poisoned = WalError::Poisoned {
        cause: "fdatasync: EIO".into(),
    };
    let text = poisoned.to_string();
    for needle in [
        "failed to sync earlier",
        "fdatasync: EIO",
        "reopen to recover",
        "nothing after that point was acknowledged",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from {text}");
    }
}

#[test]
fn drop_flushes_what_is_queued() {
    let fs = SimFs::new();
    {
        let (wal, _) = open_sim(&fs, small_options()).unwrap();
        for n in 0..100u64 {
            wal.append(&[Record::new(1, &n.to_le_bytes())], None)
                .unwrap();
        }
    }
    let image = copy(&fs);
    let (_wal, recovery) = open_sim(&image, small_options()).unwrap();
    assert_eq!(recovery.records.len(), 100);
}

#[test]
fn sync_mode_none_syncs_once_at_close() {
    let fs = SimFs::new();
    let options = WalOptions {
        sync: SyncMode::None,
        ..small_options()
    };
    let (wal, _) = open_sim(&fs, options.clone()).unwrap();
    let syncs = fs.counts().syncs;
    for n in 0..10u64 {
        wal.append(&[Record::new(1, &n.to_le_bytes())], None)
            .unwrap();
    }
    wal.wait_durable(10).unwrap();
    wal.close().unwrap();
    assert!(fs.counts().syncs - syncs <= 2, "no per-batch syncs");
    let (_wal, recovery) = open_sim(&copy(&fs), options).unwrap();
    assert_eq!(recovery.records.len(), 10);
}

#[test]
fn real_fs_round_trip_with_private_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let base = std::env::temp_dir().join(format!("duro-wal-test-{}", std::process::id()));
    let dir = base.join("nested/log");
    let _ = std::fs::remove_dir_all(&base);
    let options = WalOptions {
        segment_size: 256 << 10,
        max_record_size: 64 << 10,
        ..WalOptions::default()
    };
    let (wal, _) = Wal::open(Arc::new(RealFs), &dir, options.clone(), Arc::new(NullSink)).unwrap();
    for n in 0..100u64 {
        let p = payload(n, 3000);
        wal.append(&[Record::new(1, &p)], None).unwrap();
    }
    wal.wait_durable(100).unwrap();
    wal.close().unwrap();
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let segment = dir.join(duro_wal::segment_file_name(1));
    let meta = std::fs::metadata(&segment).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), options.segment_size, "preallocated");
    let (_wal, recovery) = Wal::open(Arc::new(RealFs), &dir, options, Arc::new(NullSink)).unwrap();
    let got: Vec<Vec<u8>> = recovery.records.iter().map(|r| r.payload.clone()).collect();
    let want: Vec<Vec<u8>> = (0..100).map(|n| payload(n, 3000)).collect();
    assert_eq!(got, want);
    drop(_wal);
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn leftover_tmp_segments_are_deleted_on_open() {
    let fs = SimFs::new();
    let (wal, _) = open_sim(&fs, small_options()).unwrap();
    wal.close().unwrap();
    let tmp = dir().join("00000000000000000009.wal.tmp");
    fs.put_file(&tmp, b"half a segment");
    let other = dir().join("NOTES.txt");
    fs.put_file(&other, b"not ours");
    let (_wal, _) = open_sim(&fs, small_options()).unwrap();
    assert!(fs.read_file(&tmp).is_none());
    assert!(
        fs.read_file(&other).is_some(),
        "unrelated files are left alone"
    );
}

/// Recovery copies the segment the log continues in (see `recovery.rs`). With a spare
/// successor on disk the copy ends after the last valid record and the log goes on in the
/// spare; without one the copy keeps its length and the log goes on in it. Either way every
/// record survives a later reopen and a power cut.
#[test]
fn reopen_copies_the_last_segment_and_continues_in_the_spare_or_in_place() {
    use duro_wal::fs::Fs;
    for with_spare in [true, false] {
        let fs = SimFs::new();
        let (wal, _) = open_sim(&fs, small_options()).unwrap();
        for n in 1..=5u64 {
            let lsn = wal
                .append(&[Record::new(1, &payload(n, 200))], None)
                .unwrap();
            wal.wait_durable(lsn).unwrap();
        }
        let segment = |no: u64| dir().join(format!("{no:020}.wal"));
        for _ in 0..2_000 {
            if fs.read_file(&segment(2)).is_some() {
                break;
            }
            thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(
            fs.read_file(&segment(2)).is_some(),
            "the preparer made the next segment"
        );
        wal.close().unwrap();
        if !with_spare {
            fs.remove_file(&segment(2)).unwrap();
            fs.sync_dir(&dir()).unwrap();
        }

        let (wal, recovery) = open_sim(&fs, small_options()).unwrap();
        assert_eq!(recovery.records.len(), 5);
        let first_len = fs.read_file(&segment(1)).unwrap().len() as u64;
        if with_spare {
            assert!(
                first_len < small_options().segment_size,
                "the copy holds only the records"
            );
        } else {
            assert_eq!(
                first_len,
                small_options().segment_size,
                "the copy keeps its length"
            );
        }
        let lsn = wal
            .append(&[Record::new(1, b"after reopen")], None)
            .unwrap();
        wal.wait_durable(lsn).unwrap();
        assert_eq!(lsn, 6);
        let image = fs.crash_image(duro_wal::fs::Damage::LoseUnsynced, 3);
        wal.close().unwrap();
        for fs in [&fs, &image] {
            let (_wal, recovery) = open_sim(fs, small_options()).unwrap();
            assert_eq!(recovery.records.len(), 6, "with_spare {with_spare}");
            assert_eq!(recovery.records[5].payload, b"after reopen");
        }
    }
}

/// `sync_round`: records waiting for the same batch share one round (the first LSN after
/// the batch being written), a durable record needs none, and reaching the round makes
/// every record of the batch durable.
#[test]
fn records_of_one_batch_share_a_sync_round() {
    use std::sync::atomic::{AtomicBool, Ordering};

    struct GateSink {
        open: AtomicBool,
    }
    impl duro_wal::DurableSink for GateSink {
        fn durable(&self, _: Arc<duro_wal::DurableBatch>) {
            while !self.open.load(Ordering::Acquire) {
                thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        fn failed(&self, _: &[u64], _: &WalError) {}
    }

    let sink = Arc::new(GateSink {
        open: AtomicBool::new(false),
    });
    let (wal, _) = Wal::open(
        Arc::new(SimFs::new()),
        &dir(),
        small_options(),
        sink.clone(),
    )
    .unwrap();
    wal.append_ticket(&[Record::new(1, b"first")])
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(wal.sync_round(1), 0, "a durable record needs no round");
    // The writer is parked in the sink after batch 1: these wait for the next batch.
    let last = (0..5u64)
        .map(|i| {
            wal.append(&[Record::new(1, &payload(i, 20))], None)
                .unwrap()
        })
        .last()
        .unwrap();
    assert_eq!(last, 6);
    let rounds: Vec<u64> = (2..=6).map(|lsn| wal.sync_round(lsn)).collect();
    assert_eq!(rounds, vec![2; 5], "one round for the whole pending batch");
    sink.open.store(true, Ordering::Release);
    wal.wait_durable(2).unwrap();
    // The round was reached: every record of the batch is durable with it.
    assert!(wal.durable_lsn() >= 6);
    assert!((2..=6).all(|lsn| wal.sync_round(lsn) == 0));
}

/// The spare segment the log asks for when it opens, and each time it moves into a new
/// segment, is made only after the log's first sync in its current segment: made at once,
/// its zero-fill and sync ran during that first sync and delayed it (after a crash, the
/// resumed runs wait for exactly that sync).
#[test]
fn spare_segments_are_made_after_the_first_sync_in_a_segment() {
    use std::time::{Duration, Instant};

    let fs = SimFs::new();
    let (wal, _) = open_sim(&fs, small_options()).unwrap();
    // Time enough for a preparer that did not wait to have made it.
    thread::sleep(Duration::from_millis(100));
    assert_eq!(
        wal.stats().segments_created,
        1,
        "the spare segment was made before anything was synced"
    );
    // 22 records of 7 KiB, one sync each: the log moves into segment 3 (64 KiB segments,
    // nine such records each), and asks for segment 4.
    let p = vec![7u8; 7 << 10];
    for _ in 0..22 {
        wal.append_ticket(&[Record::new(1, &p)])
            .unwrap()
            .wait()
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while wal.stats().segments_created < 4 {
        assert!(
            Instant::now() < deadline,
            "segment 4 was never made: {:?}, files {:?}",
            wal.stats(),
            fs.files()
        );
        thread::sleep(Duration::from_millis(1));
    }
    wal.close().unwrap();

    let trace = fs.trace();
    let name = |e: &duro_wal::fs::TraceEntry| {
        e.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let first = |kind: OpKind, file: &str| {
        trace
            .iter()
            .position(|e| e.kind == kind && name(e) == file)
            .unwrap_or_else(|| panic!("no {kind:?} of {file} in the trace"))
    };
    for n in 1..=3u64 {
        let synced = first(OpKind::SyncData, &segment_file_name(n));
        let next_made = first(OpKind::Create, &format!("{:020}.wal.tmp", n + 1));
        assert!(
            synced < next_made,
            "segment {} was started (op {next_made}) before the first sync in segment {n} (op {synced})",
            n + 1
        );
    }
}
