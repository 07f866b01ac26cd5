//! A deterministic simulation of one builder-workflow run: a world that
//! decides each function call's outcome, scheduled inputs (events, pause,
//! resume, cancel), a journal of event groups, and crashes that drop the
//! in-memory state (and possibly the last, unacknowledged group).

#![allow(dead_code)]

use duro_core::journal::{ErrorInfo, Event, StepKind};
use duro_core::limits::Limits;
use duro_core::linear::{self, Action};
use duro_core::replay::{Outcome, RunState, StepStatus};
use duro_core::retry::RetryPolicy;
use duro_core::time::Millis;
use duro_core::workflow::{StepDef, StepDefKind, WorkflowDef};

#[derive(Debug, Clone)]
pub enum Input {
    Event { name: String, payload: Vec<u8> },
    Pause,
    Resume,
    Cancel { compensate: bool },
}

#[derive(Debug, Clone)]
pub struct World {
    pub seed: u64,
    /// Percent chance a task attempt fails.
    pub task_fail_pct: u64,
    pub inputs: Vec<(Millis, Input)>,
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl World {
    /// The outcome of calling user code: a pure function of what it is and
    /// how many failures were recorded before, so a re-execution after a
    /// crash behaves like the attempt the crash interrupted.
    pub fn call(
        &self,
        kind: StepKind,
        index: Option<usize>,
        failures: u32,
    ) -> Result<Vec<u8>, ErrorInfo> {
        let id = index.map_or(999, |i| i as u64);
        let roll = mix(self.seed ^ mix((kind.code() as u64) << 40 | id << 8 | failures as u64));
        let fail_pct = match kind {
            StepKind::Task => self.task_fail_pct,
            _ => 20,
        };
        if roll % 100 < fail_pct {
            let retryable = (roll >> 8) % 10 < 8;
            Err(ErrorInfo::new(
                "Boom",
                format!("{kind} {id} failure {failures}"),
                retryable,
            ))
        } else {
            Ok(format!("{kind}-{id}-{failures}").into_bytes())
        }
    }
}

/// Where a run ended, for comparing a crashed run with an uncrashed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Final {
    pub outcome: Option<Outcome>,
    pub stuck: bool,
    pub outputs: Vec<(String, Vec<u8>)>,
    pub compensated: Vec<String>,
    pub steps: Vec<(u32, StepKind, String, bool)>,
}

/// A crash after `after_groups` groups were appended; `lose_last` drops the
/// last group too (it was written but never acknowledged).
#[derive(Debug, Clone, Copy)]
pub struct Crash {
    pub after_groups: usize,
    pub lose_last: bool,
}

pub struct Sim {
    pub def: WorkflowDef,
    pub limits: Limits,
    pub world: World,
    pub groups: Vec<Vec<Event>>,
    /// For each world input, the group index that recorded it.
    delivered: Vec<Option<usize>>,
    pub state: RunState,
    pub now: Millis,
    pub executions: usize,
    pub crashes_done: usize,
}

pub fn started(def: &WorkflowDef, now: Millis, start_at_ms: Option<Millis>) -> Event {
    Event::RunStarted {
        run_id: "run-1".into(),
        workflow: def.name.clone(),
        version: def.version.clone(),
        input: b"{}".to_vec(),
        deadline_ms: def.timeout_ms.map(|t| now + t),
        start_at_ms,
        step_count: def.forward_step_count(),
        at_ms: now,
    }
}

impl Sim {
    pub fn new(def: WorkflowDef, world: World) -> Sim {
        Sim::with_start(def, world, None)
    }

    pub fn with_start(def: WorkflowDef, world: World, start_at_ms: Option<Millis>) -> Sim {
        let first = started(&def, 0, start_at_ms);
        let state = RunState::new(1, &first).unwrap();
        let delivered = vec![None; world.inputs.len()];
        Sim {
            def,
            limits: Limits::default(),
            world,
            groups: vec![vec![first]],
            delivered,
            state,
            now: 0,
            executions: 0,
            crashes_done: 0,
        }
    }

    fn push(&mut self, out: &mut Vec<Event>) {
        if !out.is_empty() {
            self.groups.push(std::mem::take(out));
        }
    }

    /// Drops memory and rebuilds the run from the journal.
    pub fn crash(&mut self, lose_last: bool) {
        if lose_last && self.groups.len() > 1 {
            self.groups.pop();
        }
        let kept = self.groups.len();
        for slot in &mut self.delivered {
            if slot.is_some_and(|g| g >= kept) {
                *slot = None;
            }
        }
        let events: Vec<Event> = self.groups.iter().flatten().cloned().collect();
        self.state = RunState::replay(1, &events).expect("a journal prefix replays");
        linear::check_against(&self.state, &self.def).expect("same definition is deterministic");
        self.crashes_done += 1;
    }

    fn deliver_due_inputs(&mut self) {
        for i in 0..self.world.inputs.len() {
            if self.delivered[i].is_some()
                || self.world.inputs[i].0 > self.now
                || self.state.is_finished()
            {
                continue;
            }
            let at_ms = self.now;
            let event = match self.world.inputs[i].1.clone() {
                Input::Event { name, payload } => Event::EventReceived {
                    name,
                    payload,
                    at_ms,
                },
                Input::Pause if !self.state.is_paused() => Event::Paused { at_ms },
                Input::Resume if self.state.is_paused() => Event::Resumed { at_ms },
                Input::Cancel { compensate } => Event::CancelRequested { compensate, at_ms },
                Input::Pause | Input::Resume => {
                    self.delivered[i] = Some(0); // skipped for good (group 0 is never lost)
                    continue;
                }
            };
            self.state.apply(&event).unwrap();
            self.groups.push(vec![event]);
            self.delivered[i] = Some(self.groups.len() - 1);
        }
    }

