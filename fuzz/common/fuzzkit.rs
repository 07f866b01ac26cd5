//! fuzzkit: the dependency-free part of duro's fuzzing, shared by the bounded fuzz tests
//! in each crate's `tests/fuzz_*.rs` (included with `#[path]`) and by the AFL targets in
//! `fuzz/` (see `fuzz/README.md`).
//!
//! - [`Rng`]: SplitMix64, deterministic for a seed.
//! - [`mutate`]: stacked byte-level mutations of a valid encoding (bit flips, byte
//!   inserts/deletes, truncation, splicing, length-field corruption, huge varints).
//! - [`crc32c`]: software CRC32C (Castagnoli), to build frames with valid checksums
//!   without depending on a crate.
//! - [`CountingAlloc`] and [`Campaign`]: run a parser on many inputs, catch panics (on any
//!   thread), measure allocations per input, print `fuzz <target>: <n> inputs, <p> panics`,
//!   and fail with the offending input as a Rust byte string, ready for a regression test.
//!
//! Environment: `DURO_FUZZ_SEED` (u64) changes the seed, `DURO_FUZZ_SCALE` (a float,
//! default 1) multiplies the number of inputs: `DURO_FUZZ_SCALE=100` in release mode is a
//! long, coverage-less run.
//!
//! The parts, one job each (every item is re-exported here, so `fuzzkit::Name` paths hold):
//! `fuzzkit/input.rs` (random numbers, encodings, mutations), `fuzzkit/counting_alloc.rs`
//! (allocation accounting), `fuzzkit/campaign.rs` (the run over many inputs and its
//! settings) and `fuzzkit/problems.rs` (reports, known-problem matching).
#![allow(dead_code)]

// The paths are relative to this file's directory, however this file was included.
#[path = "fuzzkit/campaign.rs"]
mod campaign;
#[path = "fuzzkit/counting_alloc.rs"]
mod counting_alloc;
#[path = "fuzzkit/input.rs"]
mod input;
#[path = "fuzzkit/problems.rs"]
mod problems;

// Each includer uses only some of these (a test crate that never names one would warn).
#[allow(unused_imports)]
pub use campaign::*;
#[allow(unused_imports)]
pub use counting_alloc::*;
#[allow(unused_imports)]
pub use input::*;
#[allow(unused_imports)]
pub use problems::*;
