//! The embedded store's targets, shared by `rust/duro-store/tests/fuzz_records.rs` and the
//! AFL targets (include `fuzzkit.rs`, `events.rs` and `wal_dir.rs` beside it).
//!
//! 1. [`store_target`]: log records with arbitrary payloads (and valid CRCs) →
//!    `EmbeddedStore::open`, which decodes each payload with the store's record codec
//!    (`record::decode`, private) and each event with the journal codec, then folds them into
//!    the SQLite index. Input format:
//!
//!    ```text
//!    flags:u8  (record_type:u8  len:u16le  payload[len])*
//!    flags bit 0  zero-fill the segment to its full size (a preallocated segment)
//!    ```
//!
//!    The records get LSNs 1, 2, … in segment 1, the first with SYNC_START. Besides "no
//!    panic": an index that opened can be read back (every listed run's journal, its
//!    summary), takes a new run and an append to an unfinished run.
//!
//! 2. [`IndexFixture`]: arbitrary `events.body` bytes (and odd values in `runs` columns) in
//!    the SQLite index of an open store, read through `events()`, `summary()`, `list()` and
//!    `claim_due()`. Input format:
//!
//!    ```text
//!    mode:u8  [column:u8  kind:u8 if mode bit 4]  body...
//!    mode bits 0-2  position of the event row to overwrite (position = event count adds one)
//!    mode bit 3     store a wrong row checksum (when the index has a crc column)
//!    mode bit 4     also overwrite runs.<column> (column % 18) with a value of `kind`
//!                   (0 NULL, 1 integer from the body, 2 text, 3 blob, 4 real)
//!    mode bit 5     store the body as TEXT (lossy UTF-8) instead of a BLOB
//!    mode bit 6     delete the row instead (a hole in the journal)
//!    ```
//!
//! The parts, one job each (every public item is re-exported here, so `store_log::Name`
//! paths hold): `store_log/record.rs` (the input format: run records, [`LogInput`]),
//! `store_log/setup.rs` (scratch directories, store options), `store_log/store_records.rs`
//! (target 1), `store_log/seeds.rs` (target 1's seeds), `store_log/mutate.rs` (structured
//! mutations of a log) and `store_log/index_rows.rs` (target 2).
#![allow(dead_code)]

// The paths are relative to this file's directory, however this file was included. The
// parts reach `fuzzkit`, `events` and `wal_dir` as `super::super::...`.
#[path = "store_log/index_rows.rs"]
mod index_rows;
#[path = "store_log/mutate.rs"]
mod mutate;
#[path = "store_log/record.rs"]
mod record;
#[path = "store_log/seeds.rs"]
mod seeds;
#[path = "store_log/setup.rs"]
mod setup;
#[path = "store_log/store_records.rs"]
mod store_records;

// Each includer uses only some of these (a test crate that never names one would warn).
#[allow(unused_imports)]
pub use index_rows::*;
#[allow(unused_imports)]
pub use mutate::*;
#[allow(unused_imports)]
pub use record::*;
#[allow(unused_imports)]
pub use seeds::*;
#[allow(unused_imports)]
pub use setup::*;
#[allow(unused_imports)]
pub use store_records::*;
