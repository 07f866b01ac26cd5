//! Bounded fuzzing of the embedded store's read paths on arbitrary bytes:
//!
//! 1. `store_records`: log records whose payloads are arbitrary (checksums valid), opened
//!    with `EmbeddedStore::open`: the record payload codec (`record::decode`), the journal
//!    codec and the index fold. Mutants of the records a real workload writes (every event
//!    kind), with structure-aware edits (run keys and positions at the extremes, counts and
//!    lengths that lie, events swapped for mutants) and plain byte mutations. No panic; an
//!    index that opened reads back, takes a new run and an append.
//! 2. `index_rows`: arbitrary `events.body` bytes (and odd values in `runs` columns) written
//!    with rusqlite into the index of an open store, read through `events()`, `summary()`,
//!    `list()` and `claim_due()`. No panic.
//!
//! Both check that no single allocation exceeds 4 MiB. Input formats: `fuzz/common/
//! store_log.rs` (shared with the AFL targets). Prints `fuzz <target>: <n> inputs, 0 panics`.
//! More inputs: `DURO_FUZZ_SCALE=50`; another seed: `DURO_FUZZ_SEED=<u64>`.

#[path = "../../../fuzz/common/events.rs"]
mod events;
#[path = "../../../fuzz/common/fuzzkit.rs"]
mod fuzzkit;
#[path = "../../../fuzz/common/store_log.rs"]
mod store_log;
#[path = "../../../fuzz/common/wal_dir.rs"]
mod wal_dir;

use fuzzkit::{next_input, scaled, seed, Campaign, CountingAlloc, Limits, Rng};
use std::sync::Arc;

use duro_store::{EmbeddedStore, Store};
use duro_wal::fs::SimFs;
use store_log::{
    edge_seeds, encode_run_record, mutate_log, record_seeds, store_options, store_target,
    IndexFixture, LogInput, ScratchDir, RUN_EVENTS,
};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[test]
fn fuzz_store_records() {
    let mut seeds = record_seeds();
    seeds.extend(edge_seeds());
    let seed_bytes: Vec<Vec<u8>> = seeds.iter().map(LogInput::to_bytes).collect();
    let event_seeds = events::event_seeds();
    let mut rng = Rng::new(seed());
    let mut campaign = Campaign::new("store_records", Limits::default());
    let total = scaled(8_000);
    for i in 0..total {
        let input = if (i as usize) < seeds.len() {
            seed_bytes[i as usize].clone()
        } else if rng.chance(85) {
            let mut log = rng.pick(&seeds).clone();
            mutate_log(&mut rng, &mut log, &seeds, &event_seeds);
            log.to_bytes()
        } else {
            next_input(&mut rng, &seed_bytes, 4096)
        };
        campaign.run(&input, store_target);
    }
    campaign.finish();
}

#[test]
fn fuzz_index_rows() {
    let fixture = IndexFixture::new();
    let seeds = fixture.seeds();
    let mut rng = Rng::new(seed() ^ 1);
    let mut campaign = Campaign::new("index_rows", Limits::default());
    let total = scaled(30_000);
    for i in 0..total {
        let input = if (i as usize) < seeds.len() {
            seeds[i as usize].clone()
        } else {
            next_input(&mut rng, &seeds, 1024)
        };
        campaign.run(&input, |data| fixture.run(data));
    }
    fixture
        .check_intact()
        .expect("the fixture's run reads back whole after the campaign");
    campaign.finish();
}

/// The seeds open and read back (the fuzzer starts from valid stores).
#[test]
fn seeds_open_cleanly() {
    let _one_at_a_time = fuzzkit::exclusive();
    let seeds = record_seeds();
    assert!(seeds.len() > 40, "{} seeds", seeds.len());
    for (i, seed) in seeds.iter().enumerate() {
        assert_eq!(store_target(&seed.to_bytes()), Ok(()), "seed {i}");
    }
}

