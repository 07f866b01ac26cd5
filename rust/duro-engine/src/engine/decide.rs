//! Deciding a run's next action and turning it into the work a caller runs.
//! The decision comes from `duro_core::linear`; this is the engine side of it:
//! appending the decision's events and moving the run to its next phase. Kept
//! apart from handing work out (`work`) and from acknowledgements (`acks`),
//! which both end up here.

use duro_core::error::CoreError;
use duro_core::journal::{Event, StepKind};
use duro_core::linear::{self, Action};
use duro_core::replay::RunState;

use super::{ExecuteWork, FailureInfo, Inner, LoadData};
use crate::error::EngineError;
use crate::lanes::Handle;
use crate::table::{ActiveRun, Phase, RunTable};

impl Inner {
    /// Decides a run's next action and appends `out` (events already applied,
    /// e.g. a step's result) together with the events of the decision, as one
    /// record. The decided work is handed out only once that record is
    /// durable, so every step's start is on disk before the step runs, and a
    /// step costs one fsync: its result and the next step's start share it.
    pub(super) fn decide(
        &self,
        table: &mut RunTable,
        handle: Handle,
        mut out: Vec<Event>,
        inline: bool,
    ) -> Result<Decided, EngineError> {
        let Some(run) = table.get_mut(handle) else {
            return Ok(Decided::Later);
        };
        let now = self.clock.now_ms();
        let wf = run.wf.clone();
        let action =
            linear::next_action(&mut run.state, &wf.def, &self.config.limits, now, &mut out);
        let receipt = if out.is_empty() {
            None
        } else {
            Some(self.append(run, handle, &out)?)
        };
        let action = match action {
            Ok(action) => action,
            Err(error) => return Ok(Decided::Block(error)),
        };
        if let Action::Execute(exec) = &action {
            // A forward step must not outlive the workflow's deadline (see `wakeups`).
            self.arm_deadline(run, exec);
        }
        match action {
            Action::Execute(exec) if inline => {
                // The caller continues the run itself once `position` is durable.
                let position = receipt.filter(|r| !r.durable).map_or(0, |r| r.position);
                Ok(Decided::Inline(hand_out(run, handle, exec), position))
            }
            Action::Execute(exec) => {
                run.pending = Some(exec);
                if run.unacked == 0 {
                    run.phase = Phase::Queued;
                    return Ok(Decided::Ready);
                }
                run.phase = Phase::AwaitingAck;
                Ok(Decided::Later)
            }
            Action::Wait { wake_at_ms, .. } => {
                if let Some(at) = wake_at_ms {
                    self.timers.schedule(at, run.state.run_key);
                }
                run.phase = Phase::Evicting;
                run.dirty = false;
                if run.unacked == 0 {
                    return Ok(self
                        .evict(table, handle)
                        .map_or(Decided::Later, Decided::Release));
                }
                Ok(Decided::Later)
            }
            Action::Finished => {
                run.phase = Phase::Finishing;
                if run.unacked == 0 {
                    return Ok(self
                        .finish(table, handle)
                        .map_or(Decided::Later, Decided::Release));
                }
                Ok(Decided::Later)
            }
        }
    }
}

/// What `decide` concluded.
pub(super) enum Decided {
    /// The decided work (`ActiveRun::pending`) can be handed out now: its
    /// events were durable at once.
    Ready,
    /// Handed out to the caller that reported the previous step, to run once
    /// the given store position is durable (0: it is).
    Inline(ExecuteWork, u64),
    /// The run left memory; the caller should release its context.
    Release(Handle),
    /// Nothing to hand out until the store acknowledges.
    Later,
    /// The run cannot continue.
    Block(CoreError),
}

/// Turns a decided execution into the work a caller runs.
pub(super) fn hand_out(run: &mut ActiveRun, handle: Handle, exec: linear::Execute) -> ExecuteWork {
    run.phase = Phase::InCaller {
        seq: exec.seq,
        attempt: exec.attempt,
    };
    let load = (!run.caller_loaded).then(|| load_data(&run.state, run.wf.generation));
    run.caller_loaded = true;
    let failure = (exec.kind == StepKind::OnFailure).then(|| failure_info(&run.state));
    ExecuteWork {
        handle,
        run_key: run.state.run_key,
        kind: exec.kind,
        seq: exec.seq,
        step_index: exec.step_index,
        attempt: exec.attempt,
        load,
        failure,
    }
}

fn load_data(state: &RunState, generation: u64) -> LoadData {
    LoadData {
        generation,
        run_id: state.run_id.clone(),
        workflow: state.workflow.clone(),
        version: state.version.clone(),
        input: state.input.clone(),
        outputs: linear::completed_steps(state)
            .map(|s| (s.name.clone(), s.output.clone().unwrap_or_default()))
            .collect(),
    }
}

fn failure_info(state: &RunState) -> FailureInfo {
    let turn = state.turned_back();
    FailureInfo {
        failed_step: turn
            .and_then(|t| t.failed_seq)
            .and_then(|s| state.step(s))
            .map(|s| s.name.clone()),
        error: turn.map(|t| t.reason.clone()).unwrap_or_default(),
        completed_steps: linear::completed_outputs(state)
            .map(|(n, _)| n.to_owned())
            .collect(),
    }
}
