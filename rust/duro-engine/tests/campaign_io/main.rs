//! I/O-error campaign (issue "Crash and fault campaigns", item 3): EIO and
//! ENOSPC on every file operation the canonical workloads reach, once
//! (`Fault::FailOp`) and persistently (`Fault::FailSyncsFrom`,
//! `Fault::FailWritesFrom`), through the real `Engine` over an
//! `EmbeddedStore` whose log is on a `SimFs`.
//!
//! A clean run of each workload is traced; its operations are the injection
//! points (segment creation: create, zero-fill write, fdatasync, rename,
//! directory fsync; record writes and fdatasyncs; release unlinks and their
//! directory fsyncs). For every point × errno × fault kind the workload runs
//! with the fault planned, then:
//! - the life must end without a hang (every wait is bounded): either every
//!   run completed, or the caller got an error;
//! - a caller that is still waiting gets a clear error: after the drive stops,
//!   `wait_finished` on an unfinished run (bounded, 2 s) and `start` must fail
//!   with a message that says to reopen the store, never time out;
//! - zero acknowledgements after the failed sync: the store is recovered from
//!   `crash_image(LoseUnsynced)` (a failed fdatasync drops its dirty pages in
//!   the SimFs model, so a retried or ignored fsync would lose data there) and
//!   every acknowledgement the caller saw (handed-out work, step results that
//!   led to it, start receipts, published outcomes) must be in the recovered
//!   state, and nothing else the caller did not produce;
//! - the next open recovers and every run completes with the caller's outputs:
//!   from the crash image, and (a share of the cases; all in long mode) on the
//!   same SimFs with the fault cleared, as a process reopening without a reboot
//!   would.
//!
//! Bugs found here keep a minimal repro as a test in `repros.rs`: `next_work`
//! reported "the engine is closed" instead of the store failure; an event-loop caller was
//! never told; and a reopen without a reboot after a failed fsync built on records that
//! were never durable, so a power loss after it left a hole the next open refused (fixed:
//! recovery copies the last segment's valid prefix to a new, synced file).
//!
//! Default (CI) mode spreads the points (at most 60 per fault kind and errno)
//! and takes about 25 s in debug on two cores; `DURO_CAMPAIGN_LONG=1` injects
//! at every operation, uses bigger workloads and reopens every case on the
//! same SimFs too.
//!
//! The files: this one (the workloads both parts use), `campaigns.rs` (the fault campaigns)
//! and `repros.rs` (the minimal repros of the bugs they found, one scenario each).

// The campaign machinery shared with campaign_crash.rs.
#[path = "../campaign/mod.rs"]
mod campaign;
mod campaigns;
mod repros;

use std::time::Duration;

use campaign::{long_mode, Workload};

fn workload(name: &'static str) -> Workload {
    let long = long_mode();
    let base = Workload {
        name,
        runs: 1,
        steps: 1,
        output_bytes: 64,
        threads: 1,
        segment_size: 64 * 1024,
        release_every: Duration::from_millis(1),
        flaky: false,
    };
    match name {
        // One run, steps in sequence: one write and one fdatasync per step.
        "io-sequence" => Workload {
            steps: if long { 100 } else { 25 },
            ..base
        },
        // Several runs sharing group commits, outputs big enough to rotate
        // 64 KiB segments, and compaction releasing them as it goes.
        "io-mixed" => Workload {
            runs: 8,
            steps: if long { 16 } else { 8 },
            output_bytes: 3_000,
            threads: 2,
            flaky: true,
            ..base
        },
        other => panic!("no workload {other}"),
    }
}
