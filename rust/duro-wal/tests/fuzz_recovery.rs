//! Bounded fuzzing of log recovery (`Wal::open`) on arbitrary segment files planted in a
//! `SimFs`: mutants of real logs (fresh, multi-segment, released, torn by every kind of
//! crash damage, the v1 fixtures) — bytes, frame fields with fixed-up checksums, segment
//! headers, file names (tmp files, junk, segment numbers up to u64::MAX), dropped, copied
//! and swapped files — and random bytes. No panic on any thread; recovered LSNs are
//! contiguous; a second open returns the same records; no allocation above 4 MiB.
//!
//! The input format is `fuzz/common/wal_dir.rs`'s, shared with the AFL target, so a failing
//! input printed here replays there. Prints `fuzz wal_recovery: <n> inputs, 0 panics`. More
//! inputs: `DURO_FUZZ_SCALE=50`; another seed: `DURO_FUZZ_SEED=<u64>`.

#[path = "../../../fuzz/common/fuzzkit.rs"]
mod fuzzkit;
#[path = "../../../fuzz/common/wal_dir.rs"]
mod wal_dir;

use std::path::Path;

use fuzzkit::{next_input, scaled, seed, Campaign, CountingAlloc, Limits, Rng};
use wal_dir::{fixture_dirs, mutate_dir, seed_dirs, wal_target, DirInput};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn all_seeds() -> Vec<DirInput> {
    let mut seeds = seed_dirs();
    seeds.extend(fixture_dirs(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
    ));
    seeds
}

#[test]
fn fuzz_wal_recovery() {
    let seeds = all_seeds();
    let seed_bytes: Vec<Vec<u8>> = seeds.iter().map(DirInput::to_bytes).collect();
    let mut rng = Rng::new(seed());
    let mut campaign = Campaign::new("wal_recovery", Limits::default());
    let total = scaled(50_000);
    for i in 0..total {
        let input = if (i as usize) < seeds.len() {
            seed_bytes[i as usize].clone()
        } else if rng.chance(85) {
            let mut dir = rng.pick(&seeds).clone();
            mutate_dir(&mut rng, &mut dir, &seeds);
            dir.to_bytes()
        } else {
            // Raw bytes of the input format: mutants of serialized seeds, and random bytes.
            next_input(&mut rng, &seed_bytes, 8192)
        };
        campaign.run(&input, wal_target);
    }
    campaign.finish();
}

/// The seeds are logs that open (the fuzzer starts from valid inputs), torn ones included.
#[test]
fn seeds_open_cleanly() {
    let _one_at_a_time = fuzzkit::exclusive();
    let seeds = all_seeds();
    assert!(seeds.len() >= 30, "{} seeds", seeds.len());
    for (i, seed) in seeds.iter().enumerate() {
        assert_eq!(wal_target(&seed.to_bytes()), Ok(()), "seed {i}");
    }
}

// ---------------------------------------------------------------------------------------
// Regression tests: inputs the fuzzer found, minimized by hand. Each is a directory with
// one segment whose checksums are all valid.

/// Segment `segment_no` (epoch 7) holding one record of type 1 with SYNC_START at `lsn`.
fn one_record_segment(segment_no: u64, lsn: u64) -> Vec<u8> {
    let mut image = wal_dir::segment_header(7, segment_no).to_vec();
    wal_dir::encode_record(&mut image, 1, wal_dir::FLAG_SYNC_START, lsn, 7, b"x");
    image
}

/// A record with LSN u64::MAX: recovery computes the next LSN as `lsn + 1`.
#[test]
fn regression_record_with_lsn_u64_max() {
    let _one_at_a_time = fuzzkit::exclusive();
    let input = DirInput {
        flags: 0,
        files: vec![(1, one_record_segment(1, u64::MAX))],
    };
    assert_eq!(wal_target(&input.to_bytes()), Ok(()));
}

/// The last segment is numbered u64::MAX: open computes the next segment's number.
#[test]
fn regression_segment_number_u64_max() {
    let _one_at_a_time = fuzzkit::exclusive();
    let input = DirInput {
        flags: 0,
        files: vec![(0xff, one_record_segment(u64::MAX, 1))],
    };
    assert_eq!(wal_target(&input.to_bytes()), Ok(()));
}

/// A log whose next LSN is u64::MAX opens; the first append overflows `next_lsn`.
#[test]
fn regression_append_when_next_lsn_is_u64_max() {
    let _one_at_a_time = fuzzkit::exclusive();
    let input = DirInput {
        flags: wal_dir::FLAG_APPEND_AFTER,
        files: vec![(1, one_record_segment(1, u64::MAX - 1))],
    };
    assert_eq!(wal_target(&input.to_bytes()), Ok(()));
}

/// The last segment is numbered u64::MAX - 1: open works, the next segment (u64::MAX) is
/// prepared; the first rotation into it asks for the one after it.
#[test]
fn regression_rotation_past_segment_u64_max() {
    let _one_at_a_time = fuzzkit::exclusive();
    let input = DirInput {
        flags: wal_dir::FLAG_APPEND_MANY,
        files: vec![(0xfe, one_record_segment(u64::MAX - 1, 1))],
    };
    assert_eq!(wal_target(&input.to_bytes()), Ok(()));
}
