//! Lanes: the queues that hand runs to callers. The sync lane is pulled by
//! worker threads (blocking, the GIL released while they wait); the async
//! lane is drained by an event loop woken through an eventfd.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::notify::EventFd;

/// Which lane a workflow's runs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LaneId {
    /// Runs whose steps are plain functions, driven by worker threads.
    Sync = 0,
    /// Runs with coroutine steps, driven by an event loop.
    Async = 1,
}

/// A run handle: slot index in the low 32 bits, the slot's generation in the high 32.
pub type Handle = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueItem {
    /// Decide and hand out this run's next action.
    Run(Handle),
    /// The caller may drop what it holds for this run (it went dormant or ended).
    Release(Handle),
}

#[derive(Default)]
struct LaneState {
    queue: VecDeque<QueueItem>,
    closed: bool,
    waiters: usize,
}

pub struct Lane {
    state: Mutex<LaneState>,
    cv: Condvar,
    notifier: Option<Arc<EventFd>>,
}

fn lock(m: &Mutex<LaneState>) -> MutexGuard<'_, LaneState> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub enum Popped {
    Item(QueueItem),
    TimedOut,
    Closed,
}

impl Lane {
    pub fn new(notifier: Option<Arc<EventFd>>) -> Lane {
        Lane { state: Mutex::new(LaneState::default()), cv: Condvar::new(), notifier }
    }

    pub fn push_all(&self, items: impl IntoIterator<Item = QueueItem>) {
        let mut state = lock(&self.state);
        let was_empty = state.queue.is_empty();
        let before = state.queue.len();
        state.queue.extend(items);
        let added = state.queue.len() - before;
        if added == 0 {
            return;
        }
        let wake = added.min(state.waiters);
        drop(state);
        for _ in 0..wake {
            self.cv.notify_one();
        }
        if was_empty {
            if let Some(notifier) = &self.notifier {
                notifier.signal();
            }
        }
    }

    pub fn try_pop(&self) -> Option<QueueItem> {
        lock(&self.state).queue.pop_front()
    }

    /// Pops, waiting up to `timeout` for an item.
    pub fn pop(&self, timeout: Duration) -> Popped {
        let deadline = Instant::now() + timeout;
        let mut state = lock(&self.state);
        loop {
            if let Some(item) = state.queue.pop_front() {
                return Popped::Item(item);
            }
            if state.closed {
                return Popped::Closed;
            }
            let now = Instant::now();
            if now >= deadline {
                return Popped::TimedOut;
            }
            state.waiters += 1;
            let (next, _) = self.cv.wait_timeout(state, deadline - now).unwrap_or_else(|p| p.into_inner());
            state = next;
            state.waiters -= 1;
        }
    }

    /// Takes up to `max` items without waiting; re-signals the notifier if more remain.
    pub fn drain(&self, max: usize) -> Vec<QueueItem> {
        let mut state = lock(&self.state);
        let n = max.min(state.queue.len());
        let items: Vec<QueueItem> = state.queue.drain(..n).collect();
        let more = !state.queue.is_empty();
        drop(state);
        if more {
            if let Some(notifier) = &self.notifier {
                notifier.signal();
            }
        }
        items
    }

    pub fn close(&self) {
        lock(&self.state).closed = true;
        self.cv.notify_all();
        if let Some(notifier) = &self.notifier {
            notifier.signal();
        }
    }

    pub fn len(&self) -> usize {
        lock(&self.state).queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