/// Inputs that once needed care, kept as regression tests.
#[test]
fn known_hard_records() {
    let _one_at_a_time = fuzzkit::exclusive();
    let start = events::encode(&events::sample_events()[0]);
    let cases: Vec<LogInput> = vec![
        // A count that claims more events than the bytes hold; an empty payload.
        LogInput {
            flags: 0,
            records: vec![(RUN_EVENTS, b"\x01\x00\xff\xff\xff\xff\x0f".to_vec())],
        },
        LogInput {
            flags: 0,
            records: vec![(RUN_EVENTS, Vec::new())],
        },
        // An event length past the end; a record type this build does not know.
        LogInput {
            flags: 0,
            records: vec![(RUN_EVENTS, b"\x01\x00\x01\xff\xff\x03".to_vec())],
        },
        LogInput {
            flags: 0,
            records: vec![(9, encode_run_record(1, 0, std::slice::from_ref(&start)))],
        },
        // The versioned layout (type 2; `RUN_EVENTS` here is the first layout, type 1): a
        // newer event format, a format 0 that never existed, and no version at all.
        LogInput {
            flags: 0,
            records: vec![(
                2,
                [
                    &[2u8][..],
                    &encode_run_record(1, 0, std::slice::from_ref(&start)),
                ]
                .concat(),
            )],
        },
        LogInput {
            flags: 0,
            records: vec![(
                2,
                [
                    &[0u8][..],
                    &encode_run_record(1, 0, std::slice::from_ref(&start)),
                ]
                .concat(),
            )],
        },
        LogInput {
            flags: 0,
            records: vec![(2, Vec::new())],
        },
        // A first position above u32::MAX, and u32::MAX with two events.
        LogInput {
            flags: 0,
            records: vec![(
                RUN_EVENTS,
                encode_run_record(1, 1 << 32, std::slice::from_ref(&start)),
            )],
        },
        LogInput {
            flags: 0,
            records: vec![
                (
                    RUN_EVENTS,
                    encode_run_record(1, 0, std::slice::from_ref(&start)),
                ),
                (
                    RUN_EVENTS,
                    encode_run_record(1, u32::MAX as u64, &[start.clone(), start.clone()]),
                ),
            ],
        },
        // Events for a run that never started.
        LogInput {
            flags: 0,
            records: vec![(
                RUN_EVENTS,
                encode_run_record(9, 1, std::slice::from_ref(&start)),
            )],
        },
    ];
    for case in cases {
        assert_eq!(store_target(&case.to_bytes()), Ok(()), "{case:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Regression tests: inputs the fuzzer found, minimized by hand.

/// A run whose key is u64::MAX: open computes the next key as `max_run_key + 1`.
#[test]
fn regression_run_key_u64_max() {
    let _one_at_a_time = fuzzkit::exclusive();
    let start = events::encode(&events::sample_events()[0]);
    let input = LogInput {
        flags: 0,
        records: vec![(RUN_EVENTS, encode_run_record(u64::MAX, 0, &[start]))],
    };
    assert_eq!(store_target(&input.to_bytes()), Ok(()));
}

/// A run whose key is u64::MAX - 1: open works (the next key is u64::MAX), the first
/// start_run takes key u64::MAX and then computes the key after it.
#[test]
fn regression_start_after_run_key_u64_max_minus_1() {
    let _one_at_a_time = fuzzkit::exclusive();
    let start = events::encode(&events::sample_events()[0]);
    let input = LogInput {
        flags: 0,
        records: vec![(
            RUN_EVENTS,
            encode_run_record(u64::MAX - 1, 0, std::slice::from_ref(&start)),
        )],
    };
    // Refused at open (run key out of range): a typed error, never a panic.
    assert_eq!(store_target(&input.to_bytes()), Ok(()));
}

/// A run record with no events (run_key 1, position 0, count 0): the run is "touched" but
/// never loaded into the summary cache.
#[test]
fn regression_record_without_events() {
    let _one_at_a_time = fuzzkit::exclusive();
    let input = LogInput {
        flags: 0,
        records: vec![(RUN_EVENTS, b"\x01\x00\x00".to_vec())],
    };
    assert_eq!(store_target(&input.to_bytes()), Ok(()));
}

/// Two runs (keys 1 and 2) with one run id, applied in separate batches: `INSERT OR
/// REPLACE INTO runs` deletes run 1's row (run_id is UNIQUE) but keeps its events, so the
/// next key handed out is 1 again and the next start fails the index (UNIQUE on events),
/// which stops the store.
#[test]
fn regression_one_run_id_two_run_keys() {
    let _one_at_a_time = fuzzkit::exclusive();
    let start = events::encode(&events::sample_events()[0]);
    let first = LogInput {
        flags: 0,
        records: vec![(
            RUN_EVENTS,
            encode_run_record(1, 0, std::slice::from_ref(&start)),
        )],
    };
    let both = LogInput {
        flags: 0,
        records: vec![
            (
                RUN_EVENTS,
                encode_run_record(1, 0, std::slice::from_ref(&start)),
            ),
            (RUN_EVENTS, encode_run_record(2, 0, &[start])),
        ],
    };
    let dir = ScratchDir::new("regression");
    let segment = dir.path.join("wal").join("00000000000000000001.wal");
    let fs = Arc::new(SimFs::new());
    fs.put_file(&segment, &first.segment_image());
    EmbeddedStore::open(&dir.path, store_options(fs.clone()))
        .expect("open with run 1")
        .close()
        .expect("close");
    let fs = Arc::new(SimFs::new());
    fs.put_file(&segment, &both.segment_image());
    match EmbeddedStore::open(&dir.path, store_options(fs)) {
        Err(e) => assert!(e.to_string().contains("two run keys"), "{e}"),
        Ok(_) => panic!("a log with one run id under two keys must be refused, not half-applied"),
    }
}
