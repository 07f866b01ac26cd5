//! Appending and reading back, record and option limits, errors, close, and the real file
//! system. Group commit is in `group_commit.rs`, segments in `segments.rs`.

mod common;

use std::sync::Arc;

use common::*;
use duro_wal::fs::{RealFs, SimFs};
use duro_wal::{NullSink, Record, SyncMode, Wal, WalError, WalOptions, FORMAT_VERSION};

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
