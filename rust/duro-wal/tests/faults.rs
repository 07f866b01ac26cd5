//! Injected write and fsync errors: fail-stop, zero acknowledgements after, reopen recovers.

mod common;

use std::time::Duration;

use common::*;
use duro_wal::fs::{Fault, SimFs};
use duro_wal::{Record, WalError, WalOptions};

/// Waits until the preparer has created segment 2, so the next operations are the writer's.
fn wait_for_spare(fs: &SimFs) {
    for _ in 0..5000 {
        if fs.read_file(&segment_path(2)).is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("segment 2 was never prepared");
}

fn assert_poisoned(result: Result<impl std::fmt::Debug, WalError>, what: &str) {
    match result {
        Err(WalError::Poisoned { cause }) => assert!(!cause.is_empty()),
        other => panic!("{what}: expected Poisoned, got {other:?}"),
    }
}

/// Injects one fault (planned at the writer's next operation) and checks fail-stop, zero
/// acknowledgements after it, and recovery on reopen and after a power cut. Returns how many
/// operations failed.
fn sync_failure(fault: impl Fn(u64) -> Fault, errno: i32) -> usize {
    let fs = SimFs::new();
    let sink = RecordingSink::new(false);
    let (wal, _) = open_with_sink(&fs, small_options(), sink.clone()).unwrap();
    for n in 1..=5u64 {
        let lsn = wal
            .append(&[Record::new(1, &payload(n, 50))], Some(n))
            .unwrap();
        wal.wait_durable(lsn).unwrap();
    }
    sink.wait_for(5);
    wait_for_spare(&fs);
    fs.inject(fault(fs.ops() + 1));

    let ticket = wal
        .append_ticket(&[Record::new(1, &payload(6, 50))])
        .unwrap();
    let _ = wal.append(&[Record::new(1, &payload(7, 50))], Some(100));
    assert_poisoned(ticket.wait(), "ticket of the failed batch");
    assert!(wal.is_poisoned());

    // The sink heard once, with every token that will never be acknowledged.
    let log = sink.log.lock().unwrap();
    assert_eq!(log.failed.len(), 1);
    let (tokens, message, raw) = &log.failed[0];
    assert_eq!(*raw, Some(errno), "{message}");
    if !tokens.is_empty() {
        assert_eq!(tokens, &vec![100]);
    }
    assert_eq!(log.tokens, vec![1, 2, 3, 4, 5]);
    drop(log);

    // Zero acknowledgements after the failure.
    assert_eq!(wal.durable_lsn(), 5);
    assert_poisoned(wal.append(&[Record::new(1, b"late")], Some(200)), "append");
    assert_poisoned(
        wal.append_ticket(&[Record::new(1, b"late")])
            .map(|t| t.lsn()),
        "append_ticket",
    );
    assert_poisoned(wal.wait_durable(6), "wait_durable");
    // What was synced before the failure stays durable.
    wal.wait_durable(5).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    let log = sink.log.lock().unwrap();
    assert_eq!(log.durable_after_failure, 0);
    assert_eq!(log.failed.len(), 1);
    assert_eq!(log.tokens, vec![1, 2, 3, 4, 5]);
    drop(log);
    assert_poisoned(wal.close(), "close");
    let failed_ops = fs.trace().iter().filter(|t| t.failed.is_some()).count();
    assert!(failed_ops >= 1, "the fault fired");

    // Reopen (the process restarted, the machine did not) recovers a prefix of what was
    // appended, with every acknowledged record.
    fs.clear_faults();
    let (wal, recovery) = open_sim(&fs, small_options()).unwrap();
    assert!(recovery.records.len() >= 5);
    for (i, r) in recovery.records.iter().enumerate() {
        assert_eq!(r.payload, payload(i as u64 + 1, 50));
    }
    let lsn = wal
        .append(&[Record::new(1, b"after reopen")], None)
        .unwrap();
    wal.wait_durable(lsn).unwrap();
    wal.close().unwrap();
    // A power cut now. The failed batch may have reached the page cache and nothing more
    // (the kernel dropped it when the fsync failed, yet the reopen above could read it).
    // The reopen wrote what it recovered anew before appending, so nothing it read and
    // nothing appended after it is lost.
    let image = fs.crash_image(duro_wal::fs::Damage::LoseUnsynced, 1);
    let (_wal, after_power_cut) = open_sim(&image, small_options()).unwrap();
    assert_eq!(after_power_cut.records.len(), recovery.records.len() + 1);
    assert_eq!(
        after_power_cut.records.last().unwrap().payload,
        b"after reopen"
    );
    failed_ops
}

/// One line in the campaign report per test (every check is an assertion: reaching it means
/// none failed).
fn report(what: &str, faults: usize, failed_ops: usize) {
    report_campaign(&format!(
        "I/O faults    wal [{what}]: faults injected {faults}, operations failed {failed_ops}; \
         fail-stop, 0 acknowledgements after the failure, reopen recovered; violations 0"
    ));
}

#[test]
fn persistent_fsync_eio_is_fail_stop() {
    let failed_ops = sync_failure(
        |op| Fault::FailSyncsFrom {
            op,
            errno: libc::EIO,
        },
        libc::EIO,
    );
    report("persistent fsync EIO", 1, failed_ops);
}

#[test]
fn persistent_fsync_enospc_is_fail_stop() {
    let failed_ops = sync_failure(
        |op| Fault::FailSyncsFrom {
            op,
            errno: libc::ENOSPC,
        },
        libc::ENOSPC,
    );
    report("persistent fsync ENOSPC", 1, failed_ops);
}

#[test]
fn transient_fsync_error_is_still_fail_stop() {
    // Only the one sync fails (write is op+1, its sync op+2): the log must not retry it.
    let failed_ops = sync_failure(
        |op| Fault::FailOp {
            op: op + 1,
            errno: libc::EIO,
        },
        libc::EIO,
    );
    report("one fsync EIO", 1, failed_ops);
}

#[test]
fn write_error_is_fail_stop() {
    let failed_ops = sync_failure(
        |op| Fault::FailWritesFrom {
            op,
            errno: libc::ENOSPC,
        },
        libc::ENOSPC,
    );
    report("persistent write ENOSPC", 1, failed_ops);
}

#[test]
fn failure_to_prepare_a_segment_fails_the_log_at_rotation() {
    let fs = SimFs::new();
    let options = WalOptions {
        segment_size: 4 << 10,
        max_record_size: 1 << 10,
        ..small_options()
    };
    let sink = RecordingSink::new(false);
    // With every write failing, even creating segment 1 fails.
    fs.inject(Fault::FailWritesFrom {
        op: 1,
        errno: libc::ENOSPC,
    });
    let result = open_with_sink(&fs, options.clone(), sink.clone());
    // Creating segment 1 itself fails on open: a typed error, nothing created.
    match result {
        Err(WalError::Io { source, .. }) => assert_eq!(source.raw_os_error(), Some(libc::ENOSPC)),
        other => panic!("expected Io, got {other:?}"),
    }
    fs.clear_faults();
    let (wal, _) = open_with_sink(&fs, options.clone(), sink.clone()).unwrap();
    wal.append_ticket(&[Record::new(1, &[1; 100])])
        .unwrap()
        .wait()
        .unwrap();
    // The spare is made after the first sync.
    wait_for_spare(&fs);
    wal.close().unwrap();
    // Remove the spare and make its re-creation fail: rotation must fail-stop.
    let fs2 = copy(&fs);
    let (wal, _) = {
        fs2.inject(Fault::FailSyncsFrom {
            op: 1,
            errno: libc::EIO,
        });
        // Recovery's own fsync fails: a typed error.
        match open_with_sink(&fs2, options.clone(), sink.clone()) {
            Err(WalError::Io { source, .. }) => assert_eq!(source.raw_os_error(), Some(libc::EIO)),
            other => panic!("expected Io, got {other:?}"),
        }
        fs2.clear_faults();
        open_with_sink(&fs2, options.clone(), sink.clone()).unwrap()
    };
    let mut last = Ok(0);
    for n in 0..40u64 {
        match wal.append(&[Record::new(1, &[n as u8 + 1; 500])], Some(n)) {
            Ok(lsn) => last = wal.wait_durable(lsn).map(|_| lsn),
            Err(e) => {
                last = Err(e);
                break;
            }
        }
        if n == 2 {
            // Every segment created from now on fails its fsync.
            fs2.inject(Fault::FailSyncsFrom {
                op: fs2.ops() + 1,
                errno: libc::EIO,
            });
        }
    }
    // Either the spare was ready before the fault (then a later one fails), or not: the log
    // must have failed by the time it needed a segment it could not create.
    assert_poisoned(last, "append after a failed segment creation");
    assert_eq!(sink.log.lock().unwrap().failed.len(), 1);
    let failed_ops = [&fs, &fs2]
        .iter()
        .map(|fs| fs.trace().iter().filter(|t| t.failed.is_some()).count())
        .sum();
    report("segment creation: open, recovery, rotation", 3, failed_ops);
}
