//! duro's fuzz targets, for AFL (`src/bin/afl_*.rs`) and for replaying inputs
//! (`src/bin/replay.rs`). The targets and their input formats live in `common/`, shared with
//! the bounded fuzz tests of each crate (`rust/*/tests/fuzz_*.rs`).

#[path = "../common/events.rs"]
pub mod events;
#[path = "../common/fuzzkit.rs"]
pub mod fuzzkit;
#[path = "../common/store_log.rs"]
pub mod store_log;
#[path = "../common/wal_dir.rs"]
pub mod wal_dir;

use std::path::Path;

/// Every target: `(name, what it exercises)`.
pub const TARGETS: [(&str, &str); 4] = [
    ("decode_event", "duro_core::journal::decode_event on the input"),
    ("wal_recovery", "Wal::open on a directory of segment files (format: common/wal_dir.rs)"),
    ("store_records", "EmbeddedStore::open on log records with these payloads (format: common/store_log.rs)"),
    ("index_rows", "an open store's reads after events.body/runs rows are overwritten (format: common/store_log.rs)"),
];

/// Reported bugs not fixed yet, as the bounded tests register them (`Campaign::known_bug`):
/// `(target, "file|line snippet" or problem text, regression test)`. `replay` labels crashes
/// that match one. Remove an entry with its fix. (None open: the nine found so far are fixed
/// and their regression tests run.)
pub const KNOWN_BUGS: [(&str, &str, &str); 0] = [];

/// The regression test of the known bug a problem (a panic message with its location, or a
/// broken property) matches, if any.
pub fn known_bug(target: &str, problem: &str) -> Option<&'static str> {
    KNOWN_BUGS
        .iter()
        .find(|(t, pattern, _)| *t == target && fuzzkit::matches_known(problem, pattern))
        .map(|(_, _, test)| *test)
}

/// No single allocation above this while one input runs (inputs are at most a few KiB).
pub const LARGEST_ALLOCATION: usize = 4 << 20;

thread_local! {
    static INDEX: store_log::IndexFixture = store_log::IndexFixture::new();
}

/// Runs target `name` on `data`: `Err` for a broken property (a panic stays a panic).
pub fn run_target(name: &str, data: &[u8]) -> Result<(), String> {
    match name {
        "decode_event" => events::codec_target(data),
        "wal_recovery" => wal_dir::wal_target(data),
        "store_records" => store_log::store_target(data),
        "index_rows" => INDEX.with(|fixture| fixture.run(data)),
        other => Err(format!("unknown target {other:?}")),
    }
}

/// What AFL runs for each input: any broken property or oversized allocation aborts.
pub fn check(name: &str, data: &[u8]) {
    fuzzkit::reset_largest();
    if let Err(problem) = run_target(name, data) {
        panic!("{name}: {problem}");
    }
    let largest = fuzzkit::largest();
    if largest > LARGEST_ALLOCATION {
        panic!(
            "{name}: one allocation of {largest} bytes for a {}-byte input",
            data.len()
        );
    }
}

/// The seed corpus of a target: valid encodings (every event kind, real logs, real store
/// records), as the bounded tests use them.
pub fn seeds(name: &str, wal_fixtures: &Path) -> Vec<Vec<u8>> {
    match name {
        "decode_event" => events::event_seeds(),
        "wal_recovery" => {
            let mut dirs = wal_dir::seed_dirs();
            dirs.extend(wal_dir::fixture_dirs(wal_fixtures));
            dirs.iter().map(wal_dir::DirInput::to_bytes).collect()
        }
        "store_records" => {
            let mut logs = store_log::record_seeds();
            logs.extend(store_log::edge_seeds());
            logs.iter().map(store_log::LogInput::to_bytes).collect()
        }
        "index_rows" => INDEX.with(|fixture| fixture.seeds()),
        _ => Vec::new(),
    }
}
