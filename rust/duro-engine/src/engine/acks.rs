//! Acknowledgements: appends carry their run's handle as a token, and the
//! store later says they are durable (or failed). Counting appends in, and
//! moving runs on as their acknowledgements come back, is the durability
//! rule of the engine (see the `engine` module); it lives here, apart from
//! deciding and waiting, so that the counting is in one place.

use std::sync::atomic::Ordering;
use std::sync::Weak;

use duro_core::journal::Event;
use duro_store::{AckSink, Receipt, StoreError, Token};

use super::{lock, Engine, Inner};
use crate::error::EngineError;
use crate::lanes::{Handle, QueueItem};
use crate::table::{ActiveRun, Phase};

pub(super) struct Acks(pub(super) Weak<Inner>);

impl AckSink for Acks {
    fn durable(&self, tokens: &[Token]) {
        if let Some(inner) = self.0.upgrade() {
            inner.on_durable(tokens);
        }
    }

    fn failed(&self, tokens: &[Token], error: &StoreError) {
        if let Some(inner) = self.0.upgrade() {
            inner.acks_settled(tokens.len());
            inner.set_fatal(format!("{error}"));
        }
    }
}

impl Engine {
    /// Blocks until the append behind `receipt` is durable.
    pub fn wait_durable(&self, receipt: Receipt) -> Result<(), EngineError> {
        self.inner.store.wait_durable(receipt).map_err(Into::into)
    }

    /// Every store position at or below this is durable.
    pub fn durable_position(&self) -> u64 {
        self.inner.store.durable_position()
    }

    /// See [`duro_store::Store::sync_round`]: the position to watch (with `watch_durable`) so that
    /// `position` is durable, shared by the positions of one sync; 0 if durable already.
    pub fn sync_round(&self, position: u64) -> u64 {
        self.inner.store.sync_round(position)
    }

    /// Asks for a notice (see `take_durable_notices`) once `position` is durable.
    pub fn watch_durable(&self, position: u64) {
        let mut finished = lock(&self.inner.finished);
        if position <= self.inner.store.durable_position() {
            finished.durable_notices.push(position);
            drop(finished);
            self.inner.notifier.signal();
        } else {
            finished.durable_watch.push(std::cmp::Reverse(position));
        }
    }

    /// Watched positions that became durable since the last call.
    pub fn take_durable_notices(&self) -> Vec<u64> {
        std::mem::take(&mut lock(&self.inner.finished).durable_notices)
    }

    /// Appends whose acknowledgement has not been handled yet (0 once everything
    /// appended is durable and its runs have moved on, or the store failed).
    pub fn acks_pending(&self) -> usize {
        self.inner.acks_pending.load(Ordering::Acquire)
    }
}

impl Inner {
    /// Appends `events` (already applied to the run's state) as one store
    /// append, acknowledged to `handle`.
    pub(super) fn append(
        &self,
        run: &mut ActiveRun,
        handle: Handle,
        events: &[Event],
    ) -> Result<Receipt, EngineError> {
        let position = run.state.event_count() - events.len() as u32;
        // Counted before the append: its acknowledgement may arrive before it returns.
        self.acks_pending.fetch_add(1, Ordering::AcqRel);
        let receipt = self
            .store
            .append(run.state.run_key, position, events, Some(handle))
            .inspect_err(|_| self.acks_settled(1))?;
        if receipt.durable {
            self.acks_settled(1);
        } else {
            run.unacked += 1;
        }
        Ok(receipt)
    }

    /// The store made appends durable: move their runs on.
    fn on_durable(&self, tokens: &[Token]) {
        let mut queued: [Vec<QueueItem>; 2] = [Vec::new(), Vec::new()];
        let mut table = lock(&self.table);
        for &handle in tokens {
            let Some(run) = table.get_mut(handle) else {
                continue;
            };
            run.unacked = run.unacked.saturating_sub(1);
            if run.unacked > 0 {
                continue;
            }
            let lane = run.wf.lane as usize;
            match run.phase {
                Phase::AwaitingAck => {
                    run.phase = Phase::Queued;
                    queued[lane].push(QueueItem::Run(handle));
                }
                Phase::Evicting if run.dirty => {
                    run.phase = Phase::Queued;
                    run.dirty = false;
                    queued[lane].push(QueueItem::Run(handle));
                }
                Phase::Evicting => {
                    if let Some(release) = self.evict(&mut table, handle) {
                        queued[lane].push(QueueItem::Release(release));
                    }
                }
                Phase::Finishing => {
                    if let Some(release) = self.finish(&mut table, handle) {
                        queued[lane].push(QueueItem::Release(release));
                    }
                }
                Phase::Queued | Phase::InCaller { .. } | Phase::Blocked(_) => {}
            }
        }
        drop(table);
        for (lane, items) in queued.into_iter().enumerate() {
            self.lanes[lane].push_all(items);
        }
        self.acks_settled(tokens.len());
        self.publish_durable();
    }

    /// `n` acknowledgements were handled (or will never come).
    pub(super) fn acks_settled(&self, n: usize) {
        // Saturating: a miscount may only cost a spin, never wrap into a permanent one.
        let _ = self
            .acks_pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |pending| {
                Some(pending.saturating_sub(n))
            });
    }

    /// Moves watched store positions that are now durable to the notices.
    fn publish_durable(&self) {
        let mut finished = lock(&self.finished);
        if finished.durable_watch.is_empty() {
            return;
        }
        let durable = self.store.durable_position();
        let mut any = false;
        while let Some(std::cmp::Reverse(position)) = finished.durable_watch.peek().copied() {
            if position > durable {
                break;
            }
            finished.durable_watch.pop();
            finished.durable_notices.push(position);
            any = true;
        }
        drop(finished);
        if any {
            self.notifier.signal();
        }
    }
}
