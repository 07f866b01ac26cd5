//! The engine driven by a simulated caller, over the in-memory and embedded stores.
//!
//! This file holds the simulated caller ([`drive`]) and the builders every scenario uses; the
//! scenarios are in `runs.rs` (starts, completion, retries, limits), `control.rs` (pause,
//! resume, cancel, compensation, on_failure), `timers.rs` (sleeps, event waits, timeouts,
//! durable timers across a restart), `reads.rs` (which calls read the store) and `restarts.rs`
//! (recovery without redoing steps, a changed definition).

mod control;
mod reads;
mod restarts;
mod runs;
mod timers;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use duro_core::journal::{ErrorInfo, StepKind};
use duro_core::retry::RetryPolicy;
use duro_core::workflow::{StepDef, WorkflowDef};
use duro_engine::{
    Engine, EngineConfig, ExecuteWork, LaneId, ManualClock, SystemClock, Wait, Work,
};
use duro_store::{EmbeddedOptions, EmbeddedStore, MemoryStore, Store};

pub(crate) fn policy(max_attempts: u32, delay_ms: u64) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(max_attempts)
        .initial_delay_ms(delay_ms)
        .jitter(0.0)
        .build()
        .unwrap()
}

pub(crate) fn wf(name: &str, steps: Vec<StepDef>) -> WorkflowDef {
    WorkflowDef {
        name: name.into(),
        version: "1".into(),
        steps,
        on_failure: None,
        timeout_ms: None,
    }
}

pub(crate) fn task(name: &str) -> StepDef {
    StepDef::task(name, policy(3, 100))
}

pub(crate) fn memory_engine(clock: Arc<ManualClock>) -> Engine {
    Engine::open(Arc::new(MemoryStore::new()), EngineConfig::default(), clock).unwrap()
}

pub(crate) fn embedded_engine(dir: &Path) -> Engine {
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(dir, EmbeddedOptions::default()).unwrap());
    Engine::open(store, EngineConfig::default(), Arc::new(SystemClock)).unwrap()
}

pub(crate) type Handler<'a> = dyn FnMut(&ExecuteWork, &str) -> Result<Vec<u8>, ErrorInfo> + 'a;

/// Plays the caller: runs every work of `lane` until `run_key` ends or nothing is left to do.
/// The handler gets the work and the name of what it runs.
pub(crate) fn drive(
    engine: &Engine,
    defs: &HashMap<String, WorkflowDef>,
    run_key: u64,
    handler: &mut Handler<'_>,
) -> Option<Wait> {
    let mut names: HashMap<u64, String> = HashMap::new();
    for _ in 0..10_000 {
        match engine
            .next_work(LaneId::Sync, Duration::from_millis(20))
            .unwrap()
        {
            Some(Work::Execute(work)) => {
                if let Some(load) = &work.load {
                    names.insert(work.handle, load.workflow.clone());
                }
                let def = &defs[&names[&work.handle]];
                let name = match work.kind {
                    StepKind::OnFailure => "on_failure".to_string(),
                    _ => def.steps[work.step_index.unwrap()].name.clone(),
                };
                match handler(&work, &name) {
                    Ok(output) => engine
                        .step_succeeded(work.handle, work.seq, work.attempt, output)
                        .unwrap(),
                    Err(error) => engine
                        .step_failed(work.handle, work.seq, work.attempt, error)
                        .unwrap(),
                }
            }
            Some(Work::Release { handle }) => {
                names.remove(&handle);
            }
            None => match engine.wait_finished(run_key, Some(Duration::ZERO)).unwrap() {
                // Idle for 20 ms is not asleep while an append awaits its fsync: its
                // acknowledgement can still queue work (on a loaded disk an fsync takes
                // longer than 20 ms, and the run looked asleep one step before its end).
                Wait::TimedOut if engine.acks_pending() > 0 => {}
                Wait::TimedOut => return None,
                done => return Some(done),
            },
        }
    }
    panic!("run never settled")
}

pub(crate) fn ok(work: &ExecuteWork, name: &str) -> Result<Vec<u8>, ErrorInfo> {
    Ok(format!("\"{name}#{}\"", work.attempt).into_bytes())
}

pub(crate) fn defs(list: &[&WorkflowDef]) -> HashMap<String, WorkflowDef> {
    list.iter()
        .map(|d| (d.name.clone(), (*d).clone()))
        .collect()
}
