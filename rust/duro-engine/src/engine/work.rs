//! Work going to callers and their results coming back: lanes are popped
//! (or drained) into work, and a step attempt's result is recorded together
//! with what the run does next. Separate from deciding (see `decide`), which
//! says what the next work is, not how it reaches a caller.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use duro_core::error::CoreError;
use duro_core::journal::{ErrorInfo, Event, Seq};
use duro_core::limits::Limits;
use duro_core::linear;
use duro_core::time::Millis;

use super::decide::{hand_out, Decided};
use super::{lock, Engine, ExecuteWork, Inner, Work};
use crate::error::EngineError;
use crate::lanes::{Handle, LaneId, Popped, QueueItem};
use crate::table::{ActiveRun, Phase};

impl Engine {
    /// Takes the next work of `lane`, waiting up to `timeout`. `Ok(None)` on timeout.
    pub fn next_work(&self, lane: LaneId, timeout: Duration) -> Result<Option<Work>, EngineError> {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let acks_pending = || self.inner.acks_pending.load(Ordering::Acquire) > 0;
            match self.inner.lanes[lane as usize].pop(remaining, acks_pending) {
                Popped::Item(item) => {
                    if let Some(work) = self.inner.advance(item)? {
                        return Ok(Some(work));
                    }
                }
                Popped::TimedOut => return Ok(None),
                Popped::Closed => return Err(self.inner.closed_error()),
            }
        }
    }

    /// Takes up to `max` works of `lane` without waiting (for event loops).
    pub fn take_work(&self, lane: LaneId, max: usize) -> Result<Vec<Work>, EngineError> {
        if let Some(cause) = lock(&self.inner.fatal).clone() {
            // Event loops learn of a store failure here (the notifier was signalled).
            return Err(EngineError::Fatal(cause));
        }
        let mut works = Vec::new();
        while works.len() < max {
            let items = self.inner.lanes[lane as usize].drain(max - works.len());
            if items.is_empty() {
                break;
            }
            for item in items {
                if let Some(work) = self.inner.advance(item)? {
                    works.push(work);
                }
            }
        }
        Ok(works)
    }

    /// The attempt given by `Work::Execute` returned `output`.
    pub fn step_succeeded(
        &self,
        handle: Handle,
        seq: Seq,
        attempt: u32,
        output: Vec<u8>,
    ) -> Result<(), EngineError> {
        self.step_succeeded_inline(handle, seq, attempt, output, false)
            .map(|_| ())
    }

    /// Like `step_succeeded`; with `inline`, when the run's next action is
    /// another step it is handed straight back with the store position the
    /// caller must see durable (`durable_position() >=`) before running it,
    /// instead of going through the lane. Event loops use this: awaiting one
    /// shared durability notice is cheaper than a queue round trip per step.
    pub fn step_succeeded_inline(
        &self,
        handle: Handle,
        seq: Seq,
        attempt: u32,
        output: Vec<u8>,
        inline: bool,
    ) -> Result<Option<(ExecuteWork, u64)>, EngineError> {
        self.inner
            .config
            .limits
            .check_payload("step output", &output)?;
        self.inner
            .finish_attempt(handle, seq, attempt, inline, |run, now, out, _| {
                linear::step_succeeded(&mut run.state, seq, attempt, output, now, out).map(|_| ())
            })
    }

    /// The caller could not run the attempt it was handed for a reason of its
    /// own process, not of the step (it cannot decode the run's input with its
    /// codec, say). Recording that as the step's failure would spend the run's
    /// retries, or fail it, for something no retry here can change; instead the
    /// run is blocked: nothing is written, waiters hear `reason`, and it is
    /// tried again when its workflow is registered again or the store is
    /// reopened. Ignored if the run has moved past that attempt.
    pub fn cannot_run(&self, handle: Handle, seq: Seq, attempt: u32, reason: String) {
        self.inner
            .block_if(handle, CoreError::CannotRun { reason }, |phase| {
                *phase == Phase::InCaller { seq, attempt }
            });
    }

    /// The attempt given by `Work::Execute` failed.
    pub fn step_failed(
        &self,
        handle: Handle,
        seq: Seq,
        attempt: u32,
        error: ErrorInfo,
    ) -> Result<(), EngineError> {
        self.step_failed_inline(handle, seq, attempt, error, false)
            .map(|_| ())
    }

    /// Like `step_failed`, with `inline` as in `step_succeeded_inline`.
    pub fn step_failed_inline(
        &self,
        handle: Handle,
        seq: Seq,
        attempt: u32,
        error: ErrorInfo,
        inline: bool,
    ) -> Result<Option<(ExecuteWork, u64)>, EngineError> {
        self.inner
            .finish_attempt(handle, seq, attempt, inline, |run, now, out, limits| {
                let def = &run.wf.def;
                linear::step_failed(&mut run.state, def, seq, attempt, error, limits, now, out)
                    .map(|_| ())
            })
    }
}

