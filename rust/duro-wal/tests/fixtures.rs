//! Logs written by format version 1, kept as files: every later version must still read them.
//!
//! `tests/fixtures/<name>/` holds the segment files of one log plus `expected.txt`
//! (`first_lsn last_lsn torn`). Payloads are derived from the LSN, so the files alone say
//! what must be recovered. Regenerate (only when adding a fixture, never to "fix" one) with
//! `DURO_WAL_WRITE_FIXTURES=1 cargo test -p duro-wal --test fixtures -- --ignored`.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use duro_wal::fs::SimFs;
use duro_wal::{Record, WalOptions};

fn fixture_payload(lsn: u64) -> Vec<u8> {
    format!("fixture record {lsn};")
        .repeat((lsn % 7) as usize)
        .into_bytes()
}

fn fixture_type(lsn: u64) -> u8 {
    (lsn % 5 + 1) as u8
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

struct Fixture {
    name: &'static str,
    options: WalOptions,
}

fn fixtures() -> Vec<Fixture> {
    let small = WalOptions {
        segment_size: 4096,
        max_record_size: 1024,
        ..small_options()
    };
    vec![
        Fixture {
            name: "v1-not-preallocated",
            options: WalOptions {
                preallocate: false,
                ..small.clone()
            },
        },
        Fixture {
            name: "v1-preallocated",
            options: small.clone(),
        },
        Fixture {
            name: "v1-released",
            options: WalOptions {
                preallocate: false,
                ..small.clone()
            },
        },
        Fixture {
            name: "v1-torn-tail",
            options: WalOptions {
                preallocate: false,
                ..small
            },
        },
    ]
}

fn load(name: &str) -> (SimFs, (u64, u64, bool)) {
    let dir = fixtures_dir().join(name);
    let fs = SimFs::new();
    let mut expected = None;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        if file_name == "expected.txt" {
            let text = String::from_utf8(bytes).unwrap();
            let parts: Vec<&str> = text.split_whitespace().collect();
            expected = Some((
                parts[0].parse().unwrap(),
                parts[1].parse().unwrap(),
                parts[2] == "torn",
            ));
        } else {
            fs.put_file(&common::dir().join(&file_name), &bytes);
        }
    }
    (fs, expected.expect("expected.txt"))
}

#[test]
fn version_1_fixtures_still_open() {
    for fixture in fixtures() {
        let (fs, (first, last, torn)) = load(fixture.name);
        let (wal, recovery) = open_sim(&fs, fixture.options.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", fixture.name));
        let lsns: Vec<u64> = recovery.records.iter().map(|r| r.lsn).collect();
        assert_eq!(lsns, (first..=last).collect::<Vec<_>>(), "{}", fixture.name);
        for r in &recovery.records {
            assert_eq!(
                r.payload,
                fixture_payload(r.lsn),
                "{} LSN {}",
                fixture.name,
                r.lsn
            );
            assert_eq!(
                r.record_type,
                fixture_type(r.lsn),
                "{} LSN {}",
                fixture.name,
                r.lsn
            );
        }
        assert_eq!(recovery.truncated.is_some(), torn, "{}", fixture.name);
        // The log goes on where the fixture ended.
        let lsn = wal.append(&[Record::new(1, b"next")], None).unwrap();
        assert_eq!(lsn, last + 1, "{}", fixture.name);
        wal.wait_durable(lsn).unwrap();
        wal.close().unwrap();
        // Also with today's default options (segment size differs from the fixture's).
        let (_wal, again) = open_sim(&fs, WalOptions::default()).unwrap();
        assert_eq!(
            again.records.len() as u64,
            last + 2 - first,
            "{}",
            fixture.name
        );
    }
}

#[test]
#[ignore = "writes tests/fixtures; run only when adding a fixture"]
fn write_fixtures() {
    if std::env::var_os("DURO_WAL_WRITE_FIXTURES").is_none() {
        return;
    }
    for fixture in fixtures() {
        let fs = SimFs::new();
        let (wal, _) = open_sim(&fs, fixture.options.clone()).unwrap();
        let mut lsn = 0;
        let records = if fixture.name == "v1-torn-tail" {
            12
        } else {
            100
        };
        while lsn < records {
            // Groups of 1..=3 records, each waited, so there are several sync groups.
            let group_len = (lsn % 3 + 1).min(records - lsn);
            let payloads: Vec<(u8, Vec<u8>)> = (lsn + 1..=lsn + group_len)
                .map(|l| (fixture_type(l), fixture_payload(l)))
                .collect();
            let group: Vec<Record> = payloads.iter().map(|(t, p)| Record::new(*t, p)).collect();
            lsn = wal.append(&group, None).unwrap();
            wal.wait_durable(lsn).unwrap();
        }
        let mut first = 1;
        if fixture.name == "v1-released" {
            wal.release_through(60).unwrap();
        }
        wal.close().unwrap();
        let mut last = lsn;
        let mut torn = false;
        if fixture.name == "v1-torn-tail" {
            // Half of an unsynced last record: the kind of tail a crash leaves.
            let path = segment_path(1);
            let bytes = fs.read_file(&path).unwrap();
            let end = bytes.len() as u64;
            let mut half = Vec::new();
            let payload = fixture_payload(13);
            half.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            half.extend_from_slice(&[fixture_type(13), 0, 0, 0]);
            half.extend_from_slice(&13u64.to_le_bytes());
            half.extend_from_slice(&bytes[12..16]); // the segment epoch
            half.extend_from_slice(&payload[..payload.len() / 2]);
            fs.overwrite(&path, end, &half);
            torn = true;
        }
        if fixture.name == "v1-released" {
            let (_wal, recovery) = open_sim(&copy(&fs), fixture.options.clone()).unwrap();
            first = recovery.records[0].lsn;
            last = recovery.records.last().unwrap().lsn;
            assert!(first > 1);
        }
        let out = fixtures_dir().join(fixture.name);
        std::fs::create_dir_all(&out).unwrap();
        for path in fs.files() {
            let name = path.file_name().unwrap();
            std::fs::write(out.join(name), fs.read_file(&path).unwrap()).unwrap();
        }
        std::fs::write(
            out.join("expected.txt"),
            format!("{first} {last} {}\n", if torn { "torn" } else { "clean" }),
        )
        .unwrap();
    }
}
