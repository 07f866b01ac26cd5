//! Firing timers: the timer thread, waking dormant runs whose time came, and
//! workflow deadlines that pass while a step runs. The heap of due times is
//! `crate::timers`; this is what the engine does when an entry is due, kept
//! apart because it runs on its own thread, outside any caller.

use std::sync::atomic::Ordering;
use std::sync::Weak;

use duro_core::journal::StepKind;
use duro_core::linear;

use super::{lock, Engine, Inner};
use crate::lanes::QueueItem;
use crate::table::{ActiveRun, Phase};

impl Engine {
    /// Fires due timers now (tests with a manual clock call this after moving it).
    pub fn fire_due_timers(&self) {
        self.inner.fire_due_timers();
    }
}

pub(super) fn timer_loop(inner: Weak<Inner>) {
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        strong.fire_due_timers();
        let now = strong.clock.now_ms();
        let keep_going = strong.timers.nap(now);
        if !keep_going || strong.closed.load(Ordering::Acquire) {
            return;
        }
    }
}

impl Inner {
    fn fire_due_timers(&self) {
        let now = self.clock.now_ms();
        let due = self.timers.take_due(now);
        if due.is_empty() {
            return;
        }
        let mut queued: [Vec<QueueItem>; 2] = [Vec::new(), Vec::new()];
        let mut table = lock(&self.table);
        for key in due {
            let loaded = table.handle_of(key);
            match loaded {
                Some(handle) => {
                    if let Some(run) = table.get_mut(handle) {
                        match run.phase {
                            Phase::Evicting => run.dirty = true,
                            // The workflow's deadline passed while a step runs: decide
                            // now (the run turns back with WorkflowTimeout and the open
                            // attempt is closed); that attempt's late result is refused
                            // as stale and discarded.
                            Phase::InCaller { .. }
                                if run.state.turned_back().is_none()
                                    && run.state.deadline_ms.is_some_and(|d| d <= now) =>
                            {
                                run.phase = Phase::Queued;
                                run.pending = None;
                                queued[run.wf.lane as usize].push(QueueItem::Run(handle));
                            }
                            _ => {}
                        }
                    }
                }
                None => match self.ensure_loaded(&mut table, key) {
                    Ok(Some(handle)) => {
                        let run = table.get_mut(handle).expect("just loaded");
                        if run.state.is_finished() {
                            table.remove(handle);
                        } else if run.phase == Phase::Queued {
                            queued[run.wf.lane as usize].push(QueueItem::Run(handle));
                        }
                    }
                    Ok(None) => {}
                    Err(error) => {
                        if error.is_store_failure() {
                            drop(table);
                            self.set_fatal(error.to_string());
                            return;
                        }
                        // A run that cannot be read must not stop the others; retry later.
                        self.timers.schedule(self.clock.now_ms() + 5_000, key);
                    }
                },
            }
        }
        drop(table);
        for (lane, items) in queued.into_iter().enumerate() {
            self.lanes[lane].push_all(items);
        }
    }

    /// Schedules a timer at the workflow's deadline (once per stay in memory)
    /// when the decided work is a forward step.
    pub(super) fn arm_deadline(&self, run: &mut ActiveRun, exec: &linear::Execute) {
        // A deadline passing while a forward step runs must fail the run
        // then, not when the step returns (it may never return).
        if exec.kind == StepKind::Task && !run.deadline_timer {
            if let Some(deadline) = run.state.deadline_ms {
                self.timers.schedule(deadline, run.state.run_key);
                run.deadline_timer = true;
            }
        }
    }
}
