//! The canonical workloads of the campaigns: the workflow they register, the
//! store options they open with, which attempts fail and what each step outputs.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use duro_core::retry::RetryPolicy;
use duro_core::workflow::{StepDef, WorkflowDef};
use duro_store::EmbeddedOptions;
use duro_wal::fs::SimFs;
use duro_wal::WalOptions;

pub const WORKFLOW: &str = "campaign";
pub const VERSION: &str = "1";

/// `DURO_CAMPAIGN_LONG=1`: every operation, more seeds, bigger workloads.
pub fn long_mode() -> bool {
    std::env::var("DURO_CAMPAIGN_LONG").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// One canonical workload.
#[derive(Debug, Clone)]
pub struct Workload {
    pub name: &'static str,
    pub runs: usize,
    pub steps: usize,
    /// Size of each step output (bytes); big outputs rotate log segments.
    pub output_bytes: usize,
    /// Caller threads pulling work.
    pub threads: usize,
    pub segment_size: u64,
    /// How often the indexer releases (deletes) log segments the index covers.
    pub release_every: Duration,
    /// Some steps fail their first attempt (retryable, no delay) and succeed on the next.
    pub flaky: bool,
}

impl Workload {
    pub fn run_id(&self, i: usize) -> String {
        format!("{}-{i}", self.name)
    }

    pub fn run_ids(&self) -> Vec<String> {
        (0..self.runs).map(|i| self.run_id(i)).collect()
    }

    pub fn input(run_id: &str) -> Vec<u8> {
        format!("input of {run_id}").into_bytes()
    }

    pub fn def(&self) -> WorkflowDef {
        let policy = RetryPolicy::builder()
            .max_attempts(20)
            .initial_delay_ms(0)
            .jitter(0.0)
            .build()
            .unwrap();
        WorkflowDef {
            name: WORKFLOW.into(),
            version: VERSION.into(),
            steps: (0..self.steps)
                .map(|i| StepDef::task(step_name(i as u32), policy.clone()))
                .collect(),
            on_failure: None,
            timeout_ms: None,
        }
    }

    pub fn options(&self, fs: Arc<SimFs>) -> EmbeddedOptions {
        EmbeddedOptions {
            wal: WalOptions {
                segment_size: self.segment_size,
                max_record_size: 16 * 1024,
                ..WalOptions::default()
            },
            fs,
            release_every: self.release_every,
        }
    }

    /// Does the caller fail this attempt?
    pub fn fails(&self, run_id: &str, seq: u32, attempt: u32) -> bool {
        if !self.flaky || attempt != 1 {
            return false;
        }
        let mut h = DefaultHasher::new();
        (run_id, seq).hash(&mut h);
        h.finish() % 5 == 0
    }

    pub fn output(&self, run_id: &str, seq: u32, attempt: u32, life: u32) -> Vec<u8> {
        let mut out = format!("{run_id}/s{seq}/a{attempt}/life{life}/").into_bytes();
        if out.len() < self.output_bytes {
            out.resize(self.output_bytes, b'.');
        }
        out
    }
}

pub fn step_name(seq: u32) -> String {
    format!("s{seq}")
}
