//! Segments: rotation and release, groups larger than a segment, leftover and recovered
//! segments, and when spare segments are made.

mod common;

use std::thread;

use common::*;
use duro_wal::fs::{OpKind, SimFs};
use duro_wal::{segment_file_name, Record, WalOptions};

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
        let next_made = first(OpKind::Create, &format!("{}.tmp", segment_file_name(n + 1)));
        assert!(
            synced < next_made,
            "segment {} was started (op {next_made}) before the first sync in segment {n} (op {synced})",
            n + 1
        );
    }
}
