//! Time source. The engine reads time only here, so tests can drive it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use duro_core::time::Millis;

pub trait Clock: Send + Sync {
    fn now_ms(&self) -> Millis;
}

/// Wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    pub fn new(start_ms: Millis) -> ManualClock {
        ManualClock {
            now: AtomicU64::new(start_ms),
        }
    }
    pub fn advance(&self, by_ms: Millis) {
        self.now.fetch_add(by_ms, Ordering::SeqCst);
    }
    pub fn set(&self, to_ms: Millis) {
        self.now.store(to_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Millis {
        self.now.load(Ordering::SeqCst)
    }
}
