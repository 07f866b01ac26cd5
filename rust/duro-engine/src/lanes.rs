//! Lanes: the queues that hand runs to callers. The sync lane is pulled by
//! worker threads (blocking, the GIL released while they wait); the async
//! lane is drained by an event loop woken through an eventfd.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
    /// Mirrors the queue length (and closing) so a waiter can spin without the lock.
    ready: AtomicUsize,
    spinning: AtomicBool,
}

/// The longest one waiting caller spins for work that is on its way (an
/// acknowledgement is pending): longer than almost every fsync, so a
/// sequential run's next step is picked up without a sleep and a wake-up,
/// which cost tens of microseconds each on a VM.
const SPIN_MAX: Duration = Duration::from_millis(1);

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
        Lane {
            state: Mutex::new(LaneState::default()),
            cv: Condvar::new(),
            notifier,
            ready: AtomicUsize::new(0),
            spinning: AtomicBool::new(false),
        }
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
        self.ready.store(state.queue.len(), Ordering::Release);
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
        if self.ready.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut state = lock(&self.state);
        let item = state.queue.pop_front();
        self.ready.store(state.queue.len(), Ordering::Release);
        item
    }

    /// Spins for an item while `coming` says one is on its way, up to `SPIN_MAX`,
    /// if no other caller is spinning.
    fn spin(&self, deadline: Instant, coming: impl Fn() -> bool) {
        if self.spinning.swap(true, Ordering::Acquire) {
            return;
        }
        let until = (Instant::now() + SPIN_MAX).min(deadline);
        while self.ready.load(Ordering::Acquire) == 0 && coming() && Instant::now() < until {
            std::hint::spin_loop();
        }
        self.spinning.store(false, Ordering::Release);
    }

    /// Pops, waiting up to `timeout` for an item; spins first while `coming` says
    /// an item is on its way.
    pub fn pop(&self, timeout: Duration, coming: impl Fn() -> bool) -> Popped {
        let deadline = Instant::now() + timeout;
        if self.ready.load(Ordering::Acquire) == 0 {
            self.spin(deadline, coming);
        }
        let mut state = lock(&self.state);
        loop {
            if let Some(item) = state.queue.pop_front() {
                self.ready.store(state.queue.len(), Ordering::Release);
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
            let (next, _) = self
                .cv
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner());
            state = next;
            state.waiters -= 1;
        }
    }

    /// Takes up to `max` items without waiting; re-signals the notifier if more remain.
    pub fn drain(&self, max: usize) -> Vec<QueueItem> {
        if self.ready.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        let mut state = lock(&self.state);
        let n = max.min(state.queue.len());
        let items: Vec<QueueItem> = state.queue.drain(..n).collect();
        self.ready.store(state.queue.len(), Ordering::Release);
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
        // Wakes a spinner too; `pop` then finds the lane closed.
        self.ready.store(usize::MAX / 2, Ordering::Release);
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