    fn next_input_time(&self) -> Option<Millis> {
        self.world
            .inputs
            .iter()
            .zip(&self.delivered)
            .filter(|(_, d)| d.is_none())
            .map(|((t, _), _)| (*t).max(self.now))
            .min()
    }

    /// Runs to the end (or until nothing can wake it), crashing as planned.
    pub fn run(&mut self, crashes: &[Crash]) -> Final {
        let mut out = Vec::new();
        let mut pending_crashes: Vec<Crash> = crashes.to_vec();
        pending_crashes.sort_by_key(|c| c.after_groups);
        // Crashes happen right after a group is appended, before time moves on,
        // so the recovered run decides at the same `now` as the original did.
        let maybe_crash = |sim: &mut Sim, pending: &mut Vec<Crash>| {
            let mut crashed = false;
            while let Some(crash) = pending.first().copied() {
                if sim.groups.len() < crash.after_groups {
                    break;
                }
                pending.remove(0);
                sim.crash(crash.lose_last);
                crashed = true;
            }
            crashed
        };
        for _ in 0..100_000 {
            maybe_crash(self, &mut pending_crashes);
            self.deliver_due_inputs();
            if maybe_crash(self, &mut pending_crashes) {
                // An input whose group was lost was never acknowledged; the
                // world re-sends it before the recovered run decides, as the
                // original run saw it before deciding.
                continue;
            }
            let action =
                linear::next_action(&mut self.state, &self.def, &self.limits, self.now, &mut out)
                    .unwrap();
            self.push(&mut out);
            if !matches!(action, Action::Finished)
                && pending_crashes
                    .first()
                    .is_some_and(|c| self.groups.len() >= c.after_groups)
            {
                // The decision's events may be lost; decide again after recovery.
                maybe_crash(self, &mut pending_crashes);
                continue;
            }
            match action {
                Action::Finished => return self.finish(false),
                Action::Execute(exec) => {
                    self.executions += 1;
                    let failures = self.state.step(exec.seq).unwrap().failures;
                    match self.world.call(exec.kind, exec.step_index, failures) {
                        Ok(output) => linear::step_succeeded(
                            &mut self.state,
                            exec.seq,
                            exec.attempt,
                            output,
                            self.now,
                            &mut out,
                        )
                        .unwrap(),
                        Err(error) => {
                            linear::step_failed(
                                &mut self.state,
                                &self.def,
                                exec.seq,
                                exec.attempt,
                                error,
                                &self.limits,
                                self.now,
                                &mut out,
                            )
                            .unwrap();
                        }
                    }
                    self.push(&mut out);
                    maybe_crash(self, &mut pending_crashes);
                }
                Action::Wait { wake_at_ms, .. } => {
                    let next = match (wake_at_ms, self.next_input_time()) {
                        (Some(a), Some(b)) => a.min(b),
                        (a, b) => match a.or(b) {
                            Some(t) => t,
                            None => {
                                // Nothing can wake it; a crash now must not change that.
                                if !pending_crashes.is_empty() {
                                    let crash = pending_crashes.remove(0);
                                    self.crash(crash.lose_last);
                                    continue;
                                }
                                return self.finish(true);
                            }
                        },
                    };
                    assert!(next >= self.now, "time never goes back");
                    self.now = next;
                }
            }
        }
        panic!("simulation did not end: {:?}", self.state.steps());
    }

    fn finish(&self, stuck: bool) -> Final {
        Final {
            outcome: self.state.outcome().cloned(),
            stuck,
            outputs: linear::completed_outputs(&self.state)
                .map(|(n, o)| (n.to_owned(), o.to_vec()))
                .collect(),
            compensated: self
                .state
                .steps()
                .iter()
                .filter(|s| s.kind == StepKind::Compensation && s.status == StepStatus::Completed)
                .map(|s| s.name.clone())
                .collect(),
            steps: self
                .state
                .steps()
                .iter()
                .map(|s| {
                    (
                        s.seq,
                        s.kind,
                        s.name.clone(),
                        s.status == StepStatus::Completed,
                    )
                })
                .collect(),
        }
    }
}

pub fn policy(max_attempts: u32, initial_delay_ms: Millis) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(max_attempts)
        .initial_delay_ms(initial_delay_ms)
        .jitter(0.0)
        .build()
        .unwrap()
}

pub fn def(steps: Vec<StepDef>) -> WorkflowDef {
    WorkflowDef {
        name: "wf".into(),
        version: "1".into(),
        steps,
        on_failure: None,
        timeout_ms: None,
    }
}

pub fn task(name: &str) -> StepDef {
    StepDef::task(name, policy(3, 100))
}

pub fn kind_of(d: &StepDefKind) -> StepKind {
    match d {
        StepDefKind::Task => StepKind::Task,
        StepDefKind::Sleep { .. } => StepKind::Sleep,
        StepDefKind::WaitEvent { .. } => StepKind::WaitEvent,
    }
}
