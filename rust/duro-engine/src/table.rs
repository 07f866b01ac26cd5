//! The runs held in memory: those being driven, and those waiting for the
//! durability of their last events before they go dormant or finish.
//! Dormant runs are not here at all; their only trace is a timer entry.

use std::collections::HashMap;
use std::sync::Arc;

use duro_core::error::NonDeterminism;
use duro_core::journal::{RunKey, Seq};
use duro_core::replay::RunState;
use duro_core::workflow::WorkflowDef;

use crate::lanes::{Handle, LaneId};

/// A workflow definition known to this engine.
#[derive(Debug)]
pub struct Registered {
    pub def: WorkflowDef,
    pub lane: LaneId,
    /// Which registration this is: callers map it back to the definition
    /// object whose functions they run, so a run and its functions agree
    /// even if the workflow is registered again meanwhile.
    pub generation: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// In its lane's queue, waiting for a caller to take its next action.
    Queued,
    /// A caller runs the step at (seq, attempt).
    InCaller { seq: Seq, attempt: u32 },
    /// Its step result was appended; the next action waits for durability.
    AwaitingAck,
    /// Going dormant once its appends are durable.
    Evicting,
    /// Ended; the outcome is published once the terminal event is durable.
    Finishing,
    /// Cannot continue: the journal disagrees with the definition. Kept
    /// (untouched) until the workflow is registered again.
    Blocked(Blocked),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Blocked {
    pub message: String,
    pub non_determinism: Option<NonDeterminism>,
}

pub(crate) struct ActiveRun {
    pub state: RunState,
    pub wf: Arc<Registered>,
    pub phase: Phase,
    /// The caller holds a context for this run (decoded input and outputs).
    pub caller_loaded: bool,
    /// An input arrived while it was evicting: decide again instead.
    pub dirty: bool,
    /// Appends not acknowledged yet (each append carries this run's handle as its token).
    pub unacked: u32,
    /// The decided next step, handed out once the record holding its start is durable.
    pub pending: Option<duro_core::linear::Execute>,
    /// A timer at the workflow's deadline is scheduled (once per stay in
    /// memory), so a deadline that passes while a step runs is noticed.
    pub deadline_timer: bool,
}

struct Slot {
    generation: u32,
    run: Option<ActiveRun>,
}

#[derive(Default)]
pub(crate) struct RunTable {
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_key: HashMap<RunKey, Handle>,
}

fn split(handle: Handle) -> (usize, u32) {
    ((handle & 0xffff_ffff) as usize, (handle >> 32) as u32)
}

impl RunTable {
    pub fn insert(&mut self, run: ActiveRun) -> Handle {
        let key = run.state.run_key;
        let index = match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                slot.generation = slot.generation.wrapping_add(1);
                slot.run = Some(run);
                index
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    run: Some(run),
                });
                (self.slots.len() - 1) as u32
            }
        };
        let handle = (self.slots[index as usize].generation as u64) << 32 | index as u64;
        // Key 0 is "not assigned yet" (a start in progress); see `assign_key`.
        if key != 0 {
            self.by_key.insert(key, handle);
        }
        handle
    }

    /// Gives a run inserted before its store key was known (a start) its key,
    /// keeping its handle: the store acknowledges the start with that handle.
    pub fn assign_key(&mut self, handle: Handle, key: RunKey, state: duro_core::replay::RunState) {
        if let Some(run) = self.get_mut(handle) {
            run.state = state;
            self.by_key.insert(key, handle);
        }
    }

    pub fn get_mut(&mut self, handle: Handle) -> Option<&mut ActiveRun> {
        let (index, generation) = split(handle);
        let slot = self.slots.get_mut(index)?;
        if slot.generation != generation {
            return None;
        }
        slot.run.as_mut()
    }

    pub fn remove(&mut self, handle: Handle) -> Option<ActiveRun> {
        let (index, generation) = split(handle);
        let slot = self.slots.get_mut(index)?;
        if slot.generation != generation {
            return None;
        }
        let run = slot.run.take()?;
        if self.by_key.get(&run.state.run_key) == Some(&handle) {
            self.by_key.remove(&run.state.run_key);
        }
        self.free.push(index as u32);
        Some(run)
    }

    pub fn handle_of(&self, key: RunKey) -> Option<Handle> {
        self.by_key.get(&key).copied()
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Handles of runs blocked in workflow (name, version).
    pub fn blocked_of(&self, name: &str, version: &str) -> Vec<Handle> {
        self.by_key
            .values()
            .copied()
            .filter(|&h| {
                let (index, _) = split(h);
                self.slots[index].run.as_ref().is_some_and(|r| {
                    matches!(r.phase, Phase::Blocked(_))
                        && r.state.workflow == name
                        && r.state.version == version
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use duro_core::journal::Event;

    fn run(key: RunKey) -> ActiveRun {
        let started = Event::RunStarted {
            run_id: format!("r{key}"),
            workflow: "w".into(),
            version: "1".into(),
            input: vec![],
            deadline_ms: None,
            start_at_ms: None,
            step_count: 0,
            at_ms: 0,
        };
        ActiveRun {
            state: RunState::new(key, &started).unwrap(),
            wf: Arc::new(Registered {
                def: WorkflowDef {
                    name: "w".into(),
                    version: "1".into(),
                    steps: vec![],
                    on_failure: None,
                    timeout_ms: None,
                },
                lane: LaneId::Sync,
                generation: 1,
            }),
            phase: Phase::Queued,
            caller_loaded: false,
            dirty: false,
            unacked: 0,
            pending: None,
            deadline_timer: false,
        }
    }

    #[test]
    fn stale_handles_never_reach_a_reused_slot() {
        let mut table = RunTable::default();
        let a = table.insert(run(1));
        assert!(table.remove(a).is_some());
        let b = table.insert(run(2));
        assert_ne!(a, b);
        assert!(table.get_mut(a).is_none());
        assert_eq!(table.get_mut(b).unwrap().state.run_key, 2);
        assert_eq!(table.handle_of(2), Some(b));
        assert_eq!(table.handle_of(1), None);
    }
}
