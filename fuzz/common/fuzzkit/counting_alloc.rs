//! fuzzkit's allocation accounting: [`CountingAlloc`], the global allocator that counts live
//! bytes, their peak, the largest single request and each thread's requests.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

// ---------------------------------------------------------------------------------------
// Allocation accounting.

pub(super) static LIVE: AtomicUsize = AtomicUsize::new(0);
pub(super) static PEAK: AtomicUsize = AtomicUsize::new(0);
pub(super) static LARGEST: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Bytes requested by this thread since the last [`thread_allocated_reset`].
    static THREAD_TOTAL: Cell<usize> = const { Cell::new(0) };
    static THREAD_LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// A global allocator that counts: live bytes, their peak, the largest single request
/// (all threads), and bytes requested by the current thread. Install it in a test binary
/// with `#[global_allocator] static ALLOC: CountingAlloc = CountingAlloc;`.
pub struct CountingAlloc;

fn note_alloc(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(live, Ordering::Relaxed);
    LARGEST.fetch_max(size, Ordering::Relaxed);
    let _ = THREAD_TOTAL.try_with(|t| t.set(t.get().saturating_add(size)));
    let _ = THREAD_LARGEST.try_with(|t| t.set(t.get().max(size)));
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            note_alloc(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            note_alloc(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            note_alloc(new_size);
        }
        p
    }
}

/// The largest single allocation (any thread) since the last [`reset_largest`].
pub fn largest() -> usize {
    LARGEST.load(Ordering::Relaxed)
}

pub fn reset_largest() {
    LARGEST.store(0, Ordering::Relaxed);
}

/// Bytes requested by the current thread, and its largest request, since the last reset.
pub fn thread_allocated() -> (usize, usize) {
    (
        THREAD_TOTAL.with(|t| t.get()),
        THREAD_LARGEST.with(|t| t.get()),
    )
}

pub fn thread_allocated_reset() {
    THREAD_TOTAL.with(|t| t.set(0));
    THREAD_LARGEST.with(|t| t.set(0));
}
