//! Shared machinery of the crash and I/O-fault campaigns (`campaign_crash.rs`,
//! `campaign_io/`): canonical workloads driven through the real [`Engine`]
//! over an [`EmbeddedStore`] whose log lives on a [`SimFs`], a caller that
//! keeps an oracle outside the store under test, and the invariant checks of
//! RELIABILITY.md.
//!
//! One *life* is one process lifetime: open the store (the log on a SimFs,
//! the SQLite index on the real file system, under /dev/shm when it exists),
//! open the engine, snapshot what recovery found, check it against the
//! oracle, register the workflows, start every run of the workload (starts
//! are idempotent), and play the caller until every run ended, the store
//! failed, or a deadline passed (a hang is a violation, never a stuck test).
//!
//! The oracle records what the caller *observed*, which is exactly what the
//! store acknowledged to it:
//! - work handed out (`Work::Execute` of (run, seq, attempt)): the record
//!   holding that `StepStarted` was durable, and so was every earlier step's
//!   result (the engine decides step `seq` from the result of `seq - 1` in the
//!   same record);
//! - a start whose receipt `wait_durable` returned OK;
//! - an outcome published by the engine (it publishes only after the
//!   terminal event is durable);
//! - every output and failure the caller produced, tagged with its life, so
//!   a recovered output can be traced to the exact execution that made it.

#![allow(dead_code)]

mod checks;
mod life;
mod oracle;
mod tools;
mod workload;

// Everything the two campaigns use, as `campaign::*` (each uses only part of it).
#[allow(unused_imports)]
pub use checks::{check_executions, check_final, check_prefix, check_state, snapshot, Snapshot};
#[allow(unused_imports)]
pub use life::{run_life, LifeReport, LifeSpec, Probe};
#[allow(unused_imports)]
pub use oracle::{Oracle, Produced};
#[allow(unused_imports)]
pub use tools::{
    damage_name, fingerprint, is_store_failure, save_index, says_reopen, spread, tempdir,
    SavedIndex,
};
#[allow(unused_imports)]
pub use workload::{long_mode, step_name, Workload, VERSION, WORKFLOW};

#[path = "../../../../fuzz/common/report.rs"]
mod report;
#[allow(unused_imports)]
pub use report::report_campaign;
