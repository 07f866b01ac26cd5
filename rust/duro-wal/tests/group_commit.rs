//! Group commit: contiguous LSNs from many threads, batching of whatever is pending, and
//! sync rounds.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::thread;

use common::*;
use duro_wal::fs::SimFs;
use duro_wal::{Record, Wal, WalError};

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