impl Inner {
    /// Hands out a queued run's decided work, or decides it.
    fn advance(&self, item: QueueItem) -> Result<Option<Work>, EngineError> {
        let handle = match item {
            QueueItem::Release(handle) => return Ok(Some(Work::Release { handle })),
            QueueItem::Run(handle) => handle,
        };
        let mut table = lock(&self.table);
        let Some(run) = table.get_mut(handle) else {
            return Ok(None);
        };
        if run.phase != Phase::Queued {
            return Ok(None);
        }
        if let Some(exec) = run.pending.take() {
            // The events that decided it are durable now.
            return Ok(Some(Work::Execute(hand_out(run, handle, exec))));
        }
        match self.decide(&mut table, handle, Vec::new(), false)? {
            Decided::Ready => {
                let run = table.get_mut(handle).expect("decided above");
                let exec = run
                    .pending
                    .take()
                    .expect("Ready leaves the decision pending");
                Ok(Some(Work::Execute(hand_out(run, handle, exec))))
            }
            Decided::Release(handle) => Ok(Some(Work::Release { handle })),
            Decided::Later | Decided::Inline(..) => Ok(None),
            Decided::Block(error) => {
                drop(table);
                self.block(handle, error);
                Ok(None)
            }
        }
    }

    /// A step attempt ended: record it and decide what follows, in one append.
    fn finish_attempt(
        &self,
        handle: Handle,
        seq: Seq,
        attempt: u32,
        inline: bool,
        record: impl FnOnce(&mut ActiveRun, Millis, &mut Vec<Event>, &Limits) -> Result<(), CoreError>,
    ) -> Result<Option<(ExecuteWork, u64)>, EngineError> {
        if let Some(cause) = lock(&self.fatal).clone() {
            return Err(EngineError::Fatal(cause));
        }
        let mut table = lock(&self.table);
        let run = table.get_mut(handle).ok_or(CoreError::StaleResult {
            run_id: format!("handle {handle}"),
            seq,
            why: "the run is no longer in memory",
        })?;
        if run.phase != (Phase::InCaller { seq, attempt }) {
            return Err(CoreError::StaleResult {
                run_id: run.state.run_id.clone(),
                seq,
                why: "this attempt is not the one in progress",
            }
            .into());
        }
        let mut out = Vec::new();
        record(run, self.clock.now_ms(), &mut out, &self.config.limits)?;
        let lane = run.wf.lane;
        run.phase = Phase::Queued;
        let decided = self.decide(&mut table, handle, out, inline)?;
        drop(table);
        match decided {
            Decided::Inline(work, position) => return Ok(Some((work, position))),
            // Durable already (an in-memory store): the next work is ready now.
            Decided::Ready => self.lanes[lane as usize].push_all([QueueItem::Run(handle)]),
            Decided::Release(handle) => {
                self.lanes[lane as usize].push_all([QueueItem::Release(handle)]);
            }
            Decided::Block(error) => self.block(handle, error),
            Decided::Later => {}
        }
        Ok(None)
    }
}
