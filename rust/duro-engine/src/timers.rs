//! Durable timers, in memory: the due time of every dormant run that waits
//! for time (sleep end, retry, delayed start, timeout). The durable part is
//! the journal; after a restart the engine rebuilds this heap from the
//! store's `wake_at` of each unfinished run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use duro_core::journal::RunKey;
use duro_core::time::Millis;

#[derive(Default)]
struct Heap {
    entries: BinaryHeap<Reverse<(Millis, RunKey)>>,
    stopped: bool,
}

#[derive(Default)]
pub(crate) struct Timers {
    heap: Mutex<Heap>,
    cv: Condvar,
}

fn lock(m: &Mutex<Heap>) -> MutexGuard<'_, Heap> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The longest the timer thread sleeps without re-checking the clock (which
/// may be a test clock moved by hand).
pub(crate) const MAX_NAP: Duration = Duration::from_millis(250);

impl Timers {
    pub fn schedule(&self, at_ms: Millis, key: RunKey) {
        let mut heap = lock(&self.heap);
        let earliest = heap.entries.peek().map(|Reverse((t, _))| *t);
        heap.entries.push(Reverse((at_ms, key)));
        if earliest.is_none_or(|t| at_ms < t) {
            self.cv.notify_all();
        }
    }

    /// Removes and returns every entry due at `now_ms`.
    pub fn take_due(&self, now_ms: Millis) -> Vec<RunKey> {
        let mut heap = lock(&self.heap);
        let mut due = Vec::new();
        while let Some(Reverse((at, key))) = heap.entries.peek().copied() {
            if at > now_ms {
                break;
            }
            heap.entries.pop();
            due.push(key);
        }
        due
    }

    /// Sleeps until the earliest entry may be due (at most `MAX_NAP`), or a
    /// sooner entry arrives. Returns false once stopped.
    pub fn nap(&self, now_ms: Millis) -> bool {
        let heap = lock(&self.heap);
        if heap.stopped {
            return false;
        }
        let wait = match heap.entries.peek() {
            Some(Reverse((at, _))) if *at <= now_ms => return true,
            Some(Reverse((at, _))) => Duration::from_millis(at - now_ms).min(MAX_NAP),
            None => MAX_NAP,
        };
        let (heap, _) = self
            .cv
            .wait_timeout(heap, wait)
            .unwrap_or_else(|p| p.into_inner());
        !heap.stopped
    }

    pub fn stop(&self) {
        lock(&self.heap).stopped = true;
        self.cv.notify_all();
    }

    pub fn len(&self) -> usize {
        lock(&self.heap).entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_in_order() {
        let timers = Timers::default();
        timers.schedule(30, 3);
        timers.schedule(10, 1);
        timers.schedule(20, 2);
        assert_eq!(timers.take_due(5), Vec::<RunKey>::new());
        assert_eq!(timers.take_due(20), vec![1, 2]);
        assert_eq!(timers.take_due(100), vec![3]);
    }
}
